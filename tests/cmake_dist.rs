//! `cargo xtask dist` makes a folder and an archive that work where they are unpacked: the
//! archive is extracted elsewhere, a small CMake C++ project finds it with
//! `find_package(nnunet_rt)`, links `nnunet_rt::nnunet_rt` (and `nnunet_rt::nnunet_rt_static`),
//! and predicts with the ONNX Runtime next to `libnnunet_rt.so` — with `NNUNET_RT_ORT_LIB` and
//! `ORT_DYLIB_PATH` unset. The packed CLI finds the runtime the same way. The library is shipped
//! as `libnnunet_rt.so.<version>` with soname `libnnunet_rt.so.0` (what the program records) and
//! the links `.so.0` and `.so`; the dist carries the committed THIRD_PARTY_NOTICES.md.
//!
//! The dist is made from the build profile of this test (`--debug` for `cargo test`), which
//! avoids a release build; `cargo xtask dist` alone packs the release build.
//! Needs `cmake` and the fetched ONNX Runtime: fails without them unless `NNUNET_RT_ALLOW_SKIP=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use nnunet_rt::{Geometry, LoadOptions, Model, PredictOptions, VolumeView, VoxelData};

fn success(out: Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    text
}

/// A command with no ONNX Runtime or OpenVINO location in its environment, and without the
/// library path `cargo test` sets (it would load target/*/libnnunet_rt.so instead of the dist's).
fn bare(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env_remove("NNUNET_RT_ORT_LIB")
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("NNUNET_RT_OPENVINO_LIB")
        .env_remove("LD_LIBRARY_PATH");
    command
}

/// The values of the `tag` entries (`SONAME`, `NEEDED`) of an ELF file's dynamic section, read
/// with `readelf -d` (binutils, which the C compiler's linker comes with).
fn dynamic_entries(file: &Path, tag: &str) -> Vec<String> {
    let text = success(Command::new("readelf").arg("-d").arg(file).output().unwrap(), "readelf -d");
    text.lines()
        .filter(|l| l.contains(&format!("({tag})")))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect()
}

const NX: usize = 48;
const NY: usize = 32;
const NZ: usize = 16;

/// The consumer's synthetic CT volume (the same integer formula as in `CONSUMER_MAIN`).
fn volume() -> Vec<i16> {
    let mut v = Vec::with_capacity(NX * NY * NZ);
    for z in 0..NZ as i32 {
        for y in 0..NY as i32 {
            for x in 0..NX as i32 {
                let r = (x - 24) * (x - 24) * 4 + (y - 16) * (y - 16) * 9 + (z - 8) * (z - 8) * 36;
                v.push(if r < 900 {
                    60
                } else if r < 2500 {
                    30
                } else {
                    -70 + (x * 3 + y * 5 + z) % 9
                } as i16);
            }
        }
    }
    v
}

const CONSUMER_MAIN: &str = r#"// Predicts a synthetic volume with nnunet_rt found by find_package.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "nnunet_rt.hpp"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  std::vector<std::int16_t> v;
  for (int z = 0; z < 16; ++z)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 48; ++x) {
        const int r = (x - 24) * (x - 24) * 4 + (y - 16) * (y - 16) * 9 + (z - 8) * (z - 8) * 36;
        v.push_back(static_cast<std::int16_t>(r < 900 ? 60 : r < 2500 ? 30 : -70 + (x * 3 + y * 5 + z) % 9));
      }
  try {
    const nnrt::Model model = nnrt::Model::load(argv[1], nnrt::LoadOptions().folds({"0"}));
    nnrt::PredictOptions options;
    options.tta = false;
    const nnrt::Result result = model.predict(nnrt::Volume::of(v.data(), {48, 32, 16}, {0.75, 0.75, 2.0}), options);
    const std::vector<std::uint64_t> counts = result.label_counts();
    for (std::size_t i = 0; i < counts.size(); ++i) {
      std::printf("label %s %llu\n", model.label_name(i).c_str(), static_cast<unsigned long long>(counts[i]));
    }
  } catch (const nnrt::Error &e) {
    std::fprintf(stderr, "consumer: %s\n", e.what());
    return 1;
  }
  // Which ONNX Runtime the process loaded.
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("libonnxruntime.so") != std::string::npos && line.find('/') != std::string::npos) {
      std::printf("runtime %s\n", line.substr(line.find('/')).c_str());
      break;
    }
  }
  return 0;
}
"#;

