//! The maps the program reads (filled by userspace, layouts in rampart-common) and its counters.
use aya_ebpf::{
    btf_maps::{self, ArrayOfMaps},
    macros::{btf_map, map},
    maps::{Array, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use rampart_common::{
    AnswerHead, COUNTER_COUNT, Config, Counter, DERIVE_DO, DERIVE_NOEDNS, GenParams, INDEX_WAYS,
    IndexBucket, KEY_NAME_LEN, MAX_NAME, MAX_RELOCS, NameSlot, OPT_LEN, QTYPE_ENCLOSER,
    QTYPE_OTHER, RECORD_NAME_LEN, RECORD_NONE, Record, SHORT_NAME_LEN, TAIL_CLASS_INLINE,
    TAIL_CLASS_SMALL, TAIL_INLINE, TAIL_LARGE, TAIL_SMALL, TailLarge, TailSmall, Variant,
    home_slot, index_buckets, is_data_type, is_homed, key_hash, name_hash_step,
};

use crate::query::{Answer, Question};

/// Arrays userspace writes through mmap (a reload is a memcpy into a new generation, no
/// syscall per answer); the program reads them like any array.
const BPF_F_MMAPABLE: u32 = 1 << 10;
/// No BPF_F_INNER_MAP: every inner array has its template's size (userspace makes the
/// templates at load, sized for the zones), so the verifier inlines their lookups (a bounds
/// check and an add) where that flag would make each one a helper call.
const GENERATION_FLAGS: usize = BPF_F_MMAPABLE as usize;

/// One array per generation, in slot `generation & 1` of an outer array of maps: userspace
/// creates a generation's arrays (the size fixed at load), fills them, puts them in the idle slot and
/// flips `CONFIG.generation`; then it empties the old slot, and the kernel frees the old arrays
/// once no program run holds them (RCU). Only one generation is resident between reloads.
type Generations<T> = ArrayOfMaps<btf_maps::Array<T, 1, GENERATION_FLAGS>, 2>;

/// Precompiled answers (sized at load for the zones and their growth): records,
/// the cuckoo index that finds them, long names, and tails too big to be inline. Arrays, not
/// hash maps: an array lookup is a bounds check and an add where a hash map's is a jhash of the
/// key and a bucket chain walk (half of a hit's time, measured).
#[btf_map(name = "RECORDS")]
static RECORDS: Generations<Record> = ArrayOfMaps::new();
#[btf_map(name = "INDEX")]
static INDEX: Generations<IndexBucket> = ArrayOfMaps::new();
#[btf_map(name = "NAMES")]
static NAMES: Generations<NameSlot> = ArrayOfMaps::new();
#[btf_map(name = "TAILS_SMALL")]
static TAILS_SMALL: Generations<TailSmall> = ArrayOfMaps::new();
#[btf_map(name = "TAILS_LARGE")]
static TAILS_LARGE: Generations<TailLarge> = ArrayOfMaps::new();

/// One generation's records.
pub type Records = btf_maps::Array<Record, 1, GENERATION_FLAGS>;

/// Record `idx` of the generation in slot `slot`.
#[inline(always)]
fn record(slot: u32, idx: u32) -> Option<*const Record> {
    RECORDS
        .get_value_ptr_mut(slot, &idx)
        .map(|p| p as *const Record)
}

/// The live generation's records (read once per frame by [`KeyBuf::fill_name`]), found once
/// for the frame: a hit reads two records of it, and each outer lookup is a dozen
/// instructions once the verifier inlines it. `None` before the first generation is ready.
#[inline(always)]
pub fn records(s: Scratch) -> Option<&'static Records> {
    let key = s.key();
    if key.ready == 0 {
        return None;
    }
    RECORDS.get(key.slot)
}

/// Record `idx` of `records`.
#[inline(always)]
fn record_in(records: &Records, idx: u32) -> Option<*const Record> {
    records.get_ptr(idx)
}

/// Mappable: the daemon's slow path reads the live generation from it (`GenerationWord`).
#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, BPF_F_MMAPABLE);
#[map(name = "STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
/// Bytes of a frame the program may copy aside: the headers and the longest question (18 + 40 +
/// 8 + 12 + 259) fit, and so does a whole 512-byte UDP query.
pub const FRAME_BUF: usize = 600;
#[map(name = "FRAMEBUF")]
static FRAMEBUF: PerCpuArray<[u8; FRAME_BUF]> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's frame copy buffer.
#[inline(always)]
pub fn frame_buf() -> Result<*mut u8, Counter> {
    match FRAMEBUF.get_ptr_mut(0) {
        Some(p) => Ok(p.cast()),
        None => Err(Counter::PassRewriteFailed),
    }
}

/// Tail-call targets (slots `JUMP_*`), filled by userspace: the cookie stage, the main program
/// for a shared-NIC entry program that carries this map, and the resolver cache's program.
#[map(name = "JUMPS")]
pub static JUMPS: ProgramArray = ProgramArray::with_max_entries(rampart_common::JUMP_SLOTS, 0);
#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<KeyBuf> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(c: Counter) {
    count_index(c as u32)
}

