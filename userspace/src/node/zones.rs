//! The node's zones: loading them, reloading all or one, and each zone's status for
//! `rampart ctl zone-status`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use serde::Serialize;
use tracing::{error, warn};

use crate::config::ZonesConfig;
use crate::secondary::{Secondaries, SecondaryZone, XfrKind, ZoneHandles};
use crate::zone::{self, Catalog, ZoneSpec};

/// Where a zone's data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ZoneSource {
    /// A master file, read at start and on reload.
    File { path: PathBuf },
    /// A secondary zone, transferred from these primaries.
    Primaries { addresses: Vec<SocketAddr> },
}

/// One zone as `rampart ctl zone-status` shows it. Times are Unix milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ZoneStatus {
    /// The apex (for a file that never loaded: the origin it was given or its file name's).
    pub zone: String,
    pub source: ZoneSource,
    /// The serial served; none when the zone has never loaded.
    pub serial: Option<u32>,
    /// When the version served was loaded.
    pub loaded_unix_ms: Option<u64>,
    /// Its answers in the XDP maps; none without XDP.
    pub answers: Option<usize>,
    /// The last load's errors (the previous version, if any, is still served).
    pub last_error: Option<String>,
    /// Secondary zones: the next SOA check.
    pub next_refresh_unix_ms: Option<u64>,
    /// Secondary zones: their transfers, read when asked.
    pub transfer: Option<TransferStatus>,
}

/// A secondary zone's refreshes, as `rampart ctl zone-status` shows them. Times are Unix
/// milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransferStatus {
    /// The version transferred last (served once the reload it triggers is done).
    pub serial: Option<u32>,
    /// The primary the last refresh got its answer from.
    pub primary: Option<SocketAddr>,
    pub last_transfer: Option<LastTransfer>,
    /// When a primary last answered (the expire timer runs from it).
    pub last_refresh_unix_ms: Option<u64>,
    /// The last refresh's failure; cleared by one that works.
    pub last_error: Option<String>,
    pub expires_unix_ms: Option<u64>,
    /// Past its SOA expire: answered SERVFAIL.
    pub expired: bool,
}

/// The last transfer that brought a new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LastTransfer {
    pub unix_ms: u64,
    pub primary: SocketAddr,
    pub kind: XfrKind,
    pub serial: u32,
    pub duration_ms: u64,
    pub bytes: usize,
}

/// Every zone's status, by zone name.
#[derive(Clone, Debug, Default)]
pub struct ZoneTable(BTreeMap<String, ZoneStatus>);

/// What one load or reload did, for [`ZoneTable::update`].
pub struct Loaded<'a> {
    pub catalog: &'a Catalog,
    /// The files read this time (the others kept their zones as they were).
    pub tried: &'a [ZoneSpec],
    /// Every file was read (start, full reload): files that failed before and weren't read
    /// again are gone from the config.
    pub full: bool,
    pub errors: &'a [String],
    /// Answers per zone, in [`Catalog::zones`] order, when the XDP maps now hold them.
    pub answers: Option<&'a [usize]>,
    pub now_unix_ms: u64,
}

impl ZoneTable {
    pub fn zones(&self) -> impl Iterator<Item = &ZoneStatus> {
        self.0.values()
    }

    /// The status of `name` (trailing dot and case optional).
    pub fn get(&self, name: &str) -> Option<&ZoneStatus> {
        let want = canonical(name);
        self.0.get(&want)
    }

