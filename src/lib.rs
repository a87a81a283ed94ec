//! nnunet-rt runs trained nnU-Net v2 `3d_fullres` models through ONNX Runtime and gives the
//! segmentation `nnUNetv2_predict` would give, without Python.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod classify;
pub mod ensemble;
pub mod error;
pub mod export;
pub mod ffi;
#[cfg(feature = "io")]
pub mod io;
pub mod metrics;
pub mod model;
pub mod postprocess;
pub mod predictor;
pub mod preprocess;
pub mod report;
pub mod volume;
pub mod window;

pub use backend::device::{Device, NetworkPrecision, Provider};
pub use classify::{Classification, ClassificationPolicy};
pub use error::{Error, ErrorKind, Result};
pub use export::Labels;
pub use predictor::{Configuration, LoadOptions, Logits, Model, Precision, PredictOptions, Prediction, Stage, Timings};
pub use volume::{Geometry, Volume, VolumeView, VoxelData};
