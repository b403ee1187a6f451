//! The RFC 1034 §4.3.2 answering pipeline, shared by the slow path and the compiler.
//!
//! Shaped like Knot's `src/knot/nameserver/internet.c`: [`select_zone`] →
//! [`solve_answer`] (HIT, NODATA, MISS, DELEG, FOLLOW for CNAME/DNAME) → [`solve_dnssec`]
//! (denial of existence, DS at referrals) → [`solve_authority`] → [`solve_additional`]. Zones are
//! pre-signed: with DO, and only for zones whose apex carries RRSIGs, each RRset goes out with the
//! RRSIGs covering it, put in beside it by the step that adds it (RFC 4035 §3.1). Each step
//! only reads the zone model; the result is an [`Answer`] that `wire` renders.

use std::borrow::Cow;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::zone::{Catalog, NameKey, Node, Rrset, Zone, suffixes, wire_is_subdomain};

/// Longest CNAME/DNAME chain we follow (names visited, across zones). NSD 4.6 has no such limit
/// (it stops only at a loop: a 100-link chain comes back whole); a bound keeps one query's work
/// and answer size small, and a resolver restarts from where we stopped.
pub const MAX_CHAIN: usize = 16;

/// A DNAME whose target lies below itself (`d DNAME x.d`) is followed again until the answer holds
/// this many CNAMEs: each substitution only lengthens the name, so the chain is bounded here
/// rather than by the name's length. Knot 3.2 answers so (its bound on CNAMEs per answer; BIND
/// follows to its query restart limit); NSD 4.6 stops after the first substitution. RFC 6672
/// sets no limit; the resolver restarts from the last CNAME either way.
pub const MAX_DNAME_REGROWTH_CNAMES: usize = 5;

/// DNAME (RFC 6672); hickory has no typed variant, so zones keep it as opaque RDATA.
pub const DNAME: RecordType = RecordType::Unknown(39);
/// The DNSSEC types (RFC 4034, RFC 5155); zones keep their RDATA opaque.
const RRSIG: RecordType = RecordType::RRSIG;
const NSEC: RecordType = RecordType::NSEC;
const NSEC3: RecordType = RecordType::NSEC3;

/// What the pipeline needs from a query.
#[derive(Clone, Debug)]
pub struct Question<'a> {
    /// The query name, lowercased.
    pub qname: &'a NameKey,
    pub qtype: RecordType,
    /// DO bit (RFC 3225): signatures and proofs from signed zones (RFC 4035 §3.1).
    pub dnssec_ok: bool,
}

/// The shape of an answer: what the fast path counts and what the compiler may keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Data for the name (possibly after CNAMEs).
    Hit,
    /// The name exists, the type doesn't (RFC 2308 §2.2).
    NoData,
    /// The name doesn't exist (RFC 2308 §2.1).
    NxDomain,
    /// A zone cut: NS in authority, glue in additional (RFC 1034 §4.3.2 step 3b).
    Referral,
    /// Not our zone, or not a question we answer.
    Refused,
    /// Any other error RCODE set by the caller (FORMERR, NOTIMP, BADVERS...).
    Error,
}

/// One resource record of an answer, borrowed from the zone where it can be (the compiler builds
/// hundreds of thousands of answers) and owned where it was synthesized.
#[derive(Clone, Debug)]
pub struct Rr<'z> {
    pub owner: Cow<'z, Name>,
    pub ttl: u32,
    pub rdata: Cow<'z, RData>,
}

impl Rr<'_> {
    pub fn rtype(&self) -> RecordType {
        self.rdata.record_type()
    }
}

/// The records of an RRset, as the zone has them.
fn rrs(set: &Rrset) -> impl Iterator<Item = Rr<'_>> {
    rrs_as(set, Cow::<Name>::Owned(set.owner()), set.ttl())
}

/// The records of an RRset with another owner (wildcards) or TTL (negative SOA).
fn rrs_as<'z>(set: &'z Rrset, owner: Cow<'z, Name>, ttl: u32) -> impl Iterator<Item = Rr<'z>> {
    set.rdata().map(move |rdata| Rr {
        owner: owner.clone(),
        ttl,
        rdata,
    })
}

/// A finished answer: RCODE, AA and the three record sections (OPT is `wire`'s business).
#[derive(Clone, Debug)]
pub struct Answer<'z> {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub outcome: Outcome,
    pub answer: Vec<Rr<'z>>,
    pub authority: Vec<Rr<'z>>,
    pub additional: Vec<Rr<'z>>,
    /// A wildcard (RFC 4592) or DNAME (RFC 6672) produced part of the answer.
    pub synthesized: bool,
    /// Extended DNS Error info-code (RFC 8914) to put in the OPT, if the query had one.
    pub ede: Option<u16>,
    /// The node's identity for the OPT's NSID option, sent if the query asked (RFC 5001).
    pub nsid: Option<&'z [u8]>,
    /// The COOKIE option's data (RFC 7873: client cookie + server cookie), last in the OPT.
    pub cookie: Option<[u8; 24]>,
    /// The class of every record in the sections: IN, except CHAOS identity answers.
    pub class: u16,
    /// Header bits of a recursive answer (RA, AD, CD); 0 for authoritative ones.
    pub recursion_flags: u16,
}

impl<'z> Answer<'z> {
    fn new() -> Answer<'z> {
        Answer {
            rcode: ResponseCode::NoError,
            authoritative: true,
            outcome: Outcome::Hit,
            answer: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
            synthesized: false,
            ede: None,
            nsid: None,
            cookie: None,
            class: rampart_common::dns::CLASS_IN,
            recursion_flags: 0,
        }
    }

    /// An answer with only an RCODE: no records, AA clear.
    /// An empty authoritative NOERROR answer, for callers that fill the sections themselves.
    pub fn hit() -> Answer<'z> {
        Answer::new()
    }

    pub fn error(rcode: ResponseCode) -> Answer<'z> {
        let outcome = if rcode == ResponseCode::Refused {
            Outcome::Refused
        } else {
            Outcome::Error
        };
        Answer {
            rcode,
            authoritative: false,
            outcome,
            ..Answer::new()
        }
    }

    /// REFUSED for a name in none of our zones, with EDE 20 "Not Authoritative" (RFC 8914
    /// §4.21), as NSD sends it.
    pub fn not_authoritative() -> Answer<'z> {
        Answer {
            ede: Some(20),
            ..Answer::error(ResponseCode::Refused)
        }
    }
}

/// Answers one question from the catalog.
pub fn answer<'c>(catalog: &'c Catalog, q: &Question<'_>) -> Answer<'c> {
    if catalog.is_expired(q.qname.as_wire()) {
        return Answer::error(ResponseCode::ServFail);
    }
    let Some(zone) = select_zone(catalog, q) else {
        return Answer::not_authoritative();
    };
    let mut ans = Answer::new();
    // The chain may end in another zone: the later steps work in the zone where it ended.
    let (zone, state) = solve_answer(catalog, zone, q, &mut ans);
    solve_dnssec(zone, q, &state, &mut ans);
    solve_authority(zone, q, &state, &mut ans);
    solve_additional(zone, q, &state, &mut ans);
    ans
}

/// Where `solve_answer` ended; the later steps work from it.
#[derive(Clone, Debug)]
pub enum State<'z> {
    /// Answer section holds the data.
    Hit,
    /// The last name in the chain (the key) exists without the type; the node is its own, or
    /// the wildcard that matched it.
    NoData(&'z Node, NameKey),
    /// The last name in the chain (the key) doesn't exist.
    Miss(NameKey),
    /// The last name in the chain is at or below this cut.
    Deleg(&'z Node),
    /// DNAME substitution overflowed 255 octets (RFC 6672 §2.2): YXDOMAIN.
    DnameOverflow,
}

/// RFC 1034 §4.3.2 step 2: the nearest enclosing zone. DS is the exception (RFC 4035 §3.1.4.1):
/// it lives on the parent side of a cut, so a DS query for a child apex goes to the parent zone
/// when we serve both.
pub fn select_zone<'c>(catalog: &'c Catalog, q: &Question<'_>) -> Option<&'c Zone> {
    let zone = catalog.find_zone(q.qname.as_wire())?;
    if q.qtype == RecordType::DS
        && zone.origin_key() == q.qname
        && let Some(parent) = catalog.parent_zone(zone)
    {
        return Some(parent);
    }
    Some(zone)
}

/// What a name lookup found (RFC 1034 §4.3.2 step 3).
enum Found<'z> {
    /// The name exists (3a).
    Exact(&'z Node),
    /// A cut on the way down (3b): referral, unless it is the name itself and the type is DS.
    Cut(&'z Node),
    /// A DNAME above the name (RFC 6672 §3.2, which inserts it into step 3).
    Dname(&'z Node),
    /// No such name, but `*.<closest encloser>` exists (3c, RFC 4592 §3.3.1).
    Wildcard(&'z Node),
    /// No such name and no wildcard (3c): NXDOMAIN.
    Missing,
}

/// Walks from the apex down to `qname`, stopping at the first cut or DNAME: the topmost one
/// wins, because everything below it is not ours to answer.
fn find_name<'z>(zone: &'z Zone, qname: &NameKey, qtype: RecordType) -> Found<'z> {
    let apex_len = zone.origin_key().as_wire().len();
    let qwire = qname.as_wire();
    let path: Vec<&[u8]> = suffixes(qwire)
        .take_while(|s| s.len() >= apex_len)
        .collect();
    let mut closest = zone.apex();
    for (i, name) in path.iter().rev().enumerate() {
        let Some(node) = zone.node(name) else {
            return match closest_wildcard(zone, name) {
                Some(w) => Found::Wildcard(w),
                None => Found::Missing,
            };
        };
        let is_qname = name.len() == qwire.len();
        if i > 0 && node.is_cut() && !(is_qname && qtype == RecordType::DS) {
            return Found::Cut(node);
        }
        if !is_qname && node.rrset(DNAME).is_some() {
            return Found::Dname(node);
        }
        closest = node;
    }
    Found::Exact(closest)
}

/// The wildcard that covers a missing `name`: `*.` + its parent, the closest encloser
/// (RFC 4592 §3.3.1). The walk in `find_name` guarantees the parent exists.
fn closest_wildcard<'z>(zone: &'z Zone, missing: &[u8]) -> Option<&'z Node> {
    if !zone.has_wildcards() {
        return None;
    }
    let parent = NameKey::from_wire(crate::zone::parent_wire(missing)?)?;
    zone.node(parent.wildcard_child()?.as_wire())
}

