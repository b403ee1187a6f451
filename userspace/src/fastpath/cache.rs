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
    CacheEntry, CacheKey, JUMP_CACHE, MAP_CACHE, MAP_CACHE_ACL, MAP_CACHE_SEED, MAP_JUMPS,
    PROGRAM_CACHE, WhitelistAddr, name_hash,
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

/// `CACHE_SEED`'s word saying whether the program looks in the cache before the zones.
const CACHE_FIRST: u32 = 2;

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
            .set(CACHE_FIRST, u64::from(first), 0)
            .context("setting CACHE_SEED")
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
