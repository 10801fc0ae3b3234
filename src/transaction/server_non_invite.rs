//! Non-INVITE server transaction: RFC 3261 §17.2.2.
//!
//! ```text
//!  Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed --Timer J--> Terminated
//!    \--200-699 from TU--> Completed
//! ```
//!
//! No 100 Trying is sent for non-INVITE requests (RFC 4320 §4.1 discourages
//! it); retransmitted requests are dropped in Trying and answered with the
//! last response afterwards.

use std::mem;
use std::time::Instant;

use tracing::debug;

use super::machine::{log_transition, Machine, Outbox};
use super::{
    is_provisional, NonInviteServerTimer, ServerEvent, ServerReceipt, TimerSettings,
    TransactionError, TransactionState,
};
use crate::sip::{Request, Response, SipMessage};

/// Waiting for the TU's first response; retransmissions are dropped.
#[derive(Debug)]
struct Trying;

/// A provisional response was sent; it answers retransmissions.
#[derive(Debug)]
struct Proceeding {
    last_provisional: Response,
}

/// The final response was sent; it answers retransmissions until Timer J.
#[derive(Debug)]
struct Completed {
    response: Response,
    timer_j: Instant,
}

#[derive(Debug)]
enum State {
    Trying(Trying),
    Proceeding(Proceeding),
    Completed(Completed),
    Terminated,
}

impl State {
    fn name(&self) -> TransactionState {
        match self {
            State::Trying(_) => TransactionState::Trying,
            State::Proceeding(_) => TransactionState::Proceeding,
            State::Completed(_) => TransactionState::Completed,
            State::Terminated => TransactionState::Terminated,
        }
    }
}

/// The server side of one non-INVITE transaction (including CANCEL).
#[derive(Debug)]
pub struct NonInviteServerTransaction {
    /// Held until the final response: a completed transaction only answers
    /// retransmissions (with its response), and a registrar under load holds
    /// 64*T1 worth of them, so each keeps as little as it can.
    request: Option<Box<Request>>,
    branch: String,
    reliable: bool,
    settings: TimerSettings,
    state: State,
    outbox: Outbox<ServerEvent>,
}

impl NonInviteServerTransaction {
    /// `branch` is the top Via's, which the layer read to key the
    /// transaction (kept for the logs).
    pub fn new(
        _now: Instant,
        request: Request,
        branch: String,
        reliable: bool,
        settings: TimerSettings,
    ) -> Self {
        debug!(%branch, method = %request.method, state = "Trying", "non-INVITE server transaction created");
        NonInviteServerTransaction {
            request: Some(Box::new(request)),
            branch,
            reliable,
            settings,
            state: State::Trying(Trying),
            outbox: Outbox::default(),
        }
    }

    /// The request, until the final response was sent.
    pub fn request(&self) -> Option<&Request> {
        self.request.as_deref()
    }

    /// Frees what a completed transaction no longer needs once its output
    /// was taken: the request and the queues' buffers.
    pub fn shrink(&mut self) {
        if matches!(self.state, State::Completed(_) | State::Terminated) && self.outbox.is_empty() {
            self.request = None;
            self.outbox.release();
        }
    }

    /// A retransmission of the request (§17.2.2).
    pub fn handle_request(&mut self, _now: Instant, _request: &Request) -> ServerReceipt {
        let last = match &self.state {
            State::Proceeding(p) => Some(p.last_provisional.clone()),
            State::Completed(c) => Some(c.response.clone()),
            State::Trying(_) | State::Terminated => None,
        };
        if let Some(response) = last {
            self.outbox.send(SipMessage::Response(response));
        }
        ServerReceipt::Absorbed
    }

