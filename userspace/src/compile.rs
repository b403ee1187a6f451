//! Zone model → table of precompiled answers for the fast path (docs/ARCHITECTURE.md §4).
//!
//! Every entry is produced by the slow path's own pipeline (`answer::answer`, then
//! `wire::render_full` for a synthetic query), so the fast path can only ever send bytes the slow
//! path would have sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rampart_common::{
    CLASSIC_UDP_LIMIT, DERIVE_DO, DERIVE_NOEDNS, EDNS_PAYLOAD, MAX_RELOCS, OPT_LEN, QTYPE_ENCLOSER,
    QTYPE_OTHER, RrlKind, Variant, is_data_type, rrl_class,
};

use crate::answer::{self, Question};
use crate::wire::{self, HEADER_LEN, Query};
use crate::zone::{Catalog, NameKey, Node, Zone};

mod plain;

/// Query types compiled at a CNAME's owner, whose answer (the chain, then the target's data or
/// NODATA) depends on the type: what resolvers actually ask. Other types there go to the slow path.
pub const COMMON_QTYPES: [RecordType; 13] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::HTTPS,
    RecordType::SVCB,
    RecordType::NS,
    RecordType::SOA,
    RecordType::SRV,
    RecordType::CAA,
    RecordType::PTR,
    RecordType::DS,
    RecordType::DNSKEY,
];

/// One precompiled answer: the key parts and the bytes the program writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledAnswer {
    /// Query name in wire form, lowercased: one allocation shared by a name's entries (three
    /// million entries at a million names, one block each before).
    pub qname: Arc<[u8]>,
    pub qtype: u16,
    pub variant: Variant,
    /// Header flags (QR, AA, RCODE; RD/CD clear: the program copies them from the query).
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes after the question (shared by the shared entries of names whose bytes are the
    /// same: [`shared_tail`]).
    pub tail: Arc<[u8]>,
    /// NXDOMAIN templates only: how to fit the tail to another query name (boxed: a few
    /// entries per zone have one, and millions of entries would each carry its room).
    pub relocation: Option<Box<Relocation>>,
    /// Response class the XDP program rate-limits this answer under (see [`response_class`]).
    pub rrl_class: u32,
    /// `DERIVE_*` bits: the variants this EDNS entry stands for too, the program making their
    /// bytes from its own (see [`CompiledAnswer::derives_noedns`]); they get no entry.
    pub derived: u8,
}

/// An NXDOMAIN tail is the same for every missing name of a zone but for its compression
/// pointers into the query name's suffix (the SOA owner, MNAME, RNAME): the tail was rendered
/// for a name of `ref_qname_len` bytes, and the program adds its own name's length minus that to
/// the pointer at each tail offset in `pointers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relocation {
    pub ref_qname_len: u8,
    pub pointers: Vec<u8>,
}

impl CompiledAnswer {
    /// An entry that only says "not from the fast path".
    fn pass_marker(qname: &Arc<[u8]>, qtype: u16, variant: Variant) -> CompiledAnswer {
        CompiledAnswer {
            qname: qname.clone(),
            qtype,
            variant,
            flags: 0,
            ancount: 0,
            nscount: 0,
            arcount: 0,
            tail: Arc::default(),
            relocation: None,
            rrl_class: 0,
            derived: 0,
        }
    }

    /// The entry for a response the slow path rendered: its header fields and the bytes after
    /// its question (`question_len` bytes after the header). `name` is the name it is
    /// rate-limited by when that is not the zone (`apex`): the query name, or a cut.
    fn from_rendered(
        qname: &Arc<[u8]>,
        qtype: u16,
        variant: Variant,
        bytes: &[u8],
        question_len: usize,
        apex: &[u8],
    ) -> CompiledAnswer {
        let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        CompiledAnswer {
            rrl_class: response_class(word(2), word(6), qname, apex),
            qname: qname.clone(),
            qtype,
            variant,
            flags: word(2),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
            tail: match qtype {
                QTYPE_OTHER => shared_tail(&bytes[HEADER_LEN + question_len..]),
                _ => bytes[HEADER_LEN + question_len..].into(),
            },
            relocation: None,
            derived: 0,
        }
    }

    pub fn is_pass_marker(&self) -> bool {
        self.tail.is_empty()
    }

    /// The same bytes and treatment, whatever the name.
    pub fn same_answer(&self, b: &CompiledAnswer) -> bool {
        self.variant == b.variant
            && self.flags == b.flags
            && (self.ancount, self.nscount, self.arcount) == (b.ancount, b.nscount, b.arcount)
            && self.tail == b.tail
            && self.relocation == b.relocation
            && self.rrl_class == b.rrl_class
            && self.derived == b.derived
    }

    /// How many answers the entry stands for: itself and the variants derived from it.
    pub fn answers(&self) -> usize {
        1 + self.derived.count_ones() as usize
    }

    /// Whether `a` (a no-EDNS answer) is this EDNS answer less its option-free OPT record at
    /// the end: the same header and records.
    pub fn derives_noedns(&self, a: &CompiledAnswer) -> bool {
        let n = self.tail.len();
        !self.is_pass_marker()
            && !a.is_pass_marker()
            && self.opt_back() == 2
            && n > OPT_LEN
            && a.tail[..] == self.tail[..n - OPT_LEN]
            && a.flags == self.flags
            && (a.ancount, a.nscount) == (self.ancount, self.nscount)
            && a.arcount + 1 == self.arcount
            && a.relocation == self.relocation
            && a.rrl_class == self.rrl_class
    }

    /// Whether `a` (a DO answer) is this EDNS answer with DO set in its OPT record's flags and
    /// nothing else changed (an unsigned zone's answer).
    pub fn derives_do(&self, a: &CompiledAnswer) -> bool {
        self.with_do().is_some_and(|want| {
            *a.tail == *want
                && a.flags == self.flags
                && (a.ancount, a.nscount, a.arcount) == (self.ancount, self.nscount, self.arcount)
                && a.relocation == self.relocation
                && a.rrl_class == self.rrl_class
        })
    }

    /// The tail with DO set in the OPT record's flags, if it ends in an OPT with DO clear.
    fn with_do(&self) -> Option<Box<[u8]>> {
        let back = self.opt_back() as usize;
        if self.is_pass_marker() || back < 2 {
            return None;
        }
        let at = self.tail.len() - back - 2;
        let mut tail: Box<[u8]> = self.tail[..].into();
        (tail[at] & 0x80 == 0).then(|| {
            tail[at] |= 0x80;
            tail
        })
    }

    /// The entries of the variants derived from this one, as the program makes them (tests
    /// compare them with the slow path's bytes).
    #[cfg(test)]
    pub fn derived_entries(&self) -> Vec<CompiledAnswer> {
        let mut out = Vec::new();
        if self.derived & DERIVE_NOEDNS != 0 {
            out.push(CompiledAnswer {
                variant: Variant::NoEdns,
                arcount: self.arcount - 1,
                tail: self.tail[..self.tail.len() - OPT_LEN].into(),
                derived: 0,
                ..self.clone()
            });
        }
        if self.derived & DERIVE_DO != 0 {
            out.push(CompiledAnswer {
                variant: Variant::EdnsDo,
                tail: self
                    .with_do()
                    .expect("a DO variant derived from an OPT")
                    .into(),
                derived: 0,
                ..self.clone()
            });
        }
        out
    }

    /// Bytes from the tail's end back to its OPT's RDLENGTH field, when the tail ends in an OPT
    /// record (every EDNS answer: the OPT goes last): where the XDP program appends a COOKIE
    /// option. 0 when there is none. Found from the end: the RDLENGTH that covers exactly the
    /// options after it, preceded by a root owner and type OPT.
    pub fn opt_back(&self) -> u8 {
        const FIXED: usize = rampart_common::OPT_LEN;
        let t = &self.tail;
        if self.variant == Variant::NoEdns || self.arcount == 0 || t.len() < FIXED {
            return 0;
        }
        let max = (t.len() - FIXED).min(u8::MAX as usize - 2);
        for k in 0..=max {
            let at = t.len() - k - 2;
            let opt = at + 2 - FIXED;
            if usize::from(u16::from_be_bytes([t[at], t[at + 1]])) == k
                && t[opt] == 0
                && t[opt + 1..opt + 3] == rampart_common::dns::TYPE_OPT.to_be_bytes()
                && options_fit(&t[at + 2..])
            {
                return (k + 2) as u8;
            }
        }
        0
    }

