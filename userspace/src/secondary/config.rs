//! `[[key]]` and `[[zones.secondary]]`: TSIG keys and the zones transferred from primaries.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use domain::tsig::{Algorithm, Key, KeyName};
use serde::Deserialize;

/// `[[key]]`: a TSIG key (RFC 8945), as Knot's `key:` and NSD's `key:` sections write it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key's name, the same on both ends (`xfr-key` or `xfr-key.`).
    pub name: String,
    /// `hmac-sha256` (also `hmac-sha1`, `hmac-sha384`, `hmac-sha512`).
    pub algorithm: String,
    /// The shared secret, base64 (what `keymgr -t` or `tsig-keygen` print).
    pub secret: String,
}

impl fmt::Debug for KeyConfig {
    // The secret stays out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// The key the `domain` crate signs and verifies with; errors name what is wrong.
    pub fn to_key(&self) -> Result<Key> {
        let algorithm =
            Algorithm::from_str(self.algorithm.trim_end_matches('.')).map_err(|_| {
                anyhow::anyhow!(
                    "key {}: unknown algorithm {:?} (hmac-sha1, hmac-sha256, hmac-sha384, \
                     hmac-sha512)",
                    self.name,
                    self.algorithm
                )
            })?;
        let secret: Vec<u8> = domain::utils::base64::decode(&self.secret)
            .map_err(|e| anyhow::anyhow!("key {}: secret is not base64: {e}", self.name))?;
        if secret.is_empty() {
            bail!("key {}: empty secret", self.name);
        }
        let name = KeyName::from_str(&self.name)
            .map_err(|e| anyhow::anyhow!("key {:?}: not a domain name: {e}", self.name))?;
        Key::new(algorithm, &secret, name, None, None)
            .map_err(|e| anyhow::anyhow!("key {}: {e}", self.name))
    }
}

/// A primary's address: `192.0.2.1` (port 53), `192.0.2.1:5300`, `2001:db8::1` or
/// `[2001:db8::1]:5300`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PrimaryAddr(pub SocketAddr);

impl TryFrom<String> for PrimaryAddr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(PrimaryAddr(a));
        }
        s.parse::<IpAddr>()
            .map(|ip| PrimaryAddr(SocketAddr::new(ip, 53)))
            .map_err(|_| {
                format!("{s:?} is not an address (192.0.2.1, 192.0.2.1:53, [2001:db8::1]:53)")
            })
    }
}

/// `[[zones.secondary]]`: a zone whose data comes from primaries by AXFR/IXFR.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// The zone's apex.
    pub origin: String,
    /// Asked in this order; NOTIFY is accepted from these addresses only.
    pub primaries: Vec<PrimaryAddr>,
    /// A `[[key]]` name: transfers, SOA queries and NOTIFY are signed with it (unsigned
    /// NOTIFY refused).
    pub key: Option<String>,
    /// The last good copy, a zone file: served at start until the first refresh.
    pub file: PathBuf,
}

/// Checks what serde can't: keys exist and decode, origins are names and unique.
pub fn check(zones: &[SecondaryConfig], keys: &[KeyConfig]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for k in keys {
        k.to_key()?;
        if !names.insert(k.name.trim_end_matches('.').to_ascii_lowercase()) {
            bail!("key {} is defined twice", k.name);
        }
    }
    let mut origins = std::collections::HashSet::new();
    for z in zones {
        let origin = domain::base::Name::<Vec<u8>>::from_str(&z.origin)
            .map_err(|e| anyhow::anyhow!("zones.secondary: origin {:?}: {e}", z.origin))?;
        if !origins.insert(origin.to_string().to_ascii_lowercase()) {
            bail!("zones.secondary: zone {} is listed twice", z.origin);
        }
        if z.primaries.is_empty() {
            bail!("zones.secondary {}: no primaries", z.origin);
        }
        if let Some(k) = &z.key {
            find_key(keys, k).with_context(|| format!("zones.secondary {}", z.origin))?;
        }
        if z.file.as_os_str().is_empty() {
            bail!("zones.secondary {}: file is empty", z.origin);
        }
    }
    Ok(())
}

/// The `[[key]]` named `name` (case and the final dot don't matter).
pub fn find_key(keys: &[KeyConfig], name: &str) -> Result<Key> {
    let want = name.trim_end_matches('.');
    keys.iter()
        .find(|k| k.name.trim_end_matches('.').eq_ignore_ascii_case(want))
        .with_context(|| format!("no [[key]] named {name:?}"))?
        .to_key()
}
