//! Outgoing RTP stream continuity and payload-type mapping (sans-IO).
//!
//! Every leg's outgoing stream is ours: our SSRC, our sequence numbers, our
//! timestamps. A phone must see one well-behaved stream even when what feeds
//! it changes (re-bridge after a transfer, the far end restarting with a new
//! SSRC, generated DTMF interleaved with forwarded audio); otherwise jitter
//! buffers reset, or worse, drop the new source as out of order.
//!
//! While one source feeds the stream, its packets keep their relative
//! sequence and timestamp spacing (fixed offsets), so upstream loss and
//! reordering stay visible to the receiver. When the source changes, the
//! sequence continues at last + 1 and the timestamp at the last one plus the
//! wall time elapsed since, at 8 kHz, and the first packet carries the marker.
//!
//! The 12-byte fixed header is validated and rewritten in place through
//! `rtp_types::RtpPacketMut` by the engine; this file only computes values.

use std::time::Instant;

use super::{LegId, PayloadMap, G711};
use crate::codec::g711::{ALAW_TO_ULAW, ULAW_TO_ALAW};

/// RTP clock of G.711 and its telephone events.
pub const CLOCK_HZ: u64 = 8000;

/// Who feeds an outgoing stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Feeder {
    /// Forwarded from a leg, with that leg's SSRC at the time.
    Leg { leg: LegId, ssrc: u32 },
    /// Generated here (RFC 4733 events).
    Generator,
    /// A conference room's mix (one per room created).
    Mixer { room: u64 },
}

#[derive(Clone, Copy, Debug)]
struct Current {
    feeder: Feeder,
    seq_offset: u16,
    ts_offset: u32,
}

/// The last packet sent and the wall time its timestamp stands for.
#[derive(Clone, Copy, Debug)]
struct Last {
    seq: u16,
    ts: u32,
    at: Instant,
}

/// Header values for one outgoing packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    pub marker: bool,
}

/// The leg feeding an outgoing stream now, and how its packets' sequence
/// numbers and timestamps are shifted (RTCP is translated with the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub leg: LegId,
    pub ssrc: u32,
    pub seq_offset: u16,
    pub ts_offset: u32,
}

/// One leg's outgoing stream.
#[derive(Debug, Clone)]
pub struct OutStream {
    ssrc: u32,
    /// Sequence and timestamp of the very first packet (random per RFC 3550).
    initial_seq: u16,
    initial_ts: u32,
    current: Option<Current>,
    last: Option<Last>,
}

