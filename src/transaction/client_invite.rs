//! INVITE client transaction: RFC 3261 §17.1.1 with RFC 6026 §8.4.
//!
//! ```text
//!  Calling --1xx--> Proceeding --300-699 (send ACK)--> Completed --Timer D--> Terminated
//!     |                |  \--2xx--> Accepted --Timer M--> Terminated
//!     |--2xx--> Accepted, --300-699--> Completed, --Timer B--> Terminated (Timeout)
//! ```
//!
//! The ACK for a non-2xx final response is built here (§17.1.1.3) and sent
//! again on every retransmission of that response. A 2xx is not ACKed here:
//! the transaction goes to Accepted and hands every 2xx up to the TU until
//! Timer M, so that the dialog layer can ACK each (RFC 6026 §7.2).

use std::mem;
use std::time::Instant;

use tracing::debug;

use super::machine::{log_transition, Machine, Outbox};
use super::{
    earliest, is_provisional, is_success, ClientEvent, InviteClientTimer, Retransmit,
    TimerSettings, TransactionState,
};
use crate::sip::{ack_for_non_2xx, MessageHeaders, Request, Response, SipMessage};

/// Waiting for any response; the INVITE is being retransmitted (Timer A).
#[derive(Debug)]
struct Calling {
    /// `None` on reliable transports.
    timer_a: Option<Retransmit>,
    timer_b: Instant,
}

/// A provisional response arrived; waiting without a timer for the final one.
#[derive(Debug)]
struct Proceeding;

/// A non-2xx final response arrived and was ACKed; absorbing its retransmissions.
#[derive(Debug)]
struct Completed {
    ack: Request,
    timer_d: Instant,
}

/// A 2xx arrived; passing further 2xx up to the TU (RFC 6026).
#[derive(Debug)]
struct Accepted {
    timer_m: Instant,
}

#[derive(Debug)]
enum State {
    Calling(Calling),
    Proceeding(Proceeding),
    Completed(Completed),
    Accepted(Accepted),
    Terminated,
}

impl State {
    fn name(&self) -> TransactionState {
        match self {
            State::Calling(_) => TransactionState::Calling,
            State::Proceeding(_) => TransactionState::Proceeding,
            State::Completed(_) => TransactionState::Completed,
            State::Accepted(_) => TransactionState::Accepted,
            State::Terminated => TransactionState::Terminated,
        }
    }
}

/// The client side of one INVITE transaction.
#[derive(Debug)]
pub struct InviteClientTransaction {
    request: Request,
    /// The top Via branch, for logs.
    branch: String,
    reliable: bool,
    settings: TimerSettings,
    state: State,
    outbox: Outbox<ClientEvent>,
}

impl InviteClientTransaction {
    /// Starts the transaction: the INVITE is queued for sending at once,
    /// Timer A (unreliable only) and Timer B are armed.
    pub fn new(now: Instant, request: Request, reliable: bool, settings: TimerSettings) -> Self {
        let branch = request.top_via().and_then(|v| v.branch).unwrap_or_default();
        let outbox = Outbox::with_first(SipMessage::Request(request.clone()));
        let state = State::Calling(Calling {
            timer_a: (!reliable).then(|| Retransmit::first(now, &settings)),
            timer_b: now + settings.t1_x64(),
        });
        debug!(%branch, state = "Calling", "INVITE client transaction created");
        InviteClientTransaction {
            request,
            branch,
            reliable,
            settings,
            state,
            outbox,
        }
    }

