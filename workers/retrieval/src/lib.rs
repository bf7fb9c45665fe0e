//! cpo retrieval stage.
