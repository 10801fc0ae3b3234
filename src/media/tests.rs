//! Integration tests of the media engine over real loopback UDP sockets.
//! "Phones" are plain blocking sockets with a read timeout; every wait is
//! bounded (an event, a packet, or a counter reaching a value), none is a
//! sleep standing in for synchronisation.

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::record::{RecordSink, SinkFactory};
use super::*;
use crate::codec::g711;
use crate::recording::RecordingError;

mod rooms;

const WAIT: Duration = Duration::from_secs(5);

const PCMU: PayloadMap = PayloadMap {
    audio_pt: 0,
    codec: G711::Pcmu,
    event_pt: Some(101),
};
const PCMA: PayloadMap = PayloadMap {
    audio_pt: 8,
    codec: G711::Pcma,
    event_pt: Some(96),
};

struct Harness {
    engine: MediaEngine,
    rx: UnboundedReceiver<MediaEvent>,
    rt: tokio::runtime::Runtime,
    /// The RTP timeout `open` gives each leg.
    rtp_timeout: Option<Duration>,
}

impl Harness {
    fn new(rtp_timeout: Option<Duration>) -> Self {
        Self::with_sink(rtp_timeout, record::default_factory())
    }

    fn with_sink(rtp_timeout: Option<Duration>, sink: SinkFactory) -> Self {
        let (tx, rx) = unbounded_channel();
        let engine = MediaEngine::start_with_sink(tx, sink);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        Harness {
            engine,
            rx,
            rt,
            rtp_timeout,
        }
    }

    fn event(&mut self) -> MediaEvent {
        let rx = &mut self.rx;
        self.rt
            .block_on(async { tokio::time::timeout(WAIT, rx.recv()).await })
            .expect("event within the wait")
            .expect("engine alive")
    }

    fn no_event(&mut self) {
        assert!(self.rx.try_recv().is_err(), "unexpected event");
    }

    /// Open `leg` on a fresh local port pair, SDP pointing at `remote`, and
    /// wait until the engine has bound it. Returns the local RTP address.
    fn open(
        &mut self,
        leg: LegId,
        remote: Option<SocketAddr>,
        payloads: Option<PayloadMap>,
    ) -> SocketAddr {
        self.open_with_timeout(leg, remote, payloads, self.rtp_timeout)
    }

    /// [`Self::open`] with this leg's own RTP timeout.
    fn open_with_timeout(
        &mut self,
        leg: LegId,
        remote: Option<SocketAddr>,
        payloads: Option<PayloadMap>,
        rtp_timeout: Option<Duration>,
    ) -> SocketAddr {
        let local = free_pair();
        self.engine.command(MediaCommand::Open {
            leg,
            call: "call-1".into(),
            local,
            remote,
            remote_rtcp: None,
            payloads,
            rtp_timeout,
        });
        wait_until(|| self.engine.stats(leg).is_some());
        local
    }

    /// Wait until every command sent so far has been applied: commands are
    /// applied in order, and DTMF to an unknown leg answers at once.
    fn fence(&mut self) {
        self.engine.command(MediaCommand::SendDtmf {
            leg: LegId(u64::MAX),
            digits: "1".into(),
            duration_ms: 100,
            gap_ms: 0,
        });
        assert!(matches!(
            self.event(),
            MediaEvent::DtmfFailed {
                leg: LegId(u64::MAX),
                ..
            }
        ));
    }

    fn stats(&self, leg: LegId) -> LegStats {
        self.engine.stats(leg).expect("open leg")
    }
}

/// Poll `f` until true, at most [`WAIT`].
fn wait_until(mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within the wait"
        );
        std::thread::yield_now();
    }
}

/// An even loopback port whose successor is free too.
fn free_pair() -> SocketAddr {
    loop {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port.is_multiple_of(2)
            && port < 65535
            && UdpSocket::bind(("127.0.0.1", port + 1)).is_ok()
        {
            return a.local_addr().unwrap();
        }
    }
}

struct Phone {
    rtp: UdpSocket,
    rtcp: UdpSocket,
}

