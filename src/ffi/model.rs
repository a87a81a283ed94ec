//! `nnrt_model`: loading, introspection, prediction, cancellation.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::boundary::{call, check_not_null, create, query, str_arg};
use super::options::{
    nnrt_options, nnrt_predict_options, NNRT_STAGE_EXPORT, NNRT_STAGE_NETWORK, NNRT_STAGE_PREPROCESS,
};
use super::result::{c_string, indexed, nnrt_result};
use super::status::*;
use super::volume::nnrt_volume;
use crate::error::{Error, ErrorKind};
use crate::{LoadOptions, Model, PredictOptions, Stage};

/// Borrows a checked model pointer.
macro_rules! model_ref {
    ($model:ident) => {{
        check_not_null!($model);
        // SAFETY: non-NULL and, per the contract, a live model from `nnrt_model_load`.
        unsafe { &*$model }
    }};
}

/// A loaded model (opaque). Load with `nnrt_model_load` or `nnrt_model_load_from_memory`, free
/// with `nnrt_model_free`.
///
/// Thread safety: a model may be shared by any number of threads. Introspection runs
/// concurrently; `nnrt_predict` calls on one model are serialised (one at a time, in no
/// particular order). For parallel predictions load one model per thread. `nnrt_cancel` may be
/// called from any thread.
pub struct nnrt_model {
    pub(crate) model: Model,
    poisoned: AtomicBool,
    /// Predictions running now; `nnrt_model_free` waits for 0.
    running: Mutex<usize>,
    idle: Condvar,
    label_names: Vec<CString>,
    class_names: Vec<CString>,
    channel_names: Vec<CString>,
    fold_names: Vec<CString>,
    runtime_info: CString,
}

impl nnrt_model {
    pub(crate) fn new(model: Model) -> nnrt_model {
        let label_names = model.plan().labels.iter().map(|l| c_string(&l.name)).collect();
        let class_names =
            model.folder().classification.iter().flat_map(|s| s.class_names.iter().map(|n| c_string(n))).collect();
        let channel_names = model.plan().channel_names.iter().map(|n| c_string(n)).collect();
        let fold_names = model.fold_names().iter().map(|n| c_string(n)).collect();
        let runtime_info = c_string(&serde_json::to_string(&model.runtime_info()).unwrap_or_else(|_| "null".into()));
        nnrt_model {
            model,
            poisoned: AtomicBool::new(false),
            running: Mutex::new(0),
            idle: Condvar::new(),
            label_names,
            class_names,
            channel_names,
            fold_names,
            runtime_info,
        }
    }

    /// Counts a prediction as running until the returned guard drops.
    fn enter(&self) -> Running<'_> {
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Running(self)
    }
}

/// A running prediction (see [`nnrt_model::enter`]).
struct Running<'a>(&'a nnrt_model);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut running = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        *running -= 1;
        if *running == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// The options behind a load options pointer, or the defaults for NULL.
///
/// # Safety
/// `options` is NULL or a live `nnrt_options`.
unsafe fn load_options(options: *const nnrt_options, defaults: &LoadOptions) -> &LoadOptions {
    // SAFETY: NULL or a live `nnrt_options` from `nnrt_options_new`, per the caller.
    if options.is_null() {
        defaults
    } else {
        unsafe { &(*options).inner }
    }
}

