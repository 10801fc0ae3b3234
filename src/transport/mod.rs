//! The I/O edge: sockets, connections and the bytes that cross them.
//!
//! Reader tasks (one per UDP socket, one per stream connection) read,
//! frame and parse, then hand each message to an endpoint worker over a
//! channel: UDP readers through an [`InboundFanout`], which picks the
//! worker (the driver's rule: by Call-ID); stream readers through one
//! channel the driver fans out the same way. Parsing thus spreads over
//! cores, and each dialog's decisions stay in the one worker that owns it.
//! Writes go out through [`Transports`], one per worker: UDP directly on the
//! shared socket, streams through each connection's writer channel. No lock
//! sits on this path.
//!
//! It opens connections of its own (TCP, and TLS to peers registered with
//! [`Transports::set_tls_target`]) and tells the endpoint which messages
//! could not be sent, so their transactions fail at once (RFC 3261
//! §17.1.4). Inbound stream connections are capped per source and per
//! profile (`limits`). SIP over WebSocket (RFC 7118, `websocket`) hands its
//! connections over the same way; it never opens one of its own.

mod limits;
mod stream;
mod tls_client;
mod tls_server;
mod websocket;
// setsockopt for the UDP receive buffer (libc FFI).
#[allow(unsafe_code)]
mod udp;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::net::{ConnectionId, Destination, ProfileId, Source, TransportKind};
use crate::sip::{Response, SipMessage};

pub use limits::{ConnectionLimits, Refusal, RefusedCounts};
pub use stream::bind_stream;
pub use tls_client::{tls_target, TlsClientError, TlsTarget};
pub use tls_server::{load_tls_acceptor, TlsSetupError};
pub use udp::bind_udp;
pub use websocket::{
    bind_websocket, normalise_origin, WebSocketPolicy, WsRefusal, WsRefusedCounts,
};

/// What reader tasks tell the endpoint task.
#[derive(Debug)]
pub enum Inbound {
    /// A well-formed message.
    Message {
        source: Source,
        message: Box<SipMessage>,
    },
    /// A malformed request that can still be answered (400, 416, 501, 505, 513).
    Reject {
        source: Source,
        response: Box<Response>,
    },
    /// A stream connection opened; its writer takes whole messages.
    ConnectionUp {
        id: ConnectionId,
        transport: TransportKind,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    },
    ConnectionDown {
        id: ConnectionId,
    },
    /// A connection of our own could not be made (refused, timed out, TLS
    /// handshake or certificate check failed): the messages still queued on
    /// it were not sent.
    ConnectFailed {
        profile: ProfileId,
        transport: TransportKind,
        remote: SocketAddr,
        unsent: Vec<Bytes>,
    },
}

/// Per-reader settings.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    pub profile: ProfileId,
    pub max_message_size: usize,
    /// Streams: the most one connection holds of an incomplete message.
    pub max_pending_bytes: usize,
    pub log_messages: bool,
    pub idle_timeout: Duration,
    /// The profile's caps on inbound stream connections.
    pub limits: Arc<ConnectionLimits>,
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

fn next_connection_id() -> ConnectionId {
    ConnectionId(NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed))
}

/// A stream connection (TCP, TLS, WebSocket) is up: a new id, the workers
/// told with its writer, and the source its messages will carry. `None`
/// when the workers are gone (shutdown).
async fn announce_connection(
    tx: &mpsc::Sender<Inbound>,
    transport: TransportKind,
    local: SocketAddr,
    remote: SocketAddr,
    settings: &ReaderSettings,
    writer: mpsc::Sender<Bytes>,
) -> Option<(ConnectionId, Source)> {
    let id = next_connection_id();
    tx.send(Inbound::ConnectionUp {
        id,
        transport,
        remote,
        writer,
    })
    .await
    .ok()?;
    Some((
        id,
        Source {
            profile: settings.profile,
            transport,
            local,
            remote,
            connection: Some(id),
        },
    ))
}

/// Parses raw bytes into what the endpoint is told; `None` when dropped.
fn classify(bytes: &[u8], source: Source, settings: &ReaderSettings) -> Option<Inbound> {
    if settings.log_messages {
        tracing::info!(target: "sip_trace", "recv {} bytes from {}/{}:\n{}", bytes.len(), source.transport, source.remote, String::from_utf8_lossy(bytes));
    }
    match crate::sip::parse(bytes, settings.max_message_size) {
        Ok(message) => Some(Inbound::Message {
            source,
            message: Box::new(message),
        }),
        Err(crate::sip::Malformed::Answerable { reason, response }) => {
            tracing::info!(remote = %source.remote, %reason, "malformed request answered");
            Some(Inbound::Reject { source, response })
        }
        Err(crate::sip::Malformed::Unanswerable { reason }) => {
            tracing::info!(remote = %source.remote, %reason, "unparsable message dropped");
            None
        }
    }
}

