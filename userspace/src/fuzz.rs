//! Fuzz target bodies, shared by cargo-fuzz's targets (fuzz/, nightly) and the stable driver CI runs.
use std::path::Path;
use std::sync::OnceLock;

use crate::cookie::{Cookies, Secret};
use crate::identity::Identity;
use crate::respond::{Node, respond, respond_to};
use crate::wire::{self, Transport};
use crate::zone::{Catalog, Zone};

/// Where `$INCLUDE`s of fuzzed zone text would be read from: a directory that doesn't exist, so
/// the fuzzer never reads a file.
const NO_INCLUDES: &str = "/nonexistent/rampart-fuzz";

/// Zone parser: any bytes as a zone file. It must accept or reject (never panic, never hang);
/// a zone it accepts must compile, and its apex SOA and each of its first names must be answered
/// with well-formed responses.
pub fn zone_parser(data: &[u8]) {
    let zone = match Zone::from_bytes_in("fuzz.example.", data, Path::new(NO_INCLUDES)) {
        Ok(zone) => zone,
        Err(errors) => {
            // Caught, so never a crash; still a library bug the fuzzer must report.
            let caught = errors
                .iter()
                .find(|e| e.contains(crate::zone::SCANNER_FAILED));
            assert!(caught.is_none(), "{caught:?}");
            return;
        }
    };
    let names: Vec<Vec<u8>> = zone
        .nodes_sorted()
        .into_iter()
        .take(8)
        .map(|(key, _)| key.as_wire().to_vec())
        .collect();
    let catalog = Catalog::from_zones([zone]);
    crate::compile::compile(&catalog);
    for (i, name) in names.iter().enumerate() {
        for qtype in [6u16, 1, 255] {
            let q = query(i as u16, name, qtype);
            let r = respond(&catalog, &q, Transport::Udp).expect("a query in our zone is answered");
            check_response(&q, &r, Transport::Udp);
        }
    }
}

/// Query parser and answer pipeline: any bytes as a query to the test zones (signed ones
/// included), over UDP and TCP, cookies on. Whatever is sent back must be a well-formed response
/// to it: its ID, QR set, its question echoed byte for byte, within the transport's size, every
/// section readable (RDATA is not judged by type: the zone may hold what a type's grammar allows
/// but a client library would refuse, a NAPTR flag with a space in it).
pub fn query_pipeline(data: &[u8]) {
    let catalog = test_catalog();
    let cookies = Cookies {
        enabled: true,
        secret: Secret::parse("e5e973e5a6b2a43f48e7dc849e37bfcf").expect("hex"),
        staging: None,
    };
    let identity = Identity::new("fuzz.node").expect("identity");
    let node = Node {
        identity: &identity,
        cookies: &cookies,
        limits: None,
        resolver: None,
    };
    let peer = "198.51.100.2".parse().expect("address");
    for transport in [Transport::Udp, Transport::Tcp] {
        if let Some(r) = respond_to(catalog, node, peer, 1_800_000_000, data, transport) {
            check_response(data, &r, transport);
        }
    }
}

/// The fixture zones, parsed once per process (compiled into the binary: no files read).
fn test_catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let zones = [
            (
                "example.com.",
                &include_bytes!("../../tests/fixtures/zones/example.com.zone")[..],
            ),
            (
                "child.example.com.",
                include_bytes!("../../tests/fixtures/zones/child.example.com.zone"),
            ),
            (
                "example.net.",
                include_bytes!("../../tests/fixtures/zones/example.net.zone"),
            ),
            (
                "nsec.example.",
                include_bytes!("../../tests/fixtures/zones/nsec.example.zone"),
            ),
            (
                "nsec3.example.",
                include_bytes!("../../tests/fixtures/zones/nsec3.example.zone"),
            ),
            (
                "optout.example.",
                include_bytes!("../../tests/fixtures/zones/optout.example.zone"),
            ),
        ];
        Catalog::from_zones(zones.into_iter().map(|(origin, text)| {
            Zone::from_bytes_in(origin, text, Path::new(NO_INCLUDES)).expect("fixture zone")
        }))
    })
}

