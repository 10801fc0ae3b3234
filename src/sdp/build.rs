//! Building the descriptions the switch sends: offers (RFC 3264 §5) and
//! answers (§6) that point media at our RTP relay, stamped with one
//! [`Origin`] per leg (§8).

use std::net::{IpAddr, SocketAddr};

use super::model::{
    addrtype_of, Connection, Direction, Line, Media, OriginLine, PayloadFormat, Sdp,
};

/// Our `o=` line for one leg: a session id fixed for the leg's life and a
/// version that goes up by one each time the description we send changes.
///
/// Version rule (RFC 3264 §8, RFC 4566 §5.2): the first description built
/// with an Origin carries version 1; each later one carries the previous
/// version + 1 if anything but the `o=` line differs from the previous
/// description built with this Origin, and the same version if nothing does
/// (a re-offer or re-answer repeating itself, e.g. a session refresh). The
/// comparison is against the last built description only, so changing and
/// changing back costs two bumps, as the RFC requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    session_id: u64,
    version: u64,
    address: IpAddr,
    /// The last description built, serialised with a placeholder `o=`.
    last: Option<Vec<u8>>,
}

/// The `o=` username: RFC 4566 allows any token; ours names the switch in traces.
const USERNAME: &str = "switchback";

impl Origin {
    /// A new leg's origin with a random session id. The id is kept below
    /// 2^62 because some stacks read sess-id into a signed 64-bit integer.
    pub fn new(address: IpAddr) -> Self {
        Self::with_session_id(address, (rand::random::<u64>() >> 2).max(1))
    }

    /// An origin with a chosen session id (tests, or restoring a leg).
    pub fn with_session_id(address: IpAddr, session_id: u64) -> Self {
        Origin {
            session_id,
            version: 1,
            address,
            last: None,
        }
    }

    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The version of the last description built (1 before any).
    pub fn version(&self) -> u64 {
        self.version
    }

    fn line(&self, version: u64) -> OriginLine {
        OriginLine {
            username: USERNAME.to_owned(),
            session_id: self.session_id.to_string(),
            session_version: version.to_string(),
            nettype: "IN".to_owned(),
            addrtype: addrtype_of(self.address).to_owned(),
            address: self.address.to_string(),
        }
    }

    /// Writes our `o=` into `sdp`, bumping the version if the content changed.
    fn stamp(&mut self, sdp: &mut Sdp) {
        sdp.origin = self.line(0);
        let content = sdp.to_bytes();
        if self.last.as_ref().is_some_and(|last| *last != content) {
            self.version = self.version.saturating_add(1);
        }
        self.last = Some(content);
        sdp.origin = self.line(self.version);
    }
}

/// An offer we send: one `m=audio` on our relay with `formats` (which should
/// not be empty: with none the stream goes out disabled, port 0).
pub fn build_offer(
    origin: &mut Origin,
    relay: SocketAddr,
    formats: &[PayloadFormat],
    direction: Direction,
    ptime: Option<u32>,
) -> Sdp {
    let media = if formats.is_empty() {
        disabled(&Media {
            kind: "audio".to_owned(),
            port: 0,
            port_count: None,
            proto: "RTP/AVP".to_owned(),
            formats: vec!["0".to_owned()],
            connection: None,
            lines: Vec::new(),
        })
    } else {
        audio_media(relay.port(), formats, direction, ptime)
    };
    session(origin, relay.ip(), vec![media])
}

/// An answer we send to `offer` (RFC 3264 §6): as many `m=` lines as the
/// offer, in its order. The offer's audio stream ([`Sdp::audio_index`]) gets
/// our relay, `formats`, `direction` and `ptime`; every other stream is
/// refused with port 0 and its first format. The audio stream is refused too
/// if the offer disabled it (port 0, which the answer must keep) or if
/// `formats` is empty.
pub fn build_answer(
    origin: &mut Origin,
    offer: &Sdp,
    relay: SocketAddr,
    formats: &[PayloadFormat],
    direction: Direction,
    ptime: Option<u32>,
) -> Sdp {
    let audio = offer.audio_index();
    let media = offer
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if Some(i) == audio && m.port != 0 && !formats.is_empty() {
                audio_media(relay.port(), formats, direction, ptime)
            } else {
                disabled(m)
            }
        })
        .collect();
    session(origin, relay.ip(), media)
}

