//! `nnrt_result`: read-only access to a prediction.

use std::ffi::{c_char, c_void, CString};

use super::boundary::{call, check_not_null, query, release};
use super::status::*;
use super::volume::{scatter_labels, NNRT_DTYPE_U16, NNRT_DTYPE_U8};
use crate::error::{Error, ErrorKind};
use crate::{Labels, Prediction};

/// A prediction (opaque, immutable). Returned by `nnrt_predict`, freed with `nnrt_result_free`.
/// Safe to read from any number of threads at once.
pub struct nnrt_result {
    prediction: Prediction,
    label_names: Vec<CString>,
    class_names: Vec<CString>,
}

impl nnrt_result {
    pub(crate) fn new(prediction: Prediction) -> nnrt_result {
        let class_names =
            prediction.classification.iter().flat_map(|c| c.class_names.iter().map(|n| c_string(n))).collect();
        let label_names = prediction.label_names.iter().map(|n| c_string(n)).collect();
        nnrt_result { prediction, label_names, class_names }
    }
}

/// A name for C: an interior NUL (never in nnU-Net's names) becomes a space.
pub(crate) fn c_string(name: &str) -> CString {
    CString::new(name.replace('\0', " ")).unwrap_or_default()
}

/// Entry `index` of `names`, or an out-of-range error naming `what` and how many there are.
pub(crate) fn indexed(names: &[CString], index: usize, what: &str) -> crate::Result<*const c_char> {
    names.get(index).map(|n| n.as_ptr()).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} index {index} is out of range (there are {})", names.len()),
        )
    })
}

/// Frees a result. NULL is a no-op. Freeing twice is undefined behaviour; pointers borrowed from
/// the result are invalid afterwards.
#[no_mangle]
pub extern "C" fn nnrt_result_free(result: *mut nnrt_result) {
    release(result)
}

macro_rules! result_ref {
    ($result:ident) => {{
        check_not_null!($result);
        // SAFETY: non-NULL and, per the contract, a live result from `nnrt_predict`.
        unsafe { &*$result }
    }};
}

/// The label map: same dims and memory order as the input volume (x fastest), element type
/// `NNRT_DTYPE_U8` (up to 256 labels) or `NNRT_DTYPE_U16`. `dims_xyz` receives 3 sizes.
///
/// Ownership: `*data` is borrowed from the result; valid until `nnrt_result_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_result_labels(
    result: *const nnrt_result,
    data: *mut *const c_void,
    dtype: *mut u32,
    dims_xyz: *mut usize,
) -> nnrt_status {
    call(|| {
        let r = result_ref!(result);
        check_not_null!(data, dtype, dims_xyz);
        let (pointer, code) = match &r.prediction.labels {
            Labels::U8(v) => (v.as_ptr() as *const c_void, NNRT_DTYPE_U8),
            Labels::U16(v) => (v.as_ptr() as *const c_void, NNRT_DTYPE_U16),
        };
        // SAFETY: all three are non-NULL and writable; `dims_xyz` has room for 3 sizes.
        unsafe {
            *data = pointer;
            *dtype = code;
            std::ptr::copy_nonoverlapping(r.prediction.dims.as_ptr(), dims_xyz, 3);
        }
        Ok(())
    })
}

/// Writes the label map into the caller's buffer `dst` as `dtype` (`NNRT_DTYPE_U8`, `U16`, `I16`,
/// `U32`, `I32`, `F32` or `F64`; a type too small for the largest label is refused) at
/// `byte_strides` along x, y, z (NULL or all 0: packed, x fastest, as the input was). The dims
/// are the input's (`nnrt_result_labels`). Use it to fill an ITK/VTK image's own buffer, or
/// its y-flipped or cropped view, without a second copy.
///
/// Ownership: `dst` stays the caller's; it must hold every voxel the strides address, aligned
/// for `dtype`. Nothing is written on failure.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (dtype, misaligned `dst`,
/// strides not multiples of the element size).
#[no_mangle]
pub extern "C" fn nnrt_result_copy_labels(
    result: *const nnrt_result,
    dst: *mut c_void,
    dtype: u32,
    byte_strides: *const i64,
) -> nnrt_status {
    call(|| {
        let r = result_ref!(result);
        check_not_null!(dst);
        let strides = if byte_strides.is_null() {
            [0; 3]
        } else {
            // SAFETY: non-NULL, 3 readable values per the contract.
            unsafe { *byte_strides.cast::<[i64; 3]>() }
        };
        // SAFETY: `dst` addresses every voxel the strides describe, per the contract.
        unsafe { scatter_labels(&r.prediction.labels, r.prediction.dims, dst, dtype, strides) }?;
        Ok(())
    })
}

