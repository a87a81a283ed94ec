//! Bad input through the CLI: one clear line on stderr, a failing exit status, and no partial
//! output left behind.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    common::fixtures()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-cli-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model_dir(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

fn ct_case() -> PathBuf {
    fixtures().join("cases/aniso_int16/input/aniso_int16_0000.nii.gz")
}

fn cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nnunet-rt")).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn cli_rejects_bad_files_with_one_line_and_writes_nothing() {
    let dir = temp_dir("cli");
    let out = dir.join("out.nii.gz");
    let model = model_dir("resenc_ct");
    let model = model.to_str().unwrap();

    let (ok, stderr) =
        cli(&["predict", "-m", model, "-i", "/nonexistent/ct.nii.gz", "-o", out.to_str().unwrap(), "-q"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let corrupt = dir.join("corrupt.nii.gz");
    std::fs::write(&corrupt, b"garbage").unwrap();
    let (ok, stderr) =
        cli(&["predict", "-m", model, "-i", corrupt.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"]);
    if common::ort_available() {
        assert!(!ok);
        assert!(stderr.contains("cannot read NIfTI file"), "{stderr}");
    }

    let (ok, stderr) = cli(&[
        "predict",
        "-m",
        model,
        "-i",
        ct_case().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--step-size",
        "0",
    ]);
    assert!(!ok);
    assert!(stderr.contains("step size"), "{stderr}");

    let (ok, stderr) = cli(&[
        "predict",
        "-m",
        model,
        "-i",
        ct_case().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
        "--ort-lib",
        "/nonexistent/libonnxruntime.so",
    ]);
    assert!(!ok);
    assert!(stderr.contains("cargo xtask ort") && stderr.contains("/nonexistent/libonnxruntime.so"), "{stderr}");

    let (ok, stderr) = cli(&[
        "predict",
        "-m",
        "/nonexistent/model",
        "-i",
        ct_case().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");

    let leftovers: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != "corrupt.nii.gz").collect();
    assert!(leftovers.is_empty(), "partial outputs left behind: {leftovers:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_ort_library_named_by_the_environment_that_does_not_load_is_an_error_not_a_fallback() {
    // The fetched copy in .ort/ would load; the variable names another library explicitly.
    let out = Command::new(env!("CARGO_BIN_EXE_nnunet-rt"))
        .args(["info", "-m", model_dir("resenc_ct").to_str().unwrap()])
        .env("NNUNET_RT_ORT_LIB", "/nonexistent/libonnxruntime.so")
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("/nonexistent/libonnxruntime.so (NNUNET_RT_ORT_LIB)"), "{stderr}");
}
