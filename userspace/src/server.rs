//! The slow path: UDP (SO_REUSEPORT workers) and TCP authoritative server.
//!
//! Every listen address gets N UDP worker threads, each with its own SO_REUSEPORT socket so the
//! kernel spreads queries across them, and one TCP accept thread that hands each connection to
//! its own thread (RFC 7766: several queries per connection, pipelining answered in order, idle
//! timeout, connection limit). Shutdown is a crossbeam channel that every thread polls: dropping
//! its sender tells them all at once.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use socket2::{Domain, Protocol, Socket, Type};

use crate::cookie::{self, Cookies};
use crate::identity::Identity;
use crate::metrics::{ReplyNote, SlowStats, TcpRefusal};
use crate::resolver::Resolver;
use crate::respond::{Node, respond_noted};
use crate::slow_limits::SlowLimits;
use crate::wire::Transport;
#[cfg(test)]
use crate::zone::Catalog;

/// How often blocked threads look at the shutdown channel.
const POLL: Duration = Duration::from_millis(200);

/// Tunables; `Default` is what `rampart run` uses, but for the identity and the cookies, which
/// come from the config (the default has none and cookies off).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// UDP worker threads per address; default: available cores.
    pub udp_workers: usize,
    /// Concurrent TCP connections over all addresses; more are closed at accept.
    pub tcp_max_connections: usize,
    /// Concurrent TCP connections from one source address; more are closed at accept, so one
    /// client can't hold every slot.
    pub tcp_max_per_source: usize,
    /// A TCP connection with no complete query for this long is closed (RFC 7766 §6.2.3).
    pub tcp_idle_timeout: Duration,
    /// Sent in NSID and CHAOS TXT answers.
    pub identity: Arc<Identity>,
    /// DNS cookies: answered (with the node's secret) or ignored.
    pub cookies: Arc<Cookies>,
    /// Rate limits on UDP answers: sockets-only mode (see `slow_limits`).
    pub limits: Option<Arc<SlowLimits>>,
    /// Where the threads count what they do (the metrics endpoint reads the same handles).
    pub stats: SlowStats,
    /// Resolver mode (names outside the zones resolved for allowed clients).
    pub resolver: Option<Arc<Resolver>>,
    /// NOTIFY (RFC 1996) over UDP goes here instead of the query path (secondary zones).
    pub notify: Option<NotifyHook>,
}

/// Takes a NOTIFY message and its source; returns the response (or nothing: dropped).
#[derive(Clone)]
pub struct NotifyHook(pub Arc<NotifyFn>);

/// The hook's function: the message's source, the message; the response.
pub type NotifyFn = dyn Fn(SocketAddr, &[u8]) -> Option<Vec<u8>> + Send + Sync;

impl std::fmt::Debug for NotifyHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifyHook")
    }
}

/// A request (QR=0) with opcode NOTIFY (4).
fn is_notify(packet: &[u8]) -> bool {
    packet.len() >= 12 && packet[2] & 0x80 == 0 && (packet[2] >> 3) & 0x0f == 4
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            udp_workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tcp_max_connections: 256,
            tcp_max_per_source: 16,
            tcp_idle_timeout: Duration::from_secs(10),
            identity: Arc::default(),
            cookies: Arc::new(Cookies::disabled()),
            limits: None,
            stats: SlowStats::default(),
            notify: None,
            resolver: None,
        }
    }
}

impl ServerConfig {
    /// Resolver mode on (or not).
    pub fn with_resolver(mut self, resolver: Option<Resolver>) -> ServerConfig {
        self.resolver = resolver.map(Arc::new);
        self
    }
}

pub use crate::live_catalog::SharedCatalog;

pub struct Server;

impl Server {
    /// Binds every address (UDP and TCP on the same port; port 0 picks one) and starts serving.
    #[cfg(test)]
    pub fn start_with(
        listen: &[SocketAddr],
        catalog: Arc<Catalog>,
        config: ServerConfig,
    ) -> anyhow::Result<ServerHandle> {
        Server::start_shared(listen, SharedCatalog::new(catalog), config)
    }