/// The endpoint workers' channels and the rule that picks one for a
/// message (a parsed message moves, its bytes are not copied again).
#[derive(Clone)]
pub struct InboundFanout {
    /// Never empty (`new` refuses an empty list).
    workers: Arc<[mpsc::Sender<Inbound>]>,
    /// The first worker, where a pick that cannot miss still needs a value.
    first: mpsc::Sender<Inbound>,
    route: Arc<dyn Fn(&Inbound) -> usize + Send + Sync>,
}

impl std::fmt::Debug for InboundFanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundFanout")
            .field("workers", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl InboundFanout {
    /// `None` without workers.
    pub fn new(
        workers: Vec<mpsc::Sender<Inbound>>,
        route: impl Fn(&Inbound) -> usize + Send + Sync + 'static,
    ) -> Option<Self> {
        let first = workers.first()?.clone();
        Some(InboundFanout {
            workers: workers.into(),
            first,
            route: Arc::new(route),
        })
    }

    /// The worker channel for `inbound`.
    pub fn pick(&self, inbound: &Inbound) -> &mpsc::Sender<Inbound> {
        let index = (self.route)(inbound) % self.workers.len();
        self.workers.get(index).unwrap_or(&self.first)
    }

    /// Every worker's channel (connection news goes to all).
    pub fn all(&self) -> &[mpsc::Sender<Inbound>] {
        &self.workers
    }
}

/// UDP delivery: a full channel means the endpoint is overloaded, and a
/// datagram is shed rather than queued without bound (the peer retransmits).
/// Returns false once the endpoint is gone.
fn deliver_datagram(
    bytes: &[u8],
    source: Source,
    settings: &ReaderSettings,
    tx: &InboundFanout,
) -> bool {
    let Some(inbound) = classify(bytes, source, settings) else {
        return true;
    };
    match tx.pick(&inbound).try_send(inbound) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(remote = %source.remote, "endpoint busy, datagram dropped");
            true
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Stream delivery: nothing retransmits on a stream, so wait for room
/// instead of dropping; the connection's reads pause meanwhile (backpressure).
async fn deliver_frame(
    bytes: &[u8],
    source: Source,
    settings: &ReaderSettings,
    tx: &mpsc::Sender<Inbound>,
) -> bool {
    match classify(bytes, source, settings) {
        Some(inbound) => tx.send(inbound).await.is_ok(),
        None => true,
    }
}

struct Connection {
    writer: mpsc::Sender<Bytes>,
    remote: SocketAddr,
    transport: TransportKind,
}

/// A message [`Transports::send`] could not send; its transaction should
/// fail with a transport error.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no {transport} socket on this profile")]
    NoSocket { transport: TransportKind },
    #[error("{transport} to {remote}: no open connection, and none of our own may be opened")]
    NoConnection {
        transport: TransportKind,
        remote: SocketAddr,
    },
    #[error("{transport} to {remote}: connection queue full or closed")]
    QueueClosed {
        transport: TransportKind,
        remote: SocketAddr,
    },
    #[error("udp to {remote}: {source}")]
    Udp {
        remote: SocketAddr,
        source: std::io::Error,
    },
}

/// The sending side, owned by the endpoint task.
pub struct Transports {
    udp: HashMap<ProfileId, Arc<UdpSocket>>,
    connections: HashMap<ConnectionId, Connection>,
    /// Latest connection per (transport, remote), for reuse by new requests.
    by_remote: HashMap<(TransportKind, SocketAddr), ConnectionId>,
    /// Connections we are opening, until they report up (or failed).
    connecting: HashMap<(TransportKind, SocketAddr), mpsc::Sender<Bytes>>,
    /// Per profile: how to read what our own connections receive.
    outbound: HashMap<ProfileId, (ReaderSettings, mpsc::Sender<Inbound>)>,
    /// Peers we may open TLS to, by (profile, address): their name and trust.
    tls_targets: HashMap<(ProfileId, SocketAddr), TlsTarget>,
    log_messages: bool,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("udp", &self.udp.len())
            .field("connections", &self.connections.len())
            .finish_non_exhaustive()
    }
}

