//! The per-zone outbound limit: resolutions sent towards one zone at most `zone_rate` per
//! second, so a random-subdomain flood can't turn the node into an attacker of that zone's
//! servers (as Unbound's `ratelimit`).
//!
//! hickory's recursor hides its delegations, so the zone a name falls in is the closest
//! enclosing apex the node has seen in an answer: the owner of the SOA of a negative answer, the
//! signer of an RRSIG. Until one is known, a name counts against its parent (every
//! `<random>.victim.example` against `victim.example`); the first NXDOMAIN names the apex.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

use hickory_proto::rr::{RData, Record, RecordType};
use lru::LruCache;

use super::cache::Resolved;
use crate::gcra::{Rate, Table};
use crate::zone::{NameKey, parent_wire, suffixes};

/// Apexes remembered, and buckets kept (least recently seen apex forgotten first).
const APEXES: usize = 16_384;

/// A zone's key: its apex in wire form, lowercase.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ZoneCut(Box<[u8]>);

/// Admits resolutions per zone cut.
pub struct Outbound {
    rate: Option<Rate>,
    epoch: Instant,
    state: Mutex<State>,
}

struct State {
    apexes: LruCache<ZoneCut, ()>,
    buckets: Table<ZoneCut>,
}

impl Outbound {
    /// `per_second` 0: no limit.
    pub fn new(per_second: u32) -> Outbound {
        Outbound {
            rate: Rate::new(per_second, per_second),
            epoch: Instant::now(),
            state: Mutex::new(State {
                apexes: LruCache::new(NonZeroUsize::new(APEXES).expect("literal")),
                buckets: Table::new(APEXES),
            }),
        }
    }

    /// Whether a resolution of `qname` may go upstream now (and if so, counted).
    pub fn admit(&self, qname: &NameKey) -> bool {
        let Some(rate) = self.rate else {
            return true;
        };
        let now = self.epoch.elapsed();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let cut = state.cut_of(qname.as_wire());
        state.buckets.admit(cut, now, rate).is_none()
    }

    /// Notes the zone apexes a result shows.
    pub fn learn(&self, resolved: &Resolved) {
        if self.rate.is_none() {
            return;
        }
        let apexes: Vec<ZoneCut> = resolved
            .answer
            .iter()
            .chain(&resolved.authority)
            .filter_map(apex_shown)
            .collect();
        if apexes.is_empty() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for apex in apexes {
            state.apexes.put(apex, ());
        }
    }
}

impl State {
    /// The closest known apex at or above `wire`, else its parent (the root for a TLD).
    fn cut_of(&mut self, wire: &[u8]) -> ZoneCut {
        let apexes = &mut self.apexes;
        let known = suffixes(wire).find(|s| apexes.get(&ZoneCut((*s).into())).is_some());
        ZoneCut(known.or_else(|| parent_wire(wire)).unwrap_or(wire).into())
    }
}

/// The apex a record proves: a SOA's owner, an RRSIG's signer.
fn apex_shown(record: &Record) -> Option<ZoneCut> {
    let name = match (record.record_type(), record.data()) {
        (RecordType::SOA, _) => record.name().clone(),
        (_, RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(sig))) => {
            sig.signer_name().clone()
        }
        _ => return None,
    };
    Some(ZoneCut(NameKey::from_name(&name).as_wire().into()))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::{Name, rdata::SOA};

    use super::*;
    use crate::resolver::Security;

    fn key(text: &str) -> NameKey {
        NameKey::parse(text).unwrap()
    }

    fn nxdomain(apex: &str) -> Resolved {
        let soa = SOA::new(
            Name::from_str("ns.x.").unwrap(),
            Name::from_str("h.x.").unwrap(),
            1,
            2,
            3,
            4,
            5,
        );
        Resolved {
            rcode: ResponseCode::NXDomain,
            answer: Vec::new(),
            authority: vec![Record::from_rdata(
                Name::from_str(apex).unwrap(),
                5,
                RData::SOA(soa),
            )],
            security: Security::Insecure,
        }
    }

    /// A flood of random names under one zone shares one bucket once an answer named the apex;
    /// other zones keep their own; 0 turns the limit off.
    #[test]
    fn random_names_share_their_zone_bucket() {
        let out = Outbound::new(10);
        let admitted = |prefix: &str, zone: &str| {
            (0..100)
                .filter(|i| out.admit(&key(&format!("{prefix}{i}.{zone}"))))
                .count()
        };
        // Before any answer: the parent, which is the zone for one-label randoms.
        assert_eq!(admitted("r", "victim.example."), 10);
        // Deeper randoms have other parents, until the apex is learned.
        assert_eq!(admitted("a.r", "deep.example."), 100);
        out.learn(&nxdomain("deep.example."));
        assert_eq!(
            admitted("b.r", "deep.example."),
            10,
            "one bucket once the apex is known"
        );
        assert_eq!(
            admitted("www", "other.example."),
            10,
            "other zones unaffected"
        );
        let off = Outbound::new(0);
        assert!((0..1000).all(|i| off.admit(&key(&format!("{i}.victim.example.")))));
    }
}
