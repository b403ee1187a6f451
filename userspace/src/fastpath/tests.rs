//! The XDP program run through BPF_PROG_TEST_RUN (needs root): answers, checksums, pass reasons,
//! and a mutation fuzz in which every XDP_TX output must be a well-formed answer to its query.
use std::net::IpAddr;

use rampart_common::{QTYPE_OTHER, Variant};

use super::probe::{XDP_PASS, XDP_TX, fold, query_frame, sum16};
use super::*;

use crate::wire::testutil::name as wire;

/// www.example.com A 192.0.2.1, owner compressed to the question.
fn sample_table() -> Vec<CompiledAnswer> {
    let mut table = Vec::new();
    for variant in Variant::ALL {
        let mut tail = vec![0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1];
        let mut arcount = 0;
        if variant != Variant::NoEdns {
            let do_bit = if variant == Variant::EdnsDo { 0x80 } else { 0 };
            tail.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, do_bit, 0, 0, 0]);
            arcount = 1;
        }
        table.push(CompiledAnswer {
            qname: wire("www.example.com").into(),
            qtype: 1,
            variant,
            flags: 0x8400,
            ancount: 1,
            nscount: 0,
            arcount,
            tail: tail.into(),
            relocation: None,
            rrl_class: 0x1000_0001,
            derived: 0,
        });
    }
    // A large answer: 40 TXT strings, only in the large slot class.
    let mut tail = Vec::new();
    for i in 0..40u8 {
        tail.extend_from_slice(&[0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 11, 10]);
        tail.extend_from_slice(b"txt-record");
        let last = tail.len() - 1;
        tail[last] = b'0' + (i % 10);
    }
    table.push(CompiledAnswer {
        qname: wire("big.example.com").into(),
        qtype: 16,
        variant: Variant::Edns,
        flags: 0x8400,
        ancount: 40,
        nscount: 0,
        arcount: 1,
        tail: [tail, vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]]
            .concat()
            .into(),
        relocation: None,
        rrl_class: 0x1000_0002,
        derived: 0,
    });
    // "Any other data type" at www: NODATA (SOA in authority), and a marker for TXT, whose
    // answer the fast path may not send, so TXT must not fall through to that NODATA.
    let nodata = |qtype| CompiledAnswer {
        qname: wire("www.example.com").into(),
        qtype,
        variant: Variant::NoEdns,
        flags: 0x8400,
        ancount: 0,
        nscount: 1,
        arcount: 0,
        tail: vec![
            0xc0, 0x10, 0, 6, 0, 1, 0, 0, 0, 60, 0, 24, 0xc0, 0x10, 0xc0, 0x10, 0, 0, 0, 1, 0, 0,
            0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 60,
        ]
        .into(),
        relocation: None,
        rrl_class: 0x1000_0002,
        derived: 0,
    };
    table.push(nodata(QTYPE_OTHER));
    table.push(CompiledAnswer {
        tail: Default::default(),
        ..nodata(16)
    });
    // A tail too big to travel inline but small-slot sized: one TXT string of 90 bytes.
    let mut mid = vec![0xc0, 0x0c, 0, 16, 0, 1, 0, 0, 0, 60, 0, 91, 90];
    mid.extend_from_slice(&[b'm'; 90]);
    table.push(CompiledAnswer {
        qname: wire("mid.example.com").into(),
        qtype: 16,
        variant: Variant::NoEdns,
        flags: 0x8400,
        ancount: 1,
        nscount: 0,
        arcount: 0,
        tail: mid.into(),
        relocation: None,
        rrl_class: 0x1000_0002,
        derived: 0,
    });
    // A name longer than a short key holds.
    table.push(CompiledAnswer {
        qname: wire(LONG_NAME).into(),
        ..table[0].clone()
    });
    table
}

const LONG_NAME: &str =
    "a-rather-long-label-of-forty-bytes-xxxxx.another-label-of-thirty-bytes.example.com";

pub(super) fn query(id: u16, name: &str, qtype: u16, edns: Option<(u16, bool)>) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, edns.is_some() as u8]);
    q.extend_from_slice(&wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    if let Some((size, do_bit)) = edns {
        q.extend_from_slice(&[0, 0, 41]);
        q.extend_from_slice(&size.to_be_bytes());
        q.extend_from_slice(&[0, 0, if do_bit { 0x80 } else { 0 }, 0, 0, 0]);
    }
    q
}

pub(super) fn frame(v6: bool, sport: u16, dns: &[u8]) -> Vec<u8> {
    let (client, server): (IpAddr, IpAddr) = if v6 {
        (
            "2001:db8::2".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        )
    } else {
        (
            "198.51.100.2".parse().unwrap(),
            "198.51.100.1".parse().unwrap(),
        )
    };
    query_frame(client, server, sport, dns)
}

