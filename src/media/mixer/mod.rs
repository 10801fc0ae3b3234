//! The conference mixer: rooms of legs whose audio is decoded, mixed on the
//! relay's 20 ms clock and sent back to each member as its own stream.
//!
//! Owns: which legs are in which room and with which [`Role`], each
//! member's jitter buffer and loss concealment ([`jitter`]), gains, the
//! mixing itself, the room clock (when each room's next frame is due) and
//! the routing of RFC 4733 events between members. Must not: touch a
//! socket, read a clock, or know RTP headers beyond the timestamp and SSRC
//! it is given: it is sans-IO like the protocol layers. Packets and `now`
//! go in ([`Mixer::push_audio`], [`Mixer::push_event`], [`Mixer::tick`]);
//! encoded frames and event targets come out, and the relay engine
//! (`super::engine`) sends them, with its own stream continuity per leg
//! (`super::rtp::OutStream`: own SSRC, sequence and timestamp, RFC 3550
//! §5.1, across a leg's moves between a bridge and a room).
//!
//! Two-party calls never come here: the relay forwards their packets
//! without decoding. A leg enters decoding only when the call layer puts it
//! in a room (`MediaCommand::Mix`).
//!
//! # One frame of one room
//!
//! Every [`FRAME`] (20 ms, 160 samples at 8 kHz) a room mixes its next
//! frame: each member's frame is taken from its jitter buffer (or
//! concealed, or silence), scaled by its inbound gain, and summed in `i32`
//! over the members everyone hears. Each listener then gets that sum minus
//! its own contribution (so nobody hears themselves), plus any whisper meant
//! for it, scaled by its outbound gain, clipped once to 16 bits and encoded
//! in its own law (PCMU and PCMA mix freely: `crate::codec::g711`).
//!
//! | state | contributes to | hears |
//! |---|---|---|
//! | [`Role::Party`] | everyone | everyone |
//! | [`Role::Listen`] | no one | everyone |
//! | [`Role::Whisper`] | the one leg named | everyone |
//! | held ([`LegState::held`]) | no one | nothing is sent to it |
//! | muted ([`LegState::muted`]) | no one | everyone |
//!
//! A member that stops sending fades out (repeat, then a 60 ms fade) and is
//! silence afterwards; no room ever waits for a member.
//!
//! # The clock
//!
//! Rooms are spread over [`PHASES`] phases of the 20 ms period, 2 ms apart
//! on one grid (a new room takes the least busy phase), so that a thousand
//! rooms do not all mix and send in the same millisecond, and a tick
//! touches only the rooms of the phases that are due. [`Mixer::poll_timeout`]
//! is the earliest due frame; [`Mixer::tick`] mixes every frame due by
//! `now`. A frame mixed more
//! than [`LATE`] after it was due is counted late; a room more than
//! [`MAX_CATCH_UP`] frames behind mixes that many and skips the rest (its
//! timestamps still follow the wall clock, so receivers see a gap).
//!
//! # Telephone events
//!
//! RFC 4733 events from a member go to the members that hear it (all of
//! them, or only the leg named by [`DtmfRoute::Only`]); while an event is
//! being forwarded to a member its mixed audio is withheld (§2.5.1.2: the
//! event replaces the audio), until [`EVENT_HANGOVER`] after the end
//! packet, or [`EVENT_TIMEOUT`] without packets when every end was lost.
//! Detection and the `MediaEvent::Dtmf` report stay in the engine.

pub mod jitter;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codec::g711::{alaw_encode, ulaw_encode};
use crate::codec::G711;

use super::LegId;
use jitter::{Concealer, Jitter, Placed, Source};

