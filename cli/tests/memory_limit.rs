//! `--memory-limit` at its boundary: one byte under the model's estimate of the case's peak
//! memory refuses the case up front with a message naming both sizes, and writes nothing; the
//! estimate itself and one byte over predict.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use nnunet_rt::io::nifti;
use nnunet_rt::{LoadOptions, Model, PredictOptions};

#[test]
fn a_limit_just_under_the_estimate_refuses_and_just_over_predicts() {
    if !common::ort_available() {
        return;
    }
    let model_dir = common::fixtures().join("models/resenc_ct");
    let input = common::fixtures().join("cases/small/input/small_0000.nii.gz");
    // The estimate for what the command below runs: fold 0, no mirroring, labels only.
    let model =
        Model::load(&model_dir, &LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() }).unwrap();
    let image = nifti::read_image(&input).unwrap();
    let options = PredictOptions { mirroring: false, ..PredictOptions::default() };
    let estimate = model.estimate_peak_bytes(&image.volume.view().unwrap(), &options);
    assert!(estimate > 1 << 20, "an estimate of {estimate} bytes");
    drop(model);

    let dir = std::env::temp_dir().join(format!("nnrt-cli-memory-limit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |limit: u64, output: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_nnunet-rt"))
            .args(["predict", "-q", "-f", "0", "--disable-tta", "-m"])
            .arg(&model_dir)
            .arg("-i")
            .arg(&input)
            .arg("-o")
            .arg(output)
            .args(["--memory-limit", &limit.to_string()])
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let listing = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
    };

    let refused = dir.join("refused.nii.gz");
    let (code, stderr) = run(estimate - 1, &refused);
    assert_eq!(code, Some(1), "{stderr}");
    let message =
        format!("needs about {} MiB, more than the memory limit of {} MiB", estimate >> 20, (estimate - 1) >> 20);
    assert!(stderr.contains(&message), "expected {message:?} in: {stderr}");
    assert!(listing().is_empty(), "a refused case writes nothing: {:?}", listing());

    for (limit, name) in [(estimate, "at.nii.gz"), (estimate + 1, "over.nii.gz")] {
        let output = dir.join(name);
        let (code, stderr) = run(limit, &output);
        assert_eq!(code, Some(0), "limit {limit} for an estimate of {estimate}: {stderr}");
        assert_eq!(nifti::read_image(&output).unwrap().volume.dims, image.volume.dims);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
