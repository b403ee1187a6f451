//! Zone file parsing (RFC 1035 master files) through the `domain` crate's scanner.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::*;

pub(super) enum OriginHint {
    /// `ORIGIN=FILE`: the apex, no discussion.
    Given(domain::base::Name<Bytes>),
    /// From `NAME.zone`: the initial `$ORIGIN`; the SOA decides the apex.
    FileName(domain::base::Name<Bytes>),
}

impl OriginHint {
    pub(super) fn name(&self) -> &domain::base::Name<Bytes> {
        match self {
            OriginHint::Given(n) | OriginHint::FileName(n) => n,
        }
    }
}

pub(super) fn parse_origin(text: &str) -> Result<domain::base::Name<Bytes>, String> {
    let text = if text.ends_with('.') {
        text.to_string()
    } else {
        format!("{text}.")
    };
    domain::base::Name::<Bytes>::from_str(&text).map_err(|e| e.to_string())
}

pub(super) fn origin_from_file_name(path: &Path) -> Option<domain::base::Name<Bytes>> {
    let stem = path.file_name()?.to_str()?.strip_suffix(".zone")?;
    if stem.is_empty() {
        return None;
    }
    parse_origin(stem).ok()
}

/// Where a record came from, for messages.
#[derive(Clone, Copy, Debug)]
pub(super) struct Loc {
    pub(super) file: u32,
    pub(super) line: u32,
}

#[derive(Default)]
pub(super) struct Parsed {
    pub(super) files: Vec<PathBuf>,
    pub(super) records: RawRecords,
    pub(super) errors: Vec<String>,
}

/// Parsed records in the wire form the scanner composed (owner, type, class, TTL, RDLENGTH,
/// RDATA), back to back in one buffer: a few dozen bytes a record, where a decoded hickory
/// `Record` takes ~300 and a million-name zone would hold gigabytes until it is built.
#[derive(Default)]
pub(super) struct RawRecords {
    pub(super) wire: Vec<u8>,
    /// Where each record ends in `wire`, and where it came from.
    pub(super) ends: Vec<(usize, Loc)>,
    /// Where chunks of `PIPELINE_CHUNK` records go as the parser fills them, when a builder
    /// takes them on another core (see [`Zone::load`]).
    pub(super) sink: Option<crossbeam_channel::Sender<RawRecords>>,
}

/// Records handed from the parser to the builder at a time.
pub(super) const PIPELINE_CHUNK: usize = 16_384;

impl RawRecords {
    pub(super) fn push(&mut self, (wire, loc): (&[u8], Loc)) {
        self.wire.extend_from_slice(wire);
        self.ends.push((self.wire.len(), loc));
        if self.ends.len() >= PIPELINE_CHUNK
            && let Some(sink) = &self.sink
        {
            // The next chunk is about as long as this one.
            let room = self.wire.len() + self.wire.len() / 8;
            let chunk = RawRecords {
                wire: std::mem::replace(&mut self.wire, Vec::with_capacity(room)),
                ends: std::mem::replace(&mut self.ends, Vec::with_capacity(PIPELINE_CHUNK)),
                sink: None,
            };
            // A builder that is gone (it panicked) shows at its join.
            let _ = sink.send(chunk);
        }
    }

    /// Hands the last records to the builder and tells it there are no more.
    pub(super) fn close(&mut self) {
        if let Some(sink) = self.sink.take() {
            let _ = sink.send(std::mem::take(self));
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (RawRecord<'_>, Loc)> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(end, _)| *end));
        starts.zip(&self.ends).map(|(start, &(end, loc))| {
            let wire = &self.wire[start..end];
            let owner_len = wire_name_len(wire).expect("composed records have valid owners");
            (RawRecord { wire, owner_len }, loc)
        })
    }
}

/// One record of [`RawRecords`].
pub(super) struct RawRecord<'a> {
    pub(super) wire: &'a [u8],
    pub(super) owner_len: usize,
}

impl<'a> RawRecord<'a> {
    /// The owner in wire form, in the file's letter case.
    pub(super) fn owner_wire(&self) -> &'a [u8] {
        &self.wire[..self.owner_len]
    }
    pub(super) fn owner(&self) -> Name {
        wire_to_name(self.owner_wire()).expect("composed records have valid owners")
    }
    pub(super) fn key(&self) -> NameKey {
        NameKey(self.owner_wire().to_ascii_lowercase().into_boxed_slice())
    }
    pub(super) fn field(&self, at: usize) -> u16 {
        let i = self.owner_len + at;
        u16::from_be_bytes([self.wire[i], self.wire[i + 1]])
    }
    pub(super) fn rtype(&self) -> RecordType {
        RecordType::from(self.field(0))
    }
    pub(super) fn ttl(&self) -> u32 {
        (u32::from(self.field(4)) << 16) | u32::from(self.field(6))
    }
    /// The RDATA in wire form.
    pub(super) fn rdata_wire(&self) -> &'a [u8] {
        &self.wire[self.owner_len + 10..]
    }
}

