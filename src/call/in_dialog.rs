//! Requests within a leg's dialog: BYE ends the call, re-INVITE and UPDATE
//! carry new SDP (hold and retrieve, RFC 3264 §8 and RFC 6337) and refresh
//! session timers, INFO carries DTMF (application/dtmf-relay), REFER starts
//! a transfer, ACK completes our 2xx; and the answers to re-INVITEs the
//! switch sent (RFC 3261 §12-§15, RFC 3264 §8, RFC 6337; INFO in the legacy
//! usage of RFC 6086 §2).
//!
//! Owns no state: it finds the leg through the table's dialog index and
//! changes that leg's media and hold flags. Requests within a dialog leave
//! only through `send_in_dialog` (which records what they are for in
//! `pending`), answers only through `answer_in_dialog` (through the dialog,
//! so that tags and Contact are right).

use std::time::Instant;

use crate::dialog::{Body, RequestOutcome};
use crate::media::{LegId, MediaCommand};
use crate::net::{ProfileId, Source};
use crate::sdp;
use crate::sip::{self, make_header, MessageHeaders, Method, Request, Response};
use crate::transaction::ServerTransactionId;

use super::command::{CallEvent, EndedBy};
use super::negotiate;
use super::{sdp_body, with_sdp, CallLayer, Pending, ReInvite, SipOut};

impl CallLayer {
    /// A request with a To tag. `false` when no leg of ours owns it (the
    /// endpoint answers 481).
    pub fn handle_in_dialog(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        source: Source,
        tx: ServerTransactionId,
        request: Request,
    ) -> bool {
        let Some(leg) = self.leg_of_request(&request) else {
            return false;
        };
        let profile = source.profile;
        match self.dialogs.handle_request(now, &request) {
            RequestOutcome::Accepted(_) => {}
            RequestOutcome::Reject(r) => {
                out.respond(now, profile, tx, *r);
                return true;
            }
            RequestOutcome::Drop | RequestOutcome::OutOfDialog => return true,
        }
        match request.method {
            Method::Bye => self.bye_received(now, out, leg, profile, tx, &request),
            Method::Invite => self.reinvite_received(now, out, leg, profile, tx, request),
            Method::Update => self.update_received(now, out, leg, profile, tx, &request),
            Method::Info => self.info_received(now, out, leg, profile, tx, &request),
            Method::Refer => self.refer_received(now, out, leg, profile, tx, request),
            Method::PRack => self.prack_received(now, out, leg, profile, tx, &request),
            Method::Notify | Method::Options => {
                let ok = sip::response_to(&request, 200, None);
                self.answer_in_dialog(now, out, leg, profile, tx, &request, ok);
            }
            _ => {
                let r = crate::sip::method_not_allowed(&request);
                self.answer_in_dialog(now, out, leg, profile, tx, &request, r);
            }
        }
        self.drain_dialogs(now, out);
        self.publish_dirty();
        true
    }

    /// The ACK for a 2xx of ours (RFC 6026: passed up by the transaction layer).
    pub fn handle_ack(&mut self, now: Instant, out: &mut dyn SipOut, ack: Request) {
        if let Some(leg) = self.leg_of_request(&ack) {
            let _ = self.dialogs.handle_request(now, &ack);
            // A late-offer caller's ACK carries its answer.
            self.late_answer(now, out, leg, &ack);
            self.drain_dialogs(now, out);
            self.publish_dirty();
        }
    }

