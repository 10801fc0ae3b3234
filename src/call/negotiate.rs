//! SDP rewriting between legs (RFC 3264 offer/answer through the relay).
//!
//! The switch is the answerer toward the offering leg and the offerer toward
//! the other: it forwards the offer with its own relay address and the codecs
//! both profiles allow, in the offerer's order and with the offerer's payload
//! type numbers, and answers the offerer with the formats the far side chose
//! (RFC 3264 §6.1: the answer uses the offer's numbers). No transcoding: a
//! leg pair always ends up on one audio codec.

use crate::media::{PayloadMap, G711};
use crate::sdp::{self, AudioStream, Codec, Direction, PayloadFormat, Sdp};

#[derive(Debug, Clone)]
pub struct Offer {
    pub sdp: Sdp,
    pub stream: AudioStream,
    /// What of it we can accept.
    pub formats: Vec<PayloadFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    Unreadable,
    NoCommonCodec,
}

/// What is offered on to the other leg.
#[derive(Debug, Clone)]
pub struct Forward {
    pub formats: Vec<PayloadFormat>,
    pub direction: Direction,
    pub ptime: Option<u32>,
}

impl Offer {
    pub fn to_forward(&self) -> Forward {
        Forward {
            formats: self.formats.clone(),
            direction: if self.stream.is_hold() && self.stream.direction == Direction::SendRecv {
                // RFC 2543 hold (c=0.0.0.0) is forwarded as what it means.
                Direction::SendOnly
            } else {
                self.stream.direction
            },
            ptime: self.stream.ptime,
        }
    }
}

/// Reads an offer and keeps the formats `allowed` on this profile.
pub fn read_offer(body: &[u8], allowed: &[Codec]) -> Result<Offer, OfferError> {
    let sdp = sdp::parse(body).map_err(|_| OfferError::Unreadable)?;
    let stream = sdp.audio().ok_or(OfferError::NoCommonCodec)?;
    if stream.port == 0 {
        return Err(OfferError::NoCommonCodec);
    }
    let formats =
        sdp::acceptable_formats(&stream, allowed).map_err(|_| OfferError::NoCommonCodec)?;
    Ok(Offer {
        sdp,
        stream,
        formats,
    })
}

/// Reads an answer (or an SDP in a provisional response).
pub fn read_answer(body: &[u8]) -> Option<(Sdp, AudioStream)> {
    let sdp = sdp::parse(body).ok()?;
    let stream = sdp.audio()?;
    Some((sdp, stream))
}

/// Keeps only formats whose codec `allowed` lists (another profile's codecs).
pub fn restrict(formats: &[PayloadFormat], allowed: &[Codec]) -> Vec<PayloadFormat> {
    formats
        .iter()
        .filter(|f| f.codec.is_some_and(|c| allowed.contains(&c)))
        .cloned()
        .collect()
}

/// Whether formats hold an audio codec (not only telephone-event).
pub fn has_audio(formats: &[PayloadFormat]) -> bool {
    formats
        .iter()
        .any(|f| matches!(f.codec, Some(Codec::Pcmu | Codec::Pcma)))
}

/// The relay's view of negotiated formats: the first audio codec and the
/// telephone-event type.
pub fn payload_map(formats: &[PayloadFormat]) -> Option<PayloadMap> {
    let audio = formats
        .iter()
        .find(|f| matches!(f.codec, Some(Codec::Pcmu | Codec::Pcma)))?;
    Some(PayloadMap {
        audio_pt: audio.pt,
        codec: match audio.codec {
            Some(Codec::Pcma) => G711::Pcma,
            _ => G711::Pcmu,
        },
        event_pt: formats
            .iter()
            .find(|f| f.codec == Some(Codec::TelephoneEvent))
            .map(|f| f.pt),
    })
}

/// The formats to offer a new leg so that it can only pick what `other`
/// already uses: its audio codec and, if it has one, telephone-event.
pub fn follow(other: &[PayloadFormat]) -> Vec<PayloadFormat> {
    let mut out: Vec<PayloadFormat> = other
        .iter()
        .filter(|f| matches!(f.codec, Some(Codec::Pcmu | Codec::Pcma)))
        .take(1)
        .cloned()
        .collect();
    out.extend(
        other
            .iter()
            .filter(|f| f.codec == Some(Codec::TelephoneEvent))
            .take(1)
            .cloned(),
    );
    out
}

/// What the relay should assume about a party from its SDP: whether it
/// will send to us, whether we may send to it.
pub fn flows(stream: &AudioStream) -> (bool, bool) {
    let zero = stream.address.is_some_and(|a| a.is_unspecified());
    let d = stream.direction;
    (
        d.sends() && stream.port != 0,
        d.receives() && !zero && stream.port != 0,
    )
}