    /// The whole response the fast path sends for a query with this ID, flags (only RD and CD
    /// are used) and question bytes.
    #[cfg(test)]
    pub fn response(&self, id: u16, query_flags: u16, question: &[u8]) -> Vec<u8> {
        let flags = self.flags | (query_flags & wire::FLAG_RD);
        let mut out = Vec::with_capacity(HEADER_LEN + question.len() + self.tail.len());
        for word in [id, flags, 1, self.ancount, self.nscount, self.arcount] {
            out.extend_from_slice(&word.to_be_bytes());
        }
        out.extend_from_slice(question);
        out.extend_from_slice(&self.tail);
        out
    }
}

/// Whether `rdata` is a whole number of EDNS options (code, length, data).
fn options_fit(mut rdata: &[u8]) -> bool {
    while rdata.len() >= 4 {
        let len = usize::from(u16::from_be_bytes([rdata[2], rdata[3]]));
        if rdata.len() < 4 + len {
            return false;
        }
        rdata = &rdata[4 + len..];
    }
    rdata.is_empty()
}

/// The response class an answer is rate-limited under, as Knot's mod-rrl and NSD's rrl.c
/// classify: positive answers by query name, NODATA and NXDOMAIN by zone (so a random-name flood
/// shares one bucket), referrals by the delegation (the query name at a cut), errors by zone.
pub fn response_class(flags: u16, ancount: u16, qname: &[u8], apex: &[u8]) -> u32 {
    let rcode = flags & 0x000f;
    let (kind, name) = if rcode == u16::from(ResponseCode::NXDomain) {
        (RrlKind::Nxdomain, apex)
    } else if rcode != 0 {
        (RrlKind::Error, apex)
    } else if ancount > 0 {
        (RrlKind::Positive, qname)
    } else if flags & wire::FLAG_AA != 0 {
        (RrlKind::Nodata, apex)
    } else {
        (RrlKind::Referral, qname)
    };
    rrl_class(kind, name)
}

/// Compiles every zone of the catalog, zones in canonical order, names in wire order, then
/// qtype, then variant: the same catalog always gives the same table.
///
/// An entry may carry another zone's data: a CNAME or DNAME chain goes on into every zone we
/// serve (RFC 1034 §4.3.2 step 3a, see `answer::solve_answer`). That is why the whole catalog
/// is compiled at once, on every load and reload, and never one zone alone.
pub fn compile(catalog: &Catalog) -> Vec<CompiledAnswer> {
    compile_counted(catalog).0
}

/// [`compile`], with how many answers each zone has (in [`Catalog::zones`]'s order).
pub fn compile_counted(catalog: &Catalog) -> (Vec<CompiledAnswer>, Vec<usize>) {
    let zones = crate::parallel::map(&catalog.zones(), |z| compile_zone(catalog, z));
    let counts = zones.iter().map(Vec::len).collect();
    (concat(zones), counts)
}

fn concat(mut zones: Vec<Vec<CompiledAnswer>>) -> Vec<CompiledAnswer> {
    if zones.len() == 1 {
        // One large zone: its table is the table, not copied into another.
        return zones.pop().unwrap_or_default();
    }
    let mut table = Vec::with_capacity(zones.iter().map(Vec::len).sum());
    for zone in zones {
        table.extend(zone);
    }
    table
}

/// How many answers a table holds: its entries and the variants derived from them.
pub fn answer_count(table: &[CompiledAnswer]) -> usize {
    table.iter().map(CompiledAnswer::answers).sum()
}

/// Compiles the names of one zone. Names below a cut or a DNAME are not enumerable (the slow
/// path answers them), and nonexistent names get no entry (NXDOMAIN is the fast path's
/// per-zone template).
pub fn compile_zone(catalog: &Catalog, zone: &Zone) -> Vec<CompiledAnswer> {
    let nodes = zone.nodes_in_wire_order();
    let apex = zone.origin_key().as_wire();
    // A chain may end in any zone of the catalog: DO changes answers if any of them is signed.
    let signed = catalog.zones().iter().any(|z| z.is_signed());
    // Room for every entry at once (an upper bound in an unsigned catalog): the vector of a
    // million names' entries would otherwise be copied each time it doubles, and end up to
    // twice its size.
    let room = (nodes.iter())
        .filter(|(_, node)| !node.is_occluded())
        .map(|(key, node)| explicit_qtypes(node, key == zone.origin_key()).len() + 2)
        .sum();
    let plain = plain::PlainMemo::new(zone, signed, soa_name_chain(zone));
    // Names are independent: a million of them render on every core.
    let mut out = crate::parallel::flat_map(&nodes, room, |(key, node), out| {
        if node.is_occluded() || !in_this_zone(catalog, zone, key) {
            return;
        }
        let owner = Owner::new(key);
        let mut explicit = Vec::new();
        for qtype in explicit_qtypes(node, key == zone.origin_key()) {
            plain.own_entries(
                catalog,
                key,
                &owner.name,
                node,
                qtype,
                &mut explicit,
                |out| compile_one(catalog, signed, apex, &owner, qtype.into(), qtype, out),
            );
        }
        if node.rrset(RecordType::CNAME).is_some() {
            // Other types at a CNAME follow the chain: the slow path's. The marker also keeps
            // the program's NXDOMAIN walk away from this existing name.
            out.extend(explicit);
            out.extend(pass_markers(key, QTYPE_OTHER));
            return;
        }
        let shared_at = out.len();
        plain.shared_entries(catalog, key, &owner.name, node, out, |out| {
            compile_one(
                catalog,
                signed,
                apex,
                &owner,
                QTYPE_OTHER,
                probe_qtype(node),
                out,
            )
        });
        let shared = &out[shared_at..];
        // A data type answered as the shared entry answers every type the name lacks (DS at a
        // name that is no cut: NODATA) needs no entry: the program falls back to the shared one.
        // The others are moved, not copied (two million names and tails at a million names).
        let kept: Vec<(usize, bool)> = (explicit.chunk_by(|a, b| a.qtype == b.qtype))
            .map(|g| {
                (
                    g.len(),
                    !(is_data_type(g[0].qtype) && same_answers(g, shared)),
                )
            })
            .collect();
        let mut own = Vec::with_capacity(explicit.len());
        let mut explicit = explicit.into_iter();
        for (len, keep) in kept {
            let group = explicit.by_ref().take(len);
            if keep {
                own.extend(group);
            } else {
                group.for_each(drop);
            }
        }
        out.splice(shared_at..shared_at, own);
    });
    out.extend(compile_enclosers(catalog, zone, &nodes));
    out
}

/// Whether two (name, type)s' entries give the same bytes and treatment, whatever the name.
pub fn same_answers(a: &[CompiledAnswer], b: &[CompiledAnswer]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| a.same_answer(b))
}

/// Every variant's "not from the fast path" entry for (name, key qtype).
fn pass_markers(key: &NameKey, qtype: u16) -> impl Iterator<Item = CompiledAnswer> + use<> {
    let name: Arc<[u8]> = key.as_wire().into();
    Variant::ALL
        .into_iter()
        .map(move |variant| CompiledAnswer::pass_marker(&name, qtype, variant))
}