    /// The INVITE this transaction carries (for CANCEL, §9.1).
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response matched to this transaction (§17.1.3).
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let code = response.status_code.code();
        let state = mem::replace(&mut self.state, State::Terminated);
        let next = match state {
            State::Calling(_) | State::Proceeding(_) if is_provisional(code) => {
                self.outbox.tell(ClientEvent::Provisional(response));
                State::Proceeding(Proceeding)
            }
            State::Calling(_) | State::Proceeding(_) if is_success(code) => {
                self.outbox.tell(ClientEvent::Final(response));
                State::Accepted(Accepted {
                    timer_m: now + self.settings.t1_x64(),
                })
            }
            State::Calling(_) | State::Proceeding(_) => {
                // 300-699: ACK it here, pass it up, absorb retransmissions (§17.1.1.2).
                let ack = ack_for_non_2xx(&self.request, &response);
                self.outbox.send(SipMessage::Request(ack.clone()));
                self.outbox.tell(ClientEvent::Final(response));
                if self.reliable {
                    self.outbox.tell(ClientEvent::Terminated);
                    State::Terminated
                } else {
                    State::Completed(Completed {
                        ack,
                        timer_d: now + self.settings.timer_d(),
                    })
                }
            }
            State::Completed(c) if !is_provisional(code) && !is_success(code) => {
                // A retransmitted failure: our ACK was lost, send it again.
                self.outbox.send(SipMessage::Request(c.ack.clone()));
                State::Completed(c)
            }
            State::Accepted(a) if is_success(code) => {
                self.outbox.tell(ClientEvent::Final(response));
                State::Accepted(a)
            }
            other => {
                debug!(branch = %self.branch, code, state = %other.name(), "response absorbed");
                other
            }
        };
        self.enter(next);
    }

    /// The transport failed to send for this transaction (§17.1.4).
    pub fn transport_error(&mut self, _now: Instant) {
        match self.state {
            State::Calling(_) | State::Proceeding(_) | State::Completed(_) => {
                self.outbox.tell(ClientEvent::TransportError);
                self.terminate();
            }
            // Nothing is sent in Accepted; the dialog layer owns the ACK.
            State::Accepted(_) | State::Terminated => {}
        }
    }

    fn terminate(&mut self) {
        if !self.is_terminated() {
            self.outbox.tell(ClientEvent::Terminated);
            self.enter(State::Terminated);
        }
    }

    fn enter(&mut self, next: State) {
        let from = self.state.name();
        self.state = next;
        log_transition(Self::KIND, &self.branch, from, self.state.name());
    }
}

impl Machine for InviteClientTransaction {
    type Event = ClientEvent;
    type Timer = InviteClientTimer;
    const KIND: &'static str = "INVITE client transaction";

    fn outbox(&mut self) -> &mut Outbox<ClientEvent> {
        &mut self.outbox
    }

    fn state(&self) -> TransactionState {
        self.state.name()
    }

    fn branch(&self) -> &str {
        &self.branch
    }

    fn poll_timeout(&self) -> Option<(Instant, InviteClientTimer)> {
        match &self.state {
            State::Calling(c) => earliest(&[
                (c.timer_a.map(|a| a.at), InviteClientTimer::A),
                (Some(c.timer_b), InviteClientTimer::B),
            ]),
            State::Completed(c) => Some((c.timer_d, InviteClientTimer::D)),
            State::Accepted(a) => Some((a.timer_m, InviteClientTimer::M)),
            State::Proceeding(_) | State::Terminated => None,
        }
    }

