//! Late offer (RFC 3261 §13.2.1, RFC 3264 §4): a caller's INVITE without SDP.
//!
//! The callee legs are invited without SDP too, so the callee's 2xx carries
//! the offer. The switch rewrites that offer onto its relay (only the codecs
//! both profiles allow) and offers it to the caller in its 200; the caller's
//! ACK carries the answer, which the switch rewrites into the ACK it owes
//! the callee. The callee's ACK therefore waits for the caller's: meanwhile
//! the callee retransmits its 2xx (§13.3.1.4, for up to 64*T1), which the
//! dialog layer absorbs until our ACK exists and then answers with it.
//!
//! A callee that offers in a reliable 1xx (RFC 3262) is answered by the
//! switch in its PRACK (`prack`); its 2xx then needs no answer: it is ACKed
//! at once and the caller is offered the codec agreed with it.
//!
//! An ACK without an answer, or with one the callee's offer cannot take,
//! ends the call with BYE on both legs; so does a caller that never ACKs
//! (the dialog's ACK timeout). The callee is ACKed first in every case, with
//! an answer accepting its own offer, since a 2xx with an offer is owed an
//! ACK with an answer before the BYE (§13.2.2.4).

use std::time::Instant;

use crate::dialog::{Body, DialogId};
use crate::media::LegId;
use crate::sdp::{self, Direction, PayloadFormat};
use crate::sip::{Request, Response};

use super::command::{CallId, EndedBy, LegRole};
use super::negotiate::{self, Offer};
use super::summary::{CallState, LegState};
use super::{sdp_body, with_sdp, CallLayer, SipOut};

/// Where a late-offer call stands.
#[derive(Debug)]
pub enum LateOffer {
    /// The callee legs were invited without SDP; the first 2xx brings the offer.
    Awaiting,
    /// The callee's offer went to the caller in our 200; the callee's ACK
    /// waits for the caller's answer.
    Offered {
        b: LegId,
        dialog: DialogId,
        offer: Box<Offer>,
    },
    /// Callee legs offered in a reliable 1xx and the switch answered in its
    /// PRACK (RFC 3262, `prack`): their 2xx carries no new offer.
    EarlyAnswered { legs: Vec<LegId> },
    /// Such a callee answered (and was ACKed); our offer of its codec went
    /// to the caller in our 200, whose ACK brings the answer.
    OfferedAfterEarly { b: LegId },
}

impl CallLayer {
    /// Whether `leg` is a callee leg whose 2xx carries the offer.
    pub(super) fn awaits_late_offer(&self, leg: LegId) -> bool {
        self.table.leg(leg).is_some_and(|l| {
            l.role == LegRole::B
                && self
                    .table
                    .call(&l.call)
                    .is_some_and(|c| matches!(c.late_offer, Some(LateOffer::Awaiting)))
        })
    }

    /// Whether `leg`'s offer was answered in a PRACK (its 2xx SDP, if any,
    /// is no answer to read: RFC 3261 §13.2.1).
    pub(super) fn early_offer_answered(&self, leg: LegId) -> bool {
        self.table.leg(leg).is_some_and(|l| {
            self.table.call(&l.call).is_some_and(
                |c| matches!(&c.late_offer, Some(LateOffer::EarlyAnswered { legs }) if legs.contains(&leg)),
            )
        })
    }

