//! `rampart supervise`: `rampart run` as a child with a watchdog, for hosts without systemd.
//!
//! The child is told to feed a watchdog (NOTIFY_SOCKET, WATCHDOG_USEC: the sd_notify protocol
//! `systemd.rs` speaks), which it does only while its slow path answers and its health loop
//! turns. A child that stops feeding it once ready (hung, deadlocked, SIGSTOPped) is killed with
//! SIGKILL, so its TUN device and with it the anycast announcement go at once, and started
//! again; one that exits on its own is started again too, but three starts in a row that end
//! before ready (a config error) end supervision with the last status. SIGTERM/SIGINT are passed
//! on and end supervision; SIGHUP is passed on (a reload). Only the child's own messages count
//! (see [`NotifySocket`]).
use std::collections::BTreeSet;
use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg, setsockopt, sockopt,
};
use nix::unistd::Pid;
use tracing::{error, info, warn};

/// `rampart supervise` flags.
#[derive(clap::Args, Debug)]
pub struct SuperviseArgs {
    /// Kill the node when it has sent no watchdog ping for this long once ready (it pings every
    /// half of it).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=600_000))]
    watchdog_ms: u64,
    /// Wait this long before starting the node again.
    #[arg(long, default_value_t = 1000)]
    restart_delay_ms: u64,
    /// `rampart run`'s arguments, after `--`.
    #[arg(last = true, required = true)]
    run_args: Vec<String>,
}

/// The socket the child's sd_notify messages arrive on; removed when dropped. Only the
/// supervisor's user can reach it (a 0700 dir, the socket 0600): the node connects to it before
/// it drops privileges (`systemd::connect`). Every message carries its sender's credentials
/// (SO_PASSCRED), and only the child's own count: no other process, root's neither, can keep a
/// hung node alive by pinging for it (systemd's `NotifyAccess=main`).
struct NotifySocket {
    dir: PathBuf,
    socket: UnixDatagram,
}

/// One datagram: its sender as the kernel reports it, and its `KEY=VALUE` lines.
struct Notice {
    pid: Option<i32>,
    uid: Option<u32>,
    fields: Vec<String>,
}

