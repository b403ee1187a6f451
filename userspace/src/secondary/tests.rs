//! Unit tests of the secondary zones' record sets, configuration and expiry in the catalog.

use std::str::FromStr;

use bytes::Bytes;
use domain::base::Name;
use domain::zonefile::inplace::{Entry, ScannedRecord, Zonefile};

use super::config::{KeyConfig, PrimaryAddr, SecondaryConfig, check, find_key};
use super::notify;
use super::records::RecordSet;
use super::zone::SecondaryZone;
use crate::config::Config;
use crate::metrics::XfrStats;
use crate::zone::{Catalog, NameKey, Zone};

const ZONE: &str = "$ORIGIN sec.test.
$TTL 300
@ IN SOA ns hostmaster 7 3600 600 86400 60
@ IN NS ns
ns IN A 192.0.2.53
www IN A 192.0.2.1
www IN A 192.0.2.2
mail IN MX 10 www
";

fn scan(text: &str) -> Vec<ScannedRecord> {
    let mut z = Zonefile::new();
    z.extend_from_slice(text.as_bytes());
    z.set_origin(Name::<Bytes>::from_str("sec.test").unwrap());
    let mut out = Vec::new();
    while let Some(entry) = z.next_entry().unwrap() {
        if let Entry::Record(r) = entry {
            out.push(r);
        }
    }
    out
}

fn set(text: &str) -> RecordSet {
    let mut s = RecordSet::default();
    for r in scan(text) {
        s.add(&r);
    }
    s
}

#[test]
fn a_record_set_writes_a_zone_the_loader_accepts() {
    let s = set(ZONE);
    assert_eq!(s.count(), 6);
    let soa = s.soa().unwrap();
    assert_eq!(
        (soa.serial, soa.refresh.as_secs(), soa.retry.as_secs()),
        (7, 3600, 600)
    );
    assert_eq!(soa.expire.as_secs(), 86400);
    let zone = Zone::from_text("sec.test.", &s.to_text("sec.test.")).unwrap();
    assert_eq!(zone.serial(), 7);
    assert_eq!(zone.record_count(), 6);
}

#[test]
fn ixfr_deletions_and_additions_apply_and_a_missing_deletion_fails() {
    let mut s = set(ZONE);
    for r in scan("www IN A 192.0.2.2\n") {
        s.delete(&r).unwrap();
    }
    // TTL and owner case don't matter to a deletion (RFC 1995 deletes by RR, not by TTL).
    for r in scan("WWW 5 IN A 192.0.2.1\n") {
        s.delete(&r).unwrap();
    }
    for r in scan("www IN A 203.0.113.9\n@ IN SOA ns hostmaster 8 3600 600 86400 60\n") {
        s.add(&r);
    }
    assert_eq!(s.soa().unwrap().serial, 8);
    assert_eq!(s.count(), 5, "one SOA, the new www");
    let text = s.to_text("sec.test.");
    assert!(
        text.contains("www.sec.test. 3600 IN A 203.0.113.9"),
        "{text}"
    );
    assert!(
        !text.contains("192.0.2.1\n") && !text.contains(" 7 3600"),
        "{text}"
    );
    let err = s.delete(&scan("nope IN A 192.0.2.7\n")[0]).unwrap_err();
    assert!(err.to_string().contains("nope.sec.test."), "{err}");
}

#[test]
fn the_on_disk_copy_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sec.test.zone");
    std::fs::write(&path, set(ZONE).to_text("sec.test.")).unwrap();
    let back = RecordSet::read(&path, "sec.test.").unwrap();
    assert_eq!(back.to_text("sec.test."), set(ZONE).to_text("sec.test."));
    std::fs::write(&path, "www.sec.test. 300 IN A 192.0.2.1\n").unwrap();
    let e = RecordSet::read(&path, "sec.test.").unwrap_err();
    assert!(e.to_string().contains("no SOA"), "{e}");
}

fn key(name: &str, algorithm: &str, secret: &str) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        algorithm: algorithm.into(),
        secret: secret.into(),
    }
}

