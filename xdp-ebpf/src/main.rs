//! rampart's XDP program: answers DNS queries from precompiled answers in BPF maps (XDP_TX) and
//! passes everything else up to the userspace daemon, counting why.
#![no_std]
#![no_main]

mod cache;
mod cache_acl;
mod cache_handoff;
mod cookie;
mod csum;
mod dns;
mod eth;
mod handoff;
mod ip;
mod limits;
mod maps;
mod packet;
mod query;
mod reference;
mod siphash;
mod udp;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use aya_log_ebpf::debug;
use rampart_common::{
    CLASSIC_UDP_LIMIT, COOKIE_OPTION_LEN, Counter, EDNS_PAYLOAD, MAX_RELOCS, Variant, dns::FLAG_QR,
};

use crate::{
    ip::L3,
    maps::{Scratch, count},
    query::{Answer, Question},
};

/// Why a packet was not answered; each maps to a pass counter.
pub type Verdict = Result<u32, Counter>;

#[xdp]
pub fn rampart(ctx: XdpContext) -> u32 {
    match try_rampart(&ctx) {
        Ok(action) => action,
        // Counted where it happened (the frame may already be half rewritten).
        Err(Counter::DropRewriteFailed) => xdp_action::XDP_DROP,
        Err(reason) => {
            count(reason);
            if reason.is_drop() {
                xdp_action::XDP_DROP
            } else {
                xdp_action::XDP_PASS
            }
        }
    }
}

#[inline(always)]
fn try_rampart(ctx: &XdpContext) -> Verdict {
    // A resolver-only node: the cache program first, before any parse here (it parses the
    // frame itself; back here, untouched, on a miss).
    cache::first(ctx);
    let l2 = eth::parse(ctx)?;
    let l3 = ip::parse(ctx, &l2)?;
    let udp = udp::parse(ctx, &l3)?;
    let s = Scratch::get()?;
    let probe = s.launder(packet::is_health_probe(ctx) as u64);
    let mut src = limits::Source::new(ip::source(ctx, &l3)?, probe, s);
    let verdict = match try_dns(ctx, s, &l3, &udp, &mut src) {
        // The resolver's cache has the name (the walk's first hop): the cache program answers
        // it; if it can't run, the query is a miss.
        Err(Counter::TxCache) => {
            // It takes the frame's headers as parsed here.
            cache_handoff::leave_frame(s, &l3);
            cache::jump(ctx, true);
            Err(Counter::PassMiss)
        }
        other => other,
    };
    match verdict {
        // What goes up costs the slow path work: budgeted (no question to slip with here).
        Err(reason) if limits::budgeted(reason) => {
            // Laundered: the budget is verified once for every pass reason, not once each.
            let reason = s.launder(reason as u64) as u32;
            match limits::budget(&src)? {
                limits::Verdict::Pass => {
                    maps::count_index(reason);
                    Ok(xdp_action::XDP_PASS)
                }
                limits::Verdict::Slip(_) => Err(Counter::DropBudget),
            }
        }
        other => other,
    }
}

/// A DNS message too broken to answer is junk: dropped, not passed up for a FORMERR.
#[inline(always)]
fn junk(reason: Counter) -> Counter {
    if reason == Counter::PassMalformed {
        Counter::DropMalformed
    } else {
        reason
    }
}

/// Pass the query up now, counted (the budget already admitted it).
#[inline(always)]
fn pass(reason: Counter) -> Verdict {
    count(reason);
    Ok(xdp_action::XDP_PASS)
}

