//! The configuration file (`rampart run --config FILE.toml`): its schema, defaults and checks.
//!
//! Every `rampart run` flag has a key here; a flag given on the command line replaces the key's
//! value (a repeatable flag replaces the whole list). Relative paths are taken from the working
//! directory, as on the command line. `rampart.example.toml` at the repository root documents
//! every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::cookie::CookieConfig;
use crate::fastpath::{AttachMode, Sharing};
use crate::limits::{BudgetConfig, RrlConfig};
use crate::resolver::ResolverConfig;

/// The whole file. Unknown keys are errors, so a typo can't silently leave a default in force.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub zones: ZonesConfig,
    pub xdp: XdpConfig,
    pub anycast: AnycastConfig,
    pub health: HealthConfig,
    /// Response rate limiting and the per-class global view (the XDP program).
    pub rrl: RrlConfig,
    /// The budget of queries the XDP program passes up to the slow path.
    pub miss_budget: BudgetConfig,
    /// DNS cookie secrets (RFC 9018 server cookies).
    pub cookies: CookieConfig,
    /// `[[key]]`: TSIG keys (RFC 8945) that secondary zones name.
    pub key: Vec<crate::secondary::KeyConfig>,
    /// Resolver mode: recursion or forwarding for allowed clients.
    pub resolver: ResolverConfig,
}

/// `[server]`: the slow path's sockets, the node's identity, the metrics endpoint.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// UDP and TCP addresses of the slow path.
    pub listen: Vec<SocketAddr>,
    /// Sent in NSID (RFC 5001) and CHAOS TXT `id.server.`/`hostname.bind.`; empty: neither.
    pub identity: String,
    /// Prometheus text endpoint (`/metrics`).
    pub metrics: Option<SocketAddr>,
    /// Concurrent TCP connections over all listen addresses; more are closed at accept.
    pub tcp_max_clients: usize,
    /// Concurrent TCP connections from one source address.
    pub tcp_max_per_source: usize,
    /// A TCP connection without a complete query (or not reading its answers) for this long is
    /// closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout_ms: u64,
    /// The user to run as once started as root has attached, bound and opened what it needs;
    /// default: `rampart` if that user exists, else root (with a warning). "root": stay root.
    pub user: Option<String>,
    /// Runtime directory: the listen addresses' lock files (one instance per address), and
    /// the control socket unless `control_socket` is set.
    pub run_dir: PathBuf,
    /// Unix socket of `rampart ctl` (and `rampart anycast`, `rampart debug`); default:
    /// `run_dir`/control.sock.
    pub control_socket: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 53))],
            identity: String::new(),
            metrics: None,
            tcp_max_clients: 256,
            tcp_max_per_source: 16,
            tcp_idle_timeout_ms: 10_000,
            user: None,
            run_dir: PathBuf::from("/run/rampart"),
            control_socket: None,
        }
    }
}

/// `[zones]`: zone files to serve.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZonesConfig {
    /// Each `FILE` or `ORIGIN=FILE`.
    pub files: Vec<String>,
    /// Every `*.zone` file here is loaded, its origin taken from the file name.
    pub dir: Option<PathBuf>,
    /// `[[zones.secondary]]`: zones transferred from primaries (AXFR/IXFR).
    pub secondary: Vec<crate::secondary::SecondaryConfig>,
}

/// `[xdp]`: the fast path.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XdpConfig {
    /// NICs to attach the XDP program to; none: sockets only.
    pub interfaces: Vec<String>,
    pub mode: AttachMode,
    /// Alone on the NIC, or a component of libxdp's dispatcher beside other XDP programs.
    pub attach: Sharing,
    /// bpffs directory where maps are pinned for `rampart stats`.
    pub pin_dir: PathBuf,
    /// Records per map generation kept free for secondary zones, whose data arrives after the
    /// maps are sized at start (a record is 128 bytes; one generation resident, two during a
    /// reload).
    pub secondary_records: u32,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            interfaces: Vec::new(),
            mode: AttachMode::Native,
            attach: Sharing::Exclusive,
            pin_dir: PathBuf::from("/sys/fs/bpf/rampart"),
            secondary_records: 65_536,
        }
    }
}

/// How announcements leave the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Addresses on a TUN device this process owns; the BGP daemon exports them (fate-sharing).
    #[default]
    Device,
    /// `announce_command` / `withdraw_command` only.
    Exec,
    /// Both.
    Both,
}

/// `[anycast]`: what is announced and how. Announcing is on when `prefixes` is not empty.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnycastConfig {
    /// Service prefixes, e.g. "192.0.2.53/32", "2001:db8:53::53/128".
    pub prefixes: Vec<IpNet>,
    pub method: Method,
    /// The TUN device whose addresses are the announcement (dies with the process).
    pub device: String,
    /// Run with `sh -c` on every announce (env RAMPART_PREFIXES, RAMPART_REASON).
    pub announce_command: Option<String>,
    /// Run with `sh -c` on every withdrawal, including at shutdown.
    pub withdraw_command: Option<String>,
    /// The old name of `server.control_socket` (the socket is the node's, anycast on or off).
    pub control_socket: Option<PathBuf>,
    /// At shutdown (SIGTERM): withdraw, wait this long for routers to move the traffic, then
    /// close the sockets, so queries in flight are still answered.
    pub shutdown_grace_ms: u64,
}

