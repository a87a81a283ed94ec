//! `nnrt_options` (how a model is loaded) and `nnrt_predict_options` (how a volume is predicted).

use std::ffi::{c_char, c_void};
use std::path::PathBuf;

use super::boundary::{call, check_not_null, create, modify, release, str_arg};
use super::status::*;
use crate::{ClassificationPolicy, Device, LoadOptions, NetworkPrecision, PredictOptions};

/// Load options (opaque). Create with `nnrt_options_new`, free with `nnrt_options_free`.
/// Not thread-safe: do not modify one from two threads at once.
pub struct nnrt_options {
    pub(crate) inner: LoadOptions,
}

/// ONNX Runtime's own CPU provider, float32.
pub const NNRT_DEVICE_CPU: u32 = 0;
/// A CUDA GPU (needs a build with the `cuda` feature and the CUDA ONNX Runtime).
pub const NNRT_DEVICE_CUDA: u32 = 1;
/// OpenVINO on the CPU (its plugin must load: an error otherwise).
pub const NNRT_DEVICE_OPENVINO: u32 = 2;
/// The default: OpenVINO on the CPU when its plugin loads, else ONNX Runtime's CPU provider;
/// float32 either way unless bf16 is asked for. `nnrt_model_runtime_info` says which ran.
pub const NNRT_DEVICE_AUTO: u32 = 3;

/// Network arithmetic float32: nnU-Net's answer up to float noise (default).
pub const NNRT_NETWORK_PRECISION_F32: u32 = 0;
/// Network arithmetic bfloat16 (opt-in; OpenVINO on CPUs with AVX512_BF16 or AMX): several times
/// faster, changes a few voxels (per-label Dice >= 0.99 on the fixtures).
pub const NNRT_NETWORK_PRECISION_BF16: u32 = 1;

/// Creates load options with the defaults: every exported fold, device auto, float32 network,
/// the provider's thread count, libraries searched.
///
/// Ownership: `*out` is owned by the caller; free it with `nnrt_options_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_options_new(out: *mut *mut nnrt_options) -> nnrt_status {
    create(out, || Ok(nnrt_options { inner: LoadOptions::default() }))
}

/// Frees load options. NULL is a no-op. Freeing twice is undefined behaviour.
#[no_mangle]
pub extern "C" fn nnrt_options_free(options: *mut nnrt_options) {
    release(options)
}

/// Applies `f` to the options behind a checked pointer.
fn with_options(options: *mut nnrt_options, f: impl FnOnce(&mut LoadOptions) -> crate::Result<()>) -> nnrt_status {
    modify(options, "options", |o| f(&mut o.inner))
}

/// Sets one option of `options` (load or predict options) from a name the library parses with
/// the command line's vocabulary, for bindings that speak names rather than codes.
fn set_named<O, T: std::str::FromStr<Err = crate::Error>>(
    options: *mut O,
    name: *const c_char,
    apply: impl FnOnce(&mut O, T),
) -> nnrt_status {
    call(|| {
        check_not_null!(options, name);
        // SAFETY: non-NULL and a NUL-terminated string per the contract.
        let value = unsafe { str_arg(name, "name") }.and_then(str::parse)?;
        // SAFETY: non-NULL, created by its `_new`, not used concurrently per the contract.
        apply(unsafe { &mut *options }, value);
        Ok(())
    })
}

/// Selects the device by name, as the command line does: `auto`, `cpu`, `openvino`, `cuda` or
/// `cuda:N`. Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (an unknown name;
/// the message lists the known ones).
#[no_mangle]
pub extern "C" fn nnrt_options_set_device_name(options: *mut nnrt_options, name: *const c_char) -> nnrt_status {
    set_named(options, name, |o: &mut nnrt_options, device| o.inner.device = device)
}

/// Selects the network precision by name: `f32` or `bf16`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_options_set_network_precision_name(
    options: *mut nnrt_options,
    name: *const c_char,
) -> nnrt_status {
    set_named(options, name, |o: &mut nnrt_options, precision| o.inner.network_precision = precision)
}