    /// Serves a live catalog others hold too (a restarted server keeps answering from the same
    /// one the reloads and health probes use).
    pub fn start_shared(
        listen: &[SocketAddr],
        catalog: SharedCatalog,
        config: ServerConfig,
    ) -> anyhow::Result<ServerHandle> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let connections = Arc::new(TcpSlots::new(&config));
        let mut threads = Vec::new();
        let mut udp_addrs = Vec::new();
        let mut tcp_addrs = Vec::new();
        for addr in listen {
            // The first socket settles the port if it was 0; the rest join it.
            let first = udp_socket(*addr)?;
            let addr = first.local_addr()?;
            let mut sockets = vec![first];
            for _ in 1..config.udp_workers.max(1) {
                sockets.push(udp_socket(addr)?);
            }
            for (i, socket) in sockets.into_iter().enumerate() {
                let stop = stop_rx.clone();
                let udp = UdpContext {
                    socket: Arc::new(socket),
                    catalog: catalog.clone(),
                    identity: config.identity.clone(),
                    cookies: config.cookies.clone(),
                    limits: config.limits.clone(),
                    resolver: config.resolver.clone(),
                    notify: config.notify.clone(),
                    stats: config.stats.clone(),
                };
                threads.push(
                    std::thread::Builder::new()
                        .name(format!("udp-{addr}-{i}"))
                        .spawn(move || udp_worker(udp, stop))?,
                );
            }
            let listener = tcp_listener(addr)?;
            let (catalog, stop, conns, cfg) = (
                catalog.clone(),
                stop_rx.clone(),
                connections.clone(),
                config.clone(),
            );
            threads.push(
                std::thread::Builder::new()
                    .name(format!("tcp-{addr}"))
                    .spawn(move || tcp_acceptor(listener, catalog, stop, conns, cfg))?,
            );
            tracing::info!(%addr, udp_workers = config.udp_workers, "slow path listening");
            udp_addrs.push(addr);
            tcp_addrs.push(addr);
        }
        Ok(ServerHandle {
            catalog,
            stop: Some(stop_tx),
            threads,
            udp_addrs,
            tcp_addrs,
        })
    }
}

/// A running server: swap its catalog on reload, stop it on SIGTERM.
pub struct ServerHandle {
    #[cfg_attr(not(test), allow(dead_code))] // the daemon keeps its own SharedCatalog handle
    catalog: SharedCatalog,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    #[cfg_attr(not(test), allow(dead_code))] // tests bind port 0 and read the real one
    udp_addrs: Vec<SocketAddr>,
    #[cfg_attr(not(test), allow(dead_code))]
    tcp_addrs: Vec<SocketAddr>,
}

impl ServerHandle {
    /// Atomically replaces the zones every thread answers from.
    #[cfg(test)]
    pub fn replace_catalog(&self, catalog: Arc<Catalog>) {
        self.catalog.replace(catalog);
    }
    /// A handle on the live catalog for other threads.
    #[cfg(test)]
    pub fn shared_catalog(&self) -> SharedCatalog {
        self.catalog.clone()
    }
    #[cfg(test)]
    /// The bound addresses (with the real port when 0 was asked for).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }
    #[cfg(test)]
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }
    /// Signals every thread and waits for them (at most about one poll interval, plus the
    /// connection in flight).
    pub fn stop(mut self) {
        self.shutdown();
    }
    fn shutdown(&mut self) {
        drop(self.stop.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn stopped(stop: &Receiver<()>) -> bool {
    matches!(stop.try_recv(), Err(TryRecvError::Disconnected))
}

fn udp_socket(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    prepare(&socket, addr)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind udp {addr}"))?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket.into())
}

fn tcp_listener(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    prepare(&socket, addr)?;
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind tcp {addr}"))?;
    socket.listen(1024)?;
    // SO_RCVTIMEO bounds accept() on Linux, so the acceptor sees shutdown.
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket.into())
}

/// SO_REUSEPORT so workers (and a restarting daemon) share the port; IPV6_V6ONLY so `[::]:53`
/// and `0.0.0.0:53` can both bind.
fn prepare(socket: &Socket, addr: SocketAddr) -> anyhow::Result<()> {
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    Ok(())
}

/// The socket's read timeout (how workers notice a stop) or a signal, not a failure.
fn is_poll_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// A UDP thread's socket and what it answers with, owned, so that a query waiting for the
/// resolver can be answered from another thread.
#[derive(Clone)]
struct UdpContext {
    socket: Arc<UdpSocket>,
    catalog: SharedCatalog,
    identity: Arc<Identity>,
    cookies: Arc<Cookies>,
    limits: Option<Arc<SlowLimits>>,
    resolver: Option<Arc<Resolver>>,
    stats: SlowStats,
    /// NOTIFY (RFC 1996) goes here instead of the query path (secondary zones).
    notify: Option<NotifyHook>,
}

impl UdpContext {
    /// Answers one datagram received at `received` and counts it.
    fn answer(&self, packet: &[u8], peer: SocketAddr, received: Instant) {
        let node = Node {
            identity: &self.identity,
            cookies: &self.cookies,
            limits: self.limits.as_deref(),
            resolver: self.resolver.as_deref(),
        };
        let catalog = self.catalog.get();
        let mut note = ReplyNote::default();
        let response = respond_noted(
            &catalog,
            node,
            peer.ip(),
            cookie::now(),
            packet,
            Transport::Udp,
            &mut note,
        );
        if let Some(response) = &response
            && let Err(e) = self.socket.send_to(response, peer)
        {
            tracing::debug!(error = %e, %peer, "udp send");
        }
        self.stats.message(
            Transport::Udp,
            &note,
            response.is_some(),
            received.elapsed(),
        );
    }

    /// Hands a query that may wait for the resolver's upstream to its threads; `false` if it
    /// is to be answered here.
    fn deferred(&self, packet: &[u8], peer: SocketAddr, received: Instant) -> bool {
        let Some(resolver) = &self.resolver else {
            return false;
        };
        if !resolver.needs_upstream(&self.catalog.get(), packet, peer.ip()) {
            return false;
        }
        let (udp, packet) = (self.clone(), packet.to_vec());
        if !resolver.defer(Box::new(move || udp.answer(&packet, peer, received))) {
            tracing::debug!(%peer, "resolver queue full: query dropped");
        }
        true
    }
}

fn udp_worker(udp: UdpContext, stop: Receiver<()>) {
    let mut buf = vec![0u8; 65535];
    while !stopped(&stop) {
        let (len, peer) = match udp.socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if is_poll_timeout(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "udp recv");
                continue;
            }
        };
        // A source port of 0 can't be answered; nothing legitimate sends from it.
        if peer.port() == 0 {
            continue;
        }
        if let Some(hook) = &udp.notify
            && is_notify(&buf[..len])
        {
            if let Some(response) = (hook.0)(peer, &buf[..len]) {
                let _ = udp.socket.send_to(&response, peer);
            }
            continue;
        }
        let received = Instant::now();
        if !udp.deferred(&buf[..len], peer, received) {
            udp.answer(&buf[..len], peer, received);
        }
    }
}

