//! The media engine: the [`MediaEngine`] handle the call layer holds, and the
//! relay thread that owns every leg.
//!
//! The handle pushes commands onto a channel and wakes the relay through an
//! eventfd; it never waits for the relay. Errors come back as events.
//!
//! The relay thread (`sb-media`) runs one level-triggered epoll loop over all
//! RTP/RTCP sockets ([`super::poller`]). Per packet: zero-copy validation
//! with `rtp_types`, statistics, DTMF detection, then the 12-byte header is
//! rewritten in place for the receiving leg (SSRC, sequence, timestamp,
//! marker, payload type; G.711 law converted in place when the legs differ).
//! Once a leg has latched, its RTP socket is `connect`ed to the latched
//! source: the kernel drops other sources (RTP bleed) and sends skip the
//! per-packet route lookup. No allocation, no lock: datagrams land in
//! buffers allocated once ([`super::mmsg`]), legs live in a slab owned by
//! this thread, and a socket's epoll token is its slot (times two, plus one
//! for RTCP). Commands are applied between batches, so a token never
//! outlives its leg within a batch.
//!
//! How a socket is read depends on what it holds. At 50 packets/s a socket
//! nearly always holds one datagram when reported, and one `recvfrom` plus
//! one `send` is then cheapest: `recvmmsg` makes a second, failing attempt
//! to find the queue empty, and the `msghdr` path of both `*mmsg` calls
//! costs more per datagram (on the 2-core test machine, about 440 ns more
//! per receive and 240 ns per send, of about 5 us per relayed packet). When
//! the relay falls behind, sockets queue several datagrams; a socket reported
//! by two consecutive waits (level-triggered: it still held some), or every
//! socket while a wait comes back full, is then read with one `recvmmsg` of
//! up to 32 and answered with one `sendmmsg`. That lifts the sustainable
//! rate where it matters, most likely because a leg's kernel socket and
//! relay state stay in cache for its whole backlog (a hot-cache loop over
//! one socket shows no gain): at 2,000 calls one `recvfrom`/`send` per
//! packet falls behind (9-10 % of packets still queued at the end), this
//! keeps up with no loss (README, benchmarks).
//!
//! RTCP is relayed between the legs' RTCP ports after an RFC 3550 A.2
//! validity check, with its SSRCs translated like the RTP it describes
//! ([`super::rtcp`]). A leg in a conference room has no peer: its RTCP is
//! counted and not forwarded (no member's report describes a mix).
//!
//! Conference rooms (`rooms.rs`): the packet path hands a room member's
//! audio to the [`super::mixer`] (decoded into its jitter buffer) instead
//! of forwarding it; the loop's wait ends at the mixer's next due frame,
//! and each tick's frames leave on the listeners' own sockets. The mixer
//! never sees a socket or the clock: this thread passes `now` in.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::dtmf::{DtmfAction, DtmfError};
use super::leg::Leg;
use super::mixer::Mixer;
use super::mmsg::Batch;
use super::poller::{Events, Poller, Waker};
use super::record::{self, RecMsg, SinkFactory};
use super::rtp;
use super::stats::{LegCounters, LegStats, MixerCounters};
use super::{LegId, MediaCommand, MediaEvent};

/// epoll token of the command waker (slots never get this high).
const WAKE_TOKEN: u64 = u64::MAX;
/// How often RTP timeouts and lost DTMF ends are checked.
const HOUSEKEEPING: Duration = Duration::from_millis(20);
/// Readiness reports taken per `epoll_wait`.
const EPOLL_EVENTS: usize = 1024;

mod packet;
mod rooms;

type StatsMap = Arc<RwLock<HashMap<LegId, Arc<LegCounters>>>>;

enum Msg {
    Cmd(MediaCommand),
    Shutdown,
}

struct Shared {
    tx: Sender<Msg>,
    waker: Arc<Waker>,
    stats: StatsMap,
    mixer: Arc<MixerCounters>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Last handle gone: let the relay thread close every socket and exit.
        let _ = self.tx.send(Msg::Shutdown);
        self.waker.wake();
    }
}

