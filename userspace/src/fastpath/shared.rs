//! Sharing a NIC through libxdp's dispatcher (`[xdp] attach = "shared"`): rampart as one component.
//!
//! libxdp loads a small entry program (bpf/shared_entry.c) as a freplace component of its
//! dispatcher; the entry tail-calls rampart's XDP program through the daemon's `JUMPS` array
//! (reused by fd, so nothing of rampart's program is loaded twice). Fate-sharing: the kernel
//! empties a program array when its last user reference (fd or pin) goes, and `JUMPS` is held by
//! the daemon's fds only, so when the daemon dies the entry's tail call misses and it returns
//! XDP_PASS (the dispatcher's next program, then the stack, decide). The empty entry stays listed
//! until the next start on that NIC or `rampart detach` removes it.
//!
//! Where the kernel refuses freplace programs, libxdp attaches the entry alone (its "legacy"
//! mode): rampart then holds the NIC by itself, with the same fate-sharing, and says so.
//!
//! libxdp and libbpf are opened at run time (Debian's libxdp1, the library `xdp-loader` uses):
//! exclusive mode, the default, needs neither.

use std::{
    ffi::{CStr, CString, c_char, c_int, c_long, c_uint, c_void},
    os::fd::{AsFd, AsRawFd},
    sync::OnceLock,
};

use anyhow::{Context, Result, anyhow, bail};
use libloading::Library;
use rampart_common::{JUMP_MAIN, MAP_JUMPS};
use tracing::{info, warn};

use super::AttachMode;
use crate::netlink;

/// The entry program, built by build.rs from bpf/shared_entry.c.
static ENTRY: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/shared-entry.o"));

/// The component's name, as `xdp-loader status` lists it (the entry's function name).
pub const COMPONENT: &str = "rampart";

/// How rampart holds a NIC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sharing {
    /// rampart's program is the NIC's only XDP program, held by a bpf_link of the process.
    #[default]
    Exclusive,
    /// A component of libxdp's dispatcher, beside other programs (xdp-filter, ...).
    Shared,
}

/// libxdp's `enum xdp_attach_mode`.
fn libxdp_mode(mode: AttachMode) -> c_int {
    match mode {
        AttachMode::Auto => 0,
        AttachMode::Native => 1,
        AttachMode::Generic => 2,
    }
}

type Ptr = *mut c_void;

/// The dozen libxdp/libbpf calls used, resolved once.
struct Api {
    open_mem: unsafe extern "C" fn(*const c_void, usize, *const c_void) -> Ptr,
    object_close: unsafe extern "C" fn(Ptr),
    find_map: unsafe extern "C" fn(Ptr, *const c_char) -> Ptr,
    reuse_fd: unsafe extern "C" fn(Ptr, c_int) -> c_int,
    get_error: unsafe extern "C" fn(*const c_void) -> c_long,
    from_bpf_obj: unsafe extern "C" fn(Ptr, *const c_char) -> Ptr,
    attach: unsafe extern "C" fn(Ptr, c_int, c_int, c_uint) -> c_int,
    detach: unsafe extern "C" fn(Ptr, c_int, c_int, c_uint) -> c_int,
    close: unsafe extern "C" fn(Ptr),
    name: unsafe extern "C" fn(Ptr) -> *const c_char,
    id: unsafe extern "C" fn(Ptr) -> u32,
    mp_get: unsafe extern "C" fn(c_int) -> Ptr,
    mp_next: unsafe extern "C" fn(Ptr, Ptr) -> Ptr,
    mp_close: unsafe extern "C" fn(Ptr),
    mp_mode: unsafe extern "C" fn(Ptr) -> c_int,
    mp_is_legacy: unsafe extern "C" fn(Ptr) -> bool,
    mp_main: unsafe extern "C" fn(Ptr) -> Ptr,
    _libs: (Library, Library),
}

