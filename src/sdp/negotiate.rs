//! Choosing formats for offers and answers (RFC 3264 §5, §6.1) without
//! transcoding: whatever audio codec one leg ends up on, the other must too.
//!
//! The B2BUA is the answerer on the leg an offer came in on and the offerer on
//! the other. It offers the far side [`acceptable_formats`] of the incoming
//! offer, and when the far side answers, answers the first side with
//! [`answer_formats`]: the far side's choice, in the incoming offer's payload
//! type numbers. Codecs are matched by name and rate, never by PT number:
//! dynamic numbers (telephone-event 96 on one leg, 101 on the other) are
//! per-leg, and the relay rewrites the PT of each packet it carries.

use super::model::{AudioStream, Codec, PayloadFormat};

/// No audio codec is common to the offer and what we may use (the B2BUA
/// answers 488 Not Acceptable Here, RFC 3261 §21.4.26).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no common audio codec")]
pub struct NoCommonCodec;

/// The formats of `offer` we can accept, in the offer's (preference) order:
/// the formats whose codec is in `allowed`, keeping their PT numbers and
/// fmtp. Only the first telephone-event/8000 is kept, since two would leave
/// the far side guessing which one DTMF arrives in.
pub fn acceptable_formats(
    offer: &AudioStream,
    allowed: &[Codec],
) -> Result<Vec<PayloadFormat>, NoCommonCodec> {
    let mut out: Vec<PayloadFormat> = Vec::new();
    for format in &offer.formats {
        let Some(codec) = format.codec.filter(|c| allowed.contains(c)) else {
            continue;
        };
        if !codec.is_audio() && out.iter().any(|f| f.codec == Some(codec)) {
            continue;
        }
        out.push(format.clone());
    }
    if out.iter().any(is_audio) {
        Ok(out)
    } else {
        Err(NoCommonCodec)
    }
}

/// The formats to answer `offer` with, given the formats the far side
/// answered (`chosen`): every audio codec of `chosen` that `offer` has, in
/// `chosen` order, then telephone-event if both have it. Each takes the
/// offer's PT and fmtp, since an answer must use the offerer's numbers
/// (RFC 3264 §6.1). All common audio codecs are kept, not only the first,
/// because the far side may send any codec of its answer and this side must
/// then be ready to receive it.
pub fn answer_formats(
    offer: &AudioStream,
    chosen: &[PayloadFormat],
) -> Result<Vec<PayloadFormat>, NoCommonCodec> {
    let in_offer = |codec: Codec| offer.formats.iter().find(|f| f.codec == Some(codec));
    let mut out: Vec<PayloadFormat> = Vec::new();
    for codec in chosen
        .iter()
        .filter_map(|f| f.codec)
        .filter(|c| c.is_audio())
    {
        if let Some(format) = in_offer(codec) {
            if !out.iter().any(|f| f.codec == Some(codec)) {
                out.push(format.clone());
            }
        }
    }
    if out.is_empty() {
        return Err(NoCommonCodec);
    }
    let chose_events = chosen
        .iter()
        .any(|f| f.codec == Some(Codec::TelephoneEvent));
    if let Some(events) = in_offer(Codec::TelephoneEvent).filter(|_| chose_events) {
        out.push(events.clone());
    }
    Ok(out)
}

/// The formats the switch offers when it originates a leg itself, in
/// `allowed` order: PCMU 0, PCMA 8, telephone-event 101 with events 0-16
/// (101 is what most phones and Asterisk use, so fewer PT rewrites).
pub fn default_formats(allowed: &[Codec]) -> Vec<PayloadFormat> {
    let mut out: Vec<PayloadFormat> = Vec::new();
    for &codec in allowed {
        if out.iter().any(|f| f.codec == Some(codec)) {
            continue;
        }
        out.push(PayloadFormat::of(codec, codec.static_pt().unwrap_or(101)));
    }
    out
}

