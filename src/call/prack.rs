//! RFC 3262 reliable provisional responses in the B2BUA, on both kinds of leg.
//!
//! Callee legs (UAC): INVITEs carry `Supported: 100rel` (or `Require:` with
//! `prack = "required"`, nothing with `"off"`), per the target peer's
//! setting or its profile's. A reliable 1xx is PRACKed within its early
//! dialog (§7.2) before the call layer looks at it; a retransmission of one
//! is dropped. Its SDP is the early answer (bridged to the caller as usual);
//! when our INVITE had no SDP (a late-offer caller) it is an offer, which the
//! switch answers in the PRACK with one codec the caller's profile allows
//! (`late_offer` then offers that codec to the caller in its 200).
//!
//! Caller legs (UAS): a caller that requires 100rel gets every 18x reliably;
//! one that supports it gets its 18x with SDP reliably (every 18x with
//! `"required"`). The dialog layer (`dialog::prack`) numbers, retransmits and
//! holds them, and holds our 2xx until the PRACK of a 1xx with SDP; what it
//! releases goes out here on the INVITE's server transaction. No PRACK in
//! 64*T1: the INVITE gets 504 and the call ends. A request requiring 100rel
//! on a profile or from a peer where it is `"off"` gets 420.
//!
//! It owns no state beyond the dialogs' and the late-offer stage. A caller's
//! final response that the dialog held and released here takes the INVITE
//! out of the CANCEL index (`LegTable::uas_answered`), as `respond_uas` does.

use std::time::Instant;

use super::settings::PrackMode;
use crate::dialog::{
    names_option, Body, DialogEvent, DialogId, Outgoing, ReliableCheck, TAG_100REL,
};
use crate::media::LegId;
use crate::net::{Destination, ProfileId, Source};
use crate::sdp;
use crate::sip::{self, make_header, MessageHeaders, Request, Response};
use crate::transaction::ServerTransactionId;

use super::command::{CallEvent, EndedBy, LegRole};
use super::late_offer::LateOffer;
use super::leg::Side;
use super::negotiate;
use super::outbound::Target;
use super::{sdp_body, CallLayer, SipOut};

impl CallLayer {
    /// `Supported` (and `Require`) for an INVITE toward `target`.
    pub(super) fn option_tags_for(&self, target: &Target) -> Vec<(String, String)> {
        match self.settings.prack_mode(target.profile, target.peer) {
            PrackMode::Off => vec![("Supported".into(), "replaces, timer".into())],
            PrackMode::Supported => vec![("Supported".into(), "100rel, replaces, timer".into())],
            PrackMode::Required => vec![
                ("Supported".into(), "100rel, replaces, timer".into()),
                ("Require".into(), TAG_100REL.into()),
            ],
        }
    }

    /// 420 for an INVITE requiring 100rel where it is off (RFC 3261 §8.2.2.3;
    /// other unknown extensions are refused by the endpoint for every request).
    pub(super) fn refuse_unsupported(
        &self,
        source: &Source,
        request: &Request,
    ) -> Option<Response> {
        if self
            .settings
            .prack_mode(source.profile, self.settings.peer_of(source))
            != PrackMode::Off
            || !names_option(request, "Require", TAG_100REL)
        {
            return None;
        }
        let mut r = crate::sip::answer(request, 420, None);
        r.headers
            .push(make_header("Unsupported", TAG_100REL.into()));
        Some(r)
    }

