//! Receiving within a dialog: requests (RFC 3261 §12.2.2: CSeq order, target
//! refresh, BYE; §14.2 overlapping and crossing re-INVITEs) and responses to
//! our requests (§12.2.1.2: target refresh by 2xx, 481/408 end the dialog;
//! §14.1 491 back-off; §13.2.2.4 2xx retransmissions re-ACKed).

use std::time::Instant;

use tracing::debug;

use crate::sip::{make_header, response_to, MessageHeaders, Method, Request, Response, SipMessage};

use super::reliability::{glare_retry_delay, retry_after_secs};
use super::state::is_target_refresh;
use super::{Dialog, DialogEvent, DialogId, DialogMessage, DialogState, TerminateReason};

/// What to do with a request handed to the dialog layer.
#[derive(Debug)]
pub enum RequestOutcome {
    /// No To tag: not within a dialog (a new INVITE, OPTIONS, REGISTER...).
    OutOfDialog,
    /// Within this dialog and accepted: the TU processes it (an ACK too, for its body).
    Accepted(DialogId),
    /// Answer with this response and process nothing (481, 500, 491, 400).
    Reject(Box<Response>),
    /// Nothing to do: an ACK for no known dialog.
    Drop,
}

/// What a response handed to the dialog layer turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// It belongs to this dialog, just `created` (a fork's 1xx or 2xx) or
    /// existing: the TU processes it (and ACKs a first 2xx to INVITE).
    Dialog { id: DialogId, created: bool },
    /// A retransmitted 2xx to an INVITE already answered: the ACK, if the TU
    /// built one, was queued again. The TU sees nothing.
    Retransmission(DialogId),
    /// It creates and belongs to no dialog (100, an unknown dialog...).
    NoDialog,
}

/// A response to `request` with the reason given.
pub(super) fn reject(request: &Request, code: u16, reason: Option<&str>) -> RequestOutcome {
    RequestOutcome::Reject(Box::new(response_to(request, code, reason)))
}

impl Dialog {
    /// A request within this dialog (its To tag is our local tag).
    pub fn handle_request(&mut self, now: Instant, request: &Request) -> RequestOutcome {
        if self.state == DialogState::Terminated {
            return reject(request, 481, None);
        }
        let Some((cseq, method)) = request.cseq() else {
            return reject(request, 400, Some("Missing CSeq"));
        };
        match method {
            // ACK and CANCEL carry their INVITE's number: no ordering check.
            Method::Ack => {
                self.ack_received(cseq);
                return RequestOutcome::Accepted(self.id.clone());
            }
            Method::Cancel => return RequestOutcome::Accepted(self.id.clone()),
            _ => {}
        }
        // §12.2.2: lower than the remote sequence number is out of order.
        if self.remote_seq.is_some_and(|remote| cseq < remote) {
            debug!(dialog = %self.id, cseq, remote = ?self.remote_seq, "out-of-order request");
            return reject(request, 500, Some("Server Internal Error"));
        }
        self.remote_seq = Some(cseq);
        if method == Method::Invite {
            if self.local_invite_pending {
                // §14.2: our own INVITE is in progress: glare.
                debug!(dialog = %self.id, cseq, "re-INVITE glare: 491");
                return reject(request, 491, None);
            }
            if self.remote_invite_pending.is_some_and(|p| p < cseq) {
                // §14.2: a second INVITE before we answered the first.
                let mut r = response_to(request, 500, Some("Server Internal Error"));
                r.headers
                    .push(make_header("Retry-After", retry_after_secs().to_string()));
                return RequestOutcome::Reject(Box::new(r));
            }
            self.remote_invite_pending = Some(cseq);
        }
        if is_target_refresh(method) && self.refresh_target(request).is_err() {
            return reject(request, 400, Some("Bad Contact"));
        }
        if method == Method::Bye {
            self.terminate(TerminateReason::ByeReceived);
        }
        // RFC 3262 §3: a PRACK must name our unacknowledged reliable 1xx.
        if method == Method::PRack && !self.prack_matches(now, request) {
            return reject(request, 481, None);
        }
        RequestOutcome::Accepted(self.id.clone())
    }

