//! Recorder scenarios: packets in, file read back with hound.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::codec::g711::{alaw_decode as decode_pcma, ulaw_decode as decode_pcmu};
use crate::codec::G711;

const PTIME: u64 = 20; // ms per packet
const SPP: u32 = 160; // samples per packet

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

/// Reads a recording back: (left, right).
fn read(path: &Path) -> (Vec<i16>, Vec<i16>) {
    let mut r = hound::WavReader::open(path).expect("readable WAV");
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let all: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
    assert_eq!(all.len() % 2, 0);
    (
        all.iter().step_by(2).copied().collect(),
        all.iter().skip(1).step_by(2).copied().collect(),
    )
}

/// A-law code whose decoded value identifies packet `k` (A-law has no zero
/// code, so any filled sample is non-zero and silence is exactly 0).
fn code(k: usize) -> u8 {
    0x80 | (k % 100) as u8
}

fn value(k: usize) -> i16 {
    decode_pcma(code(k))
}

/// Nearest-code µ-law / A-law encoder, for making test tones.
fn encode(s: i16, law: G711) -> u8 {
    let dec = match law {
        G711::Pcmu => decode_pcmu,
        G711::Pcma => decode_pcma,
    };
    (0..=255u8)
        .min_by_key(|&c| (dec(c) as i32 - s as i32).abs())
        .unwrap()
}

fn tone(freq: f64, n: usize, law: G711) -> Vec<u8> {
    (0..n)
        .map(|i| {
            let s = 12000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin();
            encode(s as i16, law)
        })
        .collect()
}

fn goertzel(x: &[i16], freq: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * freq / 8000.0).cos();
    let (mut s1, mut s2) = (0f64, 0f64);
    for &v in x {
        let s = v as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

#[test]
fn two_tones_land_in_their_channels_despite_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/call.wav");
    let mut rec = Recorder::create(&path).unwrap();
    assert_eq!(rec.path(), path);
    let t0 = Instant::now();
    let left = tone(1000.0, 16000, G711::Pcmu);
    let right = tone(400.0, 16000, G711::Pcma);
    // Packets of both directions in arrival order; right arrives with up
    // to 30 ms of jitter, which must not move its audio.
    let mut events = Vec::new();
    for k in 0..100u64 {
        events.push((k * PTIME, Channel::Left, k));
        events.push((k * PTIME + (k * 7919) % 31, Channel::Right, k));
    }
    events.sort_by_key(|e| e.0);
    for (ms, ch, k) in events {
        let (payload, law, ssrc, ts0) = match ch {
            Channel::Left => (&left, G711::Pcmu, 0x1111, 1000u32),
            Channel::Right => (&right, G711::Pcma, 0x2222, 4_000_000_000u32),
        };
        let k = k as usize;
        let ts = ts0.wrapping_add(k as u32 * SPP);
        rec.write(
            ch,
            at(t0, ms),
            ssrc,
            ts,
            law,
            &payload[k * 160..(k + 1) * 160],
        )
        .unwrap();
        rec.tick(at(t0, ms)).unwrap();
    }
    let path = rec.finish().unwrap();
    let (l, r) = read(&path);
    assert_eq!(l.len(), 16000);
    assert!(goertzel(&l, 1000.0) > 100.0 * goertzel(&l, 400.0));
    assert!(goertzel(&r, 400.0) > 100.0 * goertzel(&r, 1000.0));
    // Sample-exact: jitter moved nothing (right's first packet was on time).
    let expect_r: Vec<i16> = right.iter().map(|&c| decode_pcma(c)).collect();
    assert_eq!(r, expect_r);
    let expect_l: Vec<i16> = left.iter().map(|&c| decode_pcmu(c)).collect();
    assert_eq!(l, expect_l);
}

#[test]
fn a_stream_starting_500_ms_later_starts_4000_samples_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("late.wav")).unwrap();
    let t0 = Instant::now();
    for k in 0..100usize {
        let ms = k as u64 * PTIME;
        rec.write(
            Channel::Left,
            at(t0, ms),
            7,
            555 + k as u32 * SPP,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
        if ms >= 500 {
            let j = k - 25;
            rec.write(
                Channel::Right,
                at(t0, ms),
                9,
                77 + j as u32 * SPP,
                G711::Pcma,
                &[code(j); 160],
            )
            .unwrap();
        }
    }
    let (l, r) = read(&rec.finish().unwrap());
    assert_eq!(l[0], value(0));
    assert!(r[..4000].iter().all(|&s| s == 0));
    assert_eq!(r[4000], value(0));
    assert_eq!(r[4000 + 160], value(1));
    assert_eq!(l.len(), 16000);
}