impl Phone {
    fn new() -> Self {
        let addr = free_pair();
        let rtp = UdpSocket::bind(addr).unwrap();
        let rtcp = UdpSocket::bind(("127.0.0.1", addr.port() + 1)).unwrap();
        rtp.set_read_timeout(Some(WAIT)).unwrap();
        rtcp.set_read_timeout(Some(WAIT)).unwrap();
        Phone { rtp, rtcp }
    }
    fn addr(&self) -> SocketAddr {
        self.rtp.local_addr().unwrap()
    }
    fn send(&self, to: SocketAddr, pkt: &[u8]) {
        self.rtp.send_to(pkt, to).unwrap();
    }
    fn recv(&self) -> Pkt {
        let mut buf = [0u8; 2048];
        let (n, _) = self
            .rtp
            .recv_from(&mut buf)
            .expect("packet within the wait");
        Pkt(buf[..n].to_vec())
    }
}

#[allow(clippy::too_many_arguments)]
fn rtp_packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x80, (u8::from(marker) << 7) | pt];
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&ssrc.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn audio(pt: u8, seq: u16, ts: u32, ssrc: u32, fill: u8) -> Vec<u8> {
    rtp_packet(pt, seq, ts, ssrc, false, &[fill; 160])
}

fn event(pt: u8, seq: u16, ts: u32, ssrc: u32, code: u8, end: bool, dur: u16) -> Vec<u8> {
    let [hi, lo] = dur.to_be_bytes();
    rtp_packet(
        pt,
        seq,
        ts,
        ssrc,
        false,
        &[code, if end { 0x8a } else { 0x0a }, hi, lo],
    )
}

#[derive(Debug)]
struct Pkt(Vec<u8>);
impl Pkt {
    fn marker(&self) -> bool {
        self.0[1] & 0x80 != 0
    }
    fn pt(&self) -> u8 {
        self.0[1] & 0x7f
    }
    fn seq(&self) -> u16 {
        u16::from_be_bytes([self.0[2], self.0[3]])
    }
    fn ts(&self) -> u32 {
        u32::from_be_bytes(self.0[4..8].try_into().unwrap())
    }
    fn ssrc(&self) -> u32 {
        u32::from_be_bytes(self.0[8..12].try_into().unwrap())
    }
    fn payload(&self) -> &[u8] {
        &self.0[12..]
    }
}

/// Two phones with open, bridged legs 1 (PCMU/101) and 2 (PCMA/96).
fn bridged(h: &mut Harness) -> (Phone, SocketAddr, Phone, SocketAddr) {
    let (pa, pb) = (Phone::new(), Phone::new());
    let la = h.open(LegId(1), Some(pa.addr()), Some(PCMU));
    let lb = h.open(LegId(2), Some(pb.addr()), Some(PCMA));
    h.engine.command(MediaCommand::Bridge {
        a: LegId(1),
        b: LegId(2),
    });
    (pa, la, pb, lb)
}

#[test]
fn forwards_both_ways_mapping_payload_types_and_laws() {
    let mut h = Harness::new(None);
    let (pa, la, pb, lb) = bridged(&mut h);
    pa.send(la, &audio(0, 100, 16000, 0xA, 0xFF));
    let got = pb.recv();
    assert_eq!(got.pt(), 8);
    assert!(
        got.marker(),
        "first packet of a new source carries the marker"
    );
    assert_ne!(got.ssrc(), 0xA, "our own SSRC");
    assert_eq!(
        got.payload(),
        &[0xD5u8; 160][..],
        "μ-law silence became A-law silence"
    );
    // Telephone events map 101 -> 96.
    pa.send(la, &event(101, 101, 16160, 0xA, 1, false, 400));
    let ev = pb.recv();
    assert_eq!((ev.pt(), ev.seq()), (96, got.seq().wrapping_add(1)));
    // And back: PCMA 8 -> PCMU 0, events 96 -> 101.
    pb.send(lb, &audio(8, 7, 0, 0xB, 0xD5));
    let back = pa.recv();
    // A-law has no exact zero: its silence is the smallest μ-law step.
    assert_eq!(
        (back.pt(), back.payload()[0]),
        (0, g711::ALAW_TO_ULAW[0xD5])
    );
    pb.send(lb, &event(96, 8, 160, 0xB, 2, false, 400));
    assert_eq!(pa.recv().pt(), 101);
    // Anything else (comfort noise, 13) is dropped; the next audio arrives.
    pb.send(lb, &audio(13, 9, 320, 0xB, 1));
    pb.send(lb, &audio(8, 10, 480, 0xB, 0x2A));
    let next = pa.recv();
    assert_eq!(next.payload()[0], g711::ALAW_TO_ULAW[0x2A]);
    assert_eq!(
        next.seq(),
        back.seq().wrapping_add(3),
        "a dropped packet stays a gap"
    );
    // Counters (a packet is counted just after it is sent: wait for it).
    wait_until(|| h.stats(LegId(1)).packets_out == 3);
    let (sa, sb) = (h.stats(LegId(1)), h.stats(LegId(2)));
    assert_eq!((sa.packets_in, sa.packets_out), (2, 3));
    assert_eq!((sb.packets_in, sb.packets_out), (4, 2));
    assert_eq!(sa.bytes_in, 172 + 16);
    assert_eq!(sb.bytes_out, 172 + 16);
    h.no_event();
}

