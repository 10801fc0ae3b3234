//! The call layer's timer wheel: deadlines in virtual time, in order.
//!
//! Owns the armed timers and nothing else: what a timer means and what
//! firing it does are `timers`' (ring timeouts, RFC 4028 session timers);
//! which leg a timer belongs to is the leg's (`Leg::timers` keeps the keys
//! so that forgetting a leg cancels its timers without a scan). It never
//! reads the clock: `now` comes in, the earliest deadline goes out for the
//! driver's `poll_timeout`.

use std::collections::BTreeMap;
use std::time::Instant;

/// Names one armed timer: its deadline, then the order it was armed in (two
/// timers due at the same instant fire in that order).
pub(super) type TimerKey = (Instant, u64);

/// Timers of type `T` by deadline.
#[derive(Debug)]
pub(super) struct TimerWheel<T> {
    armed: BTreeMap<TimerKey, T>,
    /// The sequence number of the last timer armed.
    armed_count: u64,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        TimerWheel {
            armed: BTreeMap::new(),
            armed_count: 0,
        }
    }
}

impl<T> TimerWheel<T> {
    /// Arms `timer` for `at`; the key cancels it.
    pub fn schedule(&mut self, at: Instant, timer: T) -> TimerKey {
        self.armed_count += 1;
        let key = (at, self.armed_count);
        self.armed.insert(key, timer);
        key
    }

    /// Disarms a timer; what it was, if it had not fired yet.
    pub fn cancel(&mut self, key: &TimerKey) -> Option<T> {
        self.armed.remove(key)
    }

    /// The earliest deadline armed.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.armed.keys().next().map(|(at, _)| *at)
    }

    /// The earliest timer due at `now` (deadline at or before it), taken
    /// off the wheel; `None` when none is due.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        let entry = self.armed.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        Some(entry.remove())
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.armed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timers_fire_in_deadline_order_then_in_the_order_armed() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = TimerWheel::default();
        assert_eq!(w.next_deadline(), None);
        w.schedule(t0 + 3 * s, "c");
        w.schedule(t0 + s, "a1");
        w.schedule(t0 + 2 * s, "b");
        w.schedule(t0 + s, "a2");
        assert_eq!(w.next_deadline(), Some(t0 + s));
        assert_eq!(w.pop_expired(t0), None, "nothing due before its deadline");
        assert_eq!(w.pop_expired(t0 + s), Some("a1"), "due at its deadline");
        assert_eq!(
            w.pop_expired(t0 + s),
            Some("a2"),
            "same instant: armed order"
        );
        assert_eq!(w.pop_expired(t0 + s), None);
        assert_eq!(w.next_deadline(), Some(t0 + 2 * s));
        // A late wake-up fires everything overdue, earliest first.
        assert_eq!(w.pop_expired(t0 + 10 * s), Some("b"));
        assert_eq!(w.pop_expired(t0 + 10 * s), Some("c"));
        assert_eq!(w.pop_expired(t0 + 10 * s), None);
        assert_eq!((w.len(), w.next_deadline()), (0, None));
    }

    #[test]
    fn a_cancelled_timer_never_fires_and_cancelling_twice_is_harmless() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut w = TimerWheel::default();
        let first = w.schedule(t0 + s, 1);
        let second = w.schedule(t0 + s, 2);
        let later = w.schedule(t0 + 5 * s, 3);
        assert_eq!(w.cancel(&first), Some(1));
        assert_eq!(w.cancel(&first), None, "already cancelled");
        assert_eq!(w.next_deadline(), Some(t0 + s), "the other one stays");
        assert_eq!(w.cancel(&later), Some(3));
        assert_eq!(w.pop_expired(t0 + 10 * s), Some(2));
        assert_eq!(w.cancel(&second), None, "fired: nothing to cancel");
        assert_eq!((w.len(), w.next_deadline()), (0, None));
    }
}
