//! The C ABI as C and C++ programs use it: the programs under `tests/c/` and `examples/` are
//! compiled here with the system compilers (`CC`/`CXX`, default `cc`/`c++`) at
//! `-Wall -Wextra -Werror -pedantic`, linked against the shared library, and run.
//!
//! * `tests/c/header_*`: the header alone and twice as C99, and with `nnunet_rt.hpp` as C++17
//!   in two translation units of one program.
//! * `tests/c/abi_smoke.c`: every documented error path, NULL in every pointer argument,
//!   versions, status names, cancellation, a full prediction read through every accessor; the
//!   wrong-runtime case in a process of its own.
//! * `examples/`: the C, C++ and Rust examples print the same lines, with the CLI's label
//!   counts and class, and the C reader reads NIfTI files exactly as the library's reader does.
//! * `tests/c/threads.c`: one model shared by 8 threads, 25 predictions each, all identical.
//!
//! With `VALGRIND` set (e.g. `VALGRIND="valgrind --error-exitcode=1 --leak-check=full
//! --errors-for-leak-kinds=definite"`), the smoke program and the C example also run under it,
//! with `tests/c/valgrind.supp`, and must report no error and nothing definitely lost.

mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model(name: &str) -> PathBuf {
    common::fixtures().join("models").join(name)
}

/// A fresh scratch folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nnrt-c-abi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Built {
    /// Folder of `libnnunet_rt.so`.
    lib_dir: PathBuf,
    /// `examples/predict.rs`, built.
    rust_example: PathBuf,
}

/// Builds the shared library and the Rust example with the profile of this test (a no-op when
/// `cargo test` already built them) and finds them in cargo's own report.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command.current_dir(root()).args([
            "build",
            "-p",
            "nnunet-rt",
            "--lib",
            "--example",
            "predict",
            "--message-format=json",
        ]);
        if !cfg!(debug_assertions) {
            command.arg("--release");
        }
        let out = command.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(out.status.success(), "cargo build of the library and the example failed");
        let (mut lib_dir, mut rust_example) = (None, None);
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            let kinds = message["target"]["kind"].as_array().cloned().unwrap_or_default();
            if kinds.iter().any(|k| k == "cdylib") {
                let files = message["filenames"].as_array().cloned().unwrap_or_default();
                let so =
                    files.iter().filter_map(|f| f.as_str()).find(|f| f.ends_with(".so")).expect("the cdylib is built");
                lib_dir = Some(Path::new(so).parent().unwrap().to_path_buf());
            }
            if kinds.iter().any(|k| k == "example") && message["target"]["name"] == "predict" {
                rust_example = message["executable"].as_str().map(PathBuf::from);
            }
        }
        Built {
            lib_dir: lib_dir.expect("cargo reported the cdylib"),
            rust_example: rust_example.expect("cargo reported the example"),
        }
    })
}

#[derive(Clone, Copy)]
enum Lang {
    C,
    Cxx,
}

/// Compiles `sources` (relative to the repository root) into `out`, linked against the shared
/// library, with warnings as errors.
fn compile(lang: Lang, sources: &[&str], out: &Path, extra: &[&str]) -> PathBuf {
    let (variable, default, standard) = match lang {
        Lang::C => ("CC", "cc", "-std=c99"),
        Lang::Cxx => ("CXX", "c++", "-std=c++17"),
    };
    let compiler = std::env::var(variable).unwrap_or_else(|_| default.to_string());
    let mut words = compiler.split_whitespace();
    let lib_dir = &built().lib_dir;
    let mut command = Command::new(words.next().unwrap());
    command
        .current_dir(root())
        .args(words)
        .args([standard, "-Wall", "-Wextra", "-Werror", "-pedantic", "-g", "-O1"])
        .args(["-Iinclude", "-Ibindings/cxx/include", "-Iexamples/c"])
        .args(sources)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib_dir.display()))
        .arg("-lnnunet_rt")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(extra)
        .arg("-lm");
    let result = command.output().unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        result.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    out.to_path_buf()
}

/// The `VALGRIND` command line, when set.
fn valgrind() -> Option<Vec<String>> {
    let value = std::env::var("VALGRIND").ok()?;
    let words: Vec<String> = value.split_whitespace().map(str::to_string).collect();
    (!words.is_empty()).then_some(words)
}

