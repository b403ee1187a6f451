//! Zone files: parsing (RFC 1035 master files), validation, and the in-memory zone model.
//!
//! Parsing goes through the `domain` crate's in-place zone file scanner; every record is composed
//! to wire format there and decoded into hickory-proto's model, which is what the rest of the
//! daemon works with. Names keep the zone's letter case in the data; every comparison and lookup
//! goes through [`NameKey`], the lowercased wire form.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::zonefile::inplace::{Entry, ScannedRecord, Zonefile};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};

/// Deepest `$INCLUDE` nesting we follow; deeper is almost certainly a mistake.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Largest zone file (each file of a zone, includes counted apart) we read: five times a
/// 1M-name zone (~52 MB), so a file that never ends (`/dev/zero` behind a symlink, a runaway
/// generator) fails with a clear error instead of eating the memory.
pub const MAX_ZONE_FILE_BYTES: u64 = 256 << 20;

// ------------------------------------------------------------------------------------------------
// Names

/// A domain name in uncompressed wire form, ASCII-lowercased: the identity the server compares,
/// hashes and looks up by (RFC 4343: names are case-insensitive). Data keeps its original case in
/// hickory [`Name`]s; this type is only the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NameKey(Box<[u8]>);

impl NameKey {
    #[cfg(test)]
    /// The root name.
    pub fn root() -> NameKey {
        NameKey(Box::new([0]))
    }

    /// Validates a wire-form name (no compression pointers) and lowercases it.
    pub fn from_wire(wire: &[u8]) -> Option<NameKey> {
        if wire_name_len(wire)? != wire.len() {
            return None;
        }
        Some(NameKey(wire.to_ascii_lowercase().into_boxed_slice()))
    }

    /// The key of a hickory name (which must be fully qualified to mean anything to us).
    pub fn from_name(name: &Name) -> NameKey {
        let mut wire = Vec::with_capacity(name.len() + 2);
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        NameKey(wire.into_boxed_slice())
    }

    #[cfg(test)]
    /// Parses presentation format (`www.example.com.`, escapes allowed); relative names are
    /// taken as absolute.
    pub fn parse(text: &str) -> Option<NameKey> {
        let name = parse_origin(text).ok()?;
        NameKey::from_wire(name.as_slice())
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// Lowercased hickory name with the same labels.
    pub fn to_name(&self) -> Name {
        wire_to_name(&self.0).expect("NameKey holds a valid wire name")
    }

    #[cfg(test)]
    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        suffixes(&self.0).count() - 1
    }

    /// The name one label up, or `None` for the root.
    pub fn parent(&self) -> Option<NameKey> {
        parent_wire(&self.0).map(|p| NameKey(p.into()))
    }

    /// True if `self` is `other` or below it.
    pub fn is_subdomain_of(&self, other: &NameKey) -> bool {
        wire_is_subdomain(&self.0, &other.0)
    }

    /// `*.` + self: the wildcard that could cover children of this name (RFC 4592 §2.1.1).
    pub fn wildcard_child(&self) -> Option<NameKey> {
        if self.0.len() + 2 > rampart_common::MAX_NAME {
            return None;
        }
        let mut wire = Vec::with_capacity(self.0.len() + 2);
        wire.extend_from_slice(&[1, b'*']);
        wire.extend_from_slice(&self.0);
        Some(NameKey(wire.into_boxed_slice()))
    }
}

impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// Canonical DNS name order (RFC 4034 §6.1): deterministic, and the order NSEC will need.
impl Ord for NameKey {
    fn cmp(&self, other: &Self) -> Ordering {
        canonical_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(f, &self.0)
    }
}

/// A lowercased wire name borrowed from elsewhere, shown as a [`NameKey`] is.
struct WireName<'a>(&'a [u8]);

impl fmt::Display for WireName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(f, self.0)
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameKey({self})")
    }
}

/// Length of the wire name at the start of `wire` (uncompressed), if it is well formed.
pub fn wire_name_len(wire: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos)? as usize;
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos > rampart_common::MAX_NAME {
            return None;
        }
        if len == 0 {
            return if pos <= wire.len() { Some(pos) } else { None };
        }
    }
}

/// The name and each of its ancestors, longest first, ending with the root (`[0]`).
pub fn suffixes(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = Some(wire);
    std::iter::from_fn(move || {
        let cur = next?;
        next = parent_wire(cur);
        Some(cur)
    })
}

/// The wire name with its first label removed; `None` for the root (or garbage).
pub fn parent_wire(wire: &[u8]) -> Option<&[u8]> {
    let len = *wire.first()? as usize;
    if len == 0 {
        return None;
    }
    wire.get(1 + len..)
}

/// True if `child` equals `parent` or lies below it. Both must be lowercased wire names.
pub fn wire_is_subdomain(child: &[u8], parent: &[u8]) -> bool {
    if child.len() < parent.len() {
        return false;
    }
    // The suffix of the right length must start on a label boundary.
    suffixes(child)
        .find(|s| s.len() <= parent.len())
        .is_some_and(|s| s == parent)
}

fn labels(wire: &[u8]) -> Vec<&[u8]> {
    suffixes(wire)
        .filter(|s| s[0] != 0)
        .map(|s| &s[1..1 + s[0] as usize])
        .collect()
}

/// Where each label of a wire name starts (its length octet), first label first; the count.
/// A name has at most 127 labels (255 octets), so this needs no allocation.
fn label_starts(wire: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || n == starts.len() {
            break;
        }
        starts[n] = pos as u8;
        n += 1;
        pos += 1 + len as usize;
    }
    n
}

/// RFC 4034 §6.1: compare label by label from the root, each label as lowercase octets.
/// (Sorting a million names calls this tens of millions of times: no allocation.)
fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut sa, mut sb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (label_starts(a, &mut sa), label_starts(b, &mut sb));
    fn label(wire: &[u8], at: u8) -> &[u8] {
        let at = at as usize;
        let len = wire[at] as usize;
        &wire[at + 1..(at + 1 + len).min(wire.len())]
    }
    for (&x, &y) in sa[..na].iter().rev().zip(sb[..nb].iter().rev()) {
        match label(a, x).cmp(label(b, y)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    na.cmp(&nb)
}

/// Decodes an uncompressed wire name into a hickory name (case kept).
pub fn wire_to_name(wire: &[u8]) -> Option<Name> {
    let mut decoder = BinDecoder::new(wire);
    Name::read(&mut decoder).ok()
}

/// Presentation format with RFC 1035 §5.1 escapes.
fn write_presentation(f: &mut impl fmt::Write, wire: &[u8]) -> fmt::Result {
    if wire == [0] {
        return f.write_char('.');
    }
    for label in labels(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Zone model

/// All records of one (owner, type): the unit DNS answers in (RFC 2181 §5).
#[derive(Clone, Debug)]
pub struct Rrset {
    /// Shared with the node and its other RRsets when written in the same case.
    owner: Arc<Name>,
    rtype: RecordType,
    ttl: u32,
    rdata: Vec<RData>,
}

impl Rrset {
    pub fn owner(&self) -> &Name {
        &self.owner
    }
    pub fn rtype(&self) -> RecordType {
        self.rtype
    }
    pub fn ttl(&self) -> u32 {
        self.ttl
    }
    pub fn rdata(&self) -> &[RData] {
        &self.rdata
    }
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.rdata.len()
    }
}

/// Everything at one name of a zone. A node without RRsets is an empty non-terminal (RFC 8020
/// §2: it exists, so it answers NODATA, never NXDOMAIN).
#[derive(Clone, Debug)]
pub struct Node {
    name: Arc<Name>,
    rrsets: Vec<Rrset>,
    /// Non-apex NS: a zone cut (RFC 1034 §4.2.1); data here and below is not ours except DS.
    cut: bool,
    /// Below a zone cut or a DNAME: glue or occluded data, never answered authoritatively.
    occluded: bool,
}

impl Node {
    fn new(name: Arc<Name>) -> Node {
        Node {
            name,
            rrsets: Vec::new(),
            cut: false,
            occluded: false,
        }
    }
    /// The name in the case of its first appearance in the zone file.
    pub fn name(&self) -> &Name {
        &self.name
    }
    /// RRsets ordered by type code.
    pub fn rrsets(&self) -> &[Rrset] {
        &self.rrsets
    }
    pub fn rrset(&self, rtype: RecordType) -> Option<&Rrset> {
        self.rrsets.iter().find(|r| r.rtype == rtype)
    }
    #[cfg(test)]
    pub fn is_empty_non_terminal(&self) -> bool {
        self.rrsets.is_empty()
    }
    /// A delegation point: NS here, and this is not the apex.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
    /// Below a cut or a DNAME.
    pub fn is_occluded(&self) -> bool {
        self.occluded
    }
    fn add(&mut self, owner: &Arc<Name>, rtype: RecordType, ttl: u32, rdata: RData) -> AddOutcome {
        match self
            .rrsets
            .binary_search_by_key(&u16::from(rtype), |r| u16::from(r.rtype))
        {
            Ok(i) => {
                let set = &mut self.rrsets[i];
                // RFC 2181 §5: an RRset has no duplicates.
                if set.rdata.contains(&rdata) {
                    return AddOutcome::Duplicate;
                }
                set.rdata.push(rdata);
                if set.ttl != ttl {
                    AddOutcome::TtlMismatch(set.ttl)
                } else {
                    AddOutcome::Added
                }
            }
            Err(i) => {
                let set = Rrset {
                    owner: owner.clone(),
                    rtype,
                    ttl,
                    rdata: vec![rdata],
                };
                self.rrsets.insert(i, set);
                AddOutcome::Added
            }
        }
    }
}

enum AddOutcome {
    Added,
    Duplicate,
    /// Added, with the RRset's TTL (the first record's) kept.
    TtlMismatch(u32),
}

/// A zone's names. Keys are the zone's own names (no one can choose them to collide), and
/// every query looks several up: foldhash, several times faster than std's SipHash here.
type Nodes = HashMap<NameKey, Node, foldhash::fast::RandomState>;

/// One authoritative zone: its apex and every name in it (including glue below cuts and empty
/// non-terminals).
#[derive(Debug)]
pub struct Zone {
    origin_key: NameKey,
    nodes: Nodes,
    source: PathBuf,
    has_wildcards: bool,
    record_count: usize,
    dnssec: Dnssec,
}

/// What denial of existence needs from a signed zone (RFC 4035 §3.1.3, RFC 5155 §7.2), indexed
/// once at load.
#[derive(Debug, Default)]
struct Dnssec {
    /// The apex has RRSIGs: DO answers carry signatures and proofs.
    signed: bool,
    /// Owners of NSEC RRsets, in canonical order (RFC 4034 §6.1).
    nsec: Vec<NameKey>,
    /// The NSEC3 chain, if the zone has NSEC3PARAM at its apex.
    nsec3: Option<Nsec3Chain>,
    /// Names holding only NSEC3 (and its RRSIGs), kept out of the zone's names: a query for
    /// one is answered as if it didn't exist (RFC 5155 §7.2.8).
    nsec3_nodes: Nodes,
}

#[derive(Debug)]
struct Nsec3Chain {
    iterations: u16,
    salt: Vec<u8>,
    /// (lowercase base32hex hash label, owner) sorted by label: hash order (RFC 5155 §3.3).
    owners: Vec<(Vec<u8>, NameKey)>,
}

/// RFC 5155 §5: IH(salt, x, k), SHA-1 only (hash algorithm 1), as lowercase base32hex (§3.3).
fn nsec3_hash(name: &NameKey, salt: &[u8], iterations: u16) -> Vec<u8> {
    use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY as SHA1, digest};
    let mut input = name.as_wire().to_vec();
    input.extend_from_slice(salt);
    let mut h = digest(&SHA1, &input);
    for _ in 0..iterations {
        let mut next = h.as_ref().to_vec();
        next.extend_from_slice(salt);
        h = digest(&SHA1, &next);
    }
    base32hex(h.as_ref())
}

fn base32hex(bytes: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = Vec::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize]);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize]);
    }
    out
}

