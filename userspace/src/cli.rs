//! The `rampart` command line (clap): check zones, run the node, read counters, clean up.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tracing::{error, info, warn};

use crate::{
    compile,
    fastpath::{self, AttachMode, Capacity, Counters, FastPath},
    limits::{self, BudgetConfig, RrlConfig},
    metrics,
    server::{Server, ServerHandle},
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
    },
    /// Serve zones: attach the XDP program to the named NICs and answer the rest from userspace.
    Run(RunArgs),
    /// Print the running instance's counters.
    Stats {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Remove an XDP program left on a NIC by a crashed instance.
    Detach {
        #[arg(long, required = true)]
        iface: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// NIC to attach the XDP program to (repeatable). Without it, rampart serves from sockets only.
    #[arg(long = "iface")]
    ifaces: Vec<String>,
    /// Zone file, FILE or ORIGIN=FILE (repeatable).
    #[arg(long = "zone")]
    zones: Vec<String>,
    /// Directory whose *.zone files are all loaded (origin from the file name).
    #[arg(long)]
    zone_dir: Option<PathBuf>,
    /// UDP and TCP address for the slow path (repeatable).
    #[arg(long = "listen", default_values_t = [SocketAddr::from(([0, 0, 0, 0], 53))])]
    listen: Vec<SocketAddr>,
    /// XDP attach mode: native (driver; fails where unsupported), generic, or auto.
    #[arg(long, value_enum, default_value_t = AttachMode::Native)]
    xdp_mode: AttachMode,
    /// bpffs directory where the counters and maps are pinned for `rampart stats`.
    #[arg(long, default_value = DEFAULT_PIN_DIR)]
    pin_dir: PathBuf,
    /// Serve Prometheus metrics (XDP counters, zones and serials) on this address, at /metrics.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    rrl: RrlConfig,
    #[command(flatten)]
    budget: BudgetConfig,
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { files } => return check(&files),
        Command::Run(args) => run(args),
        Command::Stats { json, pin_dir } => stats(json, &pin_dir),
        Command::Detach { iface } => iface.iter().try_for_each(|i| {
            fastpath::detach_iface(i)?;
            println!("detached XDP from {i}");
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rampart: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[String]) -> ExitCode {
    let specs: Vec<ZoneSpec> = files.iter().map(|f| ZoneSpec::parse(f)).collect();
    match zone::check(&specs) {
        Ok(summary) => {
            print!("{summary}");
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

fn zone_specs(args: &RunArgs) -> Vec<ZoneSpec> {
    args.zones.iter().map(|z| ZoneSpec::parse(z)).collect()
}

/// Startup: serve every zone that loads, as Knot and NSD do; one broken file among hundreds
/// is reported (file:line) and left out rather than keeping the whole node down.
fn load_catalog(args: &RunArgs) -> Result<Catalog> {
    let (catalog, errors) = Catalog::load_partial(&zone_specs(args), args.zone_dir.as_deref());
    for e in &errors {
        error!("{e}");
    }
    for w in catalog.warnings() {
        warn!("{w}");
    }
    if catalog.zone_count() == 0 {
        bail!("no zone loaded");
    }
    Ok(catalog)
}

fn run(args: RunArgs) -> Result<()> {
    if args.zones.is_empty() && args.zone_dir.is_none() {
        bail!("no zones: give --zone FILE or --zone-dir DIR");
    }
    let started = Instant::now();
    let catalog = Arc::new(load_catalog(&args)?);
    let table = compile::compile(&catalog);
    info!(zones = catalog.zone_count(), answers = table.len(), elapsed = ?started.elapsed(), "zones loaded and compiled");

    let mut fast = None;
    if !args.ifaces.is_empty() {
        let capacity = Capacity {
            buckets: args.rrl.table_size.max(1),
            whitelist: (args.rrl.whitelist.len() as u32).max(1024),
            ..Capacity::for_table(&table)
        };
        let mut fp = FastPath::load(capacity, &args.pin_dir)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let whitelist: Vec<_> = args
            .rrl
            .whitelist
            .iter()
            .map(limits::whitelist_key)
            .collect();
        fp.set_limits(
            limits::to_limits(&args.rrl, &args.budget, cpus)?,
            &whitelist,
        )?;
        info!(rrl = ?args.rrl, budget = ?args.budget, "rate limits set");
        log_installed(&fp.install(&table)?);
        for iface in &args.ifaces {
            fp.attach(iface, args.xdp_mode)?;
        }
        fast = Some(fp);
    }
    let server = Server::start(&args.listen, catalog.clone()).context("starting the slow path")?;
    if let Some(addr) = args.metrics {
        let shared = server.shared_catalog();
        metrics::serve(
            addr,
            metrics::Sources {
                pin_dir: fast.is_some().then(|| args.pin_dir.clone()),
                catalog: Box::new(move || shared.get()),
            },
        )?;
    }

    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    eprintln!("rampart: ready");
    while !term.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if hup.swap(false, Ordering::Relaxed) {
            reload(&args, &server, fast.as_mut());
        }
    }
    info!("shutting down");
    server.stop();
    if let Some(Ok(c)) = fast.as_ref().map(FastPath::counters) {
        let summary: Vec<String> =
            c.0.iter()
                .filter(|(_, v)| *v > 0)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
        info!("final counters: {}", summary.join(" "));
    }
    Ok(())
}

/// SIGHUP: parse and compile the zones again. A zone whose file now fails keeps serving its
/// previous version; both paths switch to the new catalog together.
fn reload(args: &RunArgs, server: &ServerHandle, fast: Option<&mut FastPath>) {
    let previous = server.catalog();
    let (catalog, errors) = Catalog::reload(&previous, &zone_specs(args), args.zone_dir.as_deref());
    for e in &errors {
        error!("reload: {e}");
    }
    let catalog = Arc::new(catalog);
    let table = compile::compile(&catalog);
    info!(
        zones = catalog.zone_count(),
        answers = table.len(),
        errors = errors.len(),
        "reloaded"
    );
    server.replace_catalog(catalog.clone());
    if let Some(fp) = fast {
        match fp.install(&table) {
            Ok(installed) => log_installed(&installed),
            Err(e) => warn!("{e:#}"),
        }
    }
}

fn log_installed(i: &fastpath::Installed) {
    info!(
        generation = i.generation,
        answers = i.answers,
        tails_small = i.tails_small,
        tails_large = i.tails_large,
        "fast path filled"
    );
}

fn stats(json: bool, pin_dir: &Path) -> Result<()> {
    let counters = Counters::from_pin(pin_dir)?;
    if json {
        let obj: serde_json::Map<String, serde_json::Value> = counters
            .0
            .iter()
            .map(|(n, v)| (n.to_string(), (*v).into()))
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        for (name, value) in &counters.0 {
            println!("{name:<24} {value}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

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
        assert_eq!(
            (args.rrl.rate, args.budget.rate, args.rrl.class_rate),
            (20, 5, 0)
        );
        assert_eq!(args.budget.total_rate, BudgetConfig::default().total_rate);
        assert_eq!(args.rrl.whitelist.len(), 1);
    }
}
