//! The answers of a zone's plain names rendered once per shape, not once per name.
//!
//! A plain name: no CNAME, cut or DNAME, not the apex, not on the way to the SOA's MNAME or
//! RNAME, in no expired zone, in a catalog with no signed zone (DO answers and NSEC records
//! depend on the name there). There:
//! - every type the name lacks gets NODATA: the zone's SOA in authority, nothing else. Its bytes
//!   after the question depend on the name only through compression pointers into the
//!   question: the SOA's owner (the apex) and the parts of MNAME and RNAME at or above the apex
//!   are suffixes of the query name at offsets its length fixes; its labels below the apex
//!   match nothing in the SOA (names on the way to MNAME or RNAME, `soa_name_chain`, are
//!   rendered as before). So one name's entries are every other name's of that length.
//! - A or AAAA, one address: one record whose owner is a pointer to the question (whatever the
//!   zone's spelling: the compressor matches names without case), then the OPT. One name's entries of that type and length are every other
//!   name's but for the TTL and the address, written in at the places the first rendering was
//!   checked to hold them.
//!
//! Whatever the first rendering of a shape is not (checked, never assumed), every name of the
//! shape is rendered as before. The qname length is in every shape: whether a variant fits its
//! size limit, and so whether it is a marker or derived, depends on it.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::{CompiledAnswer, response_class};
use crate::wire::FLAG_AA;
use crate::zone::{Catalog, NameKey, Node, Rrset, Zone};
use rampart_common::OPT_LEN;

/// A shape's entries as the first name of the shape had them, or `None` when they were not
/// what the shape promises (then every name of the shape renders its own).
type Memo = OnceLock<Option<Vec<CompiledAnswer>>>;

/// The plain names' shapes of one zone's compile, shared by its workers.
pub(super) struct PlainMemo<'z> {
    zone: &'z Zone,
    apex: &'z [u8],
    /// Names whose suffixes below the apex the SOA's MNAME or RNAME share.
    soa_chain: BTreeSet<NameKey>,
    /// No memo at all: a signed catalog (DO answers and NSEC records depend on the name).
    off: bool,
    /// The shared NODATA entries by query-name length.
    nodata: Vec<Memo>,
    /// A and AAAA entries of one address by query-name length.
    a: Vec<Memo>,
    aaaa: Vec<Memo>,
}

impl<'z> PlainMemo<'z> {
    pub(super) fn new(zone: &'z Zone, signed: bool, soa_chain: BTreeSet<NameKey>) -> Self {
        PlainMemo {
            zone,
            apex: zone.origin_key().as_wire(),
            soa_chain,
            off: signed,
            nodata: (0..=255).map(|_| OnceLock::new()).collect(),
            a: (0..=255).map(|_| OnceLock::new()).collect(),
            aaaa: (0..=255).map(|_| OnceLock::new()).collect(),
        }
    }

    /// `key`'s shared entries: the memo's for its length when it is a plain name, else (or when
    /// the length's first name was not plain NODATA) what `render` pushes.
    pub(super) fn shared_entries(
        &self,
        catalog: &Catalog,
        key: &NameKey,
        name: &Arc<[u8]>,
        node: &Node,
        out: &mut Vec<CompiledAnswer>,
        render: impl Fn(&mut Vec<CompiledAnswer>),
    ) {
        if !self.is_plain(catalog, key, node) {
            return render(out);
        }
        let memo = self.nodata[name.len()].get_or_init(|| {
            let mut group = Vec::new();
            render(&mut group);
            let plain =
                group.iter().any(|a| !a.is_pass_marker()) && group.iter().all(is_plain_nodata);
            plain.then_some(group)
        });
        match memo {
            Some(group) => out.extend(group.iter().map(|a| self.for_name(a, name))),
            None => render(out),
        }
    }

