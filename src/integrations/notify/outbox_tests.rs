//! The scheduler in virtual time: lanes in order, one head in flight per
//! lane, the in-flight cap, retries with back-off, dead rows, replays.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::integrations::notify::testkit;

fn endpoint(name: &str, max_attempts: u32) -> EndpointSettings {
    EndpointSettings {
        retry: DeliveryRetry {
            max_attempts,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(60),
        },
        ..testkit::endpoint(name, testkit::all_agent_states())
    }
}

fn t0() -> Timestamp {
    "2026-01-02T03:04:05Z".parse().unwrap()
}

fn at(ms: i64) -> Timestamp {
    t0() + SignedDuration::from_millis(ms)
}

fn row(endpoint: &str, lane: &str, id: &str) -> Pending {
    Pending {
        endpoint: endpoint.into(),
        lane: lane.into(),
        event_id: id.into(),
        event_type: "agent-state".into(),
        attempts: 0,
        next_at: t0(),
        body: Bytes::from(format!("body of {id}")),
    }
}

fn drain(o: &mut Outbox, now: Timestamp) -> Vec<Attempt> {
    std::iter::from_fn(|| o.poll_attempt(now)).collect()
}

fn ids(attempts: &[Attempt]) -> Vec<&str> {
    attempts.iter().map(|a| &*a.event_id).collect()
}

#[test]
fn only_each_lane_s_head_is_in_flight_and_lanes_keep_their_order() {
    let mut o = Outbox::new(&[endpoint("wfm", 10)], MAX_IN_FLIGHT);
    for id in ["a1", "a2", "a3"] {
        o.enqueue(t0(), row("wfm", "1001", id)).unwrap();
    }
    o.enqueue(t0(), row("wfm", "1002", "b1")).unwrap();
    let first = drain(&mut o, t0());
    assert_eq!(ids(&first), ["a1", "b1"], "one head per lane");
    assert_eq!(first[0].number, 1);
    assert_eq!(&first[0].body[..], b"body of a1");

    // a2 waits for a1 even though b1 finishes first.
    o.handle_result(t0(), &first[1], Outcome::Delivered, 0.0);
    assert!(drain(&mut o, t0()).is_empty());
    o.handle_result(t0(), &first[0], Outcome::Delivered, 0.0);
    let next = drain(&mut o, t0());
    assert_eq!(ids(&next), ["a2"]);
    o.handle_result(t0(), &next[0], Outcome::Delivered, 0.0);
    assert_eq!(ids(&drain(&mut o, t0())), ["a3"]);
    assert_eq!(
        o.take_writes(),
        ["b1", "a1", "a2"]
            .map(|id| OutboxWrite::Delivered {
                endpoint: "wfm".into(),
                event_id: id.into()
            })
            .to_vec()
    );
}

#[test]
fn a_failing_head_blocks_its_lane_until_its_retry_succeeds() {
    let mut o = Outbox::new(&[endpoint("wfm", 10)], MAX_IN_FLIGHT);
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    o.enqueue(t0(), row("wfm", "1001", "a2")).unwrap();
    let a1 = drain(&mut o, t0()).remove(0);
    o.handle_result(t0(), &a1, Outcome::Failed("HTTP 500".into()), 0.0);
    // First failure: [500 ms, 1 s]; jitter 0 is the start of it.
    assert_eq!(
        o.take_writes(),
        [OutboxWrite::Retry {
            endpoint: "wfm".into(),
            event_id: "a1".into(),
            attempts: 1,
            next_at: at(500),
            error: "HTTP 500".into(),
        }]
    );
    assert_eq!(o.poll_timeout(), Some(at(500)));
    assert!(drain(&mut o, at(499)).is_empty(), "a2 must not overtake a1");

    let retry = drain(&mut o, at(500));
    assert_eq!(ids(&retry), ["a1"]);
    assert_eq!(retry[0].number, 2);
    assert_eq!(o.poll_timeout(), None);
    // Jitter 1 is the end of the second window: 500 ms * 2^2.
    o.handle_result(at(500), &retry[0], Outcome::Failed("timed out".into()), 1.0);
    assert_eq!(o.poll_timeout(), Some(at(2500)));
    let retry = drain(&mut o, at(2500));
    o.handle_result(at(2500), &retry[0], Outcome::Delivered, 0.0);
    assert_eq!(ids(&drain(&mut o, at(2500))), ["a2"]);
}

#[test]
fn a_head_out_of_attempts_dies_and_its_lane_moves_on() {
    let mut o = Outbox::new(&[endpoint("wfm", 2)], MAX_IN_FLIGHT);
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    o.enqueue(t0(), row("wfm", "1001", "a2")).unwrap();
    let first = drain(&mut o, t0()).remove(0);
    o.handle_result(t0(), &first, Outcome::Failed("HTTP 503".into()), 0.5);
    let now = o.poll_timeout().unwrap();
    let second = drain(&mut o, now).remove(0);
    o.handle_result(now, &second, Outcome::Failed("HTTP 502".into()), 0.5);
    let writes = o.take_writes();
    assert_eq!(
        writes.last(),
        Some(&OutboxWrite::Dead {
            endpoint: "wfm".into(),
            event_id: "a1".into(),
            attempts: 2,
            error: "HTTP 502".into(),
            at: now,
        })
    );
    assert!(!o.holds("wfm", "a1"), "dead rows live in the store only");
    assert_eq!(ids(&drain(&mut o, now)), ["a2"]);
}

