//! DNS messages on the wire: query parsing and response rendering (hickory-proto).
//!
//! Byte identity with the fast path rests on one trick: every response is rendered with the
//! *lowercased* query name in the question, and names are compressed ignoring ASCII case
//! ([`Compressor`]), so every owner (or RDATA name) equal to the query name becomes the pointer
//! 0xC00C whatever its spelling. Then the client's own question bytes, of the same length, are
//! copied over the rendered question. The fast path stores only what follows the question and
//! echoes the client's question too, so both paths send the same bytes.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use rampart_common::{CLASSIC_UDP_LIMIT, EDNS_PAYLOAD, Variant};

use crate::answer::{Answer, Question, Rr};
use crate::zone::NameKey;

/// Checking Disabled: read from queries in tests only; answers clear it.
#[cfg(test)]
pub use rampart_common::dns::FLAG_CD;
pub use rampart_common::dns::{
    CLASS_IN, FLAG_AA, FLAG_QR, FLAG_RCODE, FLAG_RD, FLAG_TC, HEADER_LEN, OPTION_COOKIE,
};
use rampart_common::dns::{EDNS_DO, OPCODE_SHIFT, OPTION_EDE, OPTION_NSID, TYPE_OPT};

/// The query's OPT record (RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    pub version: u8,
    /// DO bit (RFC 3225).
    pub dnssec_ok: bool,
    /// The OPT carried an NSID option (RFC 5001 §2.3: a request, empty).
    pub nsid: bool,
    /// The OPT's COOKIE option (RFC 7873), when cookies are on and it was well formed.
    pub cookie: Option<QueryCookie>,
}

/// A well-formed COOKIE option from a query (RFC 7873 §4): the client cookie and the server
/// cookie that followed it (8 to 32 bytes), if any.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct QueryCookie {
    pub client: [u8; 8],
    server: [u8; 32],
    server_len: u8,
}

impl QueryCookie {
    /// RFC 7873 §5.2.2: 8 bytes (client cookie only) or 16 to 40 (client + server cookie);
    /// `None` for any other length (FORMERR).
    pub fn parse(data: &[u8]) -> Option<QueryCookie> {
        if data.len() != 8 && !(16..=40).contains(&data.len()) {
            return None;
        }
        let mut c = QueryCookie {
            client: data[..8].try_into().expect("8 bytes"),
            server: [0; 32],
            server_len: (data.len() - 8) as u8,
        };
        c.server[..data.len() - 8].copy_from_slice(&data[8..]);
        Some(c)
    }
    /// The server cookie as sent (empty: a client cookie only).
    pub fn server(&self) -> &[u8] {
        &self.server[..usize::from(self.server_len)]
    }
}

impl std::fmt::Debug for QueryCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCookie")
            .field("client", &self.client)
            .field("server", &self.server())
            .finish()
    }
}

/// A parsed query with one question.
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    /// The header's flags word as received.
    pub flags: u16,
    /// The query name as sent (the client's letter case).
    #[cfg_attr(not(test), allow(dead_code))]
    pub qname: Name,
    /// The query name lowercased: what we look up.
    pub qname_key: NameKey,
    pub qtype: RecordType,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// The question section exactly as received: name, type, class.
    pub question: Vec<u8>,
}

impl Query {
    /// A query as the compiler asks it: ID 0, RD and CD clear, class IN.
    pub fn synthetic(qname: &NameKey, qtype: RecordType, variant: Variant) -> Query {
        let mut question = qname.as_wire().to_vec();
        question.extend_from_slice(&u16::from(qtype).to_be_bytes());
        question.extend_from_slice(&CLASS_IN.to_be_bytes());
        Query {
            id: 0,
            flags: 0,
            qname: qname.to_name(),
            qname_key: qname.clone(),
            qtype,
            qclass: CLASS_IN,
            edns: None,
            question,
        }
        .in_variant(variant)
    }

    /// The same question asked in another variant (the OPT a synthetic query carries).
    pub fn in_variant(self, variant: Variant) -> Query {
        let edns = |dnssec_ok| Edns {
            udp_size: EDNS_PAYLOAD,
            version: 0,
            dnssec_ok,
            nsid: false,
            cookie: None,
        };
        let edns = match variant {
            Variant::NoEdns => None,
            Variant::Edns => Some(edns(false)),
            Variant::EdnsDo => Some(edns(true)),
        };
        Query { edns, ..self }
    }

    #[cfg(test)]
    pub fn opcode(&self) -> u8 {
        ((self.flags >> OPCODE_SHIFT) & 0xf) as u8
    }
    #[cfg(test)]
    pub fn rd(&self) -> bool {
        self.flags & FLAG_RD != 0
    }
    #[cfg(test)]
    pub fn cd(&self) -> bool {
        self.flags & FLAG_CD != 0
    }
    #[cfg(test)]
    /// Which precompiled variant this query would use.
    pub fn variant(&self) -> Variant {
        match self.edns {
            None => Variant::NoEdns,
            Some(e) if e.dnssec_ok => Variant::EdnsDo,
            Some(_) => Variant::Edns,
        }
    }
    /// What the answer pipeline needs.
    pub fn question(&self) -> Question<'_> {
        Question {
            qname: &self.qname_key,
            qtype: self.qtype,
            dnssec_ok: self.edns.is_some_and(|e| e.dnssec_ok),
        }
    }
    /// Largest UDP response this client takes: 512 without EDNS (RFC 1035 §4.2.1), otherwise
    /// its payload size capped at ours (RFC 6891 §6.2.5, never below 512).
    pub fn udp_limit(&self) -> usize {
        match self.edns {
            None => CLASSIC_UDP_LIMIT as usize,
            Some(e) => e.udp_size.clamp(CLASSIC_UDP_LIMIT, EDNS_PAYLOAD) as usize,
        }
    }
}

