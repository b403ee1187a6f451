//! The endpoint's output parsed back: families, label escaping, exact counts.
use std::{
    collections::BTreeMap,
    net::UdpSocket,
    time::{Duration, Instant, SystemTime},
};

use rampart_common::Counter;

use super::*;
use crate::{
    anycast::state::State,
    fastpath::Counters,
    server::{Server, ServerConfig},
    wire::testutil::query_packet,
};

/// One sample of the text format: name, labels (unescaped), value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The text format parsed strictly: any line that is neither a comment nor a well-formed sample
/// panics, so an unescaped quote or newline in a label value fails the test.
fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "one TYPE per family: {name}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect(line);
        let name = line[..name_end].to_string();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        let mut rest = &line[name_end..];
        let mut labels = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                let (key, r) = rest.split_once("=\"").expect(line);
                let mut value = String::new();
                let mut chars = r.char_indices();
                let end = loop {
                    match chars.next().expect(line) {
                        (_, '\\') => match chars.next().expect(line).1 {
                            '\\' => value.push('\\'),
                            '"' => value.push('"'),
                            'n' => value.push('\n'),
                            c => panic!("bad escape \\{c} in {line}"),
                        },
                        (i, '"') => break i,
                        (_, c) => value.push(c),
                    }
                };
                labels.push((key.to_string(), value));
                rest = &r[end + 1..];
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else {
                    rest = rest.strip_prefix('}').expect(line);
                    break;
                }
            }
        }
        let value = rest.strip_prefix(' ').expect(line);
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().expect(line),
        };
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    (samples, types)
}

/// The value of the sample with exactly these labels.
fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (k2, v2))| k == k2 && v == v2)
        })
        .map(|s| s.value)
}

/// The label values and values of one family with one label.
fn by_label(samples: &[Sample], name: &str) -> BTreeMap<String, f64> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .map(|s| {
            assert_eq!(s.labels.len(), 1, "{s:?}");
            (s.labels[0].1.clone(), s.value)
        })
        .collect()
}

fn sources(catalog: Arc<Catalog>) -> Sources {
    Sources {
        pin_dir: None,
        catalog: Box::new(move || catalog.clone()),
        anycast: None,
        slow: SlowStats::default(),
        reloads: ReloadStats::new(),
        xfr: None,
        resolver: None,
    }
}

fn sample_zones() -> Arc<Catalog> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
    Arc::new(Catalog::load(&[], Some(&dir)).unwrap())
}

fn scrape(registry: &Registry) -> Vec<Sample> {
    parse(&render(registry)).0
}

#[test]
fn http_endpoint_serves_the_text_format() {
    let (addr, _thread) = serve("127.0.0.1:0".parse().unwrap(), sources(sample_zones())).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply}");
    assert!(
        reply.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{reply}"
    );
    let body = reply.split_once("\r\n\r\n").unwrap().1;
    let (samples, types) = parse(body);
    assert_eq!(get(&samples, "rampart_zones", &[]), Some(2.0));
    assert_eq!(
        get(&samples, "rampart_zone_serial", &[("zone", "example.com.")]),
        Some(2_024_010_101.0)
    );
    assert_eq!(types["rampart_zones"], "gauge");
    assert_eq!(types["rampart_slow_queries_total"], "counter");
    assert_eq!(types["rampart_slow_response_duration_seconds"], "histogram");
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /nope HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.0 404"), "{reply}");
}

/// A zone name with `"` and `\` in its presentation form comes out escaped once more as a label
/// value, and parses back to the presentation form.
#[test]
fn zone_names_are_escaped() {
    let origin = r#"we\"ird\\name.test."#;
    let text = "$TTL 60\n@ SOA ns hm 7 2 3 4 30\n NS ns\nns A 192.0.2.1\n";
    let zone = crate::zone::Zone::from_text(origin, text).unwrap();
    assert_eq!(zone.origin_key().to_string(), origin);
    let catalog = Arc::new(Catalog::from_zones([zone]));
    let text = render(&registry(sources(catalog)));
    assert!(
        text.contains("\nrampart_zone_serial{zone=\"we\\\\\\\"ird\\\\\\\\name.test.\"} 7\n"),
        "{text}"
    );
    let (samples, _) = parse(&text);
    assert_eq!(
        get(&samples, "rampart_zone_serial", &[("zone", origin)]),
        Some(7.0)
    );
}

