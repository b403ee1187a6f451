//! DNS: the header, the question (copied lowercased into the lookup key), and the OPT record.
use aya_ebpf::programs::XdpContext;
use rampart_common::{
    AnswerHead, Counter, MAX_NAME, OPT_LEN as OPT_FIXED_LEN, Variant,
    dns::{
        CLASS_IN, EDNS_DO, FLAG_OPCODE, FLAG_QR, FLAG_RCODE, FLAG_RD, FLAG_TC, OPTION_COOKIE,
        OPTION_NSID, TYPE_OPT,
    },
};

use crate::{
    maps::{self, KeyBuf, Scratch},
    packet::{name_byte_at, ptr_at},
    query::Question,
};

pub use rampart_common::dns::HEADER_LEN;
/// Bits of the query's flags an answer copies: RD (RFC 1035 §4.1.1). CD is cleared, as an
/// authoritative server should (RFC 4035 §3.1.6; NSD and Knot do).
const COPIED_FLAGS: u16 = FLAG_RD;
/// Options scanned per query; real clients send one or two (cookie, padding, NSID).
const MAX_OPTIONS: usize = 6;
/// Queries over 512 bytes never get this far (pass_large_query); the bound also keeps the
/// verifier's idea of the option offset small.
const MAX_DNS_END: usize = 2048;

pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub arcount: u16,
}

/// Accept only a plain query (a response is junk, dropped): QR=0, opcode QUERY, not truncated, RCODE 0, one question, nothing
/// in the answer or authority sections. Everything else is the slow path's to judge.
#[inline(always)]
pub fn parse_header(ctx: &XdpContext, off: usize, _len: usize) -> Result<Header, Counter> {
    // One bound for the whole header, then plain loads.
    let p = ptr_at(ctx, off, HEADER_LEN, Counter::PassMalformed)?;
    // SAFETY: 12 bytes checked above; big-endian fields, unaligned.
    let be16 = |o: usize| u16::from_be(unsafe { (p.add(o) as *const u16).read_unaligned() });
    let (id, flags) = (be16(0), be16(2));
    if flags & FLAG_QR != 0 {
        // A response sent to a server port: reflected at us, or a loop. Never answered.
        return Err(Counter::DropResponse);
    }
    if flags & (FLAG_OPCODE | FLAG_TC | FLAG_RCODE) != 0 {
        return Err(Counter::PassNotQuery);
    }
    let (qd, an, ns, arcount) = (be16(4), be16(6), be16(8), be16(10));
    if qd != 1 || an != 0 || ns != 0 {
        return Err(Counter::PassNotQuery);
    }
    if arcount > 1 {
        return Err(Counter::PassEdns);
    }
    Ok(Header { id, flags, arcount })
}

/// Most labels a 255-byte name can have (127 one-byte labels and the root).
const MAX_LABELS: usize = 128;

/// Find the question name's length by hopping label to label (bounded: 128 labels, 255 bytes).
/// Compression pointers and reserved label types have no place in a question.
#[inline(always)]
/// Also returns where its top label starts (the resolver cache's apex filter reads it there).
fn name_length(ctx: &XdpContext, start: usize, dns_end: usize) -> Result<(usize, usize), Counter> {
    let mut pos = 0usize;
    let mut top = 0usize;
    let mut n = 0;
    while n < MAX_LABELS {
        if start + pos >= dns_end {
            return Err(Counter::PassMalformed);
        }
        let len = name_byte_at(ctx, start + pos)? as usize;
        if len == 0 {
            return Ok((pos + 1, top));
        }
        if len & 0xc0 != 0 {
            return Err(Counter::PassMalformed);
        }
        top = pos;
        pos += len + 1;
        if pos >= MAX_NAME {
            return Err(Counter::PassMalformed);
        }
        n += 1;
    }
    Err(Counter::PassMalformed)
}

/// Parse the question and [`maps::locate`] its answer; with the live generation's records,
/// found once for the frame ([`maps::records`]; no generation yet: `PassNotReady`).
#[inline(always)]
pub fn parse_question(
    ctx: &XdpContext,
    s: Scratch,
    dns_off: usize,
    dns_len: usize,
) -> Result<(Question, &'static maps::Records), Counter> {
    let q = read_question_in(ctx, s, dns_off, dns_len, None)?;
    let Some(records) = maps::records(s) else {
        return Err(Counter::PassNotReady);
    };
    if let Err(reason) = maps::locate(ctx, s, records, &q) {
        // The resolver's cache has the name: the cache program takes the question as read.
        if reason == Counter::TxCache {
            crate::cache_handoff::leave(&q);
        }
        return Err(reason);
    }
    Ok((q, records))
}