/// A query frame from `src` to the test server address of its family.
pub(super) fn frame_from(src: IpAddr, sport: u16, dns: &[u8]) -> Vec<u8> {
    let server: IpAddr = if src.is_ipv6() {
        "2001:db8::1".parse().unwrap()
    } else {
        "198.51.100.1".parse().unwrap()
    };
    query_frame(src, server, sport, dns)
}

/// The same frame with its UDP checksum field set to `csum`.
fn with_udp_csum(mut f: Vec<u8>, csum: u16) -> Vec<u8> {
    let l4 = if f[12] == 0x86 { 54 } else { 34 };
    f[l4 + 6..l4 + 8].copy_from_slice(&csum.to_be_bytes());
    f
}

/// Check that `f` is the reply to `q` (addresses and ports swapped, lengths and checksums right)
/// and return its DNS payload.
pub(super) fn verify_reply(q: &[u8], f: &[u8]) -> Vec<u8> {
    assert_eq!(&f[0..6], &q[6..12], "destination MAC is the client's");
    assert_eq!(&f[6..12], &q[0..6], "source MAC is ours");
    let (l4, pseudo) = if f[12] == 0x86 {
        assert_eq!(f[21], 64, "hop limit");
        let plen = u16::from_be_bytes([f[18], f[19]]) as usize;
        assert_eq!(f.len(), 54 + plen, "IPv6 payload length matches the frame");
        assert_eq!(&f[22..38], &q[38..54], "source is the node");
        assert_eq!(&f[38..54], &q[22..38], "destination is the client");
        (54, sum16(&f[22..54]) + 17 + plen as u64)
    } else {
        assert_eq!(fold(sum16(&f[14..34])), 0xffff, "IPv4 header checksum");
        let total = u16::from_be_bytes([f[16], f[17]]) as usize;
        assert_eq!(f.len(), 14 + total, "IPv4 total length matches the frame");
        assert_eq!(&f[26..30], &q[30..34], "source is the node");
        assert_eq!(&f[30..34], &q[26..30], "destination is the client");
        (34, sum16(&f[26..34]) + 17 + (total - 20) as u64)
    };
    let udp_len = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize;
    assert_eq!(l4 + udp_len, f.len(), "UDP length");
    assert_eq!(
        &f[l4..l4 + 2],
        &q[l4 + 2..l4 + 4],
        "source port is the query's destination"
    );
    assert_eq!(
        &f[l4 + 2..l4 + 4],
        &q[l4..l4 + 2],
        "destination port is the query's source"
    );
    assert_ne!(
        u16::from_be_bytes([f[l4 + 6], f[l4 + 7]]),
        0,
        "UDP checksum present"
    );
    assert_eq!(fold(pseudo + sum16(&f[l4..])), 0xffff, "UDP checksum");
    f[l4 + 8..].to_vec()
}

pub(super) fn loaded() -> FastPath {
    let table = sample_table();
    let dir = tempfile::tempdir().unwrap();
    // Pinning needs a bpffs; tests run the program without pins.
    let mut fp = FastPath::load_unpinned(Capacity::for_table(&table).unwrap())
        .expect("load (run tests as root)");
    fp.install(&table).unwrap();
    drop(dir);
    fp
}

pub(super) fn run(fp: &FastPath, input: &[u8]) -> (u32, Vec<u8>) {
    fp.test_run(input).expect("test_run")
}

#[test]
fn answers_v4_and_v6_with_client_case_and_valid_checksums() {
    let fp = loaded();
    for v6 in [false, true] {
        for (edns, do_bit) in [
            (None, false),
            (Some((1232, false)), false),
            (Some((4096, true)), true),
        ] {
            let mut q = query(0xbeef, "WwW.ExAmple.COM", 1, edns.map(|(s, _)| (s, do_bit)));
            q[3] |= 0x10; // CD: an authoritative answer clears it (RFC 4035 §3.1.6)
            let f = frame(v6, 40000, &q);
            let (action, out) = run(&fp, &f);
            assert_eq!(action, XDP_TX, "v6={v6} edns={edns:?}");
            let dns = verify_reply(&f, &out);
            assert_eq!(&dns[0..2], &[0xbe, 0xef]);
            assert_eq!(
                u16::from_be_bytes([dns[2], dns[3]]),
                0x8500,
                "QR AA RD, CD clear"
            );
            let qlen = wire("www.example.com").len() + 4;
            assert_eq!(
                &dns[12..12 + qlen],
                &q[12..12 + qlen],
                "question echoed with its case"
            );
            let expected = sample_table()
                .into_iter()
                .find(|a| a.qtype == 1 && (edns.is_some() as u8 + do_bit as u8) == a.variant as u8)
                .unwrap();
            assert_eq!(&dns[12 + qlen..], &expected.tail[..]);
            assert_eq!(u16::from_be_bytes([dns[10], dns[11]]), expected.arcount);
        }
    }
    let c = fp.counters().unwrap();
    assert_eq!(c.get("tx_answer"), 6);
}

