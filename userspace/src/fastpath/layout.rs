//! The compiled table laid out as the XDP program reads it: one record per (name, type) with
//! the variants derived from it where the bytes allow, a cuckoo index over the records, long
//! names and tails in arrays of their own.
use std::collections::HashMap;
use std::hash::BuildHasher;

use hashbrown::HashTable;

use anyhow::{Context, Result, bail};
use rampart_common::{
    AnswerHead, DERIVE_DO, DERIVE_NOEDNS, INDEX_WAYS, IndexBucket, KEY_NAME_LEN, MAX_RELOCS,
    NameSlot, OPT_LEN, QTYPE_ENCLOSER, QTYPE_OTHER, RECORD_NAME_LEN, RECORD_NONE, Record,
    TAIL_CLASS_INLINE, TAIL_CLASS_LARGE, TAIL_CLASS_SMALL, TAIL_INLINE, TAIL_SMALL, Variant,
    home_slot, index_buckets, is_data_type, is_homed, key_hash, name_hash,
};

use crate::compile::CompiledAnswer;

/// One generation's arrays, ready to be copied into its own maps (indexes start at 0).
pub struct Layout {
    pub records: Vec<Record>,
    pub index: Vec<IndexBucket>,
    pub names: Vec<NameSlot>,
    pub tails_small: Vec<Vec<u8>>,
    pub tails_large: Vec<Vec<u8>>,
    pub seed: u64,
    /// Compiled answers the records stand for (every variant, pruned enclosers included).
    pub answers: usize,
    /// Variants made from another's record rather than stored.
    pub derived: usize,
    /// Keys at their home slot (found without the index), and keys in the index.
    pub homed: usize,
    pub indexed: usize,
}

/// Index load: buckets are sized for at most this many entries of their 8 (75%), where
/// two-choice cuckoo hashing with 8-way buckets places every key quickly.
const INDEX_FILL: usize = 6;

/// No key position or record (the u32 vectors of [`Layout::build`]).
const NONE: u32 = u32::MAX;

/// Seeds tried before a layout is taken with shadowed keys.
const SEED_TRIES: usize = 4;

/// The number of index buckets for `records` records: a power of two.
pub fn index_buckets_for(records: usize) -> usize {
    records.div_ceil(INDEX_FILL).max(1).next_power_of_two()
}

/// The three variants of one (name, type), as the compiler made them.
type Group<'a> = [Option<&'a CompiledAnswer>; 3];

/// One generation's array lengths, what its maps are sized from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub records: usize,
    pub names: usize,
    pub tails_small: usize,
    pub tails_large: usize,
    /// Keys in the index (not at their home slot), and the index's buckets.
    pub indexed: usize,
    pub index_buckets: usize,
}

impl Layout {
    /// Lay out `table`, hashing names under a seed from `seeds` (a
    /// few are tried when one leaves a key shadowed, see [`build_index`]).
    pub fn build(table: &[CompiledAnswer], seeds: impl FnMut() -> Result<u64>) -> Result<Layout> {
        Layout::build_sized(table, seeds, |_| {})
    }

    pub fn sizes(&self) -> Sizes {
        Sizes {
            records: self.records.len(),
            names: self.names.len(),
            tails_small: self.tails_small.len(),
            tails_large: self.tails_large.len(),
            indexed: self.indexed,
            index_buckets: self.index.len(),
        }
    }

