//! Map layouts shared by the XDP program and the rampart daemon (`#[repr(C)]`, no_std).
//!
//! The compiler in userspace writes these, the XDP program reads them; a change here is a change
//! to both sides and to the fuzz test that checks them against each other.
#![no_std]

pub mod dns;

/// Longest name in wire form (RFC 1035 §3.1), including the root label's zero byte.
pub const MAX_NAME: usize = 255;
/// XDP metadata (the 4 bytes before the frame) marking the daemon's own health-probe frame, run
/// with BPF_PROG_TEST_RUN: frames from a NIC carry no metadata, so nothing on the wire can claim
/// it. The rate limits let it through (a flood of the probe's name must not withdraw the node).
pub const PROBE_META: u32 = 0x7270_6865;
/// Largest UDP answer the fast path sends: the EDNS payload size we advertise (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Classic DNS UDP limit for queries without EDNS (RFC 1035 §4.2.1).
pub const CLASSIC_UDP_LIMIT: u16 = 512;
/// Tail slot sizes: most answers (A, AAAA, NODATA) fit the small slot; the large slot holds
/// anything up to the EDNS limit minus the DNS header and the shortest question.
pub const TAIL_SMALL: usize = 192;
pub const TAIL_LARGE: usize = 1216;

/// Which response variant a query needs: the OPT record is in the tail, DO changes it.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variant {
    /// Query without an OPT record: no OPT in the answer, 512-byte limit.
    NoEdns = 0,
    /// Query with OPT, DO clear.
    Edns = 1,
    /// Query with OPT and DO set: signed answers, DO echoed.
    EdnsDo = 2,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::NoEdns, Variant::Edns, Variant::EdnsDo];
}

/// Bytes of the per-CPU buffer the program copies the query name into (lowercased, zero-padded):
/// `MAX_NAME` rounded up to whole 8-byte words.
pub const KEY_NAME_LEN: usize = 256;

/// Names up to this many bytes in wire form (nearly all of them) are walked for their closest
/// encloser when missing (at most 32 hops); longer missing names go up.
pub const SHORT_NAME_LEN: usize = 64;

/// Key qtype of the answer for every *data* type a name doesn't list explicitly (NODATA at a
/// name or an empty non-terminal, a referral at a cut). Type 0 is reserved (RFC 6895), so no
/// query asks for it; the program tries it after a miss, for data types only (see
/// [`is_data_type`]).
pub const QTYPE_OTHER: u16 = 0;

/// Key qtype of a name's *closest-encloser* entry: the answer for names that don't exist below
/// it (the zone's NXDOMAIN, or a pass marker where a cut, DNAME or wildcard decides instead).
/// The program walks a missing name's suffixes to the first that has it (docs/ARCHITECTURE.md
/// §4.1). Type 65535 is reserved (RFC 6895), so no query asks for it; the program passes it up.
pub const QTYPE_ENCLOSER: u16 = 65535;

/// Most pointer fields a relocatable template fixes up: an NXDOMAIN's SOA owner, MNAME and
/// RNAME; a referral's NS owners, in-bailiwick targets and glue owners (and DS, RRSIG or NSEC
/// owners with DO). Eight covers two NS with A+AAAA glue, or DO referrals with a proof.
pub const MAX_RELOCS: usize = 8;

/// Data types (RFC 6895 §3.1): not 0, not OPT, not the meta/query range 128-255 (TSIG, AXFR,
/// ANY...). Only these can share a name's [`QTYPE_OTHER`] answer.
#[inline(always)]
pub const fn is_data_type(qtype: u16) -> bool {
    qtype != 0 && qtype != 41 && !(qtype >= 128 && qtype <= 255)
}

/// Tail slot classes (`AnswerHead::tail_class`).
pub const TAIL_CLASS_SMALL: u8 = 0;
pub const TAIL_CLASS_LARGE: u8 = 1;
/// The tail is in the answer's own record (`Record::inline`).
pub const TAIL_CLASS_INLINE: u8 = 2;
/// Tails up to this size (A and AAAA answers with their OPT: 27 and 39 bytes) live inside the
/// answer's record: one memory access per packet instead of two.
pub const TAIL_INLINE: usize = 40;
/// Bytes of a name kept in its record; longer names are kept in `NAMES` (`Record::long_name`).
pub const RECORD_NAME_LEN: usize = 32;
/// A record's other variants (`Record::alt`) or a long name: none.
pub const RECORD_NONE: u32 = u32::MAX;