impl Default for AnycastConfig {
    fn default() -> Self {
        AnycastConfig {
            prefixes: Vec::new(),
            method: Method::Device,
            device: "rampart0".into(),
            announce_command: None,
            withdraw_command: None,
            control_socket: None,
            shutdown_grace_ms: 500,
        }
    }
}

/// `[health]`: probes and the announcement's state machine.
///
/// Defaults detect a failure in under a second without flapping: a probe round every 100 ms,
/// each probe given 200 ms (a loaded 2-CPU box answers loopback UDP in well under 10 ms, so a
/// 200 ms silence is a fault, not jitter); three failed rounds in a row withdraw, so a fault
/// that fails fast (program detached, socket closed) is acted on in ~300 ms and one that times
/// out in at most ~3 × 200 ms + 100 ms = 700 ms. One lost probe (a scheduling hiccup) never
/// withdraws. Three good rounds re-announce, but never sooner than 2 s after the withdrawal: the
/// announcement changes at most once per hold-down, so a node failing every 200 ms costs the
/// routers one withdraw/announce pair per 2 s, not one per toggle.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive good rounds before announcing.
    pub rise: u32,
    /// Consecutive failed rounds before withdrawing (or this many among the last 2 × fall).
    pub fall: u32,
    /// Minimum time withdrawn before announcing again, the start included (so also the minimum
    /// dwell between changes, even for a daemon restarted in a loop).
    pub hold_down_ms: u64,
    /// Name the probes ask; default: the first zone's apex.
    pub probe_name: Option<String>,
    /// Type the probes ask (presentation form).
    pub probe_type: String,
    /// Where the slow-path probe is sent; default: the first listen address (127.0.0.1 or ::1
    /// for a wildcard one).
    pub probe_address: Option<SocketAddr>,
    /// Resolver mode: how often the upstreams (root hints or forwarders) are asked `. NS`.
    pub upstream_interval_ms: u64,
    /// Resolver mode: how long one upstream check waits for an answer (twice at most: the last
    /// upstream that answered, then all the others).
    pub upstream_timeout_ms: u64,
    /// Resolver mode: the other nodes' unicast service addresses, asked for their upstream
    /// health (the fleet guard) when none of this node's upstreams answers.
    pub peers: Vec<SocketAddr>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 100,
            timeout_ms: 200,
            rise: 3,
            fall: 3,
            hold_down_ms: 2000,
            probe_name: None,
            probe_type: "SOA".into(),
            probe_address: None,
            upstream_interval_ms: 1000,
            upstream_timeout_ms: 500,
            peers: Vec::new(),
        }
    }
}

impl HealthConfig {
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn hold_down(&self) -> Duration {
        Duration::from_millis(self.hold_down_ms)
    }
}

