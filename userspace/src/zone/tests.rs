use super::*;
use std::io::Write as _;

const MINI: &str = "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\nns A 192.0.2.1\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path
}

fn load_err(origin: &str, text: &str) -> Vec<String> {
    Zone::from_text(origin, text).expect_err("zone should fail")
}

fn key(s: &str) -> NameKey {
    NameKey::parse(s).unwrap()
}

/// The allocation-free canonical order agrees with comparing label lists from the root
/// (RFC 4034 §6.1): a label that is a prefix of another, more or fewer labels, octets
/// above 0x7f and zero octets inside labels.
#[test]
fn canonical_order_compares_labels_from_the_root() {
    let names: Vec<&[u8]> = vec![
        b"\x00",
        b"\x01a\x00",
        b"\x02aa\x00",
        b"\x01b\x00",
        b"\x01a\x01b\x00",
        b"\x01b\x01a\x00",
        b"\x02ab\x01a\x00",
        b"\x01\x00\x01a\x00",
        b"\x01\xff\x01a\x00",
        b"\x03a\x00b\x01a\x00",
        b"\x01z\x02aa\x00",
    ];
    let reference = |a: &[u8], b: &[u8]| {
        let (la, lb) = (labels(a), labels(b));
        let (ra, rb) = (la.iter().rev(), lb.iter().rev());
        ra.cmp(rb)
    };
    for a in &names {
        for b in &names {
            assert_eq!(canonical_cmp(a, b), reference(a, b), "{a:?} {b:?}");
        }
    }
}

#[test]
fn name_keys_are_lowercase_wire() {
    let k = key("WWW.Example.COM.");
    assert_eq!(k.as_wire(), b"\x03www\x07example\x03com\x00");
    assert_eq!(k.to_string(), "www.example.com.");
    assert_eq!(k.label_count(), 3);
    assert_eq!(k.parent().unwrap(), key("example.com."));
    assert!(k.is_subdomain_of(&key("EXAMPLE.com.")));
    assert!(!key("www.notexample.com.").is_subdomain_of(&key("example.com.")));
    assert!(k.is_subdomain_of(&NameKey::root()));
    assert_eq!(NameKey::root().to_string(), ".");
    // Escapes: a dot inside a label, and a decimal escape.
    let e = key("a\\.b.c\\032d.");
    assert_eq!(e.as_wire(), b"\x03a.b\x03c d\x00");
    assert_eq!(e.to_string(), "a\\.b.c\\032d.");
    assert!(NameKey::from_wire(b"\x03abc").is_none());
    assert!(NameKey::from_wire(b"\xc0\x0c").is_none());
    // RFC 4034 §6.1 order.
    let mut v = [
        key("z.example."),
        key("a.example."),
        key("example."),
        key("yljkjljk.a.example."),
    ];
    v.sort();
    let names: Vec<String> = v.iter().map(|k| k.to_string()).collect();
    assert_eq!(
        names,
        [
            "example.",
            "a.example.",
            "yljkjljk.a.example.",
            "z.example."
        ]
    );
}

#[test]
fn sample_zone_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
    let cat = Catalog::load(&[], Some(&dir)).unwrap();
    assert_eq!(cat.zone_count(), 2);
    let z = cat
        .find_zone(key("deep.www.example.com.").as_wire())
        .unwrap();
    assert_eq!(z.origin_key(), &key("example.com."));
    assert_eq!(z.serial(), 2024010101);
    // Mixed case kept in data, found lowercased.
    let www = z.node(key("www.example.com.").as_wire()).unwrap();
    assert_eq!(www.name().to_string(), "WWW.example.com.");
    assert_eq!(www.rrsets().len(), 2);
    assert!(
        z.node(key("b.example.com.").as_wire())
            .unwrap()
            .is_empty_non_terminal()
    );
    assert!(z.node(key("sub.example.com.").as_wire()).unwrap().is_cut());
    assert!(
        z.node(key("ns1.sub.example.com.").as_wire())
            .unwrap()
            .is_occluded()
    );
    assert!(cat.warnings().is_empty(), "{:?}", cat.warnings());
}

