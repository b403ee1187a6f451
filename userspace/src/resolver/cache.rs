//! The resolver's cache: results by name, type and DO bit, with TTLs counted down, negative
//! answers kept for the SOA minimum (RFC 2308), a bound on entries (least recently used goes
//! first) and expired entries kept for serve-stale (RFC 8767).

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record};
use lru::LruCache;

/// Bogus results are kept this long at most (as Unbound's val-bogus-ttl), so a fixed zone
/// validates again soon.
const BOGUS_TTL: u32 = 60;
/// The TTL of a stale answer (RFC 8767 §4: 30 seconds recommended).
pub const STALE_TTL: u32 = 30;

/// What DNSSEC validation made of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Every record proven from the trust anchor: AD may be set.
    Secure,
    /// Unsigned, or not validated.
    Insecure,
    /// Signatures that fail, or missing where the chain says they must be: SERVFAIL unless CD.
    Bogus,
}

/// One resolution's result, as the client is answered.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub rcode: ResponseCode,
    pub answer: Vec<Record>,
    pub authority: Vec<Record>,
    pub security: Security,
}

impl Resolved {
    /// SERVFAIL: the upstream failed.
    pub fn failure() -> Resolved {
        Resolved {
            rcode: ResponseCode::ServFail,
            answer: Vec::new(),
            authority: Vec::new(),
            security: Security::Insecure,
        }
    }

    /// A NOERROR without answers, or an NXDOMAIN.
    fn is_negative(&self) -> bool {
        self.answer.is_empty()
            && matches!(self.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
    }

    /// Caps every TTL as the cache keeps it and gives the entry's lifetime: the smallest TTL
    /// of the answer; for a negative answer the SOA's TTL bounded by its MINIMUM (RFC 2308 §5),
    /// given to the whole authority section. `None`: not cached (failures, no SOA).
    fn bound_ttls(&mut self, bounds: &Bounds) -> Option<u32> {
        let ttl = if self.is_negative() {
            let soa = self.authority.iter().find_map(|r| match r.data() {
                RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
                _ => None,
            })?;
            let ttl = soa.min(bounds.max_negative_ttl);
            for r in &mut self.authority {
                r.set_ttl(ttl);
            }
            ttl
        } else if self.rcode == ResponseCode::NoError {
            for r in &mut self.answer {
                r.set_ttl(r.ttl().min(bounds.max_ttl));
            }
            self.answer.iter().map(Record::ttl).min()?
        } else {
            return None;
        };
        Some(if self.security == Security::Bogus {
            ttl.min(BOGUS_TTL)
        } else {
            ttl
        })
    }

    /// Every record's TTL less `age` seconds (never below 0).
    fn aged(&self, age: u32) -> Resolved {
        self.with_ttl(|ttl| ttl.saturating_sub(age))
    }

    fn with_ttl(&self, f: impl Fn(u32) -> u32) -> Resolved {
        let mut r = self.clone();
        for rec in r.answer.iter_mut().chain(r.authority.iter_mut()) {
            rec.set_ttl(f(rec.ttl()));
        }
        r
    }
}

/// The lookup key: the query name lowercased (wire form), the type, and the DO bit (answers
/// with and without DNSSEC records differ).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub dnssec_ok: bool,
}

/// The cache's limits, from `[resolver]`.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub entries: NonZeroUsize,
    pub max_ttl: u32,
    pub max_negative_ttl: u32,
    /// Seconds past expiry an entry may be served stale; `None`: serve-stale off.
    pub max_stale: Option<u32>,
}

/// What the cache has for a key.
#[derive(Debug)]
pub enum Lookup {
    /// Not expired: TTLs counted down.
    Fresh(Resolved),
    /// Expired but within the stale window: to be served if a refresh fails, TTLs `STALE_TTL`.
    Stale(Resolved),
    Miss,
}

struct Entry {
    resolved: Resolved,
    stored: Instant,
    ttl: u32,
    /// Answers given from it while fresh, and whether it went to the XDP program.
    hits: u32,
    promoted: bool,
}