impl Api {
    fn get() -> Result<&'static Api> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(|| Api::open().map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    fn open() -> Result<Api> {
        // SAFETY: loading the distribution's libraries, whose initialisers are side-effect free.
        let (xdp, bpf) = unsafe {
            (
                Library::new("libxdp.so.1")
                    .context("shared attach needs libxdp (Debian: apt install libxdp1)")?,
                Library::new("libbpf.so.1")
                    .context("shared attach needs libbpf (Debian: apt install libbpf1)")?,
            )
        };
        macro_rules! sym {
            ($lib:expr, $name:literal) => {
                // SAFETY: the signature is the one libxdp.h / libbpf.h declare for this name.
                *unsafe { $lib.get(concat!($name, "\0").as_bytes()) }
                    .with_context(|| format!("{} missing from libxdp/libbpf", $name))?
            };
        }
        Ok(Api {
            open_mem: sym!(bpf, "bpf_object__open_mem"),
            object_close: sym!(bpf, "bpf_object__close"),
            find_map: sym!(bpf, "bpf_object__find_map_by_name"),
            reuse_fd: sym!(bpf, "bpf_map__reuse_fd"),
            get_error: sym!(xdp, "libxdp_get_error"),
            from_bpf_obj: sym!(xdp, "xdp_program__from_bpf_obj"),
            attach: sym!(xdp, "xdp_program__attach"),
            detach: sym!(xdp, "xdp_program__detach"),
            close: sym!(xdp, "xdp_program__close"),
            name: sym!(xdp, "xdp_program__name"),
            id: sym!(xdp, "xdp_program__id"),
            mp_get: sym!(xdp, "xdp_multiprog__get_from_ifindex"),
            mp_next: sym!(xdp, "xdp_multiprog__next_prog"),
            mp_close: sym!(xdp, "xdp_multiprog__close"),
            mp_mode: sym!(xdp, "xdp_multiprog__attach_mode"),
            mp_is_legacy: sym!(xdp, "xdp_multiprog__is_legacy"),
            mp_main: sym!(xdp, "xdp_multiprog__main_prog"),
            _libs: (xdp, bpf),
        })
    }

    /// libxdp's error for a returned pointer (NULL or an encoded errno), if any.
    fn error(&self, ptr: *const c_void) -> Option<std::io::Error> {
        if ptr.is_null() {
            return Some(std::io::Error::from_raw_os_error(libc::ENOENT));
        }
        // SAFETY: libxdp_get_error only inspects the pointer's value.
        let e = unsafe { (self.get_error)(ptr) };
        (e != 0).then(|| std::io::Error::from_raw_os_error(-e as i32))
    }
}

/// rampart's component in one NIC's dispatcher; removed from it on drop.
pub struct Entry {
    api: &'static Api,
    obj: Ptr,
    prog: Ptr,
    ifindex: c_int,
    mode: c_int,
    iface: String,
}

// SAFETY: the libxdp handles are used by whichever thread owns the entry, one at a time.
unsafe impl Send for Entry {}

