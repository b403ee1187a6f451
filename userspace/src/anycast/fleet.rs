//! The fleet guard of resolver health: a node whose upstreams all stopped answering withdraws
//! only when a peer shows the failure is the node's own (the peer announced and reaching its
//! upstreams since this node lost them), so an outage every node shares (the roots or the
//! forwarders unreachable from everywhere) keeps the fleet announced, answering from its caches.
//!
//! Peers tell each other over DNS: CHAOS TXT `upstreams.rampart.` sent to a peer's unicast
//! service address is answered (to clients in `resolver.allow`) with three strings,
//! `upstreams=ok|failed`, `last_ok_ms=<ms since its last upstream answer>|never` and
//! `state=<its anycast state>`.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;

use super::health::udp_exchange;
use crate::identity::CLASS_CH;
use crate::resolver::HEALTH_REPORT_NAME;
use crate::zone::NameKey;

/// One node's upstream health as its peers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Its last upstream check got an answer.
    pub upstreams_ok: bool,
    /// Since its last upstream answer.
    pub last_ok_ago: Option<Duration>,
    /// Its anycast state (`announced`, `withdrawn`...).
    pub state: String,
}

impl Report {
    pub fn to_txt(&self) -> Vec<String> {
        vec![
            format!(
                "upstreams={}",
                if self.upstreams_ok { "ok" } else { "failed" }
            ),
            match self.last_ok_ago {
                Some(d) => format!("last_ok_ms={}", d.as_millis()),
                None => "last_ok_ms=never".into(),
            },
            format!("state={}", self.state),
        ]
    }

    pub fn parse(strings: &[String]) -> Option<Report> {
        let field = |key: &str| {
            strings
                .iter()
                .find_map(|s| s.strip_prefix(key)?.strip_prefix('='))
        };
        Some(Report {
            upstreams_ok: match field("upstreams")? {
                "ok" => true,
                "failed" => false,
                _ => return None,
            },
            last_ok_ago: match field("last_ok_ms")? {
                "never" => None,
                ms => Some(Duration::from_millis(ms.parse().ok()?)),
            },
            state: field("state")?.to_owned(),
        })
    }

    /// Whether this peer shows that a node's upstream failure is its own: the peer is
    /// announced, its last check got an answer, and that answer came in `window` (how long ago
    /// this node's latest failed check started, how long ago its first one ended): after this
    /// node's failure had begun (a shared outage can't have the peer answered later), before
    /// its latest failing query left (a shared outage ending can't either: a peer that has just
    /// recovered doesn't withdraw a node whose next check will recover too).
    pub fn shows_failure_is_local(&self, window: (Duration, Duration)) -> bool {
        let (since_latest, since_first) = window;
        self.state == "announced"
            && self.upstreams_ok
            && self
                .last_ok_ago
                .is_some_and(|ago| ago > since_latest && ago < since_first)
    }
}

/// Asks `peer` for its report.
pub fn ask(peer: SocketAddr, id: u16, timeout: Duration) -> Result<Report, String> {
    let name = NameKey::parse(HEALTH_REPORT_NAME).expect("a valid name");
    let mut query = Vec::with_capacity(12 + name.as_wire().len() + 4);
    for word in [id, 0, 1, 0, 0, 0] {
        query.extend_from_slice(&word.to_be_bytes());
    }
    query.extend_from_slice(name.as_wire());
    query.extend_from_slice(&16u16.to_be_bytes());
    query.extend_from_slice(&CLASS_CH.to_be_bytes());
    let reply = udp_exchange(peer, &query, timeout).map_err(|e| format!("{peer}: {e}"))?;
    let message = Message::from_vec(&reply).map_err(|e| format!("{peer}: {e}"))?;
    let strings: Vec<String> = message
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::TXT(txt) => Some(txt.iter().map(|s| String::from_utf8_lossy(s).into_owned())),
            _ => None,
        })
        .flatten()
        .collect();
    Report::parse(&strings).ok_or_else(|| {
        format!(
            "{peer}: no upstream report (rcode {}): is this node in its resolver.allow?",
            message.response_code()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_round_trips_and_decides() {
        let r = Report {
            upstreams_ok: true,
            last_ok_ago: Some(Duration::from_millis(300)),
            state: "announced".into(),
        };
        assert_eq!(
            r.to_txt(),
            ["upstreams=ok", "last_ok_ms=300", "state=announced"]
        );
        assert_eq!(Report::parse(&r.to_txt()), Some(r.clone()));
        assert_eq!(Report::parse(&["upstreams=ok".into()]), None);
        let ms = Duration::from_millis;
        // The peer answered 300 ms ago: after this node's failure began (1 s ago), before its
        // latest failing check (100 ms ago): a local failure.
        assert!(r.shows_failure_is_local((ms(100), ms(1000))));
        // Its last answer predates this node's failure: the outage may be everyone's.
        assert!(!r.shows_failure_is_local((ms(100), ms(200))));
        // It answered after this node's latest query left: an outage ending, not a local one.
        assert!(!r.shows_failure_is_local((ms(500), ms(2000))));
        let down = Report {
            upstreams_ok: false,
            ..r.clone()
        };
        assert!(!down.shows_failure_is_local((ms(100), ms(1000))));
        let withdrawn = Report {
            state: "withdrawn".into(),
            ..r
        };
        assert!(!withdrawn.shows_failure_is_local((ms(100), ms(1000))));
    }
}
