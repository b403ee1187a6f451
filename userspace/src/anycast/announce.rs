//! Announcing and withdrawing the service prefixes: addresses on a TUN device this process owns
//! (the BGP daemon exports them), and/or operator commands for other BGP daemons.
//!
//! The device is non-persistent: the kernel deletes it when its last file descriptor closes,
//! which happens when the process exits for any reason, SIGKILL included. Its addresses, and so
//! the routes BIRD's `protocol direct` made of them, vanish with it: the announcement shares the
//! process's fate without any cooperation from the process.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use crossbeam_channel::Sender;
use ipnet::IpNet;
use tracing::{info, warn};

use crate::config::{AnycastConfig, Method};
use crate::netlink;

/// A TUN device that lives exactly as long as this value (and the process).
pub struct Device {
    /// Kept open: closing it deletes the device.
    _fd: File,
    name: String,
    ifindex: u32,
}

impl Device {
    /// Creates the device (`IFF_TUN | IFF_NO_PI`, not persistent) and sets it up.
    pub fn create(name: &str) -> Result<Device> {
        const TUNSETIFF: libc::c_ulong = 0x4004_54ca; // _IOW('T', 202, int)
        const IFF_TUN: libc::c_short = 0x0001;
        const IFF_NO_PI: libc::c_short = 0x1000;
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            bail!("device name {name:?} must be 1 to 15 bytes");
        }
        let fd = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .context("opening /dev/net/tun (is the tun module loaded?)")?;
        // struct ifreq: the name, then a union whose first member is ifr_flags.
        let mut ifreq = [0u8; 40];
        ifreq[..name.len()].copy_from_slice(name.as_bytes());
        ifreq[16..18].copy_from_slice(&(IFF_TUN | IFF_NO_PI).to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which the 40-byte buffer holds.
        if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, ifreq.as_mut_ptr()) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EBUSY) {
                bail!("device {name} is held by another process (another rampart running?)");
            }
            return Err(e).with_context(|| format!("creating TUN device {name}"));
        }
        let ifindex = netlink::ifindex(name)?;
        // Only the service addresses belong on it (a kernel without IPv6 refuses: harmless).
        if let Err(e) = netlink::disable_ipv6_link_local(ifindex) {
            tracing::debug!("{name}: keeping IPv6 link-local generation: {e}");
        }
        netlink::set_link_up(ifindex).with_context(|| format!("setting {name} up"))?;
        Ok(Device {
            _fd: fd,
            name: name.to_owned(),
            ifindex,
        })
    }

    /// Adds or removes each prefix as an address of the device.
    pub fn set_addresses(&self, prefixes: &[IpNet], present: bool) -> Result<()> {
        for &p in prefixes {
            netlink::set_address(self.ifindex, p, present).with_context(|| {
                let verb = if present { "adding" } else { "removing" };
                format!("{verb} {p} on {}", self.name)
            })?;
        }
        Ok(())
    }
}

/// One hook invocation.
struct Hook {
    command: String,
    reason: String,
}

/// Drives the announcement by the configured method. Starts withdrawn.
pub struct Announcer {
    prefixes: Vec<IpNet>,
    device: Option<Device>,
    announce_command: Option<String>,
    withdraw_command: Option<String>,
    /// Commands run in order on a thread of their own, so a slow one never delays probing.
    hooks: Option<(Sender<Hook>, JoinHandle<()>)>,
}

impl Announcer {
    pub fn new(config: &AnycastConfig) -> Result<Announcer> {
        let device = match config.method {
            Method::Device | Method::Both => Some(Device::create(&config.device)?),
            Method::Exec => None,
        };
        let uses_hooks = config.method != Method::Device;
        let hooks = uses_hooks.then(|| {
            let prefixes = join(&config.prefixes);
            let (tx, rx) = crossbeam_channel::unbounded::<Hook>();
            let thread = std::thread::Builder::new()
                .name("anycast-hooks".into())
                .spawn(move || {
                    for hook in rx {
                        run_hook(&hook, &prefixes);
                    }
                })
                .expect("spawning the hook thread");
            (tx, thread)
        });
        Ok(Announcer {
            prefixes: config.prefixes.clone(),
            device,
            announce_command: config.announce_command.clone().filter(|_| uses_hooks),
            withdraw_command: config.withdraw_command.clone().filter(|_| uses_hooks),
            hooks,
        })
    }

    pub fn announce(&self, reason: &str) -> Result<()> {
        self.set(true, reason)
    }

    pub fn withdraw(&self, reason: &str) -> Result<()> {
        self.set(false, reason)
    }