#[test]
fn latches_to_the_source_behind_nat_once_per_update() {
    let mut h = Harness::new(None);
    let (pa, pb) = (Phone::new(), Phone::new());
    // A's SDP names an address nobody uses (private address behind NAT).
    let sdp = free_pair();
    let la = h.open(LegId(1), Some(sdp), Some(PCMU));
    let lb = h.open(LegId(2), Some(pb.addr()), Some(PCMU));
    h.engine.command(MediaCommand::Bridge {
        a: LegId(1),
        b: LegId(2),
    });
    pa.send(la, &audio(0, 1, 0, 1, 0));
    assert_eq!(
        h.event(),
        MediaEvent::Latched {
            leg: LegId(1),
            remote: pa.addr()
        }
    );
    pb.recv();
    // B's audio now reaches A at its real source address.
    pb.send(lb, &audio(0, 1, 0, 2, 0));
    pa.recv();
    pa.send(la, &audio(0, 2, 160, 1, 0));
    pb.recv();
    // A stranger is not latched onto while A is latched.
    let stranger = Phone::new();
    stranger.send(la, &audio(0, 1, 0, 9, 0x11));
    pa.send(la, &audio(0, 3, 320, 1, 0x22));
    assert_eq!(pb.recv().payload()[0], 0x22);
    h.no_event();
    // After an Update the leg latches afresh (here onto the stranger).
    h.engine.command(MediaCommand::Update {
        leg: LegId(1),
        remote: Some(sdp),
        remote_rtcp: None,
        payloads: Some(PCMU),
        remote_sends: true,
        remote_receives: true,
    });
    // Until the Update is applied the socket is still connected to A, and the
    // kernel would drop the stranger's packet.
    h.fence();
    stranger.send(la, &audio(0, 2, 160, 9, 0x33));
    assert_eq!(
        h.event(),
        MediaEvent::Latched {
            leg: LegId(1),
            remote: stranger.addr()
        }
    );
    assert_eq!(pb.recv().payload()[0], 0x33);
}

#[test]
fn outgoing_stream_stays_continuous_across_a_rebridge() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    let pc = Phone::new();
    let lc = h.open(LegId(3), Some(pc.addr()), Some(PCMU));
    let mut last = None;
    for i in 0..3u16 {
        pa.send(la, &audio(0, 500 + i, 8000 + u32::from(i) * 160, 0xAAAA, 0));
        let p = pb.recv();
        if let Some((seq, ts, ssrc)) = last {
            assert_eq!(p.seq(), u16::wrapping_add(seq, 1));
            assert_eq!(p.ts(), u32::wrapping_add(ts, 160));
            assert_eq!(p.ssrc(), ssrc);
            assert!(!p.marker());
        }
        last = Some((p.seq(), p.ts(), p.ssrc()));
    }
    let (seq, ts, ssrc) = last.unwrap();
    let switched_at = Instant::now();
    // Transfer: B is now bridged to C, which numbers its stream differently.
    h.engine.command(MediaCommand::Bridge {
        a: LegId(3),
        b: LegId(2),
    });
    pa.send(la, &audio(0, 503, 8480, 0xAAAA, 0x01)); // A is no longer bridged
    pc.send(lc, &audio(0, 9, 123_456, 0xCCCC, 0x02));
    let p = pb.recv();
    let elapsed = switched_at.elapsed();
    assert_eq!(p.payload()[0], g711::ULAW_TO_ALAW[0x02]);
    assert_eq!((p.ssrc(), p.seq()), (ssrc, seq.wrapping_add(1)));
    assert!(p.marker());
    let advance = p.ts().wrapping_sub(ts);
    // At least one sample, at most the wall time since the last packet at 8 kHz.
    assert!(
        advance >= 1 && u128::from(advance) <= elapsed.as_millis() * 8 + 8000,
        "{advance}"
    );
    // The same source keeps going without a marker; C's far end changes SSRC: marker again.
    pc.send(lc, &audio(0, 10, 123_616, 0xCCCC, 0x02));
    let q = pb.recv();
    assert_eq!(
        (q.seq(), q.ts(), q.marker()),
        (p.seq().wrapping_add(1), p.ts().wrapping_add(160), false)
    );
    pc.send(lc, &audio(0, 40_000, 7, 0xDDDD, 0x02));
    let r = pb.recv();
    assert_eq!((r.seq(), r.marker()), (q.seq().wrapping_add(1), true));
}

