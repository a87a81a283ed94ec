//! Bad input gets a clear error, never a crash, through the Rust API. (The CLI's side, including
//! that a failed run leaves no partial output, is in cli/tests/bad_inputs.rs.)

mod common;

use std::path::{Path, PathBuf};

use nnunet_rt::folder::ModelFolder;
use nnunet_rt::{ErrorKind, Geometry, LoadOptions, Model, PredictOptions, VolumeView, VoxelData};

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model_dir(name: &str) -> PathBuf {
    common::fixtures().join("models").join(name)
}

fn ct_case() -> PathBuf {
    common::fixtures().join("cases/aniso_int16/input/aniso_int16_0000.nii.gz")
}

#[test]
fn plans_missing_keys_and_unknown_folds_are_named() {
    let dir = temp_dir("plans");
    common::copy_dir(&model_dir("resenc_ct"), &dir);
    let err = ModelFolder::open(&dir, Some(&["7".to_string()])).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("fold \"7\""), "{err}");

    let plans_path = dir.join("plans.json");
    let mut plans: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&plans_path).unwrap()).unwrap();
    for config in plans["configurations"].as_object_mut().unwrap().values_mut() {
        config.as_object_mut().unwrap().remove("patch_size");
    }
    std::fs::write(&plans_path, serde_json::to_string(&plans).unwrap()).unwrap();
    let err = ModelFolder::open(&dir, None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidModel);
    assert!(err.message().contains("patch_size"), "{err}");

    std::fs::write(&plans_path, "{ not json").unwrap();
    let err = ModelFolder::open(&dir, None).unwrap_err();
    assert!(err.message().contains("plans.json is not valid JSON"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_model_folder_and_missing_exports() {
    let err = ModelFolder::open(Path::new("/nonexistent/model"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let dir = temp_dir("noexport");
    common::copy_dir(&model_dir("resenc_ct"), &dir);
    for fold in ["fold_0", "fold_1"] {
        std::fs::remove_file(dir.join(fold).join("model.onnx")).unwrap();
    }
    let err = ModelFolder::open(&dir, None).unwrap_err();
    assert!(err.message().contains("export_onnx.py"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn truncated_onnx_is_an_invalid_model() {
    if !common::ort_available() {
        return;
    }
    let dir = temp_dir("truncated");
    common::copy_dir(&model_dir("resenc_ct"), &dir);
    let onnx = dir.join("fold_0/model.onnx");
    let bytes = std::fs::read(&onnx).unwrap();
    std::fs::write(&onnx, &bytes[..bytes.len() / 3]).unwrap();
    let err = Model::load(&dir, &LoadOptions::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidModel, "{err}");
    assert!(err.message().contains("model.onnx"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn channel_count_mismatch_is_a_shape_error() {
    if !common::ort_available() {
        return;
    }
    let model = Model::load(model_dir("two_channel"), &LoadOptions::default()).unwrap();
    let data = vec![0f32; 8 * 8 * 8];
    let view = VolumeView::new(VoxelData::F32(&data), [8, 8, 8], 1, Geometry::with_spacing([1.0; 3])).unwrap();
    let err = model.predict(&view, &PredictOptions::default(), &mut |_, _| true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ShapeMismatch);
    assert!(err.message().contains("2"), "{err}");
}

#[test]
fn cancelling_stops_the_prediction() {
    if !common::ort_available() {
        return;
    }
    let model =
        Model::load(model_dir("resenc_ct"), &LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() })
            .unwrap();
    let image = nnunet_rt::io::nifti::read_image(&ct_case()).unwrap();
    let view = image.volume.view().unwrap();
    for stop_at in [0.0, 0.5, 1.0] {
        let mut calls = 0;
        let mut after_stop = 0;
        let err = model
            .predict(&view, &PredictOptions::default(), &mut |stage, fraction| {
                calls += 1;
                let stop =
                    stage == nnunet_rt::Stage::Network && fraction >= stop_at || stage == nnunet_rt::Stage::Export;
                if stop {
                    after_stop += 1;
                }
                !stop
            })
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Cancelled, "stop at {stop_at}");
        assert_eq!(after_stop, 1, "no progress call after cancelling");
        assert!(calls >= 2);
    }
    // The model still works after a cancelled call.
    assert!(model.predict(&view, &PredictOptions::default(), &mut |_, _| true).is_ok());
}

#[test]
fn volumes_with_bad_geometry_or_values_are_refused() {
    let data = vec![1f32; 27];
    let cases: Vec<(&str, Result<VolumeView<'_>, nnunet_rt::Error>)> = vec![
        ("zero dims", VolumeView::new(VoxelData::F32(&data), [0, 3, 9], 1, Geometry::with_spacing([1.0; 3]))),
        ("zero spacing", VolumeView::new(VoxelData::F32(&data), [3, 3, 3], 1, Geometry::with_spacing([0.0, 1.0, 1.0]))),
        (
            "NaN spacing",
            VolumeView::new(VoxelData::F32(&data), [3, 3, 3], 1, Geometry::with_spacing([1.0, f64::NAN, 1.0])),
        ),
    ];
    for (what, result) in cases {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::InvalidImage, "{what}");
    }
    let mut nan = data.clone();
    nan[13] = f32::NAN;
    let err = VolumeView::new(VoxelData::F32(&nan), [3, 3, 3], 1, Geometry::with_spacing([1.0; 3])).unwrap_err();
    assert!(err.message().contains("NaN"), "{err}");
}

#[test]
fn asking_for_cuda_without_it_is_a_clear_error_not_a_cpu_fallback() {
    if !common::ort_available() {
        return;
    }
    // A build without the `cuda` feature refuses at once; a CUDA build on a machine without a
    // usable GPU fails to register the provider. Either way: an error naming CUDA, never a model
    // that silently runs on the CPU.
    let options = LoadOptions { device: nnunet_rt::Device::Cuda(0), ..LoadOptions::default() };
    match Model::load(model_dir("resenc_ct"), &options) {
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::RuntimeUnavailable, "{err}");
            assert!(err.message().contains("CUDA"), "{err}");
        }
        Ok(_) if cfg!(feature = "cuda") => eprintln!("a CUDA device is present: the GPU path loaded"),
        Ok(_) => panic!("a build without CUDA support loaded a model for --device cuda"),
    }
}