    fn ack_received(&mut self, cseq: u32) {
        if self.awaiting_ack.as_ref().is_some_and(|a| a.cseq == cseq) {
            self.awaiting_ack = None;
            debug!(dialog = %self.id, cseq, "ACK received");
            self.events.push_back(DialogEvent::Acked {
                id: self.id.clone(),
                cseq,
            });
        }
    }

    /// A response to a request we sent within this dialog (or to the
    /// creating INVITE), including 2xx retransmissions no transaction matched.
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> ResponseOutcome {
        let Some((cseq, method)) = response.cseq() else {
            return ResponseOutcome::NoDialog;
        };
        let code = response.status_code.code();
        let invite_cseq = self
            .last_invite
            .as_ref()
            .and_then(|i| i.cseq())
            .map(|(n, _)| n);
        let ours = invite_cseq == Some(cseq);
        if method == Method::Invite && (200..300).contains(&code) {
            if self.answered_invite == Some(cseq) {
                return self.retransmitted_2xx(cseq);
            }
            self.answered_invite = Some(cseq);
            if ours {
                self.local_invite_pending = false;
            }
            if self.state == DialogState::Early {
                // §12.1.2 / §13.2.2.4: the 2xx fixes the route set.
                let mut rr: Vec<String> = response
                    .header_values("Record-Route")
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                rr.reverse();
                self.route_set = rr;
            }
            let _ = self.refresh_target(response);
            self.confirm();
        } else if code >= 200 {
            if method == Method::Invite && ours {
                self.local_invite_pending = false;
            }
            if (200..300).contains(&code) && is_target_refresh(method) {
                let _ = self.refresh_target(response);
            }
            if code == 481 || code == 408 {
                self.terminate(TerminateReason::Failed);
            } else if method == Method::Invite && self.state == DialogState::Early && code >= 300 {
                self.terminate(TerminateReason::Rejected);
            } else if code == 491 && matches!(method, Method::Invite | Method::Update) {
                let delay = glare_retry_delay(self.owns_call_id);
                debug!(dialog = %self.id, ?delay, "491: backing off");
                self.glare_retry_at = Some(now + delay);
            } else if method == Method::Bye {
                self.terminate(TerminateReason::ByeCompleted);
            }
        }
        ResponseOutcome::Dialog {
            id: self.id.clone(),
            created: false,
        }
    }

    /// §13.2.2.4: every retransmission of the 2xx gets the same ACK again.
    fn retransmitted_2xx(&mut self, cseq: u32) -> ResponseOutcome {
        if let Some(ack) = &self.last_ack {
            debug!(dialog = %self.id, cseq, "2xx retransmitted: re-sending ACK");
            self.transmits.push_back(DialogMessage {
                dialog: self.id.clone(),
                destination: None,
                message: SipMessage::Request(ack.clone()),
            });
        }
        ResponseOutcome::Retransmission(self.id.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dialog::testutil::*;
    use crate::dialog::{DialogTimer, Role};
    use crate::net::TransportKind;

    /// A confirmed UAS dialog (remote seq 1) whose INVITE was answered.
    fn uas() -> Dialog {
        let inv = invite();
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Tcp).unwrap();
        d.prepare_response(
            Instant::now(),
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Tcp),
        );
        d
    }

