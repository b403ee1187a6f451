//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): the secrets every
//! anycast node shares (the config's `[cookies]`), and the server cookie they make, which the
//! XDP program verifies to let a client past the rate limits and which both paths send back.
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// `[cookies]`: 128-bit SipHash keys as 32 hex digits. Every node of an anycast service must
/// have the same `secret`; on rollover, nodes first get the new one as `staging`, then swap.
#[derive(serde::Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    /// Answer DNS cookies (default). Off: the COOKIE option is ignored like any unknown option.
    pub enabled: bool,
    /// The secret server cookies are made and verified with; none: a random one per start (a
    /// client's cookie then fails on the other anycast nodes and after a restart).
    pub secret: Option<String>,
    /// A second secret also accepted, for rollover.
    pub staging: Option<String>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            enabled: true,
            secret: None,
            staging: None,
        }
    }
}

/// A 128-bit server secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secret([u8; 16]);

impl Secret {
    pub fn parse(hex: &str) -> Result<Secret> {
        let hex = hex.trim();
        if hex.len() != 32 {
            bail!(
                "a cookie secret is 32 hex digits (128 bits), got {} characters",
                hex.len()
            );
        }
        let v = u128::from_str_radix(hex, 16).context("a cookie secret is hex digits")?;
        Ok(Secret(v.to_be_bytes()))
    }

    /// The SipHash key as the XDP program takes it: the 16 bytes as two little-endian words.
    pub fn words(&self) -> [u64; 2] {
        let (a, b) = self.0.split_at(8);
        [
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        ]
    }

    /// 128 random bits (the kernel's CSPRNG).
    pub fn random() -> Result<Secret> {
        let mut key = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
            .map_err(|_| anyhow::anyhow!("no random bytes for the cookie secret"))?;
        Ok(Secret(key))
    }

    /// RFC 9018 §4.2: version 1, three reserved bytes, the timestamp (seconds, serial number
    /// arithmetic), and SipHash-2-4 of client cookie | version | reserved | timestamp | client
    /// address under this secret.
    pub fn server_cookie(
        &self,
        client: &[u8; 8],
        reserved: [u8; 3],
        ts: u32,
        ip: IpAddr,
    ) -> [u8; 16] {
        let mut head = [0u8; 8];
        head[0] = 1;
        head[1..4].copy_from_slice(&reserved);
        head[4..].copy_from_slice(&ts.to_be_bytes());
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(client);
        h.write(&head);
        match ip {
            IpAddr::V4(a) => h.write(&a.octets()),
            IpAddr::V6(a) => h.write(&a.octets()),
        }
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&head);
        out[8..].copy_from_slice(&h.finish().to_le_bytes());
        out
    }
}

/// RFC 9018 §4.3: a server cookie is accepted up to an hour after its timestamp and up to five
/// minutes before it (clock skew between the nodes sharing the secret), as NSD and BIND do.
pub const MAX_AGE: u32 = 3600;
pub const MAX_FUTURE: u32 = 300;
/// RFC 9018 §4.3: a valid server cookie younger than half an hour is answered with itself (as
/// NSD's COOKIE_VALID_REUSE); an older one, or one under the staging secret, is renewed.
pub const REUSE_AGE: u32 = 1800;

/// The node's cookie handling, built once at start ([`Cookies::from_config`]) and shared by the
/// slow path's workers and (through [`Cookies::xdp_secrets`]) the XDP program's limits.
#[derive(Clone, Debug)]
pub struct Cookies {
    /// Off: the COOKIE option is an unknown option (ignored, never answered).
    pub enabled: bool,
    /// Fresh server cookies are made with it; cookies made with it are accepted.
    pub secret: Secret,
    /// Also accepted (rollover), never used to make cookies.
    pub staging: Option<Secret>,
}

impl Cookies {
    /// From `[cookies]`: the configured secrets, or without `secret` a random one (logged as a
    /// warning: anycast nodes must share one, or a client's cookie fails on the next node).
    pub fn from_config(c: &CookieConfig) -> Result<Cookies> {
        let (secret, staging) = secrets(c)?;
        let secret = match secret {
            Some(s) => s,
            None => {
                if c.enabled {
                    tracing::warn!(
                        "cookies.secret is not set: using a random cookie secret; every node of an anycast service should share one configured secret (cookies.secret), or a client's server cookie is not valid on the other nodes nor after a restart"
                    );
                }
                Secret::random()?
            }
        };
        Ok(Cookies {
            enabled: c.enabled,
            secret,
            staging,
        })
    }

