//! One conference member's receive side: a small jitter buffer that places
//! RTP payloads on the room's sample clock by their timestamps, and the
//! loss concealment that fills a frame that did not arrive.
//!
//! Positions are sample indices on the room's clock (frame k of the room
//! covers `k * 160 .. (k + 1) * 160`); `play` is the first sample not yet
//! mixed. A stream (an SSRC) is anchored by its first packet two frames
//! after `play` ([`PREFILL`]: 40 to 60 ms of buffering, depending on where
//! in the period it arrived), and every later packet is placed by its
//! timestamp distance from the newest one seen (RFC 3550 §5.1: the
//! timestamp, not the arrival, says where audio belongs), so reordering and
//! jitter up to that depth cost nothing. The buffer is a ring of
//! [`CAPACITY`] samples with a bit per sample saying "audio arrived here"
//! (duplicates: the first copy wins; a frame with no bit set is lost).
//!
//! A packet whose samples are all before `play` is late: it is dropped and
//! counted. When the newest packet of a stream is late [`RESYNC_AFTER`]
//! times in a row (a delay step, a sender clock slower than ours), or lands
//! more than [`MAX_AHEAD`] ahead (a timestamp jump, a faster clock), the
//! stream is anchored again, as if it were new, and that is counted too.
//!
//! Concealment ([`Concealer`]): the first missing frame repeats the last one
//! received, the next [`FADE_FRAMES`] repeat it fading linearly to nothing,
//! then the member is silent until audio comes back. A member that stops
//! sending therefore fades out within 80 ms and costs nothing after.
//!
//! Sans-IO like the rest of the mixer: no clock, no socket; decoded once on
//! the way in (`crate::codec::g711`).

use crate::codec::G711;

use super::FRAME_SAMPLES;

/// Ring size in samples (512 ms); a power of two. Room enough that the
/// frame concealment repeats is still in the ring when it is needed (see
/// [`Concealer`]).
pub const CAPACITY: usize = 4096;
const MASK: usize = CAPACITY - 1;
/// Where a new stream's first packet lands: this many samples after the
/// first one not yet mixed (two frames).
pub const PREFILL: i64 = 2 * FRAME_SAMPLES as i64;
/// How far ahead of `play` a packet may start before the stream is
/// re-anchored (160 ms).
pub const MAX_AHEAD: i64 = 1280;
/// Samples kept from one packet (80 ms); the rest of a larger one is
/// dropped. `MAX_AHEAD + MAX_PACKET` stays inside the ring.
pub const MAX_PACKET: usize = 640;
/// Late packets in a row, each the newest of its stream, before re-anchoring.
pub const RESYNC_AFTER: u32 = 3;
/// Frames over which a concealed frame fades to silence, after one repeat.
pub const FADE_FRAMES: u32 = 3;

// What a packet may write ([`MAX_AHEAD`] + [`MAX_PACKET`] past `play`) never
// reaches the last frame received, at most 1 + [`FADE_FRAMES`] frames back.
const _: () = assert!(
    MAX_AHEAD as usize + MAX_PACKET + (2 + FADE_FRAMES as usize) * FRAME_SAMPLES <= CAPACITY
);

#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    /// Timestamp and position of the newest packet seen.
    ref_ts: u32,
    ref_pos: i64,
}

/// What happened to a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    /// In the buffer (all of it, or the part not yet played).
    Buffered,
    /// In the buffer, after re-anchoring the stream.
    Resynced,
    /// Dropped: its samples were already played.
    Late,
    /// Dropped: empty, or an old packet too far ahead to be real.
    Ignored,
}

/// The jitter buffer of one member.
pub struct Jitter {
    samples: Box<[i16]>,
    filled: Box<[u64]>,
    stream: Option<Stream>,
    late_streak: u32,
}

impl std::fmt::Debug for Jitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jitter")
            .field("stream", &self.stream)
            .field("late_streak", &self.late_streak)
            .finish_non_exhaustive()
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Jitter {
            samples: vec![0; CAPACITY].into_boxed_slice(),
            filled: vec![0; CAPACITY / 64].into_boxed_slice(),
            stream: None,
            late_streak: 0,
        }
    }
}

