//! Zone files: parsing (RFC 1035 master files), validation, and the in-memory zone model.
//!
//! Parsing goes through the `domain` crate's in-place zone file scanner; every record is composed
//! to wire format there and decoded into hickory-proto's model, which is what the rest of the
//! daemon works with. Names keep the zone's letter case in the data; every comparison and lookup
//! goes through [`NameKey`], the lowercased wire form.

use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use domain::base::iana::Class;
use domain::zonefile::inplace::{Entry, ScannedRecord, Zonefile};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use smallvec::SmallVec;

/// Deepest `$INCLUDE` nesting we follow; deeper is almost certainly a mistake.
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// Largest zone file (each file of a zone, includes counted apart) we read: five times a
/// 1M-name zone (~52 MB), so a file that never ends (`/dev/zero` behind a symlink, a runaway
/// generator) fails with a clear error instead of eating the memory.
pub const MAX_ZONE_FILE_BYTES: u64 = 256 << 20;

mod build;
mod catalog;
mod model;
mod names;
mod nodes;
mod parse;
#[cfg(test)]
mod tests;

use build::*;
pub use catalog::*;
pub use model::*;
pub use names::*;
use nodes::Nodes;
pub use parse::*;
