//! The resolver cache's share of the fast path: the `CACHE` map entries are promoted into, its
//! client ACL and hash seed, and the cache program in its `JUMPS` slot.
use std::sync::Mutex;

use anyhow::{Context, Result, anyhow};
use aya::maps::{
    Array, Map, MapData, ProgramArray,
    lpm_trie::{Key as LpmKey, LpmTrie},
};
use ipnet::IpNet;
use rampart_common::{
    CACHE_APEX_BITS, CACHE_APEX_ON, CACHE_APEX_WORDS, CACHE_SEED_FIRST, CacheEntry, CacheKey,
    JUMP_CACHE, MAP_CACHE, MAP_CACHE_ACL, MAP_CACHE_SEED, MAP_JUMPS, PROGRAM_CACHE, WhitelistAddr,
    apex_bit, name_hash,
};

use super::{
    FastPath,
    cache_slots::{CacheSlots, set_mask},
    random_seed,
};

/// The promoted entries' map, shared by the resolver's threads.
pub struct CacheMap {
    map: Mutex<CacheSlots>,
    seed: u64,
    /// `CACHE_SEED`, whose third word is `CACHE_FIRST`.
    seeds: Mutex<Array<MapData, u64>>,
}

impl std::fmt::Debug for CacheMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheMap").finish_non_exhaustive()
    }
}

impl CacheMap {
    /// The key of (lowercased wire name, type, DO).
    pub fn key(&self, qname: &[u8], qtype: u16, dnssec_ok: bool) -> CacheKey {
        CacheKey {
            name_hash: name_hash(self.seed, qname),
            qtype,
            dnssec_ok: dnssec_ok.into(),
            _pad: 0,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, CacheSlots> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Answer `key` from `entry` in XDP, in place of the entry in its set that expires first
    /// when the set is full.
    pub fn insert(&self, key: &CacheKey, entry: &CacheEntry) {
        self.slots().insert(key, entry);
    }

    /// Stop answering `key` from XDP (absent already: nothing to do).
    pub fn remove(&self, key: &CacheKey) {
        self.slots().remove(key);
    }

    /// Stop answering every entry.
    pub fn clear(&self) {
        self.slots().clear();
    }

    /// Look in the cache before the zones (`true`: a node whose zones give the program no
    /// answer, where every query misses them) or after them. Either order answers the same; the
    /// first saves a resolver-only node's cache hits the zones' lookup.
    pub fn cache_first(&self, first: bool) -> Result<()> {
        let mut seeds = self.seeds.lock().unwrap_or_else(|e| e.into_inner());
        seeds
            .set(CACHE_SEED_FIRST, u64::from(first), 0)
            .context("setting CACHE_SEED")
    }

    /// Let the program take a name whose top label is none of `tops` (the words of the node's
    /// apexes' top labels, `rampart_common::top_label_word`) as beyond its zones: the cache is
    /// looked in without the zones' walk. `None`: a root zone, which holds every name (the
    /// filter off). `widen`: add them to the filter (before new zones go live, it must keep the
    /// old ones' too), else write it exactly. Word by word, so every state between holds the
    /// live zones' bits: a bit too many costs a name the zones' lookups, never its answer.
    pub fn apex_filter(&self, tops: Option<&[u64]>, widen: bool) -> Result<()> {
        let mut seeds = self.seeds.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tops) = tops else {
            return seeds.set(CACHE_APEX_ON, 0, 0).context("setting CACHE_SEED");
        };
        let on = seeds.get(&CACHE_APEX_ON, 0).context("reading CACHE_SEED")? != 0;
        if widen && !on {
            // Off, it holds no zone's bits: on now, the live zones' names would skip them.
            return Ok(());
        }
        let mut words = [0u64; CACHE_APEX_WORDS as usize];
        for &top in tops {
            let bit = apex_bit(top);
            words[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        for (i, word) in (CACHE_APEX_BITS..).zip(words) {
            let word = match widen {
                true => word | seeds.get(&i, 0).context("reading CACHE_SEED")?,
                false => word,
            };
            seeds.set(i, word, 0).context("setting CACHE_SEED")?;
        }
        seeds.set(CACHE_APEX_ON, 1, 0).context("setting CACHE_SEED")
    }

    /// The entry held for `key` (tests).
    #[cfg(test)]
    pub fn get(&self, key: &CacheKey) -> Option<CacheEntry> {
        self.slots().get(key)
    }
}

impl FastPath {
    /// Resolver mode: let the program answer from promoted cache entries for clients in
    /// `allow` (the cache program goes into its `JUMPS` slot). Returns the map to promote into.
    pub fn enable_cache(&mut self, allow: &[IpNet]) -> Result<CacheMap> {
        let seed = random_seed()?;
        let map = self
            .ebpf
            .take_map(MAP_CACHE)
            .ok_or_else(|| anyhow!("map {MAP_CACHE} missing"))?;
        let Map::Array(data) = map else {
            return Err(anyhow!("map {MAP_CACHE} is no array"));
        };
        let slots = CacheSlots::new(data)?;
        let seeds = self
            .ebpf
            .take_map(MAP_CACHE_SEED)
            .ok_or_else(|| anyhow!("map {MAP_CACHE_SEED} missing"))?;
        let mut seeds: Array<MapData, u64> = Array::try_from(seeds)?;
        seeds.set(1, set_mask(slots.slots()), 0)?;
        seeds.set(0, seed, 0)?;
        let mut acl: LpmTrie<_, WhitelistAddr, u8> =
            LpmTrie::try_from(self.ebpf.map_mut(MAP_CACHE_ACL).expect("map"))?;
        for net in allow {
            let (len, addr) = crate::limits::whitelist_key(net);
            acl.insert(&LpmKey::new(len, addr), 1, 0)
                .context("resolver.allow: too many prefixes for the XDP program (at most 1024)")?;
        }
        let prog: &aya::programs::Xdp = self
            .ebpf
            .program(PROGRAM_CACHE)
            .ok_or_else(|| anyhow!("program {PROGRAM_CACHE} missing from object"))?
            .try_into()?;
        let fd = prog.fd()?.try_clone()?;
        let mut jumps = ProgramArray::try_from(self.ebpf.map_mut(MAP_JUMPS).expect("map"))?;
        jumps.set(JUMP_CACHE, &fd, 0)?;
        Ok(CacheMap {
            map: Mutex::new(slots),
            seed,
            seeds: Mutex::new(seeds),
        })
    }
}