    /// After a load: the catalog's zones, and the files tried that gave no zone.
    pub fn update(&mut self, l: &Loaded) {
        let mut next = BTreeMap::new();
        for (i, z) in l.catalog.zones().into_iter().enumerate() {
            let name = z.origin_key().to_string();
            let old = self.0.get(&name);
            let tried = l.tried.iter().any(|s| s.path == z.source());
            let errors = errors_for(l.errors, z.source());
            let fresh = tried && errors.is_empty();
            next.insert(
                name.clone(),
                ZoneStatus {
                    zone: name,
                    source: ZoneSource::File {
                        path: z.source().to_owned(),
                    },
                    serial: Some(z.serial()),
                    loaded_unix_ms: match old {
                        Some(o) if !fresh => o.loaded_unix_ms,
                        _ => Some(l.now_unix_ms),
                    },
                    answers: match l.answers {
                        Some(counts) => counts.get(i).copied(),
                        None => old.and_then(|o| o.answers),
                    },
                    last_error: if tried {
                        summary(&errors)
                    } else {
                        old.and_then(|o| o.last_error.clone())
                    },
                    next_refresh_unix_ms: None,
                    transfer: None,
                },
            );
        }
        let served: BTreeSet<&Path> = l.catalog.zones().into_iter().map(|z| z.source()).collect();
        for spec in l
            .tried
            .iter()
            .filter(|s| !served.contains(s.path.as_path()))
        {
            let name = canonical(&origin_guess(spec));
            let errors = errors_for(l.errors, &spec.path);
            let status = ZoneStatus {
                zone: name.clone(),
                source: ZoneSource::File {
                    path: spec.path.clone(),
                },
                serial: None,
                loaded_unix_ms: None,
                answers: None,
                last_error: summary(&errors).or_else(|| Some("not loaded".into())),
                next_refresh_unix_ms: None,
                transfer: None,
            };
            next.entry(name).or_insert(status);
        }
        if !l.full {
            for (name, old) in &self.0 {
                if old.serial.is_none() {
                    next.entry(name.clone()).or_insert_with(|| old.clone());
                }
            }
        }
        self.0 = next;
    }

    /// The table with the secondary zones' refresh state read now: their primaries as the
    /// source, their transfers; one not served (no copy yet, expired) is listed too.
    pub fn with_secondaries(&self, secondaries: &ZoneHandles) -> ZoneTable {
        let mut table = self.clone();
        for z in secondaries.iter() {
            let name = canonical(z.origin());
            let served = table.0.remove(&name);
            table
                .0
                .insert(name.clone(), secondary_status(name, served, z));
        }
        table
    }
}

/// A secondary zone's row: what the catalog serves (if anything) and its refresh state.
fn secondary_status(name: String, served: Option<ZoneStatus>, zone: &SecondaryZone) -> ZoneStatus {
    let s = zone.status();
    let transfer = TransferStatus {
        serial: s.serial,
        primary: s.primary,
        last_transfer: s.last_transfer.map(|t| LastTransfer {
            unix_ms: unix_ms(t.at),
            primary: t.primary,
            kind: t.kind,
            serial: t.serial,
            duration_ms: t.duration.as_millis() as u64,
            bytes: t.bytes,
        }),
        last_refresh_unix_ms: s.last_refresh.map(unix_ms),
        last_error: s.last_error.clone(),
        expires_unix_ms: s.expires.map(unix_ms),
        expired: s.expired,
    };
    let not_served = if s.expired {
        "expired: no primary reached within the SOA expire (SERVFAIL)"
    } else {
        "no copy yet: waiting for the first transfer"
    };
    let mut row = served.unwrap_or(ZoneStatus {
        zone: name,
        source: ZoneSource::Primaries {
            addresses: Vec::new(),
        },
        serial: None,
        loaded_unix_ms: None,
        answers: None,
        last_error: Some(not_served.into()),
        next_refresh_unix_ms: None,
        transfer: None,
    });
    row.source = ZoneSource::Primaries {
        addresses: zone.primaries(),
    };
    // A failed refresh is the zone's error too; a loading error of its copy stays first.
    if let Some(e) = &s.last_error {
        row.last_error = Some(match row.last_error.take() {
            Some(load) if row.serial.is_some() => format!("{load}; refresh: {e}"),
            _ => format!("refresh: {e}"),
        });
    }
    row.next_refresh_unix_ms = s.next_refresh.map(unix_ms);
    row.transfer = Some(transfer);
    row
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `example.com`, `Example.COM.` -> `example.com.`
fn canonical(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

/// The origin a file would have had: the one given, else its name's (`NAME.zone`).
fn origin_guess(spec: &ZoneSpec) -> String {
    spec.origin.clone().unwrap_or_else(|| {
        let name = spec
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        name.strip_suffix(".zone").unwrap_or(&name).to_owned()
    })
}

/// The load's errors that are about `path` (`path:line: message`, `path: message`).
fn errors_for<'a>(errors: &'a [String], path: &Path) -> Vec<&'a str> {
    let prefix = format!("{}:", path.display());
    errors
        .iter()
        .filter(|e| e.starts_with(&prefix))
        .map(String::as_str)
        .collect()
}