/// `Record::derive` bits: which variants the program makes from the EDNS answer instead of
/// reading a record of their own (the compiler checked that the bytes come out identical).
/// Without EDNS: the same answer less its OPT record, which ends the tail (11 bytes, ARCOUNT-1).
pub const DERIVE_NOEDNS: u8 = 1;
/// With DO: the same answer with DO set in the OPT's flags (an unsigned zone's answers).
pub const DERIVE_DO: u8 = 2;
/// Bytes of an OPT record without options.
pub const OPT_LEN: usize = 11;

/// One precompiled answer for a (name, type), the EDNS (DO clear) variant, with what the other
/// two variants take from it. The program finds it at its home slot ([`home_slot`]) or through
/// [`IndexBucket`]s and checks its name and type against the query before it answers. 128
/// bytes: two adjacent cache lines.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub head: AnswerHead,
    /// Records of the no-EDNS and the DO variants where they are not derived ([`RECORD_NONE`]:
    /// that variant has no answer here, the query goes up).
    pub alt: [u32; 2],
    /// Index into `NAMES` when the name is longer than [`RECORD_NAME_LEN`], else [`RECORD_NONE`].
    pub long_name: u32,
    /// Query type, host byte order ([`QTYPE_OTHER`], [`QTYPE_ENCLOSER`] included).
    pub qtype: u16,
    /// Checksum of the tail less its OPT record (the derived no-EDNS answer), as `tail_csum`.
    pub noedns_csum: u16,
    /// The name, lowercased, zero-padded (names up to [`RECORD_NAME_LEN`] bytes); 8-aligned,
    /// so the program compares it a word at a time.
    pub name: [u8; RECORD_NAME_LEN],
    /// Bytes of the name in wire form.
    pub name_len: u8,
    /// `DERIVE_*` bits.
    pub derive: u8,
    pub _pad: u16,
    /// The name's shared entry ([`QTYPE_OTHER`]) when this record stands for it: the index's
    /// entry for (name, 0) names this record, which proves the name, and the answer is record
    /// `other`, one record for every name whose shared answer has the same bytes (a zone's
    /// NODATA for names of one length). [`RECORD_NONE`] otherwise.
    pub other: u32,
    pub inline: [u8; TAIL_INLINE],
}

const _: () = assert!(core::mem::size_of::<Record>() == 128);
const _: () = assert!(core::mem::offset_of!(Record, name) % 8 == 0);
// The program copies the inline tail eight bytes at a time (`store_inline`).
const _: () = assert!(core::mem::offset_of!(Record, inline) % 8 == 0);

impl Record {
    pub const fn zeroed() -> Record {
        Record {
            head: AnswerHead::zeroed(),
            alt: [RECORD_NONE; 2],
            long_name: RECORD_NONE,
            qtype: 0,
            noedns_csum: 0,
            name: [0; RECORD_NAME_LEN],
            name_len: 0,
            derive: 0,
            _pad: 0,
            other: RECORD_NONE,
            inline: [0; TAIL_INLINE],
        }
    }
}

/// A long name of a record, lowercased and zero-padded (the `NAMES` array).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NameSlot {
    pub bytes: [u8; KEY_NAME_LEN],
}

/// Entries per index bucket: one cache line.
pub const INDEX_WAYS: usize = 8;

/// A bucket of the answer index (bucketized cuckoo hashing) over the records not at their home
/// slot ([`home_slot`]): each entry is a record's
/// fingerprint (high 32 bits, never 0) and its index in `RECORDS` (low 32 bits); 0 is empty. A
/// (name, type) is in one of its two buckets ([`index_buckets`]), so a lookup reads at most two
/// cache lines of index, whatever the query: a flood of made-up names can't make it slower.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexBucket {
    pub entries: [u64; INDEX_WAYS],
}

/// Multipliers of the name hash (odd 64-bit constants from splitmix64 and the golden ratio).
const HASH_MUL: u64 = 0x9e37_79b9_7f4a_7c15;
const HASH_MUL2: u64 = 0xbf58_476d_1ce4_e5b9;
const HASH_MUL3: u64 = 0x94d0_49bb_1331_11eb;

/// One step of the name hash: the next 8 bytes of the lowercased, zero-padded wire name, read
/// as a little-endian word. The program takes it in the same pass that lowercases the name, so
/// the hash costs a multiply and two xors per 8 bytes; userspace hashes the same words.
#[inline(always)]
pub const fn name_hash_step(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(HASH_MUL);
    h ^ (h >> 32)
}