/// Samples per frame: 20 ms at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// The mixer's frame period.
pub const FRAME: Duration = Duration::from_millis(20);
/// Phases of the frame period rooms are spread over (2 ms apart).
pub const PHASES: u32 = 10;
/// A frame mixed more than this after its due time counts as late.
pub const LATE: Duration = Duration::from_millis(10);
/// Frames a room mixes back to back when behind; further behind it skips.
pub const MAX_CATCH_UP: u32 = 3;
/// Members of one room at most (keeps the `i32` sum far from overflow:
/// 64 members at +12 dB and full scale are under 2^23).
pub const MAX_MEMBERS: usize = 64;
/// How long audio stays withheld after a forwarded event's first end packet
/// (its retransmissions follow within it).
pub const EVENT_HANGOVER: Duration = Duration::from_millis(60);
/// A forwarded event with no packet for this long is over (ends lost).
pub const EVENT_TIMEOUT: Duration = super::dtmf::END_TIMEOUT;
/// The gain range, in dB.
pub const MAX_GAIN_DB: f32 = 12.0;

/// What a member of a room is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Hears everyone, heard by everyone (a party to the call, a barging
    /// supervisor).
    Party,
    /// Hears everyone, heard by no one (a supervisor listening in).
    Listen,
    /// Hears everyone, heard only by `to` (a supervisor coaching an agent).
    Whisper { to: LegId },
}

/// Where RFC 4733 events from a member go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DtmfRoute {
    /// To every member that hears the sender.
    #[default]
    Others,
    /// Only to this leg (if it hears the sender): digits a contact keys in
    /// reach the agent's phone and no one else.
    Only(LegId),
}

/// Which way a gain applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// To what the leg says (its contribution).
    In,
    /// To what the leg hears.
    Out,
}

/// A gain as a Q12 factor (4096 = 0 dB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gain(i32);

impl Gain {
    pub const UNITY: Gain = Gain(4096);

    /// `db` clamped to ±[`MAX_GAIN_DB`] (NaN is 0 dB).
    pub fn from_db(db: f32) -> Gain {
        let db = if db.is_nan() {
            0.0
        } else {
            db.clamp(-MAX_GAIN_DB, MAX_GAIN_DB)
        };
        Gain((4096.0 * 10f32.powf(db / 20.0)).round() as i32)
    }

    /// The factor in Q12.
    pub fn q12(self) -> i32 {
        self.0
    }
}

impl Default for Gain {
    fn default() -> Self {
        Gain::UNITY
    }
}

/// What the mixer needs to know of a leg, kept current by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LegState {
    /// The law the leg receives (its negotiated codec).
    pub law: G711,
    pub held: bool,
    pub muted: bool,
    pub gain_in: Gain,
    pub gain_out: Gain,
}

impl Default for LegState {
    fn default() -> Self {
        LegState {
            law: G711::Pcmu,
            held: false,
            muted: false,
            gain_in: Gain::UNITY,
            gain_out: Gain::UNITY,
        }
    }
}

/// One mixed frame for one listener.
#[derive(Clone, Debug)]
pub struct Frame {
    /// The room's identity for stream continuity (unique per room created).
    pub room: u64,
    pub leg: LegId,
    /// The room's frame number: sequence number and timestamp (times 160)
    /// of the listener's stream while it stays in this room.
    pub index: u32,
    pub law: G711,
    pub payload: [u8; FRAME_SAMPLES],
}

/// A member an event packet is forwarded to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventTarget {
    pub leg: LegId,
    /// The first packet of this event for that member: its stream begins
    /// an event (marker bit, new timestamp).
    pub begin: bool,
}

/// Counters since the mixer was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixerStats {
    pub rooms: u64,
    pub members: u64,
    /// Frames mixed for listeners.
    pub frames: u64,
    /// Of those, mixed more than [`LATE`] after they were due.
    pub late_frames: u64,
    /// Listener frames skipped by a room too far behind.
    pub skipped_frames: u64,
    /// Packets dropped by the jitter buffers because they came too late.
    pub late_packets: u64,
    /// Streams re-anchored (new SSRC, delay step, timestamp jump).
    pub resyncs: u64,
    /// Member frames concealed (lost, repeated or fading).
    pub concealed: u64,
    /// The most a tick started after a frame was due, in microseconds.
    pub max_lateness_us: u64,
}

#[derive(Clone, Copy, Debug)]
struct Forward {
    from: LegId,
    src_ts: u32,
    last: Instant,
    ended: bool,
}

