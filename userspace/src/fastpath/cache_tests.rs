//! The resolver cache answered in XDP, under BPF_PROG_TEST_RUN (needs root): for cached
//! entries (positive, CNAME chain, NODATA, NXDOMAIN, validated) in every variant the program's
//! bytes are the slow path's at the same instant, TTLs included; TTLs count down; expired
//! entries, clients outside the ACL, entries not promoted and entries forgotten at a reload go
//! up.
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::BinEncodable;

use super::probe::{XDP_PASS, XDP_TX};
use super::tests::{frame, frame_from, mutate_frame, query, run, verify_reply, xorshift};
use super::{Capacity, FastPath};
use crate::resolver::{Key, Resolved, Resolver, ResolverConfig, Security};
use crate::respond::{Node, respond_to};
use crate::wire::Transport;
use crate::zone::Catalog;

const RD: u16 = 0x0100;
const AD: u16 = 0x0020;
const CD: u16 = 0x0010;

pub(super) struct Lab {
    catalog: Catalog,
    pub fp: FastPath,
    resolver: Resolver,
}

/// The demo zones and a resolver whose cache the program answers from.
fn lab() -> Lab {
    let (catalog, fp) = demo_loaded(64);
    lab_on(catalog, fp)
}

/// The demo zones installed in a program with room for `cache_entries` promoted entries.
pub(super) fn demo_loaded(cache_entries: u32) -> (Catalog, FastPath) {
    let (catalog, table) = demo_zones();
    let capacity = Capacity {
        cache_entries,
        ..Capacity::for_table(&table).unwrap()
    };
    let mut fp = FastPath::load_unpinned(capacity).expect("load (run tests as root)");
    fp.install(&table).unwrap();
    (catalog, fp)
}

pub(super) fn demo_zones() -> (Catalog, Vec<crate::compile::CompiledAnswer>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
    let catalog = Catalog::load(&[], Some(&dir)).unwrap();
    let table = crate::compile::compile(&catalog);
    (catalog, table)
}

/// `fp` (loaded with `catalog`'s zones) answering from a resolver's cache for 198.51.100.0/24
/// and 2001:db8::/32.
pub(super) fn lab_on(catalog: Catalog, mut fp: FastPath) -> Lab {
    let allow = vec![
        "198.51.100.0/24".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    let config = ResolverConfig {
        enabled: true,
        // Never asked: every answer here comes from the cache.
        forwarders: vec!["127.0.0.1:9".parse().unwrap()],
        allow: allow.clone(),
        dnssec: false,
        ..ResolverConfig::default()
    };
    let resolver = Resolver::from_config(&config).unwrap().unwrap();
    resolver.attach_xdp(fp.enable_cache(&allow).unwrap());
    // As a node does once its zones are installed.
    resolver.xdp_zones(&catalog, false);
    Lab {
        catalog,
        fp,
        resolver,
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn key(qname: &str, qtype: u16, dnssec_ok: bool) -> Key {
    Key {
        qname: name(qname).to_lowercase().to_bytes().unwrap(),
        qtype,
        dnssec_ok,
    }
}

fn a(owner: &str, ttl: u32, last: u8) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A::new(192, 0, 2, last)))
}

fn soa(ttl: u32, minimum: u32) -> Record {
    let soa = SOA::new(
        name("ns.resolved.test."),
        name("hostmaster.resolved.test."),
        7,
        3600,
        600,
        86400,
        minimum,
    );
    Record::from_rdata(name("resolved.test."), ttl, RData::SOA(soa))
}

fn resolved(rcode: ResponseCode, answer: Vec<Record>, authority: Vec<Record>) -> Resolved {
    Resolved {
        rcode,
        answer,
        authority,
        security: Security::Insecure,
    }
}

impl Lab {
    /// www.resolved.test A cached and promoted: the query the program answers from the cache.
    pub(super) fn promoted_query(&self) -> Vec<u8> {
        let q = self.promote_a("www.resolved.test", 300, Duration::ZERO);
        let peer = "198.51.100.2".parse().unwrap();
        assert!(self.fast(&q, peer).is_some(), "promoted");
        q
    }

