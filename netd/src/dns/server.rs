//! The sockets: a UDP and a TCP listener per address netd asks for, all
//! answering from one shared [`NameTable`].
//!
//! Bounded everywhere, for netd's few MiB: one receive buffer per UDP
//! listener, local answers computed inline (no task per query), at most
//! [`MAX_FORWARDS`] queries waiting for upstreams and [`MAX_TCP_CONNECTIONS`]
//! TCP clients at once; over the caps a query gets SERVFAIL and a
//! connection is closed, never queued.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::answer::{self, Forward, Outcome, Transport, MAX_UDP};
use super::table::NameTable;
use super::upstream::{self, FORWARD_TIMEOUT};
use crate::error::{Error, Result};

/// Most forwarded queries in flight over UDP, all listeners together (each
/// holds a 4 KiB buffer while it waits).
pub const MAX_FORWARDS: usize = 128;
/// Most TCP connections at once, all listeners together.
pub const MAX_TCP_CONNECTIONS: usize = 32;
/// A TCP client silent this long is disconnected (RFC 7766 suggests
/// seconds, not minutes, for a busy server).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Pause after a failing accept or receive (out of file descriptors...), so
/// a persistent error does not spin a core.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The embedded DNS server of a node.
pub struct DnsServer {
    shared: Arc<Shared>,
    listeners: Mutex<HashMap<SocketAddr, Listener>>,
}

struct Shared {
    /// `watch` as an atomic swap: readers clone the current `Arc` and
    /// answer from it; `set_table` replaces it for the next query.
    table: watch::Sender<Arc<NameTable>>,
    upstreams: Arc<[SocketAddr]>,
    forward_timeout: Duration,
    forwards: Arc<Semaphore>,
    tcp_connections: Arc<Semaphore>,
}

/// The two tasks of one address. Each owns its socket alone, and its
/// `JoinSet` the connections and forwards it started: stopping a task
/// closes the socket and stops them.
struct Listener {
    udp: JoinHandle<()>,
    tcp: JoinHandle<()>,
}

impl Listener {
    fn abort(&self) {
        self.udp.abort();
        self.tcp.abort();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for listener in self.lock().values() {
            listener.abort();
        }
    }
}

impl DnsServer {
    /// A server answering nothing yet (empty table, no listener).
    /// `default_upstreams` serve the clients without their own (netd reads
    /// them from its host's resolv.conf with
    /// [`upstreams_from_resolv_conf`](super::upstreams_from_resolv_conf)).
    pub fn new(default_upstreams: Vec<SocketAddr>) -> DnsServer {
        DnsServer::with_forward_timeout(default_upstreams, FORWARD_TIMEOUT)
    }

    /// As [`DnsServer::new`], with another time each upstream has to answer.
    pub fn with_forward_timeout(
        default_upstreams: Vec<SocketAddr>,
        forward_timeout: Duration,
    ) -> DnsServer {
        DnsServer {
            shared: Arc::new(Shared {
                table: watch::Sender::new(Arc::new(NameTable::default())),
                upstreams: default_upstreams.into(),
                forward_timeout,
                forwards: Arc::new(Semaphore::new(MAX_FORWARDS)),
                tcp_connections: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
            }),
            listeners: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the table; the next query is answered from the new one.
    pub fn set_table(&self, table: Arc<NameTable>) {
        self.shared.table.send_replace(table);
    }

    /// The table queries are answered from now.
    pub fn table(&self) -> Arc<NameTable> {
        self.shared.table.borrow().clone()
    }

    /// Starts answering over UDP and TCP on `addr` and returns the address
    /// bound (with port 0: the port chosen, the same for UDP and TCP).
    /// Listening again on an address already served does nothing. Fails,
    /// naming the address, if it is not on this host or the port is taken.
    pub async fn listen(&self, addr: SocketAddr) -> Result<SocketAddr> {
        // Held throughout (nothing here awaits), so two calls for one
        // address cannot both bind.
        let mut listeners = self.lock();
        if addr.port() != 0 && listeners.contains_key(&addr) {
            return Ok(addr);
        }
        let (udp, tcp) = bind(addr)?;
        let bound = udp.local_addr().map_err(|source| Error::DnsListen {
            proto: "udp",
            addr,
            source,
        })?;
        let udp = tokio::spawn(serve_udp(self.shared.clone(), udp));
        let tcp = tokio::spawn(serve_tcp(self.shared.clone(), tcp));
        listeners.insert(bound, Listener { udp, tcp });
        tracing::info!(%bound, "DNS: answering");
        Ok(bound)
    }

    /// Stops answering on `addr` (as `listen` returned it); when it returns
    /// the sockets are closed, so the address may be listened on again at
    /// once. False if it was not served.
    pub async fn unlisten(&self, addr: SocketAddr) -> bool {
        let Some(listener) = self.lock().remove(&addr) else {
            return false;
        };
        listener.abort();
        // An aborted task's handle resolves once its future, and with it
        // the socket, is dropped.
        let _ = listener.udp.await;
        let _ = listener.tcp.await;
        tracing::info!(%addr, "DNS: no longer answering");
        true
    }

    /// The addresses served, in no order.
    pub fn listening(&self) -> Vec<SocketAddr> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Listener>> {
        // The map is consistent at every await-free step, so a panic while
        // it was held leaves nothing half-done: use it anyway.
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Binds UDP on `addr`, then TCP on the same port. With port 0 the kernel
/// picks a UDP port that may be taken for TCP: try a few.
fn bind(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 8 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let udp = std::net::UdpSocket::bind(addr)
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .and_then(UdpSocket::from_std)
            .map_err(|source| Error::DnsListen {
                proto: "udp",
                addr,
                source,
            })?;
        let port = udp.local_addr().map(|a| a.port()).unwrap_or(addr.port());
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match bind_tcp(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(Error::DnsListen {
                    proto: "tcp",
                    addr: tcp_addr,
                    source,
                });
            }
        }
    }
    Err(last.expect("at least one attempt"))
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    // Listening again right after unlisten must not fail on the previous
    // connections' TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(64)
}

/// A forwarded query's reply and where it goes, handed back to the loop
/// (which alone owns the socket).
type Relayed = Option<(Vec<u8>, SocketAddr)>;

async fn serve_udp(shared: Arc<Shared>, socket: UdpSocket) {
    let mut buf = vec![0u8; MAX_UDP];
    let mut forwards: JoinSet<Relayed> = JoinSet::new();
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, src)) => {
                    on_udp_packet(&shared, &socket, &mut forwards, &buf[..n], src).await;
                }
                Err(error) => {
                    tracing::debug!(%error, "DNS: receive failed");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            },
            Some(done) = forwards.join_next(), if !forwards.is_empty() => {
                if let Ok(Some((reply, to))) = done {
                    send(&socket, &reply, to).await;
                }
            }
        }
    }
}

