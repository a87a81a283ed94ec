//! Label volumes and the regions (sets of labels) that metrics are computed on.

use std::collections::BTreeSet;

use rayon::prelude::*;
use serde::Serialize;

use super::surface::check_spacing;
use crate::error::{Error, Result};

/// Label values of a caller's buffer, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum LabelBuffer<'a> {
    /// One byte per voxel.
    U8(&'a [u8]),
    /// Two bytes per voxel.
    U16(&'a [u16]),
    /// Four bytes per voxel.
    U32(&'a [u32]),
    /// Float voxels holding integral values (what the NIfTI reader returns): each value must be
    /// a finite, non-negative integer no larger than `u32::MAX`.
    F32(&'a [f32]),
}

impl LabelBuffer<'_> {
    /// Number of voxels.
    pub fn len(&self) -> usize {
        match self {
            LabelBuffer::U8(d) => d.len(),
            LabelBuffer::U16(d) => d.len(),
            LabelBuffer::U32(d) => d.len(),
            LabelBuffer::F32(d) => d.len(),
        }
    }

    /// True when the buffer holds no voxel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Label of voxel `i`.
    #[inline]
    pub fn get(&self, i: usize) -> u32 {
        match self {
            LabelBuffer::U8(d) => d[i] as u32,
            LabelBuffer::U16(d) => d[i] as u32,
            LabelBuffer::U32(d) => d[i],
            LabelBuffer::F32(d) => d[i] as u32,
        }
    }

    /// `out[k]` = the region bits (see [`LabelMasks`]) of the label of voxel `start + k`.
    pub(crate) fn fill_masks(&self, start: usize, out: &mut [u64], masks: &LabelMasks) {
        fn fill<T: Copy>(data: &[T], out: &mut [u64], label: impl Fn(T) -> u32, masks: &LabelMasks) {
            for (o, &v) in out.iter_mut().zip(data) {
                *o = masks.mask(label(v));
            }
        }
        let n = out.len();
        match self {
            LabelBuffer::U8(d) => fill(&d[start..start + n], out, |v| v as u32, masks),
            LabelBuffer::U16(d) => fill(&d[start..start + n], out, |v| v as u32, masks),
            LabelBuffer::U32(d) => fill(&d[start..start + n], out, |v| v, masks),
            LabelBuffer::F32(d) => fill(&d[start..start + n], out, |v| v as u32, masks),
        }
    }

    /// `out[k] = 1` when the label of voxel `start + k` has region bit `bit`, else 0.
    pub(crate) fn fill_membership(&self, start: usize, out: &mut [u8], masks: &LabelMasks, bit: u64) {
        fn fill<T: Copy>(data: &[T], out: &mut [u8], label: impl Fn(T) -> u32, masks: &LabelMasks, bit: u64) {
            for (o, &v) in out.iter_mut().zip(data) {
                *o = (masks.mask(label(v)) & bit != 0) as u8;
            }
        }
        let n = out.len();
        match self {
            LabelBuffer::U8(d) => fill(&d[start..start + n], out, |v| v as u32, masks, bit),
            LabelBuffer::U16(d) => fill(&d[start..start + n], out, |v| v as u32, masks, bit),
            LabelBuffer::U32(d) => fill(&d[start..start + n], out, |v| v, masks, bit),
            LabelBuffer::F32(d) => fill(&d[start..start + n], out, |v| v as u32, masks, bit),
        }
    }

    /// Index of the first value that is not a label (F32 only).
    fn first_non_label(&self) -> Option<usize> {
        match self {
            LabelBuffer::F32(d) => {
                // Chunks are checked without early exit (vectorisable); the first bad chunk is
                // then searched for the voxel.
                const CHUNK: usize = 1 << 16;
                let chunk =
                    d.par_chunks(CHUNK).position_first(|c| c.iter().fold(false, |bad, &v| bad | !is_label(v)))?;
                d[chunk * CHUNK..].iter().position(|&v| !is_label(v)).map(|i| chunk * CHUNK + i)
            }
            _ => None,
        }
    }

    /// The distinct labels of the buffer, ascending.
    fn distinct(&self) -> BTreeSet<u32> {
        match self {
            LabelBuffer::U8(d) => distinct(d, |v| v as u32),
            LabelBuffer::U16(d) => distinct(d, |v| v as u32),
            LabelBuffer::U32(d) => distinct(d, |v| v),
            LabelBuffer::F32(d) => distinct(d, |v| v as u32),
        }
    }
}

/// Distinct labels: a presence table for labels below 2¹⁶, a set for the (rare) larger ones.
fn distinct<T: Copy + Sync>(data: &[T], label: impl Fn(T) -> u32 + Sync) -> BTreeSet<u32> {
    const SMALL: usize = 1 << 16;
    let (seen, large) = data
        .par_chunks(1 << 20)
        .map(|chunk| {
            let mut seen = vec![false; SMALL];
            let mut large = BTreeSet::new();
            for &v in chunk {
                let l = label(v);
                match seen.get_mut(l as usize) {
                    Some(s) => *s = true,
                    None => {
                        large.insert(l);
                    }
                }
            }
            (seen, large)
        })
        .reduce(
            || (vec![false; SMALL], BTreeSet::new()),
            |(mut a, mut la), (b, lb)| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x |= *y);
                la.extend(lb);
                (a, la)
            },
        );
    seen.iter().enumerate().filter(|(_, &s)| s).map(|(l, _)| l as u32).chain(large).collect()
}

