//! The fast path's health probe: a query frame as a client's stack would send it (Ethernet,
//! IPv4 or IPv6, UDP with a correct checksum), run through the loaded program on the live maps
//! with BPF_PROG_TEST_RUN, and whether that program is still the one attached to each NIC.
//!
//! A query sent from the node itself never crosses a NIC's XDP hook, so running the real
//! program on a real frame is the honest way to exercise it.

use std::net::IpAddr;

use anyhow::{Context, Result};
use aya::programs::{TestRun, TestRunOptions};

use super::FastPath;
use crate::netlink;

/// The program's verdicts (enum xdp_action).
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

const ETH_LEN: usize = 14;
const IPV4_LEN: usize = 20;
const IPV6_LEN: usize = 40;
const UDP_LEN: usize = 8;

/// Big-endian 16-bit words summed (RFC 1071), unfolded.
pub fn sum16(bytes: &[u8]) -> u64 {
    bytes
        .chunks(2)
        .map(|c| ((c[0] as u64) << 8) | c.get(1).copied().unwrap_or(0) as u64)
        .sum()
}

pub fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// `dns` from `client:sport` to `server:53`, framed with correct IPv4 and UDP checksums. Both
/// addresses must be of one family.
pub fn query_frame(client: IpAddr, server: IpAddr, sport: u16, dns: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    let udp_len = UDP_LEN + dns.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&sport.to_be_bytes());
    udp.extend_from_slice(&53u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(dns);
    let pseudo = match (client, server) {
        (IpAddr::V6(c), IpAddr::V6(s)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&c.octets());
            f.extend_from_slice(&s.octets());
            sum16(&f[22..54])
        }
        (c, s) => {
            let v4 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.octets(),
                IpAddr::V6(_) => [0; 4],
            };
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((IPV4_LEN + udp_len) as u16).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&v4(c));
            f.extend_from_slice(&v4(s));
            let c = !fold(sum16(&f[14..34]));
            f[24..26].copy_from_slice(&c.to_be_bytes());
            sum16(&f[26..34])
        }
    } + 17
        + udp_len as u64;
    let mut c = !fold(pseudo + sum16(&udp));
    if c == 0 {
        c = 0xffff;
    }
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&udp);
    f
}

/// The DNS message inside a reply frame the program built from a [`query_frame`] (no VLAN tag).
pub fn reply_payload(frame: &[u8]) -> Option<&[u8]> {
    let ip_len = match frame.get(12..14)? {
        [0x86, 0xdd] => IPV6_LEN,
        [0x08, 0x00] => IPV4_LEN,
        _ => return None,
    };
    frame.get(ETH_LEN + ip_len + UDP_LEN..)
}

impl FastPath {
    /// Runs the loaded program once on `frame`: its verdict and the frame as it left (the
    /// tests' way in; the health probe uses [`Self::test_run_probe`]).
    #[cfg(test)]
    pub fn test_run(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        self.run_once(&[], frame)
    }

    /// As [`Self::test_run`], with the health probe's metadata before the frame
    /// ([`rampart_common::PROBE_META`]), so the rate limits never stand in its way.
    pub fn test_run_probe(&self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        self.run_once(&rampart_common::PROBE_META.to_ne_bytes(), frame)
    }

    /// One BPF_PROG_TEST_RUN of `frame` with `meta` as its XDP metadata (none when empty).
    fn run_once(&self, meta: &[u8], frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let data = [meta, frame].concat();
        // struct xdp_md: data (= metadata length), data_end, data_meta, ingress_ifindex,
        // rx_queue_index, egress_ifindex.
        let ctx_in: Vec<u8> = [meta.len() as u32, data.len() as u32, 0, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        let mut ctx_out = vec![0u8; ctx_in.len()];
        let mut out = vec![0u8; 4096];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(&data);
        opts.data_out = Some(&mut out);
        if !meta.is_empty() {
            opts.ctx_in = Some(&ctx_in);
            opts.ctx_out = Some(&mut ctx_out);
        }
        let r = self.program().test_run(opts).context("BPF_PROG_TEST_RUN")?;
        // The output starts with the metadata; ctx_out's `data` says how long it is now.
        let meta_out = if meta.is_empty() {
            0
        } else {
            u32::from_ne_bytes(ctx_out[..4].try_into().expect("4 bytes")) as usize
        };
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out.split_off(meta_out.min(out.len()))))
    }

    /// The NICs this instance attached to whose XDP program is no longer ours (detached, or
    /// replaced by another program).
    pub fn detached_ifaces(&self) -> Result<Vec<String>> {
        let ours = self.program().info()?.id();
        let mut detached = Vec::new();
        for (iface, _) in &self.links {
            let attached = netlink::ifindex(iface)
                .and_then(netlink::xdp_prog_ids)
                .is_ok_and(|ids| ids.contains(&ours));
            if !attached {
                detached.push(iface.clone());
            }
        }
        for entry in &self.entries {
            if !entry.attached()? {
                detached.push(entry.iface().to_owned());
            }
        }
        Ok(detached)
    }
}