/// Loads the nnU-Net model folder `model_dir` (plans.json, dataset.json, fold_N/model.onnx with
/// nnunet_rt_export.json; postprocessed when it holds a postprocessing.json), a dataset's results
/// folder holding the inference_information.json of nnUNetv2_find_best_configuration (the
/// configuration(s), folds and postprocessing it selected; two configurations are an ensemble),
/// or a model bundle file written by `nnunet-rt bundle`. `options` may be NULL for the defaults;
/// it is not kept.
///
/// Ownership: `*out` is owned by the caller; free it with `nnrt_model_free`. `*out` is NULL on
/// failure.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`, `NNRT_IO`,
/// `NNRT_INVALID_MODEL`, `NNRT_UNSUPPORTED_MODEL`, `NNRT_RUNTIME_UNAVAILABLE`, `NNRT_RUNTIME_ERROR`.
#[no_mangle]
pub extern "C" fn nnrt_model_load(
    model_dir: *const c_char,
    options: *const nnrt_options,
    out: *mut *mut nnrt_model,
) -> nnrt_status {
    create(out, || {
        check_not_null!(model_dir);
        // SAFETY: non-NULL NUL-terminated string per the contract.
        let dir = unsafe { str_arg(model_dir, "model_dir") }?;
        let defaults = LoadOptions::default();
        // SAFETY: NULL or a live `nnrt_options` per the contract.
        let options = unsafe { load_options(options, &defaults) };
        Ok(nnrt_model::new(Model::load(dir, options)?))
    })
}

/// Loads `count` model folders as one ensemble, predicted as `nnUNetv2_ensemble` combines them
/// (members' probabilities averaged, then labelled); no postprocessing unless `options` names a
/// file. Members must agree on labels and channels. `options` (NULL: defaults) applies to every
/// member.
///
/// Ownership: `*out` is owned by the caller; free it with `nnrt_model_free`. NULL on failure.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (count 0, invalid UTF-8),
/// `NNRT_IO`, `NNRT_INVALID_MODEL`, `NNRT_UNSUPPORTED_MODEL`, `NNRT_RUNTIME_UNAVAILABLE`,
/// `NNRT_RUNTIME_ERROR`.
#[no_mangle]
pub extern "C" fn nnrt_model_load_ensemble(
    model_dirs: *const *const c_char,
    count: usize,
    options: *const nnrt_options,
    out: *mut *mut nnrt_model,
) -> nnrt_status {
    create(out, || {
        check_not_null!(model_dirs);
        let mut dirs = Vec::with_capacity(count.min(64));
        for i in 0..count {
            // SAFETY: `model_dirs` points to `count` string pointers per the contract.
            let dir = unsafe { *model_dirs.add(i) };
            check_not_null!(dir);
            // SAFETY: non-NULL NUL-terminated string per the contract.
            dirs.push(std::path::PathBuf::from(unsafe { str_arg(dir, "model_dirs[i]") }?));
        }
        let defaults = LoadOptions::default();
        // SAFETY: NULL or a live `nnrt_options` per the contract.
        let options = unsafe { load_options(options, &defaults) };
        Ok(nnrt_model::new(Model::ensemble(&dirs, options)?))
    })
}

/// Loads a model bundle (`nnunet-rt bundle -m MODEL_DIR -o model.nnrt`) from `len` bytes at
/// `bytes`, without touching the disk: for models decrypted into memory. The bytes are read
/// during the call only (copied where needed); the caller may wipe or free them afterwards.
/// `options` may be NULL for the defaults; its file paths (postprocessing, previous stage) are
/// not used: a bundle carries its own.
///
/// Ownership: `*out` is owned by the caller; free it with `nnrt_model_free`. NULL on failure.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`, `NNRT_INVALID_MODEL`
/// (corrupt or truncated bundle), `NNRT_UNSUPPORTED_MODEL`, `NNRT_RUNTIME_UNAVAILABLE`,
/// `NNRT_RUNTIME_ERROR`, `NNRT_OUT_OF_MEMORY`.
#[no_mangle]
pub extern "C" fn nnrt_model_load_from_memory(
    bytes: *const c_void,
    len: usize,
    options: *const nnrt_options,
    out: *mut *mut nnrt_model,
) -> nnrt_status {
    create(out, || {
        check_not_null!(bytes);
        if len > isize::MAX as usize {
            return Err(Error::invalid_argument(format!("bundle length {len} is not a buffer size")).into());
        }
        // SAFETY: non-NULL, `len` readable bytes for the call per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(bytes.cast::<u8>(), len) };
        let defaults = LoadOptions::default();
        // SAFETY: NULL or a live `nnrt_options` per the contract.
        let options = unsafe { load_options(options, &defaults) };
        Ok(nnrt_model::new(Model::load_bundle(bytes, options)?))
    })
}

