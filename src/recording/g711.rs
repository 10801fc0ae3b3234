//! ITU-T G.711 decoding: one 8-bit µ-law or A-law code to a 16-bit linear
//! sample.
//!
//! Two 256-entry tables built at compile time from the standard's segment
//! arithmetic (the same as the reference `g711.c`), so decoding a packet is
//! one load per byte. No crate: the maintained G.711 crates bring encoders,
//! resamplers or SIMD paths we do not need, and the whole decoder is ten
//! lines that the tests check against the standard's known values.

/// µ-law (PCMU, RTP payload type 0) code to linear.
pub fn decode_pcmu(byte: u8) -> i16 {
    PCMU[byte as usize]
}

/// A-law (PCMA, RTP payload type 8) code to linear.
pub fn decode_pcma(byte: u8) -> i16 {
    PCMA[byte as usize]
}

static PCMU: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = ulaw_to_linear(i as u8);
        i += 1;
    }
    t
};

static PCMA: [i16; 256] = {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = alaw_to_linear(i as u8);
        i += 1;
    }
    t
};

/// G.711 §2 µ-law: codes are sent inverted; 3 segment bits, 4 mantissa bits,
/// biased by 0x84 (132) so that segment boundaries are powers of two.
const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let t = ((((u & 0x0F) as i32) << 3) + 0x84) << ((u & 0x70) >> 4);
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// G.711 §3 A-law: even bits are inverted (XOR 0x55); segment 0 is linear,
/// the others double per segment; a set sign bit means positive.
const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let seg = (a & 0x70) >> 4;
    let mut t = ((a & 0x0F) as i32) << 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference encoders (Sun's public-domain g711.c, as in the ITU-T
    /// software tools), written independently of the decoder above.
    fn linear_to_ulaw(pcm: i16) -> u8 {
        const BIAS: i32 = 0x84;
        const CLIP: i32 = 32635;
        let mut v = pcm as i32;
        let mask: i32 = if v < 0 {
            v = -v;
            0x7F
        } else {
            0xFF
        };
        v = v.min(CLIP) + BIAS;
        let seg = (0..8).find(|s| v <= (0xFF << s)).unwrap_or(8);
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let uval = (seg << 4) | ((v >> (seg + 3)) & 0x0F);
        (uval ^ mask) as u8
    }

    fn linear_to_alaw(pcm: i16) -> u8 {
        let mut v = (pcm as i32) >> 3;
        let mask = if v >= 0 {
            0xD5
        } else {
            v = -v - 1;
            0x55
        };
        const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
        let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8);
        if seg >= 8 {
            return (0x7F ^ mask) as u8;
        }
        let mut aval = (seg as i32) << 4;
        aval |= if seg < 2 {
            (v >> 1) & 0x0F
        } else {
            (v >> seg) & 0x0F
        };
        (aval ^ mask) as u8
    }

    #[test]
    fn known_values() {
        // µ-law: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
        assert_eq!(decode_pcmu(0xFF), 0);
        assert_eq!(decode_pcmu(0x7F), 0);
        assert_eq!(decode_pcmu(0x00), -32124);
        assert_eq!(decode_pcmu(0x80), 32124);
        assert_eq!(decode_pcmu(0xFE), 8);
        assert_eq!(decode_pcmu(0x7E), -8);
        // A-law: 0xD5 / 0x55 are ±8 (no zero code), 0xAA / 0x2A the extremes.
        assert_eq!(decode_pcma(0xD5), 8);
        assert_eq!(decode_pcma(0x55), -8);
        assert_eq!(decode_pcma(0xAA), 32256);
        assert_eq!(decode_pcma(0x2A), -32256);
        assert_eq!(decode_pcma(0xD4), 24);
    }

    #[test]
    fn tables_are_monotonic_per_sign() {
        // Positive µ-law codes 0xFF..=0x80 rise; A-law 0xD5-based order rises
        // through the segments. Checks the segment arithmetic as a whole.
        let pos_u: Vec<i16> = (0x80..=0xFFu8).rev().map(decode_pcmu).collect();
        assert!(pos_u.windows(2).all(|w| w[0] < w[1]));
        let pos_a: Vec<i16> = (0..128u8).map(|i| decode_pcma((i | 0x80) ^ 0x55)).collect();
        assert!(pos_a.windows(2).all(|w| w[0] < w[1]), "{pos_a:?}");
    }

    #[test]
    fn encoder_and_decoder_agree_on_every_code() {
        for b in 0..=255u8 {
            let u = decode_pcmu(b);
            assert_eq!(decode_pcmu(linear_to_ulaw(u)), u, "mu code {b:#04x}");
            let a = decode_pcma(b);
            assert_eq!(linear_to_alaw(a), b, "A code {b:#04x}");
        }
    }

    #[test]
    fn sine_round_trip_keeps_the_signal() {
        // 1 kHz at 8 kHz, amplitude 16000: G.711's SNR is about 38 dB.
        let pcm: Vec<i16> = (0..8000)
            .map(|n| {
                (16000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        for (name, enc, dec) in [
            (
                "mu",
                linear_to_ulaw as fn(i16) -> u8,
                decode_pcmu as fn(u8) -> i16,
            ),
            ("A", linear_to_alaw, decode_pcma),
        ] {
            let mut signal = 0f64;
            let mut noise = 0f64;
            for &s in &pcm {
                let d = dec(enc(s));
                signal += (s as f64).powi(2);
                noise += (s as f64 - d as f64).powi(2);
                // Quantisation step at the top segment is 1024 (µ) / 1024 (A).
                assert!((s as i32 - d as i32).abs() <= 1024, "{name}: {s} -> {d}");
            }
            let snr = 10.0 * (signal / noise).log10();
            assert!(snr > 33.0, "{name}: SNR {snr:.1} dB");
        }
    }
}
