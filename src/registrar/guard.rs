//! Rate limiting of failed authentication per source IP.
//!
//! Password guessing against a registrar is cheap for the attacker and
//! costly for users, so failures are counted per source address within a
//! window: past half of `max_failures` each answer is held back a little
//! longer (the driver sleeps before sending the 401/403), and at
//! `max_failures` the address is blocked for `block`, its requests dropped
//! without an answer. A successful authentication clears the record.
//!
//! Only failures the guard is told about count: the registrar reports wrong
//! credentials, not a first REGISTER without any (that is the normal start
//! of a digest exchange), nor a stale nonce.
//!
//! Memory is bounded by `max_tracked`; when full, stale records go first,
//! then the oldest unblocked ones. Pure: time comes in as `now`.
//!
//! The records are one concurrent table (dashmap) that the registrars of
//! every endpoint worker share through [`AuthGuard::sibling`]: a guesser
//! spreading its attempts over Call-IDs (and so over workers) is counted
//! once. Every request's `is_blocked` is one read of one lock shard.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Thresholds of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// Failures within `window` that block the source.
    pub max_failures: u32,
    /// How long failures are remembered, from the first one.
    pub window: Duration,
    /// How long a blocked source stays blocked.
    pub block: Duration,
    /// The first delay, once failures pass half of `max_failures`; it doubles with each further failure.
    pub delay_step: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Records kept at most (one per source IP).
    pub max_tracked: usize,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_failures: 10,
            window: Duration::from_secs(300),
            block: Duration::from_secs(900),
            delay_step: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
            max_tracked: 10_000,
        }
    }
}

/// What to do with a request from, or an answer to, a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Carry on normally.
    Allow,
    /// Answer, but only after this delay.
    Delay(Duration),
    /// Say nothing: the source is blocked.
    Drop,
}

#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    window_start: Instant,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

/// Failure counts per source IP.
#[derive(Debug)]
pub struct AuthGuard {
    settings: GuardSettings,
    records: Arc<DashMap<IpAddr, Record>>,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Answer, after the delay if any.
    Answer { delay: Option<Duration> },
    /// This failure blocked the source until then; drop the request.
    Blocked { until: Instant },
}

impl AuthGuard {
    pub fn new(settings: GuardSettings) -> Self {
        AuthGuard {
            settings,
            records: Arc::new(DashMap::new()),
        }
    }

    /// A guard with the same settings over the same records (another worker's).
    pub fn sibling(&self) -> Self {
        AuthGuard {
            settings: self.settings.clone(),
            records: self.records.clone(),
        }
    }

    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    /// Whether a request from `ip` may be processed at all: `Drop` while
    /// the source is blocked, `Allow` otherwise.
    pub fn check(&mut self, now: Instant, ip: IpAddr) -> Verdict {
        let blocked_until = match self.records.get(&ip) {
            Some(record) => record.blocked_until,
            None => return Verdict::Allow,
        };
        match blocked_until {
            Some(until) if now < until => Verdict::Drop,
            Some(_) => {
                // The block is over: start afresh (unless another worker
                // blocked it again meanwhile).
                self.records
                    .remove_if(&ip, |_, r| r.blocked_until.is_some_and(|u| now >= u));
                Verdict::Allow
            }
            None => Verdict::Allow,
        }
    }

    /// Counts a failed authentication from `ip`.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr) -> FailureOutcome {
        if !self.records.contains_key(&ip) {
            self.make_room(now);
        }
        let s = &self.settings;
        let mut record = self.records.entry(ip).or_insert(Record {
            failures: 0,
            window_start: now,
            last_failure: now,
            blocked_until: None,
        });
        if let Some(until) = record.blocked_until {
            if now < until {
                return FailureOutcome::Blocked { until };
            }
            record.blocked_until = None;
            record.failures = 0;
            record.window_start = now;
        }
        if now.saturating_duration_since(record.window_start) > s.window {
            record.failures = 0;
            record.window_start = now;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        if record.failures >= s.max_failures {
            let until = now + s.block;
            record.blocked_until = Some(until);
            return FailureOutcome::Blocked { until };
        }
        let half = s.max_failures / 2;
        let delay = (record.failures > half).then(|| {
            let doublings = (record.failures - half - 1).min(16);
            s.delay_step
                .saturating_mul(1u32 << doublings)
                .min(s.max_delay)
        });
        FailureOutcome::Answer { delay }
    }

