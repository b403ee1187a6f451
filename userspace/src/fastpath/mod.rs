//! The XDP fast path: load, attach per NIC, fill and swap map generations, read counters.
use std::{
    fs,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, Map, MapData, PerCpuArray, ProgramArray,
        lpm_trie::{Key as LpmKey, LpmTrie},
    },
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use rampart_common::{
    Config, Counter, GenParams, JUMP_COOKIE, JUMP_MAIN, LIMIT_WHITELIST, Limits, MAP_BUCKETS,
    MAP_CACHE, MAP_CACHE_ACL, MAP_CLASS_RATES, MAP_CONFIG, MAP_JUMPS, MAP_LIMITS, MAP_RECORDS,
    MAP_STATS, MAP_WHITELIST, PROGRAM_CACHE, PROGRAM_COOKIE, PROGRAM_NAME, WhitelistAddr,
};
use tracing::{info, warn};

use crate::compile::CompiledAnswer;
use crate::netlink;
pub use cache::CacheMap;
use generation::GenerationMaps;
use layout::Layout;
pub use layout::Sizes;
pub use shared::Sharing;

/// The program, built by build.rs from xdp-ebpf/.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/rampart-xdp"));

/// How to attach: native is the default and fails loudly where the driver lacks it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    #[default]
    Native,
    Generic,
    /// Let the kernel choose (native where supported, generic otherwise).
    Auto,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
            AttachMode::Auto => XdpMode::Default,
        }
    }
}

/// Map sizes for one instance, fixed at load. The answer arrays: room for one generation of the
/// laid-out table plus headroom, so reloads that grow the zones a little still fit without
/// reloading the program; each install makes its own arrays of these sizes (`generation`), and
/// only one generation's are resident between installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Records, long names, tail slots and index buckets of one generation.
    pub records: u32,
    pub names: u32,
    pub tails_small: u32,
    pub tails_large: u32,
    pub index_buckets: u32,
    /// Rate-limit buckets per CPU, per-class buckets (each rounded up to a power of two, in
    /// sets of two), whitelist prefixes.
    pub buckets: u32,
    pub classes: u32,
    pub whitelist: u32,
    /// Resolver mode: entries of the XDP answer cache (1: the cache is off).
    pub cache_entries: u32,
}

/// Small answer arrays (room for 65,536 records: tests and small zones), default rate tables.
impl Default for Capacity {
    fn default() -> Capacity {
        Capacity {
            records: 0,
            names: 0,
            tails_small: 0,
            tails_large: 0,
            index_buckets: 0,
            buckets: 65_536,
            classes: 16_384,
            whitelist: 1024,
            cache_entries: 1,
        }
        .with_room_for(65_536)
    }
}

impl Capacity {
    #[cfg(test)]
    pub fn for_table(table: &[CompiledAnswer]) -> Result<Capacity> {
        Ok(Capacity::for_prepared(&prepare(table)?))
    }

    /// Room for a table laid out by [`prepare`] (and its growth on reloads).
    pub fn for_prepared(prepared: &Prepared) -> Capacity {
        Capacity::for_sizes(prepared.0.sizes())
    }

    /// Room for a layout of these sizes (and its growth on reloads).
    pub fn for_sizes(s: Sizes) -> Capacity {
        let grow = |n: usize| (n + n / 8 + 64) as u32;
        Capacity {
            records: grow(s.records),
            names: grow(s.names),
            tails_small: grow(s.tails_small),
            tails_large: grow(s.tails_large),
            // The index holds the keys not at their home slot: room for their growth, and for
            // an eighth of the records more (a reload whose keys land at home less often), at
            // the index's load (a power of two).
            index_buckets: layout::index_buckets_for(grow(s.indexed) as usize + s.records / 8)
                .max(s.index_buckets) as u32,
            ..Capacity::default()
        }
    }

