//! DNS cookies (RFC 7873) in the driver: checking a query's server cookie (RFC 9018: version 1,
//! reserved, timestamp, SipHash-2-4 over client cookie | version | reserved | timestamp |
//! client address, under the secret every anycast node shares) and making the fresh one the
//! answer carries, inline in the main program's first pass; and the stage, a program of its
//! own tail-called at the end, that appends the option (or, for a slip, a BADCOOKIE OPT) and
//! sends the frame (that arithmetic stays out of the main program's verifier budget).
use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_coarse_ns,
    macros::{map, xdp},
    maps::PerCpuArray,
    programs::XdpContext,
};
use rampart_common::{
    COOKIE_OPTION_LEN, Counter, JUMP_COOKIE, LIMIT_COOKIE_STAGING, LIMIT_COOKIES, Limits, OPT_LEN,
    dns::{FLAG_RCODE, FLAG_TC, OPTION_COOKIE, RCODE_BADCOOKIE},
};

use crate::{
    csum,
    dns::OptionAt,
    handoff::{ANSWER, DONE, NEW_OPT, VALID},
    ip::L3,
    limits,
    maps::{self, count},
    packet::{be16_at, ptr_at, put_be16, u8_at},
    siphash::siphash24,
};

/// Client cookie only, and client cookie + an RFC 9018 server cookie.
const CLIENT_LEN: usize = 8;
const RFC9018_LEN: usize = 24;
/// RFC 7873 §5.2.2: a server cookie has 8 to 32 bytes.
const MIN_LEN: usize = 16;
const MAX_LEN: usize = 40;
/// RFC 9018 §4.3: a cookie is good for an hour, and may come from up to 5 minutes ahead.
const MAX_AGE: i32 = 3600;
const MAX_AHEAD: i32 = 300;
/// RFC 9018 §4.3: a valid server cookie younger than half an hour is sent back as it came (as
/// NSD's COOKIE_VALID_REUSE), which spares the answer a second SipHash; older ones are renewed.
const REUSE_AGE: i32 = 1800;
/// The option's code and length (0, 10, 0, 24) as the upper half of a little-endian word.
const OPTION_HEAD: u64 = ((OPTION_COOKIE as u64) << 8 | (RFC9018_LEN as u64) << 24) << 32;
const NS_PER_SEC: u64 = 1_000_000_000;
/// BADCOOKIE's low four bits, in the header.
const BADCOOKIE_LOW: u16 = RCODE_BADCOOKIE & FLAG_RCODE;

/// What the main program leaves for the stage, in a per-CPU slot: an XDP program runs to
/// completion on its CPU, tail calls included, so the slot belongs to one frame.
#[repr(C)]
pub struct Stage {
    /// Where the COOKIE option's data is (main → stage).
    off: u64,
    len: u64,
    /// The client address as IPv6 words, network order, IPv4 mapped (main → stage).
    addr: [u32; 4],
    /// The COOKIE option as the answer carries it (stage → main), from byte 4 of these words:
    /// code and length in the first word's upper half, then the client cookie, the server
    /// cookie's version/reserved/timestamp, and its hash, each a whole aligned word (byte
    /// stores at odd places cost a store and a shift per byte); and its one's-complement sum
    /// from an even offset.
    option: [u64; 4],
    option_sum: u64,
    /// For the append (main → stage): where the option goes (the tail's end), the OPT's
    /// RDLENGTH (that many bytes before it), the UDP header and the DNS message.
    end: u64,
    opt_back: u64,
    l3_off: u64,
    v6: u64,
    l4_off: u64,
    dns_off: u64,
    /// Where the query's OPT record starts (main → stage), and its DO bit as 0x80 or 0 (read by
    /// the check, for the OPT of a BADCOOKIE slip, which echoes it).
    opt_rr: u64,
    do_bit: u64,
    /// The query's cookie as little-endian words (client cookie, then version/reserved/
    /// timestamp and hash of an RFC 9018 server cookie): here, not on the main program's stack,
    /// which with the encloser walk's callback is at the verifier's 512 bytes.
    words: [u64; 3],
}

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

