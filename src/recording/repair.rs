//! Start-up repair of recordings a crash left with stale header sizes.
//!
//! hound writes RIFF, `fmt ` and then the `data` chunk last, and rewrites the
//! two size fields only on flush; after a kill the file holds more audio than
//! its header admits (or a torn last frame). Repair walks the chunks to
//! `data`, keeps the whole frames present, truncates a torn tail and rewrites
//! both sizes. Files whose RIFF size already matches their length are left
//! alone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::RecordingError;

/// What [`repair_dir`] did to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairOutcome {
    AlreadyValid,
    /// Header sizes rewritten to this many whole sample frames.
    Repaired {
        frames: u64,
    },
}

/// Checks every `*.wav` under `dir` (recursively, symlinks not followed) and
/// repairs the ones a crash left inconsistent. Results are sorted by path; a
/// missing `dir` yields nothing, an unreadable one a single error entry.
pub fn repair_dir(dir: &Path) -> Vec<(PathBuf, Result<RepairOutcome, RecordingError>)> {
    let mut files = Vec::new();
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if d == dir && e.kind() == std::io::ErrorKind::NotFound => return out,
            Err(e) => {
                out.push((d.clone(), Err(RecordingError::io(&d, e))));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    out.extend(files.into_iter().map(|p| {
        let r = repair_file(&p);
        (p, r)
    }));
    out
}

/// Repairs one file in place (see the module header).
pub(crate) fn repair_file(path: &Path) -> Result<RepairOutcome, RecordingError> {
    let io = |e| RecordingError::io(path, e);
    let bad = |reason: &'static str| RecordingError::NotWav {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();

    let mut head = [0u8; 12];
    read_at(&mut file, 0, &mut head).map_err(|_| bad("shorter than a RIFF header"))?;
    if &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad("no RIFF/WAVE signature"));
    }
    let riff_size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;

    // Walk the chunks up to `data`, noting the frame size from `fmt `.
    let mut at = 12u64;
    let mut block_align = None;
    let (data_start, data_size) = loop {
        let mut ch = [0u8; 8];
        read_at(&mut file, at, &mut ch).map_err(|_| bad("no data chunk"))?;
        let size = u32::from_le_bytes([ch[4], ch[5], ch[6], ch[7]]) as u64;
        match &ch[0..4] {
            b"data" => break (at + 8, size),
            b"fmt " => {
                let mut fmt = [0u8; 16];
                if size < 16 {
                    return Err(bad("fmt chunk too short"));
                }
                read_at(&mut file, at + 8, &mut fmt).map_err(|_| bad("fmt chunk truncated"))?;
                block_align = Some(u16::from_le_bytes([fmt[12], fmt[13]]) as u64);
            }
            _ => {}
        }
        at += 8 + size + (size & 1);
        if at >= len {
            return Err(bad("no data chunk"));
        }
    };
    let block_align = match block_align {
        Some(b) if b > 0 => b,
        Some(_) => return Err(bad("zero block align")),
        None => return Err(bad("no fmt chunk before data")),
    };

    if riff_size + 8 == len && data_start + data_size <= len {
        return Ok(RepairOutcome::AlreadyValid);
    }

    // Whole frames present after the data header, capped to what a u32 size
    // can say.
    let max_data = (u32::MAX as u64 - (data_start - 8)) / block_align * block_align;
    let frames = ((len - data_start).min(max_data)) / block_align;
    let data = frames * block_align;
    let end = data_start + data;
    file.set_len(end).map_err(io)?;
    write_at(&mut file, 4, &((end - 8) as u32).to_le_bytes()).map_err(io)?;
    write_at(&mut file, data_start - 4, &(data as u32).to_le_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(RepairOutcome::Repaired { frames })
}

fn read_at(file: &mut File, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.read_exact(buf)
}

fn write_at(file: &mut File, at: u64, buf: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(at))?;
    file.write_all(buf)
}
