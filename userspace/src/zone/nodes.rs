//! A zone's names: its nodes in one vector, found through a table of their indexes.

use super::*;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// The nodes of a zone by key. A hash map of (key, node) sized for a million names had 2^21
/// slots of 48 bytes (~100 MB, half of them empty); here the slots hold a 4-byte index into a
/// vector of exactly the nodes, at the cost of one more memory access per look-up (the slow
/// path's, and the compiler's).
#[derive(Default)]
pub(super) struct Nodes {
    entries: Vec<(NameKey, Node)>,
    index: HashTable<u32>,
    /// Keys are the zone's own names (no one can choose them to collide), and every query looks
    /// several up: foldhash, several times faster than std's SipHash here.
    hasher: foldhash::fast::RandomState,
}

impl Nodes {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }
    fn find(&self, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        (self
            .index
            .find(self.hash(key), |&i| entries[i as usize].0.as_wire() == key))
        .map(|&i| i as usize)
    }
    pub(super) fn get<K: Borrow<[u8]> + ?Sized>(&self, key: &K) -> Option<&Node> {
        self.find(key.borrow()).map(|i| &self.entries[i].1)
    }
    pub(super) fn get_mut<K: Borrow<[u8]> + ?Sized>(&mut self, key: &K) -> Option<&mut Node> {
        self.find(key.borrow()).map(|i| &mut self.entries[i].1)
    }
    pub(super) fn contains_key<K: Borrow<[u8]> + ?Sized>(&self, key: &K) -> bool {
        self.find(key.borrow()).is_some()
    }
    /// Adds a node, or replaces the one of the same key.
    pub(super) fn insert(&mut self, key: NameKey, node: Node) {
        if let Some(i) = self.find(key.as_wire()) {
            self.entries[i].1 = node;
            return;
        }
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 names in a zone");
        let hash = self.hash(key.as_wire());
        self.entries.push((key, node));
        let (entries, hasher) = (&self.entries, &self.hasher);
        (self.index).insert_unique(hash, i, |&j| {
            hasher.hash_one(entries[j as usize].0.as_wire())
        });
    }
    /// Moves the nodes `pred` picks into a set of their own.
    pub(super) fn take_where(&mut self, pred: impl Fn(&NameKey, &Node) -> bool) -> Nodes {
        if !self.entries.iter().any(|(k, n)| pred(k, n)) {
            return Nodes::default();
        }
        let (taken, kept): (Vec<_>, Vec<_>) =
            (std::mem::take(&mut self.entries).into_iter()).partition(|(k, n)| pred(k, n));
        *self = kept.into_iter().collect();
        taken.into_iter().collect()
    }
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(super) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        let (entries, hasher) = (&self.entries, &self.hasher);
        (self.index).shrink_to_fit(|&j| hasher.hash_one(entries[j as usize].0.as_wire()));
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = (&NameKey, &Node)> {
        self.entries.iter().map(|(k, n)| (k, n))
    }
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&NameKey, &mut Node)> {
        self.entries.iter_mut().map(|(k, n)| (&*k, n))
    }
    pub(super) fn keys(&self) -> impl Iterator<Item = &NameKey> {
        self.entries.iter().map(|(k, _)| k)
    }
    pub(super) fn values(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter().map(|(_, n)| n)
    }
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.entries.iter_mut().map(|(_, n)| n)
    }
}

impl FromIterator<(NameKey, Node)> for Nodes {
    fn from_iter<I: IntoIterator<Item = (NameKey, Node)>>(iter: I) -> Nodes {
        let mut nodes = Nodes::default();
        for (key, node) in iter {
            nodes.insert(key, node);
        }
        nodes
    }
}

impl std::ops::Index<&NameKey> for Nodes {
    type Output = Node;
    fn index(&self, key: &NameKey) -> &Node {
        self.get(key).expect("a node of the zone")
    }
}

impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
