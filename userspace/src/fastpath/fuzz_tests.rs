//! Mutation fuzz of the XDP program through BPF_PROG_TEST_RUN on the fixture zones, limits and
//! cookies on: every XDP_TX output must be a well-formed response to the frame it came from.
//! `RAMPART_XDP_FUZZ_FRAMES` frames (50,000 by default; CI and the README figure set their own),
//! `RAMPART_FUZZ_SEED` replays a run.
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::probe::{XDP_PASS, XDP_TX, fold, query_frame, sum16};
use super::tests::verify_reply;
use super::*;
use crate::cookie::Secret;
use crate::fuzz::{Rng, check_response, mutate};
use crate::limits::{self, BudgetConfig, RrlConfig};
use crate::respond::respond;
use crate::wire::testutil::{name as wire, opt_options};
use crate::wire::{OPTION_COOKIE, Transport};
use crate::zone::Catalog;

const XDP_DROP: u32 = 1;
const SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

/// Names of the fixture zones: hits, mixed case, CNAMEs, empty non-terminals, wildcards,
/// referrals and their glue, NXDOMAIN at several depths, other zones, names we have no zone for.
const NAMES: &[&str] = &[
    "example.com",
    "www.example.com",
    "WWW.EXAMPLE.COM",
    "mail.example.com",
    "ns1.example.com",
    "mixedcase.example.com",
    "alias.example.com",
    "big.example.com",
    "ftp.example.com",
    "b.c.example.com",
    "a.b.c.example.com",
    "x.wild.example.com",
    "a.b.WILD.example.com",
    "wild.example.com",
    "sub.example.com",
    "host.sub.example.com",
    "ns.sub.example.com",
    "child.example.com",
    "www.child.example.com",
    "x.w.child.example.com",
    "up.child.example.com",
    "nope.example.com",
    "a.b.nope.example.com",
    "long-label-0123456789012345678901234567890123456789012345678901.example.com",
    "example.net",
    "www.example.net",
    "deep.a.b.example.net",
    "nope.example.net",
    "www.nsec.example",
    "x.wild.nsec.example",
    "nope.nsec3.example",
    "example.org",
    "com",
];

/// Query types, the ones the fast path answers most often.
const QTYPES: &[u16] = &[
    1, 1, 1, 28, 28, 15, 16, 2, 6, 5, 1, 28, 255, 43, 46, 48, 64, 65, 99, 252, 0, 41,
];

