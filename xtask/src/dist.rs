//! `cargo xtask dist [--out DIR] [--debug]`: a relocatable binary distribution of the C library.
//!
//! ```text
//! nnunet-rt-<version>-linux-x86_64/
//!   bin/nnunet-rt                       the CLI (+ a link to the ONNX Runtime in lib/)
//!   include/nnunet_rt.h, nnunet_rt.hpp  the C header and the header-only C++ layer
//!   lib/libnnunet_rt.so.<version>      the shared library (soname libnnunet_rt.so.0), with the
//!   lib/libnnunet_rt.so.0, .so          links programs load and link by; lib/libnnunet_rt.a
//!   lib/libonnxruntime.so*              found next to libnnunet_rt.so at run time, no variable needed
//!   lib/libonnxruntime_providers_openvino_plugin.so, libopenvino*, libtbb*, libhwloc*
//!                                       OpenVINO for `--device auto|openvino`, found the same way
//!   lib/cmake/nnunet_rt/                find_package(nnunet_rt): nnunet_rt::nnunet_rt, nnunet_rt::nnunet_rt_static
//!   lib/pkgconfig/nnunet_rt.pc
//!   README.md, LICENSE*, THIRD_PARTY_NOTICES.md, doc/
//! ```
//!
//! Written to `target/dist/` (or `--out DIR`) with a `.tar.gz` of the folder next to it. The
//! folder can be moved anywhere: every path in it is relative. `--debug` packs the dev-profile
//! build instead of the release one (quicker to make; used by the tests).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{fetch_openvino, fetch_ort, root, run, OPENVINO_CPU_FILES, OPENVINO_PLUGIN_VERSION, ORT_VERSION};

