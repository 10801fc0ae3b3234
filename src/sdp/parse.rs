//! Reading an SDP body (RFC 4566 §5) into the [`Sdp`] model.
//!
//! Strict where a wrong reading would send media to the wrong place or in the
//! wrong codec: `v=`, `o=`, `c=`, `m=` and the `a=rtpmap` lines of the audio
//! streams we relay must be well formed, or the body is refused with an
//! [`SdpError`] naming the line. Lenient where the field is sloppy and nothing
//! rides on it: LF or CRLF line ends, trailing blanks and blank lines, lines in
//! a non-RFC order within the session part, no `s=` or `t=`, unknown line
//! types and attributes (kept verbatim), non-UTF-8 text in `s=`/`i=`.

use super::model::{Connection, Line, Media, OriginLine, Rtpmap, Sdp};

/// Why a body is not a usable session description. Each names the 1-based
/// line that is wrong, so the 488/400 reason and the log can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body is empty")]
    Empty,
    #[error("line {line}: not of the form <letter>=<value>")]
    MalformedLine { line: usize },
    #[error("SDP does not start with v=")]
    MissingVersion,
    #[error("line {line}: unsupported SDP version {version:?}")]
    UnsupportedVersion { line: usize, version: String },
    #[error("line {line}: second {kind}= line")]
    Duplicate { line: usize, kind: char },
    #[error("line {line}: session-level {kind}= line inside a media description")]
    Misplaced { line: usize, kind: char },
    #[error("SDP has no o= line")]
    MissingOrigin,
    #[error("line {line}: malformed o= line")]
    BadOrigin { line: usize },
    #[error("line {line}: malformed c= line")]
    BadConnection { line: usize },
    #[error("line {line}: network type {nettype:?} is not IN")]
    UnsupportedNetwork { line: usize, nettype: String },
    #[error("line {line}: address type {addrtype:?} is neither IP4 nor IP6")]
    UnsupportedAddressType { line: usize, addrtype: String },
    #[error("line {line}: malformed m= line")]
    BadMedia { line: usize },
    #[error("line {line}: RTP payload type {value:?} is not a number from 0 to 127")]
    BadPayloadType { line: usize, value: String },
    #[error("line {line}: malformed a=rtpmap")]
    BadRtpmap { line: usize },
}

/// Parses an SDP body. Never panics: every index into the input is checked.
pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
    // Lossy: only free text (s=, i=, charset-tagged attributes) may legally be
    // non-UTF-8, and the switch never reads it.
    let text = String::from_utf8_lossy(body);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(n, l)| split_line(n, l));

    match lines.next() {
        None => return Err(SdpError::Empty),
        Some(Err(e)) => return Err(e),
        Some(Ok((n, kind, value))) => {
            if kind != b'v' {
                return Err(SdpError::MissingVersion);
            }
            if value.trim() != "0" {
                return Err(SdpError::UnsupportedVersion {
                    line: n,
                    version: value.to_owned(),
                });
            }
        }
    }

    let mut origin = None;
    let mut session_name = None;
    let mut connection = None;
    let mut session_lines = Vec::new();
    let mut media: Vec<Media> = Vec::new();

    for line in lines {
        let (n, kind, value) = line?;
        if kind == b'm' {
            media.push(parse_media(n, value)?);
            continue;
        }
        let Some(current) = media.last_mut() else {
            // Session part: any order is accepted (see the module header).
            match kind {
                b'v' => return Err(duplicate(n, kind)),
                b'o' if origin.is_some() => return Err(duplicate(n, kind)),
                b'o' => origin = Some(parse_origin(n, value)?),
                b's' if session_name.is_some() => return Err(duplicate(n, kind)),
                b's' => session_name = Some(value.to_owned()),
                b'c' if connection.is_some() => return Err(duplicate(n, kind)),
                b'c' => connection = Some(parse_connection(n, value)?),
                _ => session_lines.push(Line::new(kind, value)),
            }
            continue;
        };
        match kind {
            b'v' | b'o' | b's' | b't' | b'r' | b'z' | b'u' | b'e' | b'p' => {
                return Err(SdpError::Misplaced {
                    line: n,
                    kind: char::from(kind),
                })
            }
            b'c' if current.connection.is_some() => return Err(duplicate(n, kind)),
            b'c' => current.connection = Some(parse_connection(n, value)?),
            _ => {
                let line = Line::new(kind, value);
                // The rtpmaps of a stream we relay decide the codec, so a bad
                // one is refused rather than skipped.
                if current.is_rtp_audio() {
                    if let Some((name, v)) = line.attribute() {
                        if name.eq_ignore_ascii_case("rtpmap")
                            && v.and_then(Rtpmap::parse).is_none()
                        {
                            return Err(SdpError::BadRtpmap { line: n });
                        }
                    }
                }
                current.lines.push(line);
            }
        }
    }

    Ok(Sdp {
        origin: origin.ok_or(SdpError::MissingOrigin)?,
        // RFC 4566 requires s=, but some gateways omit it; "-" is its "none".
        session_name: session_name.unwrap_or_else(|| "-".to_owned()),
        connection,
        lines: session_lines,
        media,
    })
}

