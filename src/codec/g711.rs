//! ITU-T G.711: μ-law (PCMU) and A-law (PCMA) to and from 16-bit linear PCM,
//! and μ-law <-> A-law transcoding, all table-driven.
//!
//! The arithmetic is the ITU's own reference, the G.191 Software Tools
//! Library's `g711.c` (`ulaw_expand`/`alaw_expand`, `ulaw_compress`/
//! `alaw_compress`), evaluated at compile time into tables, so that at run
//! time a sample costs one load:
//! - decoding: one 256-entry `i16` table per law;
//! - encoding: μ-law uses the 14 most significant bits of a sample and A-law
//!   the 12 (the rest cannot change the code), so one table of 16,384 codes
//!   (μ) and one of 4,096 (A) indexed by the sample shifted right (16 KiB and
//!   4 KiB, small enough to stay in cache while a mixer encodes);
//! - transcoding: 256-entry byte tables (decode with one law, encode with the
//!   other), applied in place by the two-party relay when its legs disagree.
//!
//! The reference compressors take the one's complement of negative samples
//! (`~x`, not `-x`) before shifting. The widespread Sun `g711.c` negates
//! instead, which for μ-law puts small negative samples one code away from
//! the reference (-1 is the reference's negative zero, 0x7F, and Sun's 0x7E);
//! this module follows the reference, and its tests check every one of the
//! 65,536 inputs against a transcription of G.191 and the standard's
//! decoder values.
//!
//! Must not: allocate, fail or panic. Every `u8` is a valid code and every
//! `i16` a valid sample; the table indices are computed from them and are in
//! range by construction.

/// The two G.711 laws (RTP static payload types 0 and 8, RFC 3551 §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum G711 {
    /// μ-law, PCMU.
    Pcmu,
    /// A-law, PCMA.
    Pcma,
}

impl G711 {
    /// One code to a linear sample.
    #[inline]
    pub fn decode(self, code: u8) -> i16 {
        match self {
            G711::Pcmu => ulaw_decode(code),
            G711::Pcma => alaw_decode(code),
        }
    }

    /// One linear sample to a code.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            G711::Pcmu => ulaw_encode(sample),
            G711::Pcma => alaw_encode(sample),
        }
    }

    /// Decode `codes` into the start of `out` (as many as both hold).
    pub fn decode_into(self, codes: &[u8], out: &mut [i16]) {
        let table = match self {
            G711::Pcmu => &ULAW_DECODE,
            G711::Pcma => &ALAW_DECODE,
        };
        for (o, &c) in out.iter_mut().zip(codes) {
            *o = table[usize::from(c)];
        }
    }

    /// Encode `samples` into the start of `out` (as many as both hold).
    pub fn encode_into(self, samples: &[i16], out: &mut [u8]) {
        match self {
            G711::Pcmu => {
                for (o, &s) in out.iter_mut().zip(samples) {
                    *o = ulaw_encode(s);
                }
            }
            G711::Pcma => {
                for (o, &s) in out.iter_mut().zip(samples) {
                    *o = alaw_encode(s);
                }
            }
        }
    }

    /// The code of a zero sample: μ-law 0xFF; A-law has no zero, 0xD5 is
    /// +8, the smallest positive level.
    pub const fn silence(self) -> u8 {
        match self {
            G711::Pcmu => 0xFF,
            G711::Pcma => 0xD5,
        }
    }
}

/// μ-law code to linear (a table load).
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[usize::from(code)]
}

/// A-law code to linear (a table load).
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[usize::from(code)]
}

/// Linear to μ-law (a table load on the sample's 14 high bits).
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    // -8192..=8191 shifted to 0..=16383: always in the table.
    ULAW_ENCODE[((sample >> 2) as i32 + 8192) as usize]
}

/// Linear to A-law (a table load on the sample's 12 high bits).
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    // -2048..=2047 shifted to 0..=4095: always in the table.
    ALAW_ENCODE[((sample >> 4) as i32 + 2048) as usize]
}

/// Convert a payload in place through one of the transcoding tables.
pub fn convert_in_place(payload: &mut [u8], table: &[u8; 256]) {
    for b in payload {
        *b = table[usize::from(*b)];
    }
}

/// μ-law byte -> A-law byte (decode, then encode with the other law).
pub static ULAW_TO_ALAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_compress(ulaw_expand(i as u8));
        i += 1;
    }
    t
};

/// A-law byte -> μ-law byte.
pub static ALAW_TO_ULAW: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_compress(alaw_expand(i as u8));
        i += 1;
    }
    t
};

static ULAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_expand(i as u8);
        i += 1;
    }
    t
};

static ALAW_DECODE: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_expand(i as u8);
        i += 1;
    }
    t
};

/// Entry i is the code of the samples whose `>> 2` is i - 8192.
static ULAW_ENCODE: [u8; 16384] = {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        t[i] = ulaw_compress(((i as i32 - 8192) << 2) as i16);
        i += 1;
    }
    t
};