/// Count under a counter's index (one whose value the verifier doesn't know).
#[inline(always)]
pub fn count_index(c: u32) {
    if let Some(p) = STATS.get_ptr_mut(c) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently with us.
        unsafe { *p += 1 };
    }
}

/// ASCII-lowercase eight bytes at once (SWAR): add 0x20 to every byte in 'A'..='Z'.
#[inline(always)]
fn ascii_lowercase8(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low7 = w & !HIGH;
    // High bit of each byte set where the byte's low 7 bits are >= 'A', and where they are > 'Z'.
    let ge_a = low7 + ONES * (0x80 - b'A' as u64);
    let gt_z = low7 + ONES * (0x80 - b'Z' as u64 - 1);
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// A word of the query name as read from the packet: added to the checksum `sum` (as two
/// little-endian halves), lowercased, hashed into `h`; returns the lowercased word for the key.
#[inline(always)]
fn name_step(sum: &mut u64, h: &mut u64, w: u64) -> u64 {
    *sum += (w & 0xffff_ffff) + (w >> 32);
    let lower = ascii_lowercase8(w);
    *h = name_hash_step(*h, lower);
    lower
}

/// This CPU's query name under construction (lowercased, zero-padded: 256 bytes are too many
/// for the 512-byte stack next to everything else), with its hash and the generation it is
/// looked up in.
#[repr(C)]
pub struct KeyBuf {
    name: [u8; KEY_NAME_LEN],
    /// The name length, laundered through memory: see [`KeyBuf::set_len`].
    len: u32,
    /// Any value laundered the same way: see [`KeyBuf::launder`].
    wash: u64,
    /// Hash of the name (or of the suffix a walk put in `name`), from the generation's seed;
    /// in the cache program, from the resolver cache's.
    hash: u64,
    /// An answer's header laundered like `wash`: see [`KeyBuf::launder_head`].
    head: AnswerHead,
    /// What [`locate`] found: a record's index ([`RECORD_NONE`]: none), and the pass reason
    /// for none or for a marker.
    found: u32,
    why: u32,
    walk: WalkState,
    /// The generation read once per frame, so every lookup of the frame uses the same one:
    /// its parameters, and the slot of the outer maps that holds its arrays.
    gen_: GenParams,
    slot: u32,
    ready: u32,
    /// Where the question name's top label starts (`dns::name_length`).
    pub top: u32,
    /// Set by the main program before it tail-calls the cache program: nonzero when the query
    /// has not been through the miss budget yet (the early probe, `cache::probe`).
    pub early: u16,
    /// Where the frame's UDP header starts, left for the cache program (`cache_handoff`). Two
    /// u16 where `early` was one u32: the whitelist memo's line stays where it was.
    pub l4_off: u16,
    /// What the whitelist said of recent sources (`limits::whitelisted`).
    memo: WhitelistMemo,
}

/// What the whitelist said of recent sources, per CPU: eight entries, each a source's key
/// (`limits::memo_key`: an IPv4 address beside the rate seed's low half, another address's
/// hash under the rate seed; so a restart forgets them) with its low bit cleared when the
/// source is not listed. A source that keeps sending (a load generator, a monitoring resolver) finds
/// its verdict here instead of a trie walk per packet; kept in the scratch slot, which the
/// frame has already looked up, rather than in a map of its own.
#[repr(C, align(64))]
pub struct WhitelistMemo(pub [u64; 8]);

impl KeyBuf {
    /// Zero the key bytes a name of `len` bytes leaves unwritten but the lookup reads: the
    /// first 64 for a short key, all 256 for a long one. Volatile stores, because LLVM would
    /// otherwise turn the loop into a call to compiler-builtins' byte-at-a-time `memset`, which
    /// cost ~150 ns a packet. The first eight words unrolled: the loop's control was most of
    /// the cost for a short name (every hit's).
    #[inline(always)]
    pub fn clear(&mut self, len: usize) {
        let words = self.name.as_mut_ptr() as *mut u64;
        // SAFETY: words 0..8 of the 256-byte name, 8-aligned (first field of the 8-aligned
        // scratch value).
        unsafe {
            core::ptr::write_volatile(words, 0);
            core::ptr::write_volatile(words.add(1), 0);
            core::ptr::write_volatile(words.add(2), 0);
            core::ptr::write_volatile(words.add(3), 0);
            core::ptr::write_volatile(words.add(4), 0);
            core::ptr::write_volatile(words.add(5), 0);
            core::ptr::write_volatile(words.add(6), 0);
            core::ptr::write_volatile(words.add(7), 0);
        }
        if len <= SHORT_NAME_LEN {
            return;
        }
        let mut i = SHORT_NAME_LEN / 8;
        while i < KEY_NAME_LEN / 8 {
            // SAFETY: 8 <= i < 32 words of the 256-byte name, 8-aligned.
            unsafe { core::ptr::write_volatile(words.add(i), 0) };
            i += 1;
        }
    }

    /// Put the `len`-byte question name at packet offset `off` into the buffer, read from the
    /// packet a word at a time ([`crate::packet::name_word`]: no helper copy first, whose call
    /// and `memcpy` cost more than the name), lowercased eight bytes at a time, hashed on the
    /// same pass (under the live generation's seed, read here once for the whole frame); returns
    /// its checksum contribution as a one's-complement sum of little-endian words (byte-swap
    /// after folding). Length bytes are below 'A', so lowercasing every byte leaves them alone.
    #[inline(always)]
    pub fn fill_name(&mut self, ctx: &XdpContext, off: usize, len: usize) -> Result<u64, Counter> {
        if len == 0 || len > MAX_NAME {
            return Err(Counter::PassMalformed);
        }
        self.take_generation();
        let seed = self.gen_.seed;
        self.fill_name_with(ctx, off, len, seed)
    }

    /// [`KeyBuf::fill_name`] hashed under `seed` (the resolver cache's, in the cache program,
    /// which looks nothing up in the zones: no generation read, one hash pass).
    #[inline(always)]
    pub fn fill_name_with(
        &mut self,
        ctx: &XdpContext,
        off: usize,
        len: usize,
        seed: u64,
    ) -> Result<u64, Counter> {
        if len == 0 || len > MAX_NAME {
            return Err(Counter::PassMalformed);
        }
        let words = self.name.as_mut_ptr() as *mut u64;
        let mut sum = 0u64;
        let mut h = seed;
        // The whole words in the loop (one path a turn), the last part-word once after it: a
        // part-word read inside the loop split every turn three ways, and the verifier's work
        // on the main and cache programs went from 369k and 136k instructions to 646k and 584k.
        let whole = len / 8;
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            if i >= whole {
                break;
            }
            // off >= 12 (past the DNS header).
            let w = crate::packet::name_word(ctx, off + i * 8 - 4, 8)?;
            // SAFETY: i < 32 words of the 8-aligned 256-byte name.
            unsafe { words.add(i).write(name_step(&mut sum, &mut h, w)) };
            i += 1;
        }
        let rest = len % 8;
        if rest != 0 {
            // Laundered and masked (a no-op: the offset is under 2 KiB): every exit of the loop
            // leaves its own range for it, and the part-word would be verified once per exit.
            let back4 = (self.launder((off + whole * 8 - 4) as u64) & 0x7ff) as usize;
            let w = crate::packet::name_word(ctx, back4, rest)?;
            // SAFETY: whole <= 31 (len <= 255): a word of the 8-aligned 256-byte name.
            unsafe { words.add(whole & 31).write(name_step(&mut sum, &mut h, w)) };
        }
        self.hash = self.launder(h);
        Ok(sum)
    }

    /// Read the live generation once (it may flip while the frame is being handled).
    #[inline(always)]
    fn take_generation(&mut self) {
        match CONFIG.get(0) {
            Some(c) if c.ready != 0 => {
                let slot = c.generation & 1;
                let g = if slot == 0 { &c.gens[0] } else { &c.gens[1] };
                // Field by field: a struct copy becomes a call to a byte-at-a-time memcpy.
                self.gen_.seed = g.seed;
                self.gen_.index_mask = g.index_mask;
                self.gen_.records_count = g.records_count;
                self.slot = slot;
                self.ready = 1;
            }
            _ => self.ready = 0,
        }
    }

    /// Put the `len`-byte name suffix at packet offset `off` (len <= 64) into the buffer,
    /// lowercased, zero-padded to 64 bytes, and hashed.
    #[inline(always)]
    pub fn fill_short_suffix(
        &mut self,
        ctx: &XdpContext,
        off: usize,
        len: usize,
    ) -> Result<(), Counter> {
        if len == 0 || len > SHORT_NAME_LEN {
            return Err(Counter::PassMiss);
        }
        self.clear(len);
        let name = self.name.as_mut_ptr();
        // The same value, in a form whose range [1, 64] the verifier can see for itself.
        let n = (((len - 1) & (SHORT_NAME_LEN - 1)) + 1) as u32;
        // SAFETY: the helper writes n <= 64 bytes into the 256-byte name.
        if unsafe { aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, off as u32, name.cast(), n) }
            != 0
        {
            return Err(Counter::PassMalformed);
        }
        let words = name as *mut u64;
        let mut h = self.gen_.seed;
        let mut i = 0;
        while i < SHORT_NAME_LEN / 8 {
            // SAFETY: i < 8 words of the 8-aligned 256-byte name.
            unsafe {
                let lower = ascii_lowercase8(words.add(i).read());
                if (i as u32) * 8 < n {
                    h = name_hash_step(h, lower);
                }
                words.add(i).write(lower)
            };
            i += 1;
        }
        self.hash = self.launder(h);
        Ok(())
    }

    /// Keep the name length in memory. Every exit of a loop over the name leaves the verifier a
    /// different range for it (the exit test refines it); reading it back with [`Self::len`]
    /// gives all of them one plain u8 range, so the code after the loop is verified once instead
    /// of once per exit, which would be far past the verifier's budget.
    #[inline(always)]
    pub fn set_len(&mut self, len: usize) {
        // SAFETY: plain field of this CPU's scratch slot; volatile so the store isn't elided.
        unsafe { core::ptr::write_volatile(&mut self.len, len as u32) }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        // SAFETY: as above; volatile so the load is not replaced by the register it came from.
        unsafe { core::ptr::read_volatile(&self.len) as u8 as usize }
    }

    /// Pass `v` through memory so that every path arriving here carries the same unknown value:
    /// a loop with early exits (the relocation loop) otherwise leaves one range per exit, and
    /// everything after it is verified once per exit.
    #[inline(always)]
    pub fn launder_head(&mut self, v: AnswerHead) -> AnswerHead {
        // As four words: a volatile struct access becomes a call to a byte-at-a-time memmove.
        const WORDS: usize = core::mem::size_of::<AnswerHead>() / 8;
        // SAFETY: AnswerHead is 32 bytes of plain data, 8-aligned; the scratch field is ours.
        unsafe {
            let src = &v as *const AnswerHead as *const u64;
            let dst = &mut self.head as *mut AnswerHead as *mut u64;
            let mut i = 0;
            while i < WORDS {
                core::ptr::write_volatile(dst.add(i), *src.add(i));
                i += 1;
            }
            let mut out = AnswerHead::zeroed();
            let o = &mut out as *mut AnswerHead as *mut u64;
            i = 0;
            while i < WORDS {
                *o.add(i) = core::ptr::read_volatile(dst.add(i));
                i += 1;
            }
            out
        }
    }

    #[inline(always)]
    pub fn launder(&mut self, v: u64) -> u64 {
        // SAFETY: plain field of this CPU's scratch slot; volatile so neither access is elided.
        unsafe {
            core::ptr::write_volatile(&mut self.wash, v);
            core::ptr::read_volatile(&self.wash)
        }
    }
}

