//! Float16 models (`tools/onnx_fp16.py`, committed under tests/fixtures/models_fp16) against
//! their float32 originals: the same segmentation up to per-label Dice 0.999 on every fixture
//! case, end to end with the case's folds and settings.

mod common;

use std::path::PathBuf;

use nnunet_rt::io::nifti;
use nnunet_rt::{Model, PredictOptions};

fn dice(a: &[u32], b: &[u32], label: u32) -> Option<f64> {
    let (mut both, mut total) = (0usize, 0usize);
    for (&x, &y) in a.iter().zip(b) {
        both += (x == label && y == label) as usize;
        total += (x == label) as usize + (y == label) as usize;
    }
    (total > 0).then(|| 2.0 * both as f64 / total as f64)
}

#[test]
fn float16_models_segment_like_float32_ones() {
    if !common::ort_available() {
        return;
    }
    let root = common::fixtures().join("cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).collect();
    cases.sort();
    let mut report = Vec::new();
    for dir in cases {
        let meta = common::read_json(&dir.join("reference/case.json"));
        let model_name = meta["model"].as_str().unwrap();
        let options = PredictOptions {
            step_size: meta["step_size"].as_f64().unwrap(),
            mirroring: meta["use_mirroring"].as_bool().unwrap(),
            ..PredictOptions::default()
        };
        let mut inputs: Vec<PathBuf> =
            std::fs::read_dir(dir.join("input")).unwrap().map(|e| e.unwrap().path()).collect();
        inputs.sort();
        let image = nifti::read_channels(&inputs).unwrap();
        let view = image.volume.view().unwrap();
        let load = |models: &str| {
            let folder = common::fixtures().join(models).join(model_name);
            Model::load(folder, &common::case_load_options(&meta, models)).unwrap()
        };
        let labels = |model: &Model| {
            let p = model.predict(&view, &options, &mut |_, _| true).unwrap();
            (0..p.labels.len()).map(|i| p.labels.get(i)).collect::<Vec<u32>>()
        };
        let full = labels(&load("models"));
        let half = labels(&load("models_fp16"));
        let classes = load("models").plan().num_classes() as u32;
        let differing = full.iter().zip(&half).filter(|(a, b)| a != b).count();
        let dices: Vec<(u32, f64)> = (1..classes).filter_map(|l| dice(&full, &half, l).map(|d| (l, d))).collect();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        report.push(format!("{name}: {differing} of {} voxels differ; Dice {dices:?}", full.len()));
        for (label, d) in dices {
            assert!(d >= 0.999, "{name}: label {label} Dice {d} between the float16 and float32 models");
        }
    }
    println!("{}", report.join("\n"));
}