/// Main program: check the query's cookie here, in the frame's first pass (a valid server cookie
/// exempts its client from the limits, so the verdict is needed before them), and make the
/// fresh one the answer carries, kept in the stage's slot for the append. `Err`: a malformed
/// cookie (the slow path answers FORMERR) or no limits yet.
#[inline(always)]
pub fn check_here(
    ctx: &XdpContext,
    opt: OptionAt,
    addr: &[u32; 4],
    opt_rr: usize,
) -> Result<u64, Counter> {
    if opt.len != CLIENT_LEN && !(MIN_LEN..=MAX_LEN).contains(&opt.len) {
        return Err(Counter::PassEdns);
    }
    let stage = cookie_stage()?;
    let Some(l) = limits::settings() else {
        return Err(Counter::PassNotReady);
    };
    stage.off = opt.off as u64;
    stage.len = opt.len as u64;
    stage.addr = *addr;
    stage.opt_rr = opt_rr as u64;
    Ok(check(ctx, stage, l)? | DONE)
}

/// Main program, with the answer otherwise complete (its lengths and checksum count the
/// option's room but not its bytes): have the stage append the COOKIE option and send it.
/// Returns only on failure: the frame is no longer the query, so it is dropped.
#[inline(always)]
pub fn append(ctx: &XdpContext, l3: &L3, dns_off: usize, end: usize, opt_back: u8) -> u32 {
    if let Ok(stage) = cookie_stage() {
        stage.end = end as u64;
        stage.opt_back = opt_back as u64;
        stage.l3_off = l3.off as u64;
        stage.v6 = l3.v6 as u64;
        stage.l4_off = l3.l4_off as u64;
        stage.dns_off = dns_off as u64;
        // SAFETY: as in enter.
        unsafe { maps::JUMPS.tail_call(ctx, JUMP_COOKIE) };
    }
    count(Counter::DropRewriteFailed);
    xdp_action::XDP_DROP
}

/// Whether cookies are on (a secret is configured).
#[inline(always)]
pub fn enabled() -> bool {
    matches!(limits::settings(), Some(l) if l.flags & LIMIT_COOKIES != 0)
}

#[xdp]
pub fn rampart_cookie(ctx: XdpContext) -> u32 {
    let Ok(stage) = cookie_stage() else {
        count(Counter::DropRewriteFailed);
        return xdp_action::XDP_DROP;
    };
    match write_option(&ctx, stage) {
        Ok(()) => {
            count(Counter::CookieSent);
            xdp_action::XDP_TX
        }
        Err(_) => {
            count(Counter::DropRewriteFailed);
            xdp_action::XDP_DROP
        }
    }
}