    /// At least room for `records` records per generation (and names, tails and buckets in
    /// the proportions of a typical zone): for zones that arrive after the maps are sized, as
    /// secondary zones' first transfers do.
    pub fn with_room_for(self, records: u32) -> Capacity {
        Capacity {
            records: self.records.max(records),
            names: self.names.max(records / 4),
            tails_small: self.tails_small.max(records / 64 + 64),
            tails_large: self.tails_large.max(records / 256 + 64),
            index_buckets: self
                .index_buckets
                .max(layout::index_buckets_for(records as usize) as u32),
            ..self
        }
    }

    /// Whether a layout fits one generation's arrays.
    fn fits(&self, l: &Layout) -> bool {
        l.records.len() <= self.records as usize
            && l.names.len() <= self.names as usize
            && l.tails_small.len() <= self.tails_small as usize
            && l.tails_large.len() <= self.tails_large as usize
            && l.index.len() <= self.index_buckets as usize
    }
}

/// One's-complement sum of `bytes` as big-endian words from an even offset, folded, not inverted.
pub fn tail_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    for pair in bytes.chunks(2) {
        let hi = pair[0] as u64;
        let lo = pair.get(1).copied().unwrap_or(0) as u64;
        sum += (hi << 8) | lo;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// What an install did, for logs and `rampart stats`.
#[derive(Debug, Clone, Copy)]
pub struct Installed {
    pub generation: u32,
    /// Compiled answers (every variant) and the records that hold them.
    pub answers: usize,
    pub records: usize,
    /// Variants derived from another's record instead of stored.
    pub derived: usize,
    /// Keys at their home slot: a hit on them reads no index line.
    pub homed: usize,
    pub tails_small: usize,
    pub tails_large: usize,
}

/// A loaded program with its maps, attached to zero or more NICs. Dropping it detaches the
/// program (bpf_link) and removes the pins.
pub struct FastPath {
    ebpf: Ebpf,
    capacity: Capacity,
    links: Vec<(String, XdpLinkId)>,
    /// Shared mode: rampart's entries in the NICs' libxdp dispatchers.
    entries: Vec<shared::Entry>,
    pin_dir: Option<PathBuf>,
    /// Live generation (0 or 1: the outer maps' slot holding its arrays), with its shape and
    /// seed.
    generation: u32,
    config: Config,
    log_stop: Arc<AtomicBool>,
    /// What `LIMITS` holds (kept to rewrite its clock offset).
    limits: Limits,
    /// The pin dir's lock: held while this instance's pins are there (`instance`).
    pin_lock: Option<crate::instance::Lock>,
}

impl FastPath {
    /// Load and verify the program with maps sized by `capacity`, pinning the maps `rampart stats`
    /// reads under `pin_dir` (replacing pins a crashed instance left behind). The pin dir is
    /// locked first: while another instance holds it, this fails and touches nothing there.
    pub fn load(capacity: Capacity, pin_dir: &Path) -> Result<FastPath> {
        fs::create_dir_all(pin_dir).with_context(|| format!("creating {}", pin_dir.display()))?;
        let lock = crate::instance::take(pin_dir, &format!("pin dir {}", pin_dir.display()))?;
        generation::remove_stale_load_pins(pin_dir);
        let mut fp = FastPath::load_in(capacity, pin_dir)?;
        fp.pin_lock = Some(lock);
        for name in [MAP_STATS, MAP_CONFIG, MAP_RECORDS] {
            let path = pin_dir.join(name);
            let _ = fs::remove_file(&path);
            fp.ebpf
                .map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))?
                .pin(&path)
                .with_context(|| {
                    format!("pinning {} (is a bpffs mounted there?)", path.display())
                })?;
        }
        fp.pin_dir = Some(pin_dir.to_owned());
        Ok(fp)
    }

    /// Load and verify without leaving pins (tests): the outer answer maps pass through
    /// /sys/fs/bpf on their way to the loader.
    pub fn load_unpinned(capacity: Capacity) -> Result<FastPath> {
        FastPath::load_in(capacity, Path::new("/sys/fs/bpf"))
    }

    /// Load, with the outer answer maps made first and handed to the loader through pins in
    /// the bpffs directory `bpffs` (removed once it took them).
    fn load_in(capacity: Capacity, bpffs: &Path) -> Result<FastPath> {
        bump_memlock_rlimit();
        let t0 = std::time::Instant::now();
        let outer = generation::OuterPins::create(&capacity, bpffs)?;
        tracing::debug!(elapsed = ?t0.elapsed(), "load: outer maps made");
        let mut loader = EbpfLoader::new();
        for (name, path) in outer.paths() {
            loader.map_pin_path(name, path);
        }
        let mut ebpf = loader
            .map_max_entries(MAP_BUCKETS, rate_sets(capacity.buckets))
            .map_max_entries(MAP_CLASS_RATES, rate_sets(capacity.classes))
            .map_max_entries(MAP_WHITELIST, capacity.whitelist)
            .map_max_entries(MAP_CACHE, cache_slots::slot_count(capacity.cache_entries))
            .map_max_entries(MAP_CACHE_ACL, 1024)
            .load(PROGRAM)
            .context("loading the XDP object")?;
        tracing::debug!(elapsed = ?t0.elapsed(), "load: object's maps made");
        drop(outer);
        let log_stop = Arc::new(AtomicBool::new(false));
        spawn_ebpf_logger(&mut ebpf, log_stop.clone());
        let main = load_program(&mut ebpf, PROGRAM_NAME, "XDP program")?;
        let stage = load_program(&mut ebpf, PROGRAM_COOKIE, "XDP cookie stage")?;
        // Loaded always (the slot is filled only in resolver mode: `enable_cache`).
        load_program(&mut ebpf, PROGRAM_CACHE, "XDP cache program")?;
        let mut jumps = ProgramArray::try_from(ebpf.map_mut(MAP_JUMPS).expect("map"))?;
        jumps.set(JUMP_COOKIE, &stage, 0)?;
        jumps.set(JUMP_MAIN, &main, 0)?;
        tracing::debug!(elapsed = ?t0.elapsed(), "load: programs verified");
        Ok(FastPath {
            ebpf,
            capacity,
            links: Vec::new(),
            entries: Vec::new(),
            pin_dir: None,
            generation: 1,
            config: Config::default(),
            log_stop,
            limits: Limits::default(),
            pin_lock: None,
        })
    }

    /// Attach to one NIC. Native mode fails with the kernel's reason when the driver lacks XDP.
    /// Shared: as a component of the NIC's libxdp dispatcher, beside other XDP programs.
    pub fn attach(&mut self, iface: &str, mode: AttachMode, sharing: Sharing) -> Result<()> {
        if sharing == Sharing::Shared {
            let jumps = match self.ebpf.map(MAP_JUMPS) {
                Some(Map::ProgramArray(data)) => data.fd(),
                _ => bail!("map {MAP_JUMPS} missing"),
            };
            let entry = shared::Entry::attach(iface, mode, jumps)?;
            self.entries.push(entry);
            return Ok(());
        }
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .expect("loaded")
            .try_into()?;
        let link = prog.attach(iface, mode.xdp_mode()).map_err(|e| {
            let hint = attach_hint(&e, iface, mode);
            anyhow::Error::new(e)
                .context(format!("attaching XDP to {iface} in {mode:?} mode{hint}"))
        })?;
        info!(iface, ?mode, "XDP program attached");
        self.links.push((iface.to_owned(), link));
        Ok(())
    }

    /// Lay `table` out as a new generation in arrays of its own, flip the live generation to
    /// it and free the old one's. Queries see either the old zones or the new ones, never a mix.
    /// When the table doesn't fit the sizes fixed at load, the fast path is switched off (every
    /// query goes to the slow path, which already serves the new zones) rather than serving
    /// stale answers, until restart; when the arrays can't be made (no memory), likewise until
    /// an install succeeds. The slow path follows the same flip: it reads the
    /// live generation from the map itself ([`GenerationWord`]). Ok means the flip was made; on
    /// an error it was not.
    pub fn install(&mut self, table: &[CompiledAnswer]) -> Result<Installed> {
        let layout = Layout::build(table, random_seed)?;
        self.write_layout(layout)
    }

    /// [`FastPath::install`] of a table it takes, dropped once laid out (before the copy into
    /// the maps): a reload's peak holds the layout, not the table beside it.
    pub fn install_owned(&mut self, table: Vec<CompiledAnswer>) -> Result<Installed> {
        let layout = Layout::build(&table, random_seed)?;
        drop(table);
        self.write_layout(layout)
    }

    /// The program's live generation word, mapped into this process for the slow path.
    pub fn generation_word(&self) -> Result<GenerationWord> {
        Ok(GenerationWord(Mapped::new(&self.ebpf, MAP_CONFIG, 1)?))
    }

    /// Install the table [`prepare`] laid out: a million-name table at start is laid out once,
    /// not twice.
    pub fn install_prepared(&mut self, prepared: Prepared) -> Result<Installed> {
        self.write_layout(prepared.0)
    }

    fn write_layout(&mut self, layout: Layout) -> Result<Installed> {
        if !self.capacity.fits(&layout) {
            self.config.ready = 0;
            self.write_config()?;
            bail!(
                "{} answers in {} records exceed the maps sized at start ({} records per generation): fast path off until restart",
                layout.answers,
                layout.records.len(),
                self.capacity.records
            );
        }
        let (live, next) = (self.generation, self.generation ^ 1);
        let t0 = std::time::Instant::now();
        // The idle slot is empty (the last install emptied it): the new arrays go there.
        let made = GenerationMaps::create(&layout, &self.capacity, next)
            .and_then(|maps| maps.put(&mut self.ebpf, next));
        if let Err(e) = made {
            let _ = generation::clear(&self.ebpf, next);
            self.config.ready = 0;
            self.write_config()?;
            return Err(e.context(format!(
                "{} answers in {} records: fast path off until an install succeeds",
                layout.answers,
                layout.records.len()
            )));
        }
        tracing::debug!(elapsed = ?t0.elapsed(), "install: arrays made and filled");
        // Two writes: the idle generation's shape first, then the one word that flips to it
        // (each write copies the whole slot, but only that word differs from what is there).
        self.config.gens[next as usize] = GenParams {
            seed: layout.seed,
            index_mask: layout.index.len() as u32 - 1,
            records_count: layout.records.len() as u32,
        };
        self.write_config()?;
        self.config.generation = next;
        self.config.ready = 1;
        self.write_config()?;
        self.generation = next;
        // A frame runs the program for microseconds; one that read the old generation word
        // before the flip has long left it after a few milliseconds. Then the old arrays go
        // (a frame finding the slot empty would pass its query up, never answer wrong).
        thread::sleep(std::time::Duration::from_millis(10));
        // The flip is made: a failure here only keeps the old arrays until the next install.
        if let Err(e) = generation::clear(&self.ebpf, live) {
            warn!("freeing the old generation's arrays: {e:#}");
        }
        Ok(Installed {
            generation: next,
            answers: layout.answers,
            records: layout.records.len(),
            derived: layout.derived,
            homed: layout.homed,
            tails_small: layout.tails_small.len(),
            tails_large: layout.tails_large.len(),
        })
    }

    /// Write the rate limits and replace the whitelist (at start, before attaching). The clock
    /// offset for cookie timestamps is filled in here.
    pub fn set_limits(&mut self, limits: Limits, whitelist: &[(u32, WhitelistAddr)]) -> Result<()> {
        self.limits = Limits {
            flags: if whitelist.is_empty() {
                limits.flags & !LIMIT_WHITELIST
            } else {
                limits.flags | LIMIT_WHITELIST
            },
            clock_offset: crate::limits::clock_offset(),
            rate_seed: random_seed()?,
            bucket_mask: rate_sets(self.capacity.buckets) - 1,
            class_mask: rate_sets(self.capacity.classes) - 1,
            ..limits
        };
        self.write_limits()?;
        let mut trie: LpmTrie<_, WhitelistAddr, u8> =
            LpmTrie::try_from(self.ebpf.map_mut(MAP_WHITELIST).expect("map"))?;
        for (len, addr) in whitelist {
            trie.insert(&LpmKey::new(*len, *addr), 1, 0)
                .context("whitelist full (at most 1024 prefixes)")?;
        }
        Ok(())
    }

    /// Re-read the wall clock's offset from the monotonic one (NTP steps and slews it).
    pub fn refresh_clock(&mut self) -> Result<()> {
        self.limits.clock_offset = crate::limits::clock_offset();
        self.write_limits()
    }

    fn write_limits(&mut self) -> Result<()> {
        let mut slot: Array<_, Limits> =
            Array::try_from(self.ebpf.map_mut(MAP_LIMITS).expect("map"))?;
        slot.set(0, self.limits, 0)?;
        Ok(())
    }

    fn write_config(&mut self) -> Result<()> {
        let mut config: Array<_, Config> =
            Array::try_from(self.ebpf.map_mut(MAP_CONFIG).expect("map"))?;
        config.set(0, self.config, 0)?;
        Ok(())
    }

    /// Counters summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let stats: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(MAP_STATS).expect("map"))?;
        Counters::read(&stats)
    }

    /// The loaded program (for BPF_PROG_TEST_RUN).
    fn program(&self) -> &Xdp {
        self.ebpf
            .program(PROGRAM_NAME)
            .expect("loaded")
            .try_into()
            .expect("xdp")
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        self.log_stop.store(true, Ordering::Relaxed);
        // Each leaves its dispatcher (the other programs there stay).
        self.entries.clear();
        if let Some(prog) = self.ebpf.program_mut(PROGRAM_NAME) {
            let prog: Result<&mut Xdp, _> = prog.try_into();
            if let Ok(prog) = prog {
                for (iface, link) in self.links.drain(..) {
                    match prog.detach(link) {
                        Ok(()) => info!(iface, "XDP program detached"),
                        Err(e) => warn!(iface, "detach failed: {e}"),
                    }
                }
            }
        }
        // Only the instance holding the pin dir's lock made the pins there.
        if let (Some(dir), Some(_)) = (&self.pin_dir, &self.pin_lock) {
            for name in [MAP_STATS, MAP_CONFIG, MAP_RECORDS] {
                let _ = fs::remove_file(dir.join(name));
            }
        }
    }
}

