//! The safe Rust API: load a model folder once, predict many volumes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use half::f16;
use ndarray::Array4;

use crate::backend::device::{Device, NetworkPrecision};
use crate::backend::ort::{OnnxModel, OrtNetwork, SessionSettings};
use crate::backend::runtime::{self, RuntimeInfo};
use crate::backend::{Interrupt, TileNetwork};
use crate::classify::{self, Classification, ClassificationPolicy, TileEvidence};
use crate::ensemble::{self, Selection, INFERENCE_INFORMATION_FILE};
use crate::error::{Error, ErrorKind, Result};
use crate::export::{self, Labels};
use crate::folder::{bundle, Bundle, ModelFolder, Plan, Source};
use crate::postprocess::{Postprocessing, StepReport};
use crate::preprocess::{self, Preprocessed};
use crate::volume::{Geometry, VolumeView};
use crate::window::{self, gaussian, mirror, FoldRun, LogitScalar, TileBuffers};

/// How a model is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Fold names to use (`"0"`, `"all"`...), in order; `None` uses every exported fold.
    pub folds: Option<Vec<String>>,
    /// Where the network runs: `Auto` (default) is OpenVINO on the CPU when its plugin loads,
    /// else ONNX Runtime's CPU provider, in float32 either way.
    pub device: Device,
    /// The network's arithmetic: float32 (default, nnU-Net's answer) or the opt-in bfloat16
    /// (OpenVINO only, several times faster on CPUs with AVX512_BF16 / AMX; changes the answer
    /// slightly, see BENCHMARKS.md).
    pub network_precision: NetworkPrecision,
    /// Threads of the network's provider (ONNX Runtime intra-op or OpenVINO inference threads);
    /// `None` uses every core.
    pub intra_threads: Option<usize>,
    /// On CUDA, let convolutions use TF32 tensor cores (faster, ~10 bits of mantissa in the
    /// products; the original system trains and predicts with it allowed). Off by default, so
    /// CUDA computes in full float32 like the CPU.
    pub allow_tf32: bool,
    /// Explicit path of `libonnxruntime.so`; `None` searches (see [`crate::backend::runtime`]).
    pub ort_library: Option<PathBuf>,
    /// Explicit path of `libonnxruntime_providers_openvino_plugin.so`; `None` searches (see
    /// [`crate::backend::runtime`]). An explicit path that does not load is an error.
    pub openvino_library: Option<PathBuf>,
    /// OpenVINO only: a folder where compiled networks are cached, so later loads of the same
    /// model skip compilation.
    pub openvino_cache_dir: Option<PathBuf>,
    /// A `postprocessing.json` to apply instead of the one the folder provides (a model folder's
    /// own, or the one `inference_information.json` selects).
    pub postprocessing_file: Option<PathBuf>,
    /// Apply no postprocessing, even when the folder provides it.
    pub skip_postprocessing: bool,
    /// A cascade stage's previous-stage model folder (e.g. the `3d_lowres` one); `None` looks
    /// for nnU-Net's sibling folder `<trainer>__<plans>__<previous_stage>`.
    pub previous_stage_model: Option<PathBuf>,
}

/// How one volume is predicted. The defaults are `nnUNetv2_predict`'s.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// Sliding-window step as a fraction of the patch, in (0, 1]; nnU-Net's default 0.5.
    pub step_size: f64,
    /// Mirroring test-time augmentation over the axes the model allows (nnU-Net's default: on).
    pub mirroring: bool,
    /// Also return per-class softmax probabilities on the input grid.
    pub probabilities: bool,
    /// How tile-level classification outputs become one answer.
    pub classification_policy: ClassificationPolicy,
    /// Arithmetic of the logit accumulation (nnU-Net's float16 by default).
    pub precision: Precision,
    /// Refuse, before any work, a prediction whose estimated peak memory exceeds this many bytes.
    pub memory_limit: Option<u64>,
    /// Opt-in ROI focus (not nnU-Net's algorithm): a cheap first pass (first fold, no mirroring,
    /// adjacent tiles) finds the foreground and the full pass runs only the tiles near it; see
    /// [`crate::window::roi`]. Off by default.
    pub roi_focus: bool,
}

impl Default for PredictOptions {
    fn default() -> Self {
        PredictOptions {
            step_size: 0.5,
            mirroring: true,
            probabilities: false,
            classification_policy: ClassificationPolicy::default(),
            precision: Precision::default(),
            memory_limit: None,
            roi_focus: false,
        }
    }
}

impl PredictOptions {
    /// Checks the settings before any work: the step size must be in (0, 1].
    pub fn validate(&self) -> Result<()> {
        window::tiles::check_step_size(self.step_size)
    }
}

/// How logits are accumulated over tiles and folds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float16 buffers rounded after every addition, exactly as nnU-Net does: the same answer.
    #[default]
    Half,
    /// float32 buffers: more accurate, may flip argmax at near-ties relative to nnU-Net.
    Single,
}

impl Precision {
    /// Stable lower-case name: `half` or `single`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Half => "half",
            Precision::Single => "single",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = Error;

    /// `half` or `single`.
    fn from_str(text: &str) -> Result<Self> {
        [Precision::Half, Precision::Single]
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| Error::invalid_argument(format!("precision {text:?} is not half or single")))
    }
}

/// Fold-averaged logits `(classes, z', y', x')` in the precision they were accumulated in.
#[derive(Debug, Clone)]
pub enum Logits {
    /// float16 (nnU-Net's arithmetic).
    Half(Array4<f16>),
    /// float32.
    Single(Array4<f32>),
}