/// One query as built before mutation: what the frame carried, for the counters.
struct Case {
    v6: bool,
    vlan: bool,
    cookie: &'static str,
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// A documentation source address: a quarter from one busy client per family (rate-limited:
/// slips and drops), the rest from 762 IPv4 hosts (limited per /32) or 65,536 IPv6 /56s.
fn source(rng: &mut Rng, v6: bool) -> IpAddr {
    if rng.below(4) == 0 {
        let busy = if v6 { "2001:db8:1::7" } else { "198.51.100.7" };
        busy.parse().unwrap()
    } else if v6 {
        let n = rng.below(65_536) as u16;
        format!("2001:db8:{n:x}::{:x}", 2 + rng.below(1000))
            .parse()
            .unwrap()
    } else {
        let net = ["192.0.2", "198.51.100", "203.0.113"][rng.below(3)];
        format!("{net}.{}", 1 + rng.below(254)).parse().unwrap()
    }
}

/// A query for a corpus name (its case scrambled), with or without EDNS, DO, a cookie (client
/// only, valid for `src`, or bad), NSID or padding.
fn base_query(rng: &mut Rng, src: IpAddr, secret: &Secret) -> (Vec<u8>, &'static str) {
    let mut name = wire(NAMES[rng.below(NAMES.len())]);
    if rng.below(4) == 0 {
        for b in name.iter_mut().filter(|b| b.is_ascii_alphabetic()) {
            if rng.below(2) == 0 {
                *b ^= 0x20;
            }
        }
    }
    let qtype = QTYPES[rng.below(QTYPES.len())];
    let edns = rng.below(4) != 0;
    let mut q = Vec::new();
    let flags: u16 = [0x0000, 0x0100, 0x0110, 0x0120][rng.below(4)];
    for w in [rng.next_u64() as u16, flags, 1, 0, 0, u16::from(edns)] {
        q.extend_from_slice(&w.to_be_bytes());
    }
    q.extend_from_slice(&name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if !edns {
        return (q, "none");
    }
    let client: [u8; 8] = rng.next_u64().to_be_bytes();
    let (cookie, kind): (Vec<u8>, _) = match rng.below(5) {
        0 => (Vec::new(), "none"),
        1 => (client.to_vec(), "client"),
        2 | 3 => {
            let ts = now() - rng.below(600) as u32;
            let server = secret.server_cookie(&client, [0; 3], ts, src);
            ([&client[..], &server[..]].concat(), "valid")
        }
        _ => {
            let mut c = [&client[..], &rng.next_u64().to_be_bytes()[..]].concat();
            c.extend_from_slice(&rng.next_u64().to_be_bytes());
            (c, "bad")
        }
    };
    let mut options = Vec::new();
    if !cookie.is_empty() {
        options.extend_from_slice(&OPTION_COOKIE.to_be_bytes());
        options.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
        options.extend_from_slice(&cookie);
    }
    match rng.below(8) {
        0 => options.extend_from_slice(&[0, 3, 0, 0]), // NSID
        1 => options.extend_from_slice(&[0, 12, 0, 4, 0, 0, 0, 0]), // padding
        _ => {}
    }
    let size: u16 = [512, 1232, 1400, 4096, 65535, 0][rng.below(6)];
    let do_bit = if rng.below(2) == 0 { 0x80 } else { 0 };
    q.extend_from_slice(&[0, 0, 41]);
    q.extend_from_slice(&size.to_be_bytes());
    q.extend_from_slice(&[0, 0, do_bit, 0]);
    q.extend_from_slice(&(options.len() as u16).to_be_bytes());
    q.extend_from_slice(&options);
    (q, kind)
}

/// DNS header fields set to values a parser must survive: flags, opcode, counts.
fn mutate_header(q: &mut [u8], rng: &mut Rng) {
    if q.len() < 12 {
        return;
    }
    match rng.below(5) {
        0 => q[2] = rng.next_u64() as u8,
        1 => q[3] = rng.next_u64() as u8,
        2 => q[2] = (q[2] & 0x87) | ((rng.below(16) as u8) << 3),
        _ => {
            let at = 4 + 2 * rng.below(4);
            let v: u16 = [0, 1, 2, 3, 0xffff][rng.below(5)];
            q[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// IP and UDP header fields changed after framing (checksums not fixed unless `fix`).
fn mutate_frame(f: &mut Vec<u8>, rng: &mut Rng, fix: bool) {
    let v6 = f[12] == 0x86;
    let l4 = if v6 { 54 } else { 34 };
    match rng.below(6) {
        0 if !v6 => f[14] = (rng.next_u64() as u8 & 0x0f) | 0x40, // IHL
        0 => f[20] = rng.next_u64() as u8,                        // next header
        1 if !v6 => f[20] = [0x20, 0x40, 0x00, 0x3f][rng.below(4)], // fragment flags/offset
        1 => f[18..20].copy_from_slice(&(rng.next_u64() as u16).to_be_bytes()), // payload length
        2 if !v6 => f[16..18].copy_from_slice(&(rng.next_u64() as u16).to_be_bytes()), // total
        2 | 3 => {
            // UDP length or destination port
            let at = l4 + if rng.below(2) == 0 { 4 } else { 2 };
            f[at..at + 2].copy_from_slice(&(rng.next_u64() as u16 % 600).to_be_bytes());
        }
        4 => f[12..14].copy_from_slice(&[[0x08, 0x06], [0x88, 0xa8], [0x81, 0x00]][rng.below(3)]),
        _ => f.truncate(rng.below(f.len()).max(14)),
    }
    if fix && f.len() >= l4 + 8 {
        fix_checksums(f, v6, l4);
    }
}

/// Recompute the IPv4 header checksum and the UDP checksum over what the headers say.
fn fix_checksums(f: &mut [u8], v6: bool, l4: usize) {
    if !v6 {
        f[24..26].fill(0);
        let c = !fold(sum16(&f[14..34]));
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let udp_len = (u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize).min(f.len() - l4);
    let pseudo = if v6 {
        sum16(&f[22..54])
    } else {
        sum16(&f[26..34])
    } + 17
        + udp_len as u64;
    f[l4 + 6..l4 + 8].fill(0);
    let c = !fold(pseudo + sum16(&f[l4..l4 + udp_len]));
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
}

fn with_vlan(f: &[u8], tci: u16) -> Vec<u8> {
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

fn without_vlan(f: &[u8]) -> Vec<u8> {
    [&f[..12], &f[16..]].concat()
}

/// Check one XDP_TX output against the frame it answers (VLAN tag kept, then as untagged);
/// the query's and the answer's DNS messages.
fn check_tx(input: &[u8], out: &[u8], vlan: bool) -> (Vec<u8>, Vec<u8>) {
    let (q, r) = if vlan {
        assert_eq!(out[12..16], input[12..16], "VLAN tag kept");
        (without_vlan(input), without_vlan(out))
    } else {
        (input.to_vec(), out.to_vec())
    };
    let dns = verify_reply(&q, &r);
    let l4 = if q[12] == 0x86 { 54 } else { 34 };
    let udp_len = u16::from_be_bytes([q[l4 + 4], q[l4 + 5]]) as usize;
    assert!(
        l4 + udp_len <= q.len(),
        "answered a frame shorter than its UDP length"
    );
    let qdns = q[l4 + 8..l4 + udp_len].to_vec();
    check_response(&qdns, &dns, Transport::Udp);
    (qdns, dns)
}

#[derive(Default, Debug)]
struct Tally {
    frames: u64,
    tx: u64,
    tx_tc: u64,
    tx_badcookie: u64,
    tx_nx: u64,
    tx_referral: u64,
    tx_cookie: [u64; 4],
    tx_v6: u64,
    tx_vlan: u64,
    pass: u64,
    drop: u64,
    same_as_slow_path: u64,
    differs_from_slow_path: u64,
}

#[test]
fn fuzz_mutated_frames_every_tx_is_a_well_formed_answer() {
    let frames: u64 = std::env::var("RAMPART_XDP_FUZZ_FRAMES").map_or(50_000, |s| {
        s.replace('_', "").parse().expect("RAMPART_XDP_FUZZ_FRAMES")
    });
    let seed = std::env::var("RAMPART_FUZZ_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |s| s.parse().expect("RAMPART_FUZZ_SEED"),
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zones");
    let catalog = Catalog::load(&[], Some(&dir)).unwrap();
    let table = crate::compile::compile(&catalog);
    let mut fp = FastPath::load_unpinned(Capacity::for_table(&table).unwrap()).unwrap();
    fp.install(&table).unwrap();
    // Every limit on: the busy sources are limited (slips, drops), the rest not, at the 10,000
    // frames/s of a debug build and the 200,000 of a release one.
    let rrl = RrlConfig {
        rate: 50,
        burst: Some(50),
        slip: 2,
        class_rate: 100_000,
        ipv4_prefix: 32,
        ..RrlConfig::default()
    };
    let budget = BudgetConfig {
        rate: 1000,
        total_rate: 200_000,
    };
    let mut l = limits::to_limits(&rrl, &budget, 1).unwrap();
    let secret = Secret::parse(SECRET).unwrap();
    limits::set_cookies(&mut l, Some(Secret::parse(SECRET).unwrap()), None);
    fp.set_limits(l, &[]).unwrap();

    let mut rng = Rng::new(seed);
    let mut t = Tally::default();
    let start = Instant::now();
    let corpus: Vec<Vec<u8>> = NAMES.iter().map(|n| wire(n)).collect();
    for i in 0..frames {
        let v6 = rng.below(2) == 0;
        let src = source(&mut rng, v6);
        let (mut q, cookie) = base_query(&mut rng, src, &secret);
        // A quarter as built, the rest mutated: bytes (then framed with right checksums),
        // header fields, or the frame itself.
        let raw = match rng.below(8) {
            0 | 1 => false,
            2..=4 => {
                mutate(&mut q, &mut rng, &corpus);
                false
            }
            5 => {
                mutate_header(&mut q, &mut rng);
                false
            }
            _ => true,
        };
        let server: IpAddr = if v6 {
            "2001:db8::1".parse().unwrap()
        } else {
            "198.51.100.1".parse().unwrap()
        };
        // One in 16 from a port no resolver uses (dropped), the rest from ordinary ones.
        let sport = match rng.below(16) {
            0 => [0, 7, 19, 1023][rng.below(4)],
            1 => 53,
            _ => 1024 + rng.below(64_512) as u16,
        };
        let mut f = query_frame(src, server, sport, &q);
        if raw {
            if rng.below(2) == 0 {
                let fix = rng.below(2) == 0;
                mutate_frame(&mut f, &mut rng, fix);
            } else {
                let mut tail = f.split_off(14);
                mutate(&mut tail, &mut rng, &corpus);
                f.extend_from_slice(&tail);
            }
        }
        let vlan = rng.below(4) == 0;
        if vlan {
            f = with_vlan(&f, rng.next_u64() as u16 & 0x0fff);
        }
        let case = Case { v6, vlan, cookie };
        t.frames += 1;
        let (action, out) = fp.test_run(&f).expect("test_run");
        match action {
            XDP_TX => {}
            XDP_PASS => {
                t.pass += 1;
                continue;
            }
            XDP_DROP => {
                t.drop += 1;
                continue;
            }
            other => panic!("action {other} for frame {i} (seed {seed}): {}", hex(&f)),
        }
        let checked = catch_unwind(AssertUnwindSafe(|| check_tx(&f, &out, case.vlan)));
        let Ok((qdns, dns)) = checked else {
            panic!(
                "frame {i} (seed {seed}): XDP_TX output is not a well-formed answer\nin:  {}\nout: {}",
                hex(&f),
                hex(&out)
            );
        };
        t.tx += 1;
        // Without a cookie (whose timestamp is the program's) or a slip, the answer is the slow
        // path's to the same query, byte for byte: counted, and the first differences shown.
        let cookie_sent = opt_options(&dns).is_some_and(|o| o.iter().any(|o| o.0 == OPTION_COOKIE));
        if dns[2] & 0x02 == 0 && dns[3] & 0x0f != 7 && !cookie_sent {
            if respond(&catalog, &qdns, Transport::Udp).as_deref() == Some(&dns[..]) {
                t.same_as_slow_path += 1;
            } else {
                t.differs_from_slow_path += 1;
                if t.differs_from_slow_path <= 3 {
                    eprintln!(
                        "differs from the slow path: frame {}\nanswer {}",
                        hex(&f),
                        hex(&dns)
                    );
                }
            }
        }
        t.tx_tc += u64::from(dns[2] & 0x02 != 0);
        // A limited query with a cookie slips as BADCOOKIE (23: 7 here, 1 in the OPT's TTL).
        t.tx_badcookie += u64::from(dns[3] & 0x0f == 7);
        t.tx_nx += u64::from(dns[3] & 0x0f == 3);
        t.tx_referral += u64::from(dns[2] & 0x04 == 0 && dns[3] & 0x0f == 0 && dns[7] == 0);
        t.tx_v6 += u64::from(case.v6);
        t.tx_vlan += u64::from(case.vlan);
        let k = ["none", "client", "valid", "bad"]
            .iter()
            .position(|&c| c == case.cookie);
        t.tx_cookie[k.unwrap()] += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("XDP fuzz, seed {seed}: {t:?} in {secs:.0} s");
    let c = fp.counters().unwrap();
    eprintln!("counters: {c:?}");
    assert_eq!(c.get("packets"), t.frames, "one outcome counter per frame");
    assert_eq!(c.get("drop_rewrite_failed"), 0);
    // Silence would pass every check above: each kind of answer must have been sent.
    let n = frames / 100;
    assert!(
        t.tx > 10 * n && t.tx_nx > n && t.tx_referral > n / 10,
        "{t:?}"
    );
    assert!(t.tx_v6 > 2 * n && t.tx_vlan > n && t.tx_cookie.iter().all(|&x| x > n / 2));
    assert!(t.pass > n && t.drop > n, "{t:?}");
    // Both kinds of slip (a few dozen in the default run, thousands in CI's).
    assert!(
        t.tx_tc > 0 && (frames < 100_000 || t.tx_badcookie > 0),
        "{t:?}"
    );
    assert!(
        t.same_as_slow_path > 2 * n && t.differs_from_slow_path == 0,
        "{t:?}"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
