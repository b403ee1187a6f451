//! Reload statistics: reloads by result, when the last one ran and how long it took, and the
//! errors zone loads reported.
use std::{
    sync::atomic::AtomicU64,
    time::{Duration, SystemTime},
};

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

type Label = [(&'static str, &'static str); 1];

/// Whether a reload did all it was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    /// Every zone loaded and the fast path (if any) holds the new answers.
    Ok,
    /// A zone failed (it keeps its previous version) or the fast path's install failed.
    Failed,
}

/// Handles on shared atomics: the main loop records, the endpoint reads.
#[derive(Clone, Debug, Default)]
pub struct ReloadStats {
    reloads: Family<Label, Counter>,
    last_timestamp: Gauge<f64, AtomicU64>,
    last_duration: Gauge<f64, AtomicU64>,
    zone_errors: Counter,
}

impl ReloadStats {
    pub fn new() -> ReloadStats {
        let stats = ReloadStats::default();
        // Both results from the start, so a rate() over them has a first sample.
        for result in ["ok", "failed"] {
            let _ = stats.reloads.get_or_create(&[("result", result)]);
        }
        stats
    }

    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rampart_reloads",
            "Zone reloads (SIGHUP), by result: failed when a zone kept its previous version or \
             the fast path's install failed",
            self.reloads.clone(),
        );
        registry.register(
            "rampart_last_reload_timestamp_seconds",
            "When the last reload started (Unix time; 0: none since the start)",
            self.last_timestamp.clone(),
        );
        registry.register(
            "rampart_last_reload_duration_seconds",
            "How long the last reload took, parsing to both paths serving it",
            self.last_duration.clone(),
        );
        registry.register(
            "rampart_zone_load_errors",
            "Errors zone loads logged, at the start and on reloads (a broken zone logs each of its \
             errors and, on a reload, that it keeps its previous version)",
            self.zone_errors.clone(),
        );
    }

    /// Errors the zone loads at the start reported.
    pub fn load_errors(&self, n: usize) {
        self.zone_errors.inc_by(n as u64);
    }

    /// One reload, started at `at`, that reported `zone_errors` errors.
    pub fn reloaded(
        &self,
        at: SystemTime,
        took: Duration,
        zone_errors: usize,
        result: ReloadResult,
    ) {
        let result = match result {
            ReloadResult::Ok => "ok",
            ReloadResult::Failed => "failed",
        };
        self.reloads.get_or_create(&[("result", result)]).inc();
        let since_epoch = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        self.last_timestamp.set(since_epoch.as_secs_f64());
        self.last_duration.set(took.as_secs_f64());
        self.load_errors(zone_errors);
    }
}
