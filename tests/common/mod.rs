//! Shared by the integration tests: fixture paths and the ONNX Runtime gate.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `tests/fixtures` of the repository, from the library's tests or the CLI crate's (`cli/`).
pub fn fixtures() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let here = manifest.join("tests/fixtures");
    if here.is_dir() {
        here
    } else {
        manifest.join("../tests/fixtures")
    }
}

/// Whether ONNX Runtime can be loaded. Tests that need it return early when it cannot, unless
/// `NNUNET_RT_REQUIRE_ORT=1` (set by `cargo xtask test` and CI), where its absence is a failure.
pub fn ort_available() -> bool {
    match nnunet_rt::backend::runtime::runtime(None) {
        Ok(_) => true,
        Err(err) if std::env::var_os("NNUNET_RT_REQUIRE_ORT").is_some_and(|v| v == "1") => {
            panic!("NNUNET_RT_REQUIRE_ORT=1 but ONNX Runtime is unavailable: {err}")
        }
        Err(err) => {
            eprintln!("skipping: {err}");
            false
        }
    }
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether the OpenVINO plugin loads. Tests that need it return early when it cannot, unless
/// `NNUNET_RT_REQUIRE_OPENVINO=1` (set by `cargo xtask test` and CI), where its absence is a
/// failure.
pub fn openvino_available() -> bool {
    if !ort_available() {
        return false;
    }
    let runtime = nnunet_rt::backend::runtime::runtime(None).expect("checked above");
    match runtime.openvino(None) {
        Ok(_) => true,
        Err(err) if std::env::var_os("NNUNET_RT_REQUIRE_OPENVINO").is_some_and(|v| v == "1") => {
            panic!("NNUNET_RT_REQUIRE_OPENVINO=1 but the OpenVINO plugin is unavailable: {err}")
        }
        Err(err) => {
            eprintln!("skipping: {err}");
            false
        }
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
