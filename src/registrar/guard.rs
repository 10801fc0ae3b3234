//! Rate limiting of failed authentication, per (source address, user) and
//! per source address.
//!
//! Password guessing against a registrar is cheap for the attacker and
//! costly for users, so failures are counted within a window. They are
//! counted per (source, user) first: past half of `max_failures` each answer
//! to that pair is held back a little longer (the driver sleeps before
//! sending it), and at `max_failures` the pair is blocked for `block`, its
//! requests dropped without an answer. A whole source is blocked only when
//! `max_users` different users have failed from it within the window: that
//! is guessing or enumeration, not one phone with a wrong password. Why not
//! per source alone: the phones of an office sit behind one NAT address, and
//! one misconfigured phone must not lock the others out. A successful
//! authentication clears the pair's record.
//!
//! Only failures the guard is told about count: the registrar reports wrong
//! credentials, not a first REGISTER without any (that is the normal start
//! of a digest exchange), nor a stale nonce.
//!
//! Memory is bounded by `max_tracked` sources (each holds at most
//! `max_users` users before it is blocked); when full, stale records go
//! first, then the oldest unblocked ones. Pure: time comes in as `now`.
//!
//! The records are one concurrent table (dashmap) that the registrars of
//! every endpoint worker share through [`AuthGuard::sibling`]: a guesser
//! spreading its attempts over Call-IDs (and so over workers) is counted
//! once. Every request's check is one read of one lock shard.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Thresholds of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardSettings {
    /// Failures of one user from one source within `window` that block the pair.
    pub max_failures: u32,
    /// Different users failing from one source within `window` that block
    /// the whole source.
    pub max_users: u32,
    /// How long failures are remembered, from the first one.
    pub window: Duration,
    /// How long a blocked pair or source stays blocked.
    pub block: Duration,
    /// The first delay, once failures pass half of `max_failures`; it doubles with each further failure.
    pub delay_step: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// Sources kept at most.
    pub max_tracked: usize,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_failures: 10,
            max_users: 4,
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
    /// Say nothing: the source (or this user from it) is blocked.
    Drop,
}

/// One user's failures from one source.
#[derive(Debug, Clone)]
struct Pair {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

/// One source's failing users, and its own block.
#[derive(Debug, Clone)]
struct Record {
    users: HashMap<String, Pair>,
    last_failure: Instant,
    blocked_until: Option<Instant>,
}

impl Record {
    /// Forgets pairs whose window and block are both over.
    fn prune(&mut self, now: Instant, window: Duration) {
        self.users.retain(|_, p| match p.blocked_until {
            Some(until) => now < until,
            None => now.saturating_duration_since(p.window_start) <= window,
        });
    }

    fn is_stale(&self, now: Instant, window: Duration) -> bool {
        match self.blocked_until {
            Some(until) => now >= until,
            None => self.users.values().all(|p| match p.blocked_until {
                Some(until) => now >= until,
                None => now.saturating_duration_since(p.window_start) > window,
            }),
        }
    }
}

/// Failure counts per source and user.
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
    /// This failure blocked the user from this source until then; drop the request.
    UserBlocked { until: Instant },
    /// This failure blocked the whole source until then; drop the request.
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

    /// Whether a request from `ip` for `user` (the user it authenticates
    /// as or registers, when it names one) may be processed at all: `Drop`
    /// while the source, or that user from it, is blocked.
    pub fn check(&mut self, now: Instant, ip: IpAddr, user: Option<&str>) -> Verdict {
        let (source_until, user_until) = match self.records.get(&ip) {
            Some(record) => (
                record.blocked_until,
                user.and_then(|u| record.users.get(u))
                    .and_then(|p| p.blocked_until),
            ),
            None => return Verdict::Allow,
        };
        match source_until {
            Some(until) if now < until => return Verdict::Drop,
            Some(_) => {
                // The block is over: start afresh (unless another worker
                // blocked it again meanwhile).
                self.records
                    .remove_if(&ip, |_, r| r.blocked_until.is_some_and(|u| now >= u));
                return Verdict::Allow;
            }
            None => {}
        }
        if user_until.is_some_and(|until| now < until) {
            Verdict::Drop
        } else {
            Verdict::Allow
        }
    }

    /// Counts a failed authentication of `user` from `ip`.
    pub fn record_failure(&mut self, now: Instant, ip: IpAddr, user: &str) -> FailureOutcome {
        if !self.records.contains_key(&ip) {
            self.make_room(now);
        }
        let s = &self.settings;
        let mut record = self.records.entry(ip).or_insert(Record {
            users: HashMap::new(),
            last_failure: now,
            blocked_until: None,
        });
        if let Some(until) = record.blocked_until {
            if now < until {
                return FailureOutcome::Blocked { until };
            }
            record.blocked_until = None;
            record.users.clear();
        }
        record.prune(now, s.window);
        record.last_failure = now;
        let pair = record.users.entry(user.to_string()).or_insert(Pair {
            failures: 0,
            window_start: now,
            blocked_until: None,
        });
        if let Some(until) = pair.blocked_until {
            if now < until {
                return FailureOutcome::UserBlocked { until };
            }
            pair.blocked_until = None;
            pair.failures = 0;
            pair.window_start = now;
        }
        if now.saturating_duration_since(pair.window_start) > s.window {
            pair.failures = 0;
            pair.window_start = now;
        }
        pair.failures = pair.failures.saturating_add(1);
        let failures = pair.failures;
        if failures >= s.max_failures {
            pair.blocked_until = Some(now + s.block);
        }
        if record.users.len() >= s.max_users.max(1) as usize {
            let until = now + s.block;
            record.blocked_until = Some(until);
            return FailureOutcome::Blocked { until };
        }
        if failures >= s.max_failures {
            return FailureOutcome::UserBlocked {
                until: now + s.block,
            };
        }
        let half = s.max_failures / 2;
        let delay = (failures > half).then(|| {
            let doublings = (failures - half - 1).min(16);
            s.delay_step
                .saturating_mul(1u32 << doublings)
                .min(s.max_delay)
        });
        FailureOutcome::Answer { delay }
    }