/// Outcomes and events are separate families: the outcomes sum to the packets, no event is in
/// them, and every counter but `packets` is in exactly one of the two.
#[test]
fn xdp_outcomes_sum_to_the_packets() {
    let mut values: Vec<(&'static str, u64)> = Counter::NAMED
        .iter()
        .enumerate()
        .map(|(i, (_, name))| (*name, 10 * i as u64 + 1))
        .collect();
    let outcomes: u64 = Counter::NAMED
        .iter()
        .zip(&values)
        .filter(|((c, _), _)| c.is_outcome())
        .map(|(_, (_, v))| v)
        .sum();
    values[Counter::Packets as usize].1 = outcomes;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collect::Xdp::fixed(Counters(values))));
    let (samples, types) = parse(&render(&registry));
    assert_eq!(types["rampart_xdp_outcomes_total"], "counter");
    assert_eq!(types["rampart_xdp_events_total"], "counter");
    let packets = get(&samples, "rampart_xdp_packets_total", &[]).unwrap();
    let by_outcome = by_label(&samples, "rampart_xdp_outcomes_total");
    let by_event = by_label(&samples, "rampart_xdp_events_total");
    assert_eq!(by_outcome.values().sum::<f64>(), packets);
    assert_eq!(packets, outcomes as f64);
    assert_eq!(by_outcome["tx_answer"], 11.0);
    assert_eq!(
        by_event["cookie_valid"],
        10.0 * Counter::CookieValid as u32 as f64 + 1.0
    );
    for (c, name) in Counter::NAMED {
        let (o, e) = (by_outcome.contains_key(name), by_event.contains_key(name));
        match c {
            Counter::Packets => assert!(!o && !e, "packets is a family of its own"),
            c if c.is_outcome() => assert!(o && !e, "{name}: an outcome"),
            _ => assert!(!o && e, "{name}: an event"),
        }
    }
    // No counters (no program): no XDP series at all.
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collect::Xdp::pinned(
        "/nonexistent/rampart-pins".into(),
    )));
    assert_eq!(render(&registry), "");
}

fn udp_ask(client: &UdpSocket, addr: SocketAddr, q: &[u8]) -> Vec<u8> {
    client.send_to(q, addr).unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = client.recv_from(&mut buf).expect("an answer");
    buf[..n].to_vec()
}

fn tcp_ask(stream: &mut TcpStream, q: &[u8]) -> Vec<u8> {
    stream
        .write_all(&[&(q.len() as u16).to_be_bytes()[..], q].concat())
        .unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).unwrap();
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg).unwrap();
    msg
}

