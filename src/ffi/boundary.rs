//! The panic boundary and the pointer checks every exported function uses.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{clear_last_error, fail, nnrt_status, set_last_error, NNRT_NULL_ARGUMENT, NNRT_OK, NNRT_PANIC};

/// Runs `body` so that no panic unwinds into C: a panic becomes `NNRT_PANIC` with its message as
/// the last error. `on_panic` runs after a panic (e.g. to poison a model).
pub(crate) fn guard(on_panic: impl FnOnce(), body: impl FnOnce() -> nnrt_status) -> nnrt_status {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(status) => status,
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("internal error (panic): {text}"));
            on_panic();
            NNRT_PANIC
        }
    }
}

/// Returns `NNRT_NULL_ARGUMENT` naming the parameter when a pointer is NULL.
macro_rules! check_not_null {
    ($($name:ident),+ $(,)?) => {
        $(
            if $name.is_null() {
                $crate::ffi::status::set_last_error(concat!("argument `", stringify!($name), "` is NULL"));
                return $crate::ffi::status::NNRT_NULL_ARGUMENT;
            }
        )+
    };
}
pub(crate) use check_not_null;

/// Unwraps a `Result`, turning an error into its status.
macro_rules! try_status {
    ($expr:expr) => {
        match $expr {
            Ok(value) => value,
            Err(err) => return $crate::ffi::status::fail(err),
        }
    };
}
pub(crate) use try_status;

/// A borrowed UTF-8 string from C.
///
/// # Safety
/// `ptr` must be non-NULL and point to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const std::ffi::c_char, name: &str) -> crate::Result<&'a str> {
    // SAFETY: the caller guarantees a valid NUL-terminated string (checked non-NULL before).
    let text = unsafe { std::ffi::CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| {
        crate::Error::new(crate::ErrorKind::InvalidArgument, format!("argument `{name}` is not valid UTF-8"))
    })
}

/// The boundary of a read-only query on a handle (a model, a result): checks `handle`, then
/// `out`, runs `query` and writes its value through `out`. A NULL gives `NNRT_NULL_ARGUMENT`
/// naming the parameter; a failed query its own status; `*out` is untouched on failure.
///
/// The caller's contract (documented on each exported function) is that a non-NULL `handle` is a
/// live object of its type and a non-NULL `out` is writable.
pub(crate) fn query<H, T>(
    handle: *const H,
    handle_name: &str,
    out: *mut T,
    query: impl FnOnce(&H) -> crate::Result<T>,
) -> nnrt_status {
    guard(
        || {},
        || {
            for (null, name) in [(handle.is_null(), handle_name), (out.is_null(), "out")] {
                if null {
                    set_last_error(&format!("argument `{name}` is NULL"));
                    return NNRT_NULL_ARGUMENT;
                }
            }
            // SAFETY: non-NULL and, per the caller's contract, a live object of type H.
            let value = match query(unsafe { &*handle }) {
                Ok(value) => value,
                Err(err) => return fail(err),
            };
            // SAFETY: non-NULL and writable per the caller's contract.
            unsafe { *out = value };
            NNRT_OK
        },
    )
}