    /// [`Layout::build`], telling `sized` the layout's [`Sizes`] once they are known, before
    /// the index (the longest step left) is built: the maps can be made and the program
    /// verified meanwhile. The result's own sizes differ (then the caller sizes again) only
    /// when the index had to grow or another seed was taken (a shadowed key).
    pub fn build_sized(
        table: &[CompiledAnswer],
        mut seeds: impl FnMut() -> Result<u64>,
        sized: impl FnOnce(Sizes),
    ) -> Result<Layout> {
        let t0 = std::time::Instant::now();
        let groups = Groups::new(table)?;
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: grouped");
        // Records in the table's order (the compiler's is deterministic, and so is the index).
        // Keys, positions and record numbers as u32 (the table has fewer than 2^32 answers,
        // `Groups::new`): these vectors are millions long, and every page of them is touched.
        let keys: Vec<u32> = (groups.keys())
            .filter(|&i| stored(&groups, i))
            .map(|i| i as u32)
            .collect();
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: keys");
        let mut b = Builder {
            out: Layout {
                records: Vec::with_capacity(keys.len()),
                index: Vec::new(),
                names: Vec::new(),
                tails_small: Vec::new(),
                tails_large: Vec::new(),
                seed: 0,
                answers: crate::compile::answer_count(table),
                derived: 0,
                homed: 0,
                indexed: 0,
            },
            tails: HashMap::default(),
            names: HashMap::default(),
            marker: None,
        };
        // A name's shared entry stands in another of its records when it has one (the anchor,
        // which the index entry names: it proves the name), its answer in a record shared by
        // every name whose shared answer has the same bytes.
        // The first key of each name with a shared entry, by the shared entry's key.
        let mut first_of_name = vec![NONE; groups.starts.len()];
        for (pos, &k) in keys.iter().enumerate() {
            if groups.key(k as usize).1 != QTYPE_OTHER
                && let Some(shared) = groups.shared_of(k as usize)
                && first_of_name[shared] == NONE
            {
                first_of_name[shared] = pos as u32;
            }
        }
        // Each key's anchor position, or NONE.
        let anchor: Vec<u32> = keys.iter().map(|&k| first_of_name[k as usize]).collect();
        drop(first_of_name);
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: anchors");
        // Base records of the keys that have their own, then the shared answers, then (in
        // `alternates`) the variants' records.
        let mut record_of = vec![NONE; keys.len()];
        for (pos, &k) in keys.iter().enumerate() {
            if anchor[pos] != NONE {
                continue;
            }
            let (name, qtype) = groups.key(k as usize);
            let record = b.base_record(name, qtype, &groups.group(k as usize))?;
            record_of[pos] = b.out.records.len() as u32;
            b.out.records.push(record);
        }
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: base records");
        let mut shared: HashMap<_, usize, foldhash::fast::RandomState> = HashMap::default();
        let mut group_of: Vec<u32> = (keys.iter().zip(&anchor))
            .filter(|&(_, &a)| a == NONE)
            .map(|(&k, _)| k)
            .collect();
        for (pos, &k) in keys.iter().enumerate() {
            let a = anchor[pos];
            if a == NONE {
                continue;
            }
            let group = groups.group(k as usize);
            let answer = *shared.entry(signature(&group)).or_insert_with(|| {
                group_of.push(k);
                b.out.records.len()
            });
            if answer == b.out.records.len() {
                let record = b.base_record(b"", QTYPE_OTHER, &group)?;
                b.out.records.push(record);
            }
            record_of[pos] = record_of[a as usize];
            b.out.records[record_of[a as usize] as usize].other = answer as u32;
        }
        drop(shared);
        drop(anchor);
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: shared records");
        for (i, &k) in group_of.iter().enumerate() {
            b.alternates(i, &groups.group(k as usize))?;
        }
        drop(group_of);
        if b.out.records.is_empty() {
            // A home slot to probe (home_slot of 0 records is slot 0): a record no name matches.
            b.out.records.push(Record::zeroed());
        }
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: records");
        let qtypes: Vec<u16> = keys.iter().map(|&k| groups.key(k as usize).1).collect();
        let known = Sizes {
            records: b.out.records.len(),
            names: b.out.names.len(),
            tails_small: b.out.tails_small.len(),
            tails_large: b.out.tails_large.len(),
            indexed: 0,
            index_buckets: 0,
        };
        let mut sized = Some(sized);
        let mut best: Option<(usize, u64, Placement)> = None;
        for _ in 0..SEED_TRIES {
            let seed = seeds()?;
            let hashes: Vec<u64> = (keys.iter())
                .map(|&k| {
                    let (name, qtype) = groups.key(k as usize);
                    key_hash(name_hash(seed, name), qtype)
                })
                .collect();
            let placement = Placement::new(&hashes, &qtypes, &record_of, known.records, |homed| {
                if let Some(sized) = sized.take() {
                    let indexed = keys.len() - homed;
                    sized(Sizes {
                        indexed,
                        index_buckets: index_buckets_for(indexed),
                        ..known
                    });
                }
            })?;
            let shadowed = placement.shadowed;
            if best.as_ref().is_none_or(|b| shadowed < b.0) {
                best = Some((shadowed, seed, placement));
            }
            if shadowed == 0 {
                break;
            }
        }
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: indexed");
        let (shadowed, seed, placement) = best.expect("at least one try");
        if shadowed > 0 {
            tracing::warn!(
                shadowed,
                "answers the fast path can't find (the slow path answers them)"
            );
        }
        b.out.seed = seed;
        b.out.homed = placement.homed;
        b.out.indexed = keys.len() - placement.homed;
        b.out.records = placement.apply(std::mem::take(&mut b.out.records));
        b.out.index = placement.index;
        tracing::debug!(elapsed = ?t0.elapsed(), "layout: applied");
        Ok(b.out)
    }
}

/// Where each record goes in its generation's share of `RECORDS`, and the index over those not
/// at their home slot.
struct Placement {
    /// Record i (in build order) goes to slot `slot_of[i]` of the generation's share.
    slot_of: Vec<u32>,
    index: Vec<IndexBucket>,
    /// Keys at their home slot; keys the index shadows.
    homed: usize,
    shadowed: usize,
}

