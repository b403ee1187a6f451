//! The XDP fast path: load, attach per NIC, fill and swap map generations, read counters.
use std::{
    collections::HashMap as StdHashMap,
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
        Array, HashMap, Map, MapData, PerCpuArray, ProgramArray,
        lpm_trie::{Key as LpmKey, LpmTrie},
    },
    programs::{Xdp, XdpMode, xdp::XdpLinkId},
};
use rampart_common::{
    AnswerHead, AnswerKey, AnswerValue, Config, Counter, JUMP_COOKIE, JUMP_MAIN, Limits, LongKey,
    MAP_ANSWERS, MAP_ANSWERS_LONG, MAP_BUCKETS, MAP_CLASS_RATES, MAP_CONFIG, MAP_JUMPS, MAP_LIMITS,
    MAP_STATS, MAP_TAILS_LARGE, MAP_TAILS_SMALL, MAP_WHITELIST, MAX_RELOCS, PROGRAM_COOKIE,
    PROGRAM_NAME, SHORT_NAME_LEN, ShortKey, TAIL_CLASS_INLINE, TAIL_CLASS_LARGE, TAIL_CLASS_SMALL,
    TAIL_INLINE, TAIL_SMALL, TailLarge, TailSmall, WhitelistAddr,
};
use tracing::{info, warn};

use crate::compile::CompiledAnswer;
use crate::netlink;

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

/// Map sizes for one instance: room for two generations of the compiled table plus headroom,
/// so reloads that grow the zones a little still fit without reloading the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub answers: u32,
    pub answers_long: u32,
    pub tails_small: u32,
    pub tails_large: u32,
    /// Rate-limit buckets per CPU (LRU), per-class buckets, whitelist prefixes.
    pub buckets: u32,
    pub classes: u32,
    pub whitelist: u32,
}

impl Capacity {
    pub fn for_table(table: &[CompiledAnswer]) -> Capacity {
        let tails = TailSet::build(table);
        let grow = |n: usize| ((n + n / 4 + 1024) * 2) as u32;
        let long = table
            .iter()
            .filter(|a| a.qname.len() > SHORT_NAME_LEN)
            .count();
        Capacity {
            answers: grow(table.len() - long),
            answers_long: grow(long),
            tails_small: grow(tails.small.len()),
            tails_large: grow(tails.large.len()).max(2),
            buckets: 65_536,
            classes: 16_384,
            whitelist: 1024,
        }
    }
}

/// Tails deduplicated by content (NODATA tails repeat across names and types) and assigned to
/// a slot class by size.
struct TailSet {
    small: Vec<Vec<u8>>,
    large: Vec<Vec<u8>>,
    /// Per table entry: (class, index within its class).
    slots: Vec<(u8, u32)>,
}

