//! What the node answers on its control socket: status and zone status from the shared view,
//! anycast commands through the health thread, secondary zones' refreshes through their own
//! threads, changes (reload, slow-path ops) through the main loop; each change only if started
//! before the request's deadline.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use serde::Serialize;
use serde_json::{Value, json};

use super::zones::{ZoneSource, ZoneTable};
use crate::anycast::{self, AnycastControl};
use crate::control::{Request, Responder, server::Handler};
use crate::secondary::{SecondaryZone, ZoneHandles};

/// How long `ctl refresh` waits for the refresh (SOA query and transfer, each primary in turn).
const REFRESH_WAIT: Duration = Duration::from_secs(120);
/// And then for the reload that installs what it transferred.
const INSTALL_WAIT: Duration = Duration::from_secs(60);

/// A change only the main loop makes.
#[derive(Debug)]
pub enum Op {
    /// Every zone, or the one named.
    Reload(Option<String>),
    StopSlowPath,
    StartSlowPath,
}

/// What started a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// SIGHUP.
    Signal,
    /// `rampart ctl reload`.
    Ctl,
    /// New versions (or the expiry) of secondary zones.
    Transfer,
}

/// The last reload, as `ctl status` and `ctl reload` show it.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// The zone reloaded (transfers: the zones, comma-separated); none: all.
    pub zone: Option<String>,
    pub cause: Cause,
    pub ok: bool,
    pub unix_ms: u64,
    pub duration_ms: u64,
    pub zones: usize,
    /// In the XDP maps after it (none without XDP).
    pub answers: Option<usize>,
    /// Whether the XDP maps took the new answers (none without XDP).
    pub installed: Option<bool>,
    pub errors: Vec<String>,
}

/// The XDP side of the status.
#[derive(Clone, Debug, Serialize)]
pub struct XdpStatus {
    pub interfaces: Vec<String>,
    pub mode: String,
    pub answers: usize,
    pub generation: u32,
}

/// `rampart ctl status`, but for the anycast part (read live).
#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub version: &'static str,
    pub pid: u32,
    pub identity: String,
    pub started_unix_ms: u64,
    pub listen: Vec<SocketAddr>,
    pub slow_path: &'static str,
    pub xdp: Option<XdpStatus>,
    pub zones: usize,
    pub zones_failing: usize,
    pub control_socket: PathBuf,
    pub last_reload: Option<ReloadOutcome>,
}

/// What the main loop publishes for the control socket's readers.
pub struct View {
    pub node: NodeStatus,
    pub zones: ZoneTable,
}

pub type SharedView = Arc<Mutex<View>>;

pub fn lock(view: &SharedView) -> std::sync::MutexGuard<'_, View> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

/// The control socket's handler.
pub fn handler(
    view: SharedView,
    ops: Sender<(Op, Responder)>,
    anycast: Option<AnycastControl>,
    secondaries: ZoneHandles,
) -> Handler {
    Arc::new(move |req: Request, r: Responder| {
        let owners = Owners {
            view: &view,
            ops: &ops,
            anycast: anycast.as_ref(),
            secondaries: &secondaries,
        };
        dispatch(req, r, owners)
    })
}

/// Who carries each request out.
struct Owners<'a> {
    view: &'a SharedView,
    ops: &'a Sender<(Op, Responder)>,
    anycast: Option<&'a AnycastControl>,
    secondaries: &'a ZoneHandles,
}

fn dispatch(req: Request, r: Responder, owners: Owners) {
    let Owners {
        view,
        ops,
        anycast,
        secondaries,
    } = owners;
    let zone = req.zone.as_deref();
    let op = match (req.command.as_str(), zone) {
        ("status", None) => {
            let mut status = serde_json::to_value(&lock(view).node).unwrap_or(Value::Null);
            status["anycast"] = anycast.map_or(Value::Null, AnycastControl::status);
            return r.done(status);
        }
        ("zone-status", zone) => {
            let zones = lock(view).zones.with_secondaries(secondaries);
            return r.done(zone_status(&zones, zone));
        }
        ("reload", zone) => {
            if let Some(z) = zone
                && lock(view).zones.get(z).is_none()
            {
                return r.fail(not_served(z));
            }
            Op::Reload(zone.map(str::to_owned))
        }
        ("refresh", Some(z)) => {
            if let Some(zone) = secondaries.zone(z) {
                return refresh(zone.clone(), view.clone(), r);
            }
            // The view's sources are files: secondary zones are the handles' (above).
            let v = lock(view);
            return match v.zones.get(z).map(|s| &s.source) {
                Some(ZoneSource::File { path }) => r.fail(format!(
                    "{z} is not a secondary zone (loaded from {}): `rampart ctl reload {z}` reads \
                     its file again",
                    path.display()
                )),
                _ => r.fail(not_served(z)),
            };
        }
        ("anycast-status" | "drain" | "undrain", None) => {
            let Some(a) = anycast else {
                return r.fail("anycast is off on this node (no anycast.prefixes)");
            };
            return match req.command.as_str() {
                "anycast-status" => r.done(a.status()),
                "drain" => a.request(anycast::Request::Drain, r),
                _ => a.request(anycast::Request::Undrain, r),
            };
        }
        ("stop-slow-path", None) => Op::StopSlowPath,
        ("start-slow-path", None) => Op::StartSlowPath,
        (cmd, _) => {
            return r.fail(format!(
                "unknown command {cmd:?}{}",
                zone.map_or(String::new(), |z| format!(" with zone {z:?}"))
            ));
        }
    };
    if let Err(e) = ops.try_send((op, r)) {
        e.into_inner()
            .1
            .fail("the node's main loop is not taking requests");
    }
}