impl Placement {
    /// Keys of homed types claim their home slots in the table's order (the first of two keys
    /// with the same home keeps it); every other record (keys whose home was taken, shared and
    /// encloser entries, variants' own records) fills the slots no key claimed, in order, and
    /// the index finds the keys among them. A slot no key claimed is no key's home, so no
    /// variant's record can stand where the program looks for its key's.
    /// Key i (hash, type) is record `record_of[i]` (a shared entry standing in another key's
    /// record has that record); a homed key always has a record of its own. `homed_keys` hears
    /// how many keys are at home before the index is built.
    fn new(
        hashes: &[u64],
        qtypes: &[u16],
        record_of: &[u32],
        records: usize,
        homed_keys: impl FnOnce(usize),
    ) -> Result<Placement> {
        let count = u32::try_from(records).context("records")?;
        let mut slot_of = vec![u32::MAX; records];
        let mut taken = vec![false; records];
        let mut homed = 0;
        for (i, (&hash, &qtype)) in hashes.iter().zip(qtypes).enumerate() {
            let home = home_slot(hash, count) as usize;
            if is_homed(qtype) && !taken[home] {
                taken[home] = true;
                slot_of[record_of[i] as usize] = home as u32;
                homed += 1;
            }
        }
        homed_keys(homed);
        let mut free = (0..records).filter(|&s| !taken[s]);
        for slot in slot_of.iter_mut().filter(|s| **s == u32::MAX) {
            *slot = free.next().expect("as many free slots as records left") as u32;
        }
        let at_home = |i: usize| {
            is_homed(qtypes[i]) && slot_of[record_of[i] as usize] == home_slot(hashes[i], count)
        };
        let indexed: Vec<(u64, u32)> = (hashes.iter().enumerate())
            .filter(|&(i, _)| !at_home(i))
            .map(|(i, &h)| (h, slot_of[record_of[i] as usize]))
            .collect();
        let (index, shadowed) = build_index(&indexed)?;
        Ok(Placement {
            slot_of,
            index,
            homed,
            shadowed,
        })
    }

    /// The records in their slots, their variants' record numbers moved with them: moved in
    /// place, cycle by cycle (a million-name table's records are a quarter of a gigabyte).
    fn apply(&self, mut records: Vec<Record>) -> Vec<Record> {
        let moved = |r: u32| {
            if r == RECORD_NONE {
                r
            } else {
                self.slot_of[r as usize]
            }
        };
        for r in &mut records {
            r.alt = r.alt.map(moved);
            r.other = moved(r.other);
        }
        let mut placed = vec![false; records.len()];
        for start in 0..records.len() {
            // Record `start` goes to its slot, the one there to its own, until a record's slot
            // is `start`.
            let mut at = start;
            while !placed[at] {
                placed[at] = true;
                let to = self.slot_of[at] as usize;
                records.swap(start, to);
                at = to;
            }
        }
        records
    }
}

/// The table's (name, type) keys in order, each with its variants: a run of the table (the
/// compiler writes a key's variants together). Only the keys looked up by name are hashed (a
/// million-name table has three million keys); they are also the only ones two zones' tables
/// may both hold (a name off one zone's tree, in its SOA, gets markers there): such a key is
/// one, where it first appears, its variants the later run's where both have them.
struct Groups<'a> {
    table: &'a [CompiledAnswer],
    /// Where each run starts, and the table's end.
    starts: Vec<u32>,
    /// The shared (`QTYPE_OTHER`) and closest-encloser keys, by name: what [`Groups::get`] finds.
    /// The slots hold the keys' numbers, compared through the table: 4 bytes, where a borrowed
    /// (name, type) took 32 (64 MB of fresh pages at a million names, now 8).
    ids: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    /// Runs of a key seen before, by the key's first run.
    again: HashMap<u32, Vec<u32>>,
    /// Each key's name's shared key, found next to it (the compiler writes a name's keys
    /// together), or NONE: looked up by name then. Empty when a key repeats (`again`): then
    /// the first of a name's shared keys may be elsewhere.
    near_shared: Vec<u32>,
}

/// Whether [`Groups::get`] looks up keys of this type.
fn looked_up(qtype: u16) -> bool {
    qtype == QTYPE_OTHER || qtype == QTYPE_ENCLOSER
}

impl<'a> Groups<'a> {
    fn new(table: &'a [CompiledAnswer]) -> Result<Groups<'a>> {
        if u32::try_from(table.len()).is_err() {
            bail!("{} compiled answers", table.len());
        }
        let key = |a: &'a CompiledAnswer| (&*a.qname, a.qtype);
        let mut starts: Vec<u32> = (0..table.len())
            .filter(|&i| i == 0 || key(&table[i - 1]) != key(&table[i]))
            .map(|i| i as u32)
            .collect();
        // Sized once: a million names' keys would otherwise be moved at each doubling.
        let looked_up_keys = (starts.iter())
            .filter(|&&i| looked_up(table[i as usize].qtype))
            .count();
        let hasher = foldhash::fast::RandomState::default();
        let key_of = |id: u32| key(&table[starts[id as usize] as usize]);
        let mut ids = HashTable::with_capacity(looked_up_keys);
        let mut again: HashMap<u32, Vec<u32>> = HashMap::new();
        for (id, &start) in starts.iter().enumerate() {
            let a = &table[start as usize];
            if looked_up(a.qtype) {
                let k = key(a);
                let rehash = |&i: &u32| hasher.hash_one(key_of(i));
                let entry = ids.entry(hasher.hash_one(k), |&i| key_of(i) == k, rehash);
                let first = *entry.or_insert(id as u32).get();
                if first != id as u32 {
                    again.entry(first).or_default().push(id as u32);
                }
            }
        }
        let near_shared = match again.is_empty() {
            true => near_shared(table, &starts),
            false => Vec::new(),
        };
        starts.push(table.len() as u32);
        Ok(Groups {
            table,
            starts,
            ids,
            hasher,
            again,
            near_shared,
        })
    }

    /// Key `id`'s name's shared (`QTYPE_OTHER`) key: [`Groups::id`] of it, without hashing the
    /// name where it stands next to `id`.
    fn shared_of(&self, id: usize) -> Option<usize> {
        match self.near_shared.get(id) {
            Some(&near) if near != NONE => Some(near as usize),
            _ => self.id(self.key(id).0, QTYPE_OTHER),
        }
    }

    /// Every key, in the order it first appears.
    fn keys(&self) -> impl Iterator<Item = usize> + '_ {
        let later: std::collections::HashSet<u32> =
            self.again.values().flatten().copied().collect();
        (0..self.starts.len() - 1)
            .filter(move |&i| later.is_empty() || !later.contains(&(i as u32)))
    }