impl Transports {
    pub fn new(log_messages: bool) -> Self {
        Self {
            udp: HashMap::new(),
            connections: HashMap::new(),
            by_remote: HashMap::new(),
            connecting: HashMap::new(),
            outbound: HashMap::new(),
            tls_targets: HashMap::new(),
            log_messages,
        }
    }

    pub fn add_udp(&mut self, profile: ProfileId, socket: Arc<UdpSocket>) {
        self.udp.entry(profile).or_insert(socket);
    }

    /// Lets the profile open connections of its own (TCP always; TLS to
    /// the addresses given to `set_tls_target`).
    pub fn allow_outbound(
        &mut self,
        profile: ProfileId,
        settings: ReaderSettings,
        tx: mpsc::Sender<Inbound>,
    ) {
        self.outbound.entry(profile).or_insert((settings, tx));
    }

    /// TLS connections the profile opens to `address` verify `target`'s name.
    pub fn set_tls_target(&mut self, profile: ProfileId, address: SocketAddr, target: TlsTarget) {
        self.tls_targets.insert((profile, address), target);
    }

    pub fn connection_up(
        &mut self,
        id: ConnectionId,
        transport: TransportKind,
        remote: SocketAddr,
        writer: mpsc::Sender<Bytes>,
    ) {
        self.by_remote.insert((transport, remote), id);
        self.connecting.remove(&(transport, remote));
        self.connections.insert(
            id,
            Connection {
                writer,
                remote,
                transport,
            },
        );
    }

    pub fn connection_down(&mut self, id: ConnectionId) {
        if let Some(c) = self.connections.remove(&id) {
            if self.by_remote.get(&(c.transport, c.remote)) == Some(&id) {
                self.by_remote.remove(&(c.transport, c.remote));
            }
        }
    }

    /// A connection of our own failed: the next message opens a new one.
    pub fn connect_failed(&mut self, transport: TransportKind, remote: SocketAddr) {
        if self
            .connecting
            .get(&(transport, remote))
            .is_some_and(|w| w.is_closed())
        {
            self.connecting.remove(&(transport, remote));
        }
    }

    /// Sends one message. Streams: the named connection, else any open one to
    /// the same peer, else a new connection of our own (TCP; TLS to a
    /// registered peer). An error means the message did not leave (a
    /// connection that fails later reports its queue in `ConnectFailed`).
    pub fn send(&mut self, destination: &Destination, bytes: Bytes) -> Result<(), SendError> {
        if self.log_messages {
            tracing::info!(target: "sip_trace", "send {} bytes to {}/{}:\n{}", bytes.len(), destination.transport, destination.remote, String::from_utf8_lossy(&bytes));
        }
        let kind = destination.transport;
        let remote = destination.remote;
        if kind == TransportKind::Udp {
            let socket = self
                .udp
                .get(&destination.profile)
                .ok_or(SendError::NoSocket { transport: kind })?;
            return match socket.try_send_to(&bytes, remote) {
                Ok(_) => Ok(()),
                // A full socket buffer is congestion, not an unreachable
                // peer: the transaction's retransmissions cover it.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    tracing::warn!(%remote, "udp send buffer full, datagram dropped");
                    Ok(())
                }
                Err(source) => Err(SendError::Udp { remote, source }),
            };
        }
        let conn = destination
            .connection
            .and_then(|id| self.connections.get(&id))
            .or_else(|| {
                self.by_remote
                    .get(&(kind, remote))
                    .and_then(|id| self.connections.get(id))
            });
        let writer = match conn {
            Some(c) => c.writer.clone(),
            // A browser does not listen: a WebSocket that closed is gone.
            None if kind.is_websocket() => {
                return Err(SendError::NoConnection {
                    transport: kind,
                    remote,
                })
            }
            None => match self.connecting.get(&(kind, remote)) {
                Some(w) if !w.is_closed() => w.clone(),
                _ => {
                    let tls = match kind {
                        TransportKind::Tls => Some(
                            self.tls_targets
                                .get(&(destination.profile, remote))
                                .cloned()
                                .ok_or(SendError::NoConnection {
                                    transport: kind,
                                    remote,
                                })?,
                        ),
                        _ => None,
                    };
                    let (s, tx) =
                        self.outbound
                            .get(&destination.profile)
                            .ok_or(SendError::NoConnection {
                                transport: kind,
                                remote,
                            })?;
                    let w = stream::connect_stream(remote, tls, s.clone(), tx.clone());
                    self.connecting.insert((kind, remote), w.clone());
                    w
                }
            },
        };
        writer.try_send(bytes).map_err(|_| SendError::QueueClosed {
            transport: kind,
            remote,
        })
    }
}
