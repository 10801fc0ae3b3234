//! RTP port allocation (sans-IO): hands out even RTP ports in `[min, max]`
//! whose RTCP companion (RTP + 1) is also in range.
//!
//! Allocation is round-robin from a moving cursor rather than lowest-free, so
//! a port just released is not handed out again at once: late packets of the
//! old call (or a phone still sending to it) must not leak into a new call.
//! It does not bind anything; whoever binds reports failure and may release.

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