/// A packet we don't answer normally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Shorter than a header, or a response (QR=1): answering could feed a loop (RFC 5452 §9
    /// spirit), so stay silent.
    Ignore,
    /// Malformed (RFC 1035 §4.1.1 FORMERR). `question` is echoed if it parsed.
    FormErr {
        id: u16,
        flags: u16,
        question: Option<Vec<u8>>,
    },
    /// A COOKIE option of a length RFC 7873 §5.2.2 doesn't allow, or two of them: FORMERR with
    /// an OPT (DO echoed, no options), as Knot answers; the rest of the packet parsed.
    BadCookie {
        id: u16,
        flags: u16,
        question: Vec<u8>,
        dnssec_ok: bool,
    },
    /// An opcode other than QUERY (RFC 1035 §4.1.1 NOTIMP).
    NotImp {
        id: u16,
        flags: u16,
        question: Option<Vec<u8>>,
    },
}

/// Parses a query: header, exactly one question, no answer/authority records, at most one OPT
/// in the additional section (RFC 6891 §6.1.1). Other additional records are skipped. With
/// `cookies` off, a COOKIE option is an unknown option: skipped, whatever its length.
pub fn parse_query(packet: &[u8], cookies: bool) -> Result<Query, Rejected> {
    if packet.len() < HEADER_LEN {
        return Err(Rejected::Ignore);
    }
    let u16_at = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
    let (id, flags) = (u16_at(0), u16_at(2));
    if flags & FLAG_QR != 0 {
        return Err(Rejected::Ignore);
    }
    let (qdcount, ancount, nscount, arcount) = (u16_at(4), u16_at(6), u16_at(8), u16_at(10));
    let parsed = if qdcount == 1 {
        parse_question(packet)
    } else {
        None
    };
    let question = parsed
        .as_ref()
        .map(|(_, end)| packet[HEADER_LEN..*end].to_vec());
    if (flags >> OPCODE_SHIFT) & 0xf != 0 {
        return Err(Rejected::NotImp {
            id,
            flags,
            question,
        });
    }
    let formerr = |question| Rejected::FormErr {
        id,
        flags,
        question,
    };
    // RCODE is set in responses only (RFC 1035 §4.1.1); a query carrying one is malformed. NSD
    // (our oracle) answers FORMERR (`query_process`: `RCODE(q->packet) != RCODE_OK` →
    // `query_formerr`); Knot ignores the field and answers. The fast path must send these up.
    if flags & FLAG_RCODE != 0 {
        return Err(formerr(question));
    }
    let Some((qname_wire, end)) = parsed else {
        return Err(formerr(None));
    };
    if ancount != 0 || nscount != 0 {
        return Err(formerr(question));
    }
    let edns = match parse_additional(packet, end, arcount, cookies) {
        Ok(edns) => edns,
        Err(OptError::Malformed) => return Err(formerr(question)),
        Err(OptError::BadCookie { dnssec_ok }) => {
            return Err(Rejected::BadCookie {
                id,
                flags,
                question: question.expect("parsed question"),
                dnssec_ok,
            });
        }
    };
    let qname = crate::zone::wire_to_name(&qname_wire).ok_or_else(|| formerr(question.clone()))?;
    let qname_key = NameKey::from_wire(&qname_wire).ok_or_else(|| formerr(question.clone()))?;
    let at = HEADER_LEN + qname_wire.len();
    Ok(Query {
        id,
        flags,
        qname,
        qname_key,
        qtype: RecordType::from(u16_at(at)),
        qclass: u16_at(at + 2),
        edns,
        question: question.expect("parsed question"),
    })
}

/// The question's name (wire, original case) and the offset after its type and class. Names in
/// the question can't usefully be compressed (only the header precedes them): a pointer is
/// malformed.
fn parse_question(packet: &[u8]) -> Option<(Vec<u8>, usize)> {
    let name_len = crate::zone::wire_name_len(&packet[HEADER_LEN..])?;
    let end = HEADER_LEN + name_len + 4;
    if end > packet.len() {
        return None;
    }
    Some((packet[HEADER_LEN..HEADER_LEN + name_len].to_vec(), end))
}

/// Why the additional section can't be answered normally.
#[derive(Debug, PartialEq, Eq)]
enum OptError {
    /// Malformed, or more than one OPT: FORMERR without OPT.
    Malformed,
    /// Well formed but for the COOKIE option (length, or two of them): FORMERR with an OPT.
    BadCookie { dnssec_ok: bool },
}