    fn fire(&mut self, now: Instant, timer: InviteClientTimer) {
        match (&mut self.state, timer) {
            (State::Calling(c), InviteClientTimer::A) => {
                if let Some(a) = c.timer_a {
                    // §17.1.1.2: Timer A doubles without the T2 cap.
                    c.timer_a = Some(a.doubled(now, None));
                    self.outbox.send(SipMessage::Request(self.request.clone()));
                }
            }
            (State::Calling(_), InviteClientTimer::B) => {
                self.outbox.tell(ClientEvent::Timeout);
                self.terminate();
            }
            (State::Completed(_), InviteClientTimer::D)
            | (State::Accepted(_), InviteClientTimer::M) => self.terminate(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::Method;
    use crate::transaction::test_util::*;

    fn ict(reliable: bool) -> (Instant, InviteClientTransaction) {
        let now = Instant::now();
        let mut t = InviteClientTransaction::new(now, invite(), reliable, settings());
        assert!(
            matches!(t.poll_transmit(), Some(SipMessage::Request(r)) if r.method == Method::Invite)
        );
        (now, t)
    }

    #[test]
    fn timer_a_doubles_without_cap_and_timer_b_times_out() {
        let (t0, mut t) = ict(false);
        // Retransmissions at T1, 3T1, 7T1, 15T1, 31T1, 63T1 (intervals 1,2,4,8,16,32 T1).
        let mut sent_at = Vec::new();
        let now = loop {
            let (now, timer) = t.poll_timeout().unwrap();
            t.handle_timeout(now);
            if timer == InviteClientTimer::B {
                break now;
            }
            assert_eq!(timer, InviteClientTimer::A);
            assert!(t.poll_transmit().is_some());
            sent_at.push(ms(t0, now));
        };
        assert_eq!(sent_at, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(ms(t0, now), 32_000);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Timeout)));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
        assert!(t.is_terminated());
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn reliable_transport_arms_only_timer_b() {
        let (t0, t) = ict(true);
        assert_eq!(t.poll_timeout(), Some((t0 + T1 * 64, InviteClientTimer::B)));
    }

    #[test]
    fn provisional_stops_retransmission_and_timer_b() {
        let (t0, mut t) = ict(false);
        t.handle_response(t0, response(&invite(), 180, Some("x")));
        assert_eq!(t.state(), TransactionState::Proceeding);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Provisional(_))));
        assert_eq!(t.poll_timeout(), None);
        t.handle_response(t0, response(&invite(), 183, Some("x")));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Provisional(_))));
    }

    #[test]
    fn non_2xx_is_acked_and_ack_resent_until_timer_d() {
        let (t0, mut t) = ict(false);
        t.handle_response(t0, response(&invite(), 100, None));
        let busy = response(&invite(), 486, Some("b1"));
        t.handle_response(t0, busy.clone());
        assert_eq!(t.state(), TransactionState::Completed);
        let ack = match t.poll_transmit() {
            Some(SipMessage::Request(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.cseq(), Some((1, Method::Ack)));
        assert_eq!(ack.to_tag().as_deref(), Some("b1"));
        assert_eq!(ack.top_via().unwrap().branch.as_deref(), Some(BRANCH));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Provisional(_))));
        assert!(
            matches!(t.poll_event(), Some(ClientEvent::Final(r)) if r.status_code.code() == 486)
        );
        // Retransmitted 486: the same ACK again, nothing for the TU.
        t.handle_response(t0 + T1, busy);
        assert!(matches!(t.poll_transmit(), Some(SipMessage::Request(r)) if r == ack));
        assert!(t.poll_event().is_none());
        // Timer D: 32 s.
        assert_eq!(t.poll_timeout(), Some((t0 + SECS_32, InviteClientTimer::D)));
        t.handle_timeout(t0 + SECS_32 - MS_1);
        assert!(!t.is_terminated());
        t.handle_timeout(t0 + SECS_32);
        assert!(t.is_terminated());
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
    }

    #[test]
    fn timer_d_is_zero_on_reliable_transport() {
        let (t0, mut t) = ict(true);
        t.handle_response(t0, response(&invite(), 503, Some("b1")));
        assert!(
            matches!(t.poll_transmit(), Some(SipMessage::Request(r)) if r.method == Method::Ack)
        );
        assert!(matches!(t.poll_event(), Some(ClientEvent::Final(_))));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
        assert!(t.is_terminated());
    }

    #[test]
    fn two_xx_goes_to_accepted_passes_retransmissions_up_and_ends_with_timer_m() {
        let (t0, mut t) = ict(false);
        let ok = response(&invite(), 200, Some("b1"));
        t.handle_response(t0, ok.clone());
        assert_eq!(t.state(), TransactionState::Accepted);
        assert!(
            t.poll_transmit().is_none(),
            "2xx is not ACKed by the transaction"
        );
        assert!(matches!(t.poll_event(), Some(ClientEvent::Final(_))));
        // A retransmitted (or forked) 2xx goes up again; a late 1xx does not.
        t.handle_response(t0 + T1, ok);
        t.handle_response(t0 + T1, response(&invite(), 180, Some("b1")));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Final(_))));
        assert!(t.poll_event().is_none());
        assert_eq!(t.poll_timeout(), Some((t0 + T1 * 64, InviteClientTimer::M)));
        t.handle_timeout(t0 + T1 * 64);
        assert!(t.is_terminated());
    }

    #[test]
    fn transport_error_terminates() {
        let (t0, mut t) = ict(false);
        t.transport_error(t0);
        assert!(matches!(t.poll_event(), Some(ClientEvent::TransportError)));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
        assert!(t.is_terminated());
    }
}
