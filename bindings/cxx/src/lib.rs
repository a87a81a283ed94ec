//! The C++ binding of nnunet-rt, through [cxx](https://cxx.rs): `nnunet_rt::Model` in C++ is the
//! safe Rust [`nnunet_rt::Model`], with volumes passed as `rust::Slice<const T>` and results
//! returned as a plain struct.
//!
//! Built as a static library (`libnnunet_rt_cxx.a`) that holds this glue, the whole Rust
//! library and the C API of `nnunet_rt.h`: a C++ program links this one Rust static library
//! and nothing else of nnunet-rt. See `bindings/README.md` for the include paths and link line.
//!
//! Errors become C++ exceptions (`rust::Error`) whose message starts with the C status name,
//! e.g. `NNRT_SHAPE_MISMATCH: the model takes 2 channel(s)...`. Every call runs inside
//! `catch_unwind`, because cxx aborts the process on a Rust panic: a panic becomes an
//! `NNRT_PANIC` exception instead.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;

use nnunet_rt::{ClassificationPolicy, Device, ErrorKind, Labels, NetworkPrecision, Precision, VolumeView, VoxelData};

#[cxx::bridge(namespace = "nnunet_rt")]
mod ffi {
    /// Where a volume sits in the world, as ITK describes it.
    #[derive(Clone, Debug)]
    struct Geometry {
        /// Voxel size in mm along x, y, z; finite and > 0.
        spacing: [f64; 3],
        /// World position of the first voxel (mm).
        origin: [f64; 3],
        /// 3x3 direction cosines, row-major (ITK `GetDirection()`); orthonormal.
        direction: [f64; 9],
    }

    /// How a model is loaded. Start from `default_load_options()`.
    #[derive(Clone, Debug)]
    struct LoadOptions {
        /// Fold names ("0", "all"...) in the order their outputs are averaged; empty: every fold.
        folds: Vec<String>,
        /// Threads of the network (ONNX Runtime intra-op or OpenVINO inference threads); 0: one
        /// per core.
        threads: usize,
        /// "auto" (default: OpenVINO on the CPU when its plugin loads, else ONNX Runtime's CPU
        /// provider), "cpu", "openvino", "cuda" or "cuda:N".
        device: String,
        /// Network arithmetic: "f32" (default, nnU-Net's answer) or "bf16" (opt-in, OpenVINO on
        /// CPUs with AVX512_BF16/AMX; changes a few voxels).
        network_precision: String,
        /// On CUDA, allow TF32 tensor-core convolutions.
        tf32: bool,
        /// Path of libonnxruntime.so; empty: searched (next to the library, environment...).
        ort_library: String,
        /// Path of libonnxruntime_providers_openvino_plugin.so; empty: searched.
        openvino_library: String,
        /// OpenVINO: folder where compiled networks are cached; empty: none.
        openvino_cache_dir: String,
        /// A postprocessing.json applied instead of the folder's own; empty: the folder's.
        postprocessing_file: String,
        /// Apply no postprocessing, even when the folder provides one.
        skip_postprocessing: bool,
        /// A cascade's previous-stage model folder; empty: nnU-Net's sibling folder.
        previous_stage_model: String,
    }

    /// How a volume is predicted. Start from `default_predict_options()` (nnU-Net's defaults).
    #[derive(Clone, Debug)]
    struct PredictOptions {
        /// Sliding-window step as a fraction of the patch, in (0, 1].
        step_size: f64,
        /// Mirroring test-time augmentation.
        tta: bool,
        /// Also return per-label probabilities.
        probabilities: bool,
        /// "lesion-voxels" (default), "lesion-weighted" or "mean".
        classification_policy: String,
        /// Refuse, before any work, a prediction whose estimated peak memory exceeds this many
        /// bytes; 0: no limit.
        memory_limit: u64,
        /// Logit accumulation: "half" (nnU-Net's float16, the same answer) or "single".
        precision: String,
        /// Opt-in ROI focus: a cheap first pass finds the foreground and the full pass runs only
        /// the tiles near it (not nnU-Net's algorithm).
        roi_focus: bool,
    }

    /// Milliseconds per stage.
    #[derive(Clone, Debug)]
    struct Timings {
        preprocess_ms: f64,
        network_ms: f64,
        export_ms: f64,
    }

