//! Rate limits (RRL, the per-class global view, the slow path's miss budget): settings from the
//! config file (`[rrl]`, `[miss_budget]`) and the command line, turned into the XDP program's
//! `Limits` and whitelist.
use std::net::IpAddr;

use anyhow::{Result, bail};
use ipnet::IpNet;
use rampart_common::{LIMIT_COOKIE_STAGING, LIMIT_COOKIES, LIMIT_DRY_RUN, Limits, WhitelistAddr};

use crate::cookie::Secret;

/// Response rate limiting as Knot's mod-rrl and NSD's rrl define it: per source prefix and
/// response class (positive answers by name, NXDOMAIN and NODATA by zone, referrals by
/// delegation, errors), a rate with a burst, and slip. On by default with NSD's defaults
/// (200 responses/s per /24 or /56, slip 2), because a DNS node on the Internet without RRL is
/// an amplifier.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RrlConfig {
    /// RRL: responses per second per source prefix and response class (0: off).
    pub rate: u32,
    /// RRL: responses a bucket may send at once (default: one second's worth, the rate).
    pub burst: Option<u32>,
    /// RRL: every Nth limited answer goes out as TC=1 (header and question only), the rest are
    /// dropped; 0 drops them all, 1 slips them all.
    pub slip: u32,
    /// RRL: IPv4 source prefix length accounted together.
    pub ipv4_prefix: u8,
    /// RRL: IPv6 source prefix length accounted together.
    pub ipv6_prefix: u8,
    /// Source prefix no limit applies to (repeatable), e.g. a monitoring host or a resolver
    /// farm you trust.
    pub whitelist: Vec<IpNet>,
    /// Count what the limits would drop or slip, but answer everything.
    pub dry_run: bool,
    /// Buckets kept per CPU, in two-way sets (a new key displaces the idler of its set).
    pub table_size: u32,
    /// Global view: responses per second per response class from all sources together, above
    /// which that class's answers are slipped or dropped (0: off). A valid server cookie
    /// exempts its client.
    pub class_rate: u32,
    /// Slip ratio for the global view and the miss budget (as --rrl-slip). Sparser than RRL's:
    /// a spread flood's slips go to as many victims, and each is the size of the query, so the
    /// slip ratio is the amplification's floor; resolvers that do cookies aren't limited.
    pub class_slip: u32,
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            rate: 200,
            burst: None,
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            whitelist: Vec::new(),
            dry_run: false,
            table_size: 262_144,
            class_rate: 10_000,
            class_slip: 4,
        }
    }
}

/// The budget of queries the XDP program passes up to the slow path (misses, answers too big
/// for UDP, EDNS and class oddities): per source prefix and in total, so a random-name or
/// wildcard flood can't starve the daemon. Over budget the query slips (TC=1) or is dropped.
/// The `[miss_budget]` section of the config file.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct BudgetConfig {
    /// Queries per second per source prefix passed up to the slow path (0: no limit).
    pub rate: u32,
    /// Queries per second passed up from all sources together (0: no limit).
    pub total_rate: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            rate: 200,
            total_rate: 20_000,
        }
    }
}

