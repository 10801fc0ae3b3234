//! Stream transports (TCP and TLS): accept, frame, keep alive, close when idle.
//!
//! Each connection is one task that owns both halves: it reads and frames
//! (§18.3), answers RFC 5626 double-CRLF pings with a CRLF, writes what the
//! endpoint queues for it, and closes after `idle_timeout` with no traffic.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::{deliver_frame, next_connection_id, Inbound, ReaderSettings};
use crate::net::{Source, TransportKind};
use crate::sip::{Frame, StreamFramer};

/// Messages queued for one connection before the endpoint starts dropping.
const WRITER_QUEUE: usize = 1024;

/// Binds a TCP (or, with an acceptor, TLS) listener and starts accepting.
pub async fn bind_stream(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (settings, tx, tls) = (settings.clone(), tx.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => {
                        run_connection(tcp, TransportKind::Tcp, local, remote, settings, tx, None)
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(stream) => {
                            run_connection(
                                stream,
                                TransportKind::Tls,
                                local,
                                remote,
                                settings,
                                tx,
                                None,
                            )
                            .await
                        }
                        Err(e) => tracing::info!(%remote, error = %e, "tls handshake failed"),
                    },
                }
            });
        }
    });
    Ok(local)
}

/// Opens a TCP connection of our own (to a trunk, or a phone whose
/// connection closed). Messages sent before it is up wait in the returned
/// queue; a connection that cannot be made drops them (the transaction
/// times out and reports it).
pub fn connect_stream(
    remote: SocketAddr,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
) -> mpsc::Sender<Bytes> {
    let (writer_tx, writer_rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
    let writer = writer_tx.clone();
    tokio::spawn(async move {
        let connect = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(remote),
        );
        match connect.await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                let local = tcp.local_addr().unwrap_or(remote);
                run_connection(
                    tcp,
                    TransportKind::Tcp,
                    local,
                    remote,
                    settings,
                    tx,
                    Some((writer, writer_rx)),
                )
                .await
            }
            Ok(Err(e)) => tracing::warn!(%remote, error = %e, "tcp connect failed"),
            Err(_) => tracing::warn!(%remote, "tcp connect timed out"),
        }
    });
    writer_tx
}

async fn run_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    transport: TransportKind,
    local: SocketAddr,
    remote: SocketAddr,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
    writer: Option<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)>,
) {
    let id = next_connection_id();
    let (writer_tx, mut writer_rx) = writer.unwrap_or_else(|| mpsc::channel::<Bytes>(WRITER_QUEUE));
    if tx
        .send(Inbound::ConnectionUp {
            id,
            transport,
            remote,
            writer: writer_tx,
        })
        .await
        .is_err()
    {
        return;
    }
    tracing::debug!(%remote, %transport, connection = id.0, "connection open");
    let source = Source {
        profile: settings.profile,
        transport,
        local,
        remote,
        connection: Some(id),
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut framer = StreamFramer::new(settings.max_message_size);
    let mut buf = vec![0u8; 16 * 1024];
    let mut deadline = Instant::now() + settings.idle_timeout;
    let reason = loop {
        tokio::select! {
            read = rd.read(&mut buf) => {
                let n = match read {
                    Ok(0) => break "closed by peer",
                    Ok(n) => n,
                    Err(_) => break "read error",
                };
                deadline = Instant::now() + settings.idle_timeout;
                framer.push(&buf[..n]);
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
    let _ = wr.shutdown().await;
    let _ = tx.send(Inbound::ConnectionDown { id }).await;
}

/// Builds a TLS acceptor from PEM certificate chain and key files.
pub fn load_tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
