//! Case-level class probabilities from a classification head that sees one tile at a time.
//!
//! Per fold and tile, the head's logits are averaged over the mirrored passes and turned into
//! probabilities (softmax); the fold's probabilities are a weighted mean over tiles; folds are
//! averaged (probabilities, not logits) and the predicted class is the first maximum. The
//! policies differ in the weights:
//!
//! - `LesionVoxels` (default): a tile weighs the number of its voxels that its own segmentation
//!   labels (argmax of its mirror-averaged logits) as an evidence label (default: the highest
//!   label, the lesion). A tile that labels no lesion voxel weighs nothing, however much soft
//!   lesion probability it spreads: on a large volume, a hundred background tiles holding a few
//!   voxels' worth each used to outweigh the few tiles that hold the lesion. When no tile labels
//!   any evidence voxel, the tiles weigh their foreground voxels (the organ), and when none labels
//!   foreground, all tiles weigh the same. The rule that answered is reported per fold.
//! - `LesionWeighted`: the weight is the soft volume instead, the sum of the evidence labels'
//!   softmax probability over the tile's voxels, with the same fallbacks at one voxel's worth.
//! - `Mean`: the unweighted mean over tiles.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

/// How tile-level head outputs become one case-level answer (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassificationPolicy {
    /// Tiles weighted by how many voxels they label as an evidence label.
    #[default]
    LesionVoxels,
    /// Tiles weighted by the soft (probability-summed) volume of the evidence labels.
    LesionWeighted,
    /// Unweighted mean of the tiles' probabilities.
    Mean,
}

impl ClassificationPolicy {
    /// Every policy, in the order of their C codes.
    pub const ALL: [ClassificationPolicy; 3] =
        [ClassificationPolicy::LesionWeighted, ClassificationPolicy::Mean, ClassificationPolicy::LesionVoxels];

    /// Stable name, the same in reports, on the command line and in every binding.
    pub fn name(self) -> &'static str {
        match self {
            ClassificationPolicy::LesionVoxels => "lesion-voxels",
            ClassificationPolicy::LesionWeighted => "lesion-weighted",
            ClassificationPolicy::Mean => "mean",
        }
    }
}

impl fmt::Display for ClassificationPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ClassificationPolicy {
    type Err = Error;

    /// `lesion-voxels`, `lesion-weighted` or `mean`.
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::ALL.into_iter().find(|p| p.name() == text).ok_or_else(|| {
            Error::invalid_argument(format!(
                "classification policy {text:?} is not one of lesion-voxels, lesion-weighted, mean"
            ))
        })
    }
}

/// What the classification policy needs from one tile.
#[derive(Debug, Clone, PartialEq)]
pub struct TileEvidence {
    /// Head logits averaged over the tile's mirrored passes.
    pub class_logits: Vec<f64>,
    /// Sum over the tile's voxels of the softmax probability of each segmentation label
    /// (from the tile's mirror-averaged logits, before Gaussian weighting).
    pub label_volume: Vec<f64>,
    /// Number of the tile's voxels whose label (first maximum of the same logits) is each label.
    pub label_voxels: Vec<u64>,
}

impl TileEvidence {
    /// The evidence of one tile from its mirror-averaged segmentation logits `averaged`
    /// (`(classes, voxels)`) and the head logits of its `passes` mirrored passes, one after the
    /// other in `cls`.
    pub fn from_tile(averaged: &[f32], cls: &[f32], classes: usize, passes: usize) -> TileEvidence {
        let voxels = averaged.len() / classes;
        let mut label_volume = vec![0.0f64; classes];
        let mut label_voxels = vec![0u64; classes];
        let mut probs = vec![0.0f64; classes];
        for v in 0..voxels {
            let max = (0..classes).map(|c| averaged[c * voxels + v] as f64).fold(f64::NEG_INFINITY, f64::max);
            // The first maximum, as the exported segmentation's argmax breaks ties.
            let label = (0..classes).find(|&c| averaged[c * voxels + v] as f64 == max).unwrap_or(0);
            label_voxels[label] += 1;
            let mut sum = 0.0;
            for (c, p) in probs.iter_mut().enumerate() {
                *p = (averaged[c * voxels + v] as f64 - max).exp();
                sum += *p;
            }
            for (acc, p) in label_volume.iter_mut().zip(&probs) {
                *acc += p / sum;
            }
        }
        let head = cls.len() / passes.max(1);
        let class_logits =
            (0..head).map(|k| (0..passes).map(|p| cls[p * head + k] as f64).sum::<f64>() / passes as f64).collect();
        TileEvidence { class_logits, label_volume, label_voxels }
    }
}

