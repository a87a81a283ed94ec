//! Finding and loading the ONNX Runtime shared library at run time.
//!
//! Order: an explicit path (load option) → `NNUNET_RT_ORT_LIB` → `ORT_DYLIB_PATH` → next to our
//! own shared library or executable → the copy `cargo xtask ort` fetched into this source tree.
//! The library is loaded once per process; later loads reuse it. When nothing works, the error
//! lists every place tried and how to fix it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, ErrorKind, Result};

/// The ONNX Runtime loaded in this process.
#[derive(Debug)]
pub struct Runtime {
    /// Path of the loaded library.
    pub path: PathBuf,
    /// ONNX Runtime's build description.
    pub build_info: String,
    /// The process-wide environment sessions are created in.
    pub environment: ort::environment::Environment,
}

static RUNTIME: Mutex<Option<&'static Runtime>> = Mutex::new(None);

/// Environment variable naming the library explicitly (preferred over `ORT_DYLIB_PATH`).
pub const ENV_ORT_LIB: &str = "NNUNET_RT_ORT_LIB";
/// Where `cargo xtask ort` puts the library in a source checkout.
pub const FETCHED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ort/lib");
/// The command that fetches the runtime, for error messages.
const FIX: &str = "run `cargo xtask ort` in the nnunet-rt source tree, or point NNUNET_RT_ORT_LIB at a libonnxruntime.so (1.31 or newer, e.g. from `pip download onnxruntime==1.31.1`)";

/// The loaded runtime, loading it on first use. `explicit` is the load option's path; once a
/// library is loaded, later calls return it whatever they ask for (one runtime per process).
pub fn runtime(explicit: Option<&Path>) -> Result<&'static Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(runtime) = *slot {
        return Ok(runtime);
    }
    let mut tried = Vec::new();
    if let Some(path) = explicit {
        // An explicit request is not second-guessed: it loads or it is the error.
        let runtime = load(path).map_err(|why| unavailable(&[format!("{} (load option): {why}", path.display())]))?;
        *slot = Some(runtime);
        return Ok(runtime);
    }
    for (path, origin) in candidates() {
        match load(&path) {
            Ok(runtime) => {
                *slot = Some(runtime);
                return Ok(runtime);
            }
            Err(why) => tried.push(format!("{} ({origin}): {why}", path.display())),
        }
    }
    Err(unavailable(&tried))
}

fn unavailable(tried: &[String]) -> Error {
    let list = if tried.is_empty() { "nothing".to_string() } else { tried.join("; ") };
    Error::new(
        ErrorKind::RuntimeUnavailable,
        format!("ONNX Runtime library not found or not loadable; tried {list}. To fix: {FIX}"),
    )
}

fn load(path: &Path) -> std::result::Result<&'static Runtime, String> {
    if !path.is_file() {
        return Err("no such file".into());
    }
    let builder = ort::init_from(path).map_err(|e| e.to_string())?;
    let environment = builder.with_name("nnunet-rt").build().map_err(|e| e.to_string())?;
    let runtime = Runtime { path: path.to_path_buf(), build_info: ort::info().to_string(), environment };
    // One runtime per process for the life of the process; leaking it gives the `'static` borrow.
    Ok(Box::leak(Box::new(runtime)))
}

/// Candidate paths after the explicit one, with where each came from.
fn candidates() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    for var in [ENV_ORT_LIB, "ORT_DYLIB_PATH"] {
        if let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            out.push((PathBuf::from(value), var));
        }
    }
    let mut dirs: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(dir) = own_library_path().and_then(|p| p.parent().map(Path::to_path_buf)) {
        dirs.push((dir, "next to the nnunet-rt library"));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        // A relocatable install keeps libraries in lib/ beside bin/.
        dirs.push((dir.join("../lib"), "the lib folder beside the executable's"));
        dirs.push((dir, "next to the executable"));
    }
    dirs.push((PathBuf::from(FETCHED_DIR), "fetched by cargo xtask ort"));
    for (dir, origin) in dirs {
        let found = library_in(&dir);
        if found.is_empty() {
            out.push((dir.join(library_name()), origin));
        }
        out.extend(found.into_iter().map(|p| (p, origin)));
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|(p, _)| seen.insert(p.clone()));
    out
}

fn library_name() -> String {
    format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// `libonnxruntime.so` and versioned names (`libonnxruntime.so.1.31.1`) in `dir`, plain name first.
fn library_in(dir: &Path) -> Vec<PathBuf> {
    let name = library_name();
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == name || n.starts_with(&format!("{name}.")))
        })
        .collect();
    found.sort_by_key(|p| (p.file_name().map(|n| n.len()), p.clone()));
    found
}

/// Path of the shared object (or executable) this code was linked into.
fn own_library_path() -> Option<PathBuf> {
    let mut info = std::mem::MaybeUninit::<libc::Dl_info>::zeroed();
    let address = own_library_path as *const () as *const libc::c_void;
    // SAFETY: dladdr only reads the process's loader tables and fills `info`; `address` is the
    // address of a function in this object, so it is mapped for the life of the process.
    let found = unsafe { libc::dladdr(address, info.as_mut_ptr()) };
    if found == 0 {
        return None;
    }
    // SAFETY: dladdr returned nonzero, so it initialised `info`.
    let info = unsafe { info.assume_init() };
    if info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader, valid while the object is loaded.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    Some(PathBuf::from(name.to_string_lossy().into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_include_the_environment_and_the_fetched_copy() {
        let list = candidates();
        assert!(list.iter().any(|(p, _)| p.starts_with(FETCHED_DIR)), "{list:?}");
        assert!(own_library_path().is_some());
    }
}
