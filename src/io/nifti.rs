//! NIfTI-1 images read the way nnU-Net's SimpleITKIO sees them, and label maps written back with
//! the input's header.
//!
//! The data block of a NIfTI file is already the buffer nnU-Net works on: i (x) fastest, so it is
//! the C-order array `(z, y, x)`. Voxels become float32 after the header's `scl_slope`/`scl_inter`
//! scaling, spacing is `|pixdim[1..=3]|`, and a 4-D file's fourth axis holds channels, as in
//! SimpleITKIO. Labels are written by copying the input header and replacing only the datatype,
//! dims and scaling, so the geometry (qform, sform, pixdim) is exactly the input's.

use std::path::{Path, PathBuf};

use ndarray::ArrayView3;
use nifti::writer::WriterOptions;
use nifti::{InMemNiftiObject, NiftiHeader, NiftiObject, NiftiType, ReaderOptions};

use crate::error::{Error, ErrorKind, Result};
use crate::volume::{Geometry, Volume};

/// A NIfTI image read from disk: float32 voxels, geometry, and the header to write results with.
#[derive(Debug, Clone)]
pub struct NiftiImage {
    /// Voxels and geometry; several files read together become channels.
    pub volume: Volume,
    /// Header of the first file, reused for outputs so their geometry matches.
    pub header: NiftiHeader,
    /// Element type stored in the (first) file, for messages and reports.
    pub stored_type: String,
}

/// Reads one `.nii` / `.nii.gz` file (3-D, or 4-D with the fourth axis as channels).
pub fn read_image(path: &Path) -> Result<NiftiImage> {
    if !path.is_file() {
        return Err(Error::new(ErrorKind::Io, format!("no such image file {}", path.display())));
    }
    let object = ReaderOptions::new()
        .read_file(path)
        .map_err(|e| Error::invalid_image(format!("cannot read NIfTI file {}: {e}", path.display())))?;
    decode(object).map_err(|e| e.context(format!("image {}", path.display())))
}

/// Reads one file per channel (`CASE_0000.nii.gz`, `CASE_0001.nii.gz`, ...) into one volume.
/// All channels must share dims and spacing, as SimpleITKIO requires.
pub fn read_channels(paths: &[PathBuf]) -> Result<NiftiImage> {
    let (first, rest) = paths.split_first().ok_or_else(|| Error::invalid_argument("no image files given"))?;
    let mut image = read_image(first)?;
    for path in rest {
        let next = read_image(path)?;
        if next.volume.dims != image.volume.dims {
            return Err(Error::shape_mismatch(format!(
                "{} has dims {:?} but {} has {:?}; all channels of a case must have the same size",
                path.display(),
                next.volume.dims,
                first.display(),
                image.volume.dims
            )));
        }
        let (a, b) = (next.volume.geometry.spacing, image.volume.geometry.spacing);
        if a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-5 * y.abs().max(1.0)) {
            return Err(Error::shape_mismatch(format!(
                "{} has spacing {a:?} but {} has {b:?}; all channels of a case must have the same spacing",
                path.display(),
                first.display()
            )));
        }
        image.volume.channels += next.volume.channels;
        image.volume.data.extend_from_slice(&next.volume.data);
    }
    Ok(image)
}

fn decode(object: InMemNiftiObject) -> Result<NiftiImage> {
    let header = object.header().clone();
    let rank = header.dim[0] as usize;
    if !(1..=7).contains(&rank) {
        return Err(Error::invalid_image(format!("dim[0] = {rank}, not a valid NIfTI rank")));
    }
    let mut sizes = [1usize; 7];
    for (i, size) in sizes.iter_mut().enumerate().take(rank) {
        *size = header.dim[i + 1] as usize;
    }
    if sizes[..rank].contains(&0) {
        return Err(Error::invalid_image(format!("dims {:?} contain a zero", &sizes[..rank])));
    }
    if sizes[4..].iter().any(|&s| s > 1) {
        return Err(Error::invalid_image(format!(
            "a {rank}-D image with dims {:?}; only 3-D images, or 4-D images whose fourth axis holds channels, are supported",
            &sizes[..rank]
        )));
    }
    let dims = [sizes[0], sizes[1], sizes[2]];
    let channels = sizes[3];
    let datatype = header
        .data_type()
        .map_err(|e| Error::invalid_image(format!("unknown datatype code {}: {e}", header.datatype)))?;
    let voxels = dims.iter().product::<usize>() * channels;
    let volume = object.into_volume();
    let raw_len = volume.raw_data().len();
    if raw_len < voxels * datatype.size_of() {
        return Err(Error::invalid_image(format!(
            "data block holds {raw_len} bytes but dims {dims:?} x {channels} of {datatype:?} need {}",
            voxels * datatype.size_of()
        )));
    }
    let (slope, inter) = (header.scl_slope as f64, header.scl_inter as f64);
    let scaling = (slope != 0.0 && !(slope == 1.0 && inter == 0.0)).then_some((slope, inter));
    let data = volume.into_f32(datatype, scaling)?;
    let geometry = geometry_of(&header);
    let image =
        NiftiImage { volume: Volume { data, dims, channels, geometry }, header, stored_type: format!("{datatype:?}") };
    // Validates spacing, direction and finite voxels with the same messages as the C ABI.
    image.volume.view()?;
    Ok(image)
}