/// Which weights one fold ended up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// Volume of the evidence labels.
    EvidenceLabels,
    /// Volume of all foreground labels (no tile held enough of the evidence labels).
    Foreground,
    /// Plain mean.
    Uniform,
}

/// The case-level answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Names of the head's classes.
    pub class_names: Vec<String>,
    /// Probabilities, averaged over folds.
    pub probabilities: Vec<f64>,
    /// Index of the first maximum.
    pub predicted: usize,
    /// Policy used.
    pub policy: ClassificationPolicy,
    /// Each fold's probabilities, in fold order.
    pub per_fold: Vec<Vec<f64>>,
    /// Each fold's weighting.
    pub weighting: Vec<Weighting>,
}

fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// One fold's class probabilities from its tiles.
pub fn fold_probabilities(
    tiles: &[TileEvidence],
    evidence_labels: &[usize],
    policy: ClassificationPolicy,
) -> (Vec<f64>, Weighting) {
    let probs: Vec<Vec<f64>> = tiles.iter().map(|t| softmax(&t.class_logits)).collect();
    // Per tile, the volume of `labels`: voxels labelled (hard) or probability summed (soft).
    let weights_for = |labels: &[usize], hard: bool| -> Vec<f64> {
        let volume = |t: &TileEvidence, l: usize| if hard { t.label_voxels[l] as f64 } else { t.label_volume[l] };
        tiles.iter().map(|t| labels.iter().map(|&l| volume(t, l)).sum()).collect()
    };
    let weighted = |hard: bool| {
        let enough = |w: &[f64]| w.iter().any(|&v| v >= 1.0);
        let evidence = weights_for(evidence_labels, hard);
        if enough(&evidence) {
            return (evidence, Weighting::EvidenceLabels);
        }
        let classes = tiles.first().map_or(0, |t| t.label_volume.len());
        let foreground = weights_for(&(1..classes).collect::<Vec<_>>(), hard);
        if enough(&foreground) {
            (foreground, Weighting::Foreground)
        } else {
            (vec![1.0; tiles.len()], Weighting::Uniform)
        }
    };
    let (weights, weighting) = match policy {
        ClassificationPolicy::Mean => (vec![1.0; tiles.len()], Weighting::Uniform),
        ClassificationPolicy::LesionVoxels => weighted(true),
        ClassificationPolicy::LesionWeighted => weighted(false),
    };
    let total: f64 = weights.iter().sum();
    let n = probs.first().map_or(0, Vec::len);
    let combined = (0..n).map(|k| probs.iter().zip(&weights).map(|(p, w)| p[k] * w).sum::<f64>() / total).collect();
    (combined, weighting)
}