/// The hash of a whole name (as the program computes it word by word), from the generation's
/// seed: lowercased wire bytes, zero-padded to whole words.
pub fn name_hash(seed: u64, name: &[u8]) -> u64 {
    let mut h = seed;
    let mut i = 0;
    while i < name.len() {
        let mut w = [0u8; 8];
        let n = if name.len() - i < 8 {
            name.len() - i
        } else {
            8
        };
        let mut j = 0;
        while j < n {
            w[j] = name[i + j].to_ascii_lowercase();
            j += 1;
        }
        h = name_hash_step(h, u64::from_le_bytes(w));
        i += 8;
    }
    h
}

/// The key hash of (name, type) from the name's hash (splitmix64's finaliser).
#[inline(always)]
pub const fn key_hash(name_hash: u64, qtype: u16) -> u64 {
    let mut h = name_hash ^ ((qtype as u64) << 48) ^ qtype as u64;
    h = (h ^ (h >> 30)).wrapping_mul(HASH_MUL2);
    h = (h ^ (h >> 27)).wrapping_mul(HASH_MUL3);
    h ^ (h >> 31)
}

/// A key's two buckets (under `mask`, the bucket count less one) and its fingerprint.
#[inline(always)]
pub const fn index_buckets(key_hash: u64, mask: u32) -> (u32, u32, u32) {
    let b1 = key_hash as u32 & mask;
    let b2 = (key_hash >> 32) as u32 & mask;
    let fp = ((key_hash.wrapping_mul(HASH_MUL) >> 32) as u32) | 1;
    (b1, b2, fp)
}

/// A key's home slot among a generation's `count` records (Lemire's multiply-shift: no
/// division, any count). Most keys of a data type sit at their home, so a hit reads the record
/// straight from the hash, with no index line before it (docs/ARCHITECTURE.md §3.1); the index
/// holds the others. Bits 16..48 of the key hash: not the index's bucket bits.
#[inline(always)]
pub const fn home_slot(key_hash: u64, count: u32) -> u32 {
    (((key_hash >> 16) as u32 as u64 * count as u64) >> 32) as u32
}

/// Whether a key may sit at its home slot: every key the program looks up first by a query's
/// own type. The shared ([`QTYPE_OTHER`]) and closest-encloser ([`QTYPE_ENCLOSER`]) entries are
/// found through the index only (their lookups follow a miss, which already read it).
#[inline(always)]
pub const fn is_homed(qtype: u16) -> bool {
    qtype != QTYPE_OTHER && qtype != QTYPE_ENCLOSER
}

/// The answer's header fields and where its tail lives.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AnswerHead {
    /// Header flags word as sent, with QR, AA and RCODE set by the compiler; the program ORs in the
    /// query's RD and CD bits.
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// Bytes of tail to copy after the question; 0 marks an answer the fast path must not send
    /// (too big for this variant), so the query goes up instead of matching [`QTYPE_OTHER`].
    pub tail_len: u16,
    /// One's-complement sum (folded, not inverted) of the tail as if it started at an even offset;
    /// the program byte-swaps it when the tail starts at an odd offset (RFC 1071 §2(B)).
    pub tail_csum: u16,
    /// Index into `TAILS_SMALL` or `TAILS_LARGE` (unused for inline tails).
    pub tail_index: u32,
    /// `TAIL_CLASS_SMALL`, `TAIL_CLASS_LARGE` or `TAIL_CLASS_INLINE`.
    pub tail_class: u8,
    /// Relocatable templates only (NXDOMAIN, referrals below a cut): the tail was rendered for a
    /// query name of `ref_qname_len` bytes, and the `reloc_count` compression pointers at the
    /// tail offsets packed in `reloc` (byte i = offset i, least significant first: the program
    /// shifts rather than indexes, which the verifier can follow) point into that name's suffix
    /// or past it; the program adds (its query name's length - ref_qname_len) to each.
    pub reloc_count: u8,
    pub ref_qname_len: u8,
    /// Bytes from the tail's end back to its OPT record's RDLENGTH field (2 + the options it
    /// already carries), where the program appends a COOKIE option and grows RDLENGTH; 0 when
    /// the tail ends in no OPT (no EDNS, or not the last record), so no cookie can be added.
    pub opt_back: u8,
    /// The answer's response class for rate limiting (see [`rrl_class`]): the program accounts
    /// per (source prefix, class) and per class without hashing names itself.
    pub rrl_class: u32,
    pub reloc: u64,
}

