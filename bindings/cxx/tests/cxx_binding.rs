//! The cxx binding as C++ programs use it, linked against `libnnunet_rt_cxx.a` alone:
//!
//! * `tests/binding.cpp`, compiled with the system C++ compiler (`CXX`, default `c++`) and the
//!   link line `bindings/README.md` documents, exercises the whole binding;
//! * `example/` is configured and built with CMake and must print what the Rust API predicts.
//!
//! Both need ONNX Runtime, the second also `cmake`: without them they fail, unless
//! `NNUNET_RT_ALLOW_SKIP=1`.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use nnunet_rt::{LoadOptions, Model, PredictOptions};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn model(name: &str) -> PathBuf {
    repository().join("tests/fixtures/models").join(name)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-cxx-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn ort_available() -> bool {
    common::ort_available()
}

struct Built {
    /// `libnnunet_rt_cxx.a`.
    library: PathBuf,
    /// Holds `rust/cxx.h` and `nnunet_rt_cxx/src/lib.rs.h`.
    generated_include: PathBuf,
}

/// Builds the static library with this test's profile and finds it, and the headers cxx
/// generated for it, in cargo's report.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(repository()).args(["build", "-p", "nnunet-rt-cxx", "--lib", "--message-format=json"]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let out = command.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(out.status.success(), "cargo build -p nnunet-rt-cxx failed");
        let (mut library, mut out_dir) = (None, None);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let ours = message["package_id"].as_str().is_some_and(|id| id.contains("nnunet-rt-cxx"));
            if !ours {
                continue;
            }
            match message["reason"].as_str() {
                Some("build-script-executed") => out_dir = message["out_dir"].as_str().map(PathBuf::from),
                Some("compiler-artifact") => {
                    let files = message["filenames"].as_array().cloned().unwrap_or_default();
                    library = files.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".a")).map(PathBuf::from);
                }
                _ => {}
            }
        }
        Built {
            library: library.expect("cargo reported libnnunet_rt_cxx.a"),
            generated_include: out_dir.expect("cargo reported the build script's OUT_DIR").join("cxxbridge/include"),
        }
    })
}

fn run<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Output {
    let start = Instant::now();
    let out =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    eprintln!("{}: {:.1} s", program.file_name().unwrap().to_string_lossy(), start.elapsed().as_secs_f64());
    out
}

fn success(out: Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    text
}

#[test]
fn binding_from_cpp_with_the_documented_link_line() {
    if !ort_available() {
        return;
    }
    let dir = scratch("binding");
    let built = built();
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let mut words = compiler.split_whitespace();
    let program = dir.join("binding");
    let mut command = Command::new(words.next().unwrap());
    command
        .current_dir(repository())
        .args(words)
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-pthread"])
        .arg(format!("-I{}", built.generated_include.display()))
        .args(["-Ibindings/cxx/include", "bindings/cxx/tests/binding.cpp"])
        .arg(&built.library)
        .args(["-ldl", "-lpthread", "-lm", "-o"])
        .arg(&program);
    let out = command.output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(out.status.success(), "{command:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    // The head model's fold 0 as a bundle, which the program loads from memory.
    let bundle = scratch("bundle").join("head.nnrt");
    let fold_0 = nnunet_rt::LoadOptions { folds: Some(vec!["0".into()]), ..Default::default() };
    nnunet_rt::Model::write_bundle(&model("multitask_ct"), &fold_0, &bundle).unwrap();
    let text = success(run(&program, &[model("multitask_ct"), model("resenc_ct"), bundle]), "binding");
    assert!(text.contains(" 0 failed"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The example's lines for `image`, from the Rust API.
fn expected_lines(model_dir: &Path, image: &Path) -> String {
    let model = Model::load(model_dir, &LoadOptions::default()).unwrap();
    let image = nnunet_rt::io::nifti::read_image(image).unwrap();
    let p = model.predict(&image.volume.view().unwrap(), &PredictOptions::default(), &mut |_, _| true).unwrap();
    let mut text = String::new();
    for (name, count) in p.label_names.iter().zip(p.labels.counts(p.label_names.len())) {
        text += &format!("label {name} {count}\n");
    }
    if let Some(c) = &p.classification {
        text += &format!("class {} {:.6}\n", c.class_names[c.predicted], c.probabilities[c.predicted]);
    }
    text
}

#[test]
fn cmake_example_builds_against_the_static_library() {
    if !common::cmake_available() {
        return;
    }
    if !ort_available() {
        return;
    }
    let dir = scratch("cmake");
    let built = built();
    let build = dir.join("build");
    let start = Instant::now();
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(repository().join("bindings/cxx/example"))
        .arg("-B")
        .arg(&build)
        .arg(format!("-DNNUNET_RT_CXX_LIBRARY={}", built.library.display()))
        .arg(format!("-DNNUNET_RT_CXX_GENERATED_INCLUDE_DIR={}", built.generated_include.display()))
        .output()
        .unwrap();
    success(configure, "cmake configure");
    success(Command::new("cmake").arg("--build").arg(&build).output().unwrap(), "cmake --build");
    eprintln!("cmake configure and build: {:.1} s", start.elapsed().as_secs_f64());

    let model_dir = model("multitask_ct");
    let gz = repository().join("tests/fixtures/cases/multitask_lesion/input/multitask_lesion_0000.nii.gz");
    let nii = dir.join("case.nii");
    let mut reader = nifti::object::GzDecodedFile::new(BufReader::new(File::open(&gz).unwrap()));
    std::io::copy(&mut reader, &mut File::create(&nii).unwrap()).unwrap();
    let program = build.join("nnunet_rt_cxx_example");
    let text = success(run(&program, &[model_dir.as_os_str(), nii.as_os_str()]), "the cxx example");
    assert_eq!(text, expected_lines(&model_dir, &nii));
    let out = run(&program, &[Path::new("/nonexistent/model").as_os_str(), nii.as_os_str()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NNRT_IO: "));
    std::fs::remove_dir_all(&dir).unwrap();
}