#[test]
fn origin_from_file_name_or_soa() {
    let dir = tempfile::tempdir().unwrap();
    // No .zone suffix, no $ORIGIN: the SOA owner (absolute) decides.
    let p = write(
        dir.path(),
        "db.foo",
        "foo.test. 300 IN SOA ns.foo.test. h.foo.test. 1 2 3 4 5\nfoo.test. NS ns.foo.test.\n",
    );
    let (z, _) = Zone::load(&ZoneSpec {
        origin: None,
        path: p,
    })
    .unwrap();
    assert_eq!(z.origin_key(), &key("foo.test."));
    // File name gives the initial origin for relative names.
    let p = write(dir.path(), "bar.test.zone", MINI);
    let (z, _) = Zone::load(&ZoneSpec::parse(p.to_str().unwrap())).unwrap();
    assert_eq!(z.origin_key(), &key("bar.test."));
    assert!(z.node(key("ns.bar.test.").as_wire()).is_some());
    // ORIGIN=FILE wins.
    let arg = format!("other.test={}", p.display());
    let (z, _) = Zone::load(&ZoneSpec::parse(&arg)).unwrap();
    assert_eq!(z.origin_key(), &key("other.test."));
}

#[test]
fn syntax_errors_have_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\n\nns A 192.0.2.1\nbad A 300.1.2.3\n";
    let p = write(dir.path(), "t.test.zone", text);
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: p.clone(),
    })
    .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{}:6: ", p.display())),
        "{errs:?}"
    );
    // Missing RDATA: the scanner has read past the line feed; still line 5.
    let p = write(
        dir.path(),
        "u.test.zone",
        "$TTL 300\n@ SOA ns hm 1 2 3 4 60\n  NS ns\n\nns A\nx A 192.0.2.1\n",
    );
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: p.clone(),
    })
    .unwrap_err();
    assert!(
        errs[0].starts_with(&format!("{}:5: ", p.display())),
        "{errs:?}"
    );
    // Inside parentheses: the line of the bad token.
    let p = write(
        dir.path(),
        "v.test.zone",
        "$TTL 300\n@ SOA ns hm (\n 1 2\n 3 x4\n 60 )\n  NS ns\n",
    );
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: p.clone(),
    })
    .unwrap_err();
    assert!(
        errs[0].starts_with(&format!("{}:4: ", p.display())),
        "{errs:?}"
    );
}

/// The builder takes the records in chunks while the parser reads on: an SOA (the apex)
/// several chunks in, and messages from late chunks and an `$INCLUDE`d file, come out as
/// from a whole-file build.
#[test]
fn pipelined_load_finds_a_late_apex_and_places_late_messages() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2 * PIPELINE_CHUNK + 10;
    let mut text = String::from("$ORIGIN big.test.\n$TTL 300\n");
    for i in 0..n {
        text.push_str(&format!("h{i} A 192.0.2.{}\n", i % 250 + 1));
    }
    text.push_str("@ SOA ns hm 1 2 3 4 60\n@ NS ns\nns A 192.0.2.53\n");
    let zone_text = text.clone();
    let path = write(dir.path(), "big.test.zone", &zone_text);
    let spec = ZoneSpec { origin: None, path };
    let (zone, warnings) = Zone::load(&spec).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(zone.origin_key(), &key("big.test."));
    assert_eq!((zone.node_count(), zone.record_count()), (n + 2, n + 3));
    let last = format!("h{}.big.test.", n - 1);
    assert!(zone.node(key(&last).as_wire()).is_some());
    // Errors in a late chunk and in an included file keep their file and line.
    write(
        dir.path(),
        "more",
        "ok A 192.0.2.1\nout.other. A 192.0.2.2\n",
    );
    text.push_str("x.other. A 192.0.2.9\n$INCLUDE more\n");
    let path = write(dir.path(), "big.test.zone", &text);
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: path.clone(),
    })
    .unwrap_err();
    let more = dir.path().join("more");
    assert_eq!(
        errs,
        [
            format!(
                "{}:{}: out-of-zone data: x.other. is not in zone big.test.",
                path.display(),
                n + 6
            ),
            format!(
                "{}:2: out-of-zone data: out.other. is not in zone big.test.",
                more.display()
            ),
        ]
    );
    // No SOA anywhere, in any chunk.
    let no_soa: String = (0..n).map(|i| format!("h{i} A 192.0.2.1\n")).collect();
    let path = write(dir.path(), "big.test.zone", &no_soa);
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: path.clone(),
    })
    .unwrap_err();
    assert_eq!(
        errs,
        [format!("{}:1: zone has no SOA record", path.display())]
    );
}