    /// A callee whose early offer the switch answered has answered (and is
    /// ACKed): offer its codec to the caller in our 200. False when the
    /// call is not in that case.
    pub(super) fn late_offer_answered_early(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        b: LegId,
    ) -> bool {
        if !self.early_offer_answered(b) {
            return false;
        }
        let Some(a) = self.table.call(call).map(|c| c.a) else {
            return false;
        };
        let Some((formats, direction)) = self.table.leg(b).map(|l| {
            let direction = l.media.remote.as_ref().map(|s| s.direction);
            (
                l.media.formats.clone(),
                direction.unwrap_or(Direction::SendRecv),
            )
        }) else {
            return false;
        };
        if let Some(c) = self.table.call_mut(call) {
            c.late_offer = Some(LateOffer::OfferedAfterEarly { b });
            c.state = CallState::Connecting;
        }
        let Some(al) = self.table.leg_mut(a) else {
            return true;
        };
        // The caller is offered what the callee offered (its direction too).
        let bytes = sdp::build_offer(
            &mut al.media.origin,
            al.media.local,
            &formats,
            direction,
            None,
        )
        .to_bytes();
        al.media.formats = formats;
        al.media.last_sent = Some(bytes.clone());
        al.state = LegState::Answered;
        if let Some(mut ok) = self.caller_response(a, 200) {
            self.session_for_uas_answer(now, a, &mut ok);
            let ok = with_sdp(ok, Some(&bytes));
            self.respond_uas(now, out, a, ok);
        }
        self.outbox.mark(call);
        true
    }

    /// The caller's ACK answers our offer of the callee's codec (the callee
    /// was answered in a PRACK): bridge, or end the call when unusable.
    fn late_answer_after_early(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        a: LegId,
        b: LegId,
        ack: &Request,
    ) {
        let offered = self
            .table
            .leg(a)
            .map(|l| l.media.formats.clone())
            .unwrap_or_default();
        let answer = sdp_body(ack, &ack.body).and_then(|body| negotiate::read_answer(&body));
        let usable = answer.filter(|(_, s)| {
            s.port != 0
                && s.formats.iter().any(|f| {
                    f.codec.is_some_and(sdp::Codec::is_audio)
                        && offered.iter().any(|o| o.codec == f.codec)
                })
        });
        let Some((_, stream)) = usable else {
            tracing::info!(%call, "late offer: the caller's ACK has no usable answer; ending the call");
            return self.end_call(now, out, call, EndedBy::Switch, "bad-answer-sdp", None);
        };
        self.apply_remote(a, stream, None);
        self.bridge(now, call, a, b);
    }

