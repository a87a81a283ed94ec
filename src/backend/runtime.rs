//! Finding and loading the ONNX Runtime shared library, and its OpenVINO plugin, at run time.
//!
//! ONNX Runtime, in order: an explicit path (load option) → `NNUNET_RT_ORT_LIB` →
//! `ORT_DYLIB_PATH` → next to our own shared library or executable → the copy `cargo xtask ort`
//! fetched into this source tree. The first three name the library explicitly: if the one given
//! does not load, that is the error, never a silent fallback to another copy.
//!
//! The OpenVINO plugin (`libonnxruntime_providers_openvino_plugin.so` with the OpenVINO and TBB
//! libraries beside it, from the PyPI wheel `onnxruntime-ep-openvino`), in order: an explicit path
//! (load option) → `NNUNET_RT_OPENVINO_LIB` → next to our own shared library or executable → next
//! to the loaded ONNX Runtime → the copy `cargo xtask ort` fetched. An explicit path (option or
//! variable) that does not load is an error, never a silent fallback to another copy.
//!
//! Each library is loaded once per process; later loads reuse it. When nothing works, the error
//! lists every place tried and how to fix it.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::AsPointer;

use super::device::{Device, NetworkPrecision, Provider};
use crate::error::{Error, ErrorKind, Result};

/// The ONNX Runtime loaded in this process.
#[derive(Debug)]
pub struct Runtime {
    /// Path of the loaded library.
    pub path: PathBuf,
    /// ONNX Runtime's version (`OrtGetApiBase()->GetVersionString()`).
    pub version: String,
    /// ONNX Runtime's build description.
    pub build_info: String,
    /// The process-wide environment sessions are created in.
    pub environment: ort::environment::Environment,
    openvino: Mutex<Option<&'static OpenVinoPlugin>>,
}

/// The OpenVINO execution-provider plugin registered in this process's environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenVinoPlugin {
    /// Path of `libonnxruntime_providers_openvino_plugin.so`.
    pub path: PathBuf,
    /// The plugin's version as it reports it (e.g. `1.8.1+95d534b.ci.79`).
    pub version: String,
    /// The CPU as OpenVINO names it.
    pub cpu_name: String,
    /// OpenVINO's `OPTIMIZATION_CAPABILITIES` of the CPU (`FP32`, `BF16`, ...).
    pub capabilities: Vec<String>,
}

impl OpenVinoPlugin {
    /// Whether OpenVINO computes bfloat16 natively on this CPU (AVX512_BF16 or AMX).
    pub fn has_bf16(&self) -> bool {
        self.capabilities.iter().any(|c| c == "BF16")
    }
}

