//! The SDP model: a parsed or built description ([`Sdp`]) kept close to its
//! lines so it serialises back unchanged, and the audio view the B2BUA works
//! with ([`AudioStream`], [`PayloadFormat`], [`Codec`], [`Direction`]).
//!
//! Only the lines the switch acts on are typed (`o=`, `c=`, `m=`); every other
//! line is kept verbatim as a [`Line`] and read on demand, so an attribute we
//! do not know survives a parse/serialise round trip untouched.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An audio codec the switch negotiates. Anything else an offer lists is
/// carried as a [`PayloadFormat`] with `codec: None` and never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// G.711 A-law, static payload type 8 (RFC 3551 §6).
    Pcma,
    /// RFC 4733 DTMF events at 8000 Hz (dynamic payload type).
    TelephoneEvent,
}

impl Codec {
    /// The RTP encoding name as written in `a=rtpmap`.
    pub fn encoding_name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::TelephoneEvent => "telephone-event",
        }
    }

    /// The static payload type (RFC 3551 table 4), if the codec has one.
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::TelephoneEvent => None,
        }
    }

    /// True for the codecs that carry audio (not telephone-event): both legs
    /// must end up on the same one of these, since the relay never transcodes.
    pub fn is_audio(self) -> bool {
        !matches!(self, Codec::TelephoneEvent)
    }

    /// Recognise a codec from an rtpmap's encoding, clock rate and channels.
    /// All three are 8000 Hz mono; telephone-event at another rate (Linphone
    /// offers /16000 and /48000 beside /8000) is a different format for us.
    pub fn from_rtpmap(encoding: &str, clock_rate: u32, channels: Option<u8>) -> Option<Codec> {
        if clock_rate != 8000 || !matches!(channels, None | Some(1)) {
            return None;
        }
        encoding.parse().ok()
    }
}

/// The encoding name was not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown codec {0:?}")]
pub struct UnknownCodec(pub String);

impl FromStr for Codec {
    type Err = UnknownCodec;

    /// Encoding names are case-insensitive (RFC 4855 §3).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent]
            .into_iter()
            .find(|c| c.encoding_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCodec(s.to_owned()))
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.encoding_name())
    }
}

/// A stream's direction attribute (RFC 4566 §6, RFC 3264 §5.1), always from
/// the point of view of the party whose description it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction an answer takes to an offer with this direction
    /// (RFC 3264 §6.1): the answerer receives what the offerer sends.
    pub fn answer_to(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether the describing party sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the describing party receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name, also used as the whole `a=` line value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Reads an attribute value (`a=sendonly` gives `sendonly`).
    pub(crate) fn from_attribute(value: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One RTP payload format of a media line: its number, what it maps to and
/// its format parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PayloadFormat {
    pub pt: u8,
    /// `Some` only for the codecs the switch negotiates.
    pub codec: Option<Codec>,
    /// As written in `a=rtpmap` (case kept), or the RFC 3551 name of a
    /// static type listed without one; empty for a dynamic type without rtpmap.
    pub encoding: String,
    /// 0 when unknown (a dynamic type without rtpmap).
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// The `a=fmtp` parameters, verbatim.
    pub fmtp: Option<String>,
}

impl PayloadFormat {
    /// A format of one of our codecs; telephone-event gets RFC 4733's usual
    /// `0-16` events, which covers DTMF 0-9, *, #, A-D and flash.
    pub fn of(codec: Codec, pt: u8) -> PayloadFormat {
        PayloadFormat {
            pt,
            codec: Some(codec),
            encoding: codec.encoding_name().to_owned(),
            clock_rate: 8000,
            channels: None,
            fmtp: (codec == Codec::TelephoneEvent).then(|| "0-16".to_owned()),
        }
    }

    /// The format a static payload type stands for when no rtpmap names it
    /// (RFC 3551 table 4; only audio types, which is all `m=audio` may use).
    pub(crate) fn static_type(pt: u8) -> Option<PayloadFormat> {
        let (encoding, clock_rate) = match pt {
            0 => ("PCMU", 8000),
            3 => ("GSM", 8000),
            4 => ("G723", 8000),
            5 => ("DVI4", 8000),
            6 => ("DVI4", 16000),
            7 => ("LPC", 8000),
            8 => ("PCMA", 8000),
            9 => ("G722", 8000),
            10 | 11 => ("L16", 44100),
            12 => ("QCELP", 8000),
            13 => ("CN", 8000),
            14 => ("MPA", 90000),
            15 => ("G728", 8000),
            16 => ("DVI4", 11025),
            17 => ("DVI4", 22050),
            18 => ("G729", 8000),
            _ => return None,
        };
        let channels = (pt == 10).then_some(2);
        Some(PayloadFormat {
            pt,
            codec: Codec::from_rtpmap(encoding, clock_rate, channels),
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
        })
    }

    /// The `a=rtpmap` value (`0 PCMU/8000`), or `None` when the encoding is
    /// unknown and no rtpmap can be written.
    pub(crate) fn rtpmap_value(&self) -> Option<String> {
        if self.encoding.is_empty() || self.clock_rate == 0 {
            return None;
        }
        let mut v = format!("{} {}/{}", self.pt, self.encoding, self.clock_rate);
        if let Some(ch) = self.channels {
            v.push_str(&format!("/{ch}"));
        }
        Some(v)
    }
}

/// The audio stream of a description as the B2BUA sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioStream {
    /// Media-level `c=` else session-level `c=`; `None` when neither holds
    /// an IP literal (absent, or a host name, which the relay does not resolve).
    pub address: Option<IpAddr>,
    /// 0 marks a rejected or disabled stream (RFC 3264 §6, §8.2).
    pub port: u16,
    /// `a=rtcp` (RFC 3605) when present, its address defaulting to `address`.
    pub rtcp: Option<SocketAddr>,
    /// In `m=` line order, which is the sender's preference order.
    pub formats: Vec<PayloadFormat>,
    /// Media-level attribute, else session-level, else sendrecv (RFC 4566 §6).
    pub direction: Direction,
    pub ptime: Option<u32>,
}