    fn bye_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
    ) {
        let ok = sip::response_to(request, 200, None);
        self.answer_in_dialog(now, out, leg, profile, tx, request, ok);
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        l.ending = true;
        let (call, role) = (l.call.clone(), l.role);
        // A supervisor leaving leaves the call as it was before it came.
        if self.supervisor_gone(&call, leg) {
            self.drop_leg(leg);
            return;
        }
        // A party of a consultation or conference may leave the others talking.
        if self.consult_party_gone(now, out, &call, leg) {
            return;
        }
        // The transferor hanging up after a transfer ends only its own leg.
        if self.transferor_leaves(&call, leg) {
            return;
        }
        self.end_call(now, out, &call, EndedBy::from(role), "hangup", None);
    }

    fn reinvite_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: Request,
    ) {
        self.session_refreshed(now, leg, &request);
        let Some(body) = sdp_body(&request, &request.body) else {
            // Offerless re-INVITE: our 200 carries the last SDP we sent (our
            // offer); the ACK's answer changes nothing we need.
            let last = self.table.leg(leg).and_then(|l| l.media.last_sent.clone());
            let ok = with_sdp(sip::response_to(&request, 200, None), last.as_deref());
            return self.answer_in_dialog(now, out, leg, profile, tx, &request, ok);
        };
        let codecs = self.leg_codecs(leg);
        let offer = match negotiate::read_offer(&body, &codecs) {
            Ok(o) => o,
            Err(e) => {
                let code = if e == negotiate::OfferError::Unreadable {
                    400
                } else {
                    488
                };
                let r = sip::response_to(&request, code, None);
                return self.answer_in_dialog(now, out, leg, profile, tx, &request, r);
            }
        };
        self.phone_hold_state(leg, offer.stream.is_hold());
        let partner = self.table.partner(leg).filter(|p| {
            self.table
                .leg(*p)
                .is_some_and(|pl| pl.is_answered() && !pl.ending)
                && self
                    .table
                    .leg(*p)
                    .and_then(|pl| pl.dialog.as_ref())
                    .and_then(|d| self.dialogs.get(d))
                    .is_some_and(|d| !d.invite_in_progress())
        });
        match partner {
            Some(p) if self.table.leg(p).is_some_and(|pl| !pl.held_by_switch) => {
                // Relay: offer the partner the same change with its own numbering.
                let forward = offer.to_forward();
                let pformats = self
                    .table
                    .leg(p)
                    .map(|pl| follow_offer(&pl.media.formats, &forward.formats))
                    .unwrap_or_default();
                if !negotiate::has_audio(&pformats) {
                    let r = sip::response_to(&request, 488, None);
                    return self.answer_in_dialog(now, out, leg, profile, tx, &request, r);
                }
                let Some(pl) = self.table.leg_mut(p) else {
                    return; // `partner` found it in `legs` just above
                };
                let bytes = sdp::build_offer(
                    &mut pl.media.origin,
                    pl.media.local,
                    &pformats,
                    forward.direction,
                    forward.ptime,
                )
                .to_bytes();
                pl.media.last_sent = Some(bytes.clone());
                if let Some(l) = self.table.leg_mut(leg) {
                    l.media.remote = Some(offer.stream.clone());
                }
                let body = Body {
                    content_type: "application/sdp".into(),
                    bytes,
                };
                let relayed = self.send_in_dialog(
                    now,
                    out,
                    p,
                    Method::Invite,
                    Some(body),
                    Vec::new(),
                    Pending::ReInvite {
                        leg: p,
                        purpose: ReInvite::Relay {
                            from: leg,
                            profile,
                            tx,
                            request: Box::new(request.clone()),
                        },
                    },
                );
                if relayed {
                    let (sends, receives) = negotiate::flows(&offer.stream);
                    self.outbox.media(MediaCommand::Update {
                        leg,
                        remote: offer.stream.rtp_addr(),
                        remote_rtcp: offer.stream.rtcp,
                        payloads: negotiate::payload_map(&offer.formats),
                        remote_sends: sends,
                        remote_receives: receives,
                    });
                    return;
                }
                self.answer_locally(now, out, leg, profile, tx, &request, offer)
            }
            _ => self.answer_locally(now, out, leg, profile, tx, &request, offer),
        }
    }

    /// Answers an offer from `leg` ourselves (no partner to relay to, or the
    /// partner is held by the switch): same codec as before, the mirrored direction.
    #[allow(clippy::too_many_arguments)]
    fn answer_locally(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
        offer: negotiate::Offer,
    ) {
        let Some(l) = self.table.leg_mut(leg) else {
            return; // the caller read the leg before calling
        };
        let chosen = if l.media.formats.is_empty() {
            offer.formats.clone()
        } else {
            follow_offer(&offer.formats, &l.media.formats)
        };
        let formats = sdp::answer_formats(&offer.stream, &chosen).unwrap_or(offer.formats.clone());
        let mut direction = offer.stream.direction.answer_to();
        if l.held_by_switch && direction.receives() {
            // We hold this leg: we do not want its media either.
            direction = if direction.sends() {
                sdp::Direction::SendOnly
            } else {
                sdp::Direction::Inactive
            };
        }
        let answer = sdp::build_answer(
            &mut l.media.origin,
            &offer.sdp,
            l.media.local,
            &formats,
            direction,
            offer.stream.ptime,
        )
        .to_bytes();
        l.media.last_sent = Some(answer.clone());
        self.apply_remote(leg, offer.stream.clone(), Some(formats));
        let ok = with_sdp(sip::response_to(request, 200, None), Some(&answer));
        self.answer_in_dialog(now, out, leg, profile, tx, request, ok);
    }

    /// Reports a phone's own hold or retrieve when its SDP says it changed.
    fn phone_hold_state(&mut self, leg: LegId, held: bool) {
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        if l.held_by_phone == held {
            return;
        }
        l.held_by_phone = held;
        let (call, role) = (l.call.clone(), l.role);
        self.outbox.mark(&call);
        self.outbox.event(if held {
            CallEvent::Held {
                call,
                leg: role,
                by_switch: false,
            }
        } else {
            CallEvent::Retrieved {
                call,
                leg: role,
                by_switch: false,
            }
        });
    }

    fn update_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
    ) {
        self.session_refreshed(now, leg, request);
        let codecs = self.leg_codecs(leg);
        match sdp_body(request, &request.body).map(|b| negotiate::read_offer(&b, &codecs)) {
            None => {
                let ok = sip::response_to(request, 200, None);
                self.answer_in_dialog(now, out, leg, profile, tx, request, ok);
            }
            Some(Ok(offer)) => {
                self.phone_hold_state(leg, offer.stream.is_hold());
                self.answer_locally(now, out, leg, profile, tx, request, offer);
            }
            Some(Err(_)) => {
                let r = sip::response_to(request, 488, None);
                self.answer_in_dialog(now, out, leg, profile, tx, request, r);
            }
        }
    }

    /// SIP INFO with application/dtmf-relay (`Signal=5`, `Duration=160`):
    /// reported and played into the partner leg as RFC 4733.
    fn info_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
    ) {
        let ctype = request
            .header_value("Content-Type")
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let digit = if ctype.starts_with("application/dtmf-relay") {
            parse_dtmf_relay(&request.body)
        } else if ctype.starts_with("application/dtmf") {
            std::str::from_utf8(&request.body)
                .ok()
                .and_then(|s| s.trim().chars().next())
                .map(|d| (d, 100))
        } else {
            None
        };
        let code = if digit.is_some() || request.body.is_empty() {
            200
        } else {
            415
        };
        let mut r = sip::response_to(request, code, None);
        if code == 415 {
            r.headers.push(make_header(
                "Accept",
                "application/dtmf-relay, application/dtmf".into(),
            ));
        }
        self.answer_in_dialog(now, out, leg, profile, tx, request, r);
        let Some((digit, duration_ms)) = digit.filter(|(d, _)| valid_digit(*d)) else {
            return;
        };
        let Some((call, role)) = self.table.leg(leg).map(|l| (l.call.clone(), l.role)) else {
            return;
        };
        self.outbox.event(CallEvent::Dtmf {
            call,
            leg: role,
            digit,
            duration_ms,
            via: "info",
        });
        if let Some(p) = self.table.partner(leg) {
            self.outbox.media(MediaCommand::SendDtmf {
                leg: p,
                digits: digit.to_string(),
                duration_ms: duration_ms.clamp(40, 2000),
                gap_ms: 50,
            });
        }
    }

    /// The final answer to a re-INVITE the switch sent.
    pub(super) fn reinvite_final(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        purpose: ReInvite,
        r: Response,
    ) {
        let code = r.status_code.code();
        let answer = sdp_body(&r, &r.body).and_then(|b| negotiate::read_answer(&b));
        if (200..300).contains(&code) {
            self.ack_leg(out, leg);
        }
        self.reinvite_done(now, out, leg, purpose, code, answer);
        // A hold or retrieve asked meanwhile goes out now that the INVITE is over.
        let catch_up = self
            .table
            .leg(leg)
            .filter(|l| l.held_by_switch != l.hold_offered && l.is_answered() && !l.ending)
            .map(|l| l.held_by_switch);
        if let Some(held) = catch_up {
            self.send_hold_reinvite(now, out, leg, held);
        }
    }

    fn reinvite_done(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        purpose: ReInvite,
        code: u16,
        answer: Option<(sdp::Sdp, sdp::AudioStream)>,
    ) {
        match purpose {
            ReInvite::Relay {
                from,
                profile,
                tx,
                request,
            } => {
                if !(200..300).contains(&code) {
                    let r = sip::response_to(&request, if code == 487 { 500 } else { code }, None);
                    return self.answer_in_dialog(now, out, from, profile, tx, &request, r);
                }
                let Some((_, stream)) = answer else {
                    let r = sip::response_to(&request, 488, None);
                    return self.answer_in_dialog(now, out, from, profile, tx, &request, r);
                };
                self.apply_remote(leg, stream.clone(), None);
                let codecs = self.leg_codecs(from);
                let Ok(offer) = negotiate::read_offer(&request.body, &codecs) else {
                    return;
                };
                let formats = sdp::answer_formats(&offer.stream, &stream.formats)
                    .unwrap_or(offer.formats.clone());
                let Some(fl) = self.table.leg_mut(from) else {
                    return;
                };
                let bytes = sdp::build_answer(
                    &mut fl.media.origin,
                    &offer.sdp,
                    fl.media.local,
                    &formats,
                    stream.direction,
                    stream.ptime,
                )
                .to_bytes();
                fl.media.last_sent = Some(bytes.clone());
                fl.media.formats = formats.clone();
                self.apply_remote(from, offer.stream.clone(), Some(formats));
                let ok = with_sdp(sip::response_to(&request, 200, None), Some(&bytes));
                self.answer_in_dialog(now, out, from, profile, tx, &request, ok);
            }
            ReInvite::Hold(held) => {
                if let Some((_, stream)) = answer.filter(|_| (200..300).contains(&code)) {
                    let formats = self.table.leg(leg).map(|l| l.media.formats.clone());
                    self.apply_remote(leg, stream, formats);
                }
                if !(200..300).contains(&code) {
                    tracing::info!(%leg, code, held, "hold re-INVITE refused; media held anyway");
                }
            }
            ReInvite::Refresh => {
                if code == 408 || code == 481 {
                    self.leg_lost(now, out, leg, "session-refresh-failed");
                }
            }
        }
    }

    /// ACK for the 2xx to a re-INVITE of ours.
    fn ack_leg(&mut self, out: &mut dyn SipOut, leg: LegId) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let (Some(d), destination) = (l.dialog.clone(), l.destination) else {
            return;
        };
        let via = self.sent_by(out, destination.profile, destination.transport);
        if let Ok(ack) = self.dialogs.create_ack(&d, &via, None) {
            out.send_stateless(destination, ack.into());
        }
    }

    /// Sends a re-INVITE the dialog refused earlier with 491 (§14.1 back-off over).
    pub(super) fn retry_reinvite(&mut self, now: Instant, out: &mut dyn SipOut, leg: LegId) {
        let held = self
            .table
            .leg(leg)
            .map(|l| l.held_by_switch)
            .unwrap_or(false);
        self.send_hold_reinvite(now, out, leg, held);
    }

    /// Re-INVITE `leg` with our SDP in the direction a switch hold asks.
    pub(super) fn send_hold_reinvite(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        held: bool,
    ) -> bool {
        let Some(l) = self.table.leg_mut(leg) else {
            return false;
        };
        let direction = if held {
            sdp::Direction::SendOnly
        } else {
            sdp::Direction::SendRecv
        };
        let formats = l.media.formats.clone();
        let bytes = sdp::build_offer(
            &mut l.media.origin,
            l.media.local,
            &formats,
            direction,
            None,
        )
        .to_bytes();
        let previous = l.media.last_sent.replace(bytes.clone());
        let sent = self.send_in_dialog(
            now,
            out,
            leg,
            Method::Invite,
            Some(Body {
                content_type: "application/sdp".into(),
                bytes,
            }),
            Vec::new(),
            Pending::ReInvite {
                leg,
                purpose: ReInvite::Hold(held),
            },
        );
        if let Some(l) = self.table.leg_mut(leg) {
            if sent {
                l.hold_offered = held;
            } else {
                // Not sent (an INVITE is in progress): our last offer stands.
                l.media.last_sent = previous;
            }
        }
        sent
    }
}