pub fn dist(args: &[String]) -> Result<(), String> {
    let mut out_dir = None;
    let mut debug = false;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--out" => out_dir = Some(PathBuf::from(rest.next().ok_or("--out needs a folder")?)),
            "--debug" => debug = true,
            other => {
                return Err(format!(
                    "dist: unexpected argument {other:?} (usage: cargo xtask dist [--out DIR] [--debug])"
                ))
            }
        }
    }
    let root = root();
    let ort = fetch_ort(false)?;
    let openvino = fetch_openvino()?;
    let version = package_version(&root)?;

    // The CLI, then the library as C and C++ users link it (no NIfTI reader: `io` is for the CLI),
    // last so that its files are the ones left in the target folder.
    for args in [
        &["build", "--quiet", "-p", "nnunet-rt-cli", "--bin", "nnunet-rt"][..],
        &["build", "--quiet", "-p", "nnunet-rt", "--lib", "--no-default-features"][..],
    ] {
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(&root).args(args);
        if !debug {
            build.arg("--release");
        }
        run(&mut build)?;
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    let built = target.join(if debug { "debug" } else { "release" });

    let name = format!("nnunet-rt-{version}-{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    let out_dir = match out_dir {
        Some(dir) if dir.is_relative() => std::env::current_dir().map_err(|e| e.to_string())?.join(dir),
        Some(dir) => dir,
        None => target.join("dist"),
    };
    let folder = out_dir.join(&name);
    if folder.exists() {
        std::fs::remove_dir_all(&folder).map_err(|e| format!("cannot remove {}: {e}", folder.display()))?;
    }
    for sub in ["bin", "include", "lib/cmake/nnunet_rt", "lib/pkgconfig", "doc"] {
        mkdir(&folder.join(sub))?;
    }

    copy(&built.join("nnunet-rt"), &folder.join("bin/nnunet-rt"))?;
    let shared = SharedLibrary::for_target(&version);
    copy(&built.join(shared.built), &folder.join("lib").join(&shared.file))?;
    for link in &shared.links {
        symlink(&shared.file, &folder.join("lib").join(link))?;
    }
    copy(&built.join(STATIC_LIBRARY), &folder.join("lib").join(STATIC_LIBRARY))?;
    copy(&root.join("include/nnunet_rt.h"), &folder.join("include/nnunet_rt.h"))?;
    copy(&root.join("bindings/cxx/include/nnunet_rt.hpp"), &folder.join("include/nnunet_rt.hpp"))?;

    // ONNX Runtime next to our library (where it looks first after the explicit settings), as
    // the versioned file plus the unversioned name. The CLI looks next to itself: a link there.
    let ort_dir = ort.parent().ok_or("no ONNX Runtime folder")?;
    let versioned = format!("libonnxruntime.so.{ORT_VERSION}");
    copy(&ort_dir.join(&versioned), &folder.join("lib").join(&versioned))?;
    symlink(&versioned, &folder.join("lib/libonnxruntime.so"))?;
    let providers = ort_dir.join("libonnxruntime_providers_shared.so");
    if providers.is_file() {
        copy(&providers, &folder.join("lib/libonnxruntime_providers_shared.so"))?;
    }
    symlink(&format!("../lib/{versioned}"), &folder.join("bin/libonnxruntime.so"))?;
    // The OpenVINO plugin and its libraries beside ONNX Runtime: the plugin finds OpenVINO and
    // TBB next to itself (RUNPATH $ORIGIN), and nnunet-rt finds the plugin next to itself.
    let openvino_dir = openvino.parent().ok_or("no OpenVINO folder")?;
    for name in OPENVINO_CPU_FILES {
        let to = if name.ends_with(".txt") {
            folder.join("third-party-programs-openvino.txt")
        } else {
            folder.join("lib").join(name)
        };
        copy(&openvino_dir.join(name), &to)?;
    }

    write(&folder.join("lib/cmake/nnunet_rt/nnunet_rtConfig.cmake"), &cmake_config(&version))?;
    write(&folder.join("lib/cmake/nnunet_rt/nnunet_rtConfigVersion.cmake"), &cmake_config_version(&version))?;
    write(&folder.join("lib/pkgconfig/nnunet_rt.pc"), &pkg_config(&version))?;
    write(&folder.join("README.md"), &readme(&version))?;
    write(&folder.join(crate::notice::FILE), &crate::notice::generate(&root)?)?;
    copy(&root.join("README.md"), &folder.join("doc/README.md"))?;
    copy(&root.join("bindings/README.md"), &folder.join("doc/bindings.md"))?;
    licenses(&root, &folder)?;

    let archive = out_dir.join(format!("{name}.tar.gz"));
    run(Command::new("tar").arg("-C").arg(&out_dir).args(["--owner=0", "--group=0", "-czf"]).arg(&archive).arg(&name))?;
    println!("{}", folder.display());
    println!("{}", archive.display());
    Ok(())
}

/// `version` of the root crate, from its Cargo.toml.
pub(crate) fn package_version(root: &Path) -> Result<String, String> {
    let manifest =
        std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("cannot read Cargo.toml: {e}"))?;
    let package = manifest.split("[package]").nth(1).ok_or("Cargo.toml has no [package]")?;
    package
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| {
            l.strip_prefix("version")?.trim_start().strip_prefix('=')?.trim().strip_prefix('"')?.strip_suffix('"')
        })
        .map(str::to_string)
        .ok_or_else(|| "Cargo.toml's [package] has no version".to_string())
}

pub(crate) fn mkdir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))
}

pub(crate) fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The shared library as cargo builds it and as the dist ships it: on Linux the file
/// `libnnunet_rt.so.<version>` with the links `libnnunet_rt.so.0` (its soname, set by build.rs)
/// and `libnnunet_rt.so` (for `-lnnunet_rt`); on macOS `libnnunet_rt.<version>.dylib` with
/// `libnnunet_rt.0.dylib` (its install name) and `libnnunet_rt.dylib`; on Windows the DLL and its
/// import library as built.
pub(crate) struct SharedLibrary {
    /// File name in cargo's profile folder.
    pub built: &'static str,
    /// File name in the dist's lib/.
    pub file: String,
    /// Names in lib/ that point at `file`: symbolic links on Unix, copies elsewhere.
    pub links: Vec<String>,
    /// The name a program linked against it records (Linux soname, macOS install name).
    pub soname: Option<String>,
}

