//! Stream transports (TCP and TLS): accept, frame, keep alive, close when idle.
//! The accept loop and its caps serve the WebSocket listeners too
//! (`websocket.rs`).
//!
//! Each connection is one task that owns both halves: it reads and frames
//! (§18.3), answers RFC 5626 double-CRLF pings with a CRLF, writes what the
//! endpoint queues for it, and closes after `idle_timeout` with no traffic.
//! An inbound connection holds a place under the profile's
//! [`ConnectionLimits`] for its whole life and is closed at once when there
//! is none; a connection never holds more than `max_pending_bytes` (+1) of
//! a message not yet complete: reads are sized to what is left of that cap.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::limits::Permit;
use super::tls_client::TlsTarget;
use super::{announce_connection, deliver_frame, Inbound, ReaderSettings};
use crate::net::TransportKind;
use crate::sip::{Frame, StreamFramer};

/// Messages queued for one connection before the endpoint starts dropping.
pub(super) const WRITER_QUEUE: usize = 1024;

/// How long an outbound connection (TCP connect and TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an inbound TLS handshake may take (and, on a `wss` listener,
/// the TLS and WebSocket handshakes together).
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long accepting pauses after an error (out of file descriptors, say):
/// retrying at once would spin a core while nothing can be accepted.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Binds a TCP (or, with an acceptor, TLS) listener and starts accepting.
pub async fn bind_stream(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let limits = settings.limits.clone();
    spawn_accept_loop(listener, limits, move |tcp, remote, permit| {
        let (settings, tx, tls) = (settings.clone(), tx.clone(), tls.clone());
        async move {
            match tls {
                None => {
                    run_connection(
                        tcp,
                        TransportKind::Tcp,
                        local,
                        remote,
                        settings,
                        tx,
                        None,
                        Some(permit),
                    )
                    .await
                }
                Some(acceptor) => {
                    // A peer that connects and never completes the
                    // handshake holds its place for seconds, not for
                    // as long as an idle connection may stay.
                    let bound = settings.idle_timeout.min(HANDSHAKE_TIMEOUT);
                    let handshake = tokio::time::timeout(bound, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            run_connection(
                                stream,
                                TransportKind::Tls,
                                local,
                                remote,
                                settings,
                                tx,
                                None,
                                Some(permit),
                            )
                            .await
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "tls handshake failed")
                        }
                        Err(_) => tracing::info!(%remote, "tls handshake timed out"),
                    }
                }
            }
        }
    });
    Ok(local)
}

/// The accept loop every inbound stream listener shares (TCP, TLS, WS,
/// WSS): each accepted connection takes a place under the profile's
/// `limits` or is closed at once, then `serve` runs it on a task of its
/// own, holding the place until it ends.
pub(super) fn spawn_accept_loop<F, Fut>(
    listener: TcpListener,
    limits: std::sync::Arc<super::ConnectionLimits>,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, Permit) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        // Refusals of a burst not logged yet: logged once the interval allows.
        let mut unlogged = false;
        loop {
            let flush = tokio::time::sleep(super::limits::REPORT_EVERY);
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = flush, if unlogged => {
                    unlogged = limits.flush_report(std::time::Instant::now());
                    continue;
                }
            };
            let (tcp, remote) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            // Past a cap the connection is closed before it costs anything
            // more (the refusal is counted and logged by the limits).
            let permit = match limits.try_acquire(remote.ip(), std::time::Instant::now()) {
                Ok(p) => p,
                Err(_) => {
                    drop(tcp);
                    unlogged = true;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(serve(tcp, remote, permit));
        }
    });
}

