//! Rate limits: RRL per (source prefix, response class), the per-class aggregate rate, and the
//! budget of queries passed up to the slow path. GCRA buckets in per-CPU set-associative
//! tables, so a spoofed-source flood displaces idle buckets instead of exhausting memory.
use aya_ebpf::{
    helpers::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{Array, LpmTrie, PerCpuArray, lpm_trie::Key},
};
use rampart_common::{
    Bucket, Counter, LIMIT_DRY_RUN, LIMIT_WHITELIST, Limits, RateSet, RrlKind, WhitelistAddr,
    rate_hash,
};

use crate::maps::{Scratch, WhitelistMemo, count};

#[map(name = "LIMITS")]
static LIMITS: Array<Limits> = Array::with_max_entries(1, 0);
/// Prefixes no limit applies to (IPv6, IPv4 mapped). Userspace sizes it.
#[map(name = "WHITELIST")]
static WHITELIST: LpmTrie<WhitelistAddr, u8> = LpmTrie::with_max_entries(1, 0);
/// Per (source prefix, class) buckets: RRL, and the miss budget under [`RrlKind::Miss`].
#[map(name = "BUCKETS")]
static BUCKETS: PerCpuArray<RateSet> = PerCpuArray::with_max_entries(1, 0);
/// Per class, all sources: the global view.
#[map(name = "CLASS_RATES")]
static CLASS_RATES: PerCpuArray<RateSet> = PerCpuArray::with_max_entries(1, 0);
/// The total miss budget on this CPU.
#[map(name = "TOTAL_BUDGET")]
static TOTAL_BUDGET: PerCpuArray<Bucket> = PerCpuArray::with_max_entries(1, 0);

const MISS_CLASS: u32 = (RrlKind::Miss as u32) << 28;
/// The class the whitelist memo hashes sources under (no response class uses it).
const SOURCE_CLASS: u32 = 0x7fff_ffff;

/// The query's source: its address (for the whitelist, and masked to its prefix for the
/// buckets: only where a bucket is read, not on every hit), and whether it is the daemon's own
/// health probe (never limited, like a whitelisted prefix); with the limits and this CPU's
/// whitelist memo, found once for the frame (each lookup is a dozen instructions once the
/// verifier inlines it, and a hit made three).
pub struct Source {
    addr: [u32; 4],
    /// The limits userspace wrote (`None` before it does: everything off).
    limits: Option<&'static Limits>,
    /// This CPU's whitelist memo, in the frame's scratch slot.
    memo: *mut WhitelistMemo,
    /// Nonzero for the probe; a word laundered by the caller, not a bool, so the verifier
    /// carries one state through the program rather than one per value (see KeyBuf::launder).
    probe: u64,
    /// The cookie check's verdict for this frame (`handoff::DONE` etc., 0: no cookie checked),
    /// laundered like `probe`.
    pub cookie: u64,
}

impl Source {
    #[inline(always)]
    pub fn new(addr: [u32; 4], probe: u64, s: Scratch) -> Source {
        Source {
            addr,
            limits: LIMITS.get(0),
            memo: s.whitelist_memo(),
            probe,
            cookie: 0,
        }
    }

    /// The address as IPv6 words in network byte order (IPv4 mapped).
    #[inline(always)]
    pub fn addr(&self) -> &[u32; 4] {
        &self.addr
    }
}

/// The limits userspace wrote (absent only before it does: everything off).
#[inline(always)]
pub fn settings() -> Option<&'static Limits> {
    LIMITS.get(0)
}

/// The configured prefix of `addr` (IPv4 mapped: only the last word is the address).
#[inline(always)]
fn mask(l: &Limits, addr: &[u32; 4]) -> [u32; 4] {
    if is_v4(addr) {
        [0, 0, addr[2], addr[3] & l.v4_mask]
    } else {
        let (m0, m1) = (l.v6_mask[0], l.v6_mask[1]);
        [
            addr[0] & m0 as u32,
            addr[1] & (m0 >> 32) as u32,
            addr[2] & m1 as u32,
            addr[3] & (m1 >> 32) as u32,
        ]
    }
}

/// What to do with an answer (or a query to pass up) the limits looked at.
pub enum Verdict {
    Pass,
    /// Send a minimal TC=1 answer, counted under this counter.
    Slip(Counter),
}