/// Typed hickory RDATA for the types we keep typed, opaque bytes for the rest (see [`TYPED`]).
/// `scratch` is reused across records for the check that the bytes round-trip.
pub(super) fn decode(rtype: RecordType, rdata: &[u8], scratch: &mut Vec<u8>) -> RData {
    let typed = if TYPED.contains(&rtype) {
        decode_typed(rtype, rdata, scratch)
    } else {
        None
    };
    typed.unwrap_or_else(|| opaque(rtype, rdata))
}

impl Parsed {
    pub(super) fn at(&self, loc: Loc) -> String {
        Located(self, loc).to_string()
    }
}

/// `file:line` of a record, formatted only when a message needs it.
pub(super) struct Located<'a>(pub(super) &'a Parsed, pub(super) Loc);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Located(parsed, loc) = self;
        write!(
            f,
            "{}:{}",
            parsed.files[loc.file as usize].display(),
            loc.line
        )
    }
}

/// What the files of one zone share while they are read: the include stack (the top file
/// first, for loop detection), the directory includes are confined to, and the current `$TTL`
/// (which carries into an included file and back out of it, as in BIND and NSD).
pub(super) struct IncludeState {
    pub(super) stack: Vec<PathBuf>,
    pub(super) root: PathBuf,
    pub(super) ttl: Option<u32>,
}

impl IncludeState {
    pub(super) fn new(top: &Path) -> IncludeState {
        let canonical = std::fs::canonicalize(top).unwrap_or_else(|_| top.to_path_buf());
        let root = canonical.parent().unwrap_or(Path::new("/")).to_path_buf();
        IncludeState {
            stack: vec![canonical],
            root,
            ttl: None,
        }
    }
}

/// `path`'s bytes: a regular file of at most [`MAX_ZONE_FILE_BYTES`]. Opened non-blocking, so a
/// FIFO is refused at once instead of hanging a start or a reload until a writer comes.
pub(super) fn read_zone_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    let kind = meta.file_type();
    let odd = if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_dir() {
        "a directory"
    } else {
        ""
    };
    if !odd.is_empty() {
        return Err(format!("not a regular file ({odd})"));
    }
    let too_big = || format!("larger than the {MAX_ZONE_FILE_BYTES}-byte limit for a zone file");
    if meta.len() > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    let mut text = Vec::with_capacity(meta.len() as usize);
    // Bounded even if the file grows while we read it.
    file.take(MAX_ZONE_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_ZONE_FILE_BYTES {
        return Err(too_big());
    }
    Ok(text)
}

/// Reads and parses one file of a zone; `at` is the `$INCLUDE` that named it, if any.
pub(super) fn parse_file(
    path: &Path,
    origin: Option<domain::base::Name<Bytes>>,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
    at: Option<Loc>,
) {
    let text = match read_zone_file(path) {
        Ok(t) => t,
        Err(e) => {
            let msg = match at {
                Some(at) => format!("{}: $INCLUDE {}: {e}", out.at(at), path.display()),
                None => format!("{}: {e}", path.display()),
            };
            out.errors.push(msg);
            return;
        }
    };
    let file = out.files.len() as u32;
    out.files.push(path.to_path_buf());
    parse_bytes(&text, file, origin, path, depth, state, out);
}

/// One logical entry of a master file: its bytes up to and including the newline that ends it
/// (outside parentheses and quotes), and the lines it spans.
pub(super) struct Chunk<'a> {
    pub(super) bytes: &'a [u8],
    pub(super) first_line: usize,
    pub(super) last_line: usize,
    /// The last entry of a file may run into its end inside parentheses or quotes: what is open.
    pub(super) unclosed: Option<&'static str>,
}

