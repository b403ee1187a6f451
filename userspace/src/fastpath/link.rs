//! Detaching the bpf_link that holds a NIC's XDP program, as `bpftool link detach` does, but
//! safely across network namespaces: link listings are global and carry only an ifindex, so the
//! link is matched by the program id the NIC (in this namespace) reports and by its ifindex. Also
//! whether a program array slot is filled (shared mode tells a dead entry by it), emptying a
//! slot of an array of maps (aya has no delete for one) and creating an array of maps from an
//! inner template of our own (aya makes its template from the object, of a fixed size).

use std::io;

use anyhow::{Context, Result};
use aya::programs::links::LinkType;

use crate::netlink;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_DETACH: libc::c_long = 34;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<i64> {
    // SAFETY: the bpf syscall reads/writes at most sizeof(attr) bytes, which the buffer holds.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(attr)) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(r)
}

/// Whether slot `key` of the program array `map` holds a program (a lookup from userspace
/// answers the program's id, or ENOENT for an empty slot).
pub fn prog_array_has(map: i32, key: u32) -> io::Result<bool> {
    let mut id = 0u32;
    let mut attr = [0u64; 16];
    attr[0] = map as u32 as u64;
    attr[1] = &key as *const u32 as u64;
    attr[2] = &mut id as *mut u32 as u64;
    match bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Empty slot `key` of the array of maps `map` (already empty: fine).
pub fn map_delete(map: &aya::maps::MapData, key: u32) -> io::Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    let mut attr = [0u64; 16];
    attr[0] = map.fd().as_fd().as_raw_fd() as u32 as u64;
    attr[1] = &key as *const u32 as u64;
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A new array of maps of `slots` slots, named `name`, whose inner maps must match `template`
/// (type, sizes, flags, and max_entries: no BPF_F_INNER_MAP).
pub fn create_array_of_maps(
    name: &str,
    template: std::os::fd::BorrowedFd<'_>,
    slots: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
    // union bpf_attr's map-create part: map_type, key_size, value_size, max_entries,
    // map_flags, inner_map_fd, numa_node, then map_name[16] at byte 28.
    let mut words = [0u32; 32];
    words[..6].copy_from_slice(&[
        BPF_MAP_TYPE_ARRAY_OF_MAPS,
        4,
        4,
        slots,
        0,
        template.as_raw_fd() as u32,
    ]);
    let mut attr = [0u64; 16];
    // SAFETY: both buffers are 128 bytes of plain integers.
    let bytes = unsafe {
        std::ptr::copy_nonoverlapping(words.as_ptr().cast::<u8>(), attr.as_mut_ptr().cast(), 128);
        std::slice::from_raw_parts_mut(attr.as_mut_ptr().cast::<u8>(), 128)
    };
    let n = name.len().min(15);
    bytes[28..28 + n].copy_from_slice(&name.as_bytes()[..n]);
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: the kernel just returned this fd, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// An fd of the link with `id`, closed on drop.
struct LinkFd(i32);

impl LinkFd {
    fn by_id(id: u32) -> io::Result<LinkFd> {
        let mut attr = [0u64; 16];
        attr[0] = u64::from(id);
        Ok(LinkFd(bpf(BPF_LINK_GET_FD_BY_ID, &mut attr)? as i32))
    }

    /// The XDP link's ifindex (struct bpf_link_info: type, id, prog_id, then the union at 16).
    fn xdp_ifindex(&self) -> io::Result<u32> {
        let mut info = [0u32; 16];
        let mut attr = [0u64; 16];
        attr[0] = self.0 as u32 as u64 | ((size_of_val(&info) as u64) << 32);
        attr[1] = info.as_mut_ptr() as u64;
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        Ok(info[4])
    }

    fn detach(&self) -> io::Result<()> {
        let mut attr = [0u64; 16];
        attr[0] = self.0 as u32 as u64;
        bpf(BPF_LINK_DETACH, &mut attr).map(drop)
    }
}

impl Drop for LinkFd {
    fn drop(&mut self) {
        // SAFETY: an fd we own.
        unsafe { libc::close(self.0) };
    }
}

/// Detaches every bpf_link holding an XDP program on `iface`; returns how many.
pub fn detach_links(iface: &str) -> Result<usize> {
    let ifindex = netlink::ifindex(iface)?;
    let progs = netlink::xdp_prog_ids(ifindex).context("reading the NIC's XDP program")?;
    let mut detached = 0;
    for info in aya::programs::loaded_links().flatten() {
        if info.link_type().ok() != Some(LinkType::Xdp) || !progs.contains(&info.program_id()) {
            continue;
        }
        let Ok(link) = LinkFd::by_id(info.id()) else {
            continue; // gone meanwhile
        };
        if link.xdp_ifindex()? == ifindex {
            link.detach()
                .with_context(|| format!("detaching link {} from {iface}", info.id()))?;
            detached += 1;
        }
    }
    Ok(detached)
}
