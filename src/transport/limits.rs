//! Caps on a profile's inbound stream connections: how many one source
//! address may hold open, and how many all sources together.
//!
//! The accept loops of a profile's TCP and TLS listeners share one
//! [`ConnectionLimits`]; each accepted connection holds a [`Permit`] for its
//! whole life (TLS handshake included) and gives it back when its task
//! ends. A connection past a cap is closed at once, before it costs a task
//! or a buffer, and counted. Outbound connections (the switch's own) are not
//! counted: a peer cannot make the switch open them.
//!
//! It must not block: the lock is held for a map update only, never across
//! an await.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most one log line per profile and interval while connections are
/// refused: a flood must not become a log flood. Each line carries the
/// refusals since the previous one and the totals since start.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct ConnectionLimits {
    profile: String,
    max_per_source: usize,
    max_total: usize,
    state: Mutex<State>,
    refused_per_source: AtomicU64,
    refused_total: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
    last_report: Option<Instant>,
    /// Refusals since the last log line.
    unreported: u64,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source address already holds `max_per_source` connections.
    PerSource,
    /// The profile already holds `max_total` connections.
    Total,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::PerSource => "max_per_source",
            Refusal::Total => "max_total",
        }
    }
}

/// Connections refused so far, by cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RefusedCounts {
    pub per_source: u64,
    pub total: u64,
}

/// One open inbound connection; dropping it frees its place.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub fn new(profile: &str, max_per_source: usize, max_total: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            profile: profile.to_string(),
            max_per_source: max_per_source.max(1),
            max_total: max_total.max(1),
            state: Mutex::new(State::default()),
            refused_per_source: AtomicU64::new(0),
            refused_total: AtomicU64::new(0),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding it leaves consistent counts (each
        // update is one statement): keep going rather than panic here too.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a new connection from `ip`, or why there is none (the
    /// refusal is counted, and logged at most once per interval).
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        // A v4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        let mut state = self.state();
        let held = state.per_source.get(&ip).copied().unwrap_or(0);
        let refusal = if held >= self.max_per_source {
            Some(Refusal::PerSource)
        } else if state.total >= self.max_total {
            Some(Refusal::Total)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            match refusal {
                Refusal::PerSource => self.refused_per_source.fetch_add(1, Ordering::Relaxed),
                Refusal::Total => self.refused_total.fetch_add(1, Ordering::Relaxed),
            };
            state.unreported += 1;
            self.report(&mut state, now, Some((ip, refusal)));
            return Err(refusal);
        }
        *state.per_source.entry(ip).or_insert(0) += 1;
        state.total += 1;
        Ok(Permit {
            limits: self.clone(),
            ip,
        })
    }

    /// Logs the refusals not logged yet, if the interval allows; the accept
    /// loops call it after a burst so that its total is seen. True when
    /// refusals remain unlogged (call again later).
    pub fn flush_report(&self, now: Instant) -> bool {
        let mut state = self.state();
        self.report(&mut state, now, None);
        state.unreported > 0
    }

    fn report(&self, state: &mut State, now: Instant, last: Option<(IpAddr, Refusal)>) {
        let due = state
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REPORT_EVERY);
        if !due || state.unreported == 0 {
            return;
        }
        state.last_report = Some(now);
        let counts = self.refused();
        let (source, cap) = match last {
            Some((ip, r)) => (ip.to_string(), r.as_str()),
            None => ("-".to_string(), "-"),
        };
        tracing::warn!(
            profile = %self.profile,
            source = %source,
            cap,
            refused_now = state.unreported,
            open = state.total,
            refused_per_source = counts.per_source,
            refused_total = counts.total,
            "inbound connection refused"
        );
        state.unreported = 0;
    }

    /// Connections refused since start, by cap.
    pub fn refused(&self) -> RefusedCounts {
        RefusedCounts {
            per_source: self.refused_per_source.load(Ordering::Relaxed),
            total: self.refused_total.load(Ordering::Relaxed),
        }
    }

    /// Inbound connections open now.
    pub fn open(&self) -> usize {
        self.state().total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.limits.state();
        state.total = state.total.saturating_sub(1);
        if let Some(n) = state.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                state.per_source.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_past_its_cap_is_refused_and_others_are_not() {
        let t0 = Instant::now();
        let l = ConnectionLimits::new("p", 2, 3);
        let a1 = l.try_acquire(ip("127.0.0.1"), t0).unwrap();
        let _a2 = l.try_acquire(ip("127.0.0.1"), t0).unwrap();
        assert_eq!(
            l.try_acquire(ip("127.0.0.1"), t0).unwrap_err(),
            Refusal::PerSource
        );
        // The same source through a dual-stack socket is the same source.
        assert_eq!(
            l.try_acquire(ip("::ffff:127.0.0.1"), t0).unwrap_err(),
            Refusal::PerSource
        );
        let _b = l.try_acquire(ip("127.0.0.2"), t0).unwrap();
        assert_eq!(
            l.try_acquire(ip("127.0.0.3"), t0).unwrap_err(),
            Refusal::Total
        );
        assert_eq!(
            l.refused(),
            RefusedCounts {
                per_source: 2,
                total: 1
            }
        );
        assert_eq!(l.open(), 3);
        drop(a1);
        assert_eq!(l.open(), 2);
        let _c = l.try_acquire(ip("127.0.0.3"), t0).unwrap();
        let _a3 = l.try_acquire(ip("127.0.0.1"), t0).unwrap_err();
    }

    #[test]
    fn a_burst_is_logged_once_then_summed_up_after_the_interval() {
        let t0 = Instant::now();
        let l = ConnectionLimits::new("p", 1, 10);
        let _held = l.try_acquire(ip("127.0.0.1"), t0).unwrap();
        for _ in 0..5 {
            assert!(l.try_acquire(ip("127.0.0.1"), t0).is_err());
        }
        // The first refusal was logged; four wait for the interval.
        assert!(l.flush_report(t0), "not due yet");
        assert_eq!(l.state().unreported, 4);
        assert!(!l.flush_report(t0 + REPORT_EVERY), "logged");
        assert_eq!(l.state().unreported, 0);
        assert_eq!(l.refused().per_source, 5);
    }

    #[test]
    fn places_come_back_when_permits_drop() {
        let t0 = Instant::now();
        let l = ConnectionLimits::new("p", 1, 1);
        for _ in 0..100 {
            let p = l.try_acquire(ip("10.0.0.1"), t0).unwrap();
            drop(p);
        }
        assert_eq!(l.open(), 0);
        assert!(l.state().per_source.is_empty());
    }
}
