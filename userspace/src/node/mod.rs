//! The running node: zones (secondary zones too), fast path, slow path, anycast and the control socket, built in
//! startup order (docs/ARCHITECTURE.md §7), driven by one main loop, shut down in reverse.
pub mod control;
pub mod signals;
mod startup;
pub mod zones;

use std::collections::BTreeSet;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use crate::{
    anycast::{
        Anycast,
        announce::Announcer,
        health::{self, ProbeQuestion},
    },
    compile,
    config::Config,
    control::{Responder, server::ControlServer},
    cookie,
    fastpath::Sharing,
    fastpath::{self, FastPath},
    heap,
    identity::Identity,
    instance::{self, ListenLocks},
    metrics, privileges,
    resolver::Resolver,
    secondary::Secondaries,
    server::{Server, ServerConfig, ServerHandle, SharedCatalog},
    slow_limits::SlowLimits,
    systemd,
    zone::{Catalog, ZoneSpec},
};
use control::{Cause, NodeStatus, Op, ReloadOutcome, SharedView, View, XdpStatus};
pub use signals::Signals;
use zones::{Loaded, ZoneDirFiles, ZoneTable, unix_ms};

/// Every part of a running node; [`Node::run`] serves until SIGTERM.
pub struct Node {
    config: Config,
    _listen_locks: ListenLocks,
    zone_files: ZoneDirFiles,
    shared: SharedCatalog,
    fast: Option<Arc<Mutex<FastPath>>>,
    server: Option<ServerHandle>,
    server_config: ServerConfig,
    anycast: Option<Anycast>,
    probe_question: Option<ProbeQuestion>,
    holds_probe: Arc<AtomicBool>,
    reload_stats: metrics::ReloadStats,
    watchdog: Option<systemd::Watchdog>,
    control: Option<ControlServer>,
    ops: Receiver<(Op, Responder)>,
    view: SharedView,
    secondaries: Secondaries,
    /// Each new version of a secondary zone (or its expiry), by origin: reloaded alone.
    installs: Receiver<String>,
    /// Kept: with no secondary zone no thread holds a sender, and a disconnected channel
    /// would be ready on every turn of the main loop.
    _installs_tx: Sender<String>,
}

/// What one reload reads again.
enum Scope {
    All,
    /// These zones' files only (the label names them in the outcome).
    Some(String, Vec<ZoneSpec>),
}

