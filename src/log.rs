//! Messages for the host's logger: ours and ONNX Runtime's, through one process-wide sink.
//!
//! Without a sink the library stays quiet except for errors, which go to stderr (ONNX Runtime's
//! own default would print its warnings too). A host installs a sink with [`set_sink`] (C:
//! `nnrt_set_log_callback`) and receives every message at or above its level, from whichever
//! thread produced it (ONNX Runtime logs from its own threads).

use std::sync::{Arc, RwLock};

/// How much a message matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Step-by-step detail (ONNX Runtime's verbose output included).
    Verbose = 0,
    /// What was loaded and run, with timings.
    Info = 1,
    /// Something the caller may want to act on (a fallback, a slow path).
    Warning = 2,
    /// A failure.
    Error = 3,
}

impl Level {
    /// The level of a C code (`NNRT_LOG_*`); codes above Error are Error.
    pub fn from_code(code: u32) -> Level {
        match code {
            0 => Level::Verbose,
            1 => Level::Info,
            2 => Level::Warning,
            _ => Level::Error,
        }
    }

    fn of_onnxruntime(level: ort::logging::LogLevel) -> Level {
        match level {
            ort::logging::LogLevel::Verbose => Level::Verbose,
            ort::logging::LogLevel::Info => Level::Info,
            ort::logging::LogLevel::Warning => Level::Warning,
            ort::logging::LogLevel::Error | ort::logging::LogLevel::Fatal => Level::Error,
        }
    }

    fn to_onnxruntime(self) -> ort::logging::LogLevel {
        match self {
            Level::Verbose => ort::logging::LogLevel::Verbose,
            Level::Info => ort::logging::LogLevel::Info,
            Level::Warning => ort::logging::LogLevel::Warning,
            Level::Error => ort::logging::LogLevel::Error,
        }
    }
}

/// A host's logger: receives a level and a one-line message.
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

struct Installed {
    sink: Option<Sink>,
    min: Level,
}

static SINK: RwLock<Installed> = RwLock::new(Installed { sink: None, min: Level::Error });

/// Routes every message at `min` or above to `sink` (`None`: back to errors on stderr), for the
/// whole process. ONNX Runtime's level follows when it is loaded (now or later).
pub fn set_sink(sink: Option<Sink>, min: Level) {
    let min = if sink.is_some() { min } else { Level::Error };
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Installed { sink, min };
    if let Some(runtime) = crate::backend::runtime::loaded() {
        runtime.environment.set_log_level(min.to_onnxruntime());
    }
}

/// The level ONNX Runtime should log at now.
pub(crate) fn onnxruntime_level() -> ort::logging::LogLevel {
    SINK.read().unwrap_or_else(|e| e.into_inner()).min.to_onnxruntime()
}

/// Emits a message; `message` is only formatted when someone will read it.
pub(crate) fn emit(level: Level, message: impl FnOnce() -> String) {
    // The sink runs without the lock held, so it may itself log or install another sink.
    let sink = {
        let installed = SINK.read().unwrap_or_else(|e| e.into_inner());
        if level < installed.min {
            return;
        }
        installed.sink.clone()
    };
    match sink {
        Some(sink) => sink(level, &message()),
        // Not eprintln!: it panics when stderr is closed (a daemon host), and this runs inside
        // ONNX Runtime's logging callback, where a panic would abort the process.
        None => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "nnunet-rt: {}", message());
        }
    }
}

/// ONNX Runtime's logging function for the environment: its messages join ours.
pub(crate) fn onnxruntime_logger() -> ort::logging::LoggerFunction {
    Arc::new(|level, category, _id, location, message| {
        emit(Level::of_onnxruntime(level), || format!("onnxruntime [{category}] {location}: {message}"))
    })
}
