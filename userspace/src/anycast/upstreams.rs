//! Resolver mode's upstream check, on a thread of its own every `health.upstream_interval_ms`:
//! `. NS` to the root hints (RD clear) or the forwarders (RD set), the last one that answered
//! first and all the others at once only when it stays silent, so a healthy node sends one
//! query per interval. When none answers, the peers decide (the fleet guard, [`super::fleet`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::Sender;
use hickory_proto::rr::{Name, RecordType};

use super::fleet::{self, Report};
use super::health::{ProbeCounters, ProbeQuestion, Verdict};
use crate::config::HealthConfig;
use crate::resolver::ResolverConfig;
use crate::zone::NameKey;

/// What the check thread publishes.
struct Shared {
    verdict: Verdict,
    counters: ProbeCounters,
    /// When the last upstream answer arrived.
    last_ok: Option<Instant>,
    /// When the first failed check of the current failure ended: its query may have left
    /// before the outage began, so a peer's answer counts as later only after its wait.
    failing_since: Option<Instant>,
    last_check_ok: bool,
}

/// The running check; the thread ends when this is dropped.
pub struct Upstreams {
    shared: Arc<Mutex<Shared>>,
    _stop: Sender<()>,
}

impl Upstreams {
    pub fn start(resolver: &ResolverConfig, health: &HealthConfig) -> Result<Upstreams> {
        let shared = Arc::new(Mutex::new(Shared {
            verdict: Verdict::Skipped("no upstream check yet".into()),
            counters: ProbeCounters {
                name: "upstreams",
                ..ProbeCounters::default()
            },
            last_ok: None,
            failing_since: None,
            last_check_ok: false,
        }));
        let mut check = Check::new(resolver, health.upstream_timeout_ms);
        let peers = health.peers.clone();
        let peer_timeout = health.timeout();
        let interval = Duration::from_millis(health.upstream_interval_ms);
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let out = shared.clone();
        std::thread::Builder::new()
            .name("anycast-upstreams".into())
            .spawn(move || {
                loop {
                    let started = Instant::now();
                    let result = check.run();
                    let failing_for = {
                        let mut s = lock(&out);
                        s.last_check_ok = result.is_ok();
                        if result.is_ok() {
                            s.last_ok = Some(Instant::now());
                            s.failing_since = None;
                            Duration::ZERO
                        } else {
                            s.failing_since.get_or_insert_with(Instant::now).elapsed()
                        }
                    };
                    let window = (started.elapsed(), failing_for);
                    let verdict = match result {
                        Ok(()) => Verdict::Ok,
                        Err(why) => guard(why, window, &peers, peer_timeout, &mut check.id),
                    };
                    {
                        let mut s = lock(&out);
                        s.counters.record(&verdict, started.elapsed());
                        if std::mem::discriminant(&s.verdict) != std::mem::discriminant(&verdict) {
                            match &verdict {
                                Verdict::Ok => tracing::info!("anycast: upstreams answer"),
                                Verdict::Failed(why) | Verdict::Guarded(why) => {
                                    tracing::warn!("anycast: upstreams: {why}")
                                }
                                Verdict::Skipped(_) => {}
                            }
                        }
                        s.verdict = verdict;
                    }
                    if let Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) =
                        stop_rx.recv_timeout(interval.saturating_sub(started.elapsed()))
                    {
                        break;
                    }
                }
            })?;
        Ok(Upstreams {
            shared,
            _stop: stop_tx,
        })
    }

    /// The last check's verdict and the counters.
    pub fn latest(&self) -> (Verdict, ProbeCounters) {
        let s = lock(&self.shared);
        (s.verdict.clone(), s.counters.clone())
    }

    /// This node's report to its peers, with its anycast state.
    pub fn report(&self, state: &str) -> Report {
        let s = lock(&self.shared);
        Report {
            upstreams_ok: s.last_check_ok,
            last_ok_ago: s.last_ok.map(|t| t.elapsed()),
            state: state.to_owned(),
        }
    }
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// No upstream answered: a failure only if a peer shows it is this node's own (`window`: see
/// [`Report::shows_failure_is_local`]).
fn guard(
    why: String,
    window: (Duration, Duration),
    peers: &[SocketAddr],
    timeout: Duration,
    id: &mut u16,
) -> Verdict {
    if peers.is_empty() {
        return Verdict::Guarded(format!(
            "{why}; no health.peers to compare with: kept announced"
        ));
    }
    let mut silent = Vec::new();
    for &peer in peers {
        *id = id.wrapping_add(1);
        match fleet::ask(peer, *id, timeout) {
            Ok(r) if r.shows_failure_is_local(window) => {
                return Verdict::Failed(format!(
                    "{why}; peer {peer} reaches its upstreams and is announced"
                ));
            }
            Ok(r) => tracing::debug!(%peer, ?r, ?window, "peer's upstream report"),
            Err(e) => silent.push(e),
        }
    }
    let silent = if silent.is_empty() {
        String::new()
    } else {
        format!(" (no report from {})", silent.join(", "))
    };
    Verdict::Guarded(format!(
        "{why}; no peer reaches its upstreams either{silent}: fleet guard, kept announced"
    ))
}

