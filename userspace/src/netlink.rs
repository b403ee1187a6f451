//! Just enough rtnetlink for the node: XDP attachment of a link, link up, addresses on a link.
//!
//! One request per NETLINK_ROUTE socket, answered by an ACK (or the object asked for): no
//! dumps, no multicast groups, so a few dozen lines instead of an async netlink stack.

use std::io;
use std::net::IpAddr;

use ipnet::IpNet;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
/// The program id attributes: the single one, then per mode (driver, generic, offload).
const IFLA_XDP_PROG_IDS: [u16; 4] = [4, 5, 6, 7];
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;

/// Appends one attribute, padded to 4 bytes.
fn nla(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// The attributes in `buf` as (type, payload).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_ne_bytes(buf.get(..2)?.try_into().ok()?));
        let ty = u16::from_ne_bytes(buf.get(2..4)?.try_into().ok()?);
        let payload = buf.get(4..len)?;
        buf = buf.get(len.next_multiple_of(4)..).unwrap_or(&[]);
        Some((ty & NLA_TYPE_MASK, payload))
    })
}

/// struct ifinfomsg: family, pad, type, index, flags, change.
fn ifinfomsg(ifindex: u32, flags: u32, change: u32) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0, 0, 0];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&change.to_ne_bytes());
    body
}

/// Sends one request and returns the reply's payload (after the netlink header). An ACK's
/// payload is the error number and the request; a non-zero one becomes the error.
fn request(msg_type: u16, flags: i32, body: &[u8]) -> io::Result<Vec<u8>> {
    let mut msg = Vec::with_capacity(NLMSG_HDR + body.len());
    msg.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&msg_type.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | flags) as u16).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    // SAFETY: plain socket syscalls on buffers we own; the fd is closed on every path.
    unsafe {
        let sock = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        );
        if sock < 0 {
            return Err(io::Error::last_os_error());
        }
        let res = (|| {
            if libc::send(sock, msg.as_ptr().cast(), msg.len(), 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut reply = vec![0u8; 16384];
            let n = libc::recv(sock, reply.as_mut_ptr().cast(), reply.len(), 0);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n < NLMSG_HDR + 4 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "short reply"));
            }
            reply.truncate(n);
            let kind = u16::from_ne_bytes([reply[4], reply[5]]);
            if kind == NLMSG_ERROR {
                // A negated errno right after the header; 0 is the ACK.
                let err = i32::from_ne_bytes(reply[16..20].try_into().expect("4 bytes"));
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(-err));
                }
            }
            let len = (u32::from_ne_bytes(reply[..4].try_into().expect("4 bytes")) as usize).min(n);
            Ok(reply[NLMSG_HDR..len].to_vec())
        })();
        libc::close(sock);
        res
    }
}

/// Attaches (`fd` ≥ 0) or removes (`fd` = -1) an XDP program through RTM_SETLINK, for programs
/// attached without a bpf_link.
pub fn set_xdp_fd(ifindex: u32, fd: i32, flags: u32) -> io::Result<()> {
    let mut xdp = Vec::new();
    nla(&mut xdp, IFLA_XDP_FD, &fd.to_ne_bytes());
    nla(&mut xdp, IFLA_XDP_FLAGS, &flags.to_ne_bytes());
    let mut body = ifinfomsg(ifindex, 0, 0);
    nla(&mut body, IFLA_XDP | NLA_F_NESTED, &xdp);
    request(libc::RTM_SETLINK, libc::NLM_F_ACK, &body).map(drop)
}

/// The ids of the XDP programs attached to the link (in any mode); empty if none.
pub fn xdp_prog_ids(ifindex: u32) -> io::Result<Vec<u32>> {
    let reply = request(libc::RTM_GETLINK, 0, &ifinfomsg(ifindex, 0, 0))?;
    let mut ids = Vec::new();
    // The reply is an ifinfomsg (16 bytes) and the link's attributes.
    for (ty, payload) in attrs(reply.get(16..).unwrap_or(&[])) {
        if ty != IFLA_XDP {
            continue;
        }
        for (ty, v) in attrs(payload) {
            if IFLA_XDP_PROG_IDS.contains(&ty) && v.len() == 4 {
                let id = u32::from_ne_bytes(v.try_into().expect("4 bytes"));
                if id != 0 && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    Ok(ids)
}

/// Turns off IPv6 link-local address generation on the link (IN6_ADDR_GEN_MODE_NONE), for
/// devices that should carry only the addresses we put on them.
pub fn disable_ipv6_link_local(ifindex: u32) -> io::Result<()> {
    const IFLA_AF_SPEC: u16 = 26;
    const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
    const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
    let mut inet6 = Vec::new();
    nla(
        &mut inet6,
        IFLA_INET6_ADDR_GEN_MODE,
        &[IN6_ADDR_GEN_MODE_NONE],
    );
    let mut spec = Vec::new();
    nla(&mut spec, libc::AF_INET6 as u16 | NLA_F_NESTED, &inet6);
    let mut body = ifinfomsg(ifindex, 0, 0);
    nla(&mut body, IFLA_AF_SPEC | NLA_F_NESTED, &spec);
    request(libc::RTM_SETLINK, libc::NLM_F_ACK, &body).map(drop)
}

/// Sets the link administratively up.
pub fn set_link_up(ifindex: u32) -> io::Result<()> {
    let up = libc::IFF_UP as u32;
    request(
        libc::RTM_NEWLINK,
        libc::NLM_F_ACK,
        &ifinfomsg(ifindex, up, up),
    )
    .map(drop)
}

/// Adds `net` as an address of the link (replacing an identical one), or deletes it (absent is
/// fine). IPv6 addresses skip duplicate address detection: an anycast address is meant to be on
/// many nodes, and DAD would hold it "tentative" for a second.
pub fn set_address(ifindex: u32, net: IpNet, present: bool) -> io::Result<()> {
    let (family, octets): (u8, Vec<u8>) = match net.addr() {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    let ifa_flags = if net.addr().is_ipv6() { IFA_F_NODAD } else { 0 };
    // struct ifaddrmsg: family, prefixlen, flags, scope (universe), index.
    let mut body = vec![family, net.prefix_len(), ifa_flags as u8, 0];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    nla(&mut body, IFA_LOCAL, &octets);
    nla(&mut body, IFA_ADDRESS, &octets);
    nla(&mut body, IFA_FLAGS, &ifa_flags.to_ne_bytes());
    let result = if present {
        request(
            libc::RTM_NEWADDR,
            libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE,
            &body,
        )
    } else {
        request(libc::RTM_DELADDR, libc::NLM_F_ACK, &body)
    };
    match result {
        Err(e) if !present && e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
        other => other.map(drop),
    }
}

/// The interface's index, or an error naming it.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let cname = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: valid C string.
    match unsafe { libc::if_nametoindex(cname.as_ptr()) } {
        0 => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no such interface: {name}"),
        )),
        i => Ok(i),
    }
}
