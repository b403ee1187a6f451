//! The maps the program reads (filled by userspace, layouts in rampart-common) and its counters.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, ProgramArray},
    programs::XdpContext,
};
use rampart_common::{
    AnswerValue, COUNTER_COUNT, Config, Counter, KEY_NAME_LEN, LongKey, MAX_NAME, MAX_RELOCS,
    QTYPE_ENCLOSER, QTYPE_OTHER, SHORT_NAME_LEN, ShortKey, TAIL_CLASS_INLINE, TAIL_CLASS_SMALL,
    TAIL_INLINE, TAIL_LARGE, TAIL_SMALL, TailLarge, TailSmall, Variant, is_data_type,
};

use crate::{
    cookie::Stage,
    dns::{Answer, Question},
};

/// Precompiled answers. Userspace sizes every map at load time (set_max_entries) to fit its zones.
#[map(name = "ANSWERS")]
static ANSWERS: HashMap<ShortKey, AnswerValue> = HashMap::with_max_entries(1, 0);
#[map(name = "ANSWERS_LONG")]
static ANSWERS_LONG: HashMap<LongKey, AnswerValue> = HashMap::with_max_entries(1, 0);
#[map(name = "TAILS_SMALL")]
static TAILS_SMALL: Array<TailSmall> = Array::with_max_entries(1, 0);
#[map(name = "TAILS_LARGE")]
static TAILS_LARGE: Array<TailLarge> = Array::with_max_entries(1, 0);
#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map(name = "STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
/// The lookup key is 260 bytes, too big for the 512-byte stack next to everything else.
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

/// Tail-call targets: the cookie stage and the main program (slots `JUMP_*`), filled by userspace.
#[map(name = "JUMPS")]
pub static JUMPS: ProgramArray = ProgramArray::with_max_entries(2, 0);
#[map(name = "COOKIE_STAGE")]
static COOKIE_STAGE: PerCpuArray<Stage> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's hand-over slot between the main program and the cookie stage.
#[inline(always)]
pub fn cookie_stage() -> Result<&'static mut Stage, Counter> {
    match COOKIE_STAGE.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, used by one frame at a time on this CPU.
        Some(p) => Ok(unsafe { &mut *p }),
        None => Err(Counter::PassNotReady),
    }
}

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

/// This CPU's lookup key under construction.
#[repr(C)]
pub struct KeyBuf {
    key: LongKey,
    /// The name length, laundered through memory: see [`KeyBuf::set_len`].
    len: u32,
    /// Any value laundered the same way: see [`KeyBuf::launder`].
    wash: u64,
}

impl KeyBuf {
    /// Zero the key bytes a name of `len` bytes leaves unwritten but the lookup reads: the
    /// first 64 for a short key, all 256 for a long one. Volatile stores, because LLVM would
    /// otherwise turn the loop into a call to compiler-builtins' byte-at-a-time `memset`, which
    /// cost ~150 ns a packet.
    #[inline(always)]
    pub fn clear(&mut self, len: usize) {
        let words = self.key.name.as_mut_ptr() as *mut u64;
        let n = if len <= SHORT_NAME_LEN {
            SHORT_NAME_LEN / 8
        } else {
            KEY_NAME_LEN / 8
        };
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            if i >= n {
                break;
            }
            // SAFETY: i < 32 words of the 256-byte name (4-aligned; x86 and the verifier allow
            // unaligned map value access).
            unsafe { core::ptr::write_volatile(words.add(i), 0) };
            i += 1;
        }
    }

    /// Copy the `len`-byte question name at packet offset `off` into the key (one helper
    /// memcpy), lowercase it in place eight bytes at a time, and return its checksum
    /// contribution as a one's-complement sum of little-endian words (byte-swap after folding).
    /// Length bytes are below 'A', so lowercasing every byte leaves them alone.
    #[inline(always)]
    pub fn fill_name(&mut self, ctx: &XdpContext, off: usize, len: usize) -> Result<u64, Counter> {
        if len == 0 || len > MAX_NAME {
            return Err(Counter::PassMalformed);
        }
        let name = self.key.name.as_mut_ptr();
        // SAFETY: the helper writes len <= 255 bytes into the 256-byte name.
        if unsafe {
            aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, off as u32, name.cast(), len as u32)
        } != 0
        {
            return Err(Counter::PassMalformed);
        }
        let words = name as *mut u64;
        let mut sum = 0u64;
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            if i * 8 >= len {
                break;
            }
            // SAFETY: i < 32 words of the 256-byte name; bytes past the name are zero.
            unsafe {
                let w = words.add(i).read_unaligned();
                sum += (w & 0xffff_ffff) + (w >> 32);
                words.add(i).write_unaligned(ascii_lowercase8(w));
            }
            i += 1;
        }
        Ok(sum)
    }
    /// Put the `len`-byte name suffix at packet offset `off` (len <= 64) into the key,
    /// lowercased and zero-padded to the short key's 64 bytes.
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
        let name = self.key.name.as_mut_ptr();
        // The same value, in a form whose range [1, 64] the verifier can see for itself.
        let n = (((len - 1) & (SHORT_NAME_LEN - 1)) + 1) as u32;
        // SAFETY: the helper writes n <= 64 bytes into the 256-byte name.
        if unsafe { aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, off as u32, name.cast(), n) }
            != 0
        {
            return Err(Counter::PassMalformed);
        }
        let words = name as *mut u64;
        let mut i = 0;
        while i < SHORT_NAME_LEN / 8 {
            // SAFETY: i < 8 words of the 256-byte name.
            unsafe {
                words
                    .add(i)
                    .write_unaligned(ascii_lowercase8(words.add(i).read_unaligned()))
            };
            i += 1;
        }
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
    pub fn launder(&mut self, v: u64) -> u64 {
        // SAFETY: plain field of this CPU's scratch slot; volatile so neither access is elided.
        unsafe {
            core::ptr::write_volatile(&mut self.wash, v);
            core::ptr::read_volatile(&self.wash)
        }
    }

    #[inline(always)]
    pub fn set_qtype(&mut self, qtype: u16) {
        self.key.qtype = qtype;
    }
}