impl AudioStream {
    /// Where the describing party wants RTP sent; `None` when the stream is
    /// rejected (port 0), has no address, or has the unspecified address of
    /// an RFC 2543 hold (nothing can be sent to 0.0.0.0).
    pub fn rtp_addr(&self) -> Option<SocketAddr> {
        let ip = self.address?;
        (self.port != 0 && !ip.is_unspecified()).then(|| SocketAddr::new(ip, self.port))
    }

    /// A hold: sendonly or inactive (RFC 6337 §5.1), or the old RFC 2543
    /// `c=0.0.0.0` still sent by some phones (RFC 6337 §5.3, RFC 3264 §8.4).
    pub fn is_hold(&self) -> bool {
        matches!(self.direction, Direction::SendOnly | Direction::Inactive)
            || self.address.is_some_and(|ip| ip.is_unspecified())
    }

    /// The preferred audio format: the first one that is not telephone-event
    /// (it may be a codec we do not negotiate: check `codec`).
    pub fn audio_format(&self) -> Option<&PayloadFormat> {
        self.formats
            .iter()
            .find(|f| f.codec != Some(Codec::TelephoneEvent))
    }

    /// The telephone-event/8000 format, if offered.
    pub fn event_format(&self) -> Option<&PayloadFormat> {
        self.formats
            .iter()
            .find(|f| f.codec == Some(Codec::TelephoneEvent))
    }
}

/// One `<type>=<value>` line kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub kind: u8,
    pub value: String,
}

impl Line {
    pub fn new(kind: u8, value: impl Into<String>) -> Line {
        Line {
            kind,
            value: value.into(),
        }
    }

    /// For an `a=` line, its attribute name and value (`rtpmap`, `0 PCMU/8000`).
    pub fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (self.value.as_str(), None),
        })
    }
}

/// `o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`;
/// kept as text since sess-id is any numeric string (some exceed 64 bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OriginLine {
    pub username: String,
    pub session_id: String,
    pub session_version: String,
    pub nettype: String,
    pub addrtype: String,
    pub address: String,
}

/// `c=IN IP4|IP6 <address>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Connection {
    pub addrtype: String,
    /// As written, TTL and count suffixes included.
    pub address: String,
    /// The address as an IP literal, `None` for a host name.
    pub ip: Option<IpAddr>,
}

