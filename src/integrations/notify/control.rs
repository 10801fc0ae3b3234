//! What the dead-letter API asks of the delivery task: list dead rows,
//! replay one or many, and the outbox's figures. The HTTP layer holds this
//! interface, not the task or the store, so it can be tested on its own.

use std::future::Future;
use std::pin::Pin;

use super::OutboxRow;

pub type ControlFuture<T> = Pin<Box<dyn Future<Output = Result<T, ControlError>> + Send>>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("no event {event_id} is in the outbox of endpoint {endpoint}")]
    NoSuchEvent { endpoint: String, event_id: String },
    #[error("event {event_id} of endpoint {endpoint} is not dead: it is pending delivery")]
    NotDead { endpoint: String, event_id: String },
    #[error("no endpoint is configured as {0:?}: its events cannot be delivered")]
    UnknownEndpoint(String),
    /// The store or the delivery task cannot answer.
    #[error("{0}")]
    Unavailable(String),
}

/// Dead rows in commit order; `next` is the `after` of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadPage {
    pub items: Vec<OutboxRow>,
    pub next: Option<u64>,
}

/// One endpoint's rows: waiting or in flight (held by the delivery task),
/// and dead (in the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointStats {
    pub endpoint: String,
    pub pending: usize,
    pub in_flight: usize,
    pub dead: u64,
}

pub trait NotifyControl: Send + Sync {
    /// Dead rows with `seq > after` (of one endpoint, or all), at most `limit`.
    fn dead(&self, endpoint: Option<String>, after: u64, limit: usize) -> ControlFuture<DeadPage>;
    /// Makes one dead row pending again, its attempts reset.
    fn replay(&self, endpoint: String, event_id: String) -> ControlFuture<()>;
    /// Replays every dead row of `endpoint` (or of every configured
    /// endpoint); returns how many.
    fn replay_all(&self, endpoint: Option<String>) -> ControlFuture<usize>;
    fn stats(&self) -> ControlFuture<Vec<EndpointStats>>;
}
