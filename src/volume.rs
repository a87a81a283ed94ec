//! Volumes as callers hold them: a buffer with x fastest, channels one after another, and the
//! geometry (spacing, origin, direction) of the image.
//!
//! That memory order is the one of ITK, NIfTI and VTK, and it is exactly the C-order array
//! `(channel, z, y, x)` that nnU-Net sees through SimpleITK. So a view over the caller's buffer
//! needs no reordering: preprocessing reads it directly and copies only what it crops.

use crate::error::{Error, Result};

/// Voxel values of a caller's buffer, borrowed, in any of the element types medical images use.
#[derive(Debug, Clone, Copy)]
pub enum VoxelData<'a> {
    /// Unsigned 8-bit voxels.
    U8(&'a [u8]),
    /// Signed 8-bit voxels.
    I8(&'a [i8]),
    /// Unsigned 16-bit voxels.
    U16(&'a [u16]),
    /// Signed 16-bit voxels (typical CT).
    I16(&'a [i16]),
    /// Unsigned 32-bit voxels.
    U32(&'a [u32]),
    /// Signed 32-bit voxels.
    I32(&'a [i32]),
    /// 32-bit float voxels.
    F32(&'a [f32]),
    /// 64-bit float voxels.
    F64(&'a [f64]),
}

impl VoxelData<'_> {
    /// Number of voxels in the buffer (all channels).
    pub fn len(&self) -> usize {
        match self {
            VoxelData::U8(d) => d.len(),
            VoxelData::I8(d) => d.len(),
            VoxelData::U16(d) => d.len(),
            VoxelData::I16(d) => d.len(),
            VoxelData::U32(d) => d.len(),
            VoxelData::I32(d) => d.len(),
            VoxelData::F32(d) => d.len(),
            VoxelData::F64(d) => d.len(),
        }
    }

    /// True when the buffer holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Name of the element type, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            VoxelData::U8(_) => "uint8",
            VoxelData::I8(_) => "int8",
            VoxelData::U16(_) => "uint16",
            VoxelData::I16(_) => "int16",
            VoxelData::U32(_) => "uint32",
            VoxelData::I32(_) => "int32",
            VoxelData::F32(_) => "float32",
            VoxelData::F64(_) => "float64",
        }
    }

    /// Voxel `i` as float32, the conversion nnU-Net applies on reading (`astype(float32)`).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            VoxelData::U8(d) => d[i] as f32,
            VoxelData::I8(d) => d[i] as f32,
            VoxelData::U16(d) => d[i] as f32,
            VoxelData::I16(d) => d[i] as f32,
            VoxelData::U32(d) => d[i] as f32,
            VoxelData::I32(d) => d[i] as f32,
            VoxelData::F32(d) => d[i],
            VoxelData::F64(d) => d[i] as f32,
        }
    }

    /// Converts `out.len()` voxels starting at `start`, `stride` apart, to float32 (one type
    /// dispatch per row instead of per voxel).
    pub fn read_f32(&self, start: usize, stride: usize, out: &mut [f32]) {
        fn gather<T: Copy>(d: &[T], start: usize, stride: usize, out: &mut [f32], f: impl Fn(T) -> f32) {
            let len = out.len();
            if stride == 1 {
                out.iter_mut().zip(&d[start..start + len]).for_each(|(o, &v)| *o = f(v));
            } else {
                out.iter_mut().enumerate().for_each(|(k, o)| *o = f(d[start + k * stride]));
            }
        }
        match self {
            VoxelData::U8(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::I8(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::U16(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::I16(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::U32(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::I32(d) => gather(d, start, stride, out, |v| v as f32),
            VoxelData::F32(d) => gather(d, start, stride, out, |v| v),
            VoxelData::F64(d) => gather(d, start, stride, out, |v| v as f32),
        }
    }

    /// First and last index in `range` whose voxel is nonzero as float32, if any.
    pub fn nonzero_extent(&self, range: std::ops::Range<usize>) -> Option<(usize, usize)> {
        fn extent<T: Copy>(
            d: &[T],
            range: std::ops::Range<usize>,
            nonzero: impl Fn(T) -> bool,
        ) -> Option<(usize, usize)> {
            let row = &d[range.clone()];
            let first = row.iter().position(|&v| nonzero(v))?;
            let last = row.iter().rposition(|&v| nonzero(v))?;
            Some((range.start + first, range.start + last))
        }
        match self {
            VoxelData::U8(d) => extent(d, range, |v| v != 0),
            VoxelData::I8(d) => extent(d, range, |v| v != 0),
            VoxelData::U16(d) => extent(d, range, |v| v != 0),
            VoxelData::I16(d) => extent(d, range, |v| v != 0),
            VoxelData::U32(d) => extent(d, range, |v| v != 0),
            VoxelData::I32(d) => extent(d, range, |v| v != 0),
            VoxelData::F32(d) => extent(d, range, |v| v != 0.0),
            // The test is on the float32 value nnU-Net sees: tiny float64 values round to zero.
            VoxelData::F64(d) => extent(d, range, |v| v as f32 != 0.0),
        }
    }

    /// Index of the first voxel that is NaN or infinite after conversion to float32, if any.
    fn first_non_finite(&self) -> Option<usize> {
        match self {
            VoxelData::F32(d) => d.iter().position(|v| !v.is_finite()),
            VoxelData::F64(d) => d.iter().position(|v| !(*v as f32).is_finite()),
            _ => None,
        }
    }
}

/// Where a volume sits in the world: the ITK/SimpleITK image geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Voxel size in mm along x, y, z (the buffer's fastest axis first).
    pub spacing: [f64; 3],
    /// World position (mm) of the first voxel's centre.
    pub origin: [f64; 3],
    /// 3x3 direction cosines, row-major as ITK's `GetDirection()` returns them.
    pub direction: [f64; 9],
}

impl Geometry {
    /// Identity direction, zero origin, the given spacing (x, y, z).
    pub fn with_spacing(spacing: [f64; 3]) -> Self {
        Geometry { spacing, origin: [0.0; 3], direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] }
    }

    /// Checks spacing (finite, > 0), origin (finite) and direction (finite, orthonormal within 1e-3).
    pub fn validate(&self) -> Result<()> {
        for (axis, s) in ["x", "y", "z"].iter().zip(self.spacing) {
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::invalid_image(format!(
                    "spacing along {axis} is {s}; it must be a finite number > 0 mm"
                )));
            }
        }
        if self.origin.iter().any(|o| !o.is_finite()) {
            return Err(Error::invalid_image(format!("origin {:?} is not finite", self.origin)));
        }
        let d = &self.direction;
        if d.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid_image(format!("direction {d:?} is not finite")));
        }
        for i in 0..3 {
            for j in 0..3 {
                let dot: f64 = (0..3).map(|k| d[k * 3 + i] * d[k * 3 + j]).sum();
                let expected = if i == j { 1.0 } else { 0.0 };
                if (dot - expected).abs() > 1e-3 {
                    return Err(Error::invalid_image(format!(
                        "direction {d:?} is not orthonormal (column {i} . column {j} = {dot:.6})"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A borrowed, validated volume: `channels` blocks of `x * y * z` voxels, x fastest.
#[derive(Debug, Clone, Copy)]
pub struct VolumeView<'a> {
    data: VoxelData<'a>,
    dims: [usize; 3],
    channels: usize,
    geometry: Geometry,
}

impl<'a> VolumeView<'a> {
    /// Describes a caller's buffer. `dims` are (x, y, z), x fastest in memory; channels are
    /// stored one after the other (channel-major).
    ///
    /// Fails with [`crate::ErrorKind::InvalidImage`] on zero or overflowing dims, a buffer whose
    /// length is not `x * y * z * channels`, bad geometry, or NaN/infinite voxels.
    pub fn new(data: VoxelData<'a>, dims: [usize; 3], channels: usize, geometry: Geometry) -> Result<Self> {
        if dims.contains(&0) || channels == 0 {
            return Err(Error::invalid_image(format!(
                "volume has dims {dims:?} (x, y, z) and {channels} channel(s); every size must be at least 1"
            )));
        }
        let expected = dims
            .iter()
            .chain(std::iter::once(&channels))
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= isize::MAX as usize / 8)
            .ok_or_else(|| Error::invalid_image(format!("volume dims {dims:?} x {channels} channel(s) overflow")))?;
        if data.len() != expected {
            return Err(Error::invalid_image(format!(
                "buffer holds {} voxels but dims {dims:?} x {channels} channel(s) need {expected}",
                data.len()
            )));
        }
        geometry.validate()?;
        if let Some(i) = data.first_non_finite() {
            let per_channel = expected / channels;
            let (c, v) = (i / per_channel, i % per_channel);
            let (x, y, z) = (v % dims[0], (v / dims[0]) % dims[1], v / (dims[0] * dims[1]));
            return Err(Error::invalid_image(format!(
                "voxel (x={x}, y={y}, z={z}) of channel {c} is {}; images must not contain NaN or infinite values",
                data.get_f32(i)
            )));
        }
        Ok(VolumeView { data, dims, channels, geometry })
    }

    /// The voxel buffer.
    pub fn data(&self) -> VoxelData<'a> {
        self.data
    }

    /// (x, y, z) sizes.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Number of channels (input modalities).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Spacing, origin and direction.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Voxels per channel.
    pub fn voxels_per_channel(&self) -> usize {
        self.dims.iter().product()
    }
}

/// An owned float32 volume (what the NIfTI reader returns); borrow it with [`Volume::view`].
#[derive(Debug, Clone)]
pub struct Volume {
    /// `channels * z * y * x` voxels, x fastest.
    pub data: Vec<f32>,
    /// (x, y, z) sizes.
    pub dims: [usize; 3],
    /// Number of channels.
    pub channels: usize,
    /// Spacing, origin and direction.
    pub geometry: Geometry,
}

impl Volume {
    /// A validated view of this volume.
    pub fn view(&self) -> Result<VolumeView<'_>> {
        VolumeView::new(VoxelData::F32(&self.data), self.dims, self.channels, self.geometry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn geometry() -> Geometry {
        Geometry::with_spacing([0.7, 0.7, 2.0])
    }

    #[test]
    fn accepts_a_consistent_buffer() {
        let data = vec![0i16; 2 * 3 * 4 * 2];
        let view = VolumeView::new(VoxelData::I16(&data), [2, 3, 4], 2, geometry()).unwrap();
        assert_eq!(view.voxels_per_channel(), 24);
    }

    #[test]
    fn rejects_zero_dims_wrong_length_and_overflow() {
        let data = vec![0f32; 8];
        let kind = |r: Result<VolumeView<'_>>| r.unwrap_err().kind();
        assert_eq!(kind(VolumeView::new(VoxelData::F32(&data), [0, 2, 4], 1, geometry())), ErrorKind::InvalidImage);
        assert_eq!(kind(VolumeView::new(VoxelData::F32(&data), [2, 2, 3], 1, geometry())), ErrorKind::InvalidImage);
        assert_eq!(
            kind(VolumeView::new(VoxelData::F32(&data), [usize::MAX, 2, 2], 1, geometry())),
            ErrorKind::InvalidImage
        );
    }

    #[test]
    fn rejects_bad_spacing_direction_and_nan_voxels() {
        let data = vec![0f32; 8];
        for spacing in [[0.0, 1.0, 1.0], [1.0, -1.0, 1.0], [1.0, 1.0, f64::NAN], [f64::INFINITY, 1.0, 1.0]] {
            let err =
                VolumeView::new(VoxelData::F32(&data), [2, 2, 2], 1, Geometry::with_spacing(spacing)).unwrap_err();
            assert!(err.message().contains("spacing"), "{err}");
        }
        let mut skewed = geometry();
        skewed.direction[1] = 0.5;
        let err = VolumeView::new(VoxelData::F32(&data), [2, 2, 2], 1, skewed).unwrap_err();
        assert!(err.message().contains("orthonormal"), "{err}");
        let mut nan = data.clone();
        nan[5] = f32::NAN;
        let err = VolumeView::new(VoxelData::F32(&nan), [2, 2, 2], 1, geometry()).unwrap_err();
        assert!(err.message().contains("(x=1, y=0, z=1)"), "{err}");
    }
}
