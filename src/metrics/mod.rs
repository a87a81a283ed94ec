//! Segmentation metrics (filled in next).
