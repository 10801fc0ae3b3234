//! The relay's packet path: reading a ready socket, validating and
//! rewriting each datagram in place, and forwarding it to the bridged leg
//! (see the parent module for how sockets are read); a room member's audio
//! and events go to the mixer instead (`rooms.rs`).

use std::os::fd::AsRawFd;
use std::time::Instant;

use rtp_types::RtpPacketMut;

use super::rooms::MAX_EVENT_PAYLOAD;
use super::Relay;
use crate::codec::g711;
use crate::media::leg::Leg;
use crate::media::mmsg::{Batch, Datagram, Target};
use crate::media::record;
use crate::media::rtcp::{self, ReportMap, SenderMap, Translation};
use crate::media::rtp::{self, Kind, Mapping, CLOCK_HZ};
use crate::media::MediaEvent;

/// How `from`'s RTCP must be rewritten for `to` (see [`rtcp`]): `from`'s own
/// SSRC becomes the one `to` receives its RTP under, and reports on the
/// stream `from` receives name the source feeding it.
fn rtcp_translation(from: &Leg, to: &Leg) -> Translation {
    Translation {
        sender: to
            .out
            .source()
            .filter(|s| s.leg == from.id)
            .map(|s| SenderMap {
                from: s.ssrc,
                to: to.out.ssrc(),
                ts_offset: s.ts_offset,
            }),
        reported: from
            .out
            .source()
            .filter(|s| s.leg == to.id)
            .map(|s| ReportMap {
                from: from.out.ssrc(),
                to: s.ssrc,
            }),
    }
}

impl Relay {
    /// Read `slot`'s RTP socket, each datagram validated and rewritten in
    /// place, the forwarded ones sent on the peer's socket. A socket read in
    /// the previous round too (level-triggered: it still held datagrams),
    /// or any socket while the relay is behind, is read with `recvmmsg` and
    /// answered with `sendmmsg`; otherwise one `recvfrom` and one `send`,
    /// which cost less for the single datagram a socket usually holds.
    pub(super) fn on_rtp(&mut self, slot: usize, batch: &mut Batch) {
        let (round, behind) = (self.round, self.behind);
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let deep = behind || leg.rtp_round.wrapping_add(1) == round;
        leg.rtp_round = round;
        let fd = leg.rtp.as_raw_fd();
        let got = if deep {
            batch.recv(fd)
        } else {
            batch.recv_one(fd)
        };
        let Ok(n) = got else {
            return; // WouldBlock, or an ICMP error surfaced late
        };
        // One clock read per batch: its datagrams were all queued before it.
        let now = Instant::now();
        for i in 0..n {
            if let Some(d) = batch.get(i) {
                if self.rtp_packet(slot, d, now) {
                    batch.queue(i);
                }
            }
        }
        let peer = self.peer_of(slot);
        if let Some((peer, target)) = peer.and_then(|p| Some((p, p.rtp_target()?))) {
            let sent = batch.flush(peer.rtp.as_raw_fd(), target);
            peer.counters.rtp_out_many(sent.packets, sent.bytes);
        }
    }

