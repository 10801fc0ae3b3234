//! Reading a call recording (WAV, one party per channel) and measuring what it holds.

use std::path::Path;

pub struct Wav {
    pub sample_rate: u32,
    pub channels: u16,
    /// Samples per channel, as f64 in -1..1.
    pub data: Vec<Vec<f64>>,
}

pub fn read(path: &Path) -> Wav {
    let mut r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("open recording {}: {e}", path.display()));
    let spec = r.spec();
    let ch = spec.channels as usize;
    let mut data = vec![Vec::new(); ch];
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f64;
            for (i, s) in r.samples::<i32>().enumerate() {
                data[i % ch].push(s.expect("sample") as f64 / scale);
            }
        }
        hound::SampleFormat::Float => {
            for (i, s) in r.samples::<f32>().enumerate() {
                data[i % ch].push(s.expect("sample") as f64);
            }
        }
    }
    Wav {
        sample_rate: spec.sample_rate,
        channels: spec.channels,
        data,
    }
}

/// Power of `freq` in `x` (Goertzel), normalised by length.
pub fn goertzel(x: &[f64], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let c = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s0 = v + c * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (x.len().max(1) as f64)
}

/// RMS level of a channel.
pub fn rms(x: &[f64]) -> f64 {
    (x.iter().map(|v| v * v).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

/// The strongest frequency between 100 and 3500 Hz in 10 Hz steps, refined to 1 Hz,
/// measured over the loudest half of the signal (leading/trailing silence ignored).
pub fn dominant_frequency(x: &[f64], rate: u32) -> f64 {
    let loud: Vec<f64> = {
        // keep 20 ms blocks whose RMS is at least a tenth of the loudest block
        let block = (rate / 50) as usize;
        let blocks: Vec<&[f64]> = x.chunks(block).collect();
        let max = blocks.iter().map(|b| rms(b)).fold(0.0, f64::max);
        blocks
            .into_iter()
            .filter(|b| rms(b) >= max / 10.0 && max > 0.0)
            .flatten()
            .copied()
            .collect()
    };
    if loud.is_empty() {
        return 0.0;
    }
    let mut best = (0.0, 0.0);
    let mut f = 100.0;
    while f <= 3500.0 {
        let p = goertzel(&loud, rate, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 10.0;
    }
    let mut fine = best;
    let mut f = best.0 - 10.0;
    while f <= best.0 + 10.0 {
        let p = goertzel(&loud, rate, f);
        if p > fine.1 {
            fine = (f, p);
        }
        f += 1.0;
    }
    fine.0
}
