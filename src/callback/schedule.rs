//! When a callback may be placed: a queue's business hours, the back-off
//! after a failed customer leg, and when an unreached callback expires.
//!
//! Pure functions of the queue's settings and an explicit `now`. Windows
//! are civil times in the queue's IANA zone, so "09:00" stays 09:00 across
//! daylight-saving changes; a window edge that falls in a DST gap moves
//! later (jiff's "compatible" rule), one in a fold takes the first of the
//! two instants.

use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::settings::{Backoff, HoursWindow, QueueSettings};

/// How a customer-leg attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Busy,
    NoAnswer,
    /// Any other failure (rejected, unreachable, network error).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Due again at this time (inside business hours).
    RetryAt(Timestamp),
    /// Attempts or time ran out: the callback ends as not reached.
    GiveUp,
}

/// Whether the queue accepts callbacks at `t`: always when it has no
/// business hours.
pub fn is_open(queue: &QueueSettings, t: Timestamp) -> bool {
    if queue.business_hours.is_empty() {
        return true;
    }
    let tz = zone(queue);
    // A window ends by midnight of its own date, so only windows of t's
    // local date can hold t.
    let date = t.to_zoned(tz.clone()).date();
    let open = windows_on(queue, &tz, date).any(|(start, end)| start <= t && t < end);
    open
}

/// `t` when the queue is open then (or has no business hours), otherwise
/// the start of the next window, skipping closed dates. Windows that never
/// open are ignored; if none opens within a week (plus the closed dates), `t`.
pub fn next_open(queue: &QueueSettings, t: Timestamp) -> Timestamp {
    if is_open(queue, t) {
        return t;
    }
    let tz = zone(queue);
    let today = t.to_zoned(tz.clone()).date();
    // Eight dates (today's later windows, then a full week after it), and
    // one more for each closed date that may fall among them.
    let mut date = today;
    for _ in 0..8 + queue.closed_dates.len().min(366) {
        let next = windows_on(queue, &tz, date)
            .map(|(start, _)| start)
            .filter(|start| *start > t)
            .min();
        if let Some(start) = next {
            return start;
        }
        match date.tomorrow() {
            Ok(d) => date = d,
            Err(_) => break,
        }
    }
    t
}

/// What happens after the `attempts`-th customer-leg attempt failed with
/// `outcome`: give up at `max_attempts` or when the retry would fall after
/// `expires_at`; otherwise retry after the outcome's back-off, moved to the
/// next business-hours opening.
pub fn after_attempt(
    queue: &QueueSettings,
    outcome: Outcome,
    attempts: u32,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> RetryDecision {
    if attempts >= queue.max_attempts {
        return RetryDecision::GiveUp;
    }
    let backoff = match outcome {
        Outcome::Busy => &queue.retry.busy,
        Outcome::NoAnswer => &queue.retry.no_answer,
        Outcome::Failed => &queue.retry.failed,
    };
    let Ok(at) = now.checked_add(backoff_delay(backoff, attempts)) else {
        return RetryDecision::GiveUp;
    };
    let at = next_open(queue, at);
    if expires_at.is_some_and(|e| at > e) {
        return RetryDecision::GiveUp;
    }
    RetryDecision::RetryAt(at)
}

/// The wait after the `attempts`-th attempt: `delay * multiplier^(attempts-1)`,
/// never above `max_delay` (also when the product overflows or is not a number).
pub fn backoff_delay(b: &Backoff, attempts: u32) -> Duration {
    let exponent = i32::try_from(attempts.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = b.delay.as_secs_f64() * b.multiplier.powi(exponent);
    if secs.is_nan() || secs >= b.max_delay.as_secs_f64() {
        return b.max_delay;
    }
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(b.max_delay)
}

/// When a callback first due at `first_due` ends as not reached (`None`:
/// never, or beyond the representable range).
pub fn expiry(queue: &QueueSettings, first_due: Timestamp) -> Option<Timestamp> {
    queue.expiry.and_then(|d| first_due.checked_add(d).ok())
}

/// The queue's zone; UTC when unset or unknown (configuration rejects unknown names).
fn zone(queue: &QueueSettings) -> TimeZone {
    queue
        .time_zone
        .as_deref()
        .and_then(|name| TimeZone::get(name).ok())
        .unwrap_or(TimeZone::UTC)
}

/// The `[start, end)` instants of the queue's windows on local `date`.
fn windows_on<'a>(
    queue: &'a QueueSettings,
    tz: &'a TimeZone,
    date: Date,
) -> impl Iterator<Item = (Timestamp, Timestamp)> + 'a {
    let closed = queue.closed_dates.binary_search(&date).is_ok();
    queue
        .business_hours
        .iter()
        .filter(move |w| !closed && w.days.contains(&date.weekday()))
        .filter_map(move |w| window(w, tz, date))
}

