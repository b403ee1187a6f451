//! GCRA rate limiting (token buckets without a refill timer), shared by the slow path's RRL
//! and the resolver's per-zone outbound limit.
use std::collections::HashMap;
use std::time::Duration;

/// GCRA, as the XDP program's `admit`: a bucket admits while its theoretical arrival time is at
/// most `burst` ahead of now, and each admission moves it on by `interval`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    interval: Duration,
    burst: Duration,
}

impl Rate {
    pub fn new(per_second: u32, burst: u32) -> Option<Rate> {
        (per_second > 0).then(|| {
            let interval = Duration::from_nanos((1_000_000_000 / u64::from(per_second)).max(1));
            Rate {
                interval,
                burst: interval * (burst.max(1) - 1),
            }
        })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Theoretical arrival time, from the limiter's epoch.
    tat: Duration,
    /// Answers refused so far: every `slip`-th slips.
    limited: u64,
}

impl Bucket {
    /// `None`: admitted; `Some(n)`: the n-th refusal.
    fn admit(&mut self, now: Duration, rate: Rate) -> Option<u64> {
        let tat = self.tat.max(now);
        if tat - now > rate.burst {
            self.limited += 1;
            return Some(self.limited);
        }
        self.tat = tat + rate.interval;
        None
    }
}

/// Buckets kept up to a bound: when full, the expired ones (the same as absent) go, and if a
/// spoofed-source flood left none expired, all of them (the XDP program's LRU evicts instead).
pub struct Table<K> {
    buckets: HashMap<K, Bucket>,
    max: usize,
}

impl<K: std::hash::Hash + Eq> Table<K> {
    pub fn new(max: usize) -> Table<K> {
        Table {
            buckets: HashMap::new(),
            max: max.max(1),
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn admit(&mut self, key: K, now: Duration, rate: Rate) -> Option<u64> {
        if self.buckets.len() >= self.max && !self.buckets.contains_key(&key) {
            self.buckets.retain(|_, b| b.tat > now);
            if self.buckets.len() >= self.max * 3 / 4 {
                self.buckets.clear();
            }
        }
        self.buckets.entry(key).or_default().admit(now, rate)
    }
}
