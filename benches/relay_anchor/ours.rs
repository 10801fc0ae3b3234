//! Our relay as the benchmark drives it: one in-process `MediaEngine`, N
//! bridged calls (two legs each, RTP and RTCP socket per leg) on loopback.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use switchback::media::{LegId, MediaCommand, MediaEngine, MediaEvent, PayloadMap, PortPool, G711};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const PCMU: PayloadMap = PayloadMap {
    audio_pt: 0,
    codec: G711::Pcmu,
    event_pt: Some(101),
};

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
    /// generator). Err names the limit that stopped it; nothing stays open.
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
        let mut calls = Calls {
            addrs: Vec::with_capacity(legs.len()),
            legs: Vec::new(),
        };
        for &leg in &legs {
            match self.open_leg(leg, remote) {
                Some(a) => calls.addrs.push(a),
                None => {
                    calls.legs = legs;
                    self.close(calls);
                    return Err("port range exhausted".into());
                }
            }
        }
        calls.legs = legs;
        // Legs whose bind failed (a port some other process holds) are
        // opened again on other ports; a bounded number of times.
        let mut retries = n.max(64);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            while let Ok(ev) = self.events.try_recv() {
                let MediaEvent::OpenFailed { leg, reason } = ev else {
                    continue;
                };
                let Some(i) = calls.legs.iter().position(|l| *l == leg) else {
                    continue;
                };
                let again = if retries == 0 || reason.contains("Too many open files") {
                    None
                } else {
                    retries -= 1;
                    self.open_leg(leg, remote)
                };
                match again {
                    Some(a) => calls.addrs[i] = a,
                    None => {
                        self.close(calls);
                        return Err(format!("leg did not open: {reason}"));
                    }
                }
            }
            if calls.legs.iter().all(|l| self.engine.stats(*l).is_some()) {
                break;
            }
            if Instant::now() > deadline {
                self.close(calls);
                return Err("legs did not open within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        for pair in calls.legs.chunks(2) {
            self.engine.command(MediaCommand::Bridge {
                a: pair[0],
                b: pair[1],
            });
        }
        Ok(calls)
    }

    fn open_leg(&mut self, leg: LegId, remote: SocketAddr) -> Option<SocketAddr> {
        let local: SocketAddr = ([127, 0, 0, 1], self.pool.allocate()?).into();
        self.engine.command(MediaCommand::Open {
            leg,
            call: format!("anchor-{}", leg.0 / 2),
            local,
            remote: Some(remote),
            remote_rtcp: None,
            payloads: Some(PCMU),
            rtp_timeout: None,
        });
        Some(local)
    }

    /// Close every leg, wait until the engine has let them go, free ports.
    pub fn close(&mut self, calls: Calls) {
        for leg in &calls.legs {
            self.engine.command(MediaCommand::Close { leg: *leg });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while calls.legs.iter().any(|l| self.engine.stats(*l).is_some()) {
            assert!(Instant::now() < deadline, "legs did not close within 60 s");
            std::thread::sleep(Duration::from_millis(5));
        }
        while self.events.try_recv().is_ok() {}
        for a in calls.addrs {
            self.pool.release(a.port());
        }
    }
}