#[test]
fn a_burst_is_relayed_whole_and_in_order() {
    // More datagrams than one batch, queued before the relay reads them:
    // the socket is read singly first, then in batches, and all leave in
    // order with consecutive rewritten sequence numbers.
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    for i in 0..70u16 {
        pa.send(la, &audio(0, 1000 + i, u32::from(i) * 160, 5, i as u8));
    }
    let first = pb.recv();
    for i in 1..70u16 {
        let p = pb.recv();
        assert_eq!(p.seq(), first.seq().wrapping_add(i));
        assert_eq!(p.payload()[0], g711::ULAW_TO_ALAW[usize::from(i as u8)]);
    }
    wait_until(|| h.stats(LegId(2)).packets_out == 70);
    assert_eq!(h.stats(LegId(1)).packets_in, 70);
}

#[test]
fn mute_is_one_way_and_still_reports_dtmf() {
    let mut h = Harness::new(None);
    let (pa, la, pb, lb) = bridged(&mut h);
    h.engine.command(MediaCommand::SetMute {
        leg: LegId(1),
        muted: true,
    });
    pa.send(la, &audio(0, 1, 0, 1, 0x10));
    pa.send(la, &event(101, 2, 160, 1, 7, true, 800));
    assert_eq!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '7',
            duration_ms: 100
        }
    );
    // The muted leg still hears.
    pb.send(lb, &audio(8, 1, 0, 2, 0xD5));
    assert_eq!(pa.recv().payload()[0], g711::ALAW_TO_ULAW[0xD5]);
    h.engine.command(MediaCommand::SetMute {
        leg: LegId(1),
        muted: false,
    });
    pa.send(la, &audio(0, 3, 320, 1, 0x20));
    // The first packet B gets is the one after unmute.
    assert_eq!(pb.recv().payload()[0], g711::ULAW_TO_ALAW[0x20]);
}

#[test]
fn hold_stops_both_directions() {
    let mut h = Harness::new(None);
    let (pa, la, pb, lb) = bridged(&mut h);
    h.engine.command(MediaCommand::SetHold {
        leg: LegId(1),
        held: true,
    });
    pa.send(la, &audio(0, 1, 0, 1, 0x10));
    pb.send(lb, &audio(8, 1, 0, 2, 0x10));
    wait_until(|| h.stats(LegId(1)).packets_in == 1 && h.stats(LegId(2)).packets_in == 1);
    h.engine.command(MediaCommand::SetHold {
        leg: LegId(1),
        held: false,
    });
    pa.send(la, &audio(0, 2, 160, 1, 0x20));
    pb.send(lb, &audio(8, 2, 160, 2, 0x20));
    assert_eq!(pb.recv().payload()[0], g711::ULAW_TO_ALAW[0x20]);
    assert_eq!(pa.recv().payload()[0], g711::ALAW_TO_ULAW[0x20]);
    wait_until(|| h.stats(LegId(1)).packets_out == 1 && h.stats(LegId(2)).packets_out == 1);
}

#[test]
fn dtmf_detection_dedupes_end_packets_and_survives_lost_ends() {
    let mut h = Harness::new(None);
    let (pa, la, _pb, _lb) = bridged(&mut h);
    pa.send(la, &event(101, 1, 800, 1, 1, false, 400));
    pa.send(la, &event(101, 2, 800, 1, 1, false, 800));
    for s in 3..6 {
        pa.send(la, &event(101, s, 800, 1, 1, true, 960));
    }
    assert_eq!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '1',
            duration_ms: 120
        }
    );
    // '#' whose end packets are all lost, then '*': '#' is reported when '*' starts.
    pa.send(la, &event(101, 6, 4000, 1, 11, false, 400));
    pa.send(la, &event(101, 7, 4000, 1, 11, false, 800));
    pa.send(la, &event(101, 8, 8000, 1, 10, false, 400));
    assert_eq!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '#',
            duration_ms: 100
        }
    );
    // '*' loses its ends too: reported after the detector's timeout.
    assert_eq!(
        h.event(),
        MediaEvent::Dtmf {
            leg: LegId(1),
            digit: '*',
            duration_ms: 50
        }
    );
    h.no_event();
}

