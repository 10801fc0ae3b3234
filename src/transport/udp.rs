//! UDP: one reader task per socket; datagrams are whole messages.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{deliver_datagram, Inbound, ReaderSettings};
use crate::net::{Source, TransportKind};

/// Binds a UDP socket and starts its reader. Returns the socket (for sending) and its bound address.
pub async fn bind_udp(
    address: SocketAddr,
    settings: ReaderSettings,
    tx: mpsc::Sender<Inbound>,
) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let socket = Arc::new(UdpSocket::bind(address).await?);
    let local = socket.local_addr()?;
    let reader = socket.clone();
    tokio::spawn(async move {
        // One byte over the limit tells an oversized datagram from a full one.
        let mut buf = vec![0u8; settings.max_message_size + 1];
        loop {
            let (n, remote) = match reader.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port-unreachable surfaces here on some systems: not fatal.
                    tracing::debug!(error = %e, "udp recv error");
                    continue;
                }
            };
            let source = Source {
                profile: settings.profile,
                transport: TransportKind::Udp,
                local,
                remote,
                connection: None,
            };
            let data = &buf[..n];
            // RFC 5626 keep-alives on UDP are bare CRLFs: nothing to parse.
            if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                continue;
            }
            if !deliver_datagram(data, source, &settings, &tx) {
                break;
            }
        }
    });
    Ok((socket, local))
}
