//! The dialogs of one UA, keyed by [`DialogId`], driven like quinn's
//! `Endpoint`: an incoming message is routed to its dialog, creates one (a
//! fork's 1xx/2xx to an INVITE we sent, §12.1.2 / §13.2.2.4), or is answered
//! statelessly (481, §12.2.2). Outputs of every dialog are gathered into one
//! `poll_transmit` / `poll_event` / `poll_timeout` / `handle_timeout`.
//!
//! It is owned by whoever drives it: no locks, no clock, no I/O. Timers are
//! indexed (each dialog's next deadline in an ordered set, fork windows in
//! the order they open), so finding the next one never scans every dialog:
//! a busy switch holds tens of thousands of them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use tracing::debug;

use crate::net::{Destination, TransportKind};
use crate::sip::{MessageHeaders, Method, Request, Response};

use super::addr::Body;
use super::incoming::reject;
use super::{
    Dialog, DialogConfig, DialogError, DialogEvent, DialogId, DialogMessage, DialogState,
    DialogTimer, RequestOutcome, ResponseOutcome, TerminateReason, Timeout,
};

/// An INVITE we sent outside any dialog, whose responses may create several
/// dialogs (one per To tag, forking proxies).
#[derive(Debug)]
struct PendingInvite {
    request: Request,
    cseq: u32,
    transport: TransportKind,
    /// Set at the first 2xx: later forks' 2xx are still taken until then.
    forks_until: Option<Instant>,
}

/// Every dialog of a UA, and the INVITEs that may still create some.
#[derive(Debug, Default)]
pub struct DialogTable {
    config: DialogConfig,
    /// Boxed: a growing table moves its values when it rehashes.
    dialogs: HashMap<DialogId, Box<Dialog>>,
    /// Keyed by (Call-ID, From tag).
    invites: HashMap<(String, String), PendingInvite>,
    events: VecDeque<DialogEvent>,
    transmits: VecDeque<DialogMessage>,
    /// Each dialog's next deadline, ordered; `deadline_of` finds its entry.
    deadlines: BTreeSet<(Instant, DialogId)>,
    deadline_of: HashMap<DialogId, Instant>,
    /// Fork windows in the order they open (all last 64*T1, so this is time order).
    fork_windows: VecDeque<(Instant, (String, String))>,
}

impl DialogTable {
    pub fn new(config: DialogConfig) -> Self {
        DialogTable {
            config,
            ..Default::default()
        }
    }

    /// Registers an INVITE we sent outside a dialog, so that its 1xx-with-tag
    /// and 2xx responses create (possibly several, forked) dialogs.
    pub fn invite_sent(&mut self, invite: Request, transport: TransportKind) {
        let (Some(call_id), Some(tag), Some((cseq, _))) =
            (invite.call_id(), invite.from_tag(), invite.cseq())
        else {
            debug!("INVITE without Call-ID, From tag or CSeq: no dialog can follow");
            return;
        };
        let key = (call_id.to_string(), tag);
        self.invites.insert(
            key,
            PendingInvite {
                request: invite,
                cseq,
                transport,
                forks_until: None,
            },
        );
    }

    /// Adds a dialog built by [`Dialog::uac`] or [`Dialog::uas`].
    pub fn insert(&mut self, dialog: Dialog) -> DialogId {
        let id = dialog.id().clone();
        self.dialogs
            .insert(id.clone(), Box::new(dialog.with_config(self.config)));
        self.drain(&id);
        id
    }

    pub fn get(&self, id: &DialogId) -> Option<&Dialog> {
        self.dialogs.get(id).map(|d| &**d)
    }

    /// Runs `f` on a dialog and collects what it queued.
    pub fn with_dialog<R>(&mut self, id: &DialogId, f: impl FnOnce(&mut Dialog) -> R) -> Option<R> {
        let result = f(self.dialogs.get_mut(id)?);
        self.drain(id);
        Some(result)
    }

    pub fn remove(&mut self, id: &DialogId) -> Option<Dialog> {
        self.unschedule(id);
        self.dialogs.remove(id).map(|d| *d)
    }

    pub fn len(&self) -> usize {
        self.dialogs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dialogs.is_empty()
    }