/// `ctl refresh ZONE`: a refresh that begins after the request, and the reload installing what
/// it brought; on its own thread (the handler must not block).
fn refresh(zone: Arc<SecondaryZone>, view: SharedView, r: Responder) {
    if !r.accept() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("control-refresh".into())
        .spawn(move || {
            let Some(status) = zone.refresh_and_wait(REFRESH_WAIT) else {
                return r.fail(format!(
                    "the refresh of {} did not end within {} s (it goes on; see `rampart ctl \
                     zone-status`)",
                    zone.origin(),
                    REFRESH_WAIT.as_secs()
                ));
            };
            if let Some(e) = &status.last_error {
                return r.fail(format!("refresh of {} failed: {e}", zone.origin()));
            }
            // The transfer's reload: the serial transferred is the one served (an expired zone
            // that came back is served again).
            let until = Instant::now() + INSTALL_WAIT;
            let served = loop {
                let served = lock(&view).zones.get(zone.origin()).and_then(|z| z.serial);
                if served == status.serial || Instant::now() >= until {
                    break served;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            r.done(json!({
                "zone": zone.origin(),
                "serial": status.serial,
                "served_serial": served,
                "primary": status.primary,
                "last_transfer_serial": status.last_transfer.as_ref().map(|t| t.serial),
            }));
        });
    if let Err(e) = spawned {
        tracing::warn!("control: starting a refresh thread: {e}");
    }
}

fn not_served(zone: &str) -> String {
    format!(
        "zone {zone} is not served here (`rampart ctl zone-status` lists the zones; a full \
         `rampart ctl reload` picks up new files)"
    )
}

fn zone_status(zones: &ZoneTable, zone: Option<&str>) -> Value {
    match zone {
        Some(z) => match zones.get(z) {
            Some(s) => json!({ "zones": [s] }),
            None => json!({ "error": not_served(z) }),
        },
        None => json!({ "zones": zones.zones().collect::<Vec<_>>() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Reply, monotonic_ms};
    use crate::node::zones::Loaded;
    use crate::zone::{Catalog, ZoneSpec};

    fn view() -> SharedView {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.test.zone");
        std::fs::write(
            &path,
            "$ORIGIN a.test.\n$TTL 300\n@ SOA ns hm 5 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n",
        )
        .unwrap();
        let spec = ZoneSpec { origin: None, path };
        let catalog = Catalog::load(std::slice::from_ref(&spec), None).unwrap();
        let mut zones = ZoneTable::default();
        zones.update(&Loaded {
            catalog: &catalog,
            tried: &[spec],
            full: true,
            errors: &[],
            answers: None,
            now_unix_ms: 1,
        });
        Arc::new(Mutex::new(View {
            node: NodeStatus {
                version: "0",
                pid: 1,
                identity: "n1".into(),
                started_unix_ms: 1,
                listen: Vec::new(),
                slow_path: "running",
                xdp: None,
                zones: 1,
                zones_failing: 0,
                control_socket: PathBuf::from("/x"),
                last_reload: None,
            },
            zones,
        }))
    }

    /// Sends one request through the handler; the reply, or the op queued for the main loop.
    fn ask(command: &str, zone: Option<&str>) -> (Option<Value>, Option<Op>) {
        let (ops_tx, ops_rx) = crossbeam_channel::bounded(4);
        let h = handler(view(), ops_tx, None, ZoneHandles::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        let deadline = monotonic_ms() + 1000;
        let req = Request {
            command: command.into(),
            zone: zone.map(str::to_owned),
            deadline_ms: deadline,
        };
        h(req, Responder::new(deadline, tx));
        let reply = match rx.try_recv() {
            Ok(Reply::Done(v)) => Some(v),
            _ => None,
        };
        (reply, ops_rx.try_recv().ok().map(|(op, _)| op))
    }

    #[test]
    fn commands_reach_their_owner_or_say_why_not() {
        let (status, _) = ask("status", None);
        let status = status.unwrap();
        assert_eq!(
            (status["zones"].as_u64(), &status["anycast"]),
            (Some(1), &Value::Null)
        );
        let (zs, _) = ask("zone-status", Some("A.TEST"));
        assert_eq!(zs.unwrap()["zones"][0]["serial"], 5);
        // Changes go to the main loop; only for zones served.
        assert!(matches!(
            ask("reload", None),
            (None, Some(Op::Reload(None)))
        ));
        assert!(matches!(
            ask("reload", Some("a.test")),
            (None, Some(Op::Reload(Some(z)))) if z == "a.test"
        ));
        for (cmd, zone, why) in [
            ("reload", Some("b.test"), "b.test is not served"),
            ("refresh", Some("a.test"), "not a secondary zone"),
            ("refresh", Some("b.test"), "b.test is not served"),
            ("drain", None, "anycast is off"),
            (
                "status",
                Some("a.test"),
                "unknown command \"status\" with zone",
            ),
            ("bogus", None, "unknown command"),
        ] {
            let (reply, op) = ask(cmd, zone);
            let e = reply.unwrap()["error"].as_str().unwrap().to_owned();
            assert!(e.contains(why), "{cmd} {zone:?}: {e}");
            assert!(op.is_none(), "{cmd}: nothing queued");
        }
    }
}