/// What to do about a failed attach: EBUSY means a program is there already (another instance's,
/// or one a crashed instance attached through netlink); only native mode can fall back to
/// generic.
fn attach_hint(e: &(dyn std::error::Error + 'static), iface: &str, mode: AttachMode) -> String {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.raw_os_error() == Some(libc::EBUSY)
        {
            return format!(
                " (another XDP program is attached to {iface}: another rampart, or one a crashed \
                 instance left, which `rampart detach --iface {iface}` removes)"
            );
        }
        source = err.source();
    }
    match mode {
        AttachMode::Native => {
            " (use --xdp-mode generic or auto where the driver lacks native XDP)".into()
        }
        AttachMode::Generic | AttachMode::Auto => String::new(),
    }
}

/// Counter values by name, in `Counter::NAMED` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counters(pub Vec<(&'static str, u64)>);

impl Counters {
    fn read<T: std::borrow::Borrow<MapData>>(stats: &PerCpuArray<T, u64>) -> Result<Counters> {
        let mut out = Vec::new();
        let mut total = 0;
        for (c, name) in Counter::NAMED {
            let value = if c == Counter::Packets {
                0
            } else {
                stats.get(&(c as u32), 0)?.iter().sum()
            };
            if c.is_outcome() {
                total += value;
            }
            out.push((name, value));
        }
        // Every frame ends in exactly one outcome, so the program needn't count frames itself.
        out[Counter::Packets as usize].1 = total;
        Ok(Counters(out))
    }