/// GCRA (the virtual-scheduling form of a token bucket): admit when the bucket's theoretical
/// arrival time is at most `burst` ahead of now, and move it on by `interval`. "Now" is the
/// coarse monotonic clock (the tick's time, read from memory, where the precise clock costs a
/// TSC read and its conversion: ~5% of a hit); a tick (1-10 ms) is far below a burst's second.
#[inline(always)]
fn admit(b: *mut Bucket, now: u64, interval: u64, burst: u64) -> bool {
    // SAFETY: a map value pointer of this CPU's slot (per-CPU map: nothing else writes it).
    let b = unsafe { &mut *b };
    let tat = if b.tat > now { b.tat } else { now };
    if tat - now > burst {
        b.limited += 1;
        return false;
    }
    b.tat = tat + interval;
    true
}

/// Account one response against the bucket of the key hashed to `tag` in `table` (sets under
/// `mask`): `Some(limited so far)` when over the rate. A key without a bucket takes the slot
/// of its set whose bucket is furthest behind, admitted.
#[inline(always)]
fn account(
    table: &PerCpuArray<RateSet>,
    tag: u64,
    mask: u32,
    now: u64,
    interval: u64,
    burst: u64,
) -> Option<u64> {
    let set = table.get_ptr_mut((tag >> 32) as u32 & mask)?;
    // SAFETY: this CPU's set of a per-CPU array (nothing else writes it meanwhile).
    let set = unsafe { &mut *set };
    let way = if set.slots[0].tag == tag {
        0
    } else if set.slots[1].tag == tag {
        1
    } else {
        let way = usize::from(set.slots[1].bucket.tat < set.slots[0].bucket.tat);
        set.slots[way].tag = tag;
        set.slots[way].bucket = Bucket {
            tat: now + interval,
            limited: 0,
        };
        return None;
    };
    let b = &mut set.slots[way].bucket;
    if admit(b, now, interval, burst) {
        None
    } else {
        Some(b.limited)
    }
}

/// Whether the source's address is in a whitelisted prefix, from the memo where it is there.
#[inline(always)]
fn whitelisted(src: &Source, l: &Limits) -> bool {
    if l.flags & LIMIT_WHITELIST == 0 {
        return false;
    }
    let h = memo_key(l.rate_seed, &src.addr);
    // SAFETY: this CPU's memo line, in its scratch slot (nothing else writes it meanwhile).
    let slot = unsafe { &mut (*src.memo).0[((h >> 56) ^ (h >> 1)) as usize & 7] };
    if *slot == h {
        return true;
    }
    if *slot == h ^ 1 {
        return false;
    }
    let yes = listed(src);
    *slot = if yes { h } else { h ^ 1 };
    yes
}

/// A source's memo key, odd (the even value records "not listed"), for the full address (a
/// whitelisted prefix may be longer than the RRL prefix): an IPv4 source's own address beside
/// the rate seed's low half (exact, and no hash chain of five multiplies on every hit), any
/// other the address's hash under the seed.
#[inline(always)]
fn memo_key(seed: u64, addr: &[u32; 4]) -> u64 {
    if is_v4(addr) {
        (addr[3] as u64) << 32 | seed as u32 as u64 | 1
    } else {
        rate_hash(seed, addr, SOURCE_CLASS)
    }
}

/// Whether `addr` is an IPv4 address (mapped).
#[inline(always)]
fn is_v4(addr: &[u32; 4]) -> bool {
    addr[0] == 0 && addr[1] == 0 && addr[2] == 0xffffu32.to_be()
}

/// The whitelist trie's answer for the source.
#[inline(always)]
fn listed(src: &Source) -> bool {
    // SAFETY: [u32; 4] and [u8; 16] have the same size and any bit pattern is valid.
    let data: WhitelistAddr = unsafe { core::mem::transmute(src.addr) };
    WHITELIST.get(Key::new(128, data)).is_some()
}

/// Whether no limit applies to the source: the daemon's health probe, or a whitelisted prefix.
/// Its answers are not accounted either (as Knot exempts whitelisted clients before its RRL
/// table), so a trusted heavy client costs no rate-table line per answer; each is counted.
#[inline(always)]
fn exempt(src: &Source, l: &Limits) -> bool {
    if src.probe != 0 {
        return true;
    }
    if whitelisted(src, l) {
        count(Counter::RrlWhitelisted);
        return true;
    }
    false
}

/// Over a limit: exempt sources (the miss budget meets them here) and dry-run mode answer
/// anyway (counted); otherwise
/// every `slip`-th limited response slips, the rest are dropped.
#[inline(always)]
fn over(
    src: &Source,
    l: &Limits,
    limited: u64,
    slip: u32,
    tx: Counter,
    drop: Counter,
) -> Result<Verdict, Counter> {
    if exempt(src, l) {
        return Ok(Verdict::Pass);
    }
    if l.flags & LIMIT_DRY_RUN != 0 {
        count(Counter::RrlDryRun);
        return Ok(Verdict::Pass);
    }
    if slip != 0 && limited % slip as u64 == 0 {
        Ok(Verdict::Slip(tx))
    } else {
        Err(drop)
    }
}