/// Walks the additional section: its OPT, if any.
fn parse_additional(
    packet: &[u8],
    mut pos: usize,
    count: u16,
    cookies: bool,
) -> Result<Option<Edns>, OptError> {
    let mut edns = None;
    let mut bad_cookie = false;
    for _ in 0..count {
        let name_start = pos;
        pos = skip_name(packet, pos).ok_or(OptError::Malformed)?;
        let fixed = packet.get(pos..pos + 10).ok_or(OptError::Malformed)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        pos += 10 + rdlen;
        if pos > packet.len() {
            return Err(OptError::Malformed);
        }
        if rtype == TYPE_OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if edns.is_some() || packet[name_start] != 0 {
                return Err(OptError::Malformed);
            }
            let options =
                parse_options(&packet[pos - rdlen..pos], cookies).ok_or(OptError::Malformed)?;
            bad_cookie = options.bad_cookie;
            edns = Some(Edns {
                udp_size: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & EDNS_DO as u32 != 0,
                nsid: options.nsid,
                cookie: options.cookie,
            });
        }
    }
    // A malformed record after the OPT wins: the whole packet is junk then.
    match edns {
        Some(e) if bad_cookie => Err(OptError::BadCookie {
            dnssec_ok: e.dnssec_ok,
        }),
        _ => Ok(edns),
    }
}

/// The options of an OPT RDATA we act on.
#[derive(Default)]
struct Options {
    nsid: bool,
    cookie: Option<QueryCookie>,
    /// A COOKIE option of a bad length, or a second one.
    bad_cookie: bool,
}

/// Reads the OPT RDATA's options; `None` if they overrun it. With `cookies` off, COOKIE is
/// skipped like every option we don't know (RFC 6891 §6.1.2).
fn parse_options(mut rdata: &[u8], cookies: bool) -> Option<Options> {
    let mut out = Options::default();
    let mut cookies_seen = 0;
    while !rdata.is_empty() {
        let head = rdata.get(..4)?;
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = rdata.get(4..4 + len)?;
        match u16::from_be_bytes([head[0], head[1]]) {
            OPTION_NSID => out.nsid = true,
            // RFC 7873 §5.2.2: a length other than 8 or 16..=40 is FORMERR. Two COOKIE options
            // are FORMERR too (our choice: NSD keeps the last, BIND and Knot the first).
            OPTION_COOKIE if cookies => {
                cookies_seen += 1;
                out.cookie = QueryCookie::parse(data);
                out.bad_cookie |= out.cookie.is_none() || cookies_seen > 1;
            }
            _ => {}
        }
        rdata = &rdata[4 + len..];
    }
    if out.bad_cookie {
        out.cookie = None;
    }
    Some(out)
}

/// Skips a possibly compressed name; returns the offset after it.
fn skip_name(packet: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *packet.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            1..=63 => pos += 1 + len as usize,
            0xc0..=0xff => return (pos + 2 <= packet.len()).then_some(pos + 2),
            _ => return None,
        }
    }
}

/// How the response travels: UDP responses are truncated to the client's limit, TCP ones only
/// when they exceed what the 2-byte length prefix can frame (RFC 1035 §4.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The largest DNS message TCP can carry: its length prefix is 16 bits (RFC 1035 §4.2.2).
pub const TCP_MESSAGE_LIMIT: usize = u16::MAX as usize;

/// Renders the response to `query`: full, or over the transport's limit (UDP: the client's;
/// TCP: 65,535 bytes, OPT and cookie included) a minimal one with TC=1 (header, question, OPT if
/// the query had one; RFC 2181 §9 / RFC 6891 §7), as NSD and Knot answer what no message holds.
pub fn render(query: &Query, ans: &Answer<'_>, transport: Transport) -> Vec<u8> {
    let full = render_full(query, ans);
    let limit = match transport {
        Transport::Udp => query.udp_limit(),
        Transport::Tcp => TCP_MESSAGE_LIMIT,
    };
    if full.len() > limit {
        return render_truncated(query, ans);
    }
    full
}

/// What a rate limit sends instead of an answer ("slip"), as the XDP program and Knot/NSD do:
/// the answer's header (AA and RCODE) with TC=1, the question, no records and no OPT, so a
/// spoofed victim gets no more bytes than the query had and a real resolver retries over TCP.
pub fn render_slip(query: &Query, ans: &Answer<'_>) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN];
    buf.extend_from_slice(&query.question);
    let rcode = ResponseCode::from_low(ans.rcode.low());
    write_header(&mut buf, query, ans, rcode, true, [1, 0, 0, 0]);
    buf
}

/// The complete response, whatever its size: the compiler's form (and TCP's).
pub fn render_full(query: &Query, ans: &Answer<'_>) -> Vec<u8> {
    match try_render(query, ans) {
        Ok(buf) => buf,
        // Only a >64 KiB answer can fail to encode; tell the client we failed rather than lie.
        Err(_) => {
            let failed = Answer {
                nsid: ans.nsid,
                cookie: ans.cookie,
                ..Answer::error(ResponseCode::ServFail)
            };
            render_truncated(query, &failed)
        }
    }
}

fn try_render(query: &Query, ans: &Answer<'_>) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let mut buf = Vec::with_capacity(512);
    let counts = COMPRESSOR.with_borrow_mut(|names| {
        names.reset();
        let mut enc = BinEncoder::new(&mut buf);
        enc.emit_vec(&[0; HEADER_LEN])?;
        // The lowercased name goes first so it is the compression target at offset 12.
        names.emit(&mut enc, query.qname_key.as_wire())?;
        enc.emit_u16(query.qtype.into())?;
        enc.emit_u16(query.qclass)?;
        let mut counts = [1u16, 0, 0, 0];
        for (i, section) in [&ans.answer, &ans.authority, &ans.additional]
            .into_iter()
            .enumerate()
        {
            for rr in section {
                emit_rr(&mut enc, names, rr, ans.class)?;
            }
            counts[i + 1] = u16::try_from(section.len()).unwrap_or(u16::MAX);
        }
        Ok::<_, hickory_proto::ProtoError>(counts)
    })?;
    write_header(&mut buf, query, ans, ans.rcode, false, counts);
    if let Some(edns) = query.edns {
        push_opt(&mut buf, ans, edns);
    }
    echo_question(&mut buf, query);
    Ok(buf)
}

