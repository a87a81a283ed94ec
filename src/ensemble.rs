//! Several trained configurations answering as one, as `nnUNetv2_ensemble` combines them, and the
//! selection `nnUNetv2_find_best_configuration` writes to `inference_information.json`.
//!
//! An ensemble averages the members' probabilities — softmax or region sigmoids, on the input
//! grid — in float32, in member order (the first member's array, plus each next one, divided by
//! the count), then labels them as a single model's ([`crate::export::labels_from_probabilities`]):
//! `average_probabilities` followed by `convert_probabilities_to_segmentation` in nnU-Net 2.8.1.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// The file `nnUNetv2_find_best_configuration` writes in a dataset's results folder.
pub const INFERENCE_INFORMATION_FILE: &str = "inference_information.json";

/// One configuration chosen by `inference_information.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its model folder, `<results>/<trainer>__<plans>__<configuration>`.
    pub dir: PathBuf,
    /// The configuration's name, e.g. `3d_fullres`.
    pub configuration: String,
}

/// What `inference_information.json` selected: the configuration(s), the folds and the
/// postprocessing determined on their cross-validation results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// One member, or two for an ensemble, in the file's order.
    pub members: Vec<Member>,
    /// Fold names every member runs (`folds` of the file).
    pub folds: Vec<String>,
    /// The selection's `postprocessing.json` (beside the `postprocessing.pkl` the file names).
    pub postprocessing: PathBuf,
}

