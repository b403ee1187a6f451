//! NOTIFY (RFC 1996) from a primary: accepted from the zone's primaries only, TSIG-checked when
//! the zone has a key, answered, and turned into a refresh.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use domain::base::iana::{Opcode, Rcode, TsigRcode};
use domain::base::{Message, MessageBuilder, Name, ToName};
use domain::tsig::ServerTransaction;
use tracing::{info, warn};

use super::zone::SecondaryZone;

/// The response to a NOTIFY (`None`: not a parsable NOTIFY, dropped).
pub fn handle(zones: &[Arc<SecondaryZone>], peer: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut msg = Message::from_octets(packet.to_vec()).ok()?;
    if msg.header().opcode() != Opcode::NOTIFY || msg.header().qr() {
        return None;
    }
    let qname: Name<Bytes> = msg.sole_question().ok()?.qname().to_name();
    let error = |msg: &Message<Vec<u8>>, rcode| {
        let mut b = MessageBuilder::new_vec().start_answer(msg, rcode).ok()?;
        b.header_mut().set_aa(false);
        Some(b.finish())
    };
    let Some(zone) = zones.iter().find(|z| z.origin_name().name_eq(&qname)) else {
        warn!(%peer, zone = %qname, "NOTIFY for a zone we are not secondary for: NOTAUTH");
        return error(&msg, Rcode::NOTAUTH);
    };
    if !zone.is_primary(peer.ip()) {
        warn!(%peer, zone = %qname, "NOTIFY from an address that is not a primary: REFUSED");
        zone.note_notify(false);
        return error(&msg, Rcode::REFUSED);
    }
    let signer = match zone.key() {
        None => None,
        Some(key) => {
            match ServerTransaction::request(&key, &mut msg, domain::rdata::tsig::Time48::now()) {
                Ok(Some(t)) => Some(t),
                Ok(None) => {
                    warn!(%peer, zone = %qname, "unsigned NOTIFY for a zone with a key: REFUSED");
                    zone.note_notify(false);
                    return error(&msg, Rcode::REFUSED);
                }
                Err(e) => {
                    warn!(%peer, zone = %qname, error = %e.error(), "NOTIFY with a bad TSIG: refused");
                    zone.note_notify(false);
                    let mac_mismatch = e.error() == TsigRcode::FORMERR;
                    let mut response = e
                        .build_message(&msg, MessageBuilder::new_vec())
                        .ok()?
                        .finish();
                    // domain 0.12 reports a MAC that doesn't verify as TSIG error FORMERR in a
                    // NOTAUTH answer; RFC 8945 §5.2.2 says BADSIG. Its unsigned error TSIG ends
                    // with the error field and an empty other-data length: set the field there.
                    let len = response.len();
                    if mac_mismatch && len >= 16 && response[3] & 0x0f == 9 {
                        response[len - 4..len - 2]
                            .copy_from_slice(&TsigRcode::BADSIG.to_int().to_be_bytes());
                    }
                    return Some(response);
                }
            }
        }
    };
    info!(%peer, zone = %qname, "NOTIFY: refreshing");
    zone.note_notify(true);
    zone.refresh();
    let mut answer = MessageBuilder::new_vec()
        .start_answer(&msg, Rcode::NOERROR)
        .ok()?;
    answer.header_mut().set_aa(true);
    let mut additional = answer.additional();
    if let Some(t) = signer {
        t.answer(&mut additional, domain::rdata::tsig::Time48::now())
            .ok()?;
    }
    Some(additional.finish())
}