const RRSIG: RecordType = RecordType::RRSIG;
const NSEC: RecordType = RecordType::NSEC;
const NSEC3: RecordType = RecordType::NSEC3;
const NSEC3PARAM: RecordType = RecordType::NSEC3PARAM;

impl Dnssec {
    fn index(nodes: &mut Nodes, origin: &NameKey) -> Dnssec {
        let only_nsec3: Vec<NameKey> = (nodes.iter())
            .filter(|(k, n)| {
                *k != origin
                    && n.rrset(NSEC3).is_some()
                    && n.rrsets
                        .iter()
                        .all(|r| r.rtype == NSEC3 || r.rtype == RRSIG)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let nsec3_nodes: Nodes = (only_nsec3.into_iter())
            .filter_map(|k| nodes.remove_entry(&k))
            .collect();
        let apex = &nodes[origin];
        let signed = apex.rrset(RRSIG).is_some();
        let mut nsec: Vec<NameKey> = nodes
            .iter()
            .filter(|(_, n)| n.rrset(NSEC).is_some())
            .map(|(k, _)| k.clone())
            .collect();
        nsec.sort_unstable();
        // NSEC3PARAM: algorithm, flags, iterations (2), salt length, salt.
        let nsec3 = apex
            .rrset(NSEC3PARAM)
            .and_then(|s| s.rdata().first())
            .and_then(opaque_bytes)
            .filter(|p| p.len() >= 5 && p[0] == 1 && p.len() >= 5 + p[4] as usize)
            .map(|p| {
                let mut owners: Vec<(Vec<u8>, NameKey)> = nsec3_nodes
                    .iter()
                    .filter(|(_, n)| n.rrset(NSEC3).is_some())
                    .filter_map(|(k, _)| {
                        let label = k.as_wire().get(1..1 + *k.as_wire().first()? as usize)?;
                        Some((label.to_vec(), k.clone()))
                    })
                    .collect();
                owners.sort_unstable();
                Nsec3Chain {
                    iterations: u16::from_be_bytes([p[2], p[3]]),
                    salt: p[5..5 + p[4] as usize].to_vec(),
                    owners,
                }
            });
        Dnssec {
            signed,
            nsec,
            nsec3,
            nsec3_nodes,
        }
    }
}

impl Zone {
    /// Loads one zone from its file (following `$INCLUDE`s). Errors are `file:line: message`.
    pub fn load(spec: &ZoneSpec) -> Result<(Zone, Vec<String>), Vec<String>> {
        let origin_hint = match &spec.origin {
            Some(text) => Some(OriginHint::Given(parse_origin(text).map_err(|e| {
                vec![format!("{}: bad origin {text:?}: {e}", spec.path.display())]
            })?)),
            None => origin_from_file_name(&spec.path).map(OriginHint::FileName),
        };
        let mut parsed = Parsed::default();
        let initial = origin_hint.as_ref().map(|h| h.name().clone());
        let mut state = IncludeState::new(&spec.path);
        // Parse here while another core builds the tree from the records parsed so far.
        let (sink, chunks) = crossbeam_channel::bounded(4);
        parsed.records.sink = Some(sink);
        let hint = origin_hint.as_ref();
        let builder = std::thread::scope(|s| {
            let building = s.spawn(move || {
                let mut builder = TreeBuilder::new(hint);
                for chunk in chunks {
                    builder.add_chunk(chunk);
                }
                builder
            });
            // The builder stops when the sink closes, so it must close even if the scanner
            // panics (domain 0.12 does on some malformed files): then the panic goes on.
            let parsing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                parse_file(&spec.path, initial, 0, &mut state, &mut parsed, None)
            }));
            parsed.records.close();
            let builder = building.join().expect("zone builder panicked");
            if let Err(panic) = parsing {
                std::panic::resume_unwind(panic);
            }
            builder
        });
        if !parsed.errors.is_empty() {
            return Err(parsed.errors);
        }
        finish_zone(spec, builder, &parsed)
    }

    #[cfg(test)]
    /// Parses zone text held in memory (tests, tools). `$INCLUDE` paths are relative to the
    /// current directory.
    pub fn from_text(origin: &str, text: &str) -> Result<Zone, Vec<String>> {
        let origin_name = parse_origin(origin).map_err(|e| vec![format!("bad origin: {e}")])?;
        let mut parsed = Parsed::default();
        let path = PathBuf::from(format!("<{origin}>"));
        parsed.files.push(path.clone());
        parse_bytes(
            text.as_bytes(),
            0,
            Some(origin_name.clone()),
            &path,
            0,
            &mut IncludeState::new(&std::env::current_dir().unwrap_or_default().join("text")),
            &mut parsed,
        );
        if !parsed.errors.is_empty() {
            return Err(parsed.errors);
        }
        let spec = ZoneSpec {
            origin: Some(origin.to_string()),
            path,
        };
        build_zone(&spec, Some(OriginHint::Given(origin_name)), parsed).map(|(z, _)| z)
    }

    pub fn origin_key(&self) -> &NameKey {
        &self.origin_key
    }
    /// The node at a lowercased wire name.
    pub fn node(&self, key: &[u8]) -> Option<&Node> {
        self.nodes.get(key)
    }
    pub fn apex(&self) -> &Node {
        &self.nodes[&self.origin_key]
    }
    /// The apex SOA RRset (validation guarantees exactly one record).
    pub fn soa(&self) -> &Rrset {
        self.apex()
            .rrset(RecordType::SOA)
            .expect("validated zone has an SOA")
    }
    pub fn serial(&self) -> u32 {
        match self.soa().rdata().first() {
            Some(RData::SOA(soa)) => soa.serial(),
            _ => 0,
        }
    }
    /// True if the lowercased wire name is the apex or below it.
    pub fn contains(&self, key: &[u8]) -> bool {
        wire_is_subdomain(key, self.origin_key.as_wire())
    }
    /// Every node in canonical order (deterministic output for the compiler).
    pub fn nodes_sorted(&self) -> Vec<(&NameKey, &Node)> {
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        nodes
    }
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }
    pub fn record_count(&self) -> usize {
        self.record_count
    }
    /// True if any owner name starts with `*` (RFC 4592).
    pub fn has_wildcards(&self) -> bool {
        self.has_wildcards
    }
    /// The apex carries RRSIGs: a pre-signed zone (RFC 4035 §3.1).
    pub fn is_signed(&self) -> bool {
        self.dnssec.signed
    }
    /// True if denial of existence uses NSEC3 (an NSEC3PARAM at the apex, RFC 5155 §4).
    pub fn uses_nsec3(&self) -> bool {
        self.dnssec.nsec3.is_some()
    }
    /// The node whose NSEC covers or matches `name`: the last NSEC owner at or before it in
    /// canonical order (RFC 4035 §3.1.3.2), wrapping to the last one.
    pub fn nsec_covering(&self, name: &NameKey) -> Option<&Node> {
        let owners = &self.dnssec.nsec;
        let i = owners.partition_point(|o| o <= name);
        let key = if i == 0 {
            owners.last()?
        } else {
            &owners[i - 1]
        };
        self.nodes.get(key)
    }
    /// The node whose NSEC3 has the hash of `name` as owner (RFC 5155 §7.2: "matches").
    pub fn nsec3_matching(&self, name: &NameKey) -> Option<&Node> {
        let chain = self.dnssec.nsec3.as_ref()?;
        let hash = nsec3_hash(name, &chain.salt, chain.iterations);
        let i = chain
            .owners
            .binary_search_by(|(h, _)| h.as_slice().cmp(&hash))
            .ok()?;
        self.dnssec.nsec3_nodes.get(&chain.owners[i].1)
    }
    /// The node whose NSEC3 covers the hash of `name`: the last owner hash before it, wrapping
    /// to the last one (RFC 5155 §3.1.7: the chain is circular).
    pub fn nsec3_covering(&self, name: &NameKey) -> Option<&Node> {
        let chain = self.dnssec.nsec3.as_ref()?;
        let hash = nsec3_hash(name, &chain.salt, chain.iterations);
        let i = chain
            .owners
            .partition_point(|(h, _)| h.as_slice() < hash.as_slice());
        let (_, key) = if i == 0 {
            chain.owners.last()?
        } else {
            &chain.owners[i - 1]
        };
        self.dnssec.nsec3_nodes.get(key)
    }
}

// ------------------------------------------------------------------------------------------------
// Catalog

/// A zone to load: an optional origin (`ORIGIN=FILE` on the command line) and its file.
#[derive(Clone, Debug)]
pub struct ZoneSpec {
    pub origin: Option<String>,
    pub path: PathBuf,
}

impl ZoneSpec {
    /// `ORIGIN=FILE` or just `FILE`.
    pub fn parse(arg: &str) -> ZoneSpec {
        match arg.split_once('=') {
            Some((origin, path)) if !origin.is_empty() => ZoneSpec {
                origin: Some(origin.to_string()),
                path: PathBuf::from(path),
            },
            _ => ZoneSpec {
                origin: None,
                path: PathBuf::from(arg),
            },
        }
    }
}

