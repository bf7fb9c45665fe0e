//! cpo generation stage.
