//! `cargo xtask slicer-extension [--out DIR] [--debug] [--slicer X.Y]`: a 3D Slicer extension
//! package with the native libraries inside, for the Extensions Manager's "Install from file".
//!
//! ```text
//! NnunetRt-<version>-<os>-<arch>/             the archive's top folder (Slicer renames it NnunetRt/)
//!   share/Slicer-X.Y/NnunetRt.s4ext           the description Slicer looks for in the archive
//!   share/Slicer-X.Y/NnunetRt/                licences, THIRD_PARTY_NOTICES.md
//!   lib/Slicer-X.Y/qt-scripted-modules/       on Slicer's module and Python paths:
//!     NnunetRt.py, NnunetRtLib/, Resources/     the scripted module
//!     nnunet_rt/                                the Python package (bindings/python/nnunet_rt)
//!   lib/Slicer-X.Y/                           on Slicer's library path for extensions
//!     libnnunet_rt.so                           release build, --no-default-features (as dist)
//!     libonnxruntime.so.<ort>, libonnxruntime_providers_shared.so
//!     libonnxruntime_providers_openvino_plugin.so, libopenvino*, libtbb*, libhwloc*
//! ```
//!
//! Nothing is found through environment variables or absolute paths: the package finds
//! `libnnunet_rt` in `lib/Slicer-X.Y` relative to its own file, and the library finds ONNX
//! Runtime and the OpenVINO plugin next to itself. Every entry is a plain file (no links):
//! Slicer copies the unpacked folder into place. Slicer takes a package only for its own
//! `X.Y` (the folders are named after it): `--slicer` picks it.
//!
//! The extension's metadata (category, description, ...) comes from the `EXTENSION_*` settings
//! of bindings/slicer/CMakeLists.txt, the file the Extensions Index builds from.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::dist::{copy, licenses, mkdir, package_version, write};
use crate::{fetch_openvino, fetch_ort, root, run, OPENVINO_CPU_FILES, ORT_VERSION};

/// The Slicer release the package is laid out for unless `--slicer` says otherwise.
pub(crate) const DEFAULT_SLICER_VERSION: &str = "5.8";

const EXTENSION: &str = "NnunetRt";

pub fn slicer_extension(args: &[String]) -> Result<(), String> {
    let (folder, archive) = build(args)?;
    println!("{}", folder.display());
    println!("{}", archive.display());
    Ok(())
}

/// Builds the package; returns its folder and its archive.
pub(crate) fn build(args: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let mut out_dir = None;
    let mut debug = false;
    let mut slicer = DEFAULT_SLICER_VERSION.to_string();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out" => out_dir = Some(PathBuf::from(rest.next().ok_or("--out needs a folder")?)),
            "--debug" => debug = true,
            "--slicer" => slicer = rest.next().ok_or("--slicer needs a version, e.g. 5.8")?.clone(),
            other => {
                return Err(format!(
                    "slicer-extension: unexpected argument {other:?} (usage: cargo xtask slicer-extension [--out DIR] [--debug] [--slicer X.Y])"
                ))
            }
        }
    }
    let valid = slicer.split('.').count() == 2
        && slicer.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !valid {
        return Err(format!("--slicer takes Slicer's major.minor version, e.g. 5.8; got {slicer:?}"));
    }
    let root = root();
    let ort = fetch_ort(false)?;
    let openvino = fetch_openvino()?;
    let version = package_version(&root)?;
    let metadata = extension_metadata(
        &std::fs::read_to_string(root.join("bindings/slicer/CMakeLists.txt"))
            .map_err(|e| format!("cannot read bindings/slicer/CMakeLists.txt: {e}"))?,
    )?;

    // The library as dist builds it: the C ABI without the NIfTI reader.
    let mut build = Command::new(env!("CARGO"));
    build.current_dir(&root).args(["build", "--quiet", "-p", "nnunet-rt", "--lib", "--no-default-features"]);
    if !debug {
        build.arg("--release");
    }
    run(&mut build)?;
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let built = target.join(if debug { "debug" } else { "release" });

    let name = format!("{EXTENSION}-{version}-{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let out_dir = match out_dir {
        Some(dir) if dir.is_relative() => std::env::current_dir().map_err(|e| e.to_string())?.join(dir),
        Some(dir) => dir,
        None => target.join("slicer"),
    };
    let folder = out_dir.join(&name);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| format!("cannot remove {}: {e}", folder.display()))?;
    }
    let lib = folder.join(format!("lib/Slicer-{slicer}"));
    let scripted = lib.join("qt-scripted-modules");
    let share = folder.join(format!("share/Slicer-{slicer}"));
    let docs = share.join(EXTENSION);
    for dir in [&scripted, &docs] {
        mkdir(dir)?;
    }

    // The module and the Python package, as source files.
    let module = root.join("bindings/slicer").join(EXTENSION);
    copy_python_tree(&module, &scripted, &["CMakeLists.txt"])?;
    copy_python_tree(&root.join("bindings/python/nnunet_rt"), &scripted.join("nnunet_rt"), &[])?;

    // The native libraries, side by side.
    copy(&built.join(LIBRARY), &lib.join(LIBRARY))?;
    let ort_dir = ort.parent().ok_or("no ONNX Runtime folder")?;
    let versioned = format!("libonnxruntime.so.{ORT_VERSION}");
    copy(&ort_dir.join(&versioned), &lib.join(&versioned))?;
    let providers = ort_dir.join("libonnxruntime_providers_shared.so");
    if providers.is_file() {
        copy(&providers, &lib.join("libonnxruntime_providers_shared.so"))?;
    }
    let openvino_dir = openvino.parent().ok_or("no OpenVINO folder")?;
    for file in OPENVINO_CPU_FILES {
        let to = if file.ends_with(".txt") { docs.join("third-party-programs-openvino.txt") } else { lib.join(file) };
        copy(&openvino_dir.join(file), &to)?;
    }

    licenses(&root, &docs)?;
    write(
        &docs.join("LICENSE"),
        &format!(
            "The NnunetRt extension (the module, the nnunet_rt package and lib/Slicer-{slicer}/libnnunet_rt*) is licensed\n\
             under the MIT license or the Apache License, Version 2.0, at your option (SPDX-License-Identifier:\n\
             MIT OR Apache-2.0): see LICENSE-MIT and LICENSE-APACHE. ONNX Runtime (libonnxruntime*) is licensed under\n\
             the MIT license: see LICENSE-onnxruntime. The OpenVINO plugin for ONNX Runtime is licensed under the MIT\n\
             license, OpenVINO and TBB under the Apache License 2.0, hwloc under the BSD-3-Clause license; their\n\
             notices are in third-party-programs-openvino.txt. THIRD_PARTY_NOTICES.md lists every Rust crate compiled\n\
             into libnnunet_rt.\n"
        ),
    )?;
    write(&docs.join(crate::notice::FILE), &crate::notice::generate(&root)?)?;
    write(&share.join(format!("{EXTENSION}.s4ext")), &s4ext(&metadata))?;

    let archive = out_dir.join(format!("{name}.tar.gz"));
    run(Command::new("tar").arg("-C").arg(&out_dir).args(["--owner=0", "--group=0", "-czf"]).arg(&archive).arg(&name))?;
    Ok((folder, archive))
}

