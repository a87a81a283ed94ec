//! `nnunet-rt bundle` writes one file that `predict -m` and `info -m` take in place of the folder,
//! with the same labels.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nnunet_rt::io::nifti;

fn nnunet_rt(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nnunet-rt")).args(args).output().unwrap()
}

fn labels_of(path: &Path) -> Vec<u32> {
    nifti::read_image(path).unwrap().volume.data.iter().map(|&v| v as u32).collect()
}

#[test]
fn a_bundle_predicts_like_its_folder() {
    if !common::ort_available() {
        return;
    }
    let dir: PathBuf = std::env::temp_dir().join(format!("nnrt-cli-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let model = common::fixtures().join("models/resenc_ct");
    let bundle = dir.join("resenc_ct.nnrt");
    let p = Path::new;
    let out = nnunet_rt(&[p("bundle"), p("-m"), &model, p("-o"), &bundle, p("-f"), p("0")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote"));

    let info = nnunet_rt(&[p("info"), p("-m"), &bundle]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success() && text.contains("folds 0"), "{text}");

    let input = common::fixtures().join("cases/small/input/small_0000.nii.gz");
    let (from_folder, from_bundle) = (dir.join("folder.nii.gz"), dir.join("bundle.nii.gz"));
    for (m, output) in [(&model, &from_folder), (&bundle, &from_bundle)] {
        let out = nnunet_rt(&[p("predict"), p("-m"), m, p("-f"), p("0"), p("-i"), &input, p("-o"), output, p("-q")]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(labels_of(&from_bundle), labels_of(&from_folder));

    // A results folder of several configurations is not one model folder.
    let out = nnunet_rt(&[p("bundle"), p("-m"), &dir.join("nothing"), p("-o"), &dir.join("x.nnrt")]);
    assert!(!out.status.success());
    assert!(!dir.join("x.nnrt").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