    fn run(&self, id: usize) -> &'a [CompiledAnswer] {
        &self.table[self.starts[id] as usize..self.starts[id + 1] as usize]
    }

    /// Key `id`'s (name, type).
    fn key(&self, id: usize) -> (&'a [u8], u16) {
        let a = &self.table[self.starts[id] as usize];
        (&*a.qname, a.qtype)
    }

    /// Key `id`'s variants.
    fn group(&self, id: usize) -> Group<'a> {
        let mut g = [None; 3];
        let later = self.again.get(&(id as u32)).into_iter().flatten();
        for run in std::iter::once(id).chain(later.map(|&r| r as usize)) {
            for a in self.run(run) {
                g[a.variant as usize] = Some(a);
            }
        }
        g
    }

    /// The key of a shared or closest-encloser entry.
    fn id(&self, name: &[u8], qtype: u16) -> Option<usize> {
        debug_assert!(looked_up(qtype));
        let hash = self.hasher.hash_one((name, qtype));
        let found = self
            .ids
            .find(hash, |&i| self.key(i as usize) == (name, qtype));
        found.map(|&i| i as usize)
    }

    fn get(&self, name: &[u8], qtype: u16) -> Option<Group<'a>> {
        self.id(name, qtype).map(|i| self.group(i))
    }
}

/// For each key (run of `table` starting at `starts[i]`), the shared key among the keys of the
/// same name right around it, or NONE.
fn near_shared(table: &[CompiledAnswer], starts: &[u32]) -> Vec<u32> {
    let mut near = vec![NONE; starts.len()];
    let name = |id: usize| &*table[starts[id] as usize].qname;
    let mut from = 0;
    while from < starts.len() {
        let mut to = from + 1;
        while to < starts.len() && name(to) == name(from) {
            to += 1;
        }
        let shared = (from..to).find(|&id| table[starts[id] as usize].qtype == QTYPE_OTHER);
        if let Some(shared) = shared {
            near[from..to].fill(shared as u32);
        }
        from = to;
    }
    near
}

/// Whether a closest-encloser entry (`own`, at `name`) says exactly what its nearest
/// ancestor's does: a walk that doesn't find it goes on up and gets the same answer, so it
/// needn't be stored. In an unsigned zone that is every name's but the apex's (the NXDOMAIN
/// template fits any name below it).
fn same_as_ancestor(groups: &Groups, name: &[u8], own: &Group) -> bool {
    let mut rest = name;
    while let Some(&len) = rest.first().filter(|&&l| l != 0) {
        rest = &rest[len as usize + 1..];
        if let Some(up) = groups.get(rest, QTYPE_ENCLOSER) {
            return same_group(own, &up);
        }
    }
    false
}

/// Whether a data type's answer at a name (`own`) is the one the name's shared entry gives
/// every data type it doesn't list (e.g. DS at a name that is no cut: NODATA either way): the
/// program falls back to the shared entry when the type has no record, so it needn't be stored.
fn same_as_shared(groups: &Groups, id: usize, qtype: u16, own: &Group) -> bool {
    if qtype == QTYPE_OTHER || !is_data_type(qtype) {
        return false;
    }
    let Some(shared) = groups.shared_of(id) else {
        return false;
    };
    same_group(own, &groups.group(shared))
}

/// Whether key `id` is stored: not a pruned closest-encloser or data type entry.
fn stored(groups: &Groups, id: usize) -> bool {
    let (name, qtype) = groups.key(id);
    let own = groups.group(id);
    if qtype == QTYPE_ENCLOSER {
        !same_as_ancestor(groups, name, &own)
    } else {
        !same_as_shared(groups, id, qtype, &own)
    }
}

/// The bytes and treatment of one answer, whatever the name (what
/// [`CompiledAnswer::same_answer`] compares), borrowed from it.
type AnswerSig<'a> = (
    (u8, u16, u16, u16, u16, u32, u8),
    Option<(u8, &'a [u8])>,
    &'a [u8],
);

/// A group's answers' signatures: names whose shared answers have the same one share one
/// record for them.
fn signature<'a>(g: &Group<'a>) -> [Option<AnswerSig<'a>>; 3] {
    g.map(|a| {
        a.map(|a| {
            (
                (
                    a.variant as u8,
                    a.flags,
                    a.ancount,
                    a.nscount,
                    a.arcount,
                    a.rrl_class,
                    a.derived,
                ),
                (a.relocation.as_ref()).map(|r| (r.ref_qname_len, r.pointers.as_slice())),
                &*a.tail,
            )
        })
    })
}

