//! Secondary zone statistics: transfers by zone, kind and result, NOTIFY by verdict, each zone's
//! serial and whether it is expired.
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::secondary::XfrKind;

type Labels = Vec<(&'static str, String)>;

/// Handles on shared atomics: the zones' threads record, the endpoint reads.
#[derive(Clone, Debug, Default)]
pub struct XfrStats {
    transfers: Family<Labels, Counter>,
    notifies: Family<Labels, Counter>,
    serial: Family<Labels, Gauge>,
    expired: Family<Labels, Gauge>,
}

impl XfrStats {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rampart_xfr_transfers",
            "Zone transfers of secondary zones, by zone, kind (ixfr, axfr: a whole zone) and \
             result (failed: the transfer broke off or the new version didn't validate)",
            self.transfers.clone(),
        );
        registry.register(
            "rampart_xfr_notifies",
            "NOTIFY messages for secondary zones, by zone and verdict (refused: not from a \
             primary, or without the zone's TSIG key)",
            self.notifies.clone(),
        );
        registry.register(
            "rampart_secondary_serial",
            "The SOA serial a secondary zone serves (-1: none yet)",
            self.serial.clone(),
        );
        registry.register(
            "rampart_secondary_expired",
            "1 while a secondary zone is past its SOA expire (answered SERVFAIL)",
            self.expired.clone(),
        );
    }

    pub fn transfer(&self, zone: &str, kind: XfrKind, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.transfers
            .get_or_create(&vec![
                ("zone", zone.to_string()),
                ("kind", kind.as_str().to_string()),
                ("result", result.to_string()),
            ])
            .inc();
    }

    pub fn notify(&self, zone: &str, accepted: bool) {
        let verdict = if accepted { "accepted" } else { "refused" };
        self.notifies
            .get_or_create(&vec![
                ("zone", zone.to_string()),
                ("verdict", verdict.to_string()),
            ])
            .inc();
    }

    pub fn zone_state(&self, zone: &str, serial: Option<u32>, expired: bool) {
        let labels = vec![("zone", zone.to_string())];
        self.serial
            .get_or_create(&labels)
            .set(serial.map_or(-1, i64::from));
        self.expired.get_or_create(&labels).set(i64::from(expired));
    }
}
