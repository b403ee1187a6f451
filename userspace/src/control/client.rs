//! The client side: one request, its deadline, and a clear message when the daemon is silent.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::{Request, monotonic_ms};

/// How long the result of an accepted command may take (a reload of millions of names).
const RESULT_TIMEOUT: Duration = Duration::from_secs(600);

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
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is rampart running? see --control-socket or --config)",
            path.display()
        )
    })?;
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
