//! DNS cookies in the XDP program through BPF_PROG_TEST_RUN: the server cookie it checks and the
//! fresh one it answers with are RFC 9018's (checked against `cookie::Secret`, which passes the
//! RFC's test vectors), a valid one lets its client past the rate limits, and every other
//! cookie is answered but limited like no cookie.
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use super::probe::{XDP_PASS, XDP_TX};
use super::tests::{frame_from, loaded, run, verify_reply};
use super::*;
use crate::cookie::Secret;
use crate::limits::{self, BudgetConfig, RrlConfig};
use crate::wire::{OPTION_COOKIE, testutil::query_with_options};

const XDP_DROP: u32 = 1;
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";
const STAGING: &str = "445536bcd2513298075a5d379663c962";
const CLIENT: [u8; 8] = [0x24, 0x64, 0xc4, 0xab, 0xcf, 0x10, 0xc9, 0x57];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The program with cookies on (and staging when given), RRL at 1/s with burst `burst`
/// (0: off), slip 2.
fn with_cookies(staging: bool, burst: u32) -> FastPath {
    let rrl = RrlConfig {
        rate: if burst == 0 { 0 } else { 1 },
        burst: Some(burst.max(1)),
        slip: 2,
        class_rate: 0,
        ..RrlConfig::default()
    };
    let budget = BudgetConfig {
        rate: 0,
        total_rate: 0,
    };
    with_cookie_limits(&rrl, &budget, staging)
}

/// The program with these limits and cookies on (and staging when given).
fn with_cookie_limits(rrl: &RrlConfig, budget: &BudgetConfig, staging: bool) -> FastPath {
    let mut fp = loaded();
    let mut l = limits::to_limits(rrl, budget, 1).unwrap();
    let staging = staging.then(|| Secret::parse(STAGING).unwrap());
    limits::set_cookies(&mut l, Some(Secret::parse(SECRET).unwrap()), staging);
    fp.set_limits(l, &[]).unwrap();
    fp
}

/// www.example.com A with EDNS and a COOKIE option of `data`.
fn with_cookie(id: u16, data: &[u8]) -> Vec<u8> {
    query_with_options(id, "www.example.com", 1, false, &[(OPTION_COOKIE, data)])
}

/// Client cookie + server cookie made with `secret` for `src` at `ts`.
fn full_cookie(secret: &str, src: &str, ts: u32) -> Vec<u8> {
    let server = Secret::parse(secret)
        .unwrap()
        .server_cookie(&CLIENT, [0; 3], ts, ip(src));
    [&CLIENT[..], &server[..]].concat()
}

/// The COOKIE option's data in an answer's OPT (its last option), checked to be the client
/// cookie and a fresh, valid RFC 9018 server cookie for `src`.
fn answered_cookie(dns: &[u8], src: &str) -> [u8; 24] {
    let n = dns.len();
    assert!(n > 28 + 11, "room for OPT and cookie");
    assert_eq!(
        &dns[n - 28..n - 24],
        &[0, 10, 0, 24],
        "COOKIE option, 24 bytes"
    );
    assert_eq!(&dns[n - 24..n - 16], &CLIENT, "client cookie echoed");
    let opt = n - 28 - 11;
    assert_eq!(&dns[opt..opt + 3], &[0, 0, 41], "in the OPT record");
    assert_eq!(&dns[opt + 9..opt + 11], &[0, 28], "OPT RDLENGTH covers it");
    let server: [u8; 16] = dns[n - 16..].try_into().unwrap();
    assert_eq!(&server[..4], &[1, 0, 0, 0], "version 1, reserved 0");
    let ts = u32::from_be_bytes(server[4..8].try_into().unwrap());
    assert!(now().abs_diff(ts) <= 2, "timestamp {ts} is now");
    let expect = Secret::parse(SECRET)
        .unwrap()
        .server_cookie(&CLIENT, [0; 3], ts, ip(src));
    assert_eq!(server, expect, "made with the secret for {src}");
    dns[n - 24..].try_into().unwrap()
}

