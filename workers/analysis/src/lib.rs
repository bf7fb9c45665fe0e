//! cpo analysis stage.