/// Limits for an answer of response class `class`: none for a valid server cookie, the health
/// probe or a whitelisted source; else the
/// class's aggregate rate first (a flood spread over many prefixes), then the source prefix's
/// rate for the class (RRL).
/// `Err(counter)`: drop.
#[inline(always)]
pub fn answer(src: &Source, class: u32) -> Result<Verdict, Counter> {
    // SAFETY: helper without arguments.
    answer_with(src, class, || unsafe { bpf_ktime_get_coarse_ns() })
}

/// [`answer`] at `now`, the coarse clock the caller read already (the cache program's, for the
/// entry's age): one helper call a hit fewer.
#[inline(always)]
pub fn answer_at(src: &Source, class: u32, now: u64) -> Result<Verdict, Counter> {
    answer_with(src, class, || now)
}

/// [`answer`], the clock read only once a limit applies.
#[inline(always)]
fn answer_with(src: &Source, class: u32, clock: impl FnOnce() -> u64) -> Result<Verdict, Counter> {
    let Some(l) = src.limits else {
        return Ok(Verdict::Pass);
    };
    // A valid server cookie proves the source address: no limit applies, and its answers don't
    // count towards the class's aggregate either (as NSD and Knot skip RRL for them).
    if src.cookie & crate::handoff::VALID != 0 || exempt(src, l) {
        return Ok(Verdict::Pass);
    }
    let now = clock();
    if l.global_interval != 0 {
        let tag = rate_hash(l.rate_seed, &[0; 4], class);
        if let Some(n) = account(
            &CLASS_RATES,
            tag,
            l.class_mask,
            now,
            l.global_interval,
            l.global_burst,
        ) {
            return over(
                src,
                l,
                n,
                l.global_slip,
                Counter::TxSlipGlobal,
                Counter::DropGlobal,
            );
        }
    }
    if l.rrl_interval != 0 {
        let tag = rate_hash(l.rate_seed, &mask(l, &src.addr), class);
        if let Some(n) = account(
            &BUCKETS,
            tag,
            l.bucket_mask,
            now,
            l.rrl_interval,
            l.rrl_burst,
        ) {
            return over(src, l, n, l.rrl_slip, Counter::TxSlipRrl, Counter::DropRrl);
        }
    }
    Ok(Verdict::Pass)
}

/// The budget of queries passed up to the slow path: per source prefix, then in total.
#[inline(always)]
pub fn budget(src: &Source) -> Result<Verdict, Counter> {
    let Some(l) = src.limits else {
        return Ok(Verdict::Pass);
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // Two early returns rather than one merged `over` call: merging the paths doubles what
    // the verifier explores (past its 1M-instruction budget).
    if l.budget_interval != 0 {
        let tag = rate_hash(l.rate_seed, &mask(l, &src.addr), MISS_CLASS);
        if let Some(n) = account(
            &BUCKETS,
            tag,
            l.bucket_mask,
            now,
            l.budget_interval,
            l.budget_burst,
        ) {
            return over_budget(src, l, n);
        }
    }
    if l.total_interval != 0 {
        if let Some(b) = TOTAL_BUDGET.get_ptr_mut(0) {
            if !admit(b, now, l.total_interval, l.total_burst) {
                // SAFETY: as in admit.
                return over_budget(src, l, unsafe { (*b).limited });
            }
        }
    }
    Ok(Verdict::Pass)
}

#[inline(always)]
fn over_budget(src: &Source, l: &Limits, limited: u64) -> Result<Verdict, Counter> {
    over(
        src,
        l,
        limited,
        l.global_slip,
        Counter::TxSlipBudget,
        Counter::DropBudget,
    )
}

/// Pass reasons whose queries cost the slow path DNS work, so they count against the budget.
/// Not: non-DNS traffic, IP the kernel must see (options, fragments), bad checksums (the
/// kernel drops them), rewrite failures.
#[inline(always)]
pub fn budgeted(reason: Counter) -> bool {
    matches!(
        reason,
        Counter::PassNotQuery
            | Counter::PassMalformed
            | Counter::PassClass
            | Counter::PassEdns
            | Counter::PassMiss
            | Counter::PassTooBig
            | Counter::PassNotReady
            | Counter::PassLargeQuery
    )
}