impl Logits {
    /// Shape `(classes, z', y', x')`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Logits::Half(a) => a.shape(),
            Logits::Single(a) => a.shape(),
        }
    }

    /// Values widened to float32, C order.
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Logits::Half(a) => a.iter().map(|v| v.to_f32()).collect(),
            Logits::Single(a) => a.iter().copied().collect(),
        }
    }
}

/// The stage a progress report refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Transpose, crop, normalise, resample.
    Preprocess,
    /// Sliding-window network passes (the long part; reported after every network pass).
    Network,
    /// Resampling back, argmax, un-crop.
    Export,
}

impl Stage {
    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Preprocess => "preprocess",
            Stage::Network => "network",
            Stage::Export => "export",
        }
    }
}

/// Wall-clock time per stage (summed over the stages of a cascade and the members of an ensemble).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Preprocessing.
    pub preprocess: Duration,
    /// All network passes with accumulation and fold averaging.
    pub network: Duration,
    /// Export.
    pub export: Duration,
}

impl std::ops::Add for Timings {
    type Output = Timings;
    fn add(self, other: Timings) -> Timings {
        Timings {
            preprocess: self.preprocess + other.preprocess,
            network: self.network + other.network,
            export: self.export + other.export,
        }
    }
}

/// The result of one prediction.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// Label map on the input grid, x fastest.
    pub labels: Labels,
    /// (x, y, z) of the label map (the input's dims).
    pub dims: [usize; 3],
    /// The input's geometry.
    pub geometry: Geometry,
    /// Label names, by value.
    pub label_names: Vec<String>,
    /// `(classes, z, y, x)` probabilities when requested.
    pub probabilities: Option<Vec<f32>>,
    /// Case-level classification when the model has a head.
    pub classification: Option<Classification>,
    /// Time per stage.
    pub timings: Timings,
    /// Tiles per fold.
    pub tiles: usize,
    /// Folds used, in order.
    pub folds: Vec<String>,
    /// Network passes per tile (1 without mirroring, up to 8).
    pub passes_per_tile: usize,
    /// Tiles passed through the network over all folds, mirrored copies counted: `tiles x
    /// passes_per_tile x folds`, unless ROI focus skipped tiles (its first pass is included).
    /// Summed over the members of an ensemble.
    pub network_passes: usize,
    /// The configurations that answered, in order: one, or the members of an ensemble.
    pub configurations: Vec<String>,
    /// What each postprocessing step did, in order (empty without postprocessing).
    pub postprocessing: Vec<StepReport>,
}

/// Logits of a case on the network's grid, before export.
#[derive(Debug)]
pub struct CaseLogits {
    /// Fold-averaged logits `(classes, z', y', x')`.
    pub logits: Logits,
    /// Per fold, per tile classification evidence (empty without a head).
    pub evidence: Vec<Vec<TileEvidence>>,
    /// Tiles per fold.
    pub tiles: usize,
    /// Passes per tile.
    pub passes_per_tile: usize,
    /// Tiles through the network over all folds (see [`Prediction::network_passes`]).
    pub network_passes: usize,
}

impl<T> FoldRun<T> {
    fn into_case(self, wrap: fn(Array4<T>) -> Logits) -> CaseLogits {
        CaseLogits {
            logits: wrap(self.logits),
            evidence: self.evidence,
            tiles: self.tiles,
            passes_per_tile: self.passes_per_tile,
            network_passes: self.network_passes,
        }
    }
}

struct Engine {
    networks: Vec<Box<dyn TileNetwork + Send>>,
    buffers: TileBuffers,
}

/// One trained configuration (`3d_fullres`, `2d`...): its folder's plan and one network per fold.
/// A [`Model`] holds one, or several for an ensemble.
pub struct Configuration {
    folder: ModelFolder,
    gaussian: Vec<f16>,
    engine: Mutex<Engine>,
    /// What stops each fold's network mid-run (those that can be stopped), reachable without
    /// the engine's lock, which a running prediction holds.
    interrupters: Vec<Arc<dyn Interrupt>>,
    /// The model's pool for the work around the network (`None`: rayon's global pool).
    pool: Option<Arc<rayon::ThreadPool>>,
    runtime_info: Option<RuntimeInfo>,
    /// A cascade stage's previous stage, run first on the same volume.
    previous: Option<Box<Configuration>>,
}

impl std::fmt::Debug for Configuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Configuration").field("dir", &self.folder.dir).field("folds", &self.fold_names()).finish()
    }
}

