//! One dialog's state and its creation (RFC 3261 §12.1): the UAC builds it
//! from the request it sent and a 1xx-with-tag or 2xx (§12.1.2), the UAS from
//! the request it received and the tag it chose (§12.1.1).
//!
//! A dialog keeps its own output queues and timers like a quinn-proto
//! `Connection`; [`super::DialogTable`] drains them. Building requests,
//! receiving messages and the UAS's responses live in sibling files.

use std::collections::VecDeque;
use std::time::Instant;

use tracing::debug;

use crate::net::TransportKind;
use crate::sip::{MessageHeaders, Method, Request, Response, Uri};

use super::addr::{is_sips, uri_of, without_tag};
use super::prack::PrackState;
use super::reliability::AwaitingAck;
use super::{
    DialogConfig, DialogError, DialogEvent, DialogId, DialogMessage, DialogTimer, TerminateReason,
    Timeout,
};

/// Which side of the dialog-creating request we were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uac,
    Uas,
}

/// §12: a dialog is early until a 2xx, confirmed after, terminated at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    Early,
    Confirmed,
    Terminated,
}

/// The dialog state of §12.1 plus what §13-§14 need to drive INVITEs.
#[derive(Debug)]
pub struct Dialog {
    pub(super) id: DialogId,
    pub(super) role: Role,
    pub(super) state: DialogState,
    /// From (UAC) or To (UAS) of the creating request, without the tag.
    pub(super) local_uri: String,
    pub(super) remote_uri: String,
    /// `None` is the RFC's "empty" (a UAS has sent nothing yet).
    pub(super) local_seq: Option<u32>,
    pub(super) remote_seq: Option<u32>,
    pub(super) remote_target: Uri,
    /// Route set entries as received (name-addr text), in the order requests use.
    pub(super) route_set: Vec<String>,
    pub(super) secure: bool,
    pub(super) transport: TransportKind,
    /// Our Contact value, put on target refresh requests and responses.
    pub(super) local_contact: Option<String>,
    pub(super) owns_call_id: bool,
    pub(super) config: DialogConfig,
    /// Our latest INVITE, for its ACK and CANCEL.
    pub(super) last_invite: Option<Request>,
    /// Our INVITE has no final response yet (§14.1 glare, UAS side).
    pub(super) local_invite_pending: bool,
    /// CSeq of the peer's INVITE we have not answered finally (§14.2).
    pub(super) remote_invite_pending: Option<u32>,
    /// UAC: the INVITE whose 2xx we have seen, and the ACK we built for it.
    pub(super) answered_invite: Option<u32>,
    pub(super) last_ack: Option<Request>,
    /// UAS: our 2xx to INVITE waiting for its ACK (RFC 6026).
    pub(super) awaiting_ack: Option<AwaitingAck>,
    /// UAC: when to re-send the re-INVITE refused with 491 (§14.1).
    pub(super) glare_retry_at: Option<Instant>,
    /// RFC 3262 reliable provisional responses (`prack`).
    pub(super) prack: PrackState,
    pub(super) events: VecDeque<DialogEvent>,
    pub(super) transmits: VecDeque<DialogMessage>,
}