/// Waits (5 s at most) until `done` holds for a scrape; returns that scrape.
fn scrape_until(registry: &Registry, done: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let samples = scrape(registry);
        if done(&samples) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A server on loopback counting into the registry returned with it.
fn counted_server(config: ServerConfig) -> (Registry, crate::server::ServerHandle) {
    let s = sources(sample_zones());
    let config = ServerConfig {
        stats: s.slow.clone(),
        ..config
    };
    let registry = registry(s);
    let server =
        Server::start_with(&["127.0.0.1:0".parse().unwrap()], sample_zones(), config).unwrap();
    (registry, server)
}

/// Known queries over real sockets move the slow path's series by exactly what was sent.
#[test]
fn slow_path_counts_transport_rcode_qtype_and_latency() {
    let (registry, server) = counted_server(ServerConfig {
        udp_workers: 2,
        ..ServerConfig::default()
    });
    let addr = server.udp_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let rcode = |r: &[u8]| r[3] & 0xf;
    assert_eq!(
        rcode(&udp_ask(
            &client,
            addr,
            &query_packet(1, 0, "www.example.com", 1, None)
        )),
        0
    );
    assert_eq!(
        rcode(&udp_ask(
            &client,
            addr,
            &query_packet(2, 0, "nope.example.com", 1, None)
        )),
        3
    );
    assert_eq!(
        rcode(&udp_ask(
            &client,
            addr,
            &query_packet(3, 0, "example.com", 15, None)
        )),
        0
    );
    // A private-use type: "other", not a series of its own.
    assert_eq!(
        rcode(&udp_ask(
            &client,
            addr,
            &query_packet(4, 0, "example.com", 65280, None)
        )),
        0
    );
    // No question: FORMERR, qtype "none".
    let mut empty = query_packet(5, 0, "example.com", 1, None);
    empty.truncate(12);
    empty[5] = 0;
    assert_eq!(rcode(&udp_ask(&client, addr, &empty)), 1);
    // NOTIFY (opcode 4): NOTIMP, the echoed question's type.
    assert_eq!(
        rcode(&udp_ask(
            &client,
            addr,
            &query_packet(6, 0x2000, "example.com", 6, None)
        )),
        4
    );
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        rcode(&tcp_ask(
            &mut tcp,
            &query_packet(7, 0, "www.example.com", 28, None)
        )),
        0
    );
    assert_eq!(
        rcode(&tcp_ask(
            &mut tcp,
            &query_packet(8, 0, "example.com", 6, None)
        )),
        0
    );

    // The TCP thread counts after its write: wait for it.
    let samples = scrape_until(&registry, |s| {
        get(s, "rampart_slow_queries_total", &[("transport", "tcp")]) == Some(2.0)
    });
    let queries = by_label(&samples, "rampart_slow_queries_total");
    assert_eq!(queries["udp"], 6.0);
    assert_eq!(queries["tcp"], 2.0);
    let rcodes = by_label(&samples, "rampart_slow_responses_total");
    assert_eq!(rcodes["NOERROR"], 5.0);
    assert_eq!(rcodes["NXDOMAIN"], 1.0);
    assert_eq!(rcodes["FORMERR"], 1.0);
    assert_eq!(rcodes["NOTIMP"], 1.0);
    assert_eq!(rcodes.values().sum::<f64>(), 8.0, "{rcodes:?}");
    let qtypes = by_label(&samples, "rampart_slow_responses_by_qtype_total");
    for (t, n) in [
        ("A", 2.0),
        ("MX", 1.0),
        ("other", 1.0),
        ("none", 1.0),
        ("SOA", 2.0),
        ("AAAA", 1.0),
    ] {
        assert_eq!(qtypes[t], n, "{t}: {qtypes:?}");
    }
    assert_eq!(qtypes.values().sum::<f64>(), 8.0, "{qtypes:?}");
    let h = "rampart_slow_response_duration_seconds";
    for (t, n) in [("udp", 6.0), ("tcp", 2.0)] {
        assert_eq!(
            get(&samples, &format!("{h}_count"), &[("transport", t)]),
            Some(n)
        );
        let inf = [("transport", t), ("le", "+Inf")];
        assert_eq!(get(&samples, &format!("{h}_bucket"), &inf), Some(n));
        let sum = get(&samples, &format!("{h}_sum"), &[("transport", t)]).unwrap();
        assert!(sum > 0.0 && sum < n, "{t}: {sum} s in all");
    }
    // Buckets from 2.5 µs to 2.5 s.
    let bounds: Vec<f64> = samples
        .iter()
        .filter(|s| s.name == format!("{h}_bucket") && s.labels[0].1 == "udp")
        .map(|s| s.labels[1].1.parse().unwrap())
        .collect();
    assert_eq!(bounds.len(), 20, "{bounds:?}");
    assert_eq!(
        (bounds[0], bounds[18], bounds[19]),
        (2.5e-6, 2.5, f64::INFINITY)
    );
    let tcp_conns = by_label(&samples, "rampart_slow_tcp_connections_total");
    assert_eq!(tcp_conns["accepted"], 1.0);
    assert_eq!(
        get(&samples, "rampart_slow_tcp_connections_open", &[]),
        Some(1.0)
    );
    drop(tcp);
    let samples = scrape_until(&registry, |s| {
        get(s, "rampart_slow_tcp_connections_open", &[]) == Some(0.0)
    });
    assert_eq!(
        get(&samples, "rampart_slow_tcp_connections_open", &[]),
        Some(0.0)
    );
    let verdicts = by_label(&samples, "rampart_slow_rate_limit_total");
    assert_eq!(
        verdicts.values().sum::<f64>(),
        0.0,
        "no limits, no verdicts"
    );
    server.stop();
}

/// Connections closed at accept are counted by the limit that closed them.
#[test]
fn tcp_refusals_are_counted() {
    let (registry, server) = counted_server(ServerConfig {
        udp_workers: 1,
        tcp_max_per_source: 2,
        ..ServerConfig::default()
    });
    let addr = server.tcp_addrs()[0];
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let samples = scrape_until(&registry, |s| {
        get(
            s,
            "rampart_slow_tcp_connections_total",
            &[("result", "refused_per_source")],
        ) == Some(1.0)
    });
    let conns = by_label(&samples, "rampart_slow_tcp_connections_total");
    assert_eq!(conns["accepted"], 2.0, "{conns:?}");
    assert_eq!(conns["refused_per_source"], 1.0);
    assert_eq!(conns["refused_total"], 0.0);
    assert_eq!(
        get(&samples, "rampart_slow_tcp_connections_open", &[]),
        Some(2.0)
    );
    drop(held);
    server.stop();
}

