//! Datagram I/O for the relay thread over buffers allocated once:
//! [`Batch::recv`] takes up to [`BATCH`] datagrams from one socket with a
//! single `recvmmsg`, [`Batch::recv_one`] one with `recvfrom`; the relay
//! rewrites them in place and marks the ones to forward ([`Batch::queue`]),
//! and [`Batch::flush`] sends those through the peer's socket, with one
//! `sendmmsg`, or a plain `send`/`sendto` for a single datagram. With
//! [`super::poller`] the only `unsafe` in the relay.
//!
//! One batch serves one source socket at a time: a leg forwards to exactly
//! one peer, so the datagrams of one read all leave through one socket and
//! need no regrouping. When to read one and when a batch is the engine's
//! choice (see [`super::engine`]).

use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per `recvmmsg`/`sendmmsg`.
pub const BATCH: usize = 32;
/// Datagrams larger than this are truncated by the kernel and reported as
/// such (G.711 at 20 ms is 172 bytes; 1500 covers any sane ptime).
pub const BUF_LEN: usize = 2048;

/// Where a flushed batch goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The socket is connected: no address per datagram.
    Connected,
    To(SocketAddr),
}

/// One received datagram, borrowed from the batch.
#[derive(Debug)]
pub struct Datagram<'a> {
    pub bytes: &'a mut [u8],
    pub from: Option<SocketAddr>,
    /// Larger than [`BUF_LEN`]; `bytes` holds only its beginning.
    pub truncated: bool,
}

/// What a flush sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub packets: u64,
    pub bytes: u64,
}

/// Buffers and message headers for one socket's worth of datagrams,
/// allocated once for the relay's lifetime (about 75 KiB).
#[derive(Debug)]
pub struct Batch {
    bufs: [[u8; BUF_LEN]; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    iov: [libc::iovec; BATCH],
    hdrs: [libc::mmsghdr; BATCH],
    /// Datagrams held from the last `recv`.
    len: usize,
    /// Indexes of datagrams to send, in order.
    queued: [u8; BATCH],
    n_queued: usize,
    send_iov: [libc::iovec; BATCH],
    send_hdrs: [libc::mmsghdr; BATCH],
    dest: libc::sockaddr_storage,
}

impl Batch {
    pub fn new() -> Box<Self> {
        let layout = std::alloc::Layout::new::<Batch>();
        // SAFETY: the layout is Batch's (not zero-sized); every field is
        // plain data (bytes, integers, C structs of integers and raw
        // pointers) for which all-zero is a valid value; the Box takes
        // ownership of an allocation made with the global allocator.
        unsafe {
            let p = std::alloc::alloc_zeroed(layout).cast::<Batch>();
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        }
    }

