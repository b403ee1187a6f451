//! One generation's answer arrays: inner maps of the outer `RECORDS`, `INDEX`, ... of the sizes fixed at load, filled through mmap, swapped in by slot.
use std::{
    fs,
    os::fd::AsFd,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    maps::{ArrayOfMaps, Map, MapData},
};
use aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_ARRAY;
use rampart_common::{
    IndexBucket, MAP_INDEX, MAP_NAMES, MAP_RECORDS, MAP_TAILS_LARGE, MAP_TAILS_SMALL, NameSlot,
    Record, TailLarge, TailSmall,
};

use super::{Capacity, Mapped, layout::Layout, link, padded};

/// Flags of every inner array, as its template has them (the kernel requires equal flags):
/// mappable (filled by memcpy). No BPF_F_INNER_MAP: with it arrays may differ in size, but the
/// verifier no longer inlines their lookups (each becomes a helper call, measured costlier).
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// The outer maps, in the order of [`GenerationMaps::arrays`].
const OUTER: [&str; 5] = [
    MAP_RECORDS,
    MAP_INDEX,
    MAP_NAMES,
    MAP_TAILS_SMALL,
    MAP_TAILS_LARGE,
];

/// A generation's arrays, created and filled, not yet where the program looks.
pub struct GenerationMaps {
    records: MapData,
    index: MapData,
    names: MapData,
    tails_small: MapData,
    tails_large: MapData,
}

impl GenerationMaps {
    /// Create arrays of `capacity`'s sizes (the templates') and copy `layout` in, which must
    /// fit them (`Capacity::fits`); `generation` names them.
    pub fn create(layout: &Layout, capacity: &Capacity, generation: u32) -> Result<GenerationMaps> {
        let c = capacity;
        let small: Vec<TailSmall> = (layout.tails_small.iter())
            .map(|t| TailSmall { bytes: padded(t) })
            .collect();
        let large: Vec<TailLarge> = (layout.tails_large.iter())
            .map(|t| TailLarge { bytes: padded(t) })
            .collect();
        Ok(GenerationMaps {
            records: filled(MAP_RECORDS, generation, c.records, &layout.records)?,
            index: filled(MAP_INDEX, generation, c.index_buckets, &layout.index)?,
            names: filled(MAP_NAMES, generation, c.names, &layout.names)?,
            tails_small: filled(MAP_TAILS_SMALL, generation, c.tails_small, &small)?,
            tails_large: filled(MAP_TAILS_LARGE, generation, c.tails_large, &large)?,
        })
    }

    fn arrays(&self) -> [&MapData; 5] {
        [
            &self.records,
            &self.index,
            &self.names,
            &self.tails_small,
            &self.tails_large,
        ]
    }

    /// Put the arrays in slot `slot` of the outer maps (the idle one: the program doesn't look
    /// there until `CONFIG.generation` says so). Our fds close here; the outer maps hold them.
    pub fn put(self, ebpf: &mut Ebpf, slot: u32) -> Result<()> {
        for (name, inner) in OUTER.iter().zip(self.arrays()) {
            let mut outer: ArrayOfMaps<_, MapData> =
                ArrayOfMaps::try_from(ebpf.map_mut(name).expect("map"))?;
            outer
                .set(slot, inner, 0)
                .with_context(|| format!("putting a generation into {name}"))?;
        }
        Ok(())
    }
}

/// Empty slot `slot` of the outer maps: the kernel frees the arrays there once no program run
/// holds them (an RCU grace period). An empty slot is fine.
pub fn clear(ebpf: &Ebpf, slot: u32) -> Result<()> {
    for name in OUTER {
        let Some(Map::ArrayOfMaps(data)) = ebpf.map(name) else {
            anyhow::bail!("map {name} missing or not an array of maps");
        };
        link::map_delete(data, slot).with_context(|| format!("emptying slot {slot} of {name}"))?;
    }
    Ok(())
}