impl Connection {
    pub fn of(ip: IpAddr) -> Connection {
        Connection {
            addrtype: addrtype_of(ip).to_owned(),
            address: ip.to_string(),
            ip: Some(ip),
        }
    }
}

pub(crate) fn addrtype_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// One media description: its `m=` line, `c=` and the other lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Media {
    pub kind: String,
    pub port: u16,
    /// The `/<number of ports>` suffix, kept for round trips.
    pub port_count: Option<u16>,
    pub proto: String,
    pub formats: Vec<String>,
    pub connection: Option<Connection>,
    pub lines: Vec<Line>,
}

impl Media {
    /// Plain RTP audio, the only kind the relay carries: `RTP/SAVP` needs
    /// keys we do not have and is answered like any other stream we refuse.
    pub fn is_rtp_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio") && self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// The values of every `a=<name>:<value>` (`None` for a flag `a=<name>`).
    fn attributes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        self.lines
            .iter()
            .filter_map(Line::attribute)
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

/// A session description (RFC 4566), parsed by [`crate::sdp::parse`] or built
/// by [`crate::sdp::build_offer`] / [`crate::sdp::build_answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub(crate) origin: OriginLine,
    pub(crate) session_name: String,
    pub(crate) connection: Option<Connection>,
    /// Session-level lines other than v=, o=, s= and c=, in input order.
    pub(crate) lines: Vec<Line>,
    pub(crate) media: Vec<Media>,
}

impl Sdp {
    /// The first `m=audio` stream with proto `RTP/AVP`. Other protos
    /// (`RTP/SAVP`, ...) are not relayed: they count as media we refuse.
    pub fn audio(&self) -> Option<AudioStream> {
        self.media
            .iter()
            .find(|m| m.is_rtp_audio())
            .map(|m| self.audio_stream(m))
    }

    /// The index among the `m=` lines of the stream [`Sdp::audio`] reads,
    /// which an answer fills in while refusing the others.
    pub fn audio_index(&self) -> Option<usize> {
        self.media.iter().position(Media::is_rtp_audio)
    }

    /// The number of `m=` lines; an answer must have as many (RFC 3264 §6).
    pub fn media_count(&self) -> usize {
        self.media.len()
    }

    /// The `o=` session id, to tell a new session from a re-offer.
    pub fn session_id(&self) -> &str {
        &self.origin.session_id
    }

    /// The `o=` version: unchanged means the description is unchanged
    /// (RFC 3264 §8), so a re-INVITE with the same version needs no rewrite.
    pub fn session_version(&self) -> &str {
        &self.origin.session_version
    }