/// Found by the zone parser fuzzer: a TXT string inside a parenthesis the file never closes
/// made the `domain` scanner index past its buffer (`rampart check` and a reload panicked).
#[test]
fn entry_cut_short_by_the_end_of_the_file_is_an_error_not_a_panic() {
    for (tail, what) in [
        ("t TXT ( \"a\"\n", "a parenthesis"),
        ("t TXT ( \"a\" \n\n", "a parenthesis"),
        ("t TXT ( \"a\"", "a parenthesis"),
        ("t TXT \"no end\nu A 192.0.2.1\n", "a quoted string"),
    ] {
        let text = format!("{MINI}{tail}");
        let errors = load_err("t.", &text);
        assert_eq!(
            errors,
            [format!(
                "<t.>:5: {what} opened in this entry is never closed (the file ends first)"
            )],
            "{tail:?}"
        );
    }
}

/// Found by the zone parser fuzzer: `www.example..` as an NS target was served as an NS
/// record whose RDATA no client parses (a name with an empty label inside, RDLENGTH past
/// its end). NSD and Knot reject such names; escaped dots are still fine.
#[test]
fn names_with_an_empty_label_are_rejected() {
    for (line, rr) in [
        ("deleg NS www.example..", "NS"),
        ("x CNAME a..b", "CNAME"),
        ("m MX 10 mail..example.", "MX"),
        ("s SRV 0 0 53 ns..example.", "SRV"),
        ("y.. A 192.0.2.3", "owner"),
    ] {
        let errors = load_err("t.", &format!("{MINI}{line}\n"));
        assert_eq!(errors.len(), 1, "{rr}: {errors:?}");
        assert!(errors[0].starts_with("<t.>:5: "), "{rr}: {errors:?}");
    }
    // Generic RDATA must be valid for a known type (Knot checks it too).
    for line in [
        "x TYPE1 \\# 3 010203",
        "x TYPE64 \\# 3 010203",
        "x TYPE2 \\# 1 03",
    ] {
        let errors = load_err("t.", &format!("{MINI}{line}\n"));
        assert_eq!(errors.len(), 1, "{line}: {errors:?}");
    }
    let ok = Zone::from_text(
        "t.",
        &format!(
            "{MINI}e CNAME a\\..b\nt TXT a..b\nu TYPE1 \\# 4 c0000201\nv TYPE65400 \\# 1 00\n"
        ),
    )
    .unwrap();
    assert!(ok.node(key("e.t").as_wire()).is_some());
}

/// domain 0.12's scanner panics on an unclosed parenthesis before a quoted string
/// (tests/fixtures/parser/22-paren-unbalanced.zone); the builder thread must still be let
/// go, so the load ends (in that panic) rather than hangs.
#[test]
fn a_scanner_panic_ends_the_load_instead_of_hanging_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.test.zone", &format!("{MINI}t TXT ( \"a\"\n"));
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let spec = ZoneSpec { origin: None, path };
        let outcome = std::panic::catch_unwind(|| Zone::load(&spec).is_ok());
        let _ = done.send(outcome.is_err());
    });
    let finished = finished.recv_timeout(std::time::Duration::from_secs(30));
    assert!(finished.is_ok(), "the load hung");
}

