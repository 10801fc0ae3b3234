//! The relay's side of conference rooms: applying the room commands to the
//! legs and the mixer, sending the frames each tick mixes, forwarding RFC
//! 4733 events between members, and pointing recordings at the mix.
//!
//! Owns: the legs' `in_room` flags, gains and mix taps, and the bytes on
//! the wire for a room (headers, payload types, sockets). Must not: decide
//! who hears whom or what is mixed (the mixer's, `crate::media::mixer`),
//! or decode anything itself. A mixed frame leaves on the listener's own
//! RTP socket with the listener's SSRC, sequence and timestamp
//! (`OutStream::mixed`), one `send` per listener per frame; as an RFC 3550
//! §7.1 mixer the relay is the source of what each member hears, and it
//! leaves the CSRC list empty (the contributors' SSRCs are other legs'
//! private numbering). Forwarded events (RFC 4733 §2.5.1) start a new event
//! in the listener's stream (marker bit, the stream's own timestamp held for
//! the whole event). A leg enters the mixer only through `Mix`; every other
//! leg keeps the two-party path of `packet.rs`, which never decodes.

use std::time::Instant;

use super::{header, Relay};
use crate::media::mixer::{Direction, DtmfRoute, Gain, Role, FRAME_SAMPLES};
use crate::media::record::{self, Tap};
use crate::media::{LegId, G711};

/// Largest RFC 4733 payload forwarded (several events with redundancy, §2.5.1.5).
pub(super) const MAX_EVENT_PAYLOAD: usize = 64;

impl Relay {
    /// `MediaCommand::Mix`.
    pub(super) fn mix(
        &mut self,
        room: &str,
        members: &[(LegId, Role)],
        dtmf: DtmfRoute,
        now: Instant,
    ) {
        let mut list = Vec::with_capacity(members.len());
        for &(leg, role) in members {
            let Some(slot) = self.slot(leg) else {
                tracing::warn!(?leg, room, "mix of an unknown leg");
                continue;
            };
            // A member leaves its bridge: its audio now goes to the room.
            self.unbridge(slot);
            if let Some(l) = self.legs.get(slot).and_then(Option::as_ref) {
                list.push((leg, role, l.mix_state()));
            }
        }
        let left = self.mixer.set_room(room, &list, dtmf, now);
        for &(leg, _, _) in &list {
            let in_room = self.mixer.contains(leg);
            if let Some(l) = self.leg_mut(leg) {
                l.in_room = in_room;
            }
        }
        for leg in left {
            if let Some(l) = self.leg_mut(leg) {
                l.in_room = false;
            }
        }
        self.retap_all();
        self.mixer_counters.publish(&self.mixer.stats());
    }

    /// Take `leg` out of its room, if it is in one.
    pub(super) fn leave_room(&mut self, leg: LegId) {
        if self.mixer.leave(leg) {
            if let Some(l) = self.leg_mut(leg) {
                l.in_room = false;
            }
            self.retap_all();
            self.mixer_counters.publish(&self.mixer.stats());
        }
    }

    pub(super) fn set_gain(&mut self, leg: LegId, direction: Direction, db: f32) {
        let Some(l) = self.leg_mut(leg) else {
            tracing::debug!(?leg, "gain for an unknown leg");
            return;
        };
        match direction {
            Direction::In => l.gain_in = Gain::from_db(db),
            Direction::Out => l.gain_out = Gain::from_db(db),
        }
        let state = l.mix_state();
        self.mixer.set_state(leg, state);
    }

    /// Point every recording's taps where its first leg is: channel 0 what
    /// `legs[0]` says; channel 1 `legs[1]`'s audio in a two-party call, or
    /// the mix `legs[0]` hears while it is in a room.
    pub(super) fn retap_all(&mut self) {
        let recs: Vec<(u64, [LegId; 2])> =
            self.recordings.values().map(|r| (r.id, r.legs)).collect();
        for (id, [first, second]) in recs {
            let in_room = self
                .slot(first)
                .and_then(|s| self.legs.get(s))
                .and_then(Option::as_ref)
                .is_some_and(|l| l.in_room);
            if let Some(l) = self.leg_mut(first) {
                l.tap = Some(Tap { id, channel: 0 });
                l.mix_tap = in_room.then_some(Tap { id, channel: 1 });
            }
            if let Some(l) = self.leg_mut(second) {
                l.tap = (!in_room).then_some(Tap { id, channel: 1 });
            }
        }
    }

    /// Re-tap the recording of `call` (just started).
    pub(super) fn retap(&mut self, call: &str) {
        if self.recordings.contains_key(call) {
            self.retap_all();
        }
    }

    /// Mix what is due and send each listener its frame.
    pub(super) fn run_mixer(&mut self, now: Instant) {
        let frames = self.mixer.tick(now);
        for f in frames {
            let Some(l) = self
                .by_id
                .get(&f.leg)
                .and_then(|&s| self.legs.get_mut(s))
                .and_then(Option::as_mut)
            else {
                continue;
            };
            // A generated digit playing into the leg replaces its audio.
            let send = l.remote_receives && !l.sender.playing() && l.rtp_target().is_some();
            if !send && l.mix_tap.is_none() {
                continue;
            }
            let r = l.out.mixed(f.room, f.index, now);
            if let Some(tap) = l.mix_tap {
                record::send_audio(&self.rec_tx, &tap, now, r.ssrc, r.ts, f.law, &f.payload);
            }
            if send {
                let pt = l.payloads.map_or(static_pt(f.law), |p| p.audio_pt);
                let mut pkt = [0u8; 12 + FRAME_SAMPLES];
                header(&mut pkt, pt, r);
                if let Some(body) = pkt.get_mut(12..) {
                    body.copy_from_slice(&f.payload);
                }
                if l.send_rtp(&pkt) {
                    l.counters.rtp_out(pkt.len());
                }
            }
        }
        self.mixer_counters.publish(&self.mixer.stats());
    }

    /// An RFC 4733 packet from `from` (in a room): to the members the room
    /// routes it to, each in its own stream with its own event payload type.
    pub(super) fn forward_event(
        &mut self,
        from: LegId,
        src_pt: u8,
        ts: u32,
        payload: &[u8],
        now: Instant,
    ) {
        let targets = self.mixer.push_event(from, ts, payload, now);
        for t in targets {
            let Some(l) = self
                .by_id
                .get(&t.leg)
                .and_then(|&s| self.legs.get_mut(s))
                .and_then(Option::as_mut)
            else {
                continue;
            };
            if l.held || !l.remote_receives || l.sender.playing() || l.rtp_target().is_none() {
                continue;
            }
            // As in the two-party path: no SDP yet, the sender's type; SDP
            // without telephone-event, nothing.
            let pt = match l.payloads {
                None => src_pt,
                Some(p) => match p.event_pt {
                    Some(pt) => pt,
                    None => continue,
                },
            };
            let r = if t.begin {
                l.out.begin_event(now)
            } else {
                l.out.event_packet(now)
            };
            let mut pkt = [0u8; 12 + MAX_EVENT_PAYLOAD];
            let len = 12 + payload.len().min(MAX_EVENT_PAYLOAD);
            header(&mut pkt, pt, r);
            if let (Some(body), Some(src)) = (pkt.get_mut(12..len), payload.get(..len - 12)) {
                body.copy_from_slice(src);
            }
            if let Some(p) = pkt.get(..len) {
                if l.send_rtp(p) {
                    l.counters.rtp_out(p.len());
                }
            }
        }
    }
}

fn static_pt(law: G711) -> u8 {
    match law {
        G711::Pcmu => 0,
        G711::Pcma => 8,
    }
}