#[test]
fn config_parses_and_bad_input_gets_a_clear_error() {
    let c: Config = toml::from_str(
        r#"
[[key]]
name = "xfr-key"
algorithm = "hmac-sha256"
secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="

[[zones.secondary]]
origin = "sec.test"
primaries = ["192.0.2.1", "192.0.2.2:5300", "2001:db8::1", "[2001:db8::2]:53"]
key = "XFR-KEY."
file = "/var/lib/rampart/sec.test.zone"
"#,
    )
    .unwrap();
    c.check().unwrap();
    let z = &c.zones.secondary[0];
    let ports: Vec<u16> = z.primaries.iter().map(|p| p.0.port()).collect();
    assert_eq!(ports, [53, 5300, 53, 53]);
    assert!(format!("{:?}", c.key[0]).contains("xfr-key"));
    assert!(
        !format!("{:?}", c.key[0]).contains("c2Vj"),
        "the secret stays out of Debug"
    );
    let e = toml::from_str::<Config>(
        "[[zones.secondary]]\norigin = \"a\"\nprimaries = [\"nope\"]\nfile = \"f\"\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("is not an address"), "{e}");

    let zone = |key: Option<&str>, primaries: Vec<PrimaryAddr>| SecondaryConfig {
        origin: "sec.test".into(),
        primaries,
        key: key.map(String::from),
        file: "f".into(),
    };
    let p = vec![PrimaryAddr("192.0.2.1:53".parse().unwrap())];
    let good = key("k", "hmac-sha256", "c2VjcmV0");
    let err = |zones: &[SecondaryConfig], keys: &[KeyConfig]| {
        format!("{:#}", check(zones, keys).unwrap_err())
    };
    assert!(
        err(
            &[zone(Some("other"), p.clone())],
            std::slice::from_ref(&good)
        )
        .contains("no [[key]] named \"other\"")
    );
    assert!(err(&[zone(None, vec![])], &[]).contains("no primaries"));
    assert!(err(&[zone(None, p.clone()), zone(None, p.clone())], &[]).contains("listed twice"));
    assert!(err(&[], &[key("k", "hmac-md5", "c2VjcmV0")]).contains("unknown algorithm"));
    assert!(err(&[], &[key("k", "hmac-sha256", "***")]).contains("not base64"));
    assert!(err(&[], &[good.clone(), good.clone()]).contains("defined twice"));
    assert!(find_key(&[good], "K.").is_ok());
}

#[test]
fn an_expired_zone_is_servfail_and_not_served_but_a_zone_below_it_is() {
    let parent = Zone::from_text("sec.test.", ZONE).unwrap();
    let child = Zone::from_text(
        "sub.sec.test.",
        "@ 300 SOA ns hostmaster 1 3600 600 86400 60\n@ 300 NS ns\nns 300 A 192.0.2.9\n",
    )
    .unwrap();
    let mut catalog = Catalog::from_zones([parent, child]);
    let k = |s: &str| NameKey::parse(s).unwrap();
    assert!(!catalog.is_expired(k("www.sec.test.").as_wire()));
    catalog.set_expired(&["sec.test.".to_string()]);
    assert!(catalog.is_expired(k("www.sec.test.").as_wire()));
    assert!(catalog.is_expired(k("sec.test.").as_wire()));
    assert!(!catalog.is_expired(k("ns.sub.sec.test.").as_wire()));
    assert!(!catalog.is_expired(k("www.other.test.").as_wire()));
    assert_eq!(catalog.zone_count(), 1, "the expired zone's data is gone");
    // www.sec.test. A, RD clear.
    let mut wire = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    wire.extend_from_slice(b"\x03www\x03sec\x04test\x00\x00\x01\x00\x01");
    let r = crate::respond::respond(&catalog, &wire, crate::wire::Transport::Udp).unwrap();
    assert_eq!(r[3] & 0x0f, 2, "SERVFAIL");
}

/// A NOTIFY for sec.test., signed with `key` if given.
fn notify_message(key: Option<&domain::tsig::Key>) -> Vec<u8> {
    use domain::base::iana::Opcode;
    use domain::base::{MessageBuilder, Rtype};
    let mut msg = MessageBuilder::new_vec();
    msg.header_mut().set_opcode(Opcode::NOTIFY);
    msg.header_mut().set_aa(true);
    msg.header_mut().set_id(7);
    let mut q = msg.question();
    q.push((Name::<Vec<u8>>::from_str("sec.test").unwrap(), Rtype::SOA))
        .unwrap();
    let mut add = q.additional();
    if let Some(k) = key {
        domain::tsig::ClientTransaction::request(k, &mut add, domain::rdata::tsig::Time48::now())
            .unwrap();
    }
    add.finish()
}

#[test]
fn notify_is_taken_from_a_primary_with_the_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        key("xfr-key", "hmac-sha256", "c2VjcmV0LXNlY3JldC1zZWNyZXQ="),
        key("xfr-key", "hmac-sha256", "d3Jvbmctd3Jvbmctd3Jvbmc="),
    ];
    let config = SecondaryConfig {
        origin: "sec.test".into(),
        primaries: vec![PrimaryAddr("192.0.2.1:53".parse().unwrap())],
        key: Some("xfr-key".into()),
        file: dir.path().join("sec.test.zone"),
    };
    let zone =
        std::sync::Arc::new(SecondaryZone::new(&config, &keys[..1], XfrStats::default()).unwrap());
    let status = zone.status();
    assert_eq!(
        (status.serial, status.expired, status.expires),
        (None, false, None)
    );
    let good = find_key(&keys[..1], "xfr-key").unwrap();
    let wrong = find_key(&keys[1..], "xfr-key").unwrap();
    let zones = [zone.clone()];
    let primary = "192.0.2.1:4000".parse().unwrap();
    let rcode = |r: &[u8]| r[3] & 0x0f;

    let r = notify::handle(
        &zones,
        "192.0.2.99:4000".parse().unwrap(),
        &notify_message(Some(&good)),
    )
    .unwrap();
    assert_eq!(
        rcode(&r),
        5,
        "REFUSED from an address that is not a primary"
    );
    let r = notify::handle(&zones, primary, &notify_message(None)).unwrap();
    assert_eq!(rcode(&r), 5, "REFUSED unsigned for a zone with a key");
    let r = notify::handle(&zones, primary, &notify_message(Some(&wrong))).unwrap();
    assert_eq!(rcode(&r), 9, "NOTAUTH for a bad MAC");
    assert_eq!(&r[r.len() - 4..r.len() - 2], &[0, 16], "TSIG error BADSIG");
    assert!(
        !zone.refresh_pending(),
        "nothing refused asks for a refresh"
    );

    let r = notify::handle(&zones, primary, &notify_message(Some(&good))).unwrap();
    assert_eq!(rcode(&r), 0);
    assert_eq!(r[2] & 0xfc, 0x80 | 0x20 | 0x04, "QR, opcode NOTIFY, AA");
    assert!(zone.refresh_pending());
    // Not a NOTIFY for a zone of ours: NOTAUTH. Not a NOTIFY at all: not ours to answer.
    let mut other = notify_message(None);
    other[13] = b'x';
    assert_eq!(rcode(&notify::handle(&zones, primary, &other).unwrap()), 9);
    let mut query = notify_message(None);
    query[2] = 0;
    assert!(notify::handle(&zones, primary, &query).is_none());
}