impl Selection {
    /// Reads `results_dir/inference_information.json`; member folders and the postprocessing file
    /// are found inside `results_dir` even when the file names the absolute paths of the machine
    /// that trained the models.
    pub fn read(results_dir: &Path) -> Result<Selection> {
        let path = results_dir.join(INFERENCE_INFORMATION_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::invalid_model(format!("cannot read {}: {e}", path.display())).with_source(e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid_model(format!("{} is not valid JSON: {e}", path.display())))?;
        let at = |key: &str| format!("{} {key}", path.display());
        let best = json
            .get("best_model_or_ensemble")
            .ok_or_else(|| Error::invalid_model(format!("{} is missing", at("best_model_or_ensemble"))))?;
        let selected =
            best.get("selected_model_or_models").and_then(Value::as_array).filter(|list| !list.is_empty()).ok_or_else(
                || {
                    Error::invalid_model(format!(
                        "{} is missing or empty",
                        at("best_model_or_ensemble.selected_model_or_models")
                    ))
                },
            )?;
        let members = selected
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let field = |key: &str| {
                    entry
                        .get(key)
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty() && !s.contains(['/', '\\']))
                        .ok_or_else(|| {
                            Error::invalid_model(format!(
                                "{} is missing or not a folder name",
                                at(&format!("best_model_or_ensemble.selected_model_or_models[{i}].{key}"))
                            ))
                        })
                };
                let (trainer, plans, configuration) =
                    (field("trainer")?, field("plans_identifier")?, field("configuration")?);
                Ok(Member {
                    dir: results_dir.join(format!("{trainer}__{plans}__{configuration}")),
                    configuration: configuration.to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let folds = json
            .get("folds")
            .and_then(Value::as_array)
            .filter(|list| !list.is_empty())
            .and_then(|list| {
                list.iter()
                    .map(|f| match f {
                        Value::Number(n) => n.as_u64().map(|n| n.to_string()),
                        Value::String(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| Error::invalid_model(format!("{} is not a list of fold numbers", at("folds"))))?;
        let named = best.get("postprocessing_file").and_then(Value::as_str).ok_or_else(|| {
            Error::invalid_model(format!("{} is missing", at("best_model_or_ensemble.postprocessing_file")))
        })?;
        let postprocessing = locate_postprocessing(results_dir, Path::new(named)).ok_or_else(|| {
            Error::invalid_model(format!(
                "{} names {named}; its postprocessing.json is neither there nor at the same place under {}",
                at("best_model_or_ensemble.postprocessing_file"),
                results_dir.display()
            ))
        })?;
        Ok(Selection { members, folds, postprocessing })
    }

    /// One line for people: `3d_fullres + 2d, folds 0, 1`.
    pub fn describe(&self) -> String {
        let configurations: Vec<&str> = self.members.iter().map(|m| m.configuration.as_str()).collect();
        format!("{}, folds {}", configurations.join(" + "), self.folds.join(", "))
    }
}

/// `postprocessing.json` beside the named `postprocessing.pkl`: at the named place, or at the same
/// place relative to the dataset's results folder (the named path usually starts with the
/// training machine's `nnUNet_results/<dataset>/`).
fn locate_postprocessing(results_dir: &Path, named: &Path) -> Option<PathBuf> {
    let json = named.with_extension("json");
    if json.is_file() {
        return Some(json);
    }
    let dataset = results_dir.canonicalize().ok()?.file_name()?.to_os_string();
    let components: Vec<_> = json.components().collect();
    let start = components.iter().rposition(|c| c.as_os_str() == dataset)?;
    let relative: PathBuf = components[start + 1..].iter().collect();
    let candidate = results_dir.join(relative);
    candidate.is_file().then_some(candidate)
}

/// The members' probabilities averaged as nnU-Net does: float32, summed in member order, divided
/// by the member count. `members` must be non-empty and of equal lengths.
pub fn average_probabilities(members: &[Vec<f32>]) -> Vec<f32> {
    let (first, rest) = members.split_first().expect("an ensemble has members");
    let mut sum = first.clone();
    for member in rest {
        assert_eq!(member.len(), sum.len(), "ensemble members predict the same grid");
        sum.iter_mut().zip(member).for_each(|(s, v)| *s += v);
    }
    let count = members.len() as f32;
    sum.iter_mut().for_each(|s| *s /= count);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_in_float32_in_member_order() {
        let a = vec![0.5, 0.2, 0.5, 0.8];
        let b = vec![0.1, 0.6, 0.5, 0.2];
        assert_eq!(average_probabilities(&[a, b]), vec![0.3, 0.4, 0.5, 0.5]);
    }

    fn write_selection(dir: &Path, members: &[(&str, &str)], pkl: &str) {
        let selected: Vec<Value> = members
            .iter()
            .map(|(c, p)| serde_json::json!({"configuration": c, "trainer": "nnUNetTrainer", "plans_identifier": p}))
            .collect();
        let info = serde_json::json!({
            "folds": [0, 1],
            "best_model_or_ensemble": {"postprocessing_file": pkl, "selected_model_or_models": selected}
        });
        std::fs::write(dir.join(INFERENCE_INFORMATION_FILE), info.to_string()).unwrap();
    }

    #[test]
    fn finds_members_and_the_moved_postprocessing_file() {
        let root = std::env::temp_dir().join(format!("nnrt-selection-{}", std::process::id()));
        let dataset = root.join("Dataset901_X");
        let pp = dataset.join("ensembles/ensemble___a___b___0_1");
        std::fs::create_dir_all(&pp).unwrap();
        std::fs::write(pp.join("postprocessing.json"), "{}").unwrap();
        write_selection(
            &dataset,
            &[("3d_fullres", "P"), ("2d", "P")],
            "/elsewhere/nnUNet_results/Dataset901_X/ensembles/ensemble___a___b___0_1/postprocessing.pkl",
        );
        let selection = Selection::read(&dataset).unwrap();
        assert_eq!(selection.members[0].dir, dataset.join("nnUNetTrainer__P__3d_fullres"));
        assert_eq!(selection.members[1].configuration, "2d");
        assert_eq!(selection.folds, ["0", "1"]);
        assert_eq!(
            selection.postprocessing.canonicalize().unwrap(),
            pp.join("postprocessing.json").canonicalize().unwrap()
        );
        assert_eq!(selection.describe(), "3d_fullres + 2d, folds 0, 1");

        write_selection(&dataset, &[("3d_fullres", "P")], "/elsewhere/Dataset901_X/missing/postprocessing.pkl");
        let err = Selection::read(&dataset).unwrap_err();
        assert!(err.message().contains("postprocessing_file"), "{err}");
        write_selection(&dataset, &[("../3d_fullres", "P")], "x.pkl");
        let err = Selection::read(&dataset).unwrap_err();
        assert!(err.message().contains("selected_model_or_models[0].configuration"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
