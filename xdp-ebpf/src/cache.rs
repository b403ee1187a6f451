//! The resolver cache's program: answers queries the zones miss from the resolver's hot entries
//! (`CACHE`), each TTL the stored one less the entry's age; everything else goes up.
use aya_ebpf::{
    bindings::xdp_action,
    helpers::{bpf_ktime_get_coarse_ns, bpf_ktime_get_ns},
    macros::{map, xdp},
    maps::Array,
    programs::XdpContext,
};
use rampart_common::{
    CACHE_APEX_BITS, CACHE_APEX_ON, CACHE_SEED_FIRST, CACHE_SEED_WORDS, CACHE_TAIL, CACHE_TTLS,
    CACHE_WAYS, CLASSIC_UDP_LIMIT, CacheEntry, Counter, EDNS_PAYLOAD, JUMP_CACHE, JUMP_MAIN,
    OPT_LEN, SHORT_NAME_LEN, Variant, apex_bit, cache_sets,
    dns::{FLAG_AA, FLAG_AD, FLAG_CD, FLAG_QR, FLAG_RCODE, FLAG_RD, FLAG_TC},
};

use core::sync::atomic::{Ordering, compiler_fence};

use crate::{cache_acl, cache_handoff, csum, dns, eth, ip, limits, maps, packet, udp};

/// The array's slots are mapped into the daemon, which writes them in place.
const BPF_F_MMAPABLE: u32 = 1 << 10;
const NS_PER_SEC: u64 = 1_000_000_000;

/// The promoted entries, `CACHE_WAYS` slots a set, written one by one by the daemon as its
/// cache changes (an array: the verifier inlines its lookups, where a hash map's cost ~70 ns).
#[map(name = "CACHE")]
static CACHE: Array<CacheEntry> = Array::with_max_entries(1, BPF_F_MMAPABLE);
/// The seed of the names' hash in `CacheKey` (0: no resolver), the mask of `CACHE`'s sets,
/// whether the cache is probed before the zones (`CACHE_FIRST`: a node with no zones), and the
/// apex filter (`beyond_zones`).
#[map(name = "CACHE_SEED")]
static CACHE_SEED: Array<u64> = Array::with_max_entries(CACHE_SEED_WORDS, 0);

/// Hand a query to the cache program: one the zones miss, admitted by the miss budget
/// (`early` false), or one the encloser walk found in the cache (`Err(TxCache)` from the
/// lookup), before the budget (the cache program charges it if it passes the query up).
/// Returns only when the slot is empty (no resolver), and the query goes up as before.
#[inline(always)]
pub fn jump(ctx: &XdpContext, early: bool) {
    // Cache first: the cache program has had the query already (and sent it back).
    if cache_first() {
        return;
    }
    if let Ok(key) = maps::key_buf() {
        key.early = early as u16;
    }
    // SAFETY: a tail call with our own context; JUMPS holds programs of this object only.
    unsafe {
        let _ = maps::JUMPS.tail_call(ctx, JUMP_CACHE);
    }
}

/// Whether the `name_len`-byte name in the key buffer has a promoted DO-clear entry of `qtype`
/// (false when no resolver runs: `CACHE_SEED` 0). Cached names are outside every zone: the
/// resolver only caches those, and a reload empties the map.
#[inline(always)]
pub fn promoted(key: &mut maps::KeyBuf, name_len: usize, qtype: u16) -> bool {
    let seed = CACHE_SEED.get(0).copied().unwrap_or(0);
    if seed == 0 {
        return false;
    }
    let hash = key.hash_with(seed, name_len);
    match slot(hash, qtype, 0) {
        Some((index, seq)) => {
            // The cache program's (a DO query looks up its own entry with it).
            key.keep_hash(hash);
            cache_handoff::found(index, seq);
            true
        }
        None => false,
    }
}

