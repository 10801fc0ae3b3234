//! Media: the RTP/RTCP relay between the two legs of a call, conference
//! rooms mixed on the relay's clock ([`mixer`]), RFC 4733 DTMF detection,
//! forwarding and generation, per-leg statistics and call recording.
//!
//! Two legs bridged are relayed packet by packet without decoding (RFC
//! 3550 §7: the relay is a translator); legs in a room are decoded, mixed
//! and re-encoded (§7.1: the mixer is the synchronisation source of what
//! each member hears). A leg is decoded only while the call layer keeps it
//! in a room.
//!
//! Media is a separate path from SIP. The call layer steers it with
//! [`MediaCommand`]s through a cheap [`MediaEngine`] handle and receives
//! [`MediaEvent`]s on a channel; nothing here parses or builds SIP or SDP.
//!
//! # Crate choice
//!
//! RTP headers are validated with [`rtp_types`] (0.1, deps: `smallvec`,
//! `thiserror`). It parses zero-copy over the receive buffer (`RtpPacket` is a
//! wrapper around `&[u8]`, every field read on demand), checks version, CSRC
//! count, extension length and padding, and `RtpPacketMut` rewrites SSRC,
//! sequence number, timestamp, payload type and marker in place. The webrtc-rs
//! line was evaluated too: `rtp` 0.17 (tokio) is frozen, and its sans-IO
//! successor `rtc-rtp` 0.21 unmarshals into an owned `Packet` (`Bytes` payload,
//! `Vec` of CSRCs and extensions) and pulls `bytes`, `rand` 0.10, `serde` and
//! `rtc-shared`: an allocation per packet and a heavier tree for a relay that
//! only touches twelve header bytes. RTCP needs only its SR/RR header fields
//! checked and a few SSRCs swapped ([`rtcp`], a bounds-checked walk of about
//! a hundred lines), so no RTCP crate is used.
//!
//! # Threads
//!
//! One dedicated OS thread (`sb-media`) owns every leg and runs a
//! level-triggered epoll loop over all RTP/RTCP sockets ([`poller`]): one
//! `recvfrom` and at most one `send` per packet, or one `recvmmsg` and one
//! `sendmmsg` for a socket that has queued several ([`mmsg`], see
//! [`engine`]); no allocation, no lock on the per-packet path (counters are
//! atomics read by [`MediaEngine::stats`]). The same loop ticks the
//! conference rooms every 20 ms (its wait timeout is the mixer's next due
//! frame) and sends each member its mix, one `send` per member per frame.
//! Recording files are written by a second thread (`sb-media-rec`, [`record`])
//! fed by a channel, so disk latency never stalls the relay.
//!
//! Files: [`ports`] (port pool), [`rtp`] (outgoing stream continuity and
//! payload-type mapping), [`stats`]
//! (counters, RFC 3550 loss and jitter), [`dtmf`] (RFC 4733 detect and
//! generate), [`leg`] (one leg's sockets and state), [`mixer`] (rooms,
//! jitter buffers, concealment, mixing; sans-IO), [`engine`] (handle, relay
//! loop, and `engine/rooms.rs` which sends what the mixer mixes), [`rtcp`] (RTCP validation and SSRC translation), [`record`]
//! (recorder thread), [`poller`] and [`mmsg`] (epoll wrapper, batched
//! datagram I/O: with the generator the only `unsafe` in media), [`bench`](mod@bench)
//! (generator and helpers shared by the
//! RTP generator binary and the relay benchmark). G.711 itself (law
//! conversion, decoding and encoding) is `crate::codec::g711`, shared with
//! the recorder.

// The libc FFI of the relay (epoll, eventfd, sendmmsg/recvmmsg) and of the
// RTP generator: the only `unsafe` in the library besides transport/udp.rs
// and driver/limits.rs; each block says why it is sound.
#[allow(unsafe_code)]
pub mod bench;
pub mod dtmf;
pub mod engine;
pub mod leg;
pub mod mixer;
#[allow(unsafe_code)]
pub mod mmsg;
#[allow(unsafe_code)]
pub mod poller;
pub mod ports;
pub mod record;
pub mod rtcp;
pub mod rtp;
pub mod stats;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use engine::MediaEngine;
pub use mixer::{Direction, DtmfRoute, MixerStats, Role};
pub use ports::{take_bound, MediaPorts, PortPool};
pub use stats::LegStats;

/// One call leg as the call layer names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "l{}", self.0)
    }
}

/// The two G.711 laws the switch relays (and converts between); the codec
/// itself is `crate::codec::g711`, shared with the recorder.
pub use crate::codec::G711;

/// What was negotiated on one leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadMap {
    pub audio_pt: u8,
    pub codec: G711,
    pub event_pt: Option<u8>,
}

