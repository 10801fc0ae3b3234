//! INVITE server transaction: RFC 3261 §17.2.1 with RFC 6026 §8.5-8.7.
//!
//! ```text
//!  Proceeding --300-699 from TU--> Completed --ACK--> Confirmed --Timer I--> Terminated
//!      |                              \--Timer H--> Terminated (Timeout)
//!      \--2xx from TU--> Accepted --Timer L--> Terminated
//! ```
//!
//! A 100 Trying is queued as soon as the transaction exists (see the module
//! header of `transaction` for why not after 200 ms). An INVITE
//! retransmission is answered with the last provisional response in
//! Proceeding and with the final response in Completed, and absorbed in
//! Accepted: retransmitting the 2xx is the dialog layer's job (§13.3.1.4),
//! which it does by handing each retransmission to `respond` while the
//! transaction is Accepted (RFC 6026 §8.5).

use std::mem;
use std::time::Instant;

use tracing::debug;

use super::machine::{log_transition, Machine, Outbox};
use super::{
    earliest, is_provisional, is_success, InviteServerTimer, Retransmit, ServerEvent,
    ServerReceipt, TimerSettings, TransactionError, TransactionState,
};
use crate::sip::{response_to, Method, Request, Response, SipMessage};

/// Waiting for the TU's final response; the last provisional answers retransmissions.
#[derive(Debug)]
struct Proceeding {
    last_provisional: Response,
}

/// A non-2xx final response was sent; retransmitting it until the ACK.
#[derive(Debug)]
struct Completed {
    response: Response,
    /// `None` on reliable transports.
    timer_g: Option<Retransmit>,
    timer_h: Instant,
}

/// The ACK arrived; absorbing its retransmissions.
#[derive(Debug)]
struct Confirmed {
    timer_i: Instant,
}

/// A 2xx was sent; absorbing INVITE retransmissions (RFC 6026).
#[derive(Debug)]
struct Accepted {
    timer_l: Instant,
}

#[derive(Debug)]
enum State {
    Proceeding(Proceeding),
    Completed(Completed),
    Confirmed(Confirmed),
    Accepted(Accepted),
    Terminated,
}

impl State {
    fn name(&self) -> TransactionState {
        match self {
            State::Proceeding(_) => TransactionState::Proceeding,
            State::Completed(_) => TransactionState::Completed,
            State::Confirmed(_) => TransactionState::Confirmed,
            State::Accepted(_) => TransactionState::Accepted,
            State::Terminated => TransactionState::Terminated,
        }
    }
}

/// The server side of one INVITE transaction.
#[derive(Debug)]
pub struct InviteServerTransaction {
    request: Request,
    branch: String,
    reliable: bool,
    settings: TimerSettings,
    state: State,
    outbox: Outbox<ServerEvent>,
}

impl InviteServerTransaction {
    /// Creates the transaction for a new INVITE and queues the 100 Trying
    /// (§17.2.1: without a To tag, §8.2.6.1).
    /// `branch` is the top Via's, which the layer read to key the
    /// transaction (kept for the logs).
    pub fn new(
        _now: Instant,
        request: Request,
        branch: String,
        reliable: bool,
        settings: TimerSettings,
    ) -> Self {
        let trying = response_to(&request, 100, None);
        let outbox = Outbox::with_first(SipMessage::Response(trying.clone()));
        debug!(%branch, state = "Proceeding", "INVITE server transaction created");
        InviteServerTransaction {
            request,
            branch,
            reliable,
            settings,
            state: State::Proceeding(Proceeding {
                last_provisional: trying,
            }),
            outbox,
        }
    }

    /// The INVITE this transaction answers.
    pub fn request(&self) -> Option<&Request> {
        Some(&self.request)
    }

    /// A request that matched this transaction (§17.2.3): an INVITE
    /// retransmission or an ACK.
    pub fn handle_request(&mut self, now: Instant, request: &Request) -> ServerReceipt {
        if request.method == Method::Ack {
            return self.handle_ack(now);
        }
        match &self.state {
            State::Proceeding(p) => self
                .outbox
                .send(SipMessage::Response(p.last_provisional.clone())),
            State::Completed(c) => self.outbox.send(SipMessage::Response(c.response.clone())),
            // Accepted: absorbed without passing up (RFC 6026 §8.7).
            State::Confirmed(_) | State::Accepted(_) | State::Terminated => {}
        }
        ServerReceipt::Absorbed
    }

    fn handle_ack(&mut self, now: Instant) -> ServerReceipt {
        match &self.state {
            State::Completed(_) => {
                let next = if self.reliable {
                    self.outbox.tell(ServerEvent::Terminated);
                    State::Terminated
                } else {
                    State::Confirmed(Confirmed {
                        timer_i: now + self.settings.t4,
                    })
                };
                self.enter(next);
                ServerReceipt::AckConsumed
            }
            State::Confirmed(_) => ServerReceipt::AckConsumed,
            State::Accepted(_) => ServerReceipt::PassToTu,
            // An ACK before any final response acknowledges nothing.
            State::Proceeding(_) | State::Terminated => ServerReceipt::Absorbed,
        }
    }

