//! `nnrt_evaluate_labels`: segmentation metrics of two label buffers, for hosts that check their
//! output against a reference.

use std::ffi::{c_char, c_void, CString};

use super::boundary::{call, check_not_null, create, query, release, str_arg};
use super::status::*;
use super::volume::{NNRT_DTYPE_U16, NNRT_DTYPE_U32, NNRT_DTYPE_U8};
use crate::error::Error;
use crate::metrics::{self, CaseMetrics, LabelBuffer, LabelVolume};

/// A caller's label map, described (borrowed for the call only): `dims[0] * dims[1] * dims[2]`
/// elements of `dtype` (`NNRT_DTYPE_U8`, `NNRT_DTYPE_U16` or `NNRT_DTYPE_U32`), x fastest.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnrt_label_volume {
    /// First voxel.
    pub data: *const c_void,
    /// `NNRT_DTYPE_U8`, `NNRT_DTYPE_U16` or `NNRT_DTYPE_U32`.
    pub dtype: u32,
    /// Sizes along x, y, z.
    pub dims: [usize; 3],
    /// Voxel size in mm along x, y, z.
    pub spacing: [f64; 3],
}

/// Metrics of one pair of label maps (opaque, immutable). Free with `nnrt_metrics_free`.
pub struct nnrt_metrics {
    case: CaseMetrics,
    names: Vec<CString>,
}

/// Borrows a described label buffer.
///
/// # Safety
/// `v.data` must point to `dims` product elements of `v.dtype`, aligned, valid for `'a`.
unsafe fn label_volume<'a>(v: &nnrt_label_volume, which: &str) -> crate::Result<LabelVolume<'a>> {
    if v.data.is_null() {
        return Err(Error::invalid_argument(format!("{which}.data is NULL")));
    }
    let len =
        v.dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).filter(|&n| n > 0 && n <= isize::MAX as usize / 4);
    let Some(len) = len else {
        return Err(Error::invalid_image(format!("{which} dims {:?} are zero or overflow", v.dims)));
    };
    macro_rules! slice {
        ($t:ty, $variant:ident) => {{
            if (v.data as usize) % std::mem::align_of::<$t>() != 0 {
                return Err(Error::invalid_argument(format!("{which}.data is not aligned for {}", stringify!($t))));
            }
            // SAFETY: non-NULL, aligned (checked), `len` elements readable per the contract.
            LabelBuffer::$variant(unsafe { std::slice::from_raw_parts(v.data as *const $t, len) })
        }};
    }
    let data = match v.dtype {
        NNRT_DTYPE_U8 => slice!(u8, U8),
        NNRT_DTYPE_U16 => slice!(u16, U16),
        NNRT_DTYPE_U32 => slice!(u32, U32),
        other => {
            return Err(Error::invalid_argument(format!("{which}.dtype {other} is not a label type (U8, U16 or U32)")))
        }
    };
    LabelVolume::new(data, v.dims, v.spacing)
}

/// Dice, NSD, HD95 and MSD (mm, area-weighted surface elements; see the README's metrics
/// section) of `pred` against `reference`, per region. `regions` is `"name=l1,l2;name=l3"`
/// (e.g. `"pancreas=1,2;lesion=2"`), or NULL for one region per foreground label present in
/// either map. `nsd_tolerance_mm` applies to every region (> 0; e.g. 2.0).
///
/// Ownership: `*out` is owned by the caller; free with `nnrt_metrics_free`. NULL on failure.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (regions, dtype, tolerance),
/// `NNRT_INVALID_IMAGE` (dims, spacing), `NNRT_SHAPE_MISMATCH` (dims or spacing differ).
#[no_mangle]
pub extern "C" fn nnrt_evaluate_labels(
    pred: *const nnrt_label_volume,
    reference: *const nnrt_label_volume,
    regions: *const c_char,
    nsd_tolerance_mm: f64,
    out: *mut *mut nnrt_metrics,
) -> nnrt_status {
    create(out, || {
        check_not_null!(pred, reference);
        if !(nsd_tolerance_mm.is_finite() && nsd_tolerance_mm > 0.0) {
            return Err(Error::invalid_argument(format!(
                "NSD tolerance {nsd_tolerance_mm} mm is not a positive number"
            ))
            .into());
        }
        // SAFETY: both non-NULL and readable per the contract; the descriptions are copied.
        let (p, r) = unsafe { (*pred, *reference) };
        // SAFETY: per the contract each buffer holds its dims' product of elements for the call.
        let p = unsafe { label_volume(&p, "pred") }?;
        // SAFETY: as above.
        let r = unsafe { label_volume(&r, "reference") }?;
        let mut list = if regions.is_null() {
            let tolerances = metrics::Tolerances::parse(&nsd_tolerance_mm.to_string())?;
            metrics::default_regions(&p, &r, &tolerances)
        } else {
            // SAFETY: non-NULL NUL-terminated string per the contract.
            metrics::parse_regions(unsafe { str_arg(regions, "regions") }?)?
        };
        for region in &mut list {
            region.nsd_tolerance_mm = nsd_tolerance_mm;
        }
        let case = metrics::evaluate_labels(&p, &r, &list)?;
        let names =
            case.regions.iter().map(|m| CString::new(m.region.replace('\0', " ")).unwrap_or_default()).collect();
        Ok(nnrt_metrics { case, names })
    })
}

/// Frees metrics. NULL is a no-op; freeing twice is undefined behaviour.
#[no_mangle]
pub extern "C" fn nnrt_metrics_free(metrics: *mut nnrt_metrics) {
    release(metrics)
}

/// Number of regions evaluated.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_metrics_num_regions(metrics: *const nnrt_metrics, out: *mut usize) -> nnrt_status {
    query(metrics, "metrics", out, |m| Ok(m.case.regions.len()))
}

/// Metrics of region `index`: its name (borrowed from `metrics`, valid until
/// `nnrt_metrics_free`), Dice, NSD (0..1), HD95 and MSD in mm. HD95 and MSD are NaN when exactly
/// one of the two masks is empty; both empty gives Dice 1, NSD 1 and distances 0. Any output
/// pointer except `name` may be NULL when not wanted.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`, `NNRT_INVALID_ARGUMENT` (index out of range).
#[no_mangle]
pub extern "C" fn nnrt_metrics_region(
    metrics: *const nnrt_metrics,
    index: usize,
    name: *mut *const c_char,
    dice: *mut f64,
    nsd: *mut f64,
    hd95_mm: *mut f64,
    msd_mm: *mut f64,
) -> nnrt_status {
    call(|| {
        check_not_null!(metrics, name);
        // SAFETY: non-NULL live metrics per the contract.
        let m = unsafe { &*metrics };
        let Some(region) = m.case.regions.get(index) else {
            return Err(Error::invalid_argument(format!(
                "region index {index} is out of range ({} regions)",
                m.case.regions.len()
            ))
            .into());
        };
        // SAFETY: `name` is non-NULL and writable; the others are written only when non-NULL.
        unsafe {
            *name = m.names[index].as_ptr();
            for (ptr, value) in [(dice, region.dice), (nsd, region.nsd), (hd95_mm, region.hd95), (msd_mm, region.msd)] {
                if !ptr.is_null() {
                    *ptr = value;
                }
            }
        }
        Ok(())
    })
}