/// Closest-encloser entries (docs/ARCHITECTURE.md §4.1): at every name, what a missing name
/// below it gets. The program walks a missing query name's suffixes to the first that has one.
/// That is the zone's NXDOMAIN (RFC 1034 §4.3.2 step 3c, RFC 2308 §2.1) where the name is the
/// closest encloser, the cut's referral (step 3b) at a delegation, and a pass marker where
/// something else decides: a DNAME (synthesis, RFC 6672), a wildcard child (RFC 4592).
///
/// Both templates are fitted to the query name by relocating their compression pointers, which
/// only holds while the slow path compresses no name against the query name deeper than the
/// template does. So names on the SOA's MNAME/RNAME suffix chain (NXDOMAIN) and names below a
/// cut on the way to its in-bailiwick NS targets (the glue owners of the referral) are markers:
/// there the slow path's bytes would differ.
fn compile_enclosers(
    catalog: &Catalog,
    zone: &Zone,
    nodes: &[(NameKey, &Node)],
) -> Vec<CompiledAnswer> {
    let apex = zone.origin_key();
    let hazards = soa_name_chain(zone);
    let templates = nx_templates(catalog, zone, &hazards).map(|t| compact_templates(apex, t));
    let emitted = |key: &NameKey| {
        zone.node(key.as_wire())
            .is_some_and(|n| !n.is_occluded() && in_this_zone(catalog, zone, key))
    };
    // Names that get a marker and nothing else: off the zone's tree, or occluded below a cut.
    let mut markers: BTreeSet<NameKey> = (hazards.iter())
        .filter(|k| zone.node(k.as_wire()).is_none())
        .cloned()
        .collect();
    for (key, node) in nodes {
        if node.is_cut() && key != apex && emitted(key) {
            let glue = glue_name_chain(zone, key);
            markers.extend(glue.into_iter().filter(|k| in_this_zone(catalog, zone, k)));
        }
    }
    // Where something other than the zone's NXDOMAIN decides what a missing name below gets.
    let decided_elsewhere = |key: &NameKey, node: &Node| {
        node.rrset(answer::DNAME).is_some()
            || key
                .wildcard_child()
                .is_some_and(|w| zone.node(w.as_wire()).is_some())
            || hazards.contains(key)
    };
    // Whether the parent's entry is the zone's NXDOMAIN too.
    let parent_gets_nx = |key: &NameKey| {
        key.parent().is_some_and(|up| {
            zone.node(up.as_wire()).is_some_and(|n| {
                let referral = n.is_cut() && &up != apex;
                !(n.is_occluded() || referral || decided_elsewhere(&up, n))
                    && in_this_zone(catalog, zone, &up)
            })
        })
    };
    let mut out = crate::parallel::flat_map(nodes, nodes.len(), |(key, node), out| {
        if node.is_occluded() || !in_this_zone(catalog, zone, key) {
            return;
        }
        if node.is_cut() && key != apex {
            let glue = glue_name_chain(zone, key);
            let referrals =
                referral_templates(catalog, zone, key, &glue).map(|t| compact_templates(key, t));
            out.extend(encloser_entries(key, referrals.as_deref()));
            return;
        }
        if key != apex && !decided_elsewhere(key, node) && parent_gets_nx(key) {
            // The program's walk goes on to the parent and finds the same answer there.
            return;
        }
        let templates = templates
            .as_deref()
            .filter(|_| !decided_elsewhere(key, node));
        out.extend(encloser_entries(key, templates));
    });
    for key in markers.iter().filter(|k| !emitted(k)) {
        out.extend(pass_markers(key, QTYPE_ENCLOSER));
        // The name itself too: the program's walk starts at a missing name's parent, so a
        // name that has an encloser entry must have a shared one (see compile_zone).
        out.extend(pass_markers(key, QTYPE_OTHER));
    }
    out
}

/// The closest-encloser entries at `key`: the templates' (see [`compact_templates`]), or
/// markers when there are none.
fn encloser_entries(key: &NameKey, templates: Option<&[CompiledAnswer]>) -> Vec<CompiledAnswer> {
    let Some(templates) = templates else {
        return pass_markers(key, QTYPE_ENCLOSER).collect();
    };
    let name: Arc<[u8]> = key.as_wire().into();
    (templates.iter())
        .map(|t| CompiledAnswer {
            qname: name.clone(),
            ..t.clone()
        })
        .collect()
}

/// Templates as entries, once per zone or cut rather than at each of its names: a marker where
/// a variant has none, the derivable variants folded into the EDNS entry.
fn compact_templates(parent: &NameKey, templates: Vec<Template>) -> Vec<CompiledAnswer> {
    let mut group = [None, None, None];
    for (variant, t) in templates {
        group[variant as usize] = Some(t.unwrap_or_else(|| {
            CompiledAnswer::pass_marker(&parent.as_wire().into(), QTYPE_ENCLOSER, variant)
        }));
    }
    compact(group).collect()
}

/// The names strictly between the apex and the SOA's MNAME and RNAME, both included.
fn soa_name_chain(zone: &Zone) -> BTreeSet<NameKey> {
    let Some(hickory_proto::rr::RData::SOA(soa)) = zone.soa().typed().first() else {
        return BTreeSet::new();
    };
    [soa.mname(), soa.rname()]
        .into_iter()
        .flat_map(|name| names_below(zone.origin_key(), &NameKey::from_name(name)))
        .collect()
}

/// The names strictly below `cut` on the way to each of its NS targets under it, the targets
/// included: the owners of the referral's glue and their parents. A query name there or below
/// shares more of its suffix with a glue owner than the probe names do, so the slow path
/// compresses that owner against the query name further than the template's pointers reach.
fn glue_name_chain(zone: &Zone, cut: &NameKey) -> BTreeSet<NameKey> {
    let Some(ns) = zone
        .node(cut.as_wire())
        .and_then(|n| n.rrset(RecordType::NS))
    else {
        return BTreeSet::new();
    };
    (ns.typed().iter())
        .filter_map(|rd| match rd {
            hickory_proto::rr::RData::NS(target) => Some(NameKey::from_name(&target.0)),
            _ => None,
        })
        .flat_map(|target| names_below(cut, &target))
        .collect()
}

/// `name` and its ancestors strictly below `top`; nothing if `name` is not below `top`.
fn names_below(top: &NameKey, name: &NameKey) -> Vec<NameKey> {
    let mut chain = Vec::new();
    let mut key = Some(name.clone());
    while let Some(k) = key {
        if &k == top || !k.is_subdomain_of(top) {
            break;
        }
        key = k.parent();
        chain.push(k);
    }
    chain
}

/// One variant's relocatable template, or `None`: that variant's names go to the slow path.
type Template = (Variant, Option<CompiledAnswer>);

/// The zone's NXDOMAIN answer per variant, for the missing names directly below the apex (see
/// [`relocatable_templates`]). No NXDOMAIN there (a wildcard at the apex) and a variant gets no
/// template. Neither does a variant whose answer carries NSEC or NSEC3 (a signed zone with DO):
/// the records proving a name missing depend on the name (RFC 4035 §3.1.3.2), even where two
/// probe names happen to get the same ones.
fn nx_templates(
    catalog: &Catalog,
    zone: &Zone,
    hazards: &BTreeSet<NameKey>,
) -> Option<Vec<Template>> {
    relocatable_templates(catalog, zone, zone.origin_key(), hazards, |ans| {
        ans.rcode == ResponseCode::NXDomain
            && !(ans.authority.iter())
                .any(|rr| matches!(rr.rtype(), RecordType::NSEC | RecordType::NSEC3))
    })
}

/// The referral every name below the (non-apex) cut `cut` gets (RFC 1034 §4.3.2 step 3b: the
/// cut's NS, glue, and with DO its DS and RRSIG or the NSEC/NSEC3 proof of no DS, RFC 4035
/// §3.1.4). All of it depends on the cut alone, never on the name below it, so unlike NXDOMAIN
/// a DO referral may be templated too, when the two probe names agree.
fn referral_templates(
    catalog: &Catalog,
    zone: &Zone,
    cut: &NameKey,
    hazards: &BTreeSet<NameKey>,
) -> Option<Vec<Template>> {
    relocatable_templates(catalog, zone, cut, hazards, |ans| {
        ans.outcome == answer::Outcome::Referral
            && ans.rcode == ResponseCode::NoError
            && !ans.authoritative
            && ans.answer.is_empty()
    })
}