impl AnswerHead {
    pub const fn zeroed() -> AnswerHead {
        AnswerHead {
            flags: 0,
            ancount: 0,
            nscount: 0,
            arcount: 0,
            tail_len: 0,
            tail_csum: 0,
            tail_index: 0,
            tail_class: 0,
            reloc_count: 0,
            ref_qname_len: 0,
            opt_back: 0,
            rrl_class: 0,
            reloc: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TailSmall {
    pub bytes: [u8; TAIL_SMALL],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct TailLarge {
    pub bytes: [u8; TAIL_LARGE],
}

/// Slot 0 of the `CONFIG` array: what the program reads before anything else.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Live zone generation (0 or 1): which of `gens` the program uses. Userspace fills the
    /// other generation's records and index and writes its `gens` entry, then flips this one
    /// word in a second write, so no query ever sees half a zone.
    pub generation: u32,
    /// Nonzero once userspace has filled a generation; until then every query goes up.
    pub ready: u32,
    pub gens: [GenParams; 2],
}

/// The shape of one generation's arrays (its own inner maps of `RECORDS`, `INDEX`, ...), and
/// its hash seed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenParams {
    /// Seed of the name hash (random per install: nobody can aim names at one bucket).
    pub seed: u64,
    /// The generation's `INDEX` bucket count less one (a power of two).
    pub index_mask: u32,
    /// The generation's record count: a key's home slot is `home_slot(key_hash, records_count)`.
    pub records_count: u32,
}

/// Per-CPU counters (`STATS` array index). Names are what `rampart stats` prints.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Every packet the program saw: the sum of all the others, computed by userspace (each frame
    /// ends in exactly one outcome); the program never writes this slot.
    Packets = 0,
    /// Answered from the maps, by outcome (RCODE / section shape).
    TxAnswer,
    TxNodata,
    TxNxdomain,
    TxReferral,
    /// Passed up: not for us at all (not IP/UDP/port 53).
    PassNotDns,
    /// IPv4 with options, fragments, IPv6 extension headers: the kernel handles them.
    PassIpUnusual,
    /// DNS header says it is not a plain query (QR=1, opcode, QDCOUNT, TC, AN/NS counts).
    PassNotQuery,
    /// Truncated or malformed question or OPT: the slow path answers FORMERR.
    PassMalformed,
    /// Class other than IN.
    PassClass,
    /// EDNS version other than 0 (slow path answers BADVERS), more than one additional RR, more
    /// EDNS options than the program scans, or a COOKIE option of a malformed length (FORMERR,
    /// RFC 7873 §5.2.2).
    PassEdns,
    /// Not in the maps: the slow path answers.
    PassMiss,
    /// Answer would exceed the client's UDP limit: the slow path truncates.
    PassTooBig,
    /// No generation loaded yet.
    PassNotReady,
    /// UDP checksum wrong (or absent on IPv6): the kernel drops it and counts UdpInCsumErrors.
    PassBadChecksum,
    /// A query over 512 bytes of UDP: too big to verify here, so the kernel handles it.
    PassLargeQuery,
    /// Packet geometry we could not rewrite (adjust_tail failed).
    PassRewriteFailed,
    /// The query asks for NSID (RFC 5001): the node's identity is the slow path's to add.
    PassNsid,
    /// A rewrite failed half-way (after the resize): the frame is no longer the query, so it is
    /// dropped rather than passed up as garbage. Should stay zero.
    DropRewriteFailed,
    /// Junk, dropped: a response (QR=1) sent to port 53, a reflection or a loop.
    DropResponse,
    /// Junk, dropped: a source port no client sends from (see [`is_impossible_source_port`]).
    DropBadSourcePort,
    /// Junk, dropped: a DNS message too broken to answer (short header, bad name, truncated
    /// or trailing OPT); answering FORMERR to spoofed junk only helps the spoofer.
    DropMalformed,
    /// Response rate limiting (per source prefix and response class): answered with a minimal
    /// TC=1 slip, or dropped.
    TxSlipRrl,
    DropRrl,
    /// The response class's aggregate rate (all sources) is abnormal and the client showed no
    /// valid server cookie: slipped or dropped.
    TxSlipGlobal,
    DropGlobal,
    /// Over the budget of queries passed up to the slow path (per prefix or in total): slipped
    /// (TC=1, so real resolvers retry over TCP) or dropped.
    TxSlipBudget,
    DropBudget,
    /// Events, not outcomes (a frame that bumps one also ends in one of the above):
    /// RRL in dry-run mode would have limited this answer.
    RrlDryRun,
    /// An answer to a whitelisted source: no limit applied, nothing accounted.
    RrlWhitelisted,
    /// The query carried a valid server cookie: no rate limit applied.
    CookieValid,
    /// The query carried a server cookie that did not verify (wrong, expired, other secret).
    CookieBad,
    /// The query carried a client cookie only.
    CookieClientOnly,
    /// An answer went out with a fresh server cookie in its OPT (the client sent a cookie).
    CookieSent,
    /// Answered from the resolver's cache entries promoted into `CACHE` (resolver mode).
    TxCache,
    /// Number of counters; keep last.
    Count,
}

pub const COUNTER_COUNT: u32 = Counter::Count as u32;

impl Counter {
    /// Every counter with its stable name, in index order.
    pub const NAMED: [(Counter, &'static str); Counter::Count as usize] = [
        (Counter::Packets, "packets"),
        (Counter::TxAnswer, "tx_answer"),
        (Counter::TxNodata, "tx_nodata"),
        (Counter::TxNxdomain, "tx_nxdomain"),
        (Counter::TxReferral, "tx_referral"),
        (Counter::PassNotDns, "pass_not_dns"),
        (Counter::PassIpUnusual, "pass_ip_unusual"),
        (Counter::PassNotQuery, "pass_not_query"),
        (Counter::PassMalformed, "pass_malformed"),
        (Counter::PassClass, "pass_class"),
        (Counter::PassEdns, "pass_edns"),
        (Counter::PassMiss, "pass_miss"),
        (Counter::PassTooBig, "pass_too_big"),
        (Counter::PassNotReady, "pass_not_ready"),
        (Counter::PassBadChecksum, "pass_bad_checksum"),
        (Counter::PassLargeQuery, "pass_large_query"),
        (Counter::PassRewriteFailed, "pass_rewrite_failed"),
        (Counter::PassNsid, "pass_nsid"),
        (Counter::DropRewriteFailed, "drop_rewrite_failed"),
        (Counter::DropResponse, "drop_response"),
        (Counter::DropBadSourcePort, "drop_bad_source_port"),
        (Counter::DropMalformed, "drop_malformed"),
        (Counter::TxSlipRrl, "tx_slip_rrl"),
        (Counter::DropRrl, "drop_rrl"),
        (Counter::TxSlipGlobal, "tx_slip_global"),
        (Counter::DropGlobal, "drop_global"),
        (Counter::TxSlipBudget, "tx_slip_budget"),
        (Counter::DropBudget, "drop_budget"),
        (Counter::RrlDryRun, "rrl_dry_run"),
        (Counter::RrlWhitelisted, "rrl_whitelisted"),
        (Counter::CookieValid, "cookie_valid"),
        (Counter::CookieBad, "cookie_bad"),
        (Counter::CookieClientOnly, "cookie_client_only"),
        (Counter::CookieSent, "cookie_sent"),
        (Counter::TxCache, "tx_cache"),
    ];

    /// Whether every frame that bumps this counter ends there (the outcomes `packets` sums);
    /// the others count events along the way.
    pub const fn is_outcome(self) -> bool {
        !matches!(
            self,
            Counter::Packets
                | Counter::RrlDryRun
                | Counter::RrlWhitelisted
                | Counter::CookieValid
                | Counter::CookieBad
                | Counter::CookieClientOnly
                | Counter::CookieSent
        )
    }

    /// Outcomes that drop the frame rather than pass it up.
    pub const fn is_drop(self) -> bool {
        matches!(
            self,
            Counter::DropRewriteFailed
                | Counter::DropResponse
                | Counter::DropBadSourcePort
                | Counter::DropMalformed
                | Counter::DropRrl
                | Counter::DropGlobal
                | Counter::DropBudget
        )
    }
}

/// Source ports no DNS client uses, whose "queries" are reflections or loops: 0 (invalid), the
/// small services that answer anything (echo 7, daytime 13, chargen 19, time 37: the requests
/// BIND's `ns_client_dropport` drops), and kpasswd (464: BIND drops only its error responses to
/// it; no resolver sends from a kpasswd server's port, so here its queries go too). Not every
/// port below 1024: NATs map clients to low ports too, and 53 is a resolver's classic source.
#[inline(always)]
pub const fn is_impossible_source_port(port: u16) -> bool {
    matches!(port, 0 | 7 | 13 | 19 | 37 | 464)
}

/// Response classes (RFC-less but as Knot's mod-rrl and NSD's rrl.c define them): the top four
/// bits of an answer's `rrl_class`, the rest a hash of the name the class is accounted by.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RrlKind {
    /// An answer with records: accounted per query name.
    Positive = 1,
    /// NODATA: per zone.
    Nodata = 2,
    /// NXDOMAIN: per zone (a random-name flood shares one bucket).
    Nxdomain = 3,
    /// A referral: per delegation.
    Referral = 4,
    /// Errors (REFUSED, SERVFAIL, FORMERR...): per zone, or per query name without one.
    Error = 5,
    /// Queries the program passes up (the miss budget's class).
    Miss = 6,
}

/// A response class id: kind in the top 4 bits, FNV-1a of the (lowercased wire) name below.
pub fn rrl_class(kind: RrlKind, name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= b.to_ascii_lowercase() as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    ((kind as u32) << 28) | (h & 0x0fff_ffff)
}

/// Limits configuration (`LIMITS` array slot 0), written by userspace at start. Rates are turned
/// into GCRA emission intervals here so the program never divides: a bucket admits a response
/// when its theoretical arrival time is at most `burst` ahead of now, then moves it on by
/// `interval`. An interval of 0 switches that limit off.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `LIMIT_*` flags.
    pub flags: u32,
    /// RRL: every `slip`-th limited answer goes out as TC=1 (0: none, 1: all).
    pub rrl_slip: u32,
    /// IPv4 source mask (network byte order, as read from the packet), e.g. /24.
    pub v4_mask: u32,
    /// Slip ratio for the global limit and the miss budget.
    pub global_slip: u32,
    /// IPv6 source mask as two u64 read from the packet (network byte order), e.g. /56.
    pub v6_mask: [u64; 2],
    /// Per (prefix, class): nanoseconds between responses at the configured rate, and the burst
    /// tolerance in nanoseconds.
    pub rrl_interval: u64,
    pub rrl_burst: u64,
    /// Per class, all sources, on each CPU.
    pub global_interval: u64,
    pub global_burst: u64,
    /// Queries passed up, per prefix.
    pub budget_interval: u64,
    pub budget_burst: u64,
    /// Queries passed up, all sources, on each CPU.
    pub total_interval: u64,
    pub total_burst: u64,
    /// DNS cookie secrets (SipHash-2-4 keys, RFC 9018): the one answers are made with, and a
    /// staging one also accepted (rollover). `LIMIT_COOKIES` / `LIMIT_COOKIE_STAGING` say
    /// which are set.
    pub cookie_secret: [u64; 2],
    pub cookie_staging: [u64; 2],
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC in ns (wrapping): the program adds it to
    /// bpf_ktime_get_ns for the cookies' wall-clock timestamps. Userspace refreshes it.
    pub clock_offset: u64,
    /// Seed of the rate tables' hash (random per start: nobody can aim keys at one set), and
    /// the set counts less one (powers of two) of `BUCKETS` and `CLASS_RATES`.
    pub rate_seed: u64,
    pub bucket_mask: u32,
    pub class_mask: u32,
}