#[test]
fn large_answer_respects_client_size() {
    let fp = loaded();
    let f = frame(
        false,
        1234,
        &query(7, "big.example.com", 16, Some((1232, false))),
    );
    let (action, out) = run(&fp, &f);
    assert_eq!(action, XDP_TX);
    assert!(verify_reply(&f, &out).len() > 512);
    // The same answer to a client that only takes 512 bytes goes to the slow path to truncate.
    let (action, _) = run(
        &fp,
        &frame(
            false,
            1234,
            &query(7, "big.example.com", 16, Some((512, false))),
        ),
    );
    assert_eq!(action, XDP_PASS);
    assert_eq!(fp.counters().unwrap().get("pass_too_big"), 1);
}

/// What the program must not answer: the kernel's or the slow path's (passed up), or junk
/// (dropped: responses, impossible source ports, DNS too broken to answer).
#[test]
fn passes_or_drops_what_it_must_not_answer() {
    const XDP_DROP: u32 = 1;
    let fp = loaded();
    let good = query(1, "www.example.com", 1, None);
    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    let mut qr = good.clone();
    qr[2] |= 0x80;
    cases.push(("QR=1", qr, "drop_response"));
    let mut opcode = good.clone();
    opcode[2] |= 0x10; // opcode 2 (STATUS)
    cases.push(("opcode", opcode, "pass_not_query"));
    let mut qd2 = good.clone();
    qd2[5] = 2;
    cases.push(("QDCOUNT=2", qd2, "pass_not_query"));
    let mut rcode = good.clone();
    rcode[3] |= 0x05;
    cases.push(("RCODE in a query", rcode, "pass_not_query"));
    let mut chaos = good.clone();
    let n = chaos.len();
    chaos[n - 1] = 3;
    cases.push(("class CH", chaos, "pass_class"));
    let mut ptr = good[..12].to_vec();
    ptr.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    cases.push(("compression pointer", ptr, "drop_malformed"));
    let mut overrun = good[..12].to_vec();
    overrun.extend_from_slice(&[40, b'a', b'b', 0, 1, 0, 1]);
    cases.push(("label overrun", overrun, "drop_malformed"));
    let mut long = good[..12].to_vec();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'x'; 63]);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    cases.push(("name over 255", long, "drop_malformed"));
    cases.push(("short header", good[..8].to_vec(), "drop_malformed"));
    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    cases.push(("trailing bytes", trailing, "drop_malformed"));
    let mut v1 = query(1, "www.example.com", 1, Some((1232, false)));
    let n = v1.len();
    v1[n - 5] = 1;
    cases.push(("EDNS version 1", v1, "pass_edns"));
    // EDNS options: NSID goes up wherever it sits; a length past the RDATA is malformed; more
    // options than the program scans go up unjudged.
    let with_options = |opts: &[u8]| {
        let mut q = query(1, "www.example.com", 1, Some((1232, false)));
        let n = q.len();
        q[n - 2..].copy_from_slice(&(opts.len() as u16).to_be_bytes());
        q.extend_from_slice(opts);
        q
    };
    cases.push(("NSID", with_options(&[0, 3, 0, 0]), "pass_nsid"));
    let cookie_then_nsid = [&[0, 10, 0, 8][..], &[7; 8], &[0, 3, 0, 0]].concat();
    cases.push(("cookie, NSID", with_options(&cookie_then_nsid), "pass_nsid"));
    cases.push((
        "option overrun",
        with_options(&[0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8]),
        "drop_malformed",
    ));
    cases.push((
        "option header cut",
        with_options(&[0, 10, 0]),
        "drop_malformed",
    ));
    cases.push((
        "seven options",
        with_options(&[0, 12, 0, 0].repeat(7)),
        "pass_edns",
    ));
    cases.push(("miss", query(1, "nope.example.com", 1, None), "pass_miss"));
    for (what, dns, counter) in cases {
        let before = fp.counters().unwrap().get(counter);
        let (action, _) = run(&fp, &frame(false, 5353, &dns));
        let want = if counter.starts_with("drop") {
            XDP_DROP
        } else {
            XDP_PASS
        };
        assert_eq!(action, want, "{what}");
        assert_eq!(
            fp.counters().unwrap().get(counter),
            before + 1,
            "{what} counted as {counter}"
        );
    }
    for port in [0, 7, 19, 464] {
        let (action, _) = run(&fp, &frame(true, port, &good));
        assert_eq!(action, XDP_DROP, "source port {port}");
    }
    assert_eq!(fp.counters().unwrap().get("drop_bad_source_port"), 4);
    for port in [53, 1023, 1024, 65535] {
        assert_eq!(run(&fp, &frame(true, port, &good)).0, XDP_TX, "port {port}");
    }
}

