//! The cost guard: what a hit costs the program, as a ratio to the reference reflector run in
//! the same test (BPF_PROG_TEST_RUN), so a regression fails CI whatever the machine's speed.
use aya::programs::{TestRun, TestRunOptions, Xdp};
use rampart_common::PROGRAM_REFERENCE;

use super::{
    FastPath,
    tests::{frame, query},
};

/// Single runs per program per round (one run per call: every run sees the query, not the
/// answer the previous run left in the buffer), and rounds, alternating the two programs.
const RUNS: u32 = 1500;
const ROUNDS: usize = 11;

/// Mean run time of `prog` on `frame` over `RUNS` single runs, in ns.
fn mean_ns(prog: &Xdp, frame: &[u8]) -> f64 {
    let mut total = std::time::Duration::ZERO;
    let mut out = vec![0u8; 4096];
    for _ in 0..RUNS {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        total += prog.test_run(opts).expect("test_run").duration;
    }
    total.as_nanos() as f64 / f64::from(RUNS)
}

/// One cost test at a time, with the kernel's run-time statistics (`kernel.bpf_stats_enabled`,
/// which the benches turn on while they measure) off: they time every run, BPF_PROG_TEST_RUN's
/// included, adding ~40 ns to the reference and the hit alike, so every ratio reads low (a 33 ns
/// reference read 76 ns); and two cost tests side by side on two cores time each other. The
/// guard puts back what it found.
struct Measuring {
    was: Option<String>,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());
const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl Measuring {
    fn start() -> Measuring {
        let lock = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
        let was = std::fs::read_to_string(BPF_STATS)
            .ok()
            .filter(|v| v.trim() != "0");
        if was.is_some() {
            std::fs::write(BPF_STATS, "0").expect("turn kernel.bpf_stats_enabled off");
        }
        Measuring {
            was,
            _one_at_a_time: lock,
        }
    }
}

impl Measuring {
    /// Wait (bounded) until the kernel stops timing `prog`'s runs: another process can hold
    /// the statistics on through a BPF_ENABLE_STATS descriptor (a bench does), which the
    /// sysctl does not override; measured meanwhile, every ratio would read low and the guard
    /// would pass a regression.
    fn untimed(&self, prog: &Xdp) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let frame = frame(false, 40000, &query(1, "www.example.com", 1, None));
        loop {
            let before = run_count(prog);
            mean_ns(prog, &frame);
            if run_count(prog) == before {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the kernel's BPF run-time statistics stayed on for 300 s (held by another \
                 process, e.g. a bench): the cost guard cannot measure meanwhile"
            );
            eprintln!("BPF run-time statistics held on elsewhere: waiting");
            std::thread::sleep(std::time::Duration::from_secs(5));
        }
    }
}

