//! The zones the slow path answers from: one slot per XDP generation, the live one read from the
//! program's own generation word, so both paths switch on the same write.

use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::fastpath::GenerationWord;
use crate::zone::Catalog;

/// Readers clone the live slot's `Arc` per query: a query sees either the old zones or the new
/// ones, never a mix. With a fast path, a reload puts the new zones in the idle generation's
/// slot ([`stage`](Self::stage)) and the program's flip to that generation serves them on both
/// paths at once; otherwise [`replace`](Self::replace) swaps them in.
#[derive(Clone)]
pub struct SharedCatalog(Arc<Slots>);

struct Slots {
    catalogs: RwLock<[Arc<Catalog>; 2]>,
    /// The XDP program's live generation, once it has one; slot 0 until then.
    word: OnceLock<GenerationWord>,
}

impl std::fmt::Debug for SharedCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCatalog")
            .field("live", &self.live())
            .field("follows_xdp", &self.0.word.get().is_some())
            .finish()
    }
}

impl SharedCatalog {
    pub fn new(catalog: Arc<Catalog>) -> SharedCatalog {
        SharedCatalog(Arc::new(Slots {
            catalogs: RwLock::new([catalog.clone(), catalog]),
            word: OnceLock::new(),
        }))
    }

    fn live(&self) -> usize {
        self.0.word.get().map_or(0, |w| w.live() as usize)
    }

    // A poisoned lock only means a writer panicked between two whole values; each slot is
    // still one of them.
    fn read(&self) -> RwLockReadGuard<'_, [Arc<Catalog>; 2]> {
        self.0.catalogs.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, [Arc<Catalog>; 2]> {
        self.0.catalogs.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> Arc<Catalog> {
        let live = self.live();
        self.read()[live].clone()
    }

    /// Serves `catalog` from now on, in both slots (no generation flips to it: no fast path, or
    /// its install failed). Returns the previous live one, so a large one is freed after the
    /// lock is released rather than while every query waits on it.
    pub fn replace(&self, catalog: Arc<Catalog>) -> Arc<Catalog> {
        let live = self.live();
        let mut slots = self.write();
        let idle = std::mem::replace(&mut slots[live ^ 1], catalog.clone());
        let previous = std::mem::replace(&mut slots[live], catalog);
        drop(slots);
        drop(idle);
        previous
    }

    /// Puts `catalog` in the idle generation's slot, served from the instant the program flips
    /// to that generation (the fast path's next install). Returns what the slot held.
    pub fn stage(&self, catalog: Arc<Catalog>) -> Arc<Catalog> {
        let idle = self.live() ^ 1;
        std::mem::replace(&mut self.write()[idle], catalog)
    }

    /// After a flip to the staged zones: the idle slot (the zones served before) gets the live
    /// ones too, so the old zones are freed once their last query is answered instead of
    /// staying until the next reload (a million names' model held twice). Returns what the
    /// idle slot held, to be freed after the lock is released.
    pub fn settle(&self) -> Arc<Catalog> {
        let live = self.live();
        let mut slots = self.write();
        let current = slots[live].clone();
        std::mem::replace(&mut slots[live ^ 1], current)
    }

    /// From now on the live slot is the program's generation. Both slots must hold what it
    /// answers from: the catalog of its first install, as [`new`](Self::new) or
    /// [`replace`](Self::replace) left them.
    pub fn follow(&self, word: GenerationWord) {
        let _ = self.0.word.set(word);
    }
}