    fn code(o: RequestOutcome) -> u16 {
        match o {
            RequestOutcome::Reject(r) => r.status_code.code(),
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn lower_cseq_gets_500_and_higher_is_recorded() {
        let mut d = uas();
        let now = Instant::now();
        let info = in_dialog_req(Method::Info, 5, "b1", &[]);
        assert!(matches!(
            d.handle_request(now, &info),
            RequestOutcome::Accepted(_)
        ));
        assert_eq!(d.remote_seq(), Some(5));
        let old = in_dialog_req(Method::Info, 4, "b1", &[]);
        let RequestOutcome::Reject(r) = d.handle_request(now, &old) else {
            panic!()
        };
        assert_eq!(r.status_code.code(), 500);
        assert!(String::from_utf8(r.to_bytes())
            .unwrap()
            .starts_with("SIP/2.0 500 Server Internal Error"));
        assert_eq!(d.remote_seq(), Some(5));
        let same = in_dialog_req(Method::Options, 5, "b1", &[]);
        assert!(matches!(
            d.handle_request(now, &same),
            RequestOutcome::Accepted(_)
        ));
    }

    #[test]
    fn uac_learns_the_remote_sequence_from_the_first_request() {
        let inv = invite();
        let mut d = Dialog::uac(&inv, &ok_with(&inv, "b1", &[]), TransportKind::Udp).unwrap();
        assert_eq!(d.remote_seq(), None);
        let bye = peer_req(Method::Bye, 77);
        assert!(matches!(
            d.handle_request(Instant::now(), &bye),
            RequestOutcome::Accepted(_)
        ));
        assert_eq!(d.remote_seq(), Some(77));
    }

    #[test]
    fn reinvite_and_update_refresh_the_target() {
        let mut d = uas();
        let now = Instant::now();
        let reinv = in_dialog_req(
            Method::Invite,
            2,
            "b1",
            &["Contact: <sip:alice@10.0.0.9:5070>"],
        );
        assert!(matches!(
            d.handle_request(now, &reinv),
            RequestOutcome::Accepted(_)
        ));
        assert_eq!(d.remote_target().to_string(), "sip:alice@10.0.0.9:5070");
        let update = in_dialog_req(Method::Update, 3, "b1", &["Contact: <sip:alice@10.0.0.10>"]);
        // UPDATE may cross a pending INVITE: no glare rule for it here.
        assert!(matches!(
            d.handle_request(now, &update),
            RequestOutcome::Accepted(_)
        ));
        assert_eq!(d.remote_target().to_string(), "sip:alice@10.0.0.10");
        let info = in_dialog_req(Method::Info, 4, "b1", &["Contact: <sip:alice@10.0.0.11>"]);
        d.handle_request(now, &info);
        assert_eq!(
            d.remote_target().to_string(),
            "sip:alice@10.0.0.10",
            "INFO refreshes nothing"
        );
    }

    #[test]
    fn two_xx_to_update_refreshes_the_target_on_the_uac() {
        let inv = invite();
        let mut d = Dialog::uac(&inv, &ok_with(&inv, "b1", &[]), TransportKind::Udp).unwrap();
        let update = d.create_request(Method::Update, "h", None).unwrap();
        let ok = resp_to(&update, 200, Some("b1"), &["Contact: <sip:bob@10.9.9.9>"]);
        d.handle_response(Instant::now(), &ok);
        assert_eq!(d.remote_target().to_string(), "sip:bob@10.9.9.9");
    }

    #[test]
    fn bye_terminates() {
        let mut d = uas();
        let bye = in_dialog_req(Method::Bye, 2, "b1", &[]);
        assert!(matches!(
            d.handle_request(Instant::now(), &bye),
            RequestOutcome::Accepted(_)
        ));
        assert_eq!(d.state(), DialogState::Terminated);
        assert!(d.events.iter().any(|e| matches!(
            e,
            DialogEvent::Terminated {
                reason: TerminateReason::ByeReceived,
                ..
            }
        )));
        let late = in_dialog_req(Method::Info, 3, "b1", &[]);
        assert_eq!(code(d.handle_request(Instant::now(), &late)), 481);
    }

    #[test]
    fn our_bye_ends_the_dialog_on_its_final_response() {
        let mut d = uas();
        let bye = d.create_request(Method::Bye, "h", None).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        d.handle_response(Instant::now(), &resp_to(&bye, 200, Some("b1"), &[]));
        assert_eq!(d.state(), DialogState::Terminated);
    }

    #[test]
    fn reinvite_during_our_reinvite_gets_491() {
        let mut d = uas();
        d.create_request(Method::Invite, "h", None).unwrap();
        let theirs = in_dialog_req(Method::Invite, 2, "b1", &[]);
        assert_eq!(code(d.handle_request(Instant::now(), &theirs)), 491);
    }

    #[test]
    fn overlapping_reinvite_gets_500_with_retry_after() {
        let mut d = uas();
        let now = Instant::now();
        let first = in_dialog_req(Method::Invite, 2, "b1", &[]);
        assert!(matches!(
            d.handle_request(now, &first),
            RequestOutcome::Accepted(_)
        ));
        let second = in_dialog_req(Method::Invite, 3, "b1", &[]);
        let RequestOutcome::Reject(r) = d.handle_request(now, &second) else {
            panic!()
        };
        assert_eq!(r.status_code.code(), 500);
        let secs: u32 = r.header_value("Retry-After").unwrap().parse().unwrap();
        assert!(secs <= 10);
        // Once the first is answered, the next re-INVITE goes through.
        d.prepare_response(
            now,
            &first,
            resp_to(&first, 200, None, &[]),
            dest(TransportKind::Tcp),
        );
        let third = in_dialog_req(Method::Invite, 4, "b1", &[]);
        assert!(matches!(
            d.handle_request(now, &third),
            RequestOutcome::Accepted(_)
        ));
    }

    /// A 491 to our re-INVITE arms the retry timer in the §14.1 window.
    fn glare_delay(mut d: Dialog) -> Duration {
        let now = Instant::now();
        while d.poll_event().is_some() {}
        let reinv = d.create_request(Method::Invite, "h", None).unwrap();
        let tag = d.id().remote_tag.clone();
        d.handle_response(now, &resp_to(&reinv, 491, Some(&tag), &[]));
        assert!(!d.invite_in_progress());
        let t = d.poll_timeout().unwrap();
        assert!(matches!(t.timer, DialogTimer::GlareRetry(_)));
        d.handle_timeout(t.at - Duration::from_millis(1));
        assert!(d.poll_event().is_none());
        d.handle_timeout(t.at);
        assert!(matches!(d.poll_event(), Some(DialogEvent::GlareRetry(_))));
        let next = d.poll_timeout().map(|t| t.timer);
        assert!(!matches!(next, Some(DialogTimer::GlareRetry(_))));
        d.create_request(Method::Invite, "h", None).unwrap();
        t.at - now
    }

    #[test]
    fn glare_back_off_depends_on_who_owns_the_call_id() {
        for _ in 0..50 {
            let inv = invite();
            let uac = Dialog::uac(&inv, &ok_with(&inv, "b1", &[]), TransportKind::Udp).unwrap();
            assert_eq!(uac.role(), Role::Uac);
            let delay = glare_delay(uac);
            assert!(
                delay >= Duration::from_millis(2100) && delay <= Duration::from_secs(4),
                "{delay:?}"
            );
            let delay = glare_delay(uas());
            assert!(delay <= Duration::from_secs(2), "{delay:?}");
        }
    }

    #[test]
    fn a_481_or_408_ends_the_dialog() {
        for status in [481, 408] {
            let mut d = uas();
            let info = d.create_request(Method::Info, "h", None).unwrap();
            d.handle_response(Instant::now(), &resp_to(&info, status, Some("b1"), &[]));
            assert_eq!(d.state(), DialogState::Terminated);
        }
    }

    #[test]
    fn retransmitted_2xx_gets_the_same_ack() {
        let inv = invite();
        let ok = ok_with(&inv, "b1", &[]);
        let mut d = Dialog::uac(&inv, &ok, TransportKind::Udp).unwrap();
        let ack = d.create_ack("10.0.0.1:5060", None).unwrap();
        assert!(d.poll_transmit().is_none());
        for _ in 0..2 {
            let out = d.handle_response(Instant::now(), &ok);
            assert_eq!(out, ResponseOutcome::Retransmission(d.id().clone()));
            let tx = d.poll_transmit().unwrap();
            assert_eq!(tx.destination, None);
            let SipMessage::Request(again) = tx.message else {
                panic!()
            };
            assert_eq!(again.to_bytes(), ack.to_bytes(), "same branch, same bytes");
        }
    }
}