    /// Cookies off (the option is ignored); for callers that don't answer cookies, like the
    /// compiler's comparisons.
    pub fn disabled() -> Cookies {
        Cookies {
            enabled: false,
            secret: Secret([0; 16]),
            staging: None,
        }
    }

    /// What `limits::set_cookies` takes: the same secrets the slow path uses (the random one
    /// too), none at all when cookies are off.
    pub fn xdp_secrets(&self) -> (Option<Secret>, Option<Secret>) {
        if self.enabled {
            (Some(self.secret), self.staging)
        } else {
            (None, None)
        }
    }

    /// RFC 9018 §4.3: `server` (the bytes after the client cookie) is valid for `client` from
    /// `ip` at `now`: exactly 16 bytes, version 1, timestamp within [`MAX_AGE`] before and
    /// [`MAX_FUTURE`] after `now` (serial number arithmetic), and the hash under the secret or
    /// the staging secret, the reserved bytes as sent included.
    pub fn verify(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> bool {
        self.check(client, server, ip, now) != Valid::No
    }

    fn check(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> Valid {
        let Ok(server) = <&[u8; 16]>::try_from(server) else {
            return Valid::No;
        };
        if server[0] != 1 {
            return Valid::No;
        }
        let ts = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        let age = now.wrapping_sub(ts) as i32;
        if age > MAX_AGE as i32 || age < -(MAX_FUTURE as i32) {
            return Valid::No;
        }
        let matches = |s: &Secret| {
            let good = s.server_cookie(client, [server[1], server[2], server[3]], ts, ip);
            // Not secret-dependent timing worth guarding: the hash is public once sent, but
            // compare in constant time anyway, as NSD, BIND and Knot do.
            good[8..]
                .iter()
                .zip(&server[8..])
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        };
        if matches(&self.secret) {
            if age < REUSE_AGE as i32 {
                Valid::Reuse
            } else {
                Valid::Renew
            }
        } else if self.staging.as_ref().is_some_and(matches) {
            Valid::Renew
        } else {
            Valid::No
        }
    }

    /// The COOKIE option's data for an answer to `client` with `server` (what followed the
    /// client cookie, maybe nothing): the client cookie and `server` itself when it is valid
    /// under the main secret and younger than [`REUSE_AGE`], else a fresh server cookie.
    pub fn answer(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> [u8; 24] {
        match <&[u8; 16]>::try_from(server) {
            Ok(s) if self.check(client, server, ip, now) == Valid::Reuse => {
                let mut out = [0u8; 24];
                out[..8].copy_from_slice(client);
                out[8..].copy_from_slice(s);
                out
            }
            _ => self.fresh(client, ip, now),
        }
    }

    /// The client cookie and a fresh server cookie (version 1, reserved 0, timestamp `now`,
    /// hash under the main secret).
    pub fn fresh(&self, client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(client);
        out[8..].copy_from_slice(&self.secret.server_cookie(client, [0; 3], now, ip));
        out
    }
}

/// A server cookie's verdict ([`Cookies::verify`], [`Cookies::answer`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Valid {
    No,
    /// Valid under the staging secret, or older than [`REUSE_AGE`]: answered with a fresh one.
    Renew,
    /// Valid under the main secret and young: answered with itself.
    Reuse,
}

/// Wall-clock seconds as a cookie timestamp (RFC 9018 §4.2: serial number arithmetic, so the
/// truncation to 32 bits is the format), from the coarse clock (the last tick's time): the XDP
/// program stamps the coarse monotonic clock plus the wall clock's offset, which is this same
/// time, so both paths turn to the next second on the same tick.
pub fn now() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the kernel to fill.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } != 0 {
        return SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
    }
    ts.tv_sec as u32
}

