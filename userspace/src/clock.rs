//! The kernel clocks the daemon shares with the XDP program (whose `bpf_ktime_get_ns` is
//! CLOCK_MONOTONIC) and with its own control clients, read one way.

/// `clock` in nanoseconds (wrapping: only differences and offsets are taken of it).
pub fn read_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the kernel to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// CLOCK_MONOTONIC in ns: the clock of `Instant` and of the program's `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    read_ns(libc::CLOCK_MONOTONIC)
}
