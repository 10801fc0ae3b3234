//! The recording timeline: where each RTP payload's samples land, the small
//! jitter buffer that holds them until they are old enough to write, and
//! pause. No I/O: [`Timeline::drain_until`] hands finished frames to the
//! caller.
//!
//! Positions are sample indices (8 kHz) since the timeline's origin, the
//! first instant it was given. Frames before `written` are on their way to
//! the file and immutable; frames in `written..written + CAPACITY` live in
//! one ring per channel with a bit per sample saying "audio arrived here"
//! (so a duplicate packet is ignored: the first copy wins). Anything not
//! filled when its frame is drained is silence.
//!
//! Placement of a packet (per channel, one current stream = SSRC):
//! - a new SSRC anchors at the packet's arrival position;
//! - otherwise the packet goes at the stream's reference position plus its
//!   RTP timestamp distance from the reference packet (the newest seen), so
//!   network jitter does not move audio and a timestamp gap is silence;
//! - the newest packet re-anchors on its arrival instead when its timestamp
//!   places it more than [`MAX_AHEAD`] ahead of its arrival (a timestamp leap
//!   the buffer cannot hold, or a sender clock running fast) or entirely
//!   before what was already written (a delay step or a slow sender clock
//!   that would otherwise make every later packet late); a reordered
//!   (older) packet is only ever placed, never re-anchors.
//!
//! Memory is fixed at creation: two rings of [`CAPACITY`] samples plus
//! their bitmaps, 16.5 KiB per recording. A packet that would land beyond
//! the ring drains the oldest frames first.

use std::time::Instant;

/// Jitter window: frames are written out once they are this old (160 ms).
pub(crate) const WINDOW: i64 = 1280;
/// How far ahead of its arrival a packet's timestamp may place it (300 ms).
pub(crate) const MAX_AHEAD: i64 = 2400;
/// Ring size per channel in samples (512 ms); a power of two.
const CAPACITY: usize = 4096;
const MASK: usize = CAPACITY - 1;

pub(crate) const RATE: u64 = 8000;

#[derive(Clone, Copy)]
struct Stream {
    ssrc: u32,
    /// Timestamp and position of the newest packet seen on this stream.
    ref_ts: u32,
    ref_pos: i64,
}

struct Ring {
    samples: Box<[i16]>,
    filled: Box<[u64]>,
    stream: Option<Stream>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            samples: vec![0; CAPACITY].into_boxed_slice(),
            filled: vec![0; CAPACITY / 64].into_boxed_slice(),
            stream: None,
        }
    }

    /// Takes the sample at `pos` out of the ring (silence if none arrived).
    fn take(&mut self, pos: i64) -> i16 {
        let i = pos as usize & MASK;
        let bit = 1u64 << (i % 64);
        let word = &mut self.filled[i / 64];
        if *word & bit == 0 {
            return 0;
        }
        *word &= !bit;
        self.samples[i]
    }

    /// Stores a sample unless one is already there (duplicates ignored).
    fn put(&mut self, pos: i64, sample: i16) {
        let i = pos as usize & MASK;
        let bit = 1u64 << (i % 64);
        let word = &mut self.filled[i / 64];
        if *word & bit == 0 {
            *word |= bit;
            self.samples[i] = sample;
        }
    }

    fn clear(&mut self) {
        self.filled.fill(0);
    }
}

pub(crate) struct Timeline {
    origin: Option<Instant>,
    rings: [Ring; 2],
    /// Frames handed to the writer so far; the next frame to drain.
    written: i64,
    /// One past the last sample position any channel holds.
    high: i64,
    paused: bool,
    /// Samples before this position are refused (set on resume, so audio
    /// timed inside the pause does not leak into it).
    floor: i64,
}

impl Timeline {
    pub(crate) fn new() -> Timeline {
        Timeline {
            origin: None,
            rings: [Ring::new(), Ring::new()],
            written: 0,
            high: 0,
            paused: false,
            floor: 0,
        }
    }