/// ONNX Runtime's name of the OpenVINO execution provider (and of its devices).
pub const OPENVINO_EP: &str = "OpenVINOExecutionProvider";
/// Environment variable naming the OpenVINO plugin explicitly.
pub const ENV_OPENVINO_LIB: &str = "NNUNET_RT_OPENVINO_LIB";
/// Where `cargo xtask ort` puts the OpenVINO plugin and its libraries in a source checkout.
pub const FETCHED_OPENVINO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ort/openvino");
const OPENVINO_FIX: &str = "run `cargo xtask ort` in the nnunet-rt source tree, or point NNUNET_RT_OPENVINO_LIB at libonnxruntime_providers_openvino_plugin.so from the PyPI wheel onnxruntime-ep-openvino (its OpenVINO and TBB libraries beside it)";

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
    // An explicit request (the load option, else the first of the variables that is set) is not
    // second-guessed: it loads or it is the error, never a silent fallback to another library.
    let named = explicit.map(|p| (p.to_path_buf(), "load option")).or_else(|| {
        [ENV_ORT_LIB, "ORT_DYLIB_PATH"]
            .into_iter()
            .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()).map(|v| (PathBuf::from(v), var)))
    });
    if let Some((path, origin)) = named {
        let runtime = load(&path).map_err(|why| unavailable(&[format!("{} ({origin}): {why}", path.display())]))?;
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

/// The runtime, if one is loaded already (loads nothing).
pub fn loaded() -> Option<&'static Runtime> {
    *RUNTIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What this process has: the library, its features, the CPU and the runtime loaded (or why none
/// loads). `nnrt_runtime_info()` and `nnunet-rt info --runtime` print it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProcessInfo {
    /// nnunet-rt's version.
    pub nnunet_rt_version: String,
    /// The C ABI version (`NNRT_ABI_VERSION`).
    pub abi_version: u32,
    /// Cargo features compiled in (`cuda`, `io`).
    pub features: Vec<String>,
    /// CPU features the network's speed depends on, as this process detects them.
    pub cpu_features: Vec<String>,
    /// ONNX Runtime's version, when loaded.
    pub onnxruntime_version: Option<String>,
    /// Path of the ONNX Runtime library, when loaded.
    pub onnxruntime_library: Option<PathBuf>,
    /// Why no ONNX Runtime loads, when none does.
    pub onnxruntime_error: Option<String>,
    /// Execution providers with a device in the environment (e.g. `CPUExecutionProvider`,
    /// `OpenVINOExecutionProvider` once its plugin is registered).
    pub execution_providers: Vec<String>,
    /// The OpenVINO plugin, when registered.
    pub openvino: Option<OpenVinoPlugin>,
}

/// The process's [`ProcessInfo`]; loads ONNX Runtime by the usual search if none is loaded yet.
pub fn process_info() -> ProcessInfo {
    let (runtime, error) = match runtime(None) {
        Ok(runtime) => (Some(runtime), None),
        Err(err) => (None, Some(err.to_string())),
    };
    let mut providers: Vec<String> = runtime
        .map(|r| r.environment.devices().filter_map(|d| d.ep().ok().map(str::to_string)).collect())
        .unwrap_or_default();
    providers.dedup();
    ProcessInfo {
        nnunet_rt_version: env!("CARGO_PKG_VERSION").to_string(),
        abi_version: crate::ffi::NNRT_ABI_VERSION,
        features: [cfg!(feature = "cuda").then_some("cuda"), cfg!(feature = "io").then_some("io")]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect(),
        cpu_features: cpu_features(),
        onnxruntime_version: runtime.map(|r| r.version.clone()),
        onnxruntime_library: runtime.map(|r| r.path.clone()),
        onnxruntime_error: error,
        execution_providers: providers,
        openvino: runtime.and_then(|r| *r.openvino.lock().unwrap_or_else(|e| e.into_inner())).cloned(),
    }
}

/// The CPU's vector and matrix extensions that decide the network's speed.
fn cpu_features() -> Vec<String> {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! detect {
            ($($feature:tt),+) => { $( if std::arch::is_x86_feature_detected!($feature) { found.push($feature); } )+ };
        }
        detect!("avx2", "fma", "avx512f", "avx512bw", "avx512vnni", "avx512bf16", "avx512fp16");
        // AMX detection is not stable in std yet; Linux lists it among the CPU's flags.
        #[cfg(target_os = "linux")]
        if let Ok(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo") {
            let flags: Vec<&str> = cpuinfo
                .lines()
                .find(|l| l.starts_with("flags"))
                .map(|l| l.split_whitespace().collect())
                .unwrap_or_default();
            for (flag, name) in [("amx_tile", "amx-tile"), ("amx_bf16", "amx-bf16")] {
                if flags.contains(&flag) {
                    found.push(name);
                }
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! detect {
            ($($feature:tt),+) => { $( if std::arch::is_aarch64_feature_detected!($feature) { found.push($feature); } )+ };
        }
        detect!("neon", "bf16", "sve");
    }
    found.into_iter().map(str::to_string).collect()
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
    let environment = builder
        .with_name("nnunet-rt")
        .with_logger(crate::log::onnxruntime_logger())
        .build()
        .map_err(|e| e.to_string())?;
    environment.set_log_level(crate::log::onnxruntime_level());
    let runtime = Runtime {
        path: path.to_path_buf(),
        version: version_of(path).unwrap_or_else(|| "unknown".into()),
        build_info: ort::info().to_string(),
        environment,
        openvino: Mutex::new(None),
    };
    // One runtime per process for the life of the process; leaking it gives the `'static` borrow.
    Ok(Box::leak(Box::new(runtime)))
}

/// ONNX Runtime's own version string, asked of the library already loaded from `path`.
fn version_of(path: &Path) -> Option<String> {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: RTLD_NOLOAD only returns a handle to a library that is already loaded (ort loaded
    // it from this path just before); it never runs initialisers. The handle is released below.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD) };
    if handle.is_null() {
        return None;
    }
    // SAFETY: `handle` is a live handle; the symbol name is NUL-terminated.
    let symbol = unsafe { libc::dlsym(handle, c"OrtGetApiBase".as_ptr()) };
    let version = (!symbol.is_null()).then(|| {
        // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime release; it returns a
        // pointer to a static table whose `GetVersionString` returns a static NUL-terminated string.
        unsafe {
            let get_api_base: unsafe extern "C" fn() -> *const ort::sys::OrtApiBase = std::mem::transmute(symbol);
            let base = get_api_base();
            CStr::from_ptr(((*base).GetVersionString)()).to_string_lossy().into_owned()
        }
    });
    // SAFETY: balances the dlopen above; the library stays loaded through ort's own handle.
    unsafe { libc::dlclose(handle) };
    version
}

impl Runtime {
    /// The OpenVINO plugin, registered in this runtime's environment on first use. `explicit`
    /// is the load option's path; once a plugin is registered, later calls return it, and an
    /// explicit path to another file is an error (one plugin per process).
    pub fn openvino(&self, explicit: Option<&Path>) -> Result<&'static OpenVinoPlugin> {
        let mut slot = self.openvino.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plugin) = *slot {
            return match explicit {
                Some(path) if !same_file(path, &plugin.path) => Err(Error::new(
                    ErrorKind::RuntimeUnavailable,
                    format!(
                        "the OpenVINO plugin is already loaded from {} in this process; it cannot load another from {}",
                        plugin.path.display(),
                        path.display()
                    ),
                )),
                _ => Ok(plugin),
            };
        }
        let mut candidates = Vec::new();
        if let Some(path) = explicit {
            candidates.push((path.to_path_buf(), "load option", true));
        } else if let Some(value) = std::env::var_os(ENV_OPENVINO_LIB).filter(|v| !v.is_empty()) {
            candidates.push((PathBuf::from(value), ENV_OPENVINO_LIB, true));
        } else {
            let name = openvino_library_name();
            let mut dirs = installed_dirs();
            if let Some(dir) = self.path.parent() {
                dirs.push((dir.to_path_buf(), "next to ONNX Runtime"));
            }
            dirs.push((PathBuf::from(FETCHED_OPENVINO_DIR), "fetched by cargo xtask ort"));
            candidates.extend(dirs.into_iter().map(|(dir, origin)| (dir.join(&name), origin, false)));
        }
        let mut tried = Vec::new();
        for (path, origin, explicit) in candidates {
            match self.register_openvino(&path) {
                Ok(plugin) => {
                    let plugin: &'static OpenVinoPlugin = Box::leak(Box::new(plugin));
                    *slot = Some(plugin);
                    return Ok(plugin);
                }
                Err(why) => {
                    tried.push(format!("{} ({origin}): {why}", path.display()));
                    if explicit {
                        break;
                    }
                }
            }
        }
        Err(Error::new(
            ErrorKind::RuntimeUnavailable,
            format!("OpenVINO plugin not found or not usable; tried {}. To fix: {OPENVINO_FIX}", tried.join("; ")),
        ))
    }

    fn register_openvino(&self, path: &Path) -> std::result::Result<OpenVinoPlugin, String> {
        if !path.is_file() {
            return Err("no such file".into());
        }
        // A registered plugin takes over sessions that name no device (measured: a plain
        // session then ran on OpenVINO at its default bfloat16 precision), so every session this
        // crate creates names its device explicitly (see `backend::ort`).
        self.environment.register_ep_library("nnunet-rt.openvino", path).map_err(|e| e.to_string())?;
        let device = self.openvino_cpu_device().ok_or("the plugin loaded but OpenVINO sees no CPU device")?;
        let metadata = key_values(
            // SAFETY: `device` comes from this environment's device list, which lives as long as it.
            unsafe { (ort::api().EpDevice_EpMetadata)(device.ptr()) },
        );
        let field = |key: &str| metadata.get(key).cloned().unwrap_or_default();
        Ok(OpenVinoPlugin {
            path: path.to_path_buf(),
            version: field("version"),
            cpu_name: field("FULL_DEVICE_NAME"),
            capabilities: field("OPTIMIZATION_CAPABILITIES").split_whitespace().map(str::to_string).collect(),
        })
    }

    /// OpenVINO's CPU device in this environment (not its AUTO meta-device).
    pub(crate) fn openvino_cpu_device(&self) -> Option<ort::device::Device<'_>> {
        self.environment.devices().find(|device| {
            device.ep().is_ok_and(|ep| ep == OPENVINO_EP)
                && device.hardware_device().ty() == ort::memory::DeviceType::CPU
        })
    }

    /// ONNX Runtime's own CPU provider device in this environment.
    pub(crate) fn cpu_device(&self) -> Option<ort::device::Device<'_>> {
        self.environment.devices().find(|device| device.ep().is_ok_and(|ep| ep == "CPUExecutionProvider"))
    }
}