/// Per variant, the answer the slow path's own pipeline gives missing names below `parent`, as
/// a template the program fits to any such name: rendered for two names of different lengths
/// directly below `parent` (neither existing nor in `hazards`), both answers must pass
/// `expected`, and the bytes that differ must be exactly compression pointers into the query
/// name (or past it) that moved by the length difference. Any other difference, more than
/// `MAX_RELOCS` pointers, or an answer over 512 octets and that variant gets no template.
/// `None`: no probe names.
fn relocatable_templates(
    catalog: &Catalog,
    zone: &Zone,
    parent: &NameKey,
    hazards: &BTreeSet<NameKey>,
    expected: impl Fn(&answer::Answer<'_>) -> bool,
) -> Option<Vec<Template>> {
    let missing = |label: &str| {
        let mut wire = vec![label.len() as u8];
        wire.extend_from_slice(label.as_bytes());
        wire.extend_from_slice(parent.as_wire());
        NameKey::from_wire(&wire)
            .filter(|k| zone.node(k.as_wire()).is_none() && !hazards.contains(k))
    };
    let short = ["x", "y", "z", "q"].into_iter().find_map(missing)?;
    let long = ["xxxx", "yyyy", "zzzz", "qqqq"]
        .into_iter()
        .find_map(missing)?;
    let template = |variant: Variant| -> Option<CompiledAnswer> {
        let render = |k: &NameKey| {
            let query = Query::synthetic(k, RecordType::A, variant);
            let ans = answer::answer(catalog, &query.question());
            let ok = expected(&ans);
            (ok, wire::render_full(&query, &ans), query.question.len())
        };
        let (ok_a, a, qa) = render(&short);
        let (ok_b, b, qb) = render(&long);
        if !ok_a || !ok_b || a.len() > CLASSIC_UDP_LIMIT as usize {
            return None;
        }
        let pointers = moved_pointers((&a, qa), (&b, qb), (qb - qa) as u16)?;
        Some(CompiledAnswer {
            relocation: Some(Box::new(Relocation {
                ref_qname_len: short.as_wire().len() as u8,
                pointers,
            })),
            // Keyed by `parent` (the entry's own name): a referral's response class is its cut.
            ..CompiledAnswer::from_rendered(
                &parent.as_wire().into(),
                QTYPE_ENCLOSER,
                variant,
                &a,
                qa,
                zone.origin_key().as_wire(),
            )
        })
    };
    Some(Variant::ALL.into_iter().map(|v| (v, template(v))).collect())
}

/// Two rendered responses (bytes, question length) to questions whose names differ in length by
/// `delta`: the tail offsets of the compression pointers that moved by exactly `delta`, if those
/// are all that differ after the ID and there are at most `MAX_RELOCS` of them, each at a tail
/// offset the program's one-byte fields can hold.
fn moved_pointers(a: (&[u8], usize), b: (&[u8], usize), delta: u16) -> Option<Vec<u8>> {
    let (ta, tb) = (&a.0[HEADER_LEN + a.1..], &b.0[HEADER_LEN + b.1..]);
    if a.0[2..HEADER_LEN] != b.0[2..HEADER_LEN] || ta.len() != tb.len() {
        return None;
    }
    let mut pointers = Vec::new();
    let mut i = 0;
    while i < ta.len() {
        if ta[i] == tb[i] {
            i += 1;
            continue;
        }
        // The differing byte must be inside a pointer that moved by exactly `delta`.
        let p = if i > 0 && ta[i - 1] & 0xc0 == 0xc0 && ta[i - 1] == tb[i - 1] {
            i - 1
        } else {
            i
        };
        let word = |t: &[u8]| t.get(p..p + 2).map(|w| u16::from_be_bytes([w[0], w[1]]));
        match (word(ta), word(tb)) {
            (Some(x), Some(y)) if x & 0xc000 == 0xc000 && y.wrapping_sub(x) == delta => {
                pointers.push(u8::try_from(p).ok()?);
                i = p + 2;
            }
            _ => return None,
        }
    }
    (pointers.len() <= MAX_RELOCS).then_some(pointers)
}

/// Types compiled with an entry of their own at a name: those it has, DS at a cut or the
/// apex (answered from the parent side, RFC 4035 §3.1.4.1), and at a CNAME the common ones.
/// DS elsewhere is NODATA like any type the name lacks: the shared entry answers it.
fn explicit_qtypes(node: &Node, apex: bool) -> Vec<RecordType> {
    let mut types: Vec<RecordType> = node.rrsets().iter().map(|s| s.rtype()).collect();
    if node.is_cut() || apex {
        types.push(RecordType::DS);
    }
    if node.rrset(RecordType::CNAME).is_some() {
        types.extend(COMMON_QTYPES);
    }
    types.retain(|t| is_data_type(u16::from(*t)));
    types.sort_by_key(|t| u16::from(*t));
    types.dedup();
    types
}

/// A data type the name doesn't have, to ask the pipeline what every such type gets there
/// (NODATA, or a referral at a cut). Private-use types (RFC 6895 §3.1) are nearly never in zones.
fn probe_qtype(node: &Node) -> RecordType {
    (65280..=65534)
        .map(RecordType::Unknown)
        .find(|t| node.rrset(*t).is_none())
        .unwrap_or(RecordType::Unknown(65534))
}

/// A name of this zone whose answers this zone gives (not a child zone's apex we also serve).
fn in_this_zone(catalog: &Catalog, zone: &Zone, key: &NameKey) -> bool {
    let question = Question {
        qname: key,
        qtype: RecordType::A,
        dnssec_ok: false,
    };
    matches!(answer::select_zone(catalog, &question), Some(z) if std::ptr::eq(z, zone))
}

/// A shared entry's tail, in one block with the last one this thread made when the bytes are
/// the same: names of one length get the same NODATA (the SOA's owner and names are pointers
/// into the query name at the same offsets), and a worker compiles names in order, so a million
/// names' NODATA tails are a few blocks, not a million.
fn shared_tail(bytes: &[u8]) -> Arc<[u8]> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<Arc<[u8]>>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with_borrow_mut(|last| match last {
        Some(t) if **t == *bytes => t.clone(),
        _ => last.insert(bytes.into()).clone(),
    })
}

/// A name being compiled, with its wire form as its entries share it.
struct Owner<'k> {
    key: &'k NameKey,
    name: Arc<[u8]>,
}