impl Entry {
    /// Add rampart's entry, jumping through `jumps` (the daemon's `JUMPS`), to `iface`'s
    /// dispatcher (made if there is none). A dead rampart entry there is removed first; a live one
    /// (another rampart on this NIC) is an error.
    pub fn attach(iface: &str, mode: AttachMode, jumps: &impl AsFd) -> Result<Entry> {
        let api = Api::get()?;
        let ifindex = netlink::ifindex(iface)? as c_int;
        for id in components(api, ifindex)? {
            if jumps_live(id)? {
                bail!(
                    "another rampart's program (id {id}) is on {iface} \
                     (`rampart detach --iface {iface}` removes it)"
                );
            }
            warn!(
                iface,
                id, "removing a dead rampart entry from the XDP dispatcher"
            );
            detach_id(api, ifindex, id)?;
        }
        // SAFETY: ENTRY is static, so it outlives the object, which reads it in place.
        let obj = unsafe { (api.open_mem)(ENTRY.as_ptr().cast(), ENTRY.len(), std::ptr::null()) };
        if obj.is_null() {
            return Err(std::io::Error::last_os_error()).context("opening the shared entry object");
        }
        let mut entry = Entry {
            api,
            obj,
            prog: std::ptr::null_mut(),
            ifindex,
            mode: libxdp_mode(mode),
            iface: iface.to_owned(),
        };
        let name = CString::new(MAP_JUMPS).expect("no NUL");
        // SAFETY: a live object; the name is NUL-terminated.
        let map = unsafe { (api.find_map)(obj, name.as_ptr()) };
        if map.is_null() {
            bail!("map {MAP_JUMPS} missing from the shared entry object");
        }
        // SAFETY: a map of the live object and an open fd (libbpf dups it).
        let r = unsafe { (api.reuse_fd)(map, jumps.as_fd().as_raw_fd()) };
        if r < 0 {
            return Err(std::io::Error::from_raw_os_error(-r)).context("reusing JUMPS");
        }
        let section = c"xdp";
        // SAFETY: a live object, freed after the program (the program doesn't own it).
        let prog = unsafe { (api.from_bpf_obj)(obj, section.as_ptr()) };
        if let Some(e) = api.error(prog) {
            return Err(e).context("the shared entry program");
        }
        entry.prog = prog;
        // SAFETY: a live program handle.
        let r = unsafe { (api.attach)(prog, ifindex, entry.mode, 0) };
        if r < 0 {
            let e = std::io::Error::from_raw_os_error(-r);
            // Don't detach what wasn't attached.
            entry.ifindex = -1;
            let hint = if r == -libc::EBUSY {
                "another XDP program holds the NIC without libxdp's dispatcher, or the \
                 dispatcher runs in another mode"
            } else {
                "is a bpffs mounted at /sys/fs/bpf or named by LIBXDP_BPFFS?"
            };
            return Err(e).context(format!(
                "adding rampart to {iface}'s XDP dispatcher in {mode:?} mode (libxdp): {hint}"
            ));
        }
        match Dispatcher::read(api, ifindex) {
            Some(Dispatcher::Shared) => {
                info!(
                    iface,
                    ?mode,
                    "XDP program added to the NIC's dispatcher (shared)"
                )
            }
            _ => warn!(
                iface,
                ?mode,
                "libxdp attached rampart alone, without its dispatcher (this kernel refuses \
                 freplace programs, or libxdp's dispatcher object is missing): other XDP \
                 programs cannot join this NIC until rampart leaves it"
            ),
        }
        Ok(entry)
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Whether the entry is still in its NIC's dispatcher (`rampart detach` removes it).
    pub fn attached(&self) -> Result<bool> {
        // SAFETY: a live program handle.
        let id = unsafe { (self.api.id)(self.prog) };
        Ok(components(self.api, self.ifindex)?.contains(&id))
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.ifindex >= 0 && !self.prog.is_null() {
            // SAFETY: a live, attached program handle.
            let r = unsafe { (self.api.detach)(self.prog, self.ifindex, self.mode, 0) };
            match r {
                0 => info!(
                    iface = self.iface,
                    "XDP entry removed from the NIC (shared)"
                ),
                _ => warn!(
                    iface = self.iface,
                    "removing the XDP entry from the NIC: {}",
                    std::io::Error::from_raw_os_error(-r)
                ),
            }
        }
        // SAFETY: handles we own, each freed once, the program before its object.
        unsafe {
            if !self.prog.is_null() {
                (self.api.close)(self.prog);
            }
            (self.api.object_close)(self.obj);
        }
    }
}

/// What holds a NIC, as libxdp sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dispatcher {
    /// libxdp's dispatcher with its components.
    Shared,
    /// One program alone (attached by anything, or by libxdp without a dispatcher).
    Legacy,
}

impl Dispatcher {
    /// `None`: no XDP program on the NIC.
    fn read(api: &Api, ifindex: c_int) -> Option<Dispatcher> {
        // SAFETY: an owned handle or an encoded error; closed once.
        unsafe {
            let mp = (api.mp_get)(ifindex);
            if api.error(mp).is_some() {
                return None;
            }
            let legacy = (api.mp_is_legacy)(mp);
            (api.mp_close)(mp);
            Some(if legacy {
                Dispatcher::Legacy
            } else {
                Dispatcher::Shared
            })
        }
    }
}