/// The formats of `offered` (the offerer's numbering) for the codecs `current` uses.
fn follow_offer(
    offered: &[sdp::PayloadFormat],
    current: &[sdp::PayloadFormat],
) -> Vec<sdp::PayloadFormat> {
    let codecs: Vec<_> = current.iter().filter_map(|f| f.codec).collect();
    let kept: Vec<_> = offered
        .iter()
        .filter(|f| f.codec.is_some_and(|c| codecs.contains(&c)))
        .cloned()
        .collect();
    if negotiate::has_audio(&kept) {
        kept
    } else {
        offered.to_vec()
    }
}

fn valid_digit(d: char) -> bool {
    matches!(d, '0'..='9' | '*' | '#' | 'A'..='D')
}

/// `Signal=5\r\nDuration=160` (Cisco/SIP INFO DTMF relay).
fn parse_dtmf_relay(body: &[u8]) -> Option<(char, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut digit = None;
    let mut duration = 100;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                let v = v.trim();
                digit = match v {
                    "10" => Some('*'),
                    "11" => Some('#'),
                    _ => v.chars().next().map(|c| c.to_ascii_uppercase()),
                };
            }
            "duration" => duration = v.trim().parse().unwrap_or(100),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse_dtmf_relay(b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_dtmf_relay(b"Signal= #\nDuration= 250"),
            Some(('#', 250))
        );
        assert_eq!(parse_dtmf_relay(b"Signal=10"), Some(('*', 100)));
        assert_eq!(parse_dtmf_relay(b"Duration=100"), None);
        assert_eq!(parse_dtmf_relay(&[0xff, 0xfe]), None);
    }
}
