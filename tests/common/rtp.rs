//! Raw RTP endpoints the tests own: bound on loopback, written into a SIPp
//! scenario's SDP (see `Sipp::rtp_port`), so a test sends exactly what it wants
//! into the switch's relay and reads exactly what comes out.
//!
//! G.711 audio (PCMU payload type 0, 20 ms / 160 bytes) and RFC 4733 telephone
//! events (payload type 101 unless told otherwise).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

pub const PTIME: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
pub struct RtpPacket {
    pub from: SocketAddr,
    pub at: Instant,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

/// An RFC 4733 event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DtmfPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

impl RtpPacket {
    pub fn parse(buf: &[u8], from: SocketAddr) -> Option<RtpPacket> {
        if buf.len() < 12 || buf[0] >> 6 != 2 {
            return None;
        }
        let cc = (buf[0] & 0x0f) as usize;
        let mut off = 12 + 4 * cc;
        if buf[0] & 0x10 != 0 {
            let len = u16::from_be_bytes([*buf.get(off + 2)?, *buf.get(off + 3)?]) as usize;
            off += 4 + 4 * len;
        }
        let mut end = buf.len();
        if buf[0] & 0x20 != 0 {
            end = end.checked_sub(*buf.last()? as usize)?;
        }
        Some(RtpPacket {
            from,
            at: Instant::now(),
            pt: buf[1] & 0x7f,
            marker: buf[1] & 0x80 != 0,
            seq: u16::from_be_bytes([buf[2], buf[3]]),
            ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
            ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: buf.get(off..end)?.to_vec(),
        })
    }

    pub fn dtmf(&self) -> Option<DtmfPayload> {
        let p = &self.payload;
        (p.len() >= 4).then(|| DtmfPayload {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }
}

/// RFC 4733 event code of a DTMF digit.
pub fn dtmf_event(digit: char) -> u8 {
    match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => 12 + (digit as u8 - b'A'),
        _ => panic!("not a DTMF digit: {digit}"),
    }
}

pub fn dtmf_digit(event: u8) -> char {
    match event {
        0..=9 => (b'0' + event) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + event - 12) as char,
        _ => '?',
    }
}

/// G.711 mu-law of one 16-bit sample.
pub fn ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut s = sample as i32;
    let sign = if s < 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s;
    }
    s = s.min(CLIP) + BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && s & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mant = (s >> (exp + 3)) & 0x0f;
    !(sign | (exp << 4) | mant) as u8
}

/// G.711 mu-law to a 16-bit sample.
pub fn ulaw_decode(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exp = (u >> 4) & 0x07;
    let mant = (u & 0x0f) as i32;
    let mag = (((mant << 3) + 0x84) << exp) - 0x84;
    (if sign != 0 { -mag } else { mag }) as i16
}

/// The PCMU payloads of `packets` (payload type 0), decoded, in arrival order.
pub fn pcmu_samples(packets: &[RtpPacket]) -> Vec<f64> {
    packets
        .iter()
        .filter(|p| p.pt == 0)
        .flat_map(|p| p.payload.iter().map(|&b| ulaw_decode(b) as f64 / 32768.0))
        .collect()
}

/// A loopback RTP endpoint with its own sequence, timestamp and SSRC.
pub struct RtpEndpoint {
    pub sock: UdpSocket,
    pub port: u16,
    seq: u16,
    ts: u32,
    pub ssrc: u32,
    phase: u64,
}

impl RtpEndpoint {
    /// Binds an even port (RTP convention) on 127.0.0.1.
    pub fn bind() -> RtpEndpoint {
        for _ in 0..200 {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind rtp");
            let port = s.local_addr().unwrap().port();
            if port.is_multiple_of(2) {
                return RtpEndpoint::from_socket(s);
            }
        }
        panic!("no even RTP port");
    }

