//! `GET /v1/desktop/events`: the desktop's Server-Sent Events, with replay.
//!
//! Each message is one [`DesktopEvent`]: `id:` its `seq`, `event:` its type
//! (`interaction`, `offer`, `agent`), `data:` its JSON. A desktop that
//! reconnects with `Last-Event-ID: N` (what a browser's `EventSource` sends
//! by itself) or `?after=N` first gets every stored event after `N`, read
//! from the store in pages, then the live broadcast.
//!
//! No gap, no duplicate: the stream subscribes to the broadcast *before* it
//! reads the backlog, so an event stored during the read is either in the
//! read or waiting in the subscription (the center stores an event before it
//! broadcasts it); live events at or below the last `seq` sent are skipped.
//! This relies on `seq` rising in the order events are stored. A stream too
//! slow for the broadcast buffer goes back to the store from its last `seq`
//! instead of losing events; one that lags before it has seen any event has
//! no `seq` to resume from and is sent `event: lagged` (`{"missed": n}`)
//! so the desktop can reload. A store read that fails or stalls ends the
//! stream: the client reconnects with its `Last-Event-ID` and loses nothing.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use tokio::sync::broadcast;
use utoipa::IntoParams;

use super::center::bounded_read;
use super::errors::{ApiError, Body as ErrorBody};
use super::Api;
use crate::callback::{CallbackReads, DesktopEvent, DesktopEventKind, InteractionId};

/// Events read from the store per backlog page.
const PAGE: usize = 256;

/// The query parameters, as the OpenAPI document lists them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub struct DesktopParams {
    /// Replay stored events with a greater `seq` first (`Last-Event-ID` wins when both are sent).
    after: Option<u64>,
    /// Only events about this agent or the interactions it holds.
    agent: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/desktop/events", tag = "desktop",
    params(
        DesktopParams,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last `seq` the client received; the stream resumes after it"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id:` seq, `event:` type, `data:` a DesktopEvent",
            content_type = "text/event-stream", body = DesktopEvent),
        (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn stream(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let layer = api.callback_api()?;
    let Query(pairs) =
        query.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("query")))?;
    let (after, agent) = parse_query(pairs)?;
    let after = last_event_id(&headers)?.or(after);
    // Subscribed before the backlog is read: see the module comment.
    let live = layer.desktop.subscribe();
    let feed = Feed {
        reads: layer.reads.clone(),
        live,
        read_limit: api.reply_timeout,
        last: after,
        backlog: after.is_some(),
        pending: VecDeque::new(),
        filter: agent.map(|agent| AgentFilter {
            agent,
            holds: HashSet::new(),
        }),
    };
    let events = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|event| (Ok(event), feed))
    })
    .take_until(api.stopped());
    // Comments every 15 s keep proxies from closing a quiet stream.
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// One client's position in the event sequence.
struct Feed {
    reads: Arc<dyn CallbackReads>,
    live: broadcast::Receiver<DesktopEvent>,
    read_limit: Duration,
    /// The last `seq` seen (sent or filtered out).
    last: Option<u64>,
    /// Reading the store rather than the broadcast.
    backlog: bool,
    pending: VecDeque<DesktopEvent>,
    filter: Option<AgentFilter>,
}

impl Feed {
    /// The next message to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if let Some(message) = self.admit(event) {
                    return Some(message);
                }
                continue;
            }
            if self.backlog {
                let after = self.last.unwrap_or(0);
                let read = self.reads.desktop_events_after(after, PAGE);
                match bounded_read(self.read_limit, read).await {
                    Ok(page) => {
                        // A short page is the end of what is stored; what
                        // follows is (also) in the subscription.
                        self.backlog = page.len() >= PAGE;
                        self.pending.extend(page);
                    }
                    Err(e) => {
                        tracing::warn!(after, error = %e.message, "desktop stream ended: backlog unreadable");
                        return None;
                    }
                }
                continue;
            }
            match self.live.recv().await {
                Ok(event) => self.pending.push_back(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    if self.last.is_some() {
                        self.backlog = true;
                    } else {
                        return Some(
                            Event::default()
                                .event("lagged")
                                .data(serde_json::json!({ "missed": missed }).to_string()),
                        );
                    }
                }
                // The center is gone; nothing more will come.
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Skips what was already seen, remembers the position, applies the filter.
    fn admit(&mut self, event: DesktopEvent) -> Option<Event> {
        if self.last.is_some_and(|last| event.seq <= last) {
            return None;
        }
        self.last = Some(event.seq);
        if let Some(filter) = &mut self.filter {
            if !filter.passes(&event) {
                return None;
            }
        }
        message(&event)
    }
}

/// Events about one agent: its own state, its offers, and every change to
/// an interaction it holds, including the one that takes it away.
struct AgentFilter {
    agent: String,
    /// Interactions last seen with this agent.
    holds: HashSet<InteractionId>,
}

impl AgentFilter {
    fn passes(&mut self, event: &DesktopEvent) -> bool {
        match &event.kind {
            DesktopEventKind::Agent { agent, .. } => *agent == self.agent,
            DesktopEventKind::Offer { id, agent, .. } => {
                let ours = *agent == self.agent;
                if ours {
                    self.holds.insert(id.clone());
                }
                ours
            }
            DesktopEventKind::Interaction {
                id, agent, state, ..
            } => {
                let ours = agent.as_deref() == Some(self.agent.as_str());
                if ours && !state.is_final() {
                    self.holds.insert(id.clone());
                    return true;
                }
                // Over, or gone to another agent or back to a queue: this
                // is the last event about it this desktop needs.
                let held = self.holds.remove(id);
                ours || held
            }
            DesktopEventKind::Consultation { agent, .. } => {
                agent.as_deref() == Some(self.agent.as_str())
            }
        }
    }
}

fn message(event: &DesktopEvent) -> Option<Event> {
    match serde_json::to_value(event) {
        Ok(json) => {
            let kind = json
                .get("type")
                .and_then(|t| t.as_str())
                .unwrap_or("desktop");
            Some(
                Event::default()
                    .id(event.seq.to_string())
                    .event(kind)
                    .data(json.to_string()),
            )
        }
        // Not expected (all keys are strings); skipping keeps the stream up.
        Err(e) => {
            tracing::warn!(seq = event.seq, error = %e, "desktop event not sent");
            None
        }
    }
}

fn parse_query(pairs: Vec<(String, String)>) -> Result<(Option<u64>, Option<String>), ApiError> {
    let (mut after, mut agent) = (None, None);
    for (name, value) in pairs {
        match name.as_str() {
            "after" if after.is_none() => {
                after = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::invalid("after", "after must be an event seq (a whole number)")
                })?)
            }
            "agent" if agent.is_none() && !value.is_empty() => agent = Some(value),
            "agent" if value.is_empty() => {
                return Err(ApiError::invalid("agent", "agent must not be empty"))
            }
            "after" | "agent" => {
                return Err(ApiError::invalid(
                    &name,
                    format!("{name} is given more than once"),
                ))
            }
            _ => {
                return Err(ApiError::invalid(
                    &name,
                    format!("unknown query parameter {name}; known: after, agent"),
                ))
            }
        }
    }
    Ok((after, agent))
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    // A browser sends back the id it last received verbatim: anything but
    // one of our seqs is a client bug worth naming.
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid("Last-Event-ID", "Last-Event-ID must be an event seq"))
}

#[cfg(test)]
#[path = "desktop_tests.rs"]
mod tests;
