//! IPv4 and IPv6: accept plain UDP datagrams addressed to us, and turn the header around.
use aya_ebpf::programs::XdpContext;
use rampart_common::Counter;

use crate::{
    csum,
    eth::{ETH_P_IP, ETH_P_IPV6, L2},
    packet::{ptr_at, put_be16, u8_at},
};

const IPPROTO_UDP: u8 = 17;
pub const IPV4_HLEN: usize = 20;
pub const IPV6_HLEN: usize = 40;
/// TTL / hop limit of our answers, as a host's stack would set it.
const REPLY_TTL: u8 = 64;

/// The network header we parsed: where the transport header starts and how long it claims to be.
pub struct L3 {
    pub off: usize,
    pub v6: bool,
    pub l4_off: usize,
    /// Transport length from the IP header (IPv4 total length minus header, IPv6 payload length).
    pub l4_len: usize,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, l2: &L2) -> Result<L3, Counter> {
    let off = l2.l3_off;
    match l2.proto {
        ETH_P_IP => {
            let vihl = u8_at(ctx, off, Counter::PassNotDns)?;
            // Options would shift everything and are never needed by a DNS query.
            if vihl != 0x45 {
                return Err(Counter::PassIpUnusual);
            }
            // One bound for the whole header, then plain loads.
            let h = ptr_at(ctx, off, IPV4_HLEN, Counter::PassMalformed)?;
            // SAFETY: 20 bytes checked above; big-endian fields, unaligned.
            let be16 =
                |o: usize| u16::from_be(unsafe { (h.add(o) as *const u16).read_unaligned() });
            // A corrupted header is the kernel's to drop, never ours to answer.
            // SAFETY: 20 bytes checked above.
            if csum::fold(unsafe { sum_words(h, IPV4_HLEN) }) != 0xffff {
                return Err(Counter::PassMalformed);
            }
            // SAFETY: as above.
            if unsafe { *h.add(9) } != IPPROTO_UDP {
                return Err(Counter::PassNotDns);
            }
            // Fragments (MF set or nonzero offset): let the kernel reassemble.
            if be16(6) & 0x3fff != 0 {
                return Err(Counter::PassIpUnusual);
            }
            let total = be16(2) as usize;
            if total < IPV4_HLEN || off + total > ctx.data_end() - ctx.data() {
                return Err(Counter::PassMalformed);
            }
            Ok(L3 {
                off,
                v6: false,
                l4_off: off + IPV4_HLEN,
                l4_len: total - IPV4_HLEN,
            })
        }
        ETH_P_IPV6 => {
            let h = ptr_at(ctx, off, IPV6_HLEN, Counter::PassNotDns)?;
            // SAFETY: the 40-byte header checked above.
            let (version, next, plen) = unsafe {
                (
                    *h >> 4,
                    *h.add(6),
                    u16::from_be((h.add(4) as *const u16).read_unaligned()) as usize,
                )
            };
            if version != 6 {
                return Err(Counter::PassMalformed);
            }
            match next {
                IPPROTO_UDP => {}
                // Extension headers (hop-by-hop, routing, fragment, ESP, AH, destination
                // options, mobility, HIP, shim6) go to the kernel.
                0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => return Err(Counter::PassIpUnusual),
                _ => return Err(Counter::PassNotDns),
            }
            if off + IPV6_HLEN + plen > ctx.data_end() - ctx.data() {
                return Err(Counter::PassMalformed);
            }
            Ok(L3 {
                off,
                v6: true,
                l4_off: off + IPV6_HLEN,
                l4_len: plen,
            })
        }
        _ => Err(Counter::PassNotDns),
    }
}

/// Sum of the source and destination addresses: the address part of the UDP pseudo-header
/// (RFC 768, RFC 8200 §8.1). Swapping them for the reply leaves it unchanged, so the query's
/// checksum check and the answer's checksum share it.
#[inline(always)]
pub fn address_sum(ctx: &XdpContext, l3: &L3) -> Result<u64, Counter> {
    if l3.v6 {
        let p = ptr_at(ctx, l3.off, IPV6_HLEN, Counter::PassMalformed)?;
        // SAFETY: the 40-byte header was bound-checked above.
        Ok(unsafe { sum_words(p.add(8), 32) })
    } else {
        let p = ptr_at(ctx, l3.off, IPV4_HLEN, Counter::PassMalformed)?;
        // SAFETY: the 20-byte header was bound-checked above.
        Ok(unsafe { sum_words(p.add(12), 8) })
    }
}