/// One check's targets and state.
struct Check {
    targets: Vec<SocketAddr>,
    /// Forwarders get RD set.
    recursion: bool,
    /// The last target that answered, tried alone first.
    preferred: usize,
    timeout: Duration,
    id: u16,
    /// Targets the last check could send to (none: no route, say so).
    sent: usize,
}

impl Check {
    fn new(resolver: &ResolverConfig, timeout_ms: u64) -> Check {
        let (targets, recursion) = if resolver.forwarders.is_empty() {
            let hints = resolver.root_hints.iter();
            (hints.map(|&ip| SocketAddr::new(ip, 53)).collect(), false)
        } else {
            (resolver.forwarders.clone(), true)
        };
        Check {
            targets,
            recursion,
            preferred: 0,
            timeout: Duration::from_millis(timeout_ms),
            id: std::process::id() as u16 ^ 0x5a5a,
            sent: 0,
        }
    }

    /// `Ok` when an upstream answered NOERROR (or NXDOMAIN) in time.
    fn run(&mut self) -> Result<(), String> {
        let first = [self.preferred];
        let rest: Vec<usize> = (0..self.targets.len())
            .filter(|&i| i != self.preferred)
            .collect();
        self.sent = 0;
        for group in [&first[..], &rest[..]] {
            if group.is_empty() {
                continue;
            }
            if let Some(i) = self.ask(group) {
                self.preferred = i;
                return Ok(());
            }
        }
        let what = if self.recursion {
            "forwarders"
        } else {
            "root hints"
        };
        let n = self.targets.len();
        Err(if self.sent == 0 {
            format!("none of {n} {what} can be sent to (no route)")
        } else {
            format!(
                "none of {n} {what} answered `. NS` within {} ms",
                self.timeout.as_millis()
            )
        })
    }

    /// Sends the query to every target in `group` at once; the index of the first that answers.
    fn ask(&mut self, group: &[usize]) -> Option<usize> {
        self.id = self.id.wrapping_add(1);
        let question = ProbeQuestion {
            qname: NameKey::from_name(&Name::root()),
            qtype: RecordType::NS,
        };
        let mut query = question.packet(self.id);
        if self.recursion {
            query[2] |= 0x01;
        }
        // One dual-stack socket for both families (IPv4 as mapped addresses); an IPv4 one on a
        // host without IPv6.
        let (socket, dual) = match UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)) {
            Ok(s) => (s, true),
            Err(_) => (UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?, false),
        };
        let mapped = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) if dual => SocketAddr::new(v4.to_ipv6_mapped().into(), a.port()),
            _ => a,
        };
        // A target we can't send to (no route) doesn't answer; if none can be sent to, no wait.
        let sent = group
            .iter()
            .filter(|&&i| socket.send_to(&query, mapped(self.targets[i])).is_ok())
            .count();
        self.sent += sent;
        if sent == 0 {
            return None;
        }
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || socket.set_read_timeout(Some(left)).is_err() {
                return None;
            }
            let Ok((n, from)) = socket.recv_from(&mut buf) else {
                if Instant::now() >= deadline {
                    return None;
                }
                continue;
            };
            let reply = &buf[..n];
            let rcode = reply.get(3).map(|b| b & 0x0f);
            let answered = n >= 12
                && reply[..2] == query[..2]
                && reply[2] & 0x80 != 0
                && matches!(rcode, Some(0 | 3));
            if let Some(&i) = group
                .iter()
                .find(|&&i| answered && mapped(self.targets[i]) == from)
            {
                return Some(i);
            }
        }
    }
}
