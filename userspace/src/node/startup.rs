//! The parts of `Node::start` that take more than a few lines: the fast path, anycast.
use std::sync::{Arc, Mutex, atomic::AtomicBool};
use std::time::Instant;

use anyhow::{Result, bail};
use tracing::info;

use super::log_installed;
use crate::{
    anycast::{
        Anycast,
        announce::Announcer,
        health::{self, FastProbe, ProbeQuestion, Probes, ResolverProbe},
        upstreams::Upstreams,
    },
    compile::CompiledAnswer,
    config::Config,
    cookie::Cookies,
    fastpath::{self, Capacity, FastPath, Sizes},
    limits,
    resolver::Resolver,
    server::SharedCatalog,
};

/// Loads the XDP program sized for `table`, writes the limits and cookie secrets, installs the
/// first generation, lets the program answer from the resolver's cache (resolver mode) and
/// attaches to every interface. Returns it and the generation installed.
/// `room_for`: records to keep free for zones that arrive later (secondary zones). Each step is
/// logged with the time since `started` (the node's start).
pub fn fast_path(
    started: Instant,
    config: &Config,
    table: Vec<CompiledAnswer>,
    cookies: &Cookies,
    room_for: Option<u32>,
    resolver: Option<&Resolver>,
) -> Result<(FastPath, u32)> {
    let (rrl, budget) = (&config.rrl, &config.miss_budget);
    let cache = config.resolver.enabled && config.resolver.xdp_cache_entries > 0;
    let capacity_for = |sizes: Sizes| {
        let capacity = Capacity {
            buckets: rrl.table_size.max(1),
            whitelist: (rrl.whitelist.len() as u32).max(1024),
            cache_entries: config.resolver.xdp_cache_entries,
            ..Capacity::for_sizes(sizes)
        };
        match room_for {
            Some(records) => capacity.with_room_for(records),
            None => capacity,
        }
    };
    let pin_dir = config.xdp.pin_dir.as_path();
    // The program is loaded and verified on a thread of its own from the moment the layout's
    // sizes are known, while the layout builds its index and the table is freed (about a
    // second each at a million names).
    let (prepared, early) = std::thread::scope(|s| -> Result<_> {
        let mut early = None;
        let prepared = fastpath::prepare_sized(&table, |sizes| {
            let capacity = capacity_for(sizes);
            early = Some((capacity, s.spawn(move || FastPath::load(capacity, pin_dir))));
        });
        // Gone before the maps are made and filled: the start's peak is the layout's, not the
        // table's beside it.
        drop(table);
        crate::heap::release_freed_memory();
        info!(elapsed = ?started.elapsed(), "fast path laid out");
        let early = early.map(|(c, loading)| (c, loading.join().expect("loading thread")));
        Ok((prepared?, early))
    })?;
    let capacity = capacity_for(prepared.sizes());
    let mut fp = match early {
        Some((sized, loaded)) if sized == capacity => loaded?,
        early => {
            // The index grew, or another seed was taken: sized again (the first one unpins).
            drop(early);
            info!("the layout's sizes changed while the program loaded: loading it again");
            FastPath::load(capacity, pin_dir)?
        }
    };
    info!(elapsed = ?started.elapsed(), "XDP program loaded, its maps made");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let whitelist: Vec<_> = rrl.whitelist.iter().map(limits::whitelist_key).collect();
    let mut l = limits::to_limits(rrl, budget, cpus)?;
    let (secret, staging) = cookies.xdp_secrets();
    limits::set_cookies(&mut l, secret, staging);
    fp.set_limits(l, &whitelist)?;
    info!(?rrl, ?budget, "rate limits set");
    let installed = fp.install_prepared(prepared)?;
    log_installed(&installed, started);
    if cache && let Some(resolver) = resolver {
        let map = fp.enable_cache(&config.resolver.allow)?;
        // A resolver-only node: every query misses the zones, the cache is looked in first.
        let cache_first = installed.answers == 0;
        map.cache_first(cache_first)?;
        resolver.attach_xdp(map);
        info!(
            entries = config.resolver.xdp_cache_entries,
            cache_first, "resolver cache answered in XDP"
        );
    }
    for iface in &config.xdp.interfaces {
        fp.attach(iface, config.xdp.mode, config.xdp.attach)?;
    }
    Ok((fp, installed.generation))
}

/// What the health probes look at.
pub struct Parts<'a> {
    pub config: &'a Config,
    pub shared: &'a SharedCatalog,
    pub fast: Option<&'a Arc<Mutex<FastPath>>>,
    /// Whether the XDP maps hold the probe's answer (set from the table at start, kept by
    /// reloads).
    pub holds_probe: &'a Arc<AtomicBool>,
    /// Resolver mode: its answering path and upstreams are probed too.
    pub resolver: Option<&'a Arc<Resolver>>,
}

/// Health checking and announcing: the probes over both paths, the state machine's thread.
pub fn anycast(p: Parts, announcer: Announcer) -> Result<(Anycast, ProbeQuestion)> {
    let question = ProbeQuestion::from_config(p.config, p.shared)?;
    let (client, service) = health::frame_addresses(p.config);
    let fast_probe = p.fast.map(|fp| FastProbe {
        fast: fp.clone(),
        holds_probe: p.holds_probe.clone(),
        client,
        server: service,
    });
    let slow_target = health::slow_target(p.config);
    let upstreams = match p.resolver {
        Some(r) => {
            // The probe is sent to a local address, so it comes from that address.
            if !r.allows(slow_target.ip()) {
                bail!(
                    "health: the probe's source {} is not in resolver.allow (allow it, or set \
                     health.probe_address to an allowed local address)",
                    slow_target.ip()
                );
            }
            Some(Arc::new(Upstreams::start(r.config(), &p.config.health)?))
        }
        None => None,
    };
    let probes = Probes::new(
        question.clone(),
        p.shared.clone(),
        slow_target,
        fast_probe,
        upstreams.clone().map(ResolverProbe::new),
        p.config.health.timeout(),
    );
    let anycast = Anycast::start(p.config, announcer, probes)?;
    if let (Some(r), Some(u)) = (p.resolver, upstreams) {
        r.report_health(anycast.health_report(u));
    }
    Ok((anycast, question))
}
