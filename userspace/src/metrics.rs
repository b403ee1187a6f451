//! Prometheus text endpoint (`--metrics ADDR`): the XDP counters, the zones being served, and
//! the anycast announcement with its health probes.
use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use tracing::{debug, info};

use crate::{
    anycast::{Status, state::State},
    fastpath::Counters,
    zone::Catalog,
};

/// Where the numbers come from: the pinned counters of this instance's XDP program (if it has
/// one) and a way to see the live zones.
pub struct Sources {
    pub pin_dir: Option<PathBuf>,
    pub catalog: Box<dyn Fn() -> Arc<Catalog> + Send>,
    /// The announcement's status, when anycast is on.
    pub anycast: Option<Box<dyn Fn() -> Status + Send>>,
}

/// Serve `GET /metrics` on `addr` from a thread of its own until the process exits. One short
/// request at a time is plenty for a scraper every few seconds.
pub fn serve(addr: SocketAddr, sources: Sources) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics: binding {addr}"))?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "metrics endpoint listening");
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = answer(stream, &sources) {
                debug!("metrics request: {e}");
            }
        }
    });
    Ok((bound, handle))
}

fn answer(mut stream: TcpStream, sources: &Sources) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 1024];
    let n = stream.read(&mut request)?;
    let line = String::from_utf8_lossy(&request[..n]);
    let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
        ("200 OK", render(sources))
    } else {
        ("404 Not Found", String::from("try /metrics\n"))
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The exposition text (Prometheus text format 0.0.4).
pub fn render(sources: &Sources) -> String {
    let mut out = String::new();
    if let Some(counters) = sources
        .pin_dir
        .as_ref()
        .and_then(|d| Counters::from_pin(d).ok())
    {
        out.push_str(
            "# HELP rampart_xdp_packets_total Frames the XDP program handled, by outcome.\n",
        );
        out.push_str("# TYPE rampart_xdp_packets_total counter\n");
        for (name, value) in &counters.0 {
            out.push_str(&format!(
                "rampart_xdp_packets_total{{outcome=\"{name}\"}} {value}\n"
            ));
        }
    }
    let catalog = (sources.catalog)();
    out.push_str("# HELP rampart_zones Zones being served.\n# TYPE rampart_zones gauge\n");
    out.push_str(&format!("rampart_zones {}\n", catalog.zone_count()));
    out.push_str("# HELP rampart_zone_serial SOA serial of each zone being served.\n");
    out.push_str("# TYPE rampart_zone_serial gauge\n");
    for zone in catalog.zones() {
        out.push_str(&format!(
            "rampart_zone_serial{{zone=\"{}\"}} {}\n",
            zone.origin_key(),
            zone.serial()
        ));
    }
    if let Some(status) = sources.anycast.as_ref().map(|f| f()) {
        render_anycast(&mut out, &status);
    }
    out
}

fn render_anycast(out: &mut String, s: &Status) {
    out.push_str("# HELP rampart_anycast_announced 1 while the anycast prefixes are announced.\n");
    out.push_str("# TYPE rampart_anycast_announced gauge\n");
    out.push_str(&format!(
        "rampart_anycast_announced {}\n",
        u8::from(s.state.announced())
    ));
    out.push_str(
        "# HELP rampart_anycast_state The announcement's state (1 for the current one).\n",
    );
    out.push_str("# TYPE rampart_anycast_state gauge\n");
    for state in [
        State::Starting,
        State::Announced,
        State::Withdrawn,
        State::Draining,
    ] {
        out.push_str(&format!(
            "rampart_anycast_state{{state=\"{state}\"}} {}\n",
            u8::from(s.state == state)
        ));
    }
    out.push_str("# HELP rampart_anycast_transitions_total Announcement state changes.\n");
    out.push_str("# TYPE rampart_anycast_transitions_total counter\n");
    out.push_str(&format!(
        "rampart_anycast_transitions_total {}\n",
        s.transitions_total
    ));
    out.push_str("# HELP rampart_health_probes_total Health probes run, by probe and result.\n");
    out.push_str("# TYPE rampart_health_probes_total counter\n");
    for p in &s.probes {
        for (result, n) in [("ok", p.ok), ("failed", p.failed), ("skipped", p.skipped)] {
            out.push_str(&format!(
                "rampart_health_probes_total{{probe=\"{}\",result=\"{result}\"}} {n}\n",
                p.name
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_shows_the_zones_and_serials() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        let catalog = Arc::new(Catalog::load(&[], Some(&dir)).unwrap());
        let sources = Sources {
            pin_dir: None,
            catalog: Box::new(move || catalog.clone()),
            anycast: None,
        };
        let (addr, _thread) = serve("127.0.0.1:0".parse().unwrap(), sources).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply}");
        assert!(reply.contains("\nrampart_zones 2\n"), "{reply}");
        assert!(
            reply.contains("rampart_zone_serial{zone=\"example.com.\"} 2024010101\n"),
            "{reply}"
        );
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /nope HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.0 404"), "{reply}");
    }

    #[test]
    fn anycast_state_and_probes() {
        let status = Status {
            state: State::Withdrawn,
            identity: "n1".into(),
            prefixes: vec!["192.0.2.53/32".into()],
            method: crate::config::Method::Device,
            device: "rampart0".into(),
            interval_ms: 100,
            timeout_ms: 200,
            rise: 3,
            fall: 3,
            hold_down_ms: 2000,
            rounds: 9,
            consecutive_ok: 0,
            consecutive_failed: 3,
            probes: vec![crate::anycast::health::ProbeCounters {
                name: "slow-path",
                ok: 6,
                failed: 3,
                ..Default::default()
            }],
            transitions_total: 2,
            transitions: Vec::new(),
        };
        let mut out = String::new();
        render_anycast(&mut out, &status);
        for line in [
            "rampart_anycast_announced 0\n",
            "rampart_anycast_state{state=\"withdrawn\"} 1\n",
            "rampart_anycast_state{state=\"announced\"} 0\n",
            "rampart_anycast_transitions_total 2\n",
            "rampart_health_probes_total{probe=\"slow-path\",result=\"failed\"} 3\n",
        ] {
            assert!(out.contains(line), "{line} in {out}");
        }
    }
}