fn same_group(a: &Group, b: &Group) -> bool {
    a.iter().zip(b).all(|(a, b)| match (a, b) {
        (Some(a), Some(b)) => a.same_answer(b),
        (None, None) => true,
        _ => false,
    })
}

struct Builder<'a> {
    out: Layout,
    /// Tails already placed, by content: (class, absolute index).
    tails: HashMap<&'a [u8], (u8, u32), foldhash::fast::RandomState>,
    names: HashMap<&'a [u8], u32, foldhash::fast::RandomState>,
    /// The one record every variant without an answer of its own points at.
    marker: Option<u32>,
}

impl<'a> Builder<'a> {
    /// The record of a (name, type): its EDNS variant, name and the derivable variants.
    fn base_record(&mut self, name: &'a [u8], qtype: u16, g: &Group<'a>) -> Result<Record> {
        let mut r = match g[Variant::Edns as usize] {
            Some(a) => self.record(a)?,
            None => Record::zeroed(),
        };
        r.qtype = qtype;
        r.name_len = name.len() as u8;
        if name.len() <= RECORD_NAME_LEN {
            r.name[..name.len()].copy_from_slice(name);
        } else {
            r.long_name = self.long_name(name)?;
        }
        if let Some(base) = g[Variant::Edns as usize] {
            // Derived in the compiler (the variant has no entry), or found derivable here.
            if base.derived & DERIVE_NOEDNS != 0 || g[0].is_some_and(|a| base.derives_noedns(a)) {
                r.derive |= DERIVE_NOEDNS;
                r.noedns_csum = super::tail_checksum(&base.tail[..base.tail.len() - OPT_LEN]);
            }
            if base.derived & DERIVE_DO != 0 || g[2].is_some_and(|a| base.derives_do(a)) {
                r.derive |= DERIVE_DO;
            }
        }
        Ok(r)
    }

    /// Records of the variants that can't be derived from record `i`.
    fn alternates(&mut self, i: usize, g: &Group<'a>) -> Result<()> {
        let derive = self.out.records[i].derive;
        let mut alt = [RECORD_NONE; 2];
        for (slot, (variant, bit)) in [
            (Variant::NoEdns, DERIVE_NOEDNS),
            (Variant::EdnsDo, DERIVE_DO),
        ]
        .into_iter()
        .enumerate()
        {
            if derive & bit != 0 {
                self.out.derived += 1;
                continue;
            }
            alt[slot] = match g[variant as usize] {
                Some(a) if !a.is_pass_marker() => {
                    let r = self.record(a)?;
                    self.push(r)
                }
                // A marker (too big for this variant): every one is the same record.
                Some(_) => self.marker(),
                None => RECORD_NONE,
            };
        }
        self.out.records[i].alt = alt;
        Ok(())
    }

    fn marker(&mut self) -> u32 {
        if let Some(m) = self.marker {
            return m;
        }
        let m = self.push(Record::zeroed());
        self.marker = Some(m);
        m
    }

    fn push(&mut self, r: Record) -> u32 {
        self.out.records.push(r);
        self.out.records.len() as u32 - 1
    }

    /// A record holding `a`'s header fields and tail (inline, or a shared tail slot).
    fn record(&mut self, a: &'a CompiledAnswer) -> Result<Record> {
        let mut r = Record::zeroed();
        let (class, index) = self.tail(&a.tail);
        r.head = AnswerHead {
            flags: a.flags,
            ancount: a.ancount,
            nscount: a.nscount,
            arcount: a.arcount,
            tail_len: a.tail.len() as u16,
            tail_csum: super::tail_checksum(&a.tail),
            tail_index: index,
            tail_class: class,
            opt_back: a.opt_back(),
            rrl_class: a.rrl_class,
            ..AnswerHead::default()
        };
        if class == TAIL_CLASS_INLINE {
            r.inline[..a.tail.len()].copy_from_slice(&a.tail);
        }
        if let Some(rel) = &a.relocation {
            if rel.pointers.len() > MAX_RELOCS {
                bail!("{} relocations (at most {MAX_RELOCS})", rel.pointers.len());
            }
            r.head.reloc_count = rel.pointers.len() as u8;
            r.head.ref_qname_len = rel.ref_qname_len;
            let mut packed = [0u8; MAX_RELOCS];
            packed[..rel.pointers.len()].copy_from_slice(&rel.pointers);
            r.head.reloc = u64::from_le_bytes(packed);
        }
        Ok(r)
    }

    /// Where a tail goes: inline when short (or empty), else a slot shared by every answer
    /// with the same bytes (NODATA and NXDOMAIN tails repeat across names).
    fn tail(&mut self, tail: &'a [u8]) -> (u8, u32) {
        if tail.len() <= TAIL_INLINE {
            return (TAIL_CLASS_INLINE, 0);
        }
        let out = &mut self.out;
        *self.tails.entry(tail).or_insert_with(|| {
            if tail.len() <= TAIL_SMALL {
                out.tails_small.push(tail.to_vec());
                (TAIL_CLASS_SMALL, out.tails_small.len() as u32 - 1)
            } else {
                out.tails_large.push(tail.to_vec());
                (TAIL_CLASS_LARGE, out.tails_large.len() as u32 - 1)
            }
        })
    }

