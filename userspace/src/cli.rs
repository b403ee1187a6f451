//! The `rampart` command line (clap): check zones, run the node, read counters, clean up.
use std::{
    io::Write,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use crossbeam_channel::Sender;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::{
    anycast::{
        self, Anycast,
        announce::Announcer,
        health::{self, FastProbe, ProbeQuestion, Probes},
    },
    compile,
    config::{Config, ZonesConfig},
    cookie,
    fastpath::{self, AttachMode, Capacity, Counters, FastPath},
    identity::Identity,
    instance,
    limits::{self, LimitFlags},
    manual, metrics, privileges,
    resolver::{self, Resolver},
    server::{Server, ServerConfig, ServerHandle, SharedCatalog},
    slow_limits::SlowLimits,
    systemd,
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
    /// Validate zone files; errors are printed as file:line: message.
    Check {
        /// Zone files, each FILE or ORIGIN=FILE.
        #[arg(required = true)]
        files: Vec<String>,
        /// Also compile the fast path's table, as `run --iface` would, and report its size and
        /// the time it took.
        #[arg(long)]
        compile: bool,
    },
    /// Serve zones: attach the XDP program to the named NICs and answer the rest from userspace.
    Run(Box<RunArgs>),
    /// Print the running instance's counters.
    Stats {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// The running node's announcement: status, or a maintenance drain.
    Anycast {
        #[command(subcommand)]
        action: AnycastAction,
        /// The daemon's control socket [default: anycast.control_socket of --config, else
        /// /run/rampart/control.sock].
        #[arg(long, global = true)]
        control_socket: Option<PathBuf>,
        /// Take the control socket's path from this config file.
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Fault injection for failover drills: stop (or restart) the running node's slow path for
    /// real (its sockets close; the fast path and health checking go on).
    Debug {
        #[command(subcommand)]
        action: DebugAction,
        /// The daemon's control socket [default: as for `rampart anycast`].
        #[arg(long, global = true)]
        control_socket: Option<PathBuf>,
        #[arg(long, global = true)]
        config: Option<PathBuf>,
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
#[derive(Subcommand)]
enum AnycastAction {
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

#[derive(Subcommand, Clone, Copy)]
enum DebugAction {
    /// Close the slow path's sockets and stop its threads.
    StopSlowPath,
    /// Bind the listen addresses again and serve.
    StartSlowPath,
}

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
    /// Unix socket for `rampart anycast` (anycast.control_socket)
    /// [default: /run/rampart/control.sock].
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
        one(&mut c.xdp.pin_dir, self.pin_dir);
        one(&mut c.server.identity, self.identity);
        one(&mut c.anycast.device, self.anycast_device);
        one(&mut c.anycast.control_socket, self.control_socket);
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
        Command::Check { files, compile } => return check(&files, compile),
        Command::Run(args) => args.into_config().and_then(run),
        Command::Stats { json, pin_dir } => stats(json, &pin_dir),
        Command::Anycast {
            action,
            control_socket,
            config,
        } => anycast_command(action, control_socket, config),
        Command::Debug {
            action,
            control_socket,
            config,
        } => debug_command(action, control_socket, config),
        Command::Detach { iface } => iface.iter().try_for_each(|i| {
            fastpath::detach_iface(i)?;
            println!("detached XDP from {i}");
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
                let table = compile::compile(&catalog);
                println!(
                    "fast path: {} answers, compiled in {:.1?}",
                    table.len(),
                    started.elapsed()
                );
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

fn zone_specs(zones: &ZonesConfig) -> Vec<ZoneSpec> {
    zones.files.iter().map(|z| ZoneSpec::parse(z)).collect()
}

/// Startup: serve every zone that loads, as Knot and NSD do; one broken file among hundreds
/// is reported (file:line) and left out rather than keeping the whole node down.
/// The zones, and how many errors loading them reported.
fn load_catalog(zones: &ZonesConfig) -> Result<(Catalog, usize)> {
    let (catalog, errors) = Catalog::load_partial(&zone_specs(zones), zones.dir.as_deref());
    for e in &errors {
        error!("{e}");
    }
    for w in catalog.warnings() {
        warn!("{w}");
    }
    // No zones configured at all: a resolver alone (`Config::check` allows it only then).
    let none_asked = zones.files.is_empty() && zones.dir.is_none();
    if catalog.zone_count() == 0 && !none_asked {
        bail!("no zone loaded");
    }
    Ok((catalog, errors.len()))
}

/// SIGINT/SIGTERM and SIGHUP, registered before anything else: a SIGHUP while the zones load
/// (a reload hook, logrotate) is a reload once started, never the signal's default (death).
/// SIGINT/SIGTERM while starting still end the process at once, as before the handlers.
struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    starting: Arc<AtomicBool>,
}

impl Signals {
    fn register() -> Result<Signals> {
        let term = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let starting = Arc::new(AtomicBool::new(true));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_conditional_default(sig, starting.clone())?;
            signal_hook::flag::register(sig, term.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
        Ok(Signals {
            term,
            hup,
            starting,
        })
    }

    /// From now on SIGINT/SIGTERM stop the main loop: a clean shutdown.
    fn ready(&self) {
        self.starting.store(false, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.term.load(Ordering::Relaxed)
    }
}

fn run(config: Config) -> Result<()> {
    let signals = Signals::register()?;
    let started = Instant::now();
    // Before anything is touched: a second instance on the same addresses stops here.
    let listen_locks = instance::lock_listen(&config.server.run_dir, &config.server.listen)?;
    let user = privileges::resolve_user(config.server.user.as_deref())?;
    let mut zone_files = ZoneDirFiles::scan(config.zones.dir.as_deref());
    let (catalog, load_errors) = load_catalog(&config.zones)?;
    let catalog = Arc::new(catalog);
    let reload_stats = metrics::ReloadStats::new();
    reload_stats.load_errors(load_errors);
    release_freed_memory();
    info!(zones = catalog.zone_count(), elapsed = ?started.elapsed(), "zones loaded");
    // The table is the fast path's: sockets alone answer from the catalog, so they skip it.
    let with_xdp = !config.xdp.interfaces.is_empty();
    let table = if with_xdp {
        let table = compile::compile(&catalog);
        info!(answers = table.len(), elapsed = ?started.elapsed(), "zones compiled");
        table
    } else {
        Vec::new()
    };
    // Once, so both paths make and check cookies with the same secret (a random one too).
    let cookies = Arc::new(cookie::Cookies::from_config(&config.cookies)?);

    let mut fast = None;
    if with_xdp {
        let (rrl, budget) = (&config.rrl, &config.miss_budget);
        let prepared = fastpath::prepare(&table)?;
        let capacity = Capacity {
            buckets: rrl.table_size.max(1),
            whitelist: (rrl.whitelist.len() as u32).max(1024),
            ..Capacity::for_prepared(&prepared)
        };
        let mut fp = FastPath::load(capacity, &config.xdp.pin_dir)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let whitelist: Vec<_> = rrl.whitelist.iter().map(limits::whitelist_key).collect();
        let mut l = limits::to_limits(rrl, budget, cpus)?;
        let (secret, staging) = cookies.xdp_secrets();
        limits::set_cookies(&mut l, secret, staging);
        fp.set_limits(l, &whitelist)?;
        info!(?rrl, ?budget, "rate limits set");
        log_installed(&fp.install_prepared(prepared)?);
        for iface in &config.xdp.interfaces {
            fp.attach(iface, config.xdp.mode)?;
        }
        fast = Some(Arc::new(Mutex::new(fp)));
    }
    let anycast_on = !config.anycast.prefixes.is_empty();
    let slow_limits = if fast.is_none() {
        // Sockets only: the slow path applies the limits itself (see slow_limits), but for the
        // health probe's queries.
        SlowLimits::new(&config.rrl).map(|l| {
            let l = if anycast_on {
                l.exempting(health::slow_target(&config).ip())
            } else {
                l
            };
            Arc::new(l)
        })
    } else {
        None
    };
    let s = &config.server;
    let server_config = ServerConfig {
        identity: Arc::new(Identity::new(&s.identity)?),
        cookies,
        tcp_max_connections: s.tcp_max_clients,
        tcp_max_per_source: s.tcp_max_per_source,
        tcp_idle_timeout: Duration::from_millis(s.tcp_idle_timeout_ms),
        limits: slow_limits,
        stats: metrics::SlowStats::default(),
        ..ServerConfig::default()
    }
    .with_resolver(Resolver::from_config(&config.resolver)?);
    let shared = SharedCatalog::new(catalog.clone());
    let mut server = Some(
        Server::start_shared(&config.server.listen, shared.clone(), server_config.clone())
            .context("starting the slow path")?,
    );
    // Everything that needs root is done: become the configured user. The threads that check
    // health and announce start after, with the capabilities kept.
    let mut hand_over = vec![config.server.run_dir.clone()];
    if fast.is_some() {
        hand_over.extend(privileges::with_entries(&config.xdp.pin_dir)?);
    }
    if anycast_on
        && let Some(dir) = config.anycast.control_socket.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        hand_over.push(dir.to_owned());
    }
    // The TUN device: /dev/net/tun may be root's alone (mode 0600).
    let mut announcer = anycast_on
        .then(|| Announcer::new(&config.anycast))
        .transpose()?;
    let low_port = |p: u16| p != 0 && p < 1024;
    let needs = privileges::Needs {
        bpf: fast.is_some(),
        net_admin: anycast_on,
        bind_low_port: config.server.listen.iter().any(|a| low_port(a.port()))
            || config.server.metrics.is_some_and(|a| low_port(a.port())),
    };
    privileges::drop_to(user.as_ref(), needs, &hand_over)?;

    // Health checking and announcing, when there is something to announce.
    let mut anycast = None;
    let (ops_tx, ops_rx) = crossbeam_channel::unbounded::<(SlowPathOp, Sender<Value>)>();
    let holds_probe = Arc::new(AtomicBool::new(false));
    let mut probe_question = None;
    if anycast_on {
        let question = ProbeQuestion::from_config(&config, &shared)?;
        holds_probe.store(question.held_by(&table), Ordering::Relaxed);
        let (client, service) = health::frame_addresses(&config);
        let fast_probe = fast.as_ref().map(|fp| FastProbe {
            fast: fp.clone(),
            holds_probe: holds_probe.clone(),
            client,
            server: service,
        });
        let probes = Probes::new(
            question.clone(),
            shared.clone(),
            health::slow_target(&config),
            fast_probe,
            config.health.timeout(),
        );
        let ops = ops_tx.clone();
        let other = Box::new(move |cmd: &str| {
            let op = match cmd {
                "stop-slow-path" => SlowPathOp::Stop,
                "start-slow-path" => SlowPathOp::Start,
                _ => return json!({"error": format!("unknown command {cmd:?}")}),
            };
            let (tx, rx) = crossbeam_channel::bounded(1);
            let _ = ops.send((op, tx));
            rx.recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| json!({"error": "no reply from the main thread"}))
        });
        let announcer = announcer.take().expect("made when anycast is on");
        anycast = Some(Anycast::start(&config, announcer, probes, other)?);
        probe_question = Some(question);
    }
    let answers = table.len();
    drop(table);
    release_freed_memory();
    if let Some(addr) = config.server.metrics {
        let shared = shared.clone();
        metrics::serve(
            addr,
            metrics::Sources {
                pin_dir: fast.is_some().then(|| config.xdp.pin_dir.clone()),
                catalog: Box::new(move || shared.get()),
                anycast: anycast
                    .as_ref()
                    .map(|a: &Anycast| Box::new(a.status_reader()) as Box<dyn Fn() -> _ + Send>),
                slow: server_config.stats.clone(),
                reloads: reload_stats.clone(),
                resolver: server_config.resolver.as_ref().map(|r| r.stats()),
            },
        )?;
    }

    // systemd's watchdog is fed only while the slow path answers and the health loop turns.
    let watchdog = systemd::Watchdog::start(systemd::Liveness {
        slow: server
            .is_some()
            .then(|| ProbeQuestion::from_config(&config, &shared))
            .transpose()?
            .map(|q| (health::slow_target(&config), q)),
        health_rounds: anycast.as_ref().map(|a| {
            let status = a.status_reader();
            Box::new(move || status().rounds) as Box<dyn Fn() -> u64 + Send>
        }),
    })?;
    signals.ready();
    systemd::ready(&systemd::serving(
        catalog.zone_count(),
        with_xdp.then_some(answers),
        load_errors,
    ));
    eprintln!("rampart: ready");
    const CLOCK_REFRESH: Duration = Duration::from_secs(10);
    let mut clock_refreshed = Instant::now();
    while !signals.stopping() {
        if let Ok((op, reply)) = ops_rx.recv_timeout(Duration::from_millis(100)) {
            let _ = reply.send(slow_path_op(
                op,
                &mut server,
                &config,
                &shared,
                &server_config,
            ));
        }
        if clock_refreshed.elapsed() > CLOCK_REFRESH {
            // The cookies' wall-clock timestamps follow NTP's adjustments.
            clock_refreshed = Instant::now();
            if let Some(fp) = &fast
                && let Err(e) = lock(fp).refresh_clock()
            {
                warn!("refreshing the XDP program's clock: {e:#}");
            }
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            systemd::reloading();
            let (at, began) = (std::time::SystemTime::now(), Instant::now());
            let (table, installed, errors) =
                reload(&config.zones, &mut zone_files, &shared, fast.as_deref());
            let result = if errors == 0 && (installed || fast.is_none()) {
                metrics::ReloadResult::Ok
            } else {
                metrics::ReloadResult::Failed
            };
            reload_stats.reloaded(at, began.elapsed(), errors, result);
            let answers = fast.is_some().then_some(table.len());
            systemd::ready(&systemd::serving(
                shared.get().zone_count(),
                answers,
                errors,
            ));
            if let Some(q) = &probe_question {
                holds_probe.store(installed && q.held_by(&table), Ordering::Relaxed);
            }
            drop(table);
            release_freed_memory();
        }
    }
    info!("shutting down");
    systemd::stopping();
    // Before the slow path stops, so the watchdog doesn't report it as dead.
    drop(watchdog);
    // Withdraw first, so routers move the traffic while the sockets still answer.
    if let Some(a) = anycast {
        a.shutdown();
    }
    if let Some(server) = server {
        server.stop();
    }
    let counters = fast.as_ref().map(|fp| lock(fp).counters());
    if let Some(Ok(c)) = counters {
        let summary: Vec<String> =
            c.0.iter()
                .filter(|(_, v)| *v > 0)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
        info!("final counters: {}", summary.join(" "));
    }
    drop(listen_locks);
    Ok(())
}

/// Hands freed heap back to the kernel. glibc keeps it otherwise: after a large zone's parse
/// or a table of millions of answers, the daemon would sit on gigabytes it no longer uses.
fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[derive(Clone, Copy, Debug)]
enum SlowPathOp {
    Stop,
    Start,
}

/// `rampart debug stop-slow-path|start-slow-path`: a real fault for failover drills.
fn slow_path_op(
    op: SlowPathOp,
    server: &mut Option<ServerHandle>,
    config: &Config,
    shared: &SharedCatalog,
    server_config: &ServerConfig,
) -> Value {
    match op {
        SlowPathOp::Stop => {
            if let Some(s) = server.take() {
                s.stop();
                warn!("slow path stopped by the operator (rampart debug stop-slow-path)");
            }
            json!({"slow_path": "stopped"})
        }
        SlowPathOp::Start if server.is_some() => json!({"slow_path": "running"}),
        SlowPathOp::Start => {
            match Server::start_shared(&config.server.listen, shared.clone(), server_config.clone())
            {
                Ok(s) => {
                    *server = Some(s);
                    info!("slow path started again by the operator");
                    json!({"slow_path": "running"})
                }
                Err(e) => json!({"error": format!("{e:#}")}),
            }
        }
    }
}

fn lock(fp: &Mutex<FastPath>) -> std::sync::MutexGuard<'_, FastPath> {
    // A panic mid-install leaves a generation that is whole or not yet flipped to.
    fp.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `*.zone` files the zone dir has had since the start. One removed since is asked for again
/// on reload, so it fails like a missing `--zone` file and keeps serving its previous version
/// (with the error logged), as Knot and NSD keep a zone whose file is gone; a restart drops it.
#[derive(Debug, Default)]
struct ZoneDirFiles(std::collections::BTreeSet<PathBuf>);

impl ZoneDirFiles {
    fn scan(dir: Option<&Path>) -> ZoneDirFiles {
        let mut files = ZoneDirFiles::default();
        files.update(dir);
        files
    }

    /// Adds the files there now; returns the known ones that are gone.
    fn update(&mut self, dir: Option<&Path>) -> Vec<PathBuf> {
        let Some(dir) = dir else { return Vec::new() };
        // The same paths the catalog's loader makes (`read_dir` entries), so they match its
        // zones' sources.
        let now: std::collections::BTreeSet<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "zone") && p.is_file())
            .collect();
        let gone = self.0.difference(&now).cloned().collect();
        self.0.extend(now);
        gone
    }
}

/// SIGHUP: parse and compile the zones again. A zone whose file now fails (or is gone) keeps
/// serving its previous version; both paths switch to the new catalog together.
/// Returns the new table, whether the fast path holds it, and how many errors the load reported.
fn reload(
    zones: &ZonesConfig,
    zone_files: &mut ZoneDirFiles,
    live: &SharedCatalog,
    fast: Option<&Mutex<FastPath>>,
) -> (Vec<compile::CompiledAnswer>, bool, usize) {
    let previous = live.get();
    let mut specs = zone_specs(zones);
    specs.extend(
        zone_files
            .update(zones.dir.as_deref())
            .into_iter()
            .map(|path| ZoneSpec { origin: None, path }),
    );
    let (catalog, errors) = Catalog::reload(&previous, &specs, zones.dir.as_deref());
    for e in &errors {
        error!("reload: {e}");
    }
    let catalog = Arc::new(catalog);
    // Without a fast path nothing reads the table (see `run`).
    let table = match fast {
        Some(_) => compile::compile(&catalog),
        None => Vec::new(),
    };
    info!(
        zones = catalog.zone_count(),
        answers = table.len(),
        errors = errors.len(),
        "reloaded"
    );
    // The fast path is held while both paths switch, so the health probe sees them switch
    // together (it skips a round rather than compare the new zones with the old maps).
    let mut fp = fast.map(lock);
    live.replace(catalog.clone());
    let installed = match fp.as_deref_mut().map(|fp| fp.install(&table)) {
        Some(Ok(installed)) => {
            log_installed(&installed);
            true
        }
        Some(Err(e)) => {
            warn!("{e:#}");
            false
        }
        None => false,
    };
    (table, installed, errors.len())
}

fn log_installed(i: &fastpath::Installed) {
    info!(
        generation = i.generation,
        answers = i.answers,
        records = i.records,
        derived = i.derived,
        tails_small = i.tails_small,
        tails_large = i.tails_large,
        "fast path filled"
    );
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

/// `--control-socket`, else the config file's `anycast.control_socket`, else the default.
fn control_socket(socket: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf> {
    Ok(match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => Config::load(&c)?.anycast.control_socket,
        (None, None) => Config::default().anycast.control_socket,
    })
}

fn debug_command(
    action: DebugAction,
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<()> {
    let command = match action {
        DebugAction::StopSlowPath => "stop-slow-path",
        DebugAction::StartSlowPath => "start-slow-path",
    };
    let reply = anycast::control::request(&control_socket(socket, config)?, command)?;
    println!("slow path {}", reply["slow_path"].as_str().unwrap_or("?"));
    Ok(())
}

fn anycast_command(
    action: AnycastAction,
    socket: Option<PathBuf>,
    config: Option<PathBuf>,
) -> Result<()> {
    let socket = control_socket(socket, config)?;
    let command = match action {
        AnycastAction::Status { .. } => "status",
        AnycastAction::Drain => "drain",
        AnycastAction::Undrain => "undrain",
    };
    let reply = anycast::control::request(&socket, command)?;
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
        ])
        .into_config()
        .unwrap();
        assert_eq!(c.server.identity, "node2");
        assert_eq!(c.server.listen, ["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(c.anycast.prefixes, ["203.0.113.53/32".parse().unwrap()]);
        assert_eq!(c.anycast.control_socket, PathBuf::from("/tmp/x.sock"));
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