/// Cheap, cloneable handle to the media engine.
#[derive(Clone)]
pub struct MediaEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine").finish_non_exhaustive()
    }
}

impl MediaEngine {
    /// Start the relay and recorder threads. It does not need a tokio runtime
    /// (it runs its own threads), but is safe to call inside one; events go
    /// to the tokio channel `events`. Recordings are written by
    /// `crate::recording`.
    pub fn start(events: UnboundedSender<MediaEvent>) -> Self {
        Self::start_with_sink(events, super::record::default_factory())
    }

    /// As [`Self::start`] with another recording writer (tests, other formats).
    // Start-up only: without its eventfd and threads the process cannot
    // relay at all, and nothing a peer sends reaches these.
    #[allow(clippy::expect_used)]
    pub fn start_with_sink(events: UnboundedSender<MediaEvent>, sink: SinkFactory) -> Self {
        let (tx, rx) = mpsc::channel();
        let stats: StatsMap = Arc::default();
        let mixer_counters: Arc<MixerCounters> = Arc::default();
        let setup = Poller::new().and_then(|p| Ok((p, Waker::new()?)));
        let (poller, waker) = match setup {
            Ok(pw) => pw,
            Err(e) => {
                // Without epoll nothing can be relayed: answer every Open with
                // the reason instead of panicking inside the call layer.
                tracing::error!("media engine cannot start: {e}");
                let waker = Arc::new(Waker::new().expect("eventfd for a failed media engine"));
                let reason = e.to_string();
                let ev = events.clone();
                thread::Builder::new()
                    .name("sb-media".into())
                    .spawn(move || failed_loop(rx, ev, reason))
                    .expect("spawn media thread");
                return MediaEngine {
                    shared: Arc::new(Shared {
                        tx,
                        waker,
                        stats,
                        mixer: mixer_counters,
                    }),
                };
            }
        };
        let waker = Arc::new(waker);
        poller
            .add(waker.raw_fd(), WAKE_TOKEN)
            .expect("register waker with a fresh epoll");
        let (rec_tx, rec_rx) = mpsc::channel();
        let rec_events = events.clone();
        thread::Builder::new()
            .name("sb-media-rec".into())
            .spawn(move || record::run(rec_rx, sink, rec_events))
            .expect("spawn recorder thread");
        let relay = Relay {
            poller,
            waker: waker.clone(),
            rx,
            events,
            legs: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            stats: stats.clone(),
            epoch: Instant::now(),
            dtmf_active: Vec::new(),
            rec_tx,
            recordings: HashMap::new(),
            next_rec_id: 1,
            next_housekeeping: Instant::now() + HOUSEKEEPING,
            round: 0,
            behind: false,
            mixer: Mixer::new(),
            mixer_counters: mixer_counters.clone(),
        };
        thread::Builder::new()
            .name("sb-media".into())
            .spawn(move || relay.run())
            .expect("spawn media thread");
        MediaEngine {
            shared: Arc::new(Shared {
                tx,
                waker,
                stats,
                mixer: mixer_counters,
            }),
        }
    }

    /// Queue a command. Never blocks; errors come back as events.
    pub fn command(&self, cmd: MediaCommand) {
        if self.shared.tx.send(Msg::Cmd(cmd)).is_ok() {
            self.shared.waker.wake();
        }
    }

    /// The conference mixer's counters (rooms, frames, late frames, ...),
    /// as of the relay's last tick.
    pub fn mixer_stats(&self) -> super::MixerStats {
        self.shared.mixer.snapshot()
    }

    /// Counters of an open leg, readable from any thread.
    pub fn stats(&self, leg: LegId) -> Option<LegStats> {
        let map = self.shared.stats.read().unwrap_or_else(|e| e.into_inner());
        map.get(&leg).map(|c| c.snapshot())
    }
}

fn failed_loop(rx: Receiver<Msg>, events: UnboundedSender<MediaEvent>, reason: String) {
    while let Ok(Msg::Cmd(cmd)) = rx.recv() {
        if let MediaCommand::Open { leg, .. } = cmd {
            let _ = events.send(MediaEvent::OpenFailed {
                leg,
                reason: reason.clone(),
            });
        }
    }
}

