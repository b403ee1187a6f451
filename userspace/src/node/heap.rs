//! Freed heap kept for reuse while the start or a reload builds the fast path's table.
//!
//! mimalloc hands memory freed for a second back to the kernel, and memory the kernel hands
//! back again is zeroed on first touch: at a million names most of the start's system time
//! (more on a VM, whose host backs each fresh page). While a [`KeepFreed`] lives, freed pages
//! wait for the next step (the compile takes the parse's, the layout the compile's);
//! [`super::release_freed_memory`] still gives everything back at once.
use std::ffi::c_long;
use std::sync::Mutex;

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t, mi_option_use_numa_nodes};

/// `mi_option_purge_delay` of mimalloc v3's `mi_option_t` (include/mimalloc.h), which
/// libmimalloc-sys names no constant for: the one before `use_numa_nodes` (milliseconds a
/// freed page waits before it is purged).
const PURGE_DELAY: mi_option_t = mi_option_use_numa_nodes - 1;

/// An hour: longer than any start; a forced collect still purges what waits.
const KEPT_MS: c_long = 3_600_000;

/// Guards alive, and the delay before the first.
static HELD: Mutex<(usize, c_long)> = Mutex::new((0, 0));

/// Freed pages wait while any guard lives (then the delay is mimalloc's again) or until
/// `release_freed_memory`.
pub struct KeepFreed(());

impl KeepFreed {
    pub fn new() -> KeepFreed {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 == 0 {
            // SAFETY: options are atomics in mimalloc, read and set from any thread.
            held.1 = unsafe { mi_option_get(PURGE_DELAY) };
            unsafe { mi_option_set(PURGE_DELAY, KEPT_MS) };
        }
        held.0 += 1;
        KeepFreed(())
    }
}

impl Drop for KeepFreed {
    fn drop(&mut self) {
        let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
        held.0 -= 1;
        if held.0 == 0 {
            // SAFETY: as in `new`.
            unsafe { mi_option_set(PURGE_DELAY, held.1) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The delay is the long one while a guard lives, the one before once the last is gone.
    #[test]
    fn keep_freed_sets_and_restores_the_purge_delay() {
        // SAFETY: as in `KeepFreed::new`.
        let get = || unsafe { mi_option_get(PURGE_DELAY) };
        let (a, b) = (KeepFreed::new(), KeepFreed::new());
        let before = HELD.lock().unwrap().1;
        assert_eq!(get(), KEPT_MS);
        drop(a);
        assert_eq!(get(), KEPT_MS);
        drop(b);
        // Another test's node may hold one meanwhile.
        assert!([before, KEPT_MS].contains(&get()));
    }
}
