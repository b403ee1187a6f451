//! `rampart ctl`, `rampart anycast` and `rampart debug`: the control socket's client commands,
//! their human-readable and `--json` output, and their exit status.
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::{anycast, config::Config, control::client};

/// Where the daemon is and how long to wait for it.
#[derive(Args, Clone, Debug)]
pub struct Target {
    /// The daemon's control socket [default: server.control_socket of --config, else
    /// /run/rampart/control.sock].
    #[arg(long, global = true)]
    control_socket: Option<PathBuf>,
    /// Take the control socket's path from this config file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Give up after this many seconds: a command not started on by then is never carried out.
    #[arg(long, global = true, default_value_t = 5.0, value_parser = positive_seconds)]
    timeout: f64,
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("{s:?}: seconds, more than 0 and at most 3600")),
    }
}

impl Target {
    fn socket(&self) -> Result<PathBuf> {
        Ok(match (&self.control_socket, &self.config) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) => Config::load(c)?.control_socket(),
            (None, None) => Config::default().control_socket(),
        })
    }

    fn request(&self, command: &str, zone: Option<&str>) -> Result<Value> {
        let timeout = Duration::from_secs_f64(self.timeout);
        client::request(&self.socket()?, command, zone, timeout)
    }
}

#[derive(Subcommand, Clone, Debug)]
pub enum CtlAction {
    /// The node: version, zones, fast path, slow path, the last reload, anycast state.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Each zone (or ZONE): serial, source, when loaded, answers in the XDP maps, last error,
    /// next refresh.
    ZoneStatus {
        zone: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Read the zone files again, all or ZONE's alone; exit 1 if one failed (it keeps serving
    /// its previous version).
    Reload {
        zone: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check a secondary zone's primaries for a new serial now, transfer it if there is one, and
    /// wait until it is served; exit 1 if no primary could be reached.
    Refresh {
        zone: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Clone, Copy, Debug)]
pub enum AnycastAction {
    /// State, recent transitions with reasons, health counters.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Withdraw the prefixes and keep them withdrawn (maintenance); serving goes on.
    Drain,
    /// End a drain: announce again once healthy and past the hold-down.
    Undrain,
}

#[derive(Subcommand, Clone, Copy, Debug)]
pub enum DebugAction {
    /// Close the slow path's sockets and stop its threads.
    StopSlowPath,
    /// Bind the listen addresses again and serve.
    StartSlowPath,
}

pub fn ctl(action: &CtlAction, target: &Target) -> Result<()> {
    let (command, zone, json) = match action {
        CtlAction::Status { json } => ("status", None, *json),
        CtlAction::ZoneStatus { zone, json } => ("zone-status", zone.as_deref(), *json),
        CtlAction::Reload { zone, json } => ("reload", zone.as_deref(), *json),
        CtlAction::Refresh { zone, json } => ("refresh", Some(zone.as_str()), *json),
    };
    let reply = target.request(command, zone)?;
    if json {
        println!("{reply}");
    } else {
        print!(
            "{}",
            match action {
                CtlAction::Status { .. } => render_status(&reply),
                CtlAction::ZoneStatus { .. } => render_zones(&reply),
                CtlAction::Refresh { .. } => render_refresh(&reply),
                _ => render_reload(&reply),
            }
        );
    }
    if reply.get("ok").is_some_and(|ok| ok == false) {
        let n = reply["errors"].as_array().map_or(0, Vec::len);
        bail!("reload failed ({n} errors; the zones that failed keep their previous version)");
    }
    Ok(())
}

pub fn anycast(action: AnycastAction, target: &Target) -> Result<()> {
    let command = match action {
        AnycastAction::Status { .. } => "anycast-status",
        AnycastAction::Drain => "drain",
        AnycastAction::Undrain => "undrain",
    };
    let reply = target.request(command, None)?;
    match action {
        AnycastAction::Status { json: true } => println!("{reply}"),
        AnycastAction::Status { json: false } => print!("{}", anycast::render_status(&reply)),
        _ => {
            let changed = reply["changed"].as_bool().unwrap_or(false);
            let state = reply["state"].as_str().unwrap_or("?");
            println!("{state}{}", if changed { "" } else { " (unchanged)" });
        }
    }
    Ok(())
}

pub fn debug(action: DebugAction, target: &Target) -> Result<()> {
    let command = match action {
        DebugAction::StopSlowPath => "stop-slow-path",
        DebugAction::StartSlowPath => "start-slow-path",
    };
    let reply = target.request(command, None)?;
    println!("slow path {}", reply["slow_path"].as_str().unwrap_or("?"));
    Ok(())
}

fn ago(unix_ms: &Value) -> String {
    let Some(t) = unix_ms.as_u64() else {
        return "-".into();
    };
    let now = now_ms();
    let s = now.saturating_sub(t) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{}m{:02}s ago", s / 60, s % 60),
        _ => format!("{}h{:02}m ago", s / 3600, s / 60 % 60),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn until(unix_ms: &Value) -> String {
    let Some(t) = unix_ms.as_u64() else {
        return "-".into();
    };
    let now = now_ms();
    format!("in {} s", t.saturating_sub(now).div_ceil(1000))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A JSON array's items, space-separated.
fn words(v: &Value) -> String {
    let items: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    items.join(" ")
}

fn render_status(s: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rampart {} (pid {}), identity {:?}, started {}",
        text(&s["version"]),
        s["pid"],
        s["identity"].as_str().unwrap_or(""),
        ago(&s["started_unix_ms"])
    );
    let _ = writeln!(
        out,
        "slow path:   {} on {}",
        text(&s["slow_path"]),
        words(&s["listen"])
    );
    match s["xdp"].as_object() {
        Some(x) => {
            let _ = writeln!(
                out,
                "xdp:         {} ({}), {} answers in the maps, generation {}",
                words(&x["interfaces"]),
                text(&x["mode"]),
                x["answers"],
                x["generation"]
            );
        }
        None => {
            let _ = writeln!(out, "xdp:         off (sockets only)");
        }
    }
    let _ = writeln!(
        out,
        "zones:       {} served, {} with errors{}",
        s["zones"],
        s["zones_failing"],
        if s["zones_failing"].as_u64().unwrap_or(0) > 0 {
            " (rampart ctl zone-status)"
        } else {
            ""
        }
    );
    match s["last_reload"].as_object() {
        Some(r) => {
            let _ = writeln!(
                out,
                "last reload: {} {} ({}), {}, {} ms, {} errors",
                ago(&r["unix_ms"]),
                r["zone"].as_str().unwrap_or("(all zones)"),
                text(&r["cause"]),
                if r["ok"] == true { "ok" } else { "failed" },
                r["duration_ms"],
                r["errors"].as_array().map_or(0, Vec::len)
            );
        }
        None => {
            let _ = writeln!(out, "last reload: none since start");
        }
    }
    match s["anycast"].as_object() {
        Some(a) => {
            let _ = writeln!(
                out,
                "anycast:     {} (rampart anycast status)",
                text(&a["state"])
            );
        }
        None => {
            let _ = writeln!(out, "anycast:     off");
        }
    }
    let _ = writeln!(out, "control:     {}", text(&s["control_socket"]));
    out
}

fn render_zones(reply: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>12} {:>9}  source",
        "zone", "serial", "loaded", "answers"
    );
    for z in reply["zones"].as_array().into_iter().flatten() {
        let source = match z["source"]["kind"].as_str() {
            Some("file") => format!("file {}", text(&z["source"]["path"])),
            Some("primaries") => format!("primaries {}", words(&z["source"]["addresses"])),
            _ => "?".into(),
        };
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>12} {:>9}  {source}",
            text(&z["zone"]),
            text(&z["serial"]),
            ago(&z["loaded_unix_ms"]),
            text(&z["answers"]),
        );
        if let Some(t) = z["transfer"].as_object() {
            let last = &t["last_transfer"];
            let _ = writeln!(
                out,
                "    transferred serial {}, last transfer {}, last refresh {}, next refresh {}{}",
                text(&t["serial"]),
                match last.as_object() {
                    Some(l) => format!(
                        "{} ({} of serial {} from {}, {} ms, {} bytes)",
                        ago(&l["unix_ms"]),
                        text(&l["kind"]).to_uppercase(),
                        l["serial"],
                        text(&l["primary"]),
                        l["duration_ms"],
                        l["bytes"]
                    ),
                    None => "none since start".into(),
                },
                ago(&t["last_refresh_unix_ms"]),
                until(&z["next_refresh_unix_ms"]),
                if t["expired"] == true {
                    ", EXPIRED (SERVFAIL)"
                } else {
                    ""
                }
            );
        }
        if let Some(e) = z["last_error"].as_str() {
            let _ = writeln!(out, "    last error: {e}");
        }
    }
    out
}

fn render_refresh(r: &Value) -> String {
    format!(
        "refresh of {}: ok, serial {} from {}, serial {} served\n",
        text(&r["zone"]),
        text(&r["serial"]),
        text(&r["primary"]),
        text(&r["served_serial"])
    )
}

fn render_reload(r: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let what = r["zone"]
        .as_str()
        .map_or("all zones".to_string(), |z| format!("zone {z}"));
    let _ = write!(
        out,
        "reload of {what}: {} in {} ms, {} zones served",
        if r["ok"] == true { "ok" } else { "FAILED" },
        r["duration_ms"],
        r["zones"]
    );
    if let Some(a) = r["answers"].as_u64() {
        let held = if r["installed"] == true {
            "now in"
        } else {
            "NOT in"
        };
        let _ = write!(out, ", {a} answers {held} the XDP maps");
    }
    let _ = writeln!(out);
    for e in r["errors"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {}", text(e));
    }
    out
}
