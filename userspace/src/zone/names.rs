//! Domain names as the server keys them: [`NameKey`] (lowercased wire form) and wire-name helpers.

use super::*;

/// A domain name in uncompressed wire form, ASCII-lowercased: the identity the server compares,
/// hashes and looks up by (RFC 4343: names are case-insensitive). Data keeps its original case in
/// hickory [`Name`]s; this type is only the key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NameKey(pub(super) Box<[u8]>);

impl NameKey {
    #[cfg(test)]
    /// The root name.
    pub fn root() -> NameKey {
        NameKey(Box::new([0]))
    }

    /// Validates a wire-form name (no compression pointers) and lowercases it.
    pub fn from_wire(wire: &[u8]) -> Option<NameKey> {
        if wire_name_len(wire)? != wire.len() {
            return None;
        }
        Some(NameKey(wire.to_ascii_lowercase().into_boxed_slice()))
    }

    /// The key of a hickory name (which must be fully qualified to mean anything to us).
    pub fn from_name(name: &Name) -> NameKey {
        let mut wire = Vec::with_capacity(name.len() + 2);
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        NameKey(wire.into_boxed_slice())
    }

    /// Parses presentation format (`www.example.com.`, escapes allowed); relative names are
    /// taken as absolute.
    pub fn parse(text: &str) -> Option<NameKey> {
        let name = parse_origin(text).ok()?;
        NameKey::from_wire(name.as_slice())
    }

    pub fn as_wire(&self) -> &[u8] {
        &self.0
    }

    /// Lowercased hickory name with the same labels.
    pub fn to_name(&self) -> Name {
        wire_to_name(&self.0).expect("NameKey holds a valid wire name")
    }

    #[cfg(test)]
    /// Number of labels, not counting the root.
    pub fn label_count(&self) -> usize {
        suffixes(&self.0).count() - 1
    }

    /// The name one label up, or `None` for the root.
    pub fn parent(&self) -> Option<NameKey> {
        parent_wire(&self.0).map(|p| NameKey(p.into()))
    }

    /// True if `self` is `other` or below it.
    pub fn is_subdomain_of(&self, other: &NameKey) -> bool {
        wire_is_subdomain(&self.0, &other.0)
    }

    /// `*.` + self: the wildcard that could cover children of this name (RFC 4592 §2.1.1).
    pub fn wildcard_child(&self) -> Option<NameKey> {
        if self.0.len() + 2 > rampart_common::MAX_NAME {
            return None;
        }
        let mut wire = Vec::with_capacity(self.0.len() + 2);
        wire.extend_from_slice(&[1, b'*']);
        wire.extend_from_slice(&self.0);
        Some(NameKey(wire.into_boxed_slice()))
    }
}

impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// Canonical DNS name order (RFC 4034 §6.1): deterministic, and the order NSEC will need.
impl Ord for NameKey {
    fn cmp(&self, other: &Self) -> Ordering {
        canonical_cmp(&self.0, &other.0)
    }
}

impl PartialOrd for NameKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(f, &self.0)
    }
}

/// A lowercased wire name borrowed from elsewhere, shown as a [`NameKey`] is.
pub(super) struct WireName<'a>(pub(super) &'a [u8]);

impl fmt::Display for WireName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(f, self.0)
    }
}

impl fmt::Debug for NameKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameKey({self})")
    }
}

/// Length of the wire name at the start of `wire` (uncompressed), if it is well formed.
pub fn wire_name_len(wire: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let len = *wire.get(pos)? as usize;
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos > rampart_common::MAX_NAME {
            return None;
        }
        if len == 0 {
            return if pos <= wire.len() { Some(pos) } else { None };
        }
    }
}

/// The name and each of its ancestors, longest first, ending with the root (`[0]`).
pub fn suffixes(wire: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut next = Some(wire);
    std::iter::from_fn(move || {
        let cur = next?;
        next = parent_wire(cur);
        Some(cur)
    })
}