/// True for a non-negative integer below 2³². Below 2²³ adding and subtracting 2²³ rounds to an
/// integer (exact arithmetic otherwise), so equality means integral; every float from 2²³ on is
/// an integer. NaN fails the first comparison.
#[inline]
fn is_label(v: f32) -> bool {
    const TWO_23: f32 = 8_388_608.0;
    (0.0..4_294_967_296.0).contains(&v) && (v >= TWO_23 || (v + TWO_23) - TWO_23 == v)
}

/// A validated, borrowed label map: `x·y·z` labels, x fastest (the C-order array `(z, y, x)`),
/// with its voxel spacing.
#[derive(Debug, Clone, Copy)]
pub struct LabelVolume<'a> {
    data: LabelBuffer<'a>,
    dims: [usize; 3],
    spacing: [f64; 3],
}

impl<'a> LabelVolume<'a> {
    /// Describes a caller's label buffer of `dims` (x, y, z) voxels of `spacing` (x, y, z) mm.
    ///
    /// Fails with [`crate::ErrorKind::InvalidImage`] on zero dims, a buffer whose length is not
    /// `x·y·z`, a spacing that is not a finite number > 0, or (for float buffers) a value that is
    /// not a non-negative integer (the message names the first such voxel).
    pub fn new(data: LabelBuffer<'a>, dims: [usize; 3], spacing: [f64; 3]) -> Result<Self> {
        if dims.contains(&0) {
            return Err(Error::invalid_image(format!(
                "label map has dims {dims:?} (x, y, z); every size must be at least 1"
            )));
        }
        let expected = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        if expected != Some(data.len()) {
            return Err(Error::invalid_image(format!(
                "label buffer holds {} voxels but dims {dims:?} (x, y, z) need {}",
                data.len(),
                expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string())
            )));
        }
        check_spacing(spacing).map_err(|e| Error::invalid_image(format!("label map: {}", e.message())))?;
        if let Some(i) = data.first_non_label() {
            let [nx, ny, _] = dims;
            let value = match data {
                LabelBuffer::F32(d) => d[i],
                _ => unreachable!(),
            };
            return Err(Error::invalid_image(format!(
                "voxel (x={}, y={}, z={}) holds {value}, which is not a label; labels must be non-negative integers",
                i % nx,
                (i / nx) % ny,
                i / (nx * ny)
            )));
        }
        Ok(LabelVolume { data, dims, spacing })
    }

    /// The labels.
    pub fn data(&self) -> LabelBuffer<'a> {
        self.data
    }

    /// (x, y, z) sizes.
    pub fn dims(&self) -> [usize; 3] {
        self.dims
    }

    /// Voxel spacing (x, y, z) in mm.
    pub fn spacing(&self) -> [f64; 3] {
        self.spacing
    }

    /// The distinct labels other than 0 (background), ascending.
    pub fn foreground_labels(&self) -> Vec<u32> {
        self.data.distinct().into_iter().filter(|&l| l != 0).collect()
    }

    /// Physical length of the image diagonal, `√Σ (size · spacing)²` mm: an upper bound of any
    /// surface distance inside the image.
    pub fn diagonal_mm(&self) -> f64 {
        (0..3).map(|a| (self.dims[a] as f64 * self.spacing[a]).powi(2)).sum::<f64>().sqrt()
    }
}

