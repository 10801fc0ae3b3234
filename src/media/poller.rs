//! A minimal level-triggered epoll loop and an eventfd waker for the relay
//! thread; with [`super::mmsg`] the only `unsafe` code in the relay.
//!
//! Why not tokio (or mio) for the relay: both register sockets edge-triggered,
//! so after every datagram a task must call `recv` again until it returns
//! `WouldBlock` before it may wait; at 50 packets/s per socket nearly every
//! readiness carries one packet, so that is a wasted syscall per packet, plus
//! a task wake-up. Level-triggered epoll lets the loop read exactly one
//! datagram per reported socket: one `epoll_wait` for a whole batch of
//! sockets, then one `recvfrom` and one `send` per packet, or a batch
//! when the socket has queued several (see [`super::engine`]).
//!
//! Linux only, like the rest of the switch's deployment targets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::time::Duration;

/// An epoll instance.
#[derive(Debug)]
pub struct Poller {
    epfd: OwnedFd,
}

/// Buffer for the readiness reports of one `wait`.
#[derive(Debug)]
pub struct Events {
    buf: Vec<libc::epoll_event>,
    len: usize,
}

impl Events {
    pub fn with_capacity(n: usize) -> Self {
        Events {
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)],
            len: 0,
        }
    }

    /// How many descriptors the last `wait` reported.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the last `wait` reported nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many reports one `wait` can take.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// The tokens of the ready file descriptors.
    pub fn tokens(&self) -> impl Iterator<Item = u64> + '_ {
        // A by-value read: the struct is packed on x86-64, so no reference.
        self.buf[..self.len].iter().map(|e| e.u64)
    }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

impl Poller {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned descriptor is owned below.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Poller {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            epfd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watch `fd` for readability (level-triggered), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` outlives the call; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    /// Stop watching `fd` (closing it also does, this is for clarity).
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as in `add`.
        check(unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) })?;
        Ok(())
    }

    /// Wait for readiness or `timeout` (None: forever). An interrupted wait
    /// returns no events.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        let ms = match timeout {
            None => -1,
            // Round up so a 0.4 ms deadline does not spin at 0 ms.
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: the buffer is valid for `buf.len()` entries.
        let n = unsafe {
            libc::epoll_wait(
                self.epfd.as_raw_fd(),
                events.buf.as_mut_ptr(),
                events.buf.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            events.len = 0;
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(0);
            }
            return Err(err);
        }
        events.len = n as usize;
        Ok(events.len)
    }
}

/// Dissolve a UDP socket's association made by `connect` (connect to
/// `AF_UNSPEC`, which std does not offer), so it receives from anyone again.
pub fn disconnect(fd: RawFd) -> io::Result<()> {
    // SAFETY: sockaddr with family AF_UNSPEC, valid for its length.
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = std::mem::size_of::<libc::sockaddr>() as libc::socklen_t;
    // SAFETY: `addr` is valid for `len` bytes for the call's duration.
    check(unsafe { libc::connect(fd, &addr, len) })?;
    Ok(())
}

/// Wakes the relay thread from another thread (an eventfd in its epoll set).
///
/// Wakes coalesce: while one is pending (written, not yet taken by the relay
/// thread's [`Waker::drain`]), another costs no system call. The relay thread
/// drains the waker before it reads its command queue, so a command queued
/// while a wake was pending is still seen.
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
    pending: AtomicBool,
}

impl Waker {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the descriptor is owned below.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        Ok(Waker {
            // SAFETY: fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            pending: AtomicBool::new(false),
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Make the eventfd readable, unless a wake is already pending. Never
    /// blocks (a saturated counter is already readable, so a failed write
    /// loses nothing).
    pub fn wake(&self) {
        // The fences pair with `drain`'s: either this sees the flag cleared
        // and writes, or the relay thread sees the command queued before it.
        fence(Ordering::SeqCst);
        if self.pending.swap(true, Ordering::SeqCst) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64.
        unsafe {
            libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    /// Reset the eventfd after a wake-up; call before reading the queue the
    /// wake was for.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64.
        unsafe {
            libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8);
        }
        self.pending.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn reports_readable_socket_and_waker() {
        let p = Poller::new().unwrap();
        let w = Waker::new().unwrap();
        p.add(w.raw_fd(), 1).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        p.add(a.as_raw_fd(), 2).unwrap();
        let mut ev = Events::with_capacity(8);
        assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
        b.send_to(b"x", a.local_addr().unwrap()).unwrap();
        w.wake();
        let mut seen = Vec::new();
        while seen.len() < 2 {
            p.wait(&mut ev, Some(Duration::from_secs(5))).unwrap();
            seen.extend(ev.tokens());
            seen.sort();
            seen.dedup();
        }
        assert_eq!(seen, vec![1, 2]);
        w.drain();
        let mut buf = [0u8; 8];
        a.recv_from(&mut buf).unwrap();
        p.delete(a.as_raw_fd()).unwrap();
        assert_eq!(p.wait(&mut ev, Some(Duration::ZERO)).unwrap(), 0);
    }
}