    /// Receive up to [`BATCH`] datagrams from `fd` without blocking; the
    /// earlier contents and queue are dropped. `WouldBlock` when none waited.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        self.n_queued = 0;
        // Pointers are rebuilt from `&mut self` on every call (a few dozen
        // stores) rather than kept across calls, so none outlives a borrow.
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: BUF_LEN,
            };
            let h = &mut self.hdrs[i];
            h.msg_hdr.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_hdr.msg_iov = &mut self.iov[i];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_hdr.msg_flags = 0;
            h.msg_len = 0;
        }
        // SAFETY: every header points at buffers of `self` that live across
        // the call; the kernel writes at most `iov_len`/`msg_namelen` bytes.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.len = (n as usize).min(BATCH);
        Ok(self.len)
    }

    /// Receive one datagram with a plain `recvfrom`: when the socket holds
    /// one, cheaper than `recvmmsg`, whose `msghdr` path costs more per
    /// datagram and which tries again to find the queue empty.
    pub fn recv_one(&mut self, fd: RawFd) -> io::Result<usize> {
        self.len = 0;
        self.n_queued = 0;
        let mut namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: the buffer and the address storage belong to `self` and
        // live across the call; the kernel writes at most their lengths.
        // With MSG_TRUNC a longer datagram reports its real length.
        let n = unsafe {
            libc::recvfrom(
                fd,
                self.bufs[0].as_mut_ptr().cast(),
                BUF_LEN,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut self.names[0] as *mut libc::sockaddr_storage).cast(),
                &mut namelen,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let real = n as usize;
        let h = &mut self.hdrs[0];
        h.msg_len = real.min(BUF_LEN) as libc::c_uint;
        h.msg_hdr.msg_flags = if real > BUF_LEN { libc::MSG_TRUNC } else { 0 };
        h.msg_hdr.msg_namelen = namelen;
        self.len = 1;
        Ok(1)
    }

    /// Datagram `i` of the last `recv`.
    pub fn get(&mut self, i: usize) -> Option<Datagram<'_>> {
        if i >= self.len {
            return None;
        }
        let h = &self.hdrs[i];
        let len = (h.msg_len as usize).min(BUF_LEN);
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = decode(&self.names[i], h.msg_hdr.msg_namelen);
        Some(Datagram {
            bytes: &mut self.bufs[i][..len],
            from,
            truncated,
        })
    }

    /// Mark datagram `i` (as rewritten in place) for the next `flush`.
    pub fn queue(&mut self, i: usize) {
        if i < self.len && self.n_queued < BATCH {
            self.queued[self.n_queued] = i as u8;
            self.n_queued += 1;
        }
    }

    /// Send the queued datagrams through `fd` and empty the queue. A datagram
    /// the kernel refuses (full buffer, a late ICMP error) is dropped, as a
    /// failed `send` would drop it, and the rest still go.
    pub fn flush(&mut self, fd: RawFd, target: Target) -> Sent {
        let n = std::mem::take(&mut self.n_queued);
        if n == 0 {
            return Sent::default();
        }
        let (name, namelen) = match target {
            Target::Connected => (std::ptr::null_mut::<libc::c_void>(), 0),
            Target::To(addr) => {
                let len = encode(addr, &mut self.dest);
                ((&mut self.dest as *mut libc::sockaddr_storage).cast(), len)
            }
        };
        if n == 1 {
            // One datagram: `sendto` (a plain `send` when connected) skips
            // the msghdr copy `sendmmsg` pays.
            let i = usize::from(self.queued[0]);
            let len = (self.hdrs[i].msg_len as usize).min(BUF_LEN);
            // SAFETY: buffer and address belong to `self`; the kernel only
            // reads `len` and `namelen` bytes of them.
            let r = unsafe {
                libc::sendto(
                    fd,
                    self.bufs[i].as_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                    name.cast(),
                    namelen,
                )
            };
            return match r {
                r if r < 0 => Sent::default(),
                r => Sent {
                    packets: 1,
                    bytes: r as u64,
                },
            };
        }
        for k in 0..n {
            let i = usize::from(self.queued[k]);
            self.send_iov[k] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: (self.hdrs[i].msg_len as usize).min(BUF_LEN),
            };
            let h = &mut self.send_hdrs[k];
            h.msg_hdr.msg_name = name;
            h.msg_hdr.msg_namelen = namelen;
            h.msg_hdr.msg_iov = &mut self.send_iov[k];
            h.msg_hdr.msg_iovlen = 1;
            h.msg_len = 0;
        }
        let mut sent = Sent::default();
        let mut k = 0;
        while k < n {
            // SAFETY: headers `k..n` point at buffers and an address of
            // `self` that live across the call; the kernel only reads them
            // (and writes `msg_len`).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_hdrs[k..].as_mut_ptr(),
                    (n - k) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r <= 0 {
                k += 1; // this one is lost; the error was consumed
                continue;
            }
            for h in &self.send_hdrs[k..k + r as usize] {
                sent.packets += 1;
                sent.bytes += u64::from(h.msg_len);
            }
            k += r as usize;
        }
        sent
    }
}