/// Splits master-file text into entries (RFC 1035 §5.1 grammar: quotes, escapes, comments,
/// parentheses). The `domain` scanner doesn't say where a record started, and reports some
/// errors after it has read the line feed; feeding it one entry at a time lets us put the right
/// `file:line` on every record and every error.
pub(super) fn split_entries(text: &[u8]) -> impl Iterator<Item = Chunk<'_>> {
    // One entry at a time: a million-record file would hold a vector of them all.
    let (mut start, mut start_line, mut line) = (0, 1, 1);
    let (mut depth, mut quoted) = (0usize, false);
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < text.len() {
            let c = text[i];
            if quoted {
                match c {
                    b'\\' => i += 1,
                    b'"' => quoted = false,
                    b'\n' => line += 1,
                    _ => {}
                }
            } else {
                match c {
                    b'\\' => i += 1,
                    b'"' => quoted = true,
                    b';' => {
                        while i + 1 < text.len() && text[i + 1] != b'\n' {
                            i += 1;
                        }
                    }
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    b'\n' => {
                        line += 1;
                        if depth == 0 {
                            let chunk = Chunk {
                                bytes: &text[start..=i],
                                first_line: start_line,
                                last_line: line - 1,
                                unclosed: None,
                            };
                            i += 1;
                            start = i;
                            start_line = line;
                            return Some(chunk);
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        (start < text.len()).then(|| {
            // The scanner panics on some entries cut short this way (domain 0.12: a TXT string
            // inside an unclosed parenthesis at the end of the file), and a truncated file must
            // not load.
            let unclosed = if quoted {
                Some("a quoted string")
            } else {
                (depth > 0).then_some("a parenthesis")
            };
            let chunk = Chunk {
                bytes: &text[start..],
                first_line: start_line,
                last_line: line,
                unclosed,
            };
            start = text.len();
            chunk
        })
    })
}

pub(super) fn parse_bytes(
    text: &[u8],
    file: u32,
    origin: Option<domain::base::Name<Bytes>>,
    path: &Path,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
) {
    // The scanner splits off what it has read: a small buffer is reused, not the whole file.
    let mut zf = Zonefile::with_capacity(text.len().min(1 << 16)).allow_invalid();
    if let Some(origin) = origin {
        zf.set_origin(origin);
    }
    // RFC 1035 has no default class; everything we serve is IN.
    zf.set_default_class(Class::IN);
    let mut buf = Vec::with_capacity(512);
    // Lines the scanner has seen before the current chunk (it counts every line feed it reads).
    let mut scanner_lines = 0usize;
    // The `$TTL` in force where this file was included applies to it (RFC 2308 §4; BIND, NSD).
    if let Some(ttl) = state.ttl {
        zf.extend_from_slice(format!("$TTL {ttl}\n").as_bytes());
        scanner_lines += 1;
    }
    for chunk in split_entries(text) {
        if let Some(what) = chunk.unclosed {
            out.errors.push(format!(
                "{}:{}: {what} opened in this entry is never closed (the file ends first)",
                path.display(),
                chunk.first_line
            ));
            return;
        }
        if crate::zone_text::relative_origin(chunk.bytes) {
            out.errors.push(format!(
                "{}:{}: $ORIGIN needs an absolute name (ending in a dot)",
                path.display(),
                chunk.first_line
            ));
            return;
        }
        let entry = crate::zone_text::with_ttls_in_seconds(chunk.bytes);
        let entry = match crate::zone_text::include_entry(&entry) {
            Some(Ok(rewritten)) => std::borrow::Cow::Owned(rewritten),
            Some(Err(e)) => {
                out.errors
                    .push(format!("{}:{}: {e}", path.display(), chunk.first_line));
                return;
            }
            None => entry,
        };
        if let Some(ttl) = crate::zone_text::dollar_ttl(&entry) {
            state.ttl = Some(ttl);
        }
        zf.extend_from_slice(&entry);
        if !chunk.bytes.ends_with(b"\n") {
            zf.extend_from_slice(b"\n");
        }
        let loc = Loc {
            file,
            line: chunk.first_line as u32,
        };
        // Only an entry with `..` in it can hold a name with an empty label, or with `\#` RDATA
        // in the generic form (RFC 3597 §5) that isn't valid for its known type (see `reads_back`).
        let suspect = entry.windows(2).any(|w| w == b".." || w == b"\\#");
        loop {
            // The scanner asserts its own invariants, and malformed entries have broken them
            // (domain 0.12: `$INCLUDE "file"origin.`, rewritten before it now); whatever else
            // may, bad input is an error of its file and line, never a crash.
            let next = match catch_unwind(AssertUnwindSafe(|| zf.next_entry())) {
                Ok(next) => next,
                Err(panic) => {
                    out.errors.push(format!(
                        "{}:{}: {SCANNER_FAILED} ({}); it is not valid master file syntax",
                        path.display(),
                        chunk.first_line,
                        panic_message(panic.as_ref())
                    ));
                    // Its state is unknown after that: nothing more of this file.
                    return;
                }
            };
            match next {
                Ok(Some(Entry::Record(rec))) => match compose(&rec, &mut buf, suspect) {
                    Ok(r) => out.records.push((r, loc)),
                    Err(e) => out.errors.push(format!("{}: {e}", out.at(loc))),
                },
                Ok(Some(Entry::Include { path: inc, origin })) => {
                    let inc_path = resolve_include(path, inc.as_str());
                    let origin = origin.or_else(|| zf.origin().ok());
                    let before = state.ttl;
                    include(&inc_path, origin, depth, state, out, loc);
                    // A `$TTL` inside the include stays in force after it (BIND, NSD).
                    if let Some(ttl) = state.ttl.filter(|_| state.ttl != before) {
                        zf.extend_from_slice(format!("$TTL {ttl}\n").as_bytes());
                        scanner_lines += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The scanner's line counts from its own start; map it into this chunk.
                    let (line, msg) = split_scanner_error(&e.to_string());
                    let line = line.map_or(chunk.first_line, |l| {
                        (chunk.first_line + l.saturating_sub(scanner_lines + 1))
                            .min(chunk.last_line)
                    });
                    out.errors.push(format!("{}:{line}: {msg}", path.display()));
                    // The scanner can't continue after an error; one syntax error per file.
                    return;
                }
            }
        }
        scanner_lines += chunk.bytes.iter().filter(|&&b| b == b'\n').count();
        if !chunk.bytes.ends_with(b"\n") {
            scanner_lines += 1;
        }
    }
}

/// A scanner panic, caught: the fuzzer still reports it (a new input to work around).
pub const SCANNER_FAILED: &str = "the zone file scanner failed on this entry";

/// What a caught panic said.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

/// The `domain` crate formats its errors as `line:col: message` and keeps the fields private.
pub(super) fn split_scanner_error(text: &str) -> (Option<usize>, String) {
    let mut parts = text.splitn(3, ':');
    match (
        parts.next().map(str::parse::<usize>),
        parts.next(),
        parts.next(),
    ) {
        (Some(Ok(line)), Some(_col), Some(msg)) => (Some(line), msg.trim().to_string()),
        _ => (None, text.to_string()),
    }
}

pub(super) fn resolve_include(including: &Path, inc: &str) -> PathBuf {
    let inc = Path::new(inc);
    if inc.is_absolute() {
        return inc.to_path_buf();
    }
    // Relative to the including file, so a zone directory can be moved as a whole.
    including.parent().unwrap_or(Path::new(".")).join(inc)
}

pub(super) fn include(
    path: &Path,
    origin: Option<domain::base::Name<Bytes>>,
    depth: usize,
    state: &mut IncludeState,
    out: &mut Parsed,
    at: Loc,
) {
    if depth + 1 > MAX_INCLUDE_DEPTH {
        out.errors.push(format!(
            "{}: $INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} levels",
            out.at(at)
        ));
        return;
    }
    let Ok(canonical) = std::fs::canonicalize(path) else {
        out.errors.push(format!(
            "{}: $INCLUDE {}: no such file",
            out.at(at),
            path.display()
        ));
        return;
    };
    // Symbolic links resolved: a link inside the directory can't lead out of it either.
    if !canonical.starts_with(&state.root) {
        out.errors.push(format!(
            "{}: $INCLUDE {}: outside the zone file's directory {}",
            out.at(at),
            path.display(),
            state.root.display()
        ));
        return;
    }
    if state.stack.contains(&canonical) {
        out.errors
            .push(format!("{}: $INCLUDE loop: {}", out.at(at), path.display()));
        return;
    }
    state.stack.push(canonical);
    parse_file(path, origin, depth + 1, state, out, Some(at));
    state.stack.pop();
}

/// Record types we keep as typed hickory RDATA. Everything else is kept as its exact wire bytes
/// (hickory's `Unknown`): hickory 0.25 would compress the target names of SRV (RFC 2782 forbids
/// it) and SVCB/HTTPS (RFC 9460 §2.2 forbids it), and opaque bytes can't be re-encoded wrongly.
/// Names in RDATA of the RFC 1035 types may be compressed (RFC 3597 §4), which hickory does.
pub(super) const TYPED: [RecordType; 13] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::NS,
    RecordType::CNAME,
    RecordType::PTR,
    RecordType::MX,
    RecordType::SOA,
    RecordType::TXT,
    RecordType::HINFO,
    RecordType::CAA,
    RecordType::TLSA,
    RecordType::SSHFP,
    RecordType::OPENPGPKEY,
];

/// domain's record → wire form (decoded into hickory's model when the zone is built).
///
/// `suspect`: the entry may hold an empty label or generic RDATA, checked by reading the record
/// back.
pub(super) fn compose<'b>(
    rec: &ScannedRecord,
    buf: &'b mut Vec<u8>,
    suspect: bool,
) -> Result<&'b [u8], String> {
    if rec.class() != Class::IN {
        return Err(format!(
            "class {} not supported: only IN is served",
            rec.class()
        ));
    }
    buf.clear();
    rec.compose(buf)
        .map_err(|_| "record too long".to_string())?;
    let owner_len = wire_name_len(buf).ok_or("bad owner name")?;
    if buf.len() < owner_len + 10 {
        return Err("bad owner name".to_string());
    }
    if suspect && !reads_back(buf) {
        return Err(
            "bad name (an empty label: `..`) or generic RDATA (`\\#`) not valid for its type"
                .to_string(),
        );
    }
    Ok(buf)
}

