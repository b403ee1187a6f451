//! Least privilege: once `rampart run` has attached, bound and opened what needs root, it
//! becomes `server.user` keeping only the capabilities it still uses, with NoNewPrivs.
//!
//! Capabilities are per thread: the main thread drops them, so the threads started before (the
//! slow path's workers) lose them all when their uid changes (glibc changes every thread's
//! uid; without keep-caps the kernel clears their sets) and the threads started after (health
//! checks, announcing, the control socket) inherit the main thread's reduced set.
use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, anyhow, bail};
use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use tracing::{info, warn};

/// The default user, taken when it exists.
pub const DEFAULT_USER: &str = "rampart";

/// What the daemon still needs after starting, and why (the README lists the same).
#[derive(Clone, Copy, Debug, Default)]
pub struct Needs {
    /// XDP attached: map updates on reload and the clock refresh, BPF_PROG_TEST_RUN health
    /// probes (kernels that gate bpf(2) with unprivileged_bpf_disabled want CAP_BPF for these).
    pub bpf: bool,
    /// Anycast on: the TUN device and its addresses are the announcement.
    pub net_admin: bool,
    /// `[xdp] attach = "shared"`: libxdp reads the NIC's dispatcher by program id
    /// (CAP_SYS_ADMIN), rebuilds and attaches it when rampart leaves (CAP_NET_ADMIN), under its
    /// root-only directory on the bpffs (CAP_DAC_OVERRIDE).
    pub dispatcher: bool,
    /// A listen port below 1024: `rampart debug start-slow-path` binds again; the metrics
    /// endpoint binds after the drop.
    pub bind_low_port: bool,
}

impl Needs {
    pub fn capabilities(self) -> CapsHashSet {
        let mut keep = CapsHashSet::new();
        if self.bpf {
            // Kernels before 5.8 have no CAP_BPF: CAP_SYS_ADMIN stood for it.
            keep.insert(if kernel_knows(Capability::CAP_BPF) {
                Capability::CAP_BPF
            } else {
                Capability::CAP_SYS_ADMIN
            });
        }
        if self.net_admin {
            keep.insert(Capability::CAP_NET_ADMIN);
        }
        if self.bind_low_port {
            keep.insert(Capability::CAP_NET_BIND_SERVICE);
        }
        if self.dispatcher {
            keep.extend([
                Capability::CAP_SYS_ADMIN,
                Capability::CAP_NET_ADMIN,
                Capability::CAP_DAC_OVERRIDE,
            ]);
        }
        keep
    }
}

fn kernel_knows(cap: Capability) -> bool {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .is_some_and(|last| cap.index() <= last)
}

/// `server.user`: a name, "root" to stay root, or unset for [`DEFAULT_USER`] when it exists.
pub fn resolve_user(name: Option<&str>) -> Result<Option<User>> {
    match name {
        Some("root") => Ok(None),
        Some(name) => User::from_name(name)
            .with_context(|| format!("looking up user {name}"))?
            .map(Some)
            .ok_or_else(|| anyhow!("server.user {name:?}: no such user")),
        None => Ok(User::from_name(DEFAULT_USER).ok().flatten()),
    }
}

/// Become `user` (when started as root) keeping only `needs`' capabilities, and set
/// NoNewPrivs. `hand_over`: what the daemon must still write or reopen as that user (the pin
/// dir and its pins, the runtime dir). Started as another user (with
/// ambient capabilities, say), it only trims the capabilities.
pub fn drop_to(user: Option<&User>, needs: Needs, hand_over: &[PathBuf]) -> Result<()> {
    let keep = needs.capabilities();
    let root = Uid::effective().is_root();
    match (root, user) {
        (true, None) => {
            warn!(
                "running as root with every capability: create the user {DEFAULT_USER:?} or set \
                 server.user (--user) to drop them"
            );
            return Ok(());
        }
        (true, Some(user)) => {
            for path in hand_over {
                give(path, user.uid, user.gid)?;
            }
            switch_user(user, &keep)?;
        }
        (false, _) => trim(&keep)?,
    }
    nix::sys::prctl::set_no_new_privs().context("setting NoNewPrivs")?;
    let effective = caps::read(None, CapSet::Effective)?;
    if effective != keep {
        bail!("capabilities after the drop are {effective:?}, not {keep:?}");
    }
    let mut kept: Vec<String> = keep.iter().map(|c| c.to_string()).collect();
    kept.sort();
    info!(
        uid = Uid::effective().as_raw(),
        capabilities = kept.join(","),
        "privileges dropped"
    );
    Ok(())
}

fn switch_user(user: &User, keep: &CapsHashSet) -> Result<()> {
    // The bounding set first, while CAP_SETPCAP is still ours: nothing can come back later.
    for cap in caps::all().difference(keep) {
        if kernel_knows(*cap) {
            caps::drop(None, CapSet::Bounding, *cap)
                .with_context(|| format!("dropping {cap} from the bounding set"))?;
        }
    }
    caps::securebits::set_keepcaps(true).context("PR_SET_KEEPCAPS")?;
    let gid = user.gid;
    nix::unistd::setgroups(&[gid]).context("setgroups")?;
    nix::unistd::setresgid(gid, gid, gid).context("setresgid")?;
    nix::unistd::setresuid(user.uid, user.uid, user.uid)
        .with_context(|| format!("becoming {}", user.name))?;
    trim(keep)?;
    caps::securebits::set_keepcaps(false).context("PR_SET_KEEPCAPS")?;
    Ok(())
}

/// Exactly `keep` in the permitted and effective sets, nothing inheritable or ambient.
fn trim(keep: &CapsHashSet) -> Result<()> {
    let have = caps::read(None, CapSet::Permitted)?;
    if let Some(missing) = keep.difference(&have).next() {
        bail!(
            "{missing} is needed but not permitted: start as root, or grant it (e.g. systemd \
             AmbientCapabilities=)"
        );
    }
    caps::clear(None, CapSet::Ambient).context("clearing the ambient set")?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, keep)?;
    caps::set(None, CapSet::Permitted, keep)?;
    Ok(())
}

/// Chown `path` to the user.
fn give(path: &Path, uid: Uid, gid: Gid) -> Result<()> {
    nix::unistd::chown(path, Some(uid), Some(gid))
        .with_context(|| format!("giving {} to uid {uid}", path.display()))
}

/// `dir` and the entries directly in it (the pin dir and its pins).
pub fn with_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_owned()];
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        out.push(entry?.path());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_become_capabilities() {
        let all = Needs {
            bpf: true,
            net_admin: true,
            bind_low_port: true,
            dispatcher: false,
        };
        let caps = all.capabilities();
        assert_eq!(caps.len(), 3);
        let shared = Needs {
            bpf: true,
            dispatcher: true,
            ..Needs::default()
        };
        for cap in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_DAC_OVERRIDE,
        ] {
            assert!(shared.capabilities().contains(&cap), "libxdp's {cap}");
        }
        assert!(caps.contains(&Capability::CAP_NET_ADMIN));
        assert!(caps.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(Needs::default().capabilities().is_empty());
        assert!(resolve_user(Some("root")).unwrap().is_none());
        assert!(resolve_user(Some("no-such-user-rampart")).is_err());
        assert_eq!(
            resolve_user(Some("nobody")).unwrap().unwrap().name,
            "nobody"
        );
    }
}
