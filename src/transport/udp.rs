//! UDP: datagrams are whole messages.
//!
//! A listener is a group of sockets bound to the same address with
//! `SO_REUSEPORT`, one per endpoint worker, and each worker reads its own
//! socket in its own loop ([`UdpReader`]): a message whose Call-ID it owns
//! is handled where it was read, without a hand-off between threads; any
//! other is passed to its owner. The kernel picks a socket by the flow
//! (source and destination address), so the datagrams of one peer are read
//! by one worker, in order, and a dialog's messages — all read by that
//! worker, then either handled by it or queued to one owner — keep theirs.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use tokio::io::ReadBuf;
use tokio::net::UdpSocket;

use super::{classify, Inbound, ReaderSettings};
use crate::net::{Source, TransportKind};

/// Receive buffer asked for each SIP UDP socket: bursts (a load generator's
/// tick, a restart's re-registrations) wait in the kernel rather than being
/// dropped while the reader is descheduled. The kernel caps it at
/// `net.core.rmem_max`.
const RECEIVE_BUFFER: usize = 8 * 1024 * 1024;

/// One listener's sockets: `count` sockets on one address (`SO_REUSEPORT`),
/// and the address bound (the port the OS chose, if 0 was asked).
pub fn bind_udp_group(
    address: SocketAddr,
    count: usize,
) -> std::io::Result<(Vec<Arc<UdpSocket>>, SocketAddr)> {
    let first = bind_reuseport(address)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count.max(1) {
        sockets.push(bind_reuseport(local)?);
    }
    let sockets = sockets
        .into_iter()
        .map(|s| UdpSocket::from_std(s).map(Arc::new))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((sockets, local))
}

/// A UDP socket with `SO_REUSEPORT`, non-blocking, its receive buffer grown.
fn bind_reuseport(address: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use std::os::fd::FromRawFd;
    let domain = match address {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket(2); the descriptor is owned by the UdpSocket below.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let socket = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
    set_int_option(&socket, libc::SO_REUSEPORT, 1)?;
    if set_int_option(&socket, libc::SO_RCVBUF, RECEIVE_BUFFER as libc::c_int).is_err() {
        tracing::debug!("SO_RCVBUF not set");
    }
    let (storage, len) = sockaddr(address);
    // SAFETY: `storage` holds a sockaddr of `len` bytes for this family.
    let rc = unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(socket)
}

fn set_int_option(
    socket: &std::net::UdpSocket,
    option: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket descriptor, a pointer to a c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn sockaddr(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match address {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// The UDP sockets one worker reads (one per UDP listener) and its buffer.
pub struct UdpReader {
    sockets: Vec<(Arc<UdpSocket>, ReaderSettings, SocketAddr)>,
    buf: Vec<u8>,
}

impl UdpReader {
    pub fn new() -> Self {
        UdpReader {
            sockets: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// Adds a listener's socket (this worker's of its group).
    pub fn add(&mut self, socket: Arc<UdpSocket>, settings: ReaderSettings, local: SocketAddr) {
        // One byte over the limit tells an oversized datagram from a full one.
        let want = settings.max_message_size + 1;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        self.sockets.push((socket, settings, local));
    }

    /// The next message read on any socket (pending forever without any).
    /// Keep-alives and unparsable datagrams are consumed here.
    pub async fn next(&mut self) -> Inbound {
        loop {
            let (n, remote, i) = poll_fn(|cx| {
                if self.sockets.is_empty() {
                    return Poll::Pending;
                }
                for (i, (socket, _, _)) in self.sockets.iter().enumerate() {
                    let mut rb = ReadBuf::new(&mut self.buf);
                    match socket.poll_recv_from(cx, &mut rb) {
                        Poll::Ready(Ok(remote)) => {
                            return Poll::Ready((rb.filled().len(), remote, i))
                        }
                        // ICMP port-unreachable surfaces here on some systems: not fatal.
                        Poll::Ready(Err(e)) => {
                            tracing::debug!(error = %e, "udp recv error");
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            })
            .await;
            if let Some(inbound) = self.parse(i, n, remote) {
                return inbound;
            }
        }
    }

    /// A message already waiting on a socket, if any (batching under load).
    pub fn try_next(&mut self) -> Option<Inbound> {
        for i in 0..self.sockets.len() {
            while let Ok((n, remote)) = self.sockets[i].0.try_recv_from(&mut self.buf) {
                if let Some(inbound) = self.parse(i, n, remote) {
                    return Some(inbound);
                }
            }
        }
        None
    }

    fn parse(&self, i: usize, n: usize, remote: SocketAddr) -> Option<Inbound> {
        let (_, settings, local) = &self.sockets[i];
        let data = &self.buf[..n];
        // RFC 5626 keep-alives on UDP are bare CRLFs: nothing to parse.
        if data.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return None;
        }
        let source = Source {
            profile: settings.profile,
            transport: TransportKind::Udp,
            local: *local,
            remote,
            connection: None,
        };
        classify(data, source, settings)
    }
}

impl Default for UdpReader {
    fn default() -> Self {
        Self::new()
    }
}