/// Region membership of labels as bit masks: bit `k` of `mask(label)` is set when the label
/// belongs to region `k` of a group of at most 64 regions.
#[derive(Debug, Clone)]
pub(crate) struct LabelMasks {
    /// Masks of labels below `TABLE_LIMIT`, indexed by label.
    table: Vec<u64>,
    /// (label, mask) of larger labels, sorted by label.
    large: Vec<(u32, u64)>,
}

impl LabelMasks {
    const TABLE_LIMIT: u32 = 1 << 16;

    /// Masks of `regions` (at most 64 label lists).
    pub fn new<'r>(regions: impl IntoIterator<Item = &'r [u32]>) -> Self {
        let mut table: Vec<u64> = Vec::new();
        let mut large: Vec<(u32, u64)> = Vec::new();
        for (k, labels) in regions.into_iter().enumerate() {
            assert!(k < 64, "at most 64 regions per group");
            for &l in labels {
                if l < Self::TABLE_LIMIT {
                    if table.len() <= l as usize {
                        table.resize(l as usize + 1, 0);
                    }
                    table[l as usize] |= 1 << k;
                } else {
                    match large.iter_mut().find(|(label, _)| *label == l) {
                        Some((_, mask)) => *mask |= 1 << k,
                        None => large.push((l, 1 << k)),
                    }
                }
            }
        }
        large.sort_unstable();
        LabelMasks { table, large }
    }

    #[inline]
    pub fn mask(&self, label: u32) -> u64 {
        match self.table.get(label as usize) {
            Some(&m) => m,
            None if self.large.is_empty() => 0,
            None => self.large.binary_search_by_key(&label, |&(l, _)| l).map_or(0, |i| self.large[i].1),
        }
    }
}

/// NSD tolerance used when none is given, in mm.
pub const DEFAULT_NSD_TOLERANCE_MM: f64 = 2.0;

/// A named set of labels evaluated as one binary mask (e.g. `pancreas = {1, 2}`), with the
/// tolerance of its normalised surface distance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Region {
    /// Name shown in tables and JSON.
    pub name: String,
    /// Labels whose voxels belong to the region.
    pub labels: Vec<u32>,
    /// NSD tolerance in mm.
    pub nsd_tolerance_mm: f64,
}

impl Region {
    /// A region with the default NSD tolerance ([`DEFAULT_NSD_TOLERANCE_MM`]).
    pub fn new(name: impl Into<String>, labels: Vec<u32>) -> Self {
        Region { name: name.into(), labels, nsd_tolerance_mm: DEFAULT_NSD_TOLERANCE_MM }
    }
}

/// Parses regions written as `name=label,label;name=label`, e.g. `"pancreas=1,2;lesion=2"`.
/// Every region gets the default NSD tolerance; see [`Tolerances::apply`].
///
/// Fails with [`crate::ErrorKind::InvalidArgument`] on an empty or repeated name, a region
/// without labels, or a label that is not a non-negative integer.
pub fn parse_regions(spec: &str) -> Result<Vec<Region>> {
    let bad = |why: String| {
        Error::invalid_argument(format!("regions \"{spec}\": {why} (expected e.g. \"pancreas=1,2;lesion=2\")"))
    };
    let mut regions: Vec<Region> = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, labels) = part.split_once('=').ok_or_else(|| bad(format!("\"{part}\" has no '='")))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad(format!("\"{part}\" has no name")));
        }
        if regions.iter().any(|r| r.name == name) {
            return Err(bad(format!("region \"{name}\" is given twice")));
        }
        let mut list = Vec::new();
        for label in labels.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            let value: u32 =
                label.parse().map_err(|_| bad(format!("\"{label}\" is not a non-negative integer label")))?;
            if !list.contains(&value) {
                list.push(value);
            }
        }
        if list.is_empty() {
            return Err(bad(format!("region \"{name}\" has no labels")));
        }
        regions.push(Region::new(name, list));
    }
    if regions.is_empty() {
        return Err(bad("no region given".to_string()));
    }
    Ok(regions)
}

