//! Which node answered (RFC 4786 §5.1): the NSID option (RFC 5001) and CHAOS TXT `id.server.` /
//! `hostname.bind.`, both carrying the node's configured identity.
//!
//! Like NSD and Knot: CHAOS TXT for `id.server.` or `hostname.bind.` is answered with one TXT
//! record (class CH, TTL 0, AA set); every other CHAOS question, `version.server.` and
//! `version.bind.` included, is REFUSED, so the software version is never disclosed. NSID is sent
//! only when the query's OPT asks for it. Without an identity both are off (REFUSED, no NSID).

use std::borrow::Cow;

use anyhow::{Result, bail};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, RecordType};

use crate::answer::{Answer, Rr};
use crate::wire::Query;

/// CLASS CH (RFC 1035 §3.2.4).
pub const CLASS_CH: u16 = 3;

/// The node's identity as sent on the wire; empty means none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity(String);

impl Identity {
    /// One TXT character-string holds it, so at most 255 bytes.
    pub fn new(name: &str) -> Result<Identity> {
        if name.len() > 255 {
            bail!("identity {name:?} is longer than 255 bytes");
        }
        Ok(Identity(name.to_owned()))
    }

    /// The bytes for the NSID option, if the node has an identity.
    pub fn nsid(&self) -> Option<&[u8]> {
        (!self.0.is_empty()).then_some(self.0.as_bytes())
    }

    /// The answer to a CHAOS-class question.
    pub fn chaos_answer(&self, query: &Query) -> Answer<'_> {
        let name = query.qname_key.to_string().to_ascii_lowercase();
        let asks_identity = matches!(name.as_str(), "id.server." | "hostname.bind.");
        if !asks_identity || self.0.is_empty() || query.qtype != RecordType::TXT {
            return Answer::error(ResponseCode::Refused);
        }
        Answer {
            class: CLASS_CH,
            answer: vec![Rr {
                owner: Cow::Owned(query.qname_key.to_name()),
                ttl: 0,
                rdata: Cow::Owned(RData::TXT(TXT::new(vec![self.0.clone()]))),
            }],
            ..Answer::hit()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::respond::respond_as;
    use crate::wire::Transport;
    use crate::wire::testutil::{query_packet, query_packet_class};
    use crate::zone::Catalog;

    fn sample() -> Catalog {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        Catalog::load(&[], Some(&dir)).unwrap()
    }

    /// A query whose OPT carries an empty NSID option.
    fn with_nsid(mut q: Vec<u8>) -> Vec<u8> {
        let n = q.len();
        q[n - 2..].copy_from_slice(&4u16.to_be_bytes());
        q.extend_from_slice(&[0, 3, 0, 0]);
        q
    }

    /// The OPT's RDATA (our OPT is always the last record).
    fn opt_rdata(r: &[u8], expect_len: usize) -> &[u8] {
        &r[r.len() - expect_len..]
    }

    #[test]
    fn nsid_only_when_asked_and_configured() {
        let cat = sample();
        let id = Identity::new("node1").unwrap();
        let plain = query_packet(1, 0, "www.example.com", 1, Some((1232, false, 0)));
        let asked = with_nsid(plain.clone());
        let r = respond_as(&cat, &id, &asked, Transport::Udp).unwrap();
        assert_eq!(opt_rdata(&r, 11), b"\x00\x09\x00\x03\x00\x05node1");
        // The rest is the ordinary answer: same bytes up to the OPT's RDLENGTH.
        let ordinary = respond_as(&cat, &id, &plain, Transport::Udp).unwrap();
        assert_eq!(&r[..ordinary.len() - 2], &ordinary[..ordinary.len() - 2]);
        assert_eq!(
            &ordinary[ordinary.len() - 2..],
            [0, 0],
            "no NSID unless asked"
        );
        // No identity: the request is ignored (RFC 5001 §2.3).
        let anon = respond_as(&cat, &Identity::default(), &asked, Transport::Udp).unwrap();
        assert_eq!(anon, ordinary);
        // Also on errors (REFUSED for a zone we don't serve).
        let other = with_nsid(query_packet(
            2,
            0,
            "example.invalid",
            1,
            Some((1232, false, 0)),
        ));
        let r = respond_as(&cat, &id, &other, Transport::Tcp).unwrap();
        assert_eq!(r[3] & 0xf, 5);
        assert!(r.windows(9).any(|w| w == b"\x00\x03\x00\x05node1"));
    }

    #[test]
    fn chaos_identity_names() {
        let cat = sample();
        let id = Identity::new("node1").unwrap();
        for name in ["id.server", "HOSTNAME.bind.", "Id.Server."] {
            let q = query_packet_class(7, 0, name, 16, CLASS_CH, None);
            let r = respond_as(&cat, &id, &q, Transport::Udp).unwrap();
            assert_eq!(&r[2..4], [0x84, 0x00], "{name}: QR AA NOERROR");
            assert_eq!(&r[6..8], [0, 1], "one answer");
            let qlen = q.len() - 12;
            assert_eq!(&r[12..12 + qlen], &q[12..], "question echoed");
            // C00C, TXT, CH, TTL 0, RDLENGTH 6, "node1".
            assert_eq!(
                &r[12 + qlen..],
                b"\xc0\x0c\x00\x10\x00\x03\x00\x00\x00\x00\x00\x06\x05node1"
            );
        }
        let refused = |name: &str, qtype: u16, id: &Identity| {
            let q = query_packet_class(8, 0, name, qtype, CLASS_CH, None);
            respond_as(&cat, id, &q, Transport::Udp).unwrap()[3] & 0xf
        };
        assert_eq!(refused("version.bind", 16, &id), 5);
        assert_eq!(refused("version.server", 16, &id), 5);
        assert_eq!(refused("id.server", 1, &id), 5, "TXT only");
        assert_eq!(
            refused("id.server", 16, &Identity::default()),
            5,
            "no identity"
        );
        assert!(Identity::new(&"x".repeat(256)).is_err());
    }
}