    /// Cache `name`'s A record (TTL `ttl`, received `ago` before now), ask the slow path for
    /// it twice (the second hit promotes it into the program's cache) and return the query (an
    /// EDNS A query from 198.51.100.2).
    fn promote_a(&self, name: &str, ttl: u32, ago: Duration) -> Vec<u8> {
        let fqdn = format!("{name}.");
        let r = resolved(ResponseCode::NoError, vec![a(&fqdn, ttl, 7)], vec![]);
        self.cache(&fqdn, 1, r, ago);
        let q = query(1, name, 1, Some((1232, false)));
        let peer = "198.51.100.2".parse().unwrap();
        self.slow(&q, peer);
        self.slow(&q, peer);
        q
    }

    /// Look in the cache before the zones (a resolver-only node's order) or after them.
    pub(super) fn cache_first(&self, first: bool) {
        self.resolver.xdp_cache_first(first);
    }

    /// Let the program take names under none of the zones' top labels as beyond them (as a
    /// node does), or not (`false`: every name walks the zones first).
    pub(super) fn apex_filter(&self, on: bool) {
        match on {
            true => self.resolver.xdp_zones(&self.catalog, false),
            false => self.resolver.xdp_zones_off(),
        }
    }

    /// Cache `r` for (name, type) with and without DO, as received `ago` before now.
    fn cache(&self, qname: &str, qtype: u16, r: Resolved, ago: Duration) {
        let at = Instant::now() - ago;
        for dnssec_ok in [false, true] {
            let _ = (self.resolver.cache()).insert(key(qname, qtype, dnssec_ok), r.clone(), at);
        }
    }

    fn slow(&self, q: &[u8], peer: IpAddr) -> Vec<u8> {
        let node = Node {
            identity: &crate::identity::Identity::default(),
            cookies: &crate::cookie::Cookies::disabled(),
            limits: None,
            resolver: Some(&self.resolver),
        };
        respond_to(&self.catalog, node, peer, 0, q, Transport::Udp).expect("an answer")
    }

    /// The program's answer to `q` from `peer`: `None` when it passes the query up; checked
    /// against the slow path's just before and just after (a second may turn in between).
    fn fast(&self, q: &[u8], peer: IpAddr) -> Option<Vec<u8>> {
        let f = frame_from(peer, 3000, q);
        let before = self.slow(q, peer);
        let (action, out) = run(&self.fp, &f);
        let after = self.slow(q, peer);
        if action == XDP_PASS {
            return None;
        }
        assert_eq!(action, XDP_TX);
        let dns = verify_reply(&f, &out);
        assert!(
            dns == before || dns == after,
            "fast and slow bytes differ:\n fast {dns:02x?}\n slow {before:02x?}"
        );
        Some(dns)
    }
}

fn with_flags(mut q: Vec<u8>, flags: u16) -> Vec<u8> {
    q[2..4].copy_from_slice(&flags.to_be_bytes());
    q
}

/// The TTLs of the answer and authority records of `dns` (one question, names compressed or
/// not), in order.
fn ttls(dns: &[u8]) -> Vec<u32> {
    let msg = hickory_proto::op::Message::from_vec(dns).unwrap();
    (msg.answers().iter())
        .chain(msg.name_servers())
        .map(Record::ttl)
        .collect()
}

#[test]
fn cached_answers_are_the_slow_paths_bytes_in_every_variant() {
    every_variant(false);
}

/// As above in the resolver-only order: the cache program first, before the zones.
#[test]
fn cached_answers_first_are_the_slow_paths_bytes_in_every_variant() {
    every_variant(true);
}