fn emit_rr(
    enc: &mut BinEncoder<'_>,
    names: &mut Compressor,
    rr: &Rr<'_>,
    class: u16,
) -> Result<(), hickory_proto::ProtoError> {
    names.emit_name(enc, &rr.owner)?;
    enc.emit_u16(rr.rtype().into())?;
    enc.emit_u16(class)?;
    enc.emit_u32(rr.ttl)?;
    let place = enc.place::<u16>()?;
    // RFC 3597 §4: only names in the RDATA of the RFC 1035 types may be compressed. Of those,
    // the zone keeps NS, CNAME, PTR, MX and SOA typed (`zone::TYPED`); every other type with
    // names in its RDATA (SRV, SVCB, DNAME...) is opaque bytes, written as the zone has them.
    match &*rr.rdata {
        RData::CNAME(target) => names.emit_name(enc, &target.0)?,
        RData::NS(target) => names.emit_name(enc, &target.0)?,
        RData::PTR(target) => names.emit_name(enc, &target.0)?,
        RData::MX(mx) => {
            enc.emit_u16(mx.preference())?;
            names.emit_name(enc, mx.exchange())?;
        }
        RData::SOA(soa) => {
            names.emit_name(enc, soa.mname())?;
            names.emit_name(enc, soa.rname())?;
            enc.emit_u32(soa.serial())?;
            enc.emit_i32(soa.refresh())?;
            enc.emit_i32(soa.retry())?;
            enc.emit_i32(soa.expire())?;
            enc.emit_u32(soa.minimum())?;
        }
        // No names to compress (A, AAAA, TXT, CAA, TLSA...), or opaque.
        other => other.emit(enc)?,
    }
    let len = enc.len_since_place(&place);
    place.replace(enc, u16::try_from(len).map_err(|_| "RDATA too long")?)?;
    Ok(())
}

/// Name compression (RFC 1035 §4.1.4) that compares names ignoring ASCII case (RFC 4343 §3), as
/// NSD does. hickory 0.25's `BinEncoder` matches earlier names byte for byte
/// (`get_label_pointer` compares the stored label bytes with `==`), so a zone that spells an
/// owner `WWW` and a CNAME target `www` would get the labels twice; NSD writes a pointer. So
/// names are written here, not by hickory: each name's longest suffix already in the message
/// becomes a pointer to its first occurrence, and every new suffix is remembered at its offset
/// (pointers reach 0x3FFF). A pointer shows the earlier occurrence's spelling, which is why the
/// owner of a record for the query name always reads as the client's question.
#[derive(Default)]
struct Compressor {
    /// Every suffix written so far: its offset in the message and its range in `lowered`.
    seen: Vec<(u16, u32, u32)>,
    /// The names written, lowercased, back to back: one buffer for the whole message rather
    /// than an allocation per suffix (the compiler renders millions of messages).
    lowered: Vec<u8>,
    /// A hickory name in wire form, its case kept; reused from name to name.
    scratch: Vec<u8>,
}

thread_local! {
    /// One compressor per thread, emptied for each message: its buffers outlive the message
    /// (the compiler renders millions).
    static COMPRESSOR: std::cell::RefCell<Compressor> = std::cell::RefCell::default();
}

impl Compressor {
    /// Forgets the previous message's names.
    fn reset(&mut self) {
        self.seen.clear();
        self.lowered.clear();
    }

    fn emit_name(
        &mut self,
        enc: &mut BinEncoder<'_>,
        name: &Name,
    ) -> Result<(), hickory_proto::ProtoError> {
        let mut wire = std::mem::take(&mut self.scratch);
        wire.clear();
        for label in name.iter() {
            wire.push(u8::try_from(label.len()).map_err(|_| "label too long")?);
            wire.extend_from_slice(label);
        }
        wire.push(0);
        let written = self.emit(enc, &wire);
        self.scratch = wire;
        written
    }

    /// `wire`: an uncompressed name in wire form, in the case to write.
    fn emit(
        &mut self,
        enc: &mut BinEncoder<'_>,
        wire: &[u8],
    ) -> Result<(), hickory_proto::ProtoError> {
        if wire.len() > rampart_common::MAX_NAME {
            return Err("name longer than 255 octets".into());
        }
        let start = self.lowered.len();
        self.lowered
            .extend(wire.iter().map(|b| b.to_ascii_lowercase()));
        let end = self.lowered.len();
        let mut pos = 0;
        while let Some(&len) = wire.get(pos).filter(|&&len| len != 0) {
            let suffix = &self.lowered[start + pos..end];
            let known = (self.seen.iter())
                .find(|&&(_, s, e)| self.lowered[s as usize..e as usize] == *suffix);
            if let Some(&(offset, ..)) = known {
                return enc.emit_u16(0xC000 | offset);
            }
            if let Ok(offset) = u16::try_from(enc.offset())
                && offset <= 0x3FFF
            {
                self.seen.push((offset, (start + pos) as u32, end as u32));
            }
            let end = pos + 1 + usize::from(len);
            enc.emit_vec(wire.get(pos..end).ok_or("truncated name")?)?;
            pos = end;
        }
        enc.emit(0)
    }
}