/// Selects the device: `NNRT_DEVICE_AUTO` (default), `NNRT_DEVICE_CPU`, `NNRT_DEVICE_OPENVINO`,
/// or `NNRT_DEVICE_CUDA` with a GPU index `device_id >= 0` (ignored for the others).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (unknown device or id).
#[no_mangle]
pub extern "C" fn nnrt_options_set_device(options: *mut nnrt_options, device: u32, device_id: i32) -> nnrt_status {
    with_options(options, |o| {
        o.device = match (device, device_id) {
            (NNRT_DEVICE_AUTO, _) => Device::Auto,
            (NNRT_DEVICE_CPU, _) => Device::Cpu,
            (NNRT_DEVICE_OPENVINO, _) => Device::OpenVino,
            (NNRT_DEVICE_CUDA, id) if id >= 0 => Device::Cuda(id),
            _ => return Err(invalid(format!("device {device} with id {device_id} is not valid (NNRT_DEVICE_AUTO, NNRT_DEVICE_CPU, NNRT_DEVICE_OPENVINO, or NNRT_DEVICE_CUDA with an id >= 0)"))),
        };
        Ok(())
    })
}

/// Selects the network's arithmetic: `NNRT_NETWORK_PRECISION_F32` (default) or the opt-in
/// `NNRT_NETWORK_PRECISION_BF16`. Whether bf16 can be honoured is checked by `nnrt_model_load`
/// (OpenVINO only, on a CPU with native bfloat16: `NNRT_INVALID_ARGUMENT` otherwise).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (unknown code).
#[no_mangle]
pub extern "C" fn nnrt_options_set_network_precision(options: *mut nnrt_options, precision: u32) -> nnrt_status {
    with_options(options, |o| {
        o.network_precision = match precision {
            NNRT_NETWORK_PRECISION_F32 => NetworkPrecision::F32,
            NNRT_NETWORK_PRECISION_BF16 => NetworkPrecision::Bf16,
            other => {
                return Err(invalid(format!(
                    "network precision {other} is not NNRT_NETWORK_PRECISION_F32 or NNRT_NETWORK_PRECISION_BF16"
                )))
            }
        };
        Ok(())
    })
}

/// Sets the network's thread count (ONNX Runtime intra-op or OpenVINO inference threads); 0
/// restores the default (one per core).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_options_set_threads(options: *mut nnrt_options, threads: u32) -> nnrt_status {
    with_options(options, |o| {
        o.intra_threads = (threads > 0).then_some(threads as usize);
        Ok(())
    })
}

/// On CUDA, allow (nonzero) or forbid (0, default) TF32 tensor-core convolutions: faster, with
/// about 10 mantissa bits in the products. No effect on the CPU.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_options_set_tf32(options: *mut nnrt_options, enabled: i32) -> nnrt_status {
    with_options(options, |o| {
        o.allow_tf32 = enabled != 0;
        Ok(())
    })
}

/// Selects folds by name (`"0"`, `"all"`...) in the order their logits are averaged; `count` 0
/// restores "every exported fold". The strings are copied.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_folds(
    options: *mut nnrt_options,
    folds: *const *const c_char,
    count: usize,
) -> nnrt_status {
    call(|| {
        check_not_null!(options);
        if count > 0 {
            check_not_null!(folds);
        }
        let mut names = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `folds` is non-NULL and points to `count` string pointers, per the contract.
            let fold = unsafe { *folds.add(i) };
            check_not_null!(fold);
            // SAFETY: non-NULL NUL-terminated string per the contract.
            names.push(unsafe { str_arg(fold, "folds[i]") }?.to_string());
        }
        // SAFETY: non-NULL, created by `nnrt_options_new`.
        let options = unsafe { &mut *options };
        options.inner.folds = (count > 0).then_some(names);
        Ok(())
    })
}

/// Sets one optional path of the options from a C string (copied); NULL sets `None`.
fn set_path(
    options: *mut nnrt_options,
    path: *const c_char,
    field: fn(&mut LoadOptions) -> &mut Option<PathBuf>,
) -> nnrt_status {
    call(|| {
        check_not_null!(options);
        let path = if path.is_null() {
            None
        } else {
            // SAFETY: non-NULL NUL-terminated string per the contract.
            Some(PathBuf::from(unsafe { str_arg(path, "path") }?))
        };
        // SAFETY: non-NULL, created by `nnrt_options_new`, not used concurrently per the contract.
        *field(unsafe { &mut (*options).inner }) = path;
        Ok(())
    })
}

/// Sets the path of `libonnxruntime.so` to load (copied); NULL restores the search
/// (`NNUNET_RT_ORT_LIB`, `ORT_DYLIB_PATH`, next to this library, the fetched copy).
/// The runtime is loaded once per process: this matters only for the first model loaded.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_ort_library(options: *mut nnrt_options, path: *const c_char) -> nnrt_status {
    set_path(options, path, |o| &mut o.ort_library)
}

