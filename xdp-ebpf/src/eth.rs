//! Ethernet: find the network header (one optional 802.1Q/802.1ad tag) and swap MACs for the reply.
use aya_ebpf::programs::XdpContext;
use rampart_common::Counter;

use crate::packet::{be16_at, ptr_at};

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// Offset of the network header and its ethertype.
pub struct L2 {
    pub l3_off: usize,
    pub proto: u16,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Result<L2, Counter> {
    let proto = be16_at(ctx, 12, Counter::PassNotDns)?;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        // The tag's inner ethertype follows the 2-byte TCI.
        let inner = be16_at(ctx, 16, Counter::PassNotDns)?;
        return Ok(L2 {
            l3_off: ETH_HLEN + 4,
            proto: inner,
        });
    }
    Ok(L2 {
        l3_off: ETH_HLEN,
        proto,
    })
}

#[inline(always)]
pub fn swap_macs(ctx: &XdpContext) -> Result<(), Counter> {
    let p = ptr_at(ctx, 0, 12, Counter::PassRewriteFailed)?;
    // SAFETY: 12 bytes checked above.
    unsafe {
        let mut dst = [0u8; 6];
        core::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), 6);
        core::ptr::copy_nonoverlapping(p.add(6), p, 6);
        core::ptr::copy_nonoverlapping(dst.as_ptr(), p.add(6), 6);
    }
    Ok(())
}
