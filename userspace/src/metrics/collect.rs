//! What is read at scrape time rather than counted: the XDP program's pinned counters, the zones
//! being served, the anycast announcement and its probes.
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};
use rampart_common::Counter;

use crate::{
    anycast::{Status, state::State},
    fastpath::Counters,
    zone::Catalog,
};

/// Writes one family of constant counters (or gauges), one label, from `(label value, value)`.
fn family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    label: &'static str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value_label, value) in values {
        let labels = [(label, value_label)];
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value as i64).encode(sample)?,
        }
    }
    Ok(())
}

/// One unlabelled value.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, kind)?;
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(metric),
        _ => ConstGauge::new(value as i64).encode(metric),
    }
}

/// The counters pinned under this instance's pin dir. Outcomes and events are two families:
/// every frame ends in exactly one outcome, so `sum(rampart_xdp_outcomes_total)` is
/// `rampart_xdp_packets_total`; an event (a cookie seen, a whitelisted source over its rate) is
/// counted on the way to some outcome and would count a frame twice in that sum.
pub struct Xdp(Box<dyn Fn() -> Option<Counters> + Send + Sync>);

impl Xdp {
    /// The counters a running instance pinned under `pin_dir`.
    pub fn pinned(pin_dir: PathBuf) -> Xdp {
        Xdp(Box::new(move || Counters::from_pin(&pin_dir).ok()))
    }

    /// Fixed values (tests: no BPF needed).
    #[cfg(test)]
    pub fn fixed(counters: Counters) -> Xdp {
        Xdp(Box::new(move || Some(counters.clone())))
    }
}

impl std::fmt::Debug for Xdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Xdp")
    }
}

impl Collector for Xdp {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // No counters (the program is gone, or not loaded yet): no XDP series, rather than zeros
        // that would look like an idle program.
        let Some(counters) = (self.0)() else {
            return Ok(());
        };
        let named = || {
            Counter::NAMED
                .iter()
                .zip(&counters.0)
                .map(|((c, name), (_, value))| (*c, *name, *value))
        };
        let packets = named()
            .find(|(c, ..)| *c == Counter::Packets)
            .map_or(0, |(.., v)| v);
        single(
            &mut encoder,
            "rampart_xdp_packets",
            "Frames the XDP program handled (the sum of rampart_xdp_outcomes_total)",
            MetricType::Counter,
            packets,
        )?;
        family(
            &mut encoder,
            "rampart_xdp_outcomes",
            "Frames the XDP program handled, by what became of each (exactly one outcome a frame)",
            MetricType::Counter,
            "outcome",
            named()
                .filter(|(c, ..)| c.is_outcome())
                .map(|(_, n, v)| (n, v)),
        )?;
        family(
            &mut encoder,
            "rampart_xdp_events",
            "Events on the way to an outcome (cookies seen, limits in dry run or whitelisted)",
            MetricType::Counter,
            "event",
            named()
                .filter(|(c, ..)| !c.is_outcome() && *c != Counter::Packets)
                .map(|(_, n, v)| (n, v)),
        )
    }
}

/// The live zones: count and SOA serials.
pub struct Zones(pub Mutex<Box<dyn Fn() -> Arc<Catalog> + Send>>);

impl std::fmt::Debug for Zones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Zones")
    }
}

impl Collector for Zones {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let catalog = (self.0.lock().unwrap_or_else(|e| e.into_inner()))();
        single(
            &mut encoder,
            "rampart_zones",
            "Zones being served",
            MetricType::Gauge,
            catalog.zone_count() as u64,
        )?;
        // Names in presentation form (`\"`, `\\`, `\DDD` as the zone file writes them); the
        // encoder escapes them again as label values.
        let names: Vec<(String, u64)> = catalog
            .zones()
            .iter()
            .map(|z| (z.origin_key().to_string(), u64::from(z.serial())))
            .collect();
        family(
            &mut encoder,
            "rampart_zone_serial",
            "SOA serial of each zone being served",
            MetricType::Gauge,
            "zone",
            names.iter().map(|(n, s)| (n.as_str(), *s)),
        )
    }
}

/// The anycast announcement's state and health probes, when anycast is on.
pub struct Anycast(pub Mutex<Box<dyn Fn() -> Status + Send>>);

impl std::fmt::Debug for Anycast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Anycast")
    }
}

impl Collector for Anycast {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = (self.0.lock().unwrap_or_else(|e| e.into_inner()))();
        encode_anycast(&mut encoder, &status)
    }
}

pub(super) fn encode_anycast(
    encoder: &mut DescriptorEncoder,
    s: &Status,
) -> Result<(), std::fmt::Error> {
    single(
        encoder,
        "rampart_anycast_announced",
        "1 while the anycast prefixes are announced",
        MetricType::Gauge,
        u64::from(s.state.announced()),
    )?;
    let states = [
        State::Starting,
        State::Announced,
        State::Withdrawn,
        State::Draining,
    ]
    .map(|state| (state.to_string(), u64::from(s.state == state)));
    family(
        encoder,
        "rampart_anycast_state",
        "The announcement's state (1 for the current one)",
        MetricType::Gauge,
        "state",
        states.iter().map(|(n, v)| (n.as_str(), *v)),
    )?;
    single(
        encoder,
        "rampart_anycast_transitions",
        "Announcement state changes",
        MetricType::Counter,
        s.transitions_total,
    )?;
    let mut metric = encoder.encode_descriptor(
        "rampart_health_probes",
        "Health probes run, by probe and result",
        None,
        MetricType::Counter,
    )?;
    for p in &s.probes {
        for (result, n) in [("ok", p.ok), ("failed", p.failed), ("skipped", p.skipped)] {
            let labels = [("probe", p.name), ("result", result)];
            ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