/// RFC 1034 §4.3.2 step 3 (with RFC 2308 for the negative cases, RFC 4592 for wildcards and
/// RFC 6672 for DNAME): fill the answer section, following CNAMEs and DNAMEs. Returns where the
/// chain ended: the zone and the state the later steps work from.
///
/// Step 3a says "change QNAME to the canonical name in the CNAME RR, and go back to step 1",
/// so each new name selects its zone again (step 2): the chain goes on into any zone we serve,
/// including a child zone below a cut of this one, as NSD 4.6 does (`answer_domain` →
/// `answer_lookup_zone`). It stops at a name in none of our zones (the answer so far, NOERROR),
/// at a loop, after [`MAX_CHAIN`] names, and at a cut in the target's zone (a referral: NS in
/// authority, glue in additional, AA still set because the answer section is ours; NSD's
/// `answer_delegation` with `cname_count > 0`). A negative end takes the SOA of the zone where
/// the chain ended. The answer then depends on several zones, which is fine: the compiler
/// compiles the whole catalog at once on every load and reload.
pub fn solve_answer<'z>(
    catalog: &'z Catalog,
    mut zone: &'z Zone,
    q: &Question<'_>,
    ans: &mut Answer<'z>,
) -> (&'z Zone, State<'z>) {
    let mut qname = q.qname.clone();
    // The owner to give synthesized records: the name as the client (or the CNAME) spelt it.
    let mut owner: Name = qname.to_name();
    let mut visited: Vec<NameKey> = Vec::new();
    loop {
        if visited.len() >= MAX_CHAIN || visited.contains(&qname) {
            // A loop or a chain too long: answer what we have (NSD does the same at a loop).
            return (zone, State::Hit);
        }
        visited.push(qname.clone());
        let (node, synthesized) = match find_name(zone, &qname, q.qtype) {
            Found::Exact(node) => (node, false),
            Found::Wildcard(node) => (node, true),
            Found::Cut(cut) => {
                // A referral for the query name itself is not authoritative (RFC 1034 §4.3.2).
                if ans.answer.is_empty() {
                    ans.authoritative = false;
                }
                return (zone, State::Deleg(cut));
            }
            Found::Missing => {
                ans.rcode = ResponseCode::NXDomain;
                return (zone, State::Miss(qname));
            }
            Found::Dname(dnode) => {
                let sign = q.dnssec_ok && zone.is_signed();
                let Some((new_owner, target)) = follow_dname(dnode, &qname, &owner, sign, ans)
                else {
                    ans.rcode = ResponseCode::YXDomain;
                    return (zone, State::DnameOverflow);
                };
                ans.synthesized = true;
                if wire_is_subdomain(target.as_wire(), dnode.key().as_wire()) {
                    // The target is below this DNAME again (`d DNAME x.d`): follow it, bounded.
                    let cnames = (ans.answer.iter())
                        .filter(|rr| rr.rtype() == RecordType::CNAME)
                        .count();
                    if cnames >= MAX_DNAME_REGROWTH_CNAMES {
                        return (zone, State::Hit);
                    }
                }
                if q.qtype == RecordType::CNAME {
                    // The synthesized CNAME answers a CNAME query, as a zone's CNAME does
                    // (step 3a); NSD and BIND stop here too.
                    return (zone, State::Hit);
                }
                let Some(next) = next_zone(catalog, &target, q) else {
                    return (zone, State::Hit);
                };
                zone = next;
                owner = new_owner;
                qname = target;
                continue;
            }
        };
        ans.synthesized |= synthesized;
        // Wildcard answers carry the query name as owner (RFC 4592 §3.3.1); exact ones the
        // zone's own spelling. With DO, each RRset is followed by its RRSIGs (RFC 4035
        // §3.1.1), and a wildcard expansion by the proof that the name itself doesn't exist
        // (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6).
        let sign = q.dnssec_ok && zone.is_signed();
        let push = |ans: &mut Answer<'z>, set: &'z Rrset| {
            let owner = if synthesized {
                Cow::Owned(owner.clone())
            } else {
                Cow::<Name>::Owned(set.owner())
            };
            if set.rtype() == RRSIG {
                // Each signature with the TTL of the RRset it covers (RFC 4034 §3), as the
                // zone file has them; NSD sends them so.
                ans.answer.extend(set.typed().iter().map(|rd| Rr {
                    owner: owner.clone(),
                    ttl: covered_ttl(node, rd).unwrap_or(set.ttl()),
                    rdata: Cow::Borrowed(rd),
                }));
            } else {
                ans.answer.extend(rrs_as(set, owner.clone(), set.ttl()));
            }
            if sign {
                ans.answer
                    .extend(rrsigs(node, set.rtype(), owner, set.ttl()));
                if synthesized {
                    deny_wildcard_expansion(zone, &qname, ans);
                }
            }
        };
        // A CNAME is followed unless the name holds the asked type itself: only RRSIG and NSEC
        // may stand beside a CNAME (RFC 4035 §2.5), and a query for them is answered from the
        // name, as NSD and Knot do.
        if let Some(cname) = node.rrset(RecordType::CNAME)
            && q.qtype != RecordType::CNAME
            && q.qtype != RecordType::ANY
            && node.rrset(q.qtype).is_none()
        {
            push(ans, cname);
            let Some(RData::CNAME(target)) = cname.typed().first() else {
                return (zone, State::Hit);
            };
            let target_key = NameKey::from_name(&target.0);
            let Some(next) = next_zone(catalog, &target_key, q) else {
                return (zone, State::Hit);
            };
            zone = next;
            owner = target.0.clone();
            qname = target_key;
            continue;
        }
        let set = if q.qtype == RecordType::ANY {
            any_rrset(node)
        } else {
            node.rrset(q.qtype)
        };
        return match set {
            Some(set) => {
                push(ans, set);
                (zone, State::Hit)
            }
            None => (zone, State::NoData(node, qname)),
        };
    }
}

/// RFC 1034 §4.3.2 step 3a → step 2 for the next name of a chain: the zone to look it up in, or
/// `None` if we serve none (the chain ends there, as in NSD; RFC 1034 leaves the rest to the
/// resolver). The DS rule of [`select_zone`] applies to each name, as NSD applies it.
fn next_zone<'c>(catalog: &'c Catalog, target: &NameKey, q: &Question<'_>) -> Option<&'c Zone> {
    let next = Question {
        qname: target,
        ..q.clone()
    };
    select_zone(catalog, &next)
}

/// RFC 8482 §4.1: answer ANY with one RRset rather than everything: the SOA at an apex (as NSD
/// does), elsewhere the RRset with the lowest type code (RRSIG/NSEC excepted). Small and
/// deterministic, so the compiler could keep it too.
fn any_rrset(node: &Node) -> Option<&Rrset> {
    node.rrset(RecordType::SOA).or_else(|| {
        node.rrsets()
            .iter()
            .find(|s| !matches!(u16::from(s.rtype()), 46 | 47))
    })
}

