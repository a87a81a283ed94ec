//! Statistics over cases: mean ± standard deviation and median per region and metric, and the
//! combined (macro over regions) row.
//!
//! # Conventions
//!
//! * The standard deviation is the **population** one (divisor `n`, NumPy's default `np.std`).
//! * A distance that is NaN in a case (exactly one of the two masks is empty) is counted as the
//!   **image diagonal** of that case (`√Σ (size · spacing)²` mm, the largest distance the image
//!   can hold), so a missed or hallucinated structure weighs as a worst case instead of being
//!   left out; [`Stats::n_worst_case`] counts these substitutions. Dice and NSD are 0 in those
//!   cases and need no substitution.
//! * A region missing from a case's results (default regions: the label occurs in neither
//!   volume of that case) counts as empty in both masks: Dice 1, NSD 1, distances 0.
//! * The combined value of a case is the mean over regions of that case's values (after the
//!   substitution above); the combined row is the statistics of these per-case values. Its mean
//!   equals the mean of the region means.
//! * The median of an even number of values is the mean of the two middle values.

use serde::Serialize;

use super::case::{CaseMetrics, RegionMetrics};
use super::labels::{Region, Tolerances};

/// Statistics of one metric over cases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stats {
    /// Arithmetic mean (NaN when there is no case).
    pub mean: f64,
    /// Population standard deviation (divisor `n`).
    pub std: f64,
    /// Median.
    pub median: f64,
    /// Number of cases.
    pub n: usize,
    /// Cases whose value was NaN and was replaced by the image diagonal.
    pub n_worst_case: usize,
}

impl Stats {
    /// Statistics of `values` (no NaN expected; NaN values propagate).
    pub fn of(values: &[f64], n_worst_case: usize) -> Stats {
        let n = values.len();
        if n == 0 {
            return Stats { mean: f64::NAN, std: f64::NAN, median: f64::NAN, n, n_worst_case };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64).sqrt();
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) };
        Stats { mean, std, median, n, n_worst_case }
    }
}

/// Statistics of the four metrics of one region (or of the combined row).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionSummary {
    /// Region name (`"combined"` for the macro row).
    pub region: String,
    /// Dice coefficient.
    pub dice: Stats,
    /// Mean symmetric surface distance, mm.
    pub msd: Stats,
    /// Robust Hausdorff distance (95th percentile), mm.
    pub hd95: Stats,
    /// Normalised surface distance, fraction in [0, 1].
    pub nsd: Stats,
}

/// Aggregated results over cases.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of cases.
    pub n_cases: usize,
    /// One entry per region, in order of first appearance in the cases.
    pub regions: Vec<RegionSummary>,
    /// Macro over regions: per case the mean over regions, then statistics over cases.
    pub combined: RegionSummary,
}

/// The four values of one region of one case, after the worst-case substitution, and how many
/// of them were substituted.
fn values_of(m: Option<&RegionMetrics>, diagonal_mm: f64) -> ([f64; 4], [usize; 4]) {
    let Some(m) = m else {
        return ([1.0, 0.0, 0.0, 1.0], [0; 4]);
    };
    let worst = |v: f64| if v.is_nan() { (diagonal_mm, 1) } else { (v, 0) };
    let (msd, msd_worst) = worst(m.msd);
    let (hd95, hd95_worst) = worst(m.hd95);
    ([m.dice, msd, hd95, m.nsd], [0, msd_worst, hd95_worst, 0])
}

