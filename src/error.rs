//! The one error type of the crate.
//!
//! Every failure the library can report is a variant of [`Error`]. Each variant belongs to one
//! [`ErrorKind`], and each kind maps to exactly one stable C status code in the FFI layer, so a
//! caller in any language can branch on the kind and show the message.

use std::fmt;
use std::path::Path;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, coarsely: the part of an error a program branches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An argument is out of its documented range (a step size of 0, a fold that does not exist...).
    InvalidArgument,
    /// A file could not be read or written.
    Io,
    /// An input image is malformed: corrupt file, zero-sized dims, bad spacing, NaN voxels...
    InvalidImage,
    /// The model folder is incomplete or inconsistent (missing key, truncated ONNX file...).
    InvalidModel,
    /// The model folder is well formed but uses something this library does not implement.
    UnsupportedModel,
    /// The input does not fit the model (channel count) or two inputs do not fit each other.
    ShapeMismatch,
    /// The ONNX Runtime library could not be found or loaded.
    RuntimeUnavailable,
    /// ONNX Runtime reported an error while creating a session or running the network.
    Runtime,
    /// The work would exceed the configured memory limit, or an allocation failed.
    OutOfMemory,
    /// The caller's progress callback asked to stop.
    Cancelled,
    /// A previous call panicked while using this object; it is no longer usable.
    Poisoned,
    /// A bug: the library panicked. The message carries the panic text.
    Panic,
}

/// An error with its kind and a one-line, human-readable message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message` (one line, no trailing period).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error { kind, message: message.into(), source: None }
    }

    /// Attach the lower-level error that caused this one (kept for `source()`).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The coarse kind, stable across versions.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub(crate) fn invalid_image(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidImage, message)
    }

    pub(crate) fn invalid_model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidModel, message)
    }

    pub(crate) fn unsupported_model(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UnsupportedModel, message)
    }

    pub(crate) fn shape_mismatch(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ShapeMismatch, message)
    }

    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Runtime, message)
    }

    pub(crate) fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled by the progress callback")
    }

    /// An I/O failure on `path`, keeping the OS error as the source.
    pub fn io(action: &str, path: &Path, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{action} {}: {err}", path.display())).with_source(err)
    }

    /// Prefix the message with context, e.g. the file being read.
    #[cfg_attr(not(feature = "io"), allow(dead_code))]
    pub(crate) fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ort::Error> for Error {
    fn from(err: ort::Error) -> Self {
        Error::runtime(format!("ONNX Runtime: {err}"))
    }
}