    /// The answer to a request whose dialog does not exist (§12.2.2): 481,
    /// or nothing for an ACK (never answered).
    pub fn no_dialog_answer(request: &Request) -> Option<Response> {
        match reject(request, 481, None) {
            RequestOutcome::Reject(r) if request.method != Method::Ack => Some(*r),
            _ => None,
        }
    }

    /// A request the transaction layer passed up.
    pub fn handle_request(&mut self, now: Instant, request: &Request) -> RequestOutcome {
        let Some(id) = DialogId::of_incoming_request(request) else {
            return RequestOutcome::OutOfDialog;
        };
        match self.dialogs.get_mut(&id) {
            Some(d) if d.state() != DialogState::Terminated => {
                let outcome = d.handle_request(now, request);
                self.drain(&id);
                outcome
            }
            _ => {
                debug!(dialog = %id, method = %request.method, "request for no dialog");
                match Self::no_dialog_answer(request) {
                    Some(r) => RequestOutcome::Reject(Box::new(r)),
                    None => RequestOutcome::Drop,
                }
            }
        }
    }

    /// A response the transaction layer passed up, or a 2xx retransmission
    /// that matched no transaction (RFC 6026).
    pub fn handle_response(&mut self, now: Instant, response: &Response) -> ResponseOutcome {
        let (Some(call_id), Some(local_tag), Some((cseq, method))) =
            (response.call_id(), response.from_tag(), response.cseq())
        else {
            return ResponseOutcome::NoDialog;
        };
        let code = response.status_code.code();
        let key = (call_id.to_string(), local_tag.clone());
        let creating =
            method == Method::Invite && self.invites.get(&key).is_some_and(|p| p.cseq == cseq);
        let to_tag = response.to_tag();
        let id = match &to_tag {
            // RFC 2543 peers may send a 2xx without a tag: remote tag null.
            Some(_) => DialogId::of_incoming_response(response),
            None if (200..300).contains(&code) => Some(DialogId::new(call_id, &local_tag, "")),
            None => None,
        };
        let outcome = id.and_then(|id| {
            let d = self.dialogs.get_mut(&id)?;
            if d.state() == DialogState::Terminated {
                return None;
            }
            let out = d.handle_response(now, response);
            self.drain(&id);
            Some(out)
        });
        let outcome = match outcome {
            Some(o) => o,
            None if creating && code > 100 && code < 300 => self.create_from_response(response),
            None => ResponseOutcome::NoDialog,
        };
        if creating {
            self.track_forks(now, &key, code);
        }
        outcome
    }

    /// A fork's first 1xx-with-tag or 2xx: a new dialog (§12.1.2).
    fn create_from_response(&mut self, response: &Response) -> ResponseOutcome {
        let key = (
            response.call_id().unwrap_or_default().to_string(),
            response.from_tag().unwrap_or_default(),
        );
        let Some(pending) = self.invites.get(&key) else {
            return ResponseOutcome::NoDialog;
        };
        match Dialog::uac(&pending.request, response, pending.transport) {
            Ok(mut dialog) => {
                let ev = match dialog.state() {
                    DialogState::Early => DialogEvent::Early(dialog.id().clone()),
                    _ => DialogEvent::Confirmed(dialog.id().clone()),
                };
                dialog.events.push_back(ev);
                let id = self.insert(dialog);
                ResponseOutcome::Dialog { id, created: true }
            }
            Err(e) => {
                debug!(error = %e, "response creates no dialog");
                ResponseOutcome::NoDialog
            }
        }
    }

    /// §13.2.2.4: after a 2xx, other forks' 2xx are taken for 64*T1; a
    /// non-2xx final response ends the INVITE and its remaining early dialogs.
    fn track_forks(&mut self, now: Instant, key: &(String, String), code: u16) {
        if (200..300).contains(&code) {
            if let Some(p) = self.invites.get_mut(key) {
                if p.forks_until.is_none() {
                    let at = now + 64 * self.config.t1;
                    p.forks_until = Some(at);
                    self.fork_windows.push_back((at, key.clone()));
                }
            }
        } else if code >= 300 {
            self.end_invite(key);
        }
    }