    /// A response from the TU. Provisional and final responses are accepted
    /// in Proceeding; in Accepted, further 2xx (the dialog layer's
    /// retransmissions) are sent too. Anything else is refused.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        let state = mem::replace(&mut self.state, State::Terminated);
        let next = match state {
            State::Proceeding(_) if is_provisional(code) => {
                self.send(&response);
                State::Proceeding(Proceeding {
                    last_provisional: response,
                })
            }
            State::Proceeding(_) if is_success(code) => {
                self.send(&response);
                State::Accepted(Accepted {
                    timer_l: now + self.settings.t1_x64(),
                })
            }
            State::Proceeding(_) => {
                self.send(&response);
                State::Completed(Completed {
                    response,
                    timer_g: (!self.reliable).then(|| Retransmit::first(now, &self.settings)),
                    timer_h: now + self.settings.t1_x64(),
                })
            }
            State::Accepted(a) if is_success(code) => {
                self.send(&response);
                State::Accepted(a)
            }
            other => {
                let state = other.name();
                self.state = other;
                return Err(TransactionError::WrongState {
                    state,
                    status: code / 100,
                });
            }
        };
        self.enter(next);
        Ok(())
    }

    fn send(&mut self, response: &Response) {
        self.outbox.send(SipMessage::Response(response.clone()));
    }

    /// The transport failed to send a response (§17.2.4).
    pub fn transport_error(&mut self, _now: Instant) {
        match self.state {
            State::Proceeding(_) | State::Completed(_) => {
                self.outbox.tell(ServerEvent::TransportError);
                self.terminate();
            }
            // A 2xx that failed to go out is the dialog layer's to retry;
            // Timer L still ends the transaction.
            State::Accepted(_) => self.outbox.tell(ServerEvent::TransportError),
            State::Confirmed(_) | State::Terminated => {}
        }
    }

    fn terminate(&mut self) {
        if !self.is_terminated() {
            self.outbox.tell(ServerEvent::Terminated);
            self.enter(State::Terminated);
        }
    }

    fn enter(&mut self, next: State) {
        let from = self.state.name();
        self.state = next;
        log_transition(Self::KIND, &self.branch, from, self.state.name());
    }
}

impl Machine for InviteServerTransaction {
    type Event = ServerEvent;
    type Timer = InviteServerTimer;
    const KIND: &'static str = "INVITE server transaction";

    fn outbox(&mut self) -> &mut Outbox<ServerEvent> {
        &mut self.outbox
    }

    fn state(&self) -> TransactionState {
        self.state.name()
    }

    fn branch(&self) -> &str {
        &self.branch
    }

    fn poll_timeout(&self) -> Option<(Instant, InviteServerTimer)> {
        match &self.state {
            State::Completed(c) => earliest(&[
                (c.timer_g.map(|g| g.at), InviteServerTimer::G),
                (Some(c.timer_h), InviteServerTimer::H),
            ]),
            State::Confirmed(c) => Some((c.timer_i, InviteServerTimer::I)),
            State::Accepted(a) => Some((a.timer_l, InviteServerTimer::L)),
            State::Proceeding(_) | State::Terminated => None,
        }
    }