/// Every zone the server is authoritative for, keyed by origin.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Shared so a reload can keep a zone whose new file fails without copying it.
    zones: HashMap<NameKey, Arc<Zone>>,
    warnings: Vec<String>,
}

impl Catalog {
    /// Loads every zone in `specs` and every `*.zone` file in `zone_dir`.
    ///
    /// Origins: `ORIGIN=FILE` wins. Otherwise a file named `NAME.zone` starts with `$ORIGIN
    /// NAME.` and the zone's apex is the owner of its first SOA record (normally that same name;
    /// a file may move it with `$ORIGIN`). A file whose name doesn't fit must use absolute names
    /// or its own `$ORIGIN`; its apex is again the first SOA's owner.
    ///
    /// Any error (as `file:line: message`) rejects the whole set: every error of every zone is
    /// returned, so one run shows all of them. Use [`Catalog::load_partial`] to keep the good
    /// zones.
    pub fn load(specs: &[ZoneSpec], zone_dir: Option<&Path>) -> Result<Catalog, Vec<String>> {
        let (catalog, errors) = Catalog::load_partial(specs, zone_dir);
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Loads what loads: a zone with errors is left out, the others are kept. Returns the errors.
    pub fn load_partial(specs: &[ZoneSpec], zone_dir: Option<&Path>) -> (Catalog, Vec<String>) {
        Catalog::load_keeping(None, specs, zone_dir)
    }

    /// A reload: like [`Catalog::load_partial`], but a file that fails keeps serving the zone
    /// `previous` loaded from it, as Knot and NSD do; one bad push never takes a good zone away.
    pub fn reload(
        previous: &Catalog,
        specs: &[ZoneSpec],
        zone_dir: Option<&Path>,
    ) -> (Catalog, Vec<String>) {
        Catalog::load_keeping(Some(previous), specs, zone_dir)
    }

    fn load_keeping(
        previous: Option<&Catalog>,
        specs: &[ZoneSpec],
        zone_dir: Option<&Path>,
    ) -> (Catalog, Vec<String>) {
        let mut all: Vec<ZoneSpec> = specs.to_vec();
        let mut errors = Vec::new();
        if let Some(dir) = zone_dir {
            match zone_dir_specs(dir) {
                Ok(found) => all.extend(found),
                Err(e) => errors.push(format!("{}: {e}", dir.display())),
            }
        }
        let results = load_parallel(&all);
        let mut catalog = Catalog::default();
        for (spec, result) in all.iter().zip(results) {
            match result {
                Ok((zone, warnings)) => {
                    catalog.warnings.extend(warnings);
                    if let Some(prev) = catalog.zones.get(&zone.origin_key) {
                        errors.push(format!(
                            "{}: zone {} is already loaded from {}",
                            spec.path.display(),
                            zone.origin_key,
                            prev.source.display()
                        ));
                        continue;
                    }
                    catalog
                        .zones
                        .insert(zone.origin_key.clone(), Arc::new(zone));
                }
                Err(e) => {
                    errors.extend(e);
                    let kept =
                        previous.and_then(|p| p.zones.values().find(|z| z.source == spec.path));
                    if let Some(old) = kept {
                        errors.push(format!(
                            "{}: keeping the previously loaded zone {} (serial {})",
                            spec.path.display(),
                            old.origin_key,
                            old.serial()
                        ));
                        catalog.zones.insert(old.origin_key.clone(), old.clone());
                    }
                }
            }
        }
        (catalog, errors)
    }

    #[cfg(test)]
    /// A catalog of already built zones (tests, tools). Later duplicates replace earlier ones.
    pub fn from_zones(zones: impl IntoIterator<Item = Zone>) -> Catalog {
        let zones = zones
            .into_iter()
            .map(|z| (z.origin_key.clone(), Arc::new(z)))
            .collect();
        Catalog {
            zones,
            warnings: Vec::new(),
        }
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// Warnings from loading (TTL mismatches, missing glue, ...), as `file:line: warning: ...`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The most specific zone containing the lowercased wire name (RFC 1034 §4.3.2 step 2).
    pub fn find_zone(&self, key: &[u8]) -> Option<&Zone> {
        suffixes(key).find_map(|s| self.zones.get(s).map(|z| &**z))
    }

    /// The closest enclosing zone strictly above `zone`'s apex, if we serve one.
    pub fn parent_zone(&self, zone: &Zone) -> Option<&Zone> {
        self.find_zone(parent_wire(zone.origin_key.as_wire())?)
    }

    /// Every zone in canonical origin order.
    pub fn zones(&self) -> Vec<&Zone> {
        let mut zones: Vec<&Zone> = self.zones.values().map(|z| &**z).collect();
        zones.sort_by(|a, b| a.origin_key.cmp(&b.origin_key));
        zones
    }
}

/// What `rampart check` reports for zones that load.
#[derive(Debug)]
pub struct CheckSummary {
    pub zones: Vec<ZoneSummary>,
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct ZoneSummary {
    pub origin: String,
    pub path: PathBuf,
    pub serial: u32,
    pub names: usize,
    pub records: usize,
}

impl fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(f, "{w}")?;
        }
        for z in &self.zones {
            writeln!(
                f,
                "zone {} is ok ({}: serial {}, {} names, {} records)",
                z.origin,
                z.path.display(),
                z.serial,
                z.names,
                z.records
            )?;
        }
        Ok(())
    }
}

/// `rampart check FILE...`: load each zone (`ORIGIN=FILE` or `FILE`) and report, like
/// nsd-checkzone, with the catalog for further checks. All errors of all files are returned.
pub fn check(specs: &[ZoneSpec]) -> Result<(CheckSummary, Catalog), Vec<String>> {
    let catalog = Catalog::load(specs, None)?;
    let zones = catalog
        .zones()
        .into_iter()
        .map(|z| ZoneSummary {
            origin: z.origin_key.to_string(),
            path: z.source.clone(),
            serial: z.serial(),
            names: z.node_count(),
            records: z.record_count(),
        })
        .collect();
    let summary = CheckSummary {
        zones,
        warnings: catalog.warnings.clone(),
    };
    Ok((summary, catalog))
}

fn zone_dir_specs(dir: &Path) -> std::io::Result<Vec<ZoneSpec>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // Not only regular files: a FIFO or device named *.zone is reported by the load (not
        // a regular file), rather than skipped without a word.
        if path.extension().is_some_and(|e| e == "zone") {
            paths.push(path);
        }
    }
    // Directory order is arbitrary; sorted makes errors and duplicates deterministic.
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| ZoneSpec { origin: None, path })
        .collect())
}

type LoadResult = Result<(Zone, Vec<String>), Vec<String>>;

/// Zones are independent, so hundreds of them parse on every core at once.
fn load_parallel(specs: &[ZoneSpec]) -> Vec<LoadResult> {
    crate::parallel::map(specs, Zone::load)
}

// ------------------------------------------------------------------------------------------------
// Parsing

enum OriginHint {
    /// `ORIGIN=FILE`: the apex, no discussion.
    Given(domain::base::Name<Bytes>),
    /// From `NAME.zone`: the initial `$ORIGIN`; the SOA decides the apex.
    FileName(domain::base::Name<Bytes>),
}

impl OriginHint {
    fn name(&self) -> &domain::base::Name<Bytes> {
        match self {
            OriginHint::Given(n) | OriginHint::FileName(n) => n,
        }
    }
}

fn parse_origin(text: &str) -> Result<domain::base::Name<Bytes>, String> {
    let text = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    domain::base::Name::<Bytes>::from_str(&text).map_err(|e| e.to_string())
}

fn origin_from_file_name(path: &Path) -> Option<domain::base::Name<Bytes>> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".zone")?;
    if stem.is_empty() {
        return None;
    }
    parse_origin(stem).ok()
}

/// Where a record came from, for messages.
#[derive(Clone, Copy, Debug)]
struct Loc {
    file: u32,
    line: u32,
}

#[derive(Default)]
struct Parsed {
    files: Vec<PathBuf>,
    records: RawRecords,
    errors: Vec<String>,
}

/// Parsed records in the wire form the scanner composed (owner, type, class, TTL, RDLENGTH,
/// RDATA), back to back in one buffer: a few dozen bytes a record, where a decoded hickory
/// `Record` takes ~300 and a million-name zone would hold gigabytes until it is built.
#[derive(Default)]
struct RawRecords {
    wire: Vec<u8>,
    /// Where each record ends in `wire`, and where it came from.
    ends: Vec<(usize, Loc)>,
    /// Where chunks of `PIPELINE_CHUNK` records go as the parser fills them, when a builder
    /// takes them on another core (see [`Zone::load`]).
    sink: Option<crossbeam_channel::Sender<RawRecords>>,
}

/// Records handed from the parser to the builder at a time.
const PIPELINE_CHUNK: usize = 16_384;

impl RawRecords {
    fn push(&mut self, (wire, loc): (&[u8], Loc)) {
        self.wire.extend_from_slice(wire);
        self.ends.push((self.wire.len(), loc));
        if self.ends.len() >= PIPELINE_CHUNK
            && let Some(sink) = &self.sink
        {
            // The next chunk is about as long as this one.
            let room = self.wire.len() + self.wire.len() / 8;
            let chunk = RawRecords {
                wire: std::mem::replace(&mut self.wire, Vec::with_capacity(room)),
                ends: std::mem::replace(&mut self.ends, Vec::with_capacity(PIPELINE_CHUNK)),
                sink: None,
            };
            // A builder that is gone (it panicked) shows at its join.
            let _ = sink.send(chunk);
        }
    }

    /// Hands the last records to the builder and tells it there are no more.
    fn close(&mut self) {
        if let Some(sink) = self.sink.take() {
            let _ = sink.send(std::mem::take(self));
        }
    }

    fn iter(&self) -> impl Iterator<Item = (RawRecord<'_>, Loc)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(end, _)| *end));
        starts.zip(&self.ends).map(|(start, &(end, loc))| {
            let wire = &self.wire[start..end];
            let owner_len = wire_name_len(wire).expect("composed records have valid owners");
            (RawRecord { wire, owner_len }, loc)
        })
    }
}

/// One record of [`RawRecords`].
struct RawRecord<'a> {
    wire: &'a [u8],
    owner_len: usize,
}

