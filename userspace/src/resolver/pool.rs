//! The threads that answer cache misses, so a slow-path UDP thread hands a miss over and goes
//! on answering hits instead of waiting for the upstream (head-of-line blocking).

use crossbeam_channel::{Sender, TrySendError};

/// One deferred answer: resolve, render, send.
pub type Job = Box<dyn FnOnce() + Send>;

/// A fixed number of threads and a bounded queue in front of them.
pub struct MissPool {
    jobs: Sender<Job>,
}

impl MissPool {
    /// `threads` threads (misses resolved at once), `queue` misses waiting at most.
    pub fn start(threads: usize, queue: usize) -> std::io::Result<MissPool> {
        let (jobs, rx) = crossbeam_channel::bounded::<Job>(queue);
        for i in 0..threads {
            let rx = rx.clone();
            // Detached: they end when the pool (the channel's sender) is dropped.
            std::thread::Builder::new()
                .name(format!("resolve-{i}"))
                .spawn(move || {
                    for job in rx {
                        job();
                    }
                })?;
        }
        Ok(MissPool { jobs })
    }

    /// Queues a job; `false` if the queue is full (the query is dropped: the client retries).
    pub fn submit(&self, job: Job) -> bool {
        match self.jobs.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}
