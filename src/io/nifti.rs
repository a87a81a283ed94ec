//! NIfTI-1 images read the way nnU-Net's SimpleITKIO sees them, and label maps written back with
//! the input's header.
//!
//! The data block of a NIfTI file is already the buffer nnU-Net works on: i (x) fastest, so it is
//! the C-order array `(z, y, x)`. Voxels become float32 after the header's `scl_slope`/`scl_inter`
//! scaling, spacing is `|pixdim[1..=3]|`, and a 4-D file's fourth axis holds channels, as in
//! SimpleITKIO. Labels are written by copying the input header and replacing only the datatype,
//! dims and scaling, so the geometry (qform, sform, pixdim) is exactly the input's.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use ndarray::ArrayView3;
use nifti::writer::WriterOptions;
use nifti::{InMemNiftiVolume, NiftiHeader, NiftiType};

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
    let file = std::fs::File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
    let len = file.metadata().map_err(|e| Error::io("cannot read", path, e))?.len();
    let mut source = BufReader::new(file);
    let gz = source.fill_buf().map_err(|e| Error::io("cannot read", path, e))?.starts_with(&GZIP_MAGIC);
    let image = if gz { decode_stream(GzDecoder::new(source), gz_budget(len)) } else { decode_stream(source, len) };
    image.map_err(|e| e.context(format!("image {}", path.display())))
}