#[test]
fn errors_inside_include_name_the_included_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inc")).unwrap();
    let inner = write(
        dir.path(),
        "inc/hosts",
        "; hosts\nh1 A 192.0.2.1\nh2 A 192.0.2.2\nh3 AAAA not-an-address\n",
    );
    let main = write(
        dir.path(),
        "i.test.zone",
        &format!("{MINI}$INCLUDE inc/hosts\n"),
    );
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: main,
    })
    .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(&format!("{}:4: ", inner.display())),
        "{errs:?}"
    );
    // Validation errors inside the include, too; the include's origin argument is used.
    write(dir.path(), "inc/other", "\n\nx A 192.0.2.1\n");
    let main = write(
        dir.path(),
        "j.test.zone",
        &format!("{MINI}$INCLUDE inc/other elsewhere.test.\n"),
    );
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: main,
    })
    .unwrap_err();
    assert!(
        errs[0].contains("inc/other:3: out-of-zone data: x.elsewhere.test."),
        "{errs:?}"
    );
    // Include loop.
    write(dir.path(), "inc/self", "$INCLUDE self\n");
    let main = write(
        dir.path(),
        "k.test.zone",
        &format!("{MINI}$INCLUDE inc/self\n"),
    );
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: main,
    })
    .unwrap_err();
    assert!(errs[0].contains("inc/self:1: $INCLUDE loop"), "{errs:?}");
    // A good include works, with the including file's origin.
    write(dir.path(), "inc/good", "www A 192.0.2.80\n");
    let main = write(
        dir.path(),
        "l.test.zone",
        &format!("{MINI}$INCLUDE inc/good\n"),
    );
    let (z, _) = Zone::load(&ZoneSpec {
        origin: None,
        path: main,
    })
    .unwrap();
    assert!(z.node(key("www.l.test.").as_wire()).is_some());
}

fn load_main(dir: &Path, name: &str, text: &str) -> Result<Zone, Vec<String>> {
    let path = write(dir, name, text);
    Zone::load(&ZoneSpec { origin: None, path }).map(|(z, _)| z)
}

#[test]
fn includes_stay_in_the_zone_files_directory() {
    let outside = tempfile::tempdir().unwrap();
    let secret = write(outside.path(), "secret", "leak TXT \"outside\"\n");
    let top = tempfile::tempdir().unwrap();
    let dir = top.path().join("zones");
    std::fs::create_dir(&dir).unwrap();
    write(top.path(), "sibling", "leak TXT \"sibling\"\n");
    std::os::unix::fs::symlink(&secret, dir.join("link")).unwrap();
    for (n, inc) in [
        secret.to_str().unwrap(),
        "../sibling",
        "link",
        "/etc/hostname",
    ]
    .iter()
    .enumerate()
    {
        let errs = load_main(
            &dir,
            &format!("o{n}.test.zone"),
            &format!("{MINI}$INCLUDE {inc}\n"),
        )
        .map(|_| ())
        .unwrap_err();
        assert_eq!(errs.len(), 1, "{inc}: {errs:?}");
        assert!(
            errs[0].contains(":5: $INCLUDE ")
                && errs[0].contains("outside the zone file's directory"),
            "{inc}: {errs:?}"
        );
    }
    // Below the directory is fine.
    std::fs::create_dir(dir.join("sub")).unwrap();
    write(&dir, "sub/in", "www A 192.0.2.80\n");
    load_main(&dir, "ok.test.zone", &format!("{MINI}$INCLUDE sub/in\n")).unwrap();
}

/// Runs `f` on a thread and gives up after 10 s: a FIFO read blocking would hang the test.
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("zone load hung")
}

