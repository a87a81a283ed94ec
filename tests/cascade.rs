//! A cascade in nnU-Net's results layout: the `3d_cascade_fullres` folder finds its `3d_lowres`
//! sibling, runs both stages in one prediction, reports progress over both, and cancels in either.
//! (Stage-by-stage parity with nnU-Net is in tests/parity.rs, case `cascade`.)

mod common;

use std::path::PathBuf;

use nnunet_rt::io::nifti;
use nnunet_rt::{ErrorKind, LoadOptions, Model, PredictOptions, Stage};

const PREFIX: &str = "nnUNetTrainer__nnUNetResEncUNetMPlans";

/// `Dataset905_.../{PREFIX}__3d_lowres` and `__3d_cascade_fullres`, as nnU-Net leaves them.
fn results(name: &str, with_lowres: bool) -> PathBuf {
    let dataset = std::env::temp_dir().join(format!("nnrt-cascade-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dataset);
    let models = common::fixtures().join("models");
    common::copy_dir(&models.join("cascade_ct_fullres"), &dataset.join(format!("{PREFIX}__3d_cascade_fullres")));
    if with_lowres {
        common::copy_dir(&models.join("cascade_ct_lowres"), &dataset.join(format!("{PREFIX}__3d_lowres")));
    }
    dataset
}

fn image() -> nnunet_rt::Volume {
    let input = common::fixtures().join("cases/cascade/input/cascade_0000.nii.gz");
    nifti::read_channels(&[input]).unwrap().volume
}

#[test]
fn finds_its_previous_stage_and_runs_both() {
    if !common::ort_available() {
        return;
    }
    let dataset = results("sibling", true);
    let model = Model::load(dataset.join(format!("{PREFIX}__3d_cascade_fullres")), &LoadOptions::default()).unwrap();
    let volume = image();
    let mut reports = Vec::new();
    let prediction = model
        .predict(&volume.view().unwrap(), &PredictOptions::default(), &mut |stage, fraction| {
            reports.push((stage, fraction));
            true
        })
        .unwrap();
    assert_eq!(prediction.configurations, ["3d_lowres", "3d_cascade_fullres"]);
    // Fractions are per stage; the network stage's run over both models without going back.
    let network: Vec<f64> = reports.iter().filter(|r| r.0 == Stage::Network).map(|r| r.1).collect();
    assert!(network.windows(2).all(|w| w[1] >= w[0]), "network progress never goes back: {network:?}");
    assert!(network.iter().any(|&f| f > 0.0 && f < 0.5), "the first stage reports: {network:?}");
    assert!(network.iter().any(|&f| f > 0.5 && f < 1.0), "the second stage reports: {network:?}");
    assert_eq!(network.last(), Some(&1.0));
    assert_eq!(reports.last(), Some(&(Stage::Export, 1.0)));

    // Cancelling while the first stage runs stops the whole prediction.
    let mut calls = 0;
    let err = model
        .predict(&volume.view().unwrap(), &PredictOptions::default(), &mut |stage, _| {
            calls += 1;
            !(stage == Stage::Network && calls > 3)
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    std::fs::remove_dir_all(&dataset).unwrap();
}

#[test]
fn a_missing_previous_stage_is_a_clear_error() {
    if !common::ort_available() {
        return;
    }
    let dataset = results("missing", false);
    let cascade = dataset.join(format!("{PREFIX}__3d_cascade_fullres"));
    let err = Model::load(&cascade, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidModel, "{err}");
    assert!(err.message().contains("3d_lowres") && err.message().contains("previous-stage"), "{err}");

    // Naming a model that is not the previous stage (a 3d_fullres model) is refused too.
    let other = common::fixtures().join("models/resenc_ct");
    let options = LoadOptions { previous_stage_model: Some(other), ..LoadOptions::default() };
    let err = Model::load(&cascade, &options).unwrap_err();
    assert!(err.message().contains("is not"), "{err}");
    std::fs::remove_dir_all(&dataset).unwrap();
}
