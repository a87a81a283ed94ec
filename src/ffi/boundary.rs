//! The one boundary every exported function goes through: panics stop here, failures become a
//! status plus this thread's last error message, and handles are created, read and freed the
//! same way everywhere.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{fail, nnrt_status, set_last_error, NNRT_NULL_ARGUMENT, NNRT_OK, NNRT_PANIC};
use crate::error::Error;

/// Why an exported call failed: a NULL argument (by parameter name) or an error of the library.
pub(crate) enum Failure {
    Null(&'static str),
    Error(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Failure {
        Failure::Error(err)
    }
}

/// What the body of an exported function returns.
pub(crate) type Outcome<T = ()> = std::result::Result<T, Failure>;

/// Runs the body of an exported function: `Ok` is `NNRT_OK`; a failure or a panic sets this
/// thread's last error message and returns its status. A call that succeeds leaves the last error
/// as it was (only failures replace it), so a caller may log it after any number of later calls.
pub(crate) fn call(body: impl FnOnce() -> Outcome) -> nnrt_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => NNRT_OK,
        Ok(Err(Failure::Null(name))) => {
            set_last_error(&format!("argument `{name}` is NULL"));
            NNRT_NULL_ARGUMENT
        }
        Ok(Err(Failure::Error(err))) => fail(err),
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(&format!("internal error (panic): {text}"));
            NNRT_PANIC
        }
    }
}

/// Fails with the parameter's name when any of the pointers is NULL.
macro_rules! check_not_null {
    ($($name:ident),+ $(,)?) => {
        $(
            if $name.is_null() {
                return Err($crate::ffi::boundary::Failure::Null(stringify!($name)));
            }
        )+
    };
}
pub(crate) use check_not_null;

/// Creates a handle: checks `out`, sets `*out` to NULL, runs `make` and on success stores the
/// boxed value in `*out` (owned by the caller, freed with [`release`]).
pub(crate) fn create<T>(out: *mut *mut T, make: impl FnOnce() -> Outcome<T>) -> nnrt_status {
    call(|| {
        check_not_null!(out);
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { *out = std::ptr::null_mut() };
        let value = make()?;
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(value)) };
        Ok(())
    })
}

/// Frees a handle made by [`create`]; NULL does nothing. Freeing reports nothing, so it never
/// touches the last error unless the drop itself panicked (a bug, recorded as the last error).
pub(crate) fn release<T>(handle: *mut T) {
    if handle.is_null() {
        return;
    }
    call(|| {
        // SAFETY: made by `create`, freed once and not in use, per the caller's contract.
        drop(unsafe { Box::from_raw(handle) });
        Ok(())
    });
}

/// Changes a handle (the parameter `handle_name`): checks it, then runs `change` on it.
pub(crate) fn modify<T>(
    handle: *mut T,
    handle_name: &'static str,
    change: impl FnOnce(&mut T) -> crate::Result<()>,
) -> nnrt_status {
    call(|| {
        if handle.is_null() {
            return Err(Failure::Null(handle_name));
        }
        // SAFETY: non-NULL, made by its `_new`, not used concurrently per the caller's contract.
        change(unsafe { &mut *handle })?;
        Ok(())
    })
}

/// A borrowed UTF-8 string from C.
///
/// # Safety
/// `ptr` must be non-NULL and point to a NUL-terminated string valid for the call.
pub(crate) unsafe fn str_arg<'a>(ptr: *const std::ffi::c_char, name: &str) -> crate::Result<&'a str> {
    // SAFETY: the caller guarantees a valid NUL-terminated string (checked non-NULL before).
    let text = unsafe { std::ffi::CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| Error::invalid_argument(format!("argument `{name}` is not valid UTF-8")))
}

/// The boundary of a read-only query on a handle (a model, a result): checks `handle`, then
/// `out`, runs `query` and writes its value through `out`. A NULL gives `NNRT_NULL_ARGUMENT`
/// naming the parameter; a failed query its own status; `*out` is untouched on failure.
///
/// The caller's contract (documented on each exported function) is that a non-NULL `handle` is a
/// live object of its type and a non-NULL `out` is writable.
pub(crate) fn query<H, T>(
    handle: *const H,
    handle_name: &'static str,
    out: *mut T,
    query: impl FnOnce(&H) -> crate::Result<T>,
) -> nnrt_status {
    call(|| {
        if handle.is_null() {
            return Err(Failure::Null(handle_name));
        }
        check_not_null!(out);
        // SAFETY: non-NULL and, per the caller's contract, a live object of type H.
        let value = query(unsafe { &*handle })?;
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { *out = value };
        Ok(())
    })
}
