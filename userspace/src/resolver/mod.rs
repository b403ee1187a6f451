//! Resolver mode: names outside the node's zones resolved for allowed clients, through a cache
//! in front of hickory's recursor or forwarder.

mod acl;
mod cache;
mod config;
mod inflight;
mod outbound;
mod pool;
mod stats;
#[cfg(test)]
mod tests;
mod upstream;
mod xdp;

use std::borrow::Cow;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::{Context, Result};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use rampart_common::dns::{FLAG_CD, FLAG_RD};

pub use acl::Acl;
pub use cache::{Bounds, Cache, Hot, Key, Lookup, Resolved, STALE_TTL, Security};
pub use config::{ResolverConfig, ResolverFlags};
pub use pool::Job;
pub use stats::ResolverStats;
pub use upstream::Upstream;
pub use xdp::XdpCache;

use crate::answer::{self, Answer, Outcome, Rr};
use crate::wire::{self, CLASS_IN, Query};
use crate::zone::Catalog;
use inflight::Inflight;
use outbound::Outbound;
use pool::MissPool;
use stats::Found;

/// The daemon's default log filter: info, but for the resolver library's per-query lines (every
/// upstream query at info, every NXDOMAIN at warn).
pub const DEFAULT_LOG: &str =
    "info,hickory_recursor=error,hickory_resolver=error,hickory_proto=error";

/// RA: recursion available.
const FLAG_RA: u16 = 0x0080;
/// AD: authentic data (RFC 4035 §3.2.3).
const FLAG_AD: u16 = 0x0020;
/// Extended DNS Errors (RFC 8914) the resolver sends.
const EDE_STALE: u16 = 3;
const EDE_BOGUS: u16 = 6;
const EDE_PROHIBITED: u16 = 18;

/// The resolver: its upstream, cache and ACL, and the runtime the upstream's I/O runs on.
pub struct Resolver {
    runtime: tokio::runtime::Runtime,
    upstream: Upstream,
    cache: Cache,
    inflight: Inflight,
    misses: MissPool,
    acl: Acl,
    config: ResolverConfig,
    stats: ResolverStats,
    /// The per-zone outbound limit.
    outbound: Outbound,
    /// What peers asking `upstreams.rampart.` (CHAOS TXT) get: set by the anycast health checker.
    health_report: OnceLock<HealthReport>,
    /// The XDP program's share of the cache, once the fast path is loaded (resolver mode with
    /// `--iface`).
    xdp: OnceLock<XdpCache>,
}