/// The shared library's name as cargo builds it, which is also the name the Python package
/// looks for.
const LIBRARY: &str = if cfg!(target_os = "macos") {
    "libnnunet_rt.dylib"
} else if cfg!(windows) {
    "nnunet_rt.dll"
} else {
    "libnnunet_rt.so"
};

/// Copies `from` into `to`: its `.py` files and `Resources/`, recursively, without caches and
/// without the names in `skip`.
fn copy_python_tree(from: &Path, to: &Path, skip: &[&str]) -> Result<(), String> {
    mkdir(to)?;
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .map_err(|e| format!("cannot read {}: {e}", from.display()))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if skip.contains(&name.as_str()) || name == "__pycache__" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            copy_python_tree(&path, &to.join(&name), &[])?;
        } else if name.ends_with(".py") || from.components().any(|c| c.as_os_str() == "Resources") {
            copy(&path, &to.join(&name))?;
        }
    }
    Ok(())
}

/// `EXTENSION_*` settings of an extension's CMakeLists.txt: `set(EXTENSION_X "value")`, keyed
/// by the lower-case name without the prefix (`category`, `description`, ...).
pub(crate) fn extension_metadata(cmake: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in cmake.lines() {
        let Some(rest) = line.trim().strip_prefix("set(EXTENSION_") else { continue };
        let (key, value) = rest.split_once(char::is_whitespace).ok_or_else(|| format!("cannot read {line:?}"))?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.split_once("\")")).map(|(v, _)| v).ok_or_else(|| {
            format!("bindings/slicer/CMakeLists.txt: EXTENSION_{key} must be one quoted string on its line: {line:?}")
        })?;
        out.push((key.to_ascii_lowercase(), value.to_string()));
    }
    for required in ["homepage", "category", "contributors", "description", "iconurl", "screenshoturls", "depends"] {
        if !out.iter().any(|(k, _)| k == required) {
            return Err(format!("bindings/slicer/CMakeLists.txt sets no EXTENSION_{}", required.to_ascii_uppercase()));
        }
    }
    Ok(out)
}

/// The extension description file (`key value` lines) Slicer reads from an installed package.
fn s4ext(metadata: &[(String, String)]) -> String {
    let get = |key: &str| metadata.iter().find(|(k, _)| k == key).map_or("", |(_, v)| v.as_str());
    let mut text = String::from("# 3D Slicer extension description, written by `cargo xtask slicer-extension`\n");
    for (key, value) in [
        ("scm", "git"),
        ("scmurl", get("homepage")),
        ("scmrevision", "NA"),
        ("depends", get("depends")),
        ("build_subdirectory", "."),
        ("homepage", get("homepage")),
        ("contributors", get("contributors")),
        ("category", get("category")),
        ("iconurl", get("iconurl")),
        ("status", get("status")),
        ("description", get("description")),
        ("screenshoturls", get("screenshoturls")),
        ("enabled", "1"),
    ] {
        text.push_str(&format!("{key} {value}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_comes_from_the_extension_cmakelists() {
        let cmake = std::fs::read_to_string(root().join("bindings/slicer/CMakeLists.txt")).unwrap();
        let metadata = extension_metadata(&cmake).unwrap();
        let get = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("category"), "Segmentation");
        assert!(get("iconurl").ends_with("/NnunetRt.png"), "{metadata:?}");
        assert!(get("description").contains("nnU-Net"), "{metadata:?}");
        let text = s4ext(&metadata);
        assert!(text.contains("\ncategory Segmentation\n") && text.contains("\nenabled 1\n"), "{text}");
        assert!(extension_metadata("set(EXTENSION_CATEGORY Segmentation)").is_err());
    }
}