impl OutStream {
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32) -> Self {
        OutStream {
            ssrc,
            initial_seq,
            initial_ts,
            current: None,
            last: None,
        }
    }

    /// A stream with random SSRC, sequence and timestamp bases.
    pub fn random() -> Self {
        Self::new(rand::random(), rand::random(), rand::random())
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The leg whose packets this stream forwards now; `None` before the
    /// first packet and while a generated event is the feeder.
    pub fn source(&self) -> Option<Source> {
        match self.current? {
            Current {
                feeder: Feeder::Leg { leg, ssrc },
                seq_offset,
                ts_offset,
            } => Some(Source {
                leg,
                ssrc,
                seq_offset,
                ts_offset,
            }),
            Current {
                feeder: Feeder::Generator | Feeder::Mixer { .. },
                ..
            } => None,
        }
    }

    /// Where the stream continues after a source change at `now`.
    fn continuation(&self, now: Instant) -> (u16, u32) {
        match self.last {
            None => (self.initial_seq, self.initial_ts),
            Some(last) => {
                let elapsed = now.saturating_duration_since(last.at);
                let samples = (elapsed.as_micros() as u64 * CLOCK_HZ / 1_000_000).max(1);
                (
                    last.seq.wrapping_add(1),
                    last.ts.wrapping_add(samples as u32),
                )
            }
        }
    }

    /// Header for a packet forwarded from `from` with the given source header
    /// fields, arriving at `now`.
    pub fn forward(
        &mut self,
        from: LegId,
        ssrc: u32,
        seq: u16,
        ts: u32,
        marker: bool,
        now: Instant,
    ) -> Rewrite {
        self.feed(Feeder::Leg { leg: from, ssrc }, seq, ts, marker, now)
    }

    /// Header for frame `index` of room `room`'s mix, sent at `now`. The
    /// room's numbering (one sequence number and 160 samples a frame) is
    /// shifted like a forwarded source's: entering a room, or coming back
    /// to it after an event, continues the stream with the marker bit.
    pub fn mixed(&mut self, room: u64, index: u32, now: Instant) -> Rewrite {
        let ts = index.wrapping_mul(super::mixer::FRAME_SAMPLES as u32);
        self.feed(Feeder::Mixer { room }, index as u16, ts, false, now)
    }

    fn feed(&mut self, feeder: Feeder, seq: u16, ts: u32, marker: bool, now: Instant) -> Rewrite {
        let (cur, switched) = match self.current {
            Some(c) if c.feeder == feeder => (c, false),
            _ => {
                let (next_seq, next_ts) = self.continuation(now);
                let c = Current {
                    feeder,
                    seq_offset: next_seq.wrapping_sub(seq),
                    ts_offset: next_ts.wrapping_sub(ts),
                };
                self.current = Some(c);
                (c, true)
            }
        };
        let out_seq = seq.wrapping_add(cur.seq_offset);
        let out_ts = ts.wrapping_add(cur.ts_offset);
        // Late packets keep their place but do not move "last" backwards.
        let newer = match self.last {
            None => true,
            Some(l) => (out_seq.wrapping_sub(l.seq) as i16) > 0,
        };
        if newer {
            self.last = Some(Last {
                seq: out_seq,
                ts: out_ts,
                at: now,
            });
        }
        Rewrite {
            ssrc: self.ssrc,
            seq: out_seq,
            ts: out_ts,
            marker: marker || switched,
        }
    }

    /// Header for the first packet of a generated event starting at `now`:
    /// the timestamp continues the stream and stays for the whole event.
    pub fn begin_event(&mut self, now: Instant) -> Rewrite {
        let (seq, ts) = self.continuation(now);
        self.current = Some(Current {
            feeder: Feeder::Generator,
            seq_offset: 0,
            ts_offset: 0,
        });
        self.last = Some(Last { seq, ts, at: now });
        Rewrite {
            ssrc: self.ssrc,
            seq,
            ts,
            marker: true,
        }
    }

    /// Header for a later packet of the event begun by [`Self::begin_event`]:
    /// next sequence number, same timestamp. The timestamp's wall time stays
    /// the event start, so audio after the event continues from there.
    /// Without a begun event (never the engine's order) it begins one at `at`.
    pub fn event_packet(&mut self, at: Instant) -> Rewrite {
        let Some(last) = self.last else {
            return self.begin_event(at);
        };
        let seq = last.seq.wrapping_add(1);
        self.last = Some(Last { seq, ..last });
        Rewrite {
            ssrc: self.ssrc,
            seq,
            ts: last.ts,
            marker: false,
        }
    }
}

/// What to do with one payload on its way to the receiving leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// Audio: send with `pt`, converting the payload if the laws differ.
    Audio {
        pt: u8,
        convert: Option<&'static [u8; 256]>,
    },
    /// RFC 4733 event: send with `pt`.
    Event { pt: u8 },
    /// Nothing is known about either side: pass it unchanged.
    Pass,
    /// The receiver did not negotiate it.
    Drop,
}

/// Classify `pt` as sent by a leg with payloads `from`: audio of which law,
/// a telephone event, or unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Audio(G711),
    Event,
    Unknown,
}