/// What a model's sessions run on and why: the answer to "which runtime, provider, precision and
/// libraries did this load use". Serialised into CASE.json, `nnunet-rt info` and the C ABI.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeInfo {
    /// nnunet-rt's version.
    pub nnunet_rt_version: String,
    /// The device asked for (`auto`, `cpu`, `openvino`, `cuda:N`).
    pub device_requested: String,
    /// The device that runs the network after `auto` is resolved.
    pub device: String,
    /// ONNX Runtime's name of the execution provider every node runs on.
    pub execution_provider: String,
    /// The network arithmetic requested of the provider (`f32`, `bf16`).
    pub network_precision: String,
    /// Threads given to the provider (`None`: its default, one per core).
    pub threads: Option<usize>,
    /// ONNX Runtime's version.
    pub onnxruntime_version: String,
    /// Path of the ONNX Runtime library.
    pub onnxruntime_library: PathBuf,
    /// The OpenVINO plugin, when it runs the network.
    pub openvino: Option<OpenVinoPlugin>,
    /// Why `auto` did not choose OpenVINO, when it did not.
    pub auto_fallback_reason: Option<String>,
}

/// The provider a load resolves to, with what it needs.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The provider.
    pub provider: Provider,
    /// The plugin, for OpenVINO.
    pub openvino: Option<&'static OpenVinoPlugin>,
    /// Why `auto` fell back to ONNX Runtime's CPU provider.
    pub fallback_reason: Option<String>,
}

