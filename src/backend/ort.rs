//! ONNX Runtime sessions for the exported folds.

use std::path::Path;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;

use super::runtime::Runtime;
use super::TileNetwork;
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ExportMetadata, ROLE_CLASSIFICATION, ROLE_SEGMENTATION};

/// Where the network runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU provider.
    #[default]
    Cpu,
    /// The CUDA provider on the given GPU; registration failure is an error, never a CPU fallback.
    Cuda(i32),
}

/// How sessions are built.
#[derive(Debug, Clone, Default)]
pub struct SessionSettings {
    /// Execution device.
    pub device: Device,
    /// Intra-op threads (`None`: ONNX Runtime's default, one per core).
    pub intra_threads: Option<usize>,
}

/// One fold's network in ONNX Runtime.
#[derive(Debug)]
pub struct OrtNetwork {
    session: Session,
    input_name: String,
    seg_name: String,
    cls_name: Option<String>,
    tile_shape: [usize; 4],
}

impl OrtNetwork {
    /// Loads `onnx_path` described by `metadata` into a session.
    pub fn load(
        runtime: &Runtime,
        onnx_path: &Path,
        metadata: &ExportMetadata,
        tile_shape: [usize; 4],
        settings: &SessionSettings,
    ) -> Result<OrtNetwork> {
        let fail = |what: &str, e: ort::Error| {
            let kind = if what == "load" { ErrorKind::InvalidModel } else { ErrorKind::Runtime };
            Error::new(kind, format!("{}: cannot {what} the ONNX model: {e}", onnx_path.display()))
        };
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| fail("configure", e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| fail("configure", e.into()))?;
        if let Some(threads) = settings.intra_threads {
            builder = builder.with_intra_threads(threads).map_err(|e| fail("configure", e.into()))?;
        }
        builder = register_device(builder, settings.device)?;
        let session = builder.commit_from_file(onnx_path).map_err(|e| fail("load", e))?;
        let seg_name = metadata.output(ROLE_SEGMENTATION).map(|o| o.name.clone()).unwrap_or_default();
        let cls_name = metadata.output(ROLE_CLASSIFICATION).map(|o| o.name.clone());
        for name in std::iter::once(&metadata.input.name) {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(Error::invalid_model(format!(
                    "{}: the graph has no input named {name:?}",
                    onnx_path.display()
                )));
            }
        }
        for name in std::iter::once(&seg_name).chain(cls_name.as_ref()) {
            if !session.outputs().iter().any(|o| o.name() == name) {
                return Err(Error::invalid_model(format!(
                    "{}: the graph has no output named {name:?}",
                    onnx_path.display()
                )));
            }
        }
        Ok(OrtNetwork { session, input_name: metadata.input.name.clone(), seg_name, cls_name, tile_shape })
    }
}

#[cfg(feature = "cuda")]
fn register_device(
    builder: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder> {
    match device {
        Device::Cpu => Ok(builder),
        Device::Cuda(id) => builder
            .with_execution_providers([ort::ep::CUDA::default().with_device_id(id).build().error_on_failure()])
            .map_err(|e| {
                Error::new(
                    ErrorKind::RuntimeUnavailable,
                    format!("cannot register the CUDA execution provider on GPU {id}: {e}"),
                )
            }),
    }
}

#[cfg(not(feature = "cuda"))]
fn register_device(
    builder: ort::session::builder::SessionBuilder,
    device: Device,
) -> Result<ort::session::builder::SessionBuilder> {
    match device {
        Device::Cpu => Ok(builder),
        Device::Cuda(_) => Err(Error::new(
            ErrorKind::RuntimeUnavailable,
            "this build of nnunet-rt has no CUDA support; rebuild with `--features cuda`",
        )),
    }
}

impl TileNetwork for OrtNetwork {
    fn run(&mut self, input: &[f32], batch: usize, seg: &mut Vec<f32>, cls: &mut Vec<f32>) -> Result<()> {
        let [c, z, y, x] = self.tile_shape;
        let shape = [batch, c, z, y, x];
        let tensor = TensorRef::from_array_view((shape, input))?;
        let outputs = self.session.run(ort::inputs![self.input_name.as_str() => tensor])?;
        let (_, seg_values) = outputs[self.seg_name.as_str()].try_extract_tensor::<f32>()?;
        seg.clear();
        seg.extend_from_slice(seg_values);
        cls.clear();
        if let Some(name) = &self.cls_name {
            let (_, cls_values) = outputs[name.as_str()].try_extract_tensor::<f32>()?;
            cls.extend_from_slice(cls_values);
        }
        Ok(())
    }
}
