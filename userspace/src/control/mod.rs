//! The node's control socket (`rampart ctl`, `rampart anycast`, `rampart debug`): one JSON
//! request line in, JSON lines out, every request carrying the deadline its client waits to.
//!
//! A command that changes something is carried out only if the daemon starts on it before the
//! deadline ([`Responder::accept`]); it then says "accepted" at once and sends the result when
//! done. A client that heard nothing by its deadline reports failure, and the daemon, resuming
//! late (SIGSTOP, a long reload), drops the request: nothing reported failed happens later.
pub mod client;
pub mod server;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What the client asks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// `status`, `zone-status`, `reload`, `refresh`, `anycast-status`, `drain`, ...
    pub command: String,
    /// The zone, for the commands that take one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// CLOCK_MONOTONIC milliseconds (the same clock for every process of the machine) after
    /// which the client no longer waits: the daemon must not start on the request after it.
    pub deadline_ms: u64,
}

/// What the daemon sends back, line by line.
#[derive(Debug)]
pub enum Reply {
    /// Committed to a change (before the deadline); the result follows.
    Accepted,
    /// The result (`{"error": ...}` for a failure).
    Done(Value),
}

/// The way back to a waiting client; handed to whichever thread carries the request out.
#[derive(Debug)]
pub struct Responder {
    deadline_ms: u64,
    tx: Sender<Reply>,
}

impl Responder {
    pub fn new(deadline_ms: u64, tx: Sender<Reply>) -> Responder {
        Responder { deadline_ms, tx }
    }

    /// Commits to carrying the request out, telling the client so; `false` once the deadline
    /// has passed: the client has given up (and said the command failed), so do nothing.
    #[must_use]
    pub fn accept(&self) -> bool {
        if monotonic_ms() >= self.deadline_ms {
            return false;
        }
        let _ = self.tx.send(Reply::Accepted);
        true
    }

    pub fn done(self, value: Value) {
        let _ = self.tx.send(Reply::Done(value));
    }

    pub fn fail(self, message: impl std::fmt::Display) {
        self.done(json!({ "error": message.to_string() }));
    }
}

/// Milliseconds of CLOCK_MONOTONIC: comparable between the client and the daemon, unmoved by
/// changes to the wall clock.
pub fn monotonic_ms() -> u64 {
    crate::clock::monotonic_ns() / 1_000_000
}