/// Header and question only, TC=1, plus OPT if the query had one.
fn render_truncated(query: &Query, ans: &Answer<'_>) -> Vec<u8> {
    let mut buf = vec![0; HEADER_LEN];
    buf.extend_from_slice(&query.question);
    write_header(&mut buf, query, ans, ans.rcode, true, [1, 0, 0, 0]);
    if let Some(edns) = query.edns {
        push_opt(&mut buf, ans, edns);
    }
    buf
}

/// QR set; opcode and RD from the query; AA as the answer has it; RA, AD and CD clear unless the
/// answer is a resolver's (`recursion_flags`): authoritative answers validate nothing, and RFC
/// 4035 §3.1.6 has an authoritative server clear CD (NSD and Knot do).
fn write_header(
    buf: &mut [u8],
    query: &Query,
    ans: &Answer<'_>,
    rcode: ResponseCode,
    tc: bool,
    counts: [u16; 4],
) {
    let mut flags = FLAG_QR | (query.flags & (0xf << OPCODE_SHIFT | FLAG_RD)) | ans.recursion_flags;
    if ans.authoritative {
        flags |= FLAG_AA;
    }
    if tc {
        flags |= FLAG_TC;
    }
    flags |= u16::from(rcode.low());
    buf[0..2].copy_from_slice(&query.id.to_be_bytes());
    buf[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
}

/// Appends our OPT (RFC 6891 §6.1.2): payload 1232, the RCODE's upper bits, version 0, DO echoed
/// (RFC 3225 §3), the node's NSID if the query asked for it and we have one (RFC 5001 §2.3), an
/// Extended DNS Error (RFC 8914, no text) if there is one, and last the COOKIE (RFC 7873 §5.2:
/// client cookie + fresh server cookie) if the query sent one; and counts it in ARCOUNT.
fn push_opt(buf: &mut Vec<u8>, ans: &Answer<'_>, edns: Edns) {
    let rcode = ans.rcode;
    buf.push(0);
    buf.extend_from_slice(&TYPE_OPT.to_be_bytes());
    buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
    let do_bit = if edns.dnssec_ok { 0x80 } else { 0 };
    buf.extend_from_slice(&[rcode.high(), 0, do_bit, 0]);
    let rdlen_at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    let mut option = |code: u16, data: &[u8]| {
        buf.extend_from_slice(&code.to_be_bytes());
        buf.extend_from_slice(&(data.len() as u16).to_be_bytes());
        buf.extend_from_slice(data);
    };
    if let Some(id) = ans.nsid.filter(|_| edns.nsid) {
        option(OPTION_NSID, id);
    }
    if let Some(code) = ans.ede {
        option(OPTION_EDE, &code.to_be_bytes());
    }
    // Last, after NSID and EDE: the XDP program appends it to its precompiled OPT the same way.
    if let Some(cookie) = &ans.cookie {
        option(OPTION_COOKIE, cookie);
    }
    let rdlen = (buf.len() - rdlen_at - 2) as u16;
    buf[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    let arcount = u16::from_be_bytes([buf[10], buf[11]]) + 1;
    buf[10..12].copy_from_slice(&arcount.to_be_bytes());
}

/// The client's question over our lowercased one: same length, so every offset stays valid.
fn echo_question(buf: &mut [u8], query: &Query) {
    let q = &query.question;
    debug_assert_eq!(
        buf[HEADER_LEN..HEADER_LEN + q.len()].to_ascii_lowercase(),
        q.to_ascii_lowercase()
    );
    buf[HEADER_LEN..HEADER_LEN + q.len()].copy_from_slice(q);
}

/// The response to a rejected packet, if any: header (ID, opcode and RD echoed, QR set) and the
/// question if it parsed. No OPT: the packet's EDNS can't be trusted; except after a bad COOKIE
/// option in an otherwise sound OPT, where our OPT goes back bare (DO echoed, no options).
pub fn render_rejected(rejected: &Rejected) -> Option<Vec<u8>> {
    let (id, flags, question, rcode, opt) = match rejected {
        Rejected::Ignore => return None,
        Rejected::FormErr {
            id,
            flags,
            question,
        } => (
            *id,
            *flags,
            question.as_deref(),
            ResponseCode::FormErr,
            None,
        ),
        Rejected::BadCookie {
            id,
            flags,
            question,
            dnssec_ok,
        } => (
            *id,
            *flags,
            Some(&question[..]),
            ResponseCode::FormErr,
            Some(*dnssec_ok),
        ),
        Rejected::NotImp {
            id,
            flags,
            question,
        } => (*id, *flags, question.as_deref(), ResponseCode::NotImp, None),
    };
    let flags = FLAG_QR | (flags & (0xf << OPCODE_SHIFT | FLAG_RD)) | u16::from(rcode.low());
    let mut buf = Vec::with_capacity(HEADER_LEN + question.map_or(0, <[u8]>::len) + 11);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&flags.to_be_bytes());
    buf.extend_from_slice(&u16::from(question.is_some()).to_be_bytes());
    buf.extend_from_slice(&[0; 6]);
    if let Some(q) = question {
        buf.extend_from_slice(q);
    }
    if let Some(dnssec_ok) = opt {
        let edns = Edns {
            udp_size: EDNS_PAYLOAD,
            version: 0,
            dnssec_ok,
            nsid: false,
            cookie: None,
        };
        push_opt(&mut buf, &Answer::error(rcode), edns);
    }
    Some(buf)
}

/// Raw query packets for tests across modules.
#[cfg(test)]
pub mod testutil {
    /// A query: `qname` in presentation form (case kept), `edns` = (udp size, DO, version).
    pub fn query_packet(
        id: u16,
        flags: u16,
        qname: &str,
        qtype: u16,
        edns: Option<(u16, bool, u8)>,
    ) -> Vec<u8> {
        query_packet_class(id, flags, qname, qtype, 1, edns)
    }

    pub fn query_packet_class(
        id: u16,
        flags: u16,
        qname: &str,
        qtype: u16,
        qclass: u16,
        edns: Option<(u16, bool, u8)>,
    ) -> Vec<u8> {
        let mut p = Vec::new();
        for w in [id, flags, 1, 0, 0, u16::from(edns.is_some())] {
            p.extend_from_slice(&w.to_be_bytes());
        }
        p.extend_from_slice(&question(qname, qtype, qclass));
        if let Some((size, dnssec_ok, version)) = edns {
            p.extend_from_slice(&[0, 0, 41]);
            p.extend_from_slice(&size.to_be_bytes());
            p.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0, 0, 0]);
        }
        p
    }

    /// A query with an OPT (payload 1232, DO as given) holding `options` (code, data) in order.
    pub fn query_with_options(
        id: u16,
        qname: &str,
        qtype: u16,
        dnssec_ok: bool,
        options: &[(u16, &[u8])],
    ) -> Vec<u8> {
        let mut p = query_packet(id, 0, qname, qtype, Some((1232, dnssec_ok, 0)));
        let rdata: Vec<u8> = options
            .iter()
            .flat_map(|(code, data)| {
                let mut o = code.to_be_bytes().to_vec();
                o.extend_from_slice(&(data.len() as u16).to_be_bytes());
                o.extend_from_slice(data);
                o
            })
            .collect();
        let n = p.len();
        p[n - 2..].copy_from_slice(&(rdata.len() as u16).to_be_bytes());
        p.extend_from_slice(&rdata);
        p
    }

    /// The options of the response's OPT (the last record), in order; `None` without OPT.
    pub fn opt_options(response: &[u8]) -> Option<Vec<(u16, Vec<u8>)>> {
        let arcount = u16::from_be_bytes([response[10], response[11]]);
        if arcount == 0 {
            return None;
        }
        // Our OPT is always the last record: find it from the end by its RDLENGTH.
        let mut at = None;
        for start in (12..response.len().saturating_sub(10)).rev() {
            let rdlen = u16::from_be_bytes([response[start + 9], response[start + 10]]) as usize;
            if response[start] == 0
                && response[start + 1..start + 3] == [0, 41]
                && start + 11 + rdlen == response.len()
            {
                at = Some(start + 11);
                break;
            }
        }
        let mut rdata = &response[at?..];
        let mut out = Vec::new();
        while !rdata.is_empty() {
            let len = u16::from_be_bytes([rdata[2], rdata[3]]) as usize;
            out.push((
                u16::from_be_bytes([rdata[0], rdata[1]]),
                rdata[4..4 + len].to_vec(),
            ));
            rdata = &rdata[4 + len..];
        }
        Some(out)
    }

    /// A presentation name (no escapes) in wire form, case kept.
    pub fn name(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in text
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
        {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// Question bytes: name (case kept), type, class.
    pub fn question(qname: &str, qtype: u16, qclass: u16) -> Vec<u8> {
        let mut q = name(qname);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&qclass.to_be_bytes());
        q
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    #[test]
    fn parses_query_with_edns() {
        let p = query_packet(
            0x1234,
            FLAG_RD | FLAG_CD,
            "WwW.ExAmple.com",
            28,
            Some((4096, true, 0)),
        );
        let q = parse_query(&p, true).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(q.rd() && q.cd());
        assert_eq!(q.opcode(), 0);
        assert_eq!(q.qname.to_string(), "WwW.ExAmple.com.");
        assert_eq!(q.qname_key.as_wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(q.qtype, RecordType::AAAA);
        assert_eq!(q.qclass, 1);
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true,
                nsid: false,
                cookie: None,
            })
        );
        assert_eq!(q.question, question("WwW.ExAmple.com", 28, 1));
        assert_eq!(q.variant(), Variant::EdnsDo);
        assert_eq!(q.udp_limit(), 1232);
        let q = parse_query(&query_packet(1, 0, "a.b", 1, None), true).unwrap();
        assert_eq!(
            (q.edns, q.variant(), q.udp_limit()),
            (None, Variant::NoEdns, 512)
        );
        let q = parse_query(&query_packet(1, 0, "a.b", 1, Some((100, false, 0))), true).unwrap();
        assert_eq!((q.variant(), q.udp_limit()), (Variant::Edns, 512));
    }

    /// NSD compresses names ignoring case; so do we. Expected bytes are NSD 4.6.1's answer to the
    /// same query (the sample zone spells the owner `WWW` and the CNAME target `www`).
    #[test]
    fn compression_ignores_case() {
        use crate::respond::respond;
        use crate::zone::{Catalog, Zone};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        let cat = Catalog::load(&[], Some(&dir)).unwrap();
        let p = query_packet(0x01f5, 0, "alias2.example.com", 1, None);
        let nsd: &[u8] = b"\x01\xf5\x84\x00\x00\x01\x00\x02\x00\x00\x00\x00\
            \x06alias2\x07example\x03com\x00\x00\x01\x00\x01\
            \xc0\x0c\x00\x05\x00\x01\x00\x00\x0e\x10\x00\x06\x03www\xc0\x13\
            \xc0\x30\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\xc0\x00\x02\x0a";
        assert_eq!(respond(&cat, &p, Transport::Udp).unwrap(), nsd);

        // Suffixes too: `SUB.c.test` in the CNAME target, `sub.c.test` in the next owner.
        let z = Zone::from_text(
            "c.test.",
            "$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n\
             alias CNAME host.SUB\nHOST.sub A 192.0.2.2\nx.Sub A 192.0.2.3\nptr PTR PTR.C.TEST.\n",
        )
        .unwrap();
        let cat = Catalog::from_zones([z]);
        let p = query_packet(1, 0, "Alias.c.test", 1, None);
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        let q_end = 12 + 14 + 4;
        assert_eq!(&r[12..q_end], &p[12..q_end]);
        let rdata = q_end + 12;
        // CNAME: owner 0xC00C; RDATA "host" "SUB" + pointer to "c.test" in the question.
        assert_eq!(&r[q_end..q_end + 2], [0xc0, 0x0c]);
        assert_eq!(&r[rdata..rdata + 11], b"\x04host\x03SUB\xc0\x12");
        // A: the owner is one pointer to the CNAME's target, whatever the zone's spelling.
        let owner = rdata + 11;
        assert_eq!(&r[owner..owner + 2], [0xc0, rdata as u8]);
        assert_eq!(r.len(), owner + 2 + 10 + 4);
        // An RDATA name equal to the query name points at the question (the client's case).
        let p = query_packet(2, 0, "pTr.c.test", 12, None);
        let r = respond(&cat, &p, Transport::Udp).unwrap();
        assert_eq!(&r[r.len() - 2..], [0xc0, 0x0c]);
    }

    #[test]
    fn rcode_in_a_query_is_formerr() {
        // RCODE set in a query: FORMERR, as NSD answers; the question is echoed like our other
        // FORMERRs (NSD sends the header alone). An opcode we don't implement wins, as in NSD.
        for rcode in [1u16, 3, 5, 15] {
            let p = query_packet(7, FLAG_RD | rcode, "a.b", 1, Some((1232, false, 0)));
            let err = parse_query(&p, true).unwrap_err();
            let r = render_rejected(&err).unwrap();
            assert_eq!(
                &r[..12],
                [0, 7, 0x81, 0x01, 0, 1, 0, 0, 0, 0, 0, 0],
                "{rcode}"
            );
            assert_eq!(&r[12..], &question("a.b", 1, 1)[..]);
        }
        let p = query_packet(7, 2 << 11 | 1, "a.b", 1, None);
        assert!(matches!(
            parse_query(&p, true),
            Err(Rejected::NotImp { .. })
        ));
    }

    #[test]
    fn rejects_what_it_must() {
        assert_eq!(parse_query(&[0; 11], true).unwrap_err(), Rejected::Ignore);
        let mut p = query_packet(7, 0, "a.b", 1, None);
        p[2] |= 0x80; // QR
        assert_eq!(parse_query(&p, true).unwrap_err(), Rejected::Ignore);
        // Truncated question: FORMERR without question.
        let p = query_packet(7, FLAG_RD, "abc.def", 1, None);
        let err = parse_query(&p[..p.len() - 3], true).unwrap_err();
        assert_eq!(
            err,
            Rejected::FormErr {
                id: 7,
                flags: FLAG_RD,
                question: None
            }
        );
        let r = render_rejected(&err).unwrap();
        assert_eq!(r, [0, 7, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Compression pointer in the question.
        let mut p = query_packet(7, 0, "", 1, None);
        p.splice(12..13, [0xc0, 0x0c]);
        assert!(matches!(
            parse_query(&p, true),
            Err(Rejected::FormErr { question: None, .. })
        ));
        // QDCOUNT 2.
        let mut p = query_packet(7, 0, "a.b", 1, None);
        p[5] = 2;
        assert!(matches!(
            parse_query(&p, true),
            Err(Rejected::FormErr { question: None, .. })
        ));
        // ANCOUNT 1: FORMERR, question echoed.
        let mut p = query_packet(7, 0, "a.b", 1, None);
        p[7] = 1;
        let err = parse_query(&p, true).unwrap_err();
        let r = render_rejected(&err).unwrap();
        assert_eq!(&r[..12], [0, 7, 0x80, 0x01, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[12..], &question("a.b", 1, 1)[..]);
        // Two OPTs.
        let mut p = query_packet(7, 0, "a.b", 1, Some((1232, false, 0)));
        p.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        p[11] = 2;
        assert!(matches!(
            parse_query(&p, true),
            Err(Rejected::FormErr {
                question: Some(_),
                ..
            })
        ));
        // OPT claiming more RDATA than there is.
        let mut p = query_packet(7, 0, "a.b", 1, Some((1232, false, 0)));
        let n = p.len();
        p[n - 1] = 5;
        assert!(matches!(
            parse_query(&p, true),
            Err(Rejected::FormErr { .. })
        ));
        // Opcode NOTIFY (4): NOTIMP, opcode echoed.
        let p = query_packet(9, 4 << 11, "a.b", 6, None);
        let err = parse_query(&p, true).unwrap_err();
        assert!(matches!(err, Rejected::NotImp { id: 9, .. }));
        let r = render_rejected(&err).unwrap();
        assert_eq!(&r[2..4], [0x80 | (4 << 3), 0x04]);
    }

    /// RFC 7873 §5.2.2: 8 bytes or 16 to 40; any other length, or a second COOKIE option, is
    /// FORMERR with a bare OPT (DO echoed). With cookies off the option is just skipped.
    #[test]
    fn cookie_option_lengths() {
        let data: Vec<u8> = (1..=48).collect();
        for len in 0..=48usize {
            for dnssec_ok in [false, true] {
                let p = query_with_options(
                    3,
                    "a.b",
                    1,
                    dnssec_ok,
                    &[(OPTION_NSID, &[]), (OPTION_COOKIE, &data[..len])],
                );
                let ok = len == 8 || (16..=40).contains(&len);
                match parse_query(&p, true) {
                    Ok(q) => {
                        assert!(ok, "length {len} accepted");
                        let e = q.edns.unwrap();
                        let c = e.cookie.unwrap();
                        assert!(e.nsid);
                        assert_eq!(c.client, data[..8]);
                        assert_eq!(c.server(), &data[8..len]);
                    }
                    Err(err) => {
                        assert!(!ok, "length {len} refused");
                        assert!(matches!(err, Rejected::BadCookie { .. }), "{len}: {err:?}");
                        let r = render_rejected(&err).unwrap();
                        assert_eq!(&r[..12], [0, 3, 0x80, 0x01, 0, 1, 0, 0, 0, 0, 0, 1]);
                        let q_end = 12 + question("a.b", 1, 1).len();
                        assert_eq!(&r[12..q_end], &question("a.b", 1, 1)[..]);
                        let do_bit = if dnssec_ok { 0x80 } else { 0 };
                        assert_eq!(
                            &r[q_end..],
                            [0, 0, 41, 0x04, 0xd0, 0, 0, do_bit, 0, 0, 0],
                            "bare OPT, no cookie"
                        );
                    }
                }
                let q = parse_query(&p, false).expect("cookies off: an unknown option");
                assert_eq!(q.edns.unwrap().cookie, None);
            }
        }
        // Two COOKIE options, even both well formed: FORMERR.
        let two = query_with_options(
            4,
            "a.b",
            1,
            false,
            &[(OPTION_COOKIE, &data[..8]), (OPTION_COOKIE, &data[..24])],
        );
        assert!(matches!(
            parse_query(&two, true),
            Err(Rejected::BadCookie { .. })
        ));
        assert!(parse_query(&two, false).is_ok());
        // A bad cookie and a malformed record after the OPT: plain FORMERR (junk, no OPT).
        let mut junk = query_with_options(5, "a.b", 1, false, &[(OPTION_COOKIE, &data[..9])]);
        junk[11] = 2;
        junk.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(matches!(
            parse_query(&junk, true),
            Err(Rejected::FormErr { .. })
        ));
        // An option overrunning the OPT RDATA stays plain FORMERR.
        let mut overrun = query_with_options(6, "a.b", 1, false, &[(OPTION_COOKIE, &data[..8])]);
        let n = overrun.len();
        overrun.truncate(n - 1);
        let at = n - 1 - 12 - 2;
        overrun[at..at + 2].copy_from_slice(&11u16.to_be_bytes());
        assert!(matches!(
            parse_query(&overrun, true),
            Err(Rejected::FormErr { .. })
        ));
    }

    /// The COOKIE option goes last in our OPT: after NSID (and EDE), the same layout the XDP
    /// program produces by appending it to its bare OPT.
    #[test]
    fn cookie_is_the_last_option() {
        use crate::answer::Answer;
        let p = query_with_options(
            9,
            "a.b",
            1,
            true,
            &[(OPTION_COOKIE, &[7; 8]), (OPTION_NSID, &[])],
        );
        let q = parse_query(&p, true).unwrap();
        let mut cookie = [0u8; 24];
        cookie[..8].copy_from_slice(&[7; 8]);
        cookie[8..].copy_from_slice(&[0xaa; 16]);
        let ans = Answer {
            nsid: Some(b"node1"),
            ede: Some(20),
            cookie: Some(cookie),
            ..Answer::error(ResponseCode::Refused)
        };
        let r = render(&q, &ans, Transport::Udp);
        let q_end = 12 + q.question.len();
        let mut opt = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 9 + 6 + 28];
        opt.extend_from_slice(&[0, 3, 0, 5]);
        opt.extend_from_slice(b"node1");
        opt.extend_from_slice(&[0, 15, 0, 2, 0, 20]);
        opt.extend_from_slice(&[0, 10, 0, 24]);
        opt.extend_from_slice(&cookie);
        assert_eq!(&r[q_end..], &opt[..]);
        assert_eq!(&r[10..12], [0, 1]);
        // Truncated answers carry it too.
        let t = render_truncated(&q, &ans);
        assert_eq!(t[3] & 0x0f, 5);
        assert_eq!(t[2] & 0x02, 0x02, "TC");
        assert_eq!(&t[q_end..], &opt[..]);
    }
}
