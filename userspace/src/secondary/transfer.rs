//! One refresh against one primary: the SOA query (UDP), then IXFR or AXFR over TCP (RFC 1995,
//! RFC 5936), TSIG-signed when the zone has a key (RFC 8945). The `domain` crate builds and
//! signs the messages and interprets the response stream; this module moves the bytes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use domain::base::iana::{Class, Rcode};
use domain::base::{Message, MessageBuilder, Name, Record, Rtype, Serial, ToName, Ttl};
use domain::net::xfr::protocol::XfrResponseInterpreter;
use domain::rdata::Soa;
use domain::tsig::{ClientSequence, ClientTransaction, Key};
use domain::zonetree::types::ZoneUpdate;

use super::records::RecordSet;

/// How a new version arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XfrKind {
    /// The whole zone: AXFR, or an IXFR the primary answered with the whole zone.
    Axfr,
    /// Differences from our version (RFC 1995).
    Ixfr,
}

impl XfrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            XfrKind::Axfr => "axfr",
            XfrKind::Ixfr => "ixfr",
        }
    }
}

/// Why a transfer failed; IXFR refusals fall back to AXFR.
#[derive(Debug)]
pub enum XfrError {
    /// The primary answered with this RCODE (NOTIMP, REFUSED, NOTAUTH for a bad key...).
    Rcode(Rcode),
    Other(anyhow::Error),
}

impl std::fmt::Display for XfrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            XfrError::Rcode(r) => write!(f, "the primary answered {r}"),
            XfrError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for XfrError {
    fn from(e: E) -> Self {
        XfrError::Other(e.into())
    }
}

/// A received version.
#[derive(Debug)]
pub struct Received {
    pub records: RecordSet,
    pub kind: XfrKind,
    /// Bytes of DNS messages received.
    pub bytes: usize,
    pub messages: usize,
}

/// Where to ask, with what key, how long to wait for each packet.
#[derive(Clone, Copy, Debug)]
pub struct Primary<'a> {
    pub addr: SocketAddr,
    pub key: Option<&'a Key>,
    pub timeout: Duration,
}

fn random_id() -> u16 {
    let mut id = [0u8; 2];
    // A predictable ID would let an off-path attacker answer the SOA query.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .expect("the system's random source");
    u16::from_be_bytes(id)
}

fn now() -> domain::rdata::tsig::Time48 {
    domain::rdata::tsig::Time48::now()
}

/// The query: `qtype` for the origin, with our SOA in the authority section for IXFR.
fn build_query<'k>(
    origin: &Name<Bytes>,
    qtype: Rtype,
    ixfr_serial: Option<u32>,
    key: Option<&'k Key>,
    sequence: bool,
) -> Result<(Vec<u8>, u16, Signer<'k>)> {
    let id = random_id();
    let mut msg = MessageBuilder::new_vec();
    msg.header_mut().set_id(id);
    let mut q = msg.question();
    q.push((origin, qtype))?;
    let mut auth = q.authority();
    if let Some(serial) = ixfr_serial {
        // Primaries compare the serial only (RFC 1995 §3); the other fields are placeholders.
        let soa = Soa::new(
            Name::<Bytes>::root(),
            Name::<Bytes>::root(),
            Serial(serial),
            Ttl::ZERO,
            Ttl::ZERO,
            Ttl::ZERO,
            Ttl::ZERO,
        );
        auth.push(Record::new(origin, Class::IN, Ttl::ZERO, soa))?;
    }
    let mut add = auth.additional();
    let signer = match key {
        None => Signer::None,
        Some(k) if sequence => Signer::Sequence(ClientSequence::request(k, &mut add, now())?),
        Some(k) => Signer::One(ClientTransaction::request(k, &mut add, now())?),
    };
    Ok((add.finish(), id, signer))
}

/// TSIG state for the response(s).
enum Signer<'k> {
    None,
    One(ClientTransaction<&'k Key>),
    Sequence(ClientSequence<&'k Key>),
}

impl Signer<'_> {
    fn verify(&mut self, msg: &mut Message<Vec<u8>>) -> Result<()> {
        let r = match self {
            Signer::None => return Ok(()),
            Signer::One(t) => t.answer(msg, now()),
            Signer::Sequence(s) => s.answer(msg, now()),
        };
        r.map_err(|e| anyhow!("TSIG: {e}"))
    }
}

/// Parses a response and checks it answers `id`, then its TSIG.
fn response(bytes: Vec<u8>, id: u16, signer: &mut Signer<'_>) -> Result<Message<Vec<u8>>> {
    let mut msg = Message::from_octets(bytes).map_err(|_| anyhow!("short message"))?;
    if msg.header().id() != id || !msg.header().qr() {
        bail!("a message that is not the answer to our query");
    }
    // An error answer to a signed query may be unsigned (BADKEY, BADSIG: RFC 8945 §5.3.2).
    if msg.header().rcode() == Rcode::NOERROR {
        signer.verify(&mut msg)?;
    }
    Ok(msg)
}