    fn from_socket(sock: UdpSocket) -> RtpEndpoint {
        let port = sock.local_addr().unwrap().port();
        RtpEndpoint {
            sock,
            port,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            phase: 0,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    fn header(&mut self, pt: u8, marker: bool, ts: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(12 + 160);
        h.push(0x80);
        h.push(pt | if marker { 0x80 } else { 0 });
        h.extend_from_slice(&self.seq.to_be_bytes());
        h.extend_from_slice(&ts.to_be_bytes());
        h.extend_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
        h
    }

    /// One 20 ms PCMU packet of a sine at `freq` Hz (the phase runs on across calls).
    pub fn send_tone_packet(&mut self, to: SocketAddr, freq: f64) {
        let mut pkt = self.header(0, false, self.ts);
        for k in 0..160u64 {
            let n = self.phase + k;
            let v =
                (16000.0 * (2.0 * std::f64::consts::PI * freq * n as f64 / 8000.0).sin()) as i16;
            pkt.push(ulaw(v));
        }
        self.phase += 160;
        self.ts = self.ts.wrapping_add(160);
        let _ = self.sock.send_to(&pkt, to);
    }

    /// `count` packets of a tone, paced at 20 ms (pacing, not synchronisation).
    pub fn send_tone(&mut self, to: SocketAddr, freq: f64, count: usize) {
        let start = Instant::now();
        for i in 0..count {
            self.send_tone_packet(to, freq);
            let next = start + PTIME * (i as u32 + 1);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
    }

    /// One RFC 4733 digit as a phone sends it: the first packet with the marker bit,
    /// one packet every 20 ms with the duration growing by 160, then three end packets
    /// (same timestamp, final duration). `ms` is the tone's length.
    pub fn send_dtmf(&mut self, to: SocketAddr, digit: char, ms: u32, pt: u8) {
        let event = dtmf_event(digit);
        let ts = self.ts;
        let steps = (ms / 20).max(1);
        let start = Instant::now();
        for i in 1..=steps {
            let dur = (i * 160) as u16;
            let mut pkt = self.header(pt, i == 1, ts);
            pkt.extend_from_slice(&[event, 10, (dur >> 8) as u8, dur as u8]);
            let _ = self.sock.send_to(&pkt, to);
            let next = start + PTIME * i;
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        let dur = (steps * 160) as u16;
        for _ in 0..3 {
            let mut pkt = self.header(pt, false, ts);
            pkt.extend_from_slice(&[event, 0x80 | 10, (dur >> 8) as u8, dur as u8]);
            let _ = self.sock.send_to(&pkt, to);
        }
        self.ts = self.ts.wrapping_add(steps * 160 + 160);
    }

    /// Every RTP packet that arrives within `window`.
    pub fn recv_for(&self, window: Duration) -> Vec<RtpPacket> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return out;
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Some(p) = RtpPacket::parse(&buf[..n], from) {
                        out.push(p);
                    }
                }
                Err(_) => return out,
            }
        }
    }

    /// Packets until `done(&packets)` holds or `timeout` passes; returns what arrived.
    pub fn recv_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[RtpPacket]) -> bool,
    ) -> Vec<RtpPacket> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while !done(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if let Some(p) = RtpPacket::parse(&buf[..n], from) {
                        out.push(p);
                    }
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Drops whatever is queued.
    pub fn flush(&self) {
        let _ = self.recv_for(Duration::from_millis(30));
    }
}

/// Sends a tone from `ep` to `to` on a thread until the returned guard is dropped.
pub struct ToneGuard {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<RtpEndpoint>>,
}

impl ToneGuard {
    pub fn start(mut ep: RtpEndpoint, to: SocketAddr, freq: f64) -> ToneGuard {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut i = 0u32;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                ep.send_tone_packet(to, freq);
                i += 1;
                if let Some(d) = (start + PTIME * i).checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
            ep
        });
        ToneGuard {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops sending and gives the endpoint back.
    pub fn stop(mut self) -> RtpEndpoint {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.take().unwrap().join().expect("tone thread")
    }
}

impl Drop for ToneGuard {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Digits in a packet stream: one per distinct (timestamp, event) with an end packet,
/// in order, with the packets that made each one.
pub fn dtmf_digits(packets: &[RtpPacket], pt: u8) -> Vec<(char, Vec<RtpPacket>)> {
    let mut out: Vec<(u32, char, Vec<RtpPacket>)> = Vec::new();
    for p in packets.iter().filter(|p| p.pt == pt) {
        let Some(d) = p.dtmf() else { continue };
        match out.iter_mut().find(|(ts, _, _)| *ts == p.ts) {
            Some((_, _, v)) => v.push(p.clone()),
            None => out.push((p.ts, dtmf_digit(d.event), vec![p.clone()])),
        }
    }
    out.into_iter().map(|(_, c, v)| (c, v)).collect()
}

/// Checks one generated digit's packets the way RFC 4733 §2.5 says a sender makes them:
/// the first has the marker bit, durations never shrink, and it ends with three end
/// packets (same timestamp). Returns a description of the first defect.
pub fn check_dtmf_shape(packets: &[RtpPacket]) -> Result<(), String> {
    let first = packets.first().ok_or("no packets")?;
    if !first.marker {
        return Err(format!("first packet has no marker bit: {first:?}"));
    }
    let mut last = 0u16;
    for p in packets {
        let d = p.dtmf().ok_or("short event payload")?;
        if d.duration < last {
            return Err(format!("duration shrinks: {} after {last}", d.duration));
        }
        last = d.duration;
        if p.ts != first.ts {
            return Err("timestamp changes within one event".into());
        }
    }
    let ends = packets
        .iter()
        .filter(|p| p.dtmf().is_some_and(|d| d.end))
        .count();
    if ends != 3 {
        return Err(format!("{ends} end packets, expected 3"));
    }
    if packets.iter().rev().take(3).any(|p| !p.dtmf().unwrap().end) {
        return Err("end packets are not the last three".into());
    }
    if packets.len() < 4 {
        return Err(format!(
            "only {} packets: no growing duration",
            packets.len()
        ));
    }
    Ok(())
}
