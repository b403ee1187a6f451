//! The question the main program already read of a query whose name the resolver cache holds
//! (the encloser walk's first hop found it), left for the cache program with the slot found.
use aya_ebpf::{macros::map, maps::PerCpuArray};

use crate::query::Question;

/// The question of the frame at hand, and the cache slot the walk's first hop found.
#[repr(C)]
pub struct Handoff {
    /// Nonzero from `leave` to `take`: this CPU's frame at hand (a tail call runs on the CPU
    /// and in the softirq of its caller).
    ready: u32,
    slot: u32,
    /// The slot's sequence number when the walk found it.
    seq: u32,
    q_len: u16,
    name_len: u16,
    qtype: u16,
    _pad: u16,
    q_end: u32,
    /// Nonzero from the cache program's `send_back` to the main program's `back`: the frame
    /// comes back from the cache (cache first) and goes on in the main program.
    back: u32,
    q_csum: u64,
}

#[map(name = "CACHE_HANDOFF")]
static HANDOFF: PerCpuArray<Handoff> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn scratch() -> Option<&'static mut Handoff> {
    // SAFETY: per-CPU value, used by one frame at a time on this CPU.
    HANDOFF.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// No slot: an odd sequence number, which no readable slot has.
pub const NO_SEQ: u32 = 1;

/// The slot found for the frame at hand (the walk's first hop: `cache::promoted`; `NO_SEQ`
/// where no slot was found).
#[inline(always)]
pub fn found(slot_index: u32, seq: u32) {
    if let Some(h) = scratch() {
        h.slot = slot_index;
        h.seq = seq;
    }
}

/// Leave the question for the cache program (the main program, once the walk found the slot).
#[inline(always)]
pub fn leave(q: &Question) {
    if let Some(h) = scratch() {
        h.q_len = q.len as u16;
        h.name_len = q.name_len as u16;
        h.qtype = q.qtype;
        h.q_end = q.end as u32;
        h.q_csum = q.csum;
        h.ready = 1;
    }
}

/// Whether a question was left for the frame at hand.
#[inline(always)]
pub fn ready() -> bool {
    scratch().is_some_and(|h| h.ready != 0)
}

/// Forget what was left (a frame not on the early path: nothing was, for it).
#[inline(always)]
pub fn discard() {
    if let Some(h) = scratch() {
        h.ready = 0;
    }
}

/// The question left for this frame (once), with the slot and its sequence number. Masked to
/// their ranges, as the parse bounds them: whether the main program left them or the cache
/// program read the question itself, the verifier sees one state from here on.
#[inline(always)]
pub fn take() -> Option<(Question, u32, u32)> {
    let h = scratch()?;
    if h.ready == 0 {
        return None;
    }
    h.ready = 0;
    let q = Question {
        len: (h.q_len & 0x1ff) as usize,
        name_len: (h.name_len & 0xff) as usize,
        qtype: h.qtype,
        csum: h.q_csum,
        end: (h.q_end & 0x7ff) as usize,
    };
    Some((q, h.slot, h.seq))
}

/// Mark the frame at hand as sent back to the main program (or, `false`, not after all).
#[inline(always)]
pub fn send_back(yes: bool) {
    if let Some(h) = scratch() {
        h.back = yes as u32;
    }
}

/// Whether the frame at hand comes back from the cache program (once).
#[inline(always)]
pub fn back() -> bool {
    match scratch() {
        Some(h) if h.back != 0 => {
            h.back = 0;
            true
        }
        _ => false,
    }
}
