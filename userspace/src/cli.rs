//! The `rampart` command line (clap): check zones, run the node, read counters, clean up.
use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Instant,
};

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::{
    anycast::health,
    compile,
    config::Config,
    cookie,
    ctl::{self, AnycastAction, CtlAction, DebugAction, Target},
    fastpath::{self, AttachMode, Counters, Sharing},
    heap,
    identity::Identity,
    instance,
    limits::{self, LimitFlags},
    manual,
    node::{self, Node, Signals},
    resolver,
    server::SharedCatalog,
    supervise::{self, SuperviseArgs},
    zone::{self, Catalog, ZoneSpec},
};

const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/rampart";

#[derive(Parser)]
#[command(
    name = "rampart",
    version,
    about = "Anycast DNS edge node: answers from the NIC driver (XDP), the rest from userspace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate zone files (errors as file:line: message), or a whole config file, zones
    /// included.
    Check {
        /// Zone files, each FILE or ORIGIN=FILE.
        #[arg(required_unless_present = "config")]
        files: Vec<String>,
        /// Check this config file: its keys, secrets and limits, and every zone it names.
        #[arg(long, conflicts_with = "files")]
        config: Option<PathBuf>,
        /// Also compile the fast path's table, as `run --iface` would, and report its size and
        /// the time it took.
        #[arg(long)]
        compile: bool,
    },
    /// Serve zones: attach the XDP program to the named NICs and answer the rest from userspace.
    Run(Box<RunArgs>),
    /// Ask the running node over its control socket: status, zone status, reload, refresh.
    Ctl {
        #[command(subcommand)]
        action: CtlAction,
        #[command(flatten)]
        target: Target,
    },
    /// Run `rampart run ARGS` as a child and kill it (its announcement goes with it) and start
    /// it again when it stops feeding its watchdog: for hosts without systemd.
    Supervise(SuperviseArgs),
    /// Print the running instance's counters.
    Stats {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// The running node's announcement: status, or a maintenance drain (over the control
    /// socket, as `rampart ctl`).
    Anycast {
        #[command(subcommand)]
        action: AnycastAction,
        #[command(flatten)]
        target: Target,
    },
    /// Fault injection for failover drills: stop (or restart) the running node's slow path for
    /// real (its sockets close; the fast path and health checking go on).
    Debug {
        #[command(subcommand)]
        action: DebugAction,
        #[command(flatten)]
        target: Target,
    },
    /// Remove the XDP program from a NIC: one a crashed instance left, or a running instance's
    /// (which then withdraws its announcement).
    Detach {
        #[arg(long, required = true)]
        iface: Vec<String>,
    },
    /// Write the man pages or a shell completion script (the Debian package ships both).
    Gen {
        #[command(subcommand)]
        what: GenAction,
    },
}

#[derive(Subcommand)]
enum GenAction {
    /// rampart.1 and a page per subcommand (rampart-run.1, ...) into DIR.
    Man { dir: PathBuf },
    /// The completion script for SHELL, on stdout.
    Completions { shell: clap_complete::Shell },
}