/// RFC 6672 §3.1: put the DNAME in the answer with a CNAME synthesized from the query name
/// (TTL of the DNAME); returns the new name to continue with, or `None` if it is too long.
fn follow_dname<'z>(
    dnode: &'z Node,
    qname: &NameKey,
    owner: &Name,
    sign: bool,
    ans: &mut Answer<'z>,
) -> Option<(Name, NameKey)> {
    let dname = dnode.rrset(DNAME)?;
    let push_dname = |ans: &mut Answer<'z>| {
        // A chain may pass the same DNAME twice; the answer holds its RRset once.
        if ans
            .answer
            .iter()
            .any(|rr| rr.rtype() == DNAME && *rr.owner == dname.owner())
        {
            return;
        }
        ans.answer.extend(rrs(dname));
        if sign {
            // The synthesized CNAME has no signature (RFC 6672 §5.3.1).
            let owner = Cow::<Name>::Owned(dname.owner());
            ans.answer.extend(rrsigs(dnode, DNAME, owner, dname.ttl()));
        }
    };
    let target_wire = dname.typed().first().and_then(crate::zone::opaque_bytes)?;
    let owner_key = dnode.key();
    let prefix_len = qname.as_wire().len() - owner_key.as_wire().len();
    debug_assert!(wire_is_subdomain(qname.as_wire(), owner_key.as_wire()));
    // Keep the query's own prefix labels (its case), swap the suffix.
    let owner_wire = name_to_wire(owner);
    let mut new_wire = owner_wire[..prefix_len].to_vec();
    new_wire.extend_from_slice(target_wire);
    if new_wire.len() > rampart_common::MAX_NAME {
        push_dname(ans);
        return None;
    }
    let new_name = crate::zone::wire_to_name(&new_wire)?;
    push_dname(ans);
    let cname = RData::CNAME(hickory_proto::rr::rdata::CNAME(new_name.clone()));
    ans.answer.push(Rr {
        owner: Cow::Owned(owner.clone()),
        ttl: dname.ttl(),
        rdata: Cow::Owned(cname),
    });
    Some((new_name.clone(), NameKey::from_name(&new_name)))
}

fn name_to_wire(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    wire
}

/// The RRSIGs at `node` covering `covered` (RFC 4035 §3.1.1), with the owner and TTL the RRset
/// was given: a signature's TTL is its RRset's (RFC 4034 §3), and a wildcard's signature goes
/// out under the query name, its label count telling the validator so (RFC 4035 §3.1.3.3).
fn rrsigs<'z>(
    node: &'z Node,
    covered: RecordType,
    owner: Cow<'z, Name>,
    ttl: u32,
) -> impl Iterator<Item = Rr<'z>> {
    let code = u16::from(covered).to_be_bytes();
    node.rrset(RRSIG)
        .into_iter()
        .flat_map(|set| set.typed())
        .filter(move |rd| crate::zone::opaque_bytes(rd).is_some_and(|b| b.starts_with(&code)))
        .map(move |rd| Rr {
            owner: owner.clone(),
            ttl,
            rdata: Cow::Borrowed(rd),
        })
}

/// The TTL of the RRset an RRSIG covers, if it is at `node`.
fn covered_ttl(node: &Node, rrsig: &RData) -> Option<u32> {
    let b = crate::zone::opaque_bytes(rrsig)?;
    let covered = RecordType::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
    node.rrset(covered).map(Rrset::ttl)
}

/// Puts the `rtype` (NSEC or NSEC3) RRset of `node` and its RRSIGs in authority, once: two
/// proofs may need the same record (RFC 4035 §3.1.3.2).
fn add_denial<'z>(node: &'z Node, rtype: RecordType, ans: &mut Answer<'z>) {
    let Some(set) = node.rrset(rtype) else { return };
    let key = set.owner_key();
    if ans
        .authority
        .iter()
        .any(|rr| rr.rtype() == rtype && NameKey::from_name(&rr.owner) == key)
    {
        return;
    }
    ans.authority.extend(rrs(set));
    ans.authority.extend(rrsigs(
        node,
        rtype,
        Cow::<Name>::Owned(set.owner()),
        set.ttl(),
    ));
}

/// The closest encloser of a missing `qname` (RFC 5155 §1.3, RFC 4592 §3.3.1): its longest
/// existing ancestor, and the next closer name (one label longer, on the way to `qname`).
fn closest_encloser(zone: &Zone, qname: &NameKey) -> Option<(NameKey, NameKey)> {
    let path: Vec<&[u8]> = suffixes(qname.as_wire()).collect();
    let i = path.iter().position(|s| zone.node(s).is_some())?;
    let next_closer = path.get(i.checked_sub(1)?)?;
    Some((
        NameKey::from_wire(path[i])?,
        NameKey::from_wire(next_closer)?,
    ))
}

/// RFC 4035 §3.1.3.3 / RFC 5155 §7.2.6: an answer synthesized from a wildcard for `qname`
/// carries the proof that `qname` (NSEC), or the next closer name (NSEC3), doesn't exist.
fn deny_wildcard_expansion<'z>(zone: &'z Zone, qname: &NameKey, ans: &mut Answer<'z>) {
    if zone.uses_nsec3() {
        if let Some((_, next_closer)) = closest_encloser(zone, qname)
            && let Some(n) = zone.nsec3_covering(&next_closer)
        {
            add_denial(n, NSEC3, ans);
        }
    } else if let Some(n) = zone.nsec_covering(qname) {
        add_denial(n, NSEC, ans);
    }
}

/// RFC 4035 §3.1.3.2 / RFC 5155 §7.2.2: the name doesn't exist, nor a wildcard that could
/// have answered for it. NSEC: the NSEC covering the name and the one covering `*.` + closest
/// encloser. NSEC3: the closest encloser proof (the NSEC3 matching the closest encloser, the
/// one covering the next closer name) and the one covering the wildcard.
fn deny_name<'z>(zone: &'z Zone, qname: &NameKey, ans: &mut Answer<'z>) {
    let Some((ce, next_closer)) = closest_encloser(zone, qname) else {
        return;
    };
    let Some(wildcard) = ce.wildcard_child() else {
        return;
    };
    if zone.uses_nsec3() {
        for n in [
            zone.nsec3_matching(&ce),
            zone.nsec3_covering(&next_closer),
            zone.nsec3_covering(&wildcard),
        ]
        .into_iter()
        .flatten()
        {
            add_denial(n, NSEC3, ans);
        }
    } else {
        for n in [zone.nsec_covering(qname), zone.nsec_covering(&wildcard)]
            .into_iter()
            .flatten()
        {
            add_denial(n, NSEC, ans);
        }
    }
}

/// RFC 5155 §7.2.1: the NSEC3 matching the closest ancestor of `name` that has one, and the
/// NSEC3 covering the next closer name (one label longer, towards `name`).
fn closest_provable_encloser<'z>(zone: &'z Zone, name: &NameKey, ans: &mut Answer<'z>) {
    let path: Vec<&[u8]> = suffixes(name.as_wire()).collect();
    for i in 1..path.len() {
        let Some(ancestor) = NameKey::from_wire(path[i]) else {
            return;
        };
        if !zone.contains(ancestor.as_wire()) {
            return;
        }
        if let Some(n) = zone.nsec3_matching(&ancestor) {
            add_denial(n, NSEC3, ans);
            if let Some(c) = NameKey::from_wire(path[i - 1]).and_then(|nc| zone.nsec3_covering(&nc))
            {
                add_denial(c, NSEC3, ans);
            }
            return;
        }
    }
}

/// RFC 4035 §3.1.3.1 / RFC 5155 §7.2.3: the name exists without the type: its NSEC, or the
/// NSEC3 matching it. From a wildcard (RFC 4035 §3.1.3.4, RFC 5155 §7.2.5) also the proof that
/// the name itself doesn't exist, and the wildcard's own NSEC(3) showing the type missing.
fn deny_type<'z>(zone: &'z Zone, node: &'z Node, qname: &NameKey, ans: &mut Answer<'z>) {
    let own = node.key();
    let wildcard = own != *qname;
    if zone.uses_nsec3() {
        if wildcard && let Some((ce, next_closer)) = closest_encloser(zone, qname) {
            for n in [zone.nsec3_matching(&ce), zone.nsec3_covering(&next_closer)]
                .into_iter()
                .flatten()
            {
                add_denial(n, NSEC3, ans);
            }
        }
        if let Some(n) = zone.nsec3_matching(&own) {
            add_denial(n, NSEC3, ans);
        } else if !wildcard {
            // No NSEC3 at the name: an unsigned delegation inside an opt-out span. The closest
            // provable encloser proof shows it (RFC 5155 §7.2.4 for DS NODATA, §7.2.7 for the
            // referral): the opt-out NSEC3 covering the next closer name allows an insecure cut.
            closest_provable_encloser(zone, &own, ans);
        }
    } else {
        if wildcard && let Some(n) = zone.nsec_covering(qname) {
            add_denial(n, NSEC, ans);
        }
        if node.rrset(NSEC).is_some() {
            add_denial(node, NSEC, ans);
        } else if let Some(n) = zone.nsec_covering(&own) {
            // An empty non-terminal has no NSEC: the one covering it, whose next name is
            // below it, proves it has no types (as NSD answers; RFC 4035 §3.1.3.1).
            add_denial(n, NSEC, ans);
        }
    }
}

