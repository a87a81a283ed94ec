//! The only place the network runs. The sliding window talks to a [`TileNetwork`]; ONNX Runtime
//! is one implementation ([`ort`]), a test can plug in another.

pub mod ort;
pub mod runtime;

use crate::error::Result;

/// A network that maps a batch of input tiles to logits.
pub trait TileNetwork {
    /// Runs `batch` tiles stored one after the other in `input`, each `(channels, Pz, Py, Px)`
    /// float32. Writes `(batch, classes, Pz, Py, Px)` segmentation logits into `seg` and, when the
    /// network has a classification head, `(batch, head_classes)` logits into `cls` (left empty
    /// otherwise). Both are resized by the callee; their capacity is reused between calls.
    fn run(&mut self, input: &[f32], batch: usize, seg: &mut Vec<f32>, cls: &mut Vec<f32>) -> Result<()>;
}
