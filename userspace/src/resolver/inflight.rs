//! Misses in flight: one upstream resolution per key at a time; queries for a key already being
//! resolved wait for that result instead of sending their own (a popular name's expiry would
//! otherwise send as many upstream queries as clients ask in the meantime).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::cache::{Key, Resolved};

#[derive(Default)]
struct Flight {
    done: Mutex<Option<Resolved>>,
    landed: Condvar,
}

/// The keys being resolved now.
#[derive(Default)]
pub struct Inflight(Mutex<HashMap<Key, Arc<Flight>>>);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inflight {
    /// `resolve()`'s result for `key`: run here if no other thread is resolving the key, else
    /// the other thread's result (SERVFAIL if it takes longer than `wait`).
    pub fn share(&self, key: &Key, wait: Duration, resolve: impl FnOnce() -> Resolved) -> Resolved {
        let (flight, leader) = {
            let mut flights = lock(&self.0);
            match flights.get(key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = Arc::new(Flight::default());
                    flights.insert(key.clone(), f.clone());
                    (f, true)
                }
            }
        };
        if leader {
            let resolved = resolve();
            *lock(&flight.done) = Some(resolved.clone());
            flight.landed.notify_all();
            lock(&self.0).remove(key);
            return resolved;
        }
        let deadline = Instant::now() + wait;
        let mut done = lock(&flight.done);
        while done.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Resolved::failure();
            }
            done = flight
                .landed
                .wait_timeout(done, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        done.clone().unwrap_or_else(Resolved::failure)
    }
}