/// The static library's file name (MSVC's `.lib` on Windows).
const STATIC_LIBRARY: &str = if cfg!(windows) { "nnunet_rt.lib" } else { "libnnunet_rt.a" };

impl SharedLibrary {
    pub(crate) fn for_target(version: &str) -> SharedLibrary {
        let major = version.split('.').next().unwrap_or("0");
        if cfg!(target_os = "macos") {
            SharedLibrary {
                built: "libnnunet_rt.dylib",
                file: format!("libnnunet_rt.{version}.dylib"),
                links: vec![format!("libnnunet_rt.{major}.dylib"), "libnnunet_rt.dylib".into()],
                soname: Some(format!("@rpath/libnnunet_rt.{major}.dylib")),
            }
        } else if cfg!(windows) {
            SharedLibrary { built: "nnunet_rt.dll", file: "nnunet_rt.dll".into(), links: vec![], soname: None }
        } else {
            SharedLibrary {
                built: "libnnunet_rt.so",
                file: format!("libnnunet_rt.so.{version}"),
                links: vec![format!("libnnunet_rt.so.{major}"), "libnnunet_rt.so".into()],
                soname: Some(format!("libnnunet_rt.so.{major}")),
            }
        }
    }
}

#[cfg(unix)]
fn symlink(target: &str, link: &Path) -> Result<(), String> {
    std::os::unix::fs::symlink(target, link).map_err(|e| format!("cannot link {} to {target}: {e}", link.display()))
}

/// Elsewhere (Windows) a copy of `target` (relative to the link's folder) stands in for the link.
#[cfg(not(unix))]
fn symlink(target: &str, link: &Path) -> Result<(), String> {
    let from = link.parent().ok_or("a link needs a folder")?.join(target);
    copy(&from, link)
}

/// The project's license files (LICENSE-MIT, LICENSE-APACHE), a LICENSE that says which licence
/// covers which shipped file, and ONNX Runtime's from the wheel it came from.
pub(crate) fn licenses(root: &Path, folder: &Path) -> Result<(), String> {
    let mut ours = 0;
    for entry in std::fs::read_dir(root).map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("LICENSE-") || name.starts_with("COPYING") {
            copy(&entry.path(), &folder.join(&name))?;
            ours += 1;
        }
    }
    if ours == 0 {
        return Err(format!("no LICENSE-* file in {}", root.display()));
    }
    write(
        &folder.join("LICENSE"),
            "nnunet-rt is licensed under the MIT license or the Apache License, Version 2.0, at your option\n\
             (SPDX-License-Identifier: MIT OR Apache-2.0): see LICENSE-MIT and LICENSE-APACHE.\n\
             ONNX Runtime (lib/libonnxruntime*) is licensed under the MIT license: see LICENSE-onnxruntime.\n\
             OpenVINO and its plugin for ONNX Runtime (lib/libonnxruntime_providers_openvino_plugin.so, lib/libopenvino*,\n\
             lib/libtbb*, lib/libhwloc*; PyPI onnxruntime-ep-openvino) are Intel's: the plugin under the MIT license,\n\
             OpenVINO under the Apache License 2.0, with third-party notices in third-party-programs-openvino.txt.\n",
    )?;
    let wheels = root.join(".ort/wheels");
    let prefix = format!("onnxruntime-{ORT_VERSION}-");
    let wheel = std::fs::read_dir(&wheels).into_iter().flatten().flatten().map(|e| e.path()).find(|p| {
        p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
    });
    let Some(wheel) = wheel else {
        eprintln!(
            "xtask: warning: no {prefix}*.whl in {}; ONNX Runtime's license files are not included",
            wheels.display()
        );
        return Ok(());
    };
    let script = r#"
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
names = {"onnxruntime/LICENSE": "LICENSE-onnxruntime", "onnxruntime/ThirdPartyNotices.txt": "ThirdPartyNotices-onnxruntime.txt"}
with zipfile.ZipFile(wheel) as z:
    for name, target in names.items():
        if name in z.namelist():
            with open(dest + "/" + target, "wb") as out:
                out.write(z.read(name))
