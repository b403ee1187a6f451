//! systemd's notify protocol: readiness, reload and stop states, status lines, and a watchdog
//! fed only while the node still works. Without NOTIFY_SOCKET every call does nothing.
use std::{
    net::SocketAddr,
    os::linux::net::SocketAddrExt,
    os::unix::ffi::OsStrExt,
    os::unix::net::{SocketAddr as UnixAddr, UnixDatagram},
    sync::OnceLock,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::Result;
use crossbeam_channel::{Receiver, Sender};
use sd_notify::NotifyState;
use tracing::{info, warn};

use crate::anycast::health::{self, ProbeQuestion};

/// NOTIFY_SOCKET, connected once (none without it).
static NOTIFY: OnceLock<Option<UnixDatagram>> = OnceLock::new();

/// Connects to NOTIFY_SOCKET now, while the process may still reach it: `rampart supervise`'s
/// socket is its user's alone (0600 in a 0700 dir) and the node drops to its own user before
/// it says it is ready. Called at start; later calls do nothing.
pub fn connect() {
    NOTIFY.get_or_init(|| match open() {
        Ok(socket) => socket,
        Err(e) => {
            warn!("sd_notify: connecting to NOTIFY_SOCKET: {e}");
            None
        }
    });
}

fn open() -> std::io::Result<Option<UnixDatagram>> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(None);
    };
    let socket = UnixDatagram::unbound()?;
    match path.as_bytes().strip_prefix(b"@") {
        // systemd's abstract-namespace form.
        Some(name) => socket.connect_addr(&UnixAddr::from_abstract_name(name)?)?,
        None => socket.connect(&path)?,
    }
    Ok(Some(socket))
}

fn send(states: &[NotifyState]) {
    connect();
    let Some(Some(socket)) = NOTIFY.get() else {
        return;
    };
    let msg: String = states.iter().map(|s| format!("{s}\n")).collect();
    if let Err(e) = socket.send(msg.as_bytes()) {
        // The listener re-made its socket: the path again, reachable or not now.
        // `false`: keep NOTIFY_SOCKET; unsetting the environment with threads running is unsound.
        if let Err(again) = sd_notify::notify(false, states) {
            warn!("sd_notify: {e}; by path: {again}");
        }
    }
}

/// Serving: zones loaded, XDP attached, sockets bound.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP reload starts; [`ready`] ends it. MONOTONIC_USEC is what `Type=notify-reload`
/// (systemd 253) asks for; older systemd ignores it.
pub fn reloading() {
    let mut states = vec![
        NotifyState::Reloading,
        NotifyState::Status("reloading zones"),
    ];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// The status line `systemctl status` shows.
pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

/// `STATUS=` after a start or a reload; `answers`: in the XDP maps, when attached.
pub fn serving(zones: usize, answers: Option<usize>, errors: usize) -> String {
    let mut s = format!("serving {zones} zones");
    if let Some(answers) = answers {
        s.push_str(&format!(", {answers} answers in the XDP maps"));
    }
    if errors > 0 {
        s.push_str(&format!(
            ", {errors} zone errors at the last load (see the log)"
        ));
    }
    s
}

/// What must be alive for the watchdog to be fed.
pub struct Liveness {
    /// The slow path is asked this question at this address each period; no answer, no ping.
    pub slow: Option<(SocketAddr, ProbeQuestion)>,
    /// The health loop's round counter (anycast on): it must have moved within a period.
    pub health_rounds: Option<Box<dyn Fn() -> u64 + Send>>,
}

/// The thread sending WATCHDOG=1; stops with the value.
pub struct Watchdog {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Started when systemd asked for a watchdog (WATCHDOG_USEC, for this pid); `None` else.
    pub fn start(liveness: Liveness) -> Result<Option<Watchdog>> {
        // sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be this process (`rampart
        // supervise` can't know its child's pid before it starts, so it sets none).
        let env = |k| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
        let usec = env("WATCHDOG_USEC").unwrap_or(0);
        let for_us = env("WATCHDOG_PID").is_none_or(|p| p == u64::from(std::process::id()));
        if std::env::var_os("NOTIFY_SOCKET").is_none() || !for_us || usec == 0 {
            return Ok(None);
        }
        let timeout = Duration::from_micros(usec);
        // Pinging at half the timeout, as sd_watchdog_enabled(3) advises.
        let period = timeout / 2;
        info!(
            ?timeout,
            "systemd watchdog on: fed while the slow path and health loop work"
        );
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || feed(liveness, period, &stop_rx))?;
        Ok(Some(Watchdog {
            stop: Some(stop_tx),
            thread: Some(thread),
        }))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn feed(liveness: Liveness, period: Duration, stop: &Receiver<()>) {
    let probe_timeout = (period / 2).min(Duration::from_secs(1));
    let mut id: u16 = 0x5d00;
    let mut rounds = (u64::MAX, Instant::now());
    let mut was_alive = true;
    loop {
        let mut dead = Vec::new();
        if let Some((target, question)) = &liveness.slow {
            id = id.wrapping_add(1);
            if let Err(e) = health::udp_exchange(*target, &question.packet(id), probe_timeout) {
                dead.push(format!("slow path at {target}: {e}"));
            }
        }
        if let Some(read) = &liveness.health_rounds {
            let now = read();
            if now != rounds.0 {
                rounds = (now, Instant::now());
            } else if rounds.1.elapsed() > period {
                dead.push(format!(
                    "health loop: no round for {} ms",
                    rounds.1.elapsed().as_millis()
                ));
            }
        }
        if dead.is_empty() {
            send(&[NotifyState::Watchdog]);
            if !was_alive {
                info!("watchdog: fed again");
            }
        } else if was_alive {
            let why = dead.join("; ");
            warn!("watchdog: not fed ({why}): systemd restarts the node if this lasts");
            status(&format!("watchdog not fed: {why}"));
        }
        was_alive = dead.is_empty();
        if !matches!(
            stop.recv_timeout(period),
            Err(crossbeam_channel::RecvTimeoutError::Timeout)
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(serving(2, None, 0), "serving 2 zones");
        assert_eq!(
            serving(2, Some(40), 0),
            "serving 2 zones, 40 answers in the XDP maps"
        );
        assert!(serving(2, None, 1).ends_with("1 zone errors at the last load (see the log)"));
    }
}