/// The TCP connection slots of a server, in total and per source address (as Knot's
/// `tcp-max-clients` and PowerDNS's `max-tcp-connections-per-client`).
struct TcpSlots {
    max_total: usize,
    max_per_source: usize,
    held: Mutex<(usize, HashMap<IpAddr, usize>)>,
    /// Slots taken, refused and held, counted here so the open-connections gauge follows the
    /// slots whatever ends a connection (a panic included).
    stats: SlowStats,
}

/// One connection's slot, given back when dropped.
struct TcpSlot {
    slots: Arc<TcpSlots>,
    peer: IpAddr,
}

impl TcpSlots {
    fn new(config: &ServerConfig) -> TcpSlots {
        TcpSlots {
            max_total: config.tcp_max_connections,
            max_per_source: config.tcp_max_per_source,
            held: Mutex::new((0, HashMap::new())),
            stats: config.stats.clone(),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for `peer`, or why not.
    fn take(self: &Arc<Self>, peer: IpAddr) -> Result<TcpSlot, TcpRefusal> {
        let taken = self.try_take(peer);
        match &taken {
            Ok(_) => self.stats.tcp_accepted(),
            Err(why) => self.stats.tcp_refused(*why),
        }
        taken
    }

    fn try_take(self: &Arc<Self>, peer: IpAddr) -> Result<TcpSlot, TcpRefusal> {
        let mut held = self.held();
        let (total, by_source) = &mut *held;
        if *total >= self.max_total {
            return Err(TcpRefusal::Total);
        }
        let mine = by_source.entry(peer).or_insert(0);
        if *mine >= self.max_per_source {
            return Err(TcpRefusal::PerSource);
        }
        *mine += 1;
        *total += 1;
        Ok(TcpSlot {
            slots: self.clone(),
            peer,
        })
    }
}

impl Drop for TcpSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        let (total, by_source) = &mut *held;
        *total -= 1;
        if let Some(n) = by_source.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                by_source.remove(&self.peer);
            }
        }
        self.slots.stats.tcp_closed();
    }
}