#[test]
fn dtmf_generation_sends_the_rfc4733_sequence() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    pa.send(la, &audio(0, 1, 0, 1, 0));
    let before = pb.recv();
    h.engine.command(MediaCommand::SendDtmf {
        leg: LegId(2),
        digits: "5".into(),
        duration_ms: 120,
        gap_ms: 50,
    });
    let pkts: Vec<Pkt> = (0..6).map(|_| pb.recv()).collect();
    assert_eq!(
        h.event(),
        MediaEvent::DtmfSent {
            leg: LegId(2),
            digits: "5".into()
        }
    );
    let durations: Vec<u16> = pkts
        .iter()
        .map(|p| u16::from_be_bytes([p.payload()[2], p.payload()[3]]))
        .collect();
    assert_eq!(durations, [400, 800, 960, 960, 960, 960]);
    let ends: Vec<bool> = pkts.iter().map(|p| p.payload()[1] & 0x80 != 0).collect();
    assert_eq!(ends, [false, false, false, true, true, true]);
    let markers: Vec<bool> = pkts.iter().map(Pkt::marker).collect();
    assert_eq!(markers, [true, false, false, false, false, false]);
    for (i, p) in pkts.iter().enumerate() {
        assert_eq!(p.pt(), 96, "B's telephone-event type");
        assert_eq!(p.payload()[0], 5);
        assert_eq!(p.ssrc(), before.ssrc());
        assert_eq!(p.seq(), before.seq().wrapping_add(1 + i as u16));
        assert_eq!(p.ts(), pkts[0].ts());
    }
    assert!(pkts[0].ts().wrapping_sub(before.ts()) >= 1);
    // A leg without telephone-event: failure, nothing sent.
    let pc = Phone::new();
    h.open(
        LegId(3),
        Some(pc.addr()),
        Some(PayloadMap {
            event_pt: None,
            ..PCMU
        }),
    );
    h.engine.command(MediaCommand::SendDtmf {
        leg: LegId(3),
        digits: "1".into(),
        duration_ms: 100,
        gap_ms: 50,
    });
    assert!(matches!(
        h.event(),
        MediaEvent::DtmfFailed { leg: LegId(3), .. }
    ));
    h.engine.command(MediaCommand::SendDtmf {
        leg: LegId(2),
        digits: "1x".into(),
        duration_ms: 100,
        gap_ms: 50,
    });
    assert!(matches!(
        h.event(),
        MediaEvent::DtmfFailed { leg: LegId(2), .. }
    ));
}

#[test]
fn forwarded_audio_is_suppressed_while_an_event_plays() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    h.engine.command(MediaCommand::SendDtmf {
        leg: LegId(2),
        digits: "9".into(),
        duration_ms: 2000,
        gap_ms: 0,
    });
    let start = pb.recv();
    assert!(start.marker());
    pa.send(la, &audio(0, 1, 0, 1, 0x55));
    wait_until(|| h.stats(LegId(1)).packets_in == 1);
    // Only events reach B while the digit plays (the audio, sent before the
    // 50 ms update, would otherwise arrive first).
    assert_eq!(pb.recv().pt(), 96);
    assert_eq!(pb.recv().pt(), 96);
}

#[test]
fn rtp_timeout_once_per_silence() {
    let mut h = Harness::new(Some(Duration::from_millis(150)));
    let pa = Phone::new();
    let la = h.open(LegId(1), Some(pa.addr()), Some(PCMU));
    // A leg not expected to send (no SDP address yet) never times out.
    h.open(LegId(2), None, None);
    let t0 = Instant::now();
    assert_eq!(h.event(), MediaEvent::RtpTimeout { leg: LegId(1) });
    assert!(t0.elapsed() >= Duration::from_millis(140));
    pa.send(la, &audio(0, 1, 0, 1, 0));
    assert_eq!(h.event(), MediaEvent::RtpTimeout { leg: LegId(1) });
    // Switch-held and sendonly-toward-us legs are expected to be silent.
    h.engine.command(MediaCommand::SetHold {
        leg: LegId(1),
        held: true,
    });
    pa.send(la, &audio(0, 2, 160, 1, 0));
    wait_until(|| h.stats(LegId(1)).packets_in == 2);
    h.engine.command(MediaCommand::Update {
        leg: LegId(1),
        remote: Some(pa.addr()),
        remote_rtcp: None,
        payloads: Some(PCMU),
        remote_sends: false,
        remote_receives: true,
    });
    h.engine.command(MediaCommand::SetHold {
        leg: LegId(1),
        held: false,
    });
    // Leg 1 has been silent longer than leg 3 will be when leg 3 times out:
    // had leg 1 (sendonly toward us now) timed out, its event would come first.
    let pb = Phone::new();
    h.open(LegId(3), Some(pb.addr()), Some(PCMU));
    assert_eq!(h.event(), MediaEvent::RtpTimeout { leg: LegId(3) });
    h.no_event();
}