/// Runs `program`; with `checked` and `VALGRIND` set, under valgrind, whose report must show
/// no error and no definitely lost block.
fn run<S: AsRef<OsStr>>(program: &Path, args: &[S], checked: bool) -> Output {
    let start = Instant::now();
    let under = if checked { valgrind() } else { None };
    let mut command = match &under {
        Some(words) => {
            let mut c = Command::new(&words[0]);
            // Deep stacks: the suppressions name the caller that loads ONNX Runtime.
            c.args(&words[1..])
                .arg("--num-callers=40")
                .arg(format!("--suppressions={}", root().join("tests/c/valgrind.supp").display()))
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    let out = command.args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let name = program.file_name().unwrap().to_string_lossy();
    eprintln!("{name}: {:.1} s{}", start.elapsed().as_secs_f64(), if under.is_some() { " under valgrind" } else { "" });
    if under.is_some() {
        let report = String::from_utf8_lossy(&out.stderr);
        for line in report.lines().filter(|l| l.contains("ERROR SUMMARY") || l.contains("lost:")) {
            eprintln!("  {line}");
        }
        let clean = report.contains("ERROR SUMMARY: 0 errors")
            && report
                .lines()
                .filter(|l| l.contains("definitely lost:"))
                .all(|l| l.contains("definitely lost: 0 bytes"));
        assert!(clean && out.status.success(), "valgrind found problems in {name}:\n{report}");
    }
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts success and returns stdout.
fn success(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

fn gunzip(from: &Path, to: &Path) {
    // The gzip reader the `nifti` crate uses for .nii.gz files.
    let mut reader = nifti::object::GzDecodedFile::new(BufReader::new(File::open(from).unwrap()));
    let mut writer = File::create(to).unwrap();
    std::io::copy(&mut reader, &mut writer).unwrap();
}

#[test]
fn header_compiles_alone_twice_and_as_cxx17() {
    let dir = scratch("header");
    let c = compile(Lang::C, &["tests/c/header_twice.c"], &dir.join("header_twice"), &[]);
    success(run(&c, &[] as &[&str], false), "header_twice");
    let cxx =
        compile(Lang::Cxx, &["tests/c/header_cxx_a.cpp", "tests/c/header_cxx_b.cpp"], &dir.join("header_cxx"), &[]);
    let out = success(run(&cxx, &[] as &[&str], false), "header_cxx");
    assert!(out.contains("input/output error: ") && out.contains("nnunet-rt/"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn c_smoke_program() {
    if !common::ort_available() {
        return;
    }
    let dir = scratch("smoke");
    let program = compile(Lang::C, &["tests/c/abi_smoke.c"], &dir.join("abi_smoke"), &[]);
    // A copy of a model whose first fold's network is cut short.
    let truncated = dir.join("truncated");
    for entry in ["plans.json", "dataset.json", "fold_0/model.onnx", "fold_0/nnunet_rt_export.json"] {
        let target = truncated.join(entry);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(model("resenc_ct").join(entry), &target).unwrap();
    }
    let onnx = truncated.join("fold_0/model.onnx");
    let bytes = std::fs::read(&onnx).unwrap();
    std::fs::write(&onnx, &bytes[..bytes.len() / 3]).unwrap();

    // The runtime is loaded once per process: the wrong-path case gets a process of its own.
    let (head, plain) = (model("multitask_ct"), model("resenc_ct"));
    let out = success(run(&program, &[OsStr::new("runtime"), head.as_os_str()], true), "abi_smoke runtime");
    assert!(out.contains(" 0 failed"), "{out}");
    // Where the program writes the head model's bundle (and loads it from memory).
    let bundle = dir.join("head.nnrt");
    let args = [OsStr::new("main"), head.as_os_str(), plain.as_os_str(), truncated.as_os_str(), bundle.as_os_str()];
    let out = success(run(&program, &args, true), "abi_smoke main");
    assert!(out.contains(" 0 failed"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The lines every example prints, from the library's own prediction of the same case.
fn expected_lines(prediction: &nnunet_rt::Prediction) -> String {
    let mut text = String::new();
    let counts = prediction.labels.counts(prediction.label_names.len());
    for (name, count) in prediction.label_names.iter().zip(counts) {
        text += &format!("label {name} {count}\n");
    }
    if let Some(c) = &prediction.classification {
        text += &format!("class {} {:.6}\n", c.class_names[c.predicted], c.probabilities[c.predicted]);
    }
    text
}

#[test]
fn examples_print_the_library_counts_in_c_cpp_and_rust() {
    if !common::ort_available() {
        return;
    }
    let dir = scratch("examples");
    let model = model("multitask_ct");
    let input = common::fixtures().join("cases/multitask_lesion/input/multitask_lesion_0000.nii.gz");
    let nii = dir.join("case.nii");
    gunzip(&input, &nii);
    let c = compile(Lang::C, &["examples/c/predict.c"], &dir.join("predict_c"), &[]);
    let cxx = compile(Lang::Cxx, &["examples/cpp/predict.cpp"], &dir.join("predict_cpp"), &[]);

    let image = nnunet_rt::io::nifti::read_image(&input).unwrap();
    let library = nnunet_rt::Model::load(&model, &nnunet_rt::LoadOptions::default()).unwrap();
    let prediction = library
        .predict(&image.volume.view().unwrap(), &nnunet_rt::PredictOptions::default(), &mut |_, _| true)
        .unwrap();
    let expected = expected_lines(&prediction);
    assert!(expected.contains("label lesion ") && expected.contains("\nclass "), "{expected}");

    let args = [model.as_os_str(), nii.as_os_str()];
    let rust = success(run(&built().rust_example, &args, false), "the Rust example");
    assert_eq!(rust, expected, "the Rust example against the library");
    let from_c = success(run(&c, &args, false), "the C example");
    assert_eq!(from_c, expected, "the C example against the library");
    let from_cxx = success(run(&cxx, &args, false), "the C++ example");
    assert_eq!(from_cxx, expected, "the C++ example against the library");
    // Each example loads the same model from a bundle in memory and prints the same lines.
    let bundle = dir.join("model.nnrt");
    nnunet_rt::Model::write_bundle(&model, &nnunet_rt::LoadOptions::default(), &bundle).unwrap();
    let args = [bundle.as_os_str(), nii.as_os_str()];
    for (program, name) in [(&built().rust_example, "Rust"), (&c, "C"), (&cxx, "C++")] {
        let printed = success(run(program, &args, false), &format!("the {name} example on a bundle"));
        assert_eq!(printed, expected, "the {name} example on a bundle against the library");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What goes into a synthetic NIfTI-1 file.
#[derive(Clone, Copy)]
struct NiftiSpec {
    dims: [u16; 4],
    datatype: i16,
    pixdim: [f32; 4],
    scaling: (f32, f32),
    /// (quatern b, c, d), offset, qfac.
    qform: Option<([f32; 3], [f32; 3], f32)>,
    sform: Option<[[f32; 4]; 3]>,
    big_endian: bool,
}

/// Writes a single-file NIfTI-1 image; `data` holds little-endian elements of `element_size`.
fn write_nifti(path: &Path, spec: &NiftiSpec, data: &[u8], element_size: usize) {
    let mut h = vec![0u8; 352];
    let be = spec.big_endian;
    let mut put = |offset: usize, bytes: &[u8]| h[offset..offset + bytes.len()].copy_from_slice(bytes);
    macro_rules! num {
        ($v:expr) => {
            if be {
                $v.to_be_bytes()
            } else {
                $v.to_le_bytes()
            }
        };
    }
    put(0, &num!(348i32));
    let rank = if spec.dims[3] > 1 { 4i16 } else { 3i16 };
    put(40, &num!(rank));
    for (i, d) in spec.dims.iter().enumerate() {
        put(42 + 2 * i, &num!(*d as i16));
    }
    for i in 4..7 {
        put(42 + 2 * i, &num!(1i16));
    }
    put(70, &num!(spec.datatype));
    put(72, &num!((element_size * 8) as i16));
    let qfac = spec.qform.map_or(1.0, |q| q.2);
    put(76, &num!(qfac));
    for i in 0..3 {
        put(80 + 4 * i, &num!(spec.pixdim[i + 1]));
    }
    put(108, &num!(352f32));
    put(112, &num!(spec.scaling.0));
    put(116, &num!(spec.scaling.1));
    put(123, &[2 | 8]);
    if let Some((quatern, offset, _)) = spec.qform {
        put(252, &num!(1i16));
        for i in 0..3 {
            put(256 + 4 * i, &num!(quatern[i]));
            put(268 + 4 * i, &num!(offset[i]));
        }
    }
    if let Some(rows) = spec.sform {
        put(254, &num!(2i16));
        for (r, row) in rows.iter().enumerate() {
            for (c, v) in row.iter().enumerate() {
                put(280 + 16 * r + 4 * c, &num!(*v));
            }
        }
    }
    put(344, b"n+1\0");
    let mut body = data.to_vec();
    if be {
        body.chunks_mut(element_size).for_each(<[u8]>::reverse);
    }
    h.extend_from_slice(&body);
    std::fs::write(path, h).unwrap();
}

/// A CT-like value (HU) at voxel (x, y, z) of an `n`-sized volume.
fn hounsfield(x: usize, y: usize, z: usize, n: [usize; 3]) -> f64 {
    let d = |v: usize, size: usize| (v as f64 - size as f64 / 2.0) / (size as f64 / 3.0);
    let r = d(x, n[0]).powi(2) + d(y, n[1]).powi(2) + d(z, n[2]).powi(2);
    if r < 0.2 {
        130.0
    } else if r < 1.0 {
        45.0 + ((x + y) % 5) as f64
    } else {
        -90.0 + ((3 * x + 7 * y + z) % 17) as f64
    }
}

#[test]
fn c_and_rust_examples_read_nifti_files_alike() {
    if !common::ort_available() {
        return;
    }
    let dir = scratch("nifti");
    let c = compile(Lang::C, &["examples/c/predict.c"], &dir.join("predict_c"), &[]);
    let n = [48usize, 32, 16];
    let values: Vec<f64> =
        (0..n[2]).flat_map(|z| (0..n[1]).flat_map(move |y| (0..n[0]).map(move |x| hounsfield(x, y, z, n)))).collect();
    let le = |bytes: Vec<[u8; 2]>| bytes.concat();
    let int16_scaled = le(values.iter().map(|v| (((v + 100.0) / 0.5).round() as i16).to_le_bytes()).collect());
    let int16 = le(values.iter().map(|v| (v.round() as i16).to_le_bytes()).collect());
    let float32: Vec<u8> = values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect();
    let uint8: Vec<u8> = values.iter().map(|v| ((v + 90.0) / 2.0).round().clamp(0.0, 255.0) as u8).collect();
    let base = NiftiSpec {
        dims: [n[0] as u16, n[1] as u16, n[2] as u16, 1],
        datatype: 4,
        pixdim: [1.0, 0.75, 0.75, 2.0],
        scaling: (0.0, 0.0),
        qform: None,
        sform: None,
        big_endian: false,
    };
    let rotated = [[0.0, -0.75, 0.0, 10.0], [0.75, 0.0, 0.0, -5.0], [0.0, 0.0, 2.0, 3.5]];
    let quarter_turn = ([0.0, 0.0, std::f32::consts::FRAC_1_SQRT_2], [10.0, -5.0, 3.5], -1.0);
    let cases: Vec<(&str, NiftiSpec, &[u8], usize)> = vec![
        ("int16_scaled_sform", NiftiSpec { scaling: (0.5, -100.0), sform: Some(rotated), ..base }, &int16_scaled, 2),
        ("int16_big_endian_qform", NiftiSpec { qform: Some(quarter_turn), big_endian: true, ..base }, &int16, 2),
        ("float32_plain", NiftiSpec { datatype: 16, ..base }, &float32, 4),
        ("uint8_scaled", NiftiSpec { datatype: 2, scaling: (2.0, -90.0), ..base }, &uint8, 1),
    ];
    let model = model("multitask_ct");
    let mut first = None;
    for (name, spec, data, size) in &cases {
        let path = dir.join(format!("{name}.nii"));
        write_nifti(&path, spec, data, *size);
        let args =
            [model.as_os_str(), path.as_os_str(), OsStr::new("-f"), OsStr::new("0"), OsStr::new("--disable-tta")];
        let rust = success(run(&built().rust_example, &args, false), "the Rust example");
        let from_c = success(run(&c, &args, false), "the C example");
        assert_eq!(from_c, rust, "{name}: the C reader and the library's reader disagree");
        let voxels: u64 =
            rust.lines().filter_map(|l| l.strip_prefix("label ")?.rsplit(' ').next()?.parse::<u64>().ok()).sum();
        assert_eq!(voxels, (n[0] * n[1] * n[2]) as u64, "{name}: {rust}");
        first.get_or_insert((path, rust));
    }
    // Under valgrind, one small prediction through the C example.
    if valgrind().is_some() {
        let (path, rust) = first.unwrap();
        let args =
            [model.as_os_str(), path.as_os_str(), OsStr::new("-f"), OsStr::new("0"), OsStr::new("--disable-tta")];
        assert_eq!(success(run(&c, &args, true), "the C example under valgrind"), rust);
    }
    // What the reader refuses, it refuses in one line.
    let gz = common::fixtures().join("cases/multitask_lesion/input/multitask_lesion_0000.nii.gz");
    let out = run(&c, &[model.as_os_str(), gz.as_os_str()], false);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("gzip-compressed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn one_model_shared_by_eight_threads() {
    if !common::ort_available() {
        return;
    }
    let dir = scratch("threads");
    let program = compile(Lang::C, &["tests/c/threads.c"], &dir.join("threads"), &["-pthread"]);
    let model = model("resenc_ct");
    let out = success(run(&program, &[model.as_os_str(), OsStr::new("8"), OsStr::new("25")], false), "threads");
    assert!(out.contains("200 predictions on 8 threads") && out.contains("all identical"), "{out}");
    assert!(out.contains("model freed during a prediction, which returned cancelled"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}
