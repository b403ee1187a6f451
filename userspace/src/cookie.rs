//! DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018): the secrets every
//! anycast node shares (the config's `[cookies]`), and the server cookie they make, which the
//! XDP program verifies to let a client past the rate limits.
use std::net::IpAddr;

use anyhow::{Context, Result, bail};
use siphasher::sip::SipHasher24;
use std::hash::Hasher;

/// `[cookies]`: 128-bit SipHash keys as 32 hex digits. Every node of an anycast service must
/// have the same `secret`; on rollover, nodes first get the new one as `staging`, then swap.
#[derive(serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    /// The secret server cookies are verified (and made) with; none: cookies are not checked
    /// and give no exemption.
    pub secret: Option<String>,
    /// A second secret also accepted, for rollover.
    pub staging: Option<String>,
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

    /// RFC 9018 §4.2: version 1, three reserved bytes, the timestamp (seconds, serial number
    /// arithmetic), and SipHash-2-4 of client cookie | version | reserved | timestamp | client
    /// address under this secret. Not yet called outside the tests: neither path sends server
    /// cookies yet (README, "DNS cookies").
    #[cfg_attr(not(test), allow(dead_code))]
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
        };
        assert!(secrets(&c).is_err(), "staging alone");
    }
}
