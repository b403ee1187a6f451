//! Health probes, one round every interval: a real UDP query to the slow path's socket, the
//! fast path's program run on a query frame with its live maps (and still attached to every
//! NIC), and the daemon's own state (zones loaded). In resolver mode also the resolver's
//! answering path (`. NS`, RD clear: the cache answers it, or refuses while it isn't cached,
//! and the probe then warms it) and the upstream check's last verdict ([`super::upstreams`]).
//!
//! The guard against fleet-wide withdrawal is in what a probe compares with: each answer must
//! equal the answer the node's *current* zones give for the probe question (rendered by the
//! same `respond::respond` the slow path runs). So a change in the zone data every node shares
//! (the probe name deleted, its record changed, an NXDOMAIN) can't fail a probe: only the
//! node's own machinery can (no answer in time, bytes that differ from the zone, program
//! detached or replaced, the program dropping or aborting, no zones at all). A reload whose zone
//! fails validation keeps the old zone (`Catalog::reload`), so it changes nothing here either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use hickory_proto::rr::{Name, RecordType};
use rampart_common::Variant;
use serde::Serialize;

use super::state::Round;
use super::upstreams::Upstreams;
use crate::compile::CompiledAnswer;
use crate::config::Config;
use crate::fastpath::FastPath;
use crate::fastpath::probe::{XDP_PASS, XDP_TX, query_frame, reply_payload};
use crate::respond::respond;
use crate::server::SharedCatalog;
use crate::wire::Transport;
use crate::zone::NameKey;

/// The question both probes ask.
#[derive(Clone, Debug)]
pub struct ProbeQuestion {
    pub qname: NameKey,
    pub qtype: RecordType,
}

impl ProbeQuestion {
    /// From `health.probe_name` / `probe_type`, the name defaulting to the first zone's apex
    /// (or the first secondary zone's).
    pub fn from_config(config: &Config, catalog: &SharedCatalog) -> Result<ProbeQuestion> {
        let qtype: RecordType = config
            .health
            .probe_type
            .parse()
            .map_err(|_| anyhow!("health.probe_type {:?}", config.health.probe_type))?;
        let qname = match &config.health.probe_name {
            Some(text) => {
                let mut name = Name::from_ascii(text)
                    .map_err(|e| anyhow!("health.probe_name {text:?}: {e}"))?;
                name.set_fqdn(true);
                NameKey::from_name(&name)
            }
            // No zones: a secondary zone's apex before its first transfer, or a resolver alone,
            // asked about the root, which its cache answers after the first probe.
            None => catalog
                .get()
                .zones()
                .first()
                .map(|z| z.origin_key().clone())
                // A secondary zone without its first transfer yet: its apex all the same.
                .or_else(|| {
                    let origin = &config.zones.secondary.first()?.origin;
                    NameKey::parse(origin)
                })
                .unwrap_or_else(|| NameKey::from_name(&Name::root())),
        };
        Ok(ProbeQuestion { qname, qtype })
    }

    /// The probe query: RD clear, EDNS 1232 without DO, like a resolver's.
    pub fn packet(&self, id: u16) -> Vec<u8> {
        let mut q = Vec::with_capacity(12 + self.qname.as_wire().len() + 15);
        for word in [id, 0, 1, 0, 0, 1] {
            q.extend_from_slice(&word.to_be_bytes());
        }
        q.extend_from_slice(self.qname.as_wire());
        q.extend_from_slice(&u16::from(self.qtype).to_be_bytes());
        q.extend_from_slice(&crate::wire::CLASS_IN.to_be_bytes());
        q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    /// Whether `table` (what the fast path was filled with) holds an answer for the probe, so
    /// the program must answer it rather than pass it up: the probe type's entry, or for a data
    /// type without one, the name's shared entry (the program's fallback; the compiler leaves
    /// out the types that entry answers alike).
    pub fn held_by(&self, table: &[CompiledAnswer]) -> bool {
        let entry = |qtype: u16| {
            table.iter().find(|a| {
                *a.qname == *self.qname.as_wire() && a.qtype == qtype && a.variant == Variant::Edns
            })
        };
        let qtype = u16::from(self.qtype);
        match entry(qtype) {
            Some(a) => !a.is_pass_marker(),
            None => {
                rampart_common::is_data_type(qtype)
                    && entry(rampart_common::QTYPE_OTHER).is_some_and(|a| !a.is_pass_marker())
            }
        }
    }
}

/// One probe's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Failed(String),
    /// Failed, but the fleet guard holds: the same failure on every peer (counts as good).
    Guarded(String),
    /// Couldn't tell (e.g. the fast path busy installing a reload).
    Skipped(String),
}