/// Read the question: measure the name label by label, then copy it lowercased into the
/// per-CPU key buffer, summing it for the UDP checksum on the way, hashed under `seed` (the
/// resolver cache's: the cache program's read).
#[inline(always)]
pub fn read_question(
    ctx: &XdpContext,
    dns_off: usize,
    dns_len: usize,
    seed: u64,
) -> Result<Question, Counter> {
    read_question_in(ctx, Scratch::get()?, dns_off, dns_len, Some(seed))
}

/// [`read_question`] with the frame's scratch slot; `seed` `None`: the live generation's.
#[inline(always)]
fn read_question_in(
    ctx: &XdpContext,
    s: Scratch,
    dns_off: usize,
    dns_len: usize,
    seed: Option<u64>,
) -> Result<Question, Counter> {
    let start = dns_off + HEADER_LEN;
    let dns_end = dns_off + dns_len;
    let key: &mut KeyBuf = s.key();
    let (len, top) = name_length(ctx, start, dns_end)?;
    key.set_len(len);
    key.top = top as u32;
    key.clear(key.len());
    let name_sum = match seed {
        Some(seed) => key.fill_name_with(ctx, start, key.len(), seed)?,
        None => key.fill_name(ctx, start, key.len())?,
    };
    // The name starts at payload offset 12 (even): its little-endian sum, swapped, is in order.
    let mut sum = crate::csum::fold(name_sum).swap_bytes() as u64;
    let name_len = key.len();
    let tail = start + name_len;
    if tail + 4 > dns_end {
        return Err(Counter::PassMalformed);
    }
    let p = ptr_at(ctx, tail, 4, Counter::PassMalformed)?;
    // SAFETY: four bytes checked above; big-endian, unaligned.
    let (qtype, qclass) = unsafe {
        (
            u16::from_be((p as *const u16).read_unaligned()),
            u16::from_be((p.add(2) as *const u16).read_unaligned()),
        )
    };
    if qclass != CLASS_IN {
        return Err(Counter::PassClass);
    }
    sum += crate::csum::at_offset(qtype, name_len) + crate::csum::at_offset(qclass, name_len);
    let q = Question {
        len: name_len + 4,
        name_len,
        qtype,
        csum: sum,
        end: tail + 4,
    };
    Ok(q)
}

pub struct Edns {
    pub variant: Variant,
    pub udp_size: u16,
    /// Checksum contribution of the OPT record at its place, when it carries no options (or
    /// there is no OPT: 0); `None` when options follow, which the program doesn't sum itself.
    pub csum: Option<u64>,
    /// Where the COOKIE option's data (client cookie, then any server cookie) is, if sent.
    pub cookie: Option<OptionAt>,
}

/// An EDNS option's data: packet offset and length.
#[derive(Clone, Copy)]
pub struct OptionAt {
    pub off: usize,
    pub len: usize,
}

/// RFC 6891: with ARCOUNT=1 the record after the question must be a root-owned OPT of version 0
/// ending exactly at the payload's end; without it nothing may follow the question.
#[inline(always)]
pub fn parse_edns(
    ctx: &XdpContext,
    q: &Question,
    arcount: u16,
    dns_end: usize,
) -> Result<Edns, Counter> {
    parse_edns_in(ctx, Scratch::get()?, q, arcount, dns_end)
}

/// [`parse_edns`] with the frame's scratch slot.
#[inline(always)]
pub fn parse_edns_in(
    ctx: &XdpContext,
    s: Scratch,
    q: &Question,
    arcount: u16,
    dns_end: usize,
) -> Result<Edns, Counter> {
    let opt = q.end;
    if arcount == 0 {
        if opt != dns_end {
            return Err(Counter::PassMalformed);
        }
        return Ok(Edns {
            variant: Variant::NoEdns,
            udp_size: 0,
            csum: Some(0),
            cookie: None,
        });
    }
    if opt + OPT_FIXED_LEN > dns_end {
        return Err(Counter::PassMalformed);
    }
    // One window over the fixed 11 bytes: single-byte checks at a variable offset give the
    // verifier no range (see packet::name_byte_at).
    let p = ptr_at(ctx, opt, OPT_FIXED_LEN, Counter::PassMalformed)?;
    // SAFETY: 11 bytes checked above; big-endian fields read unaligned.
    let (owner, rtype, udp_size, ext_rcode, version, flags, rdlen) = unsafe {
        let be16 = |o: usize| u16::from_be((p.add(o) as *const u16).read_unaligned());
        (
            *p,
            be16(1),
            be16(3),
            *p.add(5),
            *p.add(6),
            be16(7),
            be16(9) as usize,
        )
    };
    if owner != 0 {
        return Err(Counter::PassEdns);
    }
    if rtype != TYPE_OPT {
        // Probably TSIG or SIG(0): the slow path handles (or refuses) them.
        return Err(Counter::PassEdns);
    }
    if version != 0 {
        return Err(Counter::PassEdns);
    }
    if opt + OPT_FIXED_LEN + rdlen != dns_end {
        return Err(Counter::PassMalformed);
    }
    let cookie = scan_options(ctx, s, opt + OPT_FIXED_LEN, dns_end)?;
    let variant = if flags & EDNS_DO != 0 {
        Variant::EdnsDo
    } else {
        Variant::Edns
    };
    // The 11 bytes as words from an even offset: owner|type_hi, type_lo|class_hi,
    // class_lo|ext_rcode, version|flags_hi, flags_lo|rdlen_hi, rdlen_lo|pad.
    let csum = (rdlen == 0).then(|| {
        let b = |hi: u16, lo: u16| ((hi & 0xff) << 8 | (lo & 0xff)) as u64;
        let even = b(owner as u16, rtype >> 8)
            + b(rtype, udp_size >> 8)
            + b(udp_size, ext_rcode as u16)
            + b(version as u16, flags >> 8)
            + b(flags, 0)
            + b(0, 0);
        crate::csum::at_offset(crate::csum::fold(even), opt - q.end + q.len + HEADER_LEN)
    });
    Ok(Edns {
        variant,
        udp_size,
        csum,
        cookie,
    })
}

