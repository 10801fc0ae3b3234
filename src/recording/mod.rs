//! Call recording for the media relay: both directions of a call, decoded
//! from G.711 (`crate::codec::g711`), in one stereo 8 kHz 16-bit WAV file,
//! one party per channel (in a conference, the relay feeds one channel with
//! what one leg says and the other with the mix that leg hears: see
//! `crate::media::MediaCommand::StartRecording`).
//!
//! Owns: placing RTP payloads on a common timeline with a small jitter
//! buffer (`timeline.rs`), the WAV file and its flush cadence
//! (`recorder.rs`), and start-up repair (`repair.rs`). Does not own:
//! sockets, RTP parsing, threads or clocks — the relay's recorder thread
//! passes payloads, SSRCs, timestamps and `Instant`s in, so everything here
//! is synchronous and a `write` costs a table lookup per byte plus buffered
//! writes (no syscall per packet).
//!
//! Alignment: each (channel, SSRC) stream is anchored on the recording's
//! timeline by the arrival of its first packet and then placed by RTP
//! timestamp, so jitter does not move audio and a timestamp gap (hold, mute,
//! loss, silence suppression) is silence; frames are written out once they
//! are older than a 160 ms jitter window, silence where a channel got
//! nothing. Pause writes silence on both channels, so the file always spans
//! the call's duration.
//!
//! Crash safety, in three layers:
//! 1. the header is written at creation, so a new file is a valid empty WAV;
//! 2. every second of audio written, hound's `flush` rewrites the RIFF and
//!    `data` sizes, so after a `kill -9` a reader sees everything up to the
//!    last flush (at most ~1.2 s lost: a second plus the jitter window);
//!    dropping a [`Recorder`] without [`Recorder::finish`] (the call's task
//!    ended abruptly) writes what is buffered and the final header;
//! 3. [`repair_dir`] at start-up rewrites the sizes of files that hold more
//!    audio than their header says (written before the crash but after the
//!    last flush), keeping whole frames only.

mod recorder;
mod repair;
mod timeline;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use recorder::Recorder;
pub use repair::{repair_dir, RepairOutcome};

/// Which side of the stereo file a payload belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Channel 0.
    Left,
    /// Channel 1.
    Right,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("recording {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recording {path}: WAV: {source}")]
    Wav {
        path: PathBuf,
        #[source]
        source: hound::Error,
    },
    #[error("recording {path}: not a repairable WAV file: {reason}")]
    NotWav { path: PathBuf, reason: &'static str },
    #[error("recording {path}: reached the WAV size limit (4 GiB)")]
    TooLong { path: PathBuf },
}

impl RecordingError {
    fn io(path: &Path, source: std::io::Error) -> RecordingError {
        RecordingError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn wav(path: &Path, source: hound::Error) -> RecordingError {
        match source {
            hound::Error::IoError(e) => RecordingError::io(path, e),
            source => RecordingError::Wav {
                path: path.to_path_buf(),
                source,
            },
        }
    }
}
