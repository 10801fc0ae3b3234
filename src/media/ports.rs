//! RTP port allocation: hands out even RTP ports in `[min, max]` whose RTCP
//! companion (RTP + 1) is also in range, and, once binding is enabled,
//! binds both sockets before the port is handed out.
//!
//! Allocation is round-robin from a moving cursor rather than lowest-free, so
//! a port just released is not handed out again at once: late packets of the
//! old call (or a phone still sending to it) must not leak into a new call.
//!
//! Why bind here: the port goes into SDP as soon as it is allocated, and the
//! far side starts sending to it. If the relay bound it only later and found
//! it held by another process, the call would fail after the peer had been
//! told to use it. So [`MediaPorts`] binds the RTP and RTCP sockets at
//! allocation, skips pairs another process holds, and parks the bound
//! sockets in a hand-off table keyed by their local address, from which the
//! relay takes them when it opens the leg ([`take_bound`]). The key is a
//! bound address, which the kernel makes unique within the process, so one
//! table serves every profile and every caller without coordination.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{LazyLock, Mutex};

/// Sockets bound at allocation, waiting for the relay to open their leg.
static HANDOFF: LazyLock<Mutex<HashMap<SocketAddr, (UdpSocket, UdpSocket)>>> =
    LazyLock::new(Default::default);

fn handoff() -> std::sync::MutexGuard<'static, HashMap<SocketAddr, (UdpSocket, UdpSocket)>> {
    HANDOFF.lock().unwrap_or_else(|e| e.into_inner())
}

/// The RTP and RTCP sockets bound for `local` by [`MediaPorts::allocate`],
/// if any are waiting; taking them leaves nothing behind.
pub fn take_bound(local: SocketAddr) -> Option<(UdpSocket, UdpSocket)> {
    handoff().remove(&local)
}

/// One media address's RTP ports: allocation, and binding once enabled.
#[derive(Debug, Clone)]
pub struct MediaPorts {
    pool: PortPool,
    /// Bind at allocation on this address (the relay's); `None`: allocate
    /// numbers only (the sans-IO call scenarios, which have no relay).
    bind: Option<IpAddr>,
}

impl MediaPorts {
    /// Ports of `[min, max]`, allocated without binding.
    pub fn new(min: u16, max: u16) -> Self {
        MediaPorts {
            pool: PortPool::new(min, max),
            bind: None,
        }
    }

    /// From now on, bind each port's RTP and RTCP sockets on `address` when
    /// it is allocated, skipping pairs another socket holds.
    pub fn bind_on(&mut self, address: IpAddr) {
        self.bind = Some(address);
    }

    /// A free RTP port (its sockets bound and waiting, when binding), or
    /// None when every pair is taken or held by someone else.
    pub fn allocate(&mut self) -> Option<u16> {
        let Some(address) = self.bind else {
            return self.pool.allocate();
        };
        let mut held = 0usize;
        for _ in 0..self.pool.capacity() {
            let port = self.pool.allocate()?;
            match bind_pair(SocketAddr::new(address, port)) {
                Ok(pair) => {
                    if held > 0 {
                        tracing::info!(held, port, "RTP ports held by another socket skipped");
                    }
                    handoff().insert(SocketAddr::new(address, port), pair);
                    return Some(port);
                }
                Err(e) => {
                    // Held by another process (or a leg of ours not yet
                    // closed): free the slot for later and try the next.
                    tracing::debug!(port, error = %e, "RTP port pair in use, skipped");
                    held += 1;
                    self.pool.release(port);
                }
            }
        }
        tracing::warn!(held, "every free RTP port pair is held by another socket");
        None
    }

    /// Gives `port` back, dropping its sockets if the relay never took them.
    pub fn release(&mut self, port: u16) {
        if let Some(address) = self.bind {
            handoff().remove(&SocketAddr::new(address, port));
        }
        self.pool.release(port);
    }

    /// How many RTP ports are allocated.
    pub fn in_use(&self) -> usize {
        self.pool.in_use()
    }

