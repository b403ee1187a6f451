//! One secondary zone: its state, its status for operators, and its refresh loop (SOA refresh,
//! retry and expire timers, NOTIFY wake-ups, IXFR falling back to AXFR).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use domain::base::Name;
use domain::tsig::Key;
use serde::Serialize;
use tracing::{error, info, warn};

use super::KeyConfig;
use super::config::{SecondaryConfig, find_key};
use super::records::{RecordSet, SoaTimers};
use super::transfer::{self, Primary, Received, XfrError, XfrKind};
use crate::metrics::XfrStats;
use crate::zone::{Zone, ZoneSpec};

/// Each packet of a SOA query or transfer gets this long.
const PACKET_TIMEOUT: Duration = Duration::from_secs(5);
/// SOA timers below this are raised to it, so a zone with refresh 0 can't spin.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// And above this are lowered to it (Knot's `refresh-max-interval` default).
const MAX_INTERVAL: Duration = Duration::from_secs(86_400);

/// The last transfer that installed a version.
#[derive(Clone, Debug, Serialize)]
pub struct TransferNote {
    pub at: SystemTime,
    pub primary: SocketAddr,
    pub kind: XfrKind,
    pub serial: u32,
    pub duration: Duration,
    pub bytes: usize,
}

/// What an operator asks about a secondary zone (`rampart ctl zone-status`).
#[derive(Clone, Debug, Serialize)]
pub struct ZoneStatus {
    pub origin: String,
    /// The version served (or kept on disk); none before the first transfer.
    pub serial: Option<u32>,
    /// The primary the last refresh got its answer from.
    pub primary: Option<SocketAddr>,
    pub last_transfer: Option<TransferNote>,
    /// The last refresh's failure; cleared by a refresh that works.
    pub last_error: Option<String>,
    /// When the last refresh reached a primary (the expire timer runs from it).
    pub last_refresh: Option<SystemTime>,
    pub next_refresh: Option<SystemTime>,
    /// When the zone expires without a successful refresh.
    pub expires: Option<SystemTime>,
    /// Past expire: not served (SERVFAIL).
    pub expired: bool,
}

enum Wake {
    Refresh,
    Stop,
}

/// A handle on one secondary zone: shared by its thread, the NOTIFY path and the daemon.
pub struct SecondaryZone {
    config: SecondaryConfig,
    origin: Name<Bytes>,
    origin_text: String,
    key: Option<Key>,
    records: Mutex<RecordSet>,
    status: Mutex<ZoneStatus>,
    wake: (Sender<Wake>, Receiver<Wake>),
    /// Refreshes begun and ended, so a caller can wait for one that began after it asked.
    begun: AtomicU64,
    ended: AtomicU64,
    stats: XfrStats,
}

impl SecondaryZone {
    pub(super) fn new(
        config: &SecondaryConfig,
        keys: &[KeyConfig],
        stats: XfrStats,
    ) -> Result<SecondaryZone> {
        let origin = Name::<Bytes>::from_str(&config.origin)
            .map_err(|e| anyhow!("zones.secondary: origin {:?}: {e}", config.origin))?;
        let origin_text = format!("{origin}.").replace("..", ".");
        let key = config
            .key
            .as_deref()
            .map(|k| find_key(keys, k))
            .transpose()?;
        let mut status = ZoneStatus {
            origin: origin_text.clone(),
            serial: None,
            primary: None,
            last_transfer: None,
            last_error: None,
            last_refresh: None,
            next_refresh: Some(SystemTime::now()),
            expires: None,
            expired: false,
        };
        let copy = config.file.exists().then(|| {
            RecordSet::read(&config.file, &origin_text).inspect_err(|e| {
                // As Knot does: the zone starts empty and the first transfer replaces the copy.
                error!(zone = %origin_text, "the on-disk copy is unusable, transferring anew: {e:#}");
            })
        });
        let records = if let Some(Ok(records)) = copy {
            // The copy's mtime is when a primary last confirmed it (a refresh touches it).
            let refreshed = std::fs::metadata(&config.file)?.modified()?;
            let soa = records.soa().expect("read checks the SOA");
            status.serial = Some(soa.serial);
            status.last_refresh = Some(refreshed);
            status.expires = Some(refreshed + soa.expire);
            status.expired = SystemTime::now() >= refreshed + soa.expire;
            if status.expired {
                warn!(zone = %origin_text, "the on-disk copy is past its SOA expire: SERVFAIL until a refresh");
            }
            records
        } else {
            RecordSet::default()
        };
        stats.zone_state(&origin_text, status.serial, status.expired);
        Ok(SecondaryZone {
            config: config.clone(),
            origin,
            origin_text,
            key,
            records: Mutex::new(records),
            status: Mutex::new(status),
            wake: crossbeam_channel::unbounded(),
            begun: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            stats,
        })
    }

    /// The origin, absolute (`example.net.`).
    pub fn origin(&self) -> &str {
        &self.origin_text
    }

