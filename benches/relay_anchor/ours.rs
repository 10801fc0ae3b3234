//! Our relay as the benchmark drives it: one in-process `MediaEngine`, N
//! bridged calls (two legs each, RTP and RTCP socket per leg) on loopback.

use std::net::SocketAddr;

use switchback::media::bench::{close_legs, open_legs};
use switchback::media::{LegId, MediaCommand, MediaEngine, MediaEvent, PortPool};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Sockets per call: RTP and RTCP for each of the two legs.
pub const FDS_PER_CALL: usize = 4;

pub struct Ours {
    engine: MediaEngine,
    events: UnboundedReceiver<MediaEvent>,
    pool: PortPool,
    next_leg: u64,
}

/// N calls open and bridged.
pub struct Calls {
    legs: Vec<LegId>,
    /// Each leg's RTP address, leg i of call k at 2k + i: where the
    /// generator sends that leg's stream.
    pub addrs: Vec<SocketAddr>,
}

/// Open descriptors of this process and its soft limit on them.
pub fn fds() -> (usize, usize) {
    let open = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let limit = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(usize::MAX);
    (open, limit)
}

impl Ours {
    /// The engine, allocating leg ports from `min..=max`.
    pub fn start(min: u16, max: u16) -> Self {
        let (tx, events) = unbounded_channel();
        Ours {
            engine: MediaEngine::start(tx),
            events,
            pool: PortPool::new(min, max),
            next_leg: 0,
        }
    }

    /// Open and bridge `n` calls whose legs all send to `remote` (the
    /// generator). Err names the limit that stopped it.
    pub fn open(&mut self, n: usize, remote: SocketAddr) -> Result<Calls, String> {
        let (open, limit) = fds();
        let need = FDS_PER_CALL * n;
        if open + need + 16 > limit {
            return Err(format!(
                "fd limit: {n} calls need {need} sockets, {open} open of {limit}"
            ));
        }
        let legs: Vec<LegId> = (0..2 * n as u64)
            .map(|i| LegId(self.next_leg + i))
            .collect();
        self.next_leg += 2 * n as u64;
        let addrs = match open_legs(
            &self.engine,
            &mut self.events,
            &mut self.pool,
            &legs,
            remote,
        ) {
            Ok(a) => a,
            Err(e) => {
                // Their ports stay taken in the pool: a failed step is the last
                // one that matters.
                let _ = close_legs(&self.engine, &legs);
                return Err(format!("legs did not open: {e}"));
            }
        };
        for pair in legs.chunks(2) {
            self.engine.command(MediaCommand::Bridge {
                a: pair[0],
                b: pair[1],
            });
        }
        Ok(Calls { legs, addrs })
    }

    /// Close every leg, wait until the engine has let them go, free ports.
    pub fn close(&mut self, calls: Calls) {
        close_legs(&self.engine, &calls.legs).expect("legs close");
        while self.events.try_recv().is_ok() {}
        for a in calls.addrs {
            self.pool.release(a.port());
        }
    }
}
