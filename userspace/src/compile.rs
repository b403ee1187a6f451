//! Zone model → table of precompiled answers for the fast path (DESIGN.md §2).
//!
//! Every entry is produced by the slow path's own pipeline (`answer::answer`, then
//! `wire::render_full` for a synthetic query), so the fast path can only ever send bytes the slow
//! path would have sent.
// The CLI (owned separately) is not wired to this module yet; drop this once it is.
#![allow(dead_code)]

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rampart_common::{CLASSIC_UDP_LIMIT, EDNS_PAYLOAD, Variant};

use crate::answer::{self, Question};
use crate::wire::{self, HEADER_LEN, Query};
use crate::zone::{Catalog, NameKey, Node, Zone};

/// Query types compiled at every name (as NODATA, CNAME or referral when the name has no such
/// RRset): what resolvers actually ask. Types a name has are always compiled too.
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
    /// The whole response the fast path sends for a query with this ID, flags (only RD and CD
    /// are used) and question bytes.
    pub fn response(&self, id: u16, query_flags: u16, question: &[u8]) -> Vec<u8> {
        let flags = self.flags | (query_flags & (wire::FLAG_RD | wire::FLAG_CD));
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
pub fn compile(catalog: &Catalog) -> Vec<CompiledAnswer> {
    let zones = catalog.zones();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || zones.len() <= 1 {
        return zones
            .iter()
            .flat_map(|z| compile_zone(catalog, z))
            .collect();
    }
    // Zones are independent; compile them on every core and keep the order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut parts: Vec<(usize, Vec<CompiledAnswer>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(zones.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(zone) = zones.get(i) else { break };
                        out.push((i, compile_zone(catalog, zone)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("compiler thread panicked"))
            .collect()
    });
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().flat_map(|(_, p)| p).collect()
}

/// Compiles the names of one zone. Names below a cut or a DNAME are not enumerable (the slow
/// path answers them), and nonexistent names get no entry (NXDOMAIN is the fast path's
/// per-zone template).
pub fn compile_zone(catalog: &Catalog, zone: &Zone) -> Vec<CompiledAnswer> {
    let mut out = Vec::with_capacity(zone.node_count() * COMMON_QTYPES.len() * Variant::ALL.len());
    for (key, node) in zone.nodes_sorted() {
        if node.is_occluded() {
            continue;
        }
        for qtype in qtypes_for(node) {
            compile_one(catalog, zone, key, qtype, &mut out);
        }
    }
    out
}

/// The common types plus whatever the name has, by type code.
fn qtypes_for(node: &Node) -> Vec<RecordType> {
    let mut types: Vec<RecordType> = COMMON_QTYPES.to_vec();
    types.extend(node.rrsets().iter().map(|s| s.rtype()));
    types.sort_by_key(|t| u16::from(*t));
    types.dedup();
    types
}

fn compile_one(
    catalog: &Catalog,
    zone: &Zone,
    key: &NameKey,
    qtype: RecordType,
    out: &mut Vec<CompiledAnswer>,
) {
    let question = Question {
        qname: key,
        qtype,
        dnssec_ok: false,
    };
    // Another zone may answer this (a child zone we also serve, DS from the parent): that zone
    // compiles it, so no key appears twice.
    match answer::select_zone(catalog, &question) {
        Some(z) if std::ptr::eq(z, zone) => {}
        _ => return,
    }
    for variant in Variant::ALL {
        let query = Query::synthetic(key, qtype, variant);
        let ans = answer::answer(catalog, &query.question());
        if matches!(ans.rcode, ResponseCode::Refused | ResponseCode::ServFail) {
            continue;
        }
        let bytes = wire::render_full(&query, &ans);
        let limit = match variant {
            Variant::NoEdns => CLASSIC_UDP_LIMIT,
            Variant::Edns | Variant::EdnsDo => EDNS_PAYLOAD,
        } as usize;
        if bytes.len() > limit {
            // The slow path answers it with TC=1 (or in full over TCP).
            continue;
        }
        let word = |i: usize| u16::from_be_bytes([bytes[i], bytes[i + 1]]);
        out.push(CompiledAnswer {
            qname: key.as_wire().to_vec(),
            qtype: qtype.into(),
            variant,
            flags: word(2),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
            tail: bytes[HEADER_LEN + query.question.len()..].to_vec(),
        });
    }
}