/// Opens a connection of our own (to a trunk, or a phone whose connection
/// closed): TCP, or TLS with `tls` (handshake and certificate check
/// included). Messages sent before it is up wait in the returned queue; when
/// the connection cannot be made, those still queued go back to the endpoint
/// task in [`Inbound::ConnectFailed`] so that their transactions fail at
/// once (RFC 3261 §17.1.4) instead of timing out.
pub fn connect_stream(
    remote: SocketAddr,
    tls: Option<TlsTarget>,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
) -> mpsc::Sender<Bytes> {
    let (writer_tx, mut writer_rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
    let writer = writer_tx.clone();
    tokio::spawn(async move {
        let transport = if tls.is_some() {
            TransportKind::Tls
        } else {
            TransportKind::Tcp
        };
        let connect = async {
            let tcp = TcpStream::connect(remote)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let local = tcp.local_addr().unwrap_or(remote);
            match &tls {
                None => Ok((local, Err(tcp))),
                Some(t) => t
                    .connector
                    .connect(t.server_name.clone(), tcp)
                    .await
                    .map(|s| (local, Ok(s)))
                    .map_err(|e| format!("tls handshake with {:?}: {e}", t.server_name)),
            }
        };
        let reason = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(Ok((local, Err(tcp)))) => {
                let writer = Some((writer, writer_rx));
                return run_connection(tcp, transport, local, remote, settings, tx, writer, None)
                    .await;
            }
            Ok(Ok((local, Ok(stream)))) => {
                let writer = Some((writer, writer_rx));
                return run_connection(
                    stream, transport, local, remote, settings, tx, writer, None,
                )
                .await;
            }
            Ok(Err(reason)) => reason,
            Err(_) => "timed out".to_string(),
        };
        tracing::warn!(%remote, %transport, %reason, "outbound connection failed");
        writer_rx.close();
        let mut unsent = Vec::new();
        while let Ok(bytes) = writer_rx.try_recv() {
            unsent.push(bytes);
        }
        let _ = tx
            .send(Inbound::ConnectFailed {
                profile: settings.profile,
                transport,
                remote,
                unsent,
            })
            .await;
    });
    writer_tx
}

#[allow(clippy::too_many_arguments)]
async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    transport: TransportKind,
    local: SocketAddr,
    remote: SocketAddr,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
    writer: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
    // Held until the connection ends: its place under the profile's caps.
    permit: Option<Permit>,
) {
    let (writer_tx, mut writer_rx) = writer.unwrap_or_else(|| mpsc::channel::<Bytes>(WRITER_QUEUE));
    let Some((id, source)) =
        announce_connection(&tx, transport, local, remote, &settings, writer_tx).await
    else {
        return;
    };
    tracing::debug!(%remote, %transport, connection = id.0, "connection open");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let cap = settings.max_pending_bytes;
    let mut framer = StreamFramer::new(cap);
    let mut buf = vec![0u8; 16 * 1024];
    let mut deadline = Instant::now() + settings.idle_timeout;
    let reason = loop {
        // Never read past one byte over the cap: whatever a peer sends, the
        // connection holds at most that much of an incomplete message (the
        // framer refuses the byte over).
        let room = framer.room().min(buf.len());
        tokio::select! {
            read = rd.read(buf.get_mut(..room).unwrap_or_default()) => {
                let n = match read {
                    Ok(0) => break "closed by peer",
                    Ok(n) => n,
                    Err(_) => break "read error",
                };
                deadline = Instant::now() + settings.idle_timeout;
                framer.push(buf.get(..n).unwrap_or_default());
                let mut failed = None;
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(bytes))) => {
                            if !deliver_frame(&bytes, source, &settings, &tx).await {
                                failed = Some("endpoint gone");
                                break;
                            }
                        }
                        Ok(Some(Frame::Ping)) => {
                            if wr.write_all(b"\r\n").await.is_err() {
                                failed = Some("write error");
                                break;
                            }
                        }
                        Ok(Some(Frame::Pong)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::info!(%remote, error = %e, "stream framing lost");
                            failed = Some("framing error");
                            break;
                        }
                    }
                }
                if let Some(r) = failed {
                    break r;
                }
            }
            out = writer_rx.recv() => {
                let Some(bytes) = out else { break "endpoint gone" };
                if wr.write_all(&bytes).await.is_err() {
                    break "write error";
                }
                deadline = Instant::now() + settings.idle_timeout;
            }
            _ = tokio::time::sleep_until(deadline) => break "idle timeout",
        }
    };
    tracing::debug!(%remote, connection = id.0, reason, "connection closed");
    // The place is free before the peer can see the close: a peer that
    // waits for our FIN may connect again at once.
    drop(permit);
    let _ = wr.shutdown().await;
    let _ = tx.send(Inbound::ConnectionDown { id }).await;
}
