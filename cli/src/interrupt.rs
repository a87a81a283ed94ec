//! SIGINT and SIGTERM during `predict`: the first one asks the prediction in progress to stop at
//! its next progress report; the case it was on writes nothing (outputs are written only after a
//! prediction completes, each under a temporary name then renamed), cases already finished keep
//! their outputs, and the process exits with 128 + the signal (130, 143). A second signal while
//! the first is being honoured ends the process at once, the usual way out of a stuck program.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

/// The signals received so far; cheap to poll from a progress callback.
pub struct Interrupt {
    pending: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Installs the handlers for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Interrupt> {
        let pending = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for sig in [SIGINT, SIGTERM] {
            // Handlers run in registration order: the shutdown sees the flag of an earlier signal
            // before the second handler sets it for this one.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&pending))?;
            signal_hook::flag::register_usize(sig, Arc::clone(&signal), sig as usize)?;
            signal_hook::flag::register(sig, Arc::clone(&pending))?;
        }
        Ok(Interrupt { pending, signal })
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<i32> {
        if !self.pending.load(Ordering::SeqCst) {
            return None;
        }
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig as i32),
        }
    }

    /// Name of a signal this handles, for messages.
    pub fn name(sig: i32) -> &'static str {
        match sig {
            SIGINT => "SIGINT",
            SIGTERM => "SIGTERM",
            _ => "a signal",
        }
    }
}