#[test]
fn only_regular_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("f.test.zone");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let errs = within_10s(move || {
        Zone::load(&ZoneSpec {
            origin: None,
            path: fifo,
        })
        .map(|_| ())
        .unwrap_err()
    });
    assert!(
        errs[0].ends_with("f.test.zone: not a regular file (a FIFO)"),
        "{errs:?}"
    );
    let p = dir.path().to_path_buf();
    let errs = within_10s(move || {
        load_main(&p, "g.test.zone", &format!("{MINI}$INCLUDE f.test.zone\n"))
            .map(|_| ())
            .unwrap_err()
    });
    assert!(
        errs[0].contains("g.test.zone:5: $INCLUDE ")
            && errs[0].ends_with("f.test.zone: not a regular file (a FIFO)"),
        "{errs:?}"
    );
    // In a zone directory (start and SIGHUP): reported, the other zones load (h.test.; g.test.
    // includes the FIFO).
    write(dir.path(), "h.test.zone", MINI);
    let p = dir.path().to_path_buf();
    let (cat, errs) = within_10s(move || Catalog::load_partial(&[], Some(&p)));
    assert_eq!(cat.zone_count(), 1, "{errs:?}");
    assert!(
        errs.iter()
            .any(|e| e.ends_with("f.test.zone: not a regular file (a FIFO)")),
        "{errs:?}"
    );
    let errs = Zone::load(&ZoneSpec::parse("z.test.=/dev/zero"))
        .map(|_| ())
        .unwrap_err();
    assert_eq!(errs, ["/dev/zero: not a regular file (a character device)"]);
    // A file over the size cap (sparse: no disk used) is refused before it is read.
    let big = dir.path().join("big.test.zone");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(MAX_ZONE_FILE_BYTES + 1)
        .unwrap();
    let errs = Zone::load(&ZoneSpec {
        origin: None,
        path: big,
    })
    .map(|_| ())
    .unwrap_err();
    assert!(errs[0].ends_with("byte limit for a zone file"), "{errs:?}");
}

#[test]
fn include_loop_is_caught_at_the_top_file() {
    let dir = tempfile::tempdir().unwrap();
    // Including itself: one loop error, and the file's own error once (not once per pass).
    let errs = load_main(
        dir.path(),
        "s.test.zone",
        &format!("{MINI}$INCLUDE s.test.zone\nbad A 300.1.2.3\n"),
    )
    .map(|_| ())
    .unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].contains("s.test.zone:5: $INCLUDE loop: "),
        "{errs:?}"
    );
}

#[test]
fn dollar_ttl_carries_into_and_out_of_includes() {
    // What nsd-checkzone -p prints for these files (NSD 4.6; BIND does the same):
    // inc 60 (the $TTL before the $INCLUDE), inc2 120 and after 120 (the include's $TTL).
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "inc1",
        "inc A 192.0.2.2\n$TTL 120\ninc2 A 192.0.2.4\n",
    );
    let z = load_main(
        dir.path(),
        "t.test.zone",
        &format!("{MINI}$TTL 60\n$INCLUDE inc1\nafter A 192.0.2.3\n"),
    )
    .unwrap();
    let ttl = |n: &str| {
        z.node(key(n).as_wire())
            .unwrap()
            .rrset(RecordType::A)
            .unwrap()
            .ttl()
    };
    assert_eq!(
        [
            ttl("ns.t.test."),
            ttl("inc.t.test."),
            ttl("inc2.t.test."),
            ttl("after.t.test.")
        ],
        [300, 60, 120, 120]
    );
}