impl Dialog {
    /// UAC side (§12.1.2): `request` is what we sent, `response` a 1xx with a
    /// To tag (early dialog) or a 2xx (confirmed) to it. The route set is the
    /// response's Record-Route reversed; the remote target its Contact.
    pub fn uac(
        request: &Request,
        response: &Response,
        transport: TransportKind,
    ) -> Result<Self, DialogError> {
        let code = response.status_code.code();
        let to_tag = response.to_tag();
        let state = match code {
            101..=199 if to_tag.is_some() => DialogState::Early,
            200..=299 => DialogState::Confirmed,
            _ => return Err(DialogError::NotDialogCreating(code)),
        };
        let call_id = request.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let local_tag = request.from_tag().ok_or(DialogError::Missing("From tag"))?;
        // RFC 2543 peers may answer 2xx without a tag: the remote tag is null.
        let id = DialogId::new(call_id, &local_tag, &to_tag.unwrap_or_default());
        let (cseq, method) = request.cseq().ok_or(DialogError::Missing("CSeq"))?;
        let mut route_set: Vec<String> = response
            .header_values("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        route_set.reverse();
        // A gateway's 18x may lack the Contact §12.1.1 asks for: aim at the
        // Request-URI until the 2xx brings one.
        let remote_target = match response.header_value("Contact") {
            Some(c) => uri_of(c)?,
            None => request.uri.clone(),
        };
        let is_invite = method == Method::Invite;
        let dialog = Dialog {
            role: Role::Uac,
            state,
            local_uri: without_tag(header(request, "From")?),
            remote_uri: without_tag(header(request, "To")?),
            local_seq: Some(cseq),
            remote_seq: None,
            remote_target,
            route_set,
            secure: transport == TransportKind::Tls && is_sips(&request.uri),
            transport,
            local_contact: request.header_value("Contact").map(str::to_string),
            owns_call_id: true,
            config: DialogConfig::default(),
            last_invite: is_invite.then(|| request.clone()),
            local_invite_pending: is_invite && state == DialogState::Early,
            remote_invite_pending: None,
            answered_invite: (is_invite && state == DialogState::Confirmed).then_some(cseq),
            last_ack: None,
            awaiting_ack: None,
            glare_retry_at: None,
            prack: PrackState::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            id,
        };
        dialog.log_created();
        Ok(dialog)
    }

    /// UAS side (§12.1.1): `request` is the dialog-creating request we
    /// received, `local_tag` the To tag we answer with, `local_contact` the
    /// Contact value we put on our 1xx/2xx. The dialog starts early; it is
    /// confirmed when [`Dialog::prepare_response`] sees our 2xx.
    pub fn uas(
        request: &Request,
        local_tag: &str,
        local_contact: &str,
        transport: TransportKind,
    ) -> Result<Self, DialogError> {
        let call_id = request.call_id().ok_or(DialogError::Missing("Call-ID"))?;
        let remote_tag = request.from_tag().unwrap_or_default();
        let (cseq, method) = request.cseq().ok_or(DialogError::Missing("CSeq"))?;
        let contact = request
            .header_value("Contact")
            .ok_or(DialogError::Missing("Contact"))?;
        let route_set = request
            .header_values("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect();
        let dialog = Dialog {
            id: DialogId::new(call_id, local_tag, &remote_tag),
            role: Role::Uas,
            state: DialogState::Early,
            local_uri: without_tag(header(request, "To")?),
            remote_uri: without_tag(header(request, "From")?),
            local_seq: None,
            remote_seq: Some(cseq),
            remote_target: uri_of(contact)?,
            route_set,
            secure: transport == TransportKind::Tls && is_sips(&request.uri),
            transport,
            local_contact: Some(local_contact.to_string()),
            owns_call_id: false,
            config: DialogConfig::default(),
            last_invite: None,
            local_invite_pending: false,
            remote_invite_pending: (method == Method::Invite).then_some(cseq),
            answered_invite: None,
            last_ack: None,
            awaiting_ack: None,
            glare_retry_at: None,
            prack: PrackState::default(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        };
        dialog.log_created();
        Ok(dialog)
    }

    /// The timer values (the table sets its own on insert).
    pub fn with_config(mut self, config: DialogConfig) -> Self {
        self.config = config;
        self
    }

    fn log_created(&self) {
        debug!(dialog = %self.id, role = ?self.role, state = ?self.state,
            routes = self.route_set.len(), "dialog created");
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn state(&self) -> DialogState {
        self.state
    }
    /// Our URI (with display name and header parameters, without the tag).
    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }
    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }
    pub fn local_seq(&self) -> Option<u32> {
        self.local_seq
    }
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }
    /// The peer's Contact URI: the Request-URI of our next request.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }
    /// The route set in the order our requests carry it.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }
    pub fn secure(&self) -> bool {
        self.secure
    }
    pub fn transport(&self) -> TransportKind {
        self.transport
    }
    /// Whether we generated the Call-ID (decides the §14.1 back-off).
    pub fn owns_call_id(&self) -> bool {
        self.owns_call_id
    }
    /// Whether an INVITE transaction is in progress in either direction (§14.1).
    pub fn invite_in_progress(&self) -> bool {
        self.local_invite_pending || self.remote_invite_pending.is_some()
    }

    /// Early -> Confirmed (on a 2xx sent or received).
    pub(super) fn confirm(&mut self) {
        if self.state == DialogState::Early {
            self.state = DialogState::Confirmed;
            debug!(dialog = %self.id, "dialog confirmed");
            self.events
                .push_back(DialogEvent::Confirmed(self.id.clone()));
        }
    }

    /// Ends the dialog: timers stop, a `Terminated` event is queued once.
    pub fn terminate(&mut self, reason: TerminateReason) {
        if self.state == DialogState::Terminated {
            return;
        }
        self.state = DialogState::Terminated;
        self.awaiting_ack = None;
        self.glare_retry_at = None;
        self.prack.clear();
        debug!(dialog = %self.id, ?reason, "dialog terminated");
        self.events.push_back(DialogEvent::Terminated {
            id: self.id.clone(),
            reason,
        });
    }

    /// Replaces the remote target with the request's or response's Contact,
    /// if it has one (§12.2.1.2, §12.2.2 target refresh).
    pub(super) fn refresh_target<M: MessageHeaders>(
        &mut self,
        message: &M,
    ) -> Result<(), DialogError> {
        if let Some(contact) = message.header_value("Contact") {
            let uri = uri_of(contact)?;
            if uri != self.remote_target {
                debug!(dialog = %self.id, target = %uri, "remote target refreshed");
                self.remote_target = uri;
            }
        }
        Ok(())
    }

    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        self.events.pop_front()
    }

