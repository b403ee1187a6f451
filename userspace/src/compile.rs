//! Zone model → table of precompiled answers for the fast path (DESIGN.md §2).
//!
//! Every entry is produced by the slow path's own pipeline (`answer::answer`, then
//! `wire::render_full` for a synthetic query), so the fast path can only ever send bytes the slow
//! path would have sent.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rampart_common::{CLASSIC_UDP_LIMIT, EDNS_PAYLOAD, QTYPE_OTHER, Variant, is_data_type};

use crate::answer::{self, Question};
use crate::wire::{self, HEADER_LEN, Query};
use crate::zone::{Catalog, NameKey, Node, Zone};

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
    /// Query name in wire form, lowercased.
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub variant: Variant,
    /// Header flags (QR, AA, RCODE; RD/CD clear: the program copies them from the query).
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes after the question.
    pub tail: Vec<u8>,
}

impl CompiledAnswer {
    /// An entry that only says "not from the fast path".
    pub fn is_pass_marker(&self) -> bool {
        self.tail.is_empty()
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

/// Compiles every zone of the catalog, zones and names in canonical order, then qtype, then
/// variant: the same catalog always gives the same table.
///
/// An entry may carry another zone's data: a CNAME or DNAME chain goes on into every zone we
/// serve (RFC 1034 §4.3.2 step 3a, see `answer::solve_answer`). That is why the whole catalog
/// is compiled at once, on every load and reload, and never one zone alone.
pub fn compile(catalog: &Catalog) -> Vec<CompiledAnswer> {
    crate::parallel::map(&catalog.zones(), |z| compile_zone(catalog, z))
        .into_iter()
        .flatten()
        .collect()
}

/// Compiles the names of one zone. Names below a cut or a DNAME are not enumerable (the slow
/// path answers them), and nonexistent names get no entry (NXDOMAIN is the fast path's
/// per-zone template).
pub fn compile_zone(catalog: &Catalog, zone: &Zone) -> Vec<CompiledAnswer> {
    let mut out = Vec::with_capacity(zone.node_count() * 3 * Variant::ALL.len());
    for (key, node) in zone.nodes_sorted() {
        if node.is_occluded() || !in_this_zone(catalog, zone, key) {
            continue;
        }
        for qtype in explicit_qtypes(node) {
            compile_one(catalog, key, qtype.into(), qtype, &mut out);
        }
        if node.rrset(RecordType::CNAME).is_none() {
            compile_one(catalog, key, QTYPE_OTHER, probe_qtype(node), &mut out);
        }
    }
    out
}

/// Types compiled with an entry of their own at a name: those it has, DS (answered from the
/// parent side at a cut or apex, RFC 4035 §3.1.4.1), and at a CNAME the common ones.
fn explicit_qtypes(node: &Node) -> Vec<RecordType> {
    let mut types: Vec<RecordType> = node.rrsets().iter().map(|s| s.rtype()).collect();
    types.push(RecordType::DS);
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

/// Compile the answers to `probe` at `key` under the map key type `key_qtype`. An answer the
/// fast path must not send (too big for the variant, or not a plain answer) still gets an entry,
/// with an empty tail, so the program sends the query up instead of trying `QTYPE_OTHER`.
fn compile_one(
    catalog: &Catalog,
    key: &NameKey,
    key_qtype: u16,
    probe: RecordType,
    out: &mut Vec<CompiledAnswer>,
) {
    for variant in Variant::ALL {
        let query = Query::synthetic(key, probe, variant);
        let ans = answer::answer(catalog, &query.question());
        let bytes = wire::render_full(&query, &ans);
        let limit = match variant {
            Variant::NoEdns => CLASSIC_UDP_LIMIT,
            Variant::Edns | Variant::EdnsDo => EDNS_PAYLOAD,
        } as usize;
        let mut entry = CompiledAnswer {
            qname: key.as_wire().to_vec(),
            qtype: key_qtype,
            variant,
            flags: 0,
            ancount: 0,
            nscount: 0,
            arcount: 0,
            tail: Vec::new(),
        };
        if bytes.len() <= limit
            && !matches!(ans.rcode, ResponseCode::Refused | ResponseCode::ServFail)
        {
            let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
            entry.flags = word(2);
            entry.ancount = word(6);
            entry.nscount = word(8);
            entry.arcount = word(10);
            entry.tail = bytes[HEADER_LEN + query.question.len()..].to_vec();
        }
        out.push(entry);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::server::respond;
    use crate::wire::testutil::question;
    use crate::wire::{FLAG_CD, FLAG_RD, Transport};

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
            .find(|c| c.qname == key.as_wire() && c.qtype == qtype && c.variant == v)
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

    /// DESIGN.md §1: for every compiled answer, the slow path's response to the same query (any
    /// letter case, any ID, RD and CD set) is header + the client's question + the tail.
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

    fn assert_byte_identical(cat: &Catalog, table: &[CompiledAnswer]) {
        for (i, c) in table
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.is_pass_marker())
        {
            let qname = mixed_case(&c.qname, i);
            // The entry for "other types" must be what any absent data type gets.
            let qtype = if c.qtype == QTYPE_OTHER {
                65280 + (i % 200) as u16
            } else {
                c.qtype
            };
            let edns = match c.variant {
                Variant::NoEdns => None,
                Variant::Edns => Some((1232, false, 0)),
                Variant::EdnsDo => Some((1232, true, 0)),
            };
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
            c.tail,
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
            table.iter().all(|c| c.flags & 0xf != 3),
            "no NXDOMAIN entries"
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