#[test]
fn validation_rules() {
    let e = load_err("t.", "$TTL 1\n@ NS ns\nns A 192.0.2.1\n");
    assert_eq!(e, ["<t.>:1: zone t. has no SOA record at its apex"]);
    let e = load_err("t.", "$TTL 1\n@ SOA ns hm 1 2 3 4 5\nns A 192.0.2.1\n");
    assert_eq!(e, ["<t.>:2: zone t. has no NS records at its apex"]);
    let e = load_err("t.", &format!("{MINI}@ SOA ns hm 2 2 3 4 5\n"));
    assert_eq!(e, ["<t.>:5: more than one SOA record at t."]);
    let e = load_err("t.", &format!("{MINI}x SOA ns hm 2 2 3 4 5\n"));
    assert_eq!(e, ["<t.>:5: SOA record at x.t., not at the zone apex t."]);
    let e = load_err("t.", &format!("{MINI}www.other. A 192.0.2.1\n"));
    assert_eq!(
        e,
        ["<t.>:5: out-of-zone data: www.other. is not in zone t."]
    );
    let e = load_err("t.", &format!("{MINI}x CNAME ns\nx A 192.0.2.1\n"));
    assert_eq!(e, ["<t.>:6: CNAME and other data at x.t. (A record)"]);
    let e = load_err("t.", &format!("{MINI}x A 192.0.2.1\nX CNAME ns\n"));
    assert_eq!(e, ["<t.>:6: CNAME and other data at x.t."]);
    let e = load_err("t.", &format!("{MINI}x CNAME ns\nx CNAME www\n"));
    assert_eq!(e, ["<t.>:6: more than one CNAME record at x.t."]);
    let e = load_err("t.", &format!("{MINI}x CH A 192.0.2.1\n"));
    assert_eq!(e, ["<t.>:5: class CH not supported: only IN is served"]);
    // CNAME beside RRSIG/NSEC is fine.
    let z = Zone::from_text("t.", &format!("{MINI}x CNAME ns\nx NSEC t. CNAME NSEC\n")).unwrap();
    assert_eq!(z.node(key("x.t.").as_wire()).unwrap().rrsets().len(), 2);
    // All errors at once.
    let e = load_err(
        "t.",
        &format!("{MINI}a.other. A 192.0.2.1\nb.other. A 192.0.2.1\n"),
    );
    assert_eq!(e.len(), 2);
    // Nothing below a DNAME (RFC 6672 §2.4), as NSD and Knot refuse it.
    let e = load_err(
        "t.",
        &format!("{MINI}d DNAME x.test.\nhost.d A 192.0.2.1\n"),
    );
    assert!(e[0].contains("below the DNAME at d.t."), "{e:?}");
}

#[test]
fn ttl_units_and_absolute_origin() {
    let z = Zone::from_text(
        "t.",
        "$TTL 1h30m\n@ SOA ns hm 1 2h 1h 2w 5M\n NS ns\nns 1d A 192.0.2.1\nx A 192.0.2.2\n",
    )
    .unwrap();
    assert_eq!(
        z.node(key("ns.t.").as_wire()).unwrap().rrsets()[0].ttl(),
        86_400
    );
    assert_eq!(
        z.node(key("x.t.").as_wire()).unwrap().rrsets()[0].ttl(),
        5400
    );
    let e = load_err("t.", &format!("{MINI}$ORIGIN sub\nx A 192.0.2.1\n"));
    assert!(e[0].contains("$ORIGIN needs an absolute name"), "{e:?}");
}

#[test]
fn ttl_mismatch_is_normalised_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "t.test.zone",
        &format!("{MINI}x 100 A 192.0.2.1\nx 200 A 192.0.2.2\nx 100 A 192.0.2.1\n"),
    );
    let (z, warnings) = Zone::load(&ZoneSpec {
        origin: None,
        path: p.clone(),
    })
    .unwrap();
    let set = z
        .node(key("x.t.test.").as_wire())
        .unwrap()
        .rrset(RecordType::A)
        .unwrap();
    assert_eq!(
        (set.ttl(), set.len()),
        (100, 2),
        "duplicate dropped, TTL of the first"
    );
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].starts_with(&format!("{}:6: warning: TTL 200", p.display())),
        "{warnings:?}"
    );
}

#[test]
fn catalog_reports_all_zone_errors_and_finds_most_specific_zone() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.test.zone", MINI);
    write(dir.path(), "sub.a.test.zone", MINI);
    write(dir.path(), "b.test.zone", "$TTL 1\n@ SOA ns hm 1 2 3 4 5\n");
    write(
        dir.path(),
        "c.test.zone",
        "$TTL 1\n@ SOA ns hm 1 2 3 4 5\nx A 1.2.3\n",
    );
    let errs = Catalog::load(&[], Some(dir.path())).unwrap_err();
    assert_eq!(errs.len(), 2, "{errs:?}");
    let (cat, errs) = Catalog::load_partial(&[], Some(dir.path()));
    assert_eq!((cat.zone_count(), errs.len()), (2, 2));
    let z = cat.find_zone(key("x.Sub.A.test.").as_wire()).unwrap();
    assert_eq!(z.origin_key(), &key("sub.a.test."));
    assert_eq!(cat.parent_zone(z).unwrap().origin_key(), &key("a.test."));
    assert_eq!(
        cat.find_zone(key("x.a.test.").as_wire())
            .unwrap()
            .origin_key(),
        &key("a.test.")
    );
    assert!(cat.find_zone(key("x.test.").as_wire()).is_none());
}