    pub(super) fn origin_name(&self) -> &Name<Bytes> {
        &self.origin
    }

    pub(super) fn key(&self) -> Option<&Key> {
        self.key.as_ref()
    }

    pub(super) fn is_primary(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.config
            .primaries
            .iter()
            .any(|p| canonical(p.0.ip()) == ip)
    }

    pub(super) fn note_notify(&self, accepted: bool) {
        self.stats.notify(&self.origin_text, accepted);
    }

    /// Asks for a refresh now (NOTIFY, an operator): the SOA query runs at once.
    pub fn refresh(&self) {
        let _ = self.wake.0.send(Wake::Refresh);
    }

    /// Asks for a refresh now and waits up to `timeout` for one that began after the call to
    /// end: the zone's status then (`last_error` set if it failed); none if still running.
    pub fn refresh_and_wait(&self, timeout: Duration) -> Option<ZoneStatus> {
        let before = self.begun.load(Ordering::SeqCst);
        self.refresh();
        let until = Instant::now() + timeout;
        while self.ended.load(Ordering::SeqCst) <= before {
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(self.status())
    }

    /// The primaries, in the order they are asked.
    pub fn primaries(&self) -> Vec<SocketAddr> {
        self.config.primaries.iter().map(|p| p.0).collect()
    }

    pub fn status(&self) -> ZoneStatus {
        lock(&self.status).clone()
    }

    /// Whether a refresh was asked for and not yet taken by the thread.
    #[cfg(test)]
    pub(super) fn refresh_pending(&self) -> bool {
        !self.wake.1.is_empty()
    }

    pub(super) fn stop(&self) {
        let _ = self.wake.0.send(Wake::Stop);
    }

    pub(super) fn spec(&self) -> Option<ZoneSpec> {
        let status = lock(&self.status);
        (status.serial.is_some() && !status.expired).then(|| ZoneSpec {
            origin: Some(self.origin_text.clone()),
            path: self.config.file.clone(),
        })
    }

    pub(super) fn dir(&self) -> Option<PathBuf> {
        self.config
            .file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(|d| d.to_owned())
    }

    /// The refresh loop: at start, on each timer, on each wake-up; ends on [`Self::stop`].
    pub(super) fn run(&self, install: &Sender<String>) {
        let mut next = Instant::now();
        loop {
            let expires_in = {
                let status = lock(&self.status);
                status
                    .expires
                    .filter(|_| !status.expired)
                    .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default())
            };
            let wait = next.saturating_duration_since(Instant::now());
            let wait = expires_in.map_or(wait, |e| wait.min(e));
            let woken = match self.wake.1.recv_timeout(wait) {
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Wake::Refresh) => {
                    // A burst of NOTIFYs is one refresh.
                    while self.wake.1.try_recv().is_ok() {}
                    true
                }
                Err(RecvTimeoutError::Timeout) => false,
            };
            if self.check_expiry() {
                let _ = install.send(self.origin_text.clone());
            }
            if !woken && Instant::now() < next {
                // The expire timer's wake-up: no refresh due yet.
                continue;
            }
            self.begun.fetch_add(1, Ordering::SeqCst);
            let interval = match self.refresh_once() {
                Ok(installed) => {
                    if installed {
                        let _ = install.send(self.origin_text.clone());
                    }
                    self.soa().map_or(MIN_INTERVAL, |s| {
                        s.refresh.clamp(MIN_INTERVAL, MAX_INTERVAL)
                    })
                }
                Err(e) => {
                    error!(zone = %self.origin_text, "refresh failed: {e:#}");
                    lock(&self.status).last_error = Some(format!("{e:#}"));
                    self.soa().map_or(MIN_INTERVAL * 10, |s| {
                        s.retry.clamp(MIN_INTERVAL, MAX_INTERVAL)
                    })
                }
            };
            next = Instant::now() + interval;
            lock(&self.status).next_refresh = Some(SystemTime::now() + interval);
            self.ended.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn soa(&self) -> Option<SoaTimers> {
        lock(&self.records).soa()
    }

    /// Marks the zone expired once its expire timer ran out; true when that just happened.
    fn check_expiry(&self) -> bool {
        let mut status = lock(&self.status);
        let due = status.expires.is_some_and(|at| SystemTime::now() >= at);
        if due && !status.expired {
            status.expired = true;
            error!(zone = %self.origin_text, serial = ?status.serial,
                "expired: no primary reached within the SOA expire; answering SERVFAIL");
            self.stats
                .zone_state(&self.origin_text, status.serial, true);
            return true;
        }
        false
    }

    /// One refresh: each primary in turn until one answers. Ok(true): a new version was
    /// stored (or an expired zone came back) and must be installed.
    fn refresh_once(&self) -> Result<bool> {
        let mut errors = Vec::new();
        // A silent primary must not hold the zone past its expire: the wait is cut to it.
        let until_expiry = {
            let status = lock(&self.status);
            match status.expires {
                Some(at) if !status.expired => {
                    at.duration_since(SystemTime::now()).unwrap_or_default()
                }
                _ => PACKET_TIMEOUT,
            }
        };
        let timeout = PACKET_TIMEOUT.min(until_expiry.max(Duration::from_millis(200)));
        for p in &self.config.primaries {
            let primary = Primary {
                addr: p.0,
                key: self.key.as_ref(),
                timeout,
            };
            match self.refresh_from(primary) {
                Ok(installed) => {
                    let mut status = lock(&self.status);
                    let now = SystemTime::now();
                    let was_expired = status.expired;
                    status.primary = Some(p.0);
                    status.last_error = None;
                    status.last_refresh = Some(now);
                    status.expired = false;
                    status.expires = self.soa().map(|s| now + s.expire);
                    self.stats
                        .zone_state(&self.origin_text, status.serial, false);
                    if was_expired {
                        info!(zone = %self.origin_text, "refreshed after expiry: serving again");
                    }
                    // The copy's mtime carries the refresh time across a restart.
                    if !installed
                        && let Ok(f) = std::fs::File::options().write(true).open(&self.config.file)
                    {
                        let _ = f.set_modified(now);
                    }
                    return Ok(installed || was_expired);
                }
                Err(e) => errors.push(format!("{}: {e:#}", p.0)),
            }
        }
        bail!("{}", errors.join("; "))
    }

    /// Against one primary: SOA query, then IXFR (AXFR without a version, or when IXFR fails).
    /// Ok(true) when a new version was stored.
    fn refresh_from(&self, primary: Primary<'_>) -> Result<bool> {
        let theirs =
            transfer::query_serial(primary, &self.origin).map_err(|e| anyhow!("SOA query: {e}"))?;
        let current = lock(&self.records).clone();
        if let Some(ours) = current.soa()
            && !transfer::serial_newer(theirs, ours.serial)
        {
            return Ok(false);
        }
        let started = Instant::now();
        let first = if current.soa().is_some() {
            XfrKind::Ixfr
        } else {
            XfrKind::Axfr
        };
        let received = match transfer::transfer(primary, &self.origin, &current, first) {
            Ok(r) => Ok(r),
            Err(e) if first == XfrKind::Ixfr => {
                self.stats.transfer(&self.origin_text, XfrKind::Ixfr, false);
                warn!(zone = %self.origin_text, primary = %primary.addr, "IXFR failed ({e}); trying AXFR");
                transfer::transfer(primary, &self.origin, &current, XfrKind::Axfr)
            }
            Err(e) => Err(e),
        };
        let received = received.map_err(|e| {
            self.stats.transfer(&self.origin_text, XfrKind::Axfr, false);
            match e {
                XfrError::Rcode(r) => anyhow!("transfer: the primary answered {r}"),
                XfrError::Other(e) => e.context("transfer"),
            }
        })?;
        let serial = self.store(&received).inspect_err(|_| {
            self.stats.transfer(&self.origin_text, received.kind, false);
        })?;
        let duration = started.elapsed();
        self.stats.transfer(&self.origin_text, received.kind, true);
        info!(
            zone = %self.origin_text,
            primary = %primary.addr,
            kind = received.kind.as_str(),
            serial,
            records = received.records.count(),
            bytes = received.bytes,
            messages = received.messages,
            ?duration,
            "transfer done"
        );
        let mut status = lock(&self.status);
        status.serial = Some(serial);
        status.last_transfer = Some(TransferNote {
            at: SystemTime::now(),
            primary: primary.addr,
            kind: received.kind,
            serial,
            duration,
            bytes: received.bytes,
        });
        *lock(&self.records) = received.records;
        Ok(true)
    }

    /// Validates a received version as the loader would load a file zone, then replaces the
    /// on-disk copy with it (written beside it, renamed over it). Returns its serial.
    fn store(&self, received: &Received) -> Result<u32> {
        let soa = received
            .records
            .soa()
            .context("the transfer holds no SOA")?;
        let file = &self.config.file;
        let mut tmp = file.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        write_synced(&tmp, received.records.to_text(&self.origin_text).as_bytes())?;
        let spec = ZoneSpec {
            origin: Some(self.origin_text.clone()),
            path: tmp.clone(),
        };
        match Zone::load(&spec) {
            Ok((zone, _warnings)) if zone.serial() == soa.serial => {}
            Ok((zone, _)) => {
                let _ = std::fs::remove_file(&tmp);
                bail!("serial {} loaded as {}", soa.serial, zone.serial());
            }
            Err(errors) => {
                let _ = std::fs::remove_file(&tmp);
                bail!(
                    "serial {} doesn't validate: {}",
                    soa.serial,
                    errors.join("; ")
                );
            }
        }
        std::fs::rename(&tmp, file)
            .with_context(|| format!("renaming {} to {}", tmp.display(), file.display()))?;
        Ok(soa.serial)
    }
}

fn write_synced(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
