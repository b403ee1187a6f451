//! Rate limits in the slow path, for sockets-only mode: the XDP program's RRL and per-class view
//! (same classes, rates, burst, slip, prefixes, whitelist, dry run, cookie exemption).
//!
//! Only a node without `--iface` runs them: with XDP attached, every UDP query that reaches the
//! slow path through the NIC was passed up by the program, which already counted it against the
//! miss budget, so limiting it here again would count it twice. TCP is never limited (a TCP
//! client's address is proven, as RRL in Knot and NSD applies to UDP only).
use std::{
    net::IpAddr,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use ipnet::IpNet;

use crate::gcra::{Rate, Table};
use crate::limits::RrlConfig;

/// What to do with a UDP answer the limits looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    /// Send the minimal TC=1 answer instead (`wire::render_slip`).
    Slip,
    Drop,
}

/// The limits of one sockets-only node, shared by every UDP worker.
pub struct SlowLimits {
    rrl: Option<Rate>,
    class: Option<Rate>,
    rrl_slip: u32,
    class_slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    whitelist: Vec<IpNet>,
    /// Sources never limited nor counted: the node's own health probe.
    exempt: Vec<IpAddr>,
    dry_run: bool,
    /// Set once the XDP program limits ahead of the slow path (see [`SlowLimits::lift`]).
    lifted: AtomicBool,
    epoch: Instant,
    by_source: Mutex<Table<(IpAddr, u32)>>,
    by_class: Mutex<Table<u32>>,
}

impl SlowLimits {
    /// The `[rrl]` settings as the slow path applies them; `None` when both RRL and the
    /// per-class view are off.
    pub fn new(rrl: &RrlConfig) -> Option<SlowLimits> {
        let source = Rate::new(rrl.rate, rrl.burst.unwrap_or(rrl.rate));
        let class = Rate::new(rrl.class_rate, rrl.class_rate);
        if source.is_none() && class.is_none() {
            return None;
        }
        Some(SlowLimits {
            rrl: source,
            class,
            rrl_slip: rrl.slip,
            class_slip: rrl.class_slip,
            ipv4_prefix: rrl.ipv4_prefix.min(32),
            ipv6_prefix: rrl.ipv6_prefix.min(128),
            whitelist: rrl.whitelist.clone(),
            exempt: Vec::new(),
            dry_run: rrl.dry_run,
            lifted: AtomicBool::new(false),
            epoch: Instant::now(),
            by_source: Mutex::new(Table::new(rrl.table_size as usize)),
            by_class: Mutex::new(Table::new(16_384)),
        })
    }

    /// Never limit (nor count) answers to `source`: the health probe's, as the XDP program
    /// exempts its own probe. The probe is sent to a local address, so it comes from that
    /// address, which the kernel drops when a packet from outside claims it (accept_local=0).
    pub fn exempting(mut self, source: IpAddr) -> SlowLimits {
        self.exempt.push(source);
        self
    }

    /// An answer of response class `class` (`compile::response_class`) to `peer`: the class's
    /// aggregate rate first, then the source prefix's rate for the class, as the XDP program.
    /// A valid server cookie proves the address: no limit, and not counted; nor for a
    /// whitelisted source (as Knot exempts whitelisted clients before its RRL table).
    pub fn check(&self, peer: IpAddr, class: u32, valid_cookie: bool) -> Verdict {
        if valid_cookie
            || self.lifted.load(Ordering::Relaxed)
            || self.exempt.contains(&peer)
            || self.whitelist.iter().any(|net| net.contains(&peer))
        {
            return Verdict::Answer;
        }
        let now = self.epoch.elapsed();
        if let Some(rate) = self.class
            && let Some(n) = lock(&self.by_class).admit(class, now, rate)
        {
            return self.over(peer, n, self.class_slip);
        }
        if let Some(rate) = self.rrl {
            let key = (self.prefix(peer), class);
            if let Some(n) = lock(&self.by_source).admit(key, now, rate) {
                return self.over(peer, n, self.rrl_slip);
            }
        }
        Verdict::Answer
    }

    /// Stop limiting: the XDP program is attached and applies the limits to every query before
    /// the slow path sees it (the slow path limits only while the fast path is being filled).
    pub fn lift(&self) {
        self.lifted.store(true, Ordering::Relaxed);
    }

