//! The notification delivery task: owns the outbox scheduler
//! ([`Outbox`]), one HTTP client per endpoint and the [`Store`], the way
//! the web-callback task owns the center.
//!
//! Rows reach it three ways: the store's pending rows at start-up (loaded
//! before the web-callback task commits anything, so none is missed or
//! seen twice), newly committed rows from the web-callback task (handed
//! over only after their commit succeeded), and replays asked for by the
//! API. Each turn takes every ready input (new rows, attempt results, API
//! commands), commits the decisions they led to in one transaction, then
//! starts the attempts the scheduler allows. Attempts in flight go on
//! during the commit, so one fsync serves every result of a turn. A crash
//! between a 2xx and the commit of its delete redelivers that event,
//! which at-least-once allows (receivers drop duplicates by event id).

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use tokio::sync::mpsc;
use tokio::task::{Id, JoinSet};

use crate::callback::Write;
use crate::integrations::client::{self, ClientError, Url};
use crate::integrations::notify::body::{self, signature};
use crate::integrations::notify::outbox::{Attempt, Outbox, Outcome, Pending, MAX_IN_FLIGHT};
use crate::integrations::notify::{
    BodyFormat, ControlError, Delivery, EndpointSettings, NotifySettings, OutboxRow, OutboxWrite,
};
use crate::store::{Store, StoreError};

mod control;

use control::Command;
pub use control::OutboxHandle;

/// How many inputs one turn takes before it commits.
const TURN: usize = 1024;
/// Dead rows replayed per transaction by a replay-all.
const REPLAY_PAGE: usize = 500;
/// Most of an error answer's body kept in `last_error`.
const ERROR_BODY: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("notify endpoint {endpoint}: {source}")]
    Client {
        endpoint: String,
        source: ClientError,
    },
}

/// Where and how one endpoint is sent to.
struct Target {
    client: reqwest::Client,
    url: Url,
    format: BodyFormat,
    /// Content type and the configured headers.
    headers: HeaderMap,
    signing: Option<(Vec<u8>, HeaderName)>,
    timeout: Duration,
}

pub struct OutboxTask {
    outbox: Outbox,
    store: Store,
    targets: Vec<Target>,
    deliveries: mpsc::UnboundedReceiver<Vec<Delivery>>,
    commands: mpsc::Receiver<Command>,
    attempts: JoinSet<Outcome>,
    in_flight: HashMap<Id, Attempt>,
}