"#;
    run(Command::new(crate::python()).arg("-c").arg(script).arg(&wheel).arg(folder))
}

fn cmake_config(version: &str) -> String {
    let shared = SharedLibrary::for_target(version);
    let (file, soname) = (shared.file, shared.soname.unwrap_or_default());
    format!(
        r#"# CMake package of nnunet-rt {version}: find_package(nnunet_rt) defines
#   nnunet_rt::nnunet_rt         the shared library (ONNX Runtime is found next to it at run time)
#   nnunet_rt::nnunet_rt_static  the static library (the program then finds ONNX Runtime through
#                                NNUNET_RT_ORT_LIB or an explicit path in the load options)
# Both bring the include folder with nnunet_rt.h (C) and nnunet_rt.hpp (header-only C++17).
# Everything is relative to this file: the folder may be moved.

get_filename_component(_nnunet_rt_prefix "${{CMAKE_CURRENT_LIST_DIR}}/../../.." ABSOLUTE)

include(CMakeFindDependencyMacro)
find_dependency(Threads)

if(NOT TARGET nnunet_rt::nnunet_rt)
  add_library(nnunet_rt::nnunet_rt SHARED IMPORTED)
  set_target_properties(nnunet_rt::nnunet_rt PROPERTIES
    IMPORTED_LOCATION "${{_nnunet_rt_prefix}}/lib/{file}"
    # What a program linked against it records (not this path): it then finds the library
    # through its rpath or the loader's path.
    IMPORTED_SONAME "{soname}"
    INTERFACE_INCLUDE_DIRECTORIES "${{_nnunet_rt_prefix}}/include")
endif()

if(NOT TARGET nnunet_rt::nnunet_rt_static)
  add_library(nnunet_rt::nnunet_rt_static STATIC IMPORTED)
  set_target_properties(nnunet_rt::nnunet_rt_static PROPERTIES
    IMPORTED_LOCATION "${{_nnunet_rt_prefix}}/lib/{STATIC_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${{_nnunet_rt_prefix}}/include"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;${{CMAKE_DL_LIBS}};m")
endif()

set(nnunet_rt_VERSION "{version}")
set(nnunet_rt_INCLUDE_DIR "${{_nnunet_rt_prefix}}/include")
set(nnunet_rt_LIBRARY_DIR "${{_nnunet_rt_prefix}}/lib")
unset(_nnunet_rt_prefix)
"#
    )
}

/// Before 1.0 the minor version is the compatibility boundary; from 1.0, the major.
fn cmake_config_version(version: &str) -> String {
    format!(
        r#"# Version check of the nnunet_rt CMake package.
set(PACKAGE_VERSION "{version}")
string(REGEX MATCH "^([0-9]+)\\.([0-9]+)" _nnunet_rt_series "${{PACKAGE_VERSION}}")
set(_nnunet_rt_major "${{CMAKE_MATCH_1}}")
set(_nnunet_rt_minor "${{CMAKE_MATCH_2}}")
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(_nnunet_rt_major STREQUAL "0")
  if(PACKAGE_FIND_VERSION_MAJOR STREQUAL "0" AND PACKAGE_FIND_VERSION_MINOR STREQUAL _nnunet_rt_minor)
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  else()
    set(PACKAGE_VERSION_COMPATIBLE FALSE)
  endif()
elseif(PACKAGE_FIND_VERSION_MAJOR STREQUAL _nnunet_rt_major)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
else()
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
endif()
if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
  set(PACKAGE_VERSION_EXACT TRUE)
endif()
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "8")
  set(PACKAGE_VERSION "${{PACKAGE_VERSION}} (64-bit)")
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
unset(_nnunet_rt_series)
unset(_nnunet_rt_major)
unset(_nnunet_rt_minor)
"#
    )
}