/// The kernel's count of `prog`'s runs (`run_cnt` in its fdinfo), kept only while the
/// run-time statistics are on.
fn run_count(prog: &Xdp) -> u64 {
    use std::os::fd::{AsFd, AsRawFd};
    let fd = prog.fd().expect("loaded program").as_fd().as_raw_fd();
    std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
        .expect("program fdinfo")
        .lines()
        .find_map(|l| l.strip_prefix("run_cnt:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Drop for Measuring {
    fn drop(&mut self) {
        if let Some(was) = &self.was {
            let _ = std::fs::write(BPF_STATS, was.trim());
        }
    }
}

/// `prog` on `frame` against the reference, in interleaved rounds: the medians of its run time,
/// the reference's and their ratio.
fn against_reference(prog: &Xdp, reference: &Xdp, frame: &[u8]) -> (f64, f64, f64) {
    interleaved((prog, frame), (reference, frame))
}

/// Run `a` and `b` (a program on a frame) in alternating rounds: the medians of `a`'s run time,
/// `b`'s, and of `a / b` round by round (a ratio of neighbours, so the machine's drift between
/// rounds cancels).
fn interleaved(a: (&Xdp, &[u8]), b: (&Xdp, &[u8])) -> (f64, f64, f64) {
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let r = mean_ns(b.0, b.1);
        let p = mean_ns(a.0, a.1);
        ours.push(p);
        theirs.push(r);
        ratios.push(p / r);
    }
    (median(ours), median(theirs), median(ratios))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The demo zones with every limit and cookies on, at rates the test never reaches: the cost
/// of the accounting, not of limiting.
fn loaded_with_limits() -> FastPath {
    loaded_with_whitelist(&[])
}

/// [`loaded_with_limits`] with these prefixes whitelisted.
fn loaded_with_whitelist(whitelist: &[(u32, rampart_common::WhitelistAddr)]) -> FastPath {
    let (_, mut fp) = super::cache_tests::demo_loaded(16);
    let rrl = crate::limits::RrlConfig {
        rate: 1_000_000_000,
        class_rate: 1_000_000_000,
        ..Default::default()
    };
    let budget = crate::limits::BudgetConfig {
        rate: 1_000_000_000,
        total_rate: 1_000_000_000,
    };
    let mut l = crate::limits::to_limits(&rrl, &budget, 1).unwrap();
    crate::limits::set_cookies(&mut l, Some(secret()), None);
    fp.set_limits(l, whitelist).unwrap();
    let reference: &mut Xdp = (fp.ebpf.program_mut(PROGRAM_REFERENCE).unwrap())
        .try_into()
        .unwrap();
    reference.load().unwrap();
    fp
}

fn secret() -> crate::cookie::Secret {
    crate::cookie::Secret::parse("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap()
}

/// Each case's cost as a ratio to the reference's, medians over interleaved rounds, with the
/// ceiling it must stay under. Measured on the 2-CPU VM (2026-12-07, misaligned packet access,
/// a young valid cookie sent back without a second SipHash), others building: 4.4-4.5,
/// 4.3, 5.9-6.1, 6.0, 6.2-6.3, 6.6 (was 4.8-5.0, 4.7-4.8, 6.4-6.6, 7.9-8.3, 6.6-6.8 and no
/// renew case; `Measuring`: with the kernel's run-time statistics on, the reference read 76 ns
/// against 33 and every ratio fell). Late evening (the limits and records found once per frame,
/// the tail copied 8 bytes at a time; base's binary alternated, minimum of six rounds): A EDNS
/// 3.7x (base 3.9x), no EDNS 3.5-3.7x. 2026-12-08 (the name read from the packet, an IPv4
/// source's whitelist memo key its address; a 60-65 ns reference on kernel 6.18.44-fc-v1300,
/// three rounds alternated with base 7f7f6f4's binary): A EDNS 3.0x (192-193 ns) against
/// 3.1-3.3x (198-201 ns), no EDNS 2.9-3.1x against 3.0-3.4x; the ceilings came down to what a
/// quieter host (A EDNS 3.76x there for base) would read less the cut, plus about a third.
/// Ceilings: the figure plus about a third, so a hit a
/// third costlier fails; and a valid cookie at most 1.5x a plain hit (measured 1.34-1.43x). `cargo test --release hit_cost -- --nocapture` prints the figures.
#[test]
fn hit_cost_against_the_reference() {
    let measuring = Measuring::start();
    let fp = loaded_with_limits();
    let program = fp.program();
    let reference: &Xdp = (fp.ebpf.program(PROGRAM_REFERENCE).unwrap())
        .try_into()
        .unwrap();
    measuring.untimed(reference);
    let edns = |name| query(1, name, 1, Some((1232, false)));
    let client = [7u8; 8];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let src: std::net::IpAddr = "198.51.100.2".parse().unwrap();
    let server = secret().server_cookie(&client, [0; 3], now, src);
    let cookie = [&client[..], &server[..]].concat();
    // Over half an hour old: valid, but renewed (a second SipHash for the fresh one).
    let old = secret().server_cookie(&client, [0; 3], now - 1900, src);
    let old_cookie = [&client[..], &old[..]].concat();
    let with_cookie = |name, data: &[u8]| {
        let option = [(crate::wire::OPTION_COOKIE, data)];
        crate::wire::testutil::query_with_options(1, name, 1, false, &option)
    };
    let cases: [(&str, Vec<u8>, f64); 6] = [
        ("A, EDNS", edns("www.example.com"), 4.6),
        ("A, no EDNS", query(1, "www.example.com", 1, None), 4.4),
        ("NXDOMAIN", edns("nope.example.com"), 8.0),
        (
            "A, valid server cookie",
            with_cookie("www.example.com", &cookie),
            8.0,
        ),
        ("referral (below a cut)", edns("x.sub.example.com"), 8.4),
        (
            "A, valid server cookie to renew",
            with_cookie("www.example.com", &old_cookie),
            8.8,
        ),
    ];
    let mut over = Vec::new();
    let mut frames = Vec::new();
    for (what, dns, ceiling) in cases {
        let f = frame(false, 40000, &dns);
        let (ours, theirs, ratio) = against_reference(program, reference, &f);
        frames.push(f);
        eprintln!(
            "{what}: {ours:.0} ns/packet, reference {theirs:.0} ns: {ratio:.1}x (ceiling {ceiling}x)"
        );
        if ratio > ceiling {
            over.push(format!("{what}: {ratio:.1}x > {ceiling}x"));
        }
    }
    // The bound: a query with a valid (reusable) server cookie costs at most 1.5x a
    // plain EDNS hit, the two run in alternating rounds (a quotient of the two cases' ratios
    // above, measured apart, read 1.63x once when the reference drew 40 ns for one and 33 for
    // the other).
    let (cookie_ns, hit_ns, cookie_to_hit) =
        interleaved((program, &frames[3]), (program, &frames[0]));
    eprintln!(
        "valid server cookie / plain EDNS hit: {cookie_ns:.0} / {hit_ns:.0} ns = \
         {cookie_to_hit:.2}x (ceiling {COOKIE_CEILING}x)"
    );
    if cookie_to_hit > COOKIE_CEILING {
        over.push(format!(
            "valid cookie: {cookie_to_hit:.2}x a plain hit > {COOKIE_CEILING}x"
        ));
    }
    assert!(over.is_empty(), "a hit costs more than it did: {over:?}");
}

/// The benches' path: a hit for a whitelisted source (`scripts/bench` whitelists its load
/// generator), whose limits stage is the whitelist memo alone, against the reference.
#[test]
fn whitelisted_hit_cost_against_the_reference() {
    let measuring = Measuring::start();
    let client = crate::limits::whitelist_key(&"198.51.100.2/32".parse().unwrap());
    let fp = loaded_with_whitelist(&[client]);
    let program = fp.program();
    let reference: &Xdp = (fp.ebpf.program(PROGRAM_REFERENCE).unwrap())
        .try_into()
        .unwrap();
    measuring.untimed(reference);
    let f = frame(
        false,
        40000,
        &query(1, "www.example.com", 1, Some((1232, false))),
    );
    let (ours, theirs, ratio) = against_reference(program, reference, &f);
    eprintln!(
        "A, EDNS, whitelisted source: {ours:.0} ns/packet, reference {theirs:.0} ns: \
         {ratio:.2}x (ceiling {WHITELISTED_CEILING}x)"
    );
    assert!(
        ratio <= WHITELISTED_CEILING,
        "a whitelisted hit costs {ratio:.2}x the reference > {WHITELISTED_CEILING}x"
    );
}

/// The whitelisted hit's ceiling: measured 2.95-3.58x (2026-12-07, evening, 117-132 ns against
/// a 33-42 ns reference, others building) plus about a third; late evening 3.3-3.7x (minimum of
/// six rounds 114 ns against base's 118). 2026-12-08, the name read from the packet and an IPv4
/// source's memo key its address (kernel 6.18.44-fc-v1300, whose BPF_PROG_TEST_RUN costs the
/// reference 60-65 ns, others building; three rounds alternated with base 7f7f6f4's binary):
/// 2.69-2.77x (176-177 ns) against base's 2.90-3.06x (182-193 ns). Ceiling: what a quieter host
/// would read (base 3.39x there, less the ~7% cut) plus about a third.
const WHITELISTED_CEILING: f64 = 4.0;

/// A valid server cookie's cost as a ratio to a plain hit's (issue 10's target).
const COOKIE_CEILING: f64 = 1.5;

/// A resolver cache hit against an authoritative one, both through the main program with every
/// limit on, in one run, in the two orders a node runs: with zones (the cache after them: the
/// main program finds the name in neither the zones' index nor, first hop of the encloser walk,
/// outside the cache, and leaves the question and the slot it read for the cache program,
/// `cache_handoff`) and resolver-only (the cache first: `cache::first` hands the query over
/// right after the UDP parse, and the cache program reads the question itself).
/// Measured on the 2-CPU VM (2026-12-07, evening), the kernel's run-time statistics off, others
/// building: with zones 1.46-1.47x (216-225 ns against 141-157), resolver-only 1.18-1.23x
/// (174-184 ns); before the cache-first order, the word copy of the tail and the coarse clock
/// bracket, 1.67-1.69x (233-237 ns against 139-143) for both; the morning's code, e292773, 1.84x.
/// Ceilings: the figures plus about a fifth. A resolver miss (a name in no cache: the budget,
/// then the cache program's miss) is printed, not bounded (2.0-2.1x with the walk; 1.5-1.6x
/// beyond the zones). With zones the hit is measured with the apex filter on, as a node runs
/// (a name under no apex's top label skips the zones' type-0 lookup and walk), and without it,
/// bounded by the hit without it: 2026-12-07 evening, others building, 1.39-1.50x with it
/// against 1.52-1.66x without in the same runs; interleaved with base 27a30f6's binary 1.44-1.45x
/// against its 1.59-1.62x, resolver-only 1.33-1.34x against 1.35-1.36x, a resolver miss
/// 1.55-1.56x against 2.33-2.38x. With the cache-first hand-off before the main program's parse
/// and one hash pass over the name (2026-12-07 21:10-21:36, five rounds interleaved with base
/// cff27bb's binary, others building): resolver-only 1.17-1.24x against base's 1.26-1.34x
/// (156-166 ns against 167-173 on the quieter rounds); with zones 1.38-1.51x against
/// 1.39-1.48x, unchanged. With the frame's UDP offset handed over (IP and UDP not parsed
/// again) and the age's coarse clock reused by RRL (2026-12-08 00:00-00:29, twelve runs
/// alternated with base 7f7f6f4's binary, load 4-7): with zones 1.28-1.40x against base's
/// 1.36-1.59x, resolver-only 1.08-1.16x against 1.12-1.24x; the ceiling with zones lowered to
/// 1.65x.
#[test]
fn cache_hit_cost_against_the_authoritative_hit() {
    let (catalog, _) = super::cache_tests::demo_zones();
    let measuring = Measuring::start();
    let lab = super::cache_tests::lab_on(catalog, loaded_with_limits());
    let cached = lab.promoted_query();
    let program = lab.fp.program();
    measuring.untimed(program);
    let auth = frame(
        false,
        40000,
        &query(1, "www.example.com", 1, Some((1232, false))),
    );
    let hit = frame(false, 40000, &cached);
    let miss = frame(
        false,
        40000,
        &query(1, "cold.resolved.test", 1, Some((1232, false))),
    );
    let (mut ratios, mut first_ratios, mut miss_ratios, mut walk_ratios, mut times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let a = mean_ns(program, &auth);
        let c = mean_ns(program, &hit);
        let m = mean_ns(program, &miss);
        // Without the apex filter: the zones' lookups and the walk's first hop first.
        lab.apex_filter(false);
        let w = mean_ns(program, &hit);
        lab.apex_filter(true);
        // The resolver-only order: the cache before the zones (where there are none).
        lab.cache_first(true);
        let f = mean_ns(program, &hit);
        lab.cache_first(false);
        ratios.push(c / a);
        first_ratios.push(f / a);
        miss_ratios.push(m / a);
        walk_ratios.push(w / a);
        times.push((a, c, f));
    }
    let c = lab.fp.counters().unwrap();
    assert!(
        c.get("tx_cache") >= 3 * u64::from(RUNS) * ROUNDS as u64,
        "{c:?}"
    );
    let (ratio, first) = (median(ratios), median(first_ratios));
    let walked = median(walk_ratios);
    let (a, h, f) = times[times.len() / 2];
    eprintln!(
        "cache hit: {h:.0} ns, authoritative hit {a:.0} ns: {ratio:.2}x (ceiling {CACHE_CEILING}x); \
         resolver only (cache first): {f:.0} ns, {first:.2}x (ceiling {FIRST_CEILING}x); \
         resolver miss: {:.2}x; without the apex filter: {:.2}x",
        median(miss_ratios),
        walked
    );
    assert!(
        ratio <= CACHE_CEILING,
        "a cache hit costs {ratio:.2}x an authoritative hit"
    );
    // The filter's saving (0.11-0.17x in the runs above): a hit that still walks the zones
    // reads no lower.
    assert!(
        ratio < walked,
        "with the apex filter a cache hit costs {ratio:.2}x, without it {walked:.2}x"
    );
    assert!(
        first <= FIRST_CEILING,
        "a resolver-only node's cache hit costs {first:.2}x an authoritative hit"
    );
}

/// The cache hit's ceiling, as a ratio to the authoritative hit (the target is 1.5x):
/// on a node with zones (the cache after them) and on a resolver-only one (the cache first).
const CACHE_CEILING: f64 = 1.65;
const FIRST_CEILING: f64 = 1.45;
