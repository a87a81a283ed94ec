//! Process-wide queries and settings: versions, what was loaded, where messages go.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use super::boundary::{call, check_not_null};
use super::status::*;
use crate::log::{self, Level};

/// Version of the C ABI described by this header: bumped whenever a signature, struct layout or
/// code value changes. Compare with `nnrt_abi_version()` at run time.
pub const NNRT_ABI_VERSION: u32 = 2;

/// Version of the C ABI the loaded library implements (`NNRT_ABI_VERSION` of its header); compare
/// at run time to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn nnrt_abi_version() -> u32 {
    NNRT_ABI_VERSION
}

/// Static string `"nnunet-rt/<version> ort/<ort crate version> onnxruntime-api/31"`. Never NULL.
#[no_mangle]
pub extern "C" fn nnrt_version() -> *const c_char {
    concat!("nnunet-rt/", env!("CARGO_PKG_VERSION"), " ort/2.0.0-rc.15 onnxruntime-api/31", "\0").as_ptr().cast()
}

thread_local! {
    static RUNTIME_INFO: RefCell<CString> = RefCell::new(CString::default());
}

/// What this process has, as one JSON object: `nnunet_rt_version`, `abi_version`, `features`
/// (compiled in: `cuda`, `io`), `cpu_features` (e.g. `avx512f`, `avx512bf16`, `amx-bf16`),
/// `onnxruntime_version` and `onnxruntime_library` (null when none loads, with
/// `onnxruntime_error` saying why), `execution_providers` (with a device in the environment)
/// and `openvino` (the registered plugin, or null). Loads ONNX Runtime by the usual search if no
/// model has loaded it yet. For what one model runs on, see `nnrt_model_runtime_info`.
///
/// Ownership: `*out` is borrowed; valid until the next `nnrt_runtime_info` call on this thread.
/// Returns `NNRT_OK`, `NNRT_NULL_ARGUMENT`.
#[no_mangle]
pub extern "C" fn nnrt_runtime_info(out: *mut *const c_char) -> nnrt_status {
    call(|| {
        check_not_null!(out);
        let info = crate::backend::runtime::process_info();
        let text = serde_json::to_string(&info).unwrap_or_else(|_| "null".into());
        let text = CString::new(text).unwrap_or_default();
        let pointer = RUNTIME_INFO.with(|slot| {
            *slot.borrow_mut() = text;
            slot.borrow().as_ptr()
        });
        // SAFETY: non-NULL and writable per the contract.
        unsafe { *out = pointer };
        Ok(())
    })
}

/// Step-by-step detail, ONNX Runtime's verbose output included.
pub const NNRT_LOG_VERBOSE: u32 = 0;
/// What was loaded and run, with timings.
pub const NNRT_LOG_INFO: u32 = 1;
/// Something the caller may want to act on (a fallback to another device, a slow path).
pub const NNRT_LOG_WARNING: u32 = 2;
/// A failure.
pub const NNRT_LOG_ERROR: u32 = 3;

/// Log callback: `level` is one of `NNRT_LOG_*`, `message` one line (borrowed for the call).
/// Called from any thread, including ONNX Runtime's own, possibly concurrently; it must not call
/// back into nnunet-rt except `nnrt_set_log_callback`.
pub type nnrt_log_fn = Option<extern "C" fn(level: u32, message: *const c_char, user_data: *mut c_void)>;

/// A C callback with its user data, callable from any thread per the callback's contract.
struct CLogger {
    callback: extern "C" fn(u32, *const c_char, *mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the caller of `nnrt_set_log_callback` promises the callback and its user data may be
// used from any thread (documented); the library only passes the pointer back.
unsafe impl Send for CLogger {}
// SAFETY: as above.
unsafe impl Sync for CLogger {}

impl CLogger {
    fn log(&self, level: Level, message: &str) {
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        (self.callback)(level as u32, text.as_ptr(), self.user_data);
    }
}

/// Sends every message of the library and of ONNX Runtime at `min_level` (`NNRT_LOG_*`) or above
/// to `callback`, for the whole process; NULL restores the default: errors only, on stderr.
/// `user_data` is passed back untouched. Without a callback the library prints nothing but errors.
/// Returns `NNRT_OK`, `NNRT_INVALID_ARGUMENT` (unknown level).
#[no_mangle]
pub extern "C" fn nnrt_set_log_callback(callback: nnrt_log_fn, user_data: *mut c_void, min_level: u32) -> nnrt_status {
    call(|| {
        if min_level > NNRT_LOG_ERROR {
            return Err(crate::Error::invalid_argument(format!(
                "log level {min_level} is unknown (NNRT_LOG_VERBOSE, _INFO, _WARNING or _ERROR)"
            ))
            .into());
        }
        let sink: Option<log::Sink> = callback.map(|callback| {
            let logger = CLogger { callback, user_data };
            Arc::new(move |level: Level, message: &str| logger.log(level, message)) as log::Sink
        });
        log::set_sink(sink, Level::from_code(min_level));
        Ok(())
    })
}