#[derive(Debug)]
struct Member {
    leg: LegId,
    role: Role,
    state: LegState,
    jitter: Jitter,
    plc: Concealer,
    /// Whether it contributes to the frame being mixed (its samples are
    /// then in the mixer's scratch, at its index).
    contributes: bool,
    /// An event being forwarded to this member (its audio is withheld).
    forward: Option<Forward>,
    /// The last event forwarded to it, to drop late retransmissions.
    done_event: Option<(LegId, u32)>,
}

impl Member {
    fn new(leg: LegId, role: Role, state: LegState) -> Self {
        Member {
            leg,
            role,
            state,
            jitter: Jitter::default(),
            plc: Concealer::default(),
            contributes: false,
            forward: None,
            done_event: None,
        }
    }

    /// Whether what `from` (with `role`) says reaches this member.
    fn hears(&self, from: LegId, role: Role) -> bool {
        self.leg != from
            && match role {
                Role::Party => true,
                Role::Listen => false,
                Role::Whisper { to } => to == self.leg,
            }
    }
}

#[derive(Debug)]
struct Room {
    uid: u64,
    name: String,
    members: Vec<Member>,
    dtmf: DtmfRoute,
    /// Its phase of the frame period (an index into the mixer's slots).
    phase: usize,
    /// The next frame to mix; the room's sample clock is `frame * 160`.
    frame: u64,
}

impl Room {
    fn play(&self) -> i64 {
        self.frame as i64 * FRAME_SAMPLES as i64
    }

    fn expire_events(&mut self, now: Instant) {
        for m in &mut self.members {
            if let Some(f) = m.forward {
                let quiet = now.saturating_duration_since(f.last);
                if (f.ended && quiet >= EVENT_HANGOVER) || quiet >= EVENT_TIMEOUT {
                    m.done_event = Some((f.from, f.src_ts));
                    m.forward = None;
                }
            }
        }
    }

    /// Mix the next frame into `frames`. The members' samples go through
    /// `scratch` (one row per member, shared by every room, so the rows stay
    /// in cache across rooms; per member only its ring is touched).
    fn mix(
        &mut self,
        frames: &mut Vec<Frame>,
        scratch: &mut Scratch,
        stats: &mut MixerStats,
        late: bool,
    ) {
        let play = self.play();
        let Scratch {
            pcm,
            contrib,
            sum,
            out,
        } = scratch;
        sum.fill(0);
        for (m, c) in self.members.iter_mut().zip(contrib.iter_mut()) {
            let source = if m.jitter.take(play, pcm) {
                m.plc.received(play);
                Source::Received
            } else {
                m.plc.conceal(&m.jitter, pcm)
            };
            if source == Source::Concealed {
                stats.concealed += 1;
            }
            m.contributes = source != Source::Silent
                && !m.state.held
                && !m.state.muted
                && m.role != Role::Listen;
            if !m.contributes {
                continue;
            }
            let g = m.state.gain_in.q12();
            if g == Gain::UNITY.q12() {
                for (c, &s) in c.iter_mut().zip(pcm.iter()) {
                    *c = i32::from(s);
                }
            } else {
                for (c, &s) in c.iter_mut().zip(pcm.iter()) {
                    *c = (i32::from(s) * g) >> 12;
                }
            }
            if m.role == Role::Party {
                for (a, &c) in sum.iter_mut().zip(c.iter()) {
                    *a += c;
                }
            }
        }
        let index = self.frame as u32;
        let whispers = self
            .members
            .iter()
            .any(|w| w.contributes && matches!(w.role, Role::Whisper { .. }));
        for (l, own) in self.members.iter().zip(contrib.iter()) {
            if l.state.held || l.forward.is_some() {
                continue;
            }
            frames.push(Frame {
                room: self.uid,
                leg: l.leg,
                index,
                law: l.state.law,
                payload: [0; FRAME_SAMPLES],
            });
            let Some(frame) = frames.last_mut() else {
                continue;
            };
            let own = (l.role == Role::Party && l.contributes).then_some(own);
            let mut whispered = false;
            if whispers {
                for (w, wc) in self.members.iter().zip(contrib.iter()) {
                    if w.contributes && w.leg != l.leg && w.role == (Role::Whisper { to: l.leg }) {
                        if !whispered {
                            **out = **sum;
                            if let Some(own) = own {
                                for (o, &c) in out.iter_mut().zip(own.iter()) {
                                    *o -= c;
                                }
                            }
                            whispered = true;
                        }
                        for (o, &c) in out.iter_mut().zip(wc.iter()) {
                            *o += c;
                        }
                    }
                }
            }
            let (law, gain, payload) = (l.state.law, l.state.gain_out, &mut frame.payload);
            match (whispered, own) {
                (true, _) => encode(law, gain, out.iter().copied(), payload),
                (false, Some(own)) => {
                    let minus = sum.iter().zip(own.iter()).map(|(&s, &o)| s - o);
                    encode(law, gain, minus, payload)
                }
                (false, None) => encode(law, gain, sum.iter().copied(), payload),
            }
            stats.frames += 1;
            if late {
                stats.late_frames += 1;
            }
        }
        self.frame += 1;
    }