    /// Read the counters a running instance pinned under `pin_dir`.
    pub fn from_pin(pin_dir: &Path) -> Result<Counters> {
        let path = pin_dir.join(MAP_STATS);
        let data = MapData::from_pin(&path).with_context(|| {
            format!(
                "no running rampart pinned {} (see --pin-dir)",
                path.display()
            )
        })?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(Map::PerCpuArray(data))?;
        Counters::read(&stats)
    }

    #[cfg(test)]
    pub fn get(&self, name: &str) -> u64 {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0, |(_, v)| *v)
    }
}

/// Load (verify) the object's program `name`; its fd.
fn load_program(ebpf: &mut Ebpf, name: &str, what: &str) -> Result<aya::programs::ProgramFd> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from object"))?
        .try_into()?;
    prog.load()
        .with_context(|| format!("the kernel verifier rejected the {what}"))?;
    Ok(prog.fd()?.try_clone()?)
}

/// Locked memory limits only matter on kernels before 5.11 (memcg accounting since); harmless
/// elsewhere.
fn bump_memlock_rlimit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        tracing::debug!("could not raise RLIMIT_MEMLOCK (fine on kernels with memcg accounting)");
    }
}

/// Forward the program's aya-log diagnostics to our log, from a thread of its own so the hot path
/// never waits on it.
fn spawn_ebpf_logger(ebpf: &mut Ebpf, stop: Arc<AtomicBool>) {
    let mut logger = match aya_log::EbpfLogger::init(ebpf) {
        Ok(l) => l,
        Err(e) => {
            warn!("XDP diagnostics unavailable: {e}");
            return;
        }
    };
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let mut pfd = libc::pollfd {
                fd: logger.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            unsafe { libc::poll(&mut pfd, 1, 200) };
            logger.flush();
        }
    });
}

