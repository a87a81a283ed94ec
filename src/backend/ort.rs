//! ONNX Runtime sessions for the exported folds.

use std::path::Path;
use std::sync::Arc;

use ort::memory::Allocator;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};
use ort::session::{IoBinding, RunOptions, Session};
use ort::value::Tensor;

use super::device::{NetworkPrecision, Provider};
use super::runtime::Runtime;
use super::{Interrupt, TileNetwork, TileOutputs};
use crate::error::{Error, ErrorKind, Result};
use crate::folder::{ExportMetadata, ROLE_CLASSIFICATION, ROLE_SEGMENTATION};

/// How sessions are built: the resolved provider and its settings.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// The execution provider every node runs on.
    pub provider: Provider,
    /// The network's arithmetic; bfloat16 only on OpenVINO (checked before sessions are built).
    pub precision: NetworkPrecision,
    /// Threads for the network (`None`: the provider's default, one per core).
    pub intra_threads: Option<usize>,
    /// CUDA only: allow TF32 tensor-core convolutions.
    pub allow_tf32: bool,
    /// OpenVINO only: where compiled networks are cached between loads.
    pub openvino_cache_dir: Option<std::path::PathBuf>,
}

/// Where a fold's ONNX model comes from.
#[derive(Debug, Clone, Copy)]
pub enum OnnxModel<'a> {
    /// A file ONNX Runtime reads itself.
    File(&'a Path),
    /// The model's bytes (from a bundle in memory), with a name for messages; ONNX Runtime
    /// copies what it keeps.
    Bytes {
        /// Where the bytes came from (e.g. `<bundle>/fold_0/model.onnx`).
        name: &'a str,
        /// The ONNX model.
        bytes: &'a [u8],
    },
}

impl OnnxModel<'_> {
    /// The model's name in messages.
    pub fn name(&self) -> String {
        match self {
            OnnxModel::File(path) => path.display().to_string(),
            OnnxModel::Bytes { name, .. } => name.to_string(),
        }
    }
}

/// One fold's network in ONNX Runtime.
///
/// Input and outputs live in tensors allocated once per batch size and bound to the session
/// (I/O binding): the sliding window writes tiles into the input tensor and reads logits out of
/// the output tensors, and ONNX Runtime neither allocates outputs nor copies anything per run.
#[derive(Debug)]
pub struct OrtNetwork {
    session: Session,
    /// Shared with [`OrtNetwork::interrupter`]: its terminate flag stops a run from any thread.
    run_options: Arc<StopFlag>,
    input_name: String,
    seg_name: String,
    cls_name: Option<String>,
    tile_shape: Vec<usize>,
    classes: usize,
    head_classes: usize,
    bound: Option<BoundTensors>,
}

/// The tensors bound for one batch size.
#[derive(Debug)]
struct BoundTensors {
    batch: usize,
    input: Tensor<f32>,
    segmentation: Tensor<f32>,
    classification: Option<Tensor<f32>>,
    binding: IoBinding,
}

