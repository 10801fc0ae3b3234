//! The project's own lightweight RTP generator and receiver, shared by the
//! `switchback-rtpgen` binary and the `media_relay` benchmark.
//!
//! [`send_streams`] paces N G.711 streams (160-byte payloads every 20 ms,
//! spread evenly over the 20 ms so there is no burst per tick) from one
//! socket; [`receive`] counts packets per source address and loss by
//! sequence number. Both batch their syscalls with `sendmmsg`/`recvmmsg` on
//! IPv4 so that, on a small machine, the load generator costs as little CPU
//! as possible next to the relay being measured. Not used by the switch
//! itself; kept in the library so the benches and the binary share one
//! copy, with the benches' helpers (opening and closing legs in bulk, CPU
//! readings).

use std::collections::HashMap;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::{LegId, MediaCommand, MediaEngine, MediaEvent, PayloadMap, PortPool, G711};

/// Payload bytes of one 20 ms G.711 packet.
pub const PAYLOAD: usize = 160;
/// Packet interval of every stream.
pub const PTIME: Duration = Duration::from_millis(20);
/// Datagrams per `sendmmsg`/`recvmmsg`.
const BATCH: usize = 64;
const PKT: usize = 12 + PAYLOAD;

/// Ask for large socket buffers (forced when privileged) so a scheduling
/// hiccup of the generator does not show up as relay loss.
pub fn grow_buffers(sock: &UdpSocket, bytes: i32) {
    let fd = sock.as_raw_fd();
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let p = (&bytes as *const i32).cast();
        let len = size_of::<i32>() as libc::socklen_t;
        // SAFETY: setsockopt reads `len` bytes from a live i32.
        unsafe {
            if libc::setsockopt(fd, libc::SOL_SOCKET, force, p, len) != 0 {
                libc::setsockopt(fd, libc::SOL_SOCKET, plain, p, len);
            }
        }
    }
}