/// Averages per-fold probabilities and picks the first maximum.
pub fn combine_folds(
    class_names: Vec<String>,
    per_fold: Vec<(Vec<f64>, Weighting)>,
    policy: ClassificationPolicy,
) -> Classification {
    let n = per_fold.len() as f64;
    let classes = class_names.len();
    let probabilities: Vec<f64> = (0..classes).map(|k| per_fold.iter().map(|(p, _)| p[k]).sum::<f64>() / n).collect();
    let predicted = probabilities
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |best, (i, &p)| if p > best.1 { (i, p) } else { best })
        .0;
    let (per_fold, weighting) = per_fold.into_iter().unzip();
    Classification { class_names, probabilities, predicted, policy, per_fold, weighting }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(logits: [f64; 3], volume: [f64; 3]) -> TileEvidence {
        // Hard counts that follow the soft volume where it is clear-cut.
        let label_voxels = volume.iter().map(|&v| v.floor() as u64).collect();
        TileEvidence { class_logits: logits.to_vec(), label_volume: volume.to_vec(), label_voxels }
    }

    fn hard(logits: [f64; 3], volume: [f64; 3], voxels: [u64; 3]) -> TileEvidence {
        TileEvidence { class_logits: logits.to_vec(), label_volume: volume.to_vec(), label_voxels: voxels.to_vec() }
    }

    #[test]
    fn a_hundred_weak_background_tiles_do_not_outvote_the_lesion_tile() {
        // The demo's situation: every background tile spreads ~8 voxels' worth of soft lesion
        // probability but labels no lesion voxel, and leans to class 2; one tile holds the lesion.
        let mut tiles: Vec<TileEvidence> =
            (0..100).map(|_| hard([0.0, 0.0, 2.0], [6000.0, 130.0, 8.0], [6140, 0, 0])).collect();
        tiles.push(hard([4.0, 0.0, 0.0], [5000.0, 900.0, 200.0], [4950, 950, 198]));
        let (soft, _) = fold_probabilities(&tiles, &[2], ClassificationPolicy::LesionWeighted);
        assert!(soft[2] > soft[0], "the soft policy dilutes: {soft:?}");
        let (p, w) = fold_probabilities(&tiles, &[2], ClassificationPolicy::LesionVoxels);
        assert_eq!(w, Weighting::EvidenceLabels);
        assert!((p[0] - softmax(&[4.0, 0.0, 0.0])[0]).abs() < 1e-12, "{p:?}");
        assert_eq!(ClassificationPolicy::default(), ClassificationPolicy::LesionVoxels);
    }

    #[test]
    fn without_lesion_voxels_the_organ_tiles_answer_then_all_tiles() {
        let tiles = [
            hard([5.0, 0.0, 0.0], [900.0, 99.0, 1.0], [900, 100, 0]),
            hard([0.0, 5.0, 0.0], [999.0, 0.6, 0.4], [1000, 0, 0]),
        ];
        let (p, w) = fold_probabilities(&tiles, &[2], ClassificationPolicy::LesionVoxels);
        assert_eq!(w, Weighting::Foreground);
        assert!((p[0] - softmax(&[5.0, 0.0, 0.0])[0]).abs() < 1e-12, "{p:?}");
        let none = [
            hard([5.0, 0.0, 0.0], [999.0, 0.6, 0.4], [1000, 0, 0]),
            hard([0.0, 5.0, 0.0], [999.0, 0.6, 0.4], [1000, 0, 0]),
        ];
        let (p, w) = fold_probabilities(&none, &[2], ClassificationPolicy::LesionVoxels);
        assert_eq!(w, Weighting::Uniform);
        assert!((p[0] - p[1]).abs() < 1e-12);
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in ClassificationPolicy::ALL {
            assert_eq!(policy.to_string().parse::<ClassificationPolicy>().unwrap(), policy);
        }
        assert!("lesion_weighted".parse::<ClassificationPolicy>().is_err());
    }

    #[test]
    fn lesion_tiles_outvote_background_tiles() {
        let tiles = [
            tile([5.0, 0.0, 0.0], [1000.0, 0.0, 0.0]),
            tile([5.0, 0.0, 0.0], [990.0, 10.0, 0.0]),
            tile([0.0, 0.0, 5.0], [900.0, 80.0, 20.0]),
        ];
        let (p, w) = fold_probabilities(&tiles, &[2], ClassificationPolicy::LesionWeighted);
        assert_eq!(w, Weighting::EvidenceLabels);
        assert!(p[2] > 0.98, "{p:?}");
        let (mean, w) = fold_probabilities(&tiles, &[2], ClassificationPolicy::Mean);
        assert_eq!(w, Weighting::Uniform);
        assert!(mean[0] > mean[2]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn falls_back_to_foreground_then_to_the_plain_mean() {
        let tiles = [tile([5.0, 0.0, 0.0], [990.0, 9.5, 0.5]), tile([0.0, 5.0, 0.0], [999.5, 0.2, 0.3])];
        let (p, w) = fold_probabilities(&tiles, &[2], ClassificationPolicy::LesionWeighted);
        assert_eq!(w, Weighting::Foreground);
        let expected0 = (softmax(&[5.0, 0.0, 0.0])[0] * 10.0 + softmax(&[0.0, 5.0, 0.0])[0] * 0.5) / 10.5;
        assert!((p[0] - expected0).abs() < 1e-12);
        let none = [tile([5.0, 0.0, 0.0], [1000.0, 0.1, 0.1]), tile([0.0, 5.0, 0.0], [1000.0, 0.2, 0.3])];
        assert_eq!(fold_probabilities(&none, &[2], ClassificationPolicy::LesionWeighted).1, Weighting::Uniform);
    }

    #[test]
    fn folds_are_averaged_and_ties_pick_the_first_class() {
        let names = vec!["a".to_string(), "b".to_string()];
        let c = combine_folds(
            names,
            vec![(vec![0.2, 0.8], Weighting::Uniform), (vec![0.8, 0.2], Weighting::Uniform)],
            ClassificationPolicy::Mean,
        );
        assert_eq!(c.probabilities, vec![0.5, 0.5]);
        assert_eq!(c.predicted, 0);
    }
}