fn summary(errors: &[&str]) -> Option<String> {
    const SHOWN: usize = 3;
    errors.first()?;
    let mut s = errors
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join("; ");
    if errors.len() > SHOWN {
        s.push_str(&format!(" (+{} more: see the log)", errors.len() - SHOWN));
    }
    Some(s)
}

pub fn zone_specs(zones: &ZonesConfig) -> Vec<ZoneSpec> {
    zones.files.iter().map(|z| ZoneSpec::parse(z)).collect()
}

/// Every file a full load reads: the listed ones and the zone dir's.
pub fn all_specs(zones: &ZonesConfig) -> Vec<ZoneSpec> {
    let mut specs = zone_specs(zones);
    if let Some(dir) = &zones.dir {
        specs.extend(zone::zone_dir_specs(dir).unwrap_or_default());
    }
    specs
}

/// Startup: serve every zone that loads, as Knot and NSD do; one broken file among hundreds
/// is reported (file:line) and left out rather than keeping the whole node down. Secondary
/// zones are loaded from their on-disk copies; those past their expire are marked expired.
/// The zones, and the errors loading them reported.
pub fn load_catalog(
    zones: &ZonesConfig,
    secondaries: &Secondaries,
) -> Result<(Catalog, Vec<String>)> {
    let mut specs = zone_specs(zones);
    specs.extend(secondaries.specs());
    let (mut catalog, errors) = Catalog::load_partial(&specs, zones.dir.as_deref());
    catalog.set_expired(&secondaries.expired_origins());
    for e in &errors {
        error!("{e}");
    }
    for w in catalog.warnings() {
        warn!("{w}");
    }
    // A secondary zone without a copy yet is served once its first transfer is in; no zones
    // configured at all is a resolver alone (`Config::check` allows it only then).
    let none_asked = zones.files.is_empty() && zones.dir.is_none();
    if catalog.zone_count() == 0 && secondaries.zones().is_empty() && !none_asked {
        bail!("no zone loaded");
    }
    Ok((catalog, errors))
}

/// The `*.zone` files the zone dir has had since the start. One removed since is asked for again
/// on reload, so it fails like a missing `--zone` file and keeps serving its previous version
/// (with the error logged), as Knot and NSD keep a zone whose file is gone; a restart drops it.
#[derive(Debug, Default)]
pub struct ZoneDirFiles(BTreeSet<PathBuf>);

impl ZoneDirFiles {
    pub fn scan(dir: Option<&Path>) -> ZoneDirFiles {
        let mut files = ZoneDirFiles::default();
        files.update(dir);
        files
    }