fn pkg_config(version: &str) -> String {
    format!(
        r#"prefix=${{pcfiledir}}/../..
libdir=${{prefix}}/lib
includedir=${{prefix}}/include

Name: nnunet_rt
Description: Run nnU-Net v2 models through ONNX Runtime (C API; ONNX Runtime is loaded from libdir at run time)
Version: {version}
Libs: -L${{libdir}} -lnnunet_rt -Wl,-rpath,${{libdir}}
Libs.private: -lpthread -ldl -lm
Cflags: -I${{includedir}}
"#
    )
}

fn readme(version: &str) -> String {
    format!(
        r#"# nnunet-rt {version}

Runs trained nnU-Net v2 models through ONNX Runtime, from C, C++ or the command line.

```
bin/nnunet-rt                  CLI: nnunet-rt predict -m MODEL_DIR -i CASE_0000.nii.gz -o CASE.nii.gz
include/nnunet_rt.h            C API (every call returns an nnrt_status; see the header's conventions)
include/nnunet_rt.hpp          header-only C++17 layer over the C API (namespace nnrt)
lib/libnnunet_rt.so.{version}   shared library (soname libnnunet_rt.so.0)
lib/libnnunet_rt.so.0, .so     links to it: what programs load, and what -lnnunet_rt finds
lib/libnnunet_rt.a             static library (link also -lpthread -ldl -lm)
lib/libonnxruntime.so*         ONNX Runtime {ORT_VERSION}, loaded at run time from next to libnnunet_rt.so
lib/libonnxruntime_providers_openvino_plugin.so, libopenvino*, libtbb*, libhwloc*
                               OpenVINO (plugin {OPENVINO_PLUGIN_VERSION}), used by the default device `auto`
lib/cmake/nnunet_rt/           CMake package
lib/pkgconfig/nnunet_rt.pc     pkg-config file
doc/                           the project README and the bindings guide
```

The folder is relocatable. ONNX Runtime is not linked: libnnunet_rt.so loads the copy next to
it, so programs need no environment variable. A program linking the static library finds it
through `NNUNET_RT_ORT_LIB`, `nnrt_options_set_ort_library()`, or next to the executable (the
OpenVINO plugin likewise: `NNUNET_RT_OPENVINO_LIB`, `nnrt_options_set_openvino_library()`).
Without the OpenVINO files the default device `auto` uses ONNX Runtime's CPU provider.

## CMake

```cmake
find_package(nnunet_rt {version} REQUIRED)       # -DCMAKE_PREFIX_PATH=/path/to/this/folder
target_link_libraries(app PRIVATE nnunet_rt::nnunet_rt)
```

## pkg-config

```sh
export PKG_CONFIG_PATH=/path/to/this/folder/lib/pkgconfig
cc app.c $(pkg-config --cflags --libs nnunet_rt) -o app
```

## By hand

```sh
cc app.c -I/path/to/this/folder/include -L/path/to/this/folder/lib -lnnunet_rt -Wl,-rpath,/path/to/this/folder/lib
```

License: MIT OR Apache-2.0 (see LICENSE*); ONNX Runtime: MIT (LICENSE-onnxruntime); OpenVINO:
Apache-2.0, its plugin MIT (third-party-programs-openvino.txt). THIRD_PARTY_NOTICES.md lists
every Rust crate compiled into the library, with its licence.
"#
    )
}