/// Whether no zone of the node can hold the question's name (the key buffer's): its top label
/// is none of the apexes' (`CACHE_SEED[CACHE_APEX_ON]` set: the daemon's filter holds every
/// apex's; a bit of another label costs such a name the zones' lookups, never its answer).
/// `Err(TxCache)` where the resolver's cache has it: the cache program answers it, without the
/// zones' encloser walk. A stale filter costs, never changes an answer: cached names are in no
/// zone, and a name it misses goes up to the slow path, which answers as the zones say.
#[inline(always)]
pub fn beyond_zones(key: &mut maps::KeyBuf, q: &crate::query::Question) -> Result<bool, Counter> {
    if CACHE_SEED.get(CACHE_APEX_ON).copied().unwrap_or(0) == 0 {
        return Ok(false);
    }
    let bit = apex_bit(key.top_label_word(q.name_len));
    let word = CACHE_SEED
        .get(CACHE_APEX_BITS + bit / 64)
        .copied()
        .unwrap_or(u64::MAX);
    if word & (1u64 << (bit % 64)) != 0 {
        return Ok(false);
    }
    if q.name_len <= SHORT_NAME_LEN && promoted(key, q.name_len, q.qtype) {
        return Err(Counter::TxCache);
    }
    Ok(true)
}

/// A resolver-only node (`CACHE_SEED[2]` set: its zones give the program no answer) hands
/// every frame to the cache program first, before the main program parses it (a hit then
/// costs neither that parse nor a zone lookup; what is not a query pays a tail call there and
/// back); the cache program sends what it can't answer back here (`JUMP_MAIN`), untouched,
/// which goes on as on any node. Returns on the way back, where the cache is off
/// or cache-first, or when the tail call fails.
#[inline(always)]
pub fn first(ctx: &XdpContext) {
    if !cache_first() || cache_handoff::back() {
        return;
    }
    if let Ok(key) = maps::key_buf() {
        key.early = FIRST;
    }
    // SAFETY: a tail call with our own context; JUMPS holds programs of this object only.
    unsafe {
        let _ = maps::JUMPS.tail_call(ctx, JUMP_CACHE);
    }
}

/// `KeyBuf::early` for a query handed over by `first`.
const FIRST: u16 = 2;

#[inline(always)]
fn cache_first() -> bool {
    CACHE_SEED.get(CACHE_SEED_FIRST).copied().unwrap_or(0) != 0
}

/// Send the query back to the main program (the cache-first order's miss); returns if the
/// tail call fails.
#[inline(always)]
fn back_to_main(ctx: &XdpContext) {
    cache_handoff::send_back(true);
    // SAFETY: as in `first`.
    unsafe {
        let _ = maps::JUMPS.tail_call(ctx, JUMP_MAIN);
    }
    cache_handoff::send_back(false);
}

/// The index of the slot holding (name hash, type, DO), and the even sequence number read from
/// it before anything else of it: one of the ways of the name's two sets.
#[inline(always)]
fn slot(hash: u64, qtype: u16, dnssec_ok: u8) -> Option<(u32, u32)> {
    let mask = CACHE_SEED.get(1).copied().unwrap_or(0);
    let (first, second) = cache_sets(hash, mask);
    let mut i = 0;
    while i < 2 * CACHE_WAYS {
        let index = if i < CACHE_WAYS {
            first + i
        } else {
            second + i - CACHE_WAYS
        };
        if let Some(e) = CACHE.get(index) {
            // SAFETY: a slot of the array (never freed); the daemon may be writing it, which
            // the sequence word tells.
            let seq = unsafe { core::ptr::read_volatile(&e.seq) };
            compiler_fence(Ordering::Acquire);
            if seq & 1 == 0
                && e.live != 0
                && e.name_hash == hash
                && e.qtype == qtype
                && e.dnssec_ok == dnssec_ok
            {
                return Some((index, seq));
            }
        }
        i += 1;
    }
    None
}

/// Whether slot `index` still holds what it held under `seq` (the walk's first hop found it),
/// and that is the entry of `qtype` and `dnssec_ok`.
#[inline(always)]
fn slot_at(index: u32, seq: u32, qtype: u16, dnssec_ok: u8) -> bool {
    let Some(e) = CACHE.get(index) else {
        return false;
    };
    // SAFETY: as in `slot`.
    let now = unsafe { core::ptr::read_volatile(&e.seq) };
    compiler_fence(Ordering::Acquire);
    now == seq && seq & 1 == 0 && e.qtype == qtype && e.dnssec_ok == dnssec_ok
}

/// Whether the slot still holds what was read from it under `seq` (x86 keeps loads in order;
/// the fence keeps the compiler from moving the slot's reads past this one).
#[inline(always)]
fn unchanged(e: *const CacheEntry, seq: u32) -> bool {
    compiler_fence(Ordering::Release);
    // SAFETY: a slot of the array, as in `slot`.
    unsafe { core::ptr::read_volatile(&(*e).seq) == seq }
}

