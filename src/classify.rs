//! Case-level class probabilities from a classification head that sees one tile at a time.
//!
//! Default policy, `LesionWeighted`: per fold and tile, the head's logits are averaged over the
//! mirrored passes and turned into probabilities (softmax); each tile is weighted by how much of
//! the evidence labels (default: the highest label, the lesion) the tile's own segmentation
//! predicts — the sum of that label's softmax probability over the tile's voxels. The fold's
//! probabilities are the weighted mean over tiles. If no tile holds one voxel's worth of the
//! evidence labels, all foreground labels weight the tiles instead, and if that is also below one
//! voxel everywhere, the plain mean is used. Folds are averaged (probabilities, not logits) and
//! the predicted class is the first maximum. `Mean` is the unweighted mean over tiles.

use crate::window::TileEvidence;

/// How tile-level head outputs become one case-level answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassificationPolicy {
    /// Tiles weighted by the predicted volume of the evidence labels (see the module docs).
    #[default]
    LesionWeighted,
    /// Unweighted mean of the tiles' probabilities.
    Mean,
}

impl ClassificationPolicy {
    /// Stable name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            ClassificationPolicy::LesionWeighted => "lesion_weighted",
            ClassificationPolicy::Mean => "mean",
        }
    }
}

/// Which weights one fold ended up using.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// Predicted volume of the evidence labels.
    EvidenceLabels,
    /// Predicted volume of all foreground labels (no tile held enough of the evidence labels).
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
    let weights_for = |labels: &mut dyn Iterator<Item = usize>| -> Vec<f64> {
        let labels: Vec<usize> = labels.collect();
        tiles.iter().map(|t| labels.iter().map(|&l| t.label_volume[l]).sum()).collect()
    };
    let (weights, weighting) = match policy {
        ClassificationPolicy::Mean => (vec![1.0; tiles.len()], Weighting::Uniform),
        ClassificationPolicy::LesionWeighted => {
            let enough = |w: &[f64]| w.iter().any(|&v| v >= 1.0);
            let evidence = weights_for(&mut evidence_labels.iter().copied());
            if enough(&evidence) {
                (evidence, Weighting::EvidenceLabels)
            } else {
                let classes = tiles.first().map_or(0, |t| t.label_volume.len());
                let foreground = weights_for(&mut (1..classes));
                if enough(&foreground) {
                    (foreground, Weighting::Foreground)
                } else {
                    (vec![1.0; tiles.len()], Weighting::Uniform)
                }
            }
        }
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
        TileEvidence { class_logits: logits.to_vec(), label_volume: volume.to_vec() }
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