#[test]
fn rtp_timeout_is_each_legs_own() {
    let mut h = Harness::new(None);
    // Three silent legs that all expect media: one that never times out, two
    // with their own timeouts, opened after it.
    let (pa, pb, pc) = (Phone::new(), Phone::new(), Phone::new());
    h.open_with_timeout(LegId(1), Some(pa.addr()), Some(PCMU), None);
    h.open_with_timeout(
        LegId(2),
        Some(pb.addr()),
        Some(PCMU),
        Some(Duration::from_millis(400)),
    );
    h.open_with_timeout(
        LegId(3),
        Some(pc.addr()),
        Some(PCMU),
        Some(Duration::from_millis(100)),
    );
    // The shortest goes first although it was opened last; leg 1, silent
    // longest, reports nothing (with any timeout up to leg 2's it would
    // have come before leg 2's).
    assert_eq!(h.event(), MediaEvent::RtpTimeout { leg: LegId(3) });
    assert_eq!(h.event(), MediaEvent::RtpTimeout { leg: LegId(2) });
    h.no_event();
}

#[test]
fn loss_and_jitter_reach_the_stats() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    for seq in [1u16, 2, 4, 5, 8] {
        pa.send(la, &audio(0, seq, u32::from(seq) * 160, 1, 0));
        pb.recv();
    }
    let s = h.stats(LegId(1));
    assert_eq!(s.lost, 3);
    assert!(
        s.jitter_ms > 0.0,
        "packets sent back to back arrive early relative to their timestamps"
    );
}

#[test]
fn malformed_packets_are_counted_and_dropped() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    pa.send(la, &[0x80, 0, 1]);
    let mut v1 = audio(0, 1, 0, 1, 0);
    v1[0] = 0x40; // version 1
    pa.send(la, &v1);
    let mut lying = audio(0, 2, 0, 1, 0);
    lying[0] = 0x8f; // claims 15 CSRCs (60 bytes) the packet does not have... it has 160
    lying.truncate(40);
    pa.send(la, &lying);
    pa.send(la, &audio(0, 3, 160, 1, 0x42));
    assert_eq!(pb.recv().payload()[0], g711::ULAW_TO_ALAW[0x42]);
    let s = h.stats(LegId(1));
    assert_eq!((s.malformed, s.packets_in), (3, 4));
}

#[test]
fn rtcp_is_relayed_between_rtcp_ports() {
    let mut h = Harness::new(None);
    let (pa, la, pb, _lb) = bridged(&mut h);
    let rr = [0x80u8, 201, 0, 1, 0, 0, 0, 7];
    let la_rtcp = SocketAddr::new(la.ip(), la.port() + 1);
    pa.rtcp
        .send_to(&[0x40, 201, 0, 1, 0, 0, 0, 7], la_rtcp)
        .unwrap(); // bad version
    pa.rtcp.send_to(&rr, la_rtcp).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = pb.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &rr);
    assert_eq!(h.stats(LegId(1)).rtcp_in, 1);
    assert_eq!(h.stats(LegId(1)).malformed, 1);
    wait_until(|| h.stats(LegId(2)).rtcp_out == 1);
}

