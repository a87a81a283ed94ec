//! Project tasks: `cargo xtask ort [--gpu]`, `cargo xtask demo`, `cargo xtask test`,
//! `cargo xtask dist [--out DIR]`, `cargo xtask notice`, `cargo xtask slicer-extension`.
//!
//! Everything here does its own setup, so each command works on a fresh clone with only Rust,
//! a C compiler and Python 3 + pip installed.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod dist;
mod fuzz;
mod notice;
mod slicer;

/// The ONNX Runtime release the `ort` crate's `api-31` feature targets.
const ORT_VERSION: &str = "1.31.1";
/// The OpenVINO execution-provider plugin (PyPI `onnxruntime-ep-openvino`, bundling OpenVINO
/// 2026.4 and TBB; needs ONNX Runtime >= 1.23).
pub(crate) const OPENVINO_PLUGIN_VERSION: &str = "1.8.1";
/// What of that wheel runs the network on a CPU: the plugin, OpenVINO's core, ONNX frontend and
/// CPU device plugin, the AUTO/HETERO/batch meta-devices, TBB and hwloc, and the licence texts.
/// Its GPU and NPU device plugins and GPU kernel cache (about 60 MB) are left out.
pub(crate) const OPENVINO_CPU_FILES: &[&str] = &[
    "libonnxruntime_providers_openvino_plugin.so",
    "libopenvino.so.2641",
    "libopenvino_onnx_frontend.so.2641",
    "libopenvino_ir_frontend.so.2641",
    "libopenvino_intel_cpu_plugin.so",
    "libopenvino_auto_plugin.so",
    "libopenvino_auto_batch_plugin.so",
    "libopenvino_hetero_plugin.so",
    "libtbb.so.12",
    "libtbbbind_2_5.so.3",
    "libtbbmalloc.so.2",
    "libtbbmalloc_proxy.so.2",
    "libhwloc.so.15",
    "third-party-programs.txt",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ort") => fetch_ort(args.iter().any(|a| a == "--gpu")).and_then(|path| {
            println!("{}", path.display());
            fetch_openvino().map(|path| println!("{}", path.display()))
        }),
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("fuzz-smoke") => fuzz::fuzz_smoke(),
        Some("dist") => dist::dist(&args[1..]),
        Some("notice") => notice::notice(&args[1..]),
        Some("slicer-extension") => slicer::slicer_extension(&args[1..]),
        Some("bench") => bench(&args[1..]),
        _ => Err(usage()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: cargo xtask <command>\n  ort [--gpu]   fetch ONNX Runtime (CPU, or the CUDA build) and its OpenVINO plugin from PyPI into .ort/\n  demo          predict the bundled demo volume with the bundled demo model\n  test [ARGS]   fetch ONNX Runtime + OpenVINO if needed and run every test: Rust, C under valgrind, Python (ARGS go to cargo test)\n  bench [ARGS]  nnunet-rt against nnU-Net side by side (ARGS go to tools/bench/bench.py, e.g. --case pancreas --runs 3)\n  dist [--out DIR] [--debug]\n                build a relocatable folder + .tar.gz (lib, include, CMake and pkg-config files, CLI) in target/dist\n  slicer-extension [--out DIR] [--debug] [--slicer X.Y]\n                build the 3D Slicer extension package (module, Python package, native libraries) in target/slicer\n  notice        regenerate THIRD_PARTY_NOTICES.md (the crates compiled into the library, ONNX Runtime, OpenVINO)\n  fuzz-smoke    run every fuzz target for 30 s on its seeds (nightly + cargo-fuzz, installed if missing)".to_string()
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command.status().map_err(|e| format!("cannot run {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed with {status}"))
    }
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Downloads the `onnxruntime` (or `onnxruntime-gpu`) wheel with pip and extracts its shared
/// libraries into `.ort/lib` (or `.ort/lib-gpu`). Returns the path of `libonnxruntime.so`.
fn fetch_ort(gpu: bool) -> Result<PathBuf, String> {
    let root = root();
    let (package, lib_dir) =
        if gpu { ("onnxruntime-gpu", root.join(".ort/lib-gpu")) } else { ("onnxruntime", root.join(".ort/lib")) };
    let target = lib_dir.join("libonnxruntime.so");
    if target.is_file() {
        return Ok(target);
    }
    let wheel = download_wheel(&root, package, ORT_VERSION)?;
    std::fs::create_dir_all(&lib_dir).map_err(|e| format!("cannot create {}: {e}", lib_dir.display()))?;
    // A wheel is a zip file; Python's zipfile extracts the runtime and provider libraries.
    let script = r#"
import sys, zipfile, os, shutil
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as out:
                shutil.copyfileobj(src, out)
            print(base)
"#;
    run(Command::new(python()).arg("-c").arg(script).arg(&wheel).arg(&lib_dir))?;
    let versioned = lib_dir.join(format!("libonnxruntime.so.{ORT_VERSION}"));
    std::fs::copy(&versioned, &target)
        .map_err(|e| format!("cannot copy {} to {}: {e}", versioned.display(), target.display()))?;
    if gpu {
        eprintln!(
            "xtask: the CUDA provider also needs CUDA 12 and cuDNN 9 libraries on the loader path (e.g. from the nvidia-* wheels on PyPI)"
        );
    }
    Ok(target)
}

