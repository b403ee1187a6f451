//! The shared NODATA entries of a zone's plain names, rendered once per query-name length.
//!
//! At a name with no CNAME, cut or DNAME, in a catalog with no signed zone, every type the name
//! lacks gets NODATA: the zone's SOA in authority, nothing else. Its bytes after the question
//! depend on the name only through compression pointers into the question: the SOA's owner (the
//! apex) and the parts of MNAME and RNAME at or above the apex are suffixes of the query name at
//! offsets its length fixes. The labels of the query name below the apex are the name's own:
//! they match nothing in the SOA unless the name is on the way to MNAME or RNAME
//! (`soa_name_chain`), and such names are rendered as before. So the entries rendered for one
//! name of a length are every other such name's, but for the name they carry.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use super::{CompiledAnswer, response_class};
use crate::wire::FLAG_AA;
use crate::zone::{Catalog, NameKey, Node, Zone};

/// Per query-name length, the shared entries of the first plain name of that length compiled,
/// or `None` when they were not a plain NODATA (then every name of the length renders its own).
pub(super) struct NodataMemo<'z> {
    zone: &'z Zone,
    apex: &'z [u8],
    /// Names whose suffixes below the apex the SOA's MNAME or RNAME share.
    soa_chain: BTreeSet<NameKey>,
    /// No memo at all: a signed catalog (DO answers and NSEC records depend on the name).
    off: bool,
    by_len: Vec<OnceLock<Option<Vec<CompiledAnswer>>>>,
}

impl<'z> NodataMemo<'z> {
    pub(super) fn new(zone: &'z Zone, signed: bool, soa_chain: BTreeSet<NameKey>) -> Self {
        NodataMemo {
            zone,
            apex: zone.origin_key().as_wire(),
            soa_chain,
            off: signed,
            by_len: (0..=255).map(|_| OnceLock::new()).collect(),
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
        let memo = self.by_len[name.len()].get_or_init(|| {
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

/// An authoritative NOERROR with no answer records, or a pass marker (a variant too large for
/// its limit: length-bound too, the response being the name plus the same bytes).
fn is_plain_nodata(a: &CompiledAnswer) -> bool {
    a.is_pass_marker()
        || (a.flags & 0x000f == u16::from(ResponseCode::NoError)
            && a.flags & FLAG_AA != 0
            && a.ancount == 0
            && a.relocation.is_none())
}