/// The dispatcher libxdp puts on a NIC shared by several XDP programs.
const LIBXDP_DISPATCHER: &str = "xdp_dispatcher";

/// Remove rampart's XDP program from `iface`, and only rampart's: where the NIC has libxdp's
/// dispatcher, rampart's entries in it (the other programs stay); where rampart's program is the
/// NIC's one, that program, whether a running instance holds it through a bpf_link or a crashed
/// one left it (attached through netlink, in native or generic mode). A running instance's
/// fast-path health probe then fails, so it withdraws its announcement. Another program alone on
/// the NIC is left in place (an error). Returns what was done, for the operator.
pub fn detach_iface(iface: &str) -> Result<String> {
    let ifindex = netlink::ifindex(iface)?;
    let ids = netlink::xdp_prog_ids(ifindex).context("reading the NIC's XDP program")?;
    let names: Vec<String> = (ids.iter())
        .map(|&id| {
            aya::programs::loaded_programs()
                .flatten()
                .find(|p| p.id() == id)
                .and_then(|p| p.name_as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("id {id}"))
        })
        .collect();
    if names.is_empty() {
        return Ok(format!("no XDP program on {iface}"));
    }
    if names.iter().any(|n| n == LIBXDP_DISPATCHER) {
        let n = shared::detach_components(iface)?;
        return Ok(format!(
            "removed {n} rampart program(s) from {iface}'s XDP dispatcher (the others stay)"
        ));
    }
    if let Some(other) = names.iter().find(|n| *n != PROGRAM_NAME) {
        bail!(
            "the XDP program on {iface} is {other}, not rampart's: left in place \
             (`ip link set dev {iface} xdp off` or `xdp-loader unload` removes it)"
        );
    }
    if link::detach_links(iface)? > 0 {
        return Ok(format!("detached XDP from {iface}"));
    }
    const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    for flags in [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE] {
        netlink::set_xdp_fd(ifindex, -1, flags)
            .with_context(|| format!("detaching XDP from {iface}"))?;
    }
    Ok(format!("detached XDP from {iface}"))
}