impl Jitter {
    /// Place one payload of `law` with RTP `ssrc` and `ts`; `play` is the
    /// room's first sample not yet mixed.
    pub fn put(&mut self, ssrc: u32, ts: u32, law: G711, payload: &[u8], play: i64) -> Placed {
        let payload = payload.get(..MAX_PACKET).unwrap_or(payload);
        if payload.is_empty() {
            return Placed::Ignored;
        }
        let len = payload.len() as i64;
        let anchor = play + PREFILL;
        let (pos, newest, placed) = match self.stream {
            Some(s) if s.ssrc == ssrc => {
                // Signed distance, so timestamps wrap as RFC 3550 intends.
                let d = ts.wrapping_sub(s.ref_ts) as i32;
                let pos = s.ref_pos + i64::from(d);
                if d <= 0 {
                    // Reordered or duplicated: only ever placed.
                    if pos + len <= play {
                        return Placed::Late;
                    }
                    if pos > play + MAX_AHEAD {
                        return Placed::Ignored;
                    }
                    (pos, false, Placed::Buffered)
                } else if pos + len <= play {
                    self.late_streak += 1;
                    if self.late_streak < RESYNC_AFTER {
                        return Placed::Late;
                    }
                    (anchor, true, Placed::Resynced)
                } else if pos > play + MAX_AHEAD {
                    (anchor, true, Placed::Resynced)
                } else {
                    (pos, true, Placed::Buffered)
                }
            }
            // The same leg restarting with a new SSRC.
            Some(_) => (anchor, true, Placed::Resynced),
            None => (anchor, true, Placed::Buffered),
        };
        if newest {
            self.stream = Some(Stream {
                ssrc,
                ref_ts: ts,
                ref_pos: pos,
            });
            self.late_streak = 0;
        }
        // The part not yet played (all of it, but for a partly late packet).
        let skip = (play - pos).clamp(0, len) as usize;
        if let Some(codes) = payload.get(skip..) {
            self.store(pos + skip as i64, law, codes);
        }
        placed
    }

    /// Take the frame starting at `play` into `out`: true when any of its
    /// samples arrived (missing samples are zero).
    pub fn take(&mut self, play: i64, out: &mut [i16; FRAME_SAMPLES]) -> bool {
        self.take_frame(play, Some(out))
    }

    /// Forget the frame starting at `play` (a frame the room skipped).
    pub fn discard(&mut self, play: i64) {
        self.take_frame(play, None);
    }

    /// The frame is at most two runs of the ring (it may straddle the
    /// wrap); each run is walked a bitmap word at a time, so a whole frame
    /// that arrived is two or three copies, not 160 bit tests.
    fn take_frame(&mut self, play: i64, mut out: Option<&mut [i16; FRAME_SAMPLES]>) -> bool {
        let start = play as usize & MASK;
        let first = (CAPACITY - start).min(FRAME_SAMPLES);
        let mut any = false;
        let mut all = true;
        let mut done = 0;
        for (at, len) in [(start, first), (0, FRAME_SAMPLES - first)] {
            let mut i = 0;
            while i < len {
                let idx = at + i;
                let bit = idx % 64;
                let n = (64 - bit).min(len - i);
                let mask = if n == 64 {
                    u64::MAX
                } else {
                    ((1u64 << n) - 1) << bit
                };
                let Some(word) = self.filled.get_mut(idx / 64) else {
                    break;
                };
                let got = *word & mask;
                *word &= !mask;
                if let (Some(out), Some(src)) = (out.as_deref_mut(), self.samples.get(idx..idx + n))
                {
                    if let Some(dst) = out.get_mut(done + i..done + i + n) {
                        if got == mask {
                            dst.copy_from_slice(src);
                        } else if got == 0 {
                            dst.fill(0);
                        } else {
                            for (k, (d, &s)) in dst.iter_mut().zip(src).enumerate() {
                                *d = if got >> (bit + k) & 1 != 0 { s } else { 0 };
                            }
                        }
                    }
                }
                any |= got != 0;
                all &= got == mask;
                i += n;
            }
            done += len;
        }
        if let Some(out) = out {
            if any && !all {
                // A partial frame: what is missing is silence in the ring
                // too, for concealment's repeat (a sample that is 0 stays 0).
                for (i, &v) in out.iter().enumerate() {
                    if v == 0 {
                        if let Some(s) = self.samples.get_mut((start + i) & MASK) {
                            *s = 0;
                        }
                    }
                }
            }
        }
        any
    }

    /// The samples of the frame at `pos` as they were taken (the ring keeps
    /// them until the positions come round again): what concealment repeats.
    pub fn peek(&self, pos: i64, out: &mut [i16; FRAME_SAMPLES]) {
        let start = pos as usize & MASK;
        let first = (CAPACITY - start).min(FRAME_SAMPLES);
        let (a, b) = out.split_at_mut(first);
        if let (Some(x), Some(y)) = (
            self.samples.get(start..start + first),
            self.samples.get(..b.len()),
        ) {
            a.copy_from_slice(x);
            b.copy_from_slice(y);
        }
    }