/// Sets the path of `libonnxruntime_providers_openvino_plugin.so` (copied; its OpenVINO and TBB
/// libraries beside it); NULL restores the search (`NNUNET_RT_OPENVINO_LIB`, next to this library
/// or ONNX Runtime, the fetched copy). A path that does not load makes `nnrt_model_load` fail
/// rather than run elsewhere. The plugin is registered once per process.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_openvino_library(options: *mut nnrt_options, path: *const c_char) -> nnrt_status {
    set_path(options, path, |o| &mut o.openvino_library)
}

/// OpenVINO only: a folder (copied path) where compiled networks are cached so later loads of
/// the same model skip compilation; NULL (default) caches nothing.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_openvino_cache_dir(options: *mut nnrt_options, path: *const c_char) -> nnrt_status {
    set_path(options, path, |o| &mut o.openvino_cache_dir)
}

/// Sets a `postprocessing.json` (nnU-Net's `determine_postprocessing` output; copied path) to
/// apply after every prediction instead of the one the model folder provides; NULL (default)
/// uses the folder's own: `postprocessing.json` in a model folder, or the one a results folder's
/// `inference_information.json` selects. A file that cannot be read or names an unknown step makes
/// `nnrt_model_load` fail.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_postprocessing_file(options: *mut nnrt_options, path: *const c_char) -> nnrt_status {
    set_path(options, path, |o| &mut o.postprocessing_file)
}

/// Sets a cascade stage's previous-stage model folder (copied path), e.g. the `3d_lowres` folder
/// of a `3d_cascade_fullres` model; NULL (default) uses nnU-Net's sibling folder
/// `<trainer>__<plans>__<previous_stage>`. Ignored for models that are not a cascade stage.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (invalid UTF-8).
#[no_mangle]
pub extern "C" fn nnrt_options_set_previous_stage_model(
    options: *mut nnrt_options,
    path: *const c_char,
) -> nnrt_status {
    set_path(options, path, |o| &mut o.previous_stage_model)
}

/// Nonzero: apply no postprocessing, even when the model folder provides one; 0 (default): apply it.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_options_set_skip_postprocessing(options: *mut nnrt_options, skip: i32) -> nnrt_status {
    with_options(options, |o| {
        o.skip_postprocessing = skip != 0;
        Ok(())
    })
}

/// Prediction options (opaque). Create with `nnrt_predict_options_new`, free with
/// `nnrt_predict_options_free`. May be shared read-only by concurrent predictions.
pub struct nnrt_predict_options {
    pub(crate) inner: PredictOptions,
    pub(crate) progress: nnrt_progress_fn,
    pub(crate) user_data: *mut c_void,
}

/// Progress callback: `stage` is one of `NNRT_STAGE_*`, `fraction` in [0, 1] within the stage.
/// Return 0 to continue, nonzero to cancel (the call then returns `NNRT_CANCELLED` before the next
/// network pass starts).
/// Called on the thread that called `nnrt_predict`.
/// May be NULL where a parameter of this type is accepted.
pub type nnrt_progress_fn = Option<extern "C" fn(stage: u32, fraction: f64, user_data: *mut c_void) -> i32>;

/// Preprocessing stage.
pub const NNRT_STAGE_PREPROCESS: u32 = 0;
/// Network stage (reported after every network pass).
pub const NNRT_STAGE_NETWORK: u32 = 1;
/// Export stage.
pub const NNRT_STAGE_EXPORT: u32 = 2;

/// Tiles weighted by the soft (probability-summed) volume of the evidence (lesion) labels.
pub const NNRT_CLASSIFICATION_LESION_WEIGHTED: u32 = 0;
/// Unweighted mean over tiles.
pub const NNRT_CLASSIFICATION_MEAN: u32 = 1;
/// Tiles weighted by the number of voxels they label as the evidence (lesion) labels; without
/// any, by their foreground voxels, then uniformly (default).
pub const NNRT_CLASSIFICATION_LESION_VOXELS: u32 = 2;

/// Creates prediction options with nnU-Net's defaults: step 0.5, mirroring on, no probabilities,
/// lesion-voxels classification, no progress callback.
///
/// Ownership: `*out` is owned by the caller; free with `nnrt_predict_options_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_new(out: *mut *mut nnrt_predict_options) -> nnrt_status {
    create(out, || {
        Ok(nnrt_predict_options { inner: PredictOptions::default(), progress: None, user_data: std::ptr::null_mut() })
    })
}

/// Frees prediction options. NULL is a no-op. Freeing twice is undefined behaviour.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_free(options: *mut nnrt_predict_options) {
    release(options)
}

fn with_predict_options(
    options: *mut nnrt_predict_options,
    f: impl FnOnce(&mut nnrt_predict_options) -> crate::Result<()>,
) -> nnrt_status {
    modify(options, "options", f)
}