/// The configured secrets: (primary, staging).
pub fn secrets(c: &CookieConfig) -> Result<(Option<Secret>, Option<Secret>)> {
    let parse = |s: &Option<String>, key| {
        s.as_deref()
            .map(Secret::parse)
            .transpose()
            .with_context(|| format!("cookies.{key}"))
    };
    let (secret, staging) = (parse(&c.secret, "secret")?, parse(&c.staging, "staging")?);
    if secret.is_none() && staging.is_some() {
        bail!("cookies.staging without cookies.secret");
    }
    Ok((secret, staging))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn client(s: &str) -> [u8; 8] {
        hex(s).try_into().unwrap()
    }

    /// RFC 9018 Appendix A: A.1 and A.2 (IPv4, new and renewed), A.3 (nonzero reserved bytes
    /// from the client are part of the hash), A.4 (IPv6, after a secret rollover).
    #[test]
    fn rfc9018_test_vectors() {
        let s1 = Secret::parse("e5e973e5a6b2a43f48e7dc849e37bfcf").unwrap();
        let ip1: IpAddr = "198.51.100.100".parse().unwrap();
        let c1 = client("2464c4abcf10c957");
        assert_eq!(
            s1.server_cookie(&c1, [0; 3], 1559731985, ip1).to_vec(),
            hex("010000005cf79f111f8130c3eee29480")
        );
        assert_eq!(
            s1.server_cookie(&c1, [0; 3], 1559734385, ip1).to_vec(),
            hex("010000005cf7a871d4a564a1442aca77")
        );
        let ip3: IpAddr = "203.0.113.203".parse().unwrap();
        let c3 = client("fc93fc62807ddb86");
        assert_eq!(
            s1.server_cookie(&c3, [0xab, 0xcd, 0xef], 0x5cf78f71, ip3)
                .to_vec(),
            hex("01abcdef5cf78f71a314227b6679ebf5")
        );
        assert_eq!(
            s1.server_cookie(&c3, [0; 3], 1559734700, ip3).to_vec(),
            hex("010000005cf7a9acf73a7810aca2381e")
        );
        let ip4: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        let c4 = client("22681ab97d52c298");
        let old = Secret::parse("dd3bdf9344b678b185a6f5cb60fca715").unwrap();
        let new = Secret::parse("445536bcd2513298075a5d379663c962").unwrap();
        assert_eq!(
            old.server_cookie(&c4, [0; 3], 0x5cf7c579, ip4).to_vec(),
            hex("010000005cf7c57926556bd0934c72f8")
        );
        assert_eq!(
            new.server_cookie(&c4, [0; 3], 1559741961, ip4).to_vec(),
            hex("010000005cf7c609a6bb79d16625507a")
        );
    }

    #[test]
    fn secrets_are_128_bit_hex() {
        assert!(Secret::parse("e5e973e5a6b2a43f48e7dc849e37bfc").is_err());
        assert!(Secret::parse("x5e973e5a6b2a43f48e7dc849e37bfcf").is_err());
        let c = CookieConfig {
            secret: None,
            staging: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            ..CookieConfig::default()
        };
        assert!(secrets(&c).is_err(), "staging alone");
    }

    fn cookies(staging: Option<&str>) -> Cookies {
        Cookies::from_config(&CookieConfig {
            secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            staging: staging.map(Into::into),
            ..CookieConfig::default()
        })
        .unwrap()
    }

    /// RFC 9018 Appendix A's cookies verify at their own time and within the window, and fail
    /// outside it, from another address, for another client cookie, under another secret.
    #[test]
    fn verify_window_address_and_secrets() {
        let c = cookies(None);
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let cc = client("2464c4abcf10c957");
        let sc = hex("010000005cf79f111f8130c3eee29480");
        let ts = 1559731985u32;
        for now in [ts, ts + 1, ts + MAX_AGE, ts - MAX_FUTURE] {
            assert!(
                c.verify(&cc, &sc, ip, now),
                "now = ts + {}",
                now as i64 - ts as i64
            );
        }
        assert!(!c.verify(&cc, &sc, ip, ts + MAX_AGE + 1), "expired");
        assert!(
            !c.verify(&cc, &sc, ip, ts - MAX_FUTURE - 1),
            "from the future"
        );
        assert!(!c.verify(&cc, &sc, "198.51.100.101".parse().unwrap(), ts));
        assert!(!c.verify(&[0; 8], &sc, ip, ts), "another client cookie");
        let mut bad = sc.clone();
        bad[15] ^= 1;
        assert!(!c.verify(&cc, &bad, ip, ts), "wrong hash");
        let mut v2 = sc.clone();
        v2[0] = 2;
        assert!(!c.verify(&cc, &v2, ip, ts), "version 2");
        assert!(!c.verify(&cc, &sc[..15], ip, ts), "15 bytes");
        let mut long = sc.clone();
        long.push(0);
        assert!(!c.verify(&cc, &long, ip, ts), "17 bytes");
        // Nonzero reserved bytes as the client sent them are hashed (A.3).
        let a3 = hex("01abcdef5cf78f71a314227b6679ebf5");
        assert!(c.verify(
            &client("fc93fc62807ddb86"),
            &a3,
            "203.0.113.203".parse().unwrap(),
            0x5cf78f71
        ));
        // Timestamps across the 32-bit wrap (serial number arithmetic).
        let wrap = c.fresh(&cc, ip, u32::MAX - 10);
        assert!(c.verify(&cc, &wrap[8..], ip, 20));
        assert!(!c.verify(&cc, &wrap[8..], ip, MAX_AGE));
    }

    /// RFC 9018 §4.3 as NSD does it: a valid cookie younger than half an hour is answered with
    /// itself, an older one (or one under the staging secret) with a fresh one, an invalid one
    /// with a fresh one.
    #[test]
    fn young_valid_cookies_are_reused() {
        let c = Cookies::from_config(&CookieConfig {
            secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            staging: Some("dd3bdf9344b678b185a6f5cb60fca715".into()),
            ..CookieConfig::default()
        })
        .unwrap();
        let staging = Cookies {
            secret: c.staging.unwrap(),
            ..c.clone()
        };
        let ip: IpAddr = "198.51.100.100".parse().unwrap();
        let cc = client("2464c4abcf10c957");
        let now = 1_700_000_000;
        let fresh = c.fresh(&cc, ip, now);
        for (age, reused) in [
            (0, true),
            (1799, true),
            (-300, true),
            (1800, false),
            (3600, false),
        ] {
            let made = c.fresh(&cc, ip, now.wrapping_sub(age as u32));
            let want = if reused { made } else { fresh };
            assert_eq!(c.answer(&cc, &made[8..], ip, now), want, "age {age}");
        }
        let by_staging = staging.fresh(&cc, ip, now);
        assert_eq!(c.answer(&cc, &by_staging[8..], ip, now), fresh, "staging");
        let mut bad = c.fresh(&cc, ip, now - 5);
        bad[23] ^= 1;
        assert_eq!(c.answer(&cc, &bad[8..], ip, now), fresh, "invalid");
        assert_eq!(c.answer(&cc, &[], ip, now), fresh, "client cookie only");
    }

    /// A.4: a cookie made under the old secret verifies while the old secret is staging; fresh
    /// cookies are always made with the main secret.
    #[test]
    fn staging_secret_is_accepted_never_used() {
        let old = "dd3bdf9344b678b185a6f5cb60fca715";
        let new = Cookies::from_config(&CookieConfig {
            secret: Some("445536bcd2513298075a5d379663c962".into()),
            staging: Some(old.into()),
            ..CookieConfig::default()
        })
        .unwrap();
        let ip: IpAddr = "2001:db8:220:1:59de:d0f4:8769:82b8".parse().unwrap();
        let client = client("22681ab97d52c298");
        let made_old = hex("010000005cf7c57926556bd0934c72f8");
        assert!(new.verify(&client, &made_old, ip, 0x5cf7c579));
        let no_staging = Cookies {
            staging: None,
            ..new.clone()
        };
        assert!(
            !no_staging.verify(&client, &made_old, ip, 0x5cf7c579),
            "other secret"
        );
        let fresh = new.fresh(&client, ip, 1559741961);
        assert_eq!(fresh[..8], client);
        assert_eq!(fresh[8..].to_vec(), hex("010000005cf7c609a6bb79d16625507a"));
    }

    #[test]
    fn random_secret_and_switches() {
        let a = Cookies::from_config(&CookieConfig::default()).unwrap();
        let b = Cookies::from_config(&CookieConfig::default()).unwrap();
        assert!(a.enabled);
        assert_ne!(a.secret, b.secret, "a random secret per start");
        assert_eq!(a.xdp_secrets(), (Some(a.secret), None));
        let off = Cookies::from_config(&CookieConfig {
            enabled: false,
            secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            staging: None,
        })
        .unwrap();
        assert_eq!(off.xdp_secrets(), (None, None));
        let staged = cookies(Some("445536bcd2513298075a5d379663c962"));
        assert!(staged.xdp_secrets().1.is_some());
    }
}