fn every_variant(first: bool) {
    let lab = lab();
    lab.cache_first(first);
    let ago = Duration::from_millis(2500);
    let www = || vec![a("www.resolved.test.", 300, 7)];
    lab.cache(
        "www.resolved.test.",
        1,
        resolved(ResponseCode::NoError, www(), vec![]),
        ago,
    );
    let cname = Record::from_rdata(
        name("alias.resolved.test."),
        600,
        RData::CNAME(CNAME(name("www.resolved.test."))),
    );
    let chain = [vec![cname], www()].concat();
    lab.cache(
        "alias.resolved.test.",
        1,
        resolved(ResponseCode::NoError, chain, vec![]),
        ago,
    );
    let nodata = resolved(ResponseCode::NoError, vec![], vec![soa(900, 120)]);
    lab.cache("www.resolved.test.", 28, nodata, ago);
    let nx = resolved(ResponseCode::NXDomain, vec![], vec![soa(900, 90)]);
    lab.cache("nope.resolved.test.", 1, nx, ago);
    let secure = Resolved {
        security: Security::Secure,
        ..resolved(
            ResponseCode::NoError,
            vec![a("signed.resolved.test.", 300, 9)],
            vec![],
        )
    };
    lab.cache("signed.resolved.test.", 1, secure, ago);

    let peers: [IpAddr; 2] = [
        "198.51.100.2".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
    ];
    let cases = [
        ("www.resolved.test", 1),
        ("WWW.Resolved.TEST", 1),
        ("alias.resolved.test", 1),
        ("www.resolved.test", 28),
        ("Nope.resolved.test", 1),
        ("signed.resolved.test", 1),
    ];
    let mut tx = 0;
    for (i, (qname, qtype)) in cases.into_iter().enumerate() {
        for edns in [None, Some((1232, false)), Some((1232, true))] {
            for flags in [RD, RD | AD, RD | CD, 0] {
                let peer = peers[i % 2];
                let q = with_flags(query(0x4000 + i as u16, qname, qtype, edns), flags);
                // Two answers from the cache promote the entry.
                lab.slow(&q, peer);
                lab.slow(&q, peer);
                let dns = lab.fast(&q, peer);
                let dns = dns.unwrap_or_else(|| {
                    panic!("{qname} {qtype} {edns:?} {flags:#x}: not answered from XDP")
                });
                // The case the client sent, the TTLs aged.
                assert_eq!(&dns[12..12 + qname.len() + 2], &q[12..12 + qname.len() + 2]);
                assert!(ttls(&dns).iter().all(|&t| t <= 900 - 2), "{:?}", ttls(&dns));
                tx += 1;
            }
        }
    }
    let c = lab.fp.counters().unwrap();
    assert_eq!(c.get("tx_cache"), tx, "{c:?}");
    assert_eq!(c.get("drop_rewrite_failed"), 0, "{c:?}");
}

#[test]
fn ttls_count_down_and_expired_entries_go_up() {
    let lab = lab();
    let peer: IpAddr = "198.51.100.2".parse().unwrap();
    let q = lab.promote_a("short.resolved.test", 3, Duration::from_millis(200));
    let first = lab.fast(&q, peer).expect("answered from XDP");
    std::thread::sleep(Duration::from_millis(1100));
    let second = lab.fast(&q, peer).expect("answered from XDP");
    let (t1, t2) = (ttls(&first)[0], ttls(&second)[0]);
    assert!(t1 <= 2 && t2 < t1, "TTLs {t1} then {t2}");
    // Past its 3 seconds the program refuses it (the slow path refreshes it; here the
    // upstream is unreachable, so no answer is compared).
    std::thread::sleep(Duration::from_millis(1800));
    let f = frame_from(peer, 3000, &q);
    assert_eq!(run(&lab.fp, &f).0, XDP_PASS, "expired entry answered");
}

/// The program's age of an entry is the precise clock's at every instant, across the turns of
/// the second where the coarse clock can't tell (it reads the precise one there): queried every
/// few ms for 1.3 s, each answer is the slow path's just before or just after, and the TTL is
/// seen to fall by one at least once.
#[test]
fn ages_are_exact_across_the_turn_of_a_second() {
    let lab = lab();
    let peer: IpAddr = "198.51.100.2".parse().unwrap();
    let q = lab.promote_a("tick.resolved.test", 300, Duration::ZERO);
    let start = Instant::now();
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..400 {
        if start.elapsed() > Duration::from_millis(1300) {
            break;
        }
        // `fast` compares each answer with the slow path's at the same instant.
        let dns = lab.fast(&q, peer).expect("answered from XDP");
        seen.insert(ttls(&dns)[0]);
        std::thread::sleep(Duration::from_millis(3));
    }
    assert!(seen.len() >= 2, "the TTL never fell: {seen:?}");
}