/// A plain query (RD clear, no EDNS) for a wire name.
fn query(id: u16, name: &[u8], qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(16 + name.len());
    for w in [id, 0, 1, 0, 0, 0] {
        q.extend_from_slice(&w.to_be_bytes());
    }
    q.extend_from_slice(name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

/// Panics unless `r` is a well-formed response to `q` over `transport`.
pub fn check_response(q: &[u8], r: &[u8], transport: Transport) {
    assert!(
        q.len() >= 12,
        "a response to {} bytes, shorter than a header",
        q.len()
    );
    assert!(r.len() >= 12, "response shorter than a header");
    assert_eq!(r[..2], q[..2], "ID echoed");
    assert_ne!(r[2] & 0x80, 0, "QR set");
    assert_eq!(q[2] & 0x80, 0, "a response was answered");
    assert_eq!(r[2] & 0x78, q[2] & 0x78, "opcode echoed");
    let limit = match transport {
        Transport::Udp => wire::parse_query(q, true).map_or(512, |p| p.udp_limit()),
        Transport::Tcp => usize::from(u16::MAX),
    };
    assert!(
        r.len() <= limit,
        "{} bytes over {transport:?}'s {limit}",
        r.len()
    );
    let qlen = sections(r).unwrap_or_else(|e| panic!("response does not parse: {e}\n{r:02x?}"));
    if let Some(len) = qlen {
        // The question as the client wrote it: same bytes, its case kept.
        assert!(q.len() >= 12 + len, "question longer than the query");
        assert_eq!(r[12..12 + len], q[12..12 + len], "question echoed");
    }
}

/// Reads a message's sections as their counts say (names, uncompressed or pointing back, record
/// headers and RDATA lengths within the message, nothing after them) without judging RDATA by
/// its type; the length of its question if it has one. More than one question is an error.
fn sections(r: &[u8]) -> Result<Option<usize>, String> {
    use domain::base::{ParsedName, Question, RecordHeader};
    use domain::dep::octseq::Parser;
    let count = |at: usize| u16::from_be_bytes([r[at], r[at + 1]]);
    let mut p = Parser::from_ref(&r);
    p.advance(12).map_err(|e| e.to_string())?;
    let qlen = match count(4) {
        0 => None,
        1 => {
            Question::<ParsedName<&[u8]>>::parse(&mut p).map_err(|e| format!("question: {e}"))?;
            Some(p.pos() - 12)
        }
        n => return Err(format!("{n} questions")),
    };
    let records: u32 = [6, 8, 10].iter().map(|&at| u32::from(count(at))).sum();
    for i in 0..records {
        let header = RecordHeader::<ParsedName<&[u8]>>::parse(&mut p)
            .map_err(|e| format!("record {i}: {e}"))?;
        p.advance(usize::from(header.rdlen()))
            .map_err(|_| format!("record {i}: RDATA past the end"))?;
    }
    match p.remaining() {
        0 => Ok(qlen),
        n => Err(format!("{n} bytes after the last record")),
    }
}

/// A small seeded PRNG (xorshift64): reproducible mutations without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bytes the mutator inserts: DNS and zone-file edge values.
const INTERESTING: &[u8] = &[
    0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, b' ', b'\n', b'(', b')', b';', b'"', b'\\', b'.',
    b'@', b'$', b'*',
];

/// One to four libFuzzer-style edits of `data`: bit flips, byte changes, inserted edge bytes,
/// deleted or duplicated runs, truncation, and splices from `others`.
pub fn mutate(data: &mut Vec<u8>, rng: &mut Rng, others: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        let pos = if len == 0 { 0 } else { rng.below(len) };
        match rng.below(8) {
            0 if len > 0 => data[pos] ^= 1 << rng.below(8),
            1 if len > 0 => data[pos] = rng.next_u64() as u8,
            2 => data.insert(pos, INTERESTING[rng.below(INTERESTING.len())]),
            3 if len > 0 => {
                let end = (pos + 1 + rng.below(16)).min(len);
                data.drain(pos..end);
            }
            4 if len > 0 => {
                let end = (pos + 1 + rng.below(32)).min(len);
                let run = data[pos..end].to_vec();
                let at = rng.below(len + 1);
                data.splice(at..at, run);
            }
            5 => data.truncate(pos),
            6 if !others.is_empty() => {
                let other = &others[rng.below(others.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let end = (from + 1 + rng.below(64)).min(other.len());
                    data.splice(pos..pos, other[from..end].iter().copied());
                }
            }
            _ if len >= 2 => {
                // A 16-bit field (a count, a type, a length) set to an edge value.
                let pos = pos.min(len - 2);
                let v: u16 = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff][rng.below(8)];
                data[pos..pos + 2].copy_from_slice(&v.to_be_bytes());
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
}

#[cfg(test)]
mod tests;