fn duplicate(line: usize, kind: u8) -> SdpError {
    SdpError::Duplicate {
        line,
        kind: char::from(kind),
    }
}

/// Splits `<letter>=<value>`; the letter is a lowercase ASCII letter, so
/// slicing after the first two bytes is on a character boundary.
fn split_line(n: usize, line: &str) -> Result<(usize, u8, &str), SdpError> {
    match line.as_bytes() {
        [kind @ b'a'..=b'z', b'=', ..] => Ok((n, *kind, line.get(2..).unwrap_or(""))),
        _ => Err(SdpError::MalformedLine { line: n }),
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`.
/// A username with spaces (forbidden, but seen) is taken whole: the last five
/// fields are positional.
fn parse_origin(n: usize, value: &str) -> Result<OriginLine, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let split = fields
        .len()
        .checked_sub(5)
        .filter(|s| *s >= 1)
        .ok_or(SdpError::BadOrigin { line: n })?;
    let (user, rest) = fields.split_at(split);
    let [session_id, session_version, nettype, addrtype, address] = rest else {
        return Err(SdpError::BadOrigin { line: n });
    };
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(session_id) || !numeric(session_version) {
        return Err(SdpError::BadOrigin { line: n });
    }
    Ok(OriginLine {
        username: user.join(" "),
        session_id: (*session_id).to_owned(),
        session_version: (*session_version).to_owned(),
        nettype: (*nettype).to_owned(),
        addrtype: (*addrtype).to_owned(),
        address: (*address).to_owned(),
    })
}

/// `c=IN IP4|IP6 <address>[/<ttl>][/<count>]` (RFC 4566 §5.7). A host name
/// is kept but gives no IP; the unspecified address is kept (RFC 2543 hold).
fn parse_connection(n: usize, value: &str) -> Result<Connection, SdpError> {
    let fields: Vec<&str> = value.split_whitespace().collect();
    let [nettype, addrtype, address] = fields.as_slice() else {
        return Err(SdpError::BadConnection { line: n });
    };
    if !nettype.eq_ignore_ascii_case("IN") {
        return Err(SdpError::UnsupportedNetwork {
            line: n,
            nettype: (*nettype).to_owned(),
        });
    }
    if !addrtype.eq_ignore_ascii_case("IP4") && !addrtype.eq_ignore_ascii_case("IP6") {
        return Err(SdpError::UnsupportedAddressType {
            line: n,
            addrtype: (*addrtype).to_owned(),
        });
    }
    let host = address.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(SdpError::BadConnection { line: n });
    }
    Ok(Connection {
        addrtype: (*addrtype).to_owned(),
        address: (*address).to_owned(),
        ip: host.parse().ok(),
    })
}

/// `m=<media> <port>[/<count>] <proto> <fmt> ...` (RFC 4566 §5.14). An empty
/// format list is tolerated (some stacks send it for a rejected stream).
fn parse_media(n: usize, value: &str) -> Result<Media, SdpError> {
    let mut fields = value.split_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(SdpError::BadMedia { line: n });
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port, None),
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| SdpError::BadMedia { line: n })?;
    let port_count = port_count
        .map(|c| c.parse::<u16>().map_err(|_| SdpError::BadMedia { line: n }))
        .transpose()?;
    let media = Media {
        kind: kind.to_owned(),
        port,
        port_count,
        proto: proto.to_owned(),
        formats: fields.map(str::to_owned).collect(),
        connection: None,
        lines: Vec::new(),
    };
    if media.is_rtp_audio() {
        if let Some(bad) = media
            .formats
            .iter()
            .find(|f| f.parse::<u8>().map_or(true, |pt| pt > 127))
        {
            return Err(SdpError::BadPayloadType {
                line: n,
                value: bad.clone(),
            });
        }
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    use super::*;
    use crate::sdp::fixtures::*;
    use crate::sdp::{Codec, Direction};

    fn ip4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn sipp_body() {
        let sdp = parse(SIPP.as_bytes()).unwrap();
        assert_eq!(sdp.media_count(), 1);
        assert_eq!(sdp.session_id(), "53655765");
        assert_eq!(sdp.session_version(), "2353687637");
        let audio = sdp.audio().unwrap();
        assert_eq!(audio.rtp_addr(), Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(audio.formats.len(), 1);
        assert_eq!(audio.formats[0].codec, Some(Codec::Pcmu));
        assert_eq!(audio.direction, Direction::SendRecv);
        assert!(!audio.is_hold());
        assert_eq!(audio.event_format(), None);
    }

    #[test]
    fn linphone_body_only_te_8000_is_ours() {
        let audio = parse(LINPHONE.as_bytes()).unwrap().audio().unwrap();
        let pts: Vec<u8> = audio.formats.iter().map(|f| f.pt).collect();
        assert_eq!(pts, [96, 97, 98, 0, 8, 18, 101, 99, 100]);
        let opus = &audio.formats[0];
        assert_eq!(
            (opus.encoding.as_str(), opus.clock_rate, opus.channels),
            ("opus", 48000, Some(2))
        );
        assert_eq!(opus.fmtp.as_deref(), Some("useinbandfec=1"));
        assert_eq!(opus.codec, None);
        // G729 has no rtpmap: known from the static table, fmtp still read.
        assert_eq!(audio.formats[5].encoding, "G729");
        assert_eq!(audio.formats[5].fmtp.as_deref(), Some("annexb=yes"));
        // telephone-event/48000 (101) is not ours; /8000 (100) is.
        assert_eq!(audio.formats[6].codec, None);
        assert_eq!(audio.event_format().map(|f| f.pt), Some(100));
        // The first non-event format, whatever its codec.
        assert_eq!(audio.audio_format().map(|f| f.pt), Some(96));
    }

    #[test]
    fn asterisk_body_rtcp_and_ptime() {
        let audio = parse(ASTERISK.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.ptime, Some(20));
        assert_eq!(audio.rtcp, Some(SocketAddr::new(ip4(10, 0, 0, 5), 10001)));
        let ev = audio.event_format().unwrap();
        assert_eq!((ev.pt, ev.fmtp.as_deref()), (101, Some("0-16")));
        assert_eq!(audio.formats[1].codec, Some(Codec::Pcma));
    }

    #[test]
    fn media_level_c_overrides_session_level() {
        let audio = parse(CISCO.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.address, Some(ip4(10, 1, 1, 2)));
        assert_eq!(
            audio.audio_format().map(|f| f.encoding.as_str()),
            Some("G729")
        );
        assert_eq!(
            audio.event_format().and_then(|f| f.fmtp.as_deref()),
            Some("0-15")
        );
    }

    #[test]
    fn session_level_direction_applies_when_media_has_none() {
        let sdp = parse(POLYCOM.as_bytes()).unwrap();
        let audio = sdp.audio().unwrap();
        assert_eq!(audio.direction, Direction::SendOnly);
        assert!(audio.is_hold());
        assert_eq!(audio.address, Some(ip4(192, 168, 0, 50)));
        assert_eq!(sdp.media_count(), 2);
    }

    #[test]
    fn media_level_direction_overrides_session_level() {
        let body = POLYCOM.replace("a=rtpmap:9 G722", "a=recvonly\r\na=rtpmap:9 G722");
        let audio = parse(body.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.direction, Direction::RecvOnly);
        assert!(!audio.is_hold());
    }

    #[test]
    fn rfc2543_hold_with_unspecified_address() {
        let body = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let audio = parse(body.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.direction, Direction::SendRecv);
        assert!(audio.is_hold());
        assert_eq!(audio.rtp_addr(), None, "nothing can be sent to 0.0.0.0");
    }

    #[test]
    fn ipv6_with_rtcp_address() {
        let body = "v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::2\r\n\
                    t=0 0\r\nm=audio 4000 RTP/AVP 8\r\na=rtcp:4005 IN IP6 2001:db8::3\r\n";
        let audio = parse(body.as_bytes()).unwrap().audio().unwrap();
        let v6 = |last| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last));
        assert_eq!(audio.rtp_addr(), Some(SocketAddr::new(v6(2), 4000)));
        assert_eq!(audio.rtcp, Some(SocketAddr::new(v6(3), 4005)));
        assert_eq!(audio.formats[0].codec, Some(Codec::Pcma));
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 8 0 18 96\r\n";
        let audio = parse(body.as_bytes()).unwrap().audio().unwrap();
        let codecs: Vec<_> = audio.formats.iter().map(|f| f.codec).collect();
        assert_eq!(codecs, [Some(Codec::Pcma), Some(Codec::Pcmu), None, None]);
        assert_eq!(audio.formats[3].encoding, "", "dynamic type without rtpmap");
    }

    #[test]
    fn video_before_audio_and_second_audio() {
        let sdp = parse(VIDEO_THEN_AUDIO.as_bytes()).unwrap();
        assert_eq!(sdp.media_count(), 3);
        assert_eq!(sdp.audio_index(), Some(1));
        let audio = sdp.audio().unwrap();
        assert_eq!(audio.port, 5000);
        assert_eq!(audio.event_format().map(|f| f.pt), Some(96));
    }

    #[test]
    fn port_zero_is_a_rejected_stream() {
        let body = SIPP.replace("m=audio 6000", "m=audio 0");
        let audio = parse(body.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.port, 0);
        assert_eq!(audio.rtp_addr(), None);
    }

    #[test]
    fn srtp_only_offer_has_no_audio_we_relay() {
        let body = SIPP.replace("RTP/AVP", "RTP/SAVP");
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.audio(), None);
        assert_eq!(sdp.media_count(), 1);
    }

    #[test]
    fn lf_only_and_crlf_read_the_same() {
        let crlf = parse(ASTERISK.as_bytes()).unwrap();
        let lf = parse(ASTERISK.replace("\r\n", "\n").as_bytes()).unwrap();
        assert_eq!(crlf, lf);
        assert_eq!(lf.to_bytes(), ASTERISK.as_bytes());
    }

    #[test]
    fn lenient_on_order_missing_lines_and_blanks() {
        // No s=, c= and a= after t=, b= before c=, trailing blanks, an unknown
        // line type, blank lines at the end, no final line end.
        let body = "v=0\no=- 1 1 IN IP4 192.0.2.1 \nt=0 0\nb=AS:64\nc=IN IP4 192.0.2.1\n\
                    a=sendrecv\ny=whatever\nm=audio 4000 RTP/AVP 0\n\n\n";
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(
            sdp.audio().unwrap().rtp_addr(),
            Some("192.0.2.1:4000".parse().unwrap())
        );
        // Written back in RFC order, with s=- supplied.
        let out = String::from_utf8(sdp.to_bytes()).unwrap();
        assert_eq!(
            out,
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nb=AS:64\r\n\
             t=0 0\r\na=sendrecv\r\ny=whatever\r\nm=audio 4000 RTP/AVP 0\r\n"
        );
        // A missing t= is supplied too, before the attributes.
        let no_t =
            parse(b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\na=x\nm=audio 4000 RTP/AVP 0\n").unwrap();
        assert!(String::from_utf8(no_t.to_bytes())
            .unwrap()
            .contains("s=-\r\nt=0 0\r\na=x\r\n"));
    }

    #[test]
    fn host_name_and_huge_session_id_accepted() {
        let body = "v=0\r\no=Cisco 123456789012345678901234 1 IN IP4 gw.example.com\r\ns=-\r\n\
                    c=IN IP4 media.example.com\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.session_id(), "123456789012345678901234");
        assert_eq!(sdp.audio().unwrap().address, None);
    }

    #[test]
    fn errors_name_the_defect() {
        let cases: &[(&str, SdpError)] = &[
            ("", SdpError::Empty),
            ("\r\n\r\n", SdpError::Empty),
            ("o=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::MissingVersion),
            (
                "v=1\r\n",
                SdpError::UnsupportedVersion {
                    line: 1,
                    version: "1".into(),
                },
            ),
            ("v=0\r\ns=-\r\n", SdpError::MissingOrigin),
            ("v=0\r\nhello\r\n", SdpError::MalformedLine { line: 2 }),
            ("v=0\r\nV=0\r\n", SdpError::MalformedLine { line: 2 }),
            (
                "v=0\r\no=- x 1 IN IP4 1.2.3.4\r\n",
                SdpError::BadOrigin { line: 2 },
            ),
            (
                "v=0\r\no=- 1 IN IP4 1.2.3.4\r\n",
                SdpError::BadOrigin { line: 2 },
            ),
            (
                "v=0\r\no=- 1 1 IN IP4 a\r\no=- 1 1 IN IP4 a\r\n",
                SdpError::Duplicate { line: 3, kind: 'o' },
            ),
            ("v=0\r\nc=IN IP4\r\n", SdpError::BadConnection { line: 2 }),
            (
                "v=0\r\nc=ATM NSAP x\r\n",
                SdpError::UnsupportedNetwork {
                    line: 2,
                    nettype: "ATM".into(),
                },
            ),
            (
                "v=0\r\nc=IN IPX x\r\n",
                SdpError::UnsupportedAddressType {
                    line: 2,
                    addrtype: "IPX".into(),
                },
            ),
            ("v=0\r\nm=audio\r\n", SdpError::BadMedia { line: 2 }),
            (
                "v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
                SdpError::BadMedia { line: 2 },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0 128\r\n",
                SdpError::BadPayloadType {
                    line: 2,
                    value: "128".into(),
                },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP PCMU\r\n",
                SdpError::BadPayloadType {
                    line: 2,
                    value: "PCMU".into(),
                },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
                SdpError::BadRtpmap { line: 3 },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
                SdpError::BadRtpmap { line: 3 },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0\r\nt=0 0\r\n",
                SdpError::Misplaced { line: 3, kind: 't' },
            ),
            (
                "v=0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n",
                SdpError::Duplicate { line: 4, kind: 'c' },
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                parse(body.as_bytes()).as_ref().err(),
                Some(want),
                "{body:?}"
            );
        }
        // The message names the line, for the log and the 488 reason.
        assert_eq!(
            SdpError::BadRtpmap { line: 3 }.to_string(),
            "line 3: malformed a=rtpmap"
        );
    }

    #[test]
    fn bad_rtpmap_outside_relayed_audio_is_kept() {
        let body = format!(
            "{}m=video 5000 RTP/AVP 96\r\na=rtpmap:96 nonsense\r\n",
            SIPP
        );
        let sdp = parse(body.as_bytes()).unwrap();
        assert_eq!(sdp.media_count(), 2);
        assert_eq!(sdp.to_bytes(), body.as_bytes());
    }

    #[test]
    fn fixtures_round_trip_byte_for_byte() {
        for body in [SIPP, LINPHONE, ASTERISK, CISCO, POLYCOM, VIDEO_THEN_AUDIO] {
            let sdp = parse(body.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(sdp.to_bytes()).unwrap(), body);
            assert_eq!(parse(&sdp.to_bytes()).unwrap(), sdp);
        }
    }

    #[test]
    fn truncations_and_mutations_never_panic() {
        for body in [LINPHONE, POLYCOM, "v=0\r\no=- 1 1 IN IP6 ::1\r\nc=IN IP6 ::1/3\r\nm=audio 1/2 RTP/AVP 0\r\na=rtcp:9 IN IP6 ::1\r\n"] {
            let bytes = body.as_bytes();
            for end in 0..=bytes.len() {
                let _ = parse(&bytes[..end]).map(|s| (s.audio(), s.to_bytes()));
                let _ = parse(&bytes[end..]).map(|s| (s.audio(), s.to_bytes()));
            }
            // Each byte replaced by characters that upset naive parsers.
            for i in 0..bytes.len() {
                for b in [b'\0', b' ', b'/', b':', b'=', b'\n', 0xff, b'9'] {
                    let mut mutated = bytes.to_vec();
                    mutated[i] = b;
                    if let Ok(sdp) = parse(&mutated) {
                        let _ = sdp.audio();
                        // What we write back must parse again.
                        assert!(parse(&sdp.to_bytes()).is_ok(), "{:?}", String::from_utf8_lossy(&mutated));
                    }
                }
            }
        }
    }
}