/// RRL in dry-run mode: count what would be limited, answer anyway.
pub const LIMIT_DRY_RUN: u32 = 1;
/// Server cookies are verified (and created) with `cookie_secret`.
pub const LIMIT_COOKIES: u32 = 2;
/// `cookie_staging` is accepted too.
pub const LIMIT_COOKIE_STAGING: u32 = 4;
/// The whitelist holds at least one prefix (without it the program never looks a source up).
pub const LIMIT_WHITELIST: u32 = 8;

/// A GCRA bucket: the theoretical arrival time of the next response (ns, CLOCK_MONOTONIC),
/// and how many responses it has limited (for the slip ratio).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub tat: u64,
    pub limited: u64,
}

/// A bucket in a rate table, with the hash of the key it counts for (0: free).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSlot {
    pub tag: u64,
    pub bucket: Bucket,
}

/// A set of the per-CPU rate tables (`BUCKETS`, `CLASS_RATES`): a key's bucket is one of the two
/// slots of the set its hash picks (two-way set-associative, one cache line), and a new key
/// takes the slot whose bucket is furthest behind (a source over its limit keeps its bucket; a
/// spoofed flood displaces idle ones, as an LRU would). An array, not an LRU hash map: one
/// inlined lookup instead of a helper call, a bucket chain and the LRU's bookkeeping (a fifth
/// of a hit's time, measured).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateSet {
    pub slots: [RateSlot; 2],
    pub _pad: [u64; 2],
}