/// Commands from the call layer. Errors come back as [`MediaEvent`]s.
#[derive(Clone, Debug)]
pub enum MediaCommand {
    /// Bind local (RTP) and local.port()+1 (RTCP). `remote` = RTP address from
    /// the peer's SDP (None until known); RTCP to remote port+1 unless
    /// `remote_rtcp`. `rtp_timeout`: silence from the leg this long is
    /// reported ([`MediaEvent::RtpTimeout`]); `None`: never (each leg has its
    /// profile's value).
    Open {
        leg: LegId,
        call: String,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        remote_rtcp: Option<SocketAddr>,
        payloads: Option<PayloadMap>,
        rtp_timeout: Option<Duration>,
    },
    /// New SDP from this leg: where it wants media, its payload types, whether
    /// it will send to us and whether we may send to it.
    Update {
        leg: LegId,
        remote: Option<SocketAddr>,
        remote_rtcp: Option<SocketAddr>,
        payloads: Option<PayloadMap>,
        remote_sends: bool,
        remote_receives: bool,
    },
    /// Forward a->b and b->a (replaces any earlier bridge of either leg).
    /// Early media uses it too.
    Bridge {
        a: LegId,
        b: LegId,
    },
    Unbridge {
        leg: LegId,
    },
    /// Audio received from `leg` is no longer forwarded (DTMF still
    /// detected/reported but not forwarded); the muted leg still hears.
    SetMute {
        leg: LegId,
        muted: bool,
    },
    /// Switch-side hold of `leg`: nothing is forwarded to it nor from it.
    SetHold {
        leg: LegId,
        held: bool,
    },
    /// RFC 4733 digits generated into `leg` (0-9 * # A-D). See [`dtmf`].
    SendDtmf {
        leg: LegId,
        digits: String,
        duration_ms: u32,
        gap_ms: u32,
    },
    /// Stereo recording of the call: channel 0 is what `legs[0]` says,
    /// channel 1 what it hears. In a two-party call that is `legs[1]`'s
    /// audio; while `legs[0]` is in a conference room, channel 1 is the mix
    /// the room sends it (everyone else, and any whisper meant for it), and
    /// `legs[1]`'s own audio is in that mix. Put the agent first: the file
    /// is then the agent on the left, everyone else on the right, and
    /// follows the call into and out of a room by itself.
    StartRecording {
        call: String,
        legs: [LegId; 2],
        path: PathBuf,
    },
    PauseRecording {
        call: String,
    },
    ResumeRecording {
        call: String,
    },
    StopRecording {
        call: String,
    },
    Close {
        leg: LegId,
    },
    /// Conference room `room` (created on first use) holds exactly
    /// `members`, each with its [`Role`]: a leg listed leaves its bridge or
    /// other room and from now on is decoded and mixed ([`mixer`]); a member
    /// not listed again leaves the room unbridged (`Bridge` it, or `Mix`
    /// the two that remain, or `Close` it); an empty list dissolves the
    /// room. Hold and mute keep their meaning in a room (held: hears and
    /// says nothing; muted: hears). `dtmf` says where RFC 4733 events from
    /// members go; they are reported as [`MediaEvent::Dtmf`] either way. A
    /// two-party call that needs a gain is a room of two parties.
    Mix {
        room: String,
        members: Vec<(LegId, Role)>,
        dtmf: DtmfRoute,
    },
    /// Change a member's role (listen, whisper, barge) without touching its
    /// audio path: nobody in the room hears a switch.
    SetRole {
        leg: LegId,
        role: Role,
    },
    /// Take `leg` out of its room, unbridged; a room left empty goes.
    Leave {
        leg: LegId,
    },
    /// Gain on `leg`, in dB (clamped to -12..=12): `In` scales what it
    /// says, `Out` what it hears. Kept with the leg; applied while it is in
    /// a room (the two-party path forwards packets untouched).
    SetGain {
        leg: LegId,
        direction: Direction,
        db: f32,
    },
}

/// Reports to the call layer.
#[derive(Clone, Debug, PartialEq)]
pub enum MediaEvent {
    /// Symmetric RTP: the first packet's source differs from the SDP address
    /// (NAT); we now send there.
    Latched {
        leg: LegId,
        remote: SocketAddr,
    },
    /// Once per RFC 4733 event.
    Dtmf {
        leg: LegId,
        digit: char,
        duration_ms: u32,
    },
    DtmfSent {
        leg: LegId,
        digits: String,
    },
    DtmfFailed {
        leg: LegId,
        reason: String,
    },
    /// Nothing received for the leg's `rtp_timeout` while the remote sends
    /// (and not switch-held); once per silence.
    RtpTimeout {
        leg: LegId,
    },
    RecordingStarted {
        call: String,
        path: PathBuf,
    },
    RecordingStopped {
        call: String,
        path: PathBuf,
    },
    RecordingFailed {
        call: String,
        reason: String,
    },
    OpenFailed {
        leg: LegId,
        reason: String,
    },
}