/// Frees a model. NULL is a no-op. Predictions running on the model in other threads are
/// cancelled (they return `NNRT_CANCELLED`) and this call waits until they have returned, so
/// freeing during a prediction is safe. Starting a call on the model after (or while) freeing it
/// is undefined behaviour, as is freeing twice. Results stay valid after their model is freed.
#[no_mangle]
pub extern "C" fn nnrt_model_free(model: *mut nnrt_model) {
    if model.is_null() {
        return;
    }
    call(|| {
        {
            // SAFETY: a live model per the contract; only shared access until the others return.
            let m = unsafe { &*model };
            m.model.cancel();
            let running = m.running.lock().unwrap_or_else(|e| e.into_inner());
            drop(m.idle.wait_while(running, |n| *n > 0).unwrap_or_else(|e| e.into_inner()));
        }
        // SAFETY: created by a load function, freed once, and no prediction runs on it any more.
        drop(unsafe { Box::from_raw(model) });
        Ok(())
    });
}

/// Cancels the predictions running on `model` now, from any thread: each returns
/// `NNRT_CANCELLED` promptly (the network call in progress is interrupted; on the CPU within
/// about a second). Predictions started afterwards run normally. Cancelling when nothing runs
/// does nothing.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_cancel(model: *const nnrt_model) -> nnrt_status {
    call(|| {
        let m = model_ref!(model);
        m.model.cancel();
        Ok(())
    })
}

/// A read-only query on a model (see [`query`]).
fn query_model<T>(
    model: *const nnrt_model,
    out: *mut T,
    model_query: impl FnOnce(&nnrt_model) -> crate::Result<T>,
) -> nnrt_status {
    query(model, "model", out, model_query)
}

/// Number of input channels the model expects.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_num_channels(model: *const nnrt_model, out: *mut usize) -> nnrt_status {
    query_model(model, out, |m| Ok(m.channel_names.len()))
}

/// Name of input channel `index` (dataset.json `channel_names`, e.g. "CT"), in the order the
/// channels of `nnrt_volume` are read.
///
/// Ownership: `*out` is borrowed from the model; valid until `nnrt_model_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_model_channel_name(
    model: *const nnrt_model,
    index: usize,
    out: *mut *const c_char,
) -> nnrt_status {
    query_model(model, out, |m| indexed(&m.channel_names, index, "channel"))
}

/// Number of output labels, background included (label values are 0..n-1).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_num_labels(model: *const nnrt_model, out: *mut usize) -> nnrt_status {
    query_model(model, out, |m| Ok(m.label_names.len()))
}

/// Name of label `index` (from dataset.json).
///
/// Ownership: `*out` is borrowed from the model; valid until `nnrt_model_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_model_label_name(
    model: *const nnrt_model,
    index: usize,
    out: *mut *const c_char,
) -> nnrt_status {
    query_model(model, out, |m| indexed(&m.label_names, index, "label"))
}

/// Number of classes of the classification head; 0 when the model has none.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_num_classes(model: *const nnrt_model, out: *mut usize) -> nnrt_status {
    query_model(model, out, |m| Ok(m.class_names.len()))
}

/// Name of head class `index`.
///
/// Ownership: `*out` is borrowed from the model; valid until `nnrt_model_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_model_class_name(
    model: *const nnrt_model,
    index: usize,
    out: *mut *const c_char,
) -> nnrt_status {
    query_model(model, out, |m| indexed(&m.class_names, index, "class"))
}

/// Number of folds in use.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_num_folds(model: *const nnrt_model, out: *mut usize) -> nnrt_status {
    query_model(model, out, |m| Ok(m.fold_names.len()))
}