/// Voxels of every supported element type as float32: through float64 (exact for every type up
/// to 32 bits), scaled there when the header asks, rounded once.
trait TypedData {
    fn into_f32(self, datatype: NiftiType, scaling: Option<(f64, f64)>) -> Result<Vec<f32>>;
}

impl TypedData for nifti::InMemNiftiVolume {
    fn into_f32(self, datatype: NiftiType, scaling: Option<(f64, f64)>) -> Result<Vec<f32>> {
        fn convert<T: Copy + Into<f64>>(v: Vec<T>, scaling: Option<(f64, f64)>) -> Vec<f32> {
            match scaling {
                Some((slope, inter)) => v.into_iter().map(|x| (x.into() * slope + inter) as f32).collect(),
                None => v.into_iter().map(|x| x.into() as f32).collect(),
            }
        }
        let bad = |e: nifti::NiftiError| Error::invalid_image(format!("cannot decode {datatype:?} voxels: {e}"));
        Ok(match datatype {
            NiftiType::Uint8 => convert(self.into_nifti_typed_data::<u8>().map_err(bad)?, scaling),
            NiftiType::Int8 => convert(self.into_nifti_typed_data::<i8>().map_err(bad)?, scaling),
            NiftiType::Uint16 => convert(self.into_nifti_typed_data::<u16>().map_err(bad)?, scaling),
            NiftiType::Int16 => convert(self.into_nifti_typed_data::<i16>().map_err(bad)?, scaling),
            NiftiType::Uint32 => convert(self.into_nifti_typed_data::<u32>().map_err(bad)?, scaling),
            NiftiType::Int32 => convert(self.into_nifti_typed_data::<i32>().map_err(bad)?, scaling),
            NiftiType::Float32 => convert(self.into_nifti_typed_data::<f32>().map_err(bad)?, scaling),
            NiftiType::Float64 => convert(self.into_nifti_typed_data::<f64>().map_err(bad)?, scaling),
            other => {
                return Err(Error::invalid_image(format!(
                    "voxel type {other:?} is not supported (use uint8/int8/uint16/int16/uint32/int32/float32/float64)"
                )))
            }
        })
    }
}

/// ITK's view of the header: LPS world coordinates from the sform (when its code is set), else
/// the qform, else the plain pixdim scaling. Only carried through to outputs; nnU-Net never
/// reorients, so the segmentation does not depend on it.
fn geometry_of(h: &NiftiHeader) -> Geometry {
    let spacing = [h.pixdim[1].abs() as f64, h.pixdim[2].abs() as f64, h.pixdim[3].abs() as f64];
    // 3x3 linear part (RAS) and the offset, from whichever transform the header declares.
    let (linear, offset): ([[f64; 3]; 3], [f64; 3]) = if h.sform_code > 0 {
        let rows = [h.srow_x, h.srow_y, h.srow_z];
        let m = std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c] as f64));
        (m, std::array::from_fn(|r| rows[r][3] as f64))
    } else if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let m = std::array::from_fn(|row| {
            std::array::from_fn(|col| r[row][col] * spacing[col] * if col == 2 { qfac } else { 1.0 })
        });
        (m, [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64])
    } else {
        let m = std::array::from_fn(|r| std::array::from_fn(|c| if r == c { spacing[c] } else { 0.0 }));
        (m, [0.0; 3])
    };
    // RAS -> LPS flips the first two world axes; direction columns are the unit axis vectors.
    let lps = [-1.0, -1.0, 1.0];
    let mut direction = [0.0; 9];
    for row in 0..3 {
        for col in 0..3 {
            let norm = (0..3).map(|k| linear[k][col] * linear[k][col]).sum::<f64>().sqrt();
            direction[row * 3 + col] = if norm > 0.0 { lps[row] * linear[row][col] / norm } else { 0.0 };
        }
    }
    let origin = [lps[0] * offset[0], lps[1] * offset[1], lps[2] * offset[2]];
    Geometry { spacing, origin, direction }
}