    fn long_name(&mut self, name: &'a [u8]) -> Result<u32> {
        if name.len() > KEY_NAME_LEN {
            bail!("name of {} bytes", name.len());
        }
        let out = &mut self.out;
        Ok(*self.names.entry(name).or_insert_with(|| {
            let mut slot = NameSlot {
                bytes: [0; KEY_NAME_LEN],
            };
            slot.bytes[..name.len()].copy_from_slice(name);
            out.names.push(slot);
            out.names.len() as u32 - 1
        }))
    }
}

/// Place each (key hash, record) of `keys` in two-choice, 8-way buckets (cuckoo hashing with
/// a bounded random walk; a larger index when the walk doesn't end). Returns the index and how
/// many keys are shadowed: another key's fingerprint stands first in one of their buckets (the
/// program would stop at it, find the name differs and pass the query up: slower, never
/// wrong). About one key in 10^8 per seed.
fn build_index(keys: &[(u64, u32)]) -> Result<(Vec<IndexBucket>, usize)> {
    let mut n = index_buckets_for(keys.len());
    'size: loop {
        if n > 1 << 28 {
            bail!("{} answers can't be indexed", keys.len());
        }
        let mask = (n - 1) as u32;
        let mut index = vec![IndexBucket::default(); n];
        // The key of each entry (two keys may name one record), to move an evicted one on.
        let mut items = vec![[0u32; INDEX_WAYS]; n];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..keys.len() {
            let mut item = i;
            let mut kicks = 0;
            loop {
                let (hash, record) = keys[item];
                let (b1, b2, fp) = index_buckets(hash, mask);
                let entry = (u64::from(fp) << 32) | u64::from(record);
                let free = [b1, b2].into_iter().find_map(|b| {
                    let e = &index[b as usize].entries;
                    e.iter().position(|&x| x == 0).map(|p| (b, p))
                });
                if let Some((b, p)) = free {
                    index[b as usize].entries[p] = entry;
                    items[b as usize][p] = item as u32;
                    break;
                }
                kicks += 1;
                if kicks > 500 {
                    n *= 2;
                    continue 'size;
                }
                // xorshift64: which bucket and which way to evict from.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let b = if rng & 1 == 0 { b1 } else { b2 };
                let way = (rng >> 1) as usize % INDEX_WAYS;
                index[b as usize].entries[way] = entry;
                item = std::mem::replace(&mut items[b as usize][way], item as u32) as usize;
            }
        }
        let shadowed = (keys.iter())
            .filter(|&&(h, r)| first_match(&index, h, mask) != Some(r))
            .count();
        return Ok((index, shadowed));
    }
}

