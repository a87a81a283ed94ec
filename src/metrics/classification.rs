//! Classification metrics of a case-level prediction (e.g. a lesion subtype).
//!
//! Precision of a class is `TP / (TP + FP)`, recall `TP / (TP + FN)`, F1 their harmonic mean;
//! a ratio with a zero denominator is 0 (scikit-learn's `zero_division=0`). Macro-F1 is the
//! unweighted mean of the F1 of the classes that occur in the truth or in the predictions
//! (scikit-learn's default label set); classes that occur in neither are listed with support 0
//! but left out of the mean.

use serde::Serialize;

use crate::error::{Error, Result};

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// `TP / (TP + FP)`, 0 when the class is never predicted.
    pub precision: f64,
    /// `TP / (TP + FN)`, 0 when the class never occurs in the truth.
    pub recall: f64,
    /// Harmonic mean of precision and recall, 0 when both are 0.
    pub f1: f64,
    /// Cases of this class in the truth.
    pub support: usize,
    /// Cases predicted as this class.
    pub predicted: usize,
}

/// Accuracy, macro-F1, per-class metrics and the confusion matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Number of cases.
    pub n: usize,
    /// Fraction of cases whose predicted class is the true class.
    pub accuracy: f64,
    /// Mean F1 over the classes that occur in the truth or the predictions.
    pub macro_f1: f64,
    /// One entry per class, in the order of the class names.
    pub classes: Vec<ClassMetrics>,
    /// `confusion[t][p]`: cases of true class `t` predicted as `p`.
    pub confusion: Vec<Vec<usize>>,
}

/// Computes the report from the true and predicted class index of each case; indices refer to
/// `class_names`.
///
/// Fails with [`crate::ErrorKind::InvalidArgument`] when the two lists differ in length, are
/// empty, or hold an index outside `class_names`.
pub fn classification_report(
    truth: &[usize],
    predicted: &[usize],
    class_names: &[String],
) -> Result<ClassificationReport> {
    if truth.len() != predicted.len() {
        return Err(Error::invalid_argument(format!(
            "{} true classes but {} predicted classes; there must be one of each per case",
            truth.len(),
            predicted.len()
        )));
    }
    if truth.is_empty() {
        return Err(Error::invalid_argument("no case to compute classification metrics on"));
    }
    let k = class_names.len();
    if let Some(&bad) = truth.iter().chain(predicted).find(|&&c| c >= k) {
        return Err(Error::invalid_argument(format!(
            "class index {bad} is outside the {k} class names {class_names:?}"
        )));
    }
    let mut confusion = vec![vec![0usize; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t][p] += 1;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let classes: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let support: usize = confusion[c].iter().sum();
            let predicted: usize = confusion.iter().map(|row| row[c]).sum();
            let (precision, recall) = (ratio(tp, predicted), ratio(tp, support));
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { class: class_names[c].clone(), precision, recall, f1, support, predicted }
        })
        .collect();
    let present: Vec<&ClassMetrics> = classes.iter().filter(|c| c.support > 0 || c.predicted > 0).collect();
    let macro_f1 = present.iter().map(|c| c.f1).sum::<f64>() / present.len() as f64;
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    Ok(ClassificationReport {
        n: truth.len(),
        accuracy: correct as f64 / truth.len() as f64,
        macro_f1,
        classes,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        // truth:     a a a b b c
        // predicted: a a b b c c
        let r = classification_report(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], &names).unwrap();
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(r.confusion, vec![vec![2, 1, 0, 0], vec![0, 1, 1, 0], vec![0, 0, 1, 0], vec![0; 4]]);
        let a = &r.classes[0];
        assert_eq!((a.precision, a.support, a.predicted), (1.0, 3, 2));
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12 && (a.f1 - 0.8).abs() < 1e-12);
        let b = &r.classes[1];
        assert_eq!((b.precision, b.recall, b.f1), (0.5, 0.5, 0.5));
        let c = &r.classes[2];
        assert!((c.precision - 0.5).abs() < 1e-12 && c.recall == 1.0 && (c.f1 - 2.0 / 3.0).abs() < 1e-12);
        // "d" occurs nowhere: listed, not averaged.
        assert_eq!(r.classes[3].f1, 0.0);
        assert!((r.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!(classification_report(&[0], &[4], &names).is_err());
        assert!(classification_report(&[0, 1], &[0], &names).is_err());
        assert!(classification_report(&[], &[], &names).is_err());
    }
}