/// The session part we always write: v=, o=, s=switchback, c= (the relay, so
/// it covers every m= line), t=0 0.
fn session(origin: &mut Origin, relay: IpAddr, media: Vec<Media>) -> Sdp {
    let mut sdp = Sdp {
        origin: origin.line(0),
        session_name: "switchback".to_owned(),
        connection: Some(Connection::of(relay)),
        lines: vec![Line::new(b't', "0 0")],
        media,
    };
    origin.stamp(&mut sdp);
    sdp
}

/// Our audio stream: `a=rtpmap` for every format, static ones too (RFC 4566
/// makes it optional, but some gateways want it), fmtp where present, ptime
/// if given, and the direction always written, sendrecv included, so no
/// session-level default is relied on.
fn audio_media(
    port: u16,
    formats: &[PayloadFormat],
    direction: Direction,
    ptime: Option<u32>,
) -> Media {
    let mut lines = Vec::new();
    for f in formats {
        if let Some(rtpmap) = f.rtpmap_value() {
            lines.push(Line::new(b'a', format!("rtpmap:{rtpmap}")));
        }
        if let Some(fmtp) = &f.fmtp {
            lines.push(Line::new(b'a', format!("fmtp:{} {fmtp}", f.pt)));
        }
    }
    if let Some(ptime) = ptime {
        lines.push(Line::new(b'a', format!("ptime:{ptime}")));
    }
    lines.push(Line::new(b'a', direction.as_str()));
    Media {
        kind: "audio".to_owned(),
        port,
        port_count: None,
        proto: "RTP/AVP".to_owned(),
        formats: formats.iter().map(|f| f.pt.to_string()).collect(),
        connection: None,
        lines,
    }
}