#[test]
fn answers_carry_a_fresh_server_cookie_v4_and_v6() {
    let fp = with_cookies(false, 0);
    let plain = query_with_options(7, "www.example.com", 1, false, &[]);
    for src in ["198.51.100.2", "2001:db8::2"] {
        let (_, base) = run(&fp, &frame_from(ip(src), 5000, &plain));
        let base = verify_reply(&frame_from(ip(src), 5000, &plain), &base);
        for (data, reused) in [
            (CLIENT.to_vec(), false),                           // first contact
            (full_cookie(SECRET, src, now() - 100), true),      // valid, young: sent back
            (full_cookie(SECRET, src, now() - 1900), false),    // valid, old: renewed
            (full_cookie(STAGING, src, now()), false),          // other secret
            (full_cookie(SECRET, "203.0.113.9", now()), false), // another client's
        ] {
            let q = with_cookie(7, &data);
            let f = frame_from(ip(src), 5000, &q);
            let (action, out) = run(&fp, &f);
            assert_eq!(action, XDP_TX, "{src} cookie {data:02x?}");
            let dns = verify_reply(&f, &out);
            if reused {
                // RFC 9018 §4.3, as NSD: a valid cookie younger than half an hour comes back.
                assert_eq!(
                    &dns[dns.len() - 24..],
                    &data[..],
                    "{src}: the cookie sent back"
                );
            } else {
                answered_cookie(&dns, src);
            }
            // The rest is the answer a query without a cookie gets, with ARCOUNT unchanged.
            let n = dns.len();
            assert_eq!(&dns[..n - 30], &base[..base.len() - 2], "same answer");
        }
    }
    let c = fp.counters().unwrap();
    assert_eq!(
        (
            c.get("cookie_client_only"),
            c.get("cookie_valid"),
            c.get("cookie_bad"),
            c.get("cookie_sent"),
            c.get("tx_answer")
        ),
        (2, 4, 4, 10, 12)
    );
}

#[test]
fn a_valid_cookie_is_not_rate_limited_and_others_are() {
    let fp = with_cookies(true, 2);
    let src = "198.51.100.2";
    let valid = with_cookie(1, &full_cookie(SECRET, src, now()));
    let staged = with_cookie(1, &full_cookie(STAGING, src, now() - 3000));
    for q in [&valid, &staged] {
        for i in 0..20 {
            let f = frame_from(ip(src), 6000 + i, q);
            let (action, out) = run(&fp, &f);
            assert_eq!(action, XDP_TX);
            let dns = verify_reply(&f, &out);
            assert_eq!(dns[3] & 0x0f, 0, "a full answer, not a slip");
            assert_eq!(dns[2] & 0x02, 0, "TC clear");
            answered_cookie(&dns, src);
        }
    }
    // Expired (an hour and more), from the future (more than 5 minutes), forged hash, wrong
    // version, client cookie only: limited like no cookie at all (burst 2, then every 2nd of
    // the 8 limited slips). Each made for the address it is sent from, so only its own flaw is
    // wrong, and each from a /56 of its own, so each starts with a full bucket.
    type Flaw = fn(&str) -> Vec<u8>;
    let flaws: [(&str, Flaw); 5] = [
        ("expired", |a| full_cookie(SECRET, a, now() - 3700)),
        ("future", |a| full_cookie(SECRET, a, now() + 400)),
        ("forged", |a| {
            let mut c = full_cookie(SECRET, a, now());
            c[23] ^= 1;
            c
        }),
        ("version 2", |a| {
            let mut c = full_cookie(SECRET, a, now());
            c[8] = 2;
            c
        }),
        ("client only", |_| CLIENT.to_vec()),
    ];
    for (i, (what, flaw)) in flaws.iter().enumerate() {
        let other = format!("2001:db8:{}::2", 0x100 + i);
        let q = with_cookie(2, &flaw(&other));
        let actions: Vec<u32> = (0..10)
            .map(|p| run(&fp, &frame_from(ip(&other), 7000 + p, &q)).0)
            .collect();
        let drops = actions.iter().filter(|&&a| a == XDP_DROP).count();
        assert_eq!(
            drops, 4,
            "{what}: 2 answered, 8 limited, half dropped: {actions:?}"
        );
    }
    // The same cookie, sound, from one more /56: never limited.
    let good = "2001:db8:200::2";
    let q = with_cookie(2, &full_cookie(SECRET, good, now()));
    for p in 0..10 {
        assert_eq!(run(&fp, &frame_from(ip(good), 7000 + p, &q)).0, XDP_TX);
    }
    let c = fp.counters().unwrap();
    assert_eq!(c.get("cookie_valid"), 50);
    assert_eq!(c.get("cookie_bad"), 40);
    assert_eq!(c.get("cookie_client_only"), 10);
}

#[test]
fn malformed_or_duplicate_cookies_go_to_the_slow_path() {
    let fp = with_cookies(false, 0);
    let src = "198.51.100.2";
    for data in [vec![1u8; 7], vec![1u8; 9], vec![1u8; 15], vec![1u8; 41]] {
        let q = with_cookie(3, &data);
        let (action, _) = run(&fp, &frame_from(ip(src), 5353, &q));
        assert_eq!(action, XDP_PASS, "length {}", data.len());
    }
    let cookie = (OPTION_COOKIE, &CLIENT[..]);
    let two = query_with_options(3, "www.example.com", 1, false, &[cookie, cookie]);
    assert_eq!(run(&fp, &frame_from(ip(src), 5353, &two)).0, XDP_PASS);
    assert_eq!(fp.counters().unwrap().get("pass_edns"), 5);
}

