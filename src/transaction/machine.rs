//! What the four transaction machines share (RFC 3261 §17): the queues a
//! machine fills and the layer drains, the timer loop, and the state log.
//!
//! Each machine keeps its own states and timers (they differ by the RFC's
//! diagrams); this module owns only the skeleton every one of them had
//! written out again: `poll_transmit`/`poll_event` over an [`Outbox`],
//! `handle_timeout` firing every due timer in order, and the debug line on a
//! state change. It must not know any machine's states or timers.

use std::collections::VecDeque;
use std::fmt::Display;
use std::time::Instant;

use tracing::debug;

use super::TransactionState;
use crate::sip::SipMessage;

/// What a machine produced and the layer has not taken yet: messages to put
/// on the wire and events for the transaction user, each in order.
#[derive(Debug)]
pub struct Outbox<E> {
    transmits: VecDeque<SipMessage>,
    events: VecDeque<E>,
}

impl<E> Default for Outbox<E> {
    fn default() -> Self {
        Outbox {
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl<E> Outbox<E> {
    /// An outbox with the machine's first message already queued (the
    /// INVITE of a client transaction, the 100 Trying of an INVITE server).
    pub(super) fn with_first(message: SipMessage) -> Self {
        let mut outbox = Outbox::default();
        outbox.send(message);
        outbox
    }

    pub(super) fn send(&mut self, message: SipMessage) {
        self.transmits.push_back(message);
    }

    pub(super) fn tell(&mut self, event: E) {
        self.events.push_back(event);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.transmits.is_empty() && self.events.is_empty()
    }

    /// Gives the queues' buffers back: a completed transaction that lives on
    /// only to absorb retransmissions should hold as little as it can.
    pub(super) fn release(&mut self) {
        *self = Outbox::default();
    }
}

/// One transaction state machine as the layer drives it: `handle_*` with
/// `now`, then `poll_transmit` and `poll_event` until empty, then sleep
/// until `poll_timeout` and call `handle_timeout`.
pub trait Machine {
    /// What the machine tells its transaction user.
    type Event;
    /// The RFC's letters for this machine's timers.
    type Timer: Copy + PartialEq + Display;
    /// For the logs, e.g. "INVITE client transaction".
    const KIND: &'static str;

    fn outbox(&mut self) -> &mut Outbox<Self::Event>;
    fn state(&self) -> TransactionState;
    /// The top Via's branch, for the logs.
    fn branch(&self) -> &str;
    /// When the next timer fires, and which (only timers armed in the
    /// current state).
    fn poll_timeout(&self) -> Option<(Instant, Self::Timer)>;
    /// What the RFC says a timer does in the current state.
    fn fire(&mut self, now: Instant, timer: Self::Timer);

    fn is_terminated(&self) -> bool {
        self.state() == TransactionState::Terminated
    }

    /// Fires every timer due at `now`, earliest first.
    fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, timer)) = self.poll_timeout() {
            if at > now {
                break;
            }
            debug!(branch = %self.branch(), %timer, "timer fired");
            self.fire(now, timer);
            // A timer that fired must move its deadline or the state; one
            // that did neither would spin here for ever.
            if self.poll_timeout() == Some((at, timer)) {
                break;
            }
        }
    }

    /// What to send now, in order.
    fn poll_transmit(&mut self) -> Option<SipMessage> {
        self.outbox().transmits.pop_front()
    }

    /// What to tell the transaction user, in order.
    fn poll_event(&mut self) -> Option<Self::Event> {
        self.outbox().events.pop_front()
    }
}

/// A boxed machine is driven as the machine itself (the layer boxes the
/// large INVITE machine so its table stays small).
impl<M: Machine + ?Sized> Machine for Box<M> {
    type Event = M::Event;
    type Timer = M::Timer;
    const KIND: &'static str = M::KIND;

    fn outbox(&mut self) -> &mut Outbox<M::Event> {
        (**self).outbox()
    }
    fn state(&self) -> TransactionState {
        (**self).state()
    }
    fn branch(&self) -> &str {
        (**self).branch()
    }
    fn poll_timeout(&self) -> Option<(Instant, M::Timer)> {
        (**self).poll_timeout()
    }
    fn fire(&mut self, now: Instant, timer: M::Timer) {
        (**self).fire(now, timer)
    }
}

/// The debug line every machine writes when its state changes.
pub(super) fn log_transition(
    kind: &'static str,
    branch: &str,
    from: TransactionState,
    to: TransactionState,
) {
    if from != to {
        debug!(%branch, %from, %to, "{kind} state");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::time::Duration;

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum T {
        X,
    }

    impl fmt::Display for T {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("X")
        }
    }

    /// A machine whose timer moves by `step` each time it fires, `left`
    /// times, then disarms.
    struct Ticker {
        outbox: Outbox<u32>,
        at: Instant,
        step: Duration,
        left: u32,
        fired: u32,
    }

    impl Machine for Ticker {
        type Event = u32;
        type Timer = T;
        const KIND: &'static str = "test";
        fn outbox(&mut self) -> &mut Outbox<u32> {
            &mut self.outbox
        }
        fn state(&self) -> TransactionState {
            if self.left == 0 {
                TransactionState::Terminated
            } else {
                TransactionState::Trying
            }
        }
        fn branch(&self) -> &str {
            "z9hG4bKtest"
        }
        fn poll_timeout(&self) -> Option<(Instant, T)> {
            (self.left > 0).then_some((self.at, T::X))
        }
        fn fire(&mut self, _now: Instant, _timer: T) {
            self.fired += 1;
            self.outbox.tell(self.fired);
            self.at += self.step;
            if !self.step.is_zero() {
                self.left -= 1;
            }
        }
    }

    #[test]
    fn every_due_timer_fires_in_order_and_output_drains_in_order() {
        let t0 = Instant::now();
        let mut m = Ticker {
            outbox: Outbox::default(),
            at: t0,
            step: Duration::from_millis(10),
            left: 5,
            fired: 0,
        };
        m.handle_timeout(t0 + Duration::from_millis(25));
        assert_eq!(m.fired, 3, "t0, t0+10, t0+20 were due");
        assert_eq!(
            std::iter::from_fn(|| m.poll_event()).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert_eq!(
            m.poll_timeout(),
            Some((t0 + Duration::from_millis(30), T::X))
        );
        assert!(!m.is_terminated());
    }

    #[test]
    fn a_timer_that_does_not_move_fires_once_instead_of_spinning() {
        let t0 = Instant::now();
        let mut m = Ticker {
            outbox: Outbox::default(),
            at: t0,
            step: Duration::ZERO,
            left: 1,
            fired: 0,
        };
        m.handle_timeout(t0);
        assert_eq!(m.fired, 1);
    }

    #[test]
    fn release_empties_and_first_message_is_queued() {
        let request = crate::transaction::test_util::request_with("OPTIONS", "z9hG4bK1", 1, None);
        let mut o: Outbox<u32> = Outbox::with_first(SipMessage::Request(request));
        assert!(!o.is_empty());
        o.tell(7);
        o.release();
        assert!(o.is_empty());
    }
}