/// Name of label `index` (from dataset.json; `nnrt_result_num_labels` of them).
///
/// Ownership: `*out` is borrowed from the result; valid until `nnrt_result_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_result_label_name(
    result: *const nnrt_result,
    index: usize,
    out: *mut *const c_char,
) -> nnrt_status {
    query(result, "result", out, |r| indexed(&r.label_names, index, "label"))
}

/// Number of labels (background included): the probability channels and label values 0..n-1.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_result_num_labels(result: *const nnrt_result, out: *mut usize) -> nnrt_status {
    query(result, "result", out, |r| Ok(r.prediction.label_names.len()))
}

/// Per-label softmax probabilities, float32, `num_labels` blocks of the input's voxel count,
/// each block in the input's memory order. `*data` is NULL and `*count` 0 unless probabilities
/// were requested with `nnrt_predict_options_set_probabilities`.
///
/// Ownership: `*data` is borrowed from the result; valid until `nnrt_result_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_result_probabilities(
    result: *const nnrt_result,
    data: *mut *const f32,
    count: *mut usize,
) -> nnrt_status {
    call(|| {
        let r = result_ref!(result);
        check_not_null!(data, count);
        let (pointer, n) = match &r.prediction.probabilities {
            Some(p) => (p.as_ptr(), p.len()),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: non-NULL, writable.
        unsafe {
            *data = pointer;
            *count = n;
        }
        Ok(())
    })
}

/// Number of classification classes; 0 when the model has no classification head.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_result_num_classes(result: *const nnrt_result, out: *mut usize) -> nnrt_status {
    query(result, "result", out, |r| Ok(r.class_names.len()))
}

fn classification(r: &nnrt_result) -> crate::Result<&crate::Classification> {
    r.prediction
        .classification
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "the model has no classification head"))
}

/// Case-level class probabilities (`nnrt_result_num_classes` doubles, fold-averaged).
///
/// Ownership: `*data` is borrowed from the result; valid until `nnrt_result_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (no classification head).
#[no_mangle]
pub extern "C" fn nnrt_result_class_probabilities(
    result: *const nnrt_result,
    data: *mut *const f64,
    count: *mut usize,
) -> nnrt_status {
    call(|| {
        let r = result_ref!(result);
        check_not_null!(data, count);
        let c = classification(r)?;
        // SAFETY: non-NULL, writable.
        unsafe {
            *data = c.probabilities.as_ptr();
            *count = c.probabilities.len();
        }
        Ok(())
    })
}

/// Index of the predicted class (the first maximum of the probabilities).
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (no classification head).
#[no_mangle]
pub extern "C" fn nnrt_result_predicted_class(result: *const nnrt_result, out: *mut usize) -> nnrt_status {
    query(result, "result", out, |r| Ok(classification(r)?.predicted))
}

/// Name of class `index`.
///
/// Ownership: `*out` is borrowed from the result; valid until `nnrt_result_free`.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (no head, index out of range).
#[no_mangle]
pub extern "C" fn nnrt_result_class_name(
    result: *const nnrt_result,
    index: usize,
    out: *mut *const c_char,
) -> nnrt_status {
    query(result, "result", out, |r| {
        classification(r)?;
        indexed(&r.class_names, index, "class")
    })
}

/// Milliseconds spent in preprocessing, the network stage and export: writes 3 doubles.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_result_timings_ms(result: *const nnrt_result, out: *mut f64) -> nnrt_status {
    // Room for 3 doubles per the contract: written as one [f64; 3] (same alignment as f64).
    query(result, "result", out.cast::<[f64; 3]>(), |r| {
        let t = r.prediction.timings;
        Ok([t.preprocess, t.network, t.export].map(|d| d.as_secs_f64() * 1e3))
    })
}