/// A refused or disabled stream: same media and proto, port 0, the first
/// format only since one is required and none will be used (RFC 3264 §6).
fn disabled(offered: &Media) -> Media {
    Media {
        kind: offered.kind.clone(),
        port: 0,
        port_count: None,
        proto: offered.proto.clone(),
        formats: offered.formats.iter().take(1).cloned().collect(),
        connection: None,
        lines: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::fixtures::*;
    use crate::sdp::{acceptable_formats, default_formats, parse, Codec};

    const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent];

    fn origin() -> Origin {
        Origin::with_session_id("192.0.2.10".parse().unwrap(), 4242)
    }

    fn relay() -> SocketAddr {
        "192.0.2.20:30000".parse().unwrap()
    }

    #[test]
    fn offer_has_the_exact_lines_we_promise() {
        let sdp = build_offer(
            &mut origin(),
            relay(),
            &default_formats(&ALL),
            Direction::SendRecv,
            Some(20),
        );
        assert_eq!(
            String::from_utf8(sdp.to_bytes()).unwrap(),
            "v=0\r\n\
             o=switchback 4242 1 IN IP4 192.0.2.10\r\n\
             s=switchback\r\n\
             c=IN IP4 192.0.2.20\r\n\
             t=0 0\r\n\
             m=audio 30000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
    }

    #[test]
    fn offer_round_trips_through_parse() {
        let formats = default_formats(&ALL);
        for direction in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            let sdp = build_offer(&mut origin(), relay(), &formats, direction, None);
            let back = parse(&sdp.to_bytes()).unwrap();
            assert_eq!(back, sdp);
            let audio = back.audio().unwrap();
            assert_eq!(audio.rtp_addr(), Some(relay()));
            assert_eq!(audio.formats, formats);
            assert_eq!(audio.direction, direction);
            assert_eq!(audio.ptime, None);
        }
    }

    #[test]
    fn ipv6_relay_and_origin() {
        let mut origin = Origin::with_session_id("2001:db8::10".parse().unwrap(), 1);
        let relay: SocketAddr = "[2001:db8::20]:4000".parse().unwrap();
        let sdp = build_offer(
            &mut origin,
            relay,
            &default_formats(&[Codec::Pcma]),
            Direction::SendRecv,
            None,
        );
        let text = String::from_utf8(sdp.to_bytes()).unwrap();
        assert!(
            text.contains("o=switchback 1 1 IN IP6 2001:db8::10\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP6 2001:db8::20\r\n"), "{text}");
        assert_eq!(
            parse(text.as_bytes()).unwrap().audio().unwrap().rtp_addr(),
            Some(relay)
        );
    }

    #[test]
    fn answer_mirrors_every_m_line() {
        let offer = parse(VIDEO_THEN_AUDIO.as_bytes()).unwrap();
        let formats = acceptable_formats(&offer.audio().unwrap(), &ALL).unwrap();
        let answer = build_answer(
            &mut origin(),
            &offer,
            relay(),
            &formats,
            Direction::SendRecv,
            None,
        );
        assert_eq!(answer.media_count(), offer.media_count());
        let text = String::from_utf8(answer.to_bytes()).unwrap();
        assert!(
            text.contains("m=video 0 RTP/AVP 96\r\nm=audio 30000 RTP/AVP 8 96\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("a=sendrecv\r\nm=audio 0 RTP/AVP 0\r\n"),
            "{text}"
        );
        let back = parse(text.as_bytes()).unwrap();
        assert_eq!(back.audio_index(), Some(1));
        assert_eq!(
            back.audio()
                .unwrap()
                .event_format()
                .and_then(|f| f.fmtp.as_deref()),
            Some("0-15")
        );
    }

    #[test]
    fn answer_keeps_port_zero_of_a_disabled_offer() {
        let offer = parse(SIPP.replace("m=audio 6000", "m=audio 0").as_bytes()).unwrap();
        let answer = build_answer(
            &mut origin(),
            &offer,
            relay(),
            &default_formats(&ALL),
            Direction::SendRecv,
            None,
        );
        assert_eq!(answer.audio().unwrap().port, 0);
        let empty = build_answer(
            &mut origin(),
            &parse(SIPP.as_bytes()).unwrap(),
            relay(),
            &[],
            Direction::SendRecv,
            None,
        );
        assert!(String::from_utf8(empty.to_bytes())
            .unwrap()
            .ends_with("m=audio 0 RTP/AVP 0\r\n"));
    }

    #[test]
    fn answer_direction_to_a_hold() {
        let offer = parse(POLYCOM.as_bytes()).unwrap(); // session-level sendonly
        let audio = offer.audio().unwrap();
        let formats = acceptable_formats(&audio, &ALL).unwrap();
        let answer = build_answer(
            &mut origin(),
            &offer,
            relay(),
            &formats,
            audio.direction.answer_to(),
            None,
        );
        assert_eq!(answer.media_count(), 2);
        assert_eq!(answer.audio().unwrap().direction, Direction::RecvOnly);
        assert_eq!(pts(&answer.audio().unwrap().formats), [0, 8, 127]);
    }

    fn pts(formats: &[PayloadFormat]) -> Vec<u8> {
        formats.iter().map(|f| f.pt).collect()
    }

    #[test]
    fn version_bumps_only_on_change() {
        let mut origin = origin();
        let formats = default_formats(&ALL);
        let first = build_offer(&mut origin, relay(), &formats, Direction::SendRecv, None);
        assert_eq!(first.session_version(), "1");
        // Same content again (a session refresh re-INVITE): same version.
        let again = build_offer(&mut origin, relay(), &formats, Direction::SendRecv, None);
        assert_eq!(again.session_version(), "1");
        assert_eq!(again, first);
        // Hold: changed, +1.
        let hold = build_offer(&mut origin, relay(), &formats, Direction::SendOnly, None);
        assert_eq!(hold.session_version(), "2");
        // Resume: changed back, still +1 (compared with the last one only).
        let resume = build_offer(&mut origin, relay(), &formats, Direction::SendRecv, None);
        assert_eq!(resume.session_version(), "3");
        assert_eq!(origin.version(), 3);
        // A new relay port is a change; the session id never changes.
        let moved = build_offer(
            &mut origin,
            "192.0.2.20:30002".parse().unwrap(),
            &formats,
            Direction::SendRecv,
            None,
        );
        assert_eq!((moved.session_id(), moved.session_version()), ("4242", "4"));
    }

    #[test]
    fn version_counts_answers_and_offers_alike() {
        let mut origin = origin();
        let offer = parse(ASTERISK.as_bytes()).unwrap();
        let formats = acceptable_formats(&offer.audio().unwrap(), &ALL).unwrap();
        let a1 = build_answer(
            &mut origin,
            &offer,
            relay(),
            &formats,
            Direction::SendRecv,
            None,
        );
        let a2 = build_answer(
            &mut origin,
            &offer,
            relay(),
            &formats,
            Direction::SendRecv,
            None,
        );
        assert_eq!((a1.session_version(), a2.session_version()), ("1", "1"));
        let o3 = build_offer(&mut origin, relay(), &formats, Direction::Inactive, None);
        assert_eq!(o3.session_version(), "2");
    }

    #[test]
    fn random_session_ids_fit_signed_64_bits() {
        let a = Origin::new("192.0.2.1".parse().unwrap());
        let b = Origin::new("192.0.2.1".parse().unwrap());
        assert_ne!(a.session_id(), b.session_id());
        assert!(a.session_id() > 0 && a.session_id() < 1 << 62);
        assert_eq!(a.version(), 1);
    }
}