/// Mutate valid queries at random (bytes, lengths, truncation) and require that every frame the
/// program sends is a well-formed answer to the query it came from.
/// A xorshift generator: the same numbers from the same seed, every run.
pub(super) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Change `f` 1 to `most` times: a byte replaced, a bit flipped, cut short or lengthened.
pub(super) fn mutate_frame(f: &mut Vec<u8>, next: &mut impl FnMut() -> u64, most: u64) {
    for _ in 0..1 + next() % most {
        let pos = (next() as usize) % f.len();
        match next() % 4 {
            0 => f[pos] = next() as u8,
            1 => f[pos] ^= 1 << (next() % 8),
            // PROG_TEST_RUN needs at least an Ethernet header.
            2 => f.truncate(pos.max(14)),
            _ => f.extend_from_slice(&[next() as u8; 3]),
        }
    }
}

#[test]
fn fuzz_every_tx_is_a_well_formed_answer() {
    let fp = loaded();
    let mut next = xorshift(0x9e3779b97f4a7c15);
    let seeds = [
        query(1, "www.example.com", 1, None),
        query(2, "WWW.example.com", 1, Some((1232, true))),
        query(3, "big.example.com", 16, Some((4096, false))),
    ];
    let (mut tx, mut total) = (0, 0);
    for i in 0..20_000 {
        let v6 = i % 2 == 0;
        let mut f = frame(v6, 1000 + i as u16, &seeds[i % seeds.len()]);
        mutate_frame(&mut f, &mut next, 4);
        total += 1;
        let (action, out) = run(&fp, &f);
        if action != XDP_TX {
            assert!(
                action == XDP_PASS || action == 1,
                "unexpected action {action}"
            );
            continue;
        }
        tx += 1;
        let dns = verify_reply(&f, &out);
        let l4 = if f[12] == 0x86 { 54 } else { 34 };
        let qdns = &f[l4 + 8..];
        let msg = hickory_proto::op::Message::from_vec(&dns).expect("XDP_TX output parses as DNS");
        assert_eq!(&dns[0..2], &qdns[0..2], "ID echoed");
        assert!(msg.header().message_type() == hickory_proto::op::MessageType::Response);
        let q = hickory_proto::op::Message::from_vec(&qdns[..qdns.len().min(dns.len())]).ok();
        if let Some(q) = q {
            assert_eq!(q.queries().len(), 1);
            assert_eq!(
                msg.queries()[0].name().to_ascii().to_lowercase(),
                q.queries()[0].name().to_ascii().to_lowercase()
            );
            assert_eq!(msg.queries()[0].query_type(), q.queries()[0].query_type());
        }
    }
    eprintln!("fuzz: {tx} of {total} mutated frames answered, all well-formed");
    assert_eq!(fp.counters().unwrap().get("drop_rewrite_failed"), 0);
    // Every frame ended in exactly one outcome counter: that is what `packets` is made of.
    assert_eq!(fp.counters().unwrap().get("packets"), total as u64);
    assert!(tx > 0, "the fuzz never reached the answer path");
}

#[test]
fn vlan_tagged_query_is_answered_with_its_tag() {
    let fp = loaded();
    let plain = frame(false, 999, &query(9, "www.example.com", 1, None));
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
    tagged.extend_from_slice(&plain[12..]);
    let (action, out) = run(&fp, &tagged);
    assert_eq!(action, XDP_TX);
    assert_eq!(&out[12..16], &[0x81, 0x00, 0x00, 0x2a], "tag kept");
    let mut untagged = out[..12].to_vec();
    untagged.extend_from_slice(&out[16..]);
    verify_reply(&plain, &untagged);
}

/// The five answer arrays' sizes `capacity` gives, as [`generation::slot_sizes`] reads them.
fn array_sizes(capacity: &Capacity) -> Vec<Option<u32>> {
    let c = capacity;
    [
        c.records,
        c.index_buckets,
        c.names,
        c.tails_small,
        c.tails_large,
    ]
    .map(Some)
    .to_vec()
}

/// The sizes of the live generation's arrays, and of the idle slot's.
fn live_sizes(fp: &FastPath) -> Option<Vec<Option<u32>>> {
    generation::slot_sizes(&fp.ebpf, fp.generation).ok()
}