/// One probe's counters, as `rampart anycast status` shows them.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeCounters {
    pub name: &'static str,
    pub ok: u64,
    pub failed: u64,
    pub skipped: u64,
    /// Failures the fleet guard kept from counting (counted in `ok` too).
    pub guarded: u64,
    pub consecutive_failed: u64,
    /// Microseconds the last probe took.
    pub last_us: u64,
    pub last_failure: Option<String>,
}

impl ProbeCounters {
    pub(super) fn record(&mut self, verdict: &Verdict, took: Duration) {
        self.last_us = took.as_micros() as u64;
        match verdict {
            Verdict::Ok => {
                self.ok += 1;
                self.consecutive_failed = 0;
            }
            Verdict::Guarded(why) => {
                self.ok += 1;
                self.guarded += 1;
                self.consecutive_failed = 0;
                self.last_failure = Some(why.clone());
            }
            Verdict::Failed(why) => {
                self.failed += 1;
                self.consecutive_failed += 1;
                self.last_failure = Some(why.clone());
            }
            Verdict::Skipped(_) => self.skipped += 1,
        }
    }
}

/// The fast path as the probes see it.
pub struct FastProbe {
    pub fast: Arc<Mutex<FastPath>>,
    /// Set at each install: whether the maps hold the probe's answer.
    pub holds_probe: Arc<AtomicBool>,
    /// Addresses of the probe frame (the service address as destination).
    pub client: IpAddr,
    pub server: IpAddr,
}

/// Resolver mode's probes: the answering path, and the upstream check's thread.
pub struct ResolverProbe {
    pub upstreams: Arc<Upstreams>,
    /// When the probe last asked with RD set to get `. NS` cached.
    warmed: Option<Instant>,
}

impl ResolverProbe {
    pub fn new(upstreams: Arc<Upstreams>) -> ResolverProbe {
        ResolverProbe {
            upstreams,
            warmed: None,
        }
    }
}

pub struct Probes {
    question: ProbeQuestion,
    catalog: SharedCatalog,
    slow_target: SocketAddr,
    fast: Option<FastProbe>,
    resolver: Option<ResolverProbe>,
    timeout: Duration,
    next_id: u16,
    pub counters: Vec<ProbeCounters>,
}

const SLOW: usize = 0;
const FAST: usize = 1;
const STATE: usize = 2;
const RESOLVER: usize = 3;
const UPSTREAMS: usize = 4;
/// The resolver probe's question when `. NS` isn't cached: warmed at most this often.
const WARM_EVERY: Duration = Duration::from_secs(1);

impl Probes {
    pub fn new(
        question: ProbeQuestion,
        catalog: SharedCatalog,
        slow_target: SocketAddr,
        fast: Option<FastProbe>,
        resolver: Option<ResolverProbe>,
        timeout: Duration,
    ) -> Probes {
        let name = |name| ProbeCounters {
            name,
            ..ProbeCounters::default()
        };
        let mut counters = vec![name("slow-path"), name("fast-path"), name("zones")];
        if resolver.is_some() {
            counters.extend([name("resolver"), name("upstreams")]);
        }
        Probes {
            question,
            catalog,
            slow_target,
            fast,
            resolver,
            timeout,
            next_id: std::process::id() as u16,
            counters,
        }
    }