#[test]
fn other_clients_and_unpromoted_entries_go_up() {
    let lab = lab();
    let r = resolved(
        ResponseCode::NoError,
        vec![a("www.resolved.test.", 300, 7)],
        vec![],
    );
    lab.cache("www.resolved.test.", 1, r.clone(), Duration::ZERO);
    lab.cache("cold.resolved.test.", 1, r, Duration::ZERO);
    let inside: IpAddr = "198.51.100.2".parse().unwrap();
    let q = query(3, "www.resolved.test", 1, Some((1232, false)));
    lab.slow(&q, inside);
    lab.slow(&q, inside);
    assert!(lab.fast(&q, inside).is_some(), "promoted entry answered");
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(run(&lab.fp, &frame_from(outside, 3000, &q)).0, XDP_PASS);
    // Answered once from the cache only: not promoted.
    let cold = query(4, "cold.resolved.test", 1, Some((1232, false)));
    lab.slow(&cold, inside);
    assert_eq!(run(&lab.fp, &frame(false, 3000, &cold)).0, XDP_PASS);
    // Another type of a promoted name, and a name nobody cached.
    for q in [
        query(5, "www.resolved.test", 16, Some((1232, false))),
        query(6, "other.resolved.test", 1, None),
    ] {
        assert_eq!(run(&lab.fp, &frame(false, 3000, &q)).0, XDP_PASS);
    }
    // The zones' own answers are untouched.
    let zone = query(7, "www.example.com", 1, None);
    assert_eq!(run(&lab.fp, &frame(false, 3000, &zone)).0, XDP_TX);
    // A reload empties the map (its zones may hold cached names now); the next answer from the
    // cache promotes the entry again.
    lab.resolver.forget_xdp();
    assert_eq!(run(&lab.fp, &frame_from(inside, 3000, &q)).0, XDP_PASS);
    lab.slow(&q, inside);
    assert!(lab.fast(&q, inside).is_some(), "promoted again");
    let c = lab.fp.counters().unwrap();
    assert_eq!(c.get("tx_cache"), 2, "{c:?}");
}

#[test]
fn a_resolver_alone_answers_from_xdp() {
    // No zones: an empty table installed, every name missing from it.
    let catalog = Catalog::load(&[], None).unwrap();
    let mut fp = FastPath::load_unpinned(Capacity {
        cache_entries: 8,
        ..Capacity::for_table(&[]).unwrap()
    })
    .unwrap();
    fp.install(&[]).unwrap();
    let lab = lab_on(catalog, fp);
    lab.promoted_query();
    // As the daemon runs it (its zones give the program no answer): the cache first.
    lab.cache_first(true);
    let q = query(2, "www.resolved.test", 1, Some((1232, false)));
    let peer = "198.51.100.2".parse().unwrap();
    assert!(lab.fast(&q, peer).is_some(), "answered, cache first");
    let cold = query(3, "cold.resolved.test", 1, None);
    assert_eq!(run(&lab.fp, &frame(false, 3000, &cold)).0, XDP_PASS);
    let c = lab.fp.counters().unwrap();
    assert_eq!((c.get("tx_cache"), c.get("pass_miss")), (2, 1), "{c:?}");
}

/// The cache-first order on a node with zones (as right after a reload adds zones to a
/// resolver-only node): what the cache can't answer comes back to the main program, which
/// answers the zones' names from them as before and passes the rest up, paying the budget once.
#[test]
fn cache_first_sends_the_rest_back_to_the_zones() {
    let lab = lab();
    let q = lab.promoted_query();
    let inside: IpAddr = "198.51.100.2".parse().unwrap();
    let zone = [
        query(7, "www.example.com", 1, None),
        query(8, "nope.example.com", 1, Some((1232, false))),
        query(9, "x.sub.example.com", 1, Some((1232, false))),
    ];
    let before: Vec<_> = zone
        .iter()
        .map(|z| run(&lab.fp, &frame(false, 3000, z)))
        .collect();
    lab.cache_first(true);
    for (z, was) in zone.iter().zip(&before) {
        assert_eq!(
            &run(&lab.fp, &frame(false, 3000, z)),
            was,
            "zone answer changed"
        );
    }
    assert!(
        lab.fast(&q, inside).is_some(),
        "promoted entry answered first"
    );
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    assert_eq!(run(&lab.fp, &frame_from(outside, 3000, &q)).0, XDP_PASS);
    let cold = query(4, "cold.resolved.test", 1, None);
    assert_eq!(run(&lab.fp, &frame(false, 3000, &cold)).0, XDP_PASS);
    let c = lab.fp.counters().unwrap();
    assert_eq!(c.get("tx_cache"), 2, "{c:?}");
    assert_eq!(c.get("tx_answer"), 2, "{c:?}");
    assert_eq!(c.get("pass_miss"), 2, "{c:?}");
}