fn idle_sizes(fp: &FastPath) -> Vec<Option<u32>> {
    generation::slot_sizes(&fp.ebpf, fp.generation ^ 1).unwrap()
}

/// Every install makes arrays of the sizes fixed at load (the inner templates': the verifier
/// inlines lookups only then), and once it has flipped, the old generation's arrays are gone
/// from the program's maps: one generation is resident. A table that outgrows the sizes turns
/// the fast path off, with the reason.
#[test]
fn installs_use_the_load_sizes_and_free_the_old_ones() {
    let big = many_zones(400);
    let capacity = Capacity::for_table(&big).unwrap();
    let sizes = Some(array_sizes(&capacity));
    let mut fp = FastPath::load_unpinned(capacity).unwrap();
    let www = frame(false, 999, &query(9, "www.example.com", 1, None));
    for round in 0..2 {
        fp.install(&sample_table()).unwrap();
        assert_eq!(
            live_sizes(&fp),
            sizes,
            "round {round}: the small table's arrays"
        );
        assert_eq!(
            idle_sizes(&fp),
            [None; 5],
            "round {round}: the old generation freed"
        );
        assert_eq!(run(&fp, &www).0, XDP_TX, "round {round}");
        fp.install(&big).unwrap();
        assert_eq!(
            live_sizes(&fp),
            sizes,
            "round {round}: the big table's arrays"
        );
        assert_eq!(
            idle_sizes(&fp),
            [None; 5],
            "round {round}: the old generation freed"
        );
        for i in [0, 399] {
            let f = frame(
                false,
                4242,
                &query(i, &format!("www.zone{i}.example"), 1, None),
            );
            assert_eq!(run(&fp, &f).0, XDP_TX, "round {round}: zone{i}");
        }
        assert_eq!(run(&fp, &www).0, XDP_PASS, "round {round}: old zones gone");
    }
    // Loaded for the sample only: the big table doesn't fit, and nothing is answered from XDP
    // (the slow path serves the new zones) rather than the old zones.
    let mut small = loaded();
    let err = small.install(&big).unwrap_err().to_string();
    assert!(
        err.contains("exceed the maps sized at start")
            && err.contains("fast path off until restart"),
        "{err}"
    );
    assert_eq!(run(&small, &www).0, XDP_PASS, "fast path off");
}

#[test]
fn new_generation_replaces_the_old_one_whole() {
    let mut fp = loaded();
    let q = frame(false, 999, &query(9, "www.example.com", 1, None));
    assert_eq!(run(&fp, &q).0, XDP_TX);
    let mut table = sample_table();
    table.retain(|a| *a.qname == *wire("big.example.com"));
    table[0].qname = wire("other.example.com").into();
    let installed = fp.install(&table).unwrap();
    assert_eq!(installed.answers, 1);
    assert_eq!(run(&fp, &q).0, XDP_PASS, "old generation's answer gone");
    let q2 = frame(
        false,
        999,
        &query(9, "OTHER.example.com", 16, Some((1232, false))),
    );
    assert_eq!(run(&fp, &q2).0, XDP_TX);
    fp.install(&sample_table()).unwrap();
    assert_eq!(run(&fp, &q).0, XDP_TX, "and back");
    assert_eq!(run(&fp, &q2).0, XDP_PASS);
}

#[test]
fn other_types_get_the_names_shared_answer_but_never_meta_types_or_markers() {
    let fp = loaded();
    let f = frame(false, 999, &query(5, "www.EXAMPLE.com", 15, None));
    let (action, out) = run(&fp, &f);
    assert_eq!(action, XDP_TX, "MX at www: NODATA from the shared entry");
    let dns = verify_reply(&f, &out);
    assert_eq!(u16::from_be_bytes([dns[2], dns[3]]), 0x8500);
    assert_eq!(&dns[4..12], &[0, 1, 0, 0, 0, 1, 0, 0]);
    assert_eq!(fp.counters().unwrap().get("tx_nodata"), 1);
    for (qtype, counter) in [
        (16, "pass_too_big"),
        (255, "pass_miss"),
        (252, "pass_miss"),
        (0, "pass_miss"),
    ] {
        let before = fp.counters().unwrap().get(counter);
        let (action, _) = run(
            &fp,
            &frame(false, 999, &query(5, "www.example.com", qtype, None)),
        );
        assert_eq!(action, XDP_PASS, "qtype {qtype}");
        assert_eq!(
            fp.counters().unwrap().get(counter),
            before + 1,
            "qtype {qtype}"
        );
    }
}

