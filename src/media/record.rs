//! Call recording, seen from the relay: a recorder thread (`sb-media-rec`)
//! that owns every open recording, fed by a channel.
//!
//! Why a thread and a channel rather than a per-call `Mutex<Recorder>` the
//! relay writes through: a WAV write can stall on the disk for milliseconds,
//! and the relay thread carries every call; a stall there is loss for all of
//! them. The relay only copies the payload (at most [`CHUNK`] bytes, inline,
//! no allocation) into an unbounded channel, and the recorder thread does
//! file I/O, ticks (silence for gaps, hold and mute) every [`TICK`].
//!
//! The file format lives in `crate::recording`; this file talks to it
//! through [`RecordSink`], so the relay and its tests do not depend on how
//! files are written.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use super::{MediaEvent, G711};
use crate::recording::{Channel, Recorder, RecordingError};

/// Largest payload carried in one message; larger payloads are split (G.711
/// is one byte per sample, so a split only shifts the timestamp).
pub const CHUNK: usize = 320;
/// How often open recordings are advanced to "now".
pub const TICK: Duration = Duration::from_millis(50);

/// One open recording file, as the recorder thread drives it.
pub trait RecordSink: Send {
    /// Audio received from the leg on `channel` (0 = left, 1 = right).
    fn write(
        &mut self,
        channel: u8,
        arrival: Instant,
        ssrc: u32,
        rtp_ts: u32,
        law: G711,
        payload: &[u8],
    ) -> Result<(), RecordingError>;
    /// Advance both channels to `now` (silence where nothing came).
    fn tick(&mut self, now: Instant) -> Result<(), RecordingError>;
    fn pause(&mut self, now: Instant);
    fn resume(&mut self, now: Instant);
    /// Close the file; returns its final path.
    fn finish(self: Box<Self>) -> Result<PathBuf, RecordingError>;
}

/// Opens a recording file at a path.
pub type SinkFactory =
    Arc<dyn Fn(&Path) -> Result<Box<dyn RecordSink>, RecordingError> + Send + Sync>;

/// Audio copied out of the relay for one channel.
#[derive(Debug)]
pub struct Chunk {
    pub id: u64,
    pub channel: u8,
    pub arrival: Instant,
    pub ssrc: u32,
    pub rtp_ts: u32,
    pub law: G711,
    pub len: u16,
    pub data: [u8; CHUNK],
}

/// Audio is carried inline on purpose: boxing it would allocate per packet.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum RecMsg {
    Start {
        id: u64,
        call: String,
        path: PathBuf,
    },
    Audio(Chunk),
    Pause {
        id: u64,
        at: Instant,
    },
    Resume {
        id: u64,
        at: Instant,
    },
    Stop {
        id: u64,
    },
}

/// A leg's recording tap: which recording and channel its audio goes to.
#[derive(Debug, Clone, Copy)]
pub struct Tap {
    pub id: u64,
    pub channel: u8,
}

/// Send one received payload to the recorder (split if large).
pub fn send_audio(
    tx: &Sender<RecMsg>,
    tap: &Tap,
    arrival: Instant,
    ssrc: u32,
    rtp_ts: u32,
    law: G711,
    payload: &[u8],
) {
    for (i, part) in payload.chunks(CHUNK).enumerate() {
        let mut chunk = Chunk {
            id: tap.id,
            channel: tap.channel,
            arrival,
            ssrc,
            rtp_ts: rtp_ts.wrapping_add((i * CHUNK) as u32),
            law,
            len: part.len() as u16,
            data: [0; CHUNK],
        };
        chunk.data[..part.len()].copy_from_slice(part);
        let _ = tx.send(RecMsg::Audio(chunk));
    }
}

/// The writer `MediaEngine::start` uses: `crate::recording`'s stereo WAV.
pub fn default_factory() -> SinkFactory {
    Arc::new(|path: &Path| Recorder::create(path).map(|r| Box::new(r) as Box<dyn RecordSink>))
}