/// Typed reasons an Open fails.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("leg already open")]
    AlreadyOpen,
    #[error("cannot bind RTP {0}: {1}")]
    BindRtp(SocketAddr, io::Error),
    #[error("cannot bind RTCP {0}: {1}")]
    BindRtcp(SocketAddr, io::Error),
    #[error("socket setup: {0}")]
    Setup(io::Error),
}

struct Recording {
    id: u64,
    legs: [LegId; 2],
}

struct Relay {
    poller: Poller,
    waker: Arc<Waker>,
    rx: Receiver<Msg>,
    events: UnboundedSender<MediaEvent>,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    by_id: HashMap<LegId, usize>,
    stats: StatsMap,
    /// Origin of the local arrival clock used for jitter.
    epoch: Instant,
    /// Slots with DTMF queued.
    dtmf_active: Vec<usize>,
    rec_tx: Sender<RecMsg>,
    recordings: HashMap<String, Recording>,
    next_rec_id: u64,
    next_housekeeping: Instant,
    /// Count of `epoll_wait`s (see [`Relay::on_rtp`]).
    round: u64,
    /// The last wait reported as many sockets as it could take.
    behind: bool,
    /// Conference rooms ([`super::mixer`]); ticked from this loop.
    mixer: Mixer,
    mixer_counters: Arc<MixerCounters>,
}

/// Write the 12-byte header of a generated packet.
fn header(buf: &mut [u8], pt: u8, r: rtp::Rewrite) {
    buf[0] = 0x80;
    buf[1] = (u8::from(r.marker) << 7) | (pt & 0x7f);
    buf[2..4].copy_from_slice(&r.seq.to_be_bytes());
    buf[4..8].copy_from_slice(&r.ts.to_be_bytes());
    buf[8..12].copy_from_slice(&r.ssrc.to_be_bytes());
}