#[inline(always)]
fn try_dns(
    ctx: &XdpContext,
    s: Scratch,
    l3: &L3,
    udp: &udp::Udp,
    src: &mut limits::Source,
) -> Verdict {
    let header = dns::parse_header(ctx, udp.payload_off, udp.payload_len).map_err(junk)?;
    let (question, records) =
        dns::parse_question(ctx, s, udp.payload_off, udp.payload_len).map_err(junk)?;
    let edns = dns::parse_edns_in(
        ctx,
        s,
        &question,
        header.arcount,
        udp.payload_off + udp.payload_len,
    )
    .map_err(junk)?;
    let verdict = match edns.cookie {
        Some(opt) if cookie::enabled() => cookie::check_here(ctx, opt, src.addr(), question.end)?,
        _ => src.cookie,
    };
    // Laundered, and taken the same way with a cookie or without: one verifier state goes on.
    // Set in place: a copy of the source was a dozen loads and stores on every hit.
    src.cookie = s.launder(verdict);
    let src = &*src;
    // The answer carries the client's cookie and a fresh server cookie: room for it counts
    // against the client's UDP limit like the rest.
    let cookie_len = if src.cookie & handoff::ANSWER != 0 {
        COOKIE_OPTION_LEN
    } else {
        0
    };

    let limit = match edns.variant {
        Variant::NoEdns => CLASSIC_UDP_LIMIT,
        _ => edns.udp_size.clamp(CLASSIC_UDP_LIMIT, EDNS_PAYLOAD),
    } as usize;
    let found = maps::lookup(s, records, &question, edns.variant).and_then(|a| {
        if dns::HEADER_LEN + question.len + a.value.tail_len as usize + cookie_len > limit {
            Err(Counter::PassTooBig)
        } else {
            Ok(a)
        }
    });
    let (answer, outcome) = match found {
        Ok(a) => match limits::answer(src, a.value.rrl_class)? {
            limits::Verdict::Pass => {
                let kind = a.kind();
                (a, kind)
            }
            limits::Verdict::Slip(c) => (a.slip(), c),
        },
        Err(reason @ (Counter::PassMiss | Counter::PassTooBig)) => match limits::budget(src)? {
            limits::Verdict::Pass => {
                // Not in the zones: the resolver's cache may have it (returns when no
                // resolver runs). Admitted by the budget first: one verifier path, and the
                // authoritative hit never comes near it.
                if reason == Counter::PassMiss {
                    cache::jump(ctx, false);
                }
                return pass(reason);
            }
            limits::Verdict::Slip(c) => (Answer::budget_slip(), c),
        },
        Err(reason) => return Err(reason),
    };
    // A slip to a client that sent a cookie becomes BADCOOKIE with an OPT holding a fresh one
    // (the cookie stage rewrites it); a budget slip stays TC=1 (TCP skips the budget).
    // Laundered (masked back to its range): with or without, one verifier state goes on.
    let cookie_len = if answer.value.opt_back != 0 {
        cookie_len
    } else {
        0
    };
    let cookie_len = (s.launder(cookie_len as u64) & 0x1c) as usize;
    let dns_len = dns::HEADER_LEN + question.len + answer.value.tail_len as usize + cookie_len;
    let payload_sum = edns
        .csum
        .map(|opt| dns::query_header_sum(&header) + question.csum + opt);
    let address_sum = ip::address_sum(ctx, l3)?;
    udp::verify_checksum(ctx, l3, udp, address_sum, payload_sum)?;
    respond(
        ctx,
        &Reply {
            s,
            l3,
            udp,
            dns_off: udp.payload_off,
            header: &header,
            question: &question,
            answer: &answer,
            dns_len,
            cookie_len,
            address_sum,
        },
        outcome,
    )
}

/// Everything the rewrite needs to know about the query and its answer.
struct Reply<'a> {
    /// This CPU's scratch slot, found once for the frame.
    s: Scratch,
    l3: &'a L3,
    udp: &'a udp::Udp,
    dns_off: usize,
    header: &'a dns::Header,
    question: &'a Question,
    answer: &'a Answer,
    /// Length of the DNS answer: header, question, tail, cookie option.
    dns_len: usize,
    /// Bytes of COOKIE option appended to the tail's OPT (0 or `COOKIE_OPTION_LEN`).
    cookie_len: usize,
    /// The addresses' share of the UDP pseudo-header, the same for query and answer.
    address_sum: u64,
}

/// Turn the query into its answer in place and send it back out of the same NIC, counted as
/// `outcome`.
#[inline(always)]
fn respond(ctx: &XdpContext, r: &Reply, outcome: Counter) -> Verdict {
    // Each outcome reaches here as its own constant; laundered, the rewrite is verified once
    // for all of them instead of once per outcome.
    let outcome = r.s.launder(outcome as u64) as u32;
    resize(
        ctx,
        r.dns_off + r.dns_len,
        r.dns_off + dns::HEADER_LEN + r.question.len,
    )?;
    match rewrite(ctx, r) {
        Ok(()) => {
            maps::count_index(outcome);
            if r.cookie_len != 0 {
                // The lengths and checksum so far cover the option's room but not its bytes:
                // the cookie stage writes them and settles the checksum, then sends the frame.
                let tail_end =
                    r.dns_off + dns::HEADER_LEN + r.question.len + r.answer.value.tail_len as usize;
                return Ok(cookie::append(
                    ctx,
                    r.l3,
                    r.dns_off,
                    tail_end,
                    r.answer.value.opt_back,
                ));
            }
            Ok(xdp_action::XDP_TX)
        }
        Err(_) => {
            // Never expected: every bound was checked before the resize.
            debug!(ctx, "rewrite failed after resize");
            count(Counter::DropRewriteFailed);
            Ok(xdp_action::XDP_DROP)
        }
    }
}
/// Make the frame `new_len` bytes long, keeping its first `keep` bytes (headers and question)
/// in place. The tail is tried first; where the driver leaves little tailroom (veth leaves only
/// the cache-line slack), grow at the head instead and copy the kept bytes to the new start.
#[inline(always)]
pub(crate) fn resize(ctx: &XdpContext, new_len: usize, keep: usize) -> Result<(), Counter> {
    let delta = new_len as i32 - (ctx.data_end() - ctx.data()) as i32;
    // SAFETY: helper calls on our own context; every packet pointer is re-derived afterwards.
    unsafe {
        if aya_ebpf::helpers::bpf_xdp_adjust_tail(ctx.ctx, delta) == 0 {
            return Ok(());
        }
        let buf = maps::frame_buf()?;
        let keep = keep as u32;
        if keep == 0 || keep > maps::FRAME_BUF as u32 {
            return Err(Counter::PassRewriteFailed);
        }
        if aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, 0, buf.cast(), keep) != 0
            || aya_ebpf::helpers::bpf_xdp_adjust_head(ctx.ctx, -delta) != 0
        {
            return Err(Counter::PassRewriteFailed);
        }
        // From here the frame is no longer the query: a failure must drop it, not pass it.
        if aya_ebpf::helpers::bpf_xdp_store_bytes(ctx.ctx, 0, buf.cast(), keep) != 0 {
            count(Counter::DropRewriteFailed);
            return Err(Counter::DropRewriteFailed);
        }
    }
    Ok(())
}

