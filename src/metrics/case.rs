//! All metrics of one predicted/reference pair.

use rayon::prelude::*;
use serde::Serialize;

use super::labels::{LabelMasks, LabelVolume, Region};
use super::surface::{BoundingBox, PaddedPair, SurfaceDistances};
use crate::error::{Error, Result};

/// Relative tolerance on the spacing of the two volumes of a pair.
pub const SPACING_TOLERANCE: f64 = 1e-4;

/// Percentile of the robust Hausdorff distance.
pub const HAUSDORFF_PERCENT: f64 = 95.0;

/// Which of the two masks of a region are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Emptiness {
    /// Both masks have voxels: every metric is measured.
    Neither,
    /// Both masks are empty: Dice 1, NSD 1, distances 0.
    Both,
    /// Only the predicted mask is empty: Dice 0, NSD 0, distances NaN.
    Pred,
    /// Only the reference mask is empty: Dice 0, NSD 0, distances NaN.
    Ref,
}

/// The metrics of one region of one pair.
///
/// Distances are in mm. When exactly one mask is empty the distances are NaN (serialised as
/// JSON `null`); aggregation then counts the image diagonal instead (see
/// [`aggregate`](mod@crate::metrics::aggregate)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionMetrics {
    /// Region name.
    pub region: String,
    /// Labels of the region.
    pub labels: Vec<u32>,
    /// NSD tolerance used, mm.
    pub nsd_tolerance_mm: f64,
    /// Which masks are empty.
    pub empty: Emptiness,
    /// Voxels of the region in the prediction.
    pub pred_voxels: u64,
    /// Voxels of the region in the reference.
    pub ref_voxels: u64,
    /// Voxels of the region in both.
    pub overlap_voxels: u64,
    /// Surface area of the predicted mask, mm².
    pub pred_surface_mm2: f64,
    /// Surface area of the reference mask, mm².
    pub ref_surface_mm2: f64,
    /// Dice coefficient `2·|P ∩ R| / (|P| + |R|)`.
    pub dice: f64,
    /// Normalised surface distance (surface Dice) at `nsd_tolerance_mm`, in [0, 1].
    pub nsd: f64,
    /// Robust Hausdorff distance: the larger of the two directed area-weighted 95th percentiles.
    pub hd95: f64,
    /// Mean symmetric surface distance: the area-weighted mean over the surfels of both masks.
    pub msd: f64,
    /// Area-weighted 95th percentile of the reference-to-prediction distances.
    pub hd95_ref_to_pred: f64,
    /// Area-weighted 95th percentile of the prediction-to-reference distances.
    pub hd95_pred_to_ref: f64,
    /// Area-weighted mean of the reference-to-prediction distances.
    pub msd_ref_to_pred: f64,
    /// Area-weighted mean of the prediction-to-reference distances.
    pub msd_pred_to_ref: f64,
}

impl RegionMetrics {
    /// The metrics of a region that is empty in both volumes (Dice 1, NSD 1, distances 0).
    pub fn both_empty(region: &Region) -> Self {
        RegionMetrics {
            region: region.name.clone(),
            labels: region.labels.clone(),
            nsd_tolerance_mm: region.nsd_tolerance_mm,
            empty: Emptiness::Both,
            pred_voxels: 0,
            ref_voxels: 0,
            overlap_voxels: 0,
            pred_surface_mm2: 0.0,
            ref_surface_mm2: 0.0,
            dice: 1.0,
            nsd: 1.0,
            hd95: 0.0,
            msd: 0.0,
            hd95_ref_to_pred: 0.0,
            hd95_pred_to_ref: 0.0,
            msd_ref_to_pred: 0.0,
            msd_pred_to_ref: 0.0,
        }
    }
}