    /// A response from the TU; refused once the final response was sent.
    pub fn respond(&mut self, now: Instant, response: Response) -> Result<(), TransactionError> {
        let code = response.status_code.code();
        let state = mem::replace(&mut self.state, State::Terminated);
        let next = match state {
            State::Trying(_) | State::Proceeding(_) => {
                self.outbox.send(SipMessage::Response(response.clone()));
                if is_provisional(code) {
                    State::Proceeding(Proceeding {
                        last_provisional: response,
                    })
                } else if self.reliable {
                    self.outbox.tell(ServerEvent::Terminated);
                    State::Terminated
                } else {
                    State::Completed(Completed {
                        response,
                        timer_j: now + self.settings.t1_x64(),
                    })
                }
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

    /// The transport failed to send a response (§17.2.4).
    pub fn transport_error(&mut self, _now: Instant) {
        if !self.is_terminated() {
            self.outbox.tell(ServerEvent::TransportError);
            self.terminate();
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

impl Machine for NonInviteServerTransaction {
    type Event = ServerEvent;
    type Timer = NonInviteServerTimer;
    const KIND: &'static str = "non-INVITE server transaction";

    fn outbox(&mut self) -> &mut Outbox<ServerEvent> {
        &mut self.outbox
    }

    fn state(&self) -> TransactionState {
        self.state.name()
    }

    fn branch(&self) -> &str {
        &self.branch
    }

    fn poll_timeout(&self) -> Option<(Instant, NonInviteServerTimer)> {
        match &self.state {
            State::Completed(c) => Some((c.timer_j, NonInviteServerTimer::J)),
            _ => None,
        }
    }

    fn fire(&mut self, _now: Instant, _timer: NonInviteServerTimer) {
        self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_util::*;

    fn nist(reliable: bool) -> (Instant, NonInviteServerTransaction) {
        let now = Instant::now();
        (
            now,
            NonInviteServerTransaction::new(now, options(), BRANCH.into(), reliable, settings()),
        )
    }

    fn sent_code(t: &mut NonInviteServerTransaction) -> Option<u16> {
        match t.poll_transmit()? {
            SipMessage::Response(r) => Some(r.status_code.code()),
            SipMessage::Request(r) => panic!("server sent a request {r:?}"),
        }
    }

    #[test]
    fn retransmissions_dropped_in_trying_then_answered_with_the_last_response() {
        let (t0, mut t) = nist(false);
        assert!(t.poll_transmit().is_none(), "no 100 for non-INVITE");
        t.handle_request(t0, &options());
        assert_eq!(sent_code(&mut t), None);
        t.respond(t0, response(&options(), 183, Some("s"))).unwrap();
        assert_eq!(sent_code(&mut t), Some(183));
        t.handle_request(t0, &options());
        assert_eq!(sent_code(&mut t), Some(183));
        t.respond(t0, response(&options(), 200, Some("s"))).unwrap();
        assert_eq!(sent_code(&mut t), Some(200));
        t.handle_request(t0, &options());
        assert_eq!(sent_code(&mut t), Some(200));
        assert!(t.respond(t0, response(&options(), 500, Some("s"))).is_err());
    }

    #[test]
    fn timer_j_is_64_t1_on_unreliable() {
        let (t0, mut t) = nist(false);
        t.respond(t0, response(&options(), 200, Some("s"))).unwrap();
        assert_eq!(t.state(), TransactionState::Completed);
        assert_eq!(
            t.poll_timeout(),
            Some((t0 + T1 * 64, NonInviteServerTimer::J))
        );
        t.handle_timeout(t0 + T1 * 64 - MS_1);
        assert!(!t.is_terminated());
        t.handle_timeout(t0 + T1 * 64);
        assert!(t.is_terminated());
        assert_eq!(t.poll_event(), Some(ServerEvent::Terminated));
    }

    #[test]
    fn timer_j_is_zero_on_reliable() {
        let (t0, mut t) = nist(true);
        t.respond(t0, response(&options(), 200, Some("s"))).unwrap();
        assert_eq!(sent_code(&mut t), Some(200), "the response still goes out");
        assert!(t.is_terminated());
    }
}