/// The default regions of a pair: one region per foreground label present in either volume,
/// named by the label (`"1"`, `"2"`, ...), in ascending label order, each with the tolerance
/// `tolerances` gives its name.
pub fn default_regions(pred: &LabelVolume<'_>, reference: &LabelVolume<'_>, tolerances: &Tolerances) -> Vec<Region> {
    let (a, b) = rayon::join(|| pred.data.distinct(), || reference.data.distinct());
    a.union(&b)
        .filter(|&&l| l != 0)
        .map(|&l| {
            let mut region = Region::new(l.to_string(), vec![l]);
            region.nsd_tolerance_mm = tolerances.for_region(&region.name);
            region
        })
        .collect()
}

/// NSD tolerances: one for every region, or one per region name, written `2` or
/// `pancreas=2,lesion=1.5` (regions not named keep [`Tolerances::default_mm`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tolerances {
    /// Tolerance of regions not named in `per_region`, mm.
    pub default_mm: f64,
    /// (region name, tolerance in mm).
    pub per_region: Vec<(String, f64)>,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances { default_mm: DEFAULT_NSD_TOLERANCE_MM, per_region: Vec::new() }
    }
}

impl Tolerances {
    /// Parses `2` (every region) or `name=mm,name=mm`. Fails with
    /// [`crate::ErrorKind::InvalidArgument`] on a tolerance that is not a finite number >= 0.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: String| {
            Error::invalid_argument(format!(
                "NSD tolerance \"{spec}\": {why} (expected e.g. \"2\" or \"pancreas=2,lesion=1\")"
            ))
        };
        let number = |text: &str| -> Result<f64> {
            let v: f64 = text.trim().parse().map_err(|_| bad(format!("\"{}\" is not a number", text.trim())))?;
            if !(v.is_finite() && v >= 0.0) {
                return Err(bad(format!("{v} is not a finite number >= 0 mm")));
            }
            Ok(v)
        };
        let spec_trimmed = spec.trim();
        if !spec_trimmed.contains('=') {
            return Ok(Tolerances { default_mm: number(spec_trimmed)?, per_region: Vec::new() });
        }
        let mut tolerances = Tolerances::default();
        for part in spec_trimmed.split([',', ';']).map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| bad(format!("\"{part}\" has no '='")))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(bad(format!("\"{part}\" has no region name")));
            }
            if tolerances.per_region.iter().any(|(n, _)| n == name) {
                return Err(bad(format!("region \"{name}\" is given twice")));
            }
            tolerances.per_region.push((name.to_string(), number(value)?));
        }
        Ok(tolerances)
    }

    /// The tolerance of the region called `name`.
    pub fn for_region(&self, name: &str) -> f64 {
        self.per_region.iter().find(|(n, _)| n == name).map_or(self.default_mm, |(_, v)| *v)
    }

    /// Sets the tolerance of each region. Fails with [`crate::ErrorKind::InvalidArgument`] when a
    /// name in `per_region` is not one of `regions`.
    pub fn apply(&self, regions: &mut [Region]) -> Result<()> {
        if let Some((name, _)) = self.per_region.iter().find(|(n, _)| !regions.iter().any(|r| &r.name == n)) {
            let known: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            return Err(Error::invalid_argument(format!(
                "NSD tolerance given for region \"{name}\", which is not one of the regions {known:?}"
            )));
        }
        for region in regions {
            region.nsd_tolerance_mm = self.for_region(&region.name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parses_regions_and_tolerances() {
        let mut regions = parse_regions(" pancreas = 1, 2 ; lesion=2;").unwrap();
        assert_eq!(regions[0], Region::new("pancreas", vec![1, 2]));
        assert_eq!(regions[1].labels, vec![2]);
        Tolerances::parse("pancreas=1.5,lesion=3").unwrap().apply(&mut regions).unwrap();
        assert_eq!((regions[0].nsd_tolerance_mm, regions[1].nsd_tolerance_mm), (1.5, 3.0));
        Tolerances::parse("pancreas=1").unwrap().apply(&mut regions).unwrap();
        assert_eq!((regions[0].nsd_tolerance_mm, regions[1].nsd_tolerance_mm), (1.0, DEFAULT_NSD_TOLERANCE_MM));
        Tolerances::parse("4").unwrap().apply(&mut regions).unwrap();
        assert_eq!((regions[0].nsd_tolerance_mm, regions[1].nsd_tolerance_mm), (4.0, 4.0));
        let err = Tolerances::parse("liver=1").unwrap().apply(&mut regions).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        for bad in ["", "pancreas", "=1", "a=1;a=2", "a=", "a=x", "a=-1"] {
            assert_eq!(parse_regions(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad}");
        }
        for bad in ["", "x", "-1", "nan", "a=1,a=2", "=2"] {
            assert_eq!(Tolerances::parse(bad).unwrap_err().kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn integral_floats_are_labels() {
        for v in [0.0f32, -0.0, 1.0, 2.0, 8_388_607.0, 8_388_608.0, 16_777_217.0, 4_294_967_040.0] {
            assert!(is_label(v), "{v}");
        }
        for v in [0.5f32, 1e-30, 1.5, 2.5, 8_388_607.5, -1.0, 4_294_967_296.0, f32::NAN, f32::INFINITY] {
            assert!(!is_label(v), "{v}");
        }
    }

    #[test]
    fn float_labels_must_be_non_negative_integers() {
        let ok = [0.0f32, 1.0, 2.0, 70000.0];
        let v = LabelVolume::new(LabelBuffer::F32(&ok), [2, 2, 1], [1.0; 3]).unwrap();
        assert_eq!(v.foreground_labels(), vec![1, 2, 70000]);
        for bad in [0.5f32, -1.0, f32::NAN, f32::INFINITY] {
            let data = [0.0f32, 1.0, bad, 2.0];
            let err = LabelVolume::new(LabelBuffer::F32(&data), [2, 2, 1], [1.0; 3]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidImage);
            assert!(err.message().contains("(x=0, y=1, z=0)"), "{err}");
        }
        let err = LabelVolume::new(LabelBuffer::U8(&[0; 3]), [2, 2, 1], [1.0; 3]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
        let err = LabelVolume::new(LabelBuffer::U8(&[0; 4]), [2, 2, 1], [1.0, 0.0, 1.0]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidImage);
    }

    #[test]
    fn label_masks_answer_membership() {
        let masks = LabelMasks::new([&[2u32, 5, 100_000][..], &[5, 7][..], &[100_000, 200_000][..]]);
        let got: Vec<(u32, u64)> = [0u32, 1, 2, 3, 5, 6, 7, 99_999, 100_000, 200_000, u32::MAX]
            .into_iter()
            .map(|l| (l, masks.mask(l)))
            .filter(|p| p.1 != 0)
            .collect();
        assert_eq!(got, vec![(2, 0b001), (5, 0b011), (7, 0b010), (100_000, 0b101), (200_000, 0b100)]);
        let u16s = [0u16, 3, 1, 2];
        let v = LabelVolume::new(LabelBuffer::U16(&u16s), [4, 1, 1], [1.0; 3]).unwrap();
        let w = LabelVolume::new(LabelBuffer::U32(&[7, 0, 0, 0]), [4, 1, 1], [1.0; 3]).unwrap();
        let regions = default_regions(&v, &w, &Tolerances::parse("7=1").unwrap());
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["1", "2", "3", "7"]);
        assert_eq!(regions[3].nsd_tolerance_mm, 1.0);
    }
}
