//! `nnrt_volume`, the element type codes, and how a caller's buffer becomes a [`VolumeView`]
//! (borrowed as it is when packed, gathered into one owned copy when strided) or receives a label
//! map (`nnrt_result_copy_labels`).

use std::ffi::c_void;

use crate::error::{Error, Result};
use crate::{Geometry, Labels, VolumeView, VoxelData};

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
/// Versioned by size: set `struct_size = sizeof(nnrt_volume)` and zero the rest before filling it
/// (`nnrt_volume v = {sizeof v};` in C), so fields added later read as their zero defaults.
///
/// Memory order: with all `byte_strides` 0 the buffer is packed, x fastest (like ITK, NIfTI and
/// VTK): voxel (x, y, z) of channel c is element `((c * dims[2] + z) * dims[1] + y) * dims[0] + x`.
/// Otherwise voxel (x, y, z, c) is at byte offset `x * byte_strides[0] + y * byte_strides[1] +
/// z * byte_strides[2] + c * byte_strides[3]` from `data` (strides may be negative, each a
/// multiple of the element size; a view into a larger array, a y-flipped image, planar or
/// interleaved channels). `data` must be aligned for `dtype`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nnrt_volume {
    /// `sizeof(nnrt_volume)` as the caller compiled it.
    pub struct_size: usize,
    /// Voxel (0, 0, 0) of channel 0.
    pub data: *const c_void,
    /// One of `NNRT_DTYPE_*`.
    pub dtype: u32,
    /// Sizes along x, y, z.
    pub dims: [usize; 3],
    /// Number of channels (input modalities).
    pub channels: usize,
    /// Voxel size in mm along x, y, z; finite and > 0.
    pub spacing: [f64; 3],
    /// World position of the first voxel (mm).
    pub origin: [f64; 3],
    /// 3x3 direction cosines, row-major (ITK `GetDirection()`); must be orthonormal.
    pub direction: [f64; 9],
    /// Byte distance between neighbours along x, y, z and between channels; all 0: packed.
    pub byte_strides: [i64; 4],
}

/// A caller's voxels for one prediction: borrowed when packed, copied when strided.
pub(crate) enum Voxels<'a> {
    Borrowed(VoxelData<'a>),
    Gathered(Gathered),
}

/// A packed copy of strided voxels.
pub(crate) enum Gathered {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Voxels<'_> {
    /// The voxels as the library reads them.
    pub(crate) fn view(&self) -> VoxelData<'_> {
        match self {
            Voxels::Borrowed(data) => *data,
            Voxels::Gathered(g) => match g {
                Gathered::U8(v) => VoxelData::U8(v),
                Gathered::I8(v) => VoxelData::I8(v),
                Gathered::U16(v) => VoxelData::U16(v),
                Gathered::I16(v) => VoxelData::I16(v),
                Gathered::U32(v) => VoxelData::U32(v),
                Gathered::I32(v) => VoxelData::I32(v),
                Gathered::F32(v) => VoxelData::F32(v),
                Gathered::F64(v) => VoxelData::F64(v),
            },
        }
    }
}

impl nnrt_volume {
    /// The geometry the caller gave.
    pub(crate) fn geometry(&self) -> Geometry {
        Geometry { spacing: self.spacing, origin: self.origin, direction: self.direction }
    }

    /// Checks the description and borrows (or, when strided, gathers) the caller's voxels.
    ///
    /// # Safety
    /// `data` must address every voxel the dims, channels and strides describe, readable for `'a`.
    pub(crate) unsafe fn voxels<'a>(&self) -> Result<Voxels<'a>> {
        if self.struct_size < std::mem::size_of::<nnrt_volume>() {
            return Err(Error::invalid_argument(format!(
                "nnrt_volume.struct_size is {} but this library's nnrt_volume has {} bytes: set struct_size = sizeof(nnrt_volume) and build against this library's header",
                self.struct_size,
                std::mem::size_of::<nnrt_volume>()
            )));
        }
        let count = element_count(self.dims, self.channels)?;
        macro_rules! typed {
            ($t:ty, $variant:ident) => {{
                let size = std::mem::size_of::<$t>();
                if (self.data as usize) % std::mem::align_of::<$t>() != 0 {
                    return Err(Error::invalid_argument(format!("volume data is not aligned for {}", stringify!($t))));
                }
                if self.byte_strides == [0; 4] {
                    // SAFETY: non-NULL, aligned (checked), `count` packed elements readable per
                    // the contract.
                    Voxels::Borrowed(VoxelData::$variant(unsafe {
                        std::slice::from_raw_parts(self.data as *const $t, count)
                    }))
                } else {
                    let strides = element_strides(self.byte_strides, size)?;
                    let mut packed: Vec<$t> =
                        crate::memory::try_filled(count, <$t>::default(), "a packed copy of the strided input volume")?;
                    // SAFETY: per the contract every (x, y, z, c) the strides address is readable.
                    unsafe { gather(self.data as *const $t, self.dims, self.channels, strides, &mut packed) };
                    Voxels::Gathered(Gathered::$variant(packed))
                }
            }};
        }
        Ok(match self.dtype {
            NNRT_DTYPE_U8 => typed!(u8, U8),
            NNRT_DTYPE_I8 => typed!(i8, I8),
            NNRT_DTYPE_U16 => typed!(u16, U16),
            NNRT_DTYPE_I16 => typed!(i16, I16),
            NNRT_DTYPE_U32 => typed!(u32, U32),
            NNRT_DTYPE_I32 => typed!(i32, I32),
            NNRT_DTYPE_F32 => typed!(f32, F32),
            NNRT_DTYPE_F64 => typed!(f64, F64),
            other => {
                return Err(Error::invalid_argument(format!("volume dtype code {other} is unknown (use NNRT_DTYPE_*)")))
            }
        })
    }