/// This CPU's scratch slot, looked up once per frame and handed down the hit's path: each
/// lookup is a dozen instructions once the verifier inlines it, and a hit used to make ten.
#[derive(Clone, Copy)]
pub struct Scratch(*mut KeyBuf);

impl Scratch {
    #[inline(always)]
    pub fn get() -> Result<Scratch, Counter> {
        match SCRATCH.get_ptr_mut(0) {
            Some(p) => Ok(Scratch(p)),
            None => Err(Counter::PassNotReady),
        }
    }

    #[inline(always)]
    pub fn key(self) -> &'static mut KeyBuf {
        // SAFETY: per-CPU scratch slot from a successful lookup, used by one packet at a time
        // on this CPU.
        unsafe { &mut *self.0 }
    }

    /// [`KeyBuf::launder`].
    #[inline(always)]
    pub fn launder(self, v: u64) -> u64 {
        self.key().launder(v)
    }

    /// This CPU's whitelist memo.
    #[inline(always)]
    pub fn whitelist_memo(self) -> *mut WhitelistMemo {
        // SAFETY: a field of the scratch slot; no reference is made.
        unsafe { &raw mut (*self.0).memo }
    }
}

#[inline(always)]
pub fn key_buf() -> Result<&'static mut KeyBuf, Counter> {
    Scratch::get().map(Scratch::key)
}