async fn on_udp_packet(
    shared: &Arc<Shared>,
    socket: &UdpSocket,
    forwards: &mut JoinSet<Relayed>,
    packet: &[u8],
    src: SocketAddr,
) {
    let table = shared.table.borrow().clone();
    match answer::handle(&table, &shared.upstreams, src.ip(), packet, Transport::Udp) {
        Outcome::Ignore => {}
        Outcome::Reply(reply) => send(socket, &reply, src).await,
        Outcome::Forward(forward) => match shared.forwards.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                forwards.spawn(async move {
                    let reply = forward_one(&shared, &forward, permit).await?;
                    Some((reply, src))
                });
            }
            Err(_) => {
                tracing::debug!(%src, "DNS: too many queries upstream, answering SERVFAIL");
                if let Some(reply) = forward.reply(None) {
                    send(socket, &reply, src).await;
                }
            }
        },
    }
}

async fn forward_one(
    shared: &Shared,
    forward: &Forward,
    _permit: OwnedSemaphorePermit,
) -> Option<Vec<u8>> {
    let answer = upstream::exchange(
        &forward.packet,
        forward.id,
        forward.query(),
        &forward.upstreams,
        forward.transport(),
        shared.forward_timeout,
    )
    .await;
    forward.reply(answer)
}

async fn send(socket: &UdpSocket, reply: &[u8], to: SocketAddr) {
    if let Err(error) = socket.send_to(reply, to).await {
        tracing::debug!(%to, %error, "DNS: reply not sent");
    }
}

async fn serve_tcp(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match shared.tcp_connections.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(serve_connection(shared.clone(), stream, peer, permit));
                    }
                    // Over the cap: close at once rather than queue.
                    Err(_) => drop(stream),
                },
                Err(error) => {
                    tracing::debug!(%error, "DNS: accept failed");
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Queries of one TCP connection, one after the other (a client pipelining
/// gets its answers in order; concurrency is bounded by the connection cap).
async fn serve_connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let mut msg = Vec::new();
    let mut out = Vec::new();
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => len as usize,
            _ => return,
        };
        msg.resize(len, 0);
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let table = shared.table.borrow().clone();
        let reply = match answer::handle(&table, &shared.upstreams, peer.ip(), &msg, Transport::Tcp)
        {
            Outcome::Ignore => continue,
            Outcome::Reply(reply) => Some(reply),
            Outcome::Forward(forward) => {
                drop(table);
                let answer = upstream::exchange(
                    &forward.packet,
                    forward.id,
                    forward.query(),
                    &forward.upstreams,
                    Transport::Tcp,
                    shared.forward_timeout,
                )
                .await;
                forward.reply(answer)
            }
        };
        let Some(reply) = reply else { continue };
        let Ok(len) = u16::try_from(reply.len()) else {
            continue;
        };
        out.clear();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&reply);
        match stream.write_all(&out).await {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::BrokenPipe => return,
            Err(error) => {
                tracing::debug!(%peer, %error, "DNS: TCP reply not sent");
                return;
            }
        }
    }
}