    /// Whether a 1xx to the caller's INVITE on `leg` goes reliably.
    fn wants_reliable(&self, leg: LegId, response: &Response) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return false;
        };
        let Side::Uas { invite, source, .. } = &l.side else {
            return false;
        };
        if !(101..200).contains(&response.status_code.code()) {
            return false;
        }
        if names_option(invite, "Require", TAG_100REL) {
            return true;
        }
        match self
            .settings
            .prack_mode(source.profile, self.settings.peer_of(source))
        {
            PrackMode::Off => false,
            mode if names_option(invite, "Supported", TAG_100REL) => {
                mode == PrackMode::Required || sdp_body(response, &response.body).is_some()
            }
            _ => false,
        }
    }

    /// Completes a response to the caller's INVITE through its dialog:
    /// reliably for a 1xx that must be, held for a 2xx waiting for a PRACK.
    /// `None`: nothing goes out now.
    pub(super) fn uas_response(
        &mut self,
        now: Instant,
        leg: LegId,
        dialog: Option<&DialogId>,
        invite: &Request,
        mut response: Response,
        destination: Destination,
    ) -> Option<Response> {
        let Some(d) = dialog else {
            return Some(response);
        };
        let code = response.status_code.code();
        if (200..300).contains(&code) && response.header_value("Supported").is_none() {
            let tags = match self.table.leg(leg).map(|l| &l.side) {
                Some(Side::Uas { source, .. })
                    if self
                        .settings
                        .prack_mode(source.profile, self.settings.peer_of(source))
                        == PrackMode::Off =>
                {
                    "replaces, timer"
                }
                _ => "100rel, replaces, timer",
            };
            response.headers.push(make_header("Supported", tags.into()));
        }
        let reliable = self.wants_reliable(leg, &response);
        let outgoing = self.dialogs.with_dialog(d, |dl| {
            if reliable {
                dl.send_reliable(now, invite, response, destination)
            } else if code >= 200 {
                dl.send_final(now, invite, response, destination)
            } else {
                Outgoing::Now(dl.prepare_response(now, invite, response, destination))
            }
        });
        match outgoing {
            Some(Outgoing::Now(r)) => Some(r),
            Some(Outgoing::Held) => None,
            None => Some(crate::sip::answer(invite, 500, None)),
        }
    }

    /// A PRACK the dialog accepted (its RAck named our reliable 1xx): 200.
    /// The responses it released leave when the dialog's events are drained.
    pub(super) fn prack_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
    ) {
        if sdp_body(request, &request.body).is_some() {
            // Our reliable 1xx never carry an offer, so this would be a new
            // offer in a PRACK: not taken up (the 200 carries no answer).
            tracing::debug!(%leg, "SDP in a PRACK ignored");
        }
        let ok = sip::response_to(request, 200, None);
        self.answer_in_dialog(now, out, leg, profile, tx, request, ok);
    }

    /// The dialog layer's RFC 3262 events.
    pub(super) fn prack_dialog_event(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        e: DialogEvent,
    ) {
        match e {
            DialogEvent::Released { id, response } => {
                let Some(leg) = self.table.leg_of_dialog(&id.call_id, &id.local_tag) else {
                    return;
                };
                let Some(l) = self.table.leg(leg) else {
                    return;
                };
                let profile = l.profile;
                let Side::Uas { tx, .. } = &l.side else {
                    return;
                };
                let tx = *tx;
                if response.status_code.code() >= 200 {
                    self.table.uas_answered(leg);
                }
                out.respond(now, profile, tx, *response);
            }
            DialogEvent::PrackTimeout(id) => {
                let Some(leg) = self.table.leg_of_dialog(&id.call_id, &id.local_tag) else {
                    return;
                };
                let Some((call, role)) = self.table.leg(leg).map(|l| (l.call.clone(), l.role))
                else {
                    return;
                };
                tracing::info!(%leg, "no PRACK for a reliable provisional response");
                self.outbox.event(CallEvent::LegLost {
                    call: call.clone(),
                    leg: role,
                    reason: "no-prack",
                });
                // The caller's INVITE gets the 5xx §3 asks for.
                self.end_call(now, out, &call, EndedBy::Switch, "no-prack", Some(504));
            }
            _ => {}
        }
    }

    /// A 1xx to one of our INVITEs, before the call layer acts on it: a
    /// reliable one is PRACKed (§4, §7.2). `false`: a retransmission or one
    /// out of order, to be ignored.
    pub(super) fn prack_provisional(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        r: &Response,
    ) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return true;
        };
        if l.ending || l.is_answered() {
            return true;
        }
        let destination = l.destination;
        let Some(id) = DialogId::of_incoming_response(r) else {
            return true;
        };
        let check = self
            .dialogs
            .with_dialog(&id, |d| d.reliable_provisional(r))
            .unwrap_or(ReliableCheck::Unreliable);
        let (rseq, cseq) = match check {
            ReliableCheck::Unreliable => return true,
            ReliableCheck::Retransmission | ReliableCheck::OutOfOrder => return false,
            ReliableCheck::Prack { rseq, cseq } => (rseq, cseq),
        };
        let body = self.answer_early_offer(leg, r);
        let via = self.sent_by(out, destination.profile, destination.transport);
        match self
            .dialogs
            .with_dialog(&id, |d| d.create_prack(&via, rseq, cseq, body))
        {
            Some(Ok(prack)) => {
                // Its answer needs no action: a 481 or 408 ends the early
                // dialog in the dialog layer, and the INVITE goes on.
                let _ = out.send_request(now, prack, destination);
            }
            Some(Err(e)) => tracing::debug!(%leg, error = %e, "PRACK not sent"),
            None => {}
        }
        true
    }

    /// A late-offer call's callee offered in a reliable 1xx: the PRACK
    /// answers with the first audio codec (and telephone-event) both
    /// profiles allow; the caller will be offered just that in our 200.
    fn answer_early_offer(&mut self, leg: LegId, r: &Response) -> Option<Body> {
        let body = sdp_body(r, &r.body)?;
        let l = self.table.leg(leg)?;
        if l.role != LegRole::B {
            return None;
        }
        let call = l.call.clone();
        let c = self.table.call(&call)?;
        let answered = match &c.late_offer {
            Some(LateOffer::Awaiting) => Vec::new(),
            Some(LateOffer::EarlyAnswered { legs }) if !legs.contains(&leg) => legs.clone(),
            _ => return None,
        };
        let a_codecs = self
            .table
            .leg(c.a)
            .and_then(|al| self.settings.profile(al.profile))
            .map(|p| p.codecs.clone())?;
        let b_codecs = self.settings.profile(l.profile)?.codecs.clone();
        let offer = match negotiate::read_offer(&body, &b_codecs) {
            Ok(o) => o,
            Err(e) => {
                tracing::info!(%call, ?e, "late offer: the callee's early offer is unusable");
                return None;
            }
        };
        let common = negotiate::restrict(&offer.formats, &a_codecs);
        let mut formats: Vec<sdp::PayloadFormat> = common
            .iter()
            .find(|f| f.codec.is_some_and(sdp::Codec::is_audio))
            .cloned()
            .into_iter()
            .collect();
        if formats.is_empty() {
            tracing::info!(%call, "late offer: no codec of the callee's early offer suits the caller");
            return None;
        }
        formats.extend(
            common
                .iter()
                .find(|f| f.codec == Some(sdp::Codec::TelephoneEvent))
                .cloned(),
        );
        let bl = self.table.leg_mut(leg)?;
        let bytes = sdp::build_answer(
            &mut bl.media.origin,
            &offer.sdp,
            bl.media.local,
            &formats,
            offer.stream.direction.answer_to(),
            offer.stream.ptime,
        )
        .to_bytes();
        bl.media.last_sent = Some(bytes.clone());
        self.apply_remote(leg, offer.stream.clone(), Some(formats));
        let mut legs = answered;
        legs.push(leg);
        if let Some(c) = self.table.call_mut(&call) {
            c.late_offer = Some(LateOffer::EarlyAnswered { legs });
        }
        Some(Body {
            content_type: "application/sdp".into(),
            bytes,
        })
    }
}
