//! `nnrt_model`: loading, introspection and prediction.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use super::boundary::{check_not_null, guard, query, str_arg, try_status};
use super::options::{
    nnrt_options, nnrt_predict_options, NNRT_STAGE_EXPORT, NNRT_STAGE_NETWORK, NNRT_STAGE_PREPROCESS,
};
use super::result::nnrt_result;
use super::status::*;
use crate::error::{Error, ErrorKind};
use crate::{Geometry, LoadOptions, Model, PredictOptions, Stage, VolumeView, VoxelData};

/// A loaded model (opaque). Load with `nnrt_model_load`, free with `nnrt_model_free`.
///
/// Thread safety: a model may be shared by any number of threads. Introspection runs
/// concurrently; `nnrt_predict` calls on one model are serialised (one at a time, in no
/// particular order). For parallel predictions load one model per thread.
pub struct nnrt_model {
    pub(crate) model: Model,
    poisoned: AtomicBool,
    label_names: Vec<CString>,
    class_names: Vec<CString>,
    fold_names: Vec<CString>,
    runtime_info: CString,
}

impl nnrt_model {
    pub(crate) fn new(model: Model) -> nnrt_model {
        let c = |s: &String| CString::new(s.replace('\0', " ")).unwrap_or_default();
        let label_names = model.plan().labels.iter().map(|l| c(&l.name)).collect();
        let class_names = model.folder().classification.iter().flat_map(|s| s.class_names.iter().map(c)).collect();
        let fold_names = model.fold_names().iter().map(c).collect();
        let runtime_info = c(&serde_json::to_string(&model.runtime_info()).unwrap_or_else(|_| "null".into()));
        nnrt_model { model, poisoned: AtomicBool::new(false), label_names, class_names, fold_names, runtime_info }
    }
}

/// Unsigned 8-bit voxels (`nnrt_volume.dtype`, also a label map's type).
pub const NNRT_DTYPE_U8: u32 = 1;
/// Signed 8-bit voxels.
pub const NNRT_DTYPE_I8: u32 = 2;
/// Unsigned 16-bit voxels.
pub const NNRT_DTYPE_U16: u32 = 3;
/// Signed 16-bit voxels (typical CT).
pub const NNRT_DTYPE_I16: u32 = 4;
/// Unsigned 32-bit voxels.
pub const NNRT_DTYPE_U32: u32 = 5;
/// Signed 32-bit voxels.
pub const NNRT_DTYPE_I32: u32 = 6;
/// 32-bit float voxels.
pub const NNRT_DTYPE_F32: u32 = 7;
/// 64-bit float voxels.
pub const NNRT_DTYPE_F64: u32 = 8;

/// A caller's volume, described: borrowed for the duration of `nnrt_predict` only, never
/// modified, never kept.
///
/// Memory order is x fastest (like ITK, NIfTI and VTK): voxel (x, y, z) of channel c is element
/// `((c * dims[2] + z) * dims[1] + y) * dims[0] + x`. `data` must hold
/// `dims[0] * dims[1] * dims[2] * channels` elements of `dtype` and be aligned for it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnrt_volume {
    /// First voxel.
    pub data: *const c_void,
    /// One of `NNRT_DTYPE_*`.
    pub dtype: u32,
    /// Sizes along x, y, z.
    pub dims: [usize; 3],
    /// Number of channels (input modalities), stored one after the other.
    pub channels: usize,
    /// Voxel size in mm along x, y, z; finite and > 0.
    pub spacing: [f64; 3],
    /// World position of the first voxel (mm).
    pub origin: [f64; 3],
    /// 3x3 direction cosines, row-major (ITK `GetDirection()`); must be orthonormal.
    pub direction: [f64; 9],
}

/// Loads the nnU-Net model folder `model_dir` (plans.json, dataset.json, fold_N/model.onnx with
/// nnunet_rt_export.json; postprocessed when it holds a postprocessing.json), or a dataset's
/// results folder holding the inference_information.json of nnUNetv2_find_best_configuration
/// (the configuration(s), folds and postprocessing it selected; two configurations are an
/// ensemble). `options` may be NULL for the defaults; it is not kept.
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
    guard(
        || {},
        || {
            check_not_null!(out);
            // SAFETY: `out` is non-NULL and writable per the contract.
            unsafe { *out = std::ptr::null_mut() };
            check_not_null!(model_dir);
            // SAFETY: non-NULL NUL-terminated string per the contract.
            let dir = try_status!(unsafe { str_arg(model_dir, "model_dir") });
            let defaults = LoadOptions::default();
            // SAFETY: NULL or a live `nnrt_options` from `nnrt_options_new`.
            let options = if options.is_null() { &defaults } else { unsafe { &(*options).inner } };
            let model = try_status!(Model::load(dir, options));
            // SAFETY: as above.
            unsafe { *out = Box::into_raw(Box::new(nnrt_model::new(model))) };
            NNRT_OK
        },
    )
}