    /// A prediction, owned by the caller.
    #[derive(Clone, Debug)]
    struct Prediction {
        /// Label per voxel, same dims and memory order as the input (x fastest), when the model
        /// has at most 256 labels (as nnU-Net writes uint8); empty otherwise.
        labels_u8: Vec<u8>,
        /// The same for models with more than 256 labels; empty otherwise.
        labels_u16: Vec<u16>,
        /// (x, y, z) of the label map.
        dims: [usize; 3],
        /// Label names, by value.
        label_names: Vec<String>,
        /// Softmax probabilities, label after label, each in the input's order; empty unless
        /// requested.
        probabilities: Vec<f32>,
        /// Classes of the classification head; empty when the model has none.
        class_names: Vec<String>,
        /// Case-level class probabilities (fold-averaged); empty without a head.
        class_probabilities: Vec<f64>,
        /// Index of the predicted class (first maximum); 0 without a head.
        predicted_class: usize,
        timings: Timings,
        /// Folds used, in order.
        folds: Vec<String>,
        tiles_per_fold: usize,
        passes_per_tile: usize,
    }

    unsafe extern "C++" {
        include!("nnunet_rt_cxx/support.h");

        /// Progress receiver implemented in C++ (see support.h).
        type Progress;

        /// Returns false to cancel.
        fn report(self: Pin<&mut Progress>, stage: &str, fraction: f64) -> Result<bool>;
    }