/// Whether a composed record reads back as itself. domain 0.12's scanner builds `a..b` into a
/// name with an empty label inside (an unchecked constructor), which NSD and Knot reject: its
/// wire form ends the name at that label, so it reads back as another record or not at all.
/// And it takes `\#` RDATA as it is for any type (an A of 3 bytes), where Knot checks it
/// against the type's format: read back as its type, such RDATA fails.
fn reads_back(wire: &[u8]) -> bool {
    use domain::base::{ParsedName, Record as DomainRecord};
    use domain::dep::octseq::Parser;
    use domain::rdata::ZoneRecordData;
    type Parsed<'a> =
        DomainRecord<ParsedName<&'a [u8]>, ZoneRecordData<&'a [u8], ParsedName<&'a [u8]>>>;
    let mut parser = Parser::from_ref(&wire);
    let Ok(Some(rec)) = Parsed::parse(&mut parser) else {
        return false;
    };
    let mut back = Vec::with_capacity(wire.len());
    parser.remaining() == 0 && rec.compose(&mut back).is_ok() && back == wire
}

/// Typed hickory RDATA, if hickory decodes the bytes and writes back exactly the same.
pub(super) fn decode_typed(rtype: RecordType, wire: &[u8], back: &mut Vec<u8>) -> Option<RData> {
    // Addresses, most of a large zone, are their bytes: nothing to round-trip.
    match (rtype, wire.len()) {
        (RecordType::A, 4) => {
            let octets: [u8; 4] = wire.try_into().expect("4 bytes");
            return Some(RData::A(std::net::Ipv4Addr::from(octets).into()));
        }
        (RecordType::AAAA, 16) => {
            let octets: [u8; 16] = wire.try_into().expect("16 bytes");
            return Some(RData::AAAA(std::net::Ipv6Addr::from(octets).into()));
        }
        _ => {}
    }
    let len = u16::try_from(wire.len()).ok()?;
    let mut decoder = BinDecoder::new(wire);
    let rdata = RData::read(
        &mut decoder,
        rtype,
        hickory_proto::serialize::binary::Restrict::new(len),
    )
    .ok()?;
    back.clear();
    let mut encoder = BinEncoder::new(back);
    // Canonical mode: no compression, names lowercased; so compare ignoring ASCII case.
    encoder.set_canonical_names(true);
    rdata.emit(&mut encoder).ok()?;
    back.eq_ignore_ascii_case(wire).then_some(rdata)
}

/// RDATA as opaque bytes (RFC 3597), written back verbatim.
pub(super) fn opaque(rtype: RecordType, wire: &[u8]) -> RData {
    let null = if wire.is_empty() {
        NULL::new()
    } else {
        NULL::with(wire.to_vec())
    };
    RData::Unknown {
        code: rtype,
        rdata: null,
    }
}

/// The raw RDATA bytes of an opaque record (for DNAME targets and the like).
pub fn opaque_bytes(rdata: &RData) -> Option<&[u8]> {
    match rdata {
        RData::Unknown { rdata, .. } => Some(rdata.anything()),
        _ => None,
    }
}
