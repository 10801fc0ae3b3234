//! The center's timers: what must happen to an interaction at a time, in
//! time order. Timers are never cancelled: each one, when it fires, checks
//! that the interaction is still where the timer expected it, and lapses
//! otherwise (`dispatch::fire`). That keeps this a plain ordered set with
//! no handle bookkeeping; a timer set twice for the same time is kept once.
//!
//! Sans-IO: the center is handed `now`; [`Timers::next`] is what its
//! `poll_timeout` reports.

use std::collections::BTreeSet;

use jiff::Timestamp;

use crate::callback::model::InteractionId;

/// Something the center must do at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Timer {
    /// A waiting callback falls due.
    Due(InteractionId),
    /// A waiting callback's life ends.
    Expire(InteractionId),
    /// An offer times out, or its auto-answer preview runs out.
    Offer(InteractionId),
    /// An agent's exclusion from a queued callback ends: it may be offered
    /// to that agent again.
    Exclusion(InteractionId),
}

/// The pending timers, earliest first.
#[derive(Debug, Default)]
pub(super) struct Timers {
    set: BTreeSet<(Timestamp, Timer)>,
}

impl Timers {
    /// `timer` fires at `at` (at once on the next timeout if `at` is past).
    pub(super) fn at(&mut self, at: Timestamp, timer: Timer) {
        self.set.insert((at, timer));
    }

    /// When the earliest timer fires.
    pub(super) fn next(&self) -> Option<Timestamp> {
        self.set.first().map(|(at, _)| *at)
    }

    /// The earliest timer due at `now`, taken out; `None` once none is.
    pub(super) fn pop_due(&mut self, now: Timestamp) -> Option<Timer> {
        if self.next()? > now {
            return None;
        }
        self.set.pop_first().map(|(_, timer)| timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn id(n: u8) -> InteractionId {
        InteractionId(format!("cb-{n}"))
    }

    #[test]
    fn timers_fire_in_time_order_and_only_when_due() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.at(at(30), Timer::Offer(id(1)));
        t.at(at(10), Timer::Due(id(2)));
        t.at(at(20), Timer::Expire(id(3)));
        assert_eq!(t.next(), Some(at(10)));
        assert_eq!(t.pop_due(at(9)), None);
        assert_eq!(t.pop_due(at(20)), Some(Timer::Due(id(2))));
        assert_eq!(t.pop_due(at(20)), Some(Timer::Expire(id(3))));
        assert_eq!(t.pop_due(at(20)), None);
        assert_eq!(t.next(), Some(at(30)));
        assert_eq!(t.pop_due(at(99)), Some(Timer::Offer(id(1))));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn a_timer_set_twice_fires_once_and_ties_keep_a_fixed_order() {
        let mut t = Timers::default();
        t.at(at(5), Timer::Exclusion(id(1)));
        t.at(at(5), Timer::Due(id(1)));
        t.at(at(5), Timer::Due(id(1)));
        assert_eq!(t.pop_due(at(5)), Some(Timer::Due(id(1))));
        assert_eq!(t.pop_due(at(5)), Some(Timer::Exclusion(id(1))));
        assert_eq!(t.pop_due(at(5)), None);
    }
}