impl std::fmt::Debug for OutboxTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxTask")
            .field("targets", &self.targets.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl OutboxTask {
    /// The task over `settings`' endpoints with the store's `pending` rows
    /// queued, and the handle the API uses. `deliveries` carries rows the
    /// web-callback task has committed since `pending` was read.
    pub fn new(
        settings: &NotifySettings,
        store: Store,
        pending: Vec<OutboxRow>,
        deliveries: mpsc::UnboundedReceiver<Vec<Delivery>>,
    ) -> Result<(OutboxTask, OutboxHandle), OutboxError> {
        let targets = settings
            .endpoints
            .iter()
            .map(target)
            .collect::<Result<Vec<_>, _>>()?;
        let (commands_tx, commands) = mpsc::channel(64);
        let mut task = OutboxTask {
            outbox: Outbox::new(&settings.endpoints, MAX_IN_FLIGHT),
            store: store.clone(),
            targets,
            deliveries,
            commands,
            attempts: JoinSet::new(),
            in_flight: HashMap::new(),
        };
        let now = Timestamp::now();
        let mut orphans: HashMap<String, usize> = HashMap::new();
        for row in pending {
            let endpoint = row.endpoint.clone();
            if task.outbox.endpoint_index(&endpoint).is_none() {
                *orphans.entry(endpoint).or_default() += 1;
                continue;
            }
            task.enqueue_row(now, row, None);
        }
        for (endpoint, rows) in orphans {
            tracing::warn!(
                endpoint,
                rows,
                "outbox rows for an endpoint no longer configured are kept, not delivered"
            );
        }
        Ok((task, OutboxHandle::new(commands_tx, store)))
    }

    /// Runs until the web-callback task (the sender of new rows) is gone,
    /// or the store fails: decisions that cannot be committed would be
    /// lost, so the task stops and the rows are delivered after a restart.
    pub async fn run(mut self) -> Result<(), StoreError> {
        loop {
            // Decisions are durable before the next attempts start: a lane's
            // next request implies its previous row's fate is committed.
            self.commit().await?;
            self.start_attempts(Timestamp::now());
            let wake = self.outbox.poll_timeout().map(super::callbacks::until);
            tokio::select! {
                biased;
                done = self.attempts.join_next_with_id(), if !self.attempts.is_empty() => {
                    if let Some(done) = done {
                        self.finished(done);
                    }
                }
                batch = self.deliveries.recv() => match batch {
                    Some(batch) => self.enqueue(batch),
                    None => break,
                },
                Some(command) = self.commands.recv() => self.command(command).await?,
                _ = super::sleep_until(wake) => {}
            }
            for _ in 0..TURN {
                if let Some(done) = self.attempts.try_join_next_with_id() {
                    self.finished(done);
                } else if let Ok(batch) = self.deliveries.try_recv() {
                    self.enqueue(batch);
                } else {
                    break;
                }
            }
        }
        // Attempts still out are abandoned: their rows stay pending.
        self.attempts.abort_all();
        self.commit().await
    }

    fn enqueue(&mut self, batch: Vec<Delivery>) {
        let now = Timestamp::now();
        for d in batch {
            let row = Pending {
                endpoint: d.endpoint,
                lane: d.lane,
                event_id: d.notice.event_id.clone(),
                event_type: d.notice.kind.as_str().to_string(),
                attempts: 0,
                next_at: d.notice.timestamp,
                body: Default::default(),
            };
            self.render_and_enqueue(now, row, &d.notice);
        }
    }

    /// A stored row: as it is (start-up), or replayed at `replayed`.
    fn enqueue_row(&mut self, now: Timestamp, row: OutboxRow, replayed: Option<Timestamp>) {
        let pending = Pending {
            endpoint: row.endpoint,
            lane: row.lane,
            event_id: row.event_id,
            event_type: row.event_type,
            attempts: if replayed.is_some() { 0 } else { row.attempts },
            next_at: replayed.unwrap_or(row.next_at),
            body: Default::default(),
        };
        self.render_and_enqueue(now, pending, &row.notice);
    }

    fn render_and_enqueue(
        &mut self,
        now: Timestamp,
        mut row: Pending,
        notice: &crate::integrations::notify::Notice,
    ) {
        let Some(index) = self.outbox.endpoint_index(&row.endpoint) else {
            tracing::warn!(
                endpoint = row.endpoint,
                event = row.event_id,
                "event for an unknown endpoint not delivered"
            );
            return;
        };
        match body::render(self.targets[index].format, notice) {
            Ok(b) => row.body = b.bytes,
            Err(e) => {
                tracing::error!(endpoint = row.endpoint, event = row.event_id, error = %e, "event body not rendered; left in the outbox");
                return;
            }
        }
        if let Err(e) = self.outbox.enqueue(now, row) {
            tracing::warn!(error = %e, "event not queued");
        }
    }

    fn start_attempts(&mut self, now: Timestamp) {
        while let Some(attempt) = self.outbox.poll_attempt(now) {
            let Some(target) = self.targets.get(attempt.endpoint) else {
                continue;
            };
            let request = request(target, &attempt);
            let timeout = target.timeout;
            let handle = self
                .attempts
                .spawn(async move { outcome(request, timeout).await });
            self.in_flight.insert(handle.id(), attempt);
        }
    }

    fn finished(&mut self, done: Result<(Id, Outcome), tokio::task::JoinError>) {
        let (id, outcome) = match done {
            Ok(done) => done,
            // A panicked attempt is a failed one; its lane must not stall.
            Err(e) => (e.id(), Outcome::Failed(format!("attempt failed: {e}"))),
        };
        let Some(attempt) = self.in_flight.remove(&id) else {
            return;
        };
        if let Outcome::Failed(error) = &outcome {
            tracing::debug!(
                endpoint = attempt.endpoint,
                event = &*attempt.event_id,
                attempt = attempt.number,
                error,
                "notification attempt failed"
            );
        }
        self.outbox
            .handle_result(Timestamp::now(), &attempt, outcome, rand::random::<f64>());
    }

    async fn commit(&mut self) -> Result<(), StoreError> {
        let writes = self.outbox.take_writes();
        for w in &writes {
            if let OutboxWrite::Dead {
                endpoint,
                event_id,
                attempts,
                error,
                ..
            } = w
            {
                tracing::warn!(
                    endpoint,
                    event = event_id,
                    attempts,
                    error,
                    "notification dead; replay it through the API"
                );
            }
        }
        let writes: Vec<Write> = writes.into_iter().map(Write::Outbox).collect();
        if let Err(e) = self.store.commit(writes).await {
            tracing::error!(error = %e, "outbox commit failed; stopping deliveries");
            return Err(e);
        }
        Ok(())
    }

    /// An API command. Decisions made so far are committed first, so the
    /// store it reads is up to date.
    async fn command(&mut self, command: Command) -> Result<(), StoreError> {
        self.commit().await?;
        match command {
            Command::Replay {
                endpoint,
                event_id,
                reply,
            } => {
                let result = self.replay(&endpoint, &event_id).await;
                let _ = reply.send(result);
            }
            Command::ReplayAll { endpoint, reply } => {
                let result = self.replay_all(endpoint).await;
                let _ = reply.send(result);
            }
            Command::Load { reply } => {
                let _ = reply.send(self.outbox.load());
            }
        }
        Ok(())
    }

    async fn replay(&mut self, endpoint: &str, event_id: &str) -> Result<(), ControlError> {
        let row = self
            .store
            .outbox_row(endpoint, event_id)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| ControlError::NoSuchEvent {
                endpoint: endpoint.into(),
                event_id: event_id.into(),
            })?;
        if row.dead_at.is_none() {
            return Err(ControlError::NotDead {
                endpoint: endpoint.into(),
                event_id: event_id.into(),
            });
        }
        if self.outbox.endpoint_index(endpoint).is_none() {
            return Err(ControlError::UnknownEndpoint(endpoint.into()));
        }
        self.replay_rows(vec![row]).await
    }

    async fn replay_all(&mut self, endpoint: Option<String>) -> Result<usize, ControlError> {
        if let Some(e) = &endpoint {
            if self.outbox.endpoint_index(e).is_none() {
                return Err(ControlError::UnknownEndpoint(e.clone()));
            }
        }
        let mut after = 0;
        let mut count = 0;
        loop {
            let rows = self
                .store
                .outbox_dead(endpoint.clone(), after, REPLAY_PAGE)
                .await
                .map_err(unavailable)?;
            let Some(last) = rows.last() else {
                return Ok(count);
            };
            after = last.seq;
            let rows: Vec<OutboxRow> = rows
                .into_iter()
                .filter(|r| self.outbox.endpoint_index(&r.endpoint).is_some())
                .collect();
            count += rows.len();
            self.replay_rows(rows).await?;
        }
    }

    /// Commits the rows' replay, then queues them (after whatever their
    /// lanes hold: their place in order is long gone).
    async fn replay_rows(&mut self, rows: Vec<OutboxRow>) -> Result<(), ControlError> {
        let now = Timestamp::now();
        let writes = rows
            .iter()
            .map(|r| {
                Write::Outbox(OutboxWrite::Replay {
                    endpoint: r.endpoint.clone(),
                    event_id: r.event_id.clone(),
                    at: now,
                })
            })
            .collect();
        self.store.commit(writes).await.map_err(unavailable)?;
        for row in rows {
            self.enqueue_row(now, row, Some(now));
        }
        Ok(())
    }
}