/// Sockets-only limits: every UDP answer they look at is counted by verdict, and the answers
/// and drops add up to what the client saw.
#[test]
fn rate_limit_verdicts_are_counted() {
    let rrl = crate::limits::RrlConfig {
        rate: 1,
        slip: 0,
        ..Default::default()
    };
    let (registry, server) = counted_server(ServerConfig {
        udp_workers: 1,
        limits: crate::slow_limits::SlowLimits::new(&rrl).map(Arc::new),
        ..ServerConfig::default()
    });
    let addr = server.udp_addrs()[0];
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for id in 0..20u16 {
        client
            .send_to(&query_packet(id, 0, "www.example.com", 1, None), addr)
            .unwrap();
    }
    client
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut answered = 0;
    let mut buf = [0u8; 2048];
    while client.recv_from(&mut buf).is_ok() {
        answered += 1;
    }
    assert!((1..=2).contains(&answered), "{answered}");
    let samples = scrape_until(&registry, |s| {
        get(s, "rampart_slow_queries_total", &[("transport", "udp")]) == Some(20.0)
    });
    let verdicts = by_label(&samples, "rampart_slow_rate_limit_total");
    assert_eq!(verdicts["answer"], answered as f64);
    assert_eq!(verdicts["drop"], (20 - answered) as f64);
    assert_eq!(verdicts["slip"], 0.0);
    let rcodes = by_label(&samples, "rampart_slow_responses_total");
    assert_eq!(
        rcodes.values().sum::<f64>(),
        answered as f64,
        "drops are no responses"
    );
    server.stop();
}

#[test]
fn reloads_by_result_time_and_errors() {
    let stats = ReloadStats::new();
    let mut registry = Registry::default();
    stats.register(&mut registry);
    let samples = scrape(&registry);
    assert_eq!(
        by_label(&samples, "rampart_reloads_total").len(),
        2,
        "both from the start"
    );
    assert_eq!(
        get(&samples, "rampart_last_reload_timestamp_seconds", &[]),
        Some(0.0)
    );
    stats.load_errors(1);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    stats.reloaded(at, Duration::from_millis(250), 2, ReloadResult::Failed);
    stats.reloaded(
        at + Duration::from_secs(60),
        Duration::from_millis(125),
        0,
        ReloadResult::Ok,
    );
    let samples = scrape(&registry);
    let reloads = by_label(&samples, "rampart_reloads_total");
    assert_eq!((reloads["ok"], reloads["failed"]), (1.0, 1.0));
    assert_eq!(
        get(&samples, "rampart_zone_load_errors_total", &[]),
        Some(3.0)
    );
    assert_eq!(
        get(&samples, "rampart_last_reload_timestamp_seconds", &[]),
        Some(1_700_000_060.0)
    );
    assert_eq!(
        get(&samples, "rampart_last_reload_duration_seconds", &[]),
        Some(0.125)
    );
}

#[test]
fn anycast_state_and_probes() {
    let status = Status {
        state: State::Withdrawn,
        identity: "n1".into(),
        prefixes: vec!["192.0.2.53/32".into()],
        method: crate::config::Method::Device,
        device: "rampart0".into(),
        interval_ms: 100,
        timeout_ms: 200,
        rise: 3,
        fall: 3,
        hold_down_ms: 2000,
        rounds: 9,
        consecutive_ok: 0,
        consecutive_failed: 3,
        probes: vec![crate::anycast::health::ProbeCounters {
            name: "slow-path",
            ok: 6,
            failed: 3,
            ..Default::default()
        }],
        transitions_total: 2,
        transitions: Vec::new(),
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collect::Anycast(Mutex::new(Box::new(
        move || status.clone(),
    )))));
    let text = render(&registry);
    for line in [
        "rampart_anycast_announced 0\n",
        "rampart_anycast_state{state=\"withdrawn\"} 1\n",
        "rampart_anycast_state{state=\"announced\"} 0\n",
        "rampart_anycast_transitions_total 2\n",
        "rampart_health_probes_total{probe=\"slow-path\",result=\"failed\"} 3\n",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
    parse(&text);
}
