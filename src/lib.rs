//! nnunet-rt runs trained nnU-Net v2 models (`3d_fullres`, `2d`, cascades, region-based labels,
//! ensembles with their postprocessing) through ONNX Runtime and gives the segmentation
//! `nnUNetv2_predict` would give, without Python. Start at [`Model`]; docs/ARCHITECTURE.md maps
//! each step to its module.
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod backend;
pub mod classify;
pub mod ensemble;
pub mod error;
pub mod export;
pub mod ffi;
pub mod folder;
#[cfg(feature = "io")]
pub mod io;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod postprocess;
pub mod preprocess;
pub mod report;
pub mod resample;
pub mod volume;
pub mod window;

pub use backend::device::{Device, NetworkPrecision, Provider};
pub use classify::{Classification, ClassificationPolicy};
pub use error::{Error, ErrorKind, Result};
pub use export::Labels;
pub use model::{Configuration, LoadOptions, Logits, Model, Precision, PredictOptions, Prediction, Stage, Timings};
pub use volume::{Geometry, Volume, VolumeView, VoxelData};
