//! The control socket: `rampart anycast status|drain|undrain` talk to the running daemon over a
//! unix stream socket, one request line in, one JSON line out.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tracing::debug;

/// What the daemon does with a request; runs on the control thread.
pub type Handler = Box<dyn Fn(&str) -> Value + Send>;

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
                "{} is in use: another rampart is running (set anycast.control_socket)",
                path.display()
            );
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                std::fs::remove_file(path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
            Ok(_) => bail!(
                "{} exists and is not a socket: refusing to replace it (set anycast.control_socket)",
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
                .name("anycast-control".into())
                .spawn(move || serve(listener, &handler, &stop))?
        };
        Ok(ControlServer {
            path: path.to_owned(),
            stop,
            thread: Some(thread),
        })
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

fn serve(listener: UnixListener, handler: &Handler, stop: &AtomicBool) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(stream) = stream else { continue };
        if let Err(e) = answer(stream, handler) {
            debug!("control connection: {e}");
        }
    }
}

fn answer(stream: UnixStream, handler: &Handler) -> std::io::Result<()> {
    // A client that sends nothing can't hold the (single) control thread.
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply = handler(line.trim());
    let mut out = &stream;
    writeln!(out, "{reply}")
}

/// The client side: sends one request, returns the daemon's JSON reply.
pub fn request(path: &Path, command: &str) -> Result<Value> {
    let stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to {} (is rampart running with anycast prefixes? see --control-socket)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    (&stream).write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let reply: Value = serde_json::from_str(&line).context("reading the daemon's reply")?;
    if let Some(e) = reply.get("error").and_then(Value::as_str) {
        bail!("{e}");
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_and_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/control.sock");
        let server = ControlServer::start(
            &path,
            Box::new(|cmd| match cmd {
                "status" => serde_json::json!({"state": "announced"}),
                other => serde_json::json!({"error": format!("unknown command {other:?}")}),
            }),
        )
        .unwrap();
        assert_eq!(request(&path, "status").unwrap()["state"], "announced");
        let e = request(&path, "bogus").unwrap_err();
        assert!(e.to_string().contains("unknown command"), "{e}");
        // A second daemon on the same socket is refused.
        assert!(ControlServer::start(&path, Box::new(|_| Value::Null)).is_err());
        drop(server);
        assert!(!path.exists());
        assert!(request(&path, "status").is_err());
        // A stale socket is replaced; a regular file is not touched.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        drop(ControlServer::start(&path, Box::new(|_| Value::Null)).unwrap());
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "keep me").unwrap();
        let Err(e) = ControlServer::start(&file, Box::new(|_| Value::Null)) else {
            panic!("a regular file was replaced by a socket");
        };
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
