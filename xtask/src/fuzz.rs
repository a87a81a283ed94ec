//! `cargo xtask fuzz-smoke`: every fuzz target of fuzz/ for 30 s on its committed seeds
//! (fuzz/corpus/<target>), with cargo-fuzz on nightly, installing what is missing. Inputs the
//! run discovers go to fuzz/target/smoke-corpus (ignored); a crash fails the run and leaves its
//! input in fuzz/artifacts/<target>/, to be kept as a regression test.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{root, run};

/// The targets of fuzz/Cargo.toml and how long each runs here.
const TARGETS: &[&str] = &["nifti", "npy", "model_folder", "metrics", "bundle"];
const SECONDS_PER_TARGET: u32 = 30;

pub fn fuzz_smoke() -> Result<(), String> {
    let root = root();
    let allow_skip = std::env::var_os("NNUNET_RT_ALLOW_SKIP").is_some_and(|v| v == "1");
    if let Err(why) = toolchain() {
        if allow_skip {
            eprintln!("xtask: skipping the fuzz smoke run (NNUNET_RT_ALLOW_SKIP=1): {why}");
            return Ok(());
        }
        return Err(format!("{why}; set NNUNET_RT_ALLOW_SKIP=1 to skip the fuzz smoke run"));
    }
    for target in TARGETS {
        let seeds = root.join("fuzz/corpus").join(target);
        let work = root.join("fuzz/target/smoke-corpus").join(target);
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        let mut command = nightly(&root);
        command.args(["fuzz", "run", "-O", target]).arg(&work).arg(&seeds).arg("--");
        command.arg(format!("-max_total_time={SECONDS_PER_TARGET}")).arg("-print_final_stats=1");
        let dict = root.join("fuzz/dict").join(format!("{target}.dict"));
        if dict.is_file() {
            command.arg(format!("-dict={}", dict.display()));
        }
        eprintln!("xtask: fuzzing {target} for {SECONDS_PER_TARGET} s");
        run(&mut command)?;
    }
    Ok(())
}

/// `rustup run nightly cargo` in `dir`, without the toolchain the outer cargo chose.
fn nightly(dir: &Path) -> Command {
    let mut command = Command::new("rustup");
    command.current_dir(dir).args(["run", "nightly", "cargo"]).env_remove("RUSTUP_TOOLCHAIN").env_remove("RUSTC");
    command
}

/// Nightly Rust and cargo-fuzz, installed when missing (rustup must exist).
fn toolchain() -> Result<(), String> {
    let quiet =
        |command: &mut Command| command.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !quiet(Command::new("rustup").arg("--version")) {
        return Err("rustup is not installed; fuzzing needs nightly Rust through rustup".to_string());
    }
    if !quiet(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])) {
        eprintln!("xtask: installing nightly Rust for the fuzz targets");
        run(Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]))?;
    }
    if !quiet(nightly(&root()).args(["fuzz", "--version"])) {
        eprintln!("xtask: installing cargo-fuzz from crates.io");
        run(Command::new(env!("CARGO")).args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