/// The apex filter (a node with zones; `cache::beyond_zones`): the zones' names get the same
/// from the program with it on as off, whatever their length and whatever an earlier, longer
/// name left in the key buffer past a short name's 64 bytes; cached names under other top
/// labels, short or long ones (read to their 8th byte), are answered; a stale filter that lacks
/// the zones' labels passes their missing names up (the slow path answers them), and their
/// names that exist are answered as before.
#[test]
fn the_apex_filter_keeps_the_zones_names_and_answers_the_rest() {
    let lab = lab();
    let inside: IpAddr = "198.51.100.2".parse().unwrap();
    let cached = [
        lab.promoted_query(),
        lab.promote_a("www.resolved.longtoplabel", 300, Duration::ZERO),
        lab.promote_a("www.resolved.testing", 300, Duration::ZERO),
    ];
    let long = format!("{0}.{0}.{0}.example.com", "a".repeat(60));
    let edge = format!("{}.example.com", "x".repeat(50));
    let zone = [
        query(7, "www.example.com", 1, None),
        query(8, "nope.example.com", 1, Some((1232, false))),
        query(9, "x.sub.example.com", 1, Some((1232, false))),
        query(10, "nope.example.net", 28, Some((1232, false))),
        // 64 bytes: the top label's 8 bytes end past the key's zeroed 64.
        query(11, &edge, 1, Some((1232, false))),
        query(12, &long, 1, Some((1232, false))),
    ];
    let dirty = query(13, &format!("{}.dirty.test", "z".repeat(60)), 1, None);
    let answers = |lab: &Lab| -> Vec<_> {
        (zone.iter())
            .map(|z| {
                run(&lab.fp, &frame(false, 3000, &dirty));
                run(&lab.fp, &frame(false, 3000, z))
            })
            .collect()
    };
    let on = answers(&lab);
    lab.apex_filter(false);
    assert!(answers(&lab) == on, "the filter changed a zone's answer");
    let actions: Vec<_> = on.iter().map(|(action, _)| *action).collect();
    // The exact name, NXDOMAIN, a referral, NXDOMAIN in .net, the 64-byte name; the long one up.
    assert_eq!(actions, [XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_TX, XDP_PASS]);
    lab.apex_filter(true);
    for q in &cached {
        assert!(lab.fast(q, inside).is_some(), "cached name answered");
    }
    // Stale: no zone's label (every name taken as beyond the zones).
    lab.resolver.xdp_zones(&Catalog::default(), false);
    let stale = answers(&lab);
    assert!(stale[0] == on[0], "an existing name is answered as before");
    for ((z, (action, _)), (was, fast)) in zone.iter().zip(&stale).zip(&on).skip(1) {
        assert_eq!(*action, XDP_PASS, "a missing name goes up");
        if *was == XDP_TX {
            let fast = verify_reply(&frame(false, 3000, z), fast);
            assert_eq!(
                lab.slow(z, inside),
                fast,
                "the slow path answers as the program did"
            );
        }
    }
}