/// Label values as nnU-Net writes them: uint8 when every value is below 255, else uint16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelData<'a> {
    /// One byte per voxel.
    U8(&'a [u8]),
    /// Two bytes per voxel.
    U16(&'a [u16]),
}

/// Writes a label map of `dims` (x, y, z; x fastest) with `reference`'s geometry.
///
/// The file appears at `path` only when it is complete: it is written next to it under a
/// temporary name and renamed, so a failure never leaves a partial output behind.
pub fn write_labels(path: &Path, labels: LabelData<'_>, dims: [usize; 3], reference: &NiftiHeader) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::invalid_argument(format!("output path {} has no file name", path.display())))?;
    let compress = name.ends_with(".gz");
    let stem = name.trim_end_matches(".gz").trim_end_matches(".nii");
    let partial =
        path.with_file_name(format!(".{stem}.partial-{}.nii{}", std::process::id(), if compress { ".gz" } else { "" }));
    let mut header = reference.clone();
    header.dim = [3, dims[0] as u16, dims[1] as u16, dims[2] as u16, 1, 1, 1, 1];
    header.pixdim[4] = 0.0;
    header.cal_min = 0.0;
    header.cal_max = 0.0;
    let shape = (dims[2], dims[1], dims[0]);
    let written = (|| {
        let writer = WriterOptions::new(&partial).reference_header(&header).compress(compress);
        // The writer takes an (x, y, z)-indexed array; our (z, y, x) C-order buffer reversed is that.
        match labels {
            LabelData::U8(v) => {
                writer.write_nifti(&ArrayView3::from_shape(shape, v).map_err(shape_error)?.reversed_axes())
            }
            LabelData::U16(v) => {
                writer.write_nifti(&ArrayView3::from_shape(shape, v).map_err(shape_error)?.reversed_axes())
            }
        }
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot write {}: {e}", path.display())))
    })();
    let result =
        written.and_then(|()| std::fs::rename(&partial, path).map_err(|e| Error::io("cannot move result to", path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn shape_error(e: ndarray::ShapeError) -> Error {
    Error::shape_mismatch(format!("label buffer does not match its dims: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dims: [usize; 3], spacing: [f32; 3]) -> NiftiHeader {
        let mut h = NiftiHeader::default();
        h.dim = [3, dims[0] as u16, dims[1] as u16, dims[2] as u16, 1, 1, 1, 1];
        h.pixdim = [1.0, spacing[0], spacing[1], spacing[2], 0.0, 0.0, 0.0, 0.0];
        h.sform_code = 1;
        h.srow_x = [-spacing[0], 0.0, 0.0, 10.0];
        h.srow_y = [0.0, -spacing[1], 0.0, 20.0];
        h.srow_z = [0.0, 0.0, spacing[2], -5.0];
        h
    }

    #[test]
    fn labels_round_trip_with_the_reference_geometry() {
        let dir = std::env::temp_dir().join(format!("nnrt-nifti-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("labels.nii.gz");
        let dims = [3, 2, 4];
        let labels: Vec<u8> = (0..24).map(|i| (i % 3) as u8).collect();
        write_labels(&path, LabelData::U8(&labels), dims, &header(dims, [0.7, 0.8, 2.5])).unwrap();
        let back = read_image(&path).unwrap();
        assert_eq!(back.volume.dims, dims);
        assert_eq!(back.volume.data, labels.iter().map(|&v| v as f32).collect::<Vec<_>>());
        let g = back.volume.geometry;
        assert_eq!(g.spacing.map(|s| (s * 1000.0).round() / 1000.0), [0.7, 0.8, 2.5]);
        // sform (-sx, -sy, sz) in RAS is the identity in LPS; origin flips x and y.
        assert_eq!(g.direction, [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(g.origin, [-10.0, -20.0, -5.0]);
        let leftovers = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("partial"))
            .count();
        assert_eq!(leftovers, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_and_corrupt_files_are_clear_errors() {
        let err = read_image(Path::new("/nonexistent/ct.nii.gz")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        let dir = std::env::temp_dir().join(format!("nnrt-nifti-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("corrupt.nii.gz");
        std::fs::write(&path, b"not a nifti file at all").unwrap();
        let err = read_image(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage, "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
