//! The `CACHE` array as the daemon writes it: its slots mapped into the process, sets of
//! `CACHE_WAYS`, each slot written under its sequence word while the program may read it.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering, fence};

use anyhow::{Context, Result, bail};
use aya::maps::MapData;
use rampart_common::{CACHE_WAYS, CacheEntry, CacheKey, cache_sets};

use super::Mapped;

/// Slots of a `CACHE` array for `entries` promoted entries: whole sets, a power of two of them.
pub fn slot_count(entries: u32) -> u32 {
    entries.max(CACHE_WAYS).next_power_of_two()
}

/// The program's mask of set numbers (`CACHE_SEED[1]`) for `slots` slots.
pub fn set_mask(slots: u32) -> u64 {
    u64::from(slots / CACHE_WAYS - 1)
}

/// The mapped slots and what each holds (the program reads the slots; only this writes them).
pub struct CacheSlots {
    base: Mapped<CacheEntry>,
    slots: u32,
    /// Each slot's key and expiry (CLOCK_MONOTONIC ns), `None` when empty.
    held: Vec<Option<(CacheKey, u64)>>,
    index: HashMap<CacheKey, u32>,
    /// Keeps the map alive as long as the mapping (dropped after it: fields drop in order).
    _map: MapData,
}

// SAFETY: the mapping is owned by this value alone (callers hold it behind a Mutex).
unsafe impl Send for CacheSlots {}

impl CacheSlots {
    /// Map `map` (a `BPF_F_MMAPABLE` array of `CacheEntry`, a power of two of sets).
    pub fn new(map: MapData) -> Result<CacheSlots> {
        let info = map.info().context("CACHE map info")?;
        let slots = info.max_entries();
        let size = std::mem::size_of::<CacheEntry>();
        if info.value_size() as usize != size || !slots.is_power_of_two() || slots < CACHE_WAYS {
            bail!(
                "CACHE map: {slots} values of {} bytes, expected a power of two of {size}-byte \
                 values",
                info.value_size()
            );
        }
        let base = Mapped::of(&map, "CACHE", slots)?;
        Ok(CacheSlots {
            base,
            slots,
            held: vec![None; slots as usize],
            index: HashMap::new(),
            _map: map,
        })
    }

    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Put `entry` in for `key`: its own slot if it has one, else an empty way of the emptier of
    /// its two sets, else the way expiring first (an expired one, or the live one with the least
    /// time left). The emptier set, not the first with room: 37,954 names in 65,536 slots
    /// overflow 0.02% of the time so, 0.8% first-fit (a simulation of random hashes).
    pub fn insert(&mut self, key: &CacheKey, entry: &CacheEntry) {
        let slot = match self.index.get(key) {
            Some(&s) => s,
            None => {
                let (a, b) = cache_sets(key.name_hash, set_mask(self.slots));
                let load = |set: u32| {
                    (set..set + CACHE_WAYS)
                        .filter(|&s| self.held[s as usize].is_some())
                        .count()
                };
                let (first, second) = if load(a) <= load(b) { (a, b) } else { (b, a) };
                let slot = (first..first + CACHE_WAYS)
                    .chain(second..second + CACHE_WAYS)
                    .min_by_key(|&s| self.held[s as usize].map_or(0, |(_, expires)| expires))
                    .expect("CACHE_WAYS > 0");
                if let Some((old, _)) = self.held[slot as usize] {
                    self.index.remove(&old);
                }
                self.index.insert(*key, slot);
                slot
            }
        };
        self.held[slot as usize] = Some((*key, entry.expires_ns));
        let mut value = *entry;
        value.name_hash = key.name_hash;
        value.qtype = key.qtype;
        value.dnssec_ok = key.dnssec_ok as u8;
        value.live = 1;
        self.write(slot, &value);
    }

    /// Stop answering `key` (absent already: nothing to do).
    pub fn remove(&mut self, key: &CacheKey) {
        if let Some(slot) = self.index.remove(key) {
            self.held[slot as usize] = None;
            self.write(slot, &CacheEntry::zeroed());
        }
    }

    /// Empty every slot.
    pub fn clear(&mut self) {
        let keys: Vec<CacheKey> = self.index.keys().copied().collect();
        for k in &keys {
            self.remove(k);
        }
    }

    /// The entry held for `key` (tests).
    #[cfg(test)]
    pub fn get(&self, key: &CacheKey) -> Option<CacheEntry> {
        let slot = *self.index.get(key)?;
        // SAFETY: slot < slots, inside the mapping; only this value writes it.
        Some(unsafe { self.base.ptr.add(slot as usize).read() })
    }

    /// Write slot `slot` under its sequence word: odd while the bytes change, then the next
    /// even value, so a reader that saw the same even value before and after read one entry.
    fn write(&mut self, slot: u32, value: &CacheEntry) {
        assert!(slot < self.slots);
        // SAFETY: slot < slots, inside the mapping; `seq` is the entry's first field, 4-aligned
        // (the mapping is page-aligned and entries are 8-byte multiples); the program only
        // reads the slot.
        unsafe {
            let p = self.base.ptr.add(slot as usize);
            let seq = &*(p as *const AtomicU32);
            let odd = seq.load(Ordering::Relaxed) | 1;
            seq.store(odd, Ordering::Relaxed);
            fence(Ordering::Release);
            let skip = std::mem::size_of::<u32>();
            std::ptr::copy_nonoverlapping(
                (value as *const CacheEntry as *const u8).add(skip),
                (p as *mut u8).add(skip),
                std::mem::size_of::<CacheEntry>() - skip,
            );
            seq.store(odd.wrapping_add(1), Ordering::Release);
        }
    }
}