/// A table laid out for the first install, before the maps are sized from it.
pub struct Prepared(Layout);

impl Prepared {
    /// Records of the layout (one generation's).
    pub fn records(&self) -> usize {
        self.0.records.len()
    }

    pub fn sizes(&self) -> Sizes {
        self.0.sizes()
    }
}

/// Lay `table` out for the first install.
pub fn prepare(table: &[CompiledAnswer]) -> Result<Prepared> {
    prepare_sized(table, |_| {})
}

/// [`prepare`], telling `sized` the layout's sizes before its index is built
/// ([`Layout::build_sized`]).
pub fn prepare_sized(table: &[CompiledAnswer], sized: impl FnOnce(Sizes)) -> Result<Prepared> {
    Ok(Prepared(Layout::build_sized(table, random_seed, sized)?))
}

/// Sets of two buckets holding at least `buckets`: a power of two.
fn rate_sets(buckets: u32) -> u32 {
    buckets.div_ceil(2).max(1).next_power_of_two()
}

/// A tail zero-padded to its slot.
fn padded<const N: usize>(tail: &[u8]) -> [u8; N] {
    let mut bytes = [0; N];
    bytes[..tail.len()].copy_from_slice(tail);
    bytes
}

/// A hash seed nobody outside can guess.
fn random_seed() -> Result<u64> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow!("no randomness for the index seed"))?;
    Ok(u64::from_le_bytes(b))
}