/// Every type we promise round-trips: the bytes we will send equal what the presentation
/// format means (checked against hand-encoded RDATA).
#[test]
fn rr_types_round_trip() {
    let cases: &[(&str, &str, &[u8])] = &[
        ("A", "192.0.2.1", &[192, 0, 2, 1]),
        (
            "AAAA",
            "2001:db8::1",
            &[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        ("NS", "Ns.t.", b"\x02Ns\x01t\x00"),
        ("CNAME", "x", b"\x01x\x01t\x00"),
        ("PTR", "p.q.", b"\x01p\x01q\x00"),
        ("MX", "10 mx", b"\x00\x0a\x02mx\x01t\x00"),
        ("TXT", "\"a b\" c \"\\\"\"", b"\x03a b\x01c\x01\""),
        ("HINFO", "\"PC\" Linux", b"\x02PC\x05Linux"),
        (
            "SRV",
            "1 2 3 Srv.t.",
            b"\x00\x01\x00\x02\x00\x03\x03Srv\x01t\x00",
        ),
        ("CAA", "0 issue \"ca.example\"", b"\x00\x05issueca.example"),
        (
            "CAA",
            "128 iodef \"mailto:a@b\"",
            b"\x80\x05iodefmailto:a@b",
        ),
        ("TLSA", "3 1 1 0C72", &[3, 1, 1, 0x0c, 0x72]),
        ("SSHFP", "4 2 ABCD", &[4, 2, 0xab, 0xcd]),
        (
            "SVCB",
            "1 Svc.t. alpn=h2 port=8443",
            b"\x00\x01\x03Svc\x01t\x00\x00\x01\x00\x03\x02h2\x00\x03\x00\x02\x20\xfb",
        ),
        (
            "HTTPS",
            "1 . alpn=h3",
            b"\x00\x01\x00\x00\x01\x00\x03\x02h3",
        ),
        ("DS", "1 13 2 ABCD", &[0, 1, 13, 2, 0xab, 0xcd]),
        (
            "NAPTR",
            "1 2 \"S\" \"SIP+D2U\" \"\" _sip._udp.t.",
            b"\x00\x01\x00\x02\x01S\x07SIP+D2U\x00\x04_sip\x04_udp\x01t\x00",
        ),
        ("TYPE65400", "\\# 4 0A000001", &[10, 0, 0, 1]),
        ("TYPE65401", "\\# 0", &[]),
        ("DNAME", "Other.", b"\x05Other\x00"),
    ];
    for (rtype, rdata, wire) in cases {
        let text = format!("{MINI}x {rtype} {rdata}\n");
        let z = Zone::from_text("t.", &text).unwrap_or_else(|e| panic!("{rtype}: {e:?}"));
        let node = z.node(key("x.t.").as_wire()).unwrap();
        let set = &node.rrsets()[0];
        assert_eq!(set.len(), 1);
        let rd = set.rdata().next().unwrap();
        let mut out = Vec::new();
        let mut enc = BinEncoder::new(&mut out);
        rd.emit(&mut enc).unwrap();
        assert_eq!(&out[..], *wire, "{rtype} {rdata}");
        if [
            "A", "AAAA", "NS", "MX", "TXT", "CAA", "TLSA", "SSHFP", "HINFO",
        ]
        .contains(rtype)
        {
            assert!(opaque_bytes(&rd).is_none(), "{rtype} should be typed");
        }
        if ["SRV", "SVCB", "HTTPS"].contains(rtype) {
            assert!(
                opaque_bytes(&rd).is_some(),
                "{rtype} must not be compressed"
            );
        }
    }
}

#[test]
fn reload_keeps_the_old_version_of_a_zone_whose_file_now_fails() {
    let dir = tempfile::tempdir().unwrap();
    let zone = |serial: u32, extra: &str| {
        format!("$TTL 60\n@ SOA ns hm {serial} 2 3 4 5\n NS ns\nns A 192.0.2.1\n{extra}")
    };
    let a = dir.path().join("a.test.zone");
    let b = dir.path().join("b.test.zone");
    std::fs::write(&a, zone(1, "")).unwrap();
    std::fs::write(&b, zone(1, "")).unwrap();
    let first = Catalog::load(&[], Some(dir.path())).unwrap();
    std::fs::write(&a, zone(2, "www A 192.0.2.999\n")).unwrap();
    std::fs::write(&b, zone(2, "")).unwrap();
    let (second, errors) = Catalog::reload(&first, &[], Some(dir.path()));
    assert!(errors[0].contains("a.test.zone:5"), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("keeping the previously loaded zone a.test."))
    );
    let serial = |c: &Catalog, origin: &str| {
        c.find_zone(NameKey::parse(origin).unwrap().as_wire())
            .unwrap()
            .serial()
    };
    assert_eq!(serial(&second, "a.test."), 1, "old a.test kept");
    assert_eq!(serial(&second, "b.test."), 2, "b.test updated");
    // A fresh start has nothing to keep: the broken zone is left out.
    let (fresh, _) = Catalog::load_partial(&[], Some(dir.path()));
    assert_eq!(fresh.zone_count(), 1);
}

/// `$INCLUDE` with a quoted file name: read (the `domain` scanner alone keeps the closing quote
/// in the name); with the origin right after the closing quote (the scanner panicked there,
/// domain 0.12, inplace.rs:779, found by the zone-file fuzzer): an error of that line, no panic.
#[test]
fn quoted_include_file_names_load_and_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inc")).unwrap();
    write(
        dir.path(),
        "inc/two hosts",
        "h1 A 192.0.2.1\nh2 A 192.0.2.2\n",
    );
    let load = |text: &str| {
        let path = write(dir.path(), "q.test.zone", &format!("{MINI}{text}"));
        let spec = ZoneSpec { origin: None, path };
        std::panic::catch_unwind(|| Zone::load(&spec)).expect("no panic")
    };
    let (zone, _) = load("$INCLUDE \"inc/two hosts\"\n").unwrap();
    assert_eq!(zone.nodes_sorted().len(), 4, "apex, ns, h1, h2");
    let errs = load("$INCLUDE \"x\"y.\n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("q.test.zone:5: $INCLUDE") && errs[0].contains("no such file"),
        "{errs:?}"
    );
}

