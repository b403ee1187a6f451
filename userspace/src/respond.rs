//! The query front end: one message in, at most one response out (parse, answer or refuse,
//! identity, cookies, rate limits, render), whatever the transport.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::answer::{self, Answer};
use crate::compile;
use crate::cookie::Cookies;
use crate::identity::{CLASS_CH, Identity};
use crate::metrics::ReplyNote;
use crate::resolver::Resolver;
use crate::slow_limits::{SlowLimits, Verdict};
use crate::wire::{self, CLASS_IN, Transport};
use crate::zone::Catalog;

/// The target of the cookie verdict log, as before this code left server.rs: operators turn it
/// on with `RUST_LOG=rampart::server=debug` (README), and tests/cookies_vs_nsd.py reads it.
const LOG_TARGET: &str = "rampart::server";

/// [`respond_as`] a node without an identity: what the fast path's answers are compared with (the
/// compiler's byte-identity test, the health probes).
pub fn respond(catalog: &Catalog, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    respond_as(catalog, &Identity::default(), packet, transport)
}

/// [`respond_to`] with cookies off (the COOKIE option ignored), so the client's address and the
/// time don't matter.
pub fn respond_as(
    catalog: &Catalog,
    identity: &Identity,
    packet: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let node = Node {
        identity,
        cookies: &Cookies::disabled(),
        limits: None,
        resolver: None,
    };
    respond_to(
        catalog,
        node,
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        0,
        packet,
        transport,
    )
}

/// What a node answers with besides its zones.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    /// NSID and CHAOS identity answers.
    pub identity: &'a Identity,
    /// DNS cookies.
    pub cookies: &'a Cookies,
    /// Rate limits on UDP answers (sockets-only mode).
    pub limits: Option<&'a SlowLimits>,
    /// Resolver mode: names outside the zones are resolved (or refused) by it.
    pub resolver: Option<&'a Resolver>,
}

/// One packet in, at most one response out: the whole slow path, transport aside. `peer` is the
/// client's address and `now` the time (cookie timestamps, [`crate::cookie::now`]).
pub fn respond_to(
    catalog: &Catalog,
    node: Node<'_>,
    peer: IpAddr,
    now: u32,
    packet: &[u8],
    transport: Transport,
) -> Option<Vec<u8>> {
    let mut note = ReplyNote::default();
    respond_noted(catalog, node, peer, now, packet, transport, &mut note)
}

/// [`respond_to`], noting the RCODE, QTYPE and rate-limit verdict for the statistics.
pub(crate) fn respond_noted(
    catalog: &Catalog,
    node: Node<'_>,
    peer: IpAddr,
    now: u32,
    packet: &[u8],
    transport: Transport,
    note: &mut ReplyNote,
) -> Option<Vec<u8>> {
    let Node {
        identity,
        cookies,
        limits,
        resolver,
    } = node;
    let query = match wire::parse_query(packet, cookies.enabled) {
        Ok(q) => q,
        Err(rejected) => {
            let response = wire::render_rejected(&rejected)?;
            // No OPT with an extended RCODE in these: the header has it all.
            note.rcode = Some(u16::from(response[3] & 0x0f));
            note.qtype = rejected_qtype(&response);
            return Some(response);
        }
    };
    note.qtype = Some(u16::from(query.qtype));
    let mut ans = if query.edns.is_some_and(|e| e.version > 0) {
        // RFC 6891 §6.1.3: we speak version 0 only.
        Answer::error(ResponseCode::BADVERS)
    } else if query.qclass == CLASS_CH {
        resolver
            .and_then(|r| r.chaos_answer(&query, peer))
            .unwrap_or_else(|| identity.chaos_answer(&query))
    } else if query.qclass != CLASS_IN {
        // No zones in other classes.
        Answer::not_authoritative()
    } else if matches!(query.qtype, RecordType::AXFR | RecordType::IXFR) {
        // No zone transfers from an edge node.
        Answer::error(ResponseCode::Refused)
    } else if is_meta_qtype(query.qtype) {
        // RFC 6895 §3.1: meta-types (OPT, TSIG, MAILA...) are not questions we can answer.
        Answer::error(ResponseCode::NotImp)
    } else if let Some(resolver) =
        resolver.filter(|_| answer::select_zone(catalog, &query.question()).is_none())
    {
        resolver.answer(&query, peer)
    } else {
        answer::answer(catalog, &query.question())
    };
    ans.nsid = identity.nsid();
    let mut valid_cookie = false;
    if let Some(c) = query.edns.and_then(|e| e.cookie) {
        // RFC 7873 §5.2.3-§5.2.4 leave a server that doesn't require cookies free to answer a
        // bad server cookie normally. NSD 4.6 (edns.c cookie_verify, query.c
        // query_add_optional) and BIND 9.18 (lib/ns/client.c process_cookie, BADCOOKIE only with
        // require-server-cookie) do: a normal answer with a fresh cookie. Knot's mod-cookies
        // sends BADCOOKIE over UDP, but it is a module that, once loaded, demands cookies. So
        // valid, invalid and absent server cookies get the same answer here; the verdict only
        // matters to the XDP program's limits, and is logged at debug level.
        if !c.server().is_empty()
            && (limits.is_some() || tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG))
        {
            valid_cookie = cookies.verify(&c.client, c.server(), peer, now);
            tracing::debug!(target: LOG_TARGET, %peer, valid = valid_cookie, "server cookie");
        }
        ans.cookie = Some(cookies.answer(&c.client, c.server(), peer, now));
    }
    note.rcode = Some(u16::from(ans.rcode));
    if let Some(limits) = limits.filter(|_| transport == Transport::Udp) {
        let verdict = limits.check(peer, response_class(catalog, &query, &ans), valid_cookie);
        note.verdict = Some(verdict);
        match verdict {
            Verdict::Answer => {}
            Verdict::Slip => {
                // The answer's RCODE, low bits only: a slip has no OPT.
                note.rcode = Some(u16::from(ans.rcode.low()));
                return Some(wire::render_slip(&query, &ans));
            }
            Verdict::Drop => return None,
        }
    }
    Some(wire::render(&query, &ans, transport))
}

/// The QTYPE of the question a rejected query's response echoes, if it echoes one.
fn rejected_qtype(response: &[u8]) -> Option<u16> {
    if u16::from_be_bytes([response[4], response[5]]) == 0 {
        return None;
    }
    let name = crate::zone::wire_name_len(response.get(12..)?)?;
    let at = 12 + name;
    Some(u16::from_be_bytes(
        response.get(at..at + 2)?.try_into().ok()?,
    ))
}

/// The class RRL accounts an answer under, as the compiler computes it for the XDP program:
/// the zone's apex for NXDOMAIN, NODATA and errors (the query name without a zone).
fn response_class(catalog: &Catalog, query: &wire::Query, ans: &Answer<'_>) -> u32 {
    let question = query.question();
    let qname = question.qname.as_wire();
    let apex = answer::select_zone(catalog, &question).map_or(qname, |z| z.origin_key().as_wire());
    let mut flags = u16::from(ans.rcode.low());
    if ans.authoritative {
        flags |= wire::FLAG_AA;
    }
    let ancount = u16::try_from(ans.answer.len()).unwrap_or(u16::MAX);
    compile::response_class(flags, ancount, qname, apex)
}

fn is_meta_qtype(qtype: RecordType) -> bool {
    let code = u16::from(qtype);
    code == 0 || code == 41 || ((128..=254).contains(&code) && code != 251 && code != 252)
}
