//! The in-memory zone model: nodes, RRsets, zones.

use super::*;

/// All records of one (owner, type): the unit DNS answers in (RFC 2181 §5).
#[derive(Clone, Debug)]
pub struct Rrset {
    /// Shared with the node and its other RRsets when written in the same case.
    pub(super) owner: OwnerName,
    pub(super) rtype: RecordType,
    pub(super) ttl: u32,
    pub(super) rdata: RdataSet,
}

/// The records of an RRset. Addresses, most of a large zone, are kept as their bytes: a
/// decoded hickory `RData` takes ~190 bytes and a heap block of its own, an address 4 or 16.
#[derive(Clone, Debug)]
pub(super) enum RdataSet {
    /// A or AAAA records of exactly 4 or 16 bytes each, back to back (one or a few inline).
    Addrs(SmallVec<[u8; 16]>),
    /// Every other set, decoded.
    Typed(Vec<RData>),
}

/// The size of an address of `rtype` if its sets are kept as bytes.
fn addr_len(rtype: RecordType) -> Option<usize> {
    match rtype {
        RecordType::A => Some(4),
        RecordType::AAAA => Some(16),
        _ => None,
    }
}

/// An address's RDATA, as [`decode_typed`] makes it.
fn addr_rdata(bytes: &[u8]) -> RData {
    match bytes.len() {
        4 => RData::A(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).expect("4")).into()),
        _ => RData::AAAA(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).expect("16")).into()),
    }
}

impl Rrset {
    /// The owner as the zone file spells it.
    pub fn owner(&self) -> Name {
        self.owner.to_name()
    }
    /// The owner's key (lowercased).
    pub fn owner_key(&self) -> NameKey {
        self.owner.key()
    }
    pub fn rtype(&self) -> RecordType {
        self.rtype
    }
    pub fn ttl(&self) -> u32 {
        self.ttl
    }
    /// Every record's RDATA in zone order: borrowed, or made from an address set's bytes.
    pub fn rdata(&self) -> impl Iterator<Item = Cow<'_, RData>> + Clone {
        let (addrs, typed): (&[u8], &[RData]) = match &self.rdata {
            RdataSet::Addrs(bytes) => (bytes, &[]),
            RdataSet::Typed(records) => (&[], records),
        };
        let size = addr_len(self.rtype).unwrap_or(1);
        (addrs.chunks_exact(size).map(|a| Cow::Owned(addr_rdata(a))))
            .chain(typed.iter().map(Cow::Borrowed))
    }
    /// The decoded RDATA of a set of any type but A and AAAA (address sets keep their bytes
    /// and are empty here: read them with [`Rrset::rdata`]).
    pub fn typed(&self) -> &[RData] {
        match &self.rdata {
            RdataSet::Typed(records) => records,
            RdataSet::Addrs(_) => &[],
        }
    }
    #[cfg(test)]
    pub fn len(&self) -> usize {
        match &self.rdata {
            RdataSet::Typed(records) => records.len(),
            RdataSet::Addrs(bytes) => bytes.len() / addr_len(self.rtype).unwrap_or(1),
        }
    }
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(super) fn shrink_to_fit(&mut self) {
        match &mut self.rdata {
            RdataSet::Typed(records) => records.shrink_to_fit(),
            RdataSet::Addrs(bytes) => bytes.shrink_to_fit(),
        }
    }
    /// Adds one record's RDATA (wire form, as the zone file's scanner composed it); false if
    /// the set has it already (RFC 2181 §5: an RRset has no duplicates).
    fn push(&mut self, wire: &[u8], scratch: &mut Vec<u8>) -> bool {
        let fits = addr_len(self.rtype) == Some(wire.len());
        match &mut self.rdata {
            RdataSet::Addrs(bytes) if fits => {
                if bytes.chunks_exact(wire.len()).any(|a| a == wire) {
                    return false;
                }
                bytes.extend_from_slice(wire);
                true
            }
            RdataSet::Addrs(_) => {
                // An address of another length (generic `\#` syntax): the set is kept decoded.
                self.rdata = RdataSet::Typed(self.rdata().map(Cow::into_owned).collect());
                self.push(wire, scratch)
            }
            RdataSet::Typed(records) => {
                let rdata = decode(self.rtype, wire, scratch);
                if records.contains(&rdata) {
                    return false;
                }
                records.push(rdata);
                true
            }
        }
    }
    fn new(owner: OwnerName, rtype: RecordType, ttl: u32) -> Rrset {
        let rdata = match addr_len(rtype) {
            Some(_) => RdataSet::Addrs(SmallVec::new()),
            None => RdataSet::Typed(Vec::with_capacity(1)),
        };
        Rrset {
            owner,
            rtype,
            ttl,
            rdata,
        }
    }
}