    /// Decode `codes` into the ring from `pos` on, a bitmap word at a time;
    /// samples already there stay (the first copy of a duplicate wins).
    fn store(&mut self, pos: i64, law: G711, codes: &[u8]) {
        let mut i = 0;
        while i < codes.len() {
            let idx = (pos + i as i64) as usize & MASK;
            let bit = idx % 64;
            let n = (64 - bit).min(codes.len() - i).min(CAPACITY - idx);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            let (Some(word), Some(dst), Some(src)) = (
                self.filled.get_mut(idx / 64),
                self.samples.get_mut(idx..idx + n),
                codes.get(i..i + n),
            ) else {
                break;
            };
            if *word & mask == 0 {
                law.decode_into(src, dst);
            } else {
                for (k, (d, &c)) in dst.iter_mut().zip(src).enumerate() {
                    if *word >> (bit + k) & 1 == 0 {
                        *d = law.decode(c);
                    }
                }
            }
            *word |= mask;
            i += n;
        }
    }
}

/// What a member contributes this frame, after concealment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Audio that arrived.
    Received,
    /// A repeat of the last frame (possibly fading).
    Concealed,
    /// Nothing: never sent, or faded out.
    Silent,
}

/// Repeat-then-fade loss concealment for one member. It keeps no copy of
/// the last frame: the ring still holds it (taking a frame clears its bits,
/// not its samples, and nothing written since can reach it).
#[derive(Clone, Debug, Default)]
pub struct Concealer {
    /// Where the last frame received starts; `None` once faded out (or
    /// before any audio).
    last: Option<i64>,
    /// Frames concealed since.
    lost: u32,
}

impl Concealer {
    /// The frame at `at` arrived.
    pub fn received(&mut self, at: i64) {
        self.last = Some(at);
        self.lost = 0;
    }

