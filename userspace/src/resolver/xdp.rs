//! Hot cache entries promoted into the XDP program's map: each rendered as the slow path
//! renders it (docs/ARCHITECTURE.md §2.4), its TTL fields located, with its expiry on the
//! program's clock.

use std::time::Instant;

use hickory_proto::op::ResponseCode;
use rampart_common::{
    CACHE_TAIL, CACHE_TTLS, CacheEntry, KEY_NAME_LEN, OPT_LEN, RrlKind,
    dns::{HEADER_LEN, TYPE_OPT},
    rrl_class, top_label_word,
};

use super::cache::{Hot, Key, Security};
use crate::clock::monotonic_ns;
use crate::fastpath::{CacheMap, tail_checksum};
use crate::wire::{self, Transport};
use crate::zone::Catalog;

/// The map, and how many answers from the cache promote an entry.
pub struct XdpCache {
    map: CacheMap,
    /// Answers from the cache before an entry is promoted.
    pub hits: u32,
}

impl XdpCache {
    pub fn new(map: CacheMap, hits: u32) -> XdpCache {
        XdpCache {
            map,
            hits: hits.max(1),
        }
    }

    /// Put `hot` (the entry of `key`) into the map, in place of the entry of its set that
    /// expires first when the set is full; `false` when it can't be answered there (too big,
    /// too many records, bogus).
    pub fn promote(&self, key: &Key, hot: &Hot) -> bool {
        let Some(entry) = render(key, hot) else {
            return false;
        };
        let k = self.map.key(&key.qname, key.qtype, key.dnssec_ok);
        self.map.insert(&k, &entry);
        true
    }

    /// The program stops answering `key` (evicted from the cache).
    pub fn remove(&self, key: &Key) {
        self.map
            .remove(&self.map.key(&key.qname, key.qtype, key.dnssec_ok));
    }

    /// The program stops answering every entry.
    pub fn clear(&self) {
        self.map.clear();
    }

    /// Let the program skip the zones' lookups for names under none of `catalog`'s apexes'
    /// top labels (`widen`: before the catalog goes live, keeping the old one's labels).
    pub fn zones(&self, catalog: &Catalog, widen: bool) {
        let tops: Option<Vec<u64>> = (catalog.zones().iter())
            .map(|z| top_label_word(z.origin_key().as_wire()))
            .collect();
        if let Err(e) = self.map.apex_filter(tops.as_deref(), widen) {
            tracing::warn!("resolver cache: {e:#}");
        }
    }

    /// The filter off: every name walks the zones first (tests).
    #[cfg(test)]
    pub fn zones_off(&self) {
        self.map.apex_filter(None, false).expect("CACHE_SEED");
    }

    /// Whether the program looks in the cache before the zones (a node whose zones give it no
    /// answer).
    pub fn cache_first(&self, first: bool) {
        if let Err(e) = self.map.cache_first(first) {
            tracing::warn!("resolver cache: {e:#}");
        }
    }
}

/// `instant` on CLOCK_MONOTONIC in ns, never later than it (the clock is read before `now`,
/// so the program's ages are never below the slow path's, nor its TTLs above).
fn instant_ns(instant: Instant) -> u64 {
    let clock = monotonic_ns();
    let since = Instant::now().saturating_duration_since(instant);
    clock.saturating_sub(since.as_nanos() as u64)
}

