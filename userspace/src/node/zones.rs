//! The node's zones: loading them, reloading all or one, and each zone's status for
//! `rampart ctl zone-status`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::Serialize;
use tracing::{error, warn};

use crate::config::ZonesConfig;
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
/// is reported (file:line) and left out rather than keeping the whole node down.
/// The zones, and the errors loading them reported.
pub fn load_catalog(zones: &ZonesConfig) -> Result<(Catalog, Vec<String>)> {
    let (catalog, errors) = Catalog::load_partial(&zone_specs(zones), zones.dir.as_deref());
    for e in &errors {
        error!("{e}");
    }
    for w in catalog.warnings() {
        warn!("{w}");
    }
    if catalog.zone_count() == 0 {
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
}