fn is_audio(format: &PayloadFormat) -> bool {
    format.codec.is_some_and(Codec::is_audio)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::fixtures::*;
    use crate::sdp::parse;

    const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::TelephoneEvent];

    fn audio(body: &str) -> AudioStream {
        parse(body.as_bytes()).unwrap().audio().unwrap()
    }

    fn pts(formats: &[PayloadFormat]) -> Vec<u8> {
        formats.iter().map(|f| f.pt).collect()
    }

    #[test]
    fn acceptable_keeps_offer_order_pt_and_fmtp() {
        let got = acceptable_formats(&audio(LINPHONE), &ALL).unwrap();
        // 0, 8, then the telephone-event/8000 (100), not the /48000 (101).
        assert_eq!(pts(&got), [0, 8, 100]);
        let cisco = acceptable_formats(&audio(CISCO), &ALL).unwrap();
        assert_eq!(pts(&cisco), [8, 101]);
        assert_eq!(cisco[1].fmtp.as_deref(), Some("0-15"));
    }

    #[test]
    fn acceptable_filters_by_allowed() {
        let only_pcma = acceptable_formats(&audio(ASTERISK), &[Codec::Pcma]).unwrap();
        assert_eq!(pts(&only_pcma), [8], "telephone-event not allowed either");
        let no_events = acceptable_formats(&audio(ASTERISK), &[Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(pts(&no_events), [0, 8]);
    }

    #[test]
    fn only_pcma_offered() {
        let body = ASTERISK.replace("RTP/AVP 0 8 101", "RTP/AVP 8 101");
        assert_eq!(
            pts(&acceptable_formats(&audio(&body), &ALL).unwrap()),
            [8, 101]
        );
    }

    #[test]
    fn only_g729_offered_is_no_common_codec() {
        let body = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
                    m=audio 4000 RTP/AVP 18 101\r\na=rtpmap:18 G729/8000\r\n\
                    a=rtpmap:101 telephone-event/8000\r\n";
        assert_eq!(acceptable_formats(&audio(body), &ALL), Err(NoCommonCodec));
        // Allowing nothing but events is no codec either.
        assert_eq!(
            acceptable_formats(&audio(ASTERISK), &[Codec::TelephoneEvent]),
            Err(NoCommonCodec)
        );
    }

    #[test]
    fn answer_maps_far_side_choice_to_offer_pts() {
        // Leg A offered PCMU, PCMA and events as 96; leg B answered PCMA and
        // events as 101. A's answer uses A's numbers: 8 and 96 with A's fmtp.
        let offer = audio(VIDEO_THEN_AUDIO); // 8, 96 = telephone-event 0-15
        let chosen = [
            PayloadFormat::of(Codec::Pcma, 8),
            PayloadFormat::of(Codec::TelephoneEvent, 101),
        ];
        let got = answer_formats(&offer, &chosen).unwrap();
        assert_eq!(pts(&got), [8, 96]);
        assert_eq!(got[1].fmtp.as_deref(), Some("0-15"));
    }

    #[test]
    fn answer_events_only_if_both_have_them() {
        let chosen = [PayloadFormat::of(Codec::Pcmu, 0)];
        assert_eq!(
            pts(&answer_formats(&audio(ASTERISK), &chosen).unwrap()),
            [0]
        );
        let chosen = [
            PayloadFormat::of(Codec::Pcmu, 0),
            PayloadFormat::of(Codec::TelephoneEvent, 101),
        ];
        assert_eq!(pts(&answer_formats(&audio(SIPP), &chosen).unwrap()), [0]);
    }

    #[test]
    fn answer_follows_far_side_order_and_needs_a_common_codec() {
        let chosen = [
            PayloadFormat::of(Codec::Pcma, 8),
            PayloadFormat::of(Codec::Pcmu, 0),
        ];
        assert_eq!(
            pts(&answer_formats(&audio(ASTERISK), &chosen).unwrap()),
            [8, 0]
        );
        let chosen = [PayloadFormat::of(Codec::Pcma, 8)];
        assert_eq!(answer_formats(&audio(SIPP), &chosen), Err(NoCommonCodec));
        assert_eq!(answer_formats(&audio(SIPP), &[]), Err(NoCommonCodec));
    }

    #[test]
    fn default_formats_follow_allowed_order() {
        let got = default_formats(&[Codec::Pcma, Codec::TelephoneEvent, Codec::Pcmu, Codec::Pcma]);
        assert_eq!(pts(&got), [8, 101, 0]);
        assert_eq!(got[1].fmtp.as_deref(), Some("0-16"));
        assert!(default_formats(&[]).is_empty());
    }
}