/// `rampart run` flags: each overrides its key in the config file (`config.rs`).
#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration file (see rampart.example.toml); flags override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// NIC to attach the XDP program to (repeatable; xdp.interfaces). Without it, rampart serves
    /// from sockets only.
    #[arg(long = "iface")]
    ifaces: Vec<String>,
    /// Zone file, FILE or ORIGIN=FILE (repeatable; zones.files).
    #[arg(long = "zone")]
    zones: Vec<String>,
    /// Directory whose *.zone files are all loaded, origin from the file name (zones.dir).
    #[arg(long)]
    zone_dir: Option<PathBuf>,
    /// UDP and TCP address for the slow path (repeatable; server.listen) [default: 0.0.0.0:53].
    #[arg(long = "listen")]
    listen: Vec<SocketAddr>,
    /// XDP attach mode: native (driver; fails where unsupported), generic, or auto (xdp.mode)
    /// [default: native].
    #[arg(long, value_enum)]
    xdp_mode: Option<AttachMode>,
    /// How the NIC is held: exclusive (rampart's program alone, gone with the process) or shared
    /// (a component of libxdp's dispatcher, beside xdp-filter and the like) (xdp.attach)
    /// [default: exclusive].
    #[arg(long, value_enum)]
    xdp_attach: Option<Sharing>,
    /// bpffs directory where the counters and maps are pinned for `rampart stats` (xdp.pin_dir)
    /// [default: /sys/fs/bpf/rampart].
    #[arg(long)]
    pin_dir: Option<PathBuf>,
    /// Serve Prometheus metrics (XDP counters, slow-path queries and latency, zones, reloads) on
    /// this address, at /metrics (server.metrics).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    limits: LimitFlags,
    #[command(flatten)]
    resolver: resolver::ResolverFlags,
    /// DNS cookie secret, 32 hex digits, the same on every anycast node (cookies.secret).
    #[arg(long)]
    cookie_secret: Option<String>,
    /// A second cookie secret also accepted, for rollover (cookies.staging).
    #[arg(long)]
    cookie_staging: Option<String>,
    /// Don't answer DNS cookies: the COOKIE option is ignored like an unknown option
    /// (cookies.enabled = false; the file's secrets are then unused).
    #[arg(long, conflicts_with_all = ["cookie_secret", "cookie_staging"])]
    no_cookies: bool,
    /// This node's name in NSID and CHAOS TXT id.server./hostname.bind. answers (server.identity).
    #[arg(long)]
    identity: Option<String>,
    /// Prefix to announce while healthy (repeatable; anycast.prefixes).
    #[arg(long = "anycast-prefix")]
    anycast_prefixes: Vec<ipnet::IpNet>,
    /// TUN device carrying the announced prefixes (anycast.device) [default: rampart0].
    #[arg(long)]
    anycast_device: Option<String>,
    /// Unix socket for `rampart ctl` and `rampart anycast` (server.control_socket)
    /// [default: RUN_DIR/control.sock].
    #[arg(long)]
    control_socket: Option<PathBuf>,
    /// Concurrent TCP connections over all listen addresses (server.tcp_max_clients)
    /// [default: 256].
    #[arg(long)]
    tcp_max_clients: Option<usize>,
    /// Concurrent TCP connections from one source address (server.tcp_max_per_source)
    /// [default: 16].
    #[arg(long)]
    tcp_max_per_source: Option<usize>,
    /// Close a TCP connection idle this long, in ms (server.tcp_idle_timeout_ms) [default: 10000].
    #[arg(long)]
    tcp_idle_timeout_ms: Option<u64>,
    /// Run as this user once started (server.user; "root" stays root) [default: rampart if that
    /// user exists].
    #[arg(long)]
    user: Option<String>,
    /// Runtime directory for the listen addresses' lock files (server.run_dir)
    /// [default: /run/rampart].
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