/// An RTCP SR (`rtp_ts` in its sender info) or, without it, an RR, with
/// one report block about `about` if given.
fn rtcp_report(sender: u32, rtp_ts: Option<u32>, about: Option<u32>) -> Vec<u8> {
    let mut body = sender.to_be_bytes().to_vec();
    if let Some(ts) = rtp_ts {
        body.extend_from_slice(&[0x22; 8]);
        body.extend_from_slice(&ts.to_be_bytes());
        body.extend_from_slice(&[0x33; 8]);
    }
    if let Some(a) = about {
        body.extend_from_slice(&a.to_be_bytes());
        body.extend_from_slice(&[0x44; 20]);
    }
    let words = (body.len() / 4) as u16;
    let mut v = vec![
        0x80 | u8::from(about.is_some()),
        if rtp_ts.is_some() { 200 } else { 201 },
    ];
    v.extend_from_slice(&words.to_be_bytes());
    v.extend(body);
    v
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn rtcp_of(rtp: SocketAddr) -> SocketAddr {
    SocketAddr::new(rtp.ip(), rtp.port() + 1)
}

#[test]
fn rtcp_ssrcs_follow_the_rtp_rewriting_across_a_rebridge() {
    let mut h = Harness::new(None);
    let (pa, la, pb, lb) = bridged(&mut h);
    // RTP both ways: each phone learns the relay's SSRC for the other.
    pa.send(la, &audio(0, 100, 8000, 0xA1, 0));
    let at_b = pb.recv();
    pb.send(lb, &audio(8, 200, 50_000, 0xB1, 0));
    let at_a = pa.recv();
    assert_ne!(at_b.ssrc(), 0xA1);

    // A's SR: its own SSRC and RTP time as B sees its stream, and its report
    // on what it receives names B's real SSRC.
    let sr = rtcp_report(0xA1, Some(8160), Some(at_a.ssrc()));
    pa.rtcp.send_to(&sr, rtcp_of(la)).unwrap();
    let mut buf = [0u8; 128];
    let (n, _) = pb.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(n, sr.len());
    assert_eq!(be32(&buf, 4), at_b.ssrc());
    assert_eq!(be32(&buf, 16), at_b.ts().wrapping_add(160));
    assert_eq!(be32(&buf, 28), 0xB1);
    assert_eq!(&buf[32..n], &sr[32..], "report figures pass unchanged");

    // B's RR back, the other way round.
    let rr = rtcp_report(0xB1, None, Some(at_b.ssrc()));
    pb.rtcp.send_to(&rr, rtcp_of(lb)).unwrap();
    let (n, _) = pa.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!(n, rr.len());
    assert_eq!((be32(&buf, 4), be32(&buf, 8)), (at_a.ssrc(), 0xA1));

    // Transfer: C replaces A. B keeps hearing one stream, and C's reports
    // arrive under that stream's SSRC too.
    let pc = Phone::new();
    let lc = h.open(LegId(3), Some(pc.addr()), Some(PCMU));
    h.engine.command(MediaCommand::Bridge {
        a: LegId(3),
        b: LegId(2),
    });
    pc.send(lc, &audio(0, 9, 777, 0xC1, 0));
    assert_eq!(pb.recv().ssrc(), at_b.ssrc());
    pc.rtcp
        .send_to(&rtcp_report(0xC1, None, None), rtcp_of(lc))
        .unwrap();
    let (n, _) = pb.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!((n, be32(&buf, 4)), (8, at_b.ssrc()));
    // A stranger's SSRC is left alone, and a broken compound is dropped.
    let mut broken = rtcp_report(0x5555, None, None);
    broken[3] = 7; // length beyond the datagram
    pc.rtcp.send_to(&broken, rtcp_of(lc)).unwrap();
    pc.rtcp
        .send_to(&rtcp_report(0x5555, None, None), rtcp_of(lc))
        .unwrap();
    let (n, _) = pb.rtcp.recv_from(&mut buf).unwrap();
    assert_eq!((n, be32(&buf, 4)), (8, 0x5555));
    assert_eq!(h.stats(LegId(3)).malformed, 1);
}

#[test]
fn open_failures_and_close() {
    let mut h = Harness::new(None);
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    h.engine.command(MediaCommand::Open {
        leg: LegId(1),
        call: "c".into(),
        local: taken.local_addr().unwrap(),
        remote: None,
        remote_rtcp: None,
        payloads: None,
        rtp_timeout: None,
    });
    assert!(matches!(
        h.event(),
        MediaEvent::OpenFailed { leg: LegId(1), .. }
    ));
    let local = h.open(LegId(2), None, None);
    h.engine.command(MediaCommand::Open {
        leg: LegId(2),
        call: "c".into(),
        local: free_pair(),
        remote: None,
        remote_rtcp: None,
        payloads: None,
        rtp_timeout: None,
    });
    assert!(matches!(
        h.event(),
        MediaEvent::OpenFailed { leg: LegId(2), .. }
    ));
    h.engine.command(MediaCommand::Close { leg: LegId(2) });
    wait_until(|| h.engine.stats(LegId(2)).is_none());
    // Both ports are free again.
    UdpSocket::bind(local).unwrap();
    UdpSocket::bind(SocketAddr::new(local.ip(), local.port() + 1)).unwrap();
}

/// What a fake recording sink saw.
#[derive(Default)]
struct Seen {
    writes: Vec<(u8, u8)>,
    finished: bool,
}

struct FakeSink(Arc<Mutex<Seen>>);

impl RecordSink for FakeSink {
    fn write(
        &mut self,
        channel: u8,
        _: Instant,
        _: u32,
        _: u32,
        _: G711,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        self.0.lock().unwrap().writes.push((channel, payload[0]));
        Ok(())
    }
    fn tick(&mut self, _: Instant) -> Result<(), RecordingError> {
        Ok(())
    }
    fn pause(&mut self, _: Instant) {}
    fn resume(&mut self, _: Instant) {}
    fn finish(self: Box<Self>) -> Result<std::path::PathBuf, RecordingError> {
        self.0.lock().unwrap().finished = true;
        Ok("/tmp/fake.wav".into())
    }
}

#[test]
fn recording_taps_what_each_leg_sent_except_muted() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let factory: SinkFactory =
        Arc::new(move |_| Ok(Box::new(FakeSink(s2.clone())) as Box<dyn RecordSink>));
    let mut h = Harness::with_sink(None, factory);
    let (pa, la, pb, lb) = bridged(&mut h);
    h.engine.command(MediaCommand::StartRecording {
        call: "call-1".into(),
        legs: [LegId(1), LegId(2)],
        path: "/tmp/fake.wav".into(),
    });
    assert!(matches!(h.event(), MediaEvent::RecordingStarted { .. }));
    pa.send(la, &audio(0, 1, 0, 1, 0x11));
    pb.recv();
    pb.send(lb, &audio(8, 1, 0, 2, 0x22));
    pa.recv();
    h.engine.command(MediaCommand::SetMute {
        leg: LegId(1),
        muted: true,
    });
    pa.send(la, &audio(0, 2, 160, 1, 0x33));
    pb.send(lb, &audio(8, 2, 160, 2, 0x44));
    pa.recv();
    h.engine.command(MediaCommand::StopRecording {
        call: "call-1".into(),
    });
    assert!(matches!(h.event(), MediaEvent::RecordingStopped { .. }));
    let seen = seen.lock().unwrap();
    // Recorded as received, before law conversion; the muted packet is not.
    assert_eq!(seen.writes, vec![(0, 0x11), (1, 0x22), (1, 0x44)]);
    assert!(seen.finished);
}

