//! A zone's names: its nodes in one vector, found through a table of their indexes.

use super::*;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// The nodes of a zone by key. A hash map of (key, node) sized for a million names had 2^21
/// slots of 48 bytes (~100 MB, half of them empty); here the slots hold a 4-byte index into a
/// vector of exactly the nodes, at the cost of one more memory access per look-up (the slow
/// path's, and the compiler's). A node's key is its name lowercased, compared without case:
/// no second copy of a million names.
#[derive(Default)]
pub(super) struct Nodes {
    entries: Vec<Node>,
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
        let found = (self.index).find(self.hash(key), |&i| entries[i as usize].is_named(key));
        found.map(|&i| i as usize)
    }
    pub(super) fn get<K: Borrow<[u8]> + ?Sized>(&self, key: &K) -> Option<&Node> {
        self.find(key.borrow()).map(|i| &self.entries[i])
    }
    pub(super) fn get_mut<K: Borrow<[u8]> + ?Sized>(&mut self, key: &K) -> Option<&mut Node> {
        self.find(key.borrow()).map(|i| &mut self.entries[i])
    }
    pub(super) fn contains_key<K: Borrow<[u8]> + ?Sized>(&self, key: &K) -> bool {
        self.find(key.borrow()).is_some()
    }
    /// Adds a node (keyed by its name), or replaces the one of the same key.
    pub(super) fn insert(&mut self, node: Node) {
        let hash = key_hash(&self.hasher, &node);
        let entries = &self.entries;
        let same = |&i: &u32| entries[i as usize].is_named(node.name.as_wire());
        if let Some(&i) = self.index.find(hash, same) {
            self.entries[i as usize] = node;
            return;
        }
        let i = u32::try_from(self.entries.len()).expect("fewer than 2^32 names in a zone");
        self.entries.push(node);
        let (entries, hasher) = (&self.entries, &self.hasher);
        (self.index).insert_unique(hash, i, |&j| key_hash(hasher, &entries[j as usize]));
    }
    /// Moves the nodes `pred` picks into a set of their own.
    pub(super) fn take_where(&mut self, pred: impl Fn(&Node) -> bool) -> Nodes {
        if !self.entries.iter().any(&pred) {
            return Nodes::default();
        }
        let (taken, kept): (Vec<_>, Vec<_>) =
            (std::mem::take(&mut self.entries).into_iter()).partition(&pred);
        *self = kept.into_iter().collect();
        taken.into_iter().collect()
    }
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
    pub(super) fn shrink_to_fit(&mut self) {
        self.entries.shrink_to_fit();
        let (entries, hasher) = (&self.entries, &self.hasher);
        (self.index).shrink_to_fit(|&j| key_hash(hasher, &entries[j as usize]));
    }
    /// Every node with its key (made: one allocation each).
    pub(super) fn iter(&self) -> impl Iterator<Item = (NameKey, &Node)> {
        self.entries.iter().map(|n| (n.key(), n))
    }
    pub(super) fn values(&self) -> impl Iterator<Item = &Node> {
        self.entries.iter()
    }
    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.entries.iter_mut()
    }
}

/// The hash of a stored node's key, lowercased on the stack (the table grows, shrinks).
fn key_hash(hasher: &foldhash::fast::RandomState, node: &Node) -> u64 {
    let wire = node.name.as_wire();
    let mut key = [0u8; 256];
    let key = &mut key[..wire.len()];
    key.copy_from_slice(wire);
    key.make_ascii_lowercase();
    hasher.hash_one(&*key)
}

impl FromIterator<Node> for Nodes {
    fn from_iter<I: IntoIterator<Item = Node>>(iter: I) -> Nodes {
        let mut nodes = Nodes::default();
        for node in iter {
            nodes.insert(node);
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
