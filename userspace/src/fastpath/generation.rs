//! One generation's answer arrays: inner maps of the outer `RECORDS`, `INDEX`, ... sized to its layout, filled through mmap, swapped in by slot.
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

use super::{Mapped, layout::Layout, link, padded};

/// Flags of every inner array, as the program's template has them (the kernel requires equal
/// flags): mappable (filled by memcpy), and free to differ in size from the template.
const BPF_F_MMAPABLE: u32 = 1 << 10;
const BPF_F_INNER_MAP: u32 = 1 << 12;

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
    /// Create arrays exactly the size of `layout`'s and copy it in (`generation` names them).
    pub fn create(layout: &Layout, generation: u32) -> Result<GenerationMaps> {
        let small: Vec<TailSmall> = (layout.tails_small.iter())
            .map(|t| TailSmall { bytes: padded(t) })
            .collect();
        let large: Vec<TailLarge> = (layout.tails_large.iter())
            .map(|t| TailLarge { bytes: padded(t) })
            .collect();
        Ok(GenerationMaps {
            records: filled::<Record>(MAP_RECORDS, generation, &layout.records)?,
            index: filled::<IndexBucket>(MAP_INDEX, generation, &layout.index)?,
            names: filled::<NameSlot>(MAP_NAMES, generation, &layout.names)?,
            tails_small: filled(MAP_TAILS_SMALL, generation, &small)?,
            tails_large: filled(MAP_TAILS_LARGE, generation, &large)?,
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

/// A new mappable array holding `items` (at least one element: the kernel refuses empty maps).
fn filled<T: Copy>(name: &str, generation: u32, items: &[T]) -> Result<MapData> {
    let len = items.len().max(1) as u32;
    let def = aya_obj::Map::new_from_params(
        BPF_MAP_TYPE_ARRAY as u32,
        size_of::<u32>() as u32,
        size_of::<T>() as u32,
        len,
        BPF_F_MMAPABLE | BPF_F_INNER_MAP,
    );
    let data = MapData::create(def, &format!("{name}.{generation}"), None)
        .with_context(|| format!("creating {name} for {len} entries (memory?)"))?;
    // Mapped for the copy only: a mapping kept would count the maps in the daemon's memory
    // too (its Pss), where they are the kernel's.
    Mapped::of(&data, name, len)?.write(0, items);
    Ok(data)
}