    /// A successful authentication from `ip` clears its record.
    pub fn record_success(&mut self, ip: IpAddr) {
        self.records.remove(&ip);
    }

    /// Whether `ip` is blocked at `now`.
    pub fn is_blocked(&self, now: Instant, ip: IpAddr) -> bool {
        self.records
            .get(&ip)
            .and_then(|r| r.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Records currently held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Frees space for one more record.
    fn make_room(&mut self, now: Instant) {
        if self.records.len() < self.settings.max_tracked.max(1) {
            return;
        }
        let window = self.settings.window;
        // Stale: block over, or window over and not blocked.
        self.records.retain(|_, r| match r.blocked_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(r.window_start) <= window,
        });
        let max = self.settings.max_tracked.max(1);
        if self.records.len() < max {
            return;
        }
        // Still full: drop the oldest eighth, unblocked records first, so
        // that the sort is paid once per many insertions.
        let mut order: Vec<(bool, Instant, IpAddr)> = self
            .records
            .iter()
            .map(|e| (e.blocked_until.is_some(), e.last_failure, *e.key()))
            .collect();
        order.sort();
        let evict = (max / 8).max(1).max(self.records.len() + 1 - max);
        for (_, _, ip) in order.into_iter().take(evict) {
            self.records.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> GuardSettings {
        GuardSettings {
            max_failures: 6,
            window: Duration::from_secs(60),
            block: Duration::from_secs(600),
            delay_step: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
            max_tracked: 4,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, n])
    }

    #[test]
    fn slows_then_blocks_then_unblocks() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        let delays: Vec<_> = (0..5)
            .map(|i| g.record_failure(t0 + Duration::from_secs(i), ip(1)))
            .collect();
        assert_eq!(
            delays,
            vec![
                FailureOutcome::Answer { delay: None },
                FailureOutcome::Answer { delay: None },
                FailureOutcome::Answer { delay: None },
                FailureOutcome::Answer {
                    delay: Some(Duration::from_millis(500))
                },
                FailureOutcome::Answer {
                    delay: Some(Duration::from_secs(1))
                },
            ]
        );
        let t6 = t0 + Duration::from_secs(6);
        assert_eq!(
            g.record_failure(t6, ip(1)),
            FailureOutcome::Blocked {
                until: t6 + Duration::from_secs(600)
            }
        );
        assert_eq!(g.check(t6 + Duration::from_secs(599), ip(1)), Verdict::Drop);
        assert_eq!(g.check(t6, ip(2)), Verdict::Allow);
        assert_eq!(
            g.check(t6 + Duration::from_secs(600), ip(1)),
            Verdict::Allow
        );
        assert_eq!(
            g.record_failure(t6 + Duration::from_secs(601), ip(1)),
            FailureOutcome::Answer { delay: None }
        );
    }

    #[test]
    fn delay_is_capped() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(GuardSettings {
            max_failures: 40,
            ..settings()
        });
        let mut last = None;
        for _ in 0..39 {
            if let FailureOutcome::Answer { delay } = g.record_failure(t0, ip(1)) {
                last = delay;
            }
        }
        assert_eq!(last, Some(Duration::from_secs(2)));
    }

    #[test]
    fn window_expiry_and_success_reset() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        for _ in 0..5 {
            g.record_failure(t0, ip(1));
        }
        // Past the window the count starts again.
        assert_eq!(
            g.record_failure(t0 + Duration::from_secs(61), ip(1)),
            FailureOutcome::Answer { delay: None }
        );
        for _ in 0..4 {
            g.record_failure(t0 + Duration::from_secs(61), ip(1));
        }
        g.record_success(ip(1));
        assert_eq!(
            g.record_failure(t0 + Duration::from_secs(62), ip(1)),
            FailureOutcome::Answer { delay: None }
        );
    }

    #[test]
    fn memory_is_bounded_and_blocked_sources_survive_eviction() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        for _ in 0..6 {
            g.record_failure(t0, ip(1));
        }
        assert!(g.is_blocked(t0, ip(1)));
        for n in 2..50 {
            g.record_failure(t0 + Duration::from_secs(n as u64), ip(n));
            assert!(g.len() <= 4);
        }
        assert!(g.is_blocked(t0 + Duration::from_secs(50), ip(1)));
    }
}