const _: () = assert!(core::mem::size_of::<RateSet>() == 64);

/// The rate tables' key hash: the masked source address and the class, under the seed.
#[inline(always)]
pub const fn rate_hash(seed: u64, prefix: &[u32; 4], class: u32) -> u64 {
    let a = (prefix[0] as u64) << 32 | prefix[1] as u64;
    let b = (prefix[2] as u64) << 32 | prefix[3] as u64;
    let h = name_hash_step(name_hash_step(name_hash_step(seed, a), b), class as u64);
    key_hash(h, 0) | 1
}

/// Whitelist key data (LPM trie): an address as IPv6, IPv4 mapped (prefix length + 96).
pub type WhitelistAddr = [u8; 16];

/// Map names, shared so the loader and `rampart stats` find them in the object and in bpffs.
pub const MAP_RECORDS: &str = "RECORDS";
pub const MAP_INDEX: &str = "INDEX";
pub const MAP_NAMES: &str = "NAMES";
pub const MAP_TAILS_SMALL: &str = "TAILS_SMALL";
pub const MAP_TAILS_LARGE: &str = "TAILS_LARGE";
pub const MAP_CONFIG: &str = "CONFIG";
pub const MAP_STATS: &str = "STATS";
pub const MAP_LIMITS: &str = "LIMITS";
pub const MAP_WHITELIST: &str = "WHITELIST";
pub const MAP_BUCKETS: &str = "BUCKETS";
pub const MAP_CLASS_RATES: &str = "CLASS_RATES";
pub const MAP_JUMPS: &str = "JUMPS";
pub const PROGRAM_NAME: &str = "rampart";
/// The cookie stage, a program of its own that the main one tail-calls to append the COOKIE
/// option (the check itself is inline): its instructions count against its own verifier
/// budget, not the main program's.
pub const PROGRAM_COOKIE: &str = "rampart_cookie";
/// The reference program (a reflector: swaps addresses and ports, sets QR) that the cost guard
/// measures hits against; the daemon never loads it.
pub const PROGRAM_REFERENCE: &str = "rampart_reference";
/// `JUMPS` slots: the cookie stage (the append), and the main program (what a shared-NIC
/// entry program tail-calls).
pub const JUMP_COOKIE: u32 = 0;
pub const JUMP_MAIN: u32 = 1;
/// The resolver cache's program, tail-called where a query would go up as a miss; empty unless
/// resolver mode runs (the tail call then falls through and the query goes up as before).
pub const JUMP_CACHE: u32 = 2;
/// Slots of `JUMPS`.
pub const JUMP_SLOTS: u32 = 3;
pub const PROGRAM_CACHE: &str = "rampart_cache";
pub const MAP_CACHE: &str = "CACHE";
pub const MAP_CACHE_ACL: &str = "CACHE_ACL";
pub const MAP_CACHE_SEED: &str = "CACHE_SEED";
/// Bytes of the COOKIE option the fast path appends: code, length, client cookie (8), RFC 9018
/// server cookie (16).
pub const COOKIE_OPTION_LEN: usize = 28;