/// DNSSEC additions to authority (RFC 4035 §3.1.3, §3.1.4) when the query has DO and the zone
/// where the answer ended is signed: denial of existence for negative answers, and for a
/// referral the DS RRset with its RRSIGs, or the proof that there is no DS. RRSIGs of answer
/// RRsets go in with them (`solve_answer`), the SOA's with the SOA (`solve_authority`).
pub fn solve_dnssec<'z>(zone: &'z Zone, q: &Question<'_>, state: &State<'z>, ans: &mut Answer<'z>) {
    if !q.dnssec_ok || !zone.is_signed() {
        return;
    }
    match state {
        State::Miss(qname) => deny_name(zone, qname, ans),
        State::NoData(node, qname) => deny_type(zone, node, qname, ans),
        State::Deleg(cut) => match cut.rrset(RecordType::DS) {
            Some(ds) => {
                ans.authority.extend(rrs(ds));
                ans.authority.extend(rrsigs(
                    cut,
                    RecordType::DS,
                    Cow::<Name>::Owned(ds.owner()),
                    ds.ttl(),
                ));
            }
            None => deny_type(zone, cut, &cut.key(), ans),
        },
        State::Hit | State::DnameOverflow => {}
    }
}

/// RFC 2308 §3 (negative answers: the zone's SOA, TTL = min(SOA TTL, SOA MINIMUM)) and RFC 1034
/// §4.3.2 step 3b (referrals: the cut's NS RRset). Positive answers get nothing: minimal
/// responses, as Knot does by default.
pub fn solve_authority<'z>(
    zone: &'z Zone,
    q: &Question<'_>,
    state: &State<'z>,
    ans: &mut Answer<'z>,
) {
    match state {
        State::NoData(..) | State::Miss(_) => {
            let soa = zone.soa();
            let minimum = match soa.typed().first() {
                Some(RData::SOA(s)) => s.minimum(),
                _ => soa.ttl(),
            };
            let ttl = soa.ttl().min(minimum);
            let owner = Cow::<Name>::Owned(soa.owner());
            ans.authority.extend(rrs_as(soa, owner.clone(), ttl));
            if q.dnssec_ok && zone.is_signed() {
                // The SOA's signature, with the SOA's negative TTL, as NSD sends it.
                ans.authority
                    .extend(rrsigs(zone.apex(), RecordType::SOA, owner, ttl));
            }
            ans.outcome = if matches!(state, State::Miss(_)) {
                Outcome::NxDomain
            } else {
                Outcome::NoData
            };
        }
        State::Deleg(cut) => {
            if let Some(ns) = cut.rrset(RecordType::NS) {
                ans.authority.extend(rrs(ns));
            }
            ans.outcome = Outcome::Referral;
        }
        State::Hit => ans.outcome = Outcome::Hit,
        State::DnameOverflow => ans.outcome = Outcome::Error,
    }
}

/// RFC 1034 §4.3.2 step 6 as minimal responses read it (NSD's `minimal-responses: yes`, our
/// oracle): addresses of NS targets inside this zone, for referrals (glue below the cut, RFC
/// 9471, or sibling data) and for NS answers. Nothing for MX/SRV/SVCB targets.
pub fn solve_additional<'z>(
    zone: &'z Zone,
    q: &Question<'_>,
    state: &State<'z>,
    ans: &mut Answer<'z>,
) {
    let ns = match state {
        State::Deleg(cut) => cut.rrset(RecordType::NS),
        // An NS answer: the RRset at the (last) name answered.
        State::Hit => {
            let last = (ans.answer.iter().rev())
                .find(|rr| rr.rtype() != RRSIG)
                .filter(|rr| rr.rtype() == RecordType::NS);
            last.and_then(|rr| zone.node(NameKey::from_name(&rr.owner).as_wire()))
                .and_then(|node| node.rrset(RecordType::NS))
        }
        _ => None,
    };
    let Some(ns) = ns else { return };
    ns_addresses(zone, ns, q.dnssec_ok && zone.is_signed(), ans);
}

/// A then AAAA of each in-zone NS target, in NS order; with their RRSIGs if `sign` (glue has
/// none: it isn't authoritative data, RFC 4035 §2.2).
fn ns_addresses<'z>(zone: &'z Zone, ns: &'z Rrset, sign: bool, ans: &mut Answer<'z>) {
    for rd in ns.typed() {
        let RData::NS(target) = rd else { continue };
        let key = NameKey::from_name(&target.0);
        if !zone.contains(key.as_wire()) {
            continue;
        }
        let Some(node) = zone.node(key.as_wire()) else {
            continue;
        };
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Some(set) = node.rrset(rtype) {
                ans.additional.extend(rrs(set));
                if sign && !node.is_occluded() {
                    let owner = Cow::<Name>::Owned(set.owner());
                    ans.additional.extend(rrsigs(node, rtype, owner, set.ttl()));
                }
            }
        }
    }
}

/// Zones whose CNAMEs and DNAMEs cross into each other, for tests across modules. Expected
/// answers in the tests were checked against NSD 4.6.1 serving the same data.
#[cfg(test)]
pub mod testzones {
    use crate::zone::{Catalog, Zone};

