//! nnunet-rt runs trained nnU-Net v2 `3d_fullres` models through ONNX Runtime and gives the
//! segmentation `nnUNetv2_predict` would give, without Python.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod io;
pub mod metrics;
pub mod model;
pub mod preprocess;
pub mod volume;

pub use error::{Error, ErrorKind, Result};
pub use volume::{Geometry, Volume, VolumeView, VoxelData};