fn tcp_acceptor(
    listener: TcpListener,
    catalog: SharedCatalog,
    stop: Receiver<()>,
    connections: Arc<TcpSlots>,
    config: ServerConfig,
) {
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !stopped(&stop) {
        handlers.retain(|h| !h.is_finished());
        let (stream, peer) = match listener.accept() {
            Ok(r) => r,
            Err(e) if is_poll_timeout(&e) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                std::thread::sleep(POLL);
                continue;
            }
        };
        let slot = match connections.take(peer.ip()) {
            Ok(slot) => slot,
            Err(limit) => {
                tracing::debug!(%peer, ?limit, "tcp connection limit reached");
                continue; // dropping the stream closes it
            }
        };
        let (catalog, stop, idle, identity, cookies, stats) = (
            catalog.clone(),
            stop.clone(),
            config.tcp_idle_timeout,
            config.identity.clone(),
            config.cookies.clone(),
            config.stats.clone(),
        );
        let notify = config.notify.clone();
        let resolver = config.resolver.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("tcp-conn-{peer}"))
            .spawn(move || {
                let node = Node {
                    identity: &identity,
                    cookies: &cookies,
                    limits: None,
                    resolver: resolver.as_deref(),
                };
                let conn = Connection {
                    peer: peer.ip(),
                    catalog: &catalog,
                    node,
                    stats: &stats,
                    notify: notify.as_ref().map(|n| (n, peer)),
                };
                if let Err(e) = tcp_connection(stream, conn, &stop, idle) {
                    tracing::debug!(error = %e, %peer, "tcp connection");
                }
                drop(slot);
            });
        match spawned {
            Ok(h) => handlers.push(h),
            Err(e) => tracing::warn!(error = %e, "tcp connection thread"),
        }
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// What one TCP connection answers with and counts on.
struct Connection<'a> {
    peer: IpAddr,
    catalog: &'a SharedCatalog,
    node: Node<'a>,
    stats: &'a SlowStats,
    /// Knot sends NOTIFY over TCP when UDP gets no answer.
    notify: Option<(&'a NotifyHook, SocketAddr)>,
}