    /// The callee answered a late-offer call (it is the winning fork, not
    /// ACKed yet): offer its offer to the caller in our 200.
    pub(super) fn late_offer_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        b: LegId,
        dialog: DialogId,
        r: &Response,
    ) {
        let Some(a) = self.table.call(call).map(|c| c.a) else {
            return;
        };
        let (Some(bl), Some(al)) = (self.table.leg(b), self.table.leg(a)) else {
            return;
        };
        let codecs = |profile| {
            self.settings
                .profile(profile)
                .map(|p| p.codecs.as_slice())
                .unwrap_or_default()
        };
        let (b_codecs, a_codecs) = (codecs(bl.profile), codecs(al.profile));
        let offer = sdp_body(r, &r.body).map(|body| negotiate::read_offer(&body, b_codecs));
        let offer = match offer {
            Some(Ok(o)) => o,
            failed => {
                // Nothing to answer with: ACK without an answer, then BYE.
                let cause = match failed {
                    None => "no-offer-sdp",
                    Some(Err(negotiate::OfferError::NoCommonCodec)) => "no-common-codec",
                    _ => "bad-offer-sdp",
                };
                tracing::info!(%call, cause, "late offer: the callee's 2xx has no usable offer");
                let destination = bl.destination;
                self.release_dialog(now, out, dialog, destination);
                self.drop_leg(b);
                return self.end_call(now, out, call, EndedBy::Switch, cause, Some(488));
            }
        };
        let forward = offer.to_forward();
        let formats = negotiate::restrict(&forward.formats, a_codecs);
        if let Some(c) = self.table.call_mut(call) {
            c.late_offer = Some(LateOffer::Offered {
                b,
                dialog,
                offer: Box::new(offer),
            });
            c.state = CallState::Connecting;
        }
        if !negotiate::has_audio(&formats) {
            tracing::info!(%call, "late offer: no codec both profiles allow");
            // Ending the call ACKs the callee's offer before its BYE.
            return self.end_call(
                now,
                out,
                call,
                EndedBy::Switch,
                "no-common-codec",
                Some(488),
            );
        }
        let Some(al) = self.table.leg_mut(a) else {
            return;
        };
        let bytes = sdp::build_offer(
            &mut al.media.origin,
            al.media.local,
            &formats,
            forward.direction,
            forward.ptime,
        )
        .to_bytes();
        al.media.formats = formats;
        al.media.last_sent = Some(bytes.clone());
        al.state = LegState::Answered;
        if let Some(mut ok) = self.caller_response(a, 200) {
            self.session_for_uas_answer(now, a, &mut ok);
            let ok = with_sdp(ok, Some(&bytes));
            self.respond_uas(now, out, a, ok);
        }
        self.outbox.mark(call);
    }

    /// The caller's ACK for our 200: on a late-offer call it carries the
    /// answer, rewritten into our ACK to the callee; then the legs are bridged.
    pub(super) fn late_answer(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        a: LegId,
        ack: &Request,
    ) {
        let Some(call) = self.table.leg(a).map(|l| l.call.clone()) else {
            return;
        };
        let Some(c) = self.table.call_mut(&call).filter(|c| c.a == a) else {
            return;
        };
        if let Some(LateOffer::OfferedAfterEarly { b }) = c.late_offer {
            c.late_offer = None;
            return self.late_answer_after_early(now, out, &call, a, b, ack);
        }
        let Some(LateOffer::Offered { b, dialog, offer }) = c.late_offer.take() else {
            return;
        };
        let answer = sdp_body(ack, &ack.body).and_then(|body| negotiate::read_answer(&body));
        let usable = answer
            .as_ref()
            .filter(|(_, s)| s.port != 0)
            .and_then(|(_, s)| sdp::answer_formats(&offer.stream, &s.formats).ok());
        let (Some((_, stream)), Some(b_formats)) = (answer, usable) else {
            let cause = if ack.body.is_empty() {
                "no-answer-sdp"
            } else {
                "bad-answer-sdp"
            };
            tracing::info!(%call, cause, "late offer: the caller's ACK has no usable answer; ending the call");
            let direction = offer.stream.direction.answer_to();
            let formats = offer.formats.clone();
            self.ack_callee(out, b, &dialog, &offer, &formats, direction);
            return self.end_call(now, out, &call, EndedBy::Switch, cause, None);
        };
        self.apply_remote(a, stream.clone(), None);
        self.ack_callee(out, b, &dialog, &offer, &b_formats, stream.direction);
        self.apply_remote(b, offer.stream.clone(), Some(b_formats));
        self.bridge(now, &call, a, b);
    }

    /// The call ends while the callee's 2xx waits for our ACK: ACK it, with
    /// an answer accepting its own offer, so that its BYE may follow.
    pub(super) fn settle_late_offer(&mut self, out: &mut dyn SipOut, call: &CallId) {
        let Some(c) = self.table.call_mut(call) else {
            return;
        };
        if let Some(LateOffer::Offered { b, dialog, offer }) = c.late_offer.take() {
            let direction = offer.stream.direction.answer_to();
            let formats = offer.formats.clone();
            self.ack_callee(out, b, &dialog, &offer, &formats, direction);
        }
    }

    /// Sends the callee our ACK with an answer to its offer.
    fn ack_callee(
        &mut self,
        out: &mut dyn SipOut,
        b: LegId,
        dialog: &DialogId,
        offer: &Offer,
        formats: &[PayloadFormat],
        direction: Direction,
    ) {
        let Some(bl) = self.table.leg_mut(b) else {
            return;
        };
        let bytes = sdp::build_answer(
            &mut bl.media.origin,
            &offer.sdp,
            bl.media.local,
            formats,
            direction,
            offer.stream.ptime,
        )
        .to_bytes();
        bl.media.last_sent = Some(bytes.clone());
        let destination = bl.destination;
        let via = self.sent_by(out, destination.profile, destination.transport);
        let body = Body {
            content_type: "application/sdp".into(),
            bytes,
        };
        match self.dialogs.create_ack(dialog, &via, Some(body)) {
            Ok(ack) => out.send_stateless(destination, ack.into()),
            Err(e) => tracing::debug!(%b, error = %e, "ACK for the callee's offer not sent"),
        }
    }
}