/// The wire name with its first label removed; `None` for the root (or garbage).
pub fn parent_wire(wire: &[u8]) -> Option<&[u8]> {
    let len = *wire.first()? as usize;
    if len == 0 {
        return None;
    }
    wire.get(1 + len..)
}

/// True if `child` equals `parent` or lies below it. Both must be lowercased wire names.
pub fn wire_is_subdomain(child: &[u8], parent: &[u8]) -> bool {
    if child.len() < parent.len() {
        return false;
    }
    // The suffix of the right length must start on a label boundary.
    suffixes(child)
        .find(|s| s.len() <= parent.len())
        .is_some_and(|s| s == parent)
}

pub(super) fn labels(wire: &[u8]) -> Vec<&[u8]> {
    suffixes(wire)
        .filter(|s| s[0] != 0)
        .map(|s| &s[1..1 + s[0] as usize])
        .collect()
}

/// Where each label of a wire name starts (its length octet), first label first; the count.
/// A name has at most 127 labels (255 octets), so this needs no allocation.
pub(super) fn label_starts(wire: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 || n == starts.len() {
            break;
        }
        starts[n] = pos as u8;
        n += 1;
        pos += 1 + len as usize;
    }
    n
}

/// RFC 4034 §6.1: compare label by label from the root, each label as lowercase octets.
/// (Sorting a million names calls this tens of millions of times: no allocation.)
pub(super) fn canonical_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut sa, mut sb) = ([0u8; 128], [0u8; 128]);
    let (na, nb) = (label_starts(a, &mut sa), label_starts(b, &mut sb));
    fn label(wire: &[u8], at: u8) -> &[u8] {
        let at = at as usize;
        let len = wire[at] as usize;
        &wire[at + 1..(at + 1 + len).min(wire.len())]
    }
    for (&x, &y) in sa[..na].iter().rev().zip(sb[..nb].iter().rev()) {
        match label(a, x).cmp(label(b, y)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    na.cmp(&nb)
}

/// Decodes an uncompressed wire name into a hickory name (case kept).
pub fn wire_to_name(wire: &[u8]) -> Option<Name> {
    let mut decoder = BinDecoder::new(wire);
    Name::read(&mut decoder).ok()
}

/// Presentation format with RFC 1035 §5.1 escapes.
pub(super) fn write_presentation(f: &mut impl fmt::Write, wire: &[u8]) -> fmt::Result {
    if wire == [0] {
        return f.write_char('.');
    }
    for label in labels(wire) {
        for &b in label {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    f.write_char('\\')?;
                    f.write_char(b as char)?;
                }
                0x21..=0x7e => f.write_char(b as char)?,
                _ => write!(f, "\\{b:03}")?,
            }
        }
        f.write_char('.')?;
    }
    Ok(())
}

/// An owner name as the zone file spells it (case kept), in wire form: one shared block of
/// ~48 bytes where a hickory `Name` took ~112 (a million names' largest share of the model).
/// Answers make the `Name` when they need it.
#[derive(Clone)]
pub struct OwnerName(triomphe::ThinArc<(), u8>);

impl OwnerName {
    /// From an uncompressed wire name (the scanner's, or a key's).
    pub(super) fn from_wire(wire: &[u8]) -> OwnerName {
        OwnerName(triomphe::ThinArc::from_header_and_slice((), wire))
    }
    pub(super) fn from_name(name: &Name) -> OwnerName {
        let mut wire = Vec::with_capacity(name.len() + 2);
        for label in name.iter() {
            wire.push(label.len() as u8);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        OwnerName::from_wire(&wire)
    }
    pub fn as_wire(&self) -> &[u8] {
        &self.0.slice
    }
    pub fn to_name(&self) -> Name {
        wire_to_name(self.as_wire()).expect("OwnerName holds a valid wire name")
    }
    /// The lowercased key of the name.
    pub fn key(&self) -> NameKey {
        NameKey(self.as_wire().to_ascii_lowercase().into_boxed_slice())
    }
}

impl fmt::Debug for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_presentation(f, self.as_wire())
    }
}