/// Frees a model. NULL is a no-op. Freeing twice, or while another thread uses the model, is
/// undefined behaviour. Results stay valid after their model is freed.
#[no_mangle]
pub extern "C" fn nnrt_model_free(model: *mut nnrt_model) {
    guard(
        || {},
        || {
            if !model.is_null() {
                // SAFETY: created by `nnrt_model_load`, freed once, not in use per the contract.
                drop(unsafe { Box::from_raw(model) });
            }
            NNRT_OK
        },
    );
}

/// Borrows a checked model pointer.
macro_rules! model_ref {
    ($model:ident) => {{
        check_not_null!($model);
        // SAFETY: non-NULL and, per the contract, a live model from `nnrt_model_load`.
        unsafe { &*$model }
    }};
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
    query_model(model, out, |m| Ok(m.model.plan().channel_names.len()))
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

fn indexed(names: &[CString], index: usize, what: &str) -> crate::Result<*const c_char> {
    names.get(index).map(|n| n.as_ptr()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} index {index} is out of range (the model has {})", names.len()),
        )
    })
}

/// Borrows the caller's voxels as a typed slice after checking the description.
///
/// # Safety
/// `v.data` must point to `len` readable elements of `v.dtype`, aligned, valid for `'a`.
unsafe fn voxels<'a>(v: &nnrt_volume, len: usize) -> crate::Result<VoxelData<'a>> {
    macro_rules! slice {
        ($t:ty, $variant:ident) => {{
            if (v.data as usize) % std::mem::align_of::<$t>() != 0 {
                return Err(Error::invalid_argument(format!("volume data is not aligned for {}", stringify!($t))));
            }
            // SAFETY: non-NULL, aligned (checked), `len` elements readable per the contract.
            VoxelData::$variant(unsafe { std::slice::from_raw_parts(v.data as *const $t, len) })
        }};
    }
    Ok(match v.dtype {
        super::NNRT_DTYPE_U8 => slice!(u8, U8),
        super::NNRT_DTYPE_I8 => slice!(i8, I8),
        super::NNRT_DTYPE_U16 => slice!(u16, U16),
        super::NNRT_DTYPE_I16 => slice!(i16, I16),
        super::NNRT_DTYPE_U32 => slice!(u32, U32),
        super::NNRT_DTYPE_I32 => slice!(i32, I32),
        super::NNRT_DTYPE_F32 => slice!(f32, F32),
        super::NNRT_DTYPE_F64 => slice!(f64, F64),
        other => {
            return Err(Error::invalid_argument(format!("volume dtype code {other} is unknown (use NNRT_DTYPE_*)")))
        }
    })
}

/// Predicts `volume` with `model`. `options` may be NULL for nnU-Net's defaults.
///
/// The volume's buffer is only read, during the call. With a progress callback installed in
/// `options`, it is called at stage boundaries and after every tile, on this thread; a nonzero
/// return cancels (`NNRT_CANCELLED`, promptly: within one tile).
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
    let poison = || {
        if !model.is_null() {
            // SAFETY: non-NULL live model per the contract; only an atomic store.
            unsafe { (*model).poisoned.store(true, Ordering::SeqCst) };
        }
    };
    guard(poison, || {
        check_not_null!(out);
        // SAFETY: non-NULL, writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        let m = model_ref!(model);
        check_not_null!(volume);
        if m.poisoned.load(Ordering::SeqCst) {
            return fail(Error::new(
                ErrorKind::Poisoned,
                "the model is unusable: an earlier call panicked while using it; load it again",
            ));
        }
        // SAFETY: non-NULL; a readable `nnrt_volume` per the contract (copied, not kept).
        let v = unsafe { *volume };
        let data = v.data;
        check_not_null!(data);
        let count = v.dims.iter().chain(std::iter::once(&v.channels)).try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let Some(count) = count.filter(|&n| n > 0 && n <= isize::MAX as usize / 8) else {
            return fail(Error::invalid_image(format!(
                "volume dims {:?} x {} channel(s) are zero or overflow",
                v.dims, v.channels
            )));
        };
        // SAFETY: per the contract `data` holds `count` elements of `dtype`, valid for the call.
        let data = try_status!(unsafe { voxels(&v, count) });
        let geometry = Geometry { spacing: v.spacing, origin: v.origin, direction: v.direction };
        let view = try_status!(VolumeView::new(data, v.dims, v.channels, geometry));
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
        let prediction = try_status!(m.model.predict(&view, settings, &mut report));
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(nnrt_result::new(prediction))) };
        NNRT_OK
    })
}