impl RunArgs {
    /// The config file (or the defaults) with every given flag applied over it.
    fn into_config(self: Box<Self>) -> Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        fn list<T>(key: &mut Vec<T>, flag: Vec<T>) {
            if !flag.is_empty() {
                *key = flag;
            }
        }
        fn one<T>(key: &mut T, flag: Option<T>) {
            if let Some(v) = flag {
                *key = v;
            }
        }
        list(&mut c.xdp.interfaces, self.ifaces);
        list(&mut c.zones.files, self.zones);
        list(&mut c.server.listen, self.listen);
        list(&mut c.anycast.prefixes, self.anycast_prefixes);
        if self.zone_dir.is_some() {
            c.zones.dir = self.zone_dir;
        }
        if self.metrics.is_some() {
            c.server.metrics = self.metrics;
        }
        one(&mut c.xdp.mode, self.xdp_mode);
        one(&mut c.xdp.attach, self.xdp_attach);
        one(&mut c.xdp.pin_dir, self.pin_dir);
        one(&mut c.server.identity, self.identity);
        one(&mut c.anycast.device, self.anycast_device);
        if self.control_socket.is_some() {
            c.server.control_socket = self.control_socket;
            c.anycast.control_socket = None;
        }
        one(&mut c.server.tcp_max_clients, self.tcp_max_clients);
        one(&mut c.server.tcp_max_per_source, self.tcp_max_per_source);
        one(&mut c.server.tcp_idle_timeout_ms, self.tcp_idle_timeout_ms);
        one(&mut c.server.run_dir, self.run_dir);
        if self.user.is_some() {
            c.server.user = self.user;
        }
        if self.xdp_mode.is_some() && c.xdp.interfaces.is_empty() {
            bail!("--xdp-mode needs an interface to attach to: give --iface (or xdp.interfaces)");
        }
        if self.xdp_attach.is_some() && c.xdp.interfaces.is_empty() {
            bail!("--xdp-attach needs an interface to attach to: give --iface (or xdp.interfaces)");
        }
        self.limits.apply(&mut c.rrl, &mut c.miss_budget);
        self.resolver.apply(&mut c.resolver);
        if self.cookie_secret.is_some() {
            c.cookies.secret = self.cookie_secret;
        }
        if self.cookie_staging.is_some() {
            c.cookies.staging = self.cookie_staging;
        }
        if self.no_cookies {
            c.cookies = cookie::CookieConfig {
                enabled: false,
                secret: None,
                staging: None,
            };
        }
        c.check()?;
        Ok(c)
    }
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(resolver::DEFAULT_LOG)),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check {
            config: Some(config),
            compile,
            ..
        } => return check_config(&config, compile),
        Command::Check { files, compile, .. } => return check(&files, compile),
        Command::Run(args) => args.into_config().and_then(run),
        Command::Ctl { action, target } => ctl::ctl(&action, &target),
        Command::Supervise(args) => {
            return supervise::supervise(&args).unwrap_or_else(|e| {
                eprintln!("rampart: {e:#}");
                ExitCode::FAILURE
            });
        }
        Command::Stats { json, pin_dir } => stats(json, &pin_dir),
        Command::Anycast { action, target } => ctl::anycast(action, &target),
        Command::Debug { action, target } => ctl::debug(action, &target),
        Command::Detach { iface } => iface.iter().try_for_each(|i| {
            println!("{}", fastpath::detach_iface(i)?);
            Ok(())
        }),
        Command::Gen { what } => generate(what),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn generate(what: GenAction) -> Result<()> {
    use clap::CommandFactory;
    match what {
        GenAction::Man { dir } => {
            for file in manual::man_pages(Cli::command(), &dir)? {
                println!("{}", dir.join(file).display());
            }
        }
        GenAction::Completions { shell } => {
            manual::completions(Cli::command(), shell, &mut std::io::stdout())
        }
    }
    Ok(())
}

fn check(files: &[String], compile: bool) -> ExitCode {
    let specs: Vec<ZoneSpec> = files.iter().map(|f| ZoneSpec::parse(f)).collect();
    match zone::check(&specs) {
        Ok((summary, catalog)) => {
            print!("{summary}");
            if compile {
                let started = Instant::now();
                // As `run --iface` builds them.
                let _small_pages = heap::SmallPages::hold();
                let table = compile::compile(&catalog);
                let compiled = started.elapsed();
                match fastpath::prepare(&table) {
                    Ok(prepared) => {
                        println!(
                            "fast path: {} answers in {} records, compiled in {compiled:.1?}, laid out in {:.1?}",
                            compile::answer_count(&table),
                            prepared.records(),
                            started.elapsed() - compiled
                        );
                        std::mem::forget(prepared);
                    }
                    Err(e) => {
                        eprintln!("fast path: {e:#}");
                        return ExitCode::FAILURE;
                    }
                }
                std::mem::forget(table);
            }
            // The process exits next: freeing millions of entries one by one would cost a
            // sizeable part of the load's time for nothing.
            std::mem::forget(catalog);
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            ExitCode::FAILURE
        }
    }
}

