//! Anycast control (docs/ARCHITECTURE.md §6): probe the node's health, announce the service
//! prefixes only while it is healthy, and let the operator drain it.
//!
//! One thread runs a probe round every `health.interval_ms`, feeds the state machine and applies
//! its decisions through the [`announce::Announcer`]; the node's control socket hands it
//! `rampart anycast status|drain|undrain` ([`AnycastControl`]). Every transition is logged with
//! its reason.
pub mod announce;
pub mod fleet;
pub mod health;
pub mod state;
pub mod upstreams;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::control::Responder;
use announce::Announcer;
use health::{ProbeCounters, Probes};
use state::{Action, Machine, State, Thresholds};

/// What `rampart anycast status` shows.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    pub state: State,
    pub identity: String,
    pub prefixes: Vec<String>,
    pub method: crate::config::Method,
    pub device: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub hold_down_ms: u64,
    pub rounds: u64,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    pub probes: Vec<ProbeCounters>,
    pub transitions_total: u64,
    /// The last few, oldest first.
    pub transitions: Vec<TransitionView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct TransitionView {
    pub from: State,
    pub to: State,
    pub reason: String,
    /// Wall-clock time, milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// Operator requests, carried out by the health thread.
#[derive(Clone, Copy, Debug)]
pub enum Request {
    Drain,
    Undrain,
}

/// The running anycast control: stop it (withdrawing) with [`Anycast::shutdown`].
pub struct Anycast {
    status: Arc<Mutex<Status>>,
    requests: Sender<(Request, Responder)>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the control socket asks of the anycast part: its status, a drain or an undrain.
#[derive(Clone)]
pub struct AnycastControl {
    status: Arc<Mutex<Status>>,
    requests: Sender<(Request, Responder)>,
}

impl AnycastControl {
    pub fn status(&self) -> Value {
        let s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        serde_json::to_value(s).unwrap_or(Value::Null)
    }

    /// Queued for the health thread, which carries it out only before the request's deadline.
    pub fn request(&self, request: Request, responder: Responder) {
        if let Err(e) = self.requests.try_send((request, responder)) {
            e.into_inner()
                .1
                .fail("the health checker is not taking requests");
        }
    }
}

impl Anycast {
    /// Takes the announcement device (made by [`Announcer::new`] while the process could still
    /// open /dev/net/tun), withdrawn, and starts probing.
    pub fn start(config: &Config, announcer: Announcer, probes: Probes) -> Result<Anycast> {
        // A previous instance that died announced may have left the exec method's route behind
        // (the device's die with it): start from a known withdrawn state.
        announcer.withdraw("starting")?;
        let h = &config.health;
        let machine = Machine::new(
            Thresholds {
                rise: h.rise,
                fall: h.fall,
                hold_down: h.hold_down(),
            },
            Instant::now(),
        );
        let status = Arc::new(Mutex::new(Status {
            state: State::Starting,
            identity: config.server.identity.clone(),
            prefixes: config
                .anycast
                .prefixes
                .iter()
                .map(|p| p.to_string())
                .collect(),
            method: config.anycast.method,
            device: config.anycast.device.clone(),
            interval_ms: h.interval_ms,
            timeout_ms: h.timeout_ms,
            rise: h.rise,
            fall: h.fall,
            hold_down_ms: h.hold_down_ms,
            rounds: 0,
            consecutive_ok: 0,
            consecutive_failed: 0,
            probes: probes.counters.to_vec(),
            transitions_total: 0,
            transitions: Vec::new(),
        }));
        // A few: more pile up only while the health thread is stuck, and are refused.
        let (req_tx, req_rx) = crossbeam_channel::bounded::<(Request, Responder)>(8);
        let status_handle = status.clone();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let checker = Checker {
            probes,
            machine,
            announcer,
            status,
            interval: h.interval(),
            grace: Duration::from_millis(config.anycast.shutdown_grace_ms),
            acted: false,
            epoch: (Instant::now(), SystemTime::now()),
        };
        let thread = std::thread::Builder::new()
            .name("anycast-health".into())
            .spawn(move || checker.run(&req_rx, &stop_rx))?;
        info!(
            prefixes = ?config.anycast.prefixes,
            method = ?config.anycast.method,
            device = config.anycast.device,
            "anycast: starting withdrawn; announcing after {} healthy rounds, {} ms after start at the earliest",
            h.rise,
            h.hold_down_ms
        );
        Ok(Anycast {
            status: status_handle,
            requests: req_tx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// What peers asking `upstreams.rampart.` get (resolver mode): the upstream check's state
    /// and the announcement's.
    pub fn health_report(
        &self,
        upstreams: Arc<upstreams::Upstreams>,
    ) -> crate::resolver::HealthReport {
        let status = self.status.clone();
        Arc::new(move || {
            let state = status.lock().unwrap_or_else(|e| e.into_inner()).state;
            upstreams.report(&state.to_string()).to_txt()
        })
    }

    pub fn control(&self) -> AnycastControl {
        AnycastControl {
            status: self.status.clone(),
            requests: self.requests.clone(),
        }
    }

    /// A way to read the current status from other threads (metrics).
    pub fn status_reader(&self) -> impl Fn() -> Status + Send + 'static {
        let status = self.status.clone();
        move || status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Withdraws, waits the grace period if the node was announced, and stops probing.
    pub fn shutdown(mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The health thread's state.
struct Checker {
    probes: Probes,
    machine: Machine,
    announcer: Announcer,
    status: Arc<Mutex<Status>>,
    interval: Duration,
    grace: Duration,
    /// Whether the last `apply` changed the announcement (else a transition is logged apart).
    acted: bool,
    /// To turn `Instant`s into wall-clock times for the status.
    epoch: (Instant, SystemTime),
}

impl Checker {
    fn run(mut self, requests: &Receiver<(Request, Responder)>, stop: &Receiver<()>) {
        let mut next = Instant::now();
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            crossbeam_channel::select! {
                recv(stop) -> _ => break,
                recv(requests) -> req => {
                    // Past its deadline the client has reported failure: not carried out.
                    if let Ok((req, responder)) = req && responder.accept() {
                        responder.done(self.operator(req));
                    }
                    continue;
                }
                default(wait) => {}
            }
            next = Instant::now() + self.interval;
            let round = self.probes.run();
            let action = self.machine.on_round(Instant::now(), &round);
            self.apply(action);
            self.publish(true);
        }
        let was = self.machine.state();
        self.apply_withdraw("shutting down");
        if was.announced() {
            info!(grace = ?self.grace, "anycast: withdrawn for shutdown; waiting before closing sockets");
            std::thread::sleep(self.grace);
        }
    }

    fn operator(&mut self, req: Request) -> Value {
        let now = Instant::now();
        let was = self.machine.state();
        let action = match req {
            Request::Drain => self.machine.drain(now),
            Request::Undrain => self.machine.undrain(now),
        };
        self.apply(action);
        let changed = self.machine.state() != was;
        if changed && !self.acted {
            let t = self.machine.transitions.back().expect("a transition");
            info!(from = %t.from, to = %t.to, reason = t.reason, "anycast: state changed");
        }
        self.publish(false);
        json!({"state": self.machine.state(), "changed": changed})
    }

    fn apply(&mut self, action: Option<Action>) {
        self.acted = action.is_some();
        let Some(t) = self.machine.transitions.back() else {
            return;
        };
        let (from, to) = (t.from, t.to);
        match action {
            Some(Action::Announce(reason)) => {
                info!(%from, %to, reason, "anycast: announced");
                if let Err(e) = self.announcer.announce(&reason) {
                    error!("anycast: announcing failed: {e:#}");
                }
            }
            Some(Action::Withdraw(reason)) => {
                warn!(%from, %to, reason, "anycast: withdrawn");
                if let Err(e) = self.announcer.withdraw(&reason) {
                    error!("anycast: withdrawing failed: {e:#}");
                }
            }
            None => {}
        }
    }

    fn apply_withdraw(&mut self, reason: &str) {
        if let Err(e) = self.announcer.withdraw(reason) {
            error!("anycast: withdrawing failed: {e:#}");
        }
    }

    fn publish(&self, round: bool) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.state = self.machine.state();
        s.rounds += u64::from(round);
        s.consecutive_ok = self.machine.consecutive_ok;
        s.consecutive_failed = self.machine.consecutive_failed;
        s.probes = self.probes.counters.to_vec();
        s.transitions_total = self.machine.transitions_total;
        let (i0, w0) = self.epoch;
        s.transitions = self
            .machine
            .transitions
            .iter()
            .map(|t| TransitionView {
                from: t.from,
                to: t.to,
                reason: t.reason.clone(),
                unix_ms: (w0 + t.at.duration_since(i0))
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
            })
            .collect();
    }
}

/// `rampart anycast status` for people: from the JSON the daemon sends.
pub fn render_status(s: &Value) -> String {
    use std::fmt::Write as _;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut out = String::new();
    let _ = writeln!(out, "state:       {}", s["state"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "identity:    {}", s["identity"].as_str().unwrap_or(""));
    let _ = writeln!(
        out,
        "prefixes:    {} (method {}, device {})",
        list(&s["prefixes"]),
        s["method"].as_str().unwrap_or("?"),
        s["device"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        out,
        "health:      every {} ms, timeout {} ms, rise {}, fall {}, hold-down {} ms",
        s["interval_ms"], s["timeout_ms"], s["rise"], s["fall"], s["hold_down_ms"]
    );
    let _ = writeln!(
        out,
        "rounds:      {} ({} good in a row, {} failed in a row)",
        s["rounds"], s["consecutive_ok"], s["consecutive_failed"]
    );
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>8} {:>8} {:>9}  last failure",
        "probe", "ok", "failed", "skipped", "last µs"
    );
    for p in s["probes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>8} {:>8} {:>9}  {}",
            p["name"].as_str().unwrap_or("?"),
            p["ok"].to_string(),
            p["failed"].to_string(),
            p["skipped"].to_string(),
            p["last_us"].to_string(),
            p["last_failure"].as_str().unwrap_or("-")
        );
    }
    let _ = writeln!(out, "transitions (newest last):");
    for t in s["transitions"].as_array().into_iter().flatten() {
        let ago = now_ms.saturating_sub(t["unix_ms"].as_u64().unwrap_or(0)) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "  {ago:>9.1} s ago  {} -> {}: {}",
            t["from"].as_str().unwrap_or("?"),
            t["to"].as_str().unwrap_or("?"),
            t["reason"].as_str().unwrap_or("")
        );
    }
    out
}
