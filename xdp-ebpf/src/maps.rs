//! The maps the program reads (filled by userspace, layouts in rampart-common) and its counters.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use rampart_common::{
    AnswerKey, AnswerValue, COUNTER_COUNT, Config, Counter, KEY_NAME_LEN, TAIL_CLASS_SMALL,
    TAIL_LARGE, TAIL_SMALL, TailLarge, TailSmall, Variant,
};

use crate::dns::{Answer, Question};

/// Precompiled answers. Userspace sizes every map at load time (set_max_entries) to fit its zones.
#[map(name = "ANSWERS")]
static ANSWERS: HashMap<AnswerKey, AnswerValue> = HashMap::with_max_entries(1, 0);
#[map(name = "TAILS_SMALL")]
static TAILS_SMALL: Array<TailSmall> = Array::with_max_entries(1, 0);
#[map(name = "TAILS_LARGE")]
static TAILS_LARGE: Array<TailLarge> = Array::with_max_entries(1, 0);
#[map(name = "CONFIG")]
static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
#[map(name = "STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_COUNT, 0);
/// The lookup key is 260 bytes, too big for the 512-byte stack next to everything else.
#[map(name = "SCRATCH")]
static SCRATCH: PerCpuArray<AnswerKey> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
pub fn count(c: Counter) {
    if let Some(p) = STATS.get_ptr_mut(c as u32) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently with us.
        unsafe { *p += 1 };
    }
}

/// This CPU's lookup key under construction.
#[repr(transparent)]
pub struct KeyBuf(AnswerKey);

impl KeyBuf {
    /// Zero the name so bytes past the end of a shorter name never leak into the key.
    #[inline(always)]
    pub fn clear(&mut self) {
        // SAFETY: the name is KEY_NAME_LEN bytes, a multiple of 8, in a map value (8-aligned).
        let words = self.0.name.as_mut_ptr() as *mut u64;
        let mut i = 0;
        while i < KEY_NAME_LEN / 8 {
            unsafe { *words.add(i) = 0 };
            i += 1;
        }
    }
    #[inline(always)]
    pub fn set(&mut self, i: usize, b: u8) {
        if i < KEY_NAME_LEN {
            self.0.name[i] = b;
        }
    }
    #[inline(always)]
    pub fn set_qtype(&mut self, qtype: u16) {
        self.0.qtype = qtype;
    }
}

#[inline(always)]
pub fn key_buf() -> Result<&'static mut KeyBuf, Counter> {
    match SCRATCH.get_ptr_mut(0) {
        // SAFETY: per-CPU scratch slot, used by one packet at a time on this CPU.
        Some(p) => Ok(unsafe { &mut *(p as *mut KeyBuf) }),
        None => Err(Counter::PassNotReady),
    }
}

/// Find the precompiled answer for the question just parsed into the key buffer.
#[inline(always)]
pub fn lookup(_q: &Question, variant: Variant) -> Result<Answer, Counter> {
    let config = match CONFIG.get(0) {
        Some(c) if c.ready != 0 => c,
        _ => return Err(Counter::PassNotReady),
    };
    let key = key_buf()?;
    key.0.generation = config.generation as u8;
    key.0.variant = variant as u8;
    match ANSWERS.get_ptr(&key.0) {
        // SAFETY: map value pointer from a successful lookup; copied out at once.
        Some(v) => Ok(Answer {
            value: unsafe { *v },
        }),
        None => Err(Counter::PassMiss),
    }
}

/// Copy the answer's tail from its slot into the packet at `off`.
#[inline(always)]
pub fn store_tail(ctx: &XdpContext, off: usize, a: &Answer) -> Result<(), Counter> {
    let len = a.value.tail_len as u32;
    let idx = a.value.tail_index;
    let rc = if a.value.tail_class == TAIL_CLASS_SMALL {
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