impl Config {
    /// Reads and checks a file.
    pub fn load(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let config: Config =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    /// The node's control socket: `server.control_socket`, else the old `anycast.control_socket`,
    /// else `control.sock` in the run dir.
    pub fn control_socket(&self) -> PathBuf {
        (self.server.control_socket.clone())
            .or_else(|| self.anycast.control_socket.clone())
            .unwrap_or_else(|| self.server.run_dir.join("control.sock"))
    }

    /// Checks what serde can't: run after command-line overrides are applied.
    pub fn check(&self) -> Result<()> {
        if let (Some(s), Some(a)) = (&self.server.control_socket, &self.anycast.control_socket)
            && s != a
        {
            bail!(
                "server.control_socket ({}) and its old name anycast.control_socket ({}) differ: \
                 keep server.control_socket",
                s.display(),
                a.display()
            );
        }
        if self.zones.files.is_empty()
            && self.zones.dir.is_none()
            && self.zones.secondary.is_empty()
            && !self.resolver.enabled
        {
            bail!(
                "no zones: give --zone FILE or --zone-dir DIR (or [zones] or [[zones.secondary]] \
                 in the config), or --resolver"
            );
        }
        crate::secondary::check(&self.zones.secondary, &self.key)?;
        self.resolver.check()?;
        if self.server.listen.is_empty() {
            bail!("no listen address");
        }
        if self.server.identity.len() > 255 {
            bail!("server.identity is longer than 255 bytes");
        }
        let s = &self.server;
        if s.tcp_max_clients == 0 || s.tcp_max_per_source == 0 || s.tcp_idle_timeout_ms == 0 {
            bail!(
                "server.tcp_max_clients, tcp_max_per_source and tcp_idle_timeout_ms must be at least 1"
            );
        }
        let h = &self.health;
        if h.interval_ms == 0 || h.timeout_ms == 0 || h.rise == 0 || h.fall == 0 {
            bail!("health.interval_ms, timeout_ms, rise and fall must be at least 1");
        }
        if h.upstream_interval_ms == 0 || h.upstream_timeout_ms == 0 {
            bail!("health.upstream_interval_ms and upstream_timeout_ms must be at least 1");
        }
        if !h.peers.is_empty() && !self.resolver.enabled {
            bail!(
                "health.peers compares upstream health: it needs resolver mode ([resolver] enabled)"
            );
        }
        let a = &self.anycast;
        if a.method != Method::Device && a.announce_command.is_none() && !a.prefixes.is_empty() {
            bail!(
                "anycast.method = {:?} needs anycast.announce_command",
                a.method
            );
        }
        if a.device.is_empty() || a.device.len() >= libc::IFNAMSIZ {
            bail!("anycast.device must be 1 to 15 bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_parses_and_checks() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rampart.example.toml");
        let c = Config::load(&path).unwrap();
        c.check().unwrap();
        assert_eq!(c.server.identity, "node1");
        assert_eq!(c.anycast.prefixes.len(), 2);
        assert_eq!(c.anycast.method, Method::Device);
        assert_eq!(c.xdp.mode, AttachMode::Native);
        assert_eq!(c.xdp.attach, Sharing::Exclusive);
        assert_eq!((c.rrl.rate, c.rrl.slip, c.rrl.whitelist.len()), (200, 2, 2));
        assert_eq!(c.miss_budget.total_rate, 20_000);
    }

    #[test]
    fn defaults_and_errors() {
        let c: Config = toml::from_str("[zones]\ndir = \"zones\"\n").unwrap();
        c.check().unwrap();
        assert_eq!(c.health.interval_ms, 100);
        assert_eq!(c.anycast.device, "rampart0");
        assert_eq!(c.server.listen, [SocketAddr::from(([0, 0, 0, 0], 53))]);
        assert_eq!(c.control_socket(), Path::new("/run/rampart/control.sock"));
        let old: Config =
            toml::from_str("[zones]\ndir = \"z\"\n[anycast]\ncontrol_socket = \"/x/c.sock\"\n")
                .unwrap();
        assert_eq!(
            old.control_socket(),
            Path::new("/x/c.sock"),
            "the old key still works"
        );
        let both: Config = toml::from_str(
            "[zones]\ndir = \"z\"\n[server]\ncontrol_socket = \"/y\"\n[anycast]\ncontrol_socket = \"/x\"\n",
        )
        .unwrap();
        assert!(both.check().unwrap_err().to_string().contains("differ"));
        assert!(c.cookies.enabled, "cookies are answered by default");
        let off: Config = toml::from_str(
            "[cookies]
enabled = false
",
        )
        .unwrap();
        assert!(!off.cookies.enabled);
        assert!(toml::from_str::<Config>("[health]\nintervall_ms = 5\n").is_err());
        let peers: Config =
            toml::from_str("[zones]\ndir = \"z\"\n[health]\npeers = [\"192.0.2.1:53\"]\n").unwrap();
        assert!(
            peers
                .check()
                .unwrap_err()
                .to_string()
                .contains("resolver mode")
        );
        let shared: Config = toml::from_str("[xdp]\nattach = \"shared\"\n").unwrap();
        assert_eq!(shared.xdp.attach, Sharing::Shared);
        assert!(toml::from_str::<Config>("[xdp]\nattach = \"sharing\"\n").is_err());
        assert!(toml::from_str::<Config>("[anycast]\nprefixes = [\"192.0.2.300/32\"]\n").is_err());
        let exec: Config = toml::from_str(
            "[zones]\ndir = \"z\"\n[anycast]\nmethod = \"exec\"\nprefixes = [\"192.0.2.53/32\"]\n",
        )
        .unwrap();
        assert!(exec.check().is_err(), "exec without a command");
    }

    #[test]
    fn resolver_section() {
        let alone: Config = toml::from_str(
            "[resolver]\nenabled = true\nroot_hints = [\"192.0.2.1\"]\nallow = [\"192.0.2.0/24\"]\n",
        )
        .unwrap();
        alone.check().expect("a resolver needs no zones");
        assert_eq!(alone.resolver.allow.len(), 1);
        assert!(alone.resolver.dnssec, "validation on by default");
        let off: Config = toml::from_str("[resolver]\nroot_hints = [\"192.0.2.1\"]\n").unwrap();
        assert!(off.check().is_err(), "neither zones nor resolver mode");
        let nowhere: Config =
            toml::from_str("[resolver]\nenabled = true\nroot_hints = []\n").unwrap();
        assert!(nowhere.check().is_err(), "no hints, no forwarders");
        let anchor: Config = toml::from_str(
            "[resolver]\nenabled = true\ntrust_anchor = \"/nonexistent/root.key\"\n",
        )
        .unwrap();
        assert!(anchor.check().is_err(), "missing trust anchor file");
        assert!(toml::from_str::<Config>("[resolver]\ncache_sise = 5\n").is_err());
    }
}