/// A promoted name skips the zones' walk and the miss budget in the main program: what the
/// cache program passes up (here a client outside the ACL) is charged to the budget there.
#[test]
fn what_the_cache_passes_up_early_pays_the_miss_budget() {
    let (catalog, mut fp) = demo_loaded(8);
    let budget = crate::limits::BudgetConfig {
        rate: 1,
        total_rate: 0,
    };
    let l = crate::limits::to_limits(&crate::limits::RrlConfig::default(), &budget, 1).unwrap();
    fp.set_limits(l, &[]).unwrap();
    let lab = lab_on(catalog, fp);
    let q = lab.promoted_query();
    let outside: IpAddr = "203.0.113.9".parse().unwrap();
    let passed = (0..6)
        .filter(|_| run(&lab.fp, &frame_from(outside, 3000, &q)).0 == XDP_PASS)
        .count();
    let c = lab.fp.counters().unwrap();
    // Burst 1 (the rate): one goes up, the rest are dropped (no slip from the cache program).
    assert_eq!((passed, c.get("drop_budget")), (1, 5), "{c:?}");
}

/// The array's slots as the daemon keeps them: with 4 slots (one set, so both of every name's
/// sets are it) a fifth entry replaces the one expiring first; removing and clearing empty
/// slots; a rewritten slot holds the new entry with its sequence number moved on by two.
#[test]
fn a_full_array_gives_up_the_entry_expiring_first() {
    let (_, mut fp) = demo_loaded(4);
    let map = fp.enable_cache(&[]).unwrap();
    let entry = |expires_ns: u64| {
        let mut e = rampart_common::CacheEntry::zeroed();
        e.expires_ns = expires_ns;
        e
    };
    let keys: Vec<_> = (0..5u8)
        .map(|i| map.key(&[1, b'a' + i, 0], 1, false))
        .collect();
    // Expiring last to first, but the second (index 1) earliest of all.
    for (i, k) in keys[..4].iter().enumerate() {
        let expires = if i == 1 { 1 } else { 1000 - i as u64 };
        map.insert(k, &entry(expires));
    }
    assert!(keys[..4].iter().all(|k| map.get(k).is_some()));
    map.insert(&keys[4], &entry(2000));
    assert!(
        map.get(&keys[1]).is_none(),
        "the entry expiring first gave way"
    );
    assert!([0, 2, 3].iter().all(|&i| map.get(&keys[i]).is_some()));
    let held = map.get(&keys[4]).expect("the fifth is in");
    assert_eq!((held.live, held.seq % 2, held.expires_ns), (1, 0, 2000));
    assert_eq!(held.name_hash, keys[4].name_hash);
    map.insert(&keys[4], &entry(3000));
    let again = map.get(&keys[4]).unwrap();
    assert_eq!((again.expires_ns, again.seq), (3000, held.seq + 2));
    map.remove(&keys[0]);
    assert!(map.get(&keys[0]).is_none());
    map.clear();
    assert!(keys.iter().all(|k| map.get(k).is_none()));
}

/// Mutated frames of cached queries (and of a zone's), in both orders: every frame the program
/// sends is a well-formed answer to it (checksums, lengths, addresses: `verify_reply`), with
/// the query's ID; nothing else but a pass or a drop comes out, and the cache answers some.
#[test]
fn mutated_frames_get_well_formed_answers_in_both_orders() {
    let lab = lab();
    let peer: IpAddr = "198.51.100.2".parse().unwrap();
    let seeds = [
        lab.promoted_query(),
        with_flags(query(2, "WWW.resolved.test", 1, None), RD),
        query(3, "www.example.com", 1, Some((1232, false))),
    ];
    let mut next = xorshift(0x9e3779b97f4a7c15);
    for first in [false, true] {
        lab.cache_first(first);
        let before = lab.fp.counters().unwrap().get("tx_cache");
        let mut tx = 0;
        for i in 0..6000 {
            let mut f = frame_from(peer, 1000 + i as u16, &seeds[i % seeds.len()]);
            mutate_frame(&mut f, &mut next, 3);
            let (action, out) = run(&lab.fp, &f);
            if action != XDP_TX {
                assert!(action == XDP_PASS || action == 1, "action {action}");
                continue;
            }
            tx += 1;
            let dns = verify_reply(&f, &out);
            let l4 = if f[12] == 0x86 { 54 } else { 34 };
            assert_eq!(dns[..2], f[l4 + 8..l4 + 10], "the query's ID");
        }
        let cached = lab.fp.counters().unwrap().get("tx_cache") - before;
        assert!(
            cached > 0 && tx > cached,
            "first {first}: {tx} sent, {cached} from the cache"
        );
    }
}