/// Aggregates per-case metrics; see the module documentation for the conventions.
pub fn aggregate(cases: &[CaseMetrics]) -> Summary {
    let mut names: Vec<&str> = Vec::new();
    for case in cases {
        for r in &case.regions {
            if !names.contains(&r.region.as_str()) {
                names.push(&r.region);
            }
        }
    }
    // values[region][metric][case]
    let mut values = vec![[(); 4].map(|_| Vec::with_capacity(cases.len())); names.len()];
    let mut worst = vec![[0usize; 4]; names.len()];
    let mut combined: [Vec<f64>; 4] = [(); 4].map(|_| Vec::with_capacity(cases.len()));
    let mut combined_worst = [0usize; 4];
    for case in cases {
        let mut sums = [0.0; 4];
        let mut case_worst = [false; 4];
        for (i, name) in names.iter().enumerate() {
            let m = case.regions.iter().find(|r| r.region == *name);
            let (v, w) = values_of(m, case.diagonal_mm);
            for k in 0..4 {
                values[i][k].push(v[k]);
                worst[i][k] += w[k];
                sums[k] += v[k];
                case_worst[k] |= w[k] > 0;
            }
        }
        for k in 0..4 {
            combined[k].push(if names.is_empty() { f64::NAN } else { sums[k] / names.len() as f64 });
            combined_worst[k] += case_worst[k] as usize;
        }
    }
    let summary = |region: &str, v: &[Vec<f64>; 4], w: &[usize; 4]| RegionSummary {
        region: region.to_string(),
        dice: Stats::of(&v[0], w[0]),
        msd: Stats::of(&v[1], w[1]),
        hd95: Stats::of(&v[2], w[2]),
        nsd: Stats::of(&v[3], w[3]),
    };
    Summary {
        n_cases: cases.len(),
        regions: names.iter().enumerate().map(|(i, name)| summary(name, &values[i], &worst[i])).collect(),
        combined: summary("combined", &combined, &combined_worst),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Emptiness, Region};

    fn case(regions: Vec<RegionMetrics>, diagonal_mm: f64) -> CaseMetrics {
        CaseMetrics { regions, dims: [1, 1, 1], spacing: [1.0; 3], diagonal_mm }
    }

    fn metrics(name: &str, dice: f64, msd: f64, hd95: f64, nsd: f64) -> RegionMetrics {
        let mut m = RegionMetrics::both_empty(&Region::new(name, vec![1]));
        (m.dice, m.msd, m.hd95, m.nsd, m.empty) = (dice, msd, hd95, nsd, Emptiness::Neither);
        m
    }

    #[test]
    fn population_std_median_and_worst_case_substitution() {
        let cases = vec![
            case(vec![metrics("a", 0.9, 1.0, 2.0, 0.8), metrics("b", 0.5, 3.0, 6.0, 0.4)], 100.0),
            case(vec![metrics("a", 0.7, 3.0, 4.0, 0.6), metrics("b", 0.0, f64::NAN, f64::NAN, 0.0)], 50.0),
            case(vec![metrics("a", 0.8, 2.0, 3.0, 1.0)], 10.0),
        ];
        let s = aggregate(&cases);
        assert_eq!(s.n_cases, 3);
        let a = &s.regions[0];
        assert!((a.dice.mean - 0.8).abs() < 1e-12);
        assert!((a.dice.std - (0.02f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(a.dice.median, 0.8);
        let b = &s.regions[1];
        // Case 2 is one-empty: its distances count as its diagonal (50); case 3 lacks "b": both empty.
        assert_eq!(b.hd95.n_worst_case, 1);
        assert!((b.hd95.mean - (6.0 + 50.0 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(b.hd95.median, 6.0);
        assert!((b.dice.mean - 0.5).abs() < 1e-12);
        assert_eq!(b.nsd.median, 0.4);
        let c = &s.combined;
        assert!((c.dice.mean - (a.dice.mean + b.dice.mean) / 2.0).abs() < 1e-12);
        assert_eq!(c.msd.n_worst_case, 1);
        assert!((c.msd.median - 2.0).abs() < 1e-12, "{}", c.msd.median);
        let even = Stats::of(&[4.0, 1.0, 3.0, 2.0], 0);
        assert_eq!((even.median, even.mean), (2.5, 2.5));
        assert!(Stats::of(&[], 0).mean.is_nan());
    }
}

/// A dataset evaluated with default regions (one per label each case contains): every case gets
/// every label of the dataset, the missing ones as empty in both masks (Dice 1, distances 0), so
/// that all cases list the same regions, in ascending label order. Returns those regions, with
/// their NSD tolerances.
pub fn complete_default_regions(cases: &mut [CaseMetrics], tolerances: &Tolerances) -> Vec<Region> {
    let mut labels: Vec<u32> = cases.iter().flat_map(|c| c.regions.iter().flat_map(|r| r.labels.clone())).collect();
    labels.sort_unstable();
    labels.dedup();
    let regions: Vec<Region> = labels
        .iter()
        .map(|&l| {
            let mut r = Region::new(l.to_string(), vec![l]);
            r.nsd_tolerance_mm = tolerances.for_region(&r.name);
            r
        })
        .collect();
    for case in cases {
        let complete = regions
            .iter()
            .map(|region| match case.regions.iter().find(|m| m.region == region.name) {
                Some(found) => found.clone(),
                None => RegionMetrics::both_empty(region),
            })
            .collect();
        case.regions = complete;
    }
    regions
}
