//! G.711 μ-law <-> A-law conversion, so a PCMU leg can be bridged to a PCMA
//! leg without dropping audio. Both laws are 8 bits per sample, so the
//! conversion is one table lookup per byte, in place, in the receive buffer.
//!
//! The tables are built at compile time from the ITU-T G.711 reference
//! expansion/compression (the classic Sun `g711.c` algorithm).

/// Expand one μ-law byte to 16-bit linear PCM.
pub const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let mut t: i32 = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= (u & 0x70) >> 4;
    if u & 0x80 != 0 {
        (0x84 - t) as i16
    } else {
        (t - 0x84) as i16
    }
}

/// Expand one A-law byte to 16-bit linear PCM.
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let mut t: i32 = ((a & 0x0F) as i32) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn segment(v: i32, ends: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if v <= ends[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// Compress 16-bit linear PCM to μ-law.
pub const fn linear_to_ulaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
    let mut v = (pcm as i32) >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > 8159 {
        v = 8159;
    }
    v += 0x84 >> 2;
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0xF);
    (u as u8) ^ mask
}

/// Compress 16-bit linear PCM to A-law.
pub const fn linear_to_alaw(pcm: i16) -> u8 {
    const ENDS: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let mut v = (pcm as i32) >> 3;
    let mask: u8 = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &ENDS);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as i32) << 4;
    if seg < 2 {
        a |= (v >> 1) & 0xF;
    } else {
        a |= (v >> seg) & 0xF;
    }
    (a as u8) ^ mask
}

const fn build_u2a() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = linear_to_alaw(ulaw_to_linear(i as u8));
        i += 1;
    }
    t
}

const fn build_a2u() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = linear_to_ulaw(alaw_to_linear(i as u8));
        i += 1;
    }
    t
}

/// μ-law byte -> A-law byte.
pub static ULAW_TO_ALAW: [u8; 256] = build_u2a();
/// A-law byte -> μ-law byte.
pub static ALAW_TO_ULAW: [u8; 256] = build_a2u();

/// Convert a payload in place through one of the tables above.
pub fn convert_in_place(payload: &mut [u8], table: &[u8; 256]) {
    for b in payload {
        *b = table[usize::from(*b)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_maps_to_silence() {
        // μ-law 0xFF and A-law 0xD5 are the usual encodings of zero.
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ULAW_TO_ALAW[0xFF], 0xD5);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
    }

    #[test]
    fn conversion_keeps_the_level_close() {
        for u in 0..=255u8 {
            let lin = i32::from(ulaw_to_linear(u));
            let back = i32::from(alaw_to_linear(ULAW_TO_ALAW[usize::from(u)]));
            // One quantisation step of the coarser law at that level.
            let tolerance = (lin.abs() / 8).max(16);
            assert!((lin - back).abs() <= tolerance, "u={u:#x} {lin} vs {back}");
        }
        for a in 0..=255u8 {
            let lin = i32::from(alaw_to_linear(a));
            let back = i32::from(ulaw_to_linear(ALAW_TO_ULAW[usize::from(a)]));
            let tolerance = (lin.abs() / 8).max(16);
            assert!((lin - back).abs() <= tolerance, "a={a:#x} {lin} vs {back}");
        }
    }

    #[test]
    fn linear_round_trips_through_each_law() {
        for u in 0..=255u8 {
            let lin = ulaw_to_linear(u);
            // 0x7F and 0xFF both decode to 0 (negative/positive zero).
            if u != 0x7F {
                assert_eq!(linear_to_ulaw(lin), u);
            }
        }
        for a in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(a)), a);
        }
    }
}
