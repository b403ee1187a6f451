//! Building a zone from parsed records and validating it.

use super::*;

/// Types that may sit beside a CNAME (RFC 2181 §10.1, RFC 4035 §2.5).
pub(super) fn allowed_with_cname(t: RecordType) -> bool {
    matches!(
        u16::from(t),
        46 /* RRSIG */ | 47 /* NSEC */ | 5 /* CNAME */
    )
}

pub(super) const DNAME: RecordType = RecordType::Unknown(39);

/// The zone from records parsed beforehand, on this thread ([`Zone::from_bytes_in`]: tests and
/// the fuzz targets).
pub(super) fn build_zone(spec: &ZoneSpec, hint: Option<OriginHint>, parsed: Parsed) -> LoadResult {
    let mut parsed = parsed;
    let mut builder = TreeBuilder::new(hint.as_ref(), true);
    builder.add_chunk(std::mem::take(&mut parsed.records));
    finish_zone(spec, builder, &parsed).expect("the records were kept")
}

/// The zone's names as its records make them, built chunk by chunk while the parser reads on
/// (a large zone's parse and build take about as long each). Messages get their `file:line`
/// once the parse is over and every `$INCLUDE`d file is known.
pub(super) struct TreeBuilder<'h> {
    pub(super) hint: Option<&'h OriginHint>,
    /// Chunks held back until the apex is known (the first SOA, unless given), and every
    /// chunk if `keep_records`.
    pub(super) chunks: Vec<RawRecords>,
    /// Keep the records for the checks that need them all (a million names' records are
    /// ~130 MB, let go once built otherwise).
    pub(super) keep_records: bool,
    pub(super) tree: Option<Tree>,
    pub(super) errors: Vec<(Loc, String)>,
    pub(super) warnings: Vec<(Loc, String)>,
    /// Reused by the RDATA round-trip check.
    pub(super) scratch: Vec<u8>,
}

pub(super) struct Tree {
    pub(super) origin_key: NameKey,
    pub(super) nodes: Nodes,
    pub(super) has_wildcards: bool,
    pub(super) has_dname: bool,
    pub(super) soa_loc: Option<Loc>,
    pub(super) record_count: usize,
}

impl<'h> TreeBuilder<'h> {
    pub(super) fn new(hint: Option<&'h OriginHint>, keep_records: bool) -> TreeBuilder<'h> {
        TreeBuilder {
            hint,
            chunks: Vec::new(),
            keep_records,
            tree: None,
            errors: Vec::new(),
            warnings: Vec::new(),
            scratch: Vec::with_capacity(1024),
        }
    }

    pub(super) fn add_chunk(&mut self, chunk: RawRecords) {
        self.chunks.push(chunk);
        if self.tree.is_some() {
            let last = self.chunks.len() - 1;
            self.add_records(last);
            self.let_go();
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
        nodes.insert(Node::new(OwnerName::from_name(&origin)));
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
        self.let_go();
    }

    /// Frees the records built into the tree unless they are kept.
    fn let_go(&mut self) {
        if !self.keep_records {
            self.chunks.clear();
        }
    }

    /// Adds the records of `self.chunks[i]` to the tree (which exists).
    pub(super) fn add_records(&mut self, i: usize) {
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
        let mut last_owner: Option<(&[u8], OwnerName)> = None;
        for (record, loc) in chunks[i].iter() {
            let owner = match last_owner {
                Some((wire, ref name)) if wire == record.owner_wire() => name.clone(),
                _ => OwnerName::from_wire(record.owner_wire()),
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
                tree.nodes.insert(Node::new(OwnerName::from_wire(p)));
            }
            // RFC 4592: the first label is `*`.
            tree.has_wildcards |= key.0.starts_with(&[1, b'*']);
            tree.has_dname |= rtype == DNAME;
            if !tree.nodes.contains_key(key.0) {
                tree.nodes.insert(Node::new(owner.clone()));
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
            match node.add(&owner, rtype, record.ttl(), record.rdata_wire(), scratch) {
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

/// The checks that need the whole zone, then the zone. `parsed` has the file names. `None`: the
/// DNAME check needs the records, which the builder let go.
pub(super) fn finish_zone(
    spec: &ZoneSpec,
    builder: TreeBuilder<'_>,
    parsed: &Parsed,
) -> Option<LoadResult> {
    let path_text = spec.path.display().to_string();
    let TreeBuilder {
        chunks,
        keep_records,
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
        return Some(Err(vec![format!("{path_text}:1: zone has no SOA record")]));
    };
    // Each record below a DNAME gets its message, and a zone with errors all of its messages.
    if has_dname
        && !keep_records
        && (!located_errors.is_empty() || data_below_dname(&nodes, &origin_key))
    {
        return None;
    }
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
        return Some(Err(errors));
    }

    drop(chunks);
    nodes.shrink_to_fit();
    // A node's RRsets grow exactly (Node::add); a set of several records may have room left.
    for node in nodes.values_mut() {
        for set in node.rrsets.iter_mut() {
            set.shrink_to_fit();
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
    Some(Ok((zone, warnings)))
}

/// Whether a name below a DNAME holds records the DNAME check refuses (all but NSEC3 and
/// RRSIG, as it skips them).
fn data_below_dname(nodes: &Nodes, origin: &NameKey) -> bool {
    nodes.iter().any(|(key, node)| {
        node.rrsets
            .iter()
            .any(|r| !matches!(r.rtype, RecordType::NSEC3 | RRSIG))
            && suffixes(key.as_wire())
                .skip(1)
                .take_while(|s| s.len() >= origin.as_wire().len())
                .any(|s| nodes.get(s).is_some_and(|n| n.rrset(DNAME).is_some()))
    })
}

/// Marks delegation points and everything they (or a DNAME) occlude.
pub(super) fn mark_cuts(nodes: &mut Nodes, origin: &NameKey) {
    for node in nodes.values_mut() {
        node.cut = !node.is_named(origin.as_wire()) && node.rrset(RecordType::NS).is_some();
    }
    if !nodes.values().any(|n| n.cut || n.rrset(DNAME).is_some()) {
        return;
    }
    let occluded: Vec<NameKey> = (nodes.iter().map(|(key, _)| key))
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
        .collect();
    for key in occluded {
        if let Some(node) = nodes.get_mut(&key) {
            node.occluded = true;
        }
    }
}

/// Warns about in-bailiwick NS targets without addresses (RFC 9471 calls such glue required).
pub(super) fn check_glue(nodes: &Nodes, path: &str) -> Vec<String> {
    let mut warnings = Vec::new();
    let mut cuts: Vec<(NameKey, &Node)> = nodes.iter().filter(|(_, n)| n.cut).collect();
    cuts.sort_by(|a, b| a.0.cmp(&b.0));
    for (cut, node) in cuts {
        for rd in node
            .rrset(RecordType::NS)
            .map(Rrset::typed)
            .unwrap_or_default()
        {
            let RData::NS(ns) = rd else { continue };
            let target = NameKey::from_name(&ns.0);
            if !target.is_subdomain_of(&cut) {
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