/// Entry i is the code of the samples whose `>> 4` is i - 2048.
static ALAW_ENCODE: [u8; 4096] = {
    let mut t = [0u8; 4096];
    let mut i = 0;
    while i < 4096 {
        t[i] = alaw_compress(((i as i32 - 2048) << 4) as i16);
        i += 1;
    }
    t
};

/// G.191 `ulaw_expand`: codes are sent inverted; 3 exponent and 4 mantissa
/// bits; the result is 14 bits left-justified (a multiple of 4), biased by
/// 33 (132 at this scale) so that segment ends are powers of two.
const fn ulaw_expand(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let inverted = !(code as i32);
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = inverted & 0x0F;
    let step = 4 << (exponent + 1);
    (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

/// G.191 `alaw_expand`: even bits inverted (XOR 0x55); segment 0 is linear,
/// each later one doubles the step; the middle of the step is returned, 13
/// bits left-justified; a set sign bit means positive.
const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let exponent = ix >> 4;
    let mut mant = ix & 0x0F;
    if exponent > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 8;
    if exponent > 1 {
        mant <<= exponent - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

/// G.191 `ulaw_compress`: the magnitude of the 14 high bits (one's
/// complement for negatives) plus the bias 33, clipped to 13 bits; the
/// segment is the position of its leading one.
const fn ulaw_compress(sample: i16) -> u8 {
    let x = sample as i32;
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high = 8 - segno;
    let low = 0x0F - ((absno >> segno) & 0x0F);
    let code = (high << 4) | low;
    (if x >= 0 { code | 0x80 } else { code }) as u8
}

/// G.191 `alaw_compress`: the magnitude of the 12 high bits (one's
/// complement for negatives); exponent and mantissa found by shifting until
/// the leading one is bit 4; even bits inverted.
const fn alaw_compress(sample: i16) -> u8 {
    let x = sample as i32;
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut exponent = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            exponent += 1;
        }
        ix -= 16;
        ix += exponent << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The G.191 reference compressors as the ITU wrote them (vector
    /// functions over `short`s, C's integer promotions spelled out), kept
    /// apart from the `const fn`s above so that a slip in either shows.
    mod g191 {
        pub fn ulaw_compress(linbuf: &[i16], logbuf: &mut [u8]) {
            for (n, &lin) in linbuf.iter().enumerate() {
                let lin = i32::from(lin);
                let mut absno: i32 = if lin < 0 {
                    ((!lin) >> 2) + 33
                } else {
                    (lin >> 2) + 33
                };
                if absno > 0x1FFF {
                    absno = 0x1FFF;
                }
                let mut i = absno >> 6;
                let mut segno = 1;
                while i != 0 {
                    segno += 1;
                    i >>= 1;
                }
                let high_nibble = 0x0008 - segno;
                let mut low_nibble = (absno >> segno) & 0x000F;
                low_nibble = 0x000F - low_nibble;
                let mut out = (high_nibble << 4) | low_nibble;
                if lin >= 0 {
                    out |= 0x0080;
                }
                logbuf[n] = out as u8;
            }
        }

        pub fn alaw_compress(linbuf: &[i16], logbuf: &mut [u8]) {
            for (n, &lin) in linbuf.iter().enumerate() {
                let lin = i32::from(lin);
                let mut ix = if lin < 0 { (!lin) >> 4 } else { lin >> 4 };
                if ix > 15 {
                    let mut iexp = 1;
                    while ix > 16 + 15 {
                        ix >>= 1;
                        iexp += 1;
                    }
                    ix -= 16;
                    ix += iexp << 4;
                }
                if lin >= 0 {
                    ix |= 0x0080;
                }
                logbuf[n] = (ix ^ 0x0055) as u8;
            }
        }
    }

    /// The decoders written the other classic way (Sun's `ulaw2linear`,
    /// `alaw2linear`): the same values by different arithmetic.
    fn sun_ulaw2linear(u: u8) -> i16 {
        let u = !u;
        let t = ((i32::from(u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4);
        (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
    }

    fn sun_alaw2linear(a: u8) -> i16 {
        let a = a ^ 0x55;
        let mut t = i32::from(a & 0x0F) << 4;
        let seg = (a & 0x70) >> 4;
        match seg {
            0 => t += 8,
            1 => t += 0x108,
            _ => t = (t + 0x108) << (seg - 1),
        }
        (if a & 0x80 != 0 { t } else { -t }) as i16
    }

    #[test]
    fn encoders_match_the_g191_reference_on_every_sample() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let (mut mu, mut a) = (vec![0u8; all.len()], vec![0u8; all.len()]);
        g191::ulaw_compress(&all, &mut mu);
        g191::alaw_compress(&all, &mut a);
        for (i, &s) in all.iter().enumerate() {
            assert_eq!(ulaw_encode(s), mu[i], "μ-law of {s}");
            assert_eq!(alaw_encode(s), a[i], "A-law of {s}");
        }
        // The vector forms agree with the scalar ones.
        let mut out = vec![0u8; all.len()];
        G711::Pcmu.encode_into(&all, &mut out);
        assert_eq!(out, mu);
        G711::Pcma.encode_into(&all, &mut out);
        assert_eq!(out, a);
    }

    #[test]
    fn decoders_match_two_formulations_and_the_standard() {
        for c in 0..=255u8 {
            assert_eq!(ulaw_decode(c), sun_ulaw2linear(c), "μ code {c:#04x}");
            assert_eq!(alaw_decode(c), sun_alaw2linear(c), "A code {c:#04x}");
        }
        // G.711 Table 2 (μ-law): decoder outputs at the 14-bit scale times 4.
        // 0xFF/0x7F are the two zeros, 0x80/0x00 the extremes (±8031 · 4),
        // the first step of segment 1 is 2 · 4.
        for (code, value) in [
            (0xFF, 0),
            (0x7F, 0),
            (0xFE, 8),
            (0x7E, -8),
            (0xF0, 120),
            (0xEF, 132),
            (0x80, 32124),
            (0x00, -32124),
        ] {
            assert_eq!(ulaw_decode(code), value, "μ code {code:#04x}");
        }
        // G.711 Table 1 (A-law): 13-bit outputs times 8; no zero code, 0xD5
        // and 0x55 are ±1 · 8, 0xAA/0x2A the extremes (±4032 · 8).
        for (code, value) in [
            (0xD5, 8),
            (0x55, -8),
            (0xD4, 24),
            (0xC5, 264),
            (0xAA, 32256),
            (0x2A, -32256),
        ] {
            assert_eq!(alaw_decode(code), value, "A code {code:#04x}");
        }
        let codes: Vec<u8> = (0..=255).collect();
        let mut out = vec![0i16; 256];
        G711::Pcma.decode_into(&codes, &mut out);
        assert!(codes.iter().zip(&out).all(|(&c, &v)| alaw_decode(c) == v));
    }

    #[test]
    fn reference_specifics_of_the_encoders() {
        // One's complement for negatives: -1..-4 are μ-law's negative zero.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_encode(-1), 0x7F);
        assert_eq!(ulaw_encode(-4), 0x7F);
        assert_eq!(ulaw_encode(-5), 0x7E);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_encode(-1), 0x55);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
        assert_eq!(G711::Pcmu.silence(), ulaw_encode(0));
        assert_eq!(G711::Pcma.silence(), alaw_encode(0));
    }

    #[test]
    fn every_code_round_trips_and_encoding_is_monotonic() {
        for c in 0..=255u8 {
            // μ-law's negative zero decodes to 0, which encodes as 0xFF.
            if c != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(c)), c, "μ code {c:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(c)), c, "A code {c:#04x}");
        }
        // A larger sample never decodes smaller.
        let mut last = (i16::MIN, i16::MIN);
        for s in i16::MIN..=i16::MAX {
            let now = (ulaw_decode(ulaw_encode(s)), alaw_decode(alaw_encode(s)));
            assert!(now.0 >= last.0 && now.1 >= last.1, "at {s}");
            last = now;
        }
    }

    #[test]
    fn a_sine_keeps_its_signal_to_noise_ratio() {
        // 1 kHz at 8 kHz, amplitude 16000: G.711's SNR is about 38 dB.
        let pcm: Vec<i16> = (0..8000)
            .map(|n| {
                (16000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        for law in [G711::Pcmu, G711::Pcma] {
            let (mut signal, mut noise) = (0f64, 0f64);
            for &s in &pcm {
                let d = law.decode(law.encode(s));
                signal += f64::from(s).powi(2);
                noise += (f64::from(s) - f64::from(d)).powi(2);
                // The step of the top segment is 1024 in both laws.
                assert!(
                    (i32::from(s) - i32::from(d)).abs() <= 1024,
                    "{law:?}: {s} -> {d}"
                );
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 33.0, "{law:?}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn transcoding_keeps_silence_and_the_level() {
        assert_eq!(ULAW_TO_ALAW[0xFF], 0xD5);
        for u in 0..=255u8 {
            let lin = i32::from(ulaw_decode(u));
            let back = i32::from(alaw_decode(ULAW_TO_ALAW[usize::from(u)]));
            // One quantisation step of the coarser law at that level.
            let tolerance = (lin.abs() / 8).max(16);
            assert!((lin - back).abs() <= tolerance, "u={u:#x} {lin} vs {back}");
        }
        for a in 0..=255u8 {
            let lin = i32::from(alaw_decode(a));
            let back = i32::from(ulaw_decode(ALAW_TO_ULAW[usize::from(a)]));
            let tolerance = (lin.abs() / 8).max(16);
            assert!((lin - back).abs() <= tolerance, "a={a:#x} {lin} vs {back}");
        }
        let mut p = [0xFFu8, 0x80, 0x00];
        convert_in_place(&mut p, &ULAW_TO_ALAW);
        assert_eq!(p, [0xD5, 0xAA, 0x2A]);
    }
}