/// The query's source address as IPv6 words in network byte order, IPv4 mapped to
/// ::ffff:a.b.c.d (RFC 4291 §2.5.5.2): one key shape for rate limits and the whitelist.
#[inline(always)]
pub fn source(ctx: &XdpContext, l3: &L3) -> Result<[u32; 4], Counter> {
    if l3.v6 {
        let p = ptr_at(ctx, l3.off + 8, 16, Counter::PassMalformed)? as *const u32;
        // SAFETY: 16 bytes checked above; packet data has no alignment guarantee.
        Ok(unsafe {
            [
                p.read_unaligned(),
                p.add(1).read_unaligned(),
                p.add(2).read_unaligned(),
                p.add(3).read_unaligned(),
            ]
        })
    } else {
        let p = ptr_at(ctx, l3.off + 12, 4, Counter::PassMalformed)? as *const u32;
        // SAFETY: 4 bytes checked above.
        Ok([0, 0, 0xffffu32.to_be(), unsafe { p.read_unaligned() }])
    }
}

/// The whole pseudo-header sum for a datagram of `l4_len` bytes, from [`address_sum`].
#[inline(always)]
pub fn pseudo_sum(address_sum: u64, l4_len: usize) -> u64 {
    address_sum + IPPROTO_UDP as u64 + l4_len as u64
}

/// Swap addresses, set lengths and TTL, fix the IPv4 header checksum.
#[inline(always)]
pub fn reply(ctx: &XdpContext, l3: &L3, l4_len: usize) -> Result<(), Counter> {
    let off = l3.off;
    let err = Counter::PassRewriteFailed;
    if l3.v6 {
        let p = ptr_at(ctx, off, IPV6_HLEN, err)?;
        // SAFETY: the 40-byte header was bound-checked above.
        unsafe {
            swap16(p.add(8), p.add(24));
            *p.add(7) = REPLY_TTL;
        }
        put_be16(ctx, off + 4, l4_len as u16)?;
    } else {
        let p = ptr_at(ctx, off, IPV4_HLEN, err)?;
        // SAFETY: the 20-byte header was bound-checked above; big-endian fields, unaligned.
        unsafe {
            let be16 = |o: usize| u16::from_be((p.add(o) as *const u16).read_unaligned());
            let put16 = |o: usize, v: u16| (p.add(o) as *mut u16).write_unaligned(v.to_be());
            let (length, ttl_proto, check) = (be16(2), be16(8), be16(10));
            let src = (p.add(12) as *const u32).read_unaligned();
            let dst = (p.add(16) as *const u32).read_unaligned();
            (p.add(12) as *mut u32).write_unaligned(dst);
            (p.add(16) as *mut u32).write_unaligned(src);
            let new_length = (IPV4_HLEN + l4_len) as u16;
            let new_ttl_proto = (REPLY_TTL as u16) << 8 | (ttl_proto & 0xff);
            put16(2, new_length);
            put16(8, new_ttl_proto);
            // Only the length and TTL change (swapped addresses sum the same): RFC 1624's
            // incremental update of the checksum parse verified, not a sum of the header.
            let sum = (!check) as u64
                + (!length) as u64
                + new_length as u64
                + (!ttl_proto) as u64
                + new_ttl_proto as u64;
            put16(10, csum::finish(sum));
        }
    }
    Ok(())
}

/// Sum of `len` bytes (a multiple of 4) as big-endian 16-bit words, folded: summed as 32-bit
/// words as loaded (half the loads), then byte-swapped into network order (RFC 1071 §2B).
///
/// # Safety
/// `p..p+len` must be inside the packet.
#[inline(always)]
unsafe fn sum_words(p: *const u8, len: usize) -> u64 {
    let mut s: u64 = 0;
    let mut i = 0;
    while i < len {
        // SAFETY: caller guarantees the range.
        s += unsafe { (p.add(i) as *const u32).read_unaligned() } as u64;
        i += 4;
    }
    csum::fold(s).swap_bytes() as u64
}

/// Swap two 16-byte IPv6 addresses in place.
///
/// # Safety
/// Both ranges must be inside the packet and not overlap.
#[inline(always)]
unsafe fn swap16(a: *mut u8, b: *mut u8) {
    // SAFETY: caller guarantees both ranges.
    unsafe {
        let mut tmp = [0u8; 16];
        core::ptr::copy_nonoverlapping(a, tmp.as_mut_ptr(), 16);
        core::ptr::copy_nonoverlapping(b, a, 16);
        core::ptr::copy_nonoverlapping(tmp.as_ptr(), b, 16);
    }
}