fn decode(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    match libc::c_int::from(s.ss_family) {
        libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for it.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn encode(addr: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for a
            // sockaddr_in, and all-zero is a valid one.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            s.sin_family = libc::AF_INET as libc::sa_family_t;
            s.sin_port = a.port().to_be();
            s.sin_addr = libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            };
            s.sin_zero = [0; 8];
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let s =
                unsafe { &mut *(out as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            s.sin6_port = a.port().to_be();
            s.sin6_flowinfo = a.flowinfo();
            s.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            s.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn addresses_round_trip() {
        // SAFETY: all-zero is a valid sockaddr_storage.
        let mut s: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        for a in [
            "192.0.2.7:5004".parse::<SocketAddr>().unwrap(),
            "[2001:db8::1]:40000".parse().unwrap(),
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 3, 2)),
        ] {
            let len = encode(a, &mut s);
            assert_eq!(decode(&s, len), Some(a));
        }
        assert_eq!(decode(&s, 4), None, "too short for its family");
    }

    /// Receive until `want` datagrams have come (each `recv` refills the
    /// batch, so `each` sees every batch), at most five seconds.
    fn recv_all(b: &mut Batch, fd: RawFd, want: usize, mut each: impl FnMut(&mut Batch, usize)) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut got = 0;
        while got < want {
            assert!(
                std::time::Instant::now() < deadline,
                "datagrams within the wait"
            );
            match b.recv(fd) {
                Ok(n) => {
                    assert!(n <= BATCH);
                    each(b, n);
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("recvmmsg: {e}"),
            }
        }
        assert_eq!(got, want);
    }

    #[test]
    fn receives_batches_and_forwards_the_queued_ones() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut b = Batch::new();
        let e = b.recv(relay.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        for i in 0..5u8 {
            phone
                .send_to(&[i; 10], relay.local_addr().unwrap())
                .unwrap();
        }
        let (fd, to) = (relay.as_raw_fd(), Target::To(sink.local_addr().unwrap()));
        let mut next = 0u8;
        let mut sent = Sent::default();
        recv_all(&mut b, fd, 5, |b, n| {
            for i in 0..n {
                let d = b.get(i).unwrap();
                assert_eq!(d.from, Some(phone.local_addr().unwrap()));
                assert!(!d.truncated);
                assert_eq!(d.bytes, &[next; 10]);
                d.bytes[0] = 0xEE; // rewritten in place
                if next.is_multiple_of(2) {
                    b.queue(i);
                }
                next += 1;
            }
            assert!(b.get(n).is_none());
            let s = b.flush(fd, to);
            sent.packets += s.packets;
            sent.bytes += s.bytes;
        });
        assert_eq!(
            sent,
            Sent {
                packets: 3,
                bytes: 30
            }
        );
        let mut buf = [0u8; 64];
        for i in [0u8, 2, 4] {
            let n = sink.recv(&mut buf).unwrap();
            assert_eq!(n, 10);
            assert_eq!((buf[0], buf[1]), (0xEE, i));
        }
        // The queue is empty after a flush.
        assert_eq!(b.flush(fd, Target::Connected), Sent::default());
    }

    #[test]
    fn oversized_datagrams_are_flagged_and_connected_sends_work() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        phone
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        phone
            .send_to(&[7u8; BUF_LEN + 100], relay.local_addr().unwrap())
            .unwrap();
        relay.connect(phone.local_addr().unwrap()).unwrap();
        let mut b = Batch::new();
        recv_all(&mut b, relay.as_raw_fd(), 1, |b, _| {
            let d = b.get(0).unwrap();
            assert!(d.truncated);
            assert_eq!(d.bytes.len(), BUF_LEN);
            b.queue(0);
            let sent = b.flush(relay.as_raw_fd(), Target::Connected);
            assert_eq!(sent.packets, 1);
        });
        let mut buf = [0u8; BUF_LEN + 200];
        assert_eq!(phone.recv(&mut buf).unwrap(), BUF_LEN);
    }

    #[test]
    fn a_batch_holds_at_most_batch_datagrams() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..BATCH + 3 {
            phone.send_to(b"x", relay.local_addr().unwrap()).unwrap();
        }
        let mut b = Batch::new();
        // recv_all asserts each batch is at most BATCH and the total exact.
        recv_all(&mut b, relay.as_raw_fd(), BATCH + 3, |_, _| {});
    }

    #[test]
    fn recv_one_takes_a_single_datagram_and_flags_oversize() {
        let relay = UdpSocket::bind("127.0.0.1:0").unwrap();
        let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let to = relay.local_addr().unwrap();
        phone.send_to(&[1u8; 20], to).unwrap();
        phone.send_to(&[2u8; BUF_LEN + 1], to).unwrap();
        let mut b = Batch::new();
        let fd = relay.as_raw_fd();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "datagrams within the wait"
            );
            match b.recv_one(fd) {
                Ok(n) => {
                    assert_eq!(n, 1);
                    assert!(b.get(1).is_none());
                    let d = b.get(0).unwrap();
                    assert_eq!(d.from, Some(phone.local_addr().unwrap()));
                    seen.push((d.bytes[0], d.bytes.len(), d.truncated));
                    // A single queued datagram leaves through `sendto`.
                    b.queue(0);
                    let sent = b.flush(fd, Target::To(sink.local_addr().unwrap()));
                    assert_eq!(sent.packets, 1);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("recvfrom: {e}"),
            }
        }
        assert_eq!(seen, vec![(1, 20, false), (2, BUF_LEN, true)]);
        let mut buf = [0u8; 64];
        assert_eq!(sink.recv(&mut buf).unwrap(), 20);
    }
}