impl<'a> RawRecord<'a> {
    /// The owner in wire form, in the file's letter case.
    fn owner_wire(&self) -> &'a [u8] {
        &self.wire[..self.owner_len]
    }
    fn owner(&self) -> Name {
        wire_to_name(self.owner_wire()).expect("composed records have valid owners")
    }
    fn key(&self) -> NameKey {
        NameKey(self.owner_wire().to_ascii_lowercase().into_boxed_slice())
    }
    fn field(&self, at: usize) -> u16 {
        let i = self.owner_len + at;
        u16::from_be_bytes([self.wire[i], self.wire[i + 1]])
    }
    fn rtype(&self) -> RecordType {
        RecordType::from(self.field(0))
    }
    fn ttl(&self) -> u32 {
        (u32::from(self.field(4)) << 16) | u32::from(self.field(6))
    }
    /// Typed hickory RDATA for the types we keep typed, opaque bytes for the rest (see
    /// [`TYPED`]).
    /// `scratch` is reused across records for the check that the bytes round-trip.
    fn data(&self, scratch: &mut Vec<u8>) -> RData {
        let (rtype, rdata) = (self.rtype(), &self.wire[self.owner_len + 10..]);
        let typed = if TYPED.contains(&rtype) {
            decode_typed(rtype, rdata, scratch)
        } else {
            None
        };
        typed.unwrap_or_else(|| opaque(rtype, rdata))
    }
}

impl Parsed {
    fn at(&self, loc: Loc) -> String {
        Located(self, loc).to_string()
    }
}

/// `file:line` of a record, formatted only when a message needs it.
struct Located<'a>(&'a Parsed, Loc);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Located(parsed, loc) = self;
        write!(
            f,
            "{}:{}",
            parsed.files[loc.file as usize].display(),
            loc.line
        )
    }
}

/// What the files of one zone share while they are read: the include stack (the top file
/// first, for loop detection), the directory includes are confined to, and the current `$TTL`
/// (which carries into an included file and back out of it, as in BIND and NSD).
struct IncludeState {
    stack: Vec<PathBuf>,
    root: PathBuf,
    ttl: Option<u32>,
}

impl IncludeState {
    fn new(top: &Path) -> IncludeState {
        let canonical = std::fs::canonicalize(top).unwrap_or_else(|_| top.to_path_buf());
        let root = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
        IncludeState {
            stack: vec![canonical],
            root,
            ttl: None,
        }
    }
}

/// `path`'s bytes: a regular file of at most [`MAX_ZONE_FILE_BYTES`]. Opened non-blocking, so a
/// FIFO is refused at once instead of hanging a start or a reload until a writer comes.
fn read_zone_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    let odd = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        ""
    };
    if !odd.is_empty() {
        return Err(format!("not a regular file ({odd})"));
    }
    let too_big = || format!("larger than the {MAX_ZONE_FILE_BYTES}-byte limit for a zone file");
    if meta.len() > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while we read it.
    file.take(MAX_ZONE_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

/// Reads and parses one file of a zone; `at` is the `$INCLUDE` that named it, if any.
fn parse_file(
    path: &Path,
    origin: Option<domain::base::Name<Bytes>>,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
    at: Option<Loc>,
) {
    let text = match read_zone_file(path) {
        Ok(t) => t,
        Err(e) => {
            let msg = match at {
                Some(at) => format!("{}: $INCLUDE {}: {e}", out.at(at), path.display()),
                None => format!("{}: {e}", path.display()),
            };
            out.errors.push(msg);
            return;
        }
    };
    let file = out.files.len() as u32;
    out.files.push(path.to_path_buf());
    parse_bytes(&text, file, origin, path, depth, state, out);
}

/// One logical entry of a master file: its bytes up to and including the newline that ends it
/// (outside parentheses and quotes), and the lines it spans.
struct Chunk<'a> {
    bytes: &'a [u8],
    first_line: usize,
    last_line: usize,
}

/// Splits master-file text into entries (RFC 1035 §5.1 grammar: quotes, escapes, comments,
/// parentheses). The `domain` scanner doesn't say where a record started, and reports some
/// errors after it has read the line feed; feeding it one entry at a time lets us put the right
/// `file:line` on every record and every error.
fn split_entries(text: &[u8]) -> impl Iterator<Item = Chunk<'_>> {
    // One entry at a time: a million-record file would hold a vector of them all.
    let (mut start, mut start_line, mut line) = (0, 1, 1);
    let (mut depth, mut quoted) = (0usize, false);
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < text.len() {
            let c = text[i];
            if quoted {
                match c {
                    b'\\' => i += 1,
                    b'"' => quoted = false,
                    b'\n' => line += 1,
                    _ => {}
                }
            } else {
                match c {
                    b'\\' => i += 1,
                    b'"' => quoted = true,
                    b';' => {
                        while i + 1 < text.len() && text[i + 1] != b'\n' {
                            i += 1;
                        }
                    }
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    b'\n' => {
                        line += 1;
                        if depth == 0 {
                            let chunk = Chunk {
                                bytes: &text[start..=i],
                                first_line: start_line,
                                last_line: line - 1,
                            };
                            i += 1;
                            start = i;
                            start_line = line;
                            return Some(chunk);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        (start < text.len()).then(|| {
            let chunk = Chunk {
                bytes: &text[start..],
                first_line: start_line,
                last_line: line,
            };
            start = text.len();
            chunk
        })
    })
}

fn parse_bytes(
    text: &[u8],
    file: u32,
    origin: Option<domain::base::Name<Bytes>>,
    path: &Path,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
) {
    // The scanner splits off what it has read: a small buffer is reused, not the whole file.
    let mut zf = Zonefile::with_capacity(text.len().min(1 << 16)).allow_invalid();
    if let Some(origin) = origin {
        zf.set_origin(origin);
    }
    // RFC 1035 has no default class; everything we serve is IN.
    zf.set_default_class(Class::IN);
    let mut buf = Vec::with_capacity(512);
    // Lines the scanner has seen before the current chunk (it counts every line feed it reads).
    let mut scanner_lines = 0usize;
    // The `$TTL` in force where this file was included applies to it (RFC 2308 §4; BIND, NSD).
    if let Some(ttl) = state.ttl {
        zf.extend_from_slice(format!("$TTL {ttl}\n").as_bytes());
        scanner_lines += 1;
    }
    for chunk in split_entries(text) {
        if crate::zone_text::relative_origin(chunk.bytes) {
            out.errors.push(format!(
                "{}:{}: $ORIGIN needs an absolute name (ending in a dot)",
                path.display(),
                chunk.first_line
            ));
            return;
        }
        let entry = crate::zone_text::with_ttls_in_seconds(chunk.bytes);
        if let Some(ttl) = crate::zone_text::dollar_ttl(&entry) {
            state.ttl = Some(ttl);
        }
        zf.extend_from_slice(&entry);
        if !chunk.bytes.ends_with(b"\n") {
            zf.extend_from_slice(b"\n");
        }
        let loc = Loc {
            file,
            line: chunk.first_line as u32,
        };
        loop {
            match zf.next_entry() {
                Ok(Some(Entry::Record(rec))) => match compose(&rec, &mut buf) {
                    Ok(r) => out.records.push((r, loc)),
                    Err(e) => out.errors.push(format!("{}: {e}", out.at(loc))),
                },
                Ok(Some(Entry::Include { path: inc, origin })) => {
                    let inc_path = resolve_include(path, inc.as_str());
                    let origin = origin.or_else(|| zf.origin().ok());
                    let before = state.ttl;
                    include(&inc_path, origin, depth, state, out, loc);
                    // A `$TTL` inside the include stays in force after it (BIND, NSD).
                    if let Some(ttl) = state.ttl.filter(|_| state.ttl != before) {
                        zf.extend_from_slice(format!("$TTL {ttl}\n").as_bytes());
                        scanner_lines += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The scanner's line counts from its own start; map it into this chunk.
                    let (line, msg) = split_scanner_error(&e.to_string());
                    let line = line.map_or(chunk.first_line, |l| {
                        (chunk.first_line + l.saturating_sub(scanner_lines + 1))
                            .min(chunk.last_line)
                    });
                    out.errors.push(format!("{}:{line}: {msg}", path.display()));
                    // The scanner can't continue after an error; one syntax error per file.
                    return;
                }
            }
        }
        scanner_lines += chunk.bytes.iter().filter(|&&b| b == b'\n').count();
        if !chunk.bytes.ends_with(b"\n") {
            scanner_lines += 1;
        }
    }
}

/// The `domain` crate formats its errors as `line:col: message` and keeps the fields private.
fn split_scanner_error(text: &str) -> (Option<usize>, String) {
    let mut parts = text.splitn(3, ':');
    match (
        parts.next().map(str::parse::<usize>),
        parts.next(),
        parts.next(),
    ) {
        (Some(Ok(line)), Some(_col), Some(msg)) => (Some(line), msg.trim().to_string()),
        _ => (None, text.to_string()),
    }
}

fn resolve_include(including: &Path, inc: &str) -> PathBuf {
    let inc = Path::new(inc);
    if inc.is_absolute() {
        return inc.to_path_buf();
    }
    // Relative to the including file, so a zone directory can be moved as a whole.
    including.parent().unwrap_or(Path::new(".")).join(inc)
}

fn include(
    path: &Path,
    origin: Option<domain::base::Name<Bytes>>,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
    at: Loc,
) {
    if depth + 1 > MAX_INCLUDE_DEPTH {
        out.errors.push(format!(
            "{}: $INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} levels",
            out.at(at)
        ));
        return;
    }
    let Ok(canonical) = std::fs::canonicalize(path) else {
        out.errors.push(format!(
            "{}: $INCLUDE {}: no such file",
            out.at(at),
            path.display()
        ));
        return;
    };
    // Symbolic links resolved: a link inside the directory can't lead out of it either.
    if !canonical.starts_with(&state.root) {
        out.errors.push(format!(
            "{}: $INCLUDE {}: outside the zone file's directory {}",
            out.at(at),
            path.display(),
            state.root.display()
        ));
        return;
    }
    if state.stack.contains(&canonical) {
        out.errors
            .push(format!("{}: $INCLUDE loop: {}", out.at(at), path.display()));
        return;
    }
    state.stack.push(canonical);
    parse_file(path, origin, depth + 1, state, out, Some(at));
    state.stack.pop();
}

/// Record types we keep as typed hickory RDATA. Everything else is kept as its exact wire bytes
/// (hickory's `Unknown`): hickory 0.25 would compress the target names of SRV (RFC 2782 forbids
/// it) and SVCB/HTTPS (RFC 9460 §2.2 forbids it), and opaque bytes can't be re-encoded wrongly.
/// Names in RDATA of the RFC 1035 types may be compressed (RFC 3597 §4), which hickory does.
const TYPED: [RecordType; 13] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::PTR,
    RecordType::MX,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::HINFO,
    RecordType::CAA,
    RecordType::TLSA,
    RecordType::SSHFP,
    RecordType::OPENPGPKEY,
];

/// domain's record → wire form (decoded into hickory's model when the zone is built).
fn compose<'b>(rec: &ScannedRecord, buf: &'b mut Vec<u8>) -> Result<&'b [u8], String> {
    if rec.class() != Class::IN {
        return Err(format!(
            "class {} not supported: only IN is served",
            rec.class()
        ));
    }
    buf.clear();
    rec.compose(buf)
        .map_err(|_| "record too long".to_string())?;
    let owner_len = wire_name_len(buf).ok_or("bad owner name")?;
    if buf.len() < owner_len + 10 {
        return Err("bad owner name".to_string());
    }
    Ok(buf)
}

