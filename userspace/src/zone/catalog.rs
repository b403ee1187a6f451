//! The catalog: every zone served, loaded from files, and the zone a name falls in.

use super::*;

/// A zone to load: an optional origin (`ORIGIN=FILE` on the command line) and its file.
#[derive(Clone, Debug)]
pub struct ZoneSpec {
    pub origin: Option<String>,
    pub path: PathBuf,
}

impl ZoneSpec {
    /// `ORIGIN=FILE` or just `FILE`.
    pub fn parse(arg: &str) -> ZoneSpec {
        match arg.split_once('=') {
            Some((origin, path)) if !origin.is_empty() => ZoneSpec {
                origin: Some(origin.to_string()),
                path: PathBuf::from(path),
            },
            _ => ZoneSpec {
                origin: None,
                path: PathBuf::from(arg),
            },
        }
    }
}

/// Every zone the server is authoritative for, keyed by origin.
#[derive(Debug, Default)]
pub struct Catalog {
    /// Shared so a reload can keep a zone whose new file fails without copying it.
    pub(super) zones: HashMap<NameKey, Arc<Zone>>,
    pub(super) warnings: Vec<String>,
    /// Secondary zones past their SOA expire: not served, answered SERVFAIL (as Knot and NSD).
    pub(super) expired: std::collections::HashSet<NameKey>,
}

impl Catalog {
    /// Loads every zone in `specs` and every `*.zone` file in `zone_dir`.
    ///
    /// Origins: `ORIGIN=FILE` wins. Otherwise a file named `NAME.zone` starts with `$ORIGIN
    /// NAME.` and the zone's apex is the owner of its first SOA record (normally that same name;
    /// a file may move it with `$ORIGIN`). A file whose name doesn't fit must use absolute names
    /// or its own `$ORIGIN`; its apex is again the first SOA's owner.
    ///
    /// Any error (as `file:line: message`) rejects the whole set: every error of every zone is
    /// returned, so one run shows all of them. Use [`Catalog::load_partial`] to keep the good
    /// zones.
    pub fn load(specs: &[ZoneSpec], zone_dir: Option<&Path>) -> Result<Catalog, Vec<String>> {
        let (catalog, errors) = Catalog::load_partial(specs, zone_dir);
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(errors)
        }
    }

    /// Loads what loads: a zone with errors is left out, the others are kept. Returns the errors.
    pub fn load_partial(specs: &[ZoneSpec], zone_dir: Option<&Path>) -> (Catalog, Vec<String>) {
        Catalog::load_keeping(None, specs, zone_dir)
    }

    /// A reload: like [`Catalog::load_partial`], but a file that fails keeps serving the zone
    /// `previous` loaded from it, as Knot and NSD do; one bad push never takes a good zone away.
    pub fn reload(
        previous: &Catalog,
        specs: &[ZoneSpec],
        zone_dir: Option<&Path>,
    ) -> (Catalog, Vec<String>) {
        Catalog::load_keeping(Some(previous), specs, zone_dir)
    }

    /// Reloads only the zones of `specs` (`rampart ctl reload ZONE`, a secondary zone's new
    /// version); every other zone is kept as it is, its file not read again. A file that fails
    /// keeps serving its previous version, as in [`Catalog::reload`]. Expiry is the caller's to
    /// mark again ([`Catalog::set_expired`]): a zone back from expiry is served.
    pub fn reload_some(&self, specs: &[ZoneSpec]) -> (Catalog, Vec<String>) {
        let mut catalog = Catalog {
            zones: self.zones.clone(),
            warnings: Vec::new(),
            expired: Default::default(),
        };
        let mut errors = Vec::new();
        for (spec, result) in specs.iter().zip(load_parallel(specs)) {
            match result {
                Ok((zone, warnings)) => {
                    if let Some(other) = catalog.zones.get(&zone.origin_key)
                        && other.source != spec.path
                    {
                        errors.push(already_loaded(spec, &zone, other));
                        continue;
                    }
                    catalog.warnings.extend(warnings);
                    // The file may now hold another apex: its old zone goes.
                    catalog.zones.retain(|_, z| z.source != spec.path);
                    catalog
                        .zones
                        .insert(zone.origin_key.clone(), Arc::new(zone));
                }
                Err(e) => {
                    errors.extend(e);
                    if let Some(old) = catalog.zones.values().find(|z| z.source == spec.path) {
                        errors.push(keeping(spec, old));
                    }
                }
            }
        }
        (catalog, errors)
    }

    /// The zone whose apex is `origin` (presentation form, trailing dot optional).
    pub fn zone(&self, origin: &str) -> Option<&Zone> {
        self.zones.get(&NameKey::parse(origin)?).map(|z| &**z)
    }

    pub(super) fn load_keeping(
        previous: Option<&Catalog>,
        specs: &[ZoneSpec],
        zone_dir: Option<&Path>,
    ) -> (Catalog, Vec<String>) {
        let mut all: Vec<ZoneSpec> = specs.to_vec();
        let mut errors = Vec::new();
        if let Some(dir) = zone_dir {
            match zone_dir_specs(dir) {
                Ok(found) => all.extend(found),
                Err(e) => errors.push(format!("{}: {e}", dir.display())),
            }
        }
        let results = load_parallel(&all);
        let mut catalog = Catalog::default();
        for (spec, result) in all.iter().zip(results) {
            match result {
                Ok((zone, warnings)) => {
                    catalog.warnings.extend(warnings);
                    if let Some(prev) = catalog.zones.get(&zone.origin_key) {
                        errors.push(already_loaded(spec, &zone, prev));
                        continue;
                    }
                    catalog
                        .zones
                        .insert(zone.origin_key.clone(), Arc::new(zone));
                }
                Err(e) => {
                    errors.extend(e);
                    let kept =
                        previous.and_then(|p| p.zones.values().find(|z| z.source == spec.path));
                    if let Some(old) = kept {
                        errors.push(keeping(spec, old));
                        catalog.zones.insert(old.origin_key.clone(), old.clone());
                    }
                }
            }
        }
        (catalog, errors)
    }

    /// A catalog of already built zones (tests, the fuzz targets). Later duplicates replace earlier ones.
    pub fn from_zones(zones: impl IntoIterator<Item = Zone>) -> Catalog {
        let zones = zones
            .into_iter()
            .map(|z| (z.origin_key.clone(), Arc::new(z)))
            .collect();
        Catalog {
            zones,
            warnings: Vec::new(),
            expired: Default::default(),
        }
    }

    /// Marks these origins expired (secondary zones past their SOA expire). A zone loaded for
    /// the same origin is dropped: an expired zone is never answered from.
    pub fn set_expired(&mut self, origins: &[String]) {
        for origin in origins {
            if let Some(key) = NameKey::parse(origin) {
                self.zones.remove(&key);
                self.expired.insert(key);
            }
        }
    }

    /// Whether the name falls in an expired zone (the most specific zone it is in, served or
    /// expired, is an expired one).
    pub fn is_expired(&self, key: &[u8]) -> bool {
        !self.expired.is_empty()
            && suffixes(key)
                .find(|s| self.zones.contains_key(*s) || self.expired.contains(*s))
                .is_some_and(|s| self.expired.contains(s))
    }

    pub fn zone_count(&self) -> usize {
        self.zones.len()
    }

    /// Warnings from loading (TTL mismatches, missing glue, ...), as `file:line: warning: ...`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The most specific zone containing the lowercased wire name (RFC 1034 §4.3.2 step 2).
    pub fn find_zone(&self, key: &[u8]) -> Option<&Zone> {
        suffixes(key).find_map(|s| self.zones.get(s).map(|z| &**z))
    }

    /// The closest enclosing zone strictly above `zone`'s apex, if we serve one.
    pub fn parent_zone(&self, zone: &Zone) -> Option<&Zone> {
        self.find_zone(parent_wire(zone.origin_key.as_wire())?)
    }

    /// Every zone in canonical origin order.
    pub fn zones(&self) -> Vec<&Zone> {
        let mut zones: Vec<&Zone> = self.zones.values().map(|z| &**z).collect();
        zones.sort_by(|a, b| a.origin_key.cmp(&b.origin_key));
        zones
    }
}

