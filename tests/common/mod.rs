//! Shared by the integration tests of every crate: fixture paths and the gates for what a test
//! needs (a missing dependency fails the test unless `NNUNET_RT_ALLOW_SKIP=1`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/fixtures` of the repository, from any crate of the workspace (the library, `cli/`,
/// `bindings/cxx`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("tests/fixtures"))
        .find(|dir| dir.join("models").is_dir())
        .expect("tests/fixtures in the repository")
}

/// What a test does when something it needs (ONNX Runtime, OpenVINO, cmake) is missing: it
/// fails, naming what is missing and how to get it — unless `NNUNET_RT_ALLOW_SKIP=1`, where it
/// says so on stderr and returns `false` so the test can return early. `cargo xtask test` fetches
/// or checks everything first, so nothing is skipped there.
pub fn missing(what: &str) -> bool {
    if std::env::var_os("NNUNET_RT_ALLOW_SKIP").is_some_and(|v| v == "1") {
        eprintln!("skipping (NNUNET_RT_ALLOW_SKIP=1): {what}");
        false
    } else {
        panic!("{what}; `cargo xtask test` provides it (or set NNUNET_RT_ALLOW_SKIP=1 to skip)")
    }
}

/// Whether ONNX Runtime loads; its absence fails the test (see [`missing`]).
pub fn ort_available() -> bool {
    match nnunet_rt::backend::runtime::runtime(None) {
        Ok(_) => true,
        Err(err) => missing(&format!("ONNX Runtime is unavailable: {err}")),
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the OpenVINO plugin loads; its absence fails the test (see [`missing`]).
pub fn openvino_available() -> bool {
    if !ort_available() {
        return false;
    }
    let runtime = nnunet_rt::backend::runtime::runtime(None).expect("checked above");
    match runtime.openvino(None) {
        Ok(_) => true,
        Err(err) => missing(&format!("the OpenVINO plugin is unavailable: {err}")),
    }
}

/// Dice of `label` between two label maps (1 when neither has it).
pub fn dice(a: &[u32], b: &[u32], label: u32) -> f64 {
    let (mut both, mut na, mut nb) = (0u64, 0u64, 0u64);
    for (&x, &y) in a.iter().zip(b) {
        na += (x == label) as u64;
        nb += (y == label) as u64;
        both += (x == label && y == label) as u64;
    }
    if na + nb == 0 {
        1.0
    } else {
        2.0 * both as f64 / (na + nb) as f64
    }
}

/// A fixture case's model loading: its folds, and a cascade case's previous-stage model from the
/// same `models` root (`models` or `models_fp16`).
pub fn case_load_options(meta: &serde_json::Value, models: &str) -> nnunet_rt::LoadOptions {
    let names = |v: &serde_json::Value| v.as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    nnunet_rt::LoadOptions {
        folds: Some(names(&meta["folds"])),
        previous_stage_model: meta
            .get("previous_stage")
            .map(|p| fixtures().join(models).join(p["model"].as_str().unwrap())),
        ..nnunet_rt::LoadOptions::default()
    }
}

/// Whether `cmake` runs; its absence fails the test (see [`missing`]).
pub fn cmake_available() -> bool {
    let found = std::process::Command::new("cmake")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    found || missing("cmake is not installed (apt-get install -y cmake)")
}

/// Copies a folder tree (fixture model folders into a scratch layout).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Relative difference of two numbers (0 when equal).
pub fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}