#[test]
fn long_names_are_answered_from_the_long_map() {
    let fp = loaded();
    assert!(wire(LONG_NAME).len() > rampart_common::SHORT_NAME_LEN);
    let upper = LONG_NAME.to_ascii_uppercase();
    let f = frame(true, 999, &query(5, &upper, 1, None));
    let (action, out) = run(&fp, &f);
    assert_eq!(action, XDP_TX);
    let dns = verify_reply(&f, &out);
    assert_eq!(
        &dns[12..12 + wire(&upper).len()],
        &wire(&upper)[..],
        "case kept"
    );
}

/// The table of `n` small zones `zone{i}.example`, each with `www` A 203.0.113.(i % 250 + 1).
fn many_zones(n: usize) -> Vec<CompiledAnswer> {
    use crate::zone::{Catalog, Zone};
    let zones = (0..n).map(|i| {
        let text = format!(
            "$TTL 300\n@ SOA ns1 hostmaster {i} 7200 3600 1209600 300\n NS ns1\nns1 A 192.0.2.1\nwww A 203.0.113.{}\n",
            i % 250 + 1
        );
        Zone::from_text(&format!("zone{i}.example."), &text).unwrap()
    });
    crate::compile::compile(&Catalog::from_zones(zones))
}

/// Hundreds of zones compile into one table and every one of them answers from the driver.
#[test]
fn three_hundred_zones_answer_from_the_fast_path() {
    let table = many_zones(300);
    let mut fp = FastPath::load_unpinned(Capacity::for_table(&table).unwrap()).unwrap();
    fp.install(&table).unwrap();
    for i in [0, 150, 299] {
        let f = frame(
            false,
            4242,
            &query(i, &format!("WWW.zone{i}.example"), 1, None),
        );
        let (action, out) = run(&fp, &f);
        assert_eq!(action, XDP_TX, "zone{i}");
        let dns = verify_reply(&f, &out);
        let a = u8::try_from(i % 250 + 1).unwrap();
        assert_eq!(&dns[dns.len() - 4..], &[203, 0, 113, a]);
    }
}

#[test]
fn queries_with_a_bad_udp_checksum_go_to_the_kernel() {
    let fp = loaded();
    let q = query(3, "www.example.com", 1, Some((1232, false)));
    for v6 in [false, true] {
        let good = frame(v6, 5300, &q);
        let l4 = if v6 { 54 } else { 34 };
        let stored = u16::from_be_bytes([good[l4 + 6], good[l4 + 7]]);
        let (action, _) = run(&fp, &with_udp_csum(good.clone(), stored ^ 0x0100));
        assert_eq!(action, XDP_PASS, "v6={v6}: corrupted checksum");
        let mut flipped = good.clone();
        flipped[l4 + 8 + 13] ^= 0x20; // "www" -> "Www": still a valid query, another sum
        assert_eq!(run(&fp, &flipped).0, XDP_PASS, "v6={v6}: corrupted payload");
        let (action, _) = run(&fp, &with_udp_csum(good, 0));
        assert_eq!(
            action,
            if v6 { XDP_PASS } else { XDP_TX },
            "v6={v6}: zero checksum"
        );
    }
    assert_eq!(fp.counters().unwrap().get("pass_bad_checksum"), 5);
    // With EDNS options (a client cookie, RFC 7873) the datagram is summed by the helper path.
    let mut q = query(4, "www.example.com", 1, Some((1232, false)));
    let n = q.len();
    q[n - 2..].copy_from_slice(&12u16.to_be_bytes());
    q.extend_from_slice(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]);
    for v6 in [false, true] {
        let good = frame(v6, 5301, &q);
        assert_eq!(run(&fp, &good).0, XDP_TX, "v6={v6}: cookie query");
        let l4 = if v6 { 54 } else { 34 };
        let stored = u16::from_be_bytes([good[l4 + 6], good[l4 + 7]]);
        assert_eq!(
            run(&fp, &with_udp_csum(good, stored ^ 0x0010)).0,
            XDP_PASS,
            "v6={v6}"
        );
    }
    assert_eq!(fp.counters().unwrap().get("pass_bad_checksum"), 7);
    // Six options (padding, cookie, unknown ...) are scanned and ignored: still answered.
    let mut q = query(5, "www.example.com", 1, Some((1232, false)));
    let opts = [
        [0, 12, 0, 2, 0, 0].repeat(4),
        vec![0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8],
        vec![0xfd, 0xe9, 0, 1, 9],
    ]
    .concat();
    let n = q.len();
    q[n - 2..].copy_from_slice(&(opts.len() as u16).to_be_bytes());
    q.extend_from_slice(&opts);
    assert_eq!(run(&fp, &frame(false, 5302, &q)).0, XDP_TX, "six options");
}