fn window(w: &HoursWindow, tz: &TimeZone, date: Date) -> Option<(Timestamp, Timestamp)> {
    let start = tz.to_zoned(date.to_datetime(w.start)).ok()?.timestamp();
    // `Time::MAX` is configuration's "24:00": the window runs to midnight.
    let end = if w.end == Time::MAX {
        date.tomorrow().ok()?.to_zoned(tz.clone()).ok()?.timestamp()
    } else {
        tz.to_zoned(date.to_datetime(w.end)).ok()?.timestamp()
    };
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use jiff::civil::Weekday::*;

    use super::*;
    use crate::callback::settings::RetryPolicy;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn time(s: &str) -> Time {
        s.parse().unwrap()
    }

    fn backoff(delay: u64, multiplier: f64, max: u64) -> Backoff {
        Backoff {
            delay: Duration::from_secs(delay),
            multiplier,
            max_delay: Duration::from_secs(max),
        }
    }

    fn queue(zone: Option<&str>, hours: Vec<HoursWindow>) -> QueueSettings {
        QueueSettings {
            id: "q".into(),
            skills: vec![],
            time_zone: zone.map(String::from),
            business_hours: hours,
            closed_dates: vec![],
            max_attempts: 3,
            retry: RetryPolicy {
                busy: backoff(60, 2.0, 600),
                no_answer: backoff(300, 1.0, 300),
                failed: backoff(900, 3.0, 3600),
            },
            expiry: Some(Duration::from_secs(72 * 3600)),
        }
    }

    fn date(s: &str) -> jiff::civil::Date {
        s.parse().unwrap()
    }

    fn weekdays_9_to_18() -> Vec<HoursWindow> {
        vec![HoursWindow {
            days: vec![Monday, Tuesday, Wednesday, Thursday, Friday],
            start: time("09:00"),
            end: time("18:00"),
        }]
    }

    fn paris() -> QueueSettings {
        queue(Some("Europe/Paris"), weekdays_9_to_18())
    }

    #[test]
    fn no_windows_is_always_open() {
        let q = queue(None, vec![]);
        let t = ts("2025-01-04T03:00:00Z");
        assert!(is_open(&q, t));
        assert_eq!(next_open(&q, t), t);
    }

    #[test]
    fn open_inside_a_window_in_the_queue_zone() {
        let q = paris();
        // Wednesday 2025-01-08: Paris is UTC+1.
        assert!(is_open(&q, ts("2025-01-08T08:00:00Z")), "09:00 opens");
        assert!(is_open(&q, ts("2025-01-08T16:59:59Z")));
        assert!(!is_open(&q, ts("2025-01-08T17:00:00Z")), "18:00 is closed");
        assert!(!is_open(&q, ts("2025-01-08T07:59:59Z")));
        let t = ts("2025-01-08T12:00:00Z");
        assert_eq!(next_open(&q, t), t);
    }

    #[test]
    fn before_opening_waits_for_the_same_day() {
        let q = paris();
        assert_eq!(
            next_open(&q, ts("2025-01-08T05:00:00Z")),
            ts("2025-01-08T08:00:00Z")
        );
    }

    #[test]
    fn after_closing_on_friday_waits_for_monday() {
        let q = paris();
        // Friday 2025-01-10 19:00 Paris -> Monday 2025-01-13 09:00 Paris.
        assert_eq!(
            next_open(&q, ts("2025-01-10T18:00:00Z")),
            ts("2025-01-13T08:00:00Z")
        );
        assert_eq!(
            next_open(&q, ts("2025-01-11T12:00:00Z")),
            ts("2025-01-13T08:00:00Z")
        );
    }

    #[test]
    fn closed_dates_are_skipped_in_the_queue_zone() {
        let mut q = paris();
        // Christmas 2025 is a Thursday, and the Friday after is closed too.
        q.closed_dates = vec![date("2025-12-25"), date("2025-12-26")];
        assert!(!is_open(&q, ts("2025-12-25T10:00:00Z")));
        assert_eq!(
            next_open(&q, ts("2025-12-24T18:00:00Z")),
            ts("2025-12-29T08:00:00Z"),
            "Wednesday evening waits for Monday"
        );
        // A fortnight closed: further than the usual week's look-ahead.
        q.closed_dates = (0..14)
            .map(|d| {
                date("2026-08-03")
                    .checked_add(jiff::Span::new().days(d))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            next_open(&q, ts("2026-07-31T18:00:00Z")),
            ts("2026-08-17T07:00:00Z")
        );
    }

    #[test]
    fn opening_follows_daylight_saving_time() {
        let q = paris();
        // Paris moves to UTC+2 on Sunday 2025-03-30: Monday opens at 07:00 UTC.
        assert_eq!(
            next_open(&q, ts("2025-03-28T18:00:00Z")),
            ts("2025-03-31T07:00:00Z")
        );
        // And back to UTC+1 on Sunday 2025-10-26.
        assert_eq!(
            next_open(&q, ts("2025-10-24T18:00:00Z")),
            ts("2025-10-27T08:00:00Z")
        );
    }

    #[test]
    fn a_window_starting_in_the_dst_gap_opens_after_it() {
        // 02:30 does not exist in Paris on 2025-03-30; it opens at 03:30 local (01:30 UTC).
        let q = queue(
            Some("Europe/Paris"),
            vec![HoursWindow {
                days: vec![Sunday],
                start: time("02:30"),
                end: time("05:00"),
            }],
        );
        assert_eq!(
            next_open(&q, ts("2025-03-29T12:00:00Z")),
            ts("2025-03-30T01:30:00Z")
        );
    }

    #[test]
    fn several_windows_a_day_and_midnight_end() {
        let q = queue(
            None,
            vec![
                HoursWindow {
                    days: vec![Saturday],
                    start: time("14:00"),
                    end: Time::MAX,
                },
                HoursWindow {
                    days: vec![Saturday],
                    start: time("08:00"),
                    end: time("12:00"),
                },
            ],
        );
        // Saturday 2025-01-04.
        assert_eq!(
            next_open(&q, ts("2025-01-04T12:30:00Z")),
            ts("2025-01-04T14:00:00Z")
        );
        assert!(is_open(&q, ts("2025-01-04T23:59:59.999999999Z")));
        assert!(!is_open(&q, ts("2025-01-05T00:00:00Z")));
        assert_eq!(
            next_open(&q, ts("2025-01-05T00:00:00Z")),
            ts("2025-01-11T08:00:00Z"),
            "a week later"
        );
    }

    #[test]
    fn a_window_without_days_never_opens() {
        let q = queue(
            None,
            vec![HoursWindow {
                days: vec![],
                start: time("09:00"),
                end: time("10:00"),
            }],
        );
        let t = ts("2025-01-04T12:00:00Z");
        assert!(!is_open(&q, t));
        assert_eq!(next_open(&q, t), t, "nothing to wait for");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = backoff(60, 2.0, 600);
        let secs: Vec<u64> = (1..=6).map(|n| backoff_delay(&b, n).as_secs()).collect();
        assert_eq!(secs, [60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff_delay(&b, 0).as_secs(), 60, "0 counts as the first");
        assert_eq!(backoff_delay(&b, u32::MAX), b.max_delay, "overflow caps");
        let shrinking = backoff(100, 0.5, 600);
        assert_eq!(backoff_delay(&shrinking, 2), Duration::from_secs(50));
        let nan = backoff(100, f64::NAN, 600);
        assert_eq!(backoff_delay(&nan, 2), nan.max_delay);
    }

    #[test]
    fn each_outcome_has_its_own_backoff() {
        let q = queue(None, vec![]);
        let now = ts("2025-01-04T12:00:00Z");
        let at = |o, n| after_attempt(&q, o, n, now, None);
        assert_eq!(
            at(Outcome::Busy, 2),
            RetryDecision::RetryAt(ts("2025-01-04T12:02:00Z"))
        );
        assert_eq!(
            at(Outcome::NoAnswer, 2),
            RetryDecision::RetryAt(ts("2025-01-04T12:05:00Z"))
        );
        assert_eq!(
            at(Outcome::Failed, 2),
            RetryDecision::RetryAt(ts("2025-01-04T12:45:00Z"))
        );
    }

    #[test]
    fn gives_up_at_max_attempts() {
        let q = queue(None, vec![]);
        let now = ts("2025-01-04T12:00:00Z");
        assert!(matches!(
            after_attempt(&q, Outcome::Busy, 2, now, None),
            RetryDecision::RetryAt(_)
        ));
        assert_eq!(
            after_attempt(&q, Outcome::Busy, 3, now, None),
            RetryDecision::GiveUp
        );
        assert_eq!(
            after_attempt(&q, Outcome::Busy, 4, now, None),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn retry_waits_for_business_hours_and_gives_up_past_expiry() {
        let q = paris();
        // Friday 17:59 Paris, busy: one minute later is closed -> Monday 09:00.
        let now = ts("2025-01-10T16:59:00Z");
        let monday = ts("2025-01-13T08:00:00Z");
        assert_eq!(
            after_attempt(&q, Outcome::Busy, 1, now, Some(monday)),
            RetryDecision::RetryAt(monday),
            "exactly at expiry is still allowed"
        );
        assert_eq!(
            after_attempt(&q, Outcome::Busy, 1, now, Some(ts("2025-01-12T08:00:00Z"))),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn expiry_counts_from_first_due() {
        let mut q = queue(None, vec![]);
        let due = ts("2025-01-04T12:00:00Z");
        assert_eq!(expiry(&q, due), Some(ts("2025-01-07T12:00:00Z")));
        q.expiry = None;
        assert_eq!(expiry(&q, due), None);
        q.expiry = Some(Duration::from_secs(u64::MAX));
        assert_eq!(expiry(&q, due), None, "beyond the range: never");
    }
}