#[xdp]
pub fn rampart_cache(ctx: XdpContext) -> u32 {
    match try_cache(&ctx) {
        Ok(action) => action,
        Err(Counter::DropRewriteFailed) => xdp_action::XDP_DROP,
        Err(reason) => {
            maps::count(reason);
            if reason.is_drop() {
                xdp_action::XDP_DROP
            } else {
                xdp_action::XDP_PASS
            }
        }
    }
}

/// What a found entry gives this query's variant.
struct Found {
    entry: *const CacheEntry,
    /// The slot's sequence number when it was found.
    seq: u32,
    flags: u16,
    ancount: u16,
    nscount: u16,
    arcount: u16,
    tail_len: usize,
    tail_csum: u16,
    ttl_count: usize,
    /// Whole seconds the TTLs have aged (rounded up, as the slow path rounds).
    age: u32,
    /// The coarse clock, read for the age (the limits' "now").
    now: u64,
}

#[inline(always)]
fn try_cache(ctx: &XdpContext) -> Result<u32, Counter> {
    let s = maps::Scratch::get()?;
    let mode = s.key().early;
    let early = mode != 0;
    // What the main program leaves is for the early path only. Early, it parsed the headers
    // and left where they end; otherwise they are parsed here, and taken the same way: one
    // verifier state on from here.
    if mode != 1 {
        cache_handoff::discard();
        match parse(ctx) {
            Ok(l3) => cache_handoff::leave_frame(s, &l3),
            Err(reason) => {
                // Cache first: the frame comes before any parse of the main program's, which
                // parses it again and judges it as on any node.
                if mode == FIRST {
                    back_to_main(ctx);
                }
                return Err(reason);
            }
        }
    }
    let (l3, udp) = cache_handoff::take_frame(ctx, s)?;
    let probe = s.launder(packet::is_health_probe(ctx) as u64);
    let addr = ip::source(ctx, &l3)?;
    let src = limits::Source::new(addr, probe, s);
    let served = serve(ctx, &l3, &udp, &src);
    // Cache first: what the cache can't answer (the frame untouched) goes back to the main
    // program, which answers it from the zones or passes it up as on any node.
    if mode == FIRST
        && let Err(reason) = served
        && reason != Counter::DropRewriteFailed
    {
        back_to_main(ctx);
    }
    match served {
        // Reached before the budget (the walk's first hop found the name): what goes up pays
        // for it here, as in the main program (a client outside the ACL too); junk is dropped.
        // Over the budget: dropped (no slip from here).
        Err(reason) if early && !reason.is_drop() => {
            let reason = maps::key_buf()?.launder(reason as u64) as u32;
            if reason == Counter::PassMalformed as u32 {
                return Err(Counter::DropMalformed);
            }
            let reason = counter_of(reason);
            if !limits::budgeted(reason) {
                return Err(reason);
            }
            match limits::budget(&src)? {
                limits::Verdict::Pass => Err(reason),
                limits::Verdict::Slip(_) => Err(Counter::DropBudget),
            }
        }
        other => other,
    }
}

/// The frame's IP header, once its UDP header is checked (a UDP datagram to port 53), or why
/// not.
#[inline(always)]
fn parse(ctx: &XdpContext) -> Result<ip::L3, Counter> {
    let l2 = eth::parse(ctx)?;
    let l3 = ip::parse(ctx, &l2)?;
    udp::parse(ctx, &l3)?;
    Ok(l3)
}

/// The pass reasons the cache program meets, from their index.
#[inline(always)]
fn counter_of(reason: u32) -> Counter {
    match reason {
        r if r == Counter::PassTooBig as u32 => Counter::PassTooBig,
        r if r == Counter::PassEdns as u32 => Counter::PassEdns,
        r if r == Counter::PassNsid as u32 => Counter::PassNsid,
        r if r == Counter::PassClass as u32 => Counter::PassClass,
        r if r == Counter::PassNotQuery as u32 => Counter::PassNotQuery,
        r if r == Counter::PassLargeQuery as u32 => Counter::PassLargeQuery,
        r if r == Counter::PassBadChecksum as u32 => Counter::PassBadChecksum,
        r if r == Counter::PassRewriteFailed as u32 => Counter::PassRewriteFailed,
        _ => Counter::PassMiss,
    }
}