/// The metrics of every region of one pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseMetrics {
    /// One entry per region, in the order the regions were given.
    pub regions: Vec<RegionMetrics>,
    /// (x, y, z) sizes of the volumes.
    pub dims: [usize; 3],
    /// Voxel spacing (x, y, z) of the reference, mm.
    pub spacing: [f64; 3],
    /// Length of the image diagonal, mm: the distance counted for a NaN distance when
    /// aggregating (see [`aggregate`](mod@crate::metrics::aggregate)).
    pub diagonal_mm: f64,
}

/// Computes Dice, NSD, HD95 and MSD of every region for a predicted and a reference label map.
///
/// The two volumes must have the same dims and the same spacing within a relative tolerance of
/// [`SPACING_TOLERANCE`] (the reference spacing is used), else the call fails with
/// [`crate::ErrorKind::ShapeMismatch`]. An empty `regions` list fails with
/// [`crate::ErrorKind::InvalidArgument`]; use [`crate::metrics::default_regions`] for one region
/// per label.
pub fn evaluate_labels(pred: &LabelVolume<'_>, reference: &LabelVolume<'_>, regions: &[Region]) -> Result<CaseMetrics> {
    check_pair(pred, reference)?;
    if regions.is_empty() {
        return Err(Error::invalid_argument("no region to evaluate"));
    }
    if let Some(r) = regions.iter().find(|r| !(r.nsd_tolerance_mm.is_finite() && r.nsd_tolerance_mm >= 0.0)) {
        return Err(Error::invalid_argument(format!(
            "region \"{}\" has NSD tolerance {}; it must be a finite number >= 0 mm",
            r.name, r.nsd_tolerance_mm
        )));
    }
    let mut metrics = Vec::with_capacity(regions.len());
    for group in regions.chunks(64) {
        let masks = LabelMasks::new(group.iter().map(|r| r.labels.as_slice()));
        let counts = count_regions(pred, reference, &masks, group.len());
        for (k, (region, counts)) in group.iter().zip(counts).enumerate() {
            metrics.push(region_metrics(pred, reference, region, &masks, 1 << k, counts));
        }
    }
    Ok(CaseMetrics {
        regions: metrics,
        dims: reference.dims(),
        spacing: reference.spacing(),
        diagonal_mm: reference.diagonal_mm(),
    })
}

/// Checks that two label volumes can be compared: same dims, same spacing within
/// [`SPACING_TOLERANCE`] relative. Fails with [`crate::ErrorKind::ShapeMismatch`].
pub fn check_pair(pred: &LabelVolume<'_>, reference: &LabelVolume<'_>) -> Result<()> {
    if pred.dims() != reference.dims() {
        return Err(Error::shape_mismatch(format!(
            "prediction has dims {:?} but reference has {:?} (x, y, z)",
            pred.dims(),
            reference.dims()
        )));
    }
    let (p, r) = (pred.spacing(), reference.spacing());
    if p.iter().zip(&r).any(|(a, b)| (a - b).abs() > SPACING_TOLERANCE * a.abs().max(b.abs())) {
        return Err(Error::shape_mismatch(format!(
            "prediction has spacing {p:?} mm but reference has {r:?} mm (x, y, z); they must agree within {SPACING_TOLERANCE} relative"
        )));
    }
    Ok(())
}

/// Voxel counts and the bounding box of the union, from one pass over the volumes.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    pred: u64,
    reference: u64,
    overlap: u64,
    bbox: Option<BoundingBox>,
}