fn invalid(message: String) -> crate::Error {
    crate::Error::new(crate::ErrorKind::InvalidArgument, message)
}

/// Sliding-window step as a fraction of the patch, in (0, 1].
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_step_size(
    options: *mut nnrt_predict_options,
    step_size: f64,
) -> nnrt_status {
    with_predict_options(options, |o| {
        crate::window::tiles::check_step_size(step_size)?;
        o.inner.step_size = step_size;
        Ok(())
    })
}

/// Mirroring test-time augmentation on (nonzero, default) or off (0).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_tta(options: *mut nnrt_predict_options, enabled: i32) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.mirroring = enabled != 0;
        Ok(())
    })
}

/// Also compute per-class probabilities (nonzero) or not (0, default).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_probabilities(
    options: *mut nnrt_predict_options,
    enabled: i32,
) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.probabilities = enabled != 0;
        Ok(())
    })
}

/// Classification policy: `NNRT_CLASSIFICATION_LESION_VOXELS` (default),
/// `NNRT_CLASSIFICATION_LESION_WEIGHTED` or `NNRT_CLASSIFICATION_MEAN`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_classification_policy(
    options: *mut nnrt_predict_options,
    policy: u32,
) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.classification_policy = match policy {
            NNRT_CLASSIFICATION_LESION_WEIGHTED => ClassificationPolicy::LesionWeighted,
            NNRT_CLASSIFICATION_MEAN => ClassificationPolicy::Mean,
            NNRT_CLASSIFICATION_LESION_VOXELS => ClassificationPolicy::LesionVoxels,
            other => return Err(invalid(format!("classification policy {other} is unknown"))),
        };
        Ok(())
    })
}

/// Selects the classification policy by name: `lesion-voxels`, `lesion-weighted` or `mean`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_classification_policy_name(
    options: *mut nnrt_predict_options,
    name: *const c_char,
) -> nnrt_status {
    set_named(options, name, |o: &mut nnrt_predict_options, policy| o.inner.classification_policy = policy)
}

/// Logit accumulation in float16, rounded like nnU-Net (default: the same answer).
pub const NNRT_PRECISION_HALF: u32 = 0;
/// Logit accumulation in float32 (more accurate; may differ from nnU-Net at near-ties).
pub const NNRT_PRECISION_SINGLE: u32 = 1;

/// Logit accumulation precision: `NNRT_PRECISION_HALF` (default) or `NNRT_PRECISION_SINGLE`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_precision(
    options: *mut nnrt_predict_options,
    precision: u32,
) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.precision = match precision {
            NNRT_PRECISION_HALF => crate::Precision::Half,
            NNRT_PRECISION_SINGLE => crate::Precision::Single,
            other => {
                return Err(invalid(format!(
                    "precision {other} is unknown (NNRT_PRECISION_HALF or NNRT_PRECISION_SINGLE)"
                )))
            }
        };
        Ok(())
    })
}

/// Selects the logit accumulation precision by name: `half` (nnU-Net's, default) or `single`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_precision_name(
    options: *mut nnrt_predict_options,
    name: *const c_char,
) -> nnrt_status {
    set_named(options, name, |o: &mut nnrt_predict_options, precision| o.inner.precision = precision)
}

/// Refuse, before any work and with `NNRT_OUT_OF_MEMORY`, a prediction whose estimated peak
/// memory exceeds `bytes`; 0 removes the limit (default).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_memory_limit(options: *mut nnrt_predict_options, bytes: u64) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.memory_limit = (bytes > 0).then_some(bytes);
        Ok(())
    })
}

/// Opt-in ROI focus when `enabled` is nonzero (default 0): a cheap first pass (first fold, no
/// mirroring, adjacent tiles) finds the foreground and the full pass runs only the tiles near it.
/// Faster on cases with little foreground; not nnU-Net's algorithm (see BENCHMARKS.md).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_roi_focus(options: *mut nnrt_predict_options, enabled: i32) -> nnrt_status {
    with_predict_options(options, |o| {
        o.inner.roi_focus = enabled != 0;
        Ok(())
    })
}

/// Installs a progress callback (NULL removes it). `user_data` is passed back untouched and
/// never dereferenced by the library.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT` (options).
#[no_mangle]
pub extern "C" fn nnrt_predict_options_set_progress(
    options: *mut nnrt_predict_options,
    callback: nnrt_progress_fn,
    user_data: *mut c_void,
) -> nnrt_status {
    with_predict_options(options, |o| {
        o.progress = callback;
        o.user_data = user_data;
        Ok(())
    })
}
