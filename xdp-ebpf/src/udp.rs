//! UDP: accept datagrams to port 53 from a possible client port, and write the reply's header.
use aya_ebpf::programs::XdpContext;
use rampart_common::{Counter, is_impossible_source_port};

use crate::{
    csum,
    ip::{self, L3},
    maps,
    packet::ptr_at,
};

const DNS_PORT: u16 = 53;
const UDP_HLEN: usize = 8;
/// Anything shorter than a DNS header is not worth parsing here.
const MIN_DNS: usize = rampart_common::dns::HEADER_LEN;

pub struct Udp {
    pub payload_off: usize,
    pub payload_len: usize,
    /// The client's port (the destination is 53).
    pub sport: u16,
    /// The checksum field as received (0: none, allowed on IPv4 only).
    pub csum: u16,
}

/// Largest query whose checksum the program verifies (bpf_csum_diff sums at most 512 bytes);
/// bigger ones go up.
pub const MAX_VERIFIED: usize = 512;

/// Verify the query's UDP checksum, as the kernel would before delivering it: a corrupted
/// datagram is the kernel's to drop, never ours to answer.
#[inline(always)]
/// `payload_sum`: the DNS payload's sum when the caller has it already (every byte of a query
/// without EDNS options was summed while parsing); otherwise the datagram is copied aside and
/// summed with `bpf_csum_diff`.
pub fn verify_checksum(
    ctx: &XdpContext,
    l3: &L3,
    udp: &Udp,
    address_sum: u64,
    payload_sum: Option<u64>,
) -> Result<(), Counter> {
    if udp.csum == 0 {
        // "No checksum" is legal on IPv4 (RFC 768), never on IPv6 (RFC 8200 §8.1).
        return if l3.v6 {
            Err(Counter::PassBadChecksum)
        } else {
            Ok(())
        };
    }
    let len = udp.payload_len + UDP_HLEN;
    if let Some(payload) = payload_sum {
        let header = udp.sport as u64 + DNS_PORT as u64 + len as u64 + udp.csum as u64;
        let sum = payload + header + ip::pseudo_sum(address_sum, len);
        return if csum::fold(sum) == 0xffff {
            Ok(())
        } else {
            Err(Counter::PassBadChecksum)
        };
    }
    if len > MAX_VERIFIED {
        return Err(Counter::PassLargeQuery);
    }
    let buf = maps::frame_buf()?;
    let padded = (len + 3) & !3;
    // SAFETY: helpers copy within our per-CPU buffer (FRAME_BUF > MAX_VERIFIED + 3) and the
    // packet, with lengths bounded above.
    let sum = unsafe {
        if aya_ebpf::helpers::bpf_xdp_load_bytes(ctx.ctx, l3.l4_off as u32, buf.cast(), len as u32)
            != 0
        {
            return Err(Counter::PassMalformed);
        }
        // bpf_csum_diff takes whole 32-bit words: zero the (up to 3) pad bytes after the
        // datagram. len <= 512 and the buffer holds 600, so all three writes are in bounds.
        let pad = buf.add(len & 0x3ff);
        *pad = 0;
        *pad.add(1) = 0;
        *pad.add(2) = 0;
        let s = aya_ebpf::helpers::bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            buf.cast(),
            padded as u32,
            0,
        );
        if s < 0 {
            return Err(Counter::PassMalformed);
        }
        s as u64
    };
    // The helper sums words as loaded on this little-endian CPU: byte-swap to network order.
    let sum = csum::fold(sum).swap_bytes() as u64 + ip::pseudo_sum(address_sum, len);
    if csum::fold(sum) != 0xffff {
        return Err(Counter::PassBadChecksum);
    }
    Ok(())
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, l3: &L3) -> Result<Udp, Counter> {
    let h = Header::at(ctx, l3.l4_off)?;
    if h.dport != DNS_PORT {
        return Err(Counter::PassNotDns);
    }
    if is_impossible_source_port(h.sport) {
        return Err(Counter::DropBadSourcePort);
    }
    // The UDP length must agree with the IP header (else the kernel drops it); a payload shorter
    // than a DNS header is junk.
    if h.len != l3.l4_len || h.len < UDP_HLEN {
        return Err(Counter::PassMalformed);
    }
    if h.len < UDP_HLEN + MIN_DNS {
        return Err(Counter::DropMalformed);
    }
    Ok(h.datagram())
}

/// The UDP header at `off` of a datagram [`parse`] accepted (the cache program's, from where
/// the main program found it), read again as it stands.
#[inline(always)]
pub fn header_at(ctx: &XdpContext, off: usize) -> Result<Udp, Counter> {
    let h = Header::at(ctx, off)?;
    if h.len < UDP_HLEN + MIN_DNS {
        return Err(Counter::PassMalformed);
    }
    Ok(h.datagram())
}

/// A UDP header's fields as received, and where it is.
struct Header {
    off: usize,
    sport: u16,
    dport: u16,
    len: usize,
    csum: u16,
}

impl Header {
    /// The 8-byte header at packet offset `off` (one bound, then plain loads).
    #[inline(always)]
    fn at(ctx: &XdpContext, off: usize) -> Result<Header, Counter> {
        let p = ptr_at(ctx, off, UDP_HLEN, Counter::PassMalformed)?;
        // SAFETY: the 8-byte header checked above; big-endian fields, unaligned.
        let be16 = |o: usize| u16::from_be(unsafe { (p.add(o) as *const u16).read_unaligned() });
        Ok(Header {
            off,
            sport: be16(0),
            dport: be16(2),
            len: be16(4) as usize,
            csum: be16(6),
        })
    }

    /// The datagram it heads (its length checked by the caller: at least a DNS header's).
    #[inline(always)]
    fn datagram(&self) -> Udp {
        Udp {
            payload_off: self.off + UDP_HLEN,
            payload_len: self.len - UDP_HLEN,
            sport: self.sport,
            csum: self.csum,
        }
    }
}

/// Swap ports, set the length and the checksum (RFC 768; mandatory on IPv6, RFC 8200 §8.1).
/// `sum` is the pseudo-header plus payload sum; the UDP header's own words are added here.
#[inline(always)]
pub fn reply(ctx: &XdpContext, l3: &L3, udp: &Udp, len: usize, sum: u64) -> Result<(), Counter> {
    let p = ptr_at(ctx, l3.l4_off, UDP_HLEN, Counter::PassRewriteFailed)?;
    let mut c = csum::finish(sum + udp.sport as u64 + DNS_PORT as u64 + len as u64);
    // A computed zero is sent as all ones; zero means "no checksum" (RFC 768).
    if c == 0 {
        c = 0xffff;
    }
    // The whole header in one store: ports swapped, length, checksum (big-endian fields).
    let header = (DNS_PORT as u64) << 48 | (udp.sport as u64) << 32 | (len as u64) << 16 | c as u64;
    // SAFETY: eight bytes checked by ptr_at; an unaligned store.
    unsafe { (p as *mut u64).write_unaligned(header.to_be()) };
    Ok(())
}