/// The answer from the cache, or why not.
#[inline(always)]
fn serve(
    ctx: &XdpContext,
    l3: &ip::L3,
    udp: &udp::Udp,
    src: &limits::Source,
) -> Result<u32, Counter> {
    if !cache_acl::allowed(src.addr()) {
        return Err(Counter::PassMiss);
    }
    // Bounded as the main program's parse bounds it: the checksum's copy needs the bound, and
    // on the path where the question is not read again nothing else gives it to the verifier
    // (laundered, so no copy from before the check is used after it).
    let payload_len = maps::key_buf()?.launder(udp.payload_len as u64) as usize;
    if payload_len > udp::MAX_VERIFIED - 8 {
        return Err(Counter::PassLargeQuery);
    }
    let udp = &udp::Udp {
        payload_off: udp.payload_off,
        payload_len,
        sport: udp.sport,
        csum: udp.csum,
    };
    let header = dns::parse_header(ctx, udp.payload_off, udp.payload_len)?;
    // On the early path the main program read the question and found the slot (its key
    // buffer still holds the lowercased name): not read again. Otherwise read here, and taken
    // the same way: one verifier state on from here.
    if !cache_handoff::ready() {
        // Hashed under the cache's seed: the lookup's key, with no second pass over the name.
        let seed = CACHE_SEED.get(0).copied().unwrap_or(0);
        let question = dns::read_question(ctx, udp.payload_off, udp.payload_len, seed)?;
        cache_handoff::leave(&question);
        cache_handoff::found(0, cache_handoff::NO_SEQ);
    }
    let (question, slot_index, seq) = cache_handoff::take().ok_or(Counter::PassMiss)?;
    let dns_end = udp.payload_off + udp.payload_len;
    let edns = dns::parse_edns(ctx, &question, header.arcount, dns_end)?;
    // The answer would carry the client's cookie and a fresh one: the slow path's to add.
    if edns.cookie.is_some() {
        return Err(Counter::PassMiss);
    }
    let limit = match edns.variant {
        Variant::NoEdns => CLASSIC_UDP_LIMIT,
        _ => edns.udp_size.clamp(CLASSIC_UDP_LIMIT, EDNS_PAYLOAD),
    } as usize;
    let mut found = find(&question, edns.variant, slot_index, seq)?;
    if dns::HEADER_LEN + question.len + found.tail_len > limit {
        return Err(Counter::PassTooBig);
    }
    // SAFETY: a CACHE slot from a successful lookup (an array's: never freed).
    let rrl_class = unsafe { (*found.entry).rrl_class };
    let outcome = match limits::answer_at(src, rrl_class, found.now)? {
        limits::Verdict::Pass => Counter::TxCache,
        limits::Verdict::Slip(c) => {
            // Header and question, TC=1, as the main program slips.
            found.flags = (found.flags & (FLAG_AA | FLAG_RCODE)) | FLAG_QR | FLAG_TC;
            found.ancount = 0;
            found.nscount = 0;
            found.arcount = 0;
            found.tail_len = 0;
            found.tail_csum = 0;
            found.ttl_count = 0;
            c
        }
    };
    let payload_sum = edns
        .csum
        .map(|opt| dns::query_header_sum(&header) + question.csum + opt);
    let address_sum = ip::address_sum(ctx, l3)?;
    udp::verify_checksum(ctx, l3, udp, address_sum, payload_sum)?;

    let wash = maps::key_buf()?;
    let dns_off = udp.payload_off;
    let tail_off =
        (wash.launder((dns_off + dns::HEADER_LEN + question.len) as u64) & 0x7ff) as usize;
    let tail_len = (wash.launder(found.tail_len as u64) & 0x7ff) as usize;
    let dns_len = tail_off - dns_off + tail_len;
    crate::resize(ctx, dns_off + dns_len, tail_off)?;
    // From here the frame is no longer the query: a failure drops it.
    let ttl_sum =
        write_tail(ctx, &found, dns_off, tail_off, tail_len).map_err(|_| drop_rewrite())?;
    let flags = found.flags | (header.flags & (FLAG_RD | FLAG_CD));
    // SAFETY: as above.
    let flags = if unsafe { (*found.entry).secure } != 0 && header.flags & FLAG_AD != 0 {
        flags | FLAG_AD
    } else {
        flags
    };
    // The daemon rewrote the slot while we copied it: what we wrote may be torn. Rare (the
    // entry answered at the very instant it is replaced); the client asks again.
    if !unchanged(found.entry, found.seq) {
        return Err(drop_rewrite());
    }
    let head = [flags, 1, found.ancount, found.nscount, found.arcount];
    let mut head_sum = header.id as u64;
    let mut i = 0;
    while i < head.len() {
        packet::put_be16(ctx, dns_off + 2 + 2 * i, head[i]).map_err(|_| drop_rewrite())?;
        head_sum += head[i] as u64;
        i += 1;
    }
    eth::swap_macs(ctx).map_err(|_| drop_rewrite())?;
    ip::reply(ctx, l3, 8 + dns_len).map_err(|_| drop_rewrite())?;
    let pseudo = ip::pseudo_sum(address_sum, 8 + dns_len);
    let payload =
        head_sum + question.csum + csum::at_offset(found.tail_csum, tail_off - dns_off) + ttl_sum;
    udp::reply(ctx, l3, udp, 8 + dns_len, pseudo + payload).map_err(|_| drop_rewrite())?;
    maps::count(outcome);
    Ok(xdp_action::XDP_TX)
}

