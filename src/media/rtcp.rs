//! RTCP (RFC 3550 §6) as the relay forwards it (sans-IO): a bounds-checked
//! walk over a compound packet that validates it (RFC 3550 A.2) and
//! translates, in place, the SSRCs the far end could not recognise.
//!
//! The relay gives each leg's outgoing stream its own SSRC, sequence and
//! timestamp base ([`super::rtp::OutStream`]), so the two phones never see
//! each other's SSRCs. Their reports must be translated the same way, or a
//! phone receives sender reports for a stream it never heard and reception
//! reports about a stream it never sent:
//!
//! - the sender SSRC of an SR or RR (and of the sender's SDES chunk) becomes
//!   the SSRC the relay forwards that sender's RTP under, and an SR's RTP
//!   timestamp is shifted by the same offset as its RTP packets;
//! - a report block about the stream the relay sends to the reporter names
//!   instead the source that currently feeds that stream.
//!
//! Anything else (other SSRCs, BYE, APP, feedback, the report blocks'
//! sequence and loss figures) passes unchanged: the loss figures are counts
//! and keep their meaning, and the round-trip fields (LSR, DLSR) refer to SR
//! NTP times, which are relayed untouched.

/// RTCP packet types this module reads (RFC 3550 §12.1).
const SR: u8 = 200;
const RR: u8 = 201;
const SDES: u8 = 202;

/// Fixed header (4) plus the sender SSRC (4): the least an SR or RR has, and
/// the least the relay accepts as a datagram.
const MIN_LEN: usize = 8;
/// NTP timestamp (8), RTP timestamp (4), packet and octet counts (4 + 4).
const SENDER_INFO: usize = 20;
const REPORT_BLOCK: usize = 24;

/// Why a datagram is not a valid RTCP compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("shorter than an RTCP header and SSRC")]
    TooShort,
    #[error("RTCP version is not 2")]
    Version,
    #[error("RTCP length fields do not add up to the datagram")]
    Length,
    #[error("RTCP padding on a packet other than the last, or miscounted")]
    Padding,
    #[error("more report blocks than the SR/RR holds")]
    ReportCount,
}

/// The sender's own SSRC as the far end knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderMap {
    /// The SSRC the sender's RTP carries on arrival.
    pub from: u32,
    /// The SSRC the relay forwards that RTP under.
    pub to: u32,
    /// Added to an SR's RTP timestamp, as to the forwarded RTP's.
    pub ts_offset: u32,
}

/// The stream the sender receives from the relay, and who really feeds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportMap {
    /// The relay's SSRC for the stream sent to the reporter.
    pub from: u32,
    /// The SSRC of the source feeding that stream now.
    pub to: u32,
}

/// What to translate in one compound packet; `None` leaves that part as is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Translation {
    pub sender: Option<SenderMap>,
    pub reported: Option<ReportMap>,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    if let Some(bytes) = b.get_mut(at..at + 4) {
        bytes.copy_from_slice(&v.to_be_bytes());
    }
}

/// Replace the 32-bit word at `at` with `to` if it equals `from`.
fn swap32(b: &mut [u8], at: usize, from: u32, to: u32) {
    if be32(b, at) == Some(from) {
        put32(b, at, to);
    }
}

/// Validate `buf` as a compound RTCP packet and apply `map` in place.
///
/// Checks, after RFC 3550 A.2: at least 8 bytes; every packet is
/// version 2; their length fields tile the datagram exactly; only the last
/// one is padded; an SR or RR holds the report blocks it counts. The first
/// packet need not be an SR or RR (reduced-size RTCP, RFC 5506). On error the
/// buffer may be partly rewritten; the caller drops it.
pub fn translate(buf: &mut [u8], map: &Translation) -> Result<(), RtcpError> {
    if buf.len() < MIN_LEN {
        return Err(RtcpError::TooShort);
    }
    let mut at = 0;
    while at < buf.len() {
        let header = buf.get(at..at + 4).ok_or(RtcpError::Length)?;
        let (first, pt) = (header[0], header[1]);
        let words = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if first >> 6 != 2 {
            return Err(RtcpError::Version);
        }
        let len = (words + 1) * 4;
        let end = at.checked_add(len).ok_or(RtcpError::Length)?;
        if end > buf.len() {
            return Err(RtcpError::Length);
        }
        if first & 0x20 != 0 {
            // The last octet counts the padding, itself included.
            let pad = usize::from(buf[end - 1]);
            if end != buf.len() || pad == 0 || pad > len - 4 {
                return Err(RtcpError::Padding);
            }
        }
        let count = usize::from(first & 0x1f);
        let packet = &mut buf[at..end];
        match pt {
            SR => translate_report(packet, count, SENDER_INFO, map)?,
            RR => translate_report(packet, count, 0, map)?,
            SDES => translate_sdes(packet, count, map),
            _ => {}
        }
        at = end;
    }
    Ok(())
}