fn consumer_cmake(version_requirement: &str) -> String {
    format!(
        r#"cmake_minimum_required(VERSION 3.16)
project(nnunet_rt_consumer LANGUAGES CXX)
find_package(nnunet_rt {version_requirement} REQUIRED)
add_executable(consumer main.cpp)
target_compile_features(consumer PRIVATE cxx_std_17)
target_compile_options(consumer PRIVATE -Wall -Wextra -Werror -pedantic)
target_link_libraries(consumer PRIVATE nnunet_rt::nnunet_rt)
add_executable(consumer_static main.cpp)
target_compile_features(consumer_static PRIVATE cxx_std_17)
target_link_libraries(consumer_static PRIVATE nnunet_rt::nnunet_rt_static)
"#
    )
}

#[test]
fn dist_folder_works_from_cmake_after_moving() {
    if !common::cmake_available() {
        return;
    }
    // The dist copies the runtime `cargo xtask ort` fetched; without it, it would download it.
    let fetched = Path::new(nnunet_rt::backend::runtime::FETCHED_DIR).join("libonnxruntime.so");
    if !fetched.is_file() && !common::missing(&format!("no ONNX Runtime at {} (cargo xtask ort)", fetched.display())) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = std::env::temp_dir().join(format!("nnrt-dist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();

    let start = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut dist = Command::new(cargo);
    dist.current_dir(root).args(["xtask", "dist", "--out"]).arg(scratch.join("out"));
    if cfg!(debug_assertions) {
        dist.arg("--debug");
    }
    let printed = success(dist.stderr(Stdio::inherit()).output().unwrap(), "cargo xtask dist");
    eprintln!("cargo xtask dist: {:.1} s", start.elapsed().as_secs_f64());
    let archive = PathBuf::from(printed.lines().last().expect("dist prints the archive's path"));
    let name = archive.file_name().unwrap().to_str().unwrap().strip_suffix(".tar.gz").unwrap().to_string();
    assert!(name.starts_with(&format!("nnunet-rt-{}-", env!("CARGO_PKG_VERSION"))), "{name}");

    // Unpacked somewhere else: nothing may point back at where it was made.
    let unpacked = scratch.join("elsewhere");
    std::fs::create_dir_all(&unpacked).unwrap();
    success(Command::new("tar").arg("-C").arg(&unpacked).arg("-xzf").arg(&archive).output().unwrap(), "tar -x");
    std::fs::remove_dir_all(scratch.join("out")).unwrap();
    let prefix = unpacked.join(&name);
    for file in [
        "bin/nnunet-rt",
        "include/nnunet_rt.h",
        "include/nnunet_rt.hpp",
        "lib/libnnunet_rt.so",
        "lib/libnnunet_rt.a",
        "lib/libonnxruntime.so",
        "lib/cmake/nnunet_rt/nnunet_rtConfig.cmake",
        "lib/cmake/nnunet_rt/nnunet_rtConfigVersion.cmake",
        "lib/pkgconfig/nnunet_rt.pc",
        "README.md",
        "LICENSE",
        "LICENSE-MIT",
        "LICENSE-APACHE",
    ] {
        assert!(prefix.join(file).is_file(), "{file} missing from the dist");
    }
    assert_eq!(
        std::fs::read(prefix.join("include/nnunet_rt.h")).unwrap(),
        std::fs::read(root.join("include/nnunet_rt.h")).unwrap()
    );
    assert_eq!(
        std::fs::read(prefix.join("THIRD_PARTY_NOTICES.md")).unwrap(),
        std::fs::read(root.join("THIRD_PARTY_NOTICES.md")).unwrap()
    );
    // The shared library is the versioned file; its soname and the name `-lnnunet_rt` finds
    // are links to it, and the file records the soname.
    let versioned = format!("libnnunet_rt.so.{}", env!("CARGO_PKG_VERSION"));
    let lib_dir = prefix.join("lib");
    assert!(!lib_dir.join(&versioned).is_symlink() && lib_dir.join(&versioned).is_file(), "{versioned}");
    for link in ["libnnunet_rt.so.0", "libnnunet_rt.so"] {
        assert_eq!(std::fs::read_link(lib_dir.join(link)).unwrap(), Path::new(&versioned), "{link}");
    }
    assert_eq!(dynamic_entries(&lib_dir.join(&versioned), "SONAME"), ["libnnunet_rt.so.0"]);
    let pc = std::fs::read_to_string(prefix.join("lib/pkgconfig/nnunet_rt.pc")).unwrap();
    assert!(pc.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))) && pc.contains("${pcfiledir}"), "{pc}");

    // The consumer project.
    let project = scratch.join("consumer");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(project.join("main.cpp"), CONSUMER_MAIN).unwrap();
    let (major, minor) = {
        let mut parts = env!("CARGO_PKG_VERSION").split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let configure = |requirement: &str| {
        std::fs::write(project.join("CMakeLists.txt"), consumer_cmake(requirement)).unwrap();
        let build = project.join("build");
        let _ = std::fs::remove_dir_all(&build);
        Command::new("cmake")
            .arg("-S")
            .arg(&project)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .output()
            .unwrap()
    };
    // A later series is refused by the version file...
    let refused = configure(&format!("{major}.{}", minor + 1));
    assert!(
        !refused.status.success(),
        "find_package accepted version {major}.{} of {}",
        minor + 1,
        env!("CARGO_PKG_VERSION")
    );
    // ...this one is found.
    success(configure(&format!("{major}.{minor}")), "cmake configure");
    let start = Instant::now();
    success(Command::new("cmake").arg("--build").arg(project.join("build")).output().unwrap(), "cmake --build");
    eprintln!("consumer build: {:.1} s", start.elapsed().as_secs_f64());

    let model_dir = common::fixtures().join("models/resenc_ct");
    let expected = {
        let model =
            Model::load(&model_dir, &LoadOptions { folds: Some(vec!["0".into()]), ..LoadOptions::default() }).unwrap();
        let data = volume();
        let view =
            VolumeView::new(VoxelData::I16(&data), [NX, NY, NZ], 1, Geometry::with_spacing([0.75, 0.75, 2.0])).unwrap();
        let options = PredictOptions { mirroring: false, ..PredictOptions::default() };
        let p = model.predict(&view, &options, &mut |_, _| true).unwrap();
        let counts = p.labels.counts(p.label_names.len());
        p.label_names.iter().zip(counts).map(|(n, c)| format!("label {n} {c}\n")).collect::<String>()
    };
    // The program records the soname, not the path or the unversioned name.
    let needed = dynamic_entries(&project.join("build/consumer"), "NEEDED");
    assert!(needed.iter().any(|n| n == "libnnunet_rt.so.0"), "{needed:?}");
    assert!(!needed.iter().any(|n| n.contains('/') || n == "libnnunet_rt.so"), "{needed:?}");
    let lib = prefix.join("lib");
    let out = success(bare(project.join("build/consumer")).arg(&model_dir).output().unwrap(), "the consumer");
    let (labels, runtime) = out.split_at(out.find("runtime ").expect("the consumer names its runtime"));
    assert_eq!(labels, expected);
    assert!(runtime.trim_end().starts_with(&format!("runtime {}/libonnxruntime.so", lib.display())), "{runtime}");

    // The static library links with the flags the package declares; its program finds the
    // runtime through the environment.
    let out = success(
        bare(project.join("build/consumer_static"))
            .env("NNUNET_RT_ORT_LIB", lib.join("libonnxruntime.so"))
            .arg(&model_dir)
            .output()
            .unwrap(),
        "the static consumer",
    );
    assert!(out.starts_with(&expected), "{out}");

    // The CLI uses the runtime packed with it.
    let info = success(
        bare(prefix.join("bin/nnunet-rt")).args(["info", "-m"]).arg(&model_dir).output().unwrap(),
        "nnunet-rt info",
    );
    assert!(info.contains(&format!("({}/libonnxruntime.so)", prefix.join("bin").display())), "{info}");
    // ... and the OpenVINO plugin packed beside it, which the default device takes.
    assert!(info.contains("network      f32 on openvino"), "{info}");
    assert!(
        info.contains(&format!(
            "({}/../lib/libonnxruntime_providers_openvino_plugin.so)",
            prefix.join("bin").display()
        )),
        "{info}"
    );
    std::fs::remove_dir_all(&scratch).unwrap();
}