/// Everything after the resize: tail, header, addresses, checksums.
#[inline(always)]
fn rewrite(ctx: &XdpContext, r: &Reply) -> Result<(), Counter> {
    let tail_off = r.dns_off + dns::HEADER_LEN + r.question.len;
    let v = &r.answer.value;
    maps::store_tail(ctx, r.s, tail_off, r.answer)?;
    let do_sum = set_do(ctx, r, tail_off)?;
    let relocated = relocate(ctx, r, tail_off)?;
    dns::write_header(ctx, r.dns_off, r.header, v)?;
    eth::swap_macs(ctx)?;
    ip::reply(ctx, r.l3, 8 + r.dns_len)?;
    let pseudo = ip::pseudo_sum(r.address_sum, 8 + r.dns_len);
    let payload_sum = dns::header_sum(r.header, v)
        + r.question.csum
        + csum::at_offset(v.tail_csum, tail_off - r.dns_off)
        + relocated
        + do_sum;
    udp::reply(ctx, r.l3, r.udp, 8 + r.dns_len, pseudo + payload_sum)
}

/// The DO variant derived from the EDNS answer: set DO in the copied OPT record's flags (the
/// flags word, just before RDLENGTH; 0 in the EDNS answer). Returns the checksum change.
#[inline(always)]
fn set_do(ctx: &XdpContext, r: &Reply, tail_off: usize) -> Result<u64, Counter> {
    if !r.answer.set_do {
        return Ok(0);
    }
    let v = &r.answer.value;
    let back = v.opt_back as usize + 2;
    if back > v.tail_len as usize {
        return Err(Counter::DropRewriteFailed);
    }
    // Masked (a no-op for a frame we answer) so the verifier sees a positive offset.
    let pos = (r.s.launder((tail_off + v.tail_len as usize - back) as u64) & 0x7ff) as usize;
    if pos < r.dns_off {
        return Err(Counter::DropRewriteFailed);
    }
    // The whole flags word: a 2-byte window is one the verifier can bound (see name_byte_at).
    let flags = packet::be16_at(ctx, pos, Counter::DropRewriteFailed)?;
    packet::put_be16(ctx, pos, flags | FLAG_QR)?;
    Ok(csum::at_offset(FLAG_QR, pos - r.dns_off))
}

/// Fit a relocatable template (NXDOMAIN, or a referral below a cut) to this query name: its
/// pointers into the name's suffix (or past it) were rendered for a name of `ref_qname_len`
/// bytes. Returns the checksum change.
#[inline(always)]
fn relocate(ctx: &XdpContext, r: &Reply, tail_off: usize) -> Result<u64, Counter> {
    let v = &r.answer.value;
    // Most answers (every positive one) have nothing to relocate: spare them the laundering.
    if v.reloc_count == 0 {
        return Ok(0);
    }
    // Every path to here (tail class, resize at tail or head, walked or not) arrives with its
    // own ranges for these; laundered, the loop below is verified once, not once per path.
    // The masks give the verifier bounds: offsets in a frame we answer stay under 2 KiB.
    let wash = r.s;
    let tail_off = (wash.launder(tail_off as u64) & 0x7ff) as usize;
    let dns_off = (wash.launder(r.dns_off as u64) & 0x7ff) as usize;
    let delta = wash.launder((r.question.name_len - v.ref_qname_len as usize) as u64) as u16;
    let count = (wash.launder(v.reloc_count as u64) & 0xff) as usize;
    let reloc = wash.launder(v.reloc);
    let mut sum = 0u64;
    let mut i = 0;
    while i < MAX_RELOCS {
        if i >= count {
            break;
        }
        let pos = tail_off + ((reloc >> (8 * i)) & 0xff) as usize;
        if pos < dns_off {
            return Err(Counter::DropRewriteFailed);
        }
        let old = packet::be16_at(ctx, pos, Counter::DropRewriteFailed)?;
        let new = old.wrapping_add(delta);
        packet::put_be16(ctx, pos, new)?;
        // One's complement: replacing a word adds the new one and the complement of the old.
        sum += csum::at_offset(new, pos - dns_off) + csum::at_offset(!old, pos - dns_off);
        i += 1;
    }
    Ok(wash.launder(sum))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