/// `CONFIG`'s live generation as the program reads it, from a mapping of the map: the slow path
/// picks its zones by the very word whose write flips the program's (`live_catalog`).
pub struct GenerationWord(Mapped<Config>);

// SAFETY: a mapping of kernel memory that lives as long as this value, only read (volatile
// loads of one aligned word) through it.
unsafe impl Send for GenerationWord {}
unsafe impl Sync for GenerationWord {}

impl GenerationWord {
    pub fn live(&self) -> u32 {
        // SAFETY: the mapping holds one `Config` (checked at map time); `generation` is an
        // aligned u32 the kernel's map update writes whole.
        unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*self.0.ptr).generation)) & 1 }
    }
}

/// A BPF array created with BPF_F_MMAPABLE, mapped shared: element i at i * size_of::<T>()
/// (the kernel's element stride, value sizes being multiples of 8).
struct Mapped<T> {
    ptr: *mut T,
    len: usize,
    bytes: usize,
}

impl<T: Copy> Mapped<T> {
    fn new(ebpf: &Ebpf, name: &str, len: u32) -> Result<Mapped<T>> {
        match ebpf.map(name) {
            Some(Map::Array(data)) => Mapped::of(data, name, len),
            _ => bail!("map {name} missing or not an array"),
        }
    }

    /// Map `len` elements of `data` (the map `name`), which must outlive the mapping.
    fn of(data: &aya::maps::MapData, name: &str, len: u32) -> Result<Mapped<T>> {
        const { assert!(std::mem::size_of::<T>().is_multiple_of(8)) };
        let fd = data.fd().as_fd().as_raw_fd();
        let len = len as usize;
        let bytes = (len * std::mem::size_of::<T>()).next_multiple_of(4096);
        // SAFETY: a shared mapping of the map's fd, as long as the map's data; the kernel
        // checks the length against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).with_context(|| format!("mapping {name}"));
        }
        Ok(Mapped {
            ptr: ptr.cast(),
            len,
            bytes,
        })
    }

    /// Copy `items` to elements `at..` (of an array the program doesn't read yet).
    fn write(&mut self, at: u32, items: &[T]) {
        let at = at as usize;
        assert!(at + items.len() <= self.len, "array write past the end");
        // SAFETY: in bounds (checked), T is plain data, and the program doesn't read the array
        // before the copy is done.
        unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), self.ptr.add(at), items.len()) };
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.bytes) };
    }
}

#[cfg(test)]
#[test]
fn attach_hints_fit_the_failure() {
    let busy = std::io::Error::from_raw_os_error(libc::EBUSY);
    let other = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP);
    for mode in [AttachMode::Native, AttachMode::Generic] {
        let hint = attach_hint(&busy, "eth1", mode);
        assert!(
            hint.contains("another XDP program is attached to eth1"),
            "{hint}"
        );
        assert!(!hint.contains("--xdp-mode"), "{hint}");
    }
    assert!(attach_hint(&other, "eth1", AttachMode::Native).contains("--xdp-mode generic"));
    assert_eq!(attach_hint(&other, "eth1", AttachMode::Generic), "");
    assert_eq!(attach_hint(&other, "eth1", AttachMode::Auto), "");
}

mod cache;
mod cache_slots;
#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod cookie_tests;
#[cfg(test)]
mod cost_tests;
#[cfg(test)]
mod fuzz_tests;
mod generation;
mod layout;
#[cfg(test)]
mod limit_tests;
mod link;
pub mod probe;
pub mod shared;
#[cfg(test)]
mod tests;