/// The health checker's view of the upstreams, as TXT strings for the peers' fleet guard.
pub type HealthReport = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// The CHAOS TXT name peers ask for the node's upstream health (`anycast::fleet`).
pub const HEALTH_REPORT_NAME: &str = "upstreams.rampart.";

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("upstream", &self.upstream.describe())
            .field("acl", &self.acl)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// The resolver the section describes, or `None` when resolver mode is off.
    pub fn from_config(config: &ResolverConfig) -> Result<Option<Resolver>> {
        if !config.enabled {
            return Ok(None);
        }
        config.check()?;
        // Misses block the slow path's threads (see `udp_workers`): the upstream's I/O needs
        // little CPU, one thread drives it.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("resolver")
            .enable_all()
            .build()
            .context("starting the resolver's runtime")?;
        let upstream = {
            let _entered = runtime.enter();
            Upstream::new(config)?
        };
        tracing::info!(
            upstream = upstream.describe(),
            dnssec = config.dnssec,
            allow = ?config.allow,
            cache = config.cache_size,
            "resolver mode"
        );
        let bounds = Bounds {
            entries: NonZeroUsize::new(config.cache_size).context("resolver.cache_size is 0")?,
            max_ttl: config.max_ttl,
            max_negative_ttl: config.max_negative_ttl,
            max_stale: config.serve_stale.then_some(config.max_stale),
        };
        Ok(Some(Resolver {
            runtime,
            upstream,
            cache: Cache::new(bounds),
            inflight: Inflight::default(),
            misses: MissPool::start(config.miss_workers, config.miss_queue)
                .context("starting the resolver's threads")?,
            acl: Acl::new(&config.allow),
            config: config.clone(),
            stats: ResolverStats::default(),
            outbound: Outbound::new(config.zone_rate),
            health_report: OnceLock::new(),
            xdp: OnceLock::new(),
        }))
    }

    /// Let the XDP program answer hot entries from `map` (once; later calls are ignored).
    pub fn attach_xdp(&self, map: crate::fastpath::CacheMap) {
        let _ = (self.xdp).set(XdpCache::new(map, self.config.xdp_promote_hits));
    }

    /// The XDP program answers no cache entry until each is promoted again: after a reload,
    /// whose new zones may hold names the cache has (those are the zones' now).
    pub fn forget_xdp(&self) {
        if let Some(xdp) = self.xdp.get() {
            xdp.clear();
            self.cache.unpromote_all();
        }
    }

    /// The XDP program takes names under none of `catalog`'s apexes' top labels as beyond its
    /// zones: their cache hits skip the zones' lookups. `widen`: before `catalog` goes live
    /// (the program still serves the old zones: their labels stay).
    pub fn xdp_zones(&self, catalog: &Catalog, widen: bool) {
        if let Some(xdp) = self.xdp.get() {
            xdp.zones(catalog, widen);
        }
    }

    /// Every name walks the XDP program's zones before its cache (tests: the order without the
    /// apex filter).
    #[cfg(test)]
    pub fn xdp_zones_off(&self) {
        if let Some(xdp) = self.xdp.get() {
            xdp.zones_off();
        }
    }

    /// Whether the XDP program looks in the cache before the zones: `true` where the zones
    /// give it no answer (a resolver-only node), whose queries all miss them.
    pub fn xdp_cache_first(&self, first: bool) {
        if let Some(xdp) = self.xdp.get() {
            xdp.cache_first(first);
        }
    }

    /// Entries promoted to the XDP program count their hits there from now on.
    fn promote(&self, key: &Key, now: Instant) {
        if let Some(xdp) = self.xdp.get()
            && let Some(hot) = self.cache.promote(key, xdp.hits, now)
        {
            xdp.promote(key, &hot);
        }
    }

    /// Whether answering `packet` may wait for the upstream: a recursive query from an allowed
    /// client for a name outside the zones that the cache has no fresh answer for. Such a
    /// query is answered from [`Resolver::defer`]'s threads.
    pub fn needs_upstream(&self, catalog: &Catalog, packet: &[u8], peer: IpAddr) -> bool {
        let Ok(query) = wire::parse_query(packet, false) else {
            return false;
        };
        query.qclass == CLASS_IN
            && query.flags & FLAG_RD != 0
            && self.acl.allows(peer)
            && answer::select_zone(catalog, &query.question()).is_none()
            && !self.cache.is_fresh(&key(&query), Instant::now())
    }

    /// Runs `job` (which answers a query [`Resolver::needs_upstream`] picked) on a miss thread;
    /// `false` if too many misses wait already.
    pub fn defer(&self, job: Job) -> bool {
        let queued = self.misses.submit(job);
        if !queued {
            self.stats.dropped();
        }
        queued
    }

    /// Whether `peer` may use the resolver.
    pub fn allows(&self, peer: IpAddr) -> bool {
        self.acl.allows(peer)
    }

    /// The section it runs with (the health checker probes its upstreams).
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// Answer peers' `upstreams.rampart.` questions with `report` (once; later calls ignored).
    pub fn report_health(&self, report: HealthReport) {
        let _ = self.health_report.set(report);
    }

    /// The CHAOS TXT answer for `upstreams.rampart.` to an allowed client, if the health checker
    /// reports; `None` leaves CHAOS questions to the identity.
    pub fn chaos_answer(&self, query: &Query, peer: IpAddr) -> Option<Answer<'static>> {
        let report = self.health_report.get()?;
        let name = query.qname_key.to_name();
        if query.qtype != RecordType::TXT
            || !name.to_ascii().eq_ignore_ascii_case(HEALTH_REPORT_NAME)
            || !self.acl.allows(peer)
        {
            return None;
        }
        Some(Answer {
            class: crate::identity::CLASS_CH,
            answer: vec![Rr {
                owner: Cow::Owned(name),
                ttl: 0,
                rdata: Cow::Owned(RData::TXT(TXT::new(report()))),
            }],
            ..Answer::hit()
        })
    }

    /// The cache (tests fill it without an upstream).
    #[cfg(test)]
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The counters, for the metrics endpoint.
    pub fn stats(&self) -> ResolverStats {
        self.stats.clone()
    }

    /// The answer to a class IN query for a name outside the node's zones.
    pub fn answer(&self, query: &Query, peer: IpAddr) -> Answer<'static> {
        if !self.acl.allows(peer) {
            self.stats.answered(Found::Refused);
            return Answer {
                ede: Some(EDE_PROHIBITED),
                ..Answer::error(ResponseCode::Refused)
            };
        }
        let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
        let key = key(query);
        let now = Instant::now();
        let (resolved, found) = match self.cache.get(&key, now) {
            Lookup::Fresh(r) => {
                self.promote(&key, now);
                (r, Found::Hit)
            }
            // RD clear: what the cache has, nothing fetched for it (RFC 1034 §4.3.1).
            _ if query.flags & FLAG_RD == 0 => {
                self.stats.answered(Found::Refused);
                return Answer {
                    ede: Some(EDE_PROHIBITED),
                    ..Answer::error(ResponseCode::Refused)
                };
            }
            cached => {
                let wait = self.config.timeout() + std::time::Duration::from_secs(1);
                let fresh = self.inflight.share(&key, wait, || {
                    let fresh = self.fetch(query, dnssec_ok);
                    let evicted = self
                        .cache
                        .insert(key.clone(), fresh.clone(), Instant::now());
                    if let (Some(old), Some(xdp)) = (evicted, self.xdp.get()) {
                        xdp.remove(&old);
                    }
                    self.stats.entries(self.cache.held());
                    fresh
                });
                match cached {
                    Lookup::Stale(old) if fresh.rcode == ResponseCode::ServFail => {
                        (old, Found::Stale)
                    }
                    _ => (fresh, Found::Miss),
                }
            }
        };
        self.stats.answered(found);
        render(query, resolved, matches!(found, Found::Stale))
    }

    /// Resolves a miss, bounded by the configured timeout.
    /// Over the zone's outbound limit: SERVFAIL without asking (not cached).
    fn fetch(&self, query: &Query, dnssec_ok: bool) -> Resolved {
        if !self.outbound.admit(&query.qname_key) {
            self.stats.zone_limited();
            return Resolved::failure();
        }
        let name = query.qname_key.to_name();
        let resolving = self.upstream.resolve(name, query.qtype, dnssec_ok);
        let resolved = self
            .runtime
            .block_on(async { tokio::time::timeout(self.config.timeout(), resolving).await })
            .unwrap_or_else(|_| Resolved::failure());
        self.outbound.learn(&resolved);
        resolved
    }
}