    /// Sample position of `t`; the first instant ever seen is position 0.
    pub(crate) fn position(&mut self, t: Instant) -> i64 {
        let origin = *self.origin.get_or_insert(t);
        let ns = t.saturating_duration_since(origin).as_nanos();
        (ns * RATE as u128 / 1_000_000_000) as i64
    }

    pub(crate) fn written(&self) -> i64 {
        self.written
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Where a packet of `len` samples from `ssrc` with `ts`, arriving at
    /// position `arrival`, starts on channel `ch` (see the module header).
    fn place(&mut self, ch: usize, arrival: i64, ssrc: u32, ts: u32, len: i64) -> i64 {
        let written = self.written.max(self.floor);
        let ring = &mut self.rings[ch];
        let anchor = Stream {
            ssrc,
            ref_ts: ts,
            ref_pos: arrival,
        };
        match ring.stream {
            Some(s) if s.ssrc == ssrc => {
                let delta = ts.wrapping_sub(s.ref_ts) as i32 as i64;
                let pos = s.ref_pos + delta;
                if delta <= 0 {
                    return pos;
                }
                if pos > arrival + MAX_AHEAD || pos + len <= written {
                    ring.stream = Some(anchor);
                    arrival
                } else {
                    ring.stream = Some(Stream {
                        ssrc,
                        ref_ts: ts,
                        ref_pos: pos,
                    });
                    pos
                }
            }
            _ => {
                ring.stream = Some(anchor);
                arrival
            }
        }
    }

    /// Places decoded samples; `emit` receives frames that must be drained
    /// first to make room (only when a packet lands beyond the ring).
    pub(crate) fn insert<E>(
        &mut self,
        ch: usize,
        arrival: i64,
        ssrc: u32,
        ts: u32,
        samples: impl ExactSizeIterator<Item = i16>,
        emit: &mut impl FnMut(&[i16]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.paused {
            return Ok(());
        }
        let len = samples.len() as i64;
        let start = self.place(ch, arrival, ssrc, ts, len);
        let end = start + len;
        if end > self.written + CAPACITY as i64 {
            self.drain_until(end - CAPACITY as i64, emit)?;
        }
        let first = self.written.max(self.floor);
        for (i, s) in samples.enumerate() {
            let pos = start + i as i64;
            if pos >= first {
                self.rings[ch].put(pos, s);
            }
        }
        if end > first {
            self.high = self.high.max(end);
        }
        Ok(())
    }

    /// Drains frames `written..target` to `emit`, interleaved left/right, in
    /// chunks. Frames past what the ring holds are silence.
    pub(crate) fn drain_until<E>(
        &mut self,
        target: i64,
        emit: &mut impl FnMut(&[i16]) -> Result<(), E>,
    ) -> Result<(), E> {
        const CHUNK: usize = 256;
        let mut buf = [0i16; CHUNK * 2];
        while self.written < target {
            let n = (target - self.written).min(CHUNK as i64) as usize;
            if self.written >= self.high {
                buf[..n * 2].fill(0);
            } else {
                for f in 0..n {
                    let pos = self.written + f as i64;
                    buf[f * 2] = self.rings[0].take(pos);
                    buf[f * 2 + 1] = self.rings[1].take(pos);
                }
            }
            emit(&buf[..n * 2])?;
            self.written += n as i64;
        }
        Ok(())
    }

    /// Drains everything held, up to the last sample any channel has.
    pub(crate) fn drain_all<E>(
        &mut self,
        emit: &mut impl FnMut(&[i16]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.drain_until(self.high, emit)
    }

    /// From position `at` on, both channels are silent until [`resume`].
    pub(crate) fn pause(&mut self, at: i64) {
        if self.paused {
            return;
        }
        self.paused = true;
        // Audio already buffered for positions at or past the pause goes.
        for ring in &mut self.rings {
            if at <= self.written {
                ring.clear();
            } else {
                for pos in at..self.high.max(at) {
                    ring.take(pos);
                }
            }
        }
        self.high = self.high.min(at.max(self.written));
    }

    pub(crate) fn resume(&mut self, at: i64) {
        if !self.paused {
            return;
        }
        self.paused = false;
        self.floor = self.floor.max(at);
    }
}