/// A file's records are let go once built; data below a DNAME written long before it (chunks
/// apart) still gets its message at its own line, as from a build that kept them, and a zone
/// with a DNAME but nothing below it loads.
#[test]
fn data_below_a_late_dname_is_found_after_the_records_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!("{MINI}host.d A 192.0.2.1\n");
    for i in 0..PIPELINE_CHUNK + 10 {
        text.push_str(&format!("n{i} A 192.0.2.2\n"));
    }
    let dname_line = text.lines().count() + 1;
    text.push_str("d DNAME x.test.\nd.d TXT below\n");
    let p = write(dir.path(), "t.zone", &text);
    let spec = ZoneSpec {
        origin: Some("t.".into()),
        path: p.clone(),
    };
    let errs = Zone::load(&spec).unwrap_err();
    let at = |line: usize| format!("{}:{line}: ", p.display());
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].starts_with(&at(5)), "{errs:?}");
    assert!(
        errs[0].contains("host.d.t. is below the DNAME at d.t."),
        "{errs:?}"
    );
    assert!(errs[1].starts_with(&at(dname_line + 1)), "{errs:?}");
    // The same zone without the data below: it loads, every record in.
    let clean: String = (text.lines())
        .filter(|l| !l.contains(".d "))
        .map(|l| format!("{l}\n"))
        .collect();
    write(dir.path(), "t.zone", &clean);
    let (z, _) = Zone::load(&spec).unwrap();
    assert_eq!(z.record_count(), 4 + PIPELINE_CHUNK + 10);
}
