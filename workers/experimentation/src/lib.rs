//! cpo experimentation stage.