#[test]
fn a_replayed_row_goes_to_the_back_of_its_lane_with_fresh_attempts() {
    let mut o = Outbox::new(&[endpoint("wfm", 1)], MAX_IN_FLIGHT);
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    let a1 = drain(&mut o, t0()).remove(0);
    o.enqueue(t0(), row("wfm", "1001", "a2")).unwrap();
    o.handle_result(t0(), &a1, Outcome::Failed("HTTP 500".into()), 0.0);
    assert!(matches!(o.take_writes()[..], [OutboxWrite::Dead { .. }]));
    let a2 = drain(&mut o, t0()).remove(0);
    // Replayed while a2 is in flight: after it.
    o.enqueue(at(10), row("wfm", "1001", "a1")).unwrap();
    assert!(drain(&mut o, at(10)).is_empty());
    o.handle_result(at(20), &a2, Outcome::Delivered, 0.0);
    let again = drain(&mut o, at(20));
    assert_eq!(ids(&again), ["a1"]);
    assert_eq!(again[0].number, 1);
}

#[test]
fn the_in_flight_cap_holds_per_endpoint_and_a_result_makes_room() {
    let mut o = Outbox::new(&[endpoint("a", 10), endpoint("b", 10)], 4);
    for lane in 0..10 {
        o.enqueue(t0(), row("a", &format!("l{lane}"), &format!("a{lane}")))
            .unwrap();
        o.enqueue(t0(), row("b", &format!("l{lane}"), &format!("b{lane}")))
            .unwrap();
    }
    let started = drain(&mut o, t0());
    assert_eq!(started.len(), 8, "4 per endpoint");
    assert_eq!(started.iter().filter(|a| a.endpoint == 0).count(), 4);
    let load = o.load();
    assert_eq!((load[0].pending, load[0].in_flight), (10, 4));
    o.handle_result(t0(), &started[0], Outcome::Delivered, 0.0);
    let more = drain(&mut o, t0());
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].endpoint, started[0].endpoint);
    // A lane due while the cap is full is woken by results, not by time.
    assert_eq!(o.poll_timeout(), None);
}

#[test]
fn a_row_handed_over_twice_is_held_once_and_unknown_endpoints_are_named() {
    let mut o = Outbox::new(&[endpoint("wfm", 10)], MAX_IN_FLIGHT);
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    assert_eq!(o.load()[0].pending, 1);
    assert!(o.holds("wfm", "a1"));
    assert_eq!(
        o.enqueue(t0(), row("gone", "1001", "x")),
        Err(UnknownEndpoint("gone".into()))
    );
}

#[test]
fn rows_loaded_with_a_retry_time_wait_for_it() {
    let mut o = Outbox::new(&[endpoint("wfm", 10)], MAX_IN_FLIGHT);
    let mut r = row("wfm", "1001", "a1");
    r.attempts = 3;
    r.next_at = at(1000);
    o.enqueue(t0(), r).unwrap();
    assert!(drain(&mut o, t0()).is_empty());
    assert_eq!(o.poll_timeout(), Some(at(1000)));
    let a = drain(&mut o, at(1000));
    assert_eq!(a[0].number, 4);
}

#[test]
fn a_result_not_in_flight_is_ignored() {
    let mut o = Outbox::new(&[endpoint("wfm", 10)], MAX_IN_FLIGHT);
    o.enqueue(t0(), row("wfm", "1001", "a1")).unwrap();
    let a = drain(&mut o, t0()).remove(0);
    o.handle_result(t0(), &a, Outcome::Delivered, 0.0);
    o.handle_result(t0(), &a, Outcome::Delivered, 0.0);
    let mut other = a.clone();
    other.endpoint = 7;
    o.handle_result(t0(), &other, Outcome::Delivered, 0.0);
    assert_eq!(o.take_writes().len(), 1);
}

#[test]
fn back_off_doubles_within_its_bounds_and_jitter_spreads_it() {
    let retry = DeliveryRetry {
        max_attempts: 10,
        initial: Duration::from_millis(500),
        max: Duration::from_secs(3),
    };
    assert_eq!(backoff(&retry, 1, 0.0), Duration::from_millis(500));
    assert_eq!(backoff(&retry, 1, 1.0), Duration::from_millis(1000));
    assert_eq!(backoff(&retry, 2, 1.0), Duration::from_millis(2000));
    assert_eq!(backoff(&retry, 3, 1.0), Duration::from_secs(3), "capped");
    assert_eq!(backoff(&retry, 40, 0.5), Duration::from_millis(1750));
    assert_eq!(backoff(&retry, 2, f64::NAN), Duration::from_millis(500));
    assert_eq!(backoff(&retry, 2, 7.0), Duration::from_millis(2000));
}