/// Typed hickory RDATA, if hickory decodes the bytes and writes back exactly the same.
fn decode_typed(rtype: RecordType, wire: &[u8], back: &mut Vec<u8>) -> Option<RData> {
    // Addresses, most of a large zone, are their bytes: nothing to round-trip.
    match (rtype, wire.len()) {
        (RecordType::A, 4) => {
            let octets: [u8; 4] = wire.try_into().expect("4 bytes");
            return Some(RData::A(std::net::Ipv4Addr::from(octets).into()));
        }
        (RecordType::AAAA, 16) => {
            let octets: [u8; 16] = wire.try_into().expect("16 bytes");
            return Some(RData::AAAA(std::net::Ipv6Addr::from(octets).into()));
        }
        _ => {}
    }
    let len = u16::try_from(wire.len()).ok()?;
    let mut decoder = BinDecoder::new(wire);
    let rdata = RData::read(
        &mut decoder,
        rtype,
        hickory_proto::serialize::binary::Restrict::new(len),
    )
    .ok()?;
    back.clear();
    let mut encoder = BinEncoder::new(back);
    // Canonical mode: no compression, names lowercased; so compare ignoring ASCII case.
    encoder.set_canonical_names(true);
    rdata.emit(&mut encoder).ok()?;
    back.eq_ignore_ascii_case(wire).then_some(rdata)
}

/// RDATA as opaque bytes (RFC 3597), written back verbatim.
fn opaque(rtype: RecordType, wire: &[u8]) -> RData {
    let null = if wire.is_empty() {
        NULL::new()
    } else {
        NULL::with(wire.to_vec())
    };
    RData::Unknown {
        code: rtype,
        rdata: null,
    }
}

