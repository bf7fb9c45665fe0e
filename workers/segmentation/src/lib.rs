//! cpo segmentation stage.
