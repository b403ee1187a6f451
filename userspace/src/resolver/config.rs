//! `[resolver]`: recursion or forwarding, who may use it, DNSSEC, the cache's bounds and the
//! per-zone outbound limit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use ipnet::IpNet;
use serde::Deserialize;

/// The IANA root servers' IPv4 addresses (a. to m.root-servers.net), the default hints.
const IANA_ROOTS: [[u8; 4]; 13] = [
    [198, 41, 0, 4],
    [170, 247, 170, 2],
    [192, 33, 4, 12],
    [199, 7, 91, 13],
    [192, 203, 230, 10],
    [192, 5, 5, 241],
    [192, 112, 36, 4],
    [198, 97, 190, 53],
    [192, 36, 148, 17],
    [192, 58, 128, 30],
    [193, 0, 14, 129],
    [199, 7, 83, 42],
    [202, 12, 27, 33],
];

/// The section. Resolver mode is on when `enabled` is true; names in the node's zones are still
/// answered authoritatively, the rest are resolved for clients in `allow`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    pub enabled: bool,
    /// Client prefixes that get recursion; everyone else gets REFUSED (an open resolver is an
    /// amplifier).
    pub allow: Vec<IpNet>,
    /// Forward to these resolvers instead of iterating from the root.
    pub forwarders: Vec<SocketAddr>,
    /// Root server addresses to start iteration from; default: the IANA root servers.
    pub root_hints: Vec<IpAddr>,
    /// Validate DNSSEC (AD for validated data, SERVFAIL for bogus unless CD).
    pub dnssec: bool,
    /// A file of DNSKEY records (zone file syntax) trusted as anchors; default: the root KSKs
    /// hickory ships.
    pub trust_anchor: Option<PathBuf>,
    /// Entries (one per name, type and DO bit) the cache holds; the least recently used goes.
    pub cache_size: usize,
    /// TTLs above this are cut to it (seconds).
    pub max_ttl: u32,
    /// Negative answers (RFC 2308) are kept at most this long (seconds).
    pub max_negative_ttl: u32,
    /// Answer expired entries when the upstream fails (RFC 8767).
    pub serve_stale: bool,
    /// How long past its expiry an entry may still be served stale (seconds; RFC 8767 §5
    /// suggests 1 to 3 days).
    pub max_stale: u32,
    /// A resolution that takes longer gets SERVFAIL (or a stale answer).
    pub timeout_ms: u64,
    /// Threads that resolve misses (each blocks while it waits for the upstream): the most
    /// misses resolved at once.
    pub miss_workers: usize,
    /// Misses waiting for a thread at most; more are dropped (the client retries).
    pub miss_queue: usize,
    /// Resolutions sent towards one zone per second at most (the zone a name falls in as the
    /// node has learned it); more get SERVFAIL (Unbound's `ratelimit`). 0: no limit.
    pub zone_rate: u32,
    /// Cache entries the XDP program may answer from (with `--iface`; 0: none): an entry goes
    /// there on its `xdp_promote_hits`-th answer from the cache.
    pub xdp_cache_entries: u32,
    pub xdp_promote_hits: u32,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            enabled: false,
            allow: vec![
                "127.0.0.0/8".parse().expect("literal"),
                "::1/128".parse().expect("literal"),
            ],
            forwarders: Vec::new(),
            root_hints: IANA_ROOTS.iter().map(|a| IpAddr::from(*a)).collect(),
            dnssec: true,
            trust_anchor: None,
            cache_size: 100_000,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            serve_stale: false,
            max_stale: 86_400,
            timeout_ms: 3_000,
            miss_workers: 64,
            miss_queue: 4096,
            zone_rate: 1000,
            xdp_cache_entries: 4096,
            xdp_promote_hits: 2,
        }
    }
}

impl ResolverConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks what serde can't.
    pub fn check(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.forwarders.is_empty() && self.root_hints.is_empty() {
            bail!("resolver: give root_hints or forwarders");
        }
        if self.cache_size == 0
            || self.timeout_ms == 0
            || self.miss_workers == 0
            || self.miss_queue == 0
        {
            bail!(
                "resolver.cache_size, timeout_ms, miss_workers and miss_queue must be at least 1"
            );
        }
        if let Some(path) = &self.trust_anchor
            && !path.is_file()
        {
            bail!("resolver.trust_anchor: {} is not a file", path.display());
        }
        Ok(())
    }
}

/// The `rampart run` flags of the section.
#[derive(clap::Args, Default)]
pub struct ResolverFlags {
    /// Resolve names outside the node's zones for allowed clients (resolver.enabled).
    #[arg(long)]
    resolver: bool,
    /// Client prefix allowed recursion (repeatable; resolver.allow) [default: loopback].
    #[arg(long = "resolver-allow")]
    resolver_allow: Vec<IpNet>,
    /// Forward to this resolver instead of iterating (repeatable; resolver.forwarders).
    #[arg(long = "forwarder")]
    forwarders: Vec<SocketAddr>,
    /// Root server address to iterate from (repeatable; resolver.root_hints) [default: IANA's].
    #[arg(long = "root-hint")]
    root_hints: Vec<IpAddr>,
    /// DNSKEY file trusted as the DNSSEC anchor (resolver.trust_anchor).
    #[arg(long)]
    trust_anchor: Option<PathBuf>,
    /// Don't validate DNSSEC (resolver.dnssec = false).
    #[arg(long)]
    no_dnssec: bool,
    /// Cache entries (resolver.cache_size) [default: 100000].
    #[arg(long)]
    cache_size: Option<usize>,
    /// Serve expired answers when upstreams fail, RFC 8767 (resolver.serve_stale).
    #[arg(long)]
    serve_stale: bool,
    /// Resolutions sent towards one zone per second at most, 0: no limit (resolver.zone_rate)
    /// [default: 1000].
    #[arg(long)]
    zone_rate: Option<u32>,
    /// Cache entries the XDP program answers itself, with --iface (resolver.xdp_cache_entries)
    /// [default: 4096].
    #[arg(long)]
    xdp_cache_entries: Option<u32>,
}

impl ResolverFlags {
    /// Applies the given flags over the file's section.
    pub fn apply(self, c: &mut ResolverConfig) {
        c.enabled |= self.resolver;
        if !self.resolver_allow.is_empty() {
            c.allow = self.resolver_allow;
        }
        if !self.forwarders.is_empty() {
            c.forwarders = self.forwarders;
        }
        if !self.root_hints.is_empty() {
            c.root_hints = self.root_hints;
        }
        if self.trust_anchor.is_some() {
            c.trust_anchor = self.trust_anchor;
        }
        c.dnssec &= !self.no_dnssec;
        if let Some(n) = self.cache_size {
            c.cache_size = n;
        }
        c.serve_stale |= self.serve_stale;
        if let Some(n) = self.zone_rate {
            c.zone_rate = n;
        }
        if let Some(n) = self.xdp_cache_entries {
            c.xdp_cache_entries = n;
        }
    }
}
