//! The delivery scheduler of the notification outbox (sans-IO: time comes
//! in as `now`, randomness as a `jitter` in [0, 1], and what to do leaves
//! as [`Attempt`]s and [`OutboxWrite`]s).
//!
//! Per endpoint, each lane (an agent) is a FIFO in commit order and only
//! its head is ever in flight, so one agent's events arrive in the order
//! they happened. A head that fails blocks its lane until it succeeds or
//! dies; a dead head is parked (in the store) and the lane moves on.
//! Lanes of one endpoint run side by side, at most `max_in_flight` of
//! them at once, which is what lets thousands of events a second go over
//! a few keep-alive connections.
//!
//! The scheduler owns no row: the store keeps them, and every decision
//! comes back as a write to commit (delivered, retry at, dead).
//!
//! The contract, like the protocol cores': feed it rows ([`Outbox::enqueue`])
//! and attempt results ([`Outbox::handle_result`]); drain
//! [`Outbox::poll_attempt`] and [`Outbox::take_writes`]; sleep until
//! [`Outbox::poll_timeout`].

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jiff::Timestamp;

use super::{DeliveryRetry, EndpointSettings, OutboxWrite};

/// Attempts in flight per endpoint, unless told otherwise.
pub const MAX_IN_FLIGHT: usize = 64;

/// A row to deliver: loaded at start-up, committed by the center, or
/// replayed. `body` is already rendered for its endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub endpoint: String,
    pub lane: String,
    pub event_id: String,
    pub event_type: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not tried before this.
    pub next_at: Timestamp,
    pub body: Bytes,
}

/// One request to make. Its result goes back with the same `endpoint`,
/// `lane` and `event_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The endpoint's index in the configured order.
    pub endpoint: usize,
    pub lane: Arc<str>,
    pub event_id: Arc<str>,
    pub event_type: Arc<str>,
    /// This attempt's number, from 1.
    pub number: u32,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Delivered,
    /// Anything else: the status, a timeout, a refused connection.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no endpoint is configured as {0:?}")]
pub struct UnknownEndpoint(pub String);

/// What one endpoint holds right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointLoad {
    pub name: String,
    /// Rows waiting or in flight (dead ones are only in the store).
    pub pending: usize,
    pub in_flight: usize,
}

pub struct Outbox {
    endpoints: Vec<Endpoint>,
    /// Lane heads waiting for a retry time: (due, endpoint, lane).
    timers: BTreeSet<(Timestamp, usize, Arc<str>)>,
    writes: Vec<OutboxWrite>,
    /// Where the next `poll_attempt` starts looking, so that one busy
    /// endpoint does not starve the others.
    turn: usize,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("endpoints", &self.endpoints.len())
            .field("timers", &self.timers.len())
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

struct Endpoint {
    name: Arc<str>,
    retry: DeliveryRetry,
    max_in_flight: usize,
    in_flight: usize,
    lanes: HashMap<Arc<str>, Lane>,
    /// Lanes whose head is due and waits for room in flight.
    ready: VecDeque<Arc<str>>,
    /// Event ids held, so that a row handed over twice is delivered once.
    held: HashSet<Arc<str>>,
}

struct Lane {
    items: VecDeque<Item>,
    head: Head,
}

/// Where a non-empty lane's head is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    Waiting(Timestamp),
    Ready,
    InFlight,
}

struct Item {
    event_id: Arc<str>,
    event_type: Arc<str>,
    attempts: u32,
    next_at: Timestamp,
    body: Bytes,
}

impl Outbox {
    pub fn new(endpoints: &[EndpointSettings], max_in_flight: usize) -> Outbox {
        Outbox {
            endpoints: endpoints
                .iter()
                .map(|e| Endpoint {
                    name: Arc::from(e.name.as_str()),
                    retry: e.retry,
                    max_in_flight: max_in_flight.max(1),
                    in_flight: 0,
                    lanes: HashMap::new(),
                    ready: VecDeque::new(),
                    held: HashSet::new(),
                })
                .collect(),
            timers: BTreeSet::new(),
            writes: Vec::new(),
            turn: 0,
        }
    }

    pub fn endpoint_index(&self, name: &str) -> Option<usize> {
        self.endpoints.iter().position(|e| &*e.name == name)
    }

    /// Whether the row is held here (waiting or in flight), so not dead.
    pub fn holds(&self, endpoint: &str, event_id: &str) -> bool {
        self.endpoint_index(endpoint)
            .is_some_and(|i| self.endpoints[i].held.contains(event_id))
    }