    /// Runs every probe once and sums them up.
    pub fn run(&mut self) -> Round {
        let mut failures = Vec::new();
        let mut skipped = Vec::new();
        type Check = fn(&mut Probes) -> Verdict;
        let checks: [(usize, Check); 5] = [
            (STATE, Probes::state),
            (SLOW, Probes::slow),
            (FAST, Probes::fast),
            (RESOLVER, Probes::resolver_path),
            (UPSTREAMS, Probes::upstreams),
        ];
        let resolver = self.resolver.is_some();
        for (i, check) in checks {
            // A resolver's probe question outside the zones is the resolver probe's to ask.
            let slow_is_resolvers = i == SLOW && resolver && !self.question_in_zones();
            if (i == FAST && self.fast.is_none())
                || (i >= RESOLVER && !resolver)
                || slow_is_resolvers
            {
                continue;
            }
            let started = Instant::now();
            let verdict = check(self);
            if i != UPSTREAMS {
                self.counters[i].record(&verdict, started.elapsed());
            }
            match verdict {
                Verdict::Ok | Verdict::Guarded(_) => {}
                Verdict::Failed(why) => failures.push(format!("{}: {why}", self.counters[i].name)),
                Verdict::Skipped(why) => skipped.push(why),
            }
        }
        if !failures.is_empty() {
            Round::Failed(failures)
        } else if !skipped.is_empty() {
            Round::Inconclusive(skipped.join("; "))
        } else {
            Round::Healthy
        }
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// The answer the current zones give; also the one before a concurrent reload swapped them.
    fn expected(&self, query: &[u8], before: &Option<Vec<u8>>, got: &[u8]) -> bool {
        before.as_deref() == Some(got)
            || respond(&self.catalog.get(), query, Transport::Udp).as_deref() == Some(got)
    }

    fn question_in_zones(&self) -> bool {
        let q = crate::answer::Question {
            qname: &self.question.qname,
            qtype: self.question.qtype,
            dnssec_ok: false,
        };
        crate::answer::select_zone(&self.catalog.get(), &q).is_some()
    }

    /// The resolver's answering path: `. NS` with RD clear to the slow path's socket, answered
    /// from the cache (NOERROR with RA) or refused while not cached (then asked once with RD set,
    /// not waited for, so the next probes hit). Upstream trouble can't fail it: it never waits
    /// for an upstream.
    fn resolver_path(&mut self) -> Verdict {
        let id = self.id();
        let question = ProbeQuestion {
            qname: NameKey::from_name(&Name::root()),
            qtype: RecordType::NS,
        };
        let query = question.packet(id);
        let answer = match udp_exchange(self.slow_target, &query, self.timeout) {
            Ok(a) => a,
            Err(e) => return Verdict::Failed(format!("{}: {e}", self.slow_target)),
        };
        let (flags, rcode) = match answer.get(2..4) {
            Some(&[hi, lo]) => (u16::from_be_bytes([hi, lo]), lo & 0x0f),
            _ => return Verdict::Failed("short answer".into()),
        };
        const QR: u16 = 0x8000;
        const RA: u16 = 0x0080;
        const REFUSED: u8 = 5;
        match rcode {
            0 | 3 if flags & QR != 0 && flags & RA != 0 => Verdict::Ok,
            REFUSED if flags & QR != 0 => {
                let probe = self.resolver.as_mut().expect("resolver mode");
                if probe.warmed.is_none_or(|t| t.elapsed() >= WARM_EVERY) {
                    probe.warmed = Some(Instant::now());
                    let mut warm = query;
                    warm[2] |= 0x01;
                    let _ = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
                        .or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))
                        .and_then(|s| s.send_to(&warm, self.slow_target));
                }
                Verdict::Ok
            }
            _ => Verdict::Failed(format!(
                "`. NS` from {}: rcode {rcode}, flags {flags:#06x}",
                self.slow_target
            )),
        }
    }

    /// The upstream check thread's last verdict (its counters are its own).
    fn upstreams(&mut self) -> Verdict {
        let Some(probe) = &self.resolver else {
            return Verdict::Ok;
        };
        let (verdict, counters) = probe.upstreams.latest();
        self.counters[UPSTREAMS] = counters;
        verdict
    }

    fn state(&mut self) -> Verdict {
        if self.catalog.get().zone_count() == 0 && self.resolver.is_none() {
            return Verdict::Failed("no zone loaded".into());
        }
        Verdict::Ok
    }

    fn slow(&mut self) -> Verdict {
        let id = self.id();
        let query = self.question.packet(id);
        let before = respond(&self.catalog.get(), &query, Transport::Udp);
        match udp_exchange(self.slow_target, &query, self.timeout) {
            Ok(answer) if self.expected(&query, &before, &answer) => Verdict::Ok,
            Ok(answer) => Verdict::Failed(format!(
                "answer from {} differs from the zone (rcode {})",
                self.slow_target,
                answer.get(3).map_or(0, |b| b & 0xf)
            )),
            Err(e) => Verdict::Failed(format!("{}: {e}", self.slow_target)),
        }
    }

    fn fast(&mut self) -> Verdict {
        let id = self.id();
        let query = self.question.packet(id);
        let before = respond(&self.catalog.get(), &query, Transport::Udp);
        let Some(probe) = &self.fast else {
            return Verdict::Ok;
        };
        let frame = query_frame(probe.client, probe.server, 40_000 + id % 20_000, &query);
        let (detached, run) = {
            let fp = match probe.fast.try_lock() {
                Ok(fp) => fp,
                Err(TryLockError::WouldBlock) => {
                    return Verdict::Skipped("fast path busy installing zones".into());
                }
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
            };
            (fp.detached_ifaces(), fp.test_run_probe(&frame))
        };
        match detached {
            Ok(d) if !d.is_empty() => {
                return Verdict::Failed(format!("XDP program not attached to {}", d.join(", ")));
            }
            Ok(_) => {}
            Err(e) => return Verdict::Failed(format!("reading the program's id: {e:#}")),
        }
        match run {
            Ok((XDP_TX, out)) => match reply_payload(&out) {
                Some(answer) if self.expected(&query, &before, answer) => Verdict::Ok,
                _ => Verdict::Failed("answer differs from the zone".into()),
            },
            Ok((XDP_PASS, _)) if !probe.holds_probe.load(Ordering::Relaxed) => Verdict::Ok,
            Ok((XDP_PASS, _)) => Verdict::Failed("passed a query its maps answer".into()),
            Ok((verdict, _)) => Verdict::Failed(format!("verdict {verdict} for the probe")),
            Err(e) => Verdict::Failed(format!("{e:#}")),
        }
    }
}