impl<'k> Owner<'k> {
    fn new(key: &'k NameKey) -> Owner<'k> {
        Owner {
            key,
            name: key.as_wire().into(),
        }
    }
}

/// Compile the answers to `probe` at `owner` under the map key type `key_qtype`. An answer the
/// fast path must not send (too big for the variant, or not a plain answer) still gets an entry,
/// with an empty tail, so the program sends the query up instead of trying `QTYPE_OTHER`.
///
/// The EDNS answer is rendered first; the no-EDNS and DO variants are rendered only when they
/// can't be derived from it (see [`derivable`]): rendering them all would take most of a large
/// zone's compile time and memory, only for the layout to find them derivable.
fn compile_one(
    catalog: &Catalog,
    signed: bool,
    apex: &[u8],
    owner: &Owner,
    key_qtype: u16,
    probe: RecordType,
    out: &mut Vec<CompiledAnswer>,
) {
    let key = owner.key;
    // Without DO the answer doesn't depend on EDNS, only its rendering does: solved once.
    let plain = Query::synthetic(key, probe, Variant::Edns);
    let plain_ans = answer::answer(catalog, &plain.question());
    let render = |variant: Variant| {
        // The EDNS query is `plain` itself: a million names' worth of copies saved.
        let other;
        let query = if variant == Variant::Edns {
            &plain
        } else {
            other = plain.clone().in_variant(variant);
            &other
        };
        let do_ans;
        let ans = if query.question().dnssec_ok {
            do_ans = answer::answer(catalog, &query.question());
            &do_ans
        } else {
            &plain_ans
        };
        let bytes = wire::render_full(query, ans);
        let limit = match variant {
            Variant::NoEdns => CLASSIC_UDP_LIMIT,
            Variant::Edns | Variant::EdnsDo => EDNS_PAYLOAD,
        } as usize;
        let sendable = bytes.len() <= limit
            && !matches!(ans.rcode, ResponseCode::Refused | ResponseCode::ServFail);
        if sendable {
            CompiledAnswer::from_rendered(
                &owner.name,
                key_qtype,
                variant,
                &bytes,
                query.question.len(),
                apex,
            )
        } else {
            CompiledAnswer::pass_marker(&owner.name, key_qtype, variant)
        }
    };
    let mut base = render(Variant::Edns);
    let derive = derivable(&base, signed);
    let mut group = [None, None, None];
    for (variant, bit) in [
        (Variant::NoEdns, DERIVE_NOEDNS),
        (Variant::EdnsDo, DERIVE_DO),
    ] {
        if derive & bit != 0 {
            base.derived |= bit;
        } else {
            group[variant as usize] = Some(render(variant));
        }
    }
    group[Variant::Edns as usize] = Some(base);
    out.extend(compact(group));
}

/// The variants the slow path is sure to answer with `base`'s bytes but for what the program
/// changes (`DERIVE_*` bits), known without rendering them. The renderer writes the same header
/// and records whatever the query's EDNS, then our OPT last (`wire::render_full`), so:
/// - no EDNS: `base` less its OPT, when that OPT is option-free (no Extended DNS Error) and
///   what is left fits 512 octets (else the no-EDNS variant is a marker);
/// - DO: `base` with DO set in its OPT, when no zone of the catalog is `signed` (a chain may
///   end in any of them): DO then changes nothing in the answer (`answer` adds DNSSEC records
///   only from a signed zone).
fn derivable(base: &CompiledAnswer, signed: bool) -> u8 {
    if base.is_pass_marker() || base.opt_back() != 2 || base.tail.len() <= OPT_LEN {
        return 0;
    }
    let mut bits = 0;
    let header_and_question = HEADER_LEN + base.qname.len() + 4;
    if header_and_question + base.tail.len() - OPT_LEN <= CLASSIC_UDP_LIMIT as usize {
        bits |= DERIVE_NOEDNS;
    }
    if !signed {
        bits |= DERIVE_DO;
    }
    bits
}

/// One (name, type)'s variants as entries: the EDNS one standing for those it derives.
fn compact(group: [Option<CompiledAnswer>; 3]) -> impl Iterator<Item = CompiledAnswer> {
    let [mut noedns, mut base, mut edns_do] = group;
    if let Some(base) = &mut base {
        if noedns.as_ref().is_some_and(|a| base.derives_noedns(a)) {
            noedns = None;
            base.derived |= DERIVE_NOEDNS;
        }
        if edns_do.as_ref().is_some_and(|a| base.derives_do(a)) {
            edns_do = None;
            base.derived |= DERIVE_DO;
        }
    }
    [noedns, base, edns_do].into_iter().flatten()
}

/// Every compiled answer, the derived variants made as the program makes them: what tests
/// compare with the slow path's bytes.
#[cfg(test)]
pub fn expand(table: &[CompiledAnswer]) -> Vec<CompiledAnswer> {
    let mut out = Vec::with_capacity(table.len() * 3);
    for a in table {
        out.push(CompiledAnswer {
            derived: 0,
            ..a.clone()
        });
        out.extend(a.derived_entries());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::respond::respond;

    /// Every variant's entry, the derived ones as the program makes them: what these tests
    /// compare with the slow path (`super::compile` is the table the layout gets).
    fn compile(cat: &Catalog) -> Vec<CompiledAnswer> {
        expand(&super::compile(cat))
    }
    use crate::wire::testutil::question;
    use crate::wire::{FLAG_CD, FLAG_RD, Transport};

    /// The OPT a query of this variant carries: (UDP size, DO, version).
    fn edns_for(v: Variant) -> Option<(u16, bool, u8)> {
        match v {
            Variant::NoEdns => None,
            Variant::Edns => Some((1232, false, 0)),
            Variant::EdnsDo => Some((1232, true, 0)),
        }
    }

    fn sample() -> Catalog {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        Catalog::load(&[], Some(&dir)).unwrap()
    }

    fn find_exact<'a>(
        table: &'a [CompiledAnswer],
        qname: &str,
        qtype: u16,
        v: Variant,
    ) -> Option<&'a CompiledAnswer> {
        let key = NameKey::parse(qname).unwrap();
        table
            .iter()
            .find(|c| *c.qname == *key.as_wire() && c.qtype == qtype && c.variant == v)
    }

