//! Who may use the resolver: client prefixes allowed recursion (everyone else gets REFUSED).

use std::net::IpAddr;

use ipnet::IpNet;

/// The allowed client prefixes.
#[derive(Clone, Debug)]
pub struct Acl(Vec<IpNet>);

impl Acl {
    pub fn new(prefixes: &[IpNet]) -> Acl {
        Acl(prefixes.to_vec())
    }

    /// Whether `peer` is in an allowed prefix (an IPv4-mapped IPv6 address as its IPv4 one).
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|net| net.contains(&peer))
    }
}