/// Downloads the `onnxruntime-ep-openvino` wheel with pip and extracts what runs on a CPU into
/// `.ort/openvino` (the plugin finds its OpenVINO libraries beside itself through its RUNPATH).
/// Returns the plugin's path.
fn fetch_openvino() -> Result<PathBuf, String> {
    let root = root();
    let dir = root.join(".ort/openvino");
    let plugin = dir.join(OPENVINO_CPU_FILES[0]);
    if OPENVINO_CPU_FILES.iter().all(|name| dir.join(name).is_file()) {
        return Ok(plugin);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let wheel = download_wheel(&root, "onnxruntime-ep-openvino", OPENVINO_PLUGIN_VERSION)?;
    let script = r#"
import sys, zipfile, os, shutil
wheel, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for name in names:
        with z.open("onnxruntime_ep_openvino/" + name) as src, open(os.path.join(dest, name), "wb") as out:
            shutil.copyfileobj(src, out)
"#;
    run(Command::new(python()).arg("-c").arg(script).arg(&wheel).arg(&dir).args(OPENVINO_CPU_FILES))?;
    Ok(plugin)
}

/// Downloads `package==version` (a binary wheel, no dependencies) with pip into `.ort/wheels`
/// and returns the wheel's path.
fn download_wheel(root: &Path, package: &str, version: &str) -> Result<PathBuf, String> {
    let wheels = root.join(".ort/wheels");
    std::fs::create_dir_all(&wheels).map_err(|e| format!("cannot create {}: {e}", wheels.display()))?;
    eprintln!("xtask: fetching {package}=={version} from PyPI with pip");
    run(Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--dest"])
        .arg(&wheels)
        .arg(format!("{package}=={version}")))?;
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    std::fs::read_dir(&wheels)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl")))
        .ok_or_else(|| format!("pip downloaded no {prefix}*.whl into {}", wheels.display()))
}

fn demo() -> Result<(), String> {
    let root = root();
    fetch_ort(false)?;
    fetch_openvino()?;
    build_cli_release(&root)?;
    let out_dir = root.join("target/demo");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let binary = root.join("target/release/nnunet-rt");
    run(Command::new(&binary).current_dir(&root).args(["info", "-m", "demo/model"]))?;
    run(Command::new(&binary).current_dir(&root).args([
        "predict",
        "-m",
        "demo/model",
        "-i",
        "demo/ct.nii.gz",
        "-o",
        "target/demo/ct_seg.nii.gz",
    ]))?;
    let report = std::fs::read_to_string(out_dir.join("ct_seg.json")).map_err(|e| e.to_string())?;
    println!("{report}");
    println!("labels written to target/demo/ct_seg.nii.gz, report to target/demo/ct_seg.json");
    Ok(())
}

fn test(extra: &[String]) -> Result<(), String> {
    let root = root();
    let lib = fetch_ort(false)?;
    let openvino = fetch_openvino()?;
    let allow_skip = std::env::var_os("NNUNET_RT_ALLOW_SKIP").is_some_and(|v| v == "1");
    // The CMake tests and the memory check need these tools; missing ones fail here, before an
    // hour of tests, unless skipping was asked for.
    let installed =
        |tool: &str| Command::new(tool).arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !(installed("cmake") && installed("valgrind")) && !allow_skip {
        install_with_apt(&["cmake", "valgrind"]);
    }
    let mut valgrind = true;
    for tool in ["cmake", "valgrind"] {
        let found = installed(tool);
        if !found && !allow_skip {
            return Err(format!(
                "{tool} is not installed (apt-get install -y cmake valgrind); set NNUNET_RT_ALLOW_SKIP=1 to skip what needs it"
            ));
        }
        if !found && tool == "valgrind" {
            eprintln!("xtask: valgrind is not installed: skipping the memory check (NNUNET_RT_ALLOW_SKIP=1)");
            valgrind = false;
        }
    }
    let cargo = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO"));
        command.current_dir(&root).env("NNUNET_RT_ORT_LIB", &lib).env("NNUNET_RT_OPENVINO_LIB", &openvino).args(args);
        command
    };
    // Every Rust test of the workspace.
    run(cargo(&["test", "--workspace"]).args(extra))?;
    // Every fuzz target for 30 s on its committed seeds (nightly and cargo-fuzz, installed if missing).
    fuzz::fuzz_smoke()?;
    // The C programs again under valgrind: 0 errors and nothing definitely lost.
    if valgrind {
        run(cargo(&["test", "--test", "c_abi"])
            .env("VALGRIND", "valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite"))?;
    }
    // The 3D Slicer extension package (dev build of the library, to save a release build), which
    // bindings/slicer/tests/test_package.py installs into a fake Slicer tree and runs.
    let out = root.join("target/slicer-test");
    let (_, package) = slicer::build(&["--debug".to_string(), "--out".to_string(), out.display().to_string()])?;
    // The Python binding and the 3D Slicer module's logic (numpy + pytest in target/py-venv).
    run(Command::new("bash")
        .current_dir(&root)
        .env("NNUNET_RT_ORT_LIB", &lib)
        .env("NNUNET_RT_SLICER_PACKAGE", &package)
        .arg("bindings/python/run_tests.sh"))
}