#[test]
fn a_partial_reload_reads_only_the_zones_named() {
    let dir = tempfile::tempdir().unwrap();
    let zone = |origin: &str, serial: u32| {
        format!(
            "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns hostmaster {serial} 3600 600 86400 60\n@ IN NS ns\nns IN A 192.0.2.53\n"
        )
    };
    let spec = |name: &str| crate::zone::ZoneSpec {
        origin: Some(name.into()),
        path: dir.path().join(format!("{name}.zone")),
    };
    for name in ["a.test", "b.test"] {
        std::fs::write(&spec(name).path, zone(name, 1)).unwrap();
    }
    let first = Catalog::load(&[spec("a.test"), spec("b.test")], None).unwrap();
    for name in ["a.test", "b.test"] {
        std::fs::write(&spec(name).path, zone(name, 2)).unwrap();
    }
    let serials = |c: &Catalog| c.zones().iter().map(|z| z.serial()).collect::<Vec<_>>();
    let (second, errors) = first.reload_some(&[spec("a.test")]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(serials(&second), [2, 1], "b.test's file is not read again");
    std::fs::write(&spec("a.test").path, "broken").unwrap();
    let (third, errors) = second.reload_some(&[spec("a.test")]);
    assert!(!errors.is_empty());
    assert_eq!(
        serials(&third),
        [2, 1],
        "a broken copy keeps the previous version"
    );
}