    pub fn poll_transmit(&mut self) -> Option<DialogMessage> {
        self.transmits.pop_front()
    }

    /// The earliest of this dialog's timers.
    pub fn poll_timeout(&self) -> Option<Timeout> {
        let ack = self.awaiting_ack.as_ref().map(|a| {
            let (at, give_up) = a.deadline();
            let timer = if give_up {
                DialogTimer::AckTimeout(self.id.clone())
            } else {
                DialogTimer::Retransmit2xx(self.id.clone())
            };
            Timeout { at, timer }
        });
        let glare = self.glare_retry_at.map(|at| Timeout {
            at,
            timer: DialogTimer::GlareRetry(self.id.clone()),
        });
        let prack = self.prack.deadline().map(|(at, give_up)| Timeout {
            at,
            timer: if give_up {
                DialogTimer::PrackTimeout(self.id.clone())
            } else {
                DialogTimer::Retransmit1xx(self.id.clone())
            },
        });
        [ack, glare, prack]
            .into_iter()
            .flatten()
            .min_by_key(|t| t.at)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(waiting) = self.awaiting_ack.take() {
            self.awaiting_ack = self.step_ack_timer(waiting, now);
        }
        self.step_prack_timer(now);
        if self.glare_retry_at.is_some_and(|at| at <= now) {
            self.glare_retry_at = None;
            debug!(dialog = %self.id, "glare back-off over: re-send the re-INVITE");
            self.events
                .push_back(DialogEvent::GlareRetry(self.id.clone()));
        }
    }
}

fn header<'a>(request: &'a Request, name: &'static str) -> Result<&'a str, DialogError> {
    request.header_value(name).ok_or(DialogError::Missing(name))
}

/// Whether a method refreshes the remote target (§12.2, RFC 3311, RFC 6665, RFC 3515).
pub(super) fn is_target_refresh(method: Method) -> bool {
    matches!(
        method,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::*;

    #[test]
    fn uac_dialog_from_2xx_reverses_the_record_route() {
        let inv = invite();
        let ok = ok_with(
            &inv,
            "b1",
            &["Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>"],
        );
        let d = Dialog::uac(&inv, &ok, TransportKind::Udp).unwrap();
        assert_eq!(d.role(), Role::Uac);
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.id(), &DialogId::new("c1@a.example.com", "a1", "b1"));
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(d.remote_target().to_string(), "sip:bob@10.0.0.2:5060");
        assert_eq!(d.local_uri(), "\"Alice\" <sip:alice@a.example.com>");
        assert_eq!(d.remote_uri(), "<sip:bob@b.example.com>");
        assert_eq!((d.local_seq(), d.remote_seq()), (Some(1), None));
        assert!(d.owns_call_id() && !d.secure());
    }

    #[test]
    fn uac_early_dialog_needs_a_to_tag() {
        let inv = invite();
        let ringing = resp_to(&inv, 180, Some("b1"), &[CONTACT_B]);
        let d = Dialog::uac(&inv, &ringing, TransportKind::Udp).unwrap();
        assert_eq!(d.state(), DialogState::Early);
        assert!(d.invite_in_progress());
        let untagged = resp_to(&inv, 180, None, &[CONTACT_B]);
        assert_eq!(
            Dialog::uac(&inv, &untagged, TransportKind::Udp).unwrap_err(),
            DialogError::NotDialogCreating(180)
        );
        let trying = resp_to(&inv, 100, Some("b1"), &[]);
        assert!(Dialog::uac(&inv, &trying, TransportKind::Udp).is_err());
    }

    #[test]
    fn uas_dialog_keeps_the_record_route_order() {
        let inv = invite_with(&[
            "Record-Route: <sip:p1.example.com;lr>",
            "Record-Route: <sip:p2.example.com;lr>",
        ]);
        let d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Udp).unwrap();
        assert_eq!(d.role(), Role::Uas);
        assert_eq!(d.state(), DialogState::Early);
        assert_eq!(d.id(), &DialogId::new("c1@a.example.com", "b1", "a1"));
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
        assert_eq!(d.remote_target().to_string(), "sip:alice@10.0.0.1:5060");
        assert_eq!((d.local_seq(), d.remote_seq()), (None, Some(1)));
        assert_eq!(d.local_uri(), "<sip:bob@b.example.com>");
        assert!(!d.owns_call_id());
    }

    #[test]
    fn secure_needs_tls_and_a_sips_request_uri() {
        let inv = req(&INVITE_TEXT.replace("INVITE sip:bob", "INVITE sips:bob"));
        let d = Dialog::uas(&inv, "b1", "<sips:bob@10.0.0.2>", TransportKind::Tls).unwrap();
        assert!(d.secure());
        let d = Dialog::uas(&inv, "b1", "<sips:bob@10.0.0.2>", TransportKind::Tcp).unwrap();
        assert!(!d.secure());
    }
}