impl Node {
    /// Loads the zones, fills and attaches the fast path, binds the slow path, drops
    /// privileges, starts anycast, the control socket, metrics and the watchdog.
    pub fn start(config: Config) -> Result<Node> {
        let started = Instant::now();
        // While the notify socket is reachable: it may be the supervisor's own (0600).
        systemd::connect();
        // Before anything is touched: a second instance on the same addresses stops here.
        let listen_locks = instance::lock_listen(&config.server.run_dir, &config.server.listen)?;
        let user = privileges::resolve_user(config.server.user.as_deref())?;
        let zone_files = ZoneDirFiles::scan(config.zones.dir.as_deref());
        let xfr_stats = metrics::XfrStats::default();
        let mut secondaries = Secondaries::new(&config.zones.secondary, &config.key, &xfr_stats)?;
        let with_secondaries = !secondaries.zones().is_empty();
        let (catalog, load_errors) = zones::load_catalog(&config.zones, &secondaries)?;
        let catalog = Arc::new(catalog);
        let reload_stats = metrics::ReloadStats::new();
        reload_stats.load_errors(load_errors.len());
        heap::release_freed_memory();
        info!(zones = catalog.zone_count(), elapsed = ?started.elapsed(), "zones loaded");
        let with_xdp = !config.xdp.interfaces.is_empty();
        let anycast_on = !config.anycast.prefixes.is_empty();
        // Once, so both paths make and check cookies with the same secret (a random one too).
        let cookies = Arc::new(cookie::Cookies::from_config(&config.cookies)?);
        // The slow path answers as soon as the zones are loaded, applying the rate limits
        // itself (but for the health probe's queries) until the XDP program is there to apply
        // them.
        let slow_limits = SlowLimits::new(&config.rrl).map(|l| {
            let l = if anycast_on {
                l.exempting(health::slow_target(&config).ip())
            } else {
                l
            };
            Arc::new(l)
        });
        let s = &config.server;
        let server_config = ServerConfig {
            identity: Arc::new(Identity::new(&s.identity)?),
            cookies: cookies.clone(),
            tcp_max_connections: s.tcp_max_clients,
            tcp_max_per_source: s.tcp_max_per_source,
            tcp_idle_timeout: Duration::from_millis(s.tcp_idle_timeout_ms),
            limits: slow_limits.clone(),
            stats: metrics::SlowStats::default(),
            notify: with_secondaries.then(|| secondaries.notify_hook()),
            ..ServerConfig::default()
        }
        .with_resolver(Resolver::from_config(&config.resolver)?);
        let shared = SharedCatalog::new(catalog.clone());
        let server = Some(
            Server::start_shared(&config.server.listen, shared.clone(), server_config.clone())
                .context("starting the slow path")?,
        );
        info!(elapsed = ?started.elapsed(), "slow path answering");
        // The table and its layout are built on small pages (`heap::SmallPages`), until installed.
        let small_pages = with_xdp.then(heap::SmallPages::hold);
        // The table is the fast path's: sockets alone answer from the catalog, so they skip it.
        let (table, counts) = if with_xdp {
            let (table, counts) = compile::compile_counted(&catalog);
            info!(answers = compile::answer_count(&table), elapsed = ?started.elapsed(), "zones compiled");
            (table, Some(counts))
        } else {
            (Vec::new(), None)
        };
        // The table goes once laid out (half a gigabyte at a million names, before the maps
        // are made and filled): what is asked of it later is read now. Whether the maps hold
        // the health probe's answer (its fast probe expects XDP to answer it):
        let holds_probe = Arc::new(AtomicBool::new(
            anycast_on && with_xdp && ProbeQuestion::from_config(&config, &shared)?.held_by(&table),
        ));
        let answers = table.len();
        let mut table_view = ZoneTable::default();
        let mut tried = zones::all_specs(&config.zones);
        tried.extend(secondaries.specs());
        table_view.update(&Loaded {
            catalog: &catalog,
            tried: &tried,
            full: true,
            errors: &load_errors,
            answers: counts.as_deref(),
            now_unix_ms: unix_ms(SystemTime::now()),
        });
        let (fast, generation) = match with_xdp {
            true => {
                // Secondary zones without a copy yet arrive after the maps are sized.
                let room = with_secondaries.then_some(config.xdp.secondary_records);
                let (fp, generation) = startup::fast_path(
                    started,
                    &config,
                    table,
                    &cookies,
                    room,
                    server_config.resolver.as_deref(),
                )?;
                // Both slots hold the first install's zones: the slow path follows the
                // program's generation from now on.
                shared.follow(fp.generation_word()?);
                // Cache hits of names under no apex's top label skip the zones' lookups.
                if let Some(resolver) = server_config.resolver.as_deref() {
                    resolver.xdp_zones(&catalog, false);
                }
                (Some(Arc::new(Mutex::new(fp))), generation)
            }
            false => (None, 0),
        };
        drop(small_pages);
        // Every query meets the program's limits now, before the slow path's.
        if fast.is_some()
            && let Some(l) = &slow_limits
        {
            l.lift();
        }
        // Everything that needs root is done: become the configured user. The threads that
        // check health, announce and answer the control socket start after, with the
        // capabilities kept.
        let mut hand_over = vec![config.server.run_dir.clone()];
        // The secondary zones' copies are rewritten by each transfer.
        for dir in secondaries.writable_dirs() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            hand_over.push(dir);
        }
        if fast.is_some() {
            hand_over.extend(privileges::with_entries(&config.xdp.pin_dir)?);
        }
        let control_socket = config.control_socket();
        if let Some(dir) = control_socket.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            hand_over.push(dir.to_owned());
        }
        // The TUN device: /dev/net/tun may be root's alone (mode 0600).
        let announcer = anycast_on
            .then(|| Announcer::new(&config.anycast))
            .transpose()?;
        let low_port = |p: u16| p != 0 && p < 1024;
        let needs = privileges::Needs {
            bpf: fast.is_some(),
            net_admin: anycast_on,
            dispatcher: fast.is_some() && config.xdp.attach == Sharing::Shared,
            bind_low_port: config.server.listen.iter().any(|a| low_port(a.port()))
                || config.server.metrics.is_some_and(|a| low_port(a.port())),
        };
        privileges::drop_to(user.as_ref(), needs, &hand_over)?;
        let (installs_tx, installs) = crossbeam_channel::unbounded::<String>();
        secondaries.start(installs_tx.clone())?;

        // Health checking and announcing, when there is something to announce.
        let (anycast, probe_question) = match announcer {
            Some(announcer) => {
                let parts = startup::Parts {
                    config: &config,
                    shared: &shared,
                    fast: fast.as_ref(),
                    holds_probe: &holds_probe,
                    resolver: server_config.resolver.as_ref(),
                };
                let (anycast, question) = startup::anycast(parts, announcer)?;
                (Some(anycast), Some(question))
            }
            None => (None, None),
        };
        // The layout the install copied, and what the anycast start made.
        heap::release_freed_memory();

        let view = Arc::new(Mutex::new(View {
            node: NodeStatus {
                version: env!("CARGO_PKG_VERSION"),
                pid: std::process::id(),
                identity: config.server.identity.clone(),
                started_unix_ms: unix_ms(SystemTime::now()),
                listen: config.server.listen.clone(),
                slow_path: "running",
                xdp: with_xdp.then(|| XdpStatus {
                    interfaces: config.xdp.interfaces.clone(),
                    mode: format!("{:?}", config.xdp.mode).to_lowercase(),
                    answers,
                    generation,
                }),
                zones: catalog.zone_count(),
                zones_failing: 0,
                control_socket: control_socket.clone(),
                last_reload: None,
            },
            zones: table_view,
        }));
        {
            let mut v = control::lock(&view);
            v.node.zones_failing = failing(&v.zones);
        }
        let (ops_tx, ops) = crossbeam_channel::bounded(16);
        let control = ControlServer::start(
            &control_socket,
            control::handler(
                view.clone(),
                ops_tx,
                anycast.as_ref().map(Anycast::control),
                secondaries.handles(),
            ),
        )?;
        info!(socket = %control_socket.display(), "control socket ready (rampart ctl)");

        if let Some(addr) = config.server.metrics {
            let shared = shared.clone();
            metrics::serve(
                addr,
                metrics::Sources {
                    pin_dir: fast.is_some().then(|| config.xdp.pin_dir.clone()),
                    catalog: Box::new(move || shared.get()),
                    anycast: anycast.as_ref().map(|a: &Anycast| {
                        Box::new(a.status_reader()) as Box<dyn Fn() -> _ + Send>
                    }),
                    slow: server_config.stats.clone(),
                    reloads: reload_stats.clone(),
                    xfr: with_secondaries.then(|| xfr_stats.clone()),
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
        systemd::ready(&systemd::serving(
            catalog.zone_count(),
            with_xdp.then_some(answers),
            load_errors.len(),
        ));
        Ok(Node {
            config,
            _listen_locks: listen_locks,
            zone_files,
            shared,
            fast,
            server,
            server_config,
            anycast,
            probe_question,
            holds_probe,
            reload_stats,
            watchdog,
            control: Some(control),
            ops,
            view,
            secondaries,
            installs,
            _installs_tx: installs_tx,
        })
    }

    /// Serves until SIGINT/SIGTERM: control requests, SIGHUP reloads, secondary zones' new
    /// versions, the cookies' clock.
    pub fn run(mut self, signals: &Signals) -> Result<()> {
        const CLOCK_REFRESH: Duration = Duration::from_secs(10);
        let mut clock_refreshed = Instant::now();
        while !signals.stopping() {
            let mut transferred = BTreeSet::new();
            crossbeam_channel::select! {
                recv(self.ops) -> msg => if let Ok((op, responder)) = msg {
                    // Past its deadline the client has reported failure: not carried out.
                    if responder.accept() {
                        responder.done(self.operate(op));
                    }
                },
                recv(self.installs) -> origin => {
                    // One reload for every version that arrived meanwhile.
                    transferred.extend(origin);
                    transferred.extend(self.installs.try_iter());
                },
                default(Duration::from_millis(100)) => {},
            }
            if clock_refreshed.elapsed() > CLOCK_REFRESH {
                // The cookies' wall-clock timestamps follow NTP's adjustments.
                clock_refreshed = Instant::now();
                if let Some(fp) = &self.fast
                    && let Err(e) = lock(fp).refresh_clock()
                {
                    warn!("refreshing the XDP program's clock: {e:#}");
                }
            }
            if signals.take_hup() {
                // Reads everything, the transferred zones too.
                self.reload(Cause::Signal, Scope::All);
            } else if !transferred.is_empty() {
                let label = transferred.iter().cloned().collect::<Vec<_>>().join(", ");
                let specs = self.secondaries.specs_of(&transferred);
                self.reload(Cause::Transfer, Scope::Some(label, specs));
            }
        }
        self.shutdown();
        Ok(())
    }

    fn operate(&mut self, op: Op) -> Value {
        match op {
            Op::Reload(zone) => {
                let spec = zone.as_deref().and_then(|z| self.spec_of(z));
                let scope = match (zone, spec) {
                    (Some(z), None) => {
                        return json!({"error": format!("zone {z} is not served here")});
                    }
                    (Some(z), Some(spec)) => Scope::Some(z, vec![spec]),
                    (None, _) => Scope::All,
                };
                serde_json::to_value(self.reload(Cause::Ctl, scope)).unwrap_or(Value::Null)
            }
            Op::StopSlowPath => {
                if let Some(s) = self.server.take() {
                    s.stop();
                    warn!("slow path stopped by the operator (rampart debug stop-slow-path)");
                }
                control::lock(&self.view).node.slow_path = "stopped";
                json!({"slow_path": "stopped"})
            }
            Op::StartSlowPath if self.server.is_some() => json!({"slow_path": "running"}),
            Op::StartSlowPath => match Server::start_shared(
                &self.config.server.listen,
                self.shared.clone(),
                self.server_config.clone(),
            ) {
                Ok(s) => {
                    self.server = Some(s);
                    info!("slow path started again by the operator");
                    control::lock(&self.view).node.slow_path = "running";
                    json!({"slow_path": "running"})
                }
                Err(e) => json!({"error": format!("{e:#}")}),
            },
        }
    }

    /// The file to read for `zone`: a secondary zone's on-disk copy, its spec from the config
    /// (keeping an `ORIGIN=` given there), else the zone dir's file.
    fn spec_of(&self, zone: &str) -> Option<ZoneSpec> {
        if let Some(z) = self.secondaries.zone(zone) {
            let origins = BTreeSet::from([z.origin().to_owned()]);
            return self.secondaries.specs_of(&origins).pop();
        }
        let view = control::lock(&self.view);
        let zones::ZoneSource::File { path } = &view.zones.get(zone)?.source else {
            return None;
        };
        let listed = zones::zone_specs(&self.config.zones)
            .into_iter()
            .find(|s| &s.path == path);
        Some(listed.unwrap_or(ZoneSpec {
            origin: None,
            path: path.clone(),
        }))
    }

    /// Parses and compiles every zone (or the ones given) again. A zone whose file now fails
    /// (or is gone) keeps serving its previous version; both paths switch to the new catalog
    /// together. Secondary zones past their expire are left out (SERVFAIL).
    fn reload(&mut self, cause: Cause, scope: Scope) -> ReloadOutcome {
        // A transfer is not the operator's reload: systemd hears of those only.
        if cause != Cause::Transfer {
            systemd::reloading();
        }
        let (at, began) = (SystemTime::now(), Instant::now());
        let previous = self.shared.get();
        let zones = &self.config.zones;
        let full = matches!(scope, Scope::All);
        let (zone, mut catalog, errors, tried) = match scope {
            Scope::Some(label, tried) => {
                let (catalog, errors) = previous.reload_some(&tried);
                (Some(label), catalog, errors, tried)
            }
            Scope::All => {
                let gone = self.zone_files.update(zones.dir.as_deref());
                let gone = gone.into_iter().map(|path| ZoneSpec { origin: None, path });
                let mut specs = zones::zone_specs(zones);
                specs.extend(gone.clone());
                specs.extend(self.secondaries.specs());
                let (catalog, errors) = Catalog::reload(&previous, &specs, zones.dir.as_deref());
                let mut tried = zones::all_specs(zones);
                tried.extend(gone);
                tried.extend(self.secondaries.specs());
                (None, catalog, errors, tried)
            }
        };
        catalog.set_expired(&self.secondaries.expired_origins());
        drop(previous);
        for e in &errors {
            error!("reload: {e}");
        }
        let catalog = Arc::new(catalog);
        // Without a fast path nothing reads the table. Built and laid out on small pages.
        let small_pages = self.fast.is_some().then(heap::SmallPages::hold);
        let (table, counts) = match self.fast {
            Some(_) => compile::compile_counted(&catalog),
            None => (Vec::new(), Vec::new()),
        };
        info!(
            zones = catalog.zone_count(),
            answers = table.len(),
            errors = errors.len(),
            "reloaded"
        );
        // Read now: the install drops the table once laid out.
        let entries = table.len();
        let held = (self.probe_question.as_ref()).is_some_and(|q| q.held_by(&table));
        // Both paths switch in one step: the slow path's new zones wait in the idle
        // generation's slot, and the one write that flips the program's generation serves them
        // (the slow path reads that word), so neither answers an older version than the other.
        // The fast path is held meanwhile, so the health probe sees them switch together (it
        // skips a round rather than compare the new zones with the old maps).
        let mut fp = self.fast.as_deref().map(lock);
        // Cached names are in no zone; a new zone may hold some: the XDP cache is emptied
        // before the flip (its entries come back on their next hits).
        if let Some(resolver) = &self.server_config.resolver {
            resolver.forget_xdp();
            resolver.xdp_cache_first(table.is_empty());
            resolver.xdp_zones(&catalog, true);
        }
        let staged = fp.is_some().then(|| self.shared.stage(catalog.clone()));
        let installed = fp.as_deref_mut().map(|fp| fp.install_owned(table));
        drop(fp);
        drop(small_pages);
        // After the flip the old zones' slot takes the new ones: the old are freed now, not
        // held to the next reload. No fast path, or no flip (its install failed): the slow
        // path serves them alone.
        let previous = match installed {
            Some(Ok(_)) => self.shared.settle(),
            _ => self.shared.replace(catalog.clone()),
        };
        drop((staged, previous));
        let installed = match installed {
            Some(Ok(i)) => {
                log_installed(&i, began);
                // The old zones are gone from the program: the filter holds the new ones'.
                if let Some(resolver) = &self.server_config.resolver {
                    resolver.xdp_zones(&catalog, false);
                }
                Some(i)
            }
            Some(Err(e)) => {
                warn!("{e:#}");
                None
            }
            None => None,
        };
        let ok = errors.is_empty() && (installed.is_some() || self.fast.is_none());
        let result = if ok {
            metrics::ReloadResult::Ok
        } else {
            metrics::ReloadResult::Failed
        };
        let took = began.elapsed();
        self.reload_stats.reloaded(at, took, errors.len(), result);
        let with_xdp = self.fast.is_some();
        let outcome = ReloadOutcome {
            zone,
            cause,
            ok,
            unix_ms: unix_ms(at),
            duration_ms: took.as_millis() as u64,
            zones: catalog.zone_count(),
            answers: with_xdp.then_some(entries),
            installed: with_xdp.then_some(installed.is_some()),
            errors,
        };
        {
            let mut view = control::lock(&self.view);
            view.zones.update(&Loaded {
                catalog: &catalog,
                tried: &tried,
                full,
                errors: &outcome.errors,
                answers: installed.is_some().then_some(&counts[..]),
                now_unix_ms: outcome.unix_ms,
            });
            let node = &mut view.node;
            node.zones = catalog.zone_count();
            if let (Some(x), Some(i)) = (&mut node.xdp, &installed) {
                x.answers = i.answers;
                x.generation = i.generation;
            }
            node.last_reload = Some(outcome.clone());
            view.node.zones_failing = failing(&view.zones);
        }
        systemd::ready(&systemd::serving(
            catalog.zone_count(),
            with_xdp.then_some(entries),
            outcome.errors.len(),
        ));
        if self.probe_question.is_some() {
            let holds = installed.is_some() && held;
            self.holds_probe.store(holds, Ordering::Relaxed);
        }
        heap::release_freed_memory();
        // The scale bench reads the memory a reload leaves from here.
        info!(ms = began.elapsed().as_millis() as u64, "reload finished");
        outcome
    }

    fn shutdown(mut self) {
        info!("shutting down");
        systemd::stopping();
        // No more commands: what they would change is going away.
        drop(self.control.take());
        self.secondaries.stop();
        // Before the slow path stops, so the watchdog doesn't report it as dead.
        drop(self.watchdog.take());
        // Withdraw first, so routers move the traffic while the sockets still answer.
        if let Some(a) = self.anycast.take() {
            a.shutdown();
        }
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let counters = self.fast.as_ref().map(|fp| lock(fp).counters());
        if let Some(Ok(c)) = counters {
            let summary: Vec<String> =
                c.0.iter()
                    .filter(|(_, v)| *v > 0)
                    .map(|(n, v)| format!("{n}={v}"))
                    .collect();
            info!("final counters: {}", summary.join(" "));
        }
    }
}

fn failing(zones: &ZoneTable) -> usize {
    zones.zones().filter(|z| z.last_error.is_some()).count()
}

fn lock(fp: &Mutex<FastPath>) -> std::sync::MutexGuard<'_, FastPath> {
    // A panic mid-install leaves a generation that is whole or not yet flipped to.
    fp.lock().unwrap_or_else(|e| e.into_inner())
}

/// `since`: when the start or reload began.
fn log_installed(i: &fastpath::Installed, since: Instant) {
    info!(
        elapsed = ?since.elapsed(),
        generation = i.generation,
        answers = i.answers,
        records = i.records,
        derived = i.derived,
        homed = i.homed,
        tails_small = i.tails_small,
        tails_large = i.tails_large,
        "fast path filled"
    );
}