/// An entry hot enough for the XDP program: its result with the TTLs as stored, when, and its
/// lifetime (seconds).
#[derive(Clone, Debug)]
pub struct Hot {
    pub resolved: Resolved,
    pub stored: Instant,
    pub ttl: u32,
}

/// Every hit hashes its key twice (the miss check, then the answer): foldhash, seeded per
/// process, several times faster than the default SipHash (as the zones' name tables).
type Entries = LruCache<Key, Entry, foldhash::fast::RandomState>;

/// The cache, shared by the slow path's threads.
pub struct Cache {
    entries: Mutex<Entries>,
    bounds: Bounds,
}

impl Cache {
    pub fn new(bounds: Bounds) -> Cache {
        Cache {
            entries: Mutex::new(LruCache::with_hasher(
                bounds.entries,
                foldhash::fast::RandomState::default(),
            )),
            bounds,
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a result received at `now`, if it may be cached. Returns the key of a promoted
    /// entry it evicted, if any (the XDP program must stop answering it).
    pub fn insert(&self, key: Key, mut resolved: Resolved, now: Instant) -> Option<Key> {
        let ttl = resolved.bound_ttls(&self.bounds)?;
        if ttl == 0 {
            return None;
        }
        let entry = Entry {
            resolved,
            stored: now,
            ttl,
            hits: 0,
            promoted: false,
        };
        self.entries()
            .push(key, entry)
            .and_then(|(k, e)| e.promoted.then_some(k))
    }

    /// The entry for `key` at `now`. The age is rounded up to whole seconds, so a TTL given out
    /// is never above what remains.
    pub fn get(&self, key: &Key, now: Instant) -> Lookup {
        let mut entries = self.entries();
        let Some(entry) = entries.get_mut(key) else {
            return Lookup::Miss;
        };
        let elapsed = now.saturating_duration_since(entry.stored);
        let lifetime = Duration::from_secs(entry.ttl.into());
        if elapsed < lifetime {
            entry.hits = entry.hits.saturating_add(1);
            // In nanoseconds, as the XDP program counts (a millisecond rounded down would give
            // out a TTL a fraction of a second above what remains).
            let age = u32::try_from(elapsed.as_nanos().div_ceil(1_000_000_000)).unwrap_or(u32::MAX);
            return Lookup::Fresh(entry.resolved.aged(age));
        }
        match self.bounds.max_stale {
            Some(stale) if elapsed < lifetime + Duration::from_secs(stale.into()) => {
                Lookup::Stale(entry.resolved.with_ttl(|_| STALE_TTL))
            }
            _ => {
                entries.pop(key);
                Lookup::Miss
            }
        }
    }

    /// The entry for `key` if it is fresh at `now`, was answered from `hits` times or more and
    /// was not promoted before (it is marked promoted).
    pub fn promote(&self, key: &Key, hits: u32, now: Instant) -> Option<Hot> {
        let mut entries = self.entries();
        let e = entries.peek_mut(key)?;
        let fresh = now.saturating_duration_since(e.stored) < Duration::from_secs(e.ttl.into());
        if e.promoted || e.hits < hits || !fresh {
            return None;
        }
        e.promoted = true;
        Some(Hot {
            resolved: e.resolved.clone(),
            stored: e.stored,
            ttl: e.ttl,
        })
    }

    /// Every entry may be promoted again (the XDP program's map was emptied).
    pub fn unpromote_all(&self) {
        for (_, e) in self.entries().iter_mut() {
            e.promoted = false;
        }
    }

    /// Whether `key` has an entry that hasn't expired at `now` (without copying it).
    pub fn is_fresh(&self, key: &Key, now: Instant) -> bool {
        self.entries().peek(key).is_some_and(|e| {
            now.saturating_duration_since(e.stored) < Duration::from_secs(e.ttl.into())
        })
    }

    /// Entries held (expired ones not yet looked at included).
    pub fn held(&self) -> usize {
        self.entries().len()
    }
}