/// What the index says of a (name, type).
enum Found {
    /// The record's index.
    Record(u32),
    /// Not there: no entry has its fingerprint in either bucket.
    Absent,
    /// An entry has its fingerprint but another name or type (about one query in 10^8): the
    /// slow path decides, since the answer might be behind it.
    Unsure,
}

/// Find the question's record in the key buffer's generation: the exact (name, type) first,
/// then, for data types, the name's answer for types it doesn't list, then, for a name that
/// has neither (it doesn't exist), its closest encloser's. Called as soon as the question is
/// parsed, and the outcome left in the key buffer for [`lookup`]: few values are live this
/// early, so the verifier walks the index (and the encloser walk's 32 hops) for few states.
#[inline(always)]
pub fn locate(
    ctx: &XdpContext,
    s: Scratch,
    records: &Records,
    q: &Question,
) -> Result<(), Counter> {
    let key = s.key();
    let (found, why) = if key.ready == 0 {
        (RECORD_NONE, Counter::PassNotReady)
    } else if q.qtype == QTYPE_OTHER || q.qtype == QTYPE_ENCLOSER {
        // Types 0 and 65535 key the shared and closest-encloser entries, never a question we
        // answer (RFC 6895 reserves both).
        (RECORD_NONE, Counter::PassMiss)
    } else {
        let name_hash = key.hash;
        let mut found = find(key, records, name_hash, q.qtype, q.name_len);
        // No zone of the node holds the name (its top label is no apex's): nothing more to
        // look up here; the resolver's cache may have it (docs/ARCHITECTURE.md §2.4).
        if matches!(found, Found::Absent) && crate::cache::beyond_zones(key, q)? {
            found = Found::Unsure;
        } else if matches!(found, Found::Absent) && is_data_type(q.qtype) {
            found = find(key, records, name_hash, QTYPE_OTHER, q.name_len);
        }
        match found {
            Found::Record(r) => (r, Counter::PassTooBig),
            // A name with no entry at all doesn't exist: its closest encloser says what it gets
            // (a marker there means a cut, DNAME or wildcard decides: the slow path's).
            Found::Absent if q.name_len <= SHORT_NAME_LEN && is_data_type(q.qtype) => {
                (lookup_encloser(ctx, q)?, Counter::PassMiss)
            }
            _ => (RECORD_NONE, Counter::PassMiss),
        }
    };
    key.found = found;
    // The reason for a marker (or nothing found): too big for the variant, else a miss.
    key.why = why as u32;
    Ok(())
}