    fn fire(&mut self, now: Instant, timer: InviteServerTimer) {
        let t2 = self.settings.t2;
        match (&mut self.state, timer) {
            (State::Completed(c), InviteServerTimer::G) => {
                c.timer_g = c.timer_g.map(|g| g.doubled(now, Some(t2)));
                let response = c.response.clone();
                self.send(&response);
            }
            (State::Completed(_), InviteServerTimer::H) => {
                self.outbox.tell(ServerEvent::Timeout);
                self.terminate();
            }
            (State::Confirmed(_), InviteServerTimer::I)
            | (State::Accepted(_), InviteServerTimer::L) => self.terminate(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::MessageHeaders;
    use crate::transaction::test_util::*;

    fn ist(reliable: bool) -> (Instant, InviteServerTransaction) {
        let now = Instant::now();
        let mut t =
            InviteServerTransaction::new(now, invite(), BRANCH.into(), reliable, settings());
        match t.poll_transmit() {
            Some(SipMessage::Response(r)) => {
                assert_eq!(r.status_code.code(), 100);
                assert_eq!(r.to_tag(), None, "100 Trying carries no To tag");
            }
            other => panic!("{other:?}"),
        }
        (now, t)
    }

    fn ack() -> Request {
        request_with("ACK", BRANCH, 1, Some("s1"))
    }

    fn sent_code(t: &mut InviteServerTransaction) -> Option<u16> {
        match t.poll_transmit()? {
            SipMessage::Response(r) => Some(r.status_code.code()),
            SipMessage::Request(r) => panic!("server sent a request {r:?}"),
        }
    }

    #[test]
    fn retransmitted_invite_gets_the_last_provisional() {
        let (t0, mut t) = ist(false);
        assert_eq!(t.handle_request(t0, &invite()), ServerReceipt::Absorbed);
        assert_eq!(sent_code(&mut t), Some(100));
        t.respond(t0, response(&invite(), 180, Some("s1"))).unwrap();
        assert_eq!(sent_code(&mut t), Some(180));
        t.handle_request(t0, &invite());
        assert_eq!(sent_code(&mut t), Some(180));
        assert_eq!(t.poll_timeout(), None, "no timer in Proceeding");
    }

    #[test]
    fn non_2xx_retransmits_with_timer_g_until_timer_h() {
        let (t0, mut t) = ist(false);
        t.respond(t0, response(&invite(), 486, Some("s1"))).unwrap();
        assert_eq!(sent_code(&mut t), Some(486));
        assert_eq!(t.state(), TransactionState::Completed);
        let mut sent = Vec::new();
        while let Some((at, _)) = t.poll_timeout() {
            t.handle_timeout(at);
            while sent_code(&mut t).is_some() {
                sent.push(ms(t0, at));
            }
        }
        // G: 0.5, 1, 2, 4, 4 ... s; H at 64*T1.
        assert_eq!(&sent[..6], &[500, 1500, 3500, 7500, 11500, 15500]);
        assert_eq!(sent.last(), Some(&31500));
        assert_eq!(t.poll_event(), Some(ServerEvent::Timeout));
        assert_eq!(t.poll_event(), Some(ServerEvent::Terminated));
    }

    #[test]
    fn timer_h_at_64_t1_on_reliable_without_g() {
        let (t0, mut t) = ist(true);
        t.respond(t0, response(&invite(), 603, Some("s1"))).unwrap();
        assert_eq!(t.poll_timeout(), Some((t0 + T1 * 64, InviteServerTimer::H)));
    }

    #[test]
    fn invite_retransmission_in_completed_resends_the_final() {
        let (t0, mut t) = ist(false);
        t.respond(t0, response(&invite(), 404, Some("s1"))).unwrap();
        sent_code(&mut t);
        t.handle_request(t0 + MS_1, &invite());
        assert_eq!(sent_code(&mut t), Some(404));
    }

    #[test]
    fn ack_confirms_and_timer_i_is_t4() {
        let (t0, mut t) = ist(false);
        t.respond(t0, response(&invite(), 486, Some("s1"))).unwrap();
        sent_code(&mut t);
        let at = t0 + T1 * 2;
        assert_eq!(t.handle_request(at, &ack()), ServerReceipt::AckConsumed);
        assert_eq!(t.state(), TransactionState::Confirmed);
        assert_eq!(t.handle_request(at, &ack()), ServerReceipt::AckConsumed);
        // No more retransmissions of the 486 in Confirmed.
        assert_eq!(t.poll_timeout(), Some((at + T4, InviteServerTimer::I)));
        t.handle_request(at, &invite());
        assert_eq!(sent_code(&mut t), None);
        t.handle_timeout(at + T4);
        assert!(t.is_terminated());
    }

    #[test]
    fn timer_i_is_zero_on_reliable_transport() {
        let (t0, mut t) = ist(true);
        t.respond(t0, response(&invite(), 486, Some("s1"))).unwrap();
        t.handle_request(t0, &ack());
        assert!(t.is_terminated());
        assert_eq!(t.poll_event(), Some(ServerEvent::Terminated));
    }

    #[test]
    fn two_xx_goes_to_accepted_absorbs_invites_and_ends_with_timer_l() {
        let (t0, mut t) = ist(false);
        let ok = response(&invite(), 200, Some("s1"));
        t.respond(t0, ok.clone()).unwrap();
        assert_eq!(sent_code(&mut t), Some(200));
        assert_eq!(t.state(), TransactionState::Accepted);
        // INVITE retransmission absorbed, nothing sent: 2xx retransmission is the dialog's.
        assert_eq!(
            t.handle_request(t0 + T1, &invite()),
            ServerReceipt::Absorbed
        );
        assert_eq!(sent_code(&mut t), None);
        // The dialog layer's retransmission goes through.
        t.respond(t0 + T1, ok).unwrap();
        assert_eq!(sent_code(&mut t), Some(200));
        // A late failure is refused.
        assert!(t
            .respond(t0 + T1, response(&invite(), 500, Some("s1")))
            .is_err());
        // An ACK matching the transaction goes up.
        assert_eq!(t.handle_request(t0 + T1, &ack()), ServerReceipt::PassToTu);
        assert_eq!(t.poll_timeout(), Some((t0 + T1 * 64, InviteServerTimer::L)));
        t.handle_timeout(t0 + T1 * 64);
        assert!(t.is_terminated());
    }

    #[test]
    fn second_final_in_completed_is_refused() {
        let (t0, mut t) = ist(false);
        t.respond(t0, response(&invite(), 486, Some("s1"))).unwrap();
        let err = t
            .respond(t0, response(&invite(), 200, Some("s1")))
            .unwrap_err();
        assert_eq!(
            err,
            TransactionError::WrongState {
                state: TransactionState::Completed,
                status: 2
            }
        );
        assert_eq!(t.state(), TransactionState::Completed);
    }
}