#[test]
fn without_a_secret_cookies_are_ignored() {
    let fp = loaded();
    let src = "198.51.100.2";
    let plain = query_with_options(9, "www.example.com", 1, false, &[]);
    let f = frame_from(ip(src), 5000, &plain);
    let base = verify_reply(&f, &run(&fp, &f).1);
    let q = with_cookie(9, &CLIENT);
    let f = frame_from(ip(src), 5000, &q);
    let (action, out) = run(&fp, &f);
    assert_eq!(action, XDP_TX);
    assert_eq!(
        verify_reply(&f, &out),
        base,
        "an answer without a COOKIE option"
    );
    let c = fp.counters().unwrap();
    assert_eq!((c.get("cookie_sent"), c.get("cookie_client_only")), (0, 0));
}

/// Check a BADCOOKIE slip to `q`: header, question, then one OPT holding the
/// cookie. Returns the cookie option's data.
fn badcookie_slip(q: &[u8], dns: &[u8], do_bit: bool) -> [u8; 24] {
    let flags = u16::from_be_bytes([dns[2], dns[3]]);
    assert_eq!(flags & 0x8000, 0x8000, "QR");
    assert_eq!(flags & 0x0200, 0, "TC clear: the client retries over UDP");
    assert_eq!(flags & 0x000f, 7, "RCODE 23's low bits");
    assert_eq!(
        &dns[4..12],
        &[0, 1, 0, 0, 0, 0, 0, 1],
        "the question and the OPT only"
    );
    let n = dns.len();
    let opt = n - 28 - 11;
    assert_eq!(&dns[12..opt], &q[12..opt], "question echoed");
    assert_eq!(
        &dns[opt..opt + 11],
        &[
            0,
            0,
            41,
            0x04,
            0xd0,
            1,
            0,
            if do_bit { 0x80 } else { 0 },
            0,
            0,
            28
        ],
        "OPT: extended RCODE 1 (BADCOOKIE = 23), DO echoed, the cookie option"
    );
    answered_cookie(dns, "198.51.100.2")
}

#[test]
fn a_limited_cookie_client_gets_badcookie_then_passes_with_it() {
    let fp = with_cookies(false, 1);
    let src = "198.51.100.2";
    for (i, do_bit) in [false, true].into_iter().enumerate() {
        let q = query_with_options(4, "www.example.com", 1, do_bit, &[(OPTION_COOKIE, &CLIENT)]);
        // Burst 1, slip 2: answered, dropped, slipped. The second round shares the first's
        // bucket (same prefix and class), so its first query may already be limited.
        let f = frame_from(ip(src), 5000 + i as u16, &q);
        let first = run(&fp, &f).0;
        assert!(i == 1 || first == XDP_TX, "the burst");
        let mut slipped = None;
        for _ in 0..4 {
            let (action, out) = run(&fp, &f);
            if action == XDP_TX {
                slipped = Some(out);
                break;
            }
            assert_eq!(action, XDP_DROP);
        }
        let out = slipped.expect("a slip within four limited queries");
        let dns = verify_reply(&f, &out);
        let cookie = badcookie_slip(&q, &dns, do_bit);
        // The retry with the cookie it got passes every limit.
        let retry = with_cookie(5, &cookie);
        for p in 0..5 {
            let f = frame_from(ip(src), 6000 + p, &retry);
            let (action, out) = run(&fp, &f);
            assert_eq!(action, XDP_TX);
            let dns = verify_reply(&f, &out);
            assert_eq!(dns[3] & 0x0f, 0, "a full answer");
            answered_cookie(&dns, src);
        }
    }
    let c = fp.counters().unwrap();
    assert_eq!(c.get("cookie_valid"), 10);
    assert!(c.get("tx_slip_rrl") >= 2);
}

#[test]
fn a_budget_slip_stays_tc_whatever_the_cookie() {
    let rrl = RrlConfig {
        rate: 0,
        class_rate: 0,
        slip: 1,
        class_slip: 1,
        ..RrlConfig::default()
    };
    let budget = BudgetConfig {
        rate: 1,
        total_rate: 0,
    };
    let fp = with_cookie_limits(&rrl, &budget, false);
    // A name the maps don't have: the slow path's, so the budget applies.
    let q = query_with_options(
        6,
        "nothere.example.org",
        1,
        false,
        &[(OPTION_COOKIE, &CLIENT)],
    );
    let f = frame_from(ip("198.51.100.2"), 7000, &q);
    assert_eq!(run(&fp, &f).0, XDP_PASS, "within the budget: up");
    let mut tc = false;
    for _ in 0..3 {
        let (action, out) = run(&fp, &f);
        if action == XDP_TX {
            let dns = verify_reply(&f, &out);
            assert_ne!(dns[2] & 0x02, 0, "TC: TCP isn't budgeted");
            assert_eq!(
                dns.len(),
                q.len() - 11 - 12,
                "header and question, no OPT, no cookie"
            );
            tc = true;
        }
    }
    assert!(tc, "over the budget a slip goes out");
}
