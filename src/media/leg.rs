//! One leg's media state as the relay thread owns it: its two sockets, where
//! to send (SDP address, then the latched source), negotiated payload types,
//! mute/hold/direction flags, its outgoing stream, receive statistics, DTMF
//! detector and generator, its recording taps, and whether it is in a
//! conference room (the mixer then holds its receive side) with its gains.
//!
//! Only the relay thread touches a `Leg`, so nothing here locks; the counters
//! are shared with [`super::MediaEngine::stats`] through an `Arc` of atomics.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dtmf::{DtmfDetector, DtmfSender};
use super::mixer::{Gain, LegState};
use super::mmsg::Target;
use super::record::Tap;
use super::rtp::OutStream;
use super::stats::{LegCounters, ReceiveStats};
use super::{LegId, PayloadMap, G711};

#[derive(Debug)]
pub struct Leg {
    pub id: LegId,
    pub call: String,
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// RTP address from the peer's SDP.
    pub sdp_remote: Option<SocketAddr>,
    /// Explicit RTCP address from the SDP (`a=rtcp`), if any.
    pub sdp_rtcp: Option<SocketAddr>,
    /// Source of the first RTP packet since Open/Update (symmetric RTP).
    pub latched: Option<SocketAddr>,
    /// Source of the first RTCP packet since Open/Update.
    pub latched_rtcp: Option<SocketAddr>,
    pub payloads: Option<PayloadMap>,
    /// Slot of the bridged leg.
    pub peer: Option<usize>,
    pub muted: bool,
    pub held: bool,
    pub remote_sends: bool,
    pub remote_receives: bool,
    pub out: OutStream,
    pub rx: ReceiveStats,
    pub detector: DtmfDetector,
    pub sender: DtmfSender,
    pub counters: Arc<LegCounters>,
    /// Last RTP arrival (or the moment silence started to matter).
    pub last_rx: Instant,
    /// Silence this long is reported once; `None`: never (the leg's profile says).
    pub rtp_timeout: Option<Duration>,
    pub timeout_reported: bool,
    pub tap: Option<Tap>,
    /// In a conference room: its audio goes to the mixer (decoded), not to
    /// `peer`, and it hears the room's mix.
    pub in_room: bool,
    /// Gains applied by the mixer to what the leg says and what it hears.
    pub gain_in: Gain,
    pub gain_out: Gain,
    /// Recording tap of the mix this leg hears (the recorded leg in a room).
    pub mix_tap: Option<Tap>,
    /// The relay round that last read the RTP socket (batching heuristic).
    pub rtp_round: u64,
}

impl Leg {
    pub fn new(id: LegId, call: String, rtp: UdpSocket, rtcp: UdpSocket, now: Instant) -> Self {
        Leg {
            id,
            call,
            rtp,
            rtcp,
            sdp_remote: None,
            sdp_rtcp: None,
            latched: None,
            latched_rtcp: None,
            payloads: None,
            peer: None,
            muted: false,
            held: false,
            remote_sends: true,
            remote_receives: true,
            out: OutStream::random(),
            rx: ReceiveStats::default(),
            detector: DtmfDetector::default(),
            sender: DtmfSender::default(),
            counters: Arc::new(LegCounters::default()),
            last_rx: now,
            rtp_timeout: None,
            timeout_reported: false,
            tap: None,
            in_room: false,
            gain_in: Gain::UNITY,
            gain_out: Gain::UNITY,
            mix_tap: None,
            rtp_round: 0,
        }
    }

    /// Latch RTP onto `src`: the socket is connected to it, so the kernel
    /// drops strangers (RTP bleed) and sends skip the per-packet route lookup.
    pub fn latch(&mut self, src: SocketAddr) {
        self.latched = Some(src);
        if let Err(e) = self.rtp.connect(src) {
            tracing::debug!(leg = ?self.id, "connect to latched {src}: {e}");
        }
    }

    /// Forget the latch (new SDP): receive from anyone again.
    pub fn unlatch(&mut self) {
        if self.latched.take().is_some() {
            let _ = super::poller::disconnect(self.rtp.as_raw_fd());
        }
        self.latched_rtcp = None;
    }

    /// How RTP reaches this leg: through the connected socket once latched,
    /// else to the SDP address; `None` while neither is known.
    #[inline]
    pub fn rtp_target(&self) -> Option<Target> {
        match (self.latched, self.sdp_remote) {
            (Some(_), _) => Some(Target::Connected),
            (None, Some(dest)) => Some(Target::To(dest)),
            (None, None) => None,
        }
    }

    /// Send one RTP packet toward this leg (generated DTMF); true when it left.
    pub fn send_rtp(&self, pkt: &[u8]) -> bool {
        match self.rtp_target() {
            Some(Target::Connected) => self.rtp.send(pkt).is_ok(),
            Some(Target::To(dest)) => self.rtp.send_to(pkt, dest).is_ok(),
            None => false,
        }
    }

    /// Where RTCP goes: the latched RTCP source, else `a=rtcp`, else the RTP
    /// address (latched first, for NAT) with port + 1 (RFC 3550 §11).
    pub fn rtcp_dest(&self) -> Option<SocketAddr> {
        self.latched_rtcp.or(self.sdp_rtcp).or_else(|| {
            let mut a = self.latched.or(self.sdp_remote)?;
            a.set_port(a.port().checked_add(1)?);
            Some(a)
        })
    }

    /// What the mixer needs to know of this leg.
    pub fn mix_state(&self) -> LegState {
        LegState {
            law: self.payloads.map_or(G711::Pcmu, |p| p.codec),
            held: self.held,
            muted: self.muted,
            gain_in: self.gain_in,
            gain_out: self.gain_out,
        }
    }

    /// Whether silence from this leg should count toward an RTP timeout.
    pub fn expects_media(&self) -> bool {
        self.remote_sends && !self.held && (self.sdp_remote.is_some() || self.latched.is_some())
    }
}