    /// The next frame did not arrive: `frame` gets its concealment (the last
    /// frame, then fading) or silence.
    pub fn conceal(&mut self, jitter: &Jitter, frame: &mut [i16; FRAME_SAMPLES]) -> Source {
        let Some(at) = self.last else {
            frame.fill(0);
            return Source::Silent;
        };
        self.lost += 1;
        let k = self.lost;
        if k > 1 + FADE_FRAMES {
            self.last = None;
            frame.fill(0);
            return Source::Silent;
        }
        jitter.peek(at, frame);
        if k > 1 {
            // Fade frame j (0-based) of FADE_FRAMES: gain from 1 - j/F down
            // to 1 - (j+1)/F across its samples, in Q15.
            let n = i64::from(FADE_FRAMES) * FRAME_SAMPLES as i64;
            let start = i64::from(k - 2) * FRAME_SAMPLES as i64;
            for (i, o) in frame.iter_mut().enumerate() {
                let g = ((n - start - i as i64) << 15) / n;
                *o = ((i64::from(*o) * g) >> 15) as i16;
            }
        }
        Source::Concealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: i64 = FRAME_SAMPLES as i64;

    fn take(j: &mut Jitter, play: i64) -> Option<[i16; FRAME_SAMPLES]> {
        let mut out = [0; FRAME_SAMPLES];
        j.take(play, &mut out).then_some(out)
    }

    /// A μ-law payload whose every sample decodes to `v`'s code.
    fn pkt(code: u8) -> [u8; FRAME_SAMPLES] {
        [code; FRAME_SAMPLES]
    }

    #[test]
    fn a_stream_is_anchored_two_frames_ahead_and_placed_by_timestamp() {
        let mut j = Jitter::default();
        assert_eq!(j.put(1, 1000, G711::Pcmu, &pkt(0x80), 0), Placed::Buffered);
        // Timestamps wrap; the next packet is 160 later.
        assert_eq!(j.put(1, 1160, G711::Pcmu, &pkt(0x81), 0), Placed::Buffered);
        assert_eq!(take(&mut j, 0), None);
        assert_eq!(take(&mut j, F), None);
        assert_eq!(take(&mut j, 2 * F), Some([32124; FRAME_SAMPLES]));
        assert!(take(&mut j, 3 * F).is_some());
        assert_eq!(take(&mut j, 4 * F), None, "taken frames are gone");
    }

    #[test]
    fn duplicates_keep_the_first_copy_and_partly_late_packets_keep_the_rest() {
        let mut j = Jitter::default();
        j.put(1, 0, G711::Pcmu, &pkt(0x80), 0);
        assert_eq!(j.put(1, 0, G711::Pcmu, &pkt(0x00), 0), Placed::Buffered);
        assert_eq!(take(&mut j, 2 * F).unwrap()[0], 32124);
        // Play is now mid-way through packet 1 (160..320 of the stream).
        let play = 3 * F + 80;
        assert_eq!(
            j.put(1, 160, G711::Pcmu, &pkt(0x80), play),
            Placed::Buffered
        );
        let mut out = [0; FRAME_SAMPLES];
        assert!(j.take(play, &mut out));
        assert!(out[..80].iter().all(|&s| s == 32124) && out[80..].iter().all(|&s| s == 0));
    }

    #[test]
    fn late_newest_packets_resync_after_a_streak_older_ones_only_drop() {
        let mut j = Jitter::default();
        j.put(7, 0, G711::Pcmu, &pkt(0x80), 0);
        // The room has moved on 20 frames: a delay step upstream.
        let play = 20 * F;
        assert_eq!(j.put(7, 160, G711::Pcmu, &pkt(0x80), play), Placed::Late);
        assert_eq!(j.put(7, 320, G711::Pcmu, &pkt(0x80), play), Placed::Late);
        assert_eq!(
            j.put(7, 480, G711::Pcmu, &pkt(0x80), play),
            Placed::Resynced
        );
        assert!(take(&mut j, play + 2 * F).is_some());
        // An older packet after the resync is late, and starts no streak.
        let play = play + 3 * F;
        assert_eq!(j.put(7, 320, G711::Pcmu, &pkt(0x80), play), Placed::Late);
        assert_eq!(
            j.put(7, 640, G711::Pcmu, &pkt(0x80), play),
            Placed::Buffered
        );
    }

    #[test]
    fn timestamp_jumps_and_new_ssrcs_re_anchor() {
        let mut j = Jitter::default();
        j.put(7, 0, G711::Pcmu, &pkt(0x80), 0);
        assert_eq!(
            j.put(7, 80_000, G711::Pcmu, &pkt(0x80), 0),
            Placed::Resynced
        );
        assert!(take(&mut j, 2 * F).is_some());
        assert_eq!(
            j.put(8, 5, G711::Pcmu, &pkt(0x80), 10 * F),
            Placed::Resynced
        );
        assert!(take(&mut j, 12 * F).is_some());
        // An old packet that would land far ahead is nonsense.
        assert_eq!(
            j.put(8, 5u32.wrapping_sub(60_000), G711::Pcmu, &pkt(0x80), 10 * F),
            Placed::Late
        );
        assert_eq!(j.put(8, 5, G711::Pcmu, &[], 10 * F), Placed::Ignored);
    }

    #[test]
    fn oversized_payloads_are_cut_and_the_ring_never_overflows() {
        let mut j = Jitter::default();
        let big = vec![0x80u8; 4 * CAPACITY];
        assert_eq!(j.put(1, 0, G711::Pcmu, &big, 0), Placed::Buffered);
        let mut got = 0;
        for k in 0..(CAPACITY as i64 / F + 4) {
            if take(&mut j, k * F).is_some() {
                got += 1;
            }
        }
        assert_eq!(got, MAX_PACKET / FRAME_SAMPLES);
    }

    #[test]
    fn concealment_repeats_the_ring_fades_and_goes_silent() {
        let mut j = Jitter::default();
        let mut c = Concealer::default();
        let mut f = [0i16; FRAME_SAMPLES];
        assert_eq!(
            c.conceal(&j, &mut f),
            Source::Silent,
            "nothing to repeat yet"
        );
        j.put(1, 0, G711::Pcmu, &pkt(0x80), 0);
        assert!(j.take(2 * F, &mut f));
        c.received(2 * F);
        // Packets ahead land in the ring; the repeated frame is untouched.
        j.put(1, 800, G711::Pcmu, &pkt(0x00), 3 * F);
        let mut f = [7i16; FRAME_SAMPLES];
        assert_eq!(c.conceal(&j, &mut f), Source::Concealed);
        assert_eq!(f, [32124; FRAME_SAMPLES]);
        let mut prev = 32124;
        for _ in 0..FADE_FRAMES {
            let mut f = [0i16; FRAME_SAMPLES];
            assert_eq!(c.conceal(&j, &mut f), Source::Concealed);
            assert!(f.windows(2).all(|w| w[0] >= w[1]) && f[0] <= prev);
            prev = f[FRAME_SAMPLES - 1];
        }
        assert!(prev < 300, "faded to nearly nothing: {prev}");
        let mut f = [5i16; FRAME_SAMPLES];
        assert_eq!(c.conceal(&j, &mut f), Source::Silent);
        assert_eq!(f, [0; FRAME_SAMPLES]);
    }

    #[test]
    fn a_partial_frame_is_repeated_with_its_gaps_silent() {
        let mut j = Jitter::default();
        let mut f = [0i16; FRAME_SAMPLES];
        // An 80-sample packet: half a frame.
        j.put(1, 0, G711::Pcmu, &[0x80; 80], 0);
        assert!(j.take(2 * F, &mut f));
        let mut c = Concealer::default();
        c.received(2 * F);
        let mut r = [1i16; FRAME_SAMPLES];
        c.conceal(&j, &mut r);
        assert_eq!(r, f);
        assert!(r[..80].iter().all(|&s| s == 32124) && r[80..].iter().all(|&s| s == 0));
    }
}
