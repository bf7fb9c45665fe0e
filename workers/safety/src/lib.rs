//! cpo safety stage.