/// Check the cookie at `stage.off` and make the fresh one the answer carries.
#[inline(always)]
fn check(ctx: &XdpContext, stage: &mut Stage, l: &Limits) -> Result<u64, Counter> {
    let len = stage.len as usize;
    // Client cookie, then (version, reserved, timestamp) and hash of an RFC 9018 server cookie,
    // as little-endian words, the way SipHash reads its message.
    // Read in place, three loads, not copied by a helper. Laundered and masked (a no-op: the
    // option lies in a query under 2 KiB) so the verifier sees the offset's bound.
    let off = (maps::key_buf()?.launder(stage.off) & 0x7ff) as usize;
    let p = ptr_at(ctx, off, CLIENT_LEN, Counter::PassMalformed)?;
    // SAFETY: eight packet bytes checked by ptr_at; an unaligned little-endian load.
    stage.words[0] = unsafe { (p as *const u64).read_unaligned() };
    (stage.words[1], stage.words[2]) = if len == RFC9018_LEN {
        let p = ptr_at(ctx, off, RFC9018_LEN, Counter::PassMalformed)?;
        // SAFETY: 24 packet bytes checked by ptr_at; unaligned loads.
        unsafe {
            (
                (p.add(8) as *const u64).read_unaligned(),
                (p.add(16) as *const u64).read_unaligned(),
            )
        }
    } else {
        (0, 0)
    };
    // OPT: owner (1), type (2), payload size (2), extended RCODE (1), version (1), flags.
    stage.do_bit = (u8_at(
        ctx,
        (stage.opt_rr as usize & 0x7ff) + 7,
        Counter::PassMalformed,
    )? & 0x80) as u64;
    let w = stage.words;
    let v4 = stage.addr[0] == 0 && stage.addr[1] == 0 && stage.addr[2] == 0xffffu32.to_be();
    // The coarse clock (the tick's time, read from memory): a timestamp in seconds needs no
    // better, and the precise one costs a TSC read and its conversion.
    // SAFETY: helper without arguments.
    let now =
        (unsafe { bpf_ktime_get_coarse_ns() }.wrapping_add(l.clock_offset) / NS_PER_SEC) as u32;
    let mut verdict = ANSWER;
    let valid = if len == RFC9018_LEN {
        verify(l, &stage.addr, v4, w, now)
    } else {
        Valid::No
    };
    if len == CLIENT_LEN {
        count(Counter::CookieClientOnly);
    } else if valid != Valid::No {
        count(Counter::CookieValid);
        verdict |= VALID;
    } else {
        count(Counter::CookieBad);
    }
    // The server cookie the answer carries: the client's own when it may be reused, else a
    // fresh one (version 1, reserved 0, now: RFC 9018 §4.2).
    let (stamp, hash) = if valid == Valid::Reuse {
        (w[1], w[2])
    } else {
        let stamp = 1 | (now.swap_bytes() as u64) << 32;
        (stamp, hash(l.cookie_secret, &stage.addr, v4, w[0], stamp))
    };
    stage.option = [OPTION_HEAD, w[0], stamp, hash];
    // The option's words summed from an even offset: the head's, then the three words' as
    // read on this little-endian CPU, byte-swapped into network order once folded.
    let words = csum::fold(sum_le32(w[0]) + sum_le32(stamp) + sum_le32(hash)).swap_bytes();
    stage.option_sum = csum::fold(OPTION_COOKIE as u64 + RFC9018_LEN as u64 + words as u64) as u64;
    Ok(verdict)
}