    /// Forgets a pending INVITE and ends its dialogs still early.
    fn end_invite(&mut self, key: &(String, String)) {
        self.invites.remove(key);
        let early: Vec<DialogId> = self
            .dialogs
            .iter()
            .filter(|(id, d)| {
                id.call_id == key.0 && id.local_tag == key.1 && d.state() == DialogState::Early
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in early {
            self.with_dialog(&id, |d| d.terminate(TerminateReason::ForkEnded));
        }
    }

    /// [`Dialog::create_request`] on a dialog of the table.
    pub fn create_request(
        &mut self,
        id: &DialogId,
        method: Method,
        via_sent_by: &str,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        self.with_dialog(id, |d| d.create_request(method, via_sent_by, body))
            .unwrap_or(Err(DialogError::Terminated))
    }

    /// [`Dialog::create_ack`] on a dialog of the table.
    pub fn create_ack(
        &mut self,
        id: &DialogId,
        via_sent_by: &str,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        self.with_dialog(id, |d| d.create_ack(via_sent_by, body))
            .unwrap_or(Err(DialogError::Terminated))
    }

    /// [`Dialog::prepare_response`] on a dialog of the table (`None`: no such dialog).
    pub fn prepare_response(
        &mut self,
        now: Instant,
        id: &DialogId,
        request: &Request,
        response: Response,
        destination: Destination,
    ) -> Option<Response> {
        self.with_dialog(id, |d| {
            d.prepare_response(now, request, response, destination)
        })
    }

    pub fn poll_transmit(&mut self) -> Option<DialogMessage> {
        self.transmits.pop_front()
    }

    /// The next event. A `Terminated` dialog leaves the table as its event is polled.
    pub fn poll_event(&mut self) -> Option<DialogEvent> {
        let event = self.events.pop_front()?;
        if let DialogEvent::Terminated { id, .. } = &event {
            self.unschedule(id);
            self.dialogs.remove(id);
        }
        Some(event)
    }

    /// The earliest timer over all dialogs and pending INVITEs (from the indexes).
    pub fn poll_timeout(&self) -> Option<Timeout> {
        let dialog = self
            .deadlines
            .first()
            .and_then(|(_, id)| self.dialogs.get(id).map(|d| &**d))
            .and_then(Dialog::poll_timeout);
        let fork = self.fork_windows.front().map(|(at, (call_id, _))| Timeout {
            at: *at,
            timer: DialogTimer::ForkWindow {
                call_id: call_id.clone(),
            },
        });
        dialog.into_iter().chain(fork).min_by_key(|t| t.at)
    }

    /// The earliest deadline only, without building a [`Timeout`].
    pub fn next_deadline(&self) -> Option<Instant> {
        let dialog = self.deadlines.first().map(|(at, _)| *at);
        let fork = self.fork_windows.front().map(|(at, _)| *at);
        dialog.into_iter().chain(fork).min()
    }

    /// Re-indexes a dialog's next deadline after it changed.
    fn reschedule(&mut self, id: &DialogId) {
        let next = self
            .dialogs
            .get(id)
            .and_then(|d| d.poll_timeout())
            .map(|t| t.at);
        if self.deadline_of.get(id).copied() == next {
            return;
        }
        self.unschedule(id);
        if let Some(at) = next {
            self.deadlines.insert((at, id.clone()));
            self.deadline_of.insert(id.clone(), at);
        }
    }

    fn unschedule(&mut self, id: &DialogId) {
        if let Some(at) = self.deadline_of.remove(id) {
            self.deadlines.remove(&(at, id.clone()));
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<DialogId> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, id)| id.clone())
            .collect();
        for id in due {
            // `with_dialog` re-indexes the dialog's next deadline.
            self.with_dialog(&id, |d| d.handle_timeout(now));
        }
        while let Some((at, key)) = self.fork_windows.front().cloned() {
            if at > now {
                break;
            }
            self.fork_windows.pop_front();
            // Skip windows of INVITEs already ended some other way.
            if self
                .invites
                .get(&key)
                .is_some_and(|p| p.forks_until == Some(at))
            {
                debug!(call_id = %key.0, "fork window over");
                self.end_invite(&key);
            }
        }
    }

    /// Moves a dialog's queued outputs into the table's queues.
    fn drain(&mut self, id: &DialogId) {
        if let Some(d) = self.dialogs.get_mut(id) {
            self.events.extend(d.events.drain(..));
            self.transmits.extend(d.transmits.drain(..));
        }
        self.reschedule(id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::dialog::testutil::*;
    use crate::sip::SipMessage;

    fn events(t: &mut DialogTable) -> Vec<DialogEvent> {
        std::iter::from_fn(|| t.poll_event()).collect()
    }

    #[test]
    fn unknown_dialog_gets_481_and_ack_is_dropped() {
        let mut t = DialogTable::default();
        let bye = in_dialog_req(Method::Bye, 2, "zz", &[]);
        let RequestOutcome::Reject(r) = t.handle_request(Instant::now(), &bye) else {
            panic!()
        };
        assert_eq!(r.status_code.code(), 481);
        assert_eq!(r.call_id(), Some("c1@a.example.com"));
        let ack = in_dialog_req(Method::Ack, 1, "zz", &[]);
        assert!(matches!(
            t.handle_request(Instant::now(), &ack),
            RequestOutcome::Drop
        ));
        assert!(DialogTable::no_dialog_answer(&ack).is_none());
        assert!(matches!(
            t.handle_request(Instant::now(), &invite()),
            RequestOutcome::OutOfDialog
        ));
    }

    #[test]
    fn uas_dialog_found_by_swapped_tags_and_dropped_after_bye() {
        let mut t = DialogTable::default();
        let inv = invite();
        let id =
            t.insert(Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Udp).unwrap());
        let now = Instant::now();
        t.prepare_response(
            now,
            &id,
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Udp),
        )
        .unwrap();
        let ack = in_dialog_req(Method::Ack, 1, "b1", &[]);
        assert!(matches!(t.handle_request(now, &ack), RequestOutcome::Accepted(ref i) if *i == id));
        let bye = in_dialog_req(Method::Bye, 2, "b1", &[]);
        assert!(matches!(
            t.handle_request(now, &bye),
            RequestOutcome::Accepted(_)
        ));
        let evs = events(&mut t);
        assert_eq!(evs.len(), 3, "{evs:?}");
        assert!(matches!(evs[1], DialogEvent::Acked { cseq: 1, .. }));
        assert!(matches!(
            evs[2],
            DialogEvent::Terminated {
                reason: TerminateReason::ByeReceived,
                ..
            }
        ));
        assert!(t.is_empty());
        assert!(t.poll_timeout().is_none());
    }

    #[test]
    fn forked_responses_make_early_dialogs_and_the_answer_ends_the_others_later() {
        let mut t = DialogTable::default();
        let inv = invite();
        t.invite_sent(inv.clone(), TransportKind::Udp);
        let now = Instant::now();
        for tag in ["b1", "b2"] {
            let ringing = resp_to(&inv, 180, Some(tag), &[CONTACT_B]);
            let out = t.handle_response(now, &ringing);
            assert_eq!(
                out,
                ResponseOutcome::Dialog {
                    id: DialogId::new("c1@a.example.com", "a1", tag),
                    created: true
                }
            );
            // The same 180 again belongs to the dialog it made.
            assert!(matches!(
                t.handle_response(now, &ringing),
                ResponseOutcome::Dialog { created: false, .. }
            ));
        }
        assert_eq!(t.len(), 2);
        let trying = resp_to(&inv, 100, None, &[]);
        assert_eq!(t.handle_response(now, &trying), ResponseOutcome::NoDialog);
        let b1 = DialogId::new("c1@a.example.com", "a1", "b1");
        let ok = ok_with(&inv, "b1", &["Record-Route: <sip:p1.example.com;lr>"]);
        assert_eq!(
            t.handle_response(now, &ok),
            ResponseOutcome::Dialog {
                id: b1.clone(),
                created: false
            }
        );
        let d = t.get(&b1).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example.com;lr>"],
            "route set from the 2xx"
        );
        // A third fork answers too: a new confirmed dialog (the TU ACKs and BYEs it).
        let late = ok_to(&inv, "b3");
        assert!(matches!(
            t.handle_response(now, &late),
            ResponseOutcome::Dialog { created: true, .. }
        ));
        let window = t.poll_timeout().unwrap();
        assert!(matches!(window.timer, DialogTimer::ForkWindow { .. }));
        assert_eq!(window.at, now + Duration::from_secs(32));
        t.handle_timeout(window.at);
        let evs = events(&mut t);
        assert!(
            evs.contains(&DialogEvent::Terminated {
                id: DialogId::new("c1@a.example.com", "a1", "b2"),
                reason: TerminateReason::ForkEnded
            }),
            "{evs:?}"
        );
        assert_eq!(t.len(), 2);
        // A fork answering after the window creates nothing.
        assert_eq!(
            t.handle_response(now, &ok_to(&inv, "b4")),
            ResponseOutcome::NoDialog
        );
    }