/// The NIC's programs as libxdp lists them (a dispatcher's components, or the one legacy
/// program), each as (id, name), handed to `f` while the handles live.
fn with_programs<T>(
    api: &Api,
    ifindex: c_int,
    f: impl FnOnce(c_int, &[(Ptr, u32, Vec<u8>)]) -> T,
) -> Option<T> {
    // SAFETY: a live multiprog handle; the programs it yields live as long as it does, and `f`
    // runs before it is closed.
    unsafe {
        let mp = (api.mp_get)(ifindex);
        if api.error(mp).is_some() {
            return None; // no XDP program at all
        }
        let mut progs = Vec::new();
        let mut prog = if (api.mp_is_legacy)(mp) {
            (api.mp_main)(mp)
        } else {
            (api.mp_next)(std::ptr::null_mut(), mp)
        };
        while !prog.is_null() {
            let name = (api.name)(prog);
            let name = if name.is_null() {
                Vec::new()
            } else {
                CStr::from_ptr(name).to_bytes().to_vec()
            };
            progs.push((prog, (api.id)(prog), name));
            if (api.mp_is_legacy)(mp) {
                break;
            }
            prog = (api.mp_next)(prog, mp);
        }
        let out = f((api.mp_mode)(mp), &progs);
        (api.mp_close)(mp);
        Some(out)
    }
}

/// Ids of rampart's programs on `ifindex` (components of its dispatcher, or the legacy one).
fn components(api: &Api, ifindex: c_int) -> Result<Vec<u32>> {
    Ok(with_programs(api, ifindex, |_, progs| {
        (progs.iter())
            .filter(|(_, _, name)| name == COMPONENT.as_bytes())
            .map(|(_, id, _)| *id)
            .collect()
    })
    .unwrap_or_default())
}

/// Remove program `id` from `ifindex` (from its dispatcher, which libxdp rebuilds without it).
fn detach_id(api: &Api, ifindex: c_int, id: u32) -> Result<()> {
    let r = with_programs(api, ifindex, |mode, progs| {
        match progs.iter().find(|(_, pid, _)| *pid == id) {
            // SAFETY: a live program handle of the multiprog.
            Some((prog, _, _)) => unsafe { (api.detach)(*prog, ifindex, mode, 0) },
            None => 0, // gone meanwhile
        }
    })
    .unwrap_or(0);
    if r < 0 {
        return Err(std::io::Error::from_raw_os_error(-r))
            .with_context(|| format!("removing XDP program {id}"));
    }
    Ok(())
}

/// Whether component `id`'s `JUMPS` still holds rampart's program: the kernel empties it when
/// the daemon that made it is gone.
fn jumps_live(id: u32) -> Result<bool> {
    let Some(info) = aya::programs::loaded_programs()
        .flatten()
        .find(|p| p.id() == id)
    else {
        return Ok(false);
    };
    for map in info.map_ids()?.unwrap_or_default() {
        let Ok(map) = aya::maps::MapInfo::from_id(map) else {
            continue;
        };
        if map.name_as_str() == Some(MAP_JUMPS) {
            return Ok(super::link::prog_array_has(
                map.fd()?.as_fd().as_raw_fd(),
                JUMP_MAIN,
            )?);
        }
    }
    Ok(false)
}

/// Remove every rampart program from `iface`'s dispatcher, leaving the other programs there;
/// how many went.
pub fn detach_components(iface: &str) -> Result<usize> {
    let api = Api::get().context("the NIC has libxdp's dispatcher")?;
    let ifindex = netlink::ifindex(iface)? as c_int;
    let ids = components(api, ifindex)?;
    for &id in &ids {
        detach_id(api, ifindex, id)?;
    }
    Ok(ids.len())
}
