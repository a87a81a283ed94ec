//! The only place the network runs. The sliding window talks to a [`TileNetwork`]; ONNX Runtime
//! is one implementation ([`ort`]), a test can plug in another.

pub mod device;
pub mod ort;
pub mod runtime;

use std::sync::Arc;

use crate::error::Result;

/// A network that maps a batch of input tiles to logits, through buffers it owns.
///
/// The sliding window writes each batch straight into [`TileNetwork::input`] and reads the logits
/// straight out of what [`TileNetwork::run`] returns, so an implementation can keep both bound to
/// its runtime (ONNX Runtime's I/O binding) and the tile loop copies and allocates nothing.
pub trait TileNetwork {
    /// The buffer for the next batch of `batch` tiles, each `(channels, Pz, Py, Px)` float32, one
    /// after the other. Its contents are unspecified until the caller fills all of it.
    fn input(&mut self, batch: usize) -> Result<&mut [f32]>;

    /// Runs the batch last written into [`TileNetwork::input`].
    fn run(&mut self) -> Result<TileOutputs<'_>>;

    /// A handle that interrupts this network's run in progress from another thread, or `None`
    /// when a run cannot be interrupted (a cancelled prediction then waits for it to finish).
    fn interrupter(&self) -> Option<Arc<dyn Interrupt>> {
        None
    }
}

/// Stops a network's runs from another thread (ONNX Runtime's run-options terminate flag).
pub trait Interrupt: Send + Sync {
    /// Makes the run in progress, and every run until [`Interrupt::resume`], fail promptly.
    fn interrupt(&self);
    /// Lets runs proceed again.
    fn resume(&self);
}

/// The logits of one batch, borrowed from the network until its next call.
#[derive(Debug, Clone, Copy)]
pub struct TileOutputs<'a> {
    /// `(batch, classes, Pz, Py, Px)` segmentation logits.
    pub segmentation: &'a [f32],
    /// `(batch, head_classes)` classification logits; empty when the network has no head.
    pub classification: &'a [f32],
}