    #[test]
    fn final_rejection_ends_every_early_fork() {
        let mut t = DialogTable::default();
        let inv = invite();
        t.invite_sent(inv.clone(), TransportKind::Udp);
        let now = Instant::now();
        for tag in ["b1", "b2"] {
            t.handle_response(now, &resp_to(&inv, 183, Some(tag), &[CONTACT_B]));
        }
        t.handle_response(now, &resp_to(&inv, 486, Some("b2"), &[]));
        let ended: Vec<_> = events(&mut t)
            .into_iter()
            .filter_map(|e| match e {
                DialogEvent::Terminated { id, reason } => Some((id.remote_tag, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(ended.len(), 2);
        assert!(ended.contains(&("b2".into(), TerminateReason::Rejected)));
        assert!(ended.contains(&("b1".into(), TerminateReason::ForkEnded)));
        assert!(t.is_empty());
    }

    #[test]
    fn retransmitted_2xx_resends_the_ack_through_the_table() {
        let mut t = DialogTable::default();
        let inv = invite();
        t.invite_sent(inv.clone(), TransportKind::Udp);
        let now = Instant::now();
        let ok = ok_with(&inv, "b1", &["Record-Route: <sip:p1.example.com;lr>"]);
        let ResponseOutcome::Dialog { id, created: true } = t.handle_response(now, &ok) else {
            panic!()
        };
        let ack = t.create_ack(&id, "10.0.0.1:5060", None).unwrap();
        assert_eq!(ack.cseq(), Some((1, Method::Ack)));
        assert_eq!(ack.uri.to_string(), "sip:bob@10.0.0.2:5060");
        assert_eq!(ack.header_values("Route"), ["<sip:p1.example.com;lr>"]);
        assert_ne!(
            ack.top_via().unwrap().branch.as_deref(),
            Some("z9hG4bKinv1")
        );
        assert!(t.poll_transmit().is_none());
        assert_eq!(
            t.handle_response(now, &ok),
            ResponseOutcome::Retransmission(id.clone())
        );
        let tx = t.poll_transmit().unwrap();
        assert_eq!(tx.dialog, id);
        assert!(matches!(tx.message, SipMessage::Request(ref r) if r.to_bytes() == ack.to_bytes()));
    }

    #[test]
    fn timeouts_aggregate_over_dialogs() {
        let mut t = DialogTable::new(DialogConfig {
            t1: Duration::from_millis(100),
            t2: Duration::from_secs(4),
        });
        let now = Instant::now();
        let inv = invite();
        let id =
            t.insert(Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Udp).unwrap());
        t.prepare_response(
            now,
            &id,
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Udp),
        );
        assert_eq!(
            t.poll_timeout().unwrap().at,
            now + Duration::from_millis(100)
        );
        t.handle_timeout(now + Duration::from_millis(100));
        let tx = t.poll_transmit().unwrap();
        assert_eq!(tx.destination, Some(dest(TransportKind::Udp)));
        assert_eq!(
            t.poll_timeout().unwrap().at,
            now + Duration::from_millis(300)
        );
        t.handle_timeout(now + Duration::from_millis(6400));
        assert!(events(&mut t)
            .iter()
            .any(|e| matches!(e, DialogEvent::AckTimeout { .. })));
    }
}