/// Builds the release binary, creates the nnU-Net reference environment once (tools/
/// install-nnunet-venv.sh into .venv-nnunet), and runs tools/bench/bench.py with `extra`.
fn bench(extra: &[String]) -> Result<(), String> {
    let root = root();
    fetch_ort(false)?;
    fetch_openvino()?;
    build_cli_release(&root)?;
    let python = root.join(".venv-nnunet/bin/python");
    if !python.is_file() {
        eprintln!("xtask: creating the nnU-Net reference environment (.venv-nnunet, about 3 minutes and 5 GB, once)");
        run(Command::new("bash").current_dir(&root).args(["tools/install-nnunet-venv.sh", ".venv-nnunet"]))?;
    }
    // `cargo xtask bench -- --case small` passes the separator through; the script must not see it.
    let extra = extra.strip_prefix(&["--".to_string()]).unwrap_or(extra);
    run(Command::new(python).current_dir(&root).arg("tools/bench/bench.py").args(extra))
}

/// Builds the release `nnunet-rt` binary (target/release/nnunet-rt).
fn build_cli_release(root: &Path) -> Result<(), String> {
    run(Command::new(env!("CARGO")).current_dir(root).args(["build", "--release", "--quiet", "-p", "nnunet-rt-cli"]))
}

/// Installs Debian packages when this runs as root (CI machines, containers); elsewhere it only
/// says what to run. Failures are left to the caller's check.
fn install_with_apt(packages: &[&str]) {
    let root_user = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root_user {
        eprintln!("xtask: missing {}: run `sudo apt-get install -y {}`", packages.join(", "), packages.join(" "));
        return;
    }
    eprintln!("xtask: installing {} with apt-get", packages.join(", "));
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .stdout(Stdio::null())
        .status();
}
