//! The daemon's heap: freed memory handed back, and the fast path's tables built on small pages.

use std::sync::Mutex;

/// Hands freed heap back to the kernel. glibc keeps it otherwise: after a large zone's parse
/// or a table of millions of answers, the daemon would sit on gigabytes it no longer uses.
pub fn release_freed_memory() {
    // SAFETY: mi_collect only walks mimalloc's own heaps (the threads that compiled are gone:
    // their freed pages are abandoned until collected with force).
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// While held, memory the process faults in comes in 4 KiB pages, not transparent huge pages
/// (`PR_SET_THP_DISABLE`, which also overrides mimalloc's `MADV_HUGEPAGE` on its large
/// allocations and a system set to `always`). The compiled table and its layout are written
/// once, mostly in order, and freed within seconds: huge pages buy them little TLB reach, while
/// each one faulted in is 2 MiB zeroed at once, and on a VM whose balloon reports free memory to
/// the host (free page reporting hands back free 2 MiB blocks) a host fault too. At a million
/// names the layout took 2.4 s with them and 1.2 s without (`rampart check --compile`).
/// The zones' model, which the slow path reads at random for as long as it serves, is loaded
/// before and keeps them. The flag is the process's: the first guard sets it (unless it was
/// set already), the last one dropped restores it.
pub struct SmallPages(());

/// Guards held, and whether the flag was set before the first.
static HOLDERS: Mutex<(usize, bool)> = Mutex::new((0, false));

fn thp_disabled() -> bool {
    // SAFETY: PR_GET_THP_DISABLE reads one flag of this process's memory map.
    unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
}

fn set_thp_disabled(on: bool) {
    // SAFETY: PR_SET_THP_DISABLE sets that flag. A kernel without it refuses: huge pages as
    // before, nothing else changes.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(on), 0, 0, 0) };
}

impl SmallPages {
    pub fn hold() -> SmallPages {
        let mut h = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if h.0 == 0 {
            h.1 = thp_disabled();
            if !h.1 {
                set_thp_disabled(true);
            }
        }
        h.0 += 1;
        SmallPages(())
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        let mut h = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        h.0 -= 1;
        if h.0 == 0 && !h.1 {
            set_thp_disabled(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SmallPages, thp_disabled};

    #[test]
    fn small_pages_while_held_and_as_before_after() {
        let before = thp_disabled();
        {
            let outer = SmallPages::hold();
            assert!(thp_disabled());
            let inner = SmallPages::hold();
            drop(outer);
            assert!(thp_disabled(), "still held by the other guard");
            drop(inner);
        }
        assert_eq!(thp_disabled(), before);
    }
}