    /// Keeps only share `index` of `count` of the range ([`PortPool::share`]).
    pub fn share(mut self, index: usize, count: usize) -> Self {
        self.pool = self.pool.share(index, count);
        self
    }

    /// Whether `port` is in this pool's share ([`PortPool::owns`]).
    pub fn owns(&self, port: u16) -> bool {
        self.pool.owns(port)
    }
}

/// Binds `rtp` and the RTCP port after it, non-blocking.
fn bind_pair(rtp: SocketAddr) -> std::io::Result<(UdpSocket, UdpSocket)> {
    let a = UdpSocket::bind(rtp)?;
    let mut rtcp = rtp;
    rtcp.set_port(rtp.port().wrapping_add(1));
    let b = UdpSocket::bind(rtcp)?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

/// Allocator of RTP ports in `[min, max]` (RTP even, RTCP = RTP + 1).
#[derive(Debug, Clone)]
pub struct PortPool {
    /// First even port of the range.
    first: u16,
    /// `used[i]` is port `first + 2 * i`.
    used: Vec<bool>,
    /// Index tried first by the next allocation.
    cursor: usize,
    in_use: usize,
    /// This pool's share of the slots: those with `i % stride == offset`
    /// (each endpoint worker allocates from its own share, without a lock).
    stride: usize,
    offset: usize,
}

impl PortPool {
    /// A pool over `[min, max]`. An empty or inverted range gives an empty pool.
    pub fn new(min: u16, max: u16) -> Self {
        let first = min.saturating_add(min % 2);
        let mut slots = 0usize;
        if max > first {
            // Pairs (p, p + 1) with p even and p + 1 <= max.
            slots = (usize::from(max) - usize::from(first)).div_ceil(2);
        }
        PortPool {
            first,
            used: vec![false; slots],
            cursor: 0,
            in_use: 0,
            stride: 1,
            offset: 0,
        }
    }

    /// Keeps only share `index` of `count` (every `count`th pair): the
    /// pools of several workers over one range never hand out the same port.
    pub fn share(mut self, index: usize, count: usize) -> Self {
        self.stride = count.max(1);
        self.offset = index % self.stride;
        self.cursor = self.offset;
        self
    }

    /// Whether `port` is in this pool's share (a worker given a leg by
    /// another must hand its port back to that worker's pool).
    pub fn owns(&self, port: u16) -> bool {
        port >= self.first
            && (port - self.first).is_multiple_of(2)
            && usize::from((port - self.first) / 2) < self.used.len()
            && usize::from((port - self.first) / 2) % self.stride == self.offset
    }

    /// The next free RTP port after the last one handed out, or None when full.
    pub fn allocate(&mut self) -> Option<u16> {
        let n = self.used.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if i % self.stride == self.offset && !self.used[i] {
                self.used[i] = true;
                self.in_use += 1;
                self.cursor = (i + 1) % n;
                return Some(self.first + (i as u16) * 2);
            }
        }
        None
    }

    /// Give `port` back. Ports outside the pool, odd ports and ports not in
    /// use are ignored (a double release must not corrupt the count).
    pub fn release(&mut self, port: u16) {
        if port < self.first || !(port - self.first).is_multiple_of(2) {
            return;
        }
        let i = usize::from((port - self.first) / 2);
        if i % self.stride != self.offset {
            return;
        }
        if let Some(slot) = self.used.get_mut(i) {
            if *slot {
                *slot = false;
                self.in_use -= 1;
            }
        }
    }

    /// How many RTP ports are allocated.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// How many RTP ports the pool holds.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_ports_round_robin_and_no_immediate_reuse() {
        let mut pool = PortPool::new(10001, 10008);
        // Even ports with RTCP in range: 10002, 10004, 10006 (10008 has no 10009).
        assert_eq!(pool.allocate(), Some(10002));
        assert_eq!(pool.allocate(), Some(10004));
        pool.release(10002);
        // The freed port is not the next one handed out.
        assert_eq!(pool.allocate(), Some(10006));
        assert_eq!(pool.allocate(), Some(10002));
        assert_eq!(pool.allocate(), None);
        assert_eq!(pool.in_use(), 3);
    }

    #[test]
    fn release_ignores_strangers_and_doubles() {
        let mut pool = PortPool::new(20000, 20003);
        let p = pool.allocate().unwrap();
        assert_eq!(p, 20000);
        pool.release(20001);
        pool.release(30000);
        pool.release(19998);
        assert_eq!(pool.in_use(), 1);
        pool.release(p);
        pool.release(p);
        assert_eq!(pool.in_use(), 0);
    }

    /// A port pair of the range is held by another socket: it is skipped,
    /// the next pair is bound and handed to the relay, and a release drops
    /// sockets the relay never took.
    #[test]
    fn binding_skips_pairs_held_elsewhere_and_hands_sockets_over() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        // A range of three pairs whose ports are all free right now.
        let base = (0..200)
            .map(|i| 40000 + i * 16)
            .find(|b| (*b..*b + 6).all(|p| UdpSocket::bind((lo, p)).is_ok()))
            .expect("a free block of six ports");
        let squatter = UdpSocket::bind((lo, base + 1)).unwrap(); // RTCP of the first pair
        let mut ports = MediaPorts::new(base, base + 5);
        ports.bind_on(lo);
        let p = ports.allocate().expect("a pair past the held one");
        assert_eq!(p, base + 2);
        let (rtp, rtcp) = take_bound(SocketAddr::new(lo, p)).expect("bound sockets waiting");
        assert_eq!(rtp.local_addr().unwrap().port(), p);
        assert_eq!(rtcp.local_addr().unwrap().port(), p + 1);
        assert!(take_bound(SocketAddr::new(lo, p)).is_none(), "taken once");
        // The third pair, bound and left waiting, then released: unbound.
        let q = ports.allocate().unwrap();
        assert_eq!(q, base + 4);
        ports.release(q);
        assert!(take_bound(SocketAddr::new(lo, q)).is_none());
        assert!(
            UdpSocket::bind((lo, q)).is_ok(),
            "a released pair is unbound"
        );
        // With the first pair held and the second in use (the relay holds
        // `rtp`), only the third is left.
        assert_eq!(ports.allocate(), Some(base + 4));
        assert_eq!(
            ports.allocate(),
            None,
            "exhausted: the held pair is not handed out"
        );
        drop(squatter);
        drop((rtp, rtcp));
        ports.release(base + 2);
        // Round-robin goes on from where the failed scan left off.
        assert_eq!(ports.allocate(), Some(base + 2));
        assert_eq!(ports.allocate(), Some(base), "the pair no longer held");
        assert_eq!(ports.in_use(), 3);
    }

    #[test]
    fn shares_never_overlap() {
        let mut a = PortPool::new(10000, 10011).share(0, 2);
        let mut b = PortPool::new(10000, 10011).share(1, 2);
        let mut got = Vec::new();
        while let Some(p) = a.allocate() {
            assert!(a.owns(p) && !b.owns(p));
            got.push(p);
        }
        while let Some(p) = b.allocate() {
            assert!(b.owns(p) && !a.owns(p));
            got.push(p);
        }
        got.sort();
        assert_eq!(got, vec![10000, 10002, 10004, 10006, 10008, 10010]);
        // Another share's port is not this pool's to release.
        b.release(10000);
        assert_eq!(b.in_use(), 3);
        a.release(10000);
        assert_eq!(a.allocate(), Some(10000));
    }

    #[test]
    fn empty_and_tiny_ranges() {
        assert_eq!(PortPool::new(5000, 4000).allocate(), None);
        assert_eq!(PortPool::new(5000, 5000).allocate(), None);
        assert_eq!(PortPool::new(5000, 5001).allocate(), Some(5000));
        assert_eq!(PortPool::new(65534, 65535).allocate(), Some(65534));
    }
}
