//! Ensembles of configurations and the selection `nnUNetv2_find_best_configuration` writes,
//! against nnU-Net's own ensemble of the same image (`cases/aniso_2d/reference/ensemble_seg.npy`:
//! `average_probabilities` of the 3d_fullres and 2d probabilities, then
//! `convert_probabilities_to_segmentation`).

mod common;

use std::path::PathBuf;

use nnunet_rt::io::{nifti, npy};
use nnunet_rt::postprocess::Postprocessing;
use nnunet_rt::{ErrorKind, Labels, LoadOptions, Model, PredictOptions};
use serde_json::json;

const TRAINER: &str = "nnUNetTrainer";
const PLANS: &str = "nnUNetResEncUNetMPlans";
const PP_DIR: &str = "ensembles/ensemble___3d_fullres___2d___0_1";

/// A dataset results folder as nnU-Net leaves it after training both configurations and running
/// `nnUNetv2_find_best_configuration` (paths in the JSON from the training machine).
fn results_folder(name: &str, postprocessing: serde_json::Value) -> PathBuf {
    let root = std::env::temp_dir().join(format!("nnrt-ensemble-{}-{name}", std::process::id()));
    let dataset = root.join("Dataset901_SyntheticPancreasCT");
    let _ = std::fs::remove_dir_all(&root);
    let models = common::fixtures().join("models");
    common::copy_dir(&models.join("resenc_ct"), &dataset.join(format!("{TRAINER}__{PLANS}__3d_fullres")));
    common::copy_dir(&models.join("resenc_ct_2d"), &dataset.join(format!("{TRAINER}__{PLANS}__2d")));
    std::fs::create_dir_all(dataset.join(PP_DIR)).unwrap();
    std::fs::write(dataset.join(PP_DIR).join("postprocessing.json"), postprocessing.to_string()).unwrap();
    let member = |c: &str| json!({"configuration": c, "trainer": TRAINER, "plans_identifier": PLANS});
    let info = json!({
        "folds": [0, 1],
        "dataset_name_or_id": "901",
        "ensembling_allowed": true,
        "best_model_or_ensemble": {
            "postprocessing_file": format!("/train/nnUNet_results/Dataset901_SyntheticPancreasCT/{PP_DIR}/postprocessing.pkl"),
            "some_plans_file": "/train/whatever/plans.json",
            "selected_model_or_models": [member("3d_fullres"), member("2d")]
        }
    });
    std::fs::write(dataset.join("inference_information.json"), info.to_string()).unwrap();
    dataset
}

fn no_postprocessing() -> serde_json::Value {
    json!({"postprocessing_fns": [], "postprocessing_kwargs": []})
}

fn keep_largest() -> serde_json::Value {
    json!({
        "postprocessing_fns": ["remove_all_but_largest_component_from_segmentation",
                               "remove_all_but_largest_component_from_segmentation"],
        "postprocessing_kwargs": [{"labels_or_regions": [1, 2]}, {"labels_or_regions": 2}]
    })
}

fn case_labels(model: &Model) -> Labels {
    let dir = common::fixtures().join("cases/aniso_2d/input");
    let image = nifti::read_channels(&[dir.join("aniso_2d_0000.nii.gz")]).unwrap();
    let prediction =
        model.predict(&image.volume.view().unwrap(), &PredictOptions::default(), &mut |_, _| true).unwrap();
    assert_eq!(prediction.configurations, ["3d_fullres", "2d"]);
    prediction.labels
}

fn nnunet_ensemble() -> Vec<u32> {
    let reference = npy::read(&common::fixtures().join("cases/aniso_2d/reference/ensemble_seg.npy")).unwrap();
    assert_eq!(reference.shape, [10, 40, 44]);
    reference.to_f32().unwrap().into_iter().map(|v| v as u32).collect()
}

fn values(labels: &Labels) -> Vec<u32> {
    (0..labels.len()).map(|i| labels.get(i)).collect()
}