impl Runtime {
    /// Resolves `device` and `precision` to one provider, or says why they cannot be honoured.
    /// `auto` takes OpenVINO when its plugin loads and sees the CPU, else ONNX Runtime's CPU
    /// provider; bfloat16 is only ever OpenVINO's, on a CPU that computes it natively.
    pub fn resolve(
        &self,
        device: Device,
        precision: NetworkPrecision,
        openvino_library: Option<&Path>,
    ) -> Result<Resolved> {
        let resolved = match device {
            Device::Cpu => Resolved { provider: Provider::Cpu, openvino: None, fallback_reason: None },
            Device::Cuda(id) => Resolved { provider: Provider::Cuda(id), openvino: None, fallback_reason: None },
            Device::OpenVino => Resolved {
                provider: Provider::OpenVino,
                openvino: Some(self.openvino(openvino_library)?),
                fallback_reason: None,
            },
            Device::Auto => match self.openvino(openvino_library) {
                Ok(plugin) => Resolved { provider: Provider::OpenVino, openvino: Some(plugin), fallback_reason: None },
                // An explicit plugin path that does not load is the caller's mistake, not a reason
                // to run somewhere else.
                Err(error)
                    if openvino_library.is_some()
                        || std::env::var_os(ENV_OPENVINO_LIB).is_some_and(|v| !v.is_empty()) =>
                {
                    return Err(error)
                }
                Err(error) if precision == NetworkPrecision::Bf16 => {
                    return Err(Error::new(
                        ErrorKind::RuntimeUnavailable,
                        format!("bf16 network precision needs OpenVINO, which is not available: {}", error.message()),
                    ))
                }
                Err(error) => Resolved {
                    provider: Provider::Cpu,
                    openvino: None,
                    fallback_reason: Some(error.message().to_string()),
                },
            },
        };
        if precision == NetworkPrecision::Bf16 {
            match (resolved.provider, resolved.openvino) {
                (Provider::OpenVino, Some(plugin)) if !plugin.has_bf16() => {
                    return Err(Error::invalid_argument(format!(
                        "bf16 network precision is refused: OpenVINO reports no native bfloat16 arithmetic (AVX512_BF16 or AMX) on this CPU ({}; capabilities {}); use f32",
                        plugin.cpu_name,
                        plugin.capabilities.join(" ")
                    )))
                }
                (Provider::OpenVino, _) => {}
                (other, _) => {
                    return Err(Error::invalid_argument(format!(
                        "bf16 network precision runs only on OpenVINO (device openvino or auto), not on {}",
                        other.ort_name()
                    )))
                }
            }
        }
        Ok(resolved)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// The entries of an ONNX Runtime key/value list (empty for NULL).
fn key_values(pairs: *const ort::sys::OrtKeyValuePairs) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if pairs.is_null() {
        return out;
    }
    let (mut keys, mut values, mut count) = (std::ptr::null(), std::ptr::null(), 0usize);
    // SAFETY: `pairs` is a live list owned by ONNX Runtime; the call fills two arrays of `count`
    // NUL-terminated strings that live as long as the list.
    unsafe { (ort::api().GetKeyValuePairs)(pairs, &mut keys, &mut values, &mut count) };
    for i in 0..count {
        // SAFETY: `i < count`, and both arrays hold `count` valid string pointers (see above).
        let (key, value) = unsafe { (CStr::from_ptr(*keys.add(i)), CStr::from_ptr(*values.add(i))) };
        out.insert(key.to_string_lossy().into_owned(), value.to_string_lossy().into_owned());
    }
    out
}

fn openvino_library_name() -> String {
    format!("{}onnxruntime_providers_openvino_plugin{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

/// Folders of an installation searched for a library after the explicit choices, with where
/// each came from (each library's fetched copy comes after them).
fn installed_dirs() -> Vec<(PathBuf, &'static str)> {
    let mut dirs: Vec<(PathBuf, &'static str)> = Vec::new();
    if let Some(dir) = own_library_path().and_then(|p| p.parent().map(Path::to_path_buf)) {
        dirs.push((dir, "next to the nnunet-rt library"));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf)) {
        // A relocatable install keeps libraries in lib/ beside bin/.
        dirs.push((dir.join("../lib"), "the lib folder beside the executable's"));
        dirs.push((dir, "next to the executable"));
    }
    dirs
}

/// Where to look when nothing names the library, with where each came from.
fn candidates() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let mut dirs = installed_dirs();
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

/// Path of the shared object (or executable) this code was linked into (Linux and macOS:
/// `dladdr`).
#[cfg(unix)]
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

/// Elsewhere (Windows) the library's own folder is not looked up: the executable's folder and
/// the explicit choices remain.
#[cfg(not(unix))]
fn own_library_path() -> Option<PathBuf> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_include_the_fetched_copy() {
        let list = candidates();
        assert!(list.iter().any(|(p, _)| p.starts_with(FETCHED_DIR)), "{list:?}");
        assert!(own_library_path().is_some());
    }
}