    /// `key`'s entries for `qtype`: made from the memo's for its type and length when the name
    /// is plain and holds one address of the type (A, AAAA), else what `render` pushes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn own_entries(
        &self,
        catalog: &Catalog,
        key: &NameKey,
        name: &Arc<[u8]>,
        node: &Node,
        qtype: RecordType,
        out: &mut Vec<CompiledAnswer>,
        render: impl Fn(&mut Vec<CompiledAnswer>),
    ) {
        let memos = match qtype {
            RecordType::A => &self.a,
            RecordType::AAAA => &self.aaaa,
            _ => return render(out),
        };
        let Some((set, addr)) = node
            .rrset(qtype)
            .and_then(|set| Some((set, one_address(set)?)))
        else {
            return render(out);
        };
        if !self.is_plain(catalog, key, node) {
            return render(out);
        }
        let memo = memos[name.len()].get_or_init(|| {
            let mut group = Vec::new();
            render(&mut group);
            let plain = group.iter().any(|a| !a.is_pass_marker())
                && group.iter().all(|a| is_plain_address(a, set, &addr));
            plain.then_some(group)
        });
        match memo {
            Some(group) => out.extend(group.iter().map(|a| {
                let mut tail: Box<[u8]> = a.tail[..].into();
                if !a.is_pass_marker() {
                    tail[TTL_AT..TTL_AT + 4].copy_from_slice(&set.ttl().to_be_bytes());
                    tail[RDATA_AT..RDATA_AT + addr.len()].copy_from_slice(&addr);
                }
                CompiledAnswer {
                    tail: tail.into(),
                    ..self.for_name(a, name)
                }
            })),
            None => render(out),
        }
    }

    /// A name whose NODATA is the zone's plain one (see the module's doc).
    fn is_plain(&self, catalog: &Catalog, key: &NameKey, node: &Node) -> bool {
        !self.off
            && key != self.zone.origin_key()
            && !node.is_cut()
            && node.rrset(RecordType::CNAME).is_none()
            && node.rrset(crate::answer::DNAME).is_none()
            && !catalog.is_expired(key.as_wire())
            && !self.on_soa_chain(key)
    }

    /// Whether a suffix of `key` below the apex is on the way to the SOA's MNAME or RNAME.
    fn on_soa_chain(&self, key: &NameKey) -> bool {
        !self.soa_chain.is_empty()
            && crate::zone::suffixes(key.as_wire())
                .take_while(|s| s.len() > self.apex.len())
                .any(|s| NameKey::from_wire(s).is_some_and(|k| self.soa_chain.contains(&k)))
    }

    /// The entry `a` as the one of `name`: the same bytes, its own name and response class.
    fn for_name(&self, a: &CompiledAnswer, name: &Arc<[u8]>) -> CompiledAnswer {
        CompiledAnswer {
            qname: name.clone(),
            rrl_class: response_class(a.flags, a.ancount, name, self.apex),
            ..a.clone()
        }
    }
}

/// Where the one record's TTL and RDATA are in an address answer's tail: after the owner (a
/// pointer), type and class; after the TTL and RDLENGTH.
const TTL_AT: usize = 6;
const RDATA_AT: usize = 12;

/// The set's one address, if it has one record.
fn one_address(set: &Rrset) -> Option<Vec<u8>> {
    let mut rdata = set.rdata();
    let addr = match (rdata.next()?.as_ref(), rdata.next()) {
        (hickory_proto::rr::RData::A(a), None) => a.0.octets().to_vec(),
        (hickory_proto::rr::RData::AAAA(a), None) => a.0.octets().to_vec(),
        _ => return None,
    };
    Some(addr)
}

/// An authoritative NOERROR whose tail is the one record of `set` (`addr`) owned by the
/// question's name, then nothing or an OPT; or a pass marker (see [`is_plain_nodata`]).
fn is_plain_address(a: &CompiledAnswer, set: &Rrset, addr: &[u8]) -> bool {
    if a.is_pass_marker() {
        return true;
    }
    let t = &a.tail[..];
    let mut record = vec![0xc0, 0x0c];
    record.extend_from_slice(&u16::from(set.rtype()).to_be_bytes());
    record.extend_from_slice(&rampart_common::dns::CLASS_IN.to_be_bytes());
    record.extend_from_slice(&set.ttl().to_be_bytes());
    record.extend_from_slice(&(addr.len() as u16).to_be_bytes());
    record.extend_from_slice(addr);
    let rest = t.strip_prefix(&record[..]);
    a.flags & 0x000f == u16::from(ResponseCode::NoError)
        && a.flags & FLAG_AA != 0
        && (a.ancount, a.nscount) == (1, 0)
        && a.relocation.is_none()
        && match (a.arcount, rest) {
            (0, Some(rest)) => rest.is_empty(),
            // The OPT, the tail's last record as `opt_back` finds it (the program's too).
            (1, Some(rest)) => {
                let back = usize::from(a.opt_back());
                back != 0 && rest.len() == OPT_LEN + back - 2
            }
            _ => false,
        }
}

/// An authoritative NOERROR with no answer records, or a pass marker (a variant too large for
/// its limit: length-bound too, the response being the name plus the same bytes).
fn is_plain_nodata(a: &CompiledAnswer) -> bool {
    a.is_pass_marker()
        || (a.flags & 0x000f == u16::from(ResponseCode::NoError)
            && a.flags & FLAG_AA != 0
            && a.ancount == 0
            && a.relocation.is_none())
}