    /// Queues a row at the back of its lane. A row already held is
    /// ignored (it is one event, delivered once).
    pub fn enqueue(&mut self, now: Timestamp, row: Pending) -> Result<(), UnknownEndpoint> {
        let index = self
            .endpoint_index(&row.endpoint)
            .ok_or(UnknownEndpoint(row.endpoint))?;
        let endpoint = &mut self.endpoints[index];
        if endpoint.held.contains(row.event_id.as_str()) {
            return Ok(());
        }
        let event_id: Arc<str> = Arc::from(row.event_id);
        endpoint.held.insert(Arc::clone(&event_id));
        let item = Item {
            event_id,
            event_type: Arc::from(row.event_type),
            attempts: row.attempts,
            next_at: row.next_at,
            body: row.body,
        };
        let lane = match endpoint.lanes.get_key_value(row.lane.as_str()) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(row.lane),
        };
        let entry = endpoint.lanes.entry(Arc::clone(&lane)).or_insert(Lane {
            items: VecDeque::new(),
            head: Head::Ready,
        });
        entry.items.push_back(item);
        if entry.items.len() == 1 {
            self.schedule_head(now, index, lane);
        }
        Ok(())
    }

    /// The next request to make now, if an endpoint has room for one.
    pub fn poll_attempt(&mut self, now: Timestamp) -> Option<Attempt> {
        while let Some((at, index, lane)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let endpoint = &mut self.endpoints[index];
            if let Some(l) = endpoint.lanes.get_mut(&lane) {
                l.head = Head::Ready;
                endpoint.ready.push_back(lane);
            }
        }
        let count = self.endpoints.len();
        for step in 0..count {
            let index = (self.turn + step) % count;
            let endpoint = &mut self.endpoints[index];
            while endpoint.in_flight < endpoint.max_in_flight {
                let Some(lane_name) = endpoint.ready.pop_front() else {
                    break;
                };
                let Some(lane) = endpoint.lanes.get_mut(&lane_name) else {
                    continue;
                };
                let Some(head) = lane.items.front() else {
                    continue;
                };
                if lane.head != Head::Ready {
                    continue;
                }
                lane.head = Head::InFlight;
                endpoint.in_flight += 1;
                self.turn = (index + 1) % count;
                return Some(Attempt {
                    endpoint: index,
                    lane: lane_name,
                    event_id: Arc::clone(&head.event_id),
                    event_type: Arc::clone(&head.event_type),
                    number: head.attempts.saturating_add(1),
                    body: head.body.clone(),
                });
            }
        }
        None
    }

    /// The result of an attempt [`Outbox::poll_attempt`] handed out.
    /// `jitter` (in [0, 1]) places a retry within its back-off window.
    /// A result for an attempt not in flight is ignored.
    pub fn handle_result(
        &mut self,
        now: Timestamp,
        attempt: &Attempt,
        outcome: Outcome,
        jitter: f64,
    ) {
        let Some(endpoint) = self.endpoints.get_mut(attempt.endpoint) else {
            return;
        };
        let Some(lane) = endpoint.lanes.get_mut(&attempt.lane) else {
            return;
        };
        let Some(head) = lane.items.front_mut() else {
            return;
        };
        if lane.head != Head::InFlight || head.event_id != attempt.event_id {
            return;
        }
        endpoint.in_flight -= 1;
        let name = endpoint.name.to_string();
        let event_id = head.event_id.to_string();
        let failures = head.attempts.saturating_add(1);
        match outcome {
            Outcome::Delivered => {
                self.writes.push(OutboxWrite::Delivered {
                    endpoint: name,
                    event_id,
                });
            }
            Outcome::Failed(error) if failures >= endpoint.retry.max_attempts => {
                self.writes.push(OutboxWrite::Dead {
                    endpoint: name,
                    event_id,
                    attempts: failures,
                    error,
                    at: now,
                });
            }
            Outcome::Failed(error) => {
                let delay = backoff(&endpoint.retry, failures, jitter);
                let next_at = now.checked_add(delay).unwrap_or(Timestamp::MAX);
                head.attempts = failures;
                head.next_at = next_at;
                self.writes.push(OutboxWrite::Retry {
                    endpoint: name,
                    event_id,
                    attempts: failures,
                    next_at,
                    error,
                });
                lane.head = Head::Waiting(next_at);
                self.timers
                    .insert((next_at, attempt.endpoint, Arc::clone(&attempt.lane)));
                return;
            }
        }
        // Delivered or dead: the lane moves on.
        if let Some(done) = lane.items.pop_front() {
            endpoint.held.remove(&done.event_id);
        }
        if lane.items.is_empty() {
            endpoint.lanes.remove(&attempt.lane);
        } else {
            self.schedule_head(now, attempt.endpoint, Arc::clone(&attempt.lane));
        }
    }

    /// When a waiting retry falls due. Lanes that are due but held back by
    /// the in-flight cap are woken by results, not by time.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// The decisions to commit, in the order they were made.
    pub fn take_writes(&mut self) -> Vec<OutboxWrite> {
        std::mem::take(&mut self.writes)
    }

    pub fn load(&self) -> Vec<EndpointLoad> {
        self.endpoints
            .iter()
            .map(|e| EndpointLoad {
                name: e.name.to_string(),
                pending: e.held.len(),
                in_flight: e.in_flight,
            })
            .collect()
    }

    /// Puts a lane's (new) head where it belongs: ready, or timed.
    fn schedule_head(&mut self, now: Timestamp, index: usize, lane_name: Arc<str>) {
        let endpoint = &mut self.endpoints[index];
        let Some(lane) = endpoint.lanes.get_mut(&lane_name) else {
            return;
        };
        let Some(head) = lane.items.front() else {
            return;
        };
        if head.next_at <= now {
            lane.head = Head::Ready;
            endpoint.ready.push_back(lane_name);
        } else {
            lane.head = Head::Waiting(head.next_at);
            self.timers.insert((head.next_at, index, lane_name));
        }
    }
}

/// The wait after the `failures`-th failure: exponential from `initial`,
/// doubling each time up to `max`, with full jitter over that window
/// (`initial` .. `min(max, initial * 2^failures)`), so that many events
/// failing together do not come back together.
pub fn backoff(retry: &DeliveryRetry, failures: u32, jitter: f64) -> Duration {
    let initial = retry.initial;
    let max = retry.max.max(initial);
    let factor = 1u32 << failures.min(31);
    let cap = initial.saturating_mul(factor).min(max);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    initial + (cap - initial).mul_f64(jitter)
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