/// The entry as the program sends it: the slow path's answer to an EDNS query (DO as the
/// key's) with the TTLs as stored, the TTL fields zeroed and located.
fn render(key: &Key, hot: &Hot) -> Option<CacheEntry> {
    if hot.resolved.security == Security::Bogus || key.qname.len() > KEY_NAME_LEN {
        return None;
    }
    let answer = |edns: bool| -> Option<Vec<u8>> {
        let mut packet = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        packet.extend_from_slice(&key.qname);
        packet.extend_from_slice(&key.qtype.to_be_bytes());
        packet.extend_from_slice(&[0, 1]);
        if edns {
            let do_bit = if key.dnssec_ok { 0x80 } else { 0 };
            packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, do_bit, 0, 0, 0]);
        }
        let query = wire::parse_query(&packet, false).ok()?;
        let ans = super::render(&query, hot.resolved.clone(), false);
        Some(wire::render(&query, &ans, Transport::Udp))
    };
    let full = answer(true)?;
    let tail_at = HEADER_LEN + key.qname.len() + 4;
    let be16 = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let flags = be16(&full, 2);
    if flags & rampart_common::dns::FLAG_TC != 0 || full.len() - tail_at > CACHE_TAIL {
        return None;
    }
    let mut tail = full[tail_at..].to_vec();
    let (ancount, nscount, arcount) = (be16(&full, 6), be16(&full, 8), be16(&full, 10));
    let (offsets, ttls) = ttl_fields(&full, tail_at, ancount + nscount + arcount)?;
    for &off in &offsets {
        tail[off as usize..off as usize + 4].fill(0);
    }
    // Without EDNS the same answer less its OPT, when that is what the slow path sends.
    let plain = answer(false)?;
    let noedns = !key.dnssec_ok && {
        let mut less = full[..full.len() - OPT_LEN.min(full.len())].to_vec();
        less[10..12].copy_from_slice(&arcount.wrapping_sub(1).to_be_bytes());
        less == plain && full.ends_with(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0])
    };
    let mut entry = CacheEntry::zeroed();
    let stored_ns = instant_ns(hot.stored);
    entry.stored_ns = stored_ns;
    entry.expires_ns = stored_ns + u64::from(hot.ttl) * 1_000_000_000;
    entry.flags = flags;
    entry.ancount = ancount;
    entry.nscount = nscount;
    entry.arcount = arcount;
    entry.tail_len = tail.len() as u16;
    entry.tail_csum = tail_checksum(&tail);
    entry.noedns_csum = tail_checksum(&tail[..tail.len().saturating_sub(OPT_LEN)]);
    entry.noedns = u8::from(noedns);
    entry.name_len = key.qname.len() as u8;
    entry.ttl_count = offsets.len() as u8;
    entry.secure = u8::from(hot.resolved.security == Security::Secure);
    entry.rrl_class = class_of(key, hot);
    entry.ttl_off[..offsets.len()].copy_from_slice(&offsets);
    entry.ttl[..ttls.len()].copy_from_slice(&ttls);
    entry.name[..key.qname.len()].copy_from_slice(&key.qname);
    entry.tail[..tail.len()].copy_from_slice(&tail);
    Some(entry)
}

/// Offsets (from `tail_at`) and values of the TTL fields of `count` records from `tail_at`
/// (the OPT's is no TTL); `None` past [`CACHE_TTLS`] or on bytes that don't parse.
fn ttl_fields(msg: &[u8], tail_at: usize, count: u16) -> Option<(Vec<u16>, Vec<u32>)> {
    let (mut offsets, mut ttls) = (Vec::new(), Vec::new());
    let mut pos = tail_at;
    for _ in 0..count {
        // The owner: labels up to the root or a pointer.
        loop {
            let len = *msg.get(pos)?;
            if len & 0xc0 == 0xc0 {
                pos += 2;
                break;
            }
            pos += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        let rtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
        let ttl_at = pos + 4;
        let rdlen = u16::from_be_bytes([*msg.get(pos + 8)?, *msg.get(pos + 9)?]);
        if rtype != TYPE_OPT {
            let ttl = msg.get(ttl_at..ttl_at + 4)?;
            offsets.push(u16::try_from(ttl_at - tail_at).ok()?);
            ttls.push(u32::from_be_bytes(ttl.try_into().ok()?));
        }
        pos += 10 + usize::from(rdlen);
    }
    (pos == msg.len() && offsets.len() <= CACHE_TTLS).then_some((offsets, ttls))
}

/// The response class the program's RRL accounts the answer by: the name for positive
/// answers, the zone (the SOA's owner) for negative ones.
fn class_of(key: &Key, hot: &Hot) -> u32 {
    let zone = || {
        hot.resolved
            .authority
            .first()
            .and_then(|r| r.name().to_lowercase().to_bytes().ok())
            .unwrap_or_else(|| key.qname.clone())
    };
    use hickory_proto::serialize::binary::BinEncodable;
    match hot.resolved.rcode {
        ResponseCode::NXDomain => rrl_class(RrlKind::Nxdomain, &zone()),
        _ if hot.resolved.answer.is_empty() => rrl_class(RrlKind::Nodata, &zone()),
        _ => rrl_class(RrlKind::Positive, &key.qname),
    }
}
