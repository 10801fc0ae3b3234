//! UDP: one reader task per socket; datagrams are whole messages.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::{deliver_datagram, InboundFanout, ReaderSettings};
use crate::net::{Source, TransportKind};

/// Receive buffer asked for each SIP UDP socket: bursts (a load generator's
/// tick, a restart's re-registrations) wait in the kernel rather than being
/// dropped while the reader is descheduled. The kernel caps it at
/// `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// Binds a UDP socket and starts its reader. Returns the socket (for sending) and its bound address.
pub async fn bind_udp(
    address: SocketAddr,
    settings: ReaderSettings,
    tx: InboundFanout,
) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let socket = Arc::new(UdpSocket::bind(address).await?);
    grow_receive_buffer(&socket);
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
            let Some(data) = buf.get(..n) else {
                continue;
            };
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

/// Asks for [`RECEIVE_BUFFER`]; the kernel grants what `rmem_max` allows.
fn grow_receive_buffer(socket: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let size = RECEIVE_BUFFER as libc::c_int;
    // SAFETY: a valid socket descriptor, a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "SO_RCVBUF not set");
    }
}
