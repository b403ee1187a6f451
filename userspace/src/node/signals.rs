//! SIGINT/SIGTERM and SIGHUP as flags the node's main loop reads.
use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use anyhow::Result;

/// Registered before anything else: a SIGHUP while the zones load (a reload hook, logrotate)
/// is a reload once started, never the signal's default (death). SIGINT/SIGTERM while starting
/// still end the process at once, as before the handlers.
pub struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    starting: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> Result<Signals> {
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let starting = Arc::new(AtomicBool::new(true));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_default(sig, starting.clone())?;
            signal_hook::flag::register(sig, term.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
        Ok(Signals {
            term,
            hup,
            starting,
        })
    }

    /// From now on SIGINT/SIGTERM stop the main loop: a clean shutdown.
    pub fn ready(&self) {
        self.starting.store(false, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.term.load(Ordering::Relaxed)
    }

    /// Whether a SIGHUP came since the last call.
    pub fn take_hup(&self) -> bool {
        self.hup.swap(false, Ordering::Relaxed)
    }
}