/// `rampart run`: the node, from its config, until SIGTERM.
fn run(config: Config) -> Result<()> {
    let signals = Signals::register()?;
    let node = Node::start(config)?;
    signals.ready();
    eprintln!("rampart: ready");
    node.run(&signals)
}

/// `rampart check --config FILE`: everything `run` would refuse, found without running: the
/// file's keys and checks, identity, cookie secrets, rate limits, every zone (all errors of
/// all files), the health probe's name; like `knotc conf-check` and `nsd-checkconf`.
fn check_config(path: &Path, compile: bool) -> ExitCode {
    let config = Config::load(path).and_then(|c| {
        c.check()?;
        Identity::new(&c.server.identity)?;
        cookie::Cookies::from_config(&c.cookies)?;
        limits::to_limits(&c.rrl, &c.miss_budget, 1)?;
        Ok(c)
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: {e:#}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let specs = node::zones::all_specs(&config.zones);
    // Secondary zones are checked by Config::check; their copies arrive by transfer.
    if specs.is_empty() && config.zones.secondary.is_empty() {
        eprintln!("{}: no zone files found", path.display());
        return ExitCode::FAILURE;
    }
    let files: Vec<String> = specs
        .iter()
        .map(|s| match &s.origin {
            Some(o) => format!("{o}={}", s.path.display()),
            None => s.path.display().to_string(),
        })
        .collect();
    if !config.anycast.prefixes.is_empty()
        && let Ok(catalog) = Catalog::load(&specs, None)
    {
        let shared = SharedCatalog::new(Arc::new(catalog));
        if let Err(e) = health::ProbeQuestion::from_config(&config, &shared) {
            eprintln!("{}: health probe: {e:#}", path.display());
            return ExitCode::FAILURE;
        }
    }
    let code = match files.is_empty() {
        true => ExitCode::SUCCESS,
        false => check(&files, compile),
    };
    if code == ExitCode::SUCCESS {
        println!(
            "config {} is ok (control socket {})",
            path.display(),
            config.control_socket().display()
        );
    }
    code
}

fn stats(json: bool, pin_dir: &Path) -> Result<()> {
    let counters = Counters::from_pin(pin_dir)?;
    // The instance that pinned the maps holds the pin dir's lock while it runs.
    if instance::holder(pin_dir).is_none() {
        bail!(
            "the rampart that pinned {} is gone (no process holds its lock): these counters are              a dead instance's",
            pin_dir.display()
        );
    }
    let mut out = std::io::stdout().lock();
    let written = if json {
        let obj: serde_json::Map<String, serde_json::Value> = counters
            .0
            .iter()
            .map(|(n, v)| (n.to_string(), (*v).into()))
            .collect();
        writeln!(out, "{}", serde_json::Value::Object(obj))
    } else {
        counters
            .0
            .iter()
            .try_for_each(|(name, value)| writeln!(out, "{name:<24} {value}"))
    };
    match written.and_then(|()| out.flush()) {
        // `rampart stats | head -3`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn run_args(args: &[&str]) -> Box<RunArgs> {
        let mut argv = vec!["rampart", "run"];
        argv.extend_from_slice(args);
        match Cli::parse_from(argv).command {
            Command::Run(args) => args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn flags_override_the_config_file() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../rampart.example.toml");
        let c = run_args(&["--config", example]).into_config().unwrap();
        assert_eq!(c.server.identity, "node1");
        assert_eq!(c.server.listen.len(), 2);
        let c = run_args(&[
            "--config",
            example,
            "--identity",
            "node2",
            "--listen",
            "127.0.0.1:5353",
            "--anycast-prefix",
            "203.0.113.53/32",
            "--control-socket",
            "/tmp/x.sock",
            "--xdp-mode",
            "generic",
            "--xdp-attach",
            "shared",
        ])
        .into_config()
        .unwrap();
        assert_eq!(c.xdp.attach, Sharing::Shared);
        assert_eq!(c.server.identity, "node2");
        assert_eq!(c.server.listen, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.anycast.prefixes, ["203.0.113.53/32".parse().unwrap()]);
        assert_eq!(c.control_socket(), PathBuf::from("/tmp/x.sock"));
        assert_eq!(c.xdp.mode, AttachMode::Generic);
        assert_eq!(c.xdp.interfaces, ["eth0"], "kept from the file");
        // Without a file: the flags alone, with the defaults.
        let c = run_args(&["--zone-dir", "zones"]).into_config().unwrap();
        assert_eq!(c.server.listen, [SocketAddr::from(([0, 0, 0, 0], 53))]);
        assert!(c.anycast.prefixes.is_empty());
        assert!(run_args(&[]).into_config().is_err(), "no zones");
    }

    /// Contradicting flags are errors that name them: cookies off with a secret, an attach mode
    /// without an interface. The TCP limits and the user reach the config.
    #[test]
    fn contradictions_are_errors() {
        let e = Cli::try_parse_from([
            "rampart",
            "run",
            "--zone",
            "z",
            "--no-cookies",
            "--cookie-secret",
            "e5e973e5a6b2a43f48e7dc849e37bfcf",
        ])
        .err()
        .expect("--no-cookies with --cookie-secret");
        assert!(e.to_string().contains("--no-cookies"), "{e}");
        let e = run_args(&["--zone", "z", "--xdp-mode", "generic"])
            .into_config()
            .unwrap_err();
        assert!(
            e.to_string().contains("--xdp-mode needs an interface"),
            "{e}"
        );
        run_args(&["--zone", "z", "--xdp-mode", "generic", "--iface", "eth1"])
            .into_config()
            .unwrap();
        let e = run_args(&["--zone", "z", "--xdp-attach", "shared"])
            .into_config()
            .unwrap_err();
        assert!(
            e.to_string().contains("--xdp-attach needs an interface"),
            "{e}"
        );
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../rampart.example.toml");
        let c = run_args(&["--config", example, "--no-cookies"])
            .into_config()
            .unwrap();
        assert!(!c.cookies.enabled && c.cookies.secret.is_none());
        let c = run_args(&[
            "--zone",
            "z",
            "--tcp-max-clients",
            "100",
            "--tcp-max-per-source",
            "4",
            "--tcp-idle-timeout-ms",
            "3000",
            "--user",
            "nobody",
        ])
        .into_config()
        .unwrap();
        let s = &c.server;
        assert_eq!(
            (
                s.tcp_max_clients,
                s.tcp_max_per_source,
                s.tcp_idle_timeout_ms
            ),
            (100, 4, 3000)
        );
        assert_eq!(s.user.as_deref(), Some("nobody"));
        let e = run_args(&["--zone", "z", "--tcp-max-per-source", "0"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("tcp_max_per_source"), "{e}");
    }

    /// The systemd unit's ExecStart is a valid command line, and its config (the packaged
    /// example) loads with it.
    #[test]
    fn unit_exec_start_parses() {
        let unit = include_str!("../../packaging/rampart.service");
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart");
        let mut argv: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(argv[0], "/usr/bin/rampart");
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../rampart.example.toml");
        let config = argv.iter().position(|a| *a == "--config").unwrap() + 1;
        assert_eq!(argv[config], "/etc/rampart/rampart.toml");
        argv[config] = example;
        let Command::Run(args) = Cli::try_parse_from(argv).unwrap().command else {
            panic!("not run")
        };
        args.into_config().unwrap();
    }

    /// Clap's own consistency checks (unique argument ids across flattened groups, defaults
    /// that parse), and the limit flags reaching their structs.
    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "rampart",
            "run",
            "--zone",
            "z",
            "--rrl-rate",
            "20",
            "--miss-rate",
            "5",
            "--rrl-whitelist",
            "192.0.2.0/24",
            "--class-rate",
            "0",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let c = args.into_config().unwrap();
        assert_eq!(
            (c.rrl.rate, c.miss_budget.rate, c.rrl.class_rate),
            (20, 5, 0)
        );
        let default = crate::limits::BudgetConfig::default();
        assert_eq!(c.miss_budget.total_rate, default.total_rate);
        assert_eq!(c.rrl.whitelist.len(), 1);
    }
}
