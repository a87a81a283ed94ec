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

    /// `out[k] = 1` when voxel `start + k` has a label of `set`, else 0.
    pub(crate) fn fill_membership(&self, start: usize, out: &mut [u8], set: &LabelSet) {
        fn fill<T: Copy>(data: &[T], out: &mut [u8], label: impl Fn(T) -> u32, set: &LabelSet) {
            for (o, &v) in out.iter_mut().zip(data) {
                *o = set.contains(label(v)) as u8;
            }
        }
        let n = out.len();
        match self {
            LabelBuffer::U8(d) => fill(&d[start..start + n], out, |v| v as u32, set),
            LabelBuffer::U16(d) => fill(&d[start..start + n], out, |v| v as u32, set),
            LabelBuffer::U32(d) => fill(&d[start..start + n], out, |v| v, set),
            LabelBuffer::F32(d) => fill(&d[start..start + n], out, |v| v as u32, set),
        }
    }

    /// Index of the first value that is not a label (F32 only).
    fn first_non_label(&self) -> Option<usize> {
        match self {
            LabelBuffer::F32(d) => d.par_iter().position_first(|&v| !(v >= 0.0 && v <= u32::MAX as f32 && v.fract() == 0.0)),
            _ => None,
        }
    }

    /// The distinct labels of the buffer, ascending.
    fn distinct(&self) -> BTreeSet<u32> {
        let small = |hist: Vec<bool>| hist.iter().enumerate().filter(|(_, &h)| h).map(|(v, _)| v as u32).collect();
        match self {
            LabelBuffer::U8(d) => small(presence(d, 256, |v| v as usize)),
            LabelBuffer::U16(d) => small(presence(d, 65536, |v| v as usize)),
            LabelBuffer::U32(d) => d.par_chunks(1 << 16).map(|c| c.iter().copied().collect::<BTreeSet<u32>>()).reduce(BTreeSet::new, merge),
            LabelBuffer::F32(d) => {
                d.par_chunks(1 << 16).map(|c| c.iter().map(|&v| v as u32).collect::<BTreeSet<u32>>()).reduce(BTreeSet::new, merge)
            }
        }
    }
}

fn presence<T: Copy + Sync>(data: &[T], size: usize, index: impl Fn(T) -> usize + Sync) -> Vec<bool> {
    data.par_chunks(1 << 16)
        .map(|chunk| {
            let mut seen = vec![false; size];
            for &v in chunk {
                seen[index(v)] = true;
            }
            seen
        })
        .reduce(|| vec![false; size], |a, b| a.iter().zip(&b).map(|(x, y)| *x || *y).collect())
}

fn merge(mut a: BTreeSet<u32>, mut b: BTreeSet<u32>) -> BTreeSet<u32> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    a.extend(b);
    a
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
            return Err(Error::invalid_image(format!("label map has dims {dims:?} (x, y, z); every size must be at least 1")));
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

/// The labels of one region, for fast membership tests.
#[derive(Debug, Clone)]
pub(crate) struct LabelSet {
    table: Vec<bool>,
    large: Vec<u32>,
}

impl LabelSet {
    pub fn new(labels: &[u32]) -> Self {
        const TABLE_LIMIT: u32 = 1 << 16;
        let size = labels.iter().copied().filter(|&l| l < TABLE_LIMIT).max().map_or(0, |m| m as usize + 1);
        let mut table = vec![false; size];
        let mut large = Vec::new();
        for &l in labels {
            if l < TABLE_LIMIT {
                table[l as usize] = true;
            } else {
                large.push(l);
            }
        }
        large.sort_unstable();
        LabelSet { table, large }
    }

    #[inline]
    pub fn contains(&self, label: u32) -> bool {
        match self.table.get(label as usize) {
            Some(&t) => t,
            None => !self.large.is_empty() && self.large.binary_search(&label).is_ok(),
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
    let bad = |why: String| Error::invalid_argument(format!("regions \"{spec}\": {why} (expected e.g. \"pancreas=1,2;lesion=2\")"));
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
            let value: u32 = label.parse().map_err(|_| bad(format!("\"{label}\" is not a non-negative integer label")))?;
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
        let bad = |why: String| Error::invalid_argument(format!("NSD tolerance \"{spec}\": {why} (expected e.g. \"2\" or \"pancreas=2,lesion=1\")"));
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
    fn label_sets_answer_membership() {
        let set = LabelSet::new(&[2, 5, 100_000]);
        let members: Vec<u32> = [0u32, 1, 2, 3, 5, 6, 99_999, 100_000, u32::MAX].into_iter().filter(|&l| set.contains(l)).collect();
        assert_eq!(members, vec![2, 5, 100_000]);
        let u16s = [0u16, 3, 1, 2];
        let v = LabelVolume::new(LabelBuffer::U16(&u16s), [4, 1, 1], [1.0; 3]).unwrap();
        let w = LabelVolume::new(LabelBuffer::U32(&[7, 0, 0, 0]), [4, 1, 1], [1.0; 3]).unwrap();
        let regions = default_regions(&v, &w, &Tolerances::parse("7=1").unwrap());
        let names: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["1", "2", "3", "7"]);
        assert_eq!(regions[3].nsd_tolerance_mm, 1.0);
    }
}