impl Configuration {
    /// Loads the model folder `dir` and creates one ONNX Runtime session per fold. A cascade
    /// stage (`previous_stage` in its plans) loads its previous stage too: from
    /// `options.previous_stage_model`, or from the sibling folder nnU-Net names
    /// `<trainer>__<plans>__<previous_stage>`.
    pub fn load(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Configuration> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(Error::new(ErrorKind::Io, format!("model folder {} does not exist", dir.display())));
        }
        Configuration::load_source(Source::Dir(dir.to_path_buf()), options)
    }

    /// [`Configuration::load`] from a folder on disk or inside a bundle; a bundled cascade stage
    /// finds its previous stage inside the bundle.
    fn load_source(source: Source, options: &LoadOptions) -> Result<Configuration> {
        let folder = ModelFolder::open_source(source, options.folds.as_deref())?;
        let dir = folder.dir.clone();
        let dir = dir.as_path();
        let previous = match &folder.plan.previous_stage {
            None => None,
            Some(name) => {
                let previous_source = match &folder.source {
                    Source::Dir(_) => Source::Dir(previous_stage_dir(dir, name, options)?),
                    bundled @ Source::Bundle { .. } => bundled.child(bundle::PREVIOUS_STAGE_PREFIX),
                };
                let previous_dir = previous_source.path_of("");
                let previous_options = LoadOptions { previous_stage_model: None, ..options.clone() };
                let previous = Configuration::load_source(previous_source, &previous_options)?;
                if previous.plan().labels != folder.plan.labels || previous.plan().configuration != *name {
                    return Err(Error::invalid_model(format!(
                        "{} is not {}'s previous stage: it is configuration {:?} with labels {:?} (expected {name:?} with labels {:?})",
                        previous_dir.display(),
                        dir.display(),
                        previous.plan().configuration,
                        previous.plan().labels.iter().map(|l| &l.name).collect::<Vec<_>>(),
                        folder.plan.labels.iter().map(|l| &l.name).collect::<Vec<_>>()
                    )));
                }
                Some(Box::new(previous))
            }
        };
        let runtime = runtime::runtime(options.ort_library.as_deref())?;
        let resolved =
            runtime.resolve(options.device, options.network_precision, options.openvino_library.as_deref())?;
        let settings = SessionSettings {
            provider: resolved.provider,
            precision: options.network_precision,
            intra_threads: options.intra_threads,
            allow_tf32: options.allow_tf32,
            openvino_cache_dir: options.openvino_cache_dir.clone(),
        };
        let plan = &folder.plan;
        let tile_shape = plan.network_input_shape();
        let networks = folder
            .folds
            .iter()
            .map(|fold| {
                let (bundled, name);
                let onnx = match &folder.source {
                    Source::Dir(_) => OnnxModel::File(&fold.onnx_path),
                    Source::Bundle { .. } => {
                        bundled = folder.source.read(&fold.onnx_name)?;
                        name = fold.onnx_path.display().to_string();
                        OnnxModel::Bytes { name: &name, bytes: &bundled }
                    }
                };
                OrtNetwork::load(runtime, onnx, &fold.metadata, tile_shape.clone(), plan.num_outputs(), &settings)
                    .map(|n| Box::new(n) as Box<dyn TileNetwork + Send>)
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(reason) = &resolved.fallback_reason {
            crate::log::emit(crate::log::Level::Warning, || {
                format!("device auto runs on ONNX Runtime's CPU provider: {reason}")
            });
        }
        crate::log::emit(crate::log::Level::Info, || {
            format!(
                "loaded {} ({}, folds {}) on {} ({}, {})",
                folder.dir.display(),
                folder.plan.configuration,
                folder.folds.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
                resolved.provider.ort_name(),
                options.network_precision,
                runtime.path.display()
            )
        });
        let mut model = Configuration::with_networks(folder, networks);
        model.previous = previous;
        model.runtime_info = Some(RuntimeInfo {
            nnunet_rt_version: env!("CARGO_PKG_VERSION").to_string(),
            device_requested: options.device.to_string(),
            device: resolved.provider.device().to_string(),
            execution_provider: resolved.provider.ort_name().to_string(),
            network_precision: options.network_precision.to_string(),
            threads: options.intra_threads,
            onnxruntime_version: runtime.version.clone(),
            onnxruntime_library: runtime.path.clone(),
            openvino: resolved.openvino.cloned(),
            auto_fallback_reason: resolved.fallback_reason,
        });
        Ok(model)
    }

    /// A configuration whose folds run through the given networks (one per fold, in order) — for
    /// tests and for callers with their own inference engine.
    pub fn with_networks(folder: ModelFolder, networks: Vec<Box<dyn TileNetwork + Send>>) -> Configuration {
        let gaussian = gaussian::gaussian_map(folder.plan.patch_size);
        let interrupters = networks.iter().filter_map(|n| n.interrupter()).collect();
        Configuration {
            folder,
            gaussian,
            interrupters,
            pool: None,
            engine: Mutex::new(Engine { networks, buffers: TileBuffers::default() }),
            runtime_info: None,
            previous: None,
        }
    }

    /// The resolved plan.
    pub fn plan(&self) -> &Plan {
        &self.folder.plan
    }

    /// A cascade stage's previous stage (e.g. `3d_lowres` before `3d_cascade_fullres`).
    pub fn previous_stage(&self) -> Option<&Configuration> {
        self.previous.as_deref()
    }

    /// The model folder as read.
    pub fn folder(&self) -> &ModelFolder {
        &self.folder
    }

    /// Fold names in use.
    pub fn fold_names(&self) -> Vec<String> {
        self.folder.folds.iter().map(|f| f.name.clone()).collect()
    }

    /// Path of the ONNX Runtime library in use, when sessions are ONNX Runtime's.
    pub fn runtime_path(&self) -> Option<&Path> {
        self.runtime_info.as_ref().map(|info| info.onnxruntime_library.as_path())
    }

    /// What the network runs on (provider, precision, library versions and paths), when
    /// sessions are ONNX Runtime's.
    pub fn runtime_info(&self) -> Option<&RuntimeInfo> {
        self.runtime_info.as_ref()
    }

    /// Predicts `volume`. `progress(stage, fraction)` is called at stage boundaries and after
    /// every network pass; returning `false` cancels and the call fails with [`ErrorKind::Cancelled`].
    pub fn predict(
        &self,
        volume: &VolumeView<'_>,
        options: &PredictOptions,
        progress: &mut dyn FnMut(Stage, f64) -> bool,
    ) -> Result<Prediction> {
        options.validate()?;
        check_memory_limit(options, || self.estimate_peak_bytes(volume, options))?;
        // A cascade runs its previous stage first (half of the progress) and takes its labels.
        let previous = match &self.previous {
            None => None,
            Some(stage) => {
                let options = PredictOptions { probabilities: false, memory_limit: None, ..options.clone() };
                Some(stage.predict(volume, &options, &mut |s, f| progress(s, f / 2.0))?)
            }
        };
        let progress_start = if previous.is_some() { 0.5 } else { 0.0 };
        let mut report = |stage: Stage, fraction: f64| {
            if progress(stage, progress_start + fraction * (1.0 - progress_start)) {
                Ok(())
            } else {
                Err(Error::cancelled())
            }
        };
        report(Stage::Preprocess, 0.0)?;
        let start = Instant::now();
        let previous_labels = previous.as_ref().map(|p| &p.labels);
        let pre = self.on_pool(|| preprocess::preprocess_with_previous_stage(volume, self.plan(), previous_labels))?;
        let preprocess_time = start.elapsed();

        // The network stage's first report (0.0) comes from the window, once this configuration's
        // networks are free for this prediction.
        let start = Instant::now();
        let case = self.predict_logits(&pre, options, &mut |f| report(Stage::Network, f))?;
        let network_time = start.elapsed();

        report(Stage::Export, 0.0)?;
        let start = Instant::now();
        let exported = self.on_pool(|| match &case.logits {
            Logits::Half(l) => export::export(l, &pre, self.plan(), options.probabilities),
            Logits::Single(l) => export::export(l, &pre, self.plan(), options.probabilities),
        })?;
        let classification = self.classify(&case.evidence, options.classification_policy);
        let export_time = start.elapsed();
        report(Stage::Export, 1.0)?;

        Ok(Prediction {
            labels: exported.labels,
            dims: volume.dims(),
            geometry: *volume.geometry(),
            label_names: self.plan().labels.iter().map(|l| l.name.clone()).collect(),
            probabilities: exported.probabilities,
            classification,
            timings: Timings { preprocess: preprocess_time, network: network_time, export: export_time }
                + previous.as_ref().map_or(Timings::default(), |p| p.timings),
            tiles: case.tiles,
            folds: self.fold_names(),
            configurations: previous
                .iter()
                .flat_map(|p| p.configurations.iter().cloned())
                .chain(std::iter::once(self.plan().configuration.clone()))
                .collect(),
            postprocessing: Vec::new(),
            passes_per_tile: case.passes_per_tile,
            network_passes: case.network_passes + previous.as_ref().map_or(0, |p| p.network_passes),
        })
    }

    /// The sliding window over every fold and the fold average, on a preprocessed case.
    /// `progress(fraction)` runs after every network pass and may cancel by returning an error.
    pub fn predict_logits(
        &self,
        pre: &Preprocessed,
        options: &PredictOptions,
        progress: &mut dyn FnMut(f64) -> Result<()>,
    ) -> Result<CaseLogits> {
        Ok(match options.precision {
            Precision::Half => self.run_folds::<f16>(pre, options, progress)?.into_case(Logits::Half),
            Precision::Single => self.run_folds::<f32>(pre, options, progress)?.into_case(Logits::Single),
        })
    }

    fn run_folds<T: LogitScalar>(
        &self,
        pre: &Preprocessed,
        options: &PredictOptions,
        progress: &mut dyn FnMut(f64) -> Result<()>,
    ) -> Result<FoldRun<T>> {
        let plan = self.plan();
        let flips = if options.mirroring { mirror::flip_sets(&self.folder.mirroring_axes) } else { Vec::new() };
        let case = window::CaseWindow {
            data: &pre.data,
            patch: plan.patch_size,
            network_dims: plan.network_dims,
            step_size: options.step_size,
            gaussian: &self.gaussian,
            flips: &flips,
            classes: plan.num_outputs(),
            collect_evidence: self.folder.classification.is_some(),
            roi_focus: options.roi_focus,
        };
        let mut engine = self.engine.lock().map_err(|_| {
            Error::new(ErrorKind::Poisoned, "the model is unusable: an earlier prediction panicked; load it again")
        })?;
        // A cancel that came before this prediction left the networks' stop flags set; the
        // caller's progress check right after clearing them still sees a cancel aimed at this one.
        self.interrupters.iter().for_each(|i| i.resume());
        progress(0.0)?;
        let Engine { networks, buffers } = &mut *engine;
        window::run_folds(&case, networks, buffers, progress)
    }

    /// Runs `work` on the model's pool (rayon's global pool for a configuration used alone).
    fn on_pool<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }

    /// Makes this configuration and its previous stage work on `pool`.
    fn share_pool(&mut self, pool: &Arc<rayon::ThreadPool>) {
        self.pool = Some(pool.clone());
        if let Some(previous) = &mut self.previous {
            previous.share_pool(pool);
        }
    }

    /// Stops the runs in progress of this configuration and its previous stage.
    fn interrupt(&self) {
        self.interrupters.iter().for_each(|i| i.interrupt());
        if let Some(previous) = &self.previous {
            previous.interrupt();
        }
    }

    /// Estimated peak memory of predicting `volume` (bytes): the largest of the preprocessing,
    /// sliding-window and export working sets, each counted from its buffers. An upper estimate
    /// (a 512 x 512 x 1000 CT at the model's spacing: 4.4 GiB estimated, 3.2 GiB measured; see
    /// `examples/memory_bound.rs`), used by [`PredictOptions::memory_limit`] to refuse early
    /// rather than fail late. The caller's volume and ONNX Runtime's own working set (fixed per
    /// patch size: ~1.4 GiB for ResEncUNet-M at 64 x 128 x 192 on the CPU) come on top.
    pub fn estimate_peak_bytes(&self, volume: &VolumeView<'_>, options: &PredictOptions) -> u64 {
        self.estimate_peak_bytes_for(volume.dims(), volume.geometry().spacing, options)
    }

    /// [`Configuration::estimate_peak_bytes`] from a volume's (x, y, z) dims and spacing alone.
    pub fn estimate_peak_bytes_for(&self, dims: [usize; 3], spacing: [f64; 3], options: &PredictOptions) -> u64 {
        let plan = self.plan();
        let input: u64 = dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
        let shape = plan.to_network_axes(dims);
        let spacing_xyz = spacing;
        let spacing = plan.to_network_axes(spacing);
        let new_shape = crate::resample::compute_new_shape(shape, spacing, plan.target_spacing(spacing));
        let logit_bytes = match options.precision {
            Precision::Half => 2,
            Precision::Single => 4,
        };
        // Each stage states its own buffers; they run one after the other.
        let preprocess = preprocess::working_set_bytes(plan.network_input_channels(), shape, new_shape);
        let window = window::working_set_bytes(
            plan.network_input_channels(),
            plan.num_outputs(),
            new_shape,
            plan.patch_size,
            logit_bytes,
        );
        let export =
            export::working_set_bytes(plan.num_outputs(), shape, new_shape, logit_bytes, options.probabilities);
        let own = preprocess.max(window).max(export);
        match &self.previous {
            // A cascade's first stage runs before; its labels stay while this stage runs.
            Some(previous) => {
                let options = PredictOptions { probabilities: false, ..options.clone() };
                previous.estimate_peak_bytes_for(dims, spacing_xyz, &options).max(own.saturating_add(input))
            }
            None => own,
        }
    }

    /// Case-level classification from per-fold tile evidence (None without a head).
    pub fn classify(&self, evidence: &[Vec<TileEvidence>], policy: ClassificationPolicy) -> Option<Classification> {
        let spec = self.folder.classification.as_ref()?;
        let labels = match &spec.evidence_labels {
            Some(list) => list.iter().map(|&l| l as usize).collect(),
            None => vec![self.plan().num_classes() - 1],
        };
        let per_fold = evidence.iter().map(|tiles| classify::fold_probabilities(tiles, &labels, policy)).collect();
        Some(classify::combine_folds(spec.class_names.clone(), per_fold, policy))
    }
}

