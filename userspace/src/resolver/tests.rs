//! The cache's TTL arithmetic, negative caching, eviction and serve-stale; the ACL.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use super::*;

fn bounds(entries: usize, stale: Option<u32>) -> Bounds {
    Bounds {
        entries: NonZeroUsize::new(entries).unwrap(),
        max_ttl: 86_400,
        max_negative_ttl: 3_600,
        max_stale: stale,
    }
}

fn key(name: &str) -> Key {
    Key {
        qname: Name::from_str(name)
            .unwrap()
            .to_lowercase()
            .to_bytes()
            .unwrap(),
        qtype: 1,
        dnssec_ok: false,
    }
}

fn a(name: &str, ttl: u32) -> Record {
    Record::from_rdata(
        Name::from_str(name).unwrap(),
        ttl,
        RData::A(A::new(192, 0, 2, 1)),
    )
}

fn positive(ttls: &[u32]) -> Resolved {
    Resolved {
        rcode: ResponseCode::NoError,
        answer: ttls.iter().map(|t| a("www.example.", *t)).collect(),
        authority: Vec::new(),
        security: Security::Insecure,
    }
}

fn negative(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Resolved {
    let soa = SOA::new(
        Name::from_str("ns.example.").unwrap(),
        Name::from_str("hostmaster.example.").unwrap(),
        1,
        3600,
        600,
        86400,
        minimum,
    );
    Resolved {
        rcode,
        answer: Vec::new(),
        authority: vec![Record::from_rdata(
            Name::from_str("example.").unwrap(),
            soa_ttl,
            RData::SOA(soa),
        )],
        security: Security::Insecure,
    }
}

fn ttls(lookup: Lookup) -> (char, Vec<u32>) {
    let (kind, r) = match lookup {
        Lookup::Fresh(r) => ('F', r),
        Lookup::Stale(r) => ('S', r),
        Lookup::Miss => return ('M', Vec::new()),
    };
    let t = r.answer.iter().chain(&r.authority).map(Record::ttl);
    (kind, t.collect())
}

#[test]
fn ttls_count_down_and_expire_with_the_shortest() {
    let cache = Cache::new(bounds(10, None));
    let t0 = Instant::now();
    cache.insert(key("www.example."), positive(&[300, 60]), t0);
    assert_eq!(
        ttls(cache.get(&key("www.example."), t0)),
        ('F', vec![300, 60])
    );
    // Rounded up: 0.5 s in, the TTL given is already one less (never above what remains).
    let half = t0 + Duration::from_millis(500);
    assert_eq!(
        ttls(cache.get(&key("www.example."), half)),
        ('F', vec![299, 59])
    );
    let later = t0 + Duration::from_secs(59);
    assert_eq!(
        ttls(cache.get(&key("www.example."), later)),
        ('F', vec![241, 1])
    );
    let expired = t0 + Duration::from_secs(60);
    assert_eq!(ttls(cache.get(&key("www.example."), expired)).0, 'M');
}

#[test]
fn negative_answers_last_the_soa_minimum() {
    let cache = Cache::new(bounds(10, None));
    let t0 = Instant::now();
    // RFC 2308 §5: the smaller of the SOA's TTL and its MINIMUM.
    cache.insert(
        key("nx.example."),
        negative(ResponseCode::NXDomain, 3600, 30),
        t0,
    );
    cache.insert(
        key("nodata.example."),
        negative(ResponseCode::NoError, 20, 300),
        t0,
    );
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(
        ttls(cache.get(&key("nx.example."), at(10))),
        ('F', vec![20])
    );
    assert_eq!(
        ttls(cache.get(&key("nodata.example."), at(10))),
        ('F', vec![10])
    );
    assert_eq!(ttls(cache.get(&key("nodata.example."), at(20))).0, 'M');
    assert_eq!(ttls(cache.get(&key("nx.example."), at(30))).0, 'M');
    // Capped by max_negative_ttl; no SOA or a failure: not cached.
    cache.insert(
        key("long.example."),
        negative(ResponseCode::NXDomain, 86400, 86400),
        t0,
    );
    assert_eq!(
        ttls(cache.get(&key("long.example."), t0)),
        ('F', vec![3600])
    );
    let mut bare = negative(ResponseCode::NXDomain, 60, 60);
    bare.authority.clear();
    cache.insert(key("bare.example."), bare, t0);
    cache.insert(key("fail.example."), Resolved::failure(), t0);
    assert_eq!(ttls(cache.get(&key("bare.example."), t0)).0, 'M');
    assert_eq!(ttls(cache.get(&key("fail.example."), t0)).0, 'M');
}

#[test]
fn bounded_size_evicts_the_least_recently_used() {
    let cache = Cache::new(bounds(2, None));
    let t0 = Instant::now();
    cache.insert(key("a.example."), positive(&[60]), t0);
    cache.insert(key("b.example."), positive(&[60]), t0);
    assert_eq!(ttls(cache.get(&key("a.example."), t0)).0, 'F');
    cache.insert(key("c.example."), positive(&[60]), t0);
    assert_eq!(cache.held(), 2);
    assert_eq!(ttls(cache.get(&key("b.example."), t0)).0, 'M');
    assert_eq!(ttls(cache.get(&key("a.example."), t0)).0, 'F');
    assert_eq!(ttls(cache.get(&key("c.example."), t0)).0, 'F');
}

#[test]
fn stale_entries_only_within_the_window() {
    let cache = Cache::new(bounds(10, Some(100)));
    let t0 = Instant::now();
    cache.insert(key("www.example."), positive(&[60]), t0);
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(
        ttls(cache.get(&key("www.example."), at(61))),
        ('S', vec![STALE_TTL])
    );
    assert_eq!(ttls(cache.get(&key("www.example."), at(159))).0, 'S');
    assert_eq!(ttls(cache.get(&key("www.example."), at(160))).0, 'M');
    let off = Cache::new(bounds(10, None));
    off.insert(key("www.example."), positive(&[60]), t0);
    assert_eq!(ttls(off.get(&key("www.example."), at(61))).0, 'M');
}

#[test]
fn bogus_results_are_kept_briefly() {
    let cache = Cache::new(bounds(10, None));
    let t0 = Instant::now();
    let mut bogus = positive(&[3600]);
    bogus.security = Security::Bogus;
    cache.insert(key("bogus.example."), bogus, t0);
    let at = |s| t0 + Duration::from_secs(s);
    assert_eq!(ttls(cache.get(&key("bogus.example."), at(59))).0, 'F');
    assert_eq!(ttls(cache.get(&key("bogus.example."), at(60))).0, 'M');
}

#[test]
fn acl_allows_only_its_prefixes() {
    let acl = Acl::new(&[
        "192.0.2.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ]);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(acl.allows(ip("192.0.2.7")));
    assert!(acl.allows(ip("::ffff:192.0.2.7")), "IPv4-mapped");
    assert!(acl.allows(ip("2001:db8::1")));
    assert!(!acl.allows(ip("198.51.100.7")));
    assert!(!acl.allows(ip("2001:db9::1")));
}

/// The header flags and answer records `render` gives for a query with `flags` (RD, CD, AD
/// bits) and DO, over a result of `security`.
fn rendered(
    security: Security,
    flags: u16,
    dnssec_ok: bool,
) -> (ResponseCode, u16, Vec<RecordType>) {
    use crate::wire::testutil::query_packet;
    let packet = query_packet(7, flags, "www.example.", 1, Some((1232, dnssec_ok, 0)));
    let query = crate::wire::parse_query(&packet, false).unwrap();
    let mut resolved = positive(&[300]);
    resolved.answer.push(Record::from_rdata(
        Name::from_str("www.example.").unwrap(),
        300,
        RData::Unknown {
            code: RecordType::RRSIG,
            rdata: hickory_proto::rr::rdata::NULL::with(vec![0, 1, 13, 2]),
        },
    ));
    resolved.security = security;
    let ans = render(&query, resolved, false);
    let types = ans.answer.iter().map(|rr| rr.rtype()).collect();
    (ans.rcode, ans.recursion_flags, types)
}

#[test]
fn ad_cd_and_dnssec_records_as_rfc_4035_and_6840_say() {
    use rampart_common::dns::{FLAG_CD, FLAG_RD};
    let (a, rrsig) = (RecordType::A, RecordType::RRSIG);
    // Secure: AD only when asked for with DO or AD; RRSIG only with DO.
    assert_eq!(
        rendered(Security::Secure, FLAG_RD, true),
        (ResponseCode::NoError, FLAG_RA | FLAG_AD, vec![a, rrsig])
    );
    assert_eq!(
        rendered(Security::Secure, FLAG_RD | FLAG_AD, false),
        (ResponseCode::NoError, FLAG_RA | FLAG_AD, vec![a])
    );
    assert_eq!(
        rendered(Security::Secure, FLAG_RD, false),
        (ResponseCode::NoError, FLAG_RA, vec![a])
    );
    // Insecure: never AD.
    assert_eq!(rendered(Security::Insecure, FLAG_RD, true).1, FLAG_RA);
    // Bogus: SERVFAIL, or with CD the data, CD echoed, no AD.
    assert_eq!(
        rendered(Security::Bogus, FLAG_RD, true),
        (ResponseCode::ServFail, FLAG_RA, vec![])
    );
    assert_eq!(
        rendered(Security::Bogus, FLAG_RD | FLAG_CD, true),
        (ResponseCode::NoError, FLAG_RA | FLAG_CD, vec![a, rrsig])
    );
}
