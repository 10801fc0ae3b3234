//! The UAS's responses within a dialog (RFC 3261 §12.1.1, §13.3.1.4): the To
//! tag, the Record-Route copy and our Contact on 1xx/2xx, and what answering
//! an INVITE does to the dialog (confirmed by 2xx and waiting for the ACK,
//! ended by a non-2xx to the creating INVITE).

use std::time::Instant;

use tracing::debug;

use crate::net::Destination;
use crate::sip::{make_header, with_to_tag, Header, MessageHeaders, Method, Request, Response};

use super::reliability::AwaitingAck;
use super::state::is_target_refresh;
use super::{Dialog, DialogState, TerminateReason};

impl Dialog {
    /// Completes `response` to `request` (received in, or creating, this
    /// dialog) and records that it is being sent at `now` to `destination`.
    /// The caller hands the result to the server transaction; a 2xx to INVITE
    /// is from then on also retransmitted by this dialog until the ACK comes.
    pub fn prepare_response(
        &mut self,
        now: Instant,
        request: &Request,
        response: Response,
        destination: Destination,
    ) -> Response {
        let code = response.status_code.code();
        if code == 100 {
            return response; // hop-by-hop, no dialog content (§8.2.6.1)
        }
        let mut response = with_to_tag(response, &self.id.local_tag);
        let method = request.cseq().map(|(_, m)| m).unwrap_or(request.method);
        if (101..300).contains(&code) {
            // §12.1.1: the dialog-creating response carries the request's
            // Record-Route as-is, and our Contact on target refreshes.
            if !has(&response, "Record-Route") {
                for h in request.headers.iter() {
                    if matches!(h, Header::RecordRoute(_)) {
                        response.headers.push(h.clone());
                    }
                }
            }
            if is_target_refresh(method) && !has(&response, "Contact") {
                if let Some(contact) = &self.local_contact {
                    response
                        .headers
                        .push(make_header("Contact", contact.clone()));
                }
            }
        }
        if method == Method::Invite && code >= 200 {
            let cseq = request.cseq().map_or(0, |(n, _)| n);
            if self.remote_invite_pending == Some(cseq) {
                self.remote_invite_pending = None;
            }
            if code < 300 {
                self.confirm();
                debug!(dialog = %self.id, cseq, "2xx to INVITE sent: awaiting ACK");
                self.awaiting_ack = Some(AwaitingAck::start(
                    now,
                    cseq,
                    response.clone(),
                    destination,
                    &self.config,
                ));
            } else if self.state == DialogState::Early {
                self.terminate(TerminateReason::Rejected);
            }
        }
        response
    }
}

fn has(response: &Response, name: &str) -> bool {
    response.header_value(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::*;
    use crate::dialog::DialogEvent;
    use crate::net::TransportKind;

    #[test]
    fn ringing_and_ok_carry_tag_record_route_and_contact() {
        let inv = invite_with(&[
            "Record-Route: <sip:p1.example.com;lr>",
            "Record-Route: <sip:p2.example.com;lr>",
        ]);
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Udp).unwrap();
        let now = Instant::now();
        let ringing = d.prepare_response(
            now,
            &inv,
            resp_to(&inv, 180, None, &[]),
            dest(TransportKind::Udp),
        );
        assert_eq!(ringing.to_tag().as_deref(), Some("b1"));
        assert_eq!(
            ringing.header_values("Record-Route"),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(ringing.header_value("Contact"), Some("<sip:bob@10.0.0.2>"));
        assert_eq!(d.state(), DialogState::Early);
        let ok = d.prepare_response(
            now,
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Udp),
        );
        assert_eq!(ok.to_tag().as_deref(), Some("b1"));
        assert_eq!(ok.header_values("Record-Route").len(), 2);
        assert_eq!(d.state(), DialogState::Confirmed);
        assert!(matches!(d.poll_event(), Some(DialogEvent::Confirmed(_))));
        assert!(!d.invite_in_progress());
    }

    #[test]
    fn rejecting_the_creating_invite_ends_the_early_dialog() {
        let inv = invite();
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Udp).unwrap();
        let busy = d.prepare_response(
            Instant::now(),
            &inv,
            resp_to(&inv, 486, None, &[]),
            dest(TransportKind::Udp),
        );
        assert_eq!(busy.header_value("Contact"), None);
        assert_eq!(d.state(), DialogState::Terminated);
    }

    #[test]
    fn rejecting_a_reinvite_keeps_the_dialog() {
        let inv = invite();
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Tcp).unwrap();
        let now = Instant::now();
        d.prepare_response(
            now,
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Tcp),
        );
        let reinv = in_dialog_req(Method::Invite, 2, "b1", &[]);
        d.handle_request(now, &reinv);
        assert!(d.invite_in_progress());
        d.prepare_response(
            now,
            &reinv,
            resp_to(&reinv, 488, None, &[]),
            dest(TransportKind::Tcp),
        );
        assert_eq!(d.state(), DialogState::Confirmed);
        assert!(!d.invite_in_progress());
    }
}
