//! The client side: one request, its deadline, and a clear message when the daemon is silent.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;
use socket2::{Domain, SockAddr, Socket, Type};

use super::{Request, monotonic_ms};

/// How long the result of an accepted command may take (a reload of millions of names).
const RESULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Connects within `timeout`: a daemon that stopped accepting (hung, its queue full) makes a
/// blocking connect wait forever. Each way it can fail says what it means.
fn connect(path: &Path, timeout: Duration) -> Result<UnixStream> {
    const RETRY: Duration = Duration::from_millis(20);
    let started = Instant::now();
    let addr = SockAddr::unix(path)
        .with_context(|| format!("{}: not a usable socket path", path.display()))?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // A Unix stream connect never waits once non-blocking: it is made, or the queue is full.
    socket.set_nonblocking(true)?;
    loop {
        match socket.connect(&addr) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock && started.elapsed() + RETRY < timeout => {
                std::thread::sleep(RETRY)
            }
            Err(e) => bail!(connect_error(path, &e, timeout)),
        }
    }
    socket.set_nonblocking(false)?;
    Ok(UnixStream::from(OwnedFd::from(socket)))
}

fn connect_error(path: &Path, e: &std::io::Error, timeout: Duration) -> String {
    let path = path.display();
    match e.kind() {
        ErrorKind::NotFound => format!(
            "no control socket at {path}: rampart is not running, or it was given another \
             (--control-socket, or --config to read it from its config)"
        ),
        ErrorKind::ConnectionRefused => format!(
            "nothing listens on {path}: a stale socket (a rampart that is gone, killed before it \
             could remove it), or not a socket at all"
        ),
        ErrorKind::PermissionDenied => {
            format!("{path}: permission denied: run rampart ctl as root or as rampart's user")
        }
        ErrorKind::WouldBlock => format!(
            "{path}: rampart accepted no connection within {:.1} s (its queue is full: stopped or \
             hung?); nothing was sent",
            timeout.as_secs_f64()
        ),
        _ => format!("connecting to {path}: {e}"),
    }
}

/// Sends `command` (on `zone`) and returns the daemon's JSON result; an `{"error"}` reply is an
/// error. Gives up after `timeout` unless the daemon has accepted the command by then; the
/// request's deadline is set a little earlier, so a command the daemon starts on is accepted
/// in time for this client to hear it.
pub fn request(path: &Path, command: &str, zone: Option<&str>, timeout: Duration) -> Result<Value> {
    let started = Instant::now();
    let margin = (timeout / 4).min(Duration::from_millis(500));
    let request = Request {
        command: command.to_owned(),
        zone: zone.map(str::to_owned),
        deadline_ms: monotonic_ms() + (timeout - margin).as_millis() as u64,
    };
    let stream = connect(path, timeout)?;
    let silent = || {
        anyhow::anyhow!(
            "the node did not answer {command:?} within {:.1} s (stopped or hung?): the command was \
             not carried out, and the daemon drops it once past its deadline",
            timeout.as_secs_f64()
        )
    };
    stream.set_write_timeout(Some(timeout))?;
    writeln!(&stream, "{}", serde_json::to_string(&request)?).map_err(|_| silent())?;
    let mut reader = BufReader::new(&stream);
    let mut accepted = false;
    loop {
        let left = if accepted {
            RESULT_TIMEOUT
        } else {
            match timeout.checked_sub(started.elapsed()) {
                Some(d) if !d.is_zero() => d,
                _ => return Err(silent()),
            }
        };
        stream.set_read_timeout(Some(left))?;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => bail!("rampart closed the control connection without a reply"),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if accepted {
                    bail!(
                        "rampart accepted {command:?} but sent no result within {} s",
                        RESULT_TIMEOUT.as_secs()
                    );
                }
                return Err(silent());
            }
            Err(e) => return Err(e).context("reading the daemon's reply"),
        }
        let reply: Value = serde_json::from_str(&line).context("reading the daemon's reply")?;
        if reply.get("accepted").is_some_and(|a| a == true) {
            accepted = true;
            continue;
        }
        if let Some(e) = reply.get("error").and_then(Value::as_str) {
            bail!("{e}");
        }
        return Ok(reply);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(path: &Path, timeout: Duration) -> (String, Duration) {
        let t = Instant::now();
        let e = request(path, "status", None, timeout).unwrap_err();
        (format!("{e:#}"), t.elapsed())
    }

    /// No socket, a stale one, and a daemon that accepts nothing (its queue full): each fails
    /// within the timeout and says which.
    #[test]
    fn unreachable_daemons_fail_in_bounded_time_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let (e, took) = failure(&dir.path().join("absent.sock"), Duration::from_secs(2));
        assert!(e.contains("no control socket at"), "{e}");
        assert!(took < Duration::from_millis(200), "{took:?}");

        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        let (e, took) = failure(&stale, Duration::from_secs(2));
        assert!(e.contains("stale socket"), "{e}");
        assert!(took < Duration::from_millis(200), "{took:?}");

        let full = dir.path().join("full.sock");
        let addr = SockAddr::unix(&full).unwrap();
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&addr).unwrap();
        listener.listen(0).unwrap();
        let mut queued = Vec::new();
        while queued.len() < 64 {
            let s = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
            s.set_nonblocking(true).unwrap();
            if s.connect(&addr).is_err() {
                break;
            }
            queued.push(s);
        }
        assert!(queued.len() < 64, "the queue never filled");
        let (e, took) = failure(&full, Duration::from_millis(500));
        assert!(e.contains("queue is full"), "{e}");
        assert!(
            (Duration::from_millis(450)..Duration::from_millis(900)).contains(&took),
            "{took:?}"
        );
    }
}
