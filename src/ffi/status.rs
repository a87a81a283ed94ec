//! Status codes, the thread-local last error, version queries.

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use crate::error::{Error, ErrorKind};

/// Status code returned by every fallible function. Values are stable and never reused.
pub type nnrt_status = u32;

/// Success.
pub const NNRT_OK: nnrt_status = 0;
/// An argument is out of its documented range.
pub const NNRT_INVALID_ARGUMENT: nnrt_status = 1;
/// A required pointer argument is NULL.
pub const NNRT_NULL_ARGUMENT: nnrt_status = 2;
/// A file could not be read or written.
pub const NNRT_IO: nnrt_status = 3;
/// The input volume is malformed (dims, spacing, direction, NaN voxels, corrupt file).
pub const NNRT_INVALID_IMAGE: nnrt_status = 4;
/// The model folder is incomplete or inconsistent.
pub const NNRT_INVALID_MODEL: nnrt_status = 5;
/// The model uses something this library does not implement.
pub const NNRT_UNSUPPORTED_MODEL: nnrt_status = 6;
/// The input does not fit the model (e.g. channel count).
pub const NNRT_SHAPE_MISMATCH: nnrt_status = 7;
/// The ONNX Runtime library could not be found or loaded.
pub const NNRT_RUNTIME_UNAVAILABLE: nnrt_status = 8;
/// ONNX Runtime failed while creating a session or running the network.
pub const NNRT_RUNTIME_ERROR: nnrt_status = 9;
/// The memory limit would be exceeded, or an allocation failed.
pub const NNRT_OUT_OF_MEMORY: nnrt_status = 10;
/// The progress callback asked to stop.
pub const NNRT_CANCELLED: nnrt_status = 11;
/// The library panicked (a bug); the message has the details.
pub const NNRT_PANIC: nnrt_status = 12;
/// The model is unusable because an earlier call panicked while using it.
pub const NNRT_POISONED: nnrt_status = 13;

/// The C status of an error kind.
pub(crate) fn status_of(kind: ErrorKind) -> nnrt_status {
    match kind {
        ErrorKind::InvalidArgument => NNRT_INVALID_ARGUMENT,
        ErrorKind::Io => NNRT_IO,
        ErrorKind::InvalidImage => NNRT_INVALID_IMAGE,
        ErrorKind::InvalidModel => NNRT_INVALID_MODEL,
        ErrorKind::UnsupportedModel => NNRT_UNSUPPORTED_MODEL,
        ErrorKind::ShapeMismatch => NNRT_SHAPE_MISMATCH,
        ErrorKind::RuntimeUnavailable => NNRT_RUNTIME_UNAVAILABLE,
        ErrorKind::Runtime => NNRT_RUNTIME_ERROR,
        ErrorKind::OutOfMemory => NNRT_OUT_OF_MEMORY,
        ErrorKind::Cancelled => NNRT_CANCELLED,
        ErrorKind::Poisoned => NNRT_POISONED,
        ErrorKind::Panic => NNRT_PANIC,
    }
}

/// The `NNRT_*` name of the status `kind` maps to, e.g. `"NNRT_INVALID_MODEL"` (for bindings
/// that report errors as text: one table, next to the codes).
pub fn status_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidArgument => "NNRT_INVALID_ARGUMENT",
        ErrorKind::Io => "NNRT_IO",
        ErrorKind::InvalidImage => "NNRT_INVALID_IMAGE",
        ErrorKind::InvalidModel => "NNRT_INVALID_MODEL",
        ErrorKind::UnsupportedModel => "NNRT_UNSUPPORTED_MODEL",
        ErrorKind::ShapeMismatch => "NNRT_SHAPE_MISMATCH",
        ErrorKind::RuntimeUnavailable => "NNRT_RUNTIME_UNAVAILABLE",
        ErrorKind::Runtime => "NNRT_RUNTIME_ERROR",
        ErrorKind::OutOfMemory => "NNRT_OUT_OF_MEMORY",
        ErrorKind::Cancelled => "NNRT_CANCELLED",
        ErrorKind::Poisoned => "NNRT_POISONED",
        ErrorKind::Panic => "NNRT_PANIC",
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `err` as this thread's last error and returns its status.
pub(crate) fn fail(err: Error) -> nnrt_status {
    set_last_error(&err.to_string());
    status_of(err.kind())
}

/// Records a message for a status that has no `Error` behind it (NULL arguments, panics).
pub(crate) fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    // Ignored after the thread-local's destruction: there is no one left to read the message.
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// Message of the last call on this thread that failed, or "" before any failure.
///
/// Only a failing call replaces it: successful calls, `_free` functions and accessors leave it
/// as it was, so it can be read after cleaning up. Check a call's status first; the message
/// explains a failure, it does not signal one.
///
/// Ownership: borrowed; valid until the next failing nnunet-rt call on this thread. Never NULL.
#[no_mangle]
pub extern "C" fn nnrt_last_error_message() -> *const c_char {
    // No panic may leave this function: `try_with` fails instead of panicking when the
    // thread-local is already destroyed (a call from a thread-exit destructor), and the slot is
    // never borrowed mutably while this runs (only this thread writes it, and not reentrantly).
    // The pointer stays valid until a failing nnunet-rt call on this same thread overwrites the slot.
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// A static, human-readable name for a status code (unknown codes included). Never NULL.
#[no_mangle]
pub extern "C" fn nnrt_status_str(status: u32) -> *const c_char {
    let text: &'static [u8] = match status {
        NNRT_OK => b"ok\0",
        NNRT_INVALID_ARGUMENT => b"invalid argument\0",
        NNRT_NULL_ARGUMENT => b"null argument\0",
        NNRT_IO => b"input/output error\0",
        NNRT_INVALID_IMAGE => b"invalid image\0",
        NNRT_INVALID_MODEL => b"invalid model\0",
        NNRT_UNSUPPORTED_MODEL => b"unsupported model\0",
        NNRT_SHAPE_MISMATCH => b"shape mismatch\0",
        NNRT_RUNTIME_UNAVAILABLE => b"ONNX Runtime unavailable\0",
        NNRT_RUNTIME_ERROR => b"ONNX Runtime error\0",
        NNRT_OUT_OF_MEMORY => b"out of memory\0",
        NNRT_CANCELLED => b"cancelled\0",
        NNRT_PANIC => b"internal error (panic)\0",
        NNRT_POISONED => b"model poisoned by an earlier panic\0",
        _ => b"unknown status\0",
    };
    text.as_ptr().cast()
}