    extern "Rust" {
        /// A loaded model: one ONNX Runtime session per fold. May be shared by threads;
        /// predictions on one model run one at a time.
        type Model;

        /// Every fold, device "auto", network "f32", the provider's thread count, libraries searched.
        fn default_load_options() -> LoadOptions;
        /// nnU-Net's defaults: step 0.5, mirroring on, no probabilities, lesion-voxels.
        fn default_predict_options() -> PredictOptions;
        /// Identity direction and zero origin with the given spacing (x, y, z).
        fn geometry_with_spacing(spacing: [f64; 3]) -> Geometry;
        /// "nnunet-rt/<version> ..." of the library.
        fn version() -> String;

        /// Loads an nnU-Net model folder (plans.json, dataset.json, fold_N/model.onnx).
        #[Self = "Model"]
        fn load(dir: &str, options: &LoadOptions) -> Result<Box<Model>>;
        /// Loads a model bundle (`nnunet-rt bundle`) from memory, never touching the disk.
        #[Self = "Model"]
        fn load_bundle(bytes: &[u8], options: &LoadOptions) -> Result<Box<Model>>;
        /// Cancels the predictions running on this model, from any thread (they throw).
        fn cancel(self: &Model);
        /// Estimated peak memory (bytes) of predicting a volume of `dims` (x, y, z) at `spacing`.
        fn estimate_peak_bytes(
            self: &Model,
            dims: [usize; 3],
            spacing: [f64; 3],
            options: &PredictOptions,
        ) -> Result<u64>;
        /// Input channel names (dataset.json), in the order channels are read.
        fn channel_names(self: &Model) -> Vec<String>;

        fn num_channels(self: &Model) -> usize;
        fn label_names(self: &Model) -> Vec<String>;
        fn class_names(self: &Model) -> Vec<String>;
        fn fold_names(self: &Model) -> Vec<String>;
        /// What the network runs on, as JSON (device after `auto`, execution provider,
        /// network precision, ONNX Runtime and OpenVINO versions and paths).
        fn runtime_info(self: &Model) -> String;
        /// Target spacing (mm) along x, y, z.
        fn spacing(self: &Model) -> [f64; 3];
        /// Patch size (voxels) along x, y, z.
        fn patch_size(self: &Model) -> [usize; 3];

        /// Predicts `channels` blocks of `dims[0] * dims[1] * dims[2]` voxels (x fastest).
        #[cxx_name = "predict"]
        fn predict_u8(
            self: &Model,
            voxels: &[u8],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_i8(
            self: &Model,
            voxels: &[i8],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_u16(
            self: &Model,
            voxels: &[u16],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_i16(
            self: &Model,
            voxels: &[i16],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_u32(
            self: &Model,
            voxels: &[u32],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_i32(
            self: &Model,
            voxels: &[i32],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_f32(
            self: &Model,
            voxels: &[f32],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
        #[cxx_name = "predict"]
        fn predict_f64(
            self: &Model,
            voxels: &[f64],
            dims: [usize; 3],
            channels: usize,
            geometry: &Geometry,
            options: &PredictOptions,
            progress: Pin<&mut Progress>,
        ) -> Result<Prediction>;
    }
}

pub use ffi::{Geometry, LoadOptions, PredictOptions, Prediction, Timings};

/// The error C++ receives: its message starts with the C status name.
#[derive(Debug)]
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

impl Failure {
    fn new(kind: ErrorKind, message: impl fmt::Display) -> Failure {
        Failure(format!("{}: {message}", status_name(kind)))
    }
}

impl From<nnunet_rt::Error> for Failure {
    fn from(err: nnunet_rt::Error) -> Failure {
        Failure::new(err.kind(), err.message())
    }
}

/// The `NNRT_*` name of the C status an error kind maps to (the C ABI's own table).
pub fn status_name(kind: ErrorKind) -> &'static str {
    nnunet_rt::ffi::status_name(kind)
}

/// Runs `body`, turning a panic into an `NNRT_PANIC` error (cxx would abort on it).
fn guarded<T>(body: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(Failure::new(ErrorKind::Panic, format!("internal error (panic): {text}")))
    })
}

/// A loaded model (opaque to C++).
pub struct Model(nnunet_rt::Model);

fn default_load_options() -> LoadOptions {
    let d = nnunet_rt::LoadOptions::default();
    let path = |p: Option<std::path::PathBuf>| p.map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    LoadOptions {
        folds: Vec::new(),
        threads: d.intra_threads.unwrap_or(0),
        device: d.device.to_string(),
        network_precision: d.network_precision.to_string(),
        tf32: d.allow_tf32,
        ort_library: path(d.ort_library),
        openvino_library: path(d.openvino_library),
        openvino_cache_dir: path(d.openvino_cache_dir),
        postprocessing_file: path(d.postprocessing_file),
        skip_postprocessing: d.skip_postprocessing,
        previous_stage_model: path(d.previous_stage_model),
    }
}

fn default_predict_options() -> PredictOptions {
    let d = nnunet_rt::PredictOptions::default();
    PredictOptions {
        step_size: d.step_size,
        tta: d.mirroring,
        probabilities: d.probabilities,
        classification_policy: d.classification_policy.to_string(),
        memory_limit: d.memory_limit.unwrap_or(0),
        precision: precision_name(d.precision).to_string(),
        roi_focus: d.roi_focus,
    }
}

fn geometry_with_spacing(spacing: [f64; 3]) -> Geometry {
    let g = nnunet_rt::Geometry::with_spacing(spacing);
    Geometry { spacing: g.spacing, origin: g.origin, direction: g.direction }
}

fn version() -> String {
    // SAFETY: nnrt_version returns a static NUL-terminated string.
    let text = unsafe { std::ffi::CStr::from_ptr(nnunet_rt::ffi::nnrt_version()) };
    format!("{} cxx/1.0.205", text.to_string_lossy())
}

fn precision_name(precision: Precision) -> &'static str {
    precision.name()
}

impl LoadOptions {
    fn to_rust(&self) -> Result<nnunet_rt::LoadOptions, Failure> {
        let path = |p: &String| (!p.is_empty()).then(|| p.into());
        Ok(nnunet_rt::LoadOptions {
            folds: (!self.folds.is_empty()).then(|| self.folds.clone()),
            // The library's own names: the same vocabulary as the CLI and the C ABI.
            device: if self.device.is_empty() { Device::default() } else { self.device.parse()? },
            network_precision: if self.network_precision.is_empty() {
                NetworkPrecision::default()
            } else {
                self.network_precision.parse()?
            },
            intra_threads: (self.threads > 0).then_some(self.threads),
            allow_tf32: self.tf32,
            ort_library: path(&self.ort_library),
            openvino_library: path(&self.openvino_library),
            openvino_cache_dir: path(&self.openvino_cache_dir),
            postprocessing_file: path(&self.postprocessing_file),
            skip_postprocessing: self.skip_postprocessing,
            previous_stage_model: path(&self.previous_stage_model),
        })
    }
}

impl PredictOptions {
    fn to_rust(&self) -> Result<nnunet_rt::PredictOptions, Failure> {
        let classification_policy = match self.classification_policy.as_str() {
            "" => ClassificationPolicy::default(),
            name => name.parse()?,
        };
        let precision = match self.precision.as_str() {
            "" => Precision::default(),
            name => name.parse()?,
        };
        nnunet_rt::window::tiles::check_step_size(self.step_size)?;
        Ok(nnunet_rt::PredictOptions {
            step_size: self.step_size,
            mirroring: self.tta,
            probabilities: self.probabilities,
            classification_policy,
            precision,
            memory_limit: (self.memory_limit > 0).then_some(self.memory_limit),
            roi_focus: self.roi_focus,
        })
    }
}

impl Model {
    fn load(dir: &str, options: &LoadOptions) -> Result<Box<Model>, Failure> {
        guarded(|| Ok(Box::new(Model(nnunet_rt::Model::load(dir, &options.to_rust()?)?))))
    }

    fn load_bundle(bytes: &[u8], options: &LoadOptions) -> Result<Box<Model>, Failure> {
        guarded(|| Ok(Box::new(Model(nnunet_rt::Model::load_bundle(bytes, &options.to_rust()?)?))))
    }

    fn cancel(&self) {
        self.0.cancel()
    }

    fn estimate_peak_bytes(
        &self,
        dims: [usize; 3],
        spacing: [f64; 3],
        options: &PredictOptions,
    ) -> Result<u64, Failure> {
        guarded(|| Ok(self.0.estimate_peak_bytes_for(dims, spacing, &options.to_rust()?)))
    }

    fn channel_names(&self) -> Vec<String> {
        self.0.plan().channel_names.clone()
    }

    fn num_channels(&self) -> usize {
        self.0.plan().channel_names.len()
    }

    fn label_names(&self) -> Vec<String> {
        self.0.plan().labels.iter().map(|l| l.name.clone()).collect()
    }

    fn class_names(&self) -> Vec<String> {
        self.0.folder().classification.as_ref().map(|c| c.class_names.clone()).unwrap_or_default()
    }

    fn fold_names(&self) -> Vec<String> {
        self.0.fold_names()
    }

    fn runtime_info(&self) -> String {
        serde_json::to_string(&self.0.runtime_info()).unwrap_or_else(|_| "null".into())
    }

    fn spacing(&self) -> [f64; 3] {
        self.0.plan().to_caller_axes(self.0.plan().spacing)
    }

    fn patch_size(&self) -> [usize; 3] {
        self.0.plan().to_caller_axes(self.0.plan().patch_size)
    }

    fn predict(
        &self,
        voxels: VoxelData<'_>,
        dims: [usize; 3],
        channels: usize,
        geometry: &Geometry,
        options: &PredictOptions,
        mut progress: Pin<&mut ffi::Progress>,
    ) -> Result<Prediction, Failure> {
        guarded(|| {
            let geometry = nnunet_rt::Geometry {
                spacing: geometry.spacing,
                origin: geometry.origin,
                direction: geometry.direction,
            };
            let view = VolumeView::new(voxels, dims, channels, geometry)?;
            let options = options.to_rust()?;
            let mut thrown = None;
            let result = self.0.predict(&view, &options, &mut |stage, fraction| match progress
                .as_mut()
                .report(stage.name(), fraction)
            {
                Ok(go_on) => go_on,
                Err(exception) => {
                    thrown = Some(exception.what().to_string());
                    false
                }
            });
            if let Some(what) = thrown {
                return Err(Failure::new(ErrorKind::Cancelled, format!("the progress callback threw: {what}")));
            }
            Ok(prediction(result?))
        })
    }
}

/// Generates the typed `predict_*` entry points of the bridge.
macro_rules! typed_predict {
    ($($name:ident: $t:ty => $variant:ident),* $(,)?) => {
        impl Model {
            $(
                fn $name(
                    &self,
                    voxels: &[$t],
                    dims: [usize; 3],
                    channels: usize,
                    geometry: &Geometry,
                    options: &PredictOptions,
                    progress: Pin<&mut ffi::Progress>,
                ) -> Result<Prediction, Failure> {
                    self.predict(VoxelData::$variant(voxels), dims, channels, geometry, options, progress)
                }
            )*
        }
    };
}

typed_predict! {
    predict_u8: u8 => U8,
    predict_i8: i8 => I8,
    predict_u16: u16 => U16,
    predict_i16: i16 => I16,
    predict_u32: u32 => U32,
    predict_i32: i32 => I32,
    predict_f32: f32 => F32,
    predict_f64: f64 => F64,
}

fn prediction(mut p: nnunet_rt::Prediction) -> Prediction {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let (class_names, class_probabilities, predicted_class) = match p.classification {
        Some(c) => (c.class_names, c.probabilities, c.predicted),
        None => (Vec::new(), Vec::new(), 0),
    };
    Prediction {
        // Moved, not widened: the map keeps the type the library chose.
        labels_u8: match &mut p.labels {
            Labels::U8(v) => std::mem::take(v),
            Labels::U16(_) => Vec::new(),
        },
        labels_u16: match &mut p.labels {
            Labels::U16(v) => std::mem::take(v),
            Labels::U8(_) => Vec::new(),
        },
        dims: p.dims,
        label_names: p.label_names,
        probabilities: p.probabilities.unwrap_or_default(),
        class_names,
        class_probabilities,
        predicted_class,
        timings: Timings {
            preprocess_ms: ms(p.timings.preprocess),
            network_ms: ms(p.timings.network),
            export_ms: ms(p.timings.export),
        },
        folds: p.folds,
        tiles_per_fold: p.tiles,
        passes_per_tile: p.passes_per_tile,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_start_with_the_c_status_name() {
        let err = Model::load("/nonexistent/model", &default_load_options()).err().expect("no such folder");
        assert!(err.to_string().starts_with("NNRT_IO: "), "{err}");
        let bad = LoadOptions { device: "gpu".into(), ..default_load_options() };
        assert!(bad.to_rust().unwrap_err().to_string().starts_with("NNRT_INVALID_ARGUMENT: device \"gpu\""));
        let bad = PredictOptions { step_size: 0.0, ..default_predict_options() };
        assert!(bad.to_rust().unwrap_err().to_string().starts_with("NNRT_INVALID_ARGUMENT: step size 0"));
        let bad = PredictOptions { classification_policy: "max".into(), ..default_predict_options() };
        assert!(bad.to_rust().is_err());
        let bad = PredictOptions { precision: "double".into(), ..default_predict_options() };
        assert!(bad.to_rust().unwrap_err().to_string().starts_with("NNRT_INVALID_ARGUMENT: precision"));
    }

    #[test]
    fn panics_become_errors() {
        let err = guarded::<()>(|| panic!("boom")).unwrap_err();
        assert_eq!(err.to_string(), "NNRT_PANIC: internal error (panic): boom");
    }

    #[test]
    fn options_convert_both_ways() {
        let defaults = default_predict_options().to_rust().unwrap();
        let rust = nnunet_rt::PredictOptions::default();
        assert_eq!(
            (defaults.step_size, defaults.mirroring, defaults.probabilities),
            (rust.step_size, rust.mirroring, rust.probabilities)
        );
        assert_eq!(defaults.classification_policy, rust.classification_policy);
        assert_eq!((defaults.precision, defaults.memory_limit), (rust.precision, rust.memory_limit));
        let defaults = default_load_options();
        assert_eq!((defaults.device.as_str(), defaults.network_precision.as_str()), ("auto", "f32"));
        let load = LoadOptions {
            folds: vec!["0".into()],
            threads: 3,
            device: "cuda:1".into(),
            tf32: true,
            ort_library: "/x.so".into(),
            openvino_library: "/ov.so".into(),
            postprocessing_file: "/pp.json".into(),
            skip_postprocessing: true,
            previous_stage_model: "/lowres".into(),
            ..defaults
        };
        let load = load.to_rust().unwrap();
        assert_eq!(load.postprocessing_file.as_deref(), Some(std::path::Path::new("/pp.json")));
        assert_eq!(load.previous_stage_model.as_deref(), Some(std::path::Path::new("/lowres")));
        assert!(load.skip_postprocessing);
        assert_eq!(load.folds, Some(vec!["0".to_string()]));
        assert_eq!((load.intra_threads, load.device, load.allow_tf32), (Some(3), Device::Cuda(1), true));
        assert_eq!(load.ort_library.as_deref(), Some(std::path::Path::new("/x.so")));
        assert_eq!(load.openvino_library.as_deref(), Some(std::path::Path::new("/ov.so")));
        let openvino_bf16 =
            LoadOptions { device: "openvino".into(), network_precision: "bf16".into(), ..default_load_options() };
        let openvino_bf16 = openvino_bf16.to_rust().unwrap();
        assert_eq!((openvino_bf16.device, openvino_bf16.network_precision), (Device::OpenVino, NetworkPrecision::Bf16));
        let bad = LoadOptions { device: "cuda:-1".into(), ..default_load_options() };
        assert_eq!(bad.to_rust().unwrap_err().to_string().split(':').next(), Some("NNRT_INVALID_ARGUMENT"));
        let bad = LoadOptions { network_precision: "fp16".into(), ..default_load_options() };
        assert!(bad.to_rust().unwrap_err().to_string().starts_with("NNRT_INVALID_ARGUMENT: network precision"));
        assert!(version().starts_with("nnunet-rt/"));
    }
}