/// The answer [`locate`] found, in the query's variant: the record's own (EDNS), or derived
/// from it, or its variant's record.
#[inline(always)]
pub fn lookup(
    s: Scratch,
    records: &Records,
    q: &Question,
    variant: Variant,
) -> Result<Answer, Counter> {
    let key = s.key();
    // SAFETY: plain fields of this CPU's scratch slot; volatile, as they were written by
    // locate on another path of the verifier's walk.
    let (found, why) = unsafe {
        (
            core::ptr::read_volatile(&key.found),
            core::ptr::read_volatile(&key.why),
        )
    };
    let why = if why == Counter::PassTooBig as u32 {
        Counter::PassTooBig
    } else if why == Counter::PassNotReady as u32 {
        Counter::PassNotReady
    } else {
        Counter::PassMiss
    };
    let Some(rec) = record_in(records, found) else {
        return Err(why);
    };
    let answer = variant_of(s, rec, variant, records)?;
    let value = &answer.value;
    if value.tail_len == 0 {
        return Err(why);
    }
    if value.reloc_count as usize > MAX_RELOCS || q.name_len < value.ref_qname_len as usize {
        return Err(Counter::PassMiss);
    }
    // Userspace never writes a bad length; checking here keeps every failure before the resize.
    let slot = match value.tail_class {
        TAIL_CLASS_INLINE => TAIL_INLINE,
        TAIL_CLASS_SMALL => TAIL_SMALL,
        _ => TAIL_LARGE,
    };
    if value.tail_len as usize > slot {
        return Err(Counter::PassMiss);
    }
    // An inline tail is copied a word at a time (`store_inline`): one shorter than a word (no
    // answer has one) goes up rather than fail after the resize.
    if value.tail_class == TAIL_CLASS_INLINE && (value.tail_len as usize) < 8 {
        return Err(Counter::PassMiss);
    }
    Ok(answer)
}

/// The answer for `variant` from a found record: its own for EDNS; without EDNS or with DO,
/// derived from it where the compiler found the bytes would be the same, else the variant's
/// own record.
#[inline(always)]
fn variant_of(
    s: Scratch,
    rec: *const Record,
    variant: Variant,
    records: &Records,
) -> Result<Answer, Counter> {
    // SAFETY: a pointer into RECORDS from a successful lookup (RCU keeps it valid); the header
    // is copied out, the inline tail is read in place by store_tail.
    let (mut value, mut inline, derive, alt) = unsafe {
        (
            (*rec).head,
            (*rec).inline.as_ptr(),
            (*rec).derive,
            (*rec).alt,
        )
    };
    let mut set_do = false;
    let (bit, alt) = match variant {
        Variant::Edns => (0, RECORD_NONE),
        Variant::NoEdns => (DERIVE_NOEDNS, alt[0]),
        Variant::EdnsDo => (DERIVE_DO, alt[1]),
    };
    if bit != 0 && derive & bit == 0 {
        if alt == RECORD_NONE {
            return Err(Counter::PassMiss);
        }
        let Some(r) = record_in(records, alt) else {
            return Err(Counter::PassMiss);
        };
        // SAFETY: as above.
        (value, inline) = unsafe { ((*r).head, (*r).inline.as_ptr()) };
    } else if bit == DERIVE_DO {
        set_do = true;
    } else if bit == DERIVE_NOEDNS {
        // No EDNS: the OPT record that ends the tail goes, and ARCOUNT with it.
        if (value.tail_len as usize) < OPT_LEN || value.arcount == 0 {
            return Err(Counter::PassMiss);
        }
        value.tail_len -= OPT_LEN as u16;
        value.arcount -= 1;
        // SAFETY: as above.
        value.tail_csum = unsafe { (*rec).noedns_csum };
        value.opt_back = 0;
    }
    // Through memory: every way here leaves the verifier its own ranges for these fields, and
    // everything after this would be verified once per way.
    let key = s.key();
    Ok(Answer::new(
        key.launder_head(value),
        inline,
        key.launder(set_do as u64) != 0,
    ))
}

/// Look (name, `qtype`) up in the live generation, for the name in the key buffer
/// (`name_len` bytes, hashed to `name_hash`): at the key's home slot first, whose record
/// answers if it is this key's (one memory access from the hash, no index line before it),
/// else in the index, checking the record found against the name.
#[inline(always)]
fn find(key: &mut KeyBuf, records: &Records, name_hash: u64, qtype: u16, name_len: usize) -> Found {
    let hash = key_hash(name_hash, qtype);
    // A copy through memory: the checks on it must not narrow the caller's name length (every
    // narrowing would have the rest of the program verified once more).
    let name_len = key.launder(name_len as u64) as usize;
    if is_homed(qtype) {
        let home = home_slot(hash, key.gen_.records_count);
        touch_first_bucket(key, hash);
        if let Some(rec) = record_in(records, home)
            && key.matches(rec, qtype, name_len)
        {
            return Found::Record(home);
        }
    }
    let idx = scan(key, hash);
    if idx == RECORD_NONE {
        return Found::Absent;
    }
    let Some(rec) = record_in(records, idx) else {
        return Found::Unsure;
    };
    if !key.owns(rec, name_len) {
        return Found::Unsure;
    }
    // SAFETY: a pointer into RECORDS from a successful lookup.
    let (own, other) = unsafe { ((*rec).qtype, (*rec).other) };
    if own == qtype {
        Found::Record(idx)
    } else if qtype == QTYPE_OTHER && other != RECORD_NONE {
        // The shared entry of a name with other keys stands in one of its records, which
        // proves the name and says where the (shared) answer is.
        Found::Record(other)
    } else {
        Found::Unsure
    }
}