    fn over(&self, peer: IpAddr, limited: u64, slip: u32) -> Verdict {
        if self.dry_run || self.whitelist.iter().any(|net| net.contains(&peer)) {
            tracing::trace!(%peer, dry_run = self.dry_run, "over a limit, answered");
            return Verdict::Answer;
        }
        if slip != 0 && limited.is_multiple_of(u64::from(slip)) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// The source prefix accounted together (IPv4-mapped IPv6 counts as IPv4).
    fn prefix(&self, peer: IpAddr) -> IpAddr {
        let peer = match peer {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        let len = match peer {
            IpAddr::V4(_) => self.ipv4_prefix,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        IpNet::new(peer, len).map_or(peer, |n| n.network())
    }
}

impl std::fmt::Debug for SlowLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlowLimits")
            .field("rrl", &self.rrl)
            .field("class", &self.class)
            .field("rrl_slip", &self.rrl_slip)
            .field("class_slip", &self.class_slip)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking worker leaves whole buckets behind.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: u32, slip: u32, class_rate: u32) -> RrlConfig {
        RrlConfig {
            rate,
            slip,
            class_rate,
            ..RrlConfig::default()
        }
    }

    fn verdicts(l: &SlowLimits, peer: &str, class: u32, n: usize) -> Vec<Verdict> {
        (0..n)
            .map(|_| l.check(peer.parse().unwrap(), class, false))
            .collect()
    }

    #[test]
    fn rate_burst_and_slip() {
        use Verdict::*;
        let l = SlowLimits::new(&config(2, 2, 0)).unwrap();
        // A burst of the rate, then every 2nd refusal slips.
        assert_eq!(
            verdicts(&l, "192.0.2.1", 7, 6),
            [Answer, Answer, Drop, Slip, Drop, Slip]
        );
        // The same /24 shares the bucket; another class or prefix has its own.
        assert_eq!(verdicts(&l, "192.0.2.200", 7, 1), [Drop]);
        assert_eq!(verdicts(&l, "192.0.2.1", 8, 1), [Answer]);
        assert_eq!(verdicts(&l, "198.51.100.1", 7, 1), [Answer]);
        let none = SlowLimits::new(&config(1, 0, 0)).unwrap();
        assert_eq!(verdicts(&none, "2001:db8::1", 1, 3), [Answer, Drop, Drop]);
        assert_eq!(verdicts(&none, "2001:db8::2", 1, 1), [Drop], "same /56");
        assert!(SlowLimits::new(&config(0, 2, 0)).is_none(), "all off");
    }

    #[test]
    fn exemptions_and_the_class_view() {
        use Verdict::*;
        let mut c = config(1, 0, 0);
        c.whitelist = vec!["192.0.2.0/28".parse().unwrap()];
        let l = SlowLimits::new(&c).unwrap();
        assert_eq!(verdicts(&l, "192.0.2.3", 1, 3), [Answer; 3], "whitelisted");
        // Not accounted: 192.0.2.200, same /24, outside the /28, still has its burst.
        assert_eq!(verdicts(&l, "192.0.2.200", 1, 2), [Answer, Drop]);
        assert!(l.check("192.0.2.99".parse().unwrap(), 2, true) == Answer);
        assert_eq!(verdicts(&l, "192.0.2.99", 2, 2), [Answer, Drop]);
        assert!(
            l.check("192.0.2.99".parse().unwrap(), 2, true) == Answer,
            "a valid cookie"
        );
        let probe = SlowLimits::new(&c)
            .unwrap()
            .exempting("127.0.0.1".parse().unwrap());
        assert_eq!(
            verdicts(&probe, "127.0.0.1", 1, 3),
            [Answer; 3],
            "the probe"
        );
        assert_eq!(verdicts(&probe, "127.0.0.2", 1, 2), [Answer, Drop]);
        c.dry_run = true;
        let dry = SlowLimits::new(&c).unwrap();
        assert_eq!(verdicts(&dry, "203.0.113.1", 1, 3), [Answer; 3], "dry run");
        // The class view: 2/s from everyone together, slip 4 (class_slip).
        let l = SlowLimits::new(&config(0, 2, 2)).unwrap();
        let from: Vec<Verdict> = (0..7)
            .map(|i| l.check(format!("203.0.{i}.1").parse().unwrap(), 5, false))
            .collect();
        assert_eq!(from, [Answer, Answer, Drop, Drop, Drop, Slip, Drop]);
    }

    /// Limits while the fast path is filled at start, none once the program limits ahead.
    #[test]
    fn lifted_once_the_program_limits() {
        use Verdict::*;
        let l = SlowLimits::new(&config(1, 0, 0)).unwrap();
        assert_eq!(verdicts(&l, "192.0.2.1", 1, 2), [Answer, Drop]);
        l.lift();
        assert_eq!(verdicts(&l, "192.0.2.1", 1, 3), [Answer; 3]);
    }

    #[test]
    fn a_full_table_forgets_rather_than_grows() {
        let mut c = config(1, 0, 0);
        c.table_size = 8;
        let l = SlowLimits::new(&c).unwrap();
        for i in 0..100 {
            l.check(format!("10.{i}.0.1").parse().unwrap(), 1, false);
        }
        assert!(lock(&l.by_source).len() <= 8);
    }
}
