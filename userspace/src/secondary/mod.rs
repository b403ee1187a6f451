//! Secondary zones: zones transferred from primaries (AXFR/IXFR with TSIG) on SOA timers and
//! NOTIFY, kept on disk, validated by the zone loader and installed by the daemon's reload path.
//!
//! [`Secondaries`] owns the zones and their threads. Each transfer that validates is written to
//! the zone's `file` and announced on the install channel; the daemon then reloads (the same
//! path as SIGHUP), so both paths flip to the new version together. A zone past its SOA expire
//! is left out of the catalog's specs and listed in [`Secondaries::expired_origins`], which the
//! catalog answers SERVFAIL for.

mod config;
mod notify;
mod records;
#[cfg(test)]
mod tests;
mod transfer;
mod zone;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Result;
use crossbeam_channel::Sender;

pub use config::{KeyConfig, PrimaryAddr, SecondaryConfig, check};
pub use transfer::XfrKind;
pub use zone::{SecondaryZone, TransferNote, ZoneStatus};

use crate::metrics::XfrStats;
use crate::server::NotifyHook;
use crate::zone::ZoneSpec;

/// The secondary zones' handles, without their threads: status and refresh.
#[derive(Clone, Default)]
pub struct ZoneHandles(Vec<Arc<SecondaryZone>>);

impl ZoneHandles {
    pub fn iter(&self) -> impl Iterator<Item = &Arc<SecondaryZone>> {
        self.0.iter()
    }

    /// The zone with this origin (case and the final dot don't matter).
    pub fn zone(&self, origin: &str) -> Option<&Arc<SecondaryZone>> {
        find(&self.0, origin)
    }
}

fn find<'a>(zones: &'a [Arc<SecondaryZone>], origin: &str) -> Option<&'a Arc<SecondaryZone>> {
    let want = origin.trim_end_matches('.');
    zones
        .iter()
        .find(|z| z.origin().trim_end_matches('.').eq_ignore_ascii_case(want))
}

/// Every secondary zone; the daemon's handle on them.
pub struct Secondaries {
    zones: Vec<Arc<SecondaryZone>>,
    threads: Vec<JoinHandle<()>>,
}

impl Secondaries {
    /// The zones, each with its last good copy read from disk (none yet is fine: the first
    /// transfer makes it). No thread runs until [`Secondaries::start`].
    pub fn new(
        configs: &[SecondaryConfig],
        keys: &[KeyConfig],
        stats: &XfrStats,
    ) -> Result<Secondaries> {
        let zones = configs
            .iter()
            .map(|c| SecondaryZone::new(c, keys, stats.clone()).map(Arc::new))
            .collect::<Result<_>>()?;
        Ok(Secondaries {
            zones,
            threads: Vec::new(),
        })
    }

    /// Starts each zone's refresh thread; every new version (or expiry) sends the zone's origin
    /// on `install`.
    pub fn start(&mut self, install: Sender<String>) -> Result<()> {
        for zone in &self.zones {
            let (zone, install) = (zone.clone(), install.clone());
            self.threads.push(
                std::thread::Builder::new()
                    .name(format!("xfr-{}", zone.origin()))
                    .spawn(move || zone.run(&install))?,
            );
        }
        Ok(())
    }

    /// The on-disk copies to load: zones that have one and are not expired.
    pub fn specs(&self) -> Vec<ZoneSpec> {
        self.zones.iter().filter_map(|z| z.spec()).collect()
    }

    /// [`Secondaries::specs`] of the zones named (as sent on the install channel).
    pub fn specs_of(&self, origins: &std::collections::BTreeSet<String>) -> Vec<ZoneSpec> {
        self.zones
            .iter()
            .filter(|z| origins.contains(z.origin()))
            .filter_map(|z| z.spec())
            .collect()
    }

    /// Zones past their SOA expire: answered SERVFAIL.
    pub fn expired_origins(&self) -> Vec<String> {
        self.zones
            .iter()
            .filter(|z| z.status().expired)
            .map(|z| z.origin().to_string())
            .collect()
    }

    /// Per-zone handles: `refresh()` and `status()` (for a control socket).
    pub fn zones(&self) -> &[Arc<SecondaryZone>] {
        &self.zones
    }

    /// The zone with this origin (case and the final dot don't matter).
    pub fn zone(&self, origin: &str) -> Option<&Arc<SecondaryZone>> {
        find(&self.zones, origin)
    }

    /// The handles alone, for threads that outlive no [`Secondaries::stop`] (the control
    /// socket's).
    pub fn handles(&self) -> ZoneHandles {
        ZoneHandles(self.zones.clone())
    }

    /// What the slow path calls with each NOTIFY.
    pub fn notify_hook(&self) -> NotifyHook {
        let zones = self.zones.clone();
        NotifyHook(Arc::new(move |peer, packet| {
            notify::handle(&zones, peer, packet)
        }))
    }

    /// Directories the daemon must be able to write after dropping root.
    pub fn writable_dirs(&self) -> Vec<PathBuf> {
        self.zones.iter().filter_map(|z| z.dir()).collect()
    }

    /// Stops the threads (a transfer in flight ends at its next timeout).
    pub fn stop(self) {
        for zone in &self.zones {
            zone.stop();
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}
