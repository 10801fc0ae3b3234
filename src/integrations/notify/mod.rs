//! Workforce-management notifications (docs/notifications.md): agent-state and
//! end-call events, committed to a durable outbox with the change that
//! caused them, then delivered at least once to the configured endpoints.
//!
//! Files: `notice` (the events), `settings` (endpoints and their filters),
//! `route` (which endpoints get an event: the outbox rows to commit),
//! `outbox` (the delivery scheduler), `body` (bodies and signatures),
//! `control` (what the dead-letter API asks of the delivery task).

pub mod body;
pub mod control;
pub mod notice;
pub mod outbox;
pub mod route;
pub mod settings;
#[cfg(test)]
pub mod testkit;

pub use control::{ControlError, DeadPage, EndpointStats, NotifyControl};
pub use notice::{AgentChangeNotice, EndCallNotice, Notice, NoticeKind};
pub use route::deliveries;
pub use settings::{
    BodyFormat, DeliveryRetry, EndpointSettings, EventFilter, NotifySettings, Signing,
};

use jiff::Timestamp;

/// One event bound for one endpoint: an outbox row. Events of the same
/// `lane` (the agent) on the same endpoint are delivered in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub endpoint: String,
    pub lane: String,
    pub notice: Notice,
}

/// What the outbox asks the store to commit. An event's row is keyed by
/// `(endpoint, event_id)`.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboxWrite {
    /// A new pending row (committed with the change that caused it).
    Enqueue(Box<Delivery>),
    /// The endpoint answered 2xx: the row is removed.
    Delivered { endpoint: String, event_id: String },
    /// A failed attempt; the next one is due at `next_at`.
    Retry {
        endpoint: String,
        event_id: String,
        attempts: u32,
        next_at: Timestamp,
        error: String,
    },
    /// Out of attempts: parked as dead until replayed.
    Dead {
        endpoint: String,
        event_id: String,
        attempts: u32,
        error: String,
        at: Timestamp,
    },
    /// A dead row pending again, its attempts reset, due at `at`.
    Replay {
        endpoint: String,
        event_id: String,
        at: Timestamp,
    },
}

/// An outbox row as stored: pending (`dead_at` is `None`) or dead.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Commit order; a lane is delivered in it.
    pub seq: u64,
    pub endpoint: String,
    pub event_id: String,
    /// The agent.
    pub lane: String,
    pub event_type: String,
    /// Failed attempts.
    pub attempts: u32,
    pub next_at: Timestamp,
    pub last_error: Option<String>,
    pub dead_at: Option<Timestamp>,
    pub notice: Notice,
}