impl RecordSink for Recorder {
    fn write(
        &mut self,
        channel: u8,
        arrival: Instant,
        ssrc: u32,
        rtp_ts: u32,
        law: G711,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        let channel = if channel == 0 {
            Channel::Left
        } else {
            Channel::Right
        };
        Recorder::write(self, channel, arrival, ssrc, rtp_ts, law, payload)
    }
    fn tick(&mut self, now: Instant) -> Result<(), RecordingError> {
        Recorder::tick(self, now)
    }
    fn pause(&mut self, now: Instant) {
        Recorder::pause(self, now);
    }
    fn resume(&mut self, now: Instant) {
        Recorder::resume(self, now);
    }
    fn finish(self: Box<Self>) -> Result<PathBuf, RecordingError> {
        Recorder::finish(*self)
    }
}

struct Open {
    call: String,
    sink: Box<dyn RecordSink>,
}

/// The recorder thread's loop; returns when every sender is gone.
pub fn run(rx: Receiver<RecMsg>, factory: SinkFactory, events: UnboundedSender<MediaEvent>) {
    let mut open: HashMap<u64, Open> = HashMap::new();
    let mut next_tick = Instant::now() + TICK;
    loop {
        let msg = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match msg {
            Some(RecMsg::Start { id, call, path }) => match factory(&path) {
                Ok(sink) => {
                    let _ = events.send(MediaEvent::RecordingStarted {
                        call: call.clone(),
                        path: path.clone(),
                    });
                    open.insert(id, Open { call, sink });
                }
                Err(e) => {
                    let _ = events.send(MediaEvent::RecordingFailed {
                        call,
                        reason: e.to_string(),
                    });
                }
            },
            Some(RecMsg::Audio(c)) => {
                if let Some(o) = open.get_mut(&c.id) {
                    let data = &c.data[..usize::from(c.len)];
                    if let Err(reason) = o
                        .sink
                        .write(c.channel, c.arrival, c.ssrc, c.rtp_ts, c.law, data)
                    {
                        fail(&mut open, c.id, reason, &events);
                    }
                }
            }
            Some(RecMsg::Pause { id, at }) => {
                if let Some(o) = open.get_mut(&id) {
                    o.sink.pause(at);
                }
            }
            Some(RecMsg::Resume { id, at }) => {
                if let Some(o) = open.get_mut(&id) {
                    o.sink.resume(at);
                }
            }
            Some(RecMsg::Stop { id }) => {
                if let Some(o) = open.remove(&id) {
                    let call = o.call;
                    let _ = events.send(match o.sink.finish() {
                        Ok(path) => MediaEvent::RecordingStopped { call, path },
                        Err(e) => MediaEvent::RecordingFailed {
                            call,
                            reason: e.to_string(),
                        },
                    });
                }
            }
            None => {}
        }
        let now = Instant::now();
        if now >= next_tick {
            let failed: Vec<(u64, RecordingError)> = open
                .iter_mut()
                .filter_map(|(id, o)| o.sink.tick(now).err().map(|e| (*id, e)))
                .collect();
            for (id, reason) in failed {
                fail(&mut open, id, reason, &events);
            }
            next_tick = now + TICK;
        }
    }
    // The engine is gone: close what is open so the files are valid.
    for (_, o) in open.drain() {
        let call = o.call;
        let _ = events.send(match o.sink.finish() {
            Ok(path) => MediaEvent::RecordingStopped { call, path },
            Err(e) => MediaEvent::RecordingFailed {
                call,
                reason: e.to_string(),
            },
        });
    }
}

/// A write or tick failed: report, and close what can be closed.
fn fail(
    open: &mut HashMap<u64, Open>,
    id: u64,
    reason: RecordingError,
    events: &UnboundedSender<MediaEvent>,
) {
    if let Some(o) = open.remove(&id) {
        let _ = o.sink.finish();
        let _ = events.send(MediaEvent::RecordingFailed {
            call: o.call,
            reason: reason.to_string(),
        });
    }
}