/// Sends `query` from a fresh socket and waits for the reply with its ID.
pub fn udp_exchange(
    target: SocketAddr,
    query: &[u8],
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let local: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((local, 0))?;
    socket.connect(target)?;
    socket.send(query)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {} ms", timeout.as_millis()),
            ));
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv(&mut buf) {
            Ok(n) if n >= 2 && buf[..2] == query[..2] => return Ok(buf[..n].to_vec()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Where the slow-path probe goes: `health.probe_address`, else the first listen address with
/// a wildcard replaced by loopback.
pub fn slow_target(config: &Config) -> SocketAddr {
    if let Some(a) = config.health.probe_address {
        return a;
    }
    let mut a = config.server.listen[0];
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        });
    }
    a
}

/// The probe frame's addresses: a documentation client, and the first anycast prefix's address
/// as the destination (the program answers whatever address it is sent to).
pub fn frame_addresses(config: &Config) -> (IpAddr, IpAddr) {
    match config.anycast.prefixes.first().map(|p| p.addr()) {
        Some(IpAddr::V6(s)) => (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xfd).into(),
            s.into(),
        ),
        Some(s) => (Ipv4Addr::new(198, 51, 100, 253).into(), s),
        None => (
            Ipv4Addr::new(198, 51, 100, 253).into(),
            Ipv4Addr::new(192, 0, 2, 53).into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::anycast::announce::tests::in_fresh_netns;
    use crate::fastpath::{AttachMode, Capacity};
    use crate::server::{Server, ServerConfig};
    use crate::zone::Catalog;

    fn ip(args: &str) {
        let ok = Command::new("ip")
            .args(args.split_whitespace())
            .status()
            .unwrap();
        assert!(ok.success(), "ip {args}");
    }

    /// Resolver mode on loopback: the resolver probe's `. NS` is refused while not cached (the
    /// probe warms it, and passes); a forwarder that never answers fails the upstream check,
    /// which without peers the fleet guard holds (good, counted as guarded); a stopped slow path
    /// fails the resolver probe.
    #[test]
    fn resolver_probes_guard_upstream_loss_but_not_a_dead_path() {
        use crate::resolver::{Resolver, ResolverConfig};
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let rc = ResolverConfig {
            enabled: true,
            forwarders: vec![silent.local_addr().unwrap()],
            dnssec: false,
            timeout_ms: 300,
            ..ResolverConfig::default()
        };
        let health = crate::config::HealthConfig {
            upstream_interval_ms: 100,
            upstream_timeout_ms: 100,
            ..Default::default()
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        let catalog = Arc::new(Catalog::load(&[], Some(&dir)).unwrap());
        let server = Server::start_with(
            &["127.0.0.1:0".parse().unwrap()],
            catalog,
            ServerConfig::default().with_resolver(Resolver::from_config(&rc).unwrap()),
        )
        .unwrap();
        let shared = server.shared_catalog();
        let question = ProbeQuestion::from_config(&Config::default(), &shared).unwrap();
        let upstreams = Arc::new(Upstreams::start(&rc, &health).unwrap());
        let mut probes = Probes::new(
            question,
            shared,
            server.udp_addrs()[0],
            None,
            Some(ResolverProbe::new(upstreams)),
            Duration::from_millis(200),
        );
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(probes.run(), Round::Healthy);
        assert_eq!(probes.counters[RESOLVER].ok, 1);
        assert!(
            probes.resolver.as_ref().unwrap().warmed.is_some(),
            "not cached: warmed"
        );
        let up = &probes.counters[UPSTREAMS];
        assert!(up.guarded >= 1 && up.failed == 0, "{up:?}");
        let why = up.last_failure.as_deref().unwrap_or("");
        assert!(
            why.contains("none of 1 forwarders") && why.contains("no health.peers"),
            "{why}"
        );

        server.stop();
        match probes.run() {
            Round::Failed(why) => {
                assert!(
                    why.iter().any(|w| w.starts_with("slow-path: 127.0.0.1:")),
                    "{why:?}"
                );
                assert!(
                    why.iter().any(|w| w.starts_with("resolver: 127.0.0.1:")),
                    "{why:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        drop(silent);
    }

    /// The real machinery in a fresh namespace: healthy, then the program detached (as
    /// `rampart detach` does it), then the slow path stopped; a zone edit that removes the probe
    /// name fails nothing.
    #[test]
    fn probes_see_the_machinery_fail_but_not_zone_changes() {
        in_fresh_netns(|| {
            ip("link set lo up");
            ip("link add v0 type veth peer name v1");
            ip("link set v0 up");
            ip("link set v1 up");
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
            let catalog = Arc::new(Catalog::load(&[], Some(&dir)).unwrap());
            let table = crate::compile::compile(&catalog);
            let mut fp = FastPath::load_unpinned(Capacity::for_table(&table).unwrap()).unwrap();
            fp.install(&table).unwrap();
            fp.attach(
                "v0",
                AttachMode::Generic,
                crate::fastpath::Sharing::Exclusive,
            )
            .unwrap();
            let server = Server::start_with(
                &["127.0.0.1:0".parse().unwrap()],
                catalog,
                ServerConfig::default(),
            )
            .unwrap();
            let shared = server.shared_catalog();
            let mut config = Config::default();
            config.health.probe_name = Some("www.example.com".into());
            config.health.probe_type = "A".into();
            let question = ProbeQuestion::from_config(&config, &shared).unwrap();
            assert!(question.held_by(&table));
            let fast = Arc::new(Mutex::new(fp));
            let (client, service) = frame_addresses(&config);
            let mut probes = Probes::new(
                question,
                shared.clone(),
                server.udp_addrs()[0],
                Some(FastProbe {
                    fast: fast.clone(),
                    holds_probe: Arc::new(AtomicBool::new(true)),
                    client,
                    server: service,
                }),
                None,
                Duration::from_millis(200),
            );
            assert_eq!(probes.run(), Round::Healthy);
            assert_eq!(probes.counters[FAST].ok, 1);

            // Shared data changes: a reload (both paths switched under the fast path's lock, as
            // `Node::reload` does) removes the probe name. Both paths now answer NXDOMAIN, which
            // is what the zone says: healthy.
            let mut text = std::fs::read_to_string(dir.join("example.com.zone")).unwrap();
            text = text
                .lines()
                .filter(|l| !l.starts_with("www"))
                .collect::<Vec<_>>()
                .join("\n");
            let tmp = tempfile::tempdir().unwrap();
            std::fs::write(tmp.path().join("example.com.zone"), text).unwrap();
            let edited = Arc::new(Catalog::load(&[], Some(tmp.path())).unwrap());
            let table = crate::compile::compile(&edited);
            {
                let mut fp = fast.lock().unwrap();
                shared.replace(edited);
                fp.install(&table).unwrap();
            }
            assert_eq!(
                probes.run(),
                Round::Healthy,
                "a zone edit is not a node failure"
            );

            // The fast path busy (a reload installing): inconclusive, not failed.
            {
                let _busy = fast.lock().unwrap();
                assert!(matches!(probes.run(), Round::Inconclusive(_)));
            }

            crate::fastpath::detach_iface("v0").unwrap();
            match probes.run() {
                Round::Failed(why) => {
                    assert_eq!(why, ["fast-path: XDP program not attached to v0"])
                }
                other => panic!("{other:?}"),
            }

            let started = Instant::now();
            server.stop();
            match probes.run() {
                Round::Failed(why) => {
                    assert_eq!(why.len(), 2, "{why:?}");
                    assert!(why[0].starts_with("slow-path: 127.0.0.1:"), "{why:?}");
                }
                other => panic!("{other:?}"),
            }
            assert!(started.elapsed() < Duration::from_secs(2));
            assert_eq!(probes.counters[SLOW].failed, 1);
        });
    }
}
