//! The API's handle on the delivery task: dead rows are read straight from
//! the store; replays go through the task (which commits them, then
//! schedules them); figures combine the task's queues with the store's
//! dead counts.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, oneshot};

use crate::integrations::notify::control::ControlFuture;
use crate::integrations::notify::outbox::EndpointLoad;
use crate::integrations::notify::{ControlError, DeadPage, EndpointStats, NotifyControl};
use crate::store::Store;

/// Dead rows per page unless asked otherwise, and at most.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

pub(super) enum Command {
    Replay {
        endpoint: String,
        event_id: String,
        reply: oneshot::Sender<Result<(), ControlError>>,
    },
    ReplayAll {
        endpoint: Option<String>,
        reply: oneshot::Sender<Result<usize, ControlError>>,
    },
    Load {
        reply: oneshot::Sender<Vec<EndpointLoad>>,
    },
}

#[derive(Debug, Clone)]
pub struct OutboxHandle {
    commands: mpsc::Sender<Command>,
    store: Store,
}

impl OutboxHandle {
    pub(super) fn new(commands: mpsc::Sender<Command>, store: Store) -> OutboxHandle {
        OutboxHandle { commands, store }
    }

    /// Sends a command to the task and awaits its answer.
    async fn ask<T>(
        commands: mpsc::Sender<Command>,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ControlError> {
        let gone =
            || ControlError::Unavailable("the notification delivery task is not running".into());
        let (reply, answer) = oneshot::channel();
        commands.send(command(reply)).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    }
}

impl NotifyControl for OutboxHandle {
    fn dead(&self, endpoint: Option<String>, after: u64, limit: usize) -> ControlFuture<DeadPage> {
        let store = self.store.clone();
        let limit = match limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        Box::pin(async move {
            // One row more than the page tells whether there is a next one.
            let mut items = store
                .outbox_dead(endpoint, after, limit + 1)
                .await
                .map_err(|e| ControlError::Unavailable(format!("the outbox store: {e}")))?;
            let more = items.len() > limit;
            items.truncate(limit);
            let next = items.last().filter(|_| more).map(|r| r.seq);
            Ok(DeadPage { items, next })
        })
    }

    fn replay(&self, endpoint: String, event_id: String) -> ControlFuture<()> {
        let commands = self.commands.clone();
        Box::pin(async move {
            Self::ask(commands, |reply| Command::Replay {
                endpoint,
                event_id,
                reply,
            })
            .await?
        })
    }

    fn replay_all(&self, endpoint: Option<String>) -> ControlFuture<usize> {
        let commands = self.commands.clone();
        Box::pin(async move {
            Self::ask(commands, |reply| Command::ReplayAll { endpoint, reply }).await?
        })
    }

    fn stats(&self) -> ControlFuture<Vec<EndpointStats>> {
        let commands = self.commands.clone();
        let store = self.store.clone();
        Box::pin(async move {
            let load = Self::ask(commands, |reply| Command::Load { reply }).await?;
            let dead: BTreeMap<String, u64> = store
                .outbox_dead_counts()
                .await
                .map_err(|e| ControlError::Unavailable(format!("the outbox store: {e}")))?
                .into_iter()
                .collect();
            let mut stats: Vec<EndpointStats> = load
                .into_iter()
                .map(|l| EndpointStats {
                    dead: dead.get(&l.name).copied().unwrap_or(0),
                    endpoint: l.name,
                    pending: l.pending,
                    in_flight: l.in_flight,
                })
                .collect();
            // Endpoints no longer configured still show their dead rows.
            for (endpoint, n) in dead {
                if !stats.iter().any(|s| s.endpoint == endpoint) {
                    stats.push(EndpointStats {
                        endpoint,
                        pending: 0,
                        in_flight: 0,
                        dead: n,
                    });
                }
            }
            Ok(stats)
        })
    }
}