#[inline(always)]
fn drop_rewrite() -> Counter {
    maps::count(Counter::DropRewriteFailed);
    Counter::DropRewriteFailed
}

/// The fresh entry for the question in the key buffer, in `variant`.
#[inline(always)]
fn find(
    q: &crate::query::Question,
    variant: Variant,
    slot_index: u32,
    seq: u32,
) -> Result<Found, Counter> {
    let key = maps::key_buf()?;
    let dnssec_ok = (variant == Variant::EdnsDo) as u8;
    // The walk's slot (the DO-clear entry's), else the set's ways.
    let (index, seq) = if slot_at(slot_index, seq, q.qtype, dnssec_ok) {
        (slot_index, seq)
    } else {
        // Under the cache's seed: read so here, or kept so by `promoted`.
        slot(key.hash(), q.qtype, dnssec_ok).ok_or(Counter::PassMiss)?
    };
    // Laundered: every way out of the lookups above goes on as one verifier state.
    let w = key.launder(((index as u64) << 32) | seq as u64);
    let (index, seq) = ((w >> 32) as u32, w as u32);
    // A slot of the array; torn reads are caught by the sequence word before sending.
    let e = CACHE.get(index).ok_or(Counter::PassMiss)?;
    let name_len = key.len();
    let same = if name_len <= SHORT_NAME_LEN {
        key.same_short_name(&e.name)
    } else {
        key.same_name(&e.name, name_len)
    };
    if e.name_len as usize != name_len || !same {
        return Err(Counter::PassMiss);
    }
    let (age, now) = age(e.stored_ns, e.expires_ns).ok_or(Counter::PassMiss)?;
    let (tail_len, arcount, tail_csum) = match variant {
        Variant::NoEdns => {
            if e.noedns == 0 || (e.tail_len as usize) < OPT_LEN || e.arcount == 0 {
                return Err(Counter::PassMiss);
            }
            (e.tail_len as usize - OPT_LEN, e.arcount - 1, e.noedns_csum)
        }
        _ => (e.tail_len as usize, e.arcount, e.tail_csum),
    };
    if tail_len == 0 || tail_len > CACHE_TAIL || e.ttl_count as usize > CACHE_TTLS {
        return Err(Counter::PassMiss);
    }
    Ok(Found {
        entry: e as *const CacheEntry,
        seq,
        flags: e.flags,
        ancount: e.ancount,
        nscount: e.nscount,
        arcount,
        tail_len,
        tail_csum,
        ttl_count: e.ttl_count as usize,
        age,
        now,
    })
}

/// How far behind the precise clock the coarse one (the time at the last tick) may be, at most:
/// a few ticks at any HZ (a busy CPU's tick runs; an idle one's stopped tick is caught up
/// before its interrupts' softirqs run).
const COARSE_LAG_NS: u64 = 50_000_000;