impl Relay {
    fn run(mut self) {
        let mut events = Events::with_capacity(EPOLL_EVENTS);
        let mut batch = Batch::new();
        loop {
            let timeout = self
                .next_deadline()
                .saturating_duration_since(Instant::now());
            if let Err(e) = self.poller.wait(&mut events, Some(timeout)) {
                tracing::error!("media epoll_wait: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            self.round = self.round.wrapping_add(1);
            // More sockets ready than one wait takes: the relay is behind.
            self.behind = events.len() == events.capacity();
            // Commands first: a command sent before a packet must apply to it
            // (bridge, then media). A stale token of a leg closed here finds an
            // empty slot, or a new leg's socket with nothing to read.
            if events.tokens().any(|t| t == WAKE_TOKEN) {
                self.waker.drain();
                if !self.drain_commands() {
                    break;
                }
            }
            for token in events.tokens() {
                if token == WAKE_TOKEN {
                    continue;
                } else if token & 1 == 0 {
                    self.on_rtp((token >> 1) as usize, &mut batch);
                } else {
                    self.on_rtcp((token >> 1) as usize, &mut batch);
                }
            }
            let now = Instant::now();
            if !self.dtmf_active.is_empty() {
                self.run_dtmf(now);
            }
            if self.mixer.poll_timeout().is_some_and(|due| now >= due) {
                self.run_mixer(now);
            }
            if now >= self.next_housekeeping {
                self.housekeeping(now);
                self.next_housekeeping = now + HOUSEKEEPING;
            }
        }
        // Shutdown: stop recordings (the recorder thread closes the files).
        for (_, r) in self.recordings.drain() {
            let _ = self.rec_tx.send(RecMsg::Stop { id: r.id });
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut t = self.next_housekeeping;
        if let Some(due) = self.mixer.poll_timeout() {
            t = t.min(due);
        }
        for &slot in &self.dtmf_active {
            if let Some(d) = self.legs[slot].as_ref().and_then(|l| l.sender.deadline()) {
                t = t.min(d);
            }
        }
        t
    }

    fn emit(&self, ev: MediaEvent) {
        let _ = self.events.send(ev);
    }

    // ---- DTMF generation ----------------------------------------------

    fn run_dtmf(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.dtmf_active.len() {
            let slot = self.dtmf_active[i];
            let done = match self.legs[slot].as_mut() {
                None => true,
                Some(leg) => {
                    while let Some(action) = leg.sender.poll(now) {
                        match action {
                            DtmfAction::Packet { begin, at, payload } => {
                                let r = if begin {
                                    leg.out.begin_event(at)
                                } else {
                                    leg.out.event_packet(at)
                                };
                                let pt = leg.payloads.and_then(|p| p.event_pt).unwrap_or(101);
                                let mut pkt = [0u8; 16];
                                header(&mut pkt, pt, r);
                                pkt[12..].copy_from_slice(&payload);
                                if leg.remote_receives && leg.send_rtp(&pkt) {
                                    leg.counters.rtp_out(pkt.len());
                                }
                            }
                            DtmfAction::Sent { digits } => {
                                let _ = self.events.send(MediaEvent::DtmfSent {
                                    leg: leg.id,
                                    digits,
                                });
                            }
                        }
                    }
                    leg.sender.idle()
                }
            };
            if done {
                self.dtmf_active.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    // ---- housekeeping -------------------------------------------------

    fn housekeeping(&mut self, now: Instant) {
        for leg in self.legs.iter_mut().flatten() {
            if let Some(d) = leg.detector.on_timeout(now) {
                let _ = self.events.send(MediaEvent::Dtmf {
                    leg: leg.id,
                    digit: d.digit,
                    duration_ms: d.duration_ms,
                });
            }
            if let Some(t) = leg.rtp_timeout {
                if !leg.timeout_reported
                    && leg.expects_media()
                    && now.saturating_duration_since(leg.last_rx) >= t
                {
                    leg.timeout_reported = true;
                    let _ = self.events.send(MediaEvent::RtpTimeout { leg: leg.id });
                }
            }
        }
    }

    // ---- commands -----------------------------------------------------

    /// Apply queued commands; false on shutdown.
    fn drain_commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Msg::Cmd(cmd)) => self.apply(cmd),
                Ok(Msg::Shutdown) | Err(mpsc::TryRecvError::Disconnected) => return false,
                Err(mpsc::TryRecvError::Empty) => return true,
            }
        }
    }

    fn slot(&self, leg: LegId) -> Option<usize> {
        self.by_id.get(&leg).copied()
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        let slot = self.slot(leg)?;
        self.legs[slot].as_mut()
    }

    fn apply(&mut self, cmd: MediaCommand) {
        let now = Instant::now();
        match cmd {
            MediaCommand::Open {
                leg,
                call,
                local,
                remote,
                remote_rtcp,
                payloads,
                rtp_timeout,
            } => match self.open(leg, call, local, remote, remote_rtcp, payloads, now) {
                Ok(()) => {
                    if let Some(l) = self.leg_mut(leg) {
                        l.rtp_timeout = rtp_timeout;
                    }
                }
                Err(e) => self.emit(MediaEvent::OpenFailed {
                    leg,
                    reason: e.to_string(),
                }),
            },
            MediaCommand::Update {
                leg,
                remote,
                remote_rtcp,
                payloads,
                remote_sends,
                remote_receives,
            } => {
                let Some(l) = self.leg_mut(leg) else {
                    tracing::debug!(?leg, "media update for unknown leg");
                    return;
                };
                if l.sdp_remote != remote {
                    // Media moves: silence counts from now.
                    l.last_rx = now;
                }
                l.sdp_remote = remote;
                l.sdp_rtcp = remote_rtcp;
                l.payloads = payloads;
                // A new offer/answer may move the phone: latch afresh.
                l.unlatch();
                if remote_sends && !l.remote_sends {
                    l.last_rx = now;
                }
                l.remote_sends = remote_sends;
                l.remote_receives = remote_receives;
                l.timeout_reported = false;
                let state = l.mix_state();
                self.mixer.set_state(leg, state);
            }
            MediaCommand::Bridge { a, b } => {
                let (Some(sa), Some(sb)) = (self.slot(a), self.slot(b)) else {
                    tracing::warn!(?a, ?b, "bridge of unknown leg");
                    return;
                };
                if sa == sb {
                    tracing::warn!(?a, "bridge of a leg with itself");
                    return;
                }
                // A bridge replaces a room, as it replaces another bridge.
                self.leave_room(a);
                self.leave_room(b);
                self.unbridge(sa);
                self.unbridge(sb);
                if let Some(l) = self.legs[sa].as_mut() {
                    l.peer = Some(sb);
                }
                if let Some(l) = self.legs[sb].as_mut() {
                    l.peer = Some(sa);
                }
            }
            MediaCommand::Unbridge { leg } => {
                if let Some(s) = self.slot(leg) {
                    self.unbridge(s);
                }
            }
            MediaCommand::SetMute { leg, muted } => {
                if let Some(l) = self.leg_mut(leg) {
                    l.muted = muted;
                    let state = l.mix_state();
                    self.mixer.set_state(leg, state);
                }
            }
            MediaCommand::SetHold { leg, held } => {
                if let Some(l) = self.leg_mut(leg) {
                    if l.held && !held {
                        // Silence while held was ours; the timeout restarts.
                        l.last_rx = now;
                        l.timeout_reported = false;
                    }
                    l.held = held;
                    let state = l.mix_state();
                    self.mixer.set_state(leg, state);
                }
            }
            MediaCommand::SendDtmf {
                leg,
                digits,
                duration_ms,
                gap_ms,
            } => self.send_dtmf(leg, digits, duration_ms, gap_ms, now),
            MediaCommand::StartRecording { call, legs, path } => {
                self.start_recording(call, legs, path)
            }
            MediaCommand::PauseRecording { call } => {
                if let Some(r) = self.recordings.get(&call) {
                    let _ = self.rec_tx.send(RecMsg::Pause { id: r.id, at: now });
                }
            }
            MediaCommand::ResumeRecording { call } => {
                if let Some(r) = self.recordings.get(&call) {
                    let _ = self.rec_tx.send(RecMsg::Resume { id: r.id, at: now });
                }
            }
            MediaCommand::StopRecording { call } => self.stop_recording(&call),
            MediaCommand::Close { leg } => self.close(leg),
            MediaCommand::Mix {
                room,
                members,
                dtmf,
            } => self.mix(&room, &members, dtmf, now),
            MediaCommand::SetRole { leg, role } => {
                if !self.mixer.set_role(leg, role) {
                    tracing::debug!(?leg, "role for a leg in no room");
                }
            }
            MediaCommand::Leave { leg } => self.leave_room(leg),
            MediaCommand::SetGain { leg, direction, db } => self.set_gain(leg, direction, db),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        id: LegId,
        call: String,
        local: SocketAddr,
        remote: Option<SocketAddr>,
        remote_rtcp: Option<SocketAddr>,
        payloads: Option<super::PayloadMap>,
        now: Instant,
    ) -> Result<(), OpenError> {
        if self.by_id.contains_key(&id) {
            return Err(OpenError::AlreadyOpen);
        }
        // Bound when the port was allocated (before the SDP naming it left),
        // or, for a leg opened without that, here.
        let (rtp, rtcp) = match super::take_bound(local) {
            Some(pair) => pair,
            None => {
                let rtp = UdpSocket::bind(local).map_err(|e| OpenError::BindRtp(local, e))?;
                let mut rtcp_addr = rtp.local_addr().map_err(OpenError::Setup)?;
                rtcp_addr.set_port(rtcp_addr.port().wrapping_add(1));
                let rtcp =
                    UdpSocket::bind(rtcp_addr).map_err(|e| OpenError::BindRtcp(rtcp_addr, e))?;
                rtp.set_nonblocking(true).map_err(OpenError::Setup)?;
                rtcp.set_nonblocking(true).map_err(OpenError::Setup)?;
                (rtp, rtcp)
            }
        };
        let slot = self.free.pop().unwrap_or_else(|| {
            self.legs.push(None);
            self.legs.len() - 1
        });
        let token = (slot as u64) << 1;
        if let Err(e) = self
            .poller
            .add(rtp.as_raw_fd(), token)
            .and_then(|_| self.poller.add(rtcp.as_raw_fd(), token | 1))
        {
            let _ = self.poller.delete(rtp.as_raw_fd());
            self.free.push(slot);
            return Err(OpenError::Setup(e));
        }
        let mut leg = Leg::new(id, call, rtp, rtcp, now);
        leg.sdp_remote = remote;
        leg.sdp_rtcp = remote_rtcp;
        leg.payloads = payloads;
        self.stats
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, leg.counters.clone());
        self.legs[slot] = Some(leg);
        self.by_id.insert(id, slot);
        Ok(())
    }

    fn unbridge(&mut self, slot: usize) {
        let peer = self.legs[slot].as_mut().and_then(|l| l.peer.take());
        if let Some(p) = peer {
            if let Some(l) = self.legs[p].as_mut() {
                if l.peer == Some(slot) {
                    l.peer = None;
                }
            }
        }
    }

    fn send_dtmf(
        &mut self,
        leg: LegId,
        digits: String,
        duration_ms: u32,
        gap_ms: u32,
        now: Instant,
    ) {
        let Some((slot, l)) = self
            .slot(leg)
            .and_then(|slot| Some((slot, self.legs.get_mut(slot)?.as_mut()?)))
        else {
            self.emit(MediaEvent::DtmfFailed {
                leg,
                reason: DtmfError::UnknownLeg.to_string(),
            });
            return;
        };
        let result = if l.payloads.and_then(|p| p.event_pt).is_none() {
            Err(DtmfError::NoEventPayload)
        } else {
            l.sender.queue(&digits, duration_ms, gap_ms)
        };
        match result {
            Err(e) => self.emit(MediaEvent::DtmfFailed {
                leg,
                reason: e.to_string(),
            }),
            Ok(()) => {
                if !self.dtmf_active.contains(&slot) {
                    self.dtmf_active.push(slot);
                }
                self.run_dtmf(now);
            }
        }
    }

    fn start_recording(&mut self, call: String, legs: [LegId; 2], path: std::path::PathBuf) {
        if self.recordings.contains_key(&call) {
            self.emit(MediaEvent::RecordingFailed {
                call,
                reason: "already recording".into(),
            });
            return;
        }
        if self.slot(legs[0]).is_none() || self.slot(legs[1]).is_none() {
            self.emit(MediaEvent::RecordingFailed {
                call,
                reason: "unknown leg".into(),
            });
            return;
        }
        let id = self.next_rec_id;
        self.next_rec_id += 1;
        // Start goes first on the channel so no audio precedes the file.
        let _ = self.rec_tx.send(RecMsg::Start {
            id,
            call: call.clone(),
            path,
        });
        self.recordings.insert(call.clone(), Recording { id, legs });
        self.retap(&call);
    }

    fn stop_recording(&mut self, call: &str) {
        let Some(r) = self.recordings.remove(call) else {
            return;
        };
        for leg in r.legs {
            if let Some(l) = self.leg_mut(leg) {
                if l.tap.as_ref().is_some_and(|t| t.id == r.id) {
                    l.tap = None;
                }
                if l.mix_tap.as_ref().is_some_and(|t| t.id == r.id) {
                    l.mix_tap = None;
                }
            }
        }
        let _ = self.rec_tx.send(RecMsg::Stop { id: r.id });
    }

    fn close(&mut self, leg: LegId) {
        if !self.by_id.contains_key(&leg) {
            return;
        }
        self.leave_room(leg);
        let Some(slot) = self.by_id.remove(&leg) else {
            return;
        };
        self.unbridge(slot);
        if let Some(mut l) = self.legs[slot].take() {
            let _ = self.poller.delete(l.rtp.as_raw_fd());
            let _ = self.poller.delete(l.rtcp.as_raw_fd());
            for digits in l.sender.clear() {
                self.emit(MediaEvent::DtmfFailed {
                    leg,
                    reason: format!("leg closed before {digits:?} was sent"),
                });
            }
            self.stats
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&leg);
            // A recording loses its taps; it keeps running (silence) until
            // stopped, since the other leg may still be recorded.
            l.tap = None;
            l.mix_tap = None;
        }
        self.dtmf_active.retain(|&s| s != slot);
        self.free.push(slot);
    }
}