/// The cache key of a query.
fn key(query: &Query) -> Key {
    Key {
        qname: query.qname_key.as_wire().to_vec(),
        qtype: query.qtype.into(),
        dnssec_ok: query.edns.is_some_and(|e| e.dnssec_ok),
    }
}

/// A resolution as the client gets it: RA set, AD only for validated data the client can see
/// it asked about (DO or AD in the query, RFC 6840 §5.7), CD echoed; bogus data SERVFAIL unless
/// CD (RFC 4035 §4.3); DNSSEC records only for DO queries (RFC 4035 §3.2.1).
fn render(query: &Query, resolved: Resolved, stale: bool) -> Answer<'static> {
    let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
    let checking_disabled = query.flags & FLAG_CD != 0;
    let mut flags = FLAG_RA | (query.flags & FLAG_CD);
    if resolved.security == Security::Bogus && !checking_disabled {
        return Answer {
            ede: Some(EDE_BOGUS),
            recursion_flags: flags,
            ..Answer::error(ResponseCode::ServFail)
        };
    }
    if resolved.security == Security::Secure && (dnssec_ok || query.flags & FLAG_AD != 0) {
        flags |= FLAG_AD;
    }
    let keep = |r: &Record| dnssec_ok || !is_dnssec_type(r.record_type(), query.qtype);
    let rrs = |records: Vec<Record>| -> Vec<Rr<'static>> {
        records
            .into_iter()
            .filter(keep)
            .map(|r| {
                let ttl = r.ttl();
                let (owner, rdata) = (r.name().clone(), r.into_data());
                Rr {
                    owner: Cow::Owned(owner),
                    ttl,
                    rdata: Cow::Owned(rdata),
                }
            })
            .collect()
    };
    let outcome = match resolved.rcode {
        ResponseCode::NXDomain => Outcome::NxDomain,
        ResponseCode::NoError if resolved.answer.is_empty() => Outcome::NoData,
        ResponseCode::NoError => Outcome::Hit,
        _ => Outcome::Error,
    };
    Answer {
        rcode: resolved.rcode,
        authoritative: false,
        outcome,
        answer: rrs(resolved.answer),
        authority: rrs(resolved.authority),
        ede: stale.then_some(EDE_STALE),
        recursion_flags: flags,
        ..Answer::hit()
    }
}

/// RRSIG, NSEC and NSEC3 records, which a query without DO doesn't get unless it asked for
/// that type.
fn is_dnssec_type(rtype: RecordType, qtype: RecordType) -> bool {
    matches!(
        rtype,
        RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
    ) && rtype != qtype
}