/// What the network runs on, as one JSON object: `device_requested`, `device` (after `auto` is
/// resolved), `execution_provider`, `network_precision`, `threads`, `onnxruntime_version`,
/// `onnxruntime_library`, `openvino` (plugin `path`, `version`, `cpu_name`, `capabilities`, or
/// null) and `auto_fallback_reason` (why `auto` did not take OpenVINO, or null).
///
/// Ownership: `*out` is a NUL-terminated UTF-8 string borrowed from the model; valid until
/// `nnrt_model_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_runtime_info(model: *const nnrt_model, out: *mut *const c_char) -> nnrt_status {
    query_model(model, out, |m| Ok(m.runtime_info.as_ptr()))
}

/// Name of fold `index` (`"0"`, `"all"`...).
///
/// Ownership: `*out` is borrowed from the model; valid until `nnrt_model_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_model_fold_name(model: *const nnrt_model, index: usize, out: *mut *const c_char) -> nnrt_status {
    query_model(model, out, |m| indexed(&m.fold_names, index, "fold"))
}

/// The model's target spacing in mm along x, y, z (the caller's axes): writes 3 doubles. A `2d`
/// configuration keeps each input's own spacing along its slice axis: 0 is written there.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_spacing(model: *const nnrt_model, out_xyz: *mut f64) -> nnrt_status {
    // Room for 3 doubles per the contract: written as one [f64; 3] (same alignment as f64).
    query_model(model, out_xyz.cast::<[f64; 3]>(), |m| Ok(m.model.plan().to_caller_axes(m.model.plan().spacing)))
}

/// The network's patch size in voxels along x, y, z (the caller's axes): writes 3 sizes; 1 along
/// the slice axis of a `2d` configuration.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_model_patch_size(model: *const nnrt_model, out_xyz: *mut usize) -> nnrt_status {
    // Room for 3 sizes per the contract: written as one [usize; 3] (same alignment as usize).
    query_model(model, out_xyz.cast::<[usize; 3]>(), |m| Ok(m.model.plan().to_caller_axes(m.model.plan().patch_size)))
}

/// Predicts `volume` with `model`. `options` may be NULL for nnU-Net's defaults.
///
/// The volume's buffer is only read, during the call. With a progress callback installed in
/// `options`, it is called at stage boundaries and after every network pass (each mirrored copy
/// of a tile), on this thread; a nonzero return cancels (`NNRT_CANCELLED`) before the next pass
/// starts. `nnrt_cancel` and `nnrt_model_free` from another thread interrupt the pass running.
///
/// Ownership: `*out` is owned by the caller; free with `nnrt_result_free`. NULL on failure.
/// Thread safety: concurrent calls on one model are serialised.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`, `NNRT_INVALID_IMAGE`,
/// `NNRT_SHAPE_MISMATCH`, `NNRT_RUNTIME_ERROR`, `NNRT_OUT_OF_MEMORY`, `NNRT_CANCELLED`,
/// `NNRT_PANIC`, `NNRT_POISONED`.
#[no_mangle]
pub extern "C" fn nnrt_predict(
    model: *const nnrt_model,
    volume: *const nnrt_volume,
    options: *const nnrt_predict_options,
    out: *mut *mut nnrt_result,
) -> nnrt_status {
    call(|| {
        check_not_null!(out);
        // SAFETY: non-NULL, writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        let m = model_ref!(model);
        let _running = m.enter();
        check_not_null!(volume);
        if m.poisoned.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Poisoned,
                "the model is unusable: an earlier call panicked while using it; load it again",
            )
            .into());
        }
        // SAFETY: non-NULL; a readable `nnrt_volume` per the contract (copied, not kept).
        let v = unsafe { *volume };
        let data = v.data;
        check_not_null!(data);
        // SAFETY: per the contract `data` addresses the described voxels for the call.
        let voxels = unsafe { v.voxels() }?;
        let view = v.view(&voxels)?;
        let defaults = PredictOptions::default();
        let (settings, progress, user_data) = if options.is_null() {
            (&defaults, None, std::ptr::null_mut::<c_void>())
        } else {
            // SAFETY: non-NULL, a live `nnrt_predict_options`, only read here.
            let o = unsafe { &*options };
            (&o.inner, o.progress, o.user_data)
        };
        let mut report = |stage: Stage, fraction: f64| match progress {
            None => true,
            Some(callback) => {
                let code = match stage {
                    Stage::Preprocess => NNRT_STAGE_PREPROCESS,
                    Stage::Network => NNRT_STAGE_NETWORK,
                    Stage::Export => NNRT_STAGE_EXPORT,
                };
                callback(code, fraction, user_data) == 0
            }
        };
        // A panic inside poisons the model while this prediction still counts as running, so a
        // concurrent `nnrt_model_free` cannot free it in between.
        let prediction = match catch_unwind(AssertUnwindSafe(|| m.model.predict(&view, settings, &mut report))) {
            Ok(prediction) => prediction?,
            Err(payload) => {
                m.poisoned.store(true, Ordering::SeqCst);
                resume_unwind(payload)
            }
        };
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(nnrt_result::new(prediction))) };
        Ok(())
    })
}