/// The raw RDATA bytes of an opaque record (for DNAME targets and the like).
pub fn opaque_bytes(rdata: &RData) -> Option<&[u8]> {
    match rdata {
        RData::Unknown { rdata, .. } => Some(rdata.anything()),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------------
// Building and validating

/// Types that may sit beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5).
fn allowed_with_cname(t: RecordType) -> bool {
    matches!(
        u16::from(t),
        46 /* RRSIG */ | 47 /* NSEC */ | 5 /* CNAME */
    )
}

const DNAME: RecordType = RecordType::Unknown(39);

/// The zone from records parsed beforehand, on this thread (tests: [`Zone::from_text`]).
#[cfg(test)]
fn build_zone(spec: &ZoneSpec, hint: Option<OriginHint>, parsed: Parsed) -> LoadResult {
    let mut parsed = parsed;
    let mut builder = TreeBuilder::new(hint.as_ref());
    builder.add_chunk(std::mem::take(&mut parsed.records));
    finish_zone(spec, builder, &parsed)
}

/// The zone's names as its records make them, built chunk by chunk while the parser reads on
/// (a large zone's parse and build take about as long each). Messages get their `file:line`
/// once the parse is over and every `$INCLUDE`d file is known.
struct TreeBuilder<'h> {
    hint: Option<&'h OriginHint>,
    /// Every chunk so far: held back until the apex is known (the first SOA, unless given),
    /// and kept for the checks that need the whole zone.
    chunks: Vec<RawRecords>,
    tree: Option<Tree>,
    errors: Vec<(Loc, String)>,
    warnings: Vec<(Loc, String)>,
    /// Reused by the RDATA round-trip check.
    scratch: Vec<u8>,
}

struct Tree {
    origin_key: NameKey,
    nodes: Nodes,
    has_wildcards: bool,
    has_dname: bool,
    soa_loc: Option<Loc>,
    record_count: usize,
}

impl<'h> TreeBuilder<'h> {
    fn new(hint: Option<&'h OriginHint>) -> TreeBuilder<'h> {
        TreeBuilder {
            hint,
            chunks: Vec::new(),
            tree: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            scratch: Vec::with_capacity(1024),
        }
    }

    fn add_chunk(&mut self, chunk: RawRecords) {
        self.chunks.push(chunk);
        if self.tree.is_some() {
            let last = self.chunks.len() - 1;
            self.add_records(last);
            return;
        }
        // The apex: given, or the first SOA's owner.
        let first_soa = (self.chunks.last().into_iter())
            .flat_map(RawRecords::iter)
            .find(|(r, _)| r.rtype() == RecordType::SOA);
        let origin: Name = match (self.hint, &first_soa) {
            (Some(OriginHint::Given(n)), _) => wire_to_name(n.as_slice()).expect("valid origin"),
            (_, Some((soa, _))) => soa.owner(),
            (_, None) => return,
        };
        let origin_key = NameKey::from_name(&origin);
        if let (Some(OriginHint::FileName(n)), Some((_, loc))) = (self.hint, &first_soa)
            && NameKey::from_wire(n.as_slice()).as_ref() != Some(&origin_key)
        {
            self.warnings.push((
                *loc,
                format!("warning: zone origin {origin_key} differs from the file name"),
            ));
        }
        let mut nodes = Nodes::default();
        nodes.insert(origin_key.clone(), Node::new(Arc::new(origin)));
        self.tree = Some(Tree {
            origin_key,
            nodes,
            has_wildcards: false,
            has_dname: false,
            soa_loc: None,
            record_count: 0,
        });
        for i in 0..self.chunks.len() {
            self.add_records(i);
        }
    }

    /// Adds the records of `self.chunks[i]` to the tree (which exists).
    fn add_records(&mut self, i: usize) {
        let TreeBuilder {
            chunks,
            tree,
            errors,
            warnings,
            scratch,
            ..
        } = self;
        let Some(tree) = tree else { return };
        let origin_key = &tree.origin_key;
        // The owner of the previous record, decoded once for the run of records that share it.
        let mut last_owner: Option<(&[u8], Arc<Name>)> = None;
        for (record, loc) in chunks[i].iter() {
            let owner = match last_owner {
                Some((wire, ref name)) if wire == record.owner_wire() => name.clone(),
                _ => Arc::new(record.owner()),
            };
            last_owner = Some((record.owner_wire(), owner.clone()));
            // Lowercased on the stack: a name already in the map costs no allocation.
            let mut lowered = [0u8; rampart_common::MAX_NAME];
            let owner_wire = record.owner_wire();
            let key = &mut lowered[..owner_wire.len()];
            key.copy_from_slice(owner_wire);
            key.make_ascii_lowercase();
            let key = WireName(key);
            let rtype = record.rtype();
            if !wire_is_subdomain(key.0, origin_key.as_wire()) {
                errors.push((
                    loc,
                    format!("out-of-zone data: {key} is not in zone {origin_key}"),
                ));
                continue;
            }
            if rtype == RecordType::SOA {
                if key.0 != origin_key.as_wire() {
                    errors.push((
                        loc,
                        format!("SOA record at {key}, not at the zone apex {origin_key}"),
                    ));
                    continue;
                }
                if tree.soa_loc.is_some() {
                    errors.push((loc, format!("more than one SOA record at {origin_key}")));
                    continue;
                }
                tree.soa_loc = Some(loc);
            }
            // Empty non-terminals: every ancestor up to the apex is a node.
            for p in suffixes(key.0).skip(1) {
                if !wire_is_subdomain(p, origin_key.as_wire()) || tree.nodes.contains_key(p) {
                    break;
                }
                let p = NameKey(p.into());
                let name = p.to_name();
                tree.nodes.insert(p, Node::new(Arc::new(name)));
            }
            // RFC 4592: the first label is `*`.
            tree.has_wildcards |= key.0.starts_with(&[1, b'*']);
            tree.has_dname |= rtype == DNAME;
            if !tree.nodes.contains_key(key.0) {
                tree.nodes
                    .insert(NameKey(key.0.into()), Node::new(owner.clone()));
            }
            let node = tree.nodes.get_mut(key.0).expect("inserted above");
            let has_cname = node.rrset(RecordType::CNAME).is_some();
            if rtype == RecordType::CNAME {
                if has_cname {
                    errors.push((loc, format!("more than one CNAME record at {key}")));
                    continue;
                }
                if node.rrsets.iter().any(|r| !allowed_with_cname(r.rtype)) {
                    errors.push((loc, format!("CNAME and other data at {key}")));
                    continue;
                }
            } else if has_cname && !allowed_with_cname(rtype) {
                errors.push((
                    loc,
                    format!("CNAME and other data at {key} ({rtype} record)"),
                ));
                continue;
            }
            if rtype == DNAME && node.rrset(DNAME).is_some() {
                errors.push((loc, format!("more than one DNAME record at {key}")));
                continue;
            }
            match node.add(&owner, rtype, record.ttl(), record.data(scratch)) {
                AddOutcome::Added => tree.record_count += 1,
                AddOutcome::Duplicate => {}
                // RRSIGs at a name cover RRsets of different TTLs (RFC 4034 §3): answers take
                // each signature's TTL from the RRset it covers.
                AddOutcome::TtlMismatch(_) if rtype == RRSIG => tree.record_count += 1,
                AddOutcome::TtlMismatch(kept) => {
                    tree.record_count += 1;
                    warnings.push((
                        loc,
                        format!(
                            "warning: TTL {} of {key} {rtype} differs from the RRset's TTL {kept}; using {kept}",
                            record.ttl()
                        ),
                    ));
                }
            }
        }
    }
}

/// The checks that need the whole zone, then the zone. `parsed` has the file names.
fn finish_zone(spec: &ZoneSpec, builder: TreeBuilder<'_>, parsed: &Parsed) -> LoadResult {
    let path_text = spec.path.display().to_string();
    let TreeBuilder {
        chunks,
        tree,
        errors: located_errors,
        warnings: located_warnings,
        ..
    } = builder;
    let Some(Tree {
        origin_key,
        mut nodes,
        has_wildcards,
        has_dname,
        soa_loc,
        record_count,
    }) = tree
    else {
        return Err(vec![format!("{path_text}:1: zone has no SOA record")]);
    };
    let located = |(loc, msg): (Loc, String)| format!("{}: {msg}", Located(parsed, loc));
    let mut errors: Vec<String> = located_errors.into_iter().map(located).collect();
    let mut warnings: Vec<String> = located_warnings.into_iter().map(located).collect();

    // RFC 6672 §2.4: no data below a DNAME (NSD and Knot refuse such a zone). NSEC3 records
    // and signatures hang below the apex by construction and are not names of the tree.
    let records = chunks.iter().flat_map(RawRecords::iter);
    for (record, loc) in records.filter(|_| has_dname) {
        let key = record.key();
        if matches!(record.rtype(), RecordType::NSEC3 | RRSIG) {
            continue;
        }
        let dname_above = suffixes(key.as_wire())
            .skip(1)
            .take_while(|s| s.len() >= origin_key.as_wire().len())
            .find(|s| nodes.get(*s).is_some_and(|n| n.rrset(DNAME).is_some()));
        if let Some(owner) = dname_above.and_then(NameKey::from_wire) {
            errors.push(format!(
                "{}: {key} is below the DNAME at {owner}: no data may be there (RFC 6672 §2.4)",
                parsed.at(loc)
            ));
        }
    }
    let apex = &nodes[&origin_key];
    if apex.rrset(RecordType::SOA).is_none() {
        errors.push(format!(
            "{path_text}:1: zone {origin_key} has no SOA record at its apex"
        ));
    } else if apex.rrset(RecordType::NS).is_none() {
        let at = parsed.at(soa_loc.expect("SOA was seen"));
        errors.push(format!(
            "{at}: zone {origin_key} has no NS records at its apex"
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    drop(chunks);
    nodes.shrink_to_fit();
    // A Vec grows to 4 on its second element: most names have 2 or 3 RRsets, of 1 or 2 records.
    for node in nodes.values_mut() {
        node.rrsets.shrink_to_fit();
        for set in &mut node.rrsets {
            set.rdata.shrink_to_fit();
        }
    }
    mark_cuts(&mut nodes, &origin_key);
    warnings.extend(check_glue(&nodes, &path_text));
    let dnssec = Dnssec::index(&mut nodes, &origin_key);
    let zone = Zone {
        dnssec,
        origin_key,
        nodes,
        source: spec.path.clone(),
        has_wildcards,
        record_count,
    };
    Ok((zone, warnings))
}

/// Marks delegation points and everything they (or a DNAME) occlude.
fn mark_cuts(nodes: &mut Nodes, origin: &NameKey) {
    for (key, node) in nodes.iter_mut() {
        node.cut = key != origin && node.rrset(RecordType::NS).is_some();
    }
    if !nodes.values().any(|n| n.cut || n.rrset(DNAME).is_some()) {
        return;
    }
    let occluded: Vec<NameKey> = nodes
        .keys()
        .filter(|key| {
            suffixes(key.as_wire())
                .skip(1)
                .take_while(|s| s.len() > origin.as_wire().len())
                .any(|s| {
                    nodes
                        .get(s)
                        .is_some_and(|n| n.cut || n.rrset(DNAME).is_some())
                })
        })
        .cloned()
        .collect();
    for key in occluded {
        if let Some(node) = nodes.get_mut(&key) {
            node.occluded = true;
        }
    }
}

/// Warns about in-bailiwick NS targets without addresses (RFC 9471 calls such glue required).
fn check_glue(nodes: &Nodes, path: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut cuts: Vec<(&NameKey, &Node)> = nodes.iter().filter(|(_, n)| n.cut).collect();
    cuts.sort_by(|a, b| a.0.cmp(b.0));
    for (cut, node) in cuts {
        for rd in node
            .rrset(RecordType::NS)
            .map(Rrset::rdata)
            .unwrap_or_default()
        {
            let RData::NS(ns) = rd else { continue };
            let target = NameKey::from_name(&ns.0);
            if !target.is_subdomain_of(cut) {
                continue;
            }
            let has_addr = nodes.get(&target).is_some_and(|n| {
                n.rrset(RecordType::A).is_some() || n.rrset(RecordType::AAAA).is_some()
            });
            if !has_addr {
                warnings.push(format!(
                    "{path}: warning: delegation {cut} has no glue for {target}"
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const MINI: &str = "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\nns A 192.0.2.1\n";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        path
    }

    fn load_err(origin: &str, text: &str) -> Vec<String> {
        Zone::from_text(origin, text).expect_err("zone should fail")
    }

    fn key(s: &str) -> NameKey {
        NameKey::parse(s).unwrap()
    }

    /// The allocation-free canonical order agrees with comparing label lists from the root
    /// (RFC 4034 §6.1): a label that is a prefix of another, more or fewer labels, octets
    /// above 0x7f and zero octets inside labels.
    #[test]
    fn canonical_order_compares_labels_from_the_root() {
        let names: Vec<&[u8]> = vec![
            b"\x00",
            b"\x01a\x00",
            b"\x02aa\x00",
            b"\x01b\x00",
            b"\x01a\x01b\x00",
            b"\x01b\x01a\x00",
            b"\x02ab\x01a\x00",
            b"\x01\x00\x01a\x00",
            b"\x01\xff\x01a\x00",
            b"\x03a\x00b\x01a\x00",
            b"\x01z\x02aa\x00",
        ];
        let reference = |a: &[u8], b: &[u8]| {
            let (la, lb) = (labels(a), labels(b));
            let (ra, rb) = (la.iter().rev(), lb.iter().rev());
            ra.cmp(rb)
        };
        for a in &names {
            for b in &names {
                assert_eq!(canonical_cmp(a, b), reference(a, b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn name_keys_are_lowercase_wire() {
        let k = key("WWW.Example.COM.");
        assert_eq!(k.as_wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(k.to_string(), "www.example.com.");
        assert_eq!(k.label_count(), 3);
        assert_eq!(k.parent().unwrap(), key("example.com."));
        assert!(k.is_subdomain_of(&key("EXAMPLE.com.")));
        assert!(!key("www.notexample.com.").is_subdomain_of(&key("example.com.")));
        assert!(k.is_subdomain_of(&NameKey::root()));
        assert_eq!(NameKey::root().to_string(), ".");
        // Escapes: a dot inside a label, and a decimal escape.
        let e = key("a\\.b.c\\032d.");
        assert_eq!(e.as_wire(), b"\x03a.b\x03c d\x00");
        assert_eq!(e.to_string(), "a\\.b.c\\032d.");
        assert!(NameKey::from_wire(b"\x03abc").is_none());
        assert!(NameKey::from_wire(b"\xc0\x0c").is_none());
        // RFC 4034 §6.1 order.
        let mut v = [
            key("z.example."),
            key("a.example."),
            key("example."),
            key("yljkjljk.a.example."),
        ];
        v.sort();
        let names: Vec<String> = v.iter().map(|k| k.to_string()).collect();
        assert_eq!(
            names,
            [
                "example.",
                "a.example.",
                "yljkjljk.a.example.",
                "z.example."
            ]
        );
    }

    #[test]
    fn sample_zone_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        let cat = Catalog::load(&[], Some(&dir)).unwrap();
        assert_eq!(cat.zone_count(), 2);
        let z = cat
            .find_zone(key("deep.www.example.com.").as_wire())
            .unwrap();
        assert_eq!(z.origin_key(), &key("example.com."));
        assert_eq!(z.serial(), 2024010101);
        // Mixed case kept in data, found lowercased.
        let www = z.node(key("www.example.com.").as_wire()).unwrap();
        assert_eq!(www.name().to_string(), "WWW.example.com.");
        assert_eq!(www.rrsets().len(), 2);
        assert!(
            z.node(key("b.example.com.").as_wire())
                .unwrap()
                .is_empty_non_terminal()
        );
        assert!(z.node(key("sub.example.com.").as_wire()).unwrap().is_cut());
        assert!(
            z.node(key("ns1.sub.example.com.").as_wire())
                .unwrap()
                .is_occluded()
        );
        assert!(cat.warnings().is_empty(), "{:?}", cat.warnings());
    }

    #[test]
    fn origin_from_file_name_or_soa() {
        let dir = tempfile::tempdir().unwrap();
        // No .zone suffix, no $ORIGIN: the SOA owner (absolute) decides.
        let p = write(
            dir.path(),
            "db.foo",
            "foo.test. 300 IN SOA ns.foo.test. h.foo.test. 1 2 3 4 5\nfoo.test. NS ns.foo.test.\n",
        );
        let (z, _) = Zone::load(&ZoneSpec {
            origin: None,
            path: p,
        })
        .unwrap();
        assert_eq!(z.origin_key(), &key("foo.test."));
        // File name gives the initial origin for relative names.
        let p = write(dir.path(), "bar.test.zone", MINI);
        let (z, _) = Zone::load(&ZoneSpec::parse(p.to_str().unwrap())).unwrap();
        assert_eq!(z.origin_key(), &key("bar.test."));
        assert!(z.node(key("ns.bar.test.").as_wire()).is_some());
        // ORIGIN=FILE wins.
        let arg = format!("other.test={}", p.display());
        let (z, _) = Zone::load(&ZoneSpec::parse(&arg)).unwrap();
        assert_eq!(z.origin_key(), &key("other.test."));
    }

    #[test]
    fn syntax_errors_have_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let text = "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\n\nns A 192.0.2.1\nbad A 300.1.2.3\n";
        let p = write(dir.path(), "t.test.zone", text);
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: p.clone(),
        })
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("{}:6: ", p.display())),
            "{errs:?}"
        );
        // Missing RDATA: the scanner has read past the line feed; still line 5.
        let p = write(
            dir.path(),
            "u.test.zone",
            "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\n\nns A\nx A 192.0.2.1\n",
        );
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: p.clone(),
        })
        .unwrap_err();
        assert!(
            errs[0].starts_with(&format!("{}:5: ", p.display())),
            "{errs:?}"
        );
        // Inside parentheses: the line of the bad token.
        let p = write(
            dir.path(),
            "v.test.zone",
            "$TTL 300\n@ SOA ns hm (\n 1 2\n 3 x4\n 60 )\n  NS ns\n",
        );
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: p.clone(),
        })
        .unwrap_err();
        assert!(
            errs[0].starts_with(&format!("{}:4: ", p.display())),
            "{errs:?}"
        );
    }

    /// The builder takes the records in chunks while the parser reads on: an SOA (the apex)
    /// several chunks in, and messages from late chunks and an `$INCLUDE`d file, come out as
    /// from a whole-file build.
    #[test]
    fn pipelined_load_finds_a_late_apex_and_places_late_messages() {
        let dir = tempfile::tempdir().unwrap();
        let n = 2 * PIPELINE_CHUNK + 10;
        let mut text = String::from("$ORIGIN big.test.\n$TTL 300\n");
        for i in 0..n {
            text.push_str(&format!("h{i} A 192.0.2.{}\n", i % 250 + 1));
        }
        text.push_str("@ SOA ns hm 1 2 3 4 60\n@ NS ns\nns A 192.0.2.53\n");
        let zone_text = text.clone();
        let path = write(dir.path(), "big.test.zone", &zone_text);
        let spec = ZoneSpec { origin: None, path };
        let (zone, warnings) = Zone::load(&spec).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(zone.origin_key(), &key("big.test."));
        assert_eq!((zone.node_count(), zone.record_count()), (n + 2, n + 3));
        let last = format!("h{}.big.test.", n - 1);
        assert!(zone.node(key(&last).as_wire()).is_some());
        // Errors in a late chunk and in an included file keep their file and line.
        write(
            dir.path(),
            "more",
            "ok A 192.0.2.1\nout.other. A 192.0.2.2\n",
        );
        text.push_str("x.other. A 192.0.2.9\n$INCLUDE more\n");
        let path = write(dir.path(), "big.test.zone", &text);
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: path.clone(),
        })
        .unwrap_err();
        let more = dir.path().join("more");
        assert_eq!(
            errs,
            [
                format!(
                    "{}:{}: out-of-zone data: x.other. is not in zone big.test.",
                    path.display(),
                    n + 6
                ),
                format!(
                    "{}:2: out-of-zone data: out.other. is not in zone big.test.",
                    more.display()
                ),
            ]
        );
        // No SOA anywhere, in any chunk.
        let no_soa: String = (0..n).map(|i| format!("h{i} A 192.0.2.1\n")).collect();
        let path = write(dir.path(), "big.test.zone", &no_soa);
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: path.clone(),
        })
        .unwrap_err();
        assert_eq!(
            errs,
            [format!("{}:1: zone has no SOA record", path.display())]
        );
    }

    /// domain 0.12's scanner panics on an unclosed parenthesis before a quoted string
    /// (tests/fixtures/parser/22-paren-unbalanced.zone); the builder thread must still be let
    /// go, so the load ends (in that panic) rather than hangs.
    #[test]
    fn a_scanner_panic_ends_the_load_instead_of_hanging_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "p.test.zone", &format!("{MINI}t TXT ( \"a\"\n"));
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let spec = ZoneSpec { origin: None, path };
            let outcome = std::panic::catch_unwind(|| Zone::load(&spec).is_ok());
            let _ = done.send(outcome.is_err());
        });
        let finished = finished.recv_timeout(std::time::Duration::from_secs(30));
        assert!(finished.is_ok(), "the load hung");
    }

    #[test]
    fn errors_inside_include_name_the_included_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("inc")).unwrap();
        let inner = write(
            dir.path(),
            "inc/hosts",
            "; hosts\nh1 A 192.0.2.1\nh2 A 192.0.2.2\nh3 AAAA not-an-address\n",
        );
        let main = write(
            dir.path(),
            "i.test.zone",
            &format!("{MINI}$INCLUDE inc/hosts\n"),
        );
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: main,
        })
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with(&format!("{}:4: ", inner.display())),
            "{errs:?}"
        );
        // Validation errors inside the include, too; the include's origin argument is used.
        write(dir.path(), "inc/other", "\n\nx A 192.0.2.1\n");
        let main = write(
            dir.path(),
            "j.test.zone",
            &format!("{MINI}$INCLUDE inc/other elsewhere.test.\n"),
        );
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: main,
        })
        .unwrap_err();
        assert!(
            errs[0].contains("inc/other:3: out-of-zone data: x.elsewhere.test."),
            "{errs:?}"
        );
        // Include loop.
        write(dir.path(), "inc/self", "$INCLUDE self\n");
        let main = write(
            dir.path(),
            "k.test.zone",
            &format!("{MINI}$INCLUDE inc/self\n"),
        );
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: main,
        })
        .unwrap_err();
        assert!(errs[0].contains("inc/self:1: $INCLUDE loop"), "{errs:?}");
        // A good include works, with the including file's origin.
        write(dir.path(), "inc/good", "www A 192.0.2.80\n");
        let main = write(
            dir.path(),
            "l.test.zone",
            &format!("{MINI}$INCLUDE inc/good\n"),
        );
        let (z, _) = Zone::load(&ZoneSpec {
            origin: None,
            path: main,
        })
        .unwrap();
        assert!(z.node(key("www.l.test.").as_wire()).is_some());
    }

    fn load_main(dir: &Path, name: &str, text: &str) -> Result<Zone, Vec<String>> {
        let path = write(dir, name, text);
        Zone::load(&ZoneSpec { origin: None, path }).map(|(z, _)| z)
    }

    #[test]
    fn includes_stay_in_the_zone_files_directory() {
        let outside = tempfile::tempdir().unwrap();
        let secret = write(outside.path(), "secret", "leak TXT \"outside\"\n");
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("zones");
        std::fs::create_dir(&dir).unwrap();
        write(top.path(), "sibling", "leak TXT \"sibling\"\n");
        std::os::unix::fs::symlink(&secret, dir.join("link")).unwrap();
        for (n, inc) in [
            secret.to_str().unwrap(),
            "../sibling",
            "link",
            "/etc/hostname",
        ]
        .iter()
        .enumerate()
        {
            let errs = load_main(
                &dir,
                &format!("o{n}.test.zone"),
                &format!("{MINI}$INCLUDE {inc}\n"),
            )
            .map(|_| ())
            .unwrap_err();
            assert_eq!(errs.len(), 1, "{inc}: {errs:?}");
            assert!(
                errs[0].contains(":5: $INCLUDE ")
                    && errs[0].contains("outside the zone file's directory"),
                "{inc}: {errs:?}"
            );
        }
        // Below the directory is fine.
        std::fs::create_dir(dir.join("sub")).unwrap();
        write(&dir, "sub/in", "www A 192.0.2.80\n");
        load_main(&dir, "ok.test.zone", &format!("{MINI}$INCLUDE sub/in\n")).unwrap();
    }

    /// Runs `f` on a thread and gives up after 10 s: a FIFO read blocking would hang the test.
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(f()));
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("zone load hung")
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.test.zone");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let errs = within_10s(move || {
            Zone::load(&ZoneSpec {
                origin: None,
                path: fifo,
            })
            .map(|_| ())
            .unwrap_err()
        });
        assert!(
            errs[0].ends_with("f.test.zone: not a regular file (a FIFO)"),
            "{errs:?}"
        );
        let p = dir.path().to_path_buf();
        let errs = within_10s(move || {
            load_main(&p, "g.test.zone", &format!("{MINI}$INCLUDE f.test.zone\n"))
                .map(|_| ())
                .unwrap_err()
        });
        assert!(
            errs[0].contains("g.test.zone:5: $INCLUDE ")
                && errs[0].ends_with("f.test.zone: not a regular file (a FIFO)"),
            "{errs:?}"
        );
        // In a zone directory (start and SIGHUP): reported, the other zones load (h.test.; g.test.
        // includes the FIFO).
        write(dir.path(), "h.test.zone", MINI);
        let p = dir.path().to_path_buf();
        let (cat, errs) = within_10s(move || Catalog::load_partial(&[], Some(&p)));
        assert_eq!(cat.zone_count(), 1, "{errs:?}");
        assert!(
            errs.iter()
                .any(|e| e.ends_with("f.test.zone: not a regular file (a FIFO)")),
            "{errs:?}"
        );
        let errs = Zone::load(&ZoneSpec::parse("z.test.=/dev/zero"))
            .map(|_| ())
            .unwrap_err();
        assert_eq!(errs, ["/dev/zero: not a regular file (a character device)"]);
        // A file over the size cap (sparse: no disk used) is refused before it is read.
        let big = dir.path().join("big.test.zone");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_ZONE_FILE_BYTES + 1)
            .unwrap();
        let errs = Zone::load(&ZoneSpec {
            origin: None,
            path: big,
        })
        .map(|_| ())
        .unwrap_err();
        assert!(errs[0].ends_with("byte limit for a zone file"), "{errs:?}");
    }

    #[test]
    fn include_loop_is_caught_at_the_top_file() {
        let dir = tempfile::tempdir().unwrap();
        // Including itself: one loop error, and the file's own error once (not once per pass).
        let errs = load_main(
            dir.path(),
            "s.test.zone",
            &format!("{MINI}$INCLUDE s.test.zone\nbad A 300.1.2.3\n"),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("s.test.zone:5: $INCLUDE loop: "),
            "{errs:?}"
        );
    }

    #[test]
    fn dollar_ttl_carries_into_and_out_of_includes() {
        // What nsd-checkzone -p prints for these files (NSD 4.6; BIND does the same):
        // inc 60 (the $TTL before the $INCLUDE), inc2 120 and after 120 (the include's $TTL).
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "inc1",
            "inc A 192.0.2.2\n$TTL 120\ninc2 A 192.0.2.4\n",
        );
        let z = load_main(
            dir.path(),
            "t.test.zone",
            &format!("{MINI}$TTL 60\n$INCLUDE inc1\nafter A 192.0.2.3\n"),
        )
        .unwrap();
        let ttl = |n: &str| {
            z.node(key(n).as_wire())
                .unwrap()
                .rrset(RecordType::A)
                .unwrap()
                .ttl()
        };
        assert_eq!(
            [
                ttl("ns.t.test."),
                ttl("inc.t.test."),
                ttl("inc2.t.test."),
                ttl("after.t.test.")
            ],
            [300, 60, 120, 120]
        );
    }

    #[test]
    fn validation_rules() {
        let e = load_err("t.", "$TTL 1\n@ NS ns\nns A 192.0.2.1\n");
        assert_eq!(e, ["<t.>:1: zone t. has no SOA record at its apex"]);
        let e = load_err("t.", "$TTL 1\n@ SOA ns hm 1 2 3 4 5\nns A 192.0.2.1\n");
        assert_eq!(e, ["<t.>:2: zone t. has no NS records at its apex"]);
        let e = load_err("t.", &format!("{MINI}@ SOA ns hm 2 2 3 4 5\n"));
        assert_eq!(e, ["<t.>:5: more than one SOA record at t."]);
        let e = load_err("t.", &format!("{MINI}x SOA ns hm 2 2 3 4 5\n"));
        assert_eq!(e, ["<t.>:5: SOA record at x.t., not at the zone apex t."]);
        let e = load_err("t.", &format!("{MINI}www.other. A 192.0.2.1\n"));
        assert_eq!(
            e,
            ["<t.>:5: out-of-zone data: www.other. is not in zone t."]
        );
        let e = load_err("t.", &format!("{MINI}x CNAME ns\nx A 192.0.2.1\n"));
        assert_eq!(e, ["<t.>:6: CNAME and other data at x.t. (A record)"]);
        let e = load_err("t.", &format!("{MINI}x A 192.0.2.1\nX CNAME ns\n"));
        assert_eq!(e, ["<t.>:6: CNAME and other data at x.t."]);
        let e = load_err("t.", &format!("{MINI}x CNAME ns\nx CNAME www\n"));
        assert_eq!(e, ["<t.>:6: more than one CNAME record at x.t."]);
        let e = load_err("t.", &format!("{MINI}x CH A 192.0.2.1\n"));
        assert_eq!(e, ["<t.>:5: class CH not supported: only IN is served"]);
        // CNAME beside RRSIG/NSEC is fine.
        let z =
            Zone::from_text("t.", &format!("{MINI}x CNAME ns\nx NSEC t. CNAME NSEC\n")).unwrap();
        assert_eq!(z.node(key("x.t.").as_wire()).unwrap().rrsets().len(), 2);
        // All errors at once.
        let e = load_err(
            "t.",
            &format!("{MINI}a.other. A 192.0.2.1\nb.other. A 192.0.2.1\n"),
        );
        assert_eq!(e.len(), 2);
        // Nothing below a DNAME (RFC 6672 §2.4), as NSD and Knot refuse it.
        let e = load_err(
            "t.",
            &format!("{MINI}d DNAME x.test.\nhost.d A 192.0.2.1\n"),
        );
        assert!(e[0].contains("below the DNAME at d.t."), "{e:?}");
    }

    #[test]
    fn ttl_units_and_absolute_origin() {
        let z = Zone::from_text(
            "t.",
            "$TTL 1h30m\n@ SOA ns hm 1 2h 1h 2w 5M\n NS ns\nns 1d A 192.0.2.1\nx A 192.0.2.2\n",
        )
        .unwrap();
        assert_eq!(
            z.node(key("ns.t.").as_wire()).unwrap().rrsets()[0].ttl(),
            86_400
        );
        assert_eq!(
            z.node(key("x.t.").as_wire()).unwrap().rrsets()[0].ttl(),
            5400
        );
        let e = load_err("t.", &format!("{MINI}$ORIGIN sub\nx A 192.0.2.1\n"));
        assert!(e[0].contains("$ORIGIN needs an absolute name"), "{e:?}");
    }

    #[test]
    fn ttl_mismatch_is_normalised_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.test.zone",
            &format!("{MINI}x 100 A 192.0.2.1\nx 200 A 192.0.2.2\nx 100 A 192.0.2.1\n"),
        );
        let (z, warnings) = Zone::load(&ZoneSpec {
            origin: None,
            path: p.clone(),
        })
        .unwrap();
        let set = z
            .node(key("x.t.test.").as_wire())
            .unwrap()
            .rrset(RecordType::A)
            .unwrap();
        assert_eq!(
            (set.ttl(), set.len()),
            (100, 2),
            "duplicate dropped, TTL of the first"
        );
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].starts_with(&format!("{}:6: warning: TTL 200", p.display())),
            "{warnings:?}"
        );
    }

    #[test]
    fn catalog_reports_all_zone_errors_and_finds_most_specific_zone() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.test.zone", MINI);
        write(dir.path(), "sub.a.test.zone", MINI);
        write(dir.path(), "b.test.zone", "$TTL 1\n@ SOA ns hm 1 2 3 4 5\n");
        write(
            dir.path(),
            "c.test.zone",
            "$TTL 1\n@ SOA ns hm 1 2 3 4 5\nx A 1.2.3\n",
        );
        let errs = Catalog::load(&[], Some(dir.path())).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let (cat, errs) = Catalog::load_partial(&[], Some(dir.path()));
        assert_eq!((cat.zone_count(), errs.len()), (2, 2));
        let z = cat.find_zone(key("x.Sub.A.test.").as_wire()).unwrap();
        assert_eq!(z.origin_key(), &key("sub.a.test."));
        assert_eq!(cat.parent_zone(z).unwrap().origin_key(), &key("a.test."));
        assert_eq!(
            cat.find_zone(key("x.a.test.").as_wire())
                .unwrap()
                .origin_key(),
            &key("a.test.")
        );
        assert!(cat.find_zone(key("x.test.").as_wire()).is_none());
    }

    /// Every type we promise round-trips: the bytes we will send equal what the presentation
    /// format means (checked against hand-encoded RDATA).
    #[test]
    fn rr_types_round_trip() {
        let cases: &[(&str, &str, &[u8])] = &[
            ("A", "192.0.2.1", &[192, 0, 2, 1]),
            (
                "AAAA",
                "2001:db8::1",
                &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ),
            ("NS", "Ns.t.", b"\x02Ns\x01t\x00"),
            ("CNAME", "x", b"\x01x\x01t\x00"),
            ("PTR", "p.q.", b"\x01p\x01q\x00"),
            ("MX", "10 mx", b"\x00\x0a\x02mx\x01t\x00"),
            ("TXT", "\"a b\" c \"\\\"\"", b"\x03a b\x01c\x01\""),
            ("HINFO", "\"PC\" Linux", b"\x02PC\x05Linux"),
            (
                "SRV",
                "1 2 3 Srv.t.",
                b"\x00\x01\x00\x02\x00\x03\x03Srv\x01t\x00",
            ),
            ("CAA", "0 issue \"ca.example\"", b"\x00\x05issueca.example"),
            (
                "CAA",
                "128 iodef \"mailto:a@b\"",
                b"\x80\x05iodefmailto:a@b",
            ),
            ("TLSA", "3 1 1 0C72", &[3, 1, 1, 0x0c, 0x72]),
            ("SSHFP", "4 2 ABCD", &[4, 2, 0xab, 0xcd]),
            (
                "SVCB",
                "1 Svc.t. alpn=h2 port=8443",
                b"\x00\x01\x03Svc\x01t\x00\x00\x01\x00\x03\x02h2\x00\x03\x00\x02\x20\xfb",
            ),
            (
                "HTTPS",
                "1 . alpn=h3",
                b"\x00\x01\x00\x00\x01\x00\x03\x02h3",
            ),
            ("DS", "1 13 2 ABCD", &[0, 1, 13, 2, 0xab, 0xcd]),
            (
                "NAPTR",
                "1 2 \"S\" \"SIP+D2U\" \"\" _sip._udp.t.",
                b"\x00\x01\x00\x02\x01S\x07SIP+D2U\x00\x04_sip\x04_udp\x01t\x00",
            ),
            ("TYPE65400", "\\# 4 0A000001", &[10, 0, 0, 1]),
            ("TYPE65401", "\\# 0", &[]),
            ("DNAME", "Other.", b"\x05Other\x00"),
        ];
        for (rtype, rdata, wire) in cases {
            let text = format!("{MINI}x {rtype} {rdata}\n");
            let z = Zone::from_text("t.", &text).unwrap_or_else(|e| panic!("{rtype}: {e:?}"));
            let node = z.node(key("x.t.").as_wire()).unwrap();
            let set = &node.rrsets()[0];
            assert_eq!(set.len(), 1);
            let mut out = Vec::new();
            let mut enc = BinEncoder::new(&mut out);
            set.rdata()[0].emit(&mut enc).unwrap();
            assert_eq!(&out[..], *wire, "{rtype} {rdata}");
            if [
                "A", "AAAA", "NS", "MX", "TXT", "CAA", "TLSA", "SSHFP", "HINFO",
            ]
            .contains(rtype)
            {
                assert!(
                    opaque_bytes(&set.rdata()[0]).is_none(),
                    "{rtype} should be typed"
                );
            }
            if ["SRV", "SVCB", "HTTPS"].contains(rtype) {
                assert!(
                    opaque_bytes(&set.rdata()[0]).is_some(),
                    "{rtype} must not be compressed"
                );
            }
        }
    }

    #[test]
    fn reload_keeps_the_old_version_of_a_zone_whose_file_now_fails() {
        let dir = tempfile::tempdir().unwrap();
        let zone = |serial: u32, extra: &str| {
            format!("$TTL 60\n@ SOA ns hm {serial} 2 3 4 5\n NS ns\nns A 192.0.2.1\n{extra}")
        };
        let a = dir.path().join("a.test.zone");
        let b = dir.path().join("b.test.zone");
        std::fs::write(&a, zone(1, "")).unwrap();
        std::fs::write(&b, zone(1, "")).unwrap();
        let first = Catalog::load(&[], Some(dir.path())).unwrap();
        std::fs::write(&a, zone(2, "www A 192.0.2.999\n")).unwrap();
        std::fs::write(&b, zone(2, "")).unwrap();
        let (second, errors) = Catalog::reload(&first, &[], Some(dir.path()));
        assert!(errors[0].contains("a.test.zone:5"), "{errors:?}");
        assert!(
            errors
                .iter()
                .any(|e| e.contains("keeping the previously loaded zone a.test."))
        );
        let serial = |c: &Catalog, origin: &str| {
            c.find_zone(NameKey::parse(origin).unwrap().as_wire())
                .unwrap()
                .serial()
        };
        assert_eq!(serial(&second, "a.test."), 1, "old a.test kept");
        assert_eq!(serial(&second, "b.test."), 2, "b.test updated");
        // A fresh start has nothing to keep: the broken zone is left out.
        let (fresh, _) = Catalog::load_partial(&[], Some(dir.path()));
        assert_eq!(fresh.zone_count(), 1);
    }
}