/// 32 MiB of records: beyond a last-level cache.
const TOUCH_INDEX_FROM: u32 = 1 << 18;

/// Loads the key's first index line before the home record's check needs the record, in a
/// generation too big for the caches (`TOUCH_INDEX_FROM` records): at a million names both are
/// misses to memory, and issued together they overlap, so a key that is not at home waits for
/// two misses (home and index together, then its record), not three. A key at home pays a
/// load it doesn't use, overlapped with its record's (~5 ns where both are cached: smaller
/// generations skip it).
#[inline(always)]
fn touch_first_bucket(key: &KeyBuf, key_hash: u64) {
    if key.gen_.records_count < TOUCH_INDEX_FROM {
        return;
    }
    let (b1, _, _) = index_buckets(key_hash, key.gen_.index_mask);
    if let Some(bucket) = INDEX.get_value_ptr_mut(key.slot, &b1) {
        // SAFETY: a bucket of INDEX; volatile, so the load is issued though its value is not used.
        unsafe { core::ptr::read_volatile(&(*bucket).entries[0]) };
    }
}

/// The first index entry with the key's fingerprint, in its first bucket then its second
/// ([`RECORD_NONE`]: none), laundered. The second bucket's line is read only when the first
/// has no candidate: the installer fills first buckets first, so most keys that exist cost one
/// index line (a miss to memory, live), and only absent keys and the displaced few cost two.
#[inline(always)]
fn scan(key: &mut KeyBuf, key_hash: u64) -> u32 {
    let (b1, b2, fp) = index_buckets(key_hash, key.gen_.index_mask);
    let slot = key.slot;
    let mut idx = scan_bucket(slot, b1, fp);
    if idx == RECORD_NONE {
        idx = scan_bucket(slot, b2, fp);
    }
    key.launder(idx as u64) as u32
}

/// The first entry of bucket `b` with fingerprint `fp`: the bucket scanned whole, backwards,
/// each match replacing the last (no early exits for the verifier to follow one by one).
#[inline(always)]
fn scan_bucket(slot: u32, b: u32, fp: u32) -> u32 {
    let mut idx = RECORD_NONE;
    let Some(bucket) = INDEX.get_value_ptr_mut(slot, &b) else {
        return idx;
    };
    let mut i = INDEX_WAYS;
    while i > 0 {
        i -= 1;
        // SAFETY: a bucket of INDEX, i < INDEX_WAYS.
        let e = unsafe { (*bucket).entries[i] };
        if (e >> 32) as u32 == fp {
            idx = e as u32;
        }
    }
    idx
}