#[inline(always)]
pub fn key_buf() -> Result<&'static mut KeyBuf, Counter> {
    match SCRATCH.get_ptr_mut(0) {
        // SAFETY: per-CPU scratch slot, used by one packet at a time on this CPU.
        Some(p) => Ok(unsafe { &mut *p }),
        None => Err(Counter::PassNotReady),
    }
}

/// Find the precompiled answer for the question just parsed into the key buffer: the exact
/// (name, type) first, then, for data types, the name's answer for types it doesn't list.
#[inline(always)]
pub fn lookup(ctx: &XdpContext, q: &Question, variant: Variant) -> Result<Answer, Counter> {
    let config = match CONFIG.get(0) {
        Some(c) if c.ready != 0 => c,
        _ => return Err(Counter::PassNotReady),
    };
    // Types 0 and 65535 key the shared and closest-encloser entries, never a question we
    // answer (RFC 6895 reserves both).
    if q.qtype == QTYPE_OTHER || q.qtype == QTYPE_ENCLOSER {
        return Err(Counter::PassMiss);
    }
    let key = key_buf()?;
    key.key.generation = config.generation as u8;
    key.key.variant = variant as u8;
    let short = q.name_len <= SHORT_NAME_LEN;
    let mut found = get(key, short);
    if found.is_none() && is_data_type(q.qtype) {
        key.key.qtype = QTYPE_OTHER;
        found = get(key, short);
    }
    let (v, walked) = match found {
        Some(v) => (v, false),
        // A name with no entry at all doesn't exist: its closest encloser says what it gets.
        None if short && is_data_type(q.qtype) => match lookup_encloser(ctx, q, key)? {
            Some(v) => (v, true),
            None => return Err(Counter::PassMiss),
        },
        None => return Err(Counter::PassMiss),
    };
    // SAFETY: map value pointer from a successful lookup; the header fields are copied out at
    // once, the inline tail is read in place by store_tail.
    let (value, inline) = unsafe { ((*v).head, (*v).inline.as_ptr()) };
    if value.tail_len == 0 {
        // A marker: too big for this variant, or (walked) a cut, DNAME or wildcard decides.
        return Err(if walked {
            Counter::PassMiss
        } else {
            Counter::PassTooBig
        });
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
    Ok(Answer { value, inline })
}

/// Walk a missing name's suffixes, itself first, to the first with a closest-encloser entry
/// (DESIGN.md §2). Short names only (<= 64 bytes, so <= 32 hops): each step copies the suffix
/// from the packet into the key, lowercased. `None` past the last label: not one of our zones.
#[inline(always)]
fn lookup_encloser(
    ctx: &XdpContext,
    q: &Question,
    key: &mut KeyBuf,
) -> Result<Option<*const AnswerValue>, Counter> {
    let start = q.end - q.len;
    let mut k = 0usize;
    let mut hop = 0;
    while hop < SHORT_NAME_LEN / 2 {
        if k >= q.name_len {
            break;
        }
        key.fill_short_suffix(ctx, start + k, q.name_len - k)?;
        key.key.qtype = QTYPE_ENCLOSER;
        let found = get(key, true);
        if found.is_some() {
            return Ok(found);
        }
        let label = key.key.name[0] as usize;
        if label == 0 {
            break;
        }
        k += label + 1;
        hop += 1;
    }
    Ok(None)
}

#[inline(always)]
fn get(key: &KeyBuf, short: bool) -> Option<*const AnswerValue> {
    if short {
        // SAFETY: ShortKey is a prefix of LongKey's layout (same header, shorter name), and the
        // name bytes past 64 are zero for a short name.
        ANSWERS.get_ptr(unsafe { &*(&key.key as *const LongKey as *const ShortKey) })
    } else {
        ANSWERS_LONG.get_ptr(&key.key)
    }
}

/// Copy the answer's tail from its slot into the packet at `off`.
#[inline(always)]
pub fn store_tail(ctx: &XdpContext, off: usize, a: &Answer) -> Result<(), Counter> {
    let len = a.value.tail_len as u32;
    let idx = a.value.tail_index;
    if len == 0 {
        // A slip: header and question only.
        return Ok(());
    }
    let rc = if a.value.tail_class == TAIL_CLASS_INLINE {
        if len == 0 || len > TAIL_INLINE as u32 {
            return Err(Counter::PassMiss);
        }
        // SAFETY: helper copies len bytes from the map value's inline tail into the packet.
        unsafe {
            aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, off as u32, a.inline as *mut _, len)
        }
    } else if a.value.tail_class == TAIL_CLASS_SMALL {
        let Some(t) = TAILS_SMALL.get_ptr(idx) else {
            return Err(Counter::PassMiss);
        };
        // The verifier needs the length bounded by the slot size and nonzero.
        if len == 0 || len > TAIL_SMALL as u32 {
            return Err(Counter::PassMiss);
        }
        // SAFETY: helper copies len bytes from the map value into the packet, both checked.
        unsafe { aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, off as u32, t as *mut _, len) }
    } else {
        let Some(t) = TAILS_LARGE.get_ptr(idx) else {
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