impl OrtNetwork {
    /// Loads the ONNX model `onnx`, described by `metadata`, into a session.
    ///
    /// `tile_shape` is one input tile as the network takes it: `(channels, Pz, Py, Px)`, or
    /// `(channels, Py, Px)` for a 2-D network; `classes` the segmentation outputs' channel count.
    pub fn load(
        runtime: &Runtime,
        onnx: OnnxModel<'_>,
        metadata: &ExportMetadata,
        tile_shape: Vec<usize>,
        classes: usize,
        settings: &SessionSettings,
    ) -> Result<OrtNetwork> {
        let name = onnx.name();
        let fail = |what: &str, e: ort::Error| {
            let kind = if what == "load" { ErrorKind::InvalidModel } else { ErrorKind::Runtime };
            Error::new(kind, format!("{}: cannot {what} the ONNX model: {e}", name))
        };
        // OpenVINO optimises the graph itself; ONNX Runtime's fusions would only make operators
        // (FusedConv...) that OpenVINO does not take.
        let level = match settings.provider {
            Provider::OpenVino => GraphOptimizationLevel::Disable,
            Provider::Cpu | Provider::Cuda(_) => GraphOptimizationLevel::All,
        };
        let mut builder = Session::builder(&runtime.environment)
            .map_err(|e| fail("configure", e))?
            .with_optimization_level(level)
            .map_err(|e| fail("configure", e.into()))?;
        if let Some(threads) = settings.intra_threads {
            builder = builder.with_intra_threads(threads).map_err(|e| fail("configure", e.into()))?;
        }
        // Worker threads spin while a run is active (stopping that cost 10-28 % of network time
        // here) but stop when it returns, so they do not take the cores from the tile
        // accumulation between runs or from export afterwards.
        builder =
            builder.with_config_entry("session.force_spinning_stop", "1").map_err(|e| fail("configure", e.into()))?;
        // ONNX Runtime's memory pattern pre-plans one block for all activations of a run; for
        // ResEncUNet-M at 64x128x192 that held ~1 GiB more at peak (2.45 vs 1.46 GiB RSS) with no
        // measurable speed difference (BENCHMARKS.md), so it is off.
        builder = builder.with_memory_pattern(false).map_err(|e| fail("configure", e.into()))?;
        builder = place(builder, runtime, settings)?;
        let session = match onnx {
            OnnxModel::File(path) => builder.commit_from_file(path),
            OnnxModel::Bytes { bytes, .. } => builder.commit_from_memory(bytes),
        }
        .map_err(|e| fail("load", e))?;
        let seg_name = metadata.output(ROLE_SEGMENTATION).map(|o| o.name.clone()).unwrap_or_default();
        let cls_name = metadata.output(ROLE_CLASSIFICATION).map(|o| o.name.clone());
        for name in std::iter::once(&metadata.input.name) {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(Error::invalid_model(format!("{}: the graph has no input named {name:?}", name)));
            }
        }
        for name in std::iter::once(&seg_name).chain(cls_name.as_ref()) {
            if !session.outputs().iter().any(|o| o.name() == name) {
                return Err(Error::invalid_model(format!("{}: the graph has no output named {name:?}", name)));
            }
        }
        let head_classes = match (&cls_name, &metadata.classification) {
            (None, _) => 0,
            (Some(_), Some(head)) => head.class_names.len(),
            (Some(name), None) => {
                return Err(Error::invalid_model(format!(
                    "{}: output {name:?} holds classification logits but the export metadata names no classes",
                    name
                )))
            }
        };
        let run_options = Arc::new(StopFlag(RunOptions::new().map_err(|e| fail("configure", e))?));
        Ok(OrtNetwork {
            session,
            run_options,
            input_name: metadata.input.name.clone(),
            seg_name,
            cls_name,
            tile_shape,
            classes,
            head_classes,
            bound: None,
        })
    }

    /// Allocates and binds the tensors for `batch` tiles (once per batch size).
    fn bind(&mut self, batch: usize) -> Result<&mut BoundTensors> {
        if self.bound.as_ref().is_none_or(|b| b.batch != batch) {
            // Drop the old binding (and the tensors it holds) before allocating the new ones.
            self.bound = None;
            let spatial = &self.tile_shape[1..];
            let input_shape: Vec<usize> = std::iter::once(batch).chain(self.tile_shape.iter().copied()).collect();
            let output_shape: Vec<usize> = [batch, self.classes].into_iter().chain(spatial.iter().copied()).collect();
            let allocator = Allocator::default();
            let input = Tensor::<f32>::new(&allocator, input_shape)?;
            let mut segmentation = Tensor::<f32>::new(&allocator, output_shape)?;
            let mut binding = self.session.create_binding()?;
            binding.bind_output(self.seg_name.as_str(), segmentation.view_mut())?;
            let classification = match &self.cls_name {
                Some(name) => {
                    let mut tensor = Tensor::<f32>::new(&allocator, [batch, self.head_classes])?;
                    binding.bind_output(name.as_str(), tensor.view_mut())?;
                    Some(tensor)
                }
                None => None,
            };
            self.bound = Some(BoundTensors { batch, input, segmentation, classification, binding });
        }
        Ok(self.bound.as_mut().expect("bound above"))
    }
}