impl TailSet {
    fn build(table: &[CompiledAnswer]) -> TailSet {
        let mut seen: StdHashMap<&[u8], (u8, u32)> = StdHashMap::new();
        let (mut small, mut large, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        for a in table {
            if a.is_pass_marker() || a.tail.len() <= TAIL_INLINE {
                // Markers have no tail; short tails travel inside the answer's value.
                slots.push((TAIL_CLASS_INLINE, 0));
                continue;
            }
            let slot = *seen.entry(&a.tail).or_insert_with(|| {
                if a.tail.len() <= TAIL_SMALL {
                    small.push(a.tail.clone());
                    (TAIL_CLASS_SMALL, small.len() as u32 - 1)
                } else {
                    large.push(a.tail.clone());
                    (TAIL_CLASS_LARGE, large.len() as u32 - 1)
                }
            });
            slots.push(slot);
        }
        TailSet {
            small,
            large,
            slots,
        }
    }
}

/// Write `tails` into consecutive slots of a tail array from `base`, zero-padded to the slot size.
fn fill_slots<T: aya::Pod, const N: usize>(
    map: &mut Map,
    base: u32,
    tails: &[Vec<u8>],
    slot: impl Fn([u8; N]) -> T,
) -> Result<()> {
    let mut array: Array<_, T> = Array::try_from(map)?;
    for (i, t) in tails.iter().enumerate() {
        let mut bytes = [0; N];
        bytes[..t.len()].copy_from_slice(t);
        array.set(base + i as u32, slot(bytes), 0)?;
    }
    Ok(())
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

/// The map key for a compiled answer in a given generation, in the map its name length picks.
fn answer_key<const N: usize>(generation: u8, a: &CompiledAnswer) -> Result<AnswerKey<N>> {
    if a.qname.len() > N || a.qname.is_empty() {
        bail!(
            "name of {} bytes does not fit a {N}-byte key",
            a.qname.len()
        );
    }
    let mut key = AnswerKey::<N>::zeroed();
    key.generation = generation;
    key.variant = a.variant as u8;
    key.qtype = a.qtype;
    key.name[..a.qname.len()].copy_from_slice(&a.qname);
    Ok(key)
}

/// The keys one generation holds, so it can be deleted after the flip.
#[derive(Default)]
struct GenerationKeys {
    short: Vec<ShortKey>,
    long: Vec<LongKey>,
}

/// What an install did, for logs and `rampart stats`.
#[derive(Debug, Clone, Copy)]
pub struct Installed {
    pub generation: u32,
    pub answers: usize,
    pub tails_small: usize,
    pub tails_large: usize,
}

/// A loaded program with its maps, attached to zero or more NICs. Dropping it detaches the
/// program (bpf_link) and removes the pins.
pub struct FastPath {
    ebpf: Ebpf,
    capacity: Capacity,
    links: Vec<(String, XdpLinkId)>,
    pin_dir: Option<PathBuf>,
    /// Live generation (0 or 1) and the keys it holds, so the old one can be deleted after a flip.
    generation: u32,
    live_keys: GenerationKeys,
    log_stop: Arc<AtomicBool>,
    /// What `LIMITS` holds (kept to rewrite its clock offset).
    limits: Limits,
}

impl FastPath {
    /// Load and verify the program with maps sized by `capacity`, pinning the maps `rampart stats`
    /// reads under `pin_dir` (replacing pins a crashed instance left behind).
    pub fn load(capacity: Capacity, pin_dir: &Path) -> Result<FastPath> {
        let mut fp = FastPath::load_unpinned(capacity)?;
        fs::create_dir_all(pin_dir).with_context(|| format!("creating {}", pin_dir.display()))?;
        for name in [MAP_STATS, MAP_CONFIG, MAP_ANSWERS] {
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

    /// Load and verify without pinning anything (tests, and hosts without a bpffs).
    pub fn load_unpinned(capacity: Capacity) -> Result<FastPath> {
        bump_memlock_rlimit();
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(MAP_ANSWERS, capacity.answers)
            .map_max_entries(MAP_ANSWERS_LONG, capacity.answers_long)
            .map_max_entries(MAP_TAILS_SMALL, capacity.tails_small)
            .map_max_entries(MAP_TAILS_LARGE, capacity.tails_large)
            .map_max_entries(MAP_BUCKETS, capacity.buckets)
            .map_max_entries(MAP_CLASS_RATES, capacity.classes)
            .map_max_entries(MAP_WHITELIST, capacity.whitelist)
            .load(PROGRAM)
            .context("loading the XDP object")?;
        let log_stop = Arc::new(AtomicBool::new(false));
        spawn_ebpf_logger(&mut ebpf, log_stop.clone());
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM_NAME)
            .ok_or_else(|| anyhow!("program {PROGRAM_NAME} missing from object"))?
            .try_into()?;
        prog.load()
            .context("the kernel verifier rejected the XDP program")?;
        let main = prog.fd()?.try_clone()?;
        let stage: &mut Xdp = ebpf
            .program_mut(PROGRAM_COOKIE)
            .ok_or_else(|| anyhow!("program {PROGRAM_COOKIE} missing from object"))?
            .try_into()?;
        stage
            .load()
            .context("the kernel verifier rejected the XDP cookie stage")?;
        let stage = stage.fd()?.try_clone()?;
        let mut jumps = ProgramArray::try_from(ebpf.map_mut(MAP_JUMPS).expect("map"))?;
        jumps.set(JUMP_COOKIE, &stage, 0)?;
        jumps.set(JUMP_MAIN, &main, 0)?;
        Ok(FastPath {
            ebpf,
            capacity,
            links: Vec::new(),
            pin_dir: None,
            generation: 1,
            live_keys: GenerationKeys::default(),
            log_stop,
            limits: Limits::default(),
        })
    }

    /// Attach to one NIC. Native mode fails with the kernel's reason when the driver lacks XDP.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<()> {
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM_NAME)
            .expect("loaded")
            .try_into()?;
        let link = prog.attach(iface, mode.xdp_mode()).with_context(|| {
            format!("attaching XDP to {iface} in {mode:?} mode (use --xdp-mode generic or auto where the driver lacks native XDP)")
        })?;
        info!(iface, ?mode, "XDP program attached");
        self.links.push((iface.to_owned(), link));
        Ok(())
    }

    /// Fill the idle generation with `table`, flip the live generation to it, then delete the
    /// old one. Queries see either the old zones or the new ones, never a mix. When the table
    /// doesn't fit the maps loaded at start, the fast path is switched off (every query goes to
    /// the slow path, which already serves the new zones) rather than serving stale answers.
    pub fn install(&mut self, table: &[CompiledAnswer]) -> Result<Installed> {
        let next = self.generation ^ 1;
        let tails = TailSet::build(table);
        let half = |c: u32| c / 2;
        let long = table
            .iter()
            .filter(|a| a.qname.len() > SHORT_NAME_LEN)
            .count() as u32;
        if table.len() as u32 - long > half(self.capacity.answers)
            || long > half(self.capacity.answers_long)
            || tails.small.len() as u32 > half(self.capacity.tails_small)
            || tails.large.len() as u32 > half(self.capacity.tails_large)
        {
            self.set_config(Config {
                generation: self.generation,
                ready: 0,
            })?;
            bail!(
                "{} answers exceed the maps sized at start ({} per generation): fast path off until restart",
                table.len(),
                half(self.capacity.answers)
            );
        }
        let small_base = next * half(self.capacity.tails_small);
        let large_base = next * half(self.capacity.tails_large);
        fill_slots(
            self.ebpf.map_mut(MAP_TAILS_SMALL).expect("map"),
            small_base,
            &tails.small,
            |bytes| TailSmall { bytes },
        )?;
        fill_slots(
            self.ebpf.map_mut(MAP_TAILS_LARGE).expect("map"),
            large_base,
            &tails.large,
            |bytes| TailLarge { bytes },
        )?;
        let mut keys = GenerationKeys::default();
        {
            let [short, long] = self.ebpf.maps_disjoint_mut([MAP_ANSWERS, MAP_ANSWERS_LONG]);
            let mut short: HashMap<_, ShortKey, AnswerValue> =
                HashMap::try_from(short.expect("map"))?;
            let mut long: HashMap<_, LongKey, AnswerValue> = HashMap::try_from(long.expect("map"))?;
            for (a, &(class, idx)) in table.iter().zip(&tails.slots) {
                let base = if class == TAIL_CLASS_SMALL {
                    small_base
                } else {
                    large_base
                };
                let mut value = AnswerValue {
                    head: AnswerHead {
                        flags: a.flags,
                        ancount: a.ancount,
                        nscount: a.nscount,
                        arcount: a.arcount,
                        tail_len: a.tail.len() as u16,
                        tail_csum: tail_checksum(&a.tail),
                        tail_index: if class == TAIL_CLASS_INLINE {
                            0
                        } else {
                            base + idx
                        },
                        tail_class: class,
                        reloc_count: 0,
                        ref_qname_len: 0,
                        opt_back: a.opt_back(),
                        reloc: 0,
                        rrl_class: a.rrl_class,
                    },
                    inline: [0; TAIL_INLINE],
                };
                if class == TAIL_CLASS_INLINE {
                    value.inline[..a.tail.len()].copy_from_slice(&a.tail);
                }
                if let Some(r) = &a.relocation {
                    value.head.reloc_count = r.pointers.len() as u8;
                    value.head.ref_qname_len = r.ref_qname_len;
                    let mut packed = [0u8; MAX_RELOCS];
                    packed[..r.pointers.len()].copy_from_slice(&r.pointers);
                    value.head.reloc = u64::from_le_bytes(packed);
                }
                if a.qname.len() <= SHORT_NAME_LEN {
                    let key = answer_key(next as u8, a)?;
                    short.insert(key, value, 0).context("inserting an answer")?;
                    keys.short.push(key);
                } else {
                    let key = answer_key(next as u8, a)?;
                    long.insert(key, value, 0).context("inserting an answer")?;
                    keys.long.push(key);
                }
            }
        }
        self.set_config(Config {
            generation: next,
            ready: 1,
        })?;
        let old = std::mem::replace(&mut self.live_keys, keys);
        self.generation = next;
        let [short, long] = self.ebpf.maps_disjoint_mut([MAP_ANSWERS, MAP_ANSWERS_LONG]);
        let mut short: HashMap<_, ShortKey, AnswerValue> = HashMap::try_from(short.expect("map"))?;
        let mut long: HashMap<_, LongKey, AnswerValue> = HashMap::try_from(long.expect("map"))?;
        for k in &old.short {
            let _ = short.remove(k);
        }
        for k in &old.long {
            let _ = long.remove(k);
        }
        Ok(Installed {
            generation: next,
            answers: self.live_keys.short.len() + self.live_keys.long.len(),
            tails_small: tails.small.len(),
            tails_large: tails.large.len(),
        })
    }

    /// Write the rate limits and replace the whitelist (at start, before attaching). The clock
    /// offset for cookie timestamps is filled in here.
    pub fn set_limits(&mut self, limits: Limits, whitelist: &[(u32, WhitelistAddr)]) -> Result<()> {
        self.limits = Limits {
            clock_offset: crate::limits::clock_offset(),
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

    fn set_config(&mut self, c: Config) -> Result<()> {
        let mut config: Array<_, Config> =
            Array::try_from(self.ebpf.map_mut(MAP_CONFIG).expect("map"))?;
        config.set(0, c, 0)?;
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
        if let Some(dir) = &self.pin_dir {
            for name in [MAP_STATS, MAP_CONFIG, MAP_ANSWERS] {
                let _ = fs::remove_file(dir.join(name));
            }
        }
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

/// Remove the XDP program from `iface`: one a crashed instance left (attached through netlink, in
/// native or generic mode), or one a running instance holds through a bpf_link (which makes that
/// instance's fast-path health probe fail, so it withdraws its announcement).
pub fn detach_iface(iface: &str) -> Result<()> {
    let ifindex = netlink::ifindex(iface)?;
    if link::detach_links(iface)? > 0 {
        return Ok(());
    }
    const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    for flags in [XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE] {
        netlink::set_xdp_fd(ifindex, -1, flags)
            .with_context(|| format!("detaching XDP from {iface}"))?;
    }
    Ok(())
}

mod batch;
#[cfg(test)]
mod cookie_tests;
#[cfg(test)]
mod limit_tests;
mod link;
pub mod probe;
#[cfg(test)]
mod tests;