impl KeyBuf {
    /// The hash of the `len`-byte name in the buffer (as [`rampart_common::name_hash`]) under
    /// `seed`: the resolver cache's key, whose seed is not the zones'.
    #[inline(always)]
    pub fn hash_with(&mut self, seed: u64, len: usize) -> u64 {
        let words = self.name.as_ptr() as *const u64;
        let mut h = seed;
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            if i * 8 >= len {
                break;
            }
            // SAFETY: i < 32 words of the 8-aligned, zero-padded 256-byte name.
            h = name_hash_step(h, unsafe { words.add(i).read() });
            i += 1;
        }
        self.launder(h)
    }

    /// The name's hash as the last fill or [`KeyBuf::keep_hash`] left it.
    #[inline(always)]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Keep `hash` (the resolver cache's, found by `cache::promoted`) as the name's for the
    /// cache program, which tail calls leave this buffer to.
    #[inline(always)]
    pub fn keep_hash(&mut self, hash: u64) {
        self.hash = hash;
    }

    /// The `len`-byte name's top label as [`rampart_common::top_label_word`] reads it: the
    /// 8 bytes from `top`, those past the name's end masked off (a short name's key is zero
    /// only to its 64th byte).
    #[inline(always)]
    pub fn top_label_word(&self, len: usize) -> u64 {
        let top = (self.top & 0xff) as usize;
        let rest = len.saturating_sub(top);
        // SAFETY: top <= 255: the 8 bytes from it end inside the buffer (the fields after the
        // name), read through a pointer to the whole struct.
        let word = unsafe {
            ((self as *const KeyBuf as *const u8).add(top) as *const u64).read_unaligned()
        };
        if rest >= 8 {
            word
        } else {
            word & ((1u64 << (8 * rest)) - 1)
        }
    }

    /// Whether the buffer's `len`-byte name is `theirs` (lowercased, zero-padded, 8-aligned).
    #[inline(always)]
    pub fn same_name(&mut self, theirs: &[u8; KEY_NAME_LEN], len: usize) -> bool {
        let mine = self.name.as_ptr() as *const u64;
        let theirs = theirs.as_ptr() as *const u64;
        let mut diff = 0u64;
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            if i * 8 < len {
                // SAFETY: i < 32 words of both 256-byte, zero-padded, 8-aligned names.
                diff |= unsafe { mine.add(i).read() ^ theirs.add(i).read() };
            }
            i += 1;
        }
        self.launder(diff) == 0
    }

    /// [`KeyBuf::same_name`] for a name of at most `SHORT_NAME_LEN` bytes, whose key is
    /// zero-padded to that length: eight words, no bound to check (the resolver cache's).
    #[inline(always)]
    pub fn same_short_name(&mut self, theirs: &[u8; KEY_NAME_LEN]) -> bool {
        let mine = self.name.as_ptr() as *const u64;
        let theirs = theirs.as_ptr() as *const u64;
        let mut diff = 0u64;
        let mut i = 0;
        while i < SHORT_NAME_LEN / 8 {
            // SAFETY: i < 8 words of both 256-byte, zero-padded, 8-aligned names.
            diff |= unsafe { mine.add(i).read() ^ theirs.add(i).read() };
            i += 1;
        }
        self.launder(diff) == 0
    }

    /// Whether `rec` is the record of (this name, `qtype`).
    #[inline(always)]
    fn matches(&mut self, rec: *const Record, qtype: u16, name_len: usize) -> bool {
        // SAFETY: a pointer into RECORDS from a successful lookup.
        (unsafe { (*rec).qtype }) == qtype && self.owns(rec, name_len)
    }

    /// Whether `rec` is a record of this name (whatever its type).
    #[inline(always)]
    fn owns(&mut self, rec: *const Record, name_len: usize) -> bool {
        // SAFETY: a pointer into RECORDS from a successful lookup.
        let r = unsafe { &*rec };
        if r.name_len as usize != name_len {
            return false;
        }
        let mine = self.name.as_ptr() as *const u64;
        if name_len <= RECORD_NAME_LEN {
            let theirs = r.name.as_ptr() as *const u64;
            let mut diff = 0u64;
            let mut i = 0;
            while i < RECORD_NAME_LEN / 8 {
                // SAFETY: i < 4 words of both zero-padded, 8-aligned names.
                diff |= unsafe { mine.add(i).read() ^ theirs.add(i).read() };
                i += 1;
            }
            return diff == 0;
        }
        let Some(long) = NAMES.get_value_ptr_mut(self.slot, &r.long_name) else {
            return false;
        };
        // SAFETY: a NAMES slot from a successful lookup.
        self.same_name(unsafe { &(*long).bytes }, name_len)
    }
}

/// Walk a missing name's suffixes, its parent first, to the first with a closest-encloser entry
/// (docs/ARCHITECTURE.md §4.1), unless the resolver's cache has the name (`Err(TxCache)`:
/// the cache program's, §2.4). Short names only (<= 64 bytes, so <= 32 hops): each step
/// copies the suffix from the packet into the key, lowercased and hashed. [`RECORD_NONE`] past
/// the last label (not one of our zones), or where the index is unsure.
#[inline(always)]
fn lookup_encloser(ctx: &XdpContext, q: &Question) -> Result<u32, Counter> {
    let key = key_buf()?;
    // The walk's state lives in the per-CPU scratch, not on the stack: the verifier tracks no
    // values in map memory, so every hop starts from the same state and it checks one (on the
    // stack, the name offset's exact range would differ from hop to hop, each checked anew).
    // The walk starts at the parent: a name with no entry of its own has no encloser entry
    // either (the compiler gives every name with one a shared entry, a marker at least).
    let first = key.name[0] as u32;
    if first == 0 {
        return Ok(RECORD_NONE);
    }
    key.walk = WalkState {
        start: (q.end - q.len) as u32,
        name_len: q.name_len as u32,
        k: first + 1,
        found: RECORD_NONE,
        malformed: 0,
        qtype: q.qtype as u32,
        cached: 0,
    };
    let mut xdp = ctx.ctx;
    // SAFETY: the callback is a static function of this program; its context is our stack.
    unsafe {
        aya_ebpf::helpers::bpf_loop(
            (SHORT_NAME_LEN / 2) as u32,
            walk_hop as *mut core::ffi::c_void,
            (&mut xdp as *mut *mut aya_ebpf::bindings::xdp_md).cast(),
            0,
        );
    }
    let key = key_buf()?;
    if key.walk.malformed != 0 {
        return Err(Counter::PassMalformed);
    }
    if key.walk.cached != 0 {
        return Err(Counter::TxCache);
    }
    let (idx, k) = (key.walk.found, key.walk.k as usize);
    if idx == RECORD_NONE {
        return Ok(RECORD_NONE);
    }
    // The hop that stopped left its suffix in the key buffer: the candidate must be its record.
    let len = key.launder((q.name_len - k) as u64);
    Ok(encloser_record(idx, len))
}