/// Binds the session to its provider's device explicitly. A session that names none would run on
/// any registered plugin: with the OpenVINO plugin loaded, such a session ran on OpenVINO at its
/// default precision (bfloat16 on this CPU), not on ONNX Runtime's CPU provider.
fn place(builder: SessionBuilder, runtime: &Runtime, settings: &SessionSettings) -> Result<SessionBuilder> {
    let configure = |e: ort::Error| Error::new(ErrorKind::Runtime, format!("cannot configure the session: {e}"));
    match settings.provider {
        Provider::Cpu => match runtime.cpu_device() {
            Some(device) => builder.with_devices([device], None).map_err(|e| configure(e.into())),
            None => Ok(builder),
        },
        Provider::OpenVino => {
            let device = runtime.openvino_cpu_device().ok_or_else(|| {
                Error::new(ErrorKind::RuntimeUnavailable, "OpenVINO is registered but sees no CPU device")
            })?;
            // The precision is always explicit: OpenVINO's own default on CPUs with bfloat16
            // arithmetic is bfloat16, which changes the answer.
            let mut cpu_config = serde_json::json!({ "INFERENCE_PRECISION_HINT": settings.precision.openvino_hint() });
            if let Some(threads) = settings.intra_threads {
                cpu_config["INFERENCE_NUM_THREADS"] = threads.to_string().into();
            }
            if let Some(dir) = &settings.openvino_cache_dir {
                cpu_config["CACHE_DIR"] = dir.to_string_lossy().into_owned().into();
            }
            let options = vec![(
                format!("{}.load_config", super::runtime::OPENVINO_EP),
                serde_json::json!({ "CPU": cpu_config }).to_string(),
            )];
            builder
                .with_devices([device], Some(&options))
                .map_err(|e| configure(e.into()))?
                // Every node on OpenVINO, or the load fails: no part of the network silently
                // runs elsewhere in other arithmetic.
                .with_config_entry("session.disable_cpu_ep_fallback", "1")
                .map_err(|e| configure(e.into()))
        }
        Provider::Cuda(id) => register_cuda(builder, id, settings),
    }
}

#[cfg(feature = "cuda")]
fn register_cuda(builder: SessionBuilder, id: i32, settings: &SessionSettings) -> Result<SessionBuilder> {
    use ort::ep::cuda::ConvAlgorithmSearch;
    // Exhaustive cuDNN search benchmarks every convolution algorithm once per input shape
    // (the first run of each batch size); a sliding window repeats one shape thousands of
    // times, so that is repaid at once.
    builder
        .with_execution_providers([ort::ep::CUDA::default()
            .with_device_id(id)
            .with_conv_algorithm_search(ConvAlgorithmSearch::Exhaustive)
            .with_conv_max_workspace(true)
            .with_tf32(settings.allow_tf32)
            .build()
            .error_on_failure()])
        .map_err(|e| {
            Error::new(
                ErrorKind::RuntimeUnavailable,
                format!("cannot register the CUDA execution provider on GPU {id}: {e}"),
            )
        })
}

#[cfg(not(feature = "cuda"))]
fn register_cuda(_: SessionBuilder, _: i32, _: &SessionSettings) -> Result<SessionBuilder> {
    Err(Error::new(
        ErrorKind::RuntimeUnavailable,
        "this build of nnunet-rt has no CUDA support; rebuild with `--features cuda`",
    ))
}

impl TileNetwork for OrtNetwork {
    fn input(&mut self, batch: usize) -> Result<&mut [f32]> {
        let bound = self.bind(batch)?;
        Ok(bound.input.extract_tensor_mut().1)
    }

    fn run(&mut self) -> Result<TileOutputs<'_>> {
        let bound = self
            .bound
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Runtime, "the network ran before its input was written"))?;
        // Binding copies the input when the provider's memory is not the tensor's (OpenVINO's
        // plugin device, CUDA): bound once, every run after the first saw the first batch again
        // (measured: the demo's OpenVINO segmentation lost its lesion). Binding again before each
        // run makes that copy of the batch just written; on ONNX Runtime's CPU provider it only
        // records the reference.
        bound.binding.bind_input(self.input_name.as_str(), &bound.input)?;
        // The outputs land in the bound tensors; the returned map only refers to them.
        drop(self.session.run_binding_with_options(&bound.binding, &self.run_options.0)?);
        let segmentation = bound.segmentation.extract_tensor().1;
        let classification = bound.classification.as_ref().map_or(&[][..], |t| t.extract_tensor().1);
        Ok(TileOutputs { segmentation, classification })
    }

    fn interrupter(&self) -> Option<Arc<dyn Interrupt>> {
        Some(self.run_options.clone())
    }
}

/// The run options every run of one session uses: their terminate flag, which ONNX Runtime reads
/// between nodes, stops a run from another thread.
struct StopFlag(RunOptions);

impl std::fmt::Debug for StopFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StopFlag")
    }
}

impl Interrupt for StopFlag {
    fn interrupt(&self) {
        // Fails only on an invalid handle, which owned run options never are.
        let _ = self.0.terminate();
    }

    fn resume(&self) {
        let _ = self.0.unterminate();
    }
}