/// The file a model folder may hold to have its predictions postprocessed.
pub const POSTPROCESSING_FILE: &str = "postprocessing.json";

/// A loaded model: one trained configuration, or an ensemble of configurations, and the
/// postprocessing its folder provides.
///
/// `Model` is `Send + Sync`: share it between threads freely. Predictions on one model are
/// serialised (ONNX Runtime sessions run one call at a time); load one model per thread to run
/// in parallel. [`Model::cancel`] stops the running predictions from any thread. A prediction
/// that panicked poisons the model: later calls fail with [`ErrorKind::Poisoned`].
///
/// Threads: [`LoadOptions::intra_threads`] (default: one per core) sizes both the network's
/// threads (ONNX Runtime's or OpenVINO's) and the model's own pool for the work around it, which
/// run one after the other; a model never uses more cores than that at once.
pub struct Model {
    configurations: Vec<Configuration>,
    postprocessing: Postprocessing,
    postprocessing_source: Option<PathBuf>,
    selection: Option<Selection>,
    /// Bumped by [`Model::cancel`]: a prediction that started under an older value is cancelled.
    cancel_generation: AtomicU64,
    /// The threads of everything around the network (preprocessing, export, postprocessing),
    /// shared by the configurations.
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("configurations", &self.configurations)
            .field("postprocessing_source", &self.postprocessing_source)
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl Model {
    /// Loads `dir`: a model folder (`plans.json`, `dataset.json`, `fold_N/`), postprocessed when
    /// it holds a `postprocessing.json`; or a dataset's results folder holding the
    /// `inference_information.json` of `nnUNetv2_find_best_configuration`, which runs the
    /// configuration(s), folds and postprocessing it selected (`options.folds` overrides the
    /// folds).
    ///
    /// A file is read as a model bundle (see [`Model::load_bundle`]).
    pub fn load(dir: impl AsRef<Path>, options: &LoadOptions) -> Result<Model> {
        let dir = dir.as_ref();
        if dir.is_file() {
            let bytes = std::fs::read(dir).map_err(|e| Error::io("cannot read", dir, e))?;
            return Model::load_bundle_owned(bytes, options);
        }
        if dir.join(INFERENCE_INFORMATION_FILE).is_file() && !dir.join("plans.json").is_file() {
            let selection = Selection::read(dir)?;
            let member_options = LoadOptions {
                folds: Some(options.folds.clone().unwrap_or_else(|| selection.folds.clone())),
                ..options.clone()
            };
            let configurations = selection
                .members
                .iter()
                .map(|member| Configuration::load(&member.dir, &member_options))
                .collect::<Result<Vec<_>>>()?;
            let postprocessing = Some(selection.postprocessing.clone());
            Model::assemble(configurations, options, postprocessing, None, Some(selection))
        } else {
            let own = dir.join(POSTPROCESSING_FILE);
            Model::assemble(vec![Configuration::load(dir, options)?], options, own.is_file().then_some(own), None, None)
        }
    }

    /// Loads a model bundle (written by [`Model::write_bundle`], `nnunet-rt bundle`) from memory,
    /// without touching the disk: ONNX Runtime's sessions are created from the bytes. A corrupt,
    /// truncated or hostile bundle fails with [`ErrorKind::InvalidModel`]. The bundle's own
    /// postprocessing applies unless `options` skips it or names another file.
    pub fn load_bundle(bytes: &[u8], options: &LoadOptions) -> Result<Model> {
        let mut owned = crate::memory::try_filled(0, 0u8, "the model bundle")?;
        crate::memory::reserve(&mut owned, bytes.len(), "the model bundle")?;
        owned.extend_from_slice(bytes);
        Model::load_bundle_owned(owned, options)
    }

    fn load_bundle_owned(bytes: Vec<u8>, options: &LoadOptions) -> Result<Model> {
        let bundle = Arc::new(Bundle::parse(bytes)?);
        let source = Source::Bundle { bundle: bundle.clone(), prefix: String::new() };
        let configuration = Configuration::load_source(source, options)?;
        let postprocessing = bundle.get(POSTPROCESSING_FILE);
        Model::assemble(vec![configuration], options, None, postprocessing, None)
    }

    /// Writes the model folder `dir` as one bundle file `out`: plans, dataset, each selected
    /// fold's ONNX model and export metadata, the postprocessing when the folder has one, and for
    /// a cascade stage its previous stage (found as [`Model::load`] finds it). The folder is
    /// checked as a load would check it (without creating sessions).
    pub fn write_bundle(dir: &Path, options: &LoadOptions, out: &Path) -> Result<()> {
        if dir.join(INFERENCE_INFORMATION_FILE).is_file() && !dir.join("plans.json").is_file() {
            return Err(Error::invalid_argument(format!(
                "{} is a results folder (inference_information.json); bundle one of its model folders",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        bundle_files(dir, options, "", &mut files)?;
        let list: Vec<(String, &Path)> = files.iter().map(|(name, path)| (name.clone(), path.as_path())).collect();
        let partial = out.with_extension("nnrt.partial");
        let written = std::fs::File::create(&partial)
            .map_err(|e| Error::io("cannot create", &partial, e))
            .and_then(|file| {
                let mut writer = std::io::BufWriter::new(file);
                bundle::write(&list, &mut writer)?;
                std::io::Write::flush(&mut writer).map_err(|e| Error::io("cannot write", &partial, e))
            })
            .and_then(|()| std::fs::rename(&partial, out).map_err(|e| Error::io("cannot write", out, e)));
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    /// Cancels the predictions running on this model now, from any thread: each fails promptly
    /// with [`ErrorKind::Cancelled`] (the network run in progress is interrupted). Predictions
    /// that start afterwards run normally.
    pub fn cancel(&self) {
        self.cancel_generation.fetch_add(1, Ordering::SeqCst);
        self.configurations.iter().for_each(Configuration::interrupt);
    }

    /// Threads of the model's own pool (preprocessing, export, postprocessing).
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// An ensemble of the model folders `dirs`, predicted as `nnUNetv2_ensemble` combines them;
    /// no postprocessing unless `options.postprocessing_file` names one.
    pub fn ensemble(dirs: &[PathBuf], options: &LoadOptions) -> Result<Model> {
        if dirs.is_empty() {
            return Err(Error::invalid_argument("an ensemble needs at least one model folder"));
        }
        let configurations = dirs.iter().map(|dir| Configuration::load(dir, options)).collect::<Result<Vec<_>>>()?;
        Model::assemble(configurations, options, None, None, None)
    }

    /// A single-configuration model whose folds run through the given networks (one per fold,
    /// in order) — for tests and for callers with their own inference engine.
    pub fn with_networks(folder: ModelFolder, networks: Vec<Box<dyn TileNetwork + Send>>) -> Model {
        let pool = Arc::new(thread_pool(None).expect("a thread pool of the default size"));
        let mut configuration = Configuration::with_networks(folder, networks);
        configuration.share_pool(&pool);
        Model {
            configurations: vec![configuration],
            postprocessing: Postprocessing::none(),
            postprocessing_source: None,
            selection: None,
            cancel_generation: AtomicU64::new(0),
            pool,
        }
    }

    fn assemble(
        mut configurations: Vec<Configuration>,
        options: &LoadOptions,
        folder_postprocessing: Option<PathBuf>,
        bundled_postprocessing: Option<&[u8]>,
        selection: Option<Selection>,
    ) -> Result<Model> {
        let first = configurations[0].plan();
        for other in &configurations[1..] {
            let plan = other.plan();
            if plan.labels != first.labels || plan.channel_names != first.channel_names {
                return Err(Error::invalid_model(format!(
                    "ensemble members disagree: {} has labels {:?} and channels {:?}, {} has labels {:?} and channels {:?}",
                    configurations[0].folder().dir.display(),
                    first.labels.iter().map(|l| &l.name).collect::<Vec<_>>(),
                    first.channel_names,
                    other.folder().dir.display(),
                    plan.labels.iter().map(|l| &l.name).collect::<Vec<_>>(),
                    plan.channel_names
                )));
            }
        }
        let source = if options.skip_postprocessing {
            None
        } else {
            options.postprocessing_file.clone().or(folder_postprocessing)
        };
        let postprocessing = match (&source, bundled_postprocessing) {
            _ if options.skip_postprocessing => Postprocessing::none(),
            (Some(path), _) => Postprocessing::from_file(path)?,
            (None, Some(bytes)) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| Error::invalid_model(format!("the bundle's {POSTPROCESSING_FILE} is not UTF-8")))?;
                Postprocessing::from_json_text(text)
                    .map_err(|e| Error::new(e.kind(), format!("the bundle's {POSTPROCESSING_FILE}: {e}")))?
            }
            (None, None) => Postprocessing::none(),
        };
        postprocessing.check_labels(first.num_classes())?;
        let source = source.or_else(|| {
            (bundled_postprocessing.is_some() && !options.skip_postprocessing)
                .then(|| PathBuf::from(format!("<bundle>/{POSTPROCESSING_FILE}")))
        });
        let pool = Arc::new(thread_pool(options.intra_threads)?);
        configurations.iter_mut().for_each(|c| c.share_pool(&pool));
        Ok(Model {
            configurations,
            postprocessing,
            postprocessing_source: source,
            selection,
            cancel_generation: AtomicU64::new(0),
            pool,
        })
    }

    fn first(&self) -> &Configuration {
        &self.configurations[0]
    }

    /// The configurations that answer, in order (more than one for an ensemble).
    pub fn configurations(&self) -> &[Configuration] {
        &self.configurations
    }

    /// The postprocessing applied after the argmax (possibly none) and the file it came from.
    pub fn postprocessing(&self) -> (&Postprocessing, Option<&Path>) {
        (&self.postprocessing, self.postprocessing_source.as_deref())
    }

    /// What `inference_information.json` selected, when the model was loaded from one.
    pub fn selection(&self) -> Option<&Selection> {
        self.selection.as_ref()
    }

    /// The resolved plan of the first configuration (members of an ensemble share labels and
    /// channels).
    pub fn plan(&self) -> &Plan {
        self.first().plan()
    }

    /// The first configuration's model folder as read.
    pub fn folder(&self) -> &ModelFolder {
        self.first().folder()
    }

    /// Fold names in use (of the first configuration; an ensemble's members use the same folds
    /// when loaded from `inference_information.json`).
    pub fn fold_names(&self) -> Vec<String> {
        self.first().fold_names()
    }

    /// Path of the ONNX Runtime library in use, when sessions are ONNX Runtime's.
    pub fn runtime_path(&self) -> Option<&Path> {
        self.first().runtime_path()
    }

    /// What the network runs on (provider, precision, library versions and paths), when
    /// sessions are ONNX Runtime's.
    pub fn runtime_info(&self) -> Option<&RuntimeInfo> {
        self.first().runtime_info()
    }

    /// The first configuration's logits for a preprocessed case (see
    /// [`Configuration::predict_logits`]).
    pub fn predict_logits(
        &self,
        pre: &Preprocessed,
        options: &PredictOptions,
        progress: &mut dyn FnMut(f64) -> Result<()>,
    ) -> Result<CaseLogits> {
        self.first().predict_logits(pre, options, progress)
    }

    /// Case-level classification from the first configuration's per-fold tile evidence.
    pub fn classify(&self, evidence: &[Vec<TileEvidence>], policy: ClassificationPolicy) -> Option<Classification> {
        self.first().classify(evidence, policy)
    }

    /// Estimated peak memory of [`Model::predict`] in bytes: the largest member's, plus for an
    /// ensemble every member's probabilities on the input grid and their average.
    pub fn estimate_peak_bytes(&self, volume: &VolumeView<'_>, options: &PredictOptions) -> u64 {
        self.estimate_peak_bytes_for(volume.dims(), volume.geometry().spacing, options)
    }

    /// [`Model::estimate_peak_bytes`] from a volume's (x, y, z) dims and spacing alone, before
    /// its voxels exist.
    pub fn estimate_peak_bytes_for(&self, dims: [usize; 3], spacing: [f64; 3], options: &PredictOptions) -> u64 {
        if self.configurations.len() == 1 {
            return self.first().estimate_peak_bytes_for(dims, spacing, options);
        }
        let member_options = PredictOptions { probabilities: true, ..options.clone() };
        let largest =
            self.configurations.iter().map(|c| c.estimate_peak_bytes_for(dims, spacing, &member_options)).max();
        let voxels: u64 = dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
        let held = (self.configurations.len() as u64 + 1)
            .saturating_mul(self.plan().num_outputs() as u64)
            .saturating_mul(voxels)
            .saturating_mul(4);
        largest.unwrap_or(0).saturating_add(held)
    }

    /// Predicts `volume`. `progress(stage, fraction)` is called at stage boundaries and after
    /// every network pass; returning `false` cancels and the call fails with [`ErrorKind::Cancelled`]. An
    /// ensemble runs its members in turn; each reports its stages with fractions of the whole.
    pub fn predict(
        &self,
        volume: &VolumeView<'_>,
        options: &PredictOptions,
        progress: &mut dyn FnMut(Stage, f64) -> bool,
    ) -> Result<Prediction> {
        let ticket = self.cancel_generation.load(Ordering::SeqCst);
        let cancelled = || self.cancel_generation.load(Ordering::SeqCst) != ticket;
        let mut checked_progress = |stage: Stage, fraction: f64| !cancelled() && progress(stage, fraction);
        let outcome = self.predict_checked(volume, options, &mut checked_progress);
        // An interrupted network run fails with ONNX Runtime's own error: the cancel is the cause.
        let outcome = outcome.map_err(|err| {
            if cancelled() {
                Error::new(ErrorKind::Cancelled, "cancelled by Model::cancel (nnrt_cancel)")
            } else {
                err
            }
        });
        match &outcome {
            Ok(p) => crate::log::emit(crate::log::Level::Info, || {
                let t = p.timings;
                format!(
                    "predicted {:?} voxels with {}: preprocess {:.0} ms, network {:.0} ms ({} passes), export {:.0} ms",
                    p.dims,
                    p.configurations.join(" + "),
                    t.preprocess.as_secs_f64() * 1e3,
                    t.network.as_secs_f64() * 1e3,
                    p.network_passes,
                    t.export.as_secs_f64() * 1e3
                )
            }),
            Err(err) => crate::log::emit(crate::log::Level::Info, || format!("prediction failed: {err}")),
        }
        outcome
    }

    fn predict_checked(
        &self,
        volume: &VolumeView<'_>,
        options: &PredictOptions,
        progress: &mut dyn FnMut(Stage, f64) -> bool,
    ) -> Result<Prediction> {
        options.validate()?;
        let needed = self.estimate_peak_bytes(volume, options);
        check_memory_limit(options, || needed)?;
        crate::memory::probe(needed, "this prediction's working set (its estimated peak)")?;
        let member_options = PredictOptions { memory_limit: None, ..options.clone() };
        let mut prediction = if self.configurations.len() == 1 {
            self.first().predict(volume, &member_options, progress)?
        } else {
            self.predict_ensemble(volume, &member_options, progress)?
        };
        if !self.postprocessing.is_empty() {
            let start = Instant::now();
            let (labels, dims) = (&mut prediction.labels, prediction.dims);
            prediction.postprocessing = self.pool.install(|| self.postprocessing.apply(labels, dims))?;
            prediction.timings.export += start.elapsed();
        }
        Ok(prediction)
    }

    fn predict_ensemble(
        &self,
        volume: &VolumeView<'_>,
        options: &PredictOptions,
        progress: &mut dyn FnMut(Stage, f64) -> bool,
    ) -> Result<Prediction> {
        let members = self.configurations.len();
        let member_options = PredictOptions { probabilities: true, ..options.clone() };
        let mut predictions = Vec::with_capacity(members);
        for (m, configuration) in self.configurations.iter().enumerate() {
            let mut member_progress =
                |stage: Stage, fraction: f64| progress(stage, (m as f64 + fraction) / members as f64);
            predictions.push(configuration.predict(volume, &member_options, &mut member_progress)?);
        }
        let start = Instant::now();
        let probabilities: Vec<Vec<f32>> =
            predictions.iter_mut().map(|p| p.probabilities.take().expect("members predict probabilities")).collect();
        let average = self.pool.install(|| ensemble::average_probabilities(&probabilities));
        drop(probabilities);
        let labels = self.pool.install(|| export::labels_from_probabilities(&average, self.plan()));
        let heads: Vec<&Classification> = predictions.iter().filter_map(|p| p.classification.as_ref()).collect();
        let classification = heads.first().map(|head| {
            let per_fold = heads
                .iter()
                .filter(|h| h.class_names == head.class_names)
                .flat_map(|h| h.per_fold.iter().cloned().zip(h.weighting.iter().cloned()))
                .collect();
            classify::combine_folds(head.class_names.clone(), per_fold, options.classification_policy)
        });
        let mut timings = predictions.iter().fold(Timings::default(), |t, p| t + p.timings);
        timings.export += start.elapsed();
        let first = &predictions[0];
        Ok(Prediction {
            labels,
            dims: first.dims,
            geometry: first.geometry,
            label_names: first.label_names.clone(),
            probabilities: options.probabilities.then_some(average),
            classification,
            timings,
            tiles: first.tiles,
            folds: first.folds.clone(),
            passes_per_tile: first.passes_per_tile,
            network_passes: predictions.iter().map(|p| p.network_passes).sum(),
            configurations: predictions.iter().flat_map(|p| p.configurations.iter().cloned()).collect(),
            postprocessing: Vec::new(),
        })
    }
}

/// The model's own pool: `threads` workers (`None`: one per core).
fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("nnunet-rt-{i}"));
    if let Some(threads) = threads {
        builder = builder.num_threads(threads);
    }
    builder.build().map_err(|e| Error::runtime(format!("cannot start the model's threads: {e}")))
}

/// The files of model folder `dir` for a bundle, named under `prefix`: see [`Model::write_bundle`].
fn bundle_files(dir: &Path, options: &LoadOptions, prefix: &str, files: &mut Vec<(String, PathBuf)>) -> Result<()> {
    let folder = ModelFolder::open(dir, options.folds.as_deref())?;
    for name in ["plans.json", "dataset.json", POSTPROCESSING_FILE] {
        if dir.join(name).is_file() {
            files.push((format!("{prefix}{name}"), dir.join(name)));
        }
    }
    for fold in &folder.folds {
        let metadata = format!("fold_{}/{}", fold.name, crate::folder::EXPORT_METADATA_FILE);
        files.push((format!("{prefix}{}", fold.onnx_name), fold.onnx_path.clone()));
        files.push((format!("{prefix}{metadata}"), dir.join(&metadata)));
    }
    if let Some(previous) = &folder.plan.previous_stage {
        let previous_dir = previous_stage_dir(dir, previous, options)?;
        let previous_options = LoadOptions { previous_stage_model: None, ..options.clone() };
        bundle_files(&previous_dir, &previous_options, &format!("{prefix}{}", bundle::PREVIOUS_STAGE_PREFIX), files)?;
    }
    Ok(())
}

/// Where a cascade stage's previous stage is: the explicit option, or nnU-Net's sibling folder.
fn previous_stage_dir(dir: &Path, previous_stage: &str, options: &LoadOptions) -> Result<PathBuf> {
    if let Some(explicit) = &options.previous_stage_model {
        return Ok(explicit.clone());
    }
    let canonical = dir.canonicalize().ok();
    let sibling = canonical.as_deref().and_then(|d| {
        let name = d.file_name()?.to_str()?;
        let (prefix, _) = name.rsplit_once("__")?;
        Some(d.parent()?.join(format!("{prefix}__{previous_stage}")))
    });
    match sibling {
        Some(path) if path.join("plans.json").is_file() => Ok(path),
        _ => Err(Error::invalid_model(format!(
            "{} is a cascade stage after {previous_stage:?}, whose model was not found{}; give its folder as the previous-stage model option",
            dir.display(),
            sibling.map(|p| format!(" at {}", p.display())).unwrap_or_default()
        ))),
    }
}

/// Refuses, before any work, a prediction whose estimated peak memory exceeds the options' limit.
fn check_memory_limit(options: &PredictOptions, estimate: impl FnOnce() -> u64) -> Result<()> {
    let Some(limit) = options.memory_limit else { return Ok(()) };
    let needed = estimate();
    if needed > limit {
        return Err(Error::new(
            ErrorKind::OutOfMemory,
            format!(
                "this prediction needs about {} MiB, more than the memory limit of {} MiB",
                needed >> 20,
                limit >> 20
            ),
        ));
    }
    Ok(())
}
