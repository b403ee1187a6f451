//! UDP: accept datagrams to port 53 from a plausible client port, and write the reply's header.
use aya_ebpf::programs::XdpContext;
use rampart_common::Counter;

use crate::{
    csum,
    ip::L3,
    packet::{be16_at, ptr_at, put_be16},
};

const DNS_PORT: u16 = 53;
const UDP_HLEN: usize = 8;
/// A DNS header is 12 bytes; anything shorter is not worth parsing here.
const MIN_DNS: usize = 12;

pub struct Udp {
    pub payload_off: usize,
    pub payload_len: usize,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, l3: &L3) -> Result<Udp, Counter> {
    let off = l3.l4_off;
    ptr_at(ctx, off, UDP_HLEN, Counter::PassMalformed)?;
    if be16_at(ctx, off + 2, Counter::PassNotDns)? != DNS_PORT {
        return Err(Counter::PassNotDns);
    }
    if be16_at(ctx, off, Counter::PassNotDns)? == 0 {
        return Err(Counter::PassBadSourcePort);
    }
    let len = be16_at(ctx, off + 4, Counter::PassMalformed)? as usize;
    // The UDP length must agree with the IP header; a short DNS payload goes up for FORMERR.
    if len != l3.l4_len || len < UDP_HLEN + MIN_DNS {
        return Err(Counter::PassMalformed);
    }
    Ok(Udp {
        payload_off: off + UDP_HLEN,
        payload_len: len - UDP_HLEN,
    })
}

/// Swap ports, set the length and the checksum (RFC 768; mandatory on IPv6, RFC 8200 §8.1).
/// `sum` is the pseudo-header plus payload sum; the UDP header's own words are added here.
#[inline(always)]
pub fn reply(ctx: &XdpContext, l3: &L3, len: usize, sum: u64) -> Result<(), Counter> {
    let off = l3.l4_off;
    let sport = be16_at(ctx, off, Counter::PassRewriteFailed)?;
    let dport = be16_at(ctx, off + 2, Counter::PassRewriteFailed)?;
    put_be16(ctx, off, dport)?;
    put_be16(ctx, off + 2, sport)?;
    put_be16(ctx, off + 4, len as u16)?;
    let mut c = csum::finish(sum + sport as u64 + dport as u64 + len as u64);
    // A computed zero is sent as all ones; zero means "no checksum" (RFC 768).
    if c == 0 {
        c = 0xffff;
    }
    put_be16(ctx, off + 6, c)
}