    /// Skip the next frame (the room is too far behind): its audio is
    /// dropped from every buffer.
    fn skip(&mut self, stats: &mut MixerStats) {
        let play = self.play();
        for m in &mut self.members {
            m.jitter.discard(play);
            if !m.state.held {
                stats.skipped_frames += 1;
            }
        }
        self.frame += 1;
    }
}

/// One phase of the frame period: its rooms and their next frame's due
/// time (set when the first room joins).
#[derive(Debug, Default)]
struct Slot {
    due: Option<Instant>,
    rooms: Vec<usize>,
}

/// Buffers one room's mix works in, shared by all rooms.
#[derive(Debug)]
struct Scratch {
    /// A member's frame as taken from its jitter buffer (or concealed).
    pcm: Box<[i16; FRAME_SAMPLES]>,
    /// Each member's contribution after its inbound gain, by member index.
    contrib: Box<[[i32; FRAME_SAMPLES]; MAX_MEMBERS]>,
    /// The sum of what everyone hears.
    sum: Box<[i32; FRAME_SAMPLES]>,
    /// One listener's mix when a whisper is added to it.
    out: Box<[i32; FRAME_SAMPLES]>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            pcm: Box::new([0; FRAME_SAMPLES]),
            contrib: Box::new([[0; FRAME_SAMPLES]; MAX_MEMBERS]),
            sum: Box::new([0; FRAME_SAMPLES]),
            out: Box::new([0; FRAME_SAMPLES]),
        }
    }
}

/// Outbound gain, one clip to 16 bits, and the listener's law.
#[inline(always)]
fn encode(
    law: G711,
    gain: Gain,
    mix: impl Iterator<Item = i32>,
    payload: &mut [u8; FRAME_SAMPLES],
) {
    match law {
        G711::Pcmu => encode_with(ulaw_encode, gain, mix, payload),
        G711::Pcma => encode_with(alaw_encode, gain, mix, payload),
    }
}

#[inline(always)]
fn encode_with(
    enc: impl Fn(i16) -> u8,
    gain: Gain,
    mix: impl Iterator<Item = i32>,
    payload: &mut [u8; FRAME_SAMPLES],
) {
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    if gain == Gain::UNITY {
        for (p, v) in payload.iter_mut().zip(mix) {
            *p = enc(v.clamp(MIN, MAX) as i16);
        }
    } else {
        let g = i64::from(gain.q12());
        for (p, v) in payload.iter_mut().zip(mix) {
            let v = (i64::from(v) * g) >> 12;
            *p = enc(v.clamp(i64::from(MIN), i64::from(MAX)) as i16);
        }
    }
}