/// The command-line flags for the limits: each given one replaces its config key.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LimitFlags {
    /// RRL: responses per second per source prefix and response class, 0: off (rrl.rate)
    /// [default: 200].
    #[arg(long = "rrl-rate")]
    pub rrl_rate: Option<u32>,
    /// RRL: responses a bucket may send at once (rrl.burst) [default: the rate].
    #[arg(long = "rrl-burst")]
    pub rrl_burst: Option<u32>,
    /// RRL: every Nth limited answer goes out as TC=1 (header and question only), the rest are
    /// dropped; 0 drops all, 1 slips all (rrl.slip) [default: 2].
    #[arg(long = "rrl-slip")]
    pub rrl_slip: Option<u32>,
    /// RRL: IPv4 source prefix length accounted together (rrl.ipv4_prefix) [default: 24].
    #[arg(long = "rrl-ipv4-prefix")]
    pub rrl_ipv4_prefix: Option<u8>,
    /// RRL: IPv6 source prefix length accounted together (rrl.ipv6_prefix) [default: 56].
    #[arg(long = "rrl-ipv6-prefix")]
    pub rrl_ipv6_prefix: Option<u8>,
    /// Source prefix no limit applies to (repeatable; rrl.whitelist).
    #[arg(long = "rrl-whitelist")]
    pub rrl_whitelist: Vec<IpNet>,
    /// Count what the limits would drop or slip, answer everything (rrl.dry_run).
    #[arg(long = "rrl-dry-run")]
    pub rrl_dry_run: bool,
    /// Buckets kept per CPU (rrl.table_size), in two-way sets: a new key displaces the idler
    /// bucket of its set [default: 262144].
    #[arg(long = "rrl-table-size")]
    pub rrl_table_size: Option<u32>,
    /// Global view: responses per second per response class from all sources, above which
    /// that class's answers are slipped or dropped (valid server cookies exempt); 0: off (rrl.class_rate)
    /// [default: 10000].
    #[arg(long = "class-rate")]
    pub class_rate: Option<u32>,
    /// Slip ratio of the global view and the miss budget (rrl.class_slip) [default: 4].
    #[arg(long = "class-slip")]
    pub class_slip: Option<u32>,
    /// Queries per second per source prefix passed up to the slow path; 0: no limit
    /// (miss_budget.rate) [default: 200].
    #[arg(long = "miss-rate")]
    pub miss_rate: Option<u32>,
    /// Queries per second passed up from all sources; 0: no limit (miss_budget.total_rate)
    /// [default: 20000].
    #[arg(long = "miss-total-rate")]
    pub miss_total_rate: Option<u32>,
}

impl LimitFlags {
    /// Apply the given flags over the config file's keys.
    pub fn apply(self, rrl: &mut RrlConfig, budget: &mut BudgetConfig) {
        fn one<T>(key: &mut T, flag: Option<T>) {
            if let Some(v) = flag {
                *key = v;
            }
        }
        one(&mut rrl.rate, self.rrl_rate);
        if self.rrl_burst.is_some() {
            rrl.burst = self.rrl_burst;
        }
        one(&mut rrl.slip, self.rrl_slip);
        one(&mut rrl.ipv4_prefix, self.rrl_ipv4_prefix);
        one(&mut rrl.ipv6_prefix, self.rrl_ipv6_prefix);
        if !self.rrl_whitelist.is_empty() {
            rrl.whitelist = self.rrl_whitelist;
        }
        rrl.dry_run |= self.rrl_dry_run;
        one(&mut rrl.table_size, self.rrl_table_size);
        one(&mut rrl.class_rate, self.class_rate);
        one(&mut rrl.class_slip, self.class_slip);
        one(&mut budget.rate, self.miss_rate);
        one(&mut budget.total_rate, self.miss_total_rate);
    }
}

const NS_PER_SEC: u64 = 1_000_000_000;

/// GCRA parameters for `rate` per second with a burst of `burst`: (interval, tolerance) in ns.
fn gcra(rate: u32, burst: u32) -> (u64, u64) {
    if rate == 0 {
        return (0, 0);
    }
    let interval = (NS_PER_SEC / rate as u64).max(1);
    (interval, interval * burst.max(1) as u64 - interval)
}

/// IPv4 mask for a prefix length, as the program reads the address (network byte order).
fn v4_mask(len: u8) -> u32 {
    let bits = u32::MAX.checked_shl(32 - len as u32).unwrap_or(0);
    u32::from_ne_bytes(bits.to_be_bytes())
}

/// IPv6 mask as two u64 read from the packet in memory order.
fn v6_mask(len: u8) -> [u64; 2] {
    let bits = u128::MAX.checked_shl(128 - len as u32).unwrap_or(0);
    let b = bits.to_be_bytes();
    [
        u64::from_ne_bytes(b[..8].try_into().expect("8 bytes")),
        u64::from_ne_bytes(b[8..].try_into().expect("8 bytes")),
    ]
}