/// Whole seconds (rounded up, as the slow path rounds) since `stored_ns`, with the coarse clock
/// read for it (the rate limits take their time from it), or `None` when the
/// entry has expired (or was not yet stored, which can't be): the slow path refreshes it, or
/// serves it stale once the refresh fails; the program never knows which, so never answers.
/// The precise clock costs a hit ~20 ns (`read_tsc` in a VM); the coarse one is read from
/// memory. The precise time lies in [coarse, coarse + `COARSE_LAG_NS`]: where the whole range
/// gives one age and is before the expiry, that age is the precise clock's; only near a second's
/// turn (one query in twenty) or the expiry is the precise clock read.
#[inline(always)]
fn age(stored_ns: u64, expires_ns: u64) -> Option<(u32, u64)> {
    // SAFETY: helper without arguments.
    let coarse = unsafe { bpf_ktime_get_coarse_ns() };
    if coarse >= stored_ns && coarse + COARSE_LAG_NS < expires_ns {
        let since = coarse - stored_ns;
        let age = since.div_ceil(NS_PER_SEC);
        // The range's top still rounds up to the same second.
        if since + COARSE_LAG_NS <= age * NS_PER_SEC && since != 0 {
            return Some((age as u32, coarse));
        }
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now >= expires_ns || now < stored_ns {
        return None;
    }
    Some(((now - stored_ns).div_ceil(NS_PER_SEC) as u32, coarse))
}

/// Copy the entry's tail to `tail_off` and write each TTL field (stored TTL less the age);
/// returns the TTLs' checksum share (the stored tail sums them as zero).
#[inline(always)]
fn write_tail(
    ctx: &XdpContext,
    f: &Found,
    dns_off: usize,
    tail_off: usize,
    tail_len: usize,
) -> Result<u64, Counter> {
    if tail_len == 0 {
        return Ok(0);
    }
    let len = tail_len as u32;
    if len == 0 || len > CACHE_TAIL as u32 {
        return Err(Counter::DropRewriteFailed);
    }
    // SAFETY: a slot of the array, as in `slot`; its tail is 8-aligned (after the name).
    let tail = unsafe { (*f.entry).tail.as_ptr() };
    if tail_len >= 8 && tail_len <= WORD_TAIL {
        store_words(ctx, tail_off, tail, tail_len)?;
    } else {
        // SAFETY: the entry's tail (CACHE_TAIL bytes) into the frame at tail_off, len bytes,
        // both checked (the helper checks the frame's).
        let rc = unsafe {
            aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, tail_off as u32, tail as *mut _, len)
        };
        if rc != 0 {
            return Err(Counter::DropRewriteFailed);
        }
    }
    let wash = maps::key_buf()?;
    let count = (wash.launder(f.ttl_count as u64) & 0x1f) as usize;
    let mut sum = 0u64;
    let mut i = 0;
    while i < CACHE_TTLS {
        if i >= count {
            break;
        }
        // SAFETY: i < CACHE_TTLS, inside the entry's arrays (raw reads: LLVM keeps a bounds
        // check on indexing here, and a panic path the verifier refuses).
        let (off, stored) = unsafe {
            (
                (*f.entry).ttl_off.as_ptr().add(i).read(),
                (*f.entry).ttl.as_ptr().add(i).read(),
            )
        };
        let pos = (wash.launder((tail_off + off as usize) as u64) & 0x7ff) as usize;
        if pos < dns_off || off as usize + 4 > tail_len {
            return Err(Counter::DropRewriteFailed);
        }
        let ttl = stored.saturating_sub(f.age);
        let (hi, lo) = ((ttl >> 16) as u16, ttl as u16);
        let p = packet::ptr_at(ctx, pos, 4, Counter::DropRewriteFailed)?;
        // SAFETY: four packet bytes checked by ptr_at.
        unsafe { (p as *mut u32).write_unaligned(ttl.to_be()) };
        sum += csum::at_offset(hi, pos - dns_off) + csum::at_offset(lo, pos + 2 - dns_off);
        i += 1;
    }
    Ok(sum)
}

/// Tails up to this long are copied a word at a time (a positive answer or two, a short
/// chain); longer ones by the helper.
const WORD_TAIL: usize = 128;

/// Copy a `len`-byte tail (8 <= `len` <= `WORD_TAIL`, from the entry's 8-aligned tail) into the
/// packet at `off`, eight bytes at a time, without the helper (its call and `memcpy`, the main
/// program's inline tails found, cost more than the copy).
#[inline(always)]
fn store_words(ctx: &XdpContext, off: usize, src: *const u8, len: usize) -> Result<(), Counter> {
    let wash = maps::key_buf()?;
    let off = (wash.launder(off as u64) & 0x7ff) as usize;
    let len = (wash.launder(len as u64) & 0xff) as usize;
    packet::store_words::<u64, WORD_TAIL>(ctx, off, src, len, Counter::DropRewriteFailed)
}