/// The estimated peak memory of predicting `volume` with `options` (NULL: the defaults), in
/// bytes: what `nnrt_predict_options_set_memory_limit` compares with. The caller's volume and
/// ONNX Runtime's own working set (fixed per model) come on top. The voxels are not read.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`, `NNRT_INVALID_IMAGE`,
/// `NNRT_SHAPE_MISMATCH`.
#[no_mangle]
pub extern "C" fn nnrt_estimate_peak_bytes(
    model: *const nnrt_model,
    volume: *const nnrt_volume,
    options: *const nnrt_predict_options,
    out: *mut u64,
) -> nnrt_status {
    call(|| {
        let m = model_ref!(model);
        check_not_null!(volume, out);
        // SAFETY: non-NULL and readable per the contract (copied).
        let v = unsafe { *volume };
        let defaults = PredictOptions::default();
        // SAFETY: NULL or a live `nnrt_predict_options`, only read.
        let settings = if options.is_null() { &defaults } else { unsafe { &(*options).inner } };
        let bytes = estimate(&m.model, &v, settings)?;
        // SAFETY: non-NULL, writable per the contract.
        unsafe { *out = bytes };
        Ok(())
    })
}

/// The estimate for a described volume, from its dims and geometry alone.
fn estimate(model: &Model, v: &nnrt_volume, options: &PredictOptions) -> crate::Result<u64> {
    if v.dims.contains(&0) || v.channels == 0 {
        return Err(Error::invalid_image(format!(
            "volume dims {:?} x {} channel(s) must all be at least 1",
            v.dims, v.channels
        )));
    }
    v.geometry().validate()?;
    options.validate()?;
    Ok(model.estimate_peak_bytes_for(v.dims, v.spacing, options))
}

/// Writes the model folder `model_dir` as one bundle file `out_path` (what `nnunet-rt bundle`
/// writes): plans, dataset, the folds `options` selects (NULL: every exported fold) with their
/// ONNX models, the postprocessing when the folder has one, and a cascade stage's previous stage.
/// The file appears complete or not at all.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT`, `NNRT_IO`,
/// `NNRT_INVALID_MODEL`, `NNRT_UNSUPPORTED_MODEL`.
#[no_mangle]
pub extern "C" fn nnrt_bundle_write(
    model_dir: *const c_char,
    options: *const nnrt_options,
    out_path: *const c_char,
) -> nnrt_status {
    call(|| {
        check_not_null!(model_dir, out_path);
        // SAFETY: non-NULL NUL-terminated strings per the contract.
        let (dir, out) = unsafe { (str_arg(model_dir, "model_dir")?, str_arg(out_path, "out_path")?) };
        let defaults = LoadOptions::default();
        // SAFETY: NULL or a live `nnrt_options` per the contract.
        let options = unsafe { load_options(options, &defaults) };
        Model::write_bundle(dir.as_ref(), options, out.as_ref())?;
        Ok(())
    })
}