/// RFC 7766: 2-byte length framing, any number of queries, answered in order.
fn tcp_connection(
    mut stream: TcpStream,
    conn: Connection<'_>,
    stop: &Receiver<()>,
    idle_timeout: Duration,
) -> std::io::Result<()> {
    let Connection {
        peer,
        catalog,
        node,
        stats,
        notify,
    } = conn;
    stream.set_read_timeout(Some(POLL))?;
    // A client that stops reading its answers gets as long as an idle one, then loses the
    // connection: otherwise it would hold a thread and a connection slot forever.
    stream.set_write_timeout(Some(idle_timeout))?;
    stream.set_nodelay(true)?;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut last_activity = Instant::now();
    loop {
        // Answer every complete message already buffered (pipelined queries).
        while buf.len() >= 2 {
            let len = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            if buf.len() < 2 + len {
                break;
            }
            let started = Instant::now();
            let mut note = ReplyNote::default();
            let message = &buf[2..2 + len];
            let response = match notify {
                Some((hook, from)) if is_notify(message) => (hook.0)(from, message),
                _ => respond_noted(
                    &catalog.get(),
                    node,
                    peer,
                    cookie::now(),
                    message,
                    Transport::Tcp,
                    &mut note,
                ),
            };
            buf.drain(..2 + len);
            let written = match response {
                Some(response) => {
                    // `render` truncates what doesn't fit a TCP message; a prefix that wrapped
                    // would make every later answer on the connection unreadable: never send one.
                    let Ok(len) = u16::try_from(response.len()) else {
                        tracing::error!(len = response.len(), %peer, "TCP answer over 65,535 bytes");
                        stats.message(Transport::Tcp, &note, false, started.elapsed());
                        return Ok(());
                    };
                    let mut framed = Vec::with_capacity(2 + response.len());
                    framed.extend_from_slice(&len.to_be_bytes());
                    framed.extend_from_slice(&response);
                    Some(stream.write_all(&framed))
                }
                None => None,
            };
            let sent = matches!(written, Some(Ok(())));
            stats.message(Transport::Tcp, &note, sent, started.elapsed());
            written.transpose()?;
            last_activity = Instant::now();
        }
        if stopped(stop) || last_activity.elapsed() >= idle_timeout {
            return Ok(());
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_poll_timeout(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::respond::{respond, respond_to};
    use crate::wire::testutil::{opt_options, query_packet, query_with_options};
    use crate::{answer, wire};

    fn sample() -> Arc<Catalog> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../zones");
        Arc::new(Catalog::load(&[], Some(&dir)).unwrap())
    }

    fn config() -> ServerConfig {
        ServerConfig {
            udp_workers: 2,
            tcp_max_connections: 4,
            tcp_idle_timeout: Duration::from_millis(600),
            ..ServerConfig::default()
        }
    }

    #[test]
    fn serves_udp_and_tcp_on_loopback() {
        let cat = sample();
        let server =
            Server::start_with(&["127.0.0.1:0".parse().unwrap()], cat.clone(), config()).unwrap();
        let addr = server.udp_addrs()[0];
        assert_ne!(addr.port(), 0);
        assert_eq!(server.tcp_addrs()[0], addr);

        // UDP: the exact bytes the pure function gives, for a mixed-case query.
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let q = query_packet(0x5151, 0x0100, "wWw.example.COM", 1, Some((1232, false, 0)));
        client.send_to(&q, addr).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = client.recv_from(&mut buf).unwrap();
        let expected = respond(&cat, &q, Transport::Udp).unwrap();
        assert_eq!(&buf[..n], &expected[..]);
        assert_eq!(&buf[..4], [0x51, 0x51, 0x85, 0x00]);
        assert_eq!(
            &buf[12..12 + 21],
            &q[12..12 + 21],
            "client's question echoed"
        );

        // TCP: two pipelined queries in one write, answered in order, framed.
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let q1 = query_packet(1, 0, "example.com", 6, None);
        let q2 = query_packet(2, 0, "nope.example.com", 1, None);
        let mut out = Vec::new();
        for q in [&q1, &q2] {
            out.extend_from_slice(&(q.len() as u16).to_be_bytes());
            out.extend_from_slice(q);
        }
        tcp.write_all(&out).unwrap();
        for (q, rcode) in [(&q1, 0u8), (&q2, 3)] {
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).unwrap();
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            tcp.read_exact(&mut msg).unwrap();
            assert_eq!(&msg[..2], &q[..2], "answers in order");
            assert_eq!(msg[3] & 0xf, rcode);
            assert_eq!(msg, respond(&cat, q, Transport::Tcp).unwrap());
        }

        // Reload: the new catalog answers the next query.
        server.replace_catalog(Arc::new(Catalog::default()));
        client.send_to(&q, addr).unwrap();
        let (n, _) = client.recv_from(&mut buf).unwrap();
        assert_eq!(buf[3] & 0xf, 5, "REFUSED once the zone is gone");
        assert!(n > 12);

        // Idle connections are closed.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let started = Instant::now();
        assert_eq!(
            idle.read(&mut buf).unwrap(),
            0,
            "server closed the idle connection"
        );
        assert!(started.elapsed() >= Duration::from_millis(500));

        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() < Duration::from_secs(3));
        // The port is free again.
        UdpSocket::bind(addr).unwrap();
    }

    /// A client that pipelines queries but never reads the answers is cut off after the idle
    /// timeout, freeing its connection slot (here the only one) for the next client.
    #[test]
    fn a_client_that_stops_reading_loses_its_connection() {
        let cfg = ServerConfig {
            tcp_max_connections: 1,
            ..config()
        };
        let server = Server::start_with(&["127.0.0.1:0".parse().unwrap()], sample(), cfg).unwrap();
        let addr = server.tcp_addrs()[0];
        let stalled = TcpStream::connect(addr).unwrap();
        stalled
            .set_write_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let q = query_packet(7, 0, "example.com", 15, None);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        let writer = {
            let mut s = stalled.try_clone().unwrap();
            std::thread::spawn(move || {
                // Enough answers to fill both sides' socket buffers; stops at the first error.
                for _ in 0..200_000 {
                    if s.write_all(&framed).is_err() {
                        break;
                    }
                }
            })
        };
        // The server fills its send buffer, its write times out (600 ms here), the slot frees.
        // Under load that takes a while; without the write timeout it never happens.
        let q = query_packet(8, 0, "www.example.com", 1, None);
        let deadline = Instant::now() + Duration::from_secs(30);
        let served = loop {
            let attempt = (|| -> std::io::Result<()> {
                let mut next = TcpStream::connect(addr)?;
                next.set_read_timeout(Some(Duration::from_secs(2)))?;
                next.write_all(&(q.len() as u16).to_be_bytes())?;
                next.write_all(&q)?;
                let mut len = [0u8; 2];
                next.read_exact(&mut len)
            })();
            if attempt.is_ok() || Instant::now() > deadline {
                break attempt.is_ok();
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        assert!(served, "the stalled client's slot was never freed");
        drop(stalled);
        writer.join().unwrap();
        server.stop();
    }

    /// 300 idle connections from one address take their per-source share of the slots and no
    /// more: a client from another address is still answered.
    #[test]
    fn one_source_cannot_hold_every_tcp_slot() {
        let cfg = ServerConfig {
            tcp_max_connections: 64,
            tcp_max_per_source: 8,
            tcp_idle_timeout: Duration::from_secs(30),
            ..config()
        };
        let server = Server::start_with(&["127.0.0.1:0".parse().unwrap()], sample(), cfg).unwrap();
        let addr = server.tcp_addrs()[0];
        let hogs: Vec<TcpStream> = (0..300)
            .map(|_| TcpStream::connect(addr).unwrap())
            .collect();
        let q = query_packet(3, 0, "www.example.com", 1, None);
        let other = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        other
            .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        other.connect(&addr.into()).unwrap();
        let mut other: TcpStream = other.into();
        other
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        other
            .write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat())
            .unwrap();
        let mut len = [0u8; 2];
        other
            .read_exact(&mut len)
            .expect("another address is answered");
        // The last hogs were closed at accept.
        let mut last = &hogs[299];
        last.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(last.read(&mut [0u8; 2]).unwrap(), 0, "closed at accept");
        drop(hogs);
        server.stop();
    }

    /// Sockets-only mode limits UDP answers: `--rrl-rate 1 --rrl-slip 0` answers the burst (1)
    /// of 50 queries from one client and drops the rest; slip 1 sends TC=1 instead; TCP is not
    /// limited.
    #[test]
    fn sockets_only_mode_rate_limits_udp() {
        for slip in [0, 1] {
            let rrl = crate::limits::RrlConfig {
                rate: 1,
                slip,
                ..Default::default()
            };
            let cfg = ServerConfig {
                limits: SlowLimits::new(&rrl).map(Arc::new),
                ..config()
            };
            let server =
                Server::start_with(&["127.0.0.1:0".parse().unwrap()], sample(), cfg).unwrap();
            let addr = server.udp_addrs()[0];
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            for id in 0..50u16 {
                let q = query_packet(id, 0, "www.example.com", 1, None);
                client.send_to(&q, addr).unwrap();
            }
            client
                .set_read_timeout(Some(Duration::from_millis(1500)))
                .unwrap();
            let (mut answers, mut slips) = (0, 0);
            let mut buf = [0u8; 2048];
            while let Ok((n, _)) = client.recv_from(&mut buf) {
                if buf[2] & 0x02 != 0 {
                    assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 0, "no records");
                    assert!(n < 50, "no bigger than the query");
                    slips += 1;
                } else {
                    answers += 1;
                }
            }
            assert!(
                (1..=2).contains(&answers),
                "slip {slip}: {answers} answered"
            );
            let expect_slips = if slip == 0 { 0 } else { 50 - answers };
            assert_eq!(slips, expect_slips, "slip {slip}");
            let q = query_packet(99, 0, "www.example.com", 1, None);
            let mut tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            tcp.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat())
                .unwrap();
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).expect("TCP answered");
            server.stop();
        }
    }

    fn cookies() -> Cookies {
        Cookies::from_config(&crate::cookie::CookieConfig {
            secret: Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into()),
            staging: Some("445536bcd2513298075a5d379663c962".into()),
            ..Default::default()
        })
        .unwrap()
    }

    /// The COOKIE option of a response: (client cookie, server cookie).
    fn cookie_of(r: &[u8]) -> Option<([u8; 8], [u8; 16])> {
        let opts = opt_options(r)?;
        let (code, data) = opts.last()?;
        (*code == wire::OPTION_COOKIE)
            .then(|| (data[..8].try_into().unwrap(), data[8..].try_into().unwrap()))
    }

    /// A server cookie that is valid, expired, from the future, made under the staging secret,
    /// under another secret, for another address, or not 16 bytes: the same answer every time
    /// (NSD and BIND's default), with a fresh cookie under the main secret. A client cookie alone
    /// too. Cookies off: the option is ignored, no cookie back.
    #[test]
    fn every_cookie_gets_the_same_answer_and_a_fresh_cookie() {
        let cat = sample();
        let c = cookies();
        let id = Identity::new("node1").unwrap();
        let node = Node {
            identity: &id,
            cookies: &c,
            limits: None,
            resolver: None,
        };
        let peer: IpAddr = "198.51.100.7".parse().unwrap();
        let now = 1_700_000_000u32;
        let client = [1, 2, 3, 4, 5, 6, 7, 8];
        let staging = Cookies {
            secret: c.staging.unwrap(),
            ..c.clone()
        };
        let other = Cookies::from_config(&Default::default()).unwrap();
        let valid = c.fresh(&client, peer, now - 100);
        let server_cookies: Vec<(&str, Vec<u8>)> = vec![
            ("none", vec![]),
            ("valid", valid[8..].to_vec()),
            (
                "valid, over half an hour old",
                c.fresh(&client, peer, now - 1900)[8..].to_vec(),
            ),
            ("expired", c.fresh(&client, peer, now - 3601)[8..].to_vec()),
            ("future", c.fresh(&client, peer, now + 301)[8..].to_vec()),
            ("staging", staging.fresh(&client, peer, now)[8..].to_vec()),
            (
                "other secret",
                other.fresh(&client, peer, now)[8..].to_vec(),
            ),
            (
                "other address",
                c.fresh(&client, "198.51.100.8".parse().unwrap(), now)[8..].to_vec(),
            ),
            ("8 bytes", valid[8..16].to_vec()),
            ("32 bytes", [&valid[8..], &[0; 16][..]].concat()),
        ];
        assert!(c.verify(&client, &valid[8..], peer, now));
        assert!(
            c.verify(&client, &server_cookies[5].1, peer, now),
            "staging"
        );
        let fresh = c.fresh(&client, peer, now);
        let mut first = None;
        for (what, sc) in &server_cookies {
            let data = [&client[..], sc].concat();
            let q = query_with_options(
                0x77,
                "www.example.com",
                1,
                false,
                &[(3, &[]), (wire::OPTION_COOKIE, &data)],
            );
            for transport in [Transport::Udp, Transport::Tcp] {
                let r = respond_to(&cat, node, peer, now, &q, transport).unwrap();
                assert_eq!(r[3] & 0xf, 0, "{what}: NOERROR");
                let opts = opt_options(&r).unwrap();
                assert_eq!(opts[0], (3, b"node1".to_vec()), "{what}: NSID first");
                // RFC 9018 §4.3: a valid young cookie comes back as it was, as NSD sends it.
                let want = if *what == "valid" { valid } else { fresh };
                assert_eq!(opts[1], (10, want.to_vec()), "{what}: the cookie last");
                let n = r.len() - 16;
                assert_eq!(
                    first.get_or_insert_with(|| r.clone())[..n],
                    r[..n],
                    "{what}: same bytes but the server cookie"
                );
            }
        }
        // Cookies off: the option is an unknown one; a bad length is no error.
        let off = Cookies {
            enabled: false,
            ..c.clone()
        };
        let node_off = Node {
            identity: &id,
            cookies: &off,
            limits: None,
            resolver: None,
        };
        for len in [8, 5] {
            let q = query_with_options(1, "www.example.com", 1, false, &[(10, &[9; 24][..len])]);
            let r = respond_to(&cat, node_off, peer, now, &q, Transport::Udp).unwrap();
            assert_eq!(r[3] & 0xf, 0);
            assert_eq!(opt_options(&r).unwrap(), vec![]);
        }
        // A bad length with cookies on: FORMERR, OPT without cookie.
        let q = query_with_options(1, "www.example.com", 1, false, &[(10, &[9; 5])]);
        let r = respond_to(&cat, node, peer, now, &q, Transport::Udp).unwrap();
        assert_eq!(r[3] & 0xf, 1);
        assert_eq!(opt_options(&r).unwrap(), vec![]);
    }

    /// A truncated UDP answer carries the cookie, and the cookie's 28 bytes count toward the
    /// client's limit.
    #[test]
    fn truncated_answers_carry_the_cookie() {
        let mut text = String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n");
        for i in 0..28 {
            text.push_str(&format!("big A 192.0.2.{i}\n"));
        }
        let z = crate::zone::Zone::from_text("t.test.", &text).unwrap();
        let cat = Catalog::from_zones([z]);
        let c = cookies();
        let id = Identity::default();
        let node = Node {
            identity: &id,
            cookies: &c,
            limits: None,
            resolver: None,
        };
        let peer: IpAddr = "192.0.2.99".parse().unwrap();
        let plain = query_packet(1, 0, "big.t.test", 1, Some((512, false, 0)));
        let r = respond_to(&cat, node, peer, 5, &plain, Transport::Udp).unwrap();
        assert_eq!(
            r[2] & 0x02,
            0,
            "fits in 512 without a cookie ({} bytes)",
            r.len()
        );
        assert!(r.len() + 28 > 512, "but not with one ({} bytes)", r.len());
        let mut q = query_with_options(1, "big.t.test", 1, false, &[(10, &[4; 8])]);
        // The OPT's CLASS (payload size): after the question, the root owner and TYPE.
        let at = 12 + crate::wire::testutil::question("big.t.test", 1, 1).len() + 3;
        q[at..at + 2].copy_from_slice(&512u16.to_be_bytes());
        let r = respond_to(&cat, node, peer, 5, &q, Transport::Udp).unwrap();
        assert_eq!(r[2] & 0x02, 0x02, "TC");
        assert_eq!(&r[6..10], [0, 0, 0, 0]);
        assert_eq!(cookie_of(&r).unwrap().1, c.fresh(&[4; 8], peer, 5)[8..]);
        let r = respond_to(&cat, node, peer, 5, &q, Transport::Tcp).unwrap();
        assert_eq!(r[2] & 0x02, 0, "TCP: whole");
        assert!(cookie_of(&r).is_some());
    }

    /// A zone whose `big.t.test` TXT set renders to 65,530 bytes before the OPT: 258 strings of
    /// 240 bytes and one of 215 (issue 11's reproduction: the OPT takes it past 65,535).
    fn near_64k_catalog() -> Arc<Catalog> {
        let mut text = String::from("$TTL 60\n@ SOA ns hm 1 2 3 4 30\n NS ns\nns A 192.0.2.1\n");
        for i in 0..259 {
            let len = if i == 258 { 215 } else { 240 };
            let s = format!("{i:03}{}", "x".repeat(len - 3));
            text.push_str(&format!("big TXT \"{s}\"\n"));
        }
        let z = crate::zone::Zone::from_text("t.test.", &text).unwrap();
        Arc::new(Catalog::from_zones([z]))
    }

    /// A TCP answer never exceeds what the 2-byte length prefix frames: one that doesn't fit
    /// goes out as TC=1, and the answer pipelined after it on the same connection is read whole.
    #[test]
    fn tcp_answers_fit_the_length_prefix() {
        let cat = near_64k_catalog();
        let q = query_packet(9, 0, "big.t.test", 16, Some((1232, false, 0)));
        let parsed = wire::parse_query(&q, true).unwrap();
        let full = wire::render_full(&parsed, &answer::answer(&cat, &parsed.question()));
        assert_eq!(full.len(), 65_541, "the reproduction's size");
        let r = respond(&cat, &q, Transport::Tcp).unwrap();
        assert!(r.len() <= 65_535, "{} bytes", r.len());
        assert_eq!(
            r[2] & 0x02,
            0x02,
            "TC: the answer doesn't fit a TCP message"
        );
        let small = query_packet(10, 0, "t.test", 6, None);
        let server = Server::start_with(&["127.0.0.1:0".parse().unwrap()], cat, config()).unwrap();
        let mut tcp = TcpStream::connect(server.tcp_addrs()[0]).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = Vec::new();
        for m in [&q, &small] {
            out.extend_from_slice(&(m.len() as u16).to_be_bytes());
            out.extend_from_slice(m);
        }
        tcp.write_all(&out).unwrap();
        for (id, tc) in [(9u16, 0x02), (10, 0)] {
            let mut len = [0u8; 2];
            tcp.read_exact(&mut len).unwrap();
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            tcp.read_exact(&mut msg).unwrap();
            assert_eq!(u16::from_be_bytes([msg[0], msg[1]]), id, "framing intact");
            assert_eq!(msg[2] & 0x02, tc);
        }
        server.stop();
    }

    /// Over real sockets the server cookie is made for the client's address, UDP and TCP.
    #[test]
    fn sockets_make_cookies_for_the_peer() {
        let cfg = ServerConfig {
            cookies: Arc::new(cookies()),
            ..config()
        };
        let c = cfg.cookies.clone();
        let server = Server::start_with(&["127.0.0.1:0".parse().unwrap()], sample(), cfg).unwrap();
        let addr = server.udp_addrs()[0];
        let client = [0x42; 8];
        let q = query_with_options(5, "example.com", 6, false, &[(10, &client)]);
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let check = |r: &[u8]| {
            let (cc, sc) = cookie_of(r).expect("a cookie");
            assert_eq!(cc, client);
            assert!(c.verify(&client, &sc, peer, cookie::now()));
            assert!(!c.verify(&client, &sc, "127.0.0.2".parse().unwrap(), cookie::now()));
        };
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        udp.send_to(&q, addr).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = udp.recv_from(&mut buf).unwrap();
        check(&buf[..n]);
        let mut tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(&[&(q.len() as u16).to_be_bytes()[..], &q].concat())
            .unwrap();
        let mut len = [0u8; 2];
        tcp.read_exact(&mut len).unwrap();
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        tcp.read_exact(&mut msg).unwrap();
        check(&msg);
        server.stop();
    }

    #[test]
    fn v6_sockets_are_v6_only() {
        // With IPV6_V6ONLY, `[::]:53` doesn't claim IPv4, so `0.0.0.0:53` can bind beside it.
        let s = match udp_socket("[::]:0".parse().unwrap()) {
            Ok(s) => s,
            // Skipped only where the host has no IPv6 at all, and said so; else a failure.
            Err(_) if !Path::new("/proc/net/if_inet6").exists() => {
                eprintln!(
                    "v6_sockets_are_v6_only: SKIPPED: this host has no IPv6 (no /proc/net/if_inet6)"
                );
                return;
            }
            Err(e) => panic!("binding [::]:0 failed with IPv6 present: {e}"),
        };
        assert!(socket2::SockRef::from(&s).only_v6().unwrap());
        let l = tcp_listener("[::]:0".parse().unwrap()).unwrap();
        assert!(socket2::SockRef::from(&l).only_v6().unwrap());
        let v4 = udp_socket("0.0.0.0:0".parse().unwrap()).unwrap();
        assert!(socket2::SockRef::from(&v4).reuse_port().unwrap());
    }
}
