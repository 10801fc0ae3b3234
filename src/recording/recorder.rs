//! [`Recorder`]: one call's WAV file, fed with RTP payloads from both
//! directions. Owns the hound writer and the flush cadence; placement and
//! buffering are the timeline's.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::timeline::{Timeline, RATE, WINDOW};
use super::{Channel, RecordingError};
use crate::codec::G711;

/// Frames between header rewrites: one second of audio.
const FLUSH_EVERY: i64 = RATE as i64;
/// hound keeps the data size in a u32: stop one second short of 4 GiB
/// (about 37 hours of stereo 8 kHz) rather than overflow it.
const MAX_FRAMES: i64 = (u32::MAX as i64 - 64) / 4 - RATE as i64;

type Writer = hound::WavWriter<BufWriter<File>>;

/// A call recording: stereo, 8 kHz, 16-bit PCM; [`Channel::Left`] is
/// channel 0, [`Channel::Right`] channel 1. Dropping it without
/// [`Recorder::finish`] still writes what it holds and a valid header (best
/// effort, errors unseen).
pub struct Recorder {
    path: PathBuf,
    writer: Option<Writer>,
    timeline: Timeline,
    flushed_at: i64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("path", &self.path)
            .field("open", &self.writer.is_some())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Creates the file (and its parent directories). The header is written
    /// at once, so the file is a valid, empty WAV from the start.
    pub fn create(path: &Path) -> Result<Recorder, RecordingError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| RecordingError::io(path, e))?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: RATE as u32,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer =
            hound::WavWriter::create(path, spec).map_err(|e| RecordingError::wav(path, e))?;
        // hound writes the header into its buffer; push it to the file now.
        writer.flush().map_err(|e| RecordingError::wav(path, e))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            writer: Some(writer),
            timeline: Timeline::new(),
            flushed_at: 0,
        })
    }

    /// One RTP payload received at `arrival` (placement: see the timeline
    /// module). Frames older than the jitter window are written out as a
    /// side effect, into hound's buffer; a header rewrite (a few syscalls)
    /// happens at most once per second of audio.
    pub fn write(
        &mut self,
        channel: Channel,
        arrival: Instant,
        ssrc: u32,
        rtp_timestamp: u32,
        codec: G711,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        let arrival = self.timeline.position(arrival);
        self.advance(arrival - WINDOW)?;
        let ch = match channel {
            Channel::Left => 0,
            Channel::Right => 1,
        };
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let path = &self.path;
        let samples = payload.iter().map(|&b| codec.decode(b));
        self.timeline
            .insert(ch, arrival, ssrc, rtp_timestamp, samples, &mut |frames| {
                write_frames(writer, path, frames)
            })?;
        self.maybe_flush()
    }

    /// Writes out every frame older than `now` minus the jitter window,
    /// silence where a channel got nothing.
    pub fn tick(&mut self, now: Instant) -> Result<(), RecordingError> {
        let now = self.timeline.position(now);
        self.advance(now - WINDOW)?;
        self.maybe_flush()
    }

    /// From `now` on both channels are silence and packets are discarded,
    /// until [`Recorder::resume`]. The file keeps the call's duration.
    pub fn pause(&mut self, now: Instant) {
        let at = self.timeline.position(now);
        self.timeline.pause(at);
    }

    pub fn resume(&mut self, now: Instant) {
        let at = self.timeline.position(now);
        self.timeline.resume(at);
    }

    pub fn is_paused(&self) -> bool {
        self.timeline.is_paused()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes everything still buffered and finalises the header.
    pub fn finish(mut self) -> Result<PathBuf, RecordingError> {
        self.drain_all()?;
        // Present until finish (which takes `self`) or drop.
        let Some(writer) = self.writer.take() else {
            return Ok(self.path.clone());
        };
        writer
            .finalize()
            .map_err(|e| RecordingError::wav(&self.path, e))?;
        Ok(std::mem::take(&mut self.path))
    }

    fn advance(&mut self, target: i64) -> Result<(), RecordingError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        if target <= self.timeline.written() {
            return Ok(());
        }
        let path = &self.path;
        self.timeline
            .drain_until(target, &mut |frames| write_frames(writer, path, frames))
    }

    fn drain_all(&mut self) -> Result<(), RecordingError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let path = &self.path;
        self.timeline
            .drain_all(&mut |frames| write_frames(writer, path, frames))
    }

    fn maybe_flush(&mut self) -> Result<(), RecordingError> {
        let written = self.timeline.written();
        if written - self.flushed_at < FLUSH_EVERY {
            return Ok(());
        }
        if let Some(writer) = self.writer.as_mut() {
            writer
                .flush()
                .map_err(|e| RecordingError::wav(&self.path, e))?;
        }
        self.flushed_at = written;
        Ok(())
    }
}

fn write_frames(writer: &mut Writer, path: &Path, frames: &[i16]) -> Result<(), RecordingError> {
    if writer.len() as i64 + frames.len() as i64 > MAX_FRAMES * 2 {
        return Err(RecordingError::TooLong {
            path: path.to_path_buf(),
        });
    }
    let mut w = writer.get_i16_writer(frames.len() as u32);
    for &s in frames {
        w.write_sample(s);
    }
    w.flush().map_err(|e| RecordingError::wav(path, e))
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // An abrupt end of the call: keep what is buffered; hound's own drop
        // then rewrites the header.
        if self.writer.is_some() {
            let _ = self.drain_all();
        }
    }
}