/// Bytes of a cached answer's tail (after the question) the program can send.
pub const CACHE_TAIL: usize = 1024;
/// Most TTL fields (records) in a cached answer the program rewrites.
pub const CACHE_TTLS: usize = 16;

/// Ways of a `CACHE` set: an entry of name hash `h` lives in one of the ways of its two sets
/// ([`cache_sets`]; the mask is `CACHE_SEED[1]`, the sets a power of two).
pub const CACHE_WAYS: u32 = 4;

/// The first slots of the two sets a name of hash `hash` may live in (two choices: a set
/// overflows far more rarely than with one).
#[inline(always)]
pub fn cache_sets(hash: u64, mask: u64) -> (u32, u32) {
    (
        (hash & mask) as u32 * CACHE_WAYS,
        ((hash >> 32) & mask) as u32 * CACHE_WAYS,
    )
}

/// `CACHE_SEED` words: the cache's name-hash seed (0: no resolver), the mask of its sets,
/// whether the cache comes before the zones (a resolver-only node), whether the apex filter
/// (the words from `CACHE_APEX_BITS` on) holds the top label of every apex the node serves,
/// and that filter's bits.
pub const CACHE_SEED_FIRST: u32 = 2;
pub const CACHE_APEX_ON: u32 = 3;
pub const CACHE_APEX_BITS: u32 = 4;
/// Words of the apex filter (4,096 bits: a node with a few hundred top labels still finds
/// nearly every other name outside them).
pub const CACHE_APEX_WORDS: u32 = 64;
pub const CACHE_SEED_WORDS: u32 = CACHE_APEX_BITS + CACHE_APEX_WORDS;

/// The top label of a lowercased wire name as the program reads it from its key buffer: the
/// label's first 8 bytes (length byte, label, the root's 0), little-endian, zero past the
/// name's end. `None` for the root, which has none (a root zone holds every name).
pub fn top_label_word(name: &[u8]) -> Option<u64> {
    let mut pos = 0usize;
    let mut top = None;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        top = Some(pos);
        pos += len as usize + 1;
    }
    let top = top?;
    let end = name.len().min(pos + 1).min(top + 8);
    let mut word = [0u8; 8];
    word[..end - top].copy_from_slice(&name[top..end]);
    Some(u64::from_le_bytes(word))
}