    /// A successful authentication of `user` from `ip` clears that pair.
    pub fn record_success(&mut self, ip: IpAddr, user: &str) {
        if let Some(mut record) = self.records.get_mut(&ip) {
            record.users.remove(user);
        }
        self.records
            .remove_if(&ip, |_, r| r.users.is_empty() && r.blocked_until.is_none());
    }

    /// Whether the whole source `ip` is blocked at `now`.
    pub fn is_blocked(&self, now: Instant, ip: IpAddr) -> bool {
        self.records
            .get(&ip)
            .and_then(|r| r.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Sources currently held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Frees space for one more source.
    fn make_room(&mut self, now: Instant) {
        if self.records.len() < self.settings.max_tracked.max(1) {
            return;
        }
        let window = self.settings.window;
        self.records.retain(|_, r| !r.is_stale(now, window));
        let max = self.settings.max_tracked.max(1);
        if self.records.len() < max {
            return;
        }
        // Still full: drop the oldest eighth, unblocked records first, so
        // that the sort is paid once per many insertions.
        let mut order: Vec<(bool, Instant, IpAddr)> = self
            .records
            .iter()
            .map(|e| {
                let blocked = e.blocked_until.is_some()
                    || e.users.values().any(|p| p.blocked_until.is_some());
                (blocked, e.last_failure, *e.key())
            })
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
            max_users: 3,
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
    fn slows_then_blocks_the_pair_then_unblocks() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        let delays: Vec<_> = (0..5)
            .map(|i| g.record_failure(t0 + Duration::from_secs(i), ip(1), "1001"))
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
            g.record_failure(t6, ip(1), "1001"),
            FailureOutcome::UserBlocked {
                until: t6 + Duration::from_secs(600)
            }
        );
        let later = t6 + Duration::from_secs(599);
        assert_eq!(g.check(later, ip(1), Some("1001")), Verdict::Drop);
        // Another user behind the same address is not locked out.
        assert_eq!(g.check(later, ip(1), Some("1002")), Verdict::Allow);
        assert_eq!(g.check(later, ip(1), None), Verdict::Allow);
        assert!(!g.is_blocked(later, ip(1)));
        assert_eq!(g.check(t6, ip(2), Some("1001")), Verdict::Allow);
        let over = t6 + Duration::from_secs(600);
        assert_eq!(g.check(over, ip(1), Some("1001")), Verdict::Allow);
        assert_eq!(
            g.record_failure(over + Duration::from_secs(1), ip(1), "1001"),
            FailureOutcome::Answer { delay: None }
        );
    }

    #[test]
    fn several_failing_users_block_the_source() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        assert_eq!(
            g.record_failure(t0, ip(1), "1001"),
            FailureOutcome::Answer { delay: None }
        );
        assert_eq!(
            g.record_failure(t0, ip(1), "1002"),
            FailureOutcome::Answer { delay: None }
        );
        // The third user within the window: enumeration, the source goes.
        assert_eq!(
            g.record_failure(t0, ip(1), "admin"),
            FailureOutcome::Blocked {
                until: t0 + Duration::from_secs(600)
            }
        );
        assert!(g.is_blocked(t0, ip(1)));
        assert_eq!(g.check(t0, ip(1), Some("1003")), Verdict::Drop);
        assert_eq!(g.check(t0, ip(1), None), Verdict::Drop);
        assert_eq!(g.check(t0, ip(2), None), Verdict::Allow);
        // Users that failed long ago do not add up with a new one.
        let mut g = AuthGuard::new(settings());
        g.record_failure(t0, ip(1), "1001");
        g.record_failure(t0, ip(1), "1002");
        assert_eq!(
            g.record_failure(t0 + Duration::from_secs(61), ip(1), "1003"),
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
            if let FailureOutcome::Answer { delay } = g.record_failure(t0, ip(1), "1001") {
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
            g.record_failure(t0, ip(1), "1001");
        }
        // Past the window the count starts again.
        assert_eq!(
            g.record_failure(t0 + Duration::from_secs(61), ip(1), "1001"),
            FailureOutcome::Answer { delay: None }
        );
        for _ in 0..4 {
            g.record_failure(t0 + Duration::from_secs(61), ip(1), "1001");
        }
        g.record_success(ip(1), "1001");
        assert_eq!(
            g.record_failure(t0 + Duration::from_secs(62), ip(1), "1001"),
            FailureOutcome::Answer { delay: None }
        );
        assert_eq!(g.len(), 1);
        g.record_success(ip(1), "1001");
        assert!(g.is_empty());
    }

    #[test]
    fn memory_is_bounded_and_blocked_sources_survive_eviction() {
        let t0 = Instant::now();
        let mut g = AuthGuard::new(settings());
        for u in ["a", "b", "c"] {
            g.record_failure(t0, ip(1), u);
        }
        assert!(g.is_blocked(t0, ip(1)));
        for n in 2..50 {
            g.record_failure(t0 + Duration::from_secs(n as u64), ip(n), "1001");
            assert!(g.len() <= 4);
        }
        assert!(g.is_blocked(t0 + Duration::from_secs(50), ip(1)));
    }
}
