//! The C ABI: the only `extern "C"` items of the crate.
//!
//! Conventions (also in the generated header and the README):
//! * Every fallible function returns an `nnrt_status`; `NNRT_OK` is 0. On failure a one-line
//!   message is available from `nnrt_last_error_message()` on the same thread; only failures
//!   replace it (libgit2's rule), so `_free` and accessors never clear it.
//! * Outputs come last; `*out` is set to NULL on entry and written only on success.
//! * Every pointer argument is checked: NULL gives `NNRT_NULL_ARGUMENT` naming the parameter.
//! * Nothing the caller passes is kept: input buffers are borrowed for the call only.
//! * Objects returned through `out` are owned by the caller and freed with their `_free`
//!   function; `_free(NULL)` does nothing; freeing twice is undefined behaviour.
//! * No panic unwinds into C: each function runs inside a boundary that turns a panic into
//!   `NNRT_PANIC`; a model whose prediction panicked is poisoned (`NNRT_POISONED` afterwards).
//! * No Rust enum is read from C: codes are plain integers, validated.

#![allow(non_camel_case_types)]
// These functions are the C ABI: they take raw pointers by design. Every one is checked for NULL
// before use, and the header states what each must point to.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod boundary;
// In the order the header presents them: status and errors, options, volumes, the model and
// prediction, results, metrics, process-wide settings and versions.
mod status;

mod options;

mod volume;

mod model;

mod result;

mod metrics;

mod process;

pub use metrics::*;
pub use model::*;
pub use options::*;
pub use process::*;
pub use result::*;
pub use status::*;
pub use volume::*;

#[cfg(test)]
mod tests;
