//! The stable fuzz driver CI runs: each target over its checked-in corpus (fuzz/corpus/TARGET),
//! then seeded random mutations of it for a bounded time, and the regressions the fuzzers found.
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::*;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| fs::read(p).unwrap()).collect()
}

/// Seconds of mutations per target: `RAMPART_FUZZ_SECS` (scripts/test sets CI's), 5 by default.
fn budget() -> Duration {
    let secs = std::env::var("RAMPART_FUZZ_SECS").map_or(5, |s| s.parse().expect("seconds"));
    Duration::from_secs(secs)
}

/// `RAMPART_FUZZ_SEED` replays a run; otherwise the clock picks one (printed), so each run
/// explores other inputs.
fn seed() -> u64 {
    std::env::var("RAMPART_FUZZ_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        },
        |s| s.parse().expect("seed"),
    )
}

fn run_one(target: &str, body: fn(&[u8]), input: &[u8], what: &str) {
    if catch_unwind(AssertUnwindSafe(|| body(input))).is_err() {
        panic!(
            "{target}: {what} failed; input ({} bytes): {input:02x?}",
            input.len()
        );
    }
}

fn drive(target: &str, body: fn(&[u8])) {
    let corpus = corpus(target);
    assert!(
        corpus.len() >= 20,
        "{target}: {} corpus inputs",
        corpus.len()
    );
    for (i, input) in corpus.iter().enumerate() {
        run_one(target, body, input, &format!("corpus input {i}"));
    }
    let (seed, budget) = (seed(), budget());
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let mut input = Vec::new();
    let mut n = 0u64;
    while start.elapsed() < budget {
        // Half the time the last mutant again: a walk further from the corpus.
        if n.is_multiple_of(2) || input.len() > 8192 {
            input = corpus[rng.below(corpus.len())].clone();
        }
        mutate(&mut input, &mut rng, &corpus);
        run_one(
            target,
            body,
            &input,
            &format!("mutation {n} of seed {seed}"),
        );
        n += 1;
    }
    eprintln!(
        "fuzz {target}: {} corpus inputs, {n} mutations in {:.1} s (seed {seed}): no failure",
        corpus.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(n > 0, "{target}: no mutation ran");
}

#[test]
fn fuzz_zone_parser_corpus_and_mutations() {
    drive("zone_parser", zone_parser);
}

#[test]
fn fuzz_query_pipeline_corpus_and_mutations() {
    drive("query_pipeline", query_pipeline);
}

/// The checks can fail: a response with another ID, or without QR, or with another question.
#[test]
fn check_response_rejects_what_is_not_an_answer() {
    let q = query(7, b"\x03www\x07example\x03com\x00", 1);
    let r = respond(test_catalog(), &q, Transport::Udp).unwrap();
    check_response(&q, &r, Transport::Udp);
    let bad = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut r = r.clone();
        f(&mut r);
        catch_unwind(AssertUnwindSafe(|| check_response(&q, &r, Transport::Udp))).is_err()
    };
    assert!(bad(&|r| r[1] ^= 1), "ID");
    assert!(bad(&|r| r[2] &= 0x7f), "QR");
    assert!(bad(&|r| r[13] = b'W'), "question case");
    assert!(bad(&|r| r.truncate(r.len() - 1)), "cut short");
    assert!(bad(&|r| r.resize(600, 0)), "over 512 without EDNS");
}
