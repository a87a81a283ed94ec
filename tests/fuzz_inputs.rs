//! Every committed fuzz input through its target's check, on stable: the seeds
//! (fuzz/corpus/<target>/) and every input that once made a target fail
//! (fuzz/regressions/<target>/, named after what it found). The checks are the fuzz targets' own
//! (fuzz/src/checks.rs), so a fixed failure stays fixed without nightly or cargo-fuzz.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

/// Runs the seeds and regressions of `target`; a failing input is named in the panic.
fn run(target: &str, check: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let seeds = files(&fuzz.join("corpus").join(target));
    assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{target}");
    let regressions = files(&fuzz.join("regressions").join(target));
    for path in seeds.iter().chain(&regressions) {
        let data = std::fs::read(path).unwrap();
        if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
            let message =
                panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{}: {}", path.display(), message.unwrap_or_default());
        }
    }
    eprintln!("{target}: {} seeds, {} regressions", seeds.len(), regressions.len());
}

#[test]
fn nifti_inputs() {
    run("nifti", checks::nifti);
}

#[test]
fn npy_inputs() {
    run("npy", checks::npy);
}

#[test]
fn model_folder_inputs() {
    run("model_folder", checks::model_folder);
}

#[test]
fn metrics_inputs() {
    run("metrics", checks::metrics);
}

#[test]
fn bundle_inputs() {
    run("bundle", checks::bundle);
}
