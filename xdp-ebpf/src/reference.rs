//! The yardstick: the cheapest possible "DNS server" in XDP, as scripts/bench-reflector.c is on
//! the wire. It swaps a query's addresses and ports, sets QR and sends it back. The daemon
//! never loads it; the cost guard runs it beside the real program under BPF_PROG_TEST_RUN, so a
//! hit's cost is measured as a ratio to it in one run, whatever the machine's speed.
use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};

use crate::packet::ptr_at;
use rampart_common::Counter;

#[xdp]
pub fn rampart_reference(ctx: XdpContext) -> u32 {
    reflect(&ctx).unwrap_or(xdp_action::XDP_PASS)
}

#[inline(always)]
fn reflect(ctx: &XdpContext) -> Result<u32, Counter> {
    let e = Counter::PassNotDns;
    let eth = ptr_at(ctx, 0, 14, e)?;
    // SAFETY: every access below is inside a range ptr_at checked.
    unsafe {
        let proto = u16::from_be((eth.add(12) as *const u16).read_unaligned());
        let (l4, v6) = match proto {
            0x0800 => {
                let ip = ptr_at(ctx, 14, 20, e)?;
                if *ip != 0x45 || *ip.add(9) != 17 {
                    return Err(e);
                }
                (34, false)
            }
            0x86dd => {
                let ip = ptr_at(ctx, 14, 40, e)?;
                if *ip.add(6) != 17 {
                    return Err(e);
                }
                (54, true)
            }
            _ => return Err(e),
        };
        let udp = ptr_at(ctx, l4, 8 + 12, e)?;
        if u16::from_be((udp.add(2) as *const u16).read_unaligned()) != 53 {
            return Err(e);
        }
        // Swapping addresses and ports leaves the checksums as they are (the one's-complement
        // sum is commutative); only the flags word changes.
        let ip = eth.add(14);
        let (a, b, n) = if v6 { (8, 24, 16) } else { (12, 16, 4) };
        let mut i = 0;
        while i < n {
            let t = *ip.add(a + i);
            *ip.add(a + i) = *ip.add(b + i);
            *ip.add(b + i) = t;
            i += 1;
        }
        let udp = eth.add(l4);
        let mut i = 0;
        while i < 2 {
            let t = *udp.add(i);
            *udp.add(i) = *udp.add(2 + i);
            *udp.add(2 + i) = t;
            i += 1;
        }
        let flags = udp.add(10) as *mut u16;
        let old = u16::from_be(flags.read_unaligned());
        let new = (old | 0x8000) & 0xfff0;
        flags.write_unaligned(new.to_be());
        let check = udp.add(6) as *mut u16;
        let c = u16::from_be(check.read_unaligned());
        if c != 0 {
            // RFC 1624: HC' = ~(~HC + ~m + m').
            let mut sum = (!c) as u32 + (!old) as u32 + new as u32;
            sum = (sum & 0xffff) + (sum >> 16);
            sum = (sum & 0xffff) + (sum >> 16);
            check.write_unaligned((!(sum as u16)).to_be());
        }
        let mut i = 0;
        while i < 6 {
            let t = *eth.add(i);
            *eth.add(i) = *eth.add(6 + i);
            *eth.add(6 + i) = t;
            i += 1;
        }
    }
    Ok(xdp_action::XDP_TX)
}
