//! The listening side: a thread accepting connections, one short-lived thread per request.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::RecvTimeoutError;
use serde_json::{Value, json};
use tracing::debug;

use super::{Reply, Request, Responder, monotonic_ms};

/// What the daemon does with a request: answer it on the responder now, or hand the responder
/// to the thread that owns what the request changes. Must not block.
pub type Handler = Arc<dyn Fn(Request, Responder) + Send + Sync>;

/// Requests in progress at once; more are told the daemon is busy.
const MAX_CONNECTIONS: usize = 16;
/// How long a request line may take to arrive.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an accepted command (a reload of large zones) may take before the connection gives
/// up on it (the command still completes).
const RESULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The listening socket; removed from the file system when dropped.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds `path` (creating its directory; replacing a stale socket, refusing a live one and
    /// anything that isn't a socket).
    pub fn start(path: &Path, handler: Handler) -> Result<ControlServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if UnixStream::connect(path).is_ok() {
            bail!(
                "control socket {} is in use: another rampart is running (give each instance its \
                 own --control-socket or --run-dir)",
                path.display()
            );
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
            Ok(_) => bail!(
                "{} exists and is not a socket: refusing to replace it (set server.control_socket)",
                path.display()
            ),
            Err(_) => {}
        }
        let listener =
            UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("control".into())
                .spawn(move || serve(listener, handler, &stop))?
        };
        Ok(ControlServer {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept.
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, handler: Handler, stop: &AtomicBool) {
    let busy = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if busy.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::Relaxed);
            let _ = writeln!(
                &stream,
                "{}",
                json!({"error": "busy: too many control requests at once"})
            );
            continue;
        }
        let (handler, in_flight) = (handler.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("control-request".into())
            .spawn(move || {
                if let Err(e) = answer(&stream, &handler) {
                    debug!("control connection: {e}");
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn answer(stream: &UnixStream, handler: &Handler) -> std::io::Result<()> {
    // A client that sends nothing can't hold a thread.
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let request: Request = match serde_json::from_str(line.trim()) {
        Ok(r) => r,
        Err(e) => {
            let reply = json!({"error": format!("bad request ({e}): expected one JSON line \
                {{\"command\": ..., \"deadline_ms\": CLOCK_MONOTONIC ms}}")});
            return writeln!(&mut &*stream, "{reply}");
        }
    };
    let deadline = request.deadline_ms;
    let (tx, rx) = crossbeam_channel::unbounded();
    handler(request, Responder::new(deadline, tx));
    let until_deadline = Duration::from_millis(deadline.saturating_sub(monotonic_ms()));
    let mut wait = until_deadline;
    loop {
        let reply = match rx.recv_timeout(wait) {
            Ok(r) => r,
            // Past the deadline without a commitment: the request will be dropped wherever it
            // waits. Or its owner dropped it unanswered (past the deadline, or shutting down).
            Err(e) => {
                let why = match e {
                    RecvTimeoutError::Timeout => "the daemon was busy past the request's deadline",
                    RecvTimeoutError::Disconnected => "the request was dropped unanswered",
                };
                let reply = json!({"error": format!("{why}: not carried out")});
                return writeln!(&mut &*stream, "{reply}");
            }
        };
        let value: Value = match reply {
            Reply::Accepted => {
                wait = RESULT_TIMEOUT;
                json!({"accepted": true})
            }
            Reply::Done(v) => v,
        };
        let done = !value.get("accepted").is_some_and(|a| a == true);
        writeln!(&mut &*stream, "{value}")?;
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::client;
    use super::*;

    fn handler(f: impl Fn(Request, Responder) + Send + Sync + 'static) -> Handler {
        Arc::new(f)
    }

    #[test]
    fn request_reply_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/control.sock");
        let server = ControlServer::start(
            &path,
            handler(|req, r| match req.command.as_str() {
                "status" => r.done(json!({"state": "announced"})),
                other => r.fail(format!("unknown command {other:?}")),
            }),
        )
        .unwrap();
        let t = Duration::from_secs(2);
        assert_eq!(
            client::request(&path, "status", None, t).unwrap()["state"],
            "announced"
        );
        let e = client::request(&path, "bogus", None, t).unwrap_err();
        assert!(e.to_string().contains("unknown command"), "{e}");
        // A second daemon on the same socket is refused.
        assert!(ControlServer::start(&path, handler(|_, _| {})).is_err());
        drop(server);
        assert!(!path.exists());
        assert!(client::request(&path, "status", None, t).is_err());
        // A stale socket is replaced; a regular file is not touched.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        drop(ControlServer::start(&path, handler(|_, _| {})).unwrap());
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let Err(e) = ControlServer::start(&file, handler(|_, _| {})) else {
            panic!("a regular file was replaced by a socket");
        };
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }

    /// A command whose owner is busy past the client's deadline is reported failed and is then
    /// dropped, never carried out; one accepted in time is waited for past the deadline.
    #[test]
    fn deadline_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let (tx, rx) = crossbeam_channel::unbounded::<Responder>();
        let _server = ControlServer::start(
            &path,
            handler(move |_, r| {
                let _ = tx.send(r);
            }),
        )
        .unwrap();
        let carried_out = Arc::new(AtomicUsize::new(0));
        // The owner: busy for 600 ms, then takes what waits.
        let owner = {
            let carried_out = carried_out.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(600));
                while let Ok(r) = rx.recv_timeout(Duration::from_secs(1)) {
                    if r.accept() {
                        carried_out.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(700));
                        r.done(json!({"ok": true}));
                    }
                }
            })
        };
        let started = std::time::Instant::now();
        let e = client::request(&path, "drain", None, Duration::from_millis(300)).unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_millis(450), "{took:?}");
        assert!(e.to_string().contains("not carried out"), "{e}");
        // Sent while the owner is still busy (it frees at 600 ms), with time to spare: accepted
        // then, and its result (700 ms later, past the 1 s deadline) still arrives.
        let reply = client::request(&path, "drain", None, Duration::from_millis(1000)).unwrap();
        assert_eq!(reply["ok"], true);
        owner.join().unwrap();
        assert_eq!(
            carried_out.load(Ordering::Relaxed),
            1,
            "the late request was dropped"
        );
    }
}