/// The size (`max_entries`) of the array in slot `slot` of each outer map, `None` where the slot
/// is empty.
#[cfg(test)]
pub fn slot_sizes(ebpf: &Ebpf, slot: u32) -> Result<Vec<Option<u32>>> {
    (OUTER.iter())
        .map(|name| {
            let outer: ArrayOfMaps<&MapData, MapData> =
                ArrayOfMaps::try_from(ebpf.map(name).expect("map"))?;
            match outer.get(&slot, 0) {
                Ok(inner) => Ok(Some(inner.info()?.max_entries())),
                Err(aya::maps::MapError::KeyNotFound) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
        .collect()
}

/// The outer maps, made with inner templates of `capacity`'s sizes and pinned under a bpffs
/// directory for the loader to take instead of making its own (`EbpfLoader::map_pin_path`: aya
/// sizes a template from the object, and can't be told another size). The pins go on drop.
pub struct OuterPins(Vec<(&'static str, PathBuf)>);

impl OuterPins {
    pub fn create(capacity: &Capacity, dir: &Path) -> Result<OuterPins> {
        static LOADS: AtomicU32 = AtomicU32::new(0);
        let n = LOADS.fetch_add(1, Ordering::Relaxed);
        let c = capacity;
        let mut pins = OuterPins(Vec::new());
        let sizes = [
            (MAP_RECORDS, size_of::<Record>(), c.records),
            (MAP_INDEX, size_of::<IndexBucket>(), c.index_buckets),
            (MAP_NAMES, size_of::<NameSlot>(), c.names),
            (MAP_TAILS_SMALL, size_of::<TailSmall>(), c.tails_small),
            (MAP_TAILS_LARGE, size_of::<TailLarge>(), c.tails_large),
        ];
        for (name, value_size, len) in sizes {
            // The template is only a shape: the outer map keeps a copy of it, and it goes here.
            let template = array(name, "template", value_size, len)?;
            let outer = link::create_array_of_maps(name, template.fd().as_fd(), 2)
                .with_context(|| format!("creating the array of maps {name}"))?;
            // bpffs refuses names with a dot; loads in one process (tests) run side by side.
            let path = dir.join(format!(
                "{}{}_{n}",
                load_pin_prefix(name),
                std::process::id()
            ));
            let _ = fs::remove_file(&path);
            MapData::from_fd(outer)?.pin(&path).with_context(|| {
                format!("pinning {} (is a bpffs mounted there?)", path.display())
            })?;
            pins.0.push((name, path));
        }
        Ok(pins)
    }

    /// Each outer map's name and pin.
    pub fn paths(&self) -> impl Iterator<Item = (&'static str, &Path)> {
        self.0.iter().map(|(name, path)| (*name, path.as_path()))
    }
}

/// The start of an outer map's pin while a load takes it.
fn load_pin_prefix(name: &str) -> String {
    format!("{name}_load_")
}

/// Remove the outer maps' pins that a load killed between pinning and loading left in `dir`
/// (each holds an outer map and its template's shape). The caller holds `dir`'s instance
/// lock: no other load runs there.
pub fn remove_stale_load_pins(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if OUTER.iter().any(|m| file.starts_with(&load_pin_prefix(m))) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

impl Drop for OuterPins {
    fn drop(&mut self) {
        for (_, path) in &self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

/// A new mappable array of `len` elements of `value_size` bytes (at least one: the kernel
/// refuses empty maps).
fn array(name: &str, what: &str, value_size: usize, len: u32) -> Result<MapData> {
    let len = len.max(1);
    let def = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_ARRAY as u32,
        size_of::<u32>() as u32,
        value_size as u32,
        len,
        BPF_F_MMAPABLE,
    );
    MapData::create(def, &format!("{name}.{what}"), None)
        .with_context(|| format!("creating {name} for {len} entries (memory?)"))
}

/// A new mappable array of `len` elements holding `items` first (`len` >= their count).
fn filled<T: Copy>(name: &str, generation: u32, len: u32, items: &[T]) -> Result<MapData> {
    let data = array(name, &generation.to_string(), size_of::<T>(), len)?;
    // Mapped for the copy only: a mapping kept would count the maps in the daemon's memory
    // too (its Pss), where they are the kernel's.
    Mapped::of(&data, name, len.max(1))?.write(0, items);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins named as a load's (a load killed half-way) go; anything else in the directory stays.
    #[test]
    fn stale_load_pins_are_removed_and_nothing_else() {
        let dir = Path::new("/sys/fs/bpf").join(format!("rp-stale-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let stale = dir.join(format!("{}4242_0", load_pin_prefix(MAP_RECORDS)));
        let kept = dir.join(MAP_RECORDS);
        for path in [&stale, &kept] {
            let map = array("t", "t", 8, 1).unwrap();
            map.pin(path).unwrap();
        }
        remove_stale_load_pins(&dir);
        let (stale_left, kept_left) = (stale.exists(), kept.exists());
        let _ = fs::remove_file(&kept);
        let _ = fs::remove_file(&stale);
        let _ = fs::remove_dir(&dir);
        assert!(!stale_left, "the stale load pin is still there");
        assert!(kept_left, "a pin that is not a load's was removed");
    }
}