/// Write the option at the tail's end (for [`NEW_OPT`]: an OPT holding it, then the option),
/// grow the OPT's RDLENGTH by it, and fold both into the UDP checksum (RFC 1624 incremental
/// update).
#[inline(always)]
fn write_option(ctx: &XdpContext, stage: &Stage) -> Result<(), Counter> {
    // Masks: offsets in a frame we answer stay under 2 KiB; the verifier needs them bounded.
    let mut end = (stage.end & 0x7ff) as usize;
    let dns_off = (stage.dns_off & 0x7ff) as usize;
    let csum_at = ((stage.l4_off + 6) & 0x7ff) as usize;
    if end < dns_off {
        return Err(Counter::DropRewriteFailed);
    }
    let mut sum = 0u64;
    if stage.opt_back as u8 == NEW_OPT {
        if end < dns_off + 12 {
            return Err(Counter::DropRewriteFailed);
        }
        grow(ctx, OPT_LEN)?;
        sum += grow_lengths(ctx, stage, OPT_LEN as u16)?;
        // The slip's header: TC off, RCODE BADCOOKIE's low bits, one additional record.
        let flags = be16_at(ctx, dns_off + 2, Counter::DropRewriteFailed)?;
        let new = (flags & !(FLAG_TC | FLAG_RCODE)) | BADCOOKIE_LOW;
        put_be16(ctx, dns_off + 2, new)?;
        put_be16(ctx, dns_off + 10, 1)?;
        sum += (!flags) as u64 + new as u64 + 1;
        // Root owner, type OPT, payload 1232, extended RCODE 1 (BADCOOKIE = 1 << 4 | 7),
        // version 0, DO echoed, RDLENGTH: the cookie option.
        // Read when the frame was still the query (check): the slip has no OPT of its own.
        let do_bit = stage.do_bit as u8;
        let opt: [u8; OPT_LEN + 1] = [0, 0, 41, 0x04, 0xd0, 1, 0, do_bit, 0, 0, 28, 0];
        // SAFETY: the helper copies OPT_LEN stack bytes into the packet, or fails.
        if unsafe {
            aya_ebpf::helpers::bpf_xdp_store_bytes(
                ctx.ctx,
                end as u32,
                opt.as_ptr() as *mut _,
                OPT_LEN as u32,
            )
        } != 0
        {
            return Err(Counter::DropRewriteFailed);
        }
        sum += csum::at_offset(csum::fold(sum_be16(&opt)), end - dns_off);
        end = (end + OPT_LEN) & 0x7ff;
    } else {
        let back = (stage.opt_back & 0xff) as usize;
        if back < 2 || end < dns_off + back {
            return Err(Counter::DropRewriteFailed);
        }
        let rdlen = (end - back) & 0x7ff;
        let old = be16_at(ctx, rdlen, Counter::DropRewriteFailed)?;
        put_be16(ctx, rdlen, old + COOKIE_OPTION_LEN as u16)?;
        // RDLENGTH only grows (no carry), so its sum grows by exactly as much.
        sum += csum::at_offset(COOKIE_OPTION_LEN as u16, rdlen.wrapping_sub(dns_off));
    }
    // Four stores in place (the option from byte 4 of its words), not a helper's copy.
    let p = ptr_at(ctx, end, COOKIE_OPTION_LEN, Counter::DropRewriteFailed)?;
    let o = &stage.option;
    // SAFETY: 28 packet bytes checked by ptr_at; unaligned stores.
    unsafe {
        (p as *mut u32).write_unaligned((o[0] >> 32) as u32);
        (p.add(4) as *mut u64).write_unaligned(o[1]);
        (p.add(12) as *mut u64).write_unaligned(o[2]);
        (p.add(20) as *mut u64).write_unaligned(o[3]);
    }
    let udp = be16_at(ctx, csum_at, Counter::DropRewriteFailed)?;
    sum += (!udp) as u64 + csum::at_offset(stage.option_sum as u16, end.wrapping_sub(dns_off));
    let mut c = csum::finish(sum);
    // A computed zero is sent as all ones; zero means "no checksum" (RFC 768).
    if c == 0 {
        c = 0xffff;
    }
    put_be16(ctx, csum_at, c)
}

/// Make the frame `by` bytes longer at its end: at the tail where the driver has room, else at
/// the head, moving the whole (small: a slip) frame to the new start.
#[inline(always)]
fn grow(ctx: &XdpContext, by: usize) -> Result<(), Counter> {
    // SAFETY: helper calls on our own context; every packet pointer is re-derived afterwards.
    unsafe {
        if aya_ebpf::helpers::bpf_xdp_adjust_tail(ctx.ctx, by as i32) == 0 {
            return Ok(());
        }
        // In a form whose range [1, FRAME_BUF] the verifier sees on the register it checks.
        // (Laundered first: LLVM would fold the subtractions into bit operations on the packet
        // pointers, which the verifier refuses.)
        let wash = maps::key_buf().map_err(|_| Counter::DropRewriteFailed)?;
        let frame = wash.launder((ctx.data_end() - ctx.data()) as u64);
        let below = (frame.wrapping_sub(1) & 0x3ff) as u32;
        if below >= maps::FRAME_BUF as u32 {
            return Err(Counter::DropRewriteFailed);
        }
        let len = below + 1;
        let buf = maps::frame_buf().map_err(|_| Counter::DropRewriteFailed)?;
        if aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, 0, buf.cast(), len) != 0
            || aya_ebpf::helpers::bpf_xdp_adjust_head(ctx.ctx, -(by as i32)) != 0
            || aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, 0, buf.cast(), len) != 0
        {
            return Err(Counter::DropRewriteFailed);
        }
    }
    Ok(())
}