/// Everything the program's `LIMITS` slot holds but the cookie secrets (see `cookie`).
pub fn to_limits(rrl: &RrlConfig, budget: &BudgetConfig, cpus: u32) -> Result<Limits> {
    if rrl.ipv4_prefix > 32 || rrl.ipv6_prefix > 128 {
        bail!(
            "RRL prefix lengths: IPv4 0-32, IPv6 0-128 (got /{} and /{})",
            rrl.ipv4_prefix,
            rrl.ipv6_prefix
        );
    }
    // The aggregate views are kept per CPU: each CPU gets its share of the node's rate.
    let cpus = cpus.max(1);
    let share = |rate: u32| if rate == 0 { 0 } else { rate.div_ceil(cpus) };
    let (rrl_interval, rrl_burst) = gcra(rrl.rate, rrl.burst.unwrap_or(rrl.rate));
    let class = share(rrl.class_rate);
    let (global_interval, global_burst) = gcra(class, class);
    let (budget_interval, budget_burst) = gcra(budget.rate, budget.rate);
    let total = share(budget.total_rate);
    let (total_interval, total_burst) = gcra(total, total);
    Ok(Limits {
        flags: if rrl.dry_run { LIMIT_DRY_RUN } else { 0 },
        rrl_slip: rrl.slip,
        v4_mask: v4_mask(rrl.ipv4_prefix),
        global_slip: rrl.class_slip,
        v6_mask: v6_mask(rrl.ipv6_prefix),
        rrl_interval,
        rrl_burst,
        global_interval,
        global_burst,
        budget_interval,
        budget_burst,
        total_interval,
        total_burst,
        ..Limits::default()
    })
}

/// Put the cookie secrets into the program's limits: its cookie stage checks server cookies with
/// them (a valid one exempts its client from RRL and the global view) and makes fresh ones.
pub fn set_cookies(l: &mut Limits, secret: Option<Secret>, staging: Option<Secret>) {
    if let Some(s) = secret {
        l.flags |= LIMIT_COOKIES;
        l.cookie_secret = s.words();
    }
    if let Some(s) = staging {
        l.flags |= LIMIT_COOKIE_STAGING;
        l.cookie_staging = s.words();
    }
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC (what bpf_ktime_get_ns reads), in ns, wrapping.
pub fn clock_offset() -> u64 {
    crate::clock::read_ns(libc::CLOCK_REALTIME).wrapping_sub(crate::clock::monotonic_ns())
}

/// A whitelist prefix as the program's LPM key: (prefix length, address as IPv6, IPv4 mapped).
pub fn whitelist_key(net: &IpNet) -> (u32, WhitelistAddr) {
    match net.trunc().addr() {
        IpAddr::V4(a) => (net.prefix_len() as u32 + 96, a.to_ipv6_mapped().octets()),
        IpAddr::V6(a) => (net.prefix_len() as u32, a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_in_packet_byte_order() {
        let m = v4_mask(24);
        assert_eq!(m.to_ne_bytes(), [255, 255, 255, 0]);
        assert_eq!(v4_mask(0), 0);
        assert_eq!(v4_mask(32), u32::MAX);
        let [a, b] = v6_mask(56);
        assert_eq!(a.to_ne_bytes(), [255, 255, 255, 255, 255, 255, 255, 0]);
        assert_eq!(b.to_ne_bytes(), [0; 8]);
        let [a, b] = v6_mask(60);
        assert_eq!(a.to_ne_bytes(), [255, 255, 255, 255, 255, 255, 255, 0xf0]);
        assert_eq!(b, 0);
    }

    #[test]
    fn rates_become_gcra_intervals() {
        assert_eq!(gcra(0, 10), (0, 0));
        assert_eq!(gcra(200, 200), (5_000_000, 199 * 5_000_000));
        assert_eq!(gcra(1, 1), (NS_PER_SEC, 0));
        let l = to_limits(&RrlConfig::default(), &BudgetConfig::default(), 2).unwrap();
        assert_eq!(
            l.global_interval,
            NS_PER_SEC / 5_000,
            "10,000/s over 2 CPUs"
        );
        let off = RrlConfig {
            rate: 0,
            class_rate: 0,
            ..RrlConfig::default()
        };
        let l = to_limits(
            &off,
            &BudgetConfig {
                rate: 0,
                total_rate: 0,
            },
            2,
        )
        .unwrap();
        assert_eq!(
            (l.rrl_interval, l.global_interval, l.budget_interval),
            (0, 0, 0)
        );
    }

    #[test]
    fn config_file_keys() {
        let c: RrlConfig =
            serde_json::from_str(r#"{"rate": 20, "slip": 1, "whitelist": ["192.0.2.0/24"]}"#)
                .unwrap();
        assert_eq!((c.rate, c.slip, c.ipv4_prefix), (20, 1, 24));
        assert_eq!(
            whitelist_key(&c.whitelist[0]),
            (
                120,
                "::ffff:192.0.2.0"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets()
            )
        );
        assert!(serde_json::from_str::<RrlConfig>(r#"{"rat": 20}"#).is_err());
    }
}