    pub fn cross_zone_catalog() -> Catalog {
        let a = Zone::from_text(
            "a.test.",
            "$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\nwww A 192.0.2.4\n\
             alias CNAME www.b.test.\nAlias-Nx CNAME nope.B.TEST.\nalias-ent CNAME ent.b.test.\n\
             alias-deleg CNAME x.sub.b.test.\nalias-out CNAME www.example.org.\n\
             alias-chain CNAME c1.b.test.\nc2 A 192.0.2.2\nxl1 CNAME xl2.b.test.\n\
             alias-wild CNAME foo.wild.b.test.\nalias-child CNAME www.child.a.test.\n\
             alias-ns CNAME b.test.\nalias-dname CNAME www.xdn.b.test.\n\
             child NS ns.child\nns.child A 192.0.2.3\n",
        )
        .unwrap();
        let b = Zone::from_text(
            "b.test.",
            "$TTL 120\n@ SOA ns hm 1 2 3 4 40\n NS ns\n NS ns.a.test.\nns A 192.0.2.11\n\
             \x20AAAA 2001:db8::11\nwww A 192.0.2.12\nx.ent A 192.0.2.13\nsub NS ns.sub\n\
             ns.sub A 192.0.2.14\nc1 CNAME c2.a.test.\nxl2 CNAME xl1.a.test.\n\
             *.wild A 192.0.2.15\nxdn DNAME a.test.\n",
        )
        .unwrap();
        let child = Zone::from_text(
            "child.a.test.",
            "$TTL 90\n@ SOA ns hm 1 2 3 4 50\n NS ns\nns A 192.0.2.3\nwww A 192.0.2.17\n",
        )
        .unwrap();
        Catalog::from_zones([a, b, child])
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::Record;

    use super::*;
    use crate::respond::respond;
    use crate::wire::testutil::{query_packet, query_packet_class};
    use crate::wire::{FLAG_RD, Transport};
    use crate::zone::Zone;

    fn sample() -> Catalog {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        Catalog::load(&[], Some(&dir)).unwrap()
    }

    fn ask(cat: &Catalog, qname: &str, qtype: RecordType) -> Message {
        let p = query_packet(0xbeef, FLAG_RD, qname, qtype.into(), Some((1232, false, 0)));
        let r = respond(cat, &p, Transport::Udp).expect("a response");
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(m.id(), 0xbeef);
        assert_eq!(m.message_type(), MessageType::Response);
        assert!(m.recursion_desired() && !m.recursion_available() && !m.authentic_data());
        m
    }

    fn names(rrs: &[Record]) -> Vec<String> {
        rrs.iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.name().to_ascii().to_lowercase(),
                    r.ttl(),
                    r.record_type()
                )
            })
            .collect()
    }

    #[test]
    fn positive_answer() {
        let cat = sample();
        let m = ask(&cat, "wWw.Example.COM", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["www.example.com. 3600 A"]);
        assert!(m.name_servers().is_empty());
        assert_eq!(m.additionals().len(), 0, "OPT is not a record here");
        assert_eq!(m.extensions().as_ref().unwrap().max_payload(), 1232);
        // The owner came back in the client's case: it points at the question.
        assert_eq!(m.answers()[0].name().to_ascii(), "wWw.Example.COM.");
    }

    #[test]
    fn nodata_nxdomain_and_ent_carry_soa_with_negative_ttl() {
        let cat = sample();
        for (qname, qtype, rcode) in [
            ("www.example.com", RecordType::MX, ResponseCode::NoError),
            ("nope.example.com", RecordType::A, ResponseCode::NXDomain),
            (
                "deeper.nope.example.com",
                RecordType::A,
                ResponseCode::NXDomain,
            ),
            ("b.example.com", RecordType::A, ResponseCode::NoError),
        ] {
            let m = ask(&cat, qname, qtype);
            assert_eq!(m.response_code(), rcode, "{qname}");
            assert!(m.authoritative());
            assert!(m.answers().is_empty());
            // SOA TTL 3600, MINIMUM 300: RFC 2308 §3 says 300.
            assert_eq!(names(m.name_servers()), ["example.com. 300 SOA"], "{qname}");
        }
    }

    #[test]
    fn cname_chain_loop_and_out_of_zone_target() {
        let cat = sample();
        let m = ask(&cat, "alias.example.com", RecordType::A);
        assert_eq!(
            names(m.answers()),
            [
                "alias.example.com. 3600 CNAME",
                "alias2.example.com. 3600 CNAME",
                "www.example.com. 3600 A"
            ]
        );
        assert!(m.authoritative());
        // Asking for the CNAME itself doesn't follow it.
        let m = ask(&cat, "alias.example.com", RecordType::CNAME);
        assert_eq!(names(m.answers()), ["alias.example.com. 3600 CNAME"]);
        // Chain to a type the target lacks: NODATA after the chain.
        let m = ask(&cat, "alias.example.com", RecordType::MX);
        assert_eq!(m.answers().len(), 2);
        assert_eq!(names(m.name_servers()), ["example.com. 300 SOA"]);
        // A loop ends.
        let m = ask(&cat, "loop1.example.com", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            [
                "loop1.example.com. 3600 CNAME",
                "loop2.example.com. 3600 CNAME"
            ]
        );
        // Out of zone: the CNAME only.
        let m = ask(&cat, "ext.example.com", RecordType::A);
        assert_eq!(names(m.answers()), ["ext.example.com. 3600 CNAME"]);
        assert!(m.name_servers().is_empty());
    }

    #[test]
    fn referral_with_glue_and_ds_from_the_parent() {
        let cat = sample();
        for qname in [
            "sub.example.com",
            "www.sub.example.com",
            "ns1.sub.example.com",
        ] {
            let m = ask(&cat, qname, RecordType::A);
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert!(
                !m.authoritative(),
                "{qname}: referrals are not authoritative"
            );
            assert!(m.answers().is_empty());
            assert_eq!(
                names(m.name_servers()),
                ["sub.example.com. 3600 NS", "sub.example.com. 3600 NS"]
            );
            // Glue for the in-zone target only, A then AAAA.
            assert_eq!(
                names(m.additionals()),
                [
                    "ns1.sub.example.com. 3600 A",
                    "ns1.sub.example.com. 3600 AAAA"
                ]
            );
        }
        let m = ask(&cat, "sub.example.com", RecordType::DS);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["sub.example.com. 3600 DS"]);
    }

    #[test]
    fn refused_for_other_zones_and_classes() {
        let cat = sample();
        let m = ask(&cat, "www.example.org", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::Refused);
        assert!(!m.authoritative());
        assert!(m.answers().is_empty() && m.name_servers().is_empty());
        let p = query_packet_class(1, 0, "www.example.com", 16, 3, None);
        let m = Message::from_vec(&respond(&cat, &p, Transport::Udp).unwrap()).unwrap();
        assert_eq!(m.response_code(), ResponseCode::Refused);
        let p = query_packet(1, 0, "example.com", 252, None);
        let m = Message::from_vec(&respond(&cat, &p, Transport::Tcp).unwrap()).unwrap();
        assert_eq!(m.response_code(), ResponseCode::Refused);
    }

    #[test]
    fn any_gets_one_rrset() {
        let cat = sample();
        let m = ask(&cat, "example.com", RecordType::ANY);
        assert_eq!(names(m.answers()), ["example.com. 3600 SOA"]);
        let m = ask(&cat, "ns2.example.com", RecordType::ANY);
        assert_eq!(names(m.answers()), ["ns2.example.com. 3600 A"]);
        // NS answers carry the in-zone targets' addresses (NSD's minimal responses do too).
        let m = ask(&cat, "example.com", RecordType::NS);
        assert_eq!(names(m.answers()).len(), 2);
        assert_eq!(
            names(m.additionals()),
            [
                "ns1.example.com. 3600 A",
                "ns2.example.com. 3600 A",
                "ns2.example.com. 3600 AAAA"
            ]
        );
        // REFUSED carries EDE 20 when the query had an OPT.
        let p = query_packet(1, 0, "www.example.org", 1, Some((1232, false, 0)));
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        assert_eq!(
            &r[r.len() - 17..],
            [0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 6, 0, 15, 0, 2, 0, 20]
        );
        let m = ask(&cat, "alias.example.com", RecordType::ANY);
        assert_eq!(names(m.answers()), ["alias.example.com. 3600 CNAME"]);
    }

    fn zone(origin: &str, text: &str) -> Zone {
        Zone::from_text(
            origin,
            &format!("$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n{text}"),
        )
        .unwrap()
    }

    /// RFC 1034 §4.3.2 step 3a: the chain goes back to step 1 (and 2: zone selection) for each
    /// name, into every zone we serve. Each expectation is what NSD 4.6.1 answered for the same
    /// zones (dig against a local NSD, minimal-responses).
    #[test]
    fn cname_chain_crosses_into_other_zones_we_serve() {
        let cat = super::testzones::cross_zone_catalog();
        let m = ask(&cat, "alias.a.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        assert_eq!(
            names(m.answers()),
            ["alias.a.test. 60 CNAME", "www.b.test. 120 A"]
        );
        assert!(m.name_servers().is_empty() && m.additionals().is_empty());
        // Negative ends take the SOA (and negative TTL) of the zone where the chain ended.
        let m = ask(&cat, "alias.a.test", RecordType::MX);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(names(m.answers()), ["alias.a.test. 60 CNAME"]);
        assert_eq!(names(m.name_servers()), ["b.test. 40 SOA"]);
        let m = ask(&cat, "alias-nx.a.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["alias-nx.a.test. 60 CNAME"]);
        assert_eq!(names(m.name_servers()), ["b.test. 40 SOA"]);
        let m = ask(&cat, "alias-ent.a.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(names(m.name_servers()), ["b.test. 40 SOA"]);
        // A cut in the target's zone: referral after the CNAME, AA still set.
        let m = ask(&cat, "alias-deleg.a.test", RecordType::A);
        assert!(m.authoritative());
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(names(m.answers()), ["alias-deleg.a.test. 60 CNAME"]);
        assert_eq!(names(m.name_servers()), ["sub.b.test. 120 NS"]);
        assert_eq!(names(m.additionals()), ["ns.sub.b.test. 120 A"]);
        // A name in none of our zones ends the chain.
        let m = ask(&cat, "alias-out.a.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["alias-out.a.test. 60 CNAME"]);
        assert!(m.name_servers().is_empty());
        // There and back again; and a loop across zones ends.
        let m = ask(&cat, "alias-chain.a.test", RecordType::A);
        assert_eq!(
            names(m.answers()),
            [
                "alias-chain.a.test. 60 CNAME",
                "c1.b.test. 120 CNAME",
                "c2.a.test. 60 A"
            ]
        );
        let m = ask(&cat, "xl1.a.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            ["xl1.a.test. 60 CNAME", "xl2.b.test. 120 CNAME"]
        );
        // A wildcard in the other zone; a child zone below our own cut (not a referral).
        let m = ask(&cat, "alias-wild.a.test", RecordType::A);
        assert_eq!(
            names(m.answers()),
            ["alias-wild.a.test. 60 CNAME", "foo.wild.b.test. 120 A"]
        );
        let m = ask(&cat, "alias-child.a.test", RecordType::A);
        assert!(m.authoritative());
        assert_eq!(
            names(m.answers()),
            ["alias-child.a.test. 60 CNAME", "www.child.a.test. 90 A"]
        );
        // NS at the end: the addresses the target's zone has for its in-zone targets.
        let m = ask(&cat, "alias-ns.a.test", RecordType::NS);
        assert_eq!(
            names(m.answers()),
            [
                "alias-ns.a.test. 60 CNAME",
                "b.test. 120 NS",
                "b.test. 120 NS"
            ]
        );
        assert_eq!(
            names(m.additionals()),
            ["ns.b.test. 120 A", "ns.b.test. 120 AAAA"]
        );
        // DNAME into another zone, and a CNAME into that DNAME.
        let m = ask(&cat, "www.xdn.b.test", RecordType::A);
        assert_eq!(
            names(m.answers()),
            [
                "xdn.b.test. 120 Unknown",
                "www.xdn.b.test. 120 CNAME",
                "www.a.test. 60 A"
            ]
        );
        let m = ask(&cat, "nope.xdn.b.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(names(m.name_servers()), ["a.test. 30 SOA"]);
        let m = ask(&cat, "alias-dname.a.test", RecordType::A);
        assert_eq!(m.answers().len(), 4);
        assert_eq!(names(&m.answers()[3..]), ["www.a.test. 60 A"]);
    }

    #[test]
    fn wildcards_synthesize_but_not_over_existing_names() {
        let z = zone(
            "w.test.",
            "*.w.test. A 192.0.2.9\n*.w.test. TXT \"wild\"\nreal A 192.0.2.10\nx.ent A 192.0.2.11\n*.c CNAME real\n",
        );
        let cat = Catalog::from_zones([z]);
        let m = ask(&cat, "Foo.w.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(m.answers()[0].name().to_ascii(), "Foo.w.test.");
        assert_eq!(names(m.answers()), ["foo.w.test. 60 A"]);
        // Wildcard NODATA.
        let m = ask(&cat, "foo.w.test", RecordType::MX);
        assert!(m.answers().is_empty());
        assert_eq!(names(m.name_servers()), ["w.test. 30 SOA"]);
        // Existing name: no synthesis (RFC 4592 §2.2.1), nor at an ENT.
        let m = ask(&cat, "real.w.test", RecordType::TXT);
        assert!(m.answers().is_empty());
        let m = ask(&cat, "ent.w.test", RecordType::A);
        assert!(m.answers().is_empty() && m.response_code() == ResponseCode::NoError);
        // Below an existing name the wildcard of *that* name applies: none, so NXDOMAIN.
        let m = ask(&cat, "a.real.w.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        // Wildcard CNAME is followed.
        let m = ask(&cat, "x.c.w.test", RecordType::A);
        assert_eq!(
            names(m.answers()),
            ["x.c.w.test. 60 CNAME", "real.w.test. 60 A"]
        );
        // Answer was synthesized: the compiler must know.
        let q = Question {
            qname: &NameKey::parse("foo.w.test.").unwrap(),
            qtype: RecordType::A,
            dnssec_ok: false,
        };
        assert!(answer(&cat, &q).synthesized);
    }

    #[test]
    fn dname_substitutes_and_never_nxdomains_below_it() {
        let z = zone("d.test.", "old DNAME new.d.test.\nwww.new A 192.0.2.5\n");
        let cat = Catalog::from_zones([z]);
        let m = ask(&cat, "www.OLD.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            [
                "old.d.test. 60 Unknown",
                "www.old.d.test. 60 CNAME",
                "www.new.d.test. 60 A"
            ]
        );
        let m = ask(&cat, "nothing.old.d.test", RecordType::A);
        assert_eq!(
            m.response_code(),
            ResponseCode::NXDomain,
            "NXDOMAIN for the target (RFC 6604)"
        );
        assert_eq!(m.answers().len(), 2);
        // A CNAME query is answered by the synthesized CNAME: the target isn't looked up (NSD
        // 4.6.1 answers the same; RFC 1034 §4.3.2 step 3a by analogy).
        let m = ask(&cat, "nothing.old.d.test", RecordType::CNAME);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            ["old.d.test. 60 Unknown", "nothing.old.d.test. 60 CNAME"]
        );
        assert!(m.name_servers().is_empty());
        // The DNAME owner itself is an ordinary name.
        let m = ask(&cat, "old.d.test", RecordType::A);
        assert!(m.answers().is_empty() && m.response_code() == ResponseCode::NoError);
    }

    #[test]
    fn dname_to_below_itself_is_followed_to_five_cnames() {
        // `grow DNAME more.grow`: each substitution lands under the DNAME again. Knot 3.2's
        // answer: the DNAME once and five CNAMEs (NSD 4.6 stops after the first).
        let z = zone(
            "d.test.",
            "grow DNAME more.grow.d.test.\nx CNAME a.grow.d.test.\n",
        );
        let cat = Catalog::from_zones([z]);
        let m = ask(&cat, "host.grow.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        let more = |n: usize| "more.".repeat(n);
        let mut want = vec!["grow.d.test. 60 Unknown".to_string()];
        want.extend(
            (0..MAX_DNAME_REGROWTH_CNAMES)
                .map(|i| format!("host.{}grow.d.test. 60 CNAME", more(i))),
        );
        assert_eq!(names(m.answers()), want);
        let Some(RData::CNAME(last)) = m.answers().last().map(|r| r.data().clone()) else {
            panic!("{m:?}");
        };
        assert_eq!(last.0.to_string(), format!("host.{}grow.d.test.", more(5)));
        assert!(!m.truncated());
        // A CNAME query: the first synthesized CNAME answers it.
        let m = ask(&cat, "host.grow.d.test", RecordType::CNAME);
        assert_eq!(m.answers().len(), 2);
        // Through a CNAME first: the DNAME still appears once, five CNAMEs in all (as Knot).
        let m = ask(&cat, "x.d.test", RecordType::A);
        let names = names(m.answers());
        assert_eq!(
            names[..3],
            [
                "x.d.test. 60 CNAME",
                "grow.d.test. 60 Unknown",
                "a.grow.d.test. 60 CNAME"
            ]
        );
        assert_eq!(names.len(), 1 + MAX_DNAME_REGROWTH_CNAMES);
    }

    #[test]
    fn dname_chains_are_followed_to_the_end() {
        // Answers as NSD 4.6.1 and Knot 3.2 both give them (checked against both).
        let z = zone(
            "d.test.",
            "d1 DNAME d2.d.test.\nd2 DNAME t.d.test.\nhost.t A 192.0.2.31\n\
             la DNAME lb.d.test.\nlb DNAME la.d.test.\n\
             dc DNAME c.d.test.\nx.c CNAME y.d1.d.test.\n\
             dnx DNAME d2nx.d.test.\nd2nx DNAME nothere.d.test.\n",
        );
        let cat = Catalog::from_zones([z]);
        let m = ask(&cat, "host.d1.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            [
                "d1.d.test. 60 Unknown",
                "host.d1.d.test. 60 CNAME",
                "d2.d.test. 60 Unknown",
                "host.d2.d.test. 60 CNAME",
                "host.t.d.test. 60 A"
            ]
        );
        // A loop through two DNAMEs ends where the name repeats, NOERROR.
        let m = ask(&cat, "a.la.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert_eq!(
            names(m.answers()),
            [
                "la.d.test. 60 Unknown",
                "a.la.d.test. 60 CNAME",
                "lb.d.test. 60 Unknown",
                "a.lb.d.test. 60 CNAME"
            ]
        );
        // DNAME, CNAME, two more DNAMEs, then a missing name: the whole chain and NXDOMAIN.
        let m = ask(&cat, "x.dc.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(m.answers().len(), 7);
        assert_eq!(m.answers()[6].name().to_string(), "y.d2.d.test.");
        let m = ask(&cat, "q.dnx.d.test", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(m.answers().len(), 4);
    }

    #[test]
    fn rrsig_and_nsec_queries_at_a_cname_are_answered_from_the_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones/signed");
        let cat = Catalog::load(&[], Some(&dir)).unwrap();
        for (qtype, want) in [
            (RecordType::NSEC, vec!["alias.nsec.example. 300 NSEC"]),
            (
                RecordType::RRSIG,
                vec![
                    "alias.nsec.example. 3600 RRSIG",
                    "alias.nsec.example. 300 RRSIG",
                ],
            ),
        ] {
            let m = ask(&cat, "alias.nsec.example", qtype);
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert_eq!(names(m.answers()), want, "{qtype}");
        }
        // Any other type follows the CNAME.
        let m = ask(&cat, "alias.nsec.example", RecordType::TXT);
        assert_eq!(names(m.answers())[0], "alias.nsec.example. 3600 CNAME");
    }

    #[test]
    fn ds_at_child_apex_comes_from_the_parent() {
        let parent = zone(
            "p.test.",
            "child NS ns.child\nchild DS 1 13 2 ABCD\nns.child A 192.0.2.7\n",
        );
        let child = zone("child.p.test.", "www A 192.0.2.8\n");
        let cat = Catalog::from_zones([parent, child]);
        let m = ask(&cat, "child.p.test", RecordType::DS);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["child.p.test. 60 DS"]);
        // Everything else at and below the child apex comes from the child.
        let m = ask(&cat, "child.p.test", RecordType::NS);
        assert!(m.authoritative());
        assert_eq!(names(m.answers()), ["child.p.test. 60 NS"]);
        let m = ask(&cat, "www.child.p.test", RecordType::A);
        assert_eq!(names(m.answers()), ["www.child.p.test. 60 A"]);
    }

    #[test]
    fn badvers_formerr_notimp() {
        let cat = sample();
        let p = query_packet(5, 0, "www.example.com", 1, Some((1232, true, 1)));
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        // Header RCODE low bits 0, OPT carries the upper 8 bits = 1: BADVERS (16).
        assert_eq!(r[3] & 0xf, 0);
        assert_eq!(&r[6..12], [0, 0, 0, 0, 0, 1]);
        let opt = &r[r.len() - 11..];
        assert_eq!(opt, [0, 0, 41, 0x04, 0xd0, 1, 0, 0x80, 0, 0, 0]);
        // hickory decodes 16 as BADSIG, its TSIG twin; the number is what matters.
        assert_eq!(
            u16::from(Message::from_vec(&r).unwrap().response_code()),
            16
        );
        assert_eq!(respond(&cat, b"garbage", Transport::Udp), None);
        let r = respond(
            &cat,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05abc",
            Transport::Udp,
        )
        .unwrap();
        assert_eq!(r, b"\x12\x34\x81\x01\x00\x00\x00\x00\x00\x00\x00\x00");
        let p = query_packet(5, 2 << 11, "www.example.com", 1, None);
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        assert_eq!(r[3] & 0xf, 4, "NOTIMP");
    }

    #[test]
    fn truncation_over_udp_only() {
        let txt: String = (0..40)
            .map(|i| format!("big TXT \"{i:02}-{}\"\n", "x".repeat(40)))
            .collect();
        let cat = Catalog::from_zones([zone("t.test.", &txt)]);
        let p = query_packet(9, FLAG_RD, "BIG.t.test", 16, None);
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        let m = Message::from_vec(&r).unwrap();
        assert!(m.truncated() && m.authoritative());
        assert!(m.answers().is_empty() && m.extensions().is_none());
        assert_eq!(&r[12..], &p[12..], "header + the client's question only");
        let p = query_packet(9, 0, "big.t.test", 16, Some((4096, true, 0)));
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        assert!(r.len() <= 1232 + 100);
        let m = Message::from_vec(&r).unwrap();
        assert!(m.truncated());
        assert!(m.extensions().as_ref().unwrap().flags().dnssec_ok);
        let r = respond(&cat, &p, Transport::Tcp).unwrap();
        let m = Message::from_vec(&r).unwrap();
        assert!(!m.truncated());
        assert_eq!(m.answers().len(), 40);
    }

    // --- DNSSEC (RFC 4035 §3.1, RFC 5155 §7.2) -------------------------------------------------
    // zones/signed holds an NSEC and an NSEC3 zone signed with ldns-signzone; every expectation
    // below is what NSD 4.6.1 (minimal-responses) answered for the same files, sections as sets.

    fn signed() -> Catalog {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones/signed");
        Catalog::load(&[], Some(&dir)).unwrap()
    }

    /// A UDP query with EDNS, DO as given.
    fn ask_edns(cat: &Catalog, qname: &str, qtype: RecordType, dnssec_ok: bool) -> Message {
        let p = query_packet(7, 0, qname, qtype.into(), Some((1232, dnssec_ok, 0)));
        let m = Message::from_vec(&respond(cat, &p, Transport::Udp).unwrap()).unwrap();
        assert!(!m.authentic_data(), "AD stays clear");
        assert_eq!(
            m.extensions().as_ref().unwrap().flags().dnssec_ok,
            dnssec_ok
        );
        m
    }

    /// A section as a sorted set of "owner ttl TYPE", RRSIGs as "RRSIG <covered>".
    fn set(rrs: &[Record]) -> Vec<String> {
        let mut out: Vec<String> = rrs
            .iter()
            .map(|r| {
                let mut line = format!(
                    "{} {} {}",
                    r.name().to_ascii().to_lowercase(),
                    r.ttl(),
                    r.record_type()
                );
                if r.record_type() == RecordType::RRSIG {
                    let mut bytes = Vec::new();
                    let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut bytes);
                    hickory_proto::serialize::binary::BinEncodable::emit(r.data(), &mut enc)
                        .unwrap();
                    let covered = RecordType::from(u16::from_be_bytes([bytes[0], bytes[1]]));
                    line = format!("{line} {covered}");
                }
                line
            })
            .collect();
        out.sort();
        out
    }

    fn do_and_plain(cat: &Catalog, qname: &str, qtype: RecordType) -> (Message, Message) {
        (
            ask_edns(cat, qname, qtype, true),
            ask_edns(cat, qname, qtype, false),
        )
    }

    #[test]
    fn dnssec_positive_answers_and_chains_carry_rrsigs() {
        let cat = signed();
        let (m, plain) = do_and_plain(&cat, "www.nsec.example", RecordType::A);
        assert!(m.authoritative());
        assert_eq!(
            set(m.answers()),
            ["www.nsec.example. 3600 A", "www.nsec.example. 3600 RRSIG A"]
        );
        assert!(m.name_servers().is_empty() && m.additionals().is_empty());
        assert_eq!(set(plain.answers()), ["www.nsec.example. 3600 A"]);
        // A CNAME chain: each RRset with its signatures (RFC 4035 §3.1.1).
        let m = ask_edns(&cat, "alias.nsec3.example", RecordType::A, true);
        assert_eq!(
            set(m.answers()),
            [
                "alias.nsec3.example. 3600 CNAME",
                "alias.nsec3.example. 3600 RRSIG CNAME",
                "www.nsec3.example. 3600 A",
                "www.nsec3.example. 3600 RRSIG A"
            ]
        );
        // NS answer: the in-zone addresses in additional come signed too.
        let m = ask_edns(&cat, "nsec.example", RecordType::NS, true);
        assert_eq!(
            set(m.answers()),
            ["nsec.example. 3600 NS", "nsec.example. 3600 RRSIG NS"]
        );
        assert_eq!(
            set(m.additionals()),
            ["ns.nsec.example. 3600 A", "ns.nsec.example. 3600 RRSIG A"]
        );
        // RRSIG and NSEC asked for explicitly are plain RRsets, DO or not; each signature
        // keeps the TTL of the RRset it covers.
        let (m, plain) = do_and_plain(&cat, "www.nsec.example", RecordType::RRSIG);
        let expected = [
            "www.nsec.example. 300 RRSIG NSEC",
            "www.nsec.example. 3600 RRSIG A",
            "www.nsec.example. 3600 RRSIG AAAA",
        ];
        assert_eq!(set(m.answers()), expected);
        assert_eq!(set(plain.answers()), expected);
        let plain = ask_edns(&cat, "www.nsec.example", RecordType::NSEC, false);
        assert_eq!(set(plain.answers()), ["www.nsec.example. 300 NSEC"]);
        // An unsigned zone answers DO queries as before.
        let m = ask_edns(&sample(), "www.example.com", RecordType::A, true);
        assert_eq!(set(m.answers()), ["www.example.com. 3600 A"]);
    }

    #[test]
    fn dnssec_nodata_proves_the_type_missing() {
        let cat = signed();
        let soa = |z: &str| [format!("{z}. 300 RRSIG SOA"), format!("{z}. 300 SOA")];
        let (m, plain) = do_and_plain(&cat, "www.nsec.example", RecordType::MX);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
        let mut want = vec![
            "www.nsec.example. 300 NSEC".to_string(),
            "www.nsec.example. 300 RRSIG NSEC".to_string(),
        ];
        want.extend(soa("nsec.example"));
        want.sort();
        assert_eq!(set(m.name_servers()), want);
        assert_eq!(set(plain.name_servers()), ["nsec.example. 300 SOA"]);
        // An empty non-terminal has no NSEC: the one covering it (alias -> a.b).
        let m = ask_edns(&cat, "b.nsec.example", RecordType::A, true);
        let mut want = vec![
            "alias.nsec.example. 300 NSEC".to_string(),
            "alias.nsec.example. 300 RRSIG NSEC".to_string(),
        ];
        want.extend(soa("nsec.example"));
        want.sort();
        assert_eq!(set(m.name_servers()), want);
        // NSEC3: the NSEC3 matching the name (RFC 5155 §7.2.3), ENTs included.
        for (qname, hash) in [
            ("www.nsec3.example", "em37fse2r8na0bl51skqv9u3eees3q4p"),
            ("b.nsec3.example", "ulsboeuqnq2mu573ba7ijqjctessct80"),
        ] {
            let m = ask_edns(&cat, qname, RecordType::MX, true);
            let mut want = vec![
                format!("{hash}.nsec3.example. 300 NSEC3"),
                format!("{hash}.nsec3.example. 300 RRSIG NSEC3"),
            ];
            want.extend(soa("nsec3.example"));
            want.sort();
            assert_eq!(set(m.name_servers()), want, "{qname}");
        }
    }

    #[test]
    fn dnssec_nxdomain_proves_name_and_wildcard_missing() {
        let cat = signed();
        let (m, plain) = do_and_plain(&cat, "nope.nsec.example", RecordType::A);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(
            set(m.name_servers()),
            [
                "insecure.nsec.example. 300 NSEC",
                "insecure.nsec.example. 300 RRSIG NSEC",
                "nsec.example. 300 NSEC",
                "nsec.example. 300 RRSIG NSEC",
                "nsec.example. 300 RRSIG SOA",
                "nsec.example. 300 SOA"
            ]
        );
        assert_eq!(set(plain.name_servers()), ["nsec.example. 300 SOA"]);
        // One NSEC covers both the name and the wildcard: sent once.
        let m = ask_edns(&cat, "0.nsec.example", RecordType::A, true);
        assert_eq!(
            set(m.name_servers()),
            [
                "nsec.example. 300 NSEC",
                "nsec.example. 300 RRSIG NSEC",
                "nsec.example. 300 RRSIG SOA",
                "nsec.example. 300 SOA"
            ]
        );
        // NSEC3: closest encloser proof + the wildcard (RFC 5155 §7.2.2); here the matching
        // NSEC3 of the apex, the one covering nope, the one covering *.nsec3.example.
        let m = ask_edns(&cat, "nope.nsec3.example", RecordType::A, true);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        let n3 = |h: &str| {
            [
                format!("{h}.nsec3.example. 300 NSEC3"),
                format!("{h}.nsec3.example. 300 RRSIG NSEC3"),
            ]
        };
        let mut want: Vec<String> = [
            "2chh0lmaivastrsmdki2unl9e99c461e",
            "sauc3753qfi66332k2dq545r13djha7p",
            "ulsboeuqnq2mu573ba7ijqjctessct80",
        ]
        .iter()
        .flat_map(|h| n3(h))
        .collect();
        want.extend([
            "nsec3.example. 300 RRSIG SOA".into(),
            "nsec3.example. 300 SOA".into(),
        ]);
        want.sort();
        assert_eq!(set(m.name_servers()), want);
        // Two missing labels: the next closer name is the one below the apex.
        let deeper = ask_edns(&cat, "deep.nope.nsec3.example", RecordType::A, true);
        assert_eq!(set(deeper.name_servers()), want);
        let m = ask_edns(&cat, "0.nsec3.example", RecordType::A, true);
        assert_eq!(m.name_servers().len(), 8);
        // NSEC3 owner names are not names of the zone (RFC 5155 §7.2.8): NXDOMAIN, DO or not,
        // with the usual proof (the apex's hash matches, its own NSEC3 is covered).
        let hashed = "2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example";
        let (m, plain) = do_and_plain(&cat, hashed, RecordType::NSEC3);
        assert_eq!(m.response_code(), ResponseCode::NXDomain);
        assert_eq!(plain.response_code(), ResponseCode::NXDomain);
        assert!(m.answers().is_empty() && plain.answers().is_empty());
        let mut want: Vec<String> = [
            "2chh0lmaivastrsmdki2unl9e99c461e",
            "ebms0iqsbqmudtfedi8pvs0eki6mjc7f",
            "ulsboeuqnq2mu573ba7ijqjctessct80",
        ]
        .iter()
        .flat_map(|h| n3(h))
        .collect();
        want.extend([
            "nsec3.example. 300 RRSIG SOA".into(),
            "nsec3.example. 300 SOA".into(),
        ]);
        want.sort();
        assert_eq!(set(m.name_servers()), want);
    }

    #[test]
    fn dnssec_referrals_carry_ds_or_prove_it_missing() {
        let cat = signed();
        let (m, plain) = do_and_plain(&cat, "www.sub.nsec.example", RecordType::A);
        assert!(!m.authoritative());
        assert_eq!(
            set(m.name_servers()),
            [
                "sub.nsec.example. 3600 DS",
                "sub.nsec.example. 3600 NS",
                "sub.nsec.example. 3600 RRSIG DS"
            ]
        );
        // Glue is not signed.
        assert_eq!(set(m.additionals()), ["ns.sub.nsec.example. 3600 A"]);
        assert_eq!(set(plain.name_servers()), ["sub.nsec.example. 3600 NS"]);
        // Unsigned delegation: the NSEC (NSEC3) at the cut shows no DS.
        let m = ask_edns(&cat, "insecure.nsec.example", RecordType::A, true);
        assert_eq!(
            set(m.name_servers()),
            [
                "insecure.nsec.example. 300 NSEC",
                "insecure.nsec.example. 300 RRSIG NSEC",
                "insecure.nsec.example. 3600 NS"
            ]
        );
        let m = ask_edns(&cat, "x.insecure.nsec3.example", RecordType::A, true);
        assert_eq!(
            set(m.name_servers()),
            [
                "agvlqnfbnq21mcaoebt0iab8u7kjs7qi.nsec3.example. 300 NSEC3",
                "agvlqnfbnq21mcaoebt0iab8u7kjs7qi.nsec3.example. 300 RRSIG NSEC3",
                "insecure.nsec3.example. 3600 NS"
            ]
        );
        // DS asked for at the cut: answered by the parent, signed; or NODATA with the proof.
        let m = ask_edns(&cat, "sub.nsec3.example", RecordType::DS, true);
        assert!(m.authoritative());
        assert_eq!(
            set(m.answers()),
            [
                "sub.nsec3.example. 3600 DS",
                "sub.nsec3.example. 3600 RRSIG DS"
            ]
        );
        let m = ask_edns(&cat, "insecure.nsec.example", RecordType::DS, true);
        assert!(m.authoritative() && m.answers().is_empty());
        assert_eq!(m.name_servers().len(), 4, "SOA, NSEC and their RRSIGs");
        // Opt-out (RFC 5155 §7.2.7, §7.2.4): insecure2 has no NSEC3 of its own; the closest
        // provable encloser (the apex, jp95…) and the opt-out NSEC3 covering insecure2 (hh0p…).
        let proof = [
            "hh0piauvhbjc7j1soqhehphq6ukeg8if.optout.example. 300 NSEC3",
            "hh0piauvhbjc7j1soqhehphq6ukeg8if.optout.example. 300 RRSIG NSEC3",
            "jp950ntp30hd3mkvafs9tojn8m569hs2.optout.example. 300 NSEC3",
            "jp950ntp30hd3mkvafs9tojn8m569hs2.optout.example. 300 RRSIG NSEC3",
        ];
        let m = ask_edns(&cat, "www.insecure2.optout.example", RecordType::A, true);
        let mut want: Vec<String> = proof.iter().map(|s| s.to_string()).collect();
        want.push("insecure2.optout.example. 3600 NS".into());
        want.sort();
        assert_eq!(set(m.name_servers()), want);
        let m = ask_edns(&cat, "insecure2.optout.example", RecordType::DS, true);
        let mut want: Vec<String> = proof.iter().map(|s| s.to_string()).collect();
        want.extend([
            "optout.example. 300 RRSIG SOA".into(),
            "optout.example. 300 SOA".into(),
        ]);
        assert_eq!(set(m.name_servers()), want);
    }

    #[test]
    fn dnssec_wildcard_answers_prove_the_name_missing() {
        let cat = signed();
        let (m, plain) = do_and_plain(&cat, "Foo.wild.nsec.example", RecordType::A);
        // The signature goes out under the query name; its label count (3) says "wildcard".
        assert_eq!(
            set(m.answers()),
            [
                "foo.wild.nsec.example. 3600 A",
                "foo.wild.nsec.example. 3600 RRSIG A"
            ]
        );
        let sig = &m.answers()[1];
        let mut bytes = Vec::new();
        let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut bytes);
        hickory_proto::serialize::binary::BinEncodable::emit(sig.data(), &mut enc).unwrap();
        assert_eq!(bytes[3], 3, "RRSIG labels field of *.wild.nsec.example");
        assert_eq!(
            set(m.name_servers()),
            [
                "*.wild.nsec.example. 300 NSEC",
                "*.wild.nsec.example. 300 RRSIG NSEC"
            ]
        );
        assert!(plain.name_servers().is_empty());
        assert_eq!(set(plain.answers()), ["foo.wild.nsec.example. 3600 A"]);
        // NSEC3: the NSEC3 covering the next closer name (RFC 5155 §7.2.6).
        let m = ask_edns(&cat, "bar.foo.wild.nsec3.example", RecordType::A, true);
        assert_eq!(
            set(m.name_servers()),
            [
                "l8pj9jvnkf3hu0ibcuhlrqn9ljuj6rl2.nsec3.example. 300 NSEC3",
                "l8pj9jvnkf3hu0ibcuhlrqn9ljuj6rl2.nsec3.example. 300 RRSIG NSEC3"
            ]
        );
        // Wildcard NODATA (RFC 5155 §7.2.5): closest encloser proof + the wildcard's NSEC3.
        let m = ask_edns(&cat, "foo.wild.nsec3.example", RecordType::MX, true);
        let mut want: Vec<String> = [
            "15na20j18vgjfsr39vnkmvbghjv1inrd",
            "jl9f5a5tan2gj6em6o921q6479fvi2kc",
            "l8pj9jvnkf3hu0ibcuhlrqn9ljuj6rl2",
        ]
        .iter()
        .flat_map(|h| {
            [
                format!("{h}.nsec3.example. 300 NSEC3"),
                format!("{h}.nsec3.example. 300 RRSIG NSEC3"),
            ]
        })
        .collect();
        want.extend([
            "nsec3.example. 300 RRSIG SOA".into(),
            "nsec3.example. 300 SOA".into(),
        ]);
        want.sort();
        assert_eq!(set(m.name_servers()), want);
        // NSEC wildcard NODATA (RFC 4035 §3.1.3.4): the covering NSEC is the wildcard's own.
        let m = ask_edns(&cat, "foo.wild.nsec.example", RecordType::MX, true);
        assert_eq!(m.name_servers().len(), 4);
    }
}
