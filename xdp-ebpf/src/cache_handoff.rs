//! What the main program already parsed of a query whose name the resolver cache holds (the
//! frame's headers, the question, the slot the encloser walk's first hop found), left for the
//! cache program.
use aya_ebpf::{macros::map, maps::PerCpuArray, programs::XdpContext};
use rampart_common::Counter;

use crate::{
    eth::ETH_HLEN,
    ip::{IPV4_HLEN, IPV6_HLEN, L3},
    maps::Scratch,
    query::Question,
    udp::{self, Udp},
};

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

/// Leave where the frame's UDP header starts (the main program's parse, on the early path:
/// the cache program then parses nothing below DNS again), in the frame's scratch slot, which
/// both programs look up anyway. Only that: the rest follows from it, and a value more kept
/// live through the main program's query path moved its registers (the verifier then refused
/// its checksum copy).
#[inline(always)]
pub fn leave_frame(s: Scratch, l3: &L3) {
    s.key().l4_off = l3.l4_off as u16;
}

/// The IP and UDP headers of the frame at hand, from where its UDP header starts (left by
/// `leave_frame`, read back through memory): an IPv4 header (20 bytes) or an IPv6 one (40)
/// after Ethernet with a VLAN tag or without (14 or 18 bytes) puts it at 34, 38, 54 or 58,
/// each only one way. Whether the main program left it or the cache program parsed the frame
/// itself, the verifier sees one state from here on. The UDP header is read again (its length
/// agrees with the IP header's: checked by the parse).
#[inline(always)]
pub fn take_frame(ctx: &XdpContext, s: Scratch) -> Result<(L3, Udp), Counter> {
    // SAFETY: a plain field of this CPU's scratch slot; volatile, so the value stored on the
    // other path (or in the other program) is read back, not forwarded.
    let l4_off = (unsafe { core::ptr::read_volatile(&s.key().l4_off) } & 0x3f) as usize;
    if l4_off < ETH_HLEN + IPV4_HLEN {
        return Err(Counter::PassMalformed);
    }
    let v6 = l4_off >= ETH_HLEN + IPV6_HLEN;
    // Masked (a no-op: 14 or 18) so the verifier sees it bounded whichever way it went.
    let off = (l4_off - if v6 { IPV6_HLEN } else { IPV4_HLEN }) & 0x1f;
    let udp = udp::header_at(ctx, l4_off)?;
    Ok((
        L3 {
            off,
            v6,
            l4_off,
            l4_len: udp.payload_len + 8,
        },
        udp,
    ))
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
