//! What the node answers on its control socket: status and zone status from the shared view,
//! anycast commands through the health thread, changes (reload, slow-path ops) through the
//! main loop; each change only if started before the request's deadline.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;
use serde::Serialize;
use serde_json::{Value, json};

use super::zones::{ZoneSource, ZoneTable};
use crate::anycast::{self, AnycastControl};
use crate::control::{Request, Responder, server::Handler};

/// A change only the main loop makes.
#[derive(Debug)]
pub enum Op {
    /// Every zone, or the one named.
    Reload(Option<String>),
    StopSlowPath,
    StartSlowPath,
}

/// The last reload, as `ctl status` and `ctl reload` show it.
#[derive(Clone, Debug, Serialize)]
pub struct ReloadOutcome {
    /// The zone reloaded; none: all.
    pub zone: Option<String>,
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
) -> Handler {
    Arc::new(move |req: Request, r: Responder| dispatch(req, r, &view, &ops, anycast.as_ref()))
}

fn dispatch(
    req: Request,
    r: Responder,
    view: &SharedView,
    ops: &Sender<(Op, Responder)>,
    anycast: Option<&AnycastControl>,
) {
    let zone = req.zone.as_deref();
    let op = match (req.command.as_str(), zone) {
        ("status", None) => {
            let mut status = serde_json::to_value(&lock(view).node).unwrap_or(Value::Null);
            status["anycast"] = anycast.map_or(Value::Null, AnycastControl::status);
            return r.done(status);
        }
        ("zone-status", zone) => return r.done(zone_status(&lock(view).zones, zone)),
        ("reload", zone) => {
            if let Some(z) = zone
                && lock(view).zones.get(z).is_none()
            {
                return r.fail(not_served(z));
            }
            Op::Reload(zone.map(str::to_owned))
        }
        ("refresh", Some(z)) => {
            let v = lock(view);
            return match v.zones.get(z).map(|s| &s.source) {
                None => r.fail(not_served(z)),
                Some(ZoneSource::File { path }) => r.fail(format!(
                    "{z} is not a secondary zone (loaded from {}): `rampart ctl reload {z}` reads \
                     its file again",
                    path.display()
                )),
                Some(ZoneSource::Primaries { .. }) => {
                    r.fail("zone transfers are not supported by this version")
                }
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