/// The apex filter's bit for a top label's word ([`top_label_word`]): a multiplicative hash's
/// top 12 bits.
#[inline(always)]
pub fn apex_bit(word: u64) -> u32 {
    (word.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 52) as u32
}

/// Key of a promoted resolver cache entry: the lowercased wire name's hash under `CACHE_SEED`
/// ([`name_hash`]), the type, and whether the query had DO (the cache keeps DNSSEC and plain
/// answers apart).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub name_hash: u64,
    pub qtype: u16,
    pub dnssec_ok: u16,
    pub _pad: u32,
}

/// A resolver cache entry the program answers from (docs/ARCHITECTURE.md §2.4): the EDNS
/// answer's tail rendered by the slow path with every TTL field zeroed, and what the program
/// writes there: the stored TTL less the entry's age in whole seconds, rounded up, as the slow
/// path ages it. A slot of the `CACHE` array, which the daemon writes through a shared mapping
/// while the program reads it: `seq` is a sequence lock (odd while the daemon writes; the
/// program answers only if it reads the same even value before and after).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CacheEntry {
    pub seq: u32,
    pub qtype: u16,
    pub dnssec_ok: u8,
    /// Nonzero when the slot holds an entry.
    pub live: u8,
    pub name_hash: u64,
    /// CLOCK_MONOTONIC ns when the TTLs were `ttl` (at or before the slow path's instant), and
    /// when the entry expires: from then on the query goes up.
    pub stored_ns: u64,
    pub expires_ns: u64,
    /// Header flags as sent (QR, RA, RCODE, and AD for a DO answer of validated data); the
    /// program ORs in the query's RD and CD, and AD where `secure` and the query set AD.
    pub flags: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    pub tail_len: u16,
    /// Checksum of the tail with its TTL fields zero (as `AnswerHead::tail_csum`), and of the
    /// tail less its final OPT record (the no-EDNS answer; `noedns` says whether there is one).
    pub tail_csum: u16,
    pub noedns_csum: u16,
    pub name_len: u8,
    pub ttl_count: u8,
    pub secure: u8,
    pub noedns: u8,
    pub _pad: u16,
    pub rrl_class: u32,
    /// Offsets of the TTL fields in the tail, and the TTLs at `stored_ns`.
    pub ttl_off: [u16; CACHE_TTLS],
    pub ttl: [u32; CACHE_TTLS],
    /// The query name, lowercased, zero-padded.
    pub name: [u8; KEY_NAME_LEN],
    pub tail: [u8; CACHE_TAIL],
}

impl CacheEntry {
    pub const fn zeroed() -> CacheEntry {
        // SAFETY: plain integers and arrays of them: all zeroes is a valid value.
        unsafe { core::mem::zeroed() }
    }
}

const _: () = assert!(core::mem::offset_of!(CacheEntry, name) % 8 == 0);
const _: () = assert!(core::mem::offset_of!(CacheEntry, tail) % 8 == 0);
const _: () = assert!(core::mem::size_of::<CacheEntry>().is_multiple_of(8));

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain data with explicit padding fields and no
    // invalid bit patterns, which is what aya::Pod requires.
    unsafe impl aya::Pod for super::Record {}
    unsafe impl aya::Pod for super::IndexBucket {}
    unsafe impl aya::Pod for super::NameSlot {}
    unsafe impl aya::Pod for super::TailSmall {}
    unsafe impl aya::Pod for super::TailLarge {}
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::Limits {}
    unsafe impl aya::Pod for super::Bucket {}
    unsafe impl aya::Pod for super::RateSet {}
    unsafe impl aya::Pod for super::CacheKey {}
    unsafe impl aya::Pod for super::CacheEntry {}
}

#[cfg(test)]
mod tests {
    use super::{apex_bit, top_label_word};

    /// The top label as the program reads it: length byte, label, root, zero-padded to 8 bytes;
    /// a label of 7 bytes or more gives its first 8; the root has none.
    #[test]
    fn top_label_words() {
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w[..b.len()].copy_from_slice(b);
            Some(u64::from_le_bytes(w))
        };
        assert_eq!(
            top_label_word(b"\x03www\x07example\x03com\x00"),
            word(b"\x03com\x00")
        );
        assert_eq!(top_label_word(b"\x03com\x00"), word(b"\x03com\x00"));
        assert_eq!(
            top_label_word(b"\x01x\x07example\x00"),
            word(b"\x07example")
        );
        assert_eq!(
            top_label_word(b"\x02ab\x0alonglabels\x00"),
            word(b"\x0alonglab")
        );
        assert_eq!(top_label_word(b"\x00"), None);
        assert!(apex_bit(u64::MAX) < 4096 && apex_bit(0) < 4096);
    }
}
