//! The resolver's counters for the metrics endpoint: answers by how they were found, misses
//! dropped for want of a thread or over the per-zone outbound limit, entries in the cache.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

/// One label, as the slow path's families (`metrics::slow`).
type Label = [(&'static str, &'static str); 1];

/// How an answer was found.
#[derive(Clone, Copy, Debug)]
pub enum Found {
    /// Fresh in the cache.
    Hit,
    /// Fetched from the upstream (or from another thread's fetch of the same key).
    Miss,
    /// Expired, served because the refresh failed (RFC 8767).
    Stale,
    /// Outside the ACL, or RD clear and not cached.
    Refused,
}

impl Found {
    fn label(self) -> Label {
        let value = match self {
            Found::Hit => "hit",
            Found::Miss => "miss",
            Found::Stale => "stale",
            Found::Refused => "refused",
        };
        [("result", value)]
    }
}

/// Cheap to clone: the handles share the counters.
#[derive(Clone, Debug, Default)]
pub struct ResolverStats {
    answers: Family<Label, Counter>,
    dropped: Counter,
    zone_limited: Counter,
    entries: Gauge,
}

impl ResolverStats {
    pub fn answered(&self, found: Found) {
        self.answers.get_or_create(&found.label()).inc();
    }

    pub fn dropped(&self) {
        self.dropped.inc();
    }

    pub fn zone_limited(&self) {
        self.zone_limited.inc();
    }

    pub fn entries(&self, held: usize) {
        self.entries.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rampart_resolver_answers",
            "Answers to names outside the zones, by how they were found: hit (cache), miss \
             (upstream), stale (RFC 8767), refused (ACL, or RD clear and not cached)",
            self.answers.clone(),
        );
        registry.register(
            "rampart_resolver_dropped",
            "Misses dropped because resolver.miss_queue was full",
            self.dropped.clone(),
        );
        registry.register(
            "rampart_resolver_zone_limited",
            "Misses answered SERVFAIL without asking because their zone was over \
             resolver.zone_rate (the per-zone outbound limit)",
            self.zone_limited.clone(),
        );
        registry.register(
            "rampart_resolver_cache_entries",
            "Entries in the resolver's cache (expired ones not yet looked at included)",
            self.entries.clone(),
        );
    }
}