fn already_loaded(spec: &ZoneSpec, zone: &Zone, other: &Zone) -> String {
    format!(
        "{}: zone {} is already loaded from {}",
        spec.path.display(),
        zone.origin_key,
        other.source.display()
    )
}

fn keeping(spec: &ZoneSpec, old: &Zone) -> String {
    format!(
        "{}: keeping the previously loaded zone {} (serial {})",
        spec.path.display(),
        old.origin_key,
        old.serial()
    )
}

/// What `rampart check` reports for zones that load.
#[derive(Debug)]
pub struct CheckSummary {
    pub zones: Vec<ZoneSummary>,
    pub warnings: Vec<String>,
}

#[derive(Debug)]
pub struct ZoneSummary {
    pub origin: String,
    pub path: PathBuf,
    pub serial: u32,
    pub names: usize,
    pub records: usize,
}

impl fmt::Display for CheckSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for w in &self.warnings {
            writeln!(f, "{w}")?;
        }
        for z in &self.zones {
            writeln!(
                f,
                "zone {} is ok ({}: serial {}, {} names, {} records)",
                z.origin,
                z.path.display(),
                z.serial,
                z.names,
                z.records
            )?;
        }
        Ok(())
    }
}

/// `rampart check FILE...`: load each zone (`ORIGIN=FILE` or `FILE`) and report, like
/// nsd-checkzone, with the catalog for further checks. All errors of all files are returned.
pub fn check(specs: &[ZoneSpec]) -> Result<(CheckSummary, Catalog), Vec<String>> {
    let catalog = Catalog::load(specs, None)?;
    let zones = catalog
        .zones()
        .into_iter()
        .map(|z| ZoneSummary {
            origin: z.origin_key.to_string(),
            path: z.source.clone(),
            serial: z.serial(),
            names: z.node_count(),
            records: z.record_count(),
        })
        .collect();
    let summary = CheckSummary {
        zones,
        warnings: catalog.warnings.clone(),
    };
    Ok((summary, catalog))
}

pub fn zone_dir_specs(dir: &Path) -> std::io::Result<Vec<ZoneSpec>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // Not only regular files: a FIFO or device named *.zone is reported by the load (not
        // a regular file), rather than skipped without a word.
        if path.extension().is_some_and(|e| e == "zone") {
            paths.push(path);
        }
    }
    // Directory order is arbitrary; sorted makes errors and duplicates deterministic.
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| ZoneSpec { origin: None, path })
        .collect())
}

pub(super) type LoadResult = Result<(Zone, Vec<String>), Vec<String>>;

/// Zones are independent, so hundreds of them parse on every core at once.
pub(super) fn load_parallel(specs: &[ZoneSpec]) -> Vec<LoadResult> {
    crate::parallel::map(specs, Zone::load)
}