#[test]
fn records_a_stereo_wav_through_the_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("call.wav");
    let mut h = Harness::new(None);
    let (pa, la, pb, lb) = bridged(&mut h);
    h.engine.command(MediaCommand::StartRecording {
        call: "call-1".into(),
        legs: [LegId(1), LegId(2)],
        path: path.clone(),
    });
    assert_eq!(
        h.event(),
        MediaEvent::RecordingStarted {
            call: "call-1".into(),
            path: path.clone()
        }
    );
    for i in 0..5u16 {
        pa.send(la, &audio(0, i, u32::from(i) * 160, 1, 0x80));
        pb.send(lb, &audio(8, i, u32::from(i) * 160, 2, 0x80));
        pb.recv();
        pa.recv();
    }
    h.engine.command(MediaCommand::PauseRecording {
        call: "call-1".into(),
    });
    h.engine.command(MediaCommand::ResumeRecording {
        call: "call-1".into(),
    });
    h.engine.command(MediaCommand::StopRecording {
        call: "call-1".into(),
    });
    let MediaEvent::RecordingStopped { call, path: done } = h.event() else {
        panic!("recording stopped");
    };
    assert_eq!(call, "call-1");
    let wav = hound::WavReader::open(&done).unwrap();
    assert_eq!(wav.spec().channels, 2);
    assert!(wav.len() > 0);
    // A second start on an unknown leg fails cleanly.
    h.engine.command(MediaCommand::StartRecording {
        call: "call-2".into(),
        legs: [LegId(1), LegId(99)],
        path: dir.path().join("x.wav"),
    });
    assert!(matches!(h.event(), MediaEvent::RecordingFailed { .. }));
}
