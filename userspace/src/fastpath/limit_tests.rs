//! The XDP program's rate limits through BPF_PROG_TEST_RUN: RRL per prefix and class with slip,
//! whitelist, dry run, the per-class global view, and the miss budget. Rates are 1/s, so no
//! bucket refills during a test (each runs in milliseconds).
use std::net::IpAddr;

use super::probe::{XDP_PASS, XDP_TX};
use super::tests::{frame_from, loaded, query, run, verify_reply};
use super::*;
use crate::limits::{self, BudgetConfig, RrlConfig};

const XDP_DROP: u32 = 1;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// RRL at 1/s with a burst of `burst`; global view and budget off unless given.
fn rrl(burst: u32, slip: u32) -> RrlConfig {
    RrlConfig {
        rate: 1,
        burst: Some(burst),
        slip,
        class_rate: 0,
        ..RrlConfig::default()
    }
}

const NO_BUDGET: BudgetConfig = BudgetConfig {
    rate: 0,
    total_rate: 0,
};

fn with_limits(rrl: &RrlConfig, budget: &BudgetConfig) -> FastPath {
    let mut fp = loaded();
    let wl: Vec<_> = rrl.whitelist.iter().map(limits::whitelist_key).collect();
    fp.set_limits(limits::to_limits(rrl, budget, 1).unwrap(), &wl)
        .unwrap();
    fp
}

fn www(id: u16) -> Vec<u8> {
    query(id, "www.example.com", 1, Some((1232, false)))
}

/// Send `n` queries from `src`; return the actions.
fn send(fp: &FastPath, src: &str, dns: &[u8], n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| run(fp, &frame_from(ip(src), 1024 + i as u16, dns)).0)
        .collect()
}

fn tally(actions: &[u32]) -> (usize, usize, usize) {
    let c = |a| actions.iter().filter(|&&x| x == a).count();
    (c(XDP_TX), c(XDP_DROP), c(XDP_PASS))
}

#[test]
fn rrl_limits_a_prefix_per_class_and_slips_every_nth() {
    let fp = with_limits(&rrl(5, 2), &NO_BUDGET);
    // Burst of 5, then 15 limited: every 2nd slips (7), the rest are dropped (8).
    let actions = send(&fp, "198.51.100.2", &www(1), 20);
    assert_eq!(tally(&actions), (12, 8, 0), "{actions:?}");
    assert!(actions[..5].iter().all(|&a| a == XDP_TX));
    let c = fp.counters().unwrap();
    assert_eq!(
        (c.get("tx_answer"), c.get("tx_slip_rrl"), c.get("drop_rrl")),
        (5, 7, 8)
    );
    // Another address of the same /24 shares the bucket; another /24 has its own, and so
    // does another response class from the same prefix (NODATA at www).
    let (tx, drop, _) = tally(&send(&fp, "198.51.100.77", &www(2), 4));
    assert!(tx <= 2 && drop >= 2, "same /24 still limited");
    assert_eq!(tally(&send(&fp, "203.0.113.9", &www(3), 5)), (5, 0, 0));
    let mx = query(4, "www.example.com", 15, None);
    assert_eq!(tally(&send(&fp, "198.51.100.2", &mx, 5)), (5, 0, 0));
    // IPv6 by /56: 2001:db8:0:100:: and 2001:db8:0:1ff:: share one, 2001:db8:0:200:: doesn't.
    assert_eq!(
        tally(&send(&fp, "2001:db8:0:100::1", &www(5), 5)),
        (5, 0, 0)
    );
    assert_eq!(
        tally(&send(&fp, "2001:db8:0:1ff::1", &www(6), 4)),
        (2, 2, 0)
    );
    assert_eq!(
        tally(&send(&fp, "2001:db8:0:200::1", &www(7), 5)),
        (5, 0, 0)
    );
}

