//! Non-INVITE client transaction: RFC 3261 §17.1.2.
//!
//! ```text
//!  Trying --1xx--> Proceeding --200-699--> Completed --Timer K--> Terminated
//!    \--200-699--> Completed      \--Timer F--> Terminated (Timeout)
//! ```
//!
//! Timer E retransmits on unreliable transports: doubling up to T2 in Trying,
//! every T2 once a provisional response has arrived (§17.1.2.2).

use std::mem;
use std::time::Instant;

use tracing::debug;

use super::machine::{log_transition, Machine, Outbox};
use super::{
    earliest, is_provisional, ClientEvent, NonInviteClientTimer, Retransmit, TimerSettings,
    TransactionState,
};
use crate::sip::{MessageHeaders, Request, Response, SipMessage};

/// Waiting for any response; retransmitting with a doubling Timer E.
#[derive(Debug)]
struct Trying {
    timer_e: Option<Retransmit>,
    timer_f: Instant,
}

/// A provisional response arrived; retransmitting every T2.
#[derive(Debug)]
struct Proceeding {
    timer_e: Option<Retransmit>,
    timer_f: Instant,
}

/// A final response arrived; absorbing its retransmissions.
#[derive(Debug)]
struct Completed {
    timer_k: Instant,
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

/// The client side of one non-INVITE transaction (including CANCEL).
#[derive(Debug)]
pub struct NonInviteClientTransaction {
    request: Request,
    branch: String,
    reliable: bool,
    settings: TimerSettings,
    state: State,
    outbox: Outbox<ClientEvent>,
}

impl NonInviteClientTransaction {
    /// Starts the transaction: the request is queued for sending at once,
    /// Timer E (unreliable only) and Timer F are armed.
    pub fn new(now: Instant, request: Request, reliable: bool, settings: TimerSettings) -> Self {
        let branch = request.top_via().and_then(|v| v.branch).unwrap_or_default();
        let outbox = Outbox::with_first(SipMessage::Request(request.clone()));
        let state = State::Trying(Trying {
            timer_e: (!reliable).then(|| Retransmit::first(now, &settings)),
            timer_f: now + settings.t1_x64(),
        });
        debug!(%branch, method = %request.method, state = "Trying", "non-INVITE client transaction created");
        NonInviteClientTransaction {
            request,
            branch,
            reliable,
            settings,
            state,
            outbox,
        }
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// A response matched to this transaction (§17.1.3).
    pub fn handle_response(&mut self, now: Instant, response: Response) {
        let code = response.status_code.code();
        let state = mem::replace(&mut self.state, State::Terminated);
        let next = match state {
            State::Trying(Trying { timer_e, timer_f })
            | State::Proceeding(Proceeding { timer_e, timer_f })
                if is_provisional(code) =>
            {
                self.outbox.tell(ClientEvent::Provisional(response));
                State::Proceeding(Proceeding { timer_e, timer_f })
            }
            State::Trying(_) | State::Proceeding(_) => {
                self.outbox.tell(ClientEvent::Final(response));
                if self.reliable {
                    self.outbox.tell(ClientEvent::Terminated);
                    State::Terminated
                } else {
                    State::Completed(Completed {
                        timer_k: now + self.settings.t4,
                    })
                }
            }
            other => {
                debug!(branch = %self.branch, code, state = %other.name(), "response absorbed");
                other
            }
        };
        self.enter(next);
    }

    /// The transport failed to send the request (§17.1.4).
    pub fn transport_error(&mut self, _now: Instant) {
        if matches!(self.state, State::Trying(_) | State::Proceeding(_)) {
            self.outbox.tell(ClientEvent::TransportError);
            self.terminate();
        }
    }

    fn retransmit(&mut self) {
        self.outbox.send(SipMessage::Request(self.request.clone()));
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

impl Machine for NonInviteClientTransaction {
    type Event = ClientEvent;
    type Timer = NonInviteClientTimer;
    const KIND: &'static str = "non-INVITE client transaction";

    fn outbox(&mut self) -> &mut Outbox<ClientEvent> {
        &mut self.outbox
    }

    fn state(&self) -> TransactionState {
        self.state.name()
    }

    fn branch(&self) -> &str {
        &self.branch
    }

    fn poll_timeout(&self) -> Option<(Instant, NonInviteClientTimer)> {
        match &self.state {
            State::Trying(Trying { timer_e, timer_f })
            | State::Proceeding(Proceeding { timer_e, timer_f }) => earliest(&[
                (timer_e.map(|e| e.at), NonInviteClientTimer::E),
                (Some(*timer_f), NonInviteClientTimer::F),
            ]),
            State::Completed(c) => Some((c.timer_k, NonInviteClientTimer::K)),
            State::Terminated => None,
        }
    }

    fn fire(&mut self, now: Instant, timer: NonInviteClientTimer) {
        let t2 = self.settings.t2;
        match (&mut self.state, timer) {
            (State::Trying(s), NonInviteClientTimer::E) => {
                s.timer_e = s.timer_e.map(|e| e.doubled(now, Some(t2)));
                self.retransmit();
            }
            (State::Proceeding(s), NonInviteClientTimer::E) => {
                s.timer_e = Some(Retransmit::fixed(now, t2));
                self.retransmit();
            }
            (State::Trying(_) | State::Proceeding(_), NonInviteClientTimer::F) => {
                self.outbox.tell(ClientEvent::Timeout);
                self.terminate();
            }
            (State::Completed(_), NonInviteClientTimer::K) => self.terminate(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_util::*;

    fn nict(reliable: bool) -> (Instant, NonInviteClientTransaction) {
        let now = Instant::now();
        let mut t = NonInviteClientTransaction::new(now, options(), reliable, settings());
        assert!(t.poll_transmit().is_some());
        (now, t)
    }

    /// Runs timers until `until`, returning the ms offsets of retransmissions.
    fn retransmissions(
        t0: Instant,
        t: &mut NonInviteClientTransaction,
        until: Instant,
    ) -> Vec<u128> {
        let mut out = Vec::new();
        while let Some((at, _)) = t.poll_timeout() {
            if at > until {
                break;
            }
            t.handle_timeout(at);
            while t.poll_transmit().is_some() {
                out.push(ms(t0, at));
            }
        }
        out
    }

    #[test]
    fn timer_e_doubles_capped_at_t2_and_timer_f_times_out() {
        let (t0, mut t) = nict(false);
        let sent = retransmissions(t0, &mut t, t0 + T1 * 64);
        // Intervals 0.5, 1, 2, 4, 4, 4 ... s.
        assert_eq!(&sent[..7], &[500, 1500, 3500, 7500, 11500, 15500, 19500]);
        assert_eq!(sent.last(), Some(&31500));
        assert!(t.is_terminated());
        assert!(matches!(t.poll_event(), Some(ClientEvent::Timeout)));
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
    }

    #[test]
    fn timer_f_fires_at_64_t1() {
        let (t0, mut t) = nict(true);
        assert_eq!(
            t.poll_timeout(),
            Some((t0 + T1 * 64, NonInviteClientTimer::F))
        );
        t.handle_timeout(t0 + T1 * 64 - MS_1);
        assert!(!t.is_terminated());
        t.handle_timeout(t0 + T1 * 64);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Timeout)));
    }

    #[test]
    fn proceeding_retransmits_every_t2() {
        let (t0, mut t) = nict(false);
        t.handle_response(t0 + MS_1, response(&options(), 100, None));
        assert_eq!(t.state(), TransactionState::Proceeding);
        assert!(matches!(t.poll_event(), Some(ClientEvent::Provisional(_))));
        let sent = retransmissions(t0, &mut t, t0 + T2 * 3);
        // Timer E armed in Trying still fires at T1, then every T2.
        assert_eq!(sent, vec![500, 4500, 8500]);
    }

    #[test]
    fn final_response_completes_and_timer_k_is_t4() {
        let (t0, mut t) = nict(false);
        let ok = response(&options(), 200, Some("x"));
        t.handle_response(t0, ok.clone());
        assert!(matches!(t.poll_event(), Some(ClientEvent::Final(_))));
        assert_eq!(t.state(), TransactionState::Completed);
        // Retransmissions of the final response are absorbed.
        t.handle_response(t0 + MS_1, ok);
        assert!(t.poll_event().is_none());
        assert!(t.poll_transmit().is_none());
        assert_eq!(t.poll_timeout(), Some((t0 + T4, NonInviteClientTimer::K)));
        t.handle_timeout(t0 + T4);
        assert!(t.is_terminated());
        assert!(matches!(t.poll_event(), Some(ClientEvent::Terminated)));
    }

    #[test]
    fn timer_k_is_zero_on_reliable_transport() {
        let (t0, mut t) = nict(true);
        t.handle_response(t0, response(&options(), 404, Some("x")));
        assert!(t.is_terminated());
    }
}