/// The primary's SOA serial (UDP, then TCP if truncated).
pub fn query_serial(primary: Primary<'_>, origin: &Name<Bytes>) -> Result<u32, XfrError> {
    let (query, id, mut signer) = build_query(origin, Rtype::SOA, None, primary.key, false)?;
    let bind: SocketAddr = if primary.addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(primary.addr)?;
    socket.set_read_timeout(Some(primary.timeout))?;
    socket.send(&query)?;
    let mut buf = vec![0u8; 65535];
    let msg = loop {
        let n = socket
            .recv(&mut buf)
            .with_context(|| format!("no answer to the SOA query from {}", primary.addr))?;
        // Stray datagrams (a late answer to an earlier query) are skipped.
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            break response(buf[..n].to_vec(), id, &mut signer)?;
        }
    };
    let msg = if msg.header().tc() {
        let (query, id, mut signer) = build_query(origin, Rtype::SOA, None, primary.key, false)?;
        let mut stream = connect(primary)?;
        send_tcp(&mut stream, &query)?;
        response(read_tcp(&mut stream)?, id, &mut signer)?
    } else {
        msg
    };
    if msg.header().rcode() != Rcode::NOERROR {
        return Err(XfrError::Rcode(msg.header().rcode()));
    }
    for record in msg.answer()?.limit_to::<Soa<_>>() {
        let record = record?;
        if record.owner().name_eq(origin) {
            return Ok(record.data().serial().into_int());
        }
    }
    Err(anyhow!(
        "the SOA answer from {} holds no SOA for the zone",
        primary.addr
    )
    .into())
}

fn connect(primary: Primary<'_>) -> Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&primary.addr, primary.timeout)
        .with_context(|| format!("connecting to {}", primary.addr))?;
    stream.set_read_timeout(Some(primary.timeout))?;
    stream.set_write_timeout(Some(primary.timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn send_tcp(stream: &mut TcpStream, msg: &[u8]) -> Result<()> {
    let len = u16::try_from(msg.len()).context("query too long")?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    stream.write_all(&framed)?;
    Ok(())
}

fn read_tcp(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .context("the primary closed the connection or went silent")?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut body)
        .context("the primary closed the connection mid-message")?;
    Ok(body)
}

/// Transfers the zone: IXFR from `current` when it has a version, else AXFR. The result is a
/// new set; `current` is untouched whatever happens.
pub fn transfer(
    primary: Primary<'_>,
    origin: &Name<Bytes>,
    current: &RecordSet,
    kind: XfrKind,
) -> Result<Received, XfrError> {
    let (qtype, serial) = match (kind, current.soa()) {
        (XfrKind::Ixfr, Some(soa)) => (Rtype::IXFR, Some(soa.serial)),
        _ => (Rtype::AXFR, None),
    };
    let (query, id, mut signer) = build_query(origin, qtype, serial, primary.key, true)?;
    let mut stream = connect(primary)?;
    send_tcp(&mut stream, &query)?;
    let mut interpreter = XfrResponseInterpreter::new();
    let mut records = current.clone();
    let (mut received, mut bytes, mut messages) = (XfrKind::Ixfr, 0, 0);
    loop {
        let body = read_tcp(&mut stream)?;
        bytes += body.len() + 2;
        // A primary that never ends the stream must not fill the memory.
        if bytes as u64 > crate::zone::MAX_ZONE_FILE_BYTES {
            return Err(anyhow!(
                "{qtype} stream past {} bytes without its final SOA",
                crate::zone::MAX_ZONE_FILE_BYTES
            )
            .into());
        }
        messages += 1;
        let msg = response(body, id, &mut signer)?;
        if msg.header().rcode() != Rcode::NOERROR {
            return Err(XfrError::Rcode(msg.header().rcode()));
        }
        let msg = Message::from_octets(Bytes::from(msg.into_octets()))
            .map_err(|_| anyhow!("short message"))?;
        let mut finished = false;
        let updates = interpreter
            .interpret_response(msg)
            .map_err(|e| anyhow!("{qtype} response: {e}"))?;
        for update in updates {
            match update.map_err(|e| anyhow!("{qtype} response: {e:?}"))? {
                ZoneUpdate::DeleteAllRecords => {
                    records.clear();
                    received = XfrKind::Axfr;
                }
                ZoneUpdate::AddRecord(r) | ZoneUpdate::BeginBatchAdd(r) => records.add(&r),
                ZoneUpdate::DeleteRecord(r) => records.delete(&r)?,
                ZoneUpdate::BeginBatchDelete(_) => {}
                ZoneUpdate::Finished(r) => {
                    records.add(&r);
                    finished = true;
                }
                other => return Err(anyhow!("{qtype} response: unexpected {other}").into()),
            }
        }
        if finished {
            break;
        }
    }
    if let Signer::Sequence(s) = signer {
        s.done().map_err(|e| anyhow!("TSIG: {e}"))?;
    }
    Ok(Received {
        records,
        kind: received,
        bytes,
        messages,
    })
}

/// RFC 1982: `a` is newer than `b`.
pub fn serial_newer(a: u32, b: u32) -> bool {
    let d = a.wrapping_sub(b);
    d != 0 && d < 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_in_rfc1982_arithmetic() {
        assert!(serial_newer(2, 1));
        assert!(!serial_newer(1, 1));
        assert!(!serial_newer(1, 2));
        assert!(serial_newer(0, u32::MAX), "wrap-around");
        assert!(serial_newer(5, 0xffff_fff0));
    }
}
