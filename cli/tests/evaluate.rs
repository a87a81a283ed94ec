//! `nnunet-rt evaluate` on the metric fixtures (written by `tools/make_metric_fixtures.py`): the
//! printed tables, the JSON report, missing and broken cases, bad arguments.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/metrics")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-metrics-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn evaluate_command(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nnunet-rt")).arg("evaluate").args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_reports_the_fixture_metrics_and_classification() {
    let dir = temp_dir("cli");
    let json = dir.join("out.json");
    let f = fixtures();
    let (ok, stdout, stderr) = evaluate_command(&[
        "--pred",
        f.join("pred").to_str().unwrap(),
        "--ref",
        f.join("ref").to_str().unwrap(),
        "--regions",
        "whole=1,2;inner=2",
        "--nsd-tolerance",
        "whole=1,inner=2",
        "--classes",
        f.join("classes.csv").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("region") && stdout.contains("combined") && stdout.contains(" ± "), "{stdout}");
    assert!(stdout.contains("accuracy") && stdout.contains("confusion matrix"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let expected = expected();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), expected["cases"].as_object().unwrap().len());
    for case in cases {
        let e = &expected["cases"][case["case"].as_str().unwrap()];
        for region in case["regions"].as_array().unwrap() {
            let name = region["region"].as_str().unwrap();
            let t = &e["regions"][name];
            if let Some(dice) = t["dice"].as_f64() {
                assert!(common::rel(region["dice"].as_f64().unwrap(), dice) < 1e-6);
            }
            if let Some(hd95) = t["hd95"].as_f64() {
                assert!(common::rel(region["hd95"].as_f64().unwrap(), hd95) < 0.01);
                let tolerance = if name == "whole" { "1.0" } else { "2.0" };
                assert!(common::rel(region["nsd"].as_f64().unwrap(), t["nsd"][tolerance].as_f64().unwrap()) < 0.01);
            } else {
                assert!(region["hd95"].is_null() || region["hd95"].as_f64() == Some(0.0));
            }
        }
    }
    // Classification: accuracy and confusion from the generator's true and predicted classes.
    let c = &report["classification"];
    let pairs: Vec<(usize, usize)> = expected["cases"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| (e["true_class"].as_u64().unwrap() as usize, e["predicted_class"].as_u64().unwrap() as usize))
        .collect();
    let correct = pairs.iter().filter(|(t, p)| t == p).count();
    assert_eq!(c["n"].as_u64().unwrap() as usize, pairs.len());
    assert!((c["accuracy"].as_f64().unwrap() - correct as f64 / pairs.len() as f64).abs() < 1e-12);
    for (t, p) in &pairs {
        assert!(c["confusion"][t][p].as_u64().unwrap() >= 1);
    }
    assert_eq!(report["summary"]["n_cases"].as_u64().unwrap() as usize, pairs.len());
    assert!(report["errors"].as_array().unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_reports_missing_and_broken_cases_and_still_evaluates_the_rest() {
    let dir = temp_dir("partial");
    let (pred, reference) = (dir.join("pred"), dir.join("ref"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&reference).unwrap();
    let f = fixtures();
    for case in ["cube_offset", "sphere_shift", "single_voxel"] {
        std::fs::copy(f.join("ref").join(format!("{case}.nii.gz")), reference.join(format!("{case}.nii.gz"))).unwrap();
    }
    for case in ["cube_offset", "sphere_shift", "border_touching"] {
        std::fs::copy(f.join("pred").join(format!("{case}.nii.gz")), pred.join(format!("{case}.nii.gz"))).unwrap();
    }
    // A broken prediction and a prediction with fractional labels.
    std::fs::write(pred.join("broken.nii.gz"), b"definitely not gzip").unwrap();
    std::fs::copy(f.join("ref/cube_offset.nii.gz"), reference.join("broken.nii.gz")).unwrap();
    std::fs::copy(f.join("bad/fractional_labels.nii.gz"), pred.join("fractional.nii.gz")).unwrap();
    std::fs::copy(f.join("ref/cube_offset.nii.gz"), reference.join("fractional.nii.gz")).unwrap();
    let json = dir.join("out.json");
    let (ok, stdout, stderr) = evaluate_command(&[
        "--pred",
        pred.to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(!ok, "missing cases must give a non-zero exit code\n{stdout}\n{stderr}");
    assert!(stderr.contains("case single_voxel: in REF but not in PRED"), "{stderr}");
    assert!(stderr.contains("case border_touching: in PRED but not in REF"), "{stderr}");
    assert!(stderr.contains("case broken:"), "{stderr}");
    assert!(stderr.contains("case fractional:") && stderr.contains("not a label"), "{stderr}");
    assert!(
        stdout.contains("cube_offset") && stdout.contains("sphere_shift") && stdout.contains("combined"),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let names: Vec<&str> = report["cases"].as_array().unwrap().iter().map(|c| c["case"].as_str().unwrap()).collect();
    assert_eq!(names, ["cube_offset", "sphere_shift"]);
    // Default regions: one per label, the same in every case.
    let regions: Vec<&str> =
        report["regions"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(regions, ["1", "2"]);
    assert_eq!(report["errors"].as_array().unwrap().len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cli_rejects_a_pair_with_other_spacing_and_bad_arguments() {
    let f = fixtures();
    let reference = f.join("ref/cube_offset.nii.gz");
    let (ok, _, stderr) = evaluate_command(&[
        "--pred",
        f.join("bad/other_spacing.nii.gz").to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("spacing"), "{stderr}");
    let (ok, _, stderr) = evaluate_command(&[
        "--pred",
        f.join("bad/other_dims.nii.gz").to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("dims"), "{stderr}");
    let (ok, stdout, _) = evaluate_command(&[
        "--pred",
        f.join("pred/cube_offset.nii.gz").to_str().unwrap(),
        "--ref",
        reference.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(stdout.contains("cube_offset"), "{stdout}");
    let (ok, _, stderr) =
        evaluate_command(&["--pred", f.join("pred").to_str().unwrap(), "--ref", reference.to_str().unwrap()]);
    assert!(!ok && stderr.contains("folder"), "{stderr}");
    let (ok, _, stderr) = evaluate_command(&[
        "--pred",
        f.join("pred").to_str().unwrap(),
        "--ref",
        f.join("ref").to_str().unwrap(),
        "--regions",
        "a=1;a=2",
    ]);
    assert!(!ok && stderr.contains("twice"), "{stderr}");
    let (ok, _, stderr) = evaluate_command(&[
        "--pred",
        f.join("pred").to_str().unwrap(),
        "--ref",
        f.join("ref").to_str().unwrap(),
        "--regions",
        "a=1",
        "--nsd-tolerance",
        "b=2",
    ]);
    assert!(!ok && stderr.contains("\"b\""), "{stderr}");
}