    /// Reads one media description as an audio stream. The parser has
    /// checked every rtpmap of plain-RTP audio lines, so nothing here fails.
    fn audio_stream(&self, media: &Media) -> AudioStream {
        let address = media
            .connection
            .as_ref()
            .or(self.connection.as_ref())
            .and_then(|c| c.ip);

        let rtpmaps: Vec<Rtpmap> = media
            .attributes("rtpmap")
            .flatten()
            .filter_map(Rtpmap::parse)
            .collect();
        let fmtp_of = |pt: u8| {
            media
                .attributes("fmtp")
                .flatten()
                .filter_map(|v| v.split_once(' '))
                .find(|(p, _)| p.trim().parse() == Ok(pt))
                .map(|(_, params)| params.trim().to_owned())
        };
        let formats = media
            .formats
            .iter()
            .filter_map(|f| f.parse::<u8>().ok())
            .map(|pt| {
                let mut format = match rtpmaps.iter().find(|r| r.pt == pt) {
                    Some(r) => PayloadFormat {
                        pt,
                        codec: Codec::from_rtpmap(&r.encoding, r.clock_rate, r.channels),
                        encoding: r.encoding.clone(),
                        clock_rate: r.clock_rate,
                        channels: r.channels,
                        fmtp: None,
                    },
                    None => PayloadFormat::static_type(pt).unwrap_or(PayloadFormat {
                        pt,
                        codec: None,
                        encoding: String::new(),
                        clock_rate: 0,
                        channels: None,
                        fmtp: None,
                    }),
                };
                format.fmtp = fmtp_of(pt);
                format
            })
            .collect();

        // The first direction flag wins; a media-level one overrides the
        // session-level one (RFC 4566 §6).
        let direction_in = |lines: &[Line]| {
            lines
                .iter()
                .filter_map(Line::attribute)
                .filter(|(_, value)| value.is_none())
                .find_map(|(name, _)| Direction::from_attribute(name))
        };
        let direction = direction_in(&media.lines)
            .or_else(|| direction_in(&self.lines))
            .unwrap_or_default();

        // Lenient: a malformed ptime or rtcp is dropped rather than failing
        // the call; both have safe defaults (20 ms, RTP port + 1).
        let ptime = media
            .attributes("ptime")
            .flatten()
            .find_map(|v| v.trim().parse::<u32>().ok());
        let rtcp = media
            .attributes("rtcp")
            .flatten()
            .find_map(|v| parse_rtcp(v, address));

        AudioStream {
            address,
            port: media.port,
            rtcp,
            formats,
            direction,
            ptime,
        }
    }
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rtpmap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

impl Rtpmap {
    pub fn parse(value: &str) -> Option<Rtpmap> {
        let (pt, rest) = value.trim().split_once(char::is_whitespace)?;
        let pt = pt.parse::<u8>().ok().filter(|pt| *pt <= 127)?;
        let mut parts = rest.trim().split('/');
        let encoding = parts.next().filter(|e| !e.is_empty())?;
        let clock_rate = parts.next()?.trim().parse::<u32>().ok()?;
        let channels = match parts.next() {
            Some(ch) => Some(ch.trim().parse::<u8>().ok()?),
            None => None,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Rtpmap {
            pt,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
        })
    }
}

/// `a=rtcp:<port> [IN IP4|IP6 <address>]` (RFC 3605 §2.1).
fn parse_rtcp(value: &str, default: Option<IpAddr>) -> Option<SocketAddr> {
    let mut fields = value.split_whitespace();
    let port = fields.next()?.parse::<u16>().ok()?;
    let ip = match (fields.next(), fields.next(), fields.next()) {
        (Some(_nettype), Some(_addrtype), Some(addr)) => addr.parse().ok()?,
        _ => default?,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_names_round_trip_case_insensitively() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent] {
            assert_eq!(codec.to_string().parse::<Codec>(), Ok(codec));
        }
        assert_eq!("pcmu".parse::<Codec>(), Ok(Codec::Pcmu));
        assert_eq!(
            "Telephone-Event".parse::<Codec>(),
            Ok(Codec::TelephoneEvent)
        );
        assert_eq!("G729".parse::<Codec>(), Err(UnknownCodec("G729".into())));
        assert_eq!(Codec::from_rtpmap("PCMA", 8000, Some(1)), Some(Codec::Pcma));
        assert_eq!(Codec::from_rtpmap("PCMA", 16000, None), None);
        assert_eq!(Codec::from_rtpmap("PCMU", 8000, Some(2)), None);
    }

    #[test]
    fn direction_answer_and_flow() {
        use Direction::*;
        let table = [
            (SendRecv, SendRecv, true, true),
            (SendOnly, RecvOnly, true, false),
            (RecvOnly, SendOnly, false, true),
            (Inactive, Inactive, false, false),
        ];
        for (offer, answer, sends, receives) in table {
            assert_eq!(offer.answer_to(), answer);
            assert_eq!(answer.answer_to(), offer);
            assert_eq!((offer.sends(), offer.receives()), (sends, receives));
            assert_eq!(Direction::from_attribute(offer.as_str()), Some(offer));
        }
        assert_eq!(Direction::default(), SendRecv);
    }

    #[test]
    fn rtpmap_values() {
        assert_eq!(
            Rtpmap::parse("96 opus/48000/2"),
            Some(Rtpmap {
                pt: 96,
                encoding: "opus".into(),
                clock_rate: 48000,
                channels: Some(2)
            })
        );
        for bad in [
            "",
            "96",
            "96 opus",
            "96 /8000",
            "128 PCMU/8000",
            "96 a/8000/1/1",
            "96 a/x",
        ] {
            assert_eq!(Rtpmap::parse(bad), None, "{bad:?}");
        }
        let te = PayloadFormat::of(Codec::TelephoneEvent, 101);
        assert_eq!(
            te.rtpmap_value().as_deref(),
            Some("101 telephone-event/8000")
        );
        assert_eq!(te.fmtp.as_deref(), Some("0-16"));
    }
}