#[test]
fn a_timestamp_gap_leaves_silence() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("gap.wav")).unwrap();
    let t0 = Instant::now();
    // 10 packets, then nothing for a second (hold, silence suppression),
    // then the timestamp resumes 1 s further on.
    for k in 0..10usize {
        rec.write(
            Channel::Left,
            at(t0, k as u64 * PTIME),
            1,
            k as u32 * SPP,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
    }
    for k in 0..50u64 {
        rec.tick(at(t0, 200 + k * PTIME)).unwrap();
    }
    for k in 10..20usize {
        let ts = k as u32 * SPP + 8000;
        rec.write(
            Channel::Left,
            at(t0, k as u64 * PTIME + 1000),
            1,
            ts,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
    }
    let (l, r) = read(&rec.finish().unwrap());
    assert_eq!(l.len(), 20 * 160 + 8000);
    assert_eq!(l[1599], value(9));
    assert!(l[1600..9600].iter().all(|&s| s == 0));
    assert_eq!(l[9600], value(10));
    assert!(r.iter().all(|&s| s == 0));
}

#[test]
fn late_packets_are_dropped_and_duplicates_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("late.wav")).unwrap();
    let t0 = Instant::now();
    for k in 0..60usize {
        if k == 7 {
            continue; // lost for now
        }
        let ms = k as u64 * PTIME;
        rec.write(
            Channel::Left,
            at(t0, ms),
            1,
            k as u32 * SPP,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
        if k == 40 {
            // Packet 39 again with other content: a duplicate, ignored.
            rec.write(
                Channel::Left,
                at(t0, ms),
                1,
                39 * SPP,
                G711::Pcma,
                &[code(99); 160],
            )
            .unwrap();
        }
    }
    // Packet 7 shows up a second late: its frames were written long ago.
    rec.write(
        Channel::Left,
        at(t0, 1200),
        1,
        7 * SPP,
        G711::Pcma,
        &[code(7); 160],
    )
    .unwrap();
    let (l, _) = read(&rec.finish().unwrap());
    assert_eq!(l.len(), 60 * 160);
    assert!(l[7 * 160..8 * 160].iter().all(|&s| s == 0));
    assert!(l[39 * 160..40 * 160].iter().all(|&s| s == value(39)));
    assert_eq!(l[59 * 160], value(59));
}

#[test]
fn a_new_ssrc_re_anchors_and_a_timestamp_leap_does_not_buffer_the_future() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("ssrc.wav")).unwrap();
    let t0 = Instant::now();
    for k in 0..10usize {
        rec.write(
            Channel::Right,
            at(t0, k as u64 * PTIME),
            1,
            k as u32 * SPP,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
    }
    // Another source (a transfer) with an unrelated timestamp at 1 s.
    rec.write(
        Channel::Right,
        at(t0, 1000),
        2,
        123_456_789,
        G711::Pcma,
        &[code(50); 160],
    )
    .unwrap();
    // Same SSRC, timestamp leaps an hour ahead, arrival 20 ms later: placed
    // on arrival, not an hour of buffered silence.
    rec.write(
        Channel::Right,
        at(t0, 1020),
        2,
        123_456_789u32.wrapping_add(28_800_000),
        G711::Pcma,
        &[code(51); 160],
    )
    .unwrap();
    let (_, r) = read(&rec.finish().unwrap());
    assert_eq!(r.len(), 8000 + 320);
    assert!(r[1600..8000].iter().all(|&s| s == 0));
    assert_eq!(r[8000], value(50));
    assert_eq!(r[8160], value(51));
}

#[test]
fn pause_writes_silence_on_both_channels_and_drops_packets() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("pause.wav")).unwrap();
    let t0 = Instant::now();
    for k in 0..150usize {
        let ms = k as u64 * PTIME;
        if ms == 1000 {
            rec.pause(at(t0, ms));
            assert!(rec.is_paused());
        }
        if ms == 2000 {
            rec.resume(at(t0, ms));
            assert!(!rec.is_paused());
        }
        for (ch, ssrc) in [(Channel::Left, 1), (Channel::Right, 2)] {
            rec.write(
                ch,
                at(t0, ms),
                ssrc,
                k as u32 * SPP,
                G711::Pcma,
                &[code(k); 160],
            )
            .unwrap();
        }
        rec.tick(at(t0, ms + 10)).unwrap();
    }
    let (l, r) = read(&rec.finish().unwrap());
    assert_eq!(l.len(), 150 * 160);
    for ch in [&l, &r] {
        assert_eq!(ch[7999], value(49));
        assert!(ch[8000..16000].iter().all(|&s| s == 0));
        assert_eq!(ch[16000], value(100));
        assert_eq!(ch[150 * 160 - 1], value(149));
    }
}

#[test]
fn pause_with_no_packets_still_spans_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let mut rec = Recorder::create(&dir.path().join("hold.wav")).unwrap();
    let t0 = Instant::now();
    rec.tick(t0).unwrap();
    rec.pause(at(t0, 100));
    rec.tick(at(t0, 3000)).unwrap();
    rec.resume(at(t0, 3000));
    rec.write(Channel::Left, at(t0, 3000), 1, 0, G711::Pcmu, &[0x80; 160])
        .unwrap();
    let (l, _) = read(&rec.finish().unwrap());
    assert_eq!(l.len(), 24000 + 160);
    assert_eq!(l[24000], 32124);
}