#[test]
fn a_slip_is_the_header_and_question_with_tc() {
    let fp = with_limits(&rrl(1, 1), &NO_BUDGET);
    let q = www(0x4242);
    for v6 in ["198.51.100.2", "2001:db8::2"] {
        let f = frame_from(ip(v6), 3333, &q);
        assert_eq!(run(&fp, &f).0, XDP_TX, "first answered");
        let (action, out) = run(&fp, &f);
        assert_eq!(
            action, XDP_TX,
            "then slipped (slip 1: every limited answer)"
        );
        let dns = verify_reply(&f, &out);
        let qlen = q.len() - 12 - 11;
        assert_eq!(dns.len(), 12 + qlen, "no records, no OPT");
        assert_eq!(&dns[..2], &[0x42, 0x42]);
        assert_eq!(
            u16::from_be_bytes([dns[2], dns[3]]),
            0x8000 | 0x0400 | 0x0200 | 0x0100,
            "QR AA TC RD"
        );
        assert_eq!(&dns[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&dns[12..], &q[12..12 + qlen], "question echoed");
    }
    assert_eq!(fp.counters().unwrap().get("tx_slip_rrl"), 2);
}

#[test]
fn slip_zero_drops_all_and_whitelist_and_dry_run_answer_all() {
    let fp = with_limits(&rrl(2, 0), &NO_BUDGET);
    assert_eq!(tally(&send(&fp, "198.51.100.2", &www(1), 10)), (2, 8, 0));
    let wl = RrlConfig {
        whitelist: vec!["198.51.100.0/25".parse().unwrap()],
        ..rrl(2, 0)
    };
    let fp = with_limits(&wl, &NO_BUDGET);
    assert_eq!(tally(&send(&fp, "198.51.100.2", &www(1), 10)), (10, 0, 0));
    // Every answer to a whitelisted source is counted, none accounted (Knot's RRL exempts
    // whitelisted clients before its table the same way).
    assert_eq!(fp.counters().unwrap().get("rrl_whitelisted"), 10);
    // .200 is outside the whitelisted /25, in the same /24 bucket, which the whitelisted
    // answers left untouched: its burst of 2, then limited.
    assert_eq!(tally(&send(&fp, "198.51.100.200", &www(1), 4)), (2, 2, 0));
    assert_eq!(fp.counters().unwrap().get("rrl_whitelisted"), 10);
    // The memo remembers both verdicts: the listed source again, and the unlisted one.
    assert_eq!(tally(&send(&fp, "198.51.100.2", &www(1), 3)), (3, 0, 0));
    assert_eq!(tally(&send(&fp, "198.51.100.200", &www(1), 2)), (0, 2, 0));
    assert_eq!(fp.counters().unwrap().get("rrl_whitelisted"), 13);
    let dry = RrlConfig {
        dry_run: true,
        ..rrl(2, 0)
    };
    let fp = with_limits(&dry, &NO_BUDGET);
    assert_eq!(tally(&send(&fp, "198.51.100.2", &www(1), 10)), (10, 0, 0));
    let c = fp.counters().unwrap();
    assert_eq!((c.get("rrl_dry_run"), c.get("tx_answer")), (8, 10));
}

/// A flood spread over many /56s defeats per-prefix RRL; the class's aggregate rate catches it.
#[test]
fn global_view_limits_a_class_whatever_the_source_spread() {
    let cfg = RrlConfig {
        rate: 100,
        class_rate: 1,
        class_slip: 2,
        ..RrlConfig::default()
    };
    let mut l = limits::to_limits(&cfg, &NO_BUDGET, 1).unwrap();
    l.global_burst = 3 * l.global_interval; // a burst of 4
    let mut fp = loaded();
    fp.set_limits(l, &[]).unwrap();
    let mut actions = Vec::new();
    for i in 0..20u16 {
        let src = ip(&format!("2001:db8:{i:x}00::1"));
        actions.push(run(&fp, &frame_from(src, 5000, &www(i))).0);
    }
    assert_eq!(tally(&actions), (4 + 8, 8, 0), "{actions:?}");
    let c = fp.counters().unwrap();
    assert_eq!(
        (
            c.get("tx_slip_global"),
            c.get("drop_global"),
            c.get("drop_rrl")
        ),
        (8, 8, 0)
    );
    // Another class (NODATA) is not affected.
    let mx = query(4, "www.example.com", 15, None);
    assert_eq!(tally(&send(&fp, "2001:db8:ff00::1", &mx, 3)), (3, 0, 0));
}

/// Queries passed up are budgeted per prefix and in total; over budget, misses slip (TC=1, no
/// AA, NOERROR) or drop; other pass reasons drop.
#[test]
fn miss_budget_per_prefix_and_total() {
    let budget = BudgetConfig {
        rate: 1,
        total_rate: 0,
    };
    let cfg = RrlConfig {
        class_slip: 1,
        ..rrl(100, 2)
    };
    let fp = with_limits(&cfg, &budget);
    let miss = query(9, "nope.example.com", 1, None);
    let actions = send(&fp, "198.51.100.2", &miss, 4);
    // Burst 1 (the rate): one passes, three slip (slip 1).
    assert_eq!(tally(&actions), (3, 0, 1), "{actions:?}");
    let f = frame_from(ip("198.51.100.3"), 999, &miss);
    let (action, out) = run(&fp, &f);
    assert_eq!(action, XDP_TX);
    let dns = verify_reply(&f, &out);
    assert_eq!(u16::from_be_bytes([dns[2], dns[3]]), 0x8300, "QR TC RD");
    assert_eq!(&dns[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
    // Another prefix has its own budget; a pass reason without a question to slip drops.
    assert_eq!(tally(&send(&fp, "203.0.113.1", &miss, 1)), (0, 0, 1));
    let mut chaos = query(1, "www.example.com", 1, None);
    let n = chaos.len();
    chaos[n - 1] = 3;
    assert_eq!(tally(&send(&fp, "198.51.100.2", &chaos, 2)), (0, 2, 0));
    let c = fp.counters().unwrap();
    assert_eq!(
        (
            c.get("pass_miss"),
            c.get("tx_slip_budget"),
            c.get("drop_budget")
        ),
        (2, 4, 2)
    );
    // The total budget: across prefixes.
    let total = BudgetConfig {
        rate: 0,
        total_rate: 1,
    };
    let fp = with_limits(&cfg, &total);
    let mut passed = 0;
    for i in 0..5u16 {
        let f = frame_from(ip(&format!("2001:db8:{i:x}00::1")), 999, &miss);
        passed += usize::from(run(&fp, &f).0 == XDP_PASS);
    }
    assert_eq!(passed, 1);
    assert_eq!(fp.counters().unwrap().get("tx_slip_budget"), 4);
}

/// With no limits configured (the LIMITS slot zeroed) nothing is limited.
#[test]
fn no_limits_by_default_in_the_program() {
    let fp = loaded();
    assert_eq!(tally(&send(&fp, "198.51.100.2", &www(1), 50)), (50, 0, 0));
    let miss = query(9, "nope.example.com", 1, None);
    assert_eq!(tally(&send(&fp, "198.51.100.2", &miss, 50)), (0, 0, 50));
}

/// The daemon's health probe (its frame carries PROBE_META in the XDP metadata) is never
/// limited: a flood of the probe's name must not make the node withdraw itself. The same frame
/// without the metadata, as anything from the wire arrives, is limited.
#[test]
fn the_health_probe_is_never_limited() {
    let fp = with_limits(&rrl(1, 0), &NO_BUDGET);
    let f = frame_from(ip("198.51.100.253"), 40_000, &www(7));
    let plain: Vec<u32> = (0..5).map(|_| run(&fp, &f).0).collect();
    assert_eq!(
        tally(&plain),
        (1, 4, 0),
        "without metadata: limited {plain:?}"
    );
    for _ in 0..5 {
        let (action, out) = fp.test_run_probe(&f).unwrap();
        assert_eq!(action, XDP_TX, "the probe is answered");
        verify_reply(&f, &out);
    }
    assert_eq!(fp.counters().unwrap().get("drop_rrl"), 4);
}