    /// The view `nnrt_predict` and `nnrt_estimate_peak_bytes` work on.
    pub(crate) fn view<'v>(&self, voxels: &'v Voxels<'_>) -> Result<VolumeView<'v>> {
        VolumeView::new(voxels.view(), self.dims, self.channels, self.geometry())
    }
}

/// `dims` x `channels` elements, checked against overflow and against buffers no allocation could
/// address (a corrupt description rather than a big volume).
fn element_count(dims: [usize; 3], channels: usize) -> Result<usize> {
    dims.iter()
        .chain(std::iter::once(&channels))
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n > 0 && n <= isize::MAX as usize / 8)
        .ok_or_else(|| {
            Error::invalid_image(format!("volume dims {dims:?} x {channels} channel(s) are zero or overflow"))
        })
}

/// Byte strides as element strides; each must be a multiple of the element size.
fn element_strides(byte_strides: [i64; 4], size: usize) -> Result<[isize; 4]> {
    let mut out = [0isize; 4];
    for (o, &b) in out.iter_mut().zip(&byte_strides) {
        if b % size as i64 != 0 {
            return Err(Error::invalid_argument(format!(
                "byte_strides {byte_strides:?} are not multiples of the element size ({size} bytes)"
            )));
        }
        *o = isize::try_from(b / size as i64)
            .map_err(|_| Error::invalid_argument(format!("byte_strides {byte_strides:?} overflow")))?;
    }
    Ok(out)
}

/// Copies the strided voxels into `packed`, x fastest, channel slowest.
///
/// # Safety
/// Every element `first + x*s[0] + y*s[1] + z*s[2] + c*s[3]` within dims and channels is readable.
unsafe fn gather<T: Copy>(first: *const T, dims: [usize; 3], channels: usize, s: [isize; 4], packed: &mut [T]) {
    let mut out = packed.iter_mut();
    for c in 0..channels as isize {
        for z in 0..dims[2] as isize {
            for y in 0..dims[1] as isize {
                // SAFETY: within the described volume per the function's contract.
                let row = unsafe { first.offset(c * s[3] + z * s[2] + y * s[1]) };
                for x in 0..dims[0] as isize {
                    if let Some(slot) = out.next() {
                        // SAFETY: as above.
                        *slot = unsafe { *row.offset(x * s[0]) };
                    }
                }
            }
        }
    }
}

/// Writes `labels` (x fastest, `dims`) into the caller's buffer as `dtype` at `byte_strides`
/// (all 0: packed, x fastest).
///
/// # Safety
/// `dst` must address every voxel the dims and strides describe, writable, aligned for `dtype`.
pub(crate) unsafe fn scatter_labels(
    labels: &Labels,
    dims: [usize; 3],
    dst: *mut c_void,
    dtype: u32,
    byte_strides: [i64; 3],
) -> Result<()> {
    macro_rules! write_as {
        ($t:ty) => {{
            let size = std::mem::size_of::<$t>();
            if (dst as usize) % std::mem::align_of::<$t>() != 0 {
                return Err(Error::invalid_argument(format!("dst is not aligned for {}", stringify!($t))));
            }
            if f64::from(labels.max_value()) > <$t>::MAX as f64 {
                return Err(Error::invalid_argument(format!(
                    "label {} does not fit {}",
                    labels.max_value(),
                    stringify!($t)
                )));
            }
            let strides = if byte_strides == [0; 3] {
                [1, dims[0] as isize, (dims[0] * dims[1]) as isize, 0]
            } else {
                element_strides([byte_strides[0], byte_strides[1], byte_strides[2], 0], size)?
            };
            let dst = dst as *mut $t;
            let mut index = 0usize;
            for z in 0..dims[2] as isize {
                for y in 0..dims[1] as isize {
                    for x in 0..dims[0] as isize {
                        let value = labels.get(index) as $t;
                        index += 1;
                        // SAFETY: within the caller's buffer per the function's contract.
                        unsafe { *dst.offset(z * strides[2] + y * strides[1] + x * strides[0]) = value };
                    }
                }
            }
        }};
    }
    match dtype {
        NNRT_DTYPE_U8 => write_as!(u8),
        NNRT_DTYPE_U16 => write_as!(u16),
        NNRT_DTYPE_I16 => write_as!(i16),
        NNRT_DTYPE_U32 => write_as!(u32),
        NNRT_DTYPE_I32 => write_as!(i32),
        NNRT_DTYPE_F32 => write_as!(f32),
        NNRT_DTYPE_F64 => write_as!(f64),
        other => {
            return Err(Error::invalid_argument(format!(
                "dtype {other} cannot hold labels (NNRT_DTYPE_U8, U16, I16, U32, I32, F32 or F64)"
            )))
        }
    }
    Ok(())
}
