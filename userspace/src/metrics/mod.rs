//! Prometheus endpoint (`--metrics ADDR`): the XDP counters, the slow path's statistics, the
//! zones and reloads, the anycast announcement with its health probes.
//!
//! The exposition (names, types, label escaping, histogram buckets) is prometheus-client's, the
//! Prometheus project's own Rust client (Apache-2.0/MIT, kept by the Prometheus maintainers):
//! label values such as zone names with `"` or `\` in them come out escaped as the text format
//! requires, which hand-written text got wrong. Serving one short GET is a few lines over std, so
//! no HTTP stack comes with it.
mod collect;
mod reload;
mod slow;
mod xfr;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::PathBuf,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use prometheus_client::{encoding::prometheus_text, registry::Registry};
use tracing::{debug, info};

pub use reload::{ReloadResult, ReloadStats};
pub use slow::{ReplyNote, SlowStats, TcpRefusal};
pub use xfr::XfrStats;

use crate::{anycast::Status, resolver::ResolverStats, zone::Catalog};

/// Where the numbers come from: the pinned counters of this instance's XDP program (if it has
/// one), a way to see the live zones, and the handles the slow path and the reloads count on.
pub struct Sources {
    pub pin_dir: Option<PathBuf>,
    pub catalog: Box<dyn Fn() -> Arc<Catalog> + Send>,
    /// The announcement's status, when anycast is on.
    pub anycast: Option<Box<dyn Fn() -> Status + Send>>,
    pub slow: SlowStats,
    pub reloads: ReloadStats,
    /// Secondary zones' transfers (registered when any zone is secondary).
    pub xfr: Option<XfrStats>,
    /// Resolver mode's counters, when it is on.
    pub resolver: Option<ResolverStats>,
}

/// Every family the endpoint serves.
pub fn registry(sources: Sources) -> Registry {
    let mut registry = Registry::default();
    if let Some(pin_dir) = sources.pin_dir {
        registry.register_collector(Box::new(collect::Xdp::pinned(pin_dir)));
    }
    sources.slow.register(&mut registry);
    registry.register_collector(Box::new(collect::Zones(Mutex::new(sources.catalog))));
    sources.reloads.register(&mut registry);
    if let Some(xfr) = &sources.xfr {
        xfr.register(&mut registry);
    }
    if let Some(resolver) = &sources.resolver {
        resolver.register(&mut registry);
    }
    if let Some(anycast) = sources.anycast {
        registry.register_collector(Box::new(collect::Anycast(Mutex::new(anycast))));
    }
    registry
}

/// Serve `GET /metrics` on `addr` from a thread of its own until the process exits. One short
/// request at a time is plenty for a scraper every few seconds.
pub fn serve(addr: SocketAddr, sources: Sources) -> Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).with_context(|| format!("metrics: binding {addr}"))?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, "metrics endpoint listening");
    let registry = registry(sources);
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(e) = answer(stream, &registry) {
                debug!("metrics request: {e}");
            }
        }
    });
    Ok((bound, handle))
}

fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = [0u8; 1024];
    let n = stream.read(&mut request)?;
    let line = String::from_utf8_lossy(&request[..n]);
    let (status, body) = if line.starts_with("GET /metrics ") || line.starts_with("GET / ") {
        ("200 OK", render(registry))
    } else {
        ("404 Not Found", String::from("try /metrics\n"))
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        prometheus_text::CONTENT_TYPE,
        body.len()
    )
}

/// The exposition text (Prometheus text format 0.0.4).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String fails only if an encoder does, which is a bug: serve what was written.
    if let Err(e) = prometheus_text::encode(&mut out, registry) {
        debug!("metrics encoding: {e}");
    }
    out
}

#[cfg(test)]
mod tests;