/// One SR (`info` = [`SENDER_INFO`]) or RR (`info` = 0) packet.
fn translate_report(
    p: &mut [u8],
    count: usize,
    info: usize,
    map: &Translation,
) -> Result<(), RtcpError> {
    let blocks = 8 + info;
    // Profile-specific extensions may follow the blocks; fewer bytes may not.
    if p.len() < blocks + count * REPORT_BLOCK {
        return Err(RtcpError::ReportCount);
    }
    if let Some(s) = map.sender {
        if be32(p, 4) == Some(s.from) {
            put32(p, 4, s.to);
            if info > 0 {
                // The RTP timestamp of the sender info (after the NTP time).
                if let Some(ts) = be32(p, 16) {
                    put32(p, 16, ts.wrapping_add(s.ts_offset));
                }
            }
        }
    }
    if let Some(r) = map.reported {
        for i in 0..count {
            swap32(p, blocks + i * REPORT_BLOCK, r.from, r.to);
        }
    }
    Ok(())
}

/// An SDES packet: rename the sender's chunk. Lenient: an item list that
/// runs off the packet stops the walk, nothing is rejected (the relay only
/// touches chunk SSRCs, so a sloppy item does not concern it).
fn translate_sdes(p: &mut [u8], count: usize, map: &Translation) {
    let Some(s) = map.sender else {
        return;
    };
    let mut at = 4;
    for _ in 0..count {
        if be32(p, at).is_none() {
            return;
        }
        swap32(p, at, s.from, s.to);
        at += 4;
        // Items: type, length, text; a zero type ends the chunk, which is
        // then padded to a 32-bit boundary.
        loop {
            match p.get(at) {
                None => return,
                Some(0) => {
                    at = (at + 4) & !3;
                    break;
                }
                Some(_) => {
                    let Some(&len) = p.get(at + 1) else {
                        return;
                    };
                    at += 2 + usize::from(len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: Translation = Translation {
        sender: Some(SenderMap {
            from: 0xA1,
            to: 0xB2,
            ts_offset: 1000,
        }),
        reported: Some(ReportMap {
            from: 0xC3,
            to: 0xD4,
        }),
    };

    fn header(pt: u8, count: u8, len: usize) -> Vec<u8> {
        let words = (len / 4 - 1) as u16;
        let mut v = vec![0x80 | count, pt];
        v.extend_from_slice(&words.to_be_bytes());
        v
    }

    fn block(ssrc: u32) -> Vec<u8> {
        let mut v = ssrc.to_be_bytes().to_vec();
        v.extend_from_slice(&[0x11; 20]);
        v
    }

    fn sr(ssrc: u32, rtp_ts: u32, blocks: &[u32]) -> Vec<u8> {
        let mut v = header(SR, blocks.len() as u8, 28 + 24 * blocks.len());
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(&[0x22; 8]); // NTP
        v.extend_from_slice(&rtp_ts.to_be_bytes());
        v.extend_from_slice(&[0x33; 8]); // counts
        for b in blocks {
            v.extend(block(*b));
        }
        v
    }

    fn rr(ssrc: u32, blocks: &[u32]) -> Vec<u8> {
        let mut v = header(RR, blocks.len() as u8, 8 + 24 * blocks.len());
        v.extend_from_slice(&ssrc.to_be_bytes());
        for b in blocks {
            v.extend(block(*b));
        }
        v
    }

    /// SDES with one chunk: SSRC, CNAME "ab", end, padding.
    fn sdes(ssrc: u32) -> Vec<u8> {
        let mut v = header(SDES, 1, 16);
        v.extend_from_slice(&ssrc.to_be_bytes());
        v.extend_from_slice(&[1, 2, b'a', b'b']);
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    #[test]
    fn sr_sender_timestamp_and_block_are_translated() {
        let mut p = sr(0xA1, u32::MAX - 10, &[0xC3, 0x99]);
        let mut want = sr(0xB2, 989, &[0xD4, 0x99]);
        translate(&mut p, &MAP).unwrap();
        assert_eq!(p, want);
        // Nothing to translate: unchanged.
        translate(&mut want, &Translation::default()).unwrap();
        assert_eq!(want, sr(0xB2, 989, &[0xD4, 0x99]));
    }

    #[test]
    fn compound_rr_and_sdes_are_translated_other_ssrcs_kept() {
        let mut p = rr(0xA1, &[0xC3]);
        p.extend(sdes(0xA1));
        p.extend(rr(0x77, &[0x66]));
        let mut want = rr(0xB2, &[0xD4]);
        want.extend(sdes(0xB2));
        want.extend(rr(0x77, &[0x66]));
        translate(&mut p, &MAP).unwrap();
        assert_eq!(p, want);
    }

    #[test]
    fn a_stranger_sender_keeps_its_ssrc_and_timestamp() {
        let mut p = sr(0x55, 7, &[]);
        translate(&mut p, &MAP).unwrap();
        assert_eq!(p, sr(0x55, 7, &[]));
    }

    #[test]
    fn bye_and_app_pass_unchanged() {
        let mut bye = header(203, 1, 8);
        bye.extend_from_slice(&0xA1u32.to_be_bytes());
        let mut p = rr(0xA1, &[]);
        p.extend(&bye);
        translate(&mut p, &MAP).unwrap();
        assert_eq!(&p[8..], &bye[..]);
        // Reduced-size RTCP: a lone non-report packet is accepted.
        let mut lone = bye.clone();
        translate(&mut lone, &MAP).unwrap();
        assert_eq!(lone, bye);
    }

    #[test]
    fn malformed_compounds_are_rejected() {
        assert_eq!(
            translate(&mut [0x80, 201, 0], &MAP),
            Err(RtcpError::TooShort)
        );
        let mut v1 = rr(1, &[]);
        v1[0] = 0x40;
        assert_eq!(translate(&mut v1, &MAP), Err(RtcpError::Version));
        // Second packet of version 1.
        let mut second = rr(1, &[]);
        second.extend(rr(2, &[]));
        second[8] = 0x40;
        assert_eq!(translate(&mut second, &MAP), Err(RtcpError::Version));
        // Length field longer than the datagram, and a trailing stub.
        let mut long = rr(1, &[]);
        long[3] = 9;
        assert_eq!(translate(&mut long, &MAP), Err(RtcpError::Length));
        let mut stub = rr(1, &[]);
        stub.extend_from_slice(&[0x80, 201]);
        assert_eq!(translate(&mut stub, &MAP), Err(RtcpError::Length));
        // Padding on the first of two packets.
        let mut pad = rr(1, &[]);
        pad[0] |= 0x20;
        pad.extend(rr(2, &[]));
        assert_eq!(translate(&mut pad, &MAP), Err(RtcpError::Padding));
        // Claims two report blocks but holds one.
        let mut short = rr(0xA1, &[0xC3]);
        short[0] = 0x82;
        assert_eq!(translate(&mut short, &MAP), Err(RtcpError::ReportCount));
        let mut short_sr = header(SR, 0, 8);
        short_sr.extend_from_slice(&0xA1u32.to_be_bytes());
        assert_eq!(translate(&mut short_sr, &MAP), Err(RtcpError::ReportCount));
    }

    #[test]
    fn padded_last_packet_is_accepted() {
        let mut p = rr(0xA1, &[]);
        let mut padded = header(RR, 0, 12);
        padded[0] |= 0x20;
        padded.extend_from_slice(&0x66u32.to_be_bytes());
        padded.extend_from_slice(&[0, 0, 0, 4]);
        p.extend(&padded);
        translate(&mut p, &MAP).unwrap();
        assert_eq!(be32(&p, 4), Some(0xB2));
        // A padding count of zero, or more than the packet's body.
        for count in [0u8, 9] {
            let last = p.len() - 1;
            p[last] = count;
            assert_eq!(translate(&mut p, &MAP), Err(RtcpError::Padding));
        }
    }

    #[test]
    fn sloppy_sdes_items_do_not_panic_or_reject() {
        // An item claiming 200 bytes in a 12-byte packet.
        let mut p = header(SDES, 3, 12);
        p.extend_from_slice(&0xA1u32.to_be_bytes());
        p.extend_from_slice(&[1, 200, b'a', b'b']);
        translate(&mut p, &MAP).unwrap();
        assert_eq!(be32(&p, 4), Some(0xB2));
    }

    #[test]
    fn garbage_never_panics() {
        // Every prefix of a valid compound, and every single-byte corruption
        // of it, either passes or errors.
        let mut good = sr(0xA1, 5, &[0xC3]);
        good.extend(sdes(0xA1));
        for n in 0..=good.len() {
            let _ = translate(&mut good.clone()[..n], &MAP);
        }
        for i in 0..good.len() {
            for v in [0u8, 0x1f, 0x80, 0xbf, 0xff] {
                let mut g = good.clone();
                g[i] = v;
                let _ = translate(&mut g, &MAP);
            }
        }
    }
}