/// Decodes one NIfTI-1 file held in memory, gzip-compressed or not (told apart by the gzip magic
/// bytes, not by a name): what [`read_image`] does after opening the file.
///
/// A header that claims more voxels than the bytes can hold is an error before anything is
/// allocated for them, so a few hundred crafted bytes cannot ask for gigabytes.
pub fn decode(bytes: &[u8]) -> Result<NiftiImage> {
    if bytes.starts_with(&GZIP_MAGIC) {
        decode_stream(GzDecoder::new(bytes), gz_budget(bytes.len() as u64))
    } else {
        decode_stream(bytes, bytes.len() as u64)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The most bytes `compressed` gzip bytes can inflate to: deflate never exceeds 1032:1.
fn gz_budget(compressed: u64) -> u64 {
    compressed.saturating_mul(1032)
}

/// Header, then (skipping any extensions up to `vox_offset`) the data block, from a stream that
/// holds at most `budget` bytes.
fn decode_stream(mut source: impl Read, budget: u64) -> Result<NiftiImage> {
    let header = NiftiHeader::from_reader(&mut source).map_err(|e| {
        let why = match e {
            nifti::NiftiError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                "it ends inside the 348-byte NIfTI-1 header".to_string()
            }
            nifti::NiftiError::Io(e) => e.to_string(),
            other => other.to_string(),
        };
        Error::invalid_image(format!("cannot read NIfTI file: {why}"))
    })?;
    if &header.magic == b"ni1\0" {
        return Err(Error::invalid_image(
            "a header-only NIfTI file (.hdr/.img pair); use a single .nii or .nii.gz file",
        ));
    }
    // The data block starts at vox_offset, never before the 4-byte extender after the header.
    if !(header.vox_offset.is_finite() && header.vox_offset >= 0.0) {
        return Err(Error::invalid_image(format!("vox_offset {} is not a byte offset", header.vox_offset)));
    }
    let start = (header.vox_offset as u64).max(HEADER_AND_EXTENDER);
    let rank = header.dim[0] as usize;
    if !(1..=7).contains(&rank) {
        return Err(Error::invalid_image(format!("dim[0] = {rank}, not a valid NIfTI rank")));
    }
    if header.bitpix <= 0 || header.bitpix % 8 != 0 {
        return Err(Error::invalid_image(format!("bitpix {} is not a whole number of bytes", header.bitpix)));
    }
    let claimed = header.dim[1..=rank]
        .iter()
        .try_fold(header.bitpix as u64 / 8, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&bytes| bytes.saturating_add(start) <= budget);
    let Some(data_bytes) = claimed else {
        return Err(Error::invalid_image(format!(
            "dims {:?} of {}-bit voxels from byte {start} need more bytes than the file holds",
            &header.dim[1..=rank],
            header.bitpix
        )));
    };
    let skip = start - NIFTI1_HEADER_SIZE;
    let skipped = std::io::copy(&mut (&mut source).take(skip), &mut std::io::sink())
        .map_err(|e| Error::invalid_image(format!("cannot read up to vox_offset: {e}")))?;
    if skipped != skip {
        return Err(Error::invalid_image(format!("the file ends before vox_offset {start}")));
    }
    let volume = InMemNiftiVolume::from_reader(source, &header).map_err(|e| {
        Error::invalid_image(format!("cannot read the data block ({data_bytes} bytes from byte {start}): {e}"))
    })?;
    decode_volume(header, volume)
}

/// Size of a NIfTI-1 header, and the header with its 4-byte extender.
const NIFTI1_HEADER_SIZE: u64 = 348;
const HEADER_AND_EXTENDER: u64 = 352;

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

fn decode_volume(header: NiftiHeader, volume: InMemNiftiVolume) -> Result<NiftiImage> {
    let rank = header.dim[0] as usize;
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
    let geometry = geometry_of(&header)?;
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

/// ITK's view of the header (ITK 5.4's `NiftiImageIO`, what SimpleITK and so nnU-Net read):
/// spacing is `|pixdim[1..=3]|`; origin and direction come from one of the two transforms,
/// converted from NIfTI's RAS to ITK's LPS:
///
/// * neither `qform_code` nor `sform_code` set: origin 0, identity direction;
/// * otherwise the sform (when `sform_code > 0`) is used if its columns, normalised, are
///   orthonormal within 1e-4 and either there is no qform, or `sform_code` is 1
///   (`NIFTI_XFORM_SCANNER_ANAT`), or its rotation, column norms and offset agree with the
///   qform's within 1e-4 (ITK compares the SVDs; for an orthonormal sform that is the same test);
/// * else the qform (when `qform_code > 0`), else the file is refused as ITK refuses it.
///
/// Only carried through to outputs; nnU-Net never reorients, so the segmentation does not depend
/// on it. tests/geometry.rs checks this against SimpleITK on headers crafted for each branch.
fn geometry_of(h: &NiftiHeader) -> Result<Geometry> {
    let spacing = [h.pixdim[1].abs() as f64, h.pixdim[2].abs() as f64, h.pixdim[3].abs() as f64];
    if h.qform_code <= 0 && h.sform_code <= 0 {
        return Ok(Geometry { spacing, origin: [0.0; 3], direction: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0] });
    }
    let qform = (h.qform_code > 0).then(|| qform_matrix(h));
    let sform = (h.sform_code > 0).then(|| {
        let rows = [h.srow_x, h.srow_y, h.srow_z];
        Affine {
            linear: std::array::from_fn(|r| std::array::from_fn(|c| rows[r][c] as f64)),
            offset: std::array::from_fn(|r| rows[r][3] as f64),
        }
    });
    let chosen = match (sform, qform) {
        (Some(s), q) if s.orthonormal_columns() && (q.is_none() || h.sform_code == 1 || s.agrees_with(&q.unwrap())) => s,
        (_, Some(q)) => q,
        (_, None) => {
            return Err(Error::invalid_image(
                "the sform is not a rotation with scaling and there is no qform: no orthonormal direction to read (ITK refuses such files too)",
            ))
        }
    };
    // RAS -> LPS flips the first two world axes; direction columns are the unit axis vectors.
    let lps = [-1.0, -1.0, 1.0];
    let mut direction = [0.0; 9];
    for col in 0..3 {
        let norm = chosen.column_norm(col);
        for row in 0..3 {
            direction[row * 3 + col] = if norm > 0.0 { lps[row] * chosen.linear[row][col] / norm } else { 0.0 };
        }
    }
    let origin = std::array::from_fn(|r| lps[r] * chosen.offset[r]);
    Ok(Geometry { spacing, origin, direction })
}

/// A voxel-to-world transform: 3x3 linear part (RAS) and offset.
#[derive(Debug, Clone, Copy)]
struct Affine {
    linear: [[f64; 3]; 3],
    offset: [f64; 3],
}

impl Affine {
    fn column_norm(&self, col: usize) -> f64 {
        (0..3).map(|k| self.linear[k][col] * self.linear[k][col]).sum::<f64>().sqrt()
    }

    /// Unit columns; a zero column stays zero.
    fn rotation(&self) -> [[f64; 3]; 3] {
        let norms: [f64; 3] = std::array::from_fn(|c| self.column_norm(c));
        std::array::from_fn(|r| {
            std::array::from_fn(|c| if norms[c] > 0.0 { self.linear[r][c] / norms[c] } else { 0.0 })
        })
    }

    /// Whether the normalised columns form an orthonormal matrix (R·Rᵀ = I within 1e-4).
    fn orthonormal_columns(&self) -> bool {
        let r = self.rotation();
        (0..3).all(|i| {
            (0..3).all(|j| {
                let dot: f64 = (0..3).map(|k| r[i][k] * r[j][k]).sum();
                (dot - if i == j { 1.0 } else { 0.0 }).abs() <= 1e-4
            })
        })
    }

    /// Same rotation, column norms and offset within 1e-4.
    fn agrees_with(&self, other: &Affine) -> bool {
        let (a, b) = (self.rotation(), other.rotation());
        (0..3).all(|i| {
            (0..3).all(|j| (a[i][j] - b[i][j]).abs() <= 1e-4)
                && (self.column_norm(i) - other.column_norm(i)).abs() <= 1e-4
                && (self.offset[i] - other.offset[i]).abs() <= 1e-4
        })
    }
}

/// The qform as the NIfTI reference library builds it: the quaternion's rotation (its `a`
/// recomputed, and a 180-degree rotation's `(b, c, d)` renormalised), scaled by pixdim (a
/// non-positive spacing counting as 1), the third column by `qfac`.
fn qform_matrix(h: &NiftiHeader) -> Affine {
    let (mut b, mut c, mut d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
    let mut a = 1.0 - (b * b + c * c + d * d);
    if a < 1e-7 {
        let scale = 1.0 / (b * b + c * c + d * d).sqrt();
        (b, c, d) = (b * scale, c * scale, d * scale);
        a = 0.0;
    } else {
        a = a.sqrt();
    }
    let size = |v: f32| if v > 0.0 { v as f64 } else { 1.0 };
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let scale = [size(h.pixdim[1]), size(h.pixdim[2]), size(h.pixdim[3]) * qfac];
    let r = [
        [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
        [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
        [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    Affine {
        linear: std::array::from_fn(|row| std::array::from_fn(|col| r[row][col] * scale[col])),
        offset: [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64],
    }
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
    // The nifti writer swaps the name's last extension before `.nii` for its own, so the temporary
    // name has no dot but the leading one (which no extension counts) before `.nii[.gz]`.
    let partial = path.with_file_name(format!(
        ".{}-partial-{}.nii{}",
        stem.replace('.', "_"),
        std::process::id(),
        if compress { ".gz" } else { "" }
    ));
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
    fn decode_of_the_bytes_is_read_image_of_the_file() {
        let dir = std::env::temp_dir().join(format!("nnrt-nifti-bytes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Uncompressed, and a name with dots, once wrote under the wrong temporary name.
        for name in ["labels.nii.gz", "labels.nii", "case.v2.nii", "case.v2.nii.gz"] {
            let path = dir.join(name);
            let dims = [5, 3, 2];
            let labels: Vec<u8> = (0..30).map(|i| (i % 4) as u8).collect();
            write_labels(&path, LabelData::U8(&labels), dims, &header(dims, [0.5, 0.6, 3.0])).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.starts_with(&GZIP_MAGIC), name.ends_with(".gz"));
            let (from_file, from_bytes) = (read_image(&path).unwrap(), decode(&bytes).unwrap());
            assert_eq!(from_bytes.volume.data, from_file.volume.data);
            assert_eq!(from_bytes.volume.dims, dims);
            assert_eq!(from_bytes.volume.geometry, from_file.volume.geometry);
        }
        let mut left: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["case.v2.nii", "case.v2.nii.gz", "labels.nii", "labels.nii.gz"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A 352-byte header with the given dims and datatype, no data.
    fn bare_header(dims: [u16; 3], datatype: i16, bitpix: i16) -> Vec<u8> {
        let mut bytes = vec![0u8; 352];
        bytes[0..4].copy_from_slice(&348i32.to_le_bytes());
        let dim = [3u16, dims[0], dims[1], dims[2], 1, 1, 1, 1];
        for (i, d) in dim.iter().enumerate() {
            bytes[40 + 2 * i..42 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        bytes[70..72].copy_from_slice(&datatype.to_le_bytes());
        bytes[72..74].copy_from_slice(&bitpix.to_le_bytes());
        for i in 0..4 {
            bytes[76 + 4 * i..80 + 4 * i].copy_from_slice(&1.0f32.to_le_bytes());
        }
        bytes[108..112].copy_from_slice(&352.0f32.to_le_bytes());
        bytes[344..348].copy_from_slice(b"n+1\0");
        bytes
    }

    #[test]
    fn a_header_claiming_more_than_the_file_holds_is_refused_before_allocating() {
        // 65535^3 float64 voxels: 2 PB claimed by 352 bytes.
        let err = decode(&bare_header([65535; 3], 64, 64)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
        assert!(err.message().contains("need more bytes than the file holds"), "{err}");
        // Exactly enough bytes decodes; one short is refused.
        let mut bytes = bare_header([2, 2, 2], 2, 8);
        bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(decode(&bytes).unwrap().volume.data, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        bytes.pop();
        assert!(decode(&bytes).unwrap_err().message().contains("need more bytes"));
        let bytes = bare_header([2, 2, 2], 2, -8);
        assert!(decode(&bytes).unwrap_err().message().contains("bitpix"));
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