fn sockaddr_v4(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut s: libc::sockaddr_in = unsafe { zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    s
}

/// Send `pkts[i]` to `dests[i]` for every i, batched. Returns how many went.
fn send_batch(sock: &UdpSocket, dests: &[libc::sockaddr_in], pkts: &mut [[u8; PKT]]) -> usize {
    let n = dests.len().min(pkts.len()).min(BATCH);
    // SAFETY: plain data, zero is valid; pointers below point into `pkts`
    // and `dests`, which outlive the syscall.
    let mut iov: [libc::iovec; BATCH] = unsafe { zeroed() };
    // SAFETY: as above: plain data, zero is valid.
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
    for i in 0..n {
        iov[i].iov_base = pkts[i].as_mut_ptr().cast();
        iov[i].iov_len = PKT;
        hdrs[i].msg_hdr.msg_name =
            (&dests[i] as *const libc::sockaddr_in as *mut libc::sockaddr_in).cast();
        hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &mut iov[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    let mut sent = 0;
    while sent < n {
        // SAFETY: `hdrs[sent..n]` are initialised above.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdrs[sent..].as_mut_ptr(),
                (n - sent) as u32,
                0,
            )
        };
        if r <= 0 {
            break;
        }
        sent += r as usize;
    }
    sent
}

/// Send `dests.len()` streams (stream i to `dests[i]`, SSRC i + 1) from
/// `sock` every [`PTIME`] until `stop` is set or `duration` passes; counts
/// into `sent`. IPv4 destinations only.
pub fn send_streams(
    sock: &UdpSocket,
    dests: &[SocketAddr],
    duration: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> io::Result<()> {
    send_streams_every(sock, dests, PTIME, duration, stop, sent)
}

/// [`send_streams`] with one packet per stream every `ptime` (whole
/// milliseconds, at least 1): fewer packets per call, for holding many
/// calls with media flowing on a machine that cannot relay them all at
/// 50 packets/s.
pub fn send_streams_every(
    sock: &UdpSocket,
    dests: &[SocketAddr],
    ptime: Duration,
    duration: Duration,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> io::Result<()> {
    let addrs: Vec<libc::sockaddr_in> = dests
        .iter()
        .map(|d| match d {
            SocketAddr::V4(a) => Ok(sockaddr_v4(*a)),
            SocketAddr::V6(_) => Err(io::Error::other("rtpgen sends to IPv4 only")),
        })
        .collect::<Result<_, _>>()?;
    // Stream i sends in millisecond slot i % ptime of every ptime period.
    let slots = (ptime.as_millis() as usize).max(1);
    let mut by_slot: Vec<Vec<usize>> = vec![Vec::new(); slots];
    for i in 0..dests.len() {
        by_slot[i % slots].push(i);
    }
    let mut seq = vec![0u16; dests.len()];
    let mut pkts = vec![[0u8; PKT]; BATCH];
    let mut batch_addrs = Vec::with_capacity(BATCH);
    let t0 = Instant::now();
    let mut tick: u64 = 0;
    loop {
        let at = t0 + Duration::from_millis(tick);
        if stop.load(Ordering::Relaxed) || at >= t0 + duration {
            return Ok(());
        }
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        let slot = &by_slot[(tick % slots as u64) as usize];
        for chunk in slot.chunks(BATCH) {
            batch_addrs.clear();
            for (k, &i) in chunk.iter().enumerate() {
                let s = seq[i];
                seq[i] = s.wrapping_add(1);
                let p = &mut pkts[k];
                p[0] = 0x80;
                p[1] = 0; // PCMU
                p[2..4].copy_from_slice(&s.to_be_bytes());
                p[4..8].copy_from_slice(&(u32::from(s) * PAYLOAD as u32).to_be_bytes());
                p[8..12].copy_from_slice(&(i as u32 + 1).to_be_bytes());
                p[12..].fill(0xFF);
                batch_addrs.push(addrs[i]);
            }
            let n = send_batch(sock, &batch_addrs, &mut pkts[..chunk.len()]);
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        tick += 1;
    }
}

/// What the receiver saw from one source.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamRx {
    pub received: u64,
    first: Option<i64>,
    /// Highest extended sequence number.
    max: i64,
}

impl StreamRx {
    fn on_seq(&mut self, seq: u16) {
        self.received += 1;
        match self.first {
            None => {
                self.first = Some(i64::from(seq));
                self.max = i64::from(seq);
            }
            Some(_) => {
                // Extend relative to the highest seen (wrap-aware).
                let delta = i64::from(seq.wrapping_sub(self.max as u16) as i16);
                if delta > 0 {
                    self.max += delta;
                }
            }
        }
    }

    /// Packets missing between the first and the highest sequence seen.
    pub fn lost(&self) -> u64 {
        match self.first {
            None => 0,
            Some(f) => ((self.max - f + 1) as u64).saturating_sub(self.received),
        }
    }
}

/// Receiver totals.
#[derive(Debug, Clone, Default)]
pub struct RxReport {
    pub streams: HashMap<SocketAddr, StreamRx>,
}

impl RxReport {
    pub fn received(&self) -> u64 {
        self.streams.values().map(|s| s.received).sum()
    }
    pub fn lost(&self) -> u64 {
        self.streams.values().map(StreamRx::lost).sum()
    }
}

/// Receive on `sock` (which should have a read timeout) until `stop`,
/// counting per source; `count` mirrors the total for live readers.
pub fn receive(sock: &UdpSocket, stop: &AtomicBool, count: &AtomicU64) -> RxReport {
    let mut report = RxReport::default();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    // SAFETY: plain data, zero is valid.
    let mut names: Vec<libc::sockaddr_in> = vec![unsafe { zeroed() }; BATCH];
    // SAFETY: plain data, zero is valid.
    let mut iov: Vec<libc::iovec> = vec![unsafe { zeroed() }; BATCH];
    // SAFETY: plain data, zero is valid.
    let mut hdrs: Vec<libc::mmsghdr> = vec![unsafe { zeroed() }; BATCH];
    while !stop.load(Ordering::Relaxed) {
        for i in 0..BATCH {
            iov[i].iov_base = bufs[i].as_mut_ptr().cast();
            iov[i].iov_len = bufs[i].len();
            hdrs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_in).cast();
            hdrs[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            hdrs[i].msg_hdr.msg_iov = &mut iov[i];
            hdrs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at live buffers above. Non-blocking:
        // the receiver naps instead of sleeping in the kernel, so the relay's
        // sends never pay for waking it (a cost a relay sending to a NIC does
        // not have, and which would be charged to the relay thread).
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                hdrs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for i in 0..n as usize {
            let len = hdrs[i].msg_len as usize;
            if len < 12 {
                continue;
            }
            let from = SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(names[i].sin_addr.s_addr)),
                u16::from_be(names[i].sin_port),
            ));
            let seq = u16::from_be_bytes([bufs[i][2], bufs[i][3]]);
            report.streams.entry(from).or_default().on_seq(seq);
        }
        count.fetch_add(n as u64, Ordering::Relaxed);
    }
    report
}

/// CPU time (user + system) used so far by this process's threads named
/// exactly `name`, from `/proc/self/task/*/schedstat` (nanoseconds).
pub fn thread_cpu(name: &str) -> Duration {
    let mut total = 0u64;
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in dir.flatten() {
        let p = task.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.trim_end() != name {
            continue;
        }
        let sched = std::fs::read_to_string(p.join("schedstat")).unwrap_or_default();
        total += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
    }
    Duration::from_nanos(total)
}

/// System-wide UDP receive-buffer drops (`RcvbufErrors` in /proc/net/snmp):
/// where loopback loss happens when a receiver falls behind.
pub fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// (busy, total) jiffies of the whole machine from `/proc/stat`: how much
/// CPU was left for the relay, which shares the machine with the generator.
pub fn machine_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// CPU time used so far by the calling thread (`/proc/thread-self/schedstat`).
pub fn own_cpu() -> Duration {
    let sched = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Open `legs` on loopback ports from `pool`, each sending to `remote`
/// with PCMU/101, retrying a leg on another port when its bind fails (a
/// port some other process holds); waits until all are open.
pub fn open_legs(
    engine: &MediaEngine,
    events: &mut UnboundedReceiver<MediaEvent>,
    pool: &mut PortPool,
    legs: &[LegId],
    remote: SocketAddr,
) -> io::Result<Vec<SocketAddr>> {
    let payloads = PayloadMap {
        audio_pt: 0,
        codec: G711::Pcmu,
        event_pt: Some(101),
    };
    let open = |leg: LegId, pool: &mut PortPool| -> io::Result<SocketAddr> {
        let port = pool
            .allocate()
            .ok_or_else(|| io::Error::other("no media ports left"))?;
        let local: SocketAddr = ([127, 0, 0, 1], port).into();
        engine.command(MediaCommand::Open {
            leg,
            call: format!("bench-{}", leg.0),
            local,
            remote: Some(remote),
            remote_rtcp: None,
            payloads: Some(payloads),
            rtp_timeout: None,
        });
        Ok(local)
    };
    let mut addrs = Vec::with_capacity(legs.len());
    for &leg in legs {
        addrs.push(open(leg, pool)?);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        while let Ok(ev) = events.try_recv() {
            if let MediaEvent::OpenFailed { leg, .. } = ev {
                if let Some(i) = legs.iter().position(|l| *l == leg) {
                    let a = open(leg, pool)?;
                    if let Some(slot) = addrs.get_mut(i) {
                        *slot = a;
                    }
                }
            }
        }
        if legs.iter().all(|l| engine.stats(*l).is_some()) {
            return Ok(addrs);
        }
        if Instant::now() > deadline {
            return Err(io::Error::other("legs did not open within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Close `legs` and wait until the engine has let them go.
pub fn close_legs(engine: &MediaEngine, legs: &[LegId]) -> io::Result<()> {
    for &leg in legs {
        engine.command(MediaCommand::Close { leg });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while legs.iter().any(|l| engine.stats(*l).is_some()) {
        if Instant::now() > deadline {
            return Err(io::Error::other("legs did not close within 30 s"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Resident set size of this process, bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A sender thread and a receiver thread on one socket.
#[derive(Debug)]
pub struct Generator {
    pub sent: Arc<AtomicU64>,
    pub received: Arc<AtomicU64>,
    stop_tx: Arc<AtomicBool>,
    stop_rx: Arc<AtomicBool>,
    tx: std::thread::JoinHandle<io::Result<()>>,
    rx: std::thread::JoinHandle<RxReport>,
}

impl Generator {
    /// Start sending to `dests` from `sock` for `duration`, and receiving.
    pub fn start(
        sock: Arc<UdpSocket>,
        dests: Vec<SocketAddr>,
        duration: Duration,
    ) -> io::Result<Self> {
        Generator::start_every(sock, dests, PTIME, duration)
    }

    /// [`Generator::start`] with one packet per stream every `ptime`.
    pub fn start_every(
        sock: Arc<UdpSocket>,
        dests: Vec<SocketAddr>,
        ptime: Duration,
        duration: Duration,
    ) -> io::Result<Self> {
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let stop_tx = Arc::new(AtomicBool::new(false));
        let stop_rx = Arc::new(AtomicBool::new(false));
        let rx = {
            let (sock, stop, count) = (sock.clone(), stop_rx.clone(), received.clone());
            std::thread::Builder::new()
                .name("rtpgen-rx".into())
                .spawn(move || receive(&sock, &stop, &count))?
        };
        let tx = {
            let (stop, count) = (stop_tx.clone(), sent.clone());
            std::thread::Builder::new()
                .name("rtpgen-tx".into())
                .spawn(move || send_streams_every(&sock, &dests, ptime, duration, &stop, &count))?
        };
        Ok(Generator {
            sent,
            received,
            stop_tx,
            stop_rx,
            tx,
            rx,
        })
    }

    /// Wait for the sender to finish, give in-flight packets `drain` to
    /// arrive, then stop the receiver and return its report.
    pub fn finish(self, drain: Duration) -> io::Result<RxReport> {
        let sent = self
            .tx
            .join()
            .map_err(|_| io::Error::other("sender panicked"))?;
        sent?;
        std::thread::sleep(drain);
        self.stop_rx.store(true, Ordering::Relaxed);
        self.rx
            .join()
            .map_err(|_| io::Error::other("receiver panicked"))
    }

    /// Ask the sender to stop early.
    pub fn stop(&self) {
        self.stop_tx.store(true, Ordering::Relaxed);
    }
}

/// rtpengine's ng control protocol, for the relay benchmark's anchor.
pub mod ng;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_loss_by_sequence_with_wrap() {
        let mut s = StreamRx::default();
        for q in [65534u16, 65535, 1, 2, 0] {
            s.on_seq(q);
        }
        assert_eq!((s.received, s.lost()), (5, 0));
        s.on_seq(5);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn generator_round_trip_on_loopback() {
        let a = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b_addr = echo.local_addr().unwrap();
        let g =
            Generator::start(a.clone(), vec![b_addr, b_addr], Duration::from_millis(100)).unwrap();
        // Echo whatever arrives back to the generator, until it has 10.
        echo.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        for _ in 0..10 {
            let (n, from) = echo.recv_from(&mut buf).unwrap();
            echo.send_to(&buf[..n], from).unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while g.received.load(Ordering::Relaxed) < 10 {
            assert!(Instant::now() < deadline);
            std::thread::yield_now();
        }
        g.stop();
        let sent = g.sent.clone();
        let report = g.finish(Duration::ZERO).unwrap();
        assert_eq!(report.received(), 10);
        assert!(sent.load(Ordering::Relaxed) >= 10);
    }
}
