//! A secondary zone's records as transferred: AXFR replaces them, IXFR's deletions and
//! additions edit them, and they are written out as the zone file the loader validates.

use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use domain::base::{Record, ToName};
use domain::rdata::ZoneRecordData;
use domain::zonefile::inplace::{Entry, Zonefile};

/// The SOA values the secondary's timers run on (RFC 1035 §3.3.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoaTimers {
    pub serial: u32,
    pub refresh: Duration,
    pub retry: Duration,
    pub expire: Duration,
}

/// Owner (lowercased), type and RDATA text: what IXFR deletes a record by (TTL aside).
type RecordKey = (String, u16, String);

/// Every record of one version of the zone, as zone file lines.
#[derive(Clone, Debug, Default)]
pub struct RecordSet {
    records: BTreeMap<RecordKey, String>,
    soa: Option<SoaTimers>,
}

fn absolute(name: impl Display) -> String {
    let s = name.to_string();
    if s.ends_with('.') { s } else { s + "." }
}

impl RecordSet {
    pub fn soa(&self) -> Option<SoaTimers> {
        self.soa
    }

    /// How many records (the SOA included).
    pub fn count(&self) -> usize {
        self.records.len()
    }

    pub fn clear(&mut self) {
        self.records.clear();
        self.soa = None;
    }

    fn key<N: ToName + Display, O: AsRef<[u8]>>(
        record: &Record<N, ZoneRecordData<O, N>>,
    ) -> RecordKey {
        (
            absolute(record.owner()).to_ascii_lowercase(),
            record.rtype().to_int(),
            record.data().to_string(),
        )
    }

    /// Adds a record (an SOA replaces the zone's SOA).
    pub fn add<N: ToName + Display, O: AsRef<[u8]>>(
        &mut self,
        record: &Record<N, ZoneRecordData<O, N>>,
    ) {
        if let ZoneRecordData::Soa(soa) = record.data() {
            self.records
                .retain(|k, _| k.1 != domain::base::Rtype::SOA.to_int());
            self.soa = Some(SoaTimers {
                serial: soa.serial().into_int(),
                refresh: soa.refresh().into(),
                retry: soa.retry().into(),
                expire: soa.expire().into(),
            });
        }
        let line = format!(
            "{} {} {} {} {}",
            absolute(record.owner()),
            record.ttl().as_secs(),
            record.class(),
            record.rtype(),
            record.data()
        );
        self.records.insert(Self::key(record), line);
    }

    /// Deletes a record; one that isn't there is an error (the primary's diff doesn't apply to
    /// our version, so the transfer must not be used).
    pub fn delete<N: ToName + Display, O: AsRef<[u8]>>(
        &mut self,
        record: &Record<N, ZoneRecordData<O, N>>,
    ) -> Result<()> {
        if matches!(record.data(), ZoneRecordData::Soa(_)) {
            // The old version's SOA: replaced by the new one's, which the diff adds.
            return Ok(());
        }
        let key = Self::key(record);
        if self.records.remove(&key).is_none() {
            bail!(
                "IXFR deletes {} {} {}, which our copy doesn't hold",
                key.0,
                record.rtype(),
                key.2
            );
        }
        Ok(())
    }

    /// The zone file text: absolute names only, so no `$ORIGIN` is needed.
    pub fn to_text(&self, origin: &str) -> String {
        let mut text = format!("; secondary zone {origin}, written by rampart\n");
        // The SOA first: the loader takes the apex from the first SOA.
        let soa = domain::base::Rtype::SOA.to_int();
        for line in self
            .records
            .iter()
            .filter(|(k, _)| k.1 == soa)
            .map(|(_, l)| l)
        {
            let _ = writeln!(text, "{line}");
        }
        for line in self
            .records
            .iter()
            .filter(|(k, _)| k.1 != soa)
            .map(|(_, l)| l)
        {
            let _ = writeln!(text, "{line}");
        }
        text
    }

    /// Reads a copy written by [`RecordSet::to_text`] (or any zone file of absolute names).
    pub fn read(path: &Path, origin: &str) -> Result<RecordSet> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let mut zonefile = Zonefile::new();
        zonefile.extend_from_slice(&bytes);
        zonefile.set_origin(
            <domain::base::Name<bytes::Bytes> as std::str::FromStr>::from_str(origin)
                .map_err(|e| anyhow::anyhow!("origin {origin}: {e}"))?,
        );
        let mut set = RecordSet::default();
        loop {
            match zonefile.next_entry() {
                Ok(Some(Entry::Record(r))) => set.add(&r),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => bail!("{}: {e}", path.display()),
            }
        }
        if set.soa.is_none() {
            bail!("{}: no SOA record", path.display());
        }
        Ok(set)
    }
}
