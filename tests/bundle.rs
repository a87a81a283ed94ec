//! A model bundle predicts exactly what its folder predicts: plain, cascade (previous stage inside
//! the bundle), region-based and postprocessed models; from a file path and from memory. Broken
//! bundles are refused with a status.

mod common;

use std::path::{Path, PathBuf};

use nnunet_rt::io::nifti;
use nnunet_rt::{ErrorKind, LoadOptions, Model, PredictOptions, Prediction};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-bundle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn predict(model: &Model, case: &str) -> Prediction {
    let input = common::fixtures().join(format!("cases/{case}/input/{case}_0000.nii.gz"));
    let image = nifti::read_channels(&[input]).unwrap();
    let options = PredictOptions { mirroring: false, probabilities: true, ..PredictOptions::default() };
    model.predict(&image.volume.view().unwrap(), &options, &mut |_, _| true).unwrap()
}

/// Bundles `folder`, then checks the bundle (by path and from memory) against the folder.
fn same_answer(folder: &Path, options: &LoadOptions, case: &str, dir: &Path) {
    let bundle = dir.join("model.nnrt");
    Model::write_bundle(folder, options, &bundle).unwrap();
    assert!(!dir.join("model.nnrt.partial").exists(), "the partial file is renamed into place");
    let expected = predict(&Model::load(folder, options).unwrap(), case);
    let bytes = std::fs::read(&bundle).unwrap();
    // Only the fold selection applies to a bundle; its files are its own.
    let bundle_options = LoadOptions { previous_stage_model: None, ..options.clone() };
    for model in [Model::load(&bundle, &bundle_options).unwrap(), Model::load_bundle(&bytes, &bundle_options).unwrap()]
    {
        let got = predict(&model, case);
        assert_eq!(got.labels.len(), expected.labels.len());
        let differing = (0..got.labels.len()).filter(|&i| got.labels.get(i) != expected.labels.get(i)).count();
        assert_eq!(differing, 0, "{case}: labels differ from the folder's");
        assert_eq!(got.probabilities, expected.probabilities, "{case}: probabilities differ");
        assert_eq!(got.configurations, expected.configurations);
        assert_eq!(got.postprocessing.len(), expected.postprocessing.len());
        assert_eq!(got.folds, expected.folds);
    }
}

#[test]
fn bundles_predict_what_their_folders_predict() {
    if !common::ort_available() {
        return;
    }
    let models = common::fixtures().join("models");
    let fold_0 = LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() };
    same_answer(&models.join("resenc_ct"), &fold_0, "small", &scratch("plain"));
    same_answer(&models.join("regions_ct"), &fold_0, "regions", &scratch("regions"));
    let cascade = LoadOptions { previous_stage_model: Some(models.join("cascade_ct_lowres")), ..fold_0.clone() };
    same_answer(&models.join("cascade_ct_fullres"), &cascade, "cascade", &scratch("cascade"));

    // A folder with a postprocessing.json carries it into the bundle.
    let dir = scratch("postprocessed");
    let folder = dir.join("model");
    common::copy_dir(&models.join("resenc_ct"), &folder);
    // determine_postprocessing's output, trimmed to the part that is applied: keep the largest
    // pancreas component.
    let pp = r#"{"postprocessing_fns": ["remove_all_but_largest_component_from_segmentation"],
        "postprocessing_kwargs": [{"labels_or_regions": 1}]}"#;
    std::fs::write(folder.join("postprocessing.json"), pp).unwrap();
    same_answer(&folder, &fold_0, "small", &dir);
    let bytes = std::fs::read(dir.join("model.nnrt")).unwrap();
    let model = Model::load_bundle(&bytes, &fold_0).unwrap();
    assert!(!model.postprocessing().0.is_empty(), "the bundle's postprocessing applies");
    let skip = LoadOptions { skip_postprocessing: true, ..fold_0.clone() };
    assert!(Model::load_bundle(&bytes, &skip).unwrap().postprocessing().0.is_empty());
}

#[test]
fn broken_bundles_are_refused_with_a_status() {
    let dir = scratch("broken");
    let bundle = dir.join("model.nnrt");
    let fold_0 = LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() };
    Model::write_bundle(&common::fixtures().join("models/resenc_ct"), &fold_0, &bundle).unwrap();
    let bytes = std::fs::read(&bundle).unwrap();
    for broken in [&bytes[..bytes.len() - 1], &bytes[..bytes.len() / 2], &bytes[..16], &b"NNRTBNDL"[..], &[][..]] {
        let err = Model::load_bundle(broken, &fold_0).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidModel, "{err}");
    }
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    assert!(Model::load_bundle(&flipped, &fold_0).unwrap_err().to_string().contains("checksum"));
    // A fold the bundle does not hold.
    let fold_7 = LoadOptions { folds: Some(vec!["7".into()]), ..LoadOptions::default() };
    if common::ort_available() {
        assert_eq!(Model::load_bundle(&bytes, &fold_7).unwrap_err().kind(), ErrorKind::InvalidArgument);
    }
    // What cannot be bundled.
    let err = Model::write_bundle(&dir.join("missing"), &fold_0, &dir.join("x.nnrt")).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert!(!dir.join("x.nnrt").exists() && !dir.join("x.nnrt.partial").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