#[test]
fn inference_information_runs_the_selected_ensemble_like_nnunet() {
    if !common::ort_available() {
        return;
    }
    let dataset = results_folder("selected", no_postprocessing());
    let model = Model::load(&dataset, &LoadOptions::default()).unwrap();
    assert_eq!(model.configurations().len(), 2);
    assert_eq!(model.fold_names(), ["0", "1"]);
    assert!(model.postprocessing().0.is_empty());
    let ours = values(&case_labels(&model));
    let reference = nnunet_ensemble();
    let differing = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
    assert!(reference.iter().filter(|&&v| v == 2).count() > 50, "the reference holds a lesion");
    assert_eq!(differing, 0, "{differing} voxels differ from nnUNetv2_ensemble's segmentation");

    // The same members named explicitly (nnUNetv2_ensemble over two prediction folders).
    let explicit = Model::ensemble(
        &[dataset.join(format!("{TRAINER}__{PLANS}__3d_fullres")), dataset.join(format!("{TRAINER}__{PLANS}__2d"))],
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(values(&case_labels(&explicit)), ours);
    std::fs::remove_dir_all(dataset.parent().unwrap()).unwrap();
}

#[test]
fn the_selected_postprocessing_runs_after_the_ensemble() {
    if !common::ort_available() {
        return;
    }
    let dataset = results_folder("postprocessed", keep_largest());
    let model = Model::load(&dataset, &LoadOptions::default()).unwrap();
    assert_eq!(model.postprocessing().0.to_string(), "keep the largest component of {1, 2}, then of 2");
    let ours = case_labels(&model);

    // nnU-Net's postprocessing (checked voxel for voxel in tests/postprocess.rs) on nnU-Net's ensemble.
    let reference = nnunet_ensemble();
    let mut expected = Labels::U8(reference.iter().map(|&v| v as u8).collect());
    let reports = Postprocessing::from_json(&keep_largest()).unwrap().apply(&mut expected, [44, 40, 10]).unwrap();
    assert_eq!(values(&ours), values(&expected));
    assert!(reports.iter().any(|r| r.removed_voxels > 0) || values(&expected) == reference);

    // Opting out gives the plain ensemble back.
    let plain = Model::load(&dataset, &LoadOptions { skip_postprocessing: true, ..LoadOptions::default() }).unwrap();
    assert_eq!(values(&case_labels(&plain)), reference);
    std::fs::remove_dir_all(dataset.parent().unwrap()).unwrap();
}

#[test]
fn broken_selections_are_refused_at_load() {
    if !common::ort_available() {
        return;
    }
    // postprocessing.json naming a function nnU-Net does not have
    let dataset = results_folder(
        "unknown-fn",
        json!({"postprocessing_fns": ["remove_everything"], "postprocessing_kwargs": [{}]}),
    );
    let err = Model::load(&dataset, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnsupportedModel, "{err}");
    assert!(err.message().contains("remove_everything"), "{err}");

    // members that disagree on labels
    let dataset = results_folder("disagree", no_postprocessing());
    let dataset_json = dataset.join(format!("{TRAINER}__{PLANS}__2d/dataset.json"));
    let mut d = common::read_json(&dataset_json);
    d["labels"] = json!({"background": 0, "organ": 1, "lesion": 2});
    std::fs::write(&dataset_json, d.to_string()).unwrap();
    let err = Model::load(&dataset, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidModel, "{err}");
    assert!(err.message().contains("ensemble members disagree"), "{err}");

    // a selected configuration that is not there
    let dataset = results_folder("missing-member", no_postprocessing());
    std::fs::remove_dir_all(dataset.join(format!("{TRAINER}__{PLANS}__2d"))).unwrap();
    let err = Model::load(&dataset, &LoadOptions::default()).unwrap_err();
    assert!(err.message().contains("__2d"), "{err}");

    // a fold the selection asks for that a member lacks
    let dataset = results_folder("missing-fold", no_postprocessing());
    std::fs::remove_dir_all(dataset.join(format!("{TRAINER}__{PLANS}__2d/fold_1"))).unwrap();
    let err = Model::load(&dataset, &LoadOptions::default()).unwrap_err();
    assert!(err.message().contains("fold \"1\""), "{err}");
    for name in ["unknown-fn", "disagree", "missing-member", "missing-fold"] {
        let _ =
            std::fs::remove_dir_all(std::env::temp_dir().join(format!("nnrt-ensemble-{}-{name}", std::process::id())));
    }
}
