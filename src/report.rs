//! `CASE.json`: what one prediction did, written next to its label map by `nnunet-rt predict` and
//! read back by `nnunet-rt evaluate` (the predicted class). One type for both, so the file's keys
//! are named once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::backend::runtime::RuntimeInfo;
use crate::error::{Error, Result};
use crate::model::{Model, PredictOptions, Prediction};
use crate::postprocess::StepReport;

/// The report of one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    /// Case identifier (the input file name without `_0000.nii.gz`).
    pub case: String,
    /// Input files, one per channel.
    #[serde(default)]
    pub inputs: Vec<PathBuf>,
    /// The label map written.
    #[serde(default)]
    pub output: PathBuf,
    /// The (first) model folder.
    #[serde(default)]
    pub model: PathBuf,
    /// Folds used.
    #[serde(default)]
    pub folds: Vec<String>,
    /// Configurations that answered (previous stages of a cascade and ensemble members included).
    #[serde(default)]
    pub configurations: Vec<String>,
    /// Postprocessing: its file, steps and what each did.
    #[serde(default)]
    pub postprocessing: PostprocessingReport,
    /// Tiles per fold.
    #[serde(default)]
    pub tiles_per_fold: usize,
    /// Network passes per tile (1 + mirrored copies).
    #[serde(default)]
    pub passes_per_tile: usize,
    /// Tiles through the network in all, mirrored copies counted.
    #[serde(default)]
    pub network_passes: usize,
    /// Whether the opt-in ROI focus ran.
    #[serde(default)]
    pub roi_focus: bool,
    /// Whether mirroring test-time augmentation ran.
    #[serde(default)]
    pub tta: bool,
    /// Sliding-window step as a fraction of the patch.
    #[serde(default)]
    pub step_size: f64,
    /// Input dims, x, y, z.
    #[serde(default)]
    pub dims_xyz: [usize; 3],
    /// Input spacing in mm, x, y, z.
    #[serde(default)]
    pub spacing_xyz: [f64; 3],
    /// Voxels per label of the written map.
    #[serde(default)]
    pub labels: Vec<LabelCount>,
    /// The classification head's answer, when the model has one.
    #[serde(default)]
    pub classification: Option<ClassificationReport>,
    /// Milliseconds per step.
    #[serde(default)]
    pub timings_ms: TimingsMs,
    /// Version of nnunet-rt that wrote the file.
    #[serde(default)]
    pub nnunet_rt_version: String,
    /// What the network ran on.
    #[serde(default)]
    pub runtime: Option<RuntimeInfo>,
}

/// Postprocessing as applied to one case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PostprocessingReport {
    /// The `postprocessing.json` applied, if any.
    pub file: Option<PathBuf>,
    /// Its steps in words (`none` without).
    pub steps: String,
    /// What each step did.
    pub applied: Vec<StepReport>,
}

/// Voxels of one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCount {
    /// Label name.
    pub name: String,
    /// Its voxels in the label map.
    pub voxels: u64,
}

/// The case-level class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// The head's class names.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// Case-level probabilities.
    #[serde(default)]
    pub probabilities: Vec<f64>,
    /// Index of the predicted class.
    #[serde(default)]
    pub predicted_class: Option<usize>,
    /// Name of the predicted class.
    #[serde(default)]
    pub predicted_class_name: Option<String>,
    /// Policy name (`lesion-voxels`, `lesion-weighted`, `mean`).
    #[serde(default)]
    pub policy: String,
    /// Probabilities per fold.
    #[serde(default)]
    pub per_fold_probabilities: Vec<Vec<f64>>,
    /// Which weights each fold used.
    #[serde(default)]
    pub per_fold_weighting: Vec<String>,
}

/// Milliseconds per step of one case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TimingsMs {
    /// Reading the input files.
    pub read: f64,
    /// Preprocessing.
    pub preprocess: f64,
    /// Network passes.
    pub network: f64,
    /// Export (and postprocessing).
    pub export: f64,
    /// Writing the outputs.
    pub write: f64,
}

/// Where a case's files are and how long reading and writing them took (what the library does
/// not see).
#[derive(Debug, Clone)]
pub struct CaseFiles<'a> {
    /// Case identifier.
    pub case: &'a str,
    /// Input files.
    pub inputs: &'a [PathBuf],
    /// Output label map.
    pub output: &'a Path,
    /// Time to read the inputs.
    pub read: Duration,
    /// Time to write the outputs.
    pub write: Duration,
}

impl CaseReport {
    /// The report of `prediction` made by `model` with `options`.
    pub fn new(model: &Model, files: &CaseFiles<'_>, prediction: &Prediction, options: &PredictOptions) -> CaseReport {
        let p = prediction;
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let counts = p.labels.counts(p.label_names.len());
        let (postprocessing, file) = model.postprocessing();
        CaseReport {
            case: files.case.to_string(),
            inputs: files.inputs.to_vec(),
            output: files.output.to_path_buf(),
            model: model.folder().dir.clone(),
            folds: p.folds.clone(),
            configurations: p.configurations.clone(),
            postprocessing: PostprocessingReport {
                file: file.map(Path::to_path_buf),
                steps: postprocessing.to_string(),
                applied: p.postprocessing.clone(),
            },
            tiles_per_fold: p.tiles,
            passes_per_tile: p.passes_per_tile,
            network_passes: p.network_passes,
            roi_focus: options.roi_focus,
            tta: options.mirroring && p.passes_per_tile > 1,
            step_size: options.step_size,
            dims_xyz: p.dims,
            spacing_xyz: p.geometry.spacing,
            labels: p
                .label_names
                .iter()
                .zip(counts)
                .map(|(name, voxels)| LabelCount { name: name.clone(), voxels })
                .collect(),
            classification: p.classification.as_ref().map(|c| ClassificationReport {
                class_names: c.class_names.clone(),
                probabilities: c.probabilities.clone(),
                predicted_class: Some(c.predicted),
                predicted_class_name: Some(c.class_names[c.predicted].clone()),
                policy: c.policy.name().to_string(),
                per_fold_probabilities: c.per_fold.clone(),
                per_fold_weighting: c.weighting.iter().map(|w| format!("{w:?}")).collect(),
            }),
            timings_ms: TimingsMs {
                read: ms(files.read),
                preprocess: ms(p.timings.preprocess),
                network: ms(p.timings.network),
                export: ms(p.timings.export),
                write: ms(files.write),
            },
            nnunet_rt_version: env!("CARGO_PKG_VERSION").to_string(),
            runtime: model.runtime_info().cloned(),
        }
    }

    /// Reads a `CASE.json`. Keys other than `case` may be missing (files written by other tools
    /// often carry only the classification).
    pub fn read(path: &Path) -> Result<CaseReport> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::invalid_argument(format!("cannot read {}: {e}", path.display())).with_source(e))?;
        serde_json::from_str(&text)
            .map_err(|e| Error::invalid_argument(format!("{} is not a case report: {e}", path.display())))
    }

    /// The report as pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a case report serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_classification_only_file_reads_and_round_trips() {
        let text = r#"{"case": "c1", "classification": {"predicted_class_name": "subtype2"}}"#;
        let report: CaseReport = serde_json::from_str(text).unwrap();
        let c = report.classification.as_ref().unwrap();
        assert_eq!((c.predicted_class, c.predicted_class_name.as_deref()), (None, Some("subtype2")));
        let again: CaseReport = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(again, report);
    }
}