/// Each tail class (inline in the value, small slot, large slot) reaches the wire intact.
#[test]
fn every_tail_class_is_copied_whole() {
    let fp = loaded();
    let table = sample_table();
    for (name, qtype, edns) in [
        ("www.example.com", 1, None),
        ("mid.example.com", 16, None),
        ("big.example.com", 16, Some((4096, false))),
    ] {
        let f = frame(false, 777, &query(1, name, qtype, edns));
        let (action, out) = run(&fp, &f);
        assert_eq!(action, XDP_TX, "{name}");
        let dns = verify_reply(&f, &out);
        let qlen = wire(name).len() + 4;
        let want = table
            .iter()
            .find(|a| {
                *a.qname == *wire(name)
                    && a.qtype == qtype
                    && (a.variant as u8 == edns.is_some() as u8)
            })
            .unwrap();
        assert_eq!(&dns[12 + qlen..], &want.tail[..], "{name}");
    }
    let (i, s, l) = (
        rampart_common::TAIL_INLINE,
        rampart_common::TAIL_SMALL,
        rampart_common::TAIL_LARGE,
    );
    let lens: Vec<usize> = ["www", "mid", "big"]
        .iter()
        .map(|n| {
            table
                .iter()
                .find(|a| *a.qname == *wire(&format!("{n}.example.com")))
                .unwrap()
                .tail
                .len()
        })
        .collect();
    assert!(
        lens[0] <= i && lens[1] > i && lens[1] <= s && lens[2] > s && lens[2] <= l,
        "{lens:?}"
    );
}

/// The example zones (`zones/`) as the slow path's catalog and installed in a loaded program.
fn example_zones_installed() -> (crate::zone::Catalog, FastPath) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
    let catalog = crate::zone::Catalog::load(&[], Some(&dir)).unwrap();
    let table = crate::compile::compile(&catalog);
    let mut fp = FastPath::load_unpinned(Capacity::for_table(&table).unwrap()).unwrap();
    fp.install(&table).unwrap();
    (catalog, fp)
}

/// The in-kernel fast/slow invariant on the example zones: for existing names, missing names
/// (NXDOMAIN from the closest encloser), names below a cut (the cut's referral, relocated) and
/// along the SOA's MNAME/RNAME, the program either passes the query up or sends exactly the
/// slow path's bytes.
#[test]
fn xdp_answers_are_the_slow_paths_bytes_nxdomain_included() {
    use crate::{respond::respond, wire::Transport};
    let (catalog, fp) = example_zones_installed();
    let names = [
        "www.example.com",
        "WWW.Example.COM",
        "nope.example.com",
        "a.b.nope.EXAMPLE.com",
        "x.www.example.com",
        "b.example.com",
        "zz.b.example.com",
        "ns1.sub.example.com",
        "x.sub.example.com",
        "Host.SUB.example.com",
        "a.b.sub.example.com",
        "long-label-below.x.y.sub.example.com",
        "x.ns1.sub.example.com",
        "hostmaster.example.com",
        "x.ns1.example.com",
        "nope.example.net",
        "deep.er.nope.example.net",
        "example.org",
        "x.alias.example.com",
    ];
    let (mut tx, mut nx, mut passed, mut referrals) = (0, 0, 0, 0);
    for (i, name) in names.iter().enumerate() {
        for (qtype, edns) in [
            (1u16, None),
            (28, Some((1232, false))),
            (15, Some((1232, true))),
        ] {
            let q = query(0x100 + i as u16, name, qtype, edns);
            let f = frame(i % 2 == 1, 2000 + i as u16, &q);
            let (action, out) = run(&fp, &f);
            if action == XDP_PASS {
                passed += 1;
                continue;
            }
            assert_eq!(action, XDP_TX, "{name}");
            let dns = verify_reply(&f, &out);
            let slow = respond(&catalog, &q, Transport::Udp).expect("the slow path answers");
            assert_eq!(dns, slow, "{name} {qtype} {edns:?}: fast and slow bytes");
            tx += 1;
            nx += usize::from(dns[3] & 0xf == 3);
            // AA clear, NOERROR, no answer: a referral.
            referrals += usize::from(dns[2] & 0x04 == 0 && dns[3] & 0xf == 0 && dns[7] == 0);
        }
    }
    let c = fp.counters().unwrap();
    assert!(
        nx >= 6 && c.get("tx_nxdomain") as usize == nx,
        "nx={nx} {c:?}"
    );
    assert!(tx > nx && passed > 0, "tx={tx} passed={passed}");
    // Every variant of the four names below sub.example.com's cut, off the way to its glue.
    assert!(
        referrals == 12 && c.get("tx_referral") as usize == referrals,
        "referrals={referrals} {c:?}"
    );
    // What must not come from the walk: the glue's owner and below it (the slow path compresses
    // the owner against the query name), the MNAME/RNAME chain, other zones.
    for name in [
        "ns1.sub.example.com",
        "x.ns1.sub.example.com",
        "hostmaster.example.com",
        "x.ns1.example.com",
        "example.org",
    ] {
        let f = frame(false, 999, &query(1, name, 1, None));
        assert_eq!(run(&fp, &f).0, XDP_PASS, "{name}");
    }
}