/// Every room of one relay.
#[derive(Debug)]
pub struct Mixer {
    rooms: Vec<Option<Room>>,
    free: Vec<usize>,
    by_name: HashMap<String, usize>,
    /// Room and member index of every leg in a room.
    by_leg: HashMap<LegId, (usize, usize)>,
    next_uid: u64,
    /// The mixer's frame clock: one slot per phase, each with the rooms
    /// of that phase and when their next frame is due.
    slots: [Slot; PHASES as usize],
    /// Where the phases are counted from (the first room's creation).
    epoch: Option<Instant>,
    frames: Vec<Frame>,
    targets: Vec<EventTarget>,
    scratch: Scratch,
    stats: MixerStats,
}

impl Default for Mixer {
    fn default() -> Self {
        Mixer {
            rooms: Vec::new(),
            free: Vec::new(),
            by_name: HashMap::new(),
            by_leg: HashMap::new(),
            next_uid: 1,
            slots: Default::default(),
            epoch: None,
            frames: Vec::new(),
            targets: Vec::new(),
            scratch: Scratch::default(),
            stats: MixerStats::default(),
        }
    }
}

impl Mixer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Make room `name` hold exactly `members` (created at `now` if new;
    /// dissolved when `members` is empty). Members already in the room keep
    /// their buffers and take the new role and state; a leg in another room
    /// moves here. Beyond [`MAX_MEMBERS`], and repeats of a leg, are
    /// ignored. Returns the legs that are now in no room.
    pub fn set_room(
        &mut self,
        name: &str,
        members: &[(LegId, Role, LegState)],
        dtmf: DtmfRoute,
        now: Instant,
    ) -> Vec<LegId> {
        let mut wanted: Vec<(LegId, Role, LegState)> = Vec::with_capacity(members.len());
        for &(leg, role, state) in members {
            if wanted.len() < MAX_MEMBERS && !wanted.iter().any(|w| w.0 == leg) {
                wanted.push((leg, role, state));
            }
        }
        if wanted.is_empty() {
            return self.dissolve(name);
        }
        let idx = match self.by_name.get(name) {
            Some(&i) => i,
            None => self.create(name, now),
        };
        // Legs moving in from another room leave it first.
        for &(leg, _, _) in &wanted {
            if self.by_leg.get(&leg).is_some_and(|&(r, _)| r != idx) {
                self.leave(leg);
            }
        }
        let Some(room) = self.rooms.get_mut(idx).and_then(Option::as_mut) else {
            return Vec::new();
        };
        let mut old = std::mem::take(&mut room.members);
        for (leg, role, state) in wanted {
            let member = match old.iter().position(|m| m.leg == leg) {
                Some(p) => {
                    let mut m = old.swap_remove(p);
                    m.role = role;
                    m.state = state;
                    m
                }
                None => Member::new(leg, role, state),
            };
            room.members.push(member);
        }
        room.dtmf = dtmf;
        let left: Vec<LegId> = old.iter().map(|m| m.leg).collect();
        for leg in &left {
            self.by_leg.remove(leg);
        }
        self.index_room(idx);
        self.recount();
        left
    }

    /// Record where each member of room `idx` is.
    fn index_room(&mut self, idx: usize) {
        if let Some(room) = self.rooms.get(idx).and_then(Option::as_ref) {
            for (pos, m) in room.members.iter().enumerate() {
                self.by_leg.insert(m.leg, (idx, pos));
            }
        }
    }

    fn create(&mut self, name: &str, now: Instant) -> usize {
        // The least busy phase (the first of equals), so rooms spread over
        // the period however they come and go.
        let phase = (0..self.slots.len())
            .min_by_key(|&p| self.slots.get(p).map_or(usize::MAX, |s| s.rooms.len()))
            .unwrap_or(0);
        let epoch = *self.epoch.get_or_insert(now);
        let room = Room {
            uid: self.next_uid,
            name: name.to_owned(),
            members: Vec::new(),
            dtmf: DtmfRoute::Others,
            phase,
            frame: 0,
        };
        self.next_uid += 1;
        let idx = match self.free.pop() {
            Some(i) => {
                if let Some(slot) = self.rooms.get_mut(i) {
                    *slot = Some(room);
                }
                i
            }
            None => {
                self.rooms.push(Some(room));
                self.rooms.len() - 1
            }
        };
        self.by_name.insert(name.to_owned(), idx);
        if let Some(slot) = self.slots.get_mut(phase) {
            if slot.rooms.is_empty() {
                // An idle phase starts again on its own grid, a frame from now
                // at the earliest.
                let offset = FRAME / PHASES * phase as u32;
                let since = (now + FRAME).saturating_duration_since(epoch + offset);
                let periods = since.as_nanos().div_ceil(FRAME.as_nanos()) as u32;
                slot.due = Some(epoch + offset + FRAME * periods);
            }
            slot.rooms.push(idx);
        }
        idx
    }

    fn dissolve(&mut self, name: &str) -> Vec<LegId> {
        let Some(idx) = self.by_name.remove(name) else {
            return Vec::new();
        };
        let room = self.rooms.get_mut(idx).and_then(Option::take);
        self.free.push(idx);
        if let Some(slot) = room.as_ref().and_then(|r| self.slots.get_mut(r.phase)) {
            slot.rooms.retain(|&i| i != idx);
        }
        let left: Vec<LegId> = room
            .map(|r| r.members.iter().map(|m| m.leg).collect())
            .unwrap_or_default();
        for leg in &left {
            self.by_leg.remove(leg);
        }
        self.recount();
        left
    }

    /// Take `leg` out of its room (a room left empty is dissolved). False
    /// when it was in none.
    pub fn leave(&mut self, leg: LegId) -> bool {
        let Some((idx, _)) = self.by_leg.remove(&leg) else {
            return false;
        };
        let empty_name = match self.rooms.get_mut(idx).and_then(Option::as_mut) {
            Some(room) => {
                room.members.retain(|m| m.leg != leg);
                room.members.is_empty().then(|| room.name.clone())
            }
            None => None,
        };
        match empty_name {
            Some(name) => {
                self.dissolve(&name);
            }
            None => self.index_room(idx),
        }
        self.recount();
        true
    }

    /// Change `leg`'s role; false when it is in no room.
    pub fn set_role(&mut self, leg: LegId, role: Role) -> bool {
        self.member_mut(leg).map(|m| m.role = role).is_some()
    }

    /// Replace what the mixer knows of `leg`; false when it is in no room.
    pub fn set_state(&mut self, leg: LegId, state: LegState) -> bool {
        self.member_mut(leg).map(|m| m.state = state).is_some()
    }

    /// The room `leg` is in.
    pub fn room_of(&self, leg: LegId) -> Option<&str> {
        let (idx, _) = *self.by_leg.get(&leg)?;
        Some(self.rooms.get(idx)?.as_ref()?.name.as_str())
    }

    /// Whether `leg` is in a room.
    pub fn contains(&self, leg: LegId) -> bool {
        self.by_leg.contains_key(&leg)
    }

    /// The members of room `name` and their roles.
    pub fn members(&self, name: &str) -> Option<Vec<(LegId, Role)>> {
        let idx = *self.by_name.get(name)?;
        let room = self.rooms.get(idx)?.as_ref()?;
        Some(room.members.iter().map(|m| (m.leg, m.role)).collect())
    }

    fn member_mut(&mut self, leg: LegId) -> Option<&mut Member> {
        let (r, m) = *self.by_leg.get(&leg)?;
        let member = self.rooms.get_mut(r)?.as_mut()?.members.get_mut(m)?;
        (member.leg == leg).then_some(member)
    }

    fn recount(&mut self) {
        let rooms = self.rooms.iter().flatten();
        self.stats.rooms = rooms.clone().count() as u64;
        self.stats.members = rooms.map(|r| r.members.len() as u64).sum();
    }

    /// One audio payload received from `leg` (decoded with `law`), placed
    /// in its jitter buffer. Ignored when `leg` is in no room.
    pub fn push_audio(&mut self, leg: LegId, ssrc: u32, ts: u32, law: G711, payload: &[u8]) {
        let Some(&(r, mi)) = self.by_leg.get(&leg) else {
            return;
        };
        let Some(room) = self.rooms.get_mut(r).and_then(Option::as_mut) else {
            return;
        };
        let play = room.play();
        let Some(m) = room.members.get_mut(mi).filter(|m| m.leg == leg) else {
            return;
        };
        match m.jitter.put(ssrc, ts, law, payload, play) {
            Placed::Late => self.stats.late_packets += 1,
            Placed::Resynced => self.stats.resyncs += 1,
            Placed::Buffered | Placed::Ignored => {}
        }
    }

    /// One RFC 4733 event packet (payload after the RTP header, timestamp
    /// `ts`) received from `from` at `now`: the members it is to be
    /// forwarded to. Nothing when `from` is held, muted, listening, or in
    /// no room, or the payload is shorter than one event (§2.3).
    pub fn push_event(
        &mut self,
        from: LegId,
        ts: u32,
        payload: &[u8],
        now: Instant,
    ) -> &[EventTarget] {
        self.targets.clear();
        let Some(&flags) = payload.get(1) else {
            return &self.targets;
        };
        if payload.len() < 4 {
            return &self.targets;
        }
        let end = flags & 0x80 != 0;
        let Some(room) = self
            .by_leg
            .get(&from)
            .and_then(|&(i, _)| self.rooms.get_mut(i))
            .and_then(Option::as_mut)
        else {
            return &self.targets;
        };
        let Some(sender) = room.members.iter().find(|m| m.leg == from) else {
            return &self.targets;
        };
        if sender.state.held || sender.state.muted || sender.role == Role::Listen {
            return &self.targets;
        }
        let role = sender.role;
        let route = room.dtmf;
        for m in &mut room.members {
            let routed = match route {
                DtmfRoute::Others => true,
                DtmfRoute::Only(to) => to == m.leg,
            };
            if !routed || m.state.held || !m.hears(from, role) {
                continue;
            }
            match &mut m.forward {
                Some(f) if f.from == from && f.src_ts == ts => {
                    f.last = now;
                    f.ended |= end;
                    self.targets.push(EventTarget {
                        leg: m.leg,
                        begin: false,
                    });
                }
                // A retransmitted end of an event already over.
                _ if m.done_event == Some((from, ts)) => {}
                _ => {
                    m.forward = Some(Forward {
                        from,
                        src_ts: ts,
                        last: now,
                        ended: end,
                    });
                    self.targets.push(EventTarget {
                        leg: m.leg,
                        begin: true,
                    });
                }
            }
        }
        &self.targets
    }

    /// When the next frame is due; `None` without rooms.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.slots
            .iter()
            .filter(|s| !s.rooms.is_empty())
            .filter_map(|s| s.due)
            .min()
    }

    /// Mix every frame due by `now`; the frames to send, phase by phase.
    /// Only the rooms of a phase that is due are touched.
    pub fn tick(&mut self, now: Instant) -> &[Frame] {
        self.frames.clear();
        for slot in &mut self.slots {
            let mut mixed = 0;
            while let Some(due) = slot.due.filter(|&d| d <= now && !slot.rooms.is_empty()) {
                let lateness = now.saturating_duration_since(due);
                if mixed == MAX_CATCH_UP {
                    // Too far behind: skip to the frame due next.
                    let behind = (lateness.as_micros() / FRAME.as_micros()) as u32 + 1;
                    for &i in &slot.rooms {
                        if let Some(room) = self.rooms.get_mut(i).and_then(Option::as_mut) {
                            for _ in 0..behind {
                                room.skip(&mut self.stats);
                            }
                        }
                    }
                    slot.due = Some(due + FRAME * behind);
                    break;
                }
                self.stats.max_lateness_us =
                    self.stats.max_lateness_us.max(lateness.as_micros() as u64);
                for &i in &slot.rooms {
                    if let Some(room) = self.rooms.get_mut(i).and_then(Option::as_mut) {
                        room.expire_events(now);
                        room.mix(
                            &mut self.frames,
                            &mut self.scratch,
                            &mut self.stats,
                            lateness > LATE,
                        );
                    }
                }
                slot.due = Some(due + FRAME);
                mixed += 1;
            }
        }
        &self.frames
    }

    pub fn stats(&self) -> MixerStats {
        self.stats
    }
}