/// `idx` if it is the closest-encloser record of the `len`-byte suffix in the key buffer, else
/// [`RECORD_NONE`]. Not inlined: in a frame of its own, the record pointer can't share a stack
/// slot with a scalar of the caller's, which LLVM did on a path the verifier rejects.
#[inline(never)]
fn encloser_record(idx: u32, len: u64) -> u32 {
    let Ok(key) = key_buf() else {
        return RECORD_NONE;
    };
    match record(key.slot, idx) {
        Some(rec) if key.matches(rec, QTYPE_ENCLOSER, len as usize) => idx,
        _ => RECORD_NONE,
    }
}

/// The encloser walk's state, between hops.
#[repr(C)]
#[derive(Clone, Copy)]
struct WalkState {
    /// Packet offset of the query name, and its length.
    start: u32,
    name_len: u32,
    /// Offset in the name of the suffix the next hop looks up (of the found one, at the end).
    k: u32,
    /// The first record whose fingerprint matched a suffix's (checked after the walk).
    found: u32,
    malformed: u32,
    /// The query type, and whether the first hop found the name in the resolver's cache.
    qtype: u32,
    cached: u32,
}

/// One hop of the walk, under `bpf_loop` (the verifier checks one hop, not 32 unrolled): hash
/// the suffix at `k` and scan its buckets; 1 ends the walk (a candidate, past the root, or a
/// name that can't be read), 0 goes on to the next label.
#[inline(never)]
extern "C" fn walk_hop(hop: u64, xdp: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop hands back the pointer lookup_encloser gave it: the frame's context.
    let ctx = XdpContext::new(unsafe { *(xdp as *mut *mut aya_ebpf::bindings::xdp_md) });
    let Ok(key) = key_buf() else {
        return 1;
    };
    let (k, name_len) = (key.walk.k as usize, key.walk.name_len as usize);
    if k >= name_len || name_len > SHORT_NAME_LEN {
        return 1;
    }
    // Before the first suffix replaces the name: a name the resolver's cache promoted is in
    // no zone (docs/ARCHITECTURE.md §2.4), so no walk: the cache program answers it.
    if hop == 0 && crate::cache::promoted(key, name_len, key.walk.qtype as u16) {
        key.walk.cached = 1;
        return 1;
    }
    let start = key.walk.start as usize;
    if key
        .fill_short_suffix(&ctx, start + k, name_len - k)
        .is_err()
    {
        key.walk.malformed = 1;
        return 1;
    }
    let idx = scan(key, key_hash(key.hash, QTYPE_ENCLOSER));
    if idx != RECORD_NONE {
        key.walk.found = idx;
        return 1;
    }
    let label = key.name[0] as usize;
    if label == 0 {
        return 1;
    }
    key.walk.k = (k + label + 1) as u32;
    0
}

/// Copy an inline tail (8 <= `len` <= [`TAIL_INLINE`] bytes, from its 8-aligned place in the
/// record) into the packet at `off`, eight bytes at a time (half the bound checks and loop
/// turns of four), without the helper: its call and `memcpy` were a quarter of a hit's live
/// samples.
#[inline(always)]
fn store_inline(
    ctx: &XdpContext,
    wash: Scratch,
    off: usize,
    src: *const u8,
    len: usize,
) -> Result<(), Counter> {
    let off = (wash.launder(off as u64) & 0x7ff) as usize;
    let len = (wash.launder(len as u64) & 0x3f) as usize;
    crate::packet::store_words::<u64, TAIL_INLINE>(ctx, off, src, len, Counter::PassRewriteFailed)
}

/// Copy the answer's tail from its slot into the packet at `off`.
#[inline(always)]
pub fn store_tail(ctx: &XdpContext, s: Scratch, off: usize, a: &Answer) -> Result<(), Counter> {
    // Laundered: one value, checked and passed to the helper from the same register (LLVM
    // otherwise reloads the field for the call, a copy the check never bounded).
    let len = s.launder(a.value.tail_len as u64) as u32 & 0x7ff;
    let slot = s.key().slot;
    let idx = a.value.tail_index;
    if len == 0 {
        // A slip: header and question only.
        return Ok(());
    }
    let rc = if a.value.tail_class == TAIL_CLASS_INLINE {
        if len == 0 || len > TAIL_INLINE as u32 {
            return Err(Counter::PassMiss);
        }
        return store_inline(ctx, s, off, a.inline, len as usize);
    } else if a.value.tail_class == TAIL_CLASS_SMALL {
        let Some(t) = TAILS_SMALL.get_value_ptr_mut(slot, &idx) else {
            return Err(Counter::PassMiss);
        };
        // The verifier needs the length bounded by the slot size and nonzero.
        if len == 0 || len > TAIL_SMALL as u32 {
            return Err(Counter::PassMiss);
        }
        // SAFETY: helper copies len bytes from the map value into the packet, both checked.
        unsafe { aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, off as u32, t as *mut _, len) }
    } else {
        let Some(t) = TAILS_LARGE.get_value_ptr_mut(slot, &idx) else {
            return Err(Counter::PassMiss);
        };
        if len == 0 || len > TAIL_LARGE as u32 {
            return Err(Counter::PassMiss);
        }
        // SAFETY: as above.
        unsafe { aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, off as u32, t as *mut _, len) }
    };
    if rc != 0 {
        return Err(Counter::PassRewriteFailed);
    }
    Ok(())
}