    /// What the XDP program finds: the exact type, else the name's entry for other data types.
    fn find<'a>(
        table: &'a [CompiledAnswer],
        qname: &str,
        qtype: RecordType,
        v: Variant,
    ) -> Option<&'a CompiledAnswer> {
        let t = u16::from(qtype);
        find_exact(table, qname, t, v)
            .or_else(|| {
                is_data_type(t)
                    .then(|| find_exact(table, qname, QTYPE_OTHER, v))
                    .flatten()
            })
            .filter(|c| !c.is_pass_marker())
    }

    /// Mixed-case presentation form of a lowercased wire name, deterministic per index.
    fn mixed_case(wire: &[u8], seed: usize) -> String {
        let text = NameKey::from_wire(wire).unwrap().to_string();
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                if (i + seed).is_multiple_of(2) {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }

    /// docs/ARCHITECTURE.md §1: for every compiled answer, the slow path's response to the same
    /// query (any letter case, any ID, RD and CD set) is header + the client's question + the
    /// tail.
    #[test]
    fn fast_and_slow_paths_are_byte_identical() {
        let cat = sample();
        let table = compile(&cat);
        assert!(table.len() > 300, "{}", table.len());
        assert_byte_identical(&cat, &table);
    }

    /// The same across zones: a CNAME answer compiled in one zone carries the data of the zone
    /// its chain ends in (RFC 1034 §4.3.2 step 3a), exactly as the slow path answers it.
    #[test]
    fn cross_zone_chains_compile_to_the_slow_paths_bytes() {
        let cat = crate::answer::testzones::cross_zone_catalog();
        let table = compile(&cat);
        assert_byte_identical(&cat, &table);
        let c = find(&table, "alias.a.test.", RecordType::A, Variant::Edns).unwrap();
        assert_eq!((c.flags, c.ancount, c.nscount), (0x8400, 2, 0));
        let c = find(&table, "alias-nx.a.test.", RecordType::AAAA, Variant::Edns).unwrap();
        assert_eq!((c.flags, c.ancount, c.nscount), (0x8403, 1, 1));
        let c = find(
            &table,
            "alias-deleg.a.test.",
            RecordType::A,
            Variant::NoEdns,
        )
        .unwrap();
        assert_eq!(
            (c.flags, c.ancount, c.nscount, c.arcount),
            (0x8400, 1, 1, 1)
        );
        let c = find(
            &table,
            "alias-child.a.test.",
            RecordType::A,
            Variant::NoEdns,
        )
        .unwrap();
        assert_eq!((c.ancount, c.nscount), (2, 0));
    }

    /// The answers of plain names rendered once per shape (`plain`) are each name's own bytes,
    /// beside names of the same lengths that must not take them: on the way to MNAME and RNAME
    /// (compressed against the query name), a CNAME, a cut, a DNAME, the apex, a wildcard, a
    /// name in an expired zone, a signed catalog; addresses with other TTLs, an owner spelt in
    /// capitals, two addresses.
    #[test]
    fn plain_names_rendered_once_per_shape_get_their_own_bytes() {
        let text = "$TTL 60\n@ SOA ns1 hm.ns1 1 2 3 4 30\n NS ns1\nns1 A 192.0.2.1\n\
                    ns2 A 192.0.2.2\nns3 TXT x\nx.ns1 A 192.0.2.3\nx.ns2 A 192.0.2.4\n\
                    hm.ns1 A 192.0.2.5\nhm.ns2 A 192.0.2.6\nns4 CNAME ns2\nns5 NS ns.ns5\n\
                    ns.ns5 A 192.0.2.7\nns6 DNAME ns2.memo.test.\n*.ns7 A 192.0.2.8\n\
                    ab.ns7 AAAA 2001:db8::1\nx.ns8 A 192.0.2.9\nexp A 192.0.2.10\n\
                    a.exp A 192.0.2.11\nb.exp A 192.0.2.12\nns9 300 A 192.0.2.20\n\
                    NsA A 192.0.2.21\nnsb A 192.0.2.22\nnsb A 192.0.2.23\n\
                    nsc AAAA 2001:db8::2\nnsd 30 AAAA 2001:db8::3\nnse AAAA 2001:db8::4\n\
                    nse AAAA 2001:db8::5\n";
        let zone = || Zone::from_text("memo.test.", text).unwrap();
        let cat = Catalog::from_zones([zone()]);
        assert_byte_identical(&cat, &compile(&cat));
        let mut expired = Catalog::from_zones([zone()]);
        expired.set_expired(&["exp.memo.test.".to_string()]);
        assert_byte_identical(&expired, &compile(&expired));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones/signed");
        let nsec = std::fs::read_to_string(dir.join("nsec.example.zone")).unwrap();
        let signed =
            Catalog::from_zones([zone(), Zone::from_text("nsec.example.", &nsec).unwrap()]);
        assert!(signed.zones().iter().any(|z| z.is_signed()));
        assert_byte_identical(&signed, &compile(&signed));
    }

    fn assert_byte_identical(cat: &Catalog, table: &[CompiledAnswer]) {
        // Closest-encloser entries answer other (missing) names: fast_path_emulation checks them.
        for (i, c) in table
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_pass_marker() && c.qtype != QTYPE_ENCLOSER)
        {
            let qname = mixed_case(&c.qname, i);
            // The entry for "other types" must be what any absent data type gets.
            let qtype = if c.qtype == QTYPE_OTHER {
                65280 + (i % 200) as u16
            } else {
                c.qtype
            };
            let edns = edns_for(c.variant);
            let id = 0x4000u16.wrapping_add(i as u16);
            let flags = FLAG_RD | FLAG_CD;
            let packet = crate::wire::testutil::query_packet(id, flags, &qname, qtype, edns);
            let slow = respond(cat, &packet, Transport::Udp).unwrap();
            let q = question(&qname, qtype, 1);
            assert_eq!(
                slow,
                c.response(id, flags, &q),
                "{qname} {qtype} {:?}",
                c.variant
            );
            assert_eq!(c.flags & (FLAG_RD | FLAG_CD), 0);
            assert_eq!(slow[2] & 0x01, 0x01, "RD copied");
            assert_eq!(slow[3] & 0x10, 0, "CD cleared (RFC 4035 §3.1.6)");
        }
    }

    type Index<'a> = HashMap<(&'a [u8], u16, Variant), &'a CompiledAnswer>;

    /// What the XDP program sends for a query, from the table alone, step by step as
    /// xdp-ebpf/src/maps.rs does it: the exact type, the name's entry for other data types, then
    /// the walk up the name's suffixes to a closest-encloser entry, with its pointers relocated.
    /// `None`: the program passes the query up.
    fn emulate(idx: &Index, qname: &[u8], qtype: u16, v: Variant) -> Option<CompiledAnswer> {
        if qtype == QTYPE_OTHER || qtype == QTYPE_ENCLOSER {
            return None;
        }
        let found = idx.get(&(qname, qtype, v)).or_else(|| {
            is_data_type(qtype)
                .then(|| idx.get(&(qname, QTYPE_OTHER, v)))
                .flatten()
        });
        if let Some(c) = found {
            return (!c.is_pass_marker()).then(|| (*c).clone());
        }
        if !is_data_type(qtype) || qname.len() > rampart_common::SHORT_NAME_LEN {
            return None;
        }
        let c = crate::zone::suffixes(qname).find_map(|s| idx.get(&(s, QTYPE_ENCLOSER, v)))?;
        if c.is_pass_marker() {
            return None;
        }
        let r = c
            .relocation
            .as_ref()
            .expect("encloser templates carry a relocation");
        let delta = (qname.len() - r.ref_qname_len as usize) as u16;
        let mut tail = c.tail.to_vec();
        for &p in &r.pointers {
            let p = p as usize;
            let w = u16::from_be_bytes([tail[p], tail[p + 1]]) + delta;
            tail[p..p + 2].copy_from_slice(&w.to_be_bytes());
        }
        Some(CompiledAnswer {
            tail: tail.into(),
            ..(*c).clone()
        })
    }

    /// What the emulated fast path answered over a corpus.
    #[derive(Debug, Default)]
    struct Coverage {
        /// Queries answered.
        fast: usize,
        /// NXDOMAIN answers (all from closest-encloser templates).
        nx: usize,
        /// Referrals for names below a cut (from the cut's template).
        below_cut: usize,
        /// Of those, DO queries.
        below_cut_do: usize,
    }

    /// Every query of a corpus (each name of the table and of the zones, occluded ones included;
    /// missing names 1, 2 and 3 labels below each, of mixed lengths; names along the SOA's
    /// MNAME/RNAME and below glue; in mixed case, several types, every variant) gets from the
    /// emulated fast path either nothing or exactly the slow path's bytes.
    fn assert_fast_path_matches_slow_path(cat: &Catalog, table: &[CompiledAnswer]) -> Coverage {
        let idx: Index = table
            .iter()
            .map(|c| ((&*c.qname, c.qtype, c.variant), c))
            .collect();
        let mut bases: Vec<Vec<u8>> = table.iter().map(|c| c.qname.to_vec()).collect();
        for zone in cat.zones() {
            bases.extend(
                zone.nodes_sorted()
                    .iter()
                    .map(|(k, _)| k.as_wire().to_vec()),
            );
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        let prefixes: [&[u8]; 9] = [
            b"",
            b"\x03zz9",
            b"\x01a\x03zz9",
            b"\x02bb\x0dqq-0123456789\x01a",
            b"\x0ahostmaster",
            b"\x03ns1",
            b"\x02ns",
            b"\x01x\x03ns1",
            b"\x01x\x02ns",
        ];
        for base in &bases {
            for prefix in prefixes {
                let mut n = prefix.to_vec();
                n.extend_from_slice(base);
                if n.len() <= 255 {
                    names.push(n);
                }
            }
        }
        names.sort();
        names.dedup();
        let mut seen = Coverage::default();
        for (i, name) in names.iter().enumerate() {
            let qname = mixed_case(name, i);
            for qtype in [1u16, 28, 15, 16, 43, 65280, 255] {
                for v in Variant::ALL {
                    let Some(c) = emulate(&idx, name, qtype, v) else {
                        continue;
                    };
                    let edns = edns_for(v);
                    let id = 0x2000u16.wrapping_add(i as u16);
                    let packet =
                        crate::wire::testutil::query_packet(id, FLAG_RD, &qname, qtype, edns);
                    let slow = respond(cat, &packet, Transport::Udp).unwrap();
                    let q = question(&qname, qtype, 1);
                    assert_eq!(slow, c.response(id, FLAG_RD, &q), "{qname} {qtype} {v:?}");
                    seen.fast += 1;
                    seen.nx += usize::from(c.flags & 0xf == 3);
                    let referral = c.flags & 0x040f == 0 && c.ancount == 0 && c.nscount > 0;
                    if referral && *c.qname != **name {
                        seen.below_cut += 1;
                        seen.below_cut_do += usize::from(v == Variant::EdnsDo);
                    }
                }
            }
        }
        assert!(seen.nx > 0, "no NXDOMAIN from the fast path");
        seen
    }

    #[test]
    fn fast_path_answers_equal_the_slow_paths_nxdomain_included() {
        let cat = sample();
        let seen = assert_fast_path_matches_slow_path(&cat, &compile(&cat));
        assert!(seen.fast > 1000, "{seen:?}");
        // sub.example.com: NS ns1.sub (A+AAAA glue) and ns.example.net, 5 pointers; with DO its
        // DS (the zone is unsigned: no RRSIG).
        assert!(seen.below_cut > 100 && seen.below_cut_do > 30, "{seen:?}");
        let cat = crate::answer::testzones::cross_zone_catalog();
        assert_fast_path_matches_slow_path(&cat, &compile(&cat));
    }

    /// The lab's zones (tests/fixtures/zones): a parent and its delegated child on one server
    /// (child.example.com), sem.example's delegations (one with sibling glue and three NS, whose
    /// referral needs more pointers than `MAX_RELOCS`), signed zones with NSEC, NSEC3 and
    /// opt-out and their secure and insecure delegations.
    #[test]
    fn lab_zones_fast_path_matches_the_slow_path_below_cuts() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zones");
        let cat = Catalog::load(&[], Some(&dir)).unwrap();
        let table = compile(&cat);
        assert_byte_identical(&cat, &table);
        let seen = assert_fast_path_matches_slow_path(&cat, &table);
        assert!(seen.below_cut > 300 && seen.below_cut_do > 100, "{seen:?}");
        let enc = |n: &str, v| find_exact(&table, n, QTYPE_ENCLOSER, v).unwrap();
        let is_referral = |c: &CompiledAnswer| c.flags == 0x8000 && c.ancount == 0;
        for v in Variant::ALL {
            assert!(is_referral(enc("sub.example.com.", v)), "{v:?}");
            assert!(is_referral(enc("deleg-far.sem.example.", v)), "{v:?}");
            assert!(enc("ns.sub.example.com.", v).is_pass_marker(), "glue");
            // Nine pointers: more than the program relocates.
            assert!(enc("deleg.sem.example.", v).is_pass_marker(), "{v:?}");
        }
        // The child zone's apex answers for names below it, not the parent's cut.
        let child = enc("child.example.com.", Variant::Edns);
        assert_eq!(child.flags & 0x040f, 0x0403, "the child's NXDOMAIN");
        // Signed parents: DO referrals carry DS+RRSIG or the NSEC/NSEC3 proof of no DS.
        for cut in [
            "sub.nsec.example.",
            "insecure.nsec3.example.",
            "insecure.optout.example.",
        ] {
            let c = enc(cut, Variant::EdnsDo);
            assert!(is_referral(c) && c.nscount > 2, "{cut} {c:?}");
        }
    }

    /// Signed zones (zones/signed): DO answers come from the table with their RRSIGs and
    /// proofs, byte for byte the slow path's. (Their DO NXDOMAIN is too big for a template
    /// anyway; the next test has one small enough.)
    #[test]
    fn signed_zones_compile_to_the_slow_paths_bytes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones/signed");
        let cat = Catalog::load(&[], Some(&dir)).unwrap();
        let table = compile(&cat);
        assert_byte_identical(&cat, &table);
        assert_fast_path_matches_slow_path(&cat, &table);
        let a = |v| find(&table, "www.nsec3.example.", RecordType::A, v).unwrap();
        assert_eq!(
            (a(Variant::Edns).ancount, a(Variant::EdnsDo).ancount),
            (1, 2)
        );
        let mx = |v| find(&table, "www.nsec.example.", RecordType::MX, v).unwrap();
        assert_eq!(
            (mx(Variant::Edns).nscount, mx(Variant::EdnsDo).nscount),
            (1, 4)
        );
        for zone in ["nsec.example.", "nsec3.example."] {
            let enc = |v| find_exact(&table, zone, QTYPE_ENCLOSER, v).unwrap();
            assert!(enc(Variant::EdnsDo).is_pass_marker(), "{zone}");
            assert!(!enc(Variant::Edns).is_pass_marker(), "{zone}");
        }
    }

    /// Missing names never get a DO template in a signed zone, while the other variants keep
    /// theirs (templates are given up per variant). The NSECs proving a name missing depend on
    /// the name (RFC 4035 §3.1.3.2): here the probe names `x` and `xxxx` share them (both after
    /// `www.t.`) while `ns1.t.` needs the apex's. What keeps the DO template out is the explicit
    /// NSEC/NSEC3 check in `nx_templates`: the two probe names' answers differ only in
    /// relocatable pointers, within `MAX_RELOCS` (without the check this test fails). Tiny fake
    /// signatures (signer `.`) and SOA names outside the zone keep the answer under 512 octets.
    #[test]
    fn signed_nxdomain_gets_no_do_template() {
        let sig = |t: &str, labels: u8| {
            format!("RRSIG {t} 15 {labels} 60 20360101000000 20260101000000 1 . AAAA")
        };
        let text = format!(
            "$TTL 60\n@ SOA ns.o. hm.o. 1 2 3 4 30\n {}\n NS ns.o.\n {}\n\
             \x20NSEC www.t. NS SOA RRSIG NSEC\n {}\nwww A 192.0.2.2\n {}\n\
             \x20NSEC t. A RRSIG NSEC\n {}\n",
            sig("SOA", 1),
            sig("NS", 1),
            sig("NSEC", 1),
            sig("A", 2),
            sig("NSEC", 2),
        );
        let cat = Catalog::from_zones([crate::zone::Zone::from_text("t.", &text).unwrap()]);
        let table = compile(&cat);
        assert_fast_path_matches_slow_path(&cat, &table);
        let enc = |v| find_exact(&table, "t.", QTYPE_ENCLOSER, v).unwrap();
        assert!(enc(Variant::EdnsDo).is_pass_marker());
        assert!(!enc(Variant::Edns).is_pass_marker() && !enc(Variant::NoEdns).is_pass_marker());
    }

    #[test]
    fn nxdomain_is_compiled_where_the_closest_encloser_decides_it() {
        let table = compile(&sample());
        let enc = |n: &str| find_exact(&table, n, QTYPE_ENCLOSER, Variant::Edns).unwrap();
        let apex = enc("example.com.");
        assert_eq!((apex.flags, apex.ancount, apex.nscount), (0x8403, 0, 1));
        assert!(!apex.relocation.as_ref().unwrap().pointers.is_empty());
        let cut = enc("sub.example.com.");
        assert_eq!(
            (cut.flags, cut.ancount, cut.nscount, cut.arcount),
            (0x8000, 0, 2, 3),
            "a cut: the referral (with OPT), not NXDOMAIN"
        );
        assert_eq!(cut.relocation.as_ref().unwrap().pointers.len(), 5);
        assert!(
            enc("ns1.example.com.").is_pass_marker(),
            "on the MNAME chain"
        );
        assert!(
            enc("hostmaster.example.com.").is_pass_marker(),
            "on the RNAME chain"
        );
        assert!(
            find_exact(
                &table,
                "ns1.sub.example.com.",
                QTYPE_ENCLOSER,
                Variant::Edns
            )
            .unwrap()
            .is_pass_marker(),
            "glue: the slow path compresses its owner against the query name"
        );
        assert!(
            find_exact(&table, "zz.sub.example.com.", QTYPE_ENCLOSER, Variant::Edns).is_none(),
            "below a cut, off the way to glue: the cut's template"
        );
        // A CNAME owner answers uncommon types from the slow path, and never walks to NXDOMAIN.
        assert!(
            find_exact(&table, "alias.example.com.", QTYPE_OTHER, Variant::Edns)
                .unwrap()
                .is_pass_marker()
        );
        // The program's walk starts at a missing name's parent: every name with an encloser
        // entry has a shared one (a marker where the name is off the tree, like hostmaster), so
        // the name itself is never taken for missing.
        for e in table.iter().filter(|c| c.qtype == QTYPE_ENCLOSER) {
            assert!(
                (table.iter()).any(|c| c.qname == e.qname
                    && c.qtype == QTYPE_OTHER
                    && c.variant == e.variant),
                "{:?} has an encloser entry and no shared one",
                NameKey::from_wire(&e.qname)
            );
        }
        assert!(
            find_exact(
                &table,
                "hostmaster.example.com.",
                QTYPE_OTHER,
                Variant::Edns
            )
            .unwrap()
            .is_pass_marker()
        );
    }

    #[test]
    fn owners_equal_to_the_qname_are_pointers_to_the_question() {
        let table = compile(&sample());
        let c = find(&table, "www.example.com.", RecordType::A, Variant::NoEdns).unwrap();
        assert_eq!(
            (c.flags, c.ancount, c.nscount, c.arcount),
            (0x8400, 1, 0, 0)
        );
        // Owner 0xC00C, A, IN, TTL 3600, RDLENGTH 4, 192.0.2.10.
        assert_eq!(
            *c.tail,
            [
                0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 10
            ]
        );
        let e = find(&table, "www.example.com.", RecordType::A, Variant::EdnsDo).unwrap();
        assert_eq!(e.arcount, 1);
        assert_eq!(&e.tail[..16], &c.tail[..]);
        assert_eq!(&e.tail[16..], [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        let e = find(&table, "www.example.com.", RecordType::A, Variant::Edns).unwrap();
        assert_eq!(&e.tail[16..], [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        // Every compiled positive answer for the name itself starts with the pointer.
        for c in table.iter().filter(|c| c.ancount > 0) {
            assert_eq!(
                &c.tail[..2],
                [0xc0, 0x0c],
                "{:?}",
                NameKey::from_wire(&c.qname)
            );
        }
    }

    #[test]
    fn compiles_the_right_set() {
        let table = compile(&sample());
        let has = |n: &str, t: RecordType| find(&table, n, t, Variant::Edns).is_some();
        // Positive, NODATA (incl. ENT), CNAME for common types, referral at the cut, DS there.
        assert!(has("example.com.", RecordType::SOA) && has("example.com.", RecordType::HTTPS));
        assert!(has("www.example.com.", RecordType::MX));
        let ent = find(&table, "b.example.com.", RecordType::A, Variant::Edns).unwrap();
        assert_eq!((ent.flags & 0xf, ent.ancount, ent.nscount), (0, 0, 1));
        let cname = find(
            &table,
            "alias.example.com.",
            RecordType::AAAA,
            Variant::Edns,
        )
        .unwrap();
        assert_eq!(cname.ancount, 3);
        let referral = find(&table, "sub.example.com.", RecordType::A, Variant::NoEdns).unwrap();
        assert_eq!(referral.flags & 0x0400, 0, "AA clear");
        assert_eq!(
            (referral.ancount, referral.nscount, referral.arcount),
            (0, 2, 2)
        );
        let ds = find(&table, "sub.example.com.", RecordType::DS, Variant::NoEdns).unwrap();
        assert_eq!((ds.flags, ds.ancount), (0x8400, 1));
        assert!(has("unknown.example.com.", RecordType::Unknown(65400)));
        // Not enumerable: below the cut; nonexistent names; other zones' names only once.
        assert!(!has("ns1.sub.example.com.", RecordType::A));
        assert!(!has("nope.example.com.", RecordType::A));
        assert!(
            table
                .iter()
                .all(|c| c.flags & 0xf != 3 || c.qtype == QTYPE_ENCLOSER),
            "NXDOMAIN only as closest-encloser templates"
        );
        let mut keys: Vec<_> = table
            .iter()
            .map(|c| (&c.qname, c.qtype, c.variant))
            .collect();
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "no key twice");
        // Deterministic.
        assert_eq!(table, compile(&sample()));
    }

    /// In an unsigned catalog every sendable answer is rendered once, in its EDNS form, and
    /// stands for the other two variants; a signed zone's DO answers are rendered (and the
    /// expansion of both is what the byte-identity tests compare with the slow path).
    #[test]
    fn variants_are_derived_in_the_compiler_where_sure() {
        let table = super::compile(&sample());
        let both = DERIVE_NOEDNS | DERIVE_DO;
        let www = NameKey::parse("www.example.com.").unwrap();
        let a = (table.iter())
            .find(|c| *c.qname == *www.as_wire() && c.qtype == 1)
            .unwrap();
        assert_eq!((a.variant, a.derived), (Variant::Edns, both));
        assert!(
            (table.iter())
                .filter(|c| c.variant != Variant::Edns)
                .all(|c| c.is_pass_marker()),
            "only markers get a variant entry of their own"
        );
        assert_eq!(answer_count(&table), expand(&table).len());
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zones");
        let signed = super::compile(&Catalog::load(&[], Some(&dir)).unwrap());
        assert!(
            (signed.iter()).any(|c| c.variant == Variant::EdnsDo && !c.is_pass_marker()),
            "DO answers rendered (those equal to the EDNS one with DO set are folded into it)"
        );
    }

    /// A name's entries share one block of its name, and names of one length share their
    /// shared entry's tail (NODATA): a million names' table holds neither a million times.
    #[test]
    fn names_and_like_tails_are_shared() {
        let text = "$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n\
                    h1 A 192.0.2.1\nh2 A 192.0.2.2\nh3 AAAA 2001:db8::3\nlonger A 192.0.2.4\n";
        let table = super::compile(&Catalog::from_zones([
            Zone::from_text("t.test.", text).unwrap()
        ]));
        let entry = |name: &str, qtype: u16| {
            let key = NameKey::parse(name).unwrap();
            (table.iter())
                .find(|c| *c.qname == *key.as_wire() && c.qtype == qtype)
                .unwrap()
        };
        let [h1, h2, h3] =
            ["h1.t.test.", "h2.t.test.", "h3.t.test."].map(|n| entry(n, QTYPE_OTHER));
        assert!(Arc::ptr_eq(&h1.tail, &h2.tail) && Arc::ptr_eq(&h2.tail, &h3.tail));
        assert!(Arc::ptr_eq(&h1.qname, &entry("h1.t.test.", 1).qname));
        let longer = entry("longer.t.test.", QTYPE_OTHER);
        assert!(!Arc::ptr_eq(&h1.tail, &longer.tail) && h1.tail != longer.tail);
    }

    #[test]
    fn oversized_answers_are_left_to_the_slow_path() {
        let txt: String = (0..8)
            .map(|i| format!("big TXT \"{i}-{}\"\n", "x".repeat(80)))
            .collect();
        let text = format!("$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n{txt}");
        let cat = Catalog::from_zones([Zone::from_text("t.test.", &text).unwrap()]);
        let table = compile(&cat);
        // ~700 bytes: too big without EDNS, fine with it.
        let marker = find_exact(&table, "big.t.test.", 16, Variant::NoEdns).unwrap();
        assert!(
            marker.is_pass_marker(),
            "present, so the program won't try the NODATA entry"
        );
        assert!(find(&table, "big.t.test.", RecordType::TXT, Variant::NoEdns).is_none());
        assert!(find(&table, "big.t.test.", RecordType::TXT, Variant::Edns).is_some());
        assert!(find(&table, "big.t.test.", RecordType::A, Variant::NoEdns).is_some());
    }

    /// `cargo test --release -p rampart -- --ignored --nocapture compile_speed`
    #[test]
    #[ignore]
    fn compile_speed() {
        let mut text = String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n");
        for i in 0..10_000 {
            text.push_str(&format!(
                "host{i} A 198.51.{}.{}\n AAAA 2001:db8::{i:x}\n",
                i / 256,
                i % 256
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.test.zone");
        std::fs::write(&path, text).unwrap();
        let t = std::time::Instant::now();
        let cat = Catalog::load(&[crate::zone::ZoneSpec { origin: None, path }], None).unwrap();
        let loaded = t.elapsed();
        let t = std::time::Instant::now();
        let table = compile(&cat);
        eprintln!(
            "load {loaded:?}, compile {:?} for {} entries",
            t.elapsed(),
            table.len()
        );
    }
}