/// The question name is read from the packet a word at a time (`packet::name_word`): names whose
/// last word holds 1..8 of their bytes, capitals in it, without EDNS (the question ends the
/// frame: a last word of under four bytes is read back from the class) and with: every one is
/// answered, with the slow path's bytes (a word read wrong hashes or sums wrong: a miss, or a
/// checksum the program rejects).
#[test]
fn names_read_in_place_at_every_last_word_length() {
    use crate::{respond::respond, wire::Transport};
    let (catalog, fp) = example_zones_installed();
    let mut rests = std::collections::BTreeSet::new();
    for name in [
        "MiXeD.CaSe.EXAMPLE.COM",
        "WWW.example.COM",
        "Mail.Example.COM",
        "ALIAS2.example.COM",
        "Example.COM",
        "SipServer.example.COM",
        "Alias.example.COM",
    ] {
        rests.insert((wire(name).len() - 1) % 8 + 1);
        for edns in [None, Some((1232, false))] {
            let q = query(7, name, 1, edns);
            let f = frame(false, 4242, &q);
            let (action, out) = run(&fp, &f);
            assert_eq!(action, XDP_TX, "{name} {edns:?}");
            let dns = verify_reply(&f, &out);
            let slow = respond(&catalog, &q, Transport::Udp).expect("the slow path answers");
            assert_eq!(dns, slow, "{name} {edns:?}: fast and slow bytes");
        }
    }
    assert_eq!(rests.len(), 7, "last-word lengths covered: {rests:?}");
}

/// The verifier walks at most 1M instructions per program; the main program runs close to it
/// (see KeyBuf::launder). Fail early, with the count, when a change eats the last of the
/// headroom, rather than when the kernel refuses the program.
#[test]
fn verifier_headroom() {
    let fp = loaded();
    for name in [
        PROGRAM_NAME,
        rampart_common::PROGRAM_COOKIE,
        rampart_common::PROGRAM_CACHE,
    ] {
        let prog: &Xdp = fp.ebpf.program(name).unwrap().try_into().unwrap();
        let info = prog.info().unwrap();
        let n = (info.verified_instruction_count())
            .expect("the kernel reports no verified instruction count: the headroom is unknown");
        eprintln!("{name}: {n} instructions verified");
        assert!(n < 900_000, "{name}: {n} of the verifier's 1M");
    }
}

/// The slow path's catalog follows the program's generation word: one staged is served from the
/// install's flip on and not before, in either slot, and settling after the flip lets the old
/// one go; one swapped in with `replace` at once, and a flip without staging keeps it.
#[test]
fn slow_path_catalog_flips_with_the_generation_word() {
    use crate::{live_catalog::SharedCatalog, zone::Catalog, zone::Zone};
    let catalog = |serial: u32| {
        let text = format!("@ 300 SOA ns hm {serial} 1 1 1 1\n@ 300 NS ns\nns 300 A 192.0.2.1\n");
        let zone = Zone::from_bytes_in("t.test.", text.as_bytes(), std::path::Path::new("/none"));
        Arc::new(Catalog::from_zones([zone.unwrap()]))
    };
    let (a, b, c) = (catalog(1), catalog(2), catalog(3));
    let served = |shared: &SharedCatalog, want: &Arc<Catalog>| Arc::ptr_eq(&shared.get(), want);
    let mut fp = loaded();
    let shared = SharedCatalog::new(a.clone());
    shared.follow(fp.generation_word().unwrap());
    assert!(served(&shared, &a));
    for (old, new) in [(&a, &b), (&b, &c)] {
        shared.stage(new.clone());
        assert!(served(&shared, old), "staged: not served before the flip");
        fp.install(&sample_table()).unwrap();
        assert!(served(&shared, new), "served from the flip on");
        drop(shared.settle());
        assert!(served(&shared, new), "settled: still the new zones");
        assert_eq!(Arc::strong_count(old), 1, "settled: the old zones let go");
    }
    shared.replace(a.clone());
    assert!(served(&shared, &a), "replace: at once");
    fp.install(&sample_table()).unwrap();
    assert!(served(&shared, &a), "a flip without staging keeps it");
}