impl NotifySocket {
    fn bind() -> Result<NotifySocket> {
        let dir = std::env::temp_dir().join(format!("rampart-supervise-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("notify.sock");
        let socket =
            UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        setsockopt(&socket, sockopt::PassCred, &true).context("SO_PASSCRED")?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(NotifySocket { dir, socket })
    }

    fn path(&self) -> PathBuf {
        self.dir.join("notify.sock")
    }

    /// The messages that arrived within 50 ms.
    fn read(&self) -> Vec<Notice> {
        let mut notices = Vec::new();
        // The first wait is the socket's read timeout; then whatever else is queued.
        let mut flags = MsgFlags::empty();
        loop {
            let mut buf = [0u8; 4096];
            let mut space = nix::cmsg_space!(UnixCredentials);
            let (n, creds) = {
                let mut iov = [IoSliceMut::new(&mut buf)];
                let Ok(msg) =
                    recvmsg::<()>(self.socket.as_raw_fd(), &mut iov, Some(&mut space), flags)
                else {
                    break;
                };
                let creds = msg
                    .cmsgs()
                    .ok()
                    .into_iter()
                    .flatten()
                    .find_map(|c| match c {
                        ControlMessageOwned::ScmCredentials(c) => Some(c),
                        _ => None,
                    });
                (msg.bytes, creds)
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            notices.push(Notice {
                pid: creds.map(|c| c.pid()),
                uid: creds.map(|c| c.uid()),
                fields: text.lines().map(str::to_owned).collect(),
            });
            flags = MsgFlags::MSG_DONTWAIT;
        }
        notices
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// How a child's life ended.
enum End {
    /// Asked to stop (SIGTERM/SIGINT): supervision ends with the child's status.
    Stopped(ExitCode),
    /// Exited on its own or was killed for not feeding the watchdog: start it again.
    Restart,
    /// Exited before it was ever ready: a previous instance still exiting (its locks), or a
    /// config error that only repeats.
    NeverReady(ExitCode),
}

/// Starts in a row that end before ready, after which supervision ends with the last status.
const NEVER_READY_LIMIT: u32 = 3;

pub fn supervise(args: &SuperviseArgs) -> Result<ExitCode> {
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hup.clone())?;
    if args.run_args.first().is_some_and(|a| a == "run") {
        bail!("give `rampart run`'s arguments after `--`, without `run` itself");
    }
    let notify = NotifySocket::bind()?;
    let exe = std::env::current_exe().context("finding the rampart binary")?;
    let watchdog = Duration::from_millis(args.watchdog_ms);
    let mut never_ready = 0;
    loop {
        let child = Command::new(&exe)
            .arg("run")
            .args(&args.run_args)
            .env("NOTIFY_SOCKET", notify.path())
            .env("WATCHDOG_USEC", (watchdog.as_micros()).to_string())
            .env_remove("WATCHDOG_PID")
            .spawn()
            .with_context(|| format!("starting {} run", exe.display()))?;
        info!(pid = child.id(), "supervise: node started");
        match watch(child, &notify, watchdog, &term, &hup)? {
            End::Stopped(code) => return Ok(code),
            End::Restart => never_ready = 0,
            End::NeverReady(code) => {
                never_ready += 1;
                if never_ready >= NEVER_READY_LIMIT {
                    error!(
                        "supervise: the node exited before it was ready {never_ready} times in a row: giving up"
                    );
                    return Ok(code);
                }
            }
        }
        let restart_at = Instant::now() + Duration::from_millis(args.restart_delay_ms);
        while Instant::now() < restart_at {
            if term.load(Ordering::Relaxed) {
                return Ok(ExitCode::SUCCESS);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn watch(
    mut child: Child,
    notify: &NotifySocket,
    watchdog: Duration,
    term: &AtomicBool,
    hup: &AtomicBool,
) -> Result<End> {
    let pid = Pid::from_raw(child.id() as i32);
    let mut last_ping: Option<Instant> = None;
    let mut stopping = false;
    let mut strangers = BTreeSet::new();
    loop {
        for notice in notify.read() {
            if notice.pid != Some(pid.as_raw()) {
                if strangers.insert(notice.pid) {
                    warn!(
                        sender_pid = ?notice.pid,
                        sender_uid = ?notice.uid,
                        "supervise: a notify message not from the node: ignored"
                    );
                }
                continue;
            }
            for field in &notice.fields {
                match field.as_str() {
                    "READY=1" | "WATCHDOG=1" => last_ping = Some(Instant::now()),
                    "STOPPING=1" => stopping = true,
                    _ => {}
                }
            }
        }
        if let Some(status) = child.try_wait()? {
            let code = ExitCode::from(status.code().map_or(1, |c| c as u8));
            if term.load(Ordering::Relaxed) {
                return Ok(End::Stopped(code));
            }
            if last_ping.is_none() {
                warn!(%status, "supervise: the node exited before it was ready");
                return Ok(End::NeverReady(code));
            }
            warn!(%status, "supervise: the node exited: starting it again");
            return Ok(End::Restart);
        }
        if term.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            let _ = kill(pid, Signal::SIGTERM);
        }
        if hup.swap(false, Ordering::Relaxed) {
            let _ = kill(pid, Signal::SIGHUP);
        }
        // Before READY (zones loading) there is no watchdog, as under systemd.
        if let Some(at) = last_ping
            && !stopping
            && at.elapsed() > watchdog
        {
            error!(
                pid = child.id(),
                silent_ms = at.elapsed().as_millis() as u64,
                "supervise: no watchdog ping: killing the node (its announcement goes with it)"
            );
            let _ = child.kill();
            let _ = child.wait();
            return Ok(End::Restart);
        }
    }
}