    fn set(&self, announced: bool, reason: &str) -> Result<()> {
        let command = if announced {
            &self.announce_command
        } else {
            &self.withdraw_command
        };
        if let (Some(command), Some((tx, _))) = (command, &self.hooks) {
            let _ = tx.send(Hook {
                command: command.clone(),
                reason: reason.to_owned(),
            });
        }
        if let Some(device) = &self.device {
            device.set_addresses(&self.prefixes, announced)?;
        }
        Ok(())
    }
}

impl Drop for Announcer {
    /// Lets queued commands (the shutdown withdrawal) finish.
    fn drop(&mut self) {
        if let Some((tx, thread)) = self.hooks.take() {
            drop(tx);
            let _ = thread.join();
        }
    }
}

fn join(prefixes: &[IpNet]) -> String {
    prefixes
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_hook(hook: &Hook, prefixes: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(&hook.command)
        .env("RAMPART_PREFIXES", prefixes)
        .env("RAMPART_REASON", &hook.reason)
        .status();
    match status {
        Ok(s) if s.success() => info!(command = hook.command, "anycast hook ran"),
        Ok(s) => warn!(command = hook.command, %s, "anycast hook failed"),
        Err(e) => warn!(command = hook.command, "anycast hook: {e}"),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Runs `f` in a fresh network namespace on a thread of its own (setns changes only the
    /// calling thread), so the test's devices never touch the host's.
    pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        std::thread::spawn(move || {
            // SAFETY: unshare of this thread's network namespace; needs root.
            assert_eq!(
                unsafe { libc::unshare(libc::CLONE_NEWNET) },
                0,
                "unshare(CLONE_NEWNET) (run tests as root): {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap()
    }

    /// The addresses on `dev` as `ip` shows them, from this thread's namespace.
    fn addresses(dev: &str) -> Option<Vec<String>> {
        // `ip` runs in the namespace of the thread that forks it.
        let out = Command::new("ip")
            .args(["-o", "addr", "show", "dev", dev])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Some(
            text.lines()
                .filter_map(|l| l.split_whitespace().nth(3).map(str::to_owned))
                .collect(),
        )
    }

    #[test]
    fn device_announces_withdraws_and_dies_with_its_fd() {
        in_fresh_netns(|| {
            let hook_log = tempfile::NamedTempFile::new().unwrap();
            let log = hook_log.path().display().to_string();
            let config = AnycastConfig {
                prefixes: vec![
                    "192.0.2.53/32".parse().unwrap(),
                    "2001:db8:53::53/128".parse().unwrap(),
                ],
                method: Method::Both,
                device: "rptest0".into(),
                announce_command: Some(format!(
                    "echo \"up $RAMPART_PREFIXES|$RAMPART_REASON\" >> {log}"
                )),
                withdraw_command: Some(format!("echo \"down $RAMPART_REASON\" >> {log}")),
                ..AnycastConfig::default()
            };
            let a = Announcer::new(&config).unwrap();
            assert_eq!(
                addresses("rptest0").unwrap(),
                Vec::<String>::new(),
                "starts withdrawn"
            );
            let link = Command::new("ip")
                .args(["-o", "link", "show", "dev", "rptest0"])
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&link.stdout).contains(",UP,"),
                "device is up"
            );

            a.announce("healthy").unwrap();
            assert_eq!(
                addresses("rptest0").unwrap(),
                ["192.0.2.53/32", "2001:db8:53::53/128"]
            );
            a.announce("again").unwrap(); // idempotent
            a.withdraw("drain").unwrap();
            assert_eq!(addresses("rptest0").unwrap(), Vec::<String>::new());
            a.withdraw("again").unwrap();

            // A second owner can't take the device.
            assert!(Device::create("rptest0").is_err());

            a.announce("back").unwrap();
            assert_eq!(addresses("rptest0").unwrap().len(), 2);
            drop(a); // closes the fd, as process exit (even SIGKILL) does
            // The kernel unregisters the device from a work item after the last close: give it
            // up to a second on a loaded machine.
            let gone = (0..100).any(|_| {
                let g = addresses("rptest0").is_none();
                if !g {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                g
            });
            assert!(gone, "device gone with its addresses");
            let hooks = std::fs::read_to_string(hook_log.path()).unwrap();
            assert_eq!(
                hooks,
                "up 192.0.2.53/32 2001:db8:53::53/128|healthy\nup 192.0.2.53/32 2001:db8:53::53/128|again\n\
                 down drain\ndown again\nup 192.0.2.53/32 2001:db8:53::53/128|back\n"
            );
        });
    }
}