/// The record the program's scan takes for a key hash: the first entry with its fingerprint in
/// its first bucket, then its second.
pub fn first_match(index: &[IndexBucket], key_hash: u64, mask: u32) -> Option<u32> {
    let (b1, b2, fp) = index_buckets(key_hash, mask);
    [b1, b2].into_iter().find_map(|b| {
        (index[b as usize].entries.iter())
            .find(|&&e| (e >> 32) as u32 == fp)
            .map(|&e| e as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name with A and AAAA in an unsigned zone costs two records (A, AAAA): its no-EDNS and
    /// DO variants are derived, its DS answer is the NODATA, its shared NODATA entry stands in
    /// its A record with the answer every name of its length shares, its closest-encloser entry
    /// is the apex's.
    #[test]
    fn a_name_costs_two_records() {
        let records = |n: usize| {
            let mut text = String::from("$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n");
            text.push_str(" NS ns1\nns1 A 192.0.2.1\n");
            for i in 0..n {
                text.push_str(&format!(
                    "h{i:05} A 192.0.2.{}\nh{i:05} AAAA 2001:db8::{i:x}\n",
                    i % 250
                ));
            }
            let zone = crate::zone::Zone::from_text("scale.example.", &text).unwrap();
            let table = crate::compile::compile(&crate::zone::Catalog::from_zones([zone]));
            let layout = Layout::build(&table, || Ok(1)).unwrap();
            assert_eq!(layout.answers, crate::compile::expand(&table).len());
            layout.records.len()
        };
        assert_eq!(records(2000) - records(1000), 2 * 1000);
    }

    /// The sizes told before the index is built are the layout's (the start loads the program
    /// sized by them meanwhile), once, and the layout is the one `build` makes.
    #[test]
    fn sizes_told_early_are_the_layouts() {
        let mut text = String::from("$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n");
        text.push_str(" NS ns1\nns1 A 192.0.2.1\nlong TXT \"");
        text.push_str(&"t".repeat(150));
        text.push_str("\"\n");
        for i in 0..3000 {
            text.push_str(&format!(
                "h{i} A 192.0.2.{}\nh{i} AAAA 2001:db8::{i:x}\n",
                i % 250
            ));
            text.push_str(&format!("{}.n{i} A 192.0.2.7\n", "long-label".repeat(4)));
        }
        let zone = crate::zone::Zone::from_text("sizes.example.", &text).unwrap();
        let table = crate::compile::compile(&crate::zone::Catalog::from_zones([zone]));
        let mut told = Vec::new();
        let layout = Layout::build_sized(&table, || Ok(5), |s| told.push(s)).unwrap();
        assert_eq!(told, [layout.sizes()]);
        assert!(layout.names.len() >= 3000 && !layout.tails_small.is_empty());
        let plain = Layout::build(&table, || Ok(5)).unwrap();
        assert_eq!(plain.records, layout.records);
        assert_eq!(plain.index, layout.index);
    }

    /// Where the program finds (name, qtype) in `layout`: the record at
    /// the key's home slot if it is that key's, else the index's first candidate.
    fn program_finds(layout: &Layout, name: &[u8], qtype: u16) -> Option<u32> {
        let hash = key_hash(name_hash(layout.seed, name), qtype);
        let count = layout.records.len() as u32;
        let home = home_slot(hash, count);
        let r = &layout.records[home as usize];
        let at_home = r.qtype == qtype
            && r.name_len as usize == name.len()
            && name.len() <= RECORD_NAME_LEN
            && r.name[..name.len()] == *name;
        if is_homed(qtype) && at_home {
            return Some(home);
        }
        let found = first_match(&layout.index, hash, (layout.index.len() - 1) as u32)?;
        let r = &layout.records[found as usize];
        // The shared entry stands in another record of the name.
        Some(if qtype == QTYPE_OTHER && r.qtype != QTYPE_OTHER {
            assert_eq!(&r.name[..r.name_len as usize], name);
            r.other
        } else {
            found
        })
    }

    /// A name below a zone's cut named in its SOA gets markers there while the child zone
    /// serves it too: the key is in the table twice, not side by side, and is laid out once, as
    /// the later run says where both have a variant (what the program found before the
    /// groups were runs).
    #[test]
    fn a_key_in_two_zones_is_one_key() {
        let a = crate::zone::Zone::from_text(
            "a.example.",
            "$TTL 300\n@ SOA ns.b.a.example. host.a.example. 1 7200 3600 1209600 300\n NS ns1\nns1 A 192.0.2.1\nb NS ns.b.a.example.\n",
        )
        .unwrap();
        let b = crate::zone::Zone::from_text(
            "b.a.example.",
            "$TTL 300\n@ SOA ns hostmaster 1 7200 3600 1209600 300\n NS ns\nns A 192.0.2.2\n",
        )
        .unwrap();
        let table = crate::compile::compile(&crate::zone::Catalog::from_zones([a, b]));
        let ns = b"\x02ns\x01b\x01a\x07example\0".as_slice();
        let runs = |qtype: u16| {
            (0..table.len())
                .filter(|&i| {
                    (&*table[i].qname, table[i].qtype) == (ns, qtype)
                        && (i == 0 || (&*table[i - 1].qname, table[i - 1].qtype) != (ns, qtype))
                })
                .count()
        };
        assert_eq!(runs(QTYPE_OTHER), 2, "the case this test is about");
        let groups = Groups::new(&table).unwrap();
        let ids: Vec<usize> = (groups.keys())
            .filter(|&i| groups.key(i) == (ns, QTYPE_OTHER))
            .collect();
        assert_eq!(ids.len(), 1);
        // Each variant as the table's last entry for it.
        let last = |v: Variant| {
            (table.iter()).rfind(|a| (&*a.qname, a.qtype, a.variant) == (ns, QTYPE_OTHER, v))
        };
        let group = groups.group(ids[0]);
        for v in Variant::ALL {
            assert!(std::ptr::eq(group[v as usize].unwrap(), last(v).unwrap()));
        }
        let layout = Layout::build(&table, || Ok(7)).unwrap();
        assert!(program_finds(&layout, ns, QTYPE_OTHER).is_some());
        assert!(program_finds(&layout, ns, 1).is_some());
    }

    /// Every key of a zone is found at its own record (home slot or index), and most keys of
    /// data types need no index line.
    #[test]
    fn keys_are_found_at_home_or_through_the_index() {
        let mut text = String::from("$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n");
        text.push_str(" NS ns1\nns1 A 192.0.2.1\n");
        for i in 0..3000 {
            text.push_str(&format!(
                "h{i} A 192.0.2.{}\nh{i} AAAA 2001:db8::{i:x}\n",
                i % 250
            ));
            text.push_str(&format!("h{i} TXT \"{}\"\n", "x".repeat(200 + i % 50)));
        }
        let zone = crate::zone::Zone::from_text("home.example.", &text).unwrap();
        let table = crate::compile::compile(&crate::zone::Catalog::from_zones([zone]));
        let layout = Layout::build(&table, || Ok(42)).unwrap();
        let groups = Groups::new(&table).unwrap();
        let (mut keys, mut typed, mut homed, mut shared) = (0, 0, 0, 0);
        for id in groups.keys() {
            let (name, qtype) = groups.key(id);
            let group = groups.group(id);
            let pruned = !stored(&groups, id);
            if pruned {
                continue; // the shared entry or an ancestor's answers
            }
            let found = program_finds(&layout, name, qtype).expect("a key is found");
            keys += 1;
            let r = &layout.records[found as usize];
            if let Some(a) = group[Variant::Edns as usize] {
                assert_eq!(r.head.tail_len as usize, a.tail.len());
            }
            if qtype == QTYPE_OTHER && r.name_len == 0 {
                shared += 1; // a shared answer: the name was checked at its anchor
                continue;
            }
            assert_eq!((r.qtype, r.name_len as usize), (qtype, name.len()));
            if name.len() <= RECORD_NAME_LEN {
                assert_eq!(&r.name[..name.len()], name);
            }
            let hash = key_hash(name_hash(layout.seed, name), qtype);
            if is_homed(qtype) && found == home_slot(hash, layout.records.len() as u32) {
                homed += 1;
            }
            if is_homed(qtype) {
                typed += 1;
            }
        }
        assert_eq!(homed, layout.homed);
        assert!(
            shared >= 3000,
            "{shared} names' shared entries in shared records"
        );
        assert!(keys >= 3 * 3000, "{keys} keys found");
        // 3 keys of homed types (A, AAAA, TXT) in 3 records a name (the shared entries stand
        // in them): about 1 - 1/e = 63% at home.
        assert!(homed * 100 >= typed * 60, "{homed} of {typed} keys at home");
        // A name that isn't there is found nowhere.
        assert_eq!(
            program_finds(&layout, b"\x04nope\x04home\x07example\0", 1),
            None
        );
    }

    #[test]
    fn every_key_is_found_where_the_program_looks() {
        let hashes: Vec<u64> = (0..50_000u64)
            .map(|i| {
                key_hash(
                    name_hash(7, format!("\x05h{i:04}\x07example\0").as_bytes()),
                    1,
                )
            })
            .collect();
        let keys: Vec<(u64, u32)> = (hashes.iter().enumerate())
            .map(|(i, &h)| (h, 100 + i as u32))
            .collect();
        let (index, shadowed) = build_index(&keys).unwrap();
        assert_eq!(shadowed, 0);
        let mask = (index.len() - 1) as u32;
        assert!(index.len() <= index_buckets_for(hashes.len()) * 2);
        for (i, &h) in hashes.iter().enumerate() {
            assert_eq!(first_match(&index, h, mask), Some(100 + i as u32));
        }
        let absent = key_hash(name_hash(7, b"\x05nope1\x07example\0"), 1);
        assert_eq!(first_match(&index, absent, mask), None);
    }

    /// The layout's bytes at seed 42 for zones with a bit of everything (long names, long and
    /// shared tails, NODATA, CNAME, wildcard, delegation and glue, two zones): making the
    /// layout faster must not change them. The digest changes only with the record format or
    /// with what the compiler writes (then it is updated, saying why).
    #[test]
    fn layout_bytes_at_seed_42() {
        let mut a = String::from("$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n");
        a.push_str(" NS ns1\n NS ns2.other.example.\nns1 A 192.0.2.1\n MX 10 mail\n");
        a.push_str("* TXT \"wild\"\nalias CNAME h1\nout CNAME h2.other.example.\n");
        a.push_str("sub NS ns.sub\nns.sub A 192.0.2.53\nent.deep A 192.0.2.9\n");
        for i in 0..400 {
            a.push_str(&format!(
                "h{i} A 192.0.2.{}\nh{i} AAAA 2001:db8::{i:x}\n",
                i % 250
            ));
            if i % 3 == 0 {
                a.push_str(&format!("h{i} TXT \"{}\"\n", "t".repeat(30 + i % 200)));
            }
            if i % 7 == 0 {
                a.push_str(&format!("{}.n{i} A 192.0.2.7\n", "long-label".repeat(4)));
            }
        }
        let mut b =
            String::from("$TTL 60\n@ SOA ns hm 7 7200 3600 1209600 60\n NS ns\nns A 192.0.2.2\n");
        for i in 0..100 {
            b.push_str(&format!("h{i} A 198.51.100.{}\n", i % 250));
        }
        let zones = [
            crate::zone::Zone::from_text("digest.example.", &a).unwrap(),
            crate::zone::Zone::from_text("other.example.", &b).unwrap(),
        ];
        let table = crate::compile::compile(&crate::zone::Catalog::from_zones(zones));
        let l = Layout::build(&table, || Ok(42)).unwrap();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for r in &l.records {
            ctx.update(format!("{r:?}").as_bytes());
        }
        for b in &l.index {
            ctx.update(format!("{b:?}").as_bytes());
        }
        for n in &l.names {
            ctx.update(&n.bytes);
        }
        for t in l.tails_small.iter().chain(&l.tails_large) {
            ctx.update(format!("{t:?}").as_bytes());
        }
        let counts = (l.seed, l.answers, l.derived, l.homed, l.indexed);
        ctx.update(
            format!("{counts:?} {} {}", l.tails_small.len(), l.tails_large.len()).as_bytes(),
        );
        let digest: String = (ctx.finish().as_ref().iter())
            .map(|b| format!("{b:02x}"))
            .collect();
        eprintln!(
            "layout digest {digest} records {} names {} tails {}+{}",
            l.records.len(),
            l.names.len(),
            l.tails_small.len(),
            l.tails_large.len()
        );
        assert_eq!(digest, LAYOUT_DIGEST_42);
    }

    /// `layout_bytes_at_seed_42`'s digest (base 27a30f6's layout).
    const LAYOUT_DIGEST_42: &str =
        "3519f919923072273c062fd8608d4e6f50035a7a508cc034a666f0837c47ff5c";
}