/// Writes `secs` of a call, ticking like the relay would.
fn feed(rec: &mut Recorder, t0: Instant, secs: u64) {
    for k in 0..(secs * 1000 / PTIME) as usize {
        let ms = k as u64 * PTIME;
        rec.write(
            Channel::Left,
            at(t0, ms),
            1,
            k as u32 * SPP,
            G711::Pcma,
            &[code(k); 160],
        )
        .unwrap();
        rec.write(
            Channel::Right,
            at(t0, ms),
            2,
            k as u32 * SPP,
            G711::Pcma,
            &[code(k + 1); 160],
        )
        .unwrap();
    }
}

fn wav_files(dir: &Path) -> Vec<(std::path::PathBuf, RepairOutcome)> {
    repair_dir(dir)
        .into_iter()
        .map(|(p, r)| (p, r.unwrap()))
        .collect()
}

#[test]
fn a_crash_leaves_a_readable_file_that_repair_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.wav");
    let mut rec = Recorder::create(&path).unwrap();
    feed(&mut rec, Instant::now(), 3);
    // kill -9: no finish, no drop, hound's buffer never reaches the file.
    std::mem::forget(rec);

    // The periodic flush left a valid header covering two seconds.
    let (l, _) = read(&path);
    assert!(l.len() >= 16000, "{}", l.len());
    assert_eq!(l[0], value(0));

    // More audio reached the file after that flush; repair claims it.
    let before = std::fs::metadata(&path).unwrap().len();
    let out = wav_files(dir.path());
    assert_eq!(out.len(), 1);
    let RepairOutcome::Repaired { frames } = out[0].1 else {
        panic!("expected a repair: {:?}", out[0].1)
    };
    assert_eq!(before, 44 + frames * 4);
    let (l, r) = read(&path);
    assert_eq!(l.len() as u64, frames);
    assert!(frames > 16000);
    assert_eq!(r[16000], value(101));
    assert_eq!(wav_files(dir.path())[0].1, RepairOutcome::AlreadyValid);
}

#[test]
fn header_sizes_lost_and_a_torn_frame_are_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/torn.wav");
    let mut rec = Recorder::create(&path).unwrap();
    feed(&mut rec, Instant::now(), 1);
    rec.finish().unwrap();
    assert_eq!(wav_files(dir.path())[0].1, RepairOutcome::AlreadyValid);

    // A crash before the first flush: sizes still zero, plus half a frame.
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[36..40], b"data");
    bytes[4..8].copy_from_slice(&36u32.to_le_bytes());
    bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
    bytes.extend_from_slice(&[0x34, 0x12]);
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(read(&path).0.len(), 0);

    assert_eq!(
        wav_files(dir.path()),
        vec![(path.clone(), RepairOutcome::Repaired { frames: 8000 })]
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 44 + 8000 * 4);
    let (l, r) = read(&path);
    assert_eq!((l.len(), l[0], r[0]), (8000, value(0), value(1)));
}

#[test]
fn dropping_without_finish_keeps_the_buffered_audio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drop.wav");
    let mut rec = Recorder::create(&path).unwrap();
    feed(&mut rec, Instant::now(), 1);
    drop(rec);
    assert_eq!(read(&path).0.len(), 8000);
    assert_eq!(wav_files(dir.path())[0].1, RepairOutcome::AlreadyValid);
}

#[test]
fn a_new_file_is_a_valid_empty_wav() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.wav");
    let rec = Recorder::create(&path).unwrap();
    assert_eq!(read(&path).0.len(), 0);
    assert_eq!(wav_files(dir.path())[0].1, RepairOutcome::AlreadyValid);
    drop(rec);
}

#[test]
fn garbage_wav_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("empty.wav"), b"").unwrap();
    std::fs::write(d.join("text.wav"), b"hello, this is not audio at all").unwrap();
    std::fs::write(
        d.join("nodata.WAV"),
        b"RIFF\x1c\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0\x40\x1f\0\0\0\x7d\0\0\x04\0\x10\0",
    )
    .unwrap();
    std::fs::write(d.join("nofmt.wav"), b"RIFF\x0c\0\0\0WAVEdata\0\0\0\0").unwrap();
    std::fs::write(
        d.join("hugechunk.wav"),
        b"RIFF\x0c\0\0\0WAVEJUNK\xff\xff\xff\xff",
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), b"ignored").unwrap();
    let out = repair_dir(d);
    let names: Vec<_> = out
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "empty.wav",
            "hugechunk.wav",
            "nodata.WAV",
            "nofmt.wav",
            "text.wav"
        ]
    );
    for (p, r) in &out {
        let e = r.as_ref().expect_err("garbage is an error");
        assert!(matches!(e, RecordingError::NotWav { .. }), "{p:?}: {e}");
    }
    assert!(repair_dir(&d.join("missing")).is_empty());
}

#[test]
fn a_recorder_can_move_between_tasks() {
    fn send<T: Send + 'static>() {}
    send::<Recorder>();
    send::<RecordingError>();
}
