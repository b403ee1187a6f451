//! Zone model → table of precompiled answers for the fast path (DESIGN.md §2).
// The CLI (owned separately) is not wired to this module yet; drop this once it is.
#![allow(dead_code)]

use rampart_common::Variant;

/// One precompiled answer: the key parts and the bytes the program writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledAnswer {
    /// Query name in wire form, lowercased.
    pub qname: Vec<u8>,
    pub qtype: u16,
    pub variant: Variant,
    /// Header flags (QR, AA, RCODE; RD/CD clear: the program copies them from the query).
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes after the question.
    pub tail: Vec<u8>,
}

pub fn compile(_catalog: &crate::zone::Catalog) -> Vec<CompiledAnswer> {
    todo!()
}