/// Add `by` to the IP and UDP lengths (and the IPv4 header checksum); returns what that adds
/// to the UDP checksum (its length counts twice: pseudo-header and header).
#[inline(always)]
fn grow_lengths(ctx: &XdpContext, stage: &Stage, by: u16) -> Result<u64, Counter> {
    let l3 = (stage.l3_off & 0x7ff) as usize;
    let l4 = (stage.l4_off & 0x7ff) as usize;
    let bump = |off: usize| -> Result<(), Counter> {
        let v = be16_at(ctx, off, Counter::DropRewriteFailed)?;
        put_be16(ctx, off, v + by)
    };
    if stage.v6 != 0 {
        bump(l3 + 4)?;
    } else {
        bump(l3 + 2)?;
        let c = be16_at(ctx, l3 + 10, Counter::DropRewriteFailed)?;
        put_be16(ctx, l3 + 10, csum::finish((!c) as u64 + by as u64))?;
    }
    bump(l4 + 4)?;
    Ok(2 * by as u64)
}

/// A server cookie's verdict.
#[derive(PartialEq, Eq, Clone, Copy)]
enum Valid {
    No,
    /// Valid: under the staging secret, or older than [`REUSE_AGE`]; the answer gets a fresh one.
    Renew,
    /// Valid under the secret and young: the answer carries it back unchanged.
    Reuse,
}

/// Version 1, age within RFC 9018's window, and the hash under the secret or the staging one.
#[inline(always)]
fn verify(l: &Limits, addr: &[u32; 4], v4: bool, w: [u64; 3], now: u32) -> Valid {
    let (client, stamp, mac) = (w[0], w[1], w[2]);
    let ts = ((stamp >> 32) as u32).swap_bytes();
    let age = now.wrapping_sub(ts) as i32;
    if stamp & 0xff != 1 || !(-MAX_AHEAD..=MAX_AGE).contains(&age) {
        return Valid::No;
    }
    if hash(l.cookie_secret, addr, v4, client, stamp) == mac {
        if age < REUSE_AGE {
            Valid::Reuse
        } else {
            Valid::Renew
        }
    } else if l.flags & LIMIT_COOKIE_STAGING != 0
        && hash(l.cookie_staging, addr, v4, client, stamp) == mac
    {
        Valid::Renew
    } else {
        Valid::No
    }
}

/// SipHash-2-4 of client cookie | version, reserved, timestamp | client address.
#[inline(always)]
fn hash(key: [u64; 2], a: &[u32; 4], v4: bool, client: u64, stamp: u64) -> u64 {
    // The address words are network-order bytes: read little-endian they are in message order.
    if v4 {
        siphash24(key, &[client, stamp, 0, 0], 2, a[3] as u64 | 20 << 56)
    } else {
        let lo = a[0] as u64 | (a[1] as u64) << 32;
        let hi = a[2] as u64 | (a[3] as u64) << 32;
        siphash24(key, &[client, stamp, lo, hi], 4, 32 << 56)
    }
}

/// A word's two 32-bit halves added: folded, the one's-complement sum of its four 16-bit words
/// as loaded (little-endian).
#[inline(always)]
fn sum_le32(w: u64) -> u64 {
    (w & 0xffff_ffff) + (w >> 32)
}

/// One's-complement sum of big-endian 16-bit words (unfolded) of an even number of bytes.
#[inline(always)]
fn sum_be16<const N: usize>(b: &[u8; N]) -> u64 {
    let mut s = 0u64;
    let mut i = 0;
    while i + 1 < N {
        s += ((b[i] as u64) << 8) | b[i + 1] as u64;
        i += 2;
    }
    s
}