    /// Adds the files there now; returns the known ones that are gone.
    pub fn update(&mut self, dir: Option<&Path>) -> Vec<PathBuf> {
        let Some(dir) = dir else { return Vec::new() };
        // The same paths the catalog's loader makes (`read_dir` entries), so they match its
        // zones' sources.
        let now: BTreeSet<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "zone") && p.is_file())
            .collect();
        let gone = self.0.difference(&now).cloned().collect();
        self.0.extend(now);
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, serial: u32, extra: &str) -> PathBuf {
        let path = dir.join(name);
        let origin = name.strip_suffix(".zone").unwrap();
        std::fs::write(
            &path,
            format!(
                "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns hm {serial} 1 1 1 1\n@ NS ns\nns A 192.0.2.1\n{extra}"
            ),
        )
        .unwrap();
        path
    }

    /// Statuses follow loads: serials, load times kept for zones not read again, errors on the
    /// zone that failed (still serving its previous serial), a file that never loaded listed
    /// under its file name's origin.
    #[test]
    fn table_follows_loads() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.test.zone", 1, "");
        write(dir.path(), "b.test.zone", 7, "");
        std::fs::write(dir.path().join("c.test.zone"), "garbage\n").unwrap();
        let config = ZonesConfig {
            files: Vec::new(),
            dir: Some(dir.path().to_owned()),
            ..ZonesConfig::default()
        };
        let specs = all_specs(&config);
        assert_eq!(specs.len(), 3);
        let (catalog, errors) = Catalog::load_partial(&[], config.dir.as_deref());
        let mut table = ZoneTable::default();
        table.update(&Loaded {
            catalog: &catalog,
            tried: &specs,
            full: true,
            errors: &errors,
            answers: Some(&[4, 5]),
            now_unix_ms: 1000,
        });
        let a = table.get("A.test").unwrap();
        assert_eq!(
            (
                a.serial,
                a.loaded_unix_ms,
                a.answers,
                a.last_error.as_deref()
            ),
            (Some(1), Some(1000), Some(4), None)
        );
        let c = table.get("c.test.").unwrap();
        assert_eq!(c.serial, None);
        assert!(
            c.last_error.as_deref().unwrap().contains("c.test.zone"),
            "{c:?}"
        );
        // Only b is read again, and it now fails: a keeps its load time, b its serial 7.
        let b_path = write(dir.path(), "b.test.zone", 8, "bad line here\n");
        let one = [ZoneSpec {
            origin: None,
            path: b_path,
        }];
        let (catalog, errors) = catalog.reload_some(&one);
        assert!(!errors.is_empty());
        table.update(&Loaded {
            catalog: &catalog,
            tried: &one,
            full: false,
            errors: &errors,
            answers: None,
            now_unix_ms: 2000,
        });
        let a = table.get("a.test").unwrap();
        assert_eq!((a.loaded_unix_ms, a.answers), (Some(1000), Some(4)));
        let b = table.get("b.test").unwrap();
        assert_eq!((b.serial, b.loaded_unix_ms), (Some(7), Some(1000)));
        assert!(
            b.last_error.as_deref().unwrap().contains("keeping"),
            "{b:?}"
        );
        assert!(table.get("c.test").is_some(), "still listed");
        assert!(table.get("d.test").is_none());
    }

    /// Secondary zones in zone-status: their primaries as the source and their transfer state,
    /// one with an on-disk copy served with its serial, one without a copy listed as waiting.
    #[test]
    fn secondaries_join_the_table() {
        use crate::secondary::{PrimaryAddr, SecondaryConfig};
        let dir = tempfile::tempdir().unwrap();
        // The expire (a day) keeps the copy served.
        let copy = dir.path().join("a.test.zone");
        std::fs::write(
            &copy,
            "$ORIGIN a.test.\n$TTL 300\n@ IN SOA ns hm 4 3600 600 86400 60\n@ IN NS ns\n\
             ns IN A 192.0.2.1\n",
        )
        .unwrap();
        let primary: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let config = |origin: &str, file: PathBuf| SecondaryConfig {
            origin: origin.into(),
            primaries: vec![PrimaryAddr(primary)],
            key: None,
            file,
        };
        let configs = [
            config("a.test", copy),
            config("b.test", dir.path().join("b.test.zone")),
        ];
        let secondaries =
            Secondaries::new(&configs, &[], &crate::metrics::XfrStats::default()).unwrap();
        let (catalog, errors) = load_catalog(&ZonesConfig::default(), &secondaries).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        let mut table = ZoneTable::default();
        table.update(&Loaded {
            catalog: &catalog,
            tried: &secondaries.specs(),
            full: true,
            errors: &errors,
            answers: None,
            now_unix_ms: 1000,
        });
        assert!(table.get("b.test").is_none(), "not in the catalog");
        let table = table.with_secondaries(&secondaries.handles());
        let primaries = ZoneSource::Primaries {
            addresses: vec![primary],
        };
        let a = table.get("a.test").unwrap();
        let t = a.transfer.as_ref().unwrap();
        assert_eq!(
            (&a.source, a.serial, a.loaded_unix_ms, &a.last_error),
            (&primaries, Some(4), Some(1000), &None)
        );
        assert_eq!(
            (t.serial, t.expired, &t.last_transfer),
            (Some(4), false, &None)
        );
        assert!(a.next_refresh_unix_ms.is_some());
        let b = table.get("b.test.").unwrap();
        assert_eq!((&b.source, b.serial), (&primaries, None));
        assert!(
            b.last_error.as_deref().unwrap().contains("no copy yet"),
            "{b:?}"
        );
        assert_eq!(b.transfer.as_ref().unwrap().serial, None);
    }
}