/// Everything at one name of a zone. A node without RRsets is an empty non-terminal (RFC 8020
/// §2: it exists, so it answers NODATA, never NXDOMAIN).
#[derive(Clone, Debug)]
pub struct Node {
    pub(super) name: OwnerName,
    /// Boxed: 8 bytes less than a Vec in each of a million map slots.
    pub(super) rrsets: Box<[Rrset]>,
    /// Non-apex NS: a zone cut (RFC 1034 §4.2.1); data here and below is not ours except DS.
    pub(super) cut: bool,
    /// Below a zone cut or a DNAME: glue or occluded data, never answered authoritatively.
    pub(super) occluded: bool,
}

impl Node {
    pub(super) fn new(name: OwnerName) -> Node {
        Node {
            name,
            rrsets: Box::default(),
            cut: false,
            occluded: false,
        }
    }
    /// The name in the case of its first appearance in the zone file.
    pub fn name(&self) -> Name {
        self.name.to_name()
    }
    /// The name's key (lowercased).
    pub fn key(&self) -> NameKey {
        self.name.key()
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
    /// True if this is the node of `key` (a lowercased wire name).
    pub(super) fn is_named(&self, key: &[u8]) -> bool {
        self.name.as_wire().eq_ignore_ascii_case(key)
    }
    /// A delegation point: NS here, and this is not the apex.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
    /// Below a cut or a DNAME.
    pub fn is_occluded(&self) -> bool {
        self.occluded
    }
    pub(super) fn add(
        &mut self,
        owner: &OwnerName,
        rtype: RecordType,
        ttl: u32,
        rdata: &[u8],
        scratch: &mut Vec<u8>,
    ) -> AddOutcome {
        match self
            .rrsets
            .binary_search_by_key(&u16::from(rtype), |r| u16::from(r.rtype))
        {
            Ok(i) => {
                let set = &mut self.rrsets[i];
                if !set.push(rdata, scratch) {
                    return AddOutcome::Duplicate;
                }
                if set.ttl != ttl {
                    AddOutcome::TtlMismatch(set.ttl)
                } else {
                    AddOutcome::Added
                }
            }
            Err(i) => {
                let mut set = Rrset::new(owner.clone(), rtype, ttl);
                set.push(rdata, scratch);
                // Exactly: a Vec grows to 4 at once, and shrinking a million names' RRsets
                // once the zone is built took the loading thread's time after the parse.
                let mut rrsets = std::mem::take(&mut self.rrsets).into_vec();
                rrsets.reserve_exact(1);
                rrsets.insert(i, set);
                self.rrsets = rrsets.into_boxed_slice();
                AddOutcome::Added
            }
        }
    }
}

pub(super) enum AddOutcome {
    Added,
    Duplicate,
    /// Added, with the RRset's TTL (the first record's) kept.
    TtlMismatch(u32),
}

/// One authoritative zone: its apex and every name in it (including glue below cuts and empty
/// non-terminals).
#[derive(Debug)]
pub struct Zone {
    pub(super) origin_key: NameKey,
    pub(super) nodes: Nodes,
    pub(super) source: PathBuf,
    pub(super) has_wildcards: bool,
    pub(super) record_count: usize,
    pub(super) dnssec: Dnssec,
}

/// What denial of existence needs from a signed zone (RFC 4035 §3.1.3, RFC 5155 §7.2), indexed
/// once at load.
#[derive(Debug, Default)]
pub(super) struct Dnssec {
    /// The apex has RRSIGs: DO answers carry signatures and proofs.
    pub(super) signed: bool,
    /// Owners of NSEC RRsets, in canonical order (RFC 4034 §6.1).
    pub(super) nsec: Vec<NameKey>,
    /// The NSEC3 chain, if the zone has NSEC3PARAM at its apex.
    pub(super) nsec3: Option<Nsec3Chain>,
    /// Names holding only NSEC3 (and its RRSIGs), kept out of the zone's names: a query for
    /// one is answered as if it didn't exist (RFC 5155 §7.2.8).
    pub(super) nsec3_nodes: Nodes,
}

#[derive(Debug)]
pub(super) struct Nsec3Chain {
    pub(super) iterations: u16,
    pub(super) salt: Vec<u8>,
    /// (lowercase base32hex hash label, owner) sorted by label: hash order (RFC 5155 §3.3).
    pub(super) owners: Vec<(Vec<u8>, NameKey)>,
}

/// RFC 5155 §5: IH(salt, x, k), SHA-1 only (hash algorithm 1), as lowercase base32hex (§3.3).
pub(super) fn nsec3_hash(name: &NameKey, salt: &[u8], iterations: u16) -> Vec<u8> {
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

pub(super) fn base32hex(bytes: &[u8]) -> Vec<u8> {
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

pub(super) const RRSIG: RecordType = RecordType::RRSIG;
pub(super) const NSEC: RecordType = RecordType::NSEC;
pub(super) const NSEC3: RecordType = RecordType::NSEC3;
pub(super) const NSEC3PARAM: RecordType = RecordType::NSEC3PARAM;

impl Dnssec {
    pub(super) fn index(nodes: &mut Nodes, origin: &NameKey) -> Dnssec {
        let nsec3_nodes = nodes.take_where(|n| {
            !n.is_named(origin.as_wire())
                && n.rrset(NSEC3).is_some()
                && n.rrsets
                    .iter()
                    .all(|r| r.rtype == NSEC3 || r.rtype == RRSIG)
        });
        let apex = &nodes[origin];
        let signed = apex.rrset(RRSIG).is_some();
        let mut nsec: Vec<NameKey> = nodes
            .iter()
            .filter(|(_, n)| n.rrset(NSEC).is_some())
            .map(|(k, _)| k)
            .collect();
        nsec.sort_unstable();
        // NSEC3PARAM: algorithm, flags, iterations (2), salt length, salt.
        let nsec3 = apex
            .rrset(NSEC3PARAM)
            .and_then(|s| s.typed().first())
            .and_then(opaque_bytes)
            .filter(|p| p.len() >= 5 && p[0] == 1 && p.len() >= 5 + p[4] as usize)
            .map(|p| {
                let mut owners: Vec<(Vec<u8>, NameKey)> = nsec3_nodes
                    .iter()
                    .filter(|(_, n)| n.rrset(NSEC3).is_some())
                    .filter_map(|(k, _)| {
                        let label = k.as_wire().get(1..1 + *k.as_wire().first()? as usize)?;
                        Some((label.to_vec(), k))
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
        // Records are let go as they are built, unless a check that needs them all (the DNAME
        // one) finds something: then the files are read again, keeping them, for its messages.
        Zone::load_pass(spec, origin_hint.as_ref(), false)
            .or_else(|| Zone::load_pass(spec, origin_hint.as_ref(), true))
            .expect("a pass that keeps its records finishes")
    }

    /// One parse and build; `None` if the records were let go and are needed after all.
    fn load_pass(
        spec: &ZoneSpec,
        hint: Option<&OriginHint>,
        keep_records: bool,
    ) -> Option<LoadResult> {
        let mut parsed = Parsed::default();
        let initial = hint.map(|h| h.name().clone());
        let mut state = IncludeState::new(&spec.path);
        // Parse here while another core builds the tree from the records parsed so far.
        let (sink, chunks) = crossbeam_channel::bounded(4);
        parsed.records.sink = Some(sink);
        let builder = std::thread::scope(|s| {
            let building = s.spawn(move || {
                let mut builder = TreeBuilder::new(hint, keep_records);
                for chunk in chunks {
                    builder.add_chunk(chunk);
                }
                builder
            });
            // The builder stops when the sink closes, so it must close even if parsing panics
            // (the scanner's panics are errors of their line already, parse.rs): then the panic
            // goes on.
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
            return Some(Err(parsed.errors));
        }
        finish_zone(spec, builder, &parsed)
    }

    #[cfg(test)]
    /// Parses zone text held in memory (tests, tools). `$INCLUDE` paths are relative to the
    /// current directory.
    pub fn from_text(origin: &str, text: &str) -> Result<Zone, Vec<String>> {
        let dir = std::env::current_dir().unwrap_or_default();
        Zone::from_bytes_in(origin, text.as_bytes(), &dir)
    }

    /// Parses a zone file's bytes held in memory, `$INCLUDE`s confined to `include_dir` (the
    /// fuzz targets give a directory that doesn't exist, so no include is ever read).
    pub fn from_bytes_in(
        origin: &str,
        bytes: &[u8],
        include_dir: &Path,
    ) -> Result<Zone, Vec<String>> {
        let origin_name = parse_origin(origin).map_err(|e| vec![format!("bad origin: {e}")])?;
        let mut parsed = Parsed::default();
        let path = PathBuf::from(format!("<{origin}>"));
        parsed.files.push(path.clone());
        parse_bytes(
            bytes,
            0,
            Some(origin_name.clone()),
            &path,
            0,
            &mut IncludeState::new(&include_dir.join("text")),
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
    /// The file the zone was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
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
        match self.soa().typed().first() {
            Some(RData::SOA(soa)) => soa.serial(),
            _ => 0,
        }
    }
    /// True if the lowercased wire name is the apex or below it.
    pub fn contains(&self, key: &[u8]) -> bool {
        wire_is_subdomain(key, self.origin_key.as_wire())
    }
    /// Every node in canonical order (deterministic output for the compiler).
    pub fn nodes_sorted(&self) -> Vec<(NameKey, &Node)> {
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        nodes
    }
    /// The nodes in the byte order of their wire names: a deterministic order several times
    /// cheaper to sort into than the canonical one (a million names' compile uses it).
    pub fn nodes_in_wire_order(&self) -> Vec<(NameKey, &Node)> {
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.as_wire().cmp(b.0.as_wire()));
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