impl Counts {
    fn merge(self, other: Counts) -> Counts {
        Counts {
            pred: self.pred + other.pred,
            reference: self.reference + other.reference,
            overlap: self.overlap + other.overlap,
            bbox: match (self.bbox, other.bbox) {
                (Some(a), Some(b)) => Some(a.union(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// Voxel counts and bounding boxes of every region of a group, in one pass over the volumes.
fn count_regions(pred: &LabelVolume<'_>, reference: &LabelVolume<'_>, masks: &LabelMasks, n: usize) -> Vec<Counts> {
    let [nx, ny, nz] = reference.dims();
    let plane = nx * ny;
    (0..nz)
        .into_par_iter()
        .map_init(
            || (vec![0u64; nx], vec![0u64; nx], vec![(usize::MAX, 0usize); n]),
            |(p_row, r_row, span), z| {
                let mut counts = vec![Counts::default(); n];
                for y in 0..ny {
                    let start = plane * z + nx * y;
                    pred.data().fill_masks(start, p_row, masks);
                    reference.data().fill_masks(start, r_row, masks);
                    let mut touched = 0u64;
                    for x in 0..nx {
                        let (p, r) = (p_row[x], r_row[x]);
                        let mut bits = p | r;
                        touched |= bits;
                        while bits != 0 {
                            let k = bits.trailing_zeros() as usize;
                            let bit = 1u64 << k;
                            bits &= bits - 1;
                            let c = &mut counts[k];
                            c.pred += (p & bit != 0) as u64;
                            c.reference += (r & bit != 0) as u64;
                            c.overlap += (p & r & bit != 0) as u64;
                            span[k].0 = span[k].0.min(x);
                            span[k].1 = x;
                        }
                    }
                    while touched != 0 {
                        let k = touched.trailing_zeros() as usize;
                        touched &= touched - 1;
                        let b = BoundingBox { min: [span[k].0, y, z], max: [span[k].1, y, z] };
                        counts[k].bbox = Some(counts[k].bbox.map_or(b, |a| a.union(b)));
                        span[k] = (usize::MAX, 0);
                    }
                }
                counts
            },
        )
        .reduce(|| vec![Counts::default(); n], |a, b| a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect())
}

fn region_metrics(
    pred: &LabelVolume<'_>,
    reference: &LabelVolume<'_>,
    region: &Region,
    masks: &LabelMasks,
    bit: u64,
    counts: Counts,
) -> RegionMetrics {
    let Some(bbox) = counts.bbox else {
        return RegionMetrics::both_empty(region);
    };
    let spacing = reference.spacing();
    let distances = build_padded(pred, reference, masks, bit, bbox).distances(spacing);

    let mut m = RegionMetrics::both_empty(region);
    m.pred_voxels = counts.pred;
    m.ref_voxels = counts.reference;
    m.overlap_voxels = counts.overlap;
    m.pred_surface_mm2 = distances.pred_area_mm2();
    m.ref_surface_mm2 = distances.ref_area_mm2();
    m.dice = 2.0 * counts.overlap as f64 / (counts.pred + counts.reference) as f64;
    if counts.pred == 0 || counts.reference == 0 {
        m.empty = if counts.pred == 0 { Emptiness::Pred } else { Emptiness::Ref };
        m.nsd = 0.0;
        for v in [
            &mut m.hd95,
            &mut m.msd,
            &mut m.hd95_ref_to_pred,
            &mut m.hd95_pred_to_ref,
            &mut m.msd_ref_to_pred,
            &mut m.msd_pred_to_ref,
        ] {
            *v = f64::NAN;
        }
        return m;
    }
    m.empty = Emptiness::Neither;
    m.nsd = distances.surface_dice(region.nsd_tolerance_mm);
    m.hd95_ref_to_pred = SurfaceDistances::directed_percentile(&distances.ref_to_pred, HAUSDORFF_PERCENT);
    m.hd95_pred_to_ref = SurfaceDistances::directed_percentile(&distances.pred_to_ref, HAUSDORFF_PERCENT);
    m.hd95 = m.hd95_ref_to_pred.max(m.hd95_pred_to_ref);
    (m.msd_ref_to_pred, m.msd_pred_to_ref) = distances.directed_averages();
    m.msd = distances.mean_symmetric();
    m
}

/// Both region masks cropped to `bbox` and padded with one background voxel on every side.
fn build_padded(
    pred: &LabelVolume<'_>,
    reference: &LabelVolume<'_>,
    masks: &LabelMasks,
    bit: u64,
    bbox: BoundingBox,
) -> PaddedPair {
    let [nx, ny, _] = reference.dims();
    let e: [usize; 3] = std::array::from_fn(|a| bbox.max[a] - bbox.min[a] + 1);
    let dims = [e[0] + 2, e[1] + 2, e[2] + 2];
    let plane = dims[0] * dims[1];
    let mut p = vec![0u8; plane * dims[2]];
    let mut r = vec![0u8; plane * dims[2]];
    p.par_chunks_mut(plane).zip(r.par_chunks_mut(plane)).enumerate().for_each(|(pz, (p_slice, r_slice))| {
        if pz == 0 || pz > e[2] {
            return;
        }
        let z = bbox.min[2] + pz - 1;
        for py in 1..=e[1] {
            let start = bbox.min[0] + nx * ((bbox.min[1] + py - 1) + ny * z);
            let row = 1 + dims[0] * py;
            pred.data().fill_membership(start, &mut p_slice[row..row + e[0]], masks, bit);
            reference.data().fill_membership(start, &mut r_slice[row..row + e[0]], masks, bit);
        }
    });
    PaddedPair::from_parts(dims, p, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{LabelBuffer, Region};
    use crate::ErrorKind;

    fn volume(data: &[u8], dims: [usize; 3], spacing: [f64; 3]) -> LabelVolume<'_> {
        LabelVolume::new(LabelBuffer::U8(data), dims, spacing).unwrap()
    }

    #[test]
    fn regions_combine_labels_and_empty_cases_follow_the_conventions() {
        let dims = [6, 6, 6];
        let mut p = vec![0u8; 216];
        let mut r = vec![0u8; 216];
        for z in 1..4 {
            for y in 1..4 {
                for x in 1..4 {
                    r[x + 6 * (y + 6 * z)] = if x == 2 { 2 } else { 1 };
                    p[x + 6 * (y + 6 * z)] = 1;
                }
            }
        }
        let (pv, rv) = (volume(&p, dims, [1.0; 3]), volume(&r, dims, [1.0; 3]));
        let regions = [Region::new("whole", vec![1, 2]), Region::new("two", vec![2]), Region::new("three", vec![3])];
        let m = evaluate_labels(&pv, &rv, &regions).unwrap();
        let whole = &m.regions[0];
        assert_eq!((whole.dice, whole.nsd, whole.hd95, whole.msd), (1.0, 1.0, 0.0, 0.0));
        assert_eq!(whole.empty, Emptiness::Neither);
        let two = &m.regions[1];
        assert_eq!(two.empty, Emptiness::Pred);
        assert_eq!((two.dice, two.nsd), (0.0, 0.0));
        assert!(two.hd95.is_nan() && two.msd.is_nan());
        assert_eq!(m.regions[2], RegionMetrics::both_empty(&regions[2]));
        let swapped = evaluate_labels(&rv, &pv, &regions[1..2]).unwrap();
        assert_eq!(swapped.regions[0].empty, Emptiness::Ref);
        assert!((m.diagonal_mm - 108f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn mismatched_pairs_are_rejected() {
        let a = vec![0u8; 24];
        let base = volume(&a, [2, 3, 4], [1.0, 1.0, 2.0]);
        let other_dims = volume(&a, [3, 2, 4], [1.0, 1.0, 2.0]);
        let close = volume(&a, [2, 3, 4], [1.0, 1.0, 2.0001]);
        let far = volume(&a, [2, 3, 4], [1.0, 1.0, 2.001]);
        let regions = [Region::new("1", vec![1])];
        assert_eq!(evaluate_labels(&other_dims, &base, &regions).unwrap_err().kind(), ErrorKind::ShapeMismatch);
        assert!(evaluate_labels(&close, &base, &regions).is_ok());
        assert_eq!(evaluate_labels(&far, &base, &regions).unwrap_err().kind(), ErrorKind::ShapeMismatch);
        assert_eq!(evaluate_labels(&base, &base, &[]).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
}