pub fn classify(pt: u8, from: Option<&PayloadMap>) -> Kind {
    match from {
        Some(f) if pt == f.audio_pt => Kind::Audio(f.codec),
        Some(f) if Some(pt) == f.event_pt => Kind::Event,
        // Several audio codecs may be negotiated and a party may send any of
        // them: the static G.711 types are known without the map.
        Some(_) if pt == 0 => Kind::Audio(G711::Pcmu),
        Some(_) if pt == 8 => Kind::Audio(G711::Pcma),
        Some(_) => Kind::Unknown,
        // No SDP yet: only the static G.711 types can be told apart.
        None => match pt {
            0 => Kind::Audio(G711::Pcmu),
            8 => Kind::Audio(G711::Pcma),
            _ => Kind::Unknown,
        },
    }
}

/// Map a payload of kind `kind` (with original type `pt`) to the receiver's
/// negotiated types.
pub fn map_payload(kind: Kind, pt: u8, to: Option<&PayloadMap>) -> Mapping {
    let Some(to) = to else {
        return Mapping::Pass;
    };
    match kind {
        Kind::Audio(law) => Mapping::Audio {
            pt: to.audio_pt,
            convert: match (law, to.codec) {
                (G711::Pcmu, G711::Pcma) => Some(&ULAW_TO_ALAW),
                (G711::Pcma, G711::Pcmu) => Some(&ALAW_TO_ULAW),
                _ => None,
            },
        },
        Kind::Event => match to.event_pt {
            Some(pt) => Mapping::Event { pt },
            None => Mapping::Drop,
        },
        // An unknown type that is exactly the receiver's event type is most
        // likely an event from a leg without SDP yet.
        Kind::Unknown if Some(pt) == to.event_pt => Mapping::Event { pt },
        Kind::Unknown => Mapping::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: LegId = LegId(1);
    const B: LegId = LegId(2);

    #[test]
    fn one_source_keeps_spacing_and_own_ssrc() {
        let t0 = Instant::now();
        let mut s = OutStream::new(0xabcd, 1000, 50_000);
        let r1 = s.forward(A, 7, 10, 160, false, t0);
        let r2 = s.forward(A, 7, 11, 320, false, t0 + Duration::from_millis(20));
        let r4 = s.forward(A, 7, 13, 640, false, t0 + Duration::from_millis(60));
        assert_eq!(
            r1,
            Rewrite {
                ssrc: 0xabcd,
                seq: 1000,
                ts: 50_000,
                marker: true
            }
        );
        assert_eq!((r2.seq, r2.ts, r2.marker), (1001, 50_160, false));
        // A gap upstream stays a gap.
        assert_eq!((r4.seq, r4.ts), (1003, 50_480));
        // A late packet keeps its place.
        let r3 = s.forward(A, 7, 12, 480, false, t0 + Duration::from_millis(61));
        assert_eq!((r3.seq, r3.ts), (1002, 50_320));
    }

    #[test]
    fn source_change_continues_seq_and_time_with_marker() {
        let t0 = Instant::now();
        let mut s = OutStream::new(1, 65535, u32::MAX - 100);
        s.forward(A, 7, 500, 9000, false, t0);
        // B takes over 100 ms later with unrelated numbering.
        let r = s.forward(B, 99, 3, 77, false, t0 + Duration::from_millis(100));
        assert_eq!(r.seq, 0);
        assert_eq!(r.ts, (u32::MAX - 100).wrapping_add(800));
        assert!(r.marker);
        let r = s.forward(B, 99, 4, 237, false, t0 + Duration::from_millis(120));
        assert_eq!(
            (r.seq, r.ts, r.marker),
            (1, (u32::MAX - 100).wrapping_add(960), false)
        );
        // Same leg, new SSRC: also a source change.
        let r = s.forward(B, 100, 0, 0, false, t0 + Duration::from_millis(140));
        assert_eq!(
            (r.seq, r.ts, r.marker),
            (2, (u32::MAX - 100).wrapping_add(1120), true)
        );
    }

    #[test]
    fn events_hold_timestamp_and_audio_resumes_from_event_start() {
        let t0 = Instant::now();
        let mut s = OutStream::new(1, 10, 1000);
        s.forward(A, 7, 1, 0, false, t0);
        let start = s.begin_event(t0 + Duration::from_millis(20));
        assert_eq!((start.seq, start.ts, start.marker), (11, 1160, true));
        let next = s.event_packet(t0 + Duration::from_millis(40));
        assert_eq!((next.seq, next.ts, next.marker), (12, 1160, false));
        let audio = s.forward(A, 7, 20, 3040, false, t0 + Duration::from_millis(120));
        assert_eq!((audio.seq, audio.ts, audio.marker), (13, 1160 + 800, true));
    }

    #[test]
    fn source_names_the_feeding_leg_and_its_offsets() {
        let t0 = Instant::now();
        let mut s = OutStream::new(1, 10, 1000);
        assert_eq!(s.source(), None);
        s.forward(A, 7, 3, 40, false, t0);
        assert_eq!(
            s.source(),
            Some(Source {
                leg: A,
                ssrc: 7,
                seq_offset: 7,
                ts_offset: 960
            })
        );
        s.begin_event(t0 + Duration::from_millis(20));
        assert_eq!(s.source(), None);
        s.forward(B, 9, 0, 0, false, t0 + Duration::from_millis(40));
        assert_eq!(s.source().map(|x| (x.leg, x.ssrc)), Some((B, 9)));
    }

    #[test]
    fn a_room_feeds_like_a_source_and_hands_back_continuously() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = OutStream::new(5, 100, 8000);
        s.forward(A, 7, 1, 0, false, t0);
        // Into room 9 at its frame 40, 20 ms later: a new source.
        let r = s.mixed(9, 40, t0 + ms(20));
        assert_eq!((r.seq, r.ts, r.marker), (101, 8160, true));
        let r = s.mixed(9, 41, t0 + ms(40));
        assert_eq!((r.seq, r.ts, r.marker), (102, 8320, false));
        assert_eq!(s.source(), None, "no leg's RTCP describes a mix");
        // An event interrupts; the mix resumes from the event's start.
        s.begin_event(t0 + ms(60));
        s.event_packet(t0 + ms(80));
        let r = s.mixed(9, 45, t0 + ms(120));
        assert_eq!((r.seq, r.ts, r.marker), (105, 8480 + 480, true));
        // Another room is another source; so is a leg again.
        assert!(s.mixed(10, 0, t0 + ms(140)).marker);
        let r = s.forward(B, 3, 9, 99, false, t0 + ms(160));
        assert_eq!((r.seq, r.ts, r.marker), (107, 8960 + 320, true));
    }

    #[test]
    fn payload_mapping() {
        let u = PayloadMap {
            audio_pt: 0,
            codec: G711::Pcmu,
            event_pt: Some(101),
        };
        let a = PayloadMap {
            audio_pt: 8,
            codec: G711::Pcma,
            event_pt: Some(96),
        };
        let plain = PayloadMap {
            audio_pt: 0,
            codec: G711::Pcmu,
            event_pt: None,
        };
        assert_eq!(classify(0, Some(&u)), Kind::Audio(G711::Pcmu));
        assert_eq!(classify(101, Some(&u)), Kind::Event);
        assert_eq!(classify(13, Some(&u)), Kind::Unknown);
        assert_eq!(
            map_payload(Kind::Audio(G711::Pcmu), 0, Some(&a)),
            Mapping::Audio {
                pt: 8,
                convert: Some(&ULAW_TO_ALAW)
            }
        );
        assert_eq!(
            map_payload(Kind::Event, 101, Some(&a)),
            Mapping::Event { pt: 96 }
        );
        assert_eq!(map_payload(Kind::Event, 101, Some(&plain)), Mapping::Drop);
        assert_eq!(map_payload(Kind::Unknown, 13, Some(&a)), Mapping::Drop);
        assert_eq!(map_payload(Kind::Unknown, 13, None), Mapping::Pass);
        assert_eq!(
            map_payload(Kind::Unknown, 96, Some(&a)),
            Mapping::Event { pt: 96 }
        );
        assert_eq!(
            map_payload(Kind::Audio(G711::Pcmu), 0, Some(&u)),
            Mapping::Audio {
                pt: 0,
                convert: None
            }
        );
    }
}