/// Walk the OPT RDATA's options (RFC 6891 §6.1.2): each must fit exactly. A query asking for
/// NSID goes up (the identity is the daemon's); a COOKIE option is located for the caller;
/// other options are ignored, as RFC 6891 asks of unknown ones.
#[inline(always)]
fn scan_options(
    ctx: &XdpContext,
    s: Scratch,
    start: usize,
    dns_end: usize,
) -> Result<Option<OptionAt>, Counter> {
    if dns_end > MAX_DNS_END {
        return Err(Counter::PassLargeQuery);
    }
    let mut pos = start;
    let mut cookie = None;
    let mut n = 0;
    while n < MAX_OPTIONS {
        if pos == dns_end {
            return Ok(cookie);
        }
        if pos + 4 > dns_end {
            return Err(Counter::PassMalformed);
        }
        // Laundered and masked (a no-op: pos < MAX_DNS_END here) so the verifier sees the bound
        // on the register it adds to the packet pointer: LLVM folds every plain check of it
        // into the one above, which the verifier doesn't carry over.
        pos = (s.launder(pos as u64) & (2 * MAX_DNS_END as u64 - 1)) as usize;
        let p = ptr_at(ctx, pos, 4, Counter::PassMalformed)?;
        // SAFETY: 4 bytes checked by ptr_at; big-endian, unaligned.
        let (code, len) = unsafe {
            (
                u16::from_be((p as *const u16).read_unaligned()),
                u16::from_be((p.add(2) as *const u16).read_unaligned()) as usize,
            )
        };
        match code {
            OPTION_NSID => return Err(Counter::PassNsid),
            // Two cookies: FORMERR (RFC 7873 §5.2.2), the slow path's to send.
            OPTION_COOKIE if cookie.is_some() => return Err(Counter::PassEdns),
            OPTION_COOKIE => cookie = Some(OptionAt { off: pos + 4, len }),
            _ => {}
        }
        pos += 4 + len;
        n += 1;
    }
    if pos == dns_end {
        Ok(cookie)
    } else {
        Err(Counter::PassEdns)
    }
}

/// Header of the answer: the query's ID, our flags plus its RD/CD, QDCOUNT 1, our counts.
#[inline(always)]
pub fn write_header(
    ctx: &XdpContext,
    off: usize,
    q: &Header,
    v: &AnswerHead,
) -> Result<(), Counter> {
    let p = ptr_at(ctx, off, HEADER_LEN, Counter::PassRewriteFailed)?;
    // The four counts as one big-endian word: QDCOUNT 1, then ours.
    let counts =
        1u64 << 48 | (v.ancount as u64) << 32 | (v.nscount as u64) << 16 | v.arcount as u64;
    // SAFETY: the 12-byte header was bound-checked above; unaligned stores.
    unsafe {
        (p.add(2) as *mut u16).write_unaligned(reply_flags(q, v).to_be());
        (p.add(4) as *mut u64).write_unaligned(counts.to_be());
    }
    Ok(())
}

#[inline(always)]
fn reply_flags(q: &Header, v: &AnswerHead) -> u16 {
    v.flags | (q.flags & COPIED_FLAGS)
}

/// Checksum contribution of the query's 12-byte header (QDCOUNT 1, AN and NS 0: checked).
#[inline(always)]
pub fn query_header_sum(q: &Header) -> u64 {
    q.id as u64 + q.flags as u64 + 1 + q.arcount as u64
}

/// Checksum contribution of the answer's 12-byte header.
#[inline(always)]
pub fn header_sum(q: &Header, v: &AnswerHead) -> u64 {
    q.id as u64
        + reply_flags(q, v) as u64
        + 1
        + v.ancount as u64
        + v.nscount as u64
        + v.arcount as u64
}
