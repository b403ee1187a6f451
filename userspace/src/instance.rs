//! One instance per pin dir and per listen address: flock(2) locks a running rampart holds for
//! its lifetime (the kernel drops them when it dies), and who holds them (from /proc/locks).
use std::{
    fs::{self, File, TryLockError},
    net::SocketAddr,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};

/// A held lock; released when dropped (or when the process dies, however it dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take `path`'s lock: a directory (the pin dir; bpffs holds no regular files) or a lock file,
/// created if missing. `what` names it in the error, which names the holder's pid.
pub fn take(path: &Path, what: &str) -> Result<Lock> {
    let file = if path.is_dir() {
        File::open(path)
    } else {
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
    }
    .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(TryLockError::WouldBlock) => bail!(
            "{what} is in use by another rampart ({}; lock {}): stop it first, or give this one \
             its own",
            holder(path).map_or("pid unknown".into(), |pid| format!("pid {pid}")),
            path.display()
        ),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The pid holding a lock on `path`, from /proc/locks (`N: FLOCK ADVISORY WRITE PID
/// MAJ:MIN:INODE ...`, device numbers in hex), or `None` when nobody holds one.
pub fn holder(path: &Path) -> Option<u32> {
    let meta = fs::metadata(path).ok()?;
    let dev = meta.dev();
    let id = format!(
        "{:02x}:{:02x}:{}",
        libc::major(dev),
        libc::minor(dev),
        meta.ino()
    );
    let locks = fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "->" marks a waiter, which shifts the fields by one.
        let at = fields.iter().position(|f| *f == "FLOCK")?;
        (fields.get(at + 4) == Some(&id.as_str()))
            .then(|| fields.get(at + 3)?.parse().ok())
            .flatten()
    })
}

/// The lock file for a listen address: per network namespace, since the same address in two
/// namespaces is two sockets.
pub fn listen_lock_path(run_dir: &Path, addr: SocketAddr) -> Result<PathBuf> {
    let netns = fs::metadata("/proc/self/ns/net")
        .context("reading /proc/self/ns/net")?
        .ino();
    Ok(run_dir.join(format!(
        "listen-net{netns}-{}-{}.lock",
        addr.ip(),
        addr.port()
    )))
}

/// Every lock a `rampart run` holds besides the pin dir's (which the fast path holds).
#[derive(Debug)]
pub struct ListenLocks(#[allow(dead_code)] Vec<Lock>);

/// Lock each listen address (port 0 picks a fresh port: nothing to share), so a second
/// instance on the same address fails instead of splitting the traffic with SO_REUSEPORT.
pub fn lock_listen(run_dir: &Path, listen: &[SocketAddr]) -> Result<ListenLocks> {
    fs::create_dir_all(run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut locks = Vec::new();
    for addr in listen.iter().filter(|a| a.port() != 0) {
        let path = listen_lock_path(run_dir, *addr)?;
        locks.push(take(&path, &format!("listen address {addr}"))?);
    }
    Ok(ListenLocks(locks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_by_pid_and_the_lock_dies_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_listen(dir.path(), &["127.0.0.1:5300".parse().unwrap()]).unwrap();
        let path = listen_lock_path(dir.path(), "127.0.0.1:5300".parse().unwrap()).unwrap();
        assert_eq!(holder(&path), Some(std::process::id()));
        let e = lock_listen(dir.path(), &["127.0.0.1:5300".parse().unwrap()]).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("listen address 127.0.0.1:5300"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        // Another address, port 0, and a directory lock are independent.
        lock_listen(
            dir.path(),
            &[
                "127.0.0.1:5301".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            ],
        )
        .unwrap();
        let d = take(dir.path(), "the dir").unwrap();
        assert!(take(dir.path(), "the dir").is_err());
        drop((first, d));
        assert_eq!(holder(&path), None);
        lock_listen(dir.path(), &["127.0.0.1:5300".parse().unwrap()]).unwrap();
    }
}