fn unavailable(e: StoreError) -> ControlError {
    ControlError::Unavailable(format!("the outbox store: {e}"))
}

fn target(e: &EndpointSettings) -> Result<Target, OutboxError> {
    let err = |source| OutboxError::Client {
        endpoint: e.name.clone(),
        source,
    };
    let url = client::webhook_url(&e.url, e.allow_http).map_err(err)?;
    let client = client::build(e.timeout, e.ca_file.as_deref()).map_err(err)?;
    let mut headers = HeaderMap::new();
    let content_type = match e.format {
        BodyFormat::Json => body::JSON,
        BodyFormat::Form => body::FORM,
    };
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Checked by the configuration; one that still does not parse is skipped.
    for (name, value) in &e.headers {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            (Ok(n), Ok(v)) => {
                headers.append(n, v);
            }
            _ => tracing::warn!(
                endpoint = e.name,
                header = name,
                "header not sent: not valid"
            ),
        }
    }
    let signing = e.signing.as_ref().and_then(|s| {
        HeaderName::from_bytes(s.header.as_bytes())
            .ok()
            .map(|h| (s.secret.as_bytes().to_vec(), h))
    });
    Ok(Target {
        client,
        url,
        format: e.format,
        headers,
        signing,
        timeout: e.timeout,
    })
}

const EVENT_ID: HeaderName = HeaderName::from_static("x-switchback-event-id");
const EVENT_TYPE: HeaderName = HeaderName::from_static("x-switchback-event-type");

fn request(target: &Target, attempt: &Attempt) -> reqwest::RequestBuilder {
    let mut headers = target.headers.clone();
    for (name, value) in [
        (EVENT_ID, &*attempt.event_id),
        (EVENT_TYPE, &*attempt.event_type),
    ] {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
    if let Some((secret, header)) = &target.signing {
        if let Ok(v) = HeaderValue::from_str(&signature(secret, &attempt.body)) {
            headers.insert(header.clone(), v);
        }
    }
    target
        .client
        .post(target.url.clone())
        .headers(headers)
        .body(attempt.body.clone())
}

/// Sends one attempt: 2xx is delivered; any other answer, a timeout or a
/// connection failure is a failure named for `last_error`.
async fn outcome(request: reqwest::RequestBuilder, timeout: Duration) -> Outcome {
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome::Failed(format!("no answer within {} ms", timeout.as_millis()))
        }
        Err(e) => return Outcome::Failed(error_chain(&e)),
    };
    let status = response.status();
    // Read to the end so the connection is kept alive for the next attempt.
    let body = response.bytes().await.unwrap_or_default();
    if status.is_success() {
        return Outcome::Delivered;
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY)]);
    let text = text.trim();
    Outcome::Failed(if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {text}", status.as_u16())
    })
}

/// reqwest's message with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
