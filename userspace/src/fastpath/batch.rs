//! Batched map updates (`BPF_MAP_UPDATE_BATCH`): one syscall per few thousand entries.
//!
//! aya 0.14 updates one element per syscall; filling a million-name table that way costs
//! millions of syscalls. Kernels before 5.6 lack the batch command: there each element goes
//! through `BPF_MAP_UPDATE_ELEM` instead.
// Until install() fills its maps through it.
#![cfg_attr(not(test), allow(dead_code))]

use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, Result, bail, ensure};
use aya::maps::MapData;

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// Entries per syscall: large enough that the syscalls cost nothing next to the copies, small
/// enough that the kernel's temporary buffers stay small.
const CHUNK: usize = 8192;
/// The kernel's internal ENOTSUPP (not in libc): what a map type without batch support returns.
const ENOTSUPP: i32 = 524;

/// `union bpf_attr` as `BPF_MAP_*_BATCH` reads it.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `union bpf_attr` as `BPF_MAP_UPDATE_ELEM` reads it.
#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> std::io::Result<()> {
    // SAFETY: `attr` is a live, correctly laid out bpf_attr of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut A,
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets `keys[i]` to `values[i]` in `map` (created or replaced, `BPF_ANY`), in chunks of a few
/// thousand per syscall. For maps whose value is one `V` (not per-CPU maps). On an error, the
/// entries before the one that failed are in the map.
pub fn update_batch<K: aya::Pod, V: aya::Pod>(
    map: &MapData,
    keys: &[K],
    values: &[V],
) -> Result<()> {
    ensure!(
        keys.len() == values.len(),
        "{} keys for {} values",
        keys.len(),
        values.len()
    );
    let fd = map.fd().as_fd().as_raw_fd() as u32;
    let mut done = 0;
    for (ks, vs) in keys.chunks(CHUNK).zip(values.chunks(CHUNK)) {
        let mut attr = BatchAttr {
            keys: ks.as_ptr() as u64,
            values: vs.as_ptr() as u64,
            count: ks.len() as u32,
            map_fd: fd,
            ..BatchAttr::default()
        };
        match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
            Ok(()) => done += ks.len(),
            // No batch command in this kernel (or for this map type): one by one.
            Err(e) if done == 0 && matches!(e.raw_os_error(), Some(libc::EINVAL | ENOTSUPP)) => {
                return update_each(fd, keys, values);
            }
            Err(e) => {
                let failed = done + attr.count as usize;
                return Err(e).with_context(|| {
                    format!("BPF_MAP_UPDATE_BATCH: entry {failed} of {}", keys.len())
                });
            }
        }
    }
    Ok(())
}

fn update_each<K: aya::Pod, V: aya::Pod>(fd: u32, keys: &[K], values: &[V]) -> Result<()> {
    for (i, (k, v)) in keys.iter().zip(values).enumerate() {
        let mut attr = ElemAttr {
            map_fd: fd,
            key: k as *const K as u64,
            value: v as *const V as u64,
            ..ElemAttr::default()
        };
        if let Err(e) = bpf(BPF_MAP_UPDATE_ELEM, &mut attr) {
            bail!("BPF_MAP_UPDATE_ELEM: entry {i} of {}: {e}", keys.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aya::maps::{HashMap, IterableMap, MapData};

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Key {
        name: [u8; 6],
        qtype: u16,
    }
    // SAFETY: plain old data, no padding.
    unsafe impl aya::Pod for Key {}

    fn key(i: u32) -> Key {
        let mut name = [0u8; 6];
        name[..4].copy_from_slice(&i.to_be_bytes());
        Key { name, qtype: 1 }
    }

    /// More entries than one chunk, then a second batch over half of them: every value read
    /// back is the last one written, and a full map reports its error.
    #[test]
    fn batches_fill_and_replace_a_real_hash_map() {
        const N: u32 = 20_000;
        let map = match HashMap::<MapData, Key, u64>::create(N, 0) {
            Ok(m) => m,
            Err(e) => panic!("creating a BPF hash map (root and a BPF-capable kernel needed): {e}"),
        };
        let keys: Vec<Key> = (0..N).map(key).collect();
        let values: Vec<u64> = (0..N).map(|i| u64::from(i) * 3).collect();
        super::update_batch(map.map(), &keys, &values).unwrap();
        let newer: Vec<u64> = (0..N / 2).map(|i| u64::from(i) + 1_000_000).collect();
        super::update_batch(map.map(), &keys[..(N / 2) as usize], &newer).unwrap();
        for i in (0..N).step_by(97).chain([N - 1]) {
            let want = if i < N / 2 {
                u64::from(i) + 1_000_000
            } else {
                u64::from(i) * 3
            };
            assert_eq!(map.get(&key(i), 0).unwrap(), want, "entry {i}");
        }
        assert_eq!(map.keys().count(), N as usize);
        // One more than the map holds: an error, not silence.
        let err = super::update_batch(map.map(), &[key(N)], &[1]).unwrap_err();
        assert!(format!("{err:#}").contains("entry 0 of 1"), "{err:#}");
        assert!(super::update_batch(map.map(), &keys[..2], &[1]).is_err());
    }
}