    /// One RTP datagram received on `slot`: statistics, latching, DTMF,
    /// recording, then the header rewritten for the peer. True when it is
    /// to be forwarded (to the peer's RTP target, which is then known).
    fn rtp_packet(&mut self, slot: usize, d: Datagram<'_>, now: Instant) -> bool {
        let Some(leg) = self.legs.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        leg.counters.rtp_in(d.bytes.len());
        let Some(src) = d.from else {
            return false;
        };
        if d.truncated {
            leg.counters.malformed();
            return false;
        }
        let Ok(mut pkt) = RtpPacketMut::parse(d.bytes) else {
            leg.counters.malformed();
            return false;
        };
        // Symmetric RTP: the first source since Open/Update becomes the
        // destination; later strangers are dropped (RTP bleed). Once latched
        // the socket is connected, so the kernel drops them first.
        match leg.latched {
            Some(l) if l == src => {}
            Some(_) => return false,
            None => {
                leg.latch(src);
                if leg.sdp_remote != Some(src) {
                    let _ = self.events.send(MediaEvent::Latched {
                        leg: leg.id,
                        remote: src,
                    });
                }
            }
        }
        leg.last_rx = now;
        leg.timeout_reported = false;

        let (pt, ssrc, seq, ts, marker) = (
            pkt.payload_type(),
            pkt.ssrc(),
            pkt.sequence_number(),
            pkt.timestamp(),
            pkt.marker_bit(),
        );
        let kind = rtp::classify(pt, leg.payloads.as_ref());
        let arrival = ((now - self.epoch).as_micros() as u64 * CLOCK_HZ / 1_000_000) as u32;
        leg.rx
            .on_packet(ssrc, seq, ts, arrival, kind != Kind::Event);
        leg.counters
            .set_quality(leg.rx.lost(), leg.rx.jitter() * 1000.0 / CLOCK_HZ as f64);

        if kind == Kind::Event {
            for d in leg
                .detector
                .on_packet(pkt.payload(), ts, now)
                .into_iter()
                .flatten()
            {
                let _ = self.events.send(MediaEvent::Dtmf {
                    leg: leg.id,
                    digit: d.digit,
                    duration_ms: d.duration_ms,
                });
            }
        }

        let from = leg.id;
        let peer_slot = leg.peer;
        let forward_ok = !leg.muted && !leg.held;
        let tap = leg.tap;
        let in_room = leg.in_room;
        // Recording taps what the leg sent, except while muted or on hold
        // (its channel is then silence, filled in by the recorder's tick).
        if let (Some(tap), Kind::Audio(law)) = (tap, kind) {
            let peer_held = peer_slot
                .and_then(|p| self.legs[p].as_ref())
                .is_some_and(|p| p.held);
            if forward_ok && !peer_held {
                record::send_audio(&self.rec_tx, &tap, now, ssrc, ts, law, pkt.payload());
            }
        }
        if in_room {
            // Decoded into the member's jitter buffer; the mixer's tick
            // sends what each member hears (rooms.rs).
            match kind {
                Kind::Audio(law) => self.mixer.push_audio(from, ssrc, ts, law, pkt.payload()),
                Kind::Event => {
                    let body = pkt.payload();
                    let mut copy = [0u8; MAX_EVENT_PAYLOAD];
                    if let Some(dst) = copy.get_mut(..body.len()) {
                        dst.copy_from_slice(body);
                        let n = body.len();
                        self.forward_event(from, pt, ts, copy.get(..n).unwrap_or(&[]), now);
                    }
                }
                Kind::Unknown => {}
            }
            return false;
        }
        if !forward_ok {
            return false;
        }
        let Some(peer) = peer_slot
            .and_then(|p| self.legs.get_mut(p))
            .and_then(Option::as_mut)
        else {
            return false;
        };
        if peer.held || !peer.remote_receives || peer.sender.playing() {
            return false;
        }
        if peer.rtp_target().is_none() {
            return false;
        }
        let out_pt = match rtp::map_payload(kind, pt, peer.payloads.as_ref()) {
            Mapping::Drop => return false,
            Mapping::Pass => pt,
            Mapping::Event { pt } => pt,
            Mapping::Audio { pt, convert } => {
                if let Some(table) = convert {
                    g711::convert_in_place(pkt.payload_mut(), table);
                }
                pt
            }
        };
        let r = peer.out.forward(from, ssrc, seq, ts, marker, now);
        pkt.set_ssrc(r.ssrc);
        pkt.set_sequence_number(r.seq);
        pkt.set_timestamp(r.ts);
        pkt.set_marker_bit(r.marker);
        pkt.set_payload_type(out_pt).is_ok()
    }

    /// One RTCP datagram from `slot`'s RTCP socket (a few per second:
    /// never batched).
    pub(super) fn on_rtcp(&mut self, slot: usize, batch: &mut Batch) {
        let Some(leg) = self.legs.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let Ok(n) = batch.recv_one(leg.rtcp.as_raw_fd()) else {
            return;
        };
        for i in 0..n {
            if let Some(d) = batch.get(i) {
                if self.rtcp_packet(slot, d) {
                    batch.queue(i);
                }
            }
        }
        let peer = self.peer_of(slot);
        if let Some((peer, dest)) = peer.and_then(|p| Some((p, p.rtcp_dest()?))) {
            let sent = batch.flush(peer.rtcp.as_raw_fd(), Target::To(dest));
            peer.counters.rtcp_out(sent.packets);
        }
    }

    /// One RTCP datagram received on `slot`: validated, its SSRCs translated
    /// like the RTP it describes ([`rtcp`]); true when it is to be forwarded.
    /// The leg `slot` forwards to, if it is bridged.
    fn peer_of(&self, slot: usize) -> Option<&Leg> {
        self.legs[slot]
            .as_ref()
            .and_then(|l| l.peer)
            .and_then(|p| self.legs.get(p))
            .and_then(Option::as_ref)
    }

    fn rtcp_packet(&mut self, slot: usize, d: Datagram<'_>) -> bool {
        let Some(leg) = self.legs.get(slot).and_then(Option::as_ref) else {
            return false;
        };
        let peer = leg
            .peer
            .and_then(|p| self.legs.get(p))
            .and_then(Option::as_ref);
        let map = peer.map_or_else(Translation::default, |p| rtcp_translation(leg, p));
        if d.truncated || rtcp::translate(d.bytes, &map).is_err() {
            leg.counters.malformed();
            return false;
        }
        leg.counters.rtcp_in();
        let forward = !leg.held
            && peer.is_some_and(|p| !p.held && p.remote_receives && p.rtcp_dest().is_some());
        if leg.latched_rtcp.is_none() {
            if let Some(l) = self.legs.get_mut(slot).and_then(Option::as_mut) {
                l.latched_rtcp = d.from;
            }
        }
        forward
    }
}
