//! The notification outbox's routes: dead events listed (a page at a time,
//! in commit order), replayed one by one or all of an endpoint's, and the
//! outbox's figures. Each handler checks the request's shape and asks the
//! [`NotifyControl`]; the delivery task decides and commits.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::errors::{ApiError, Body as ErrorBody};
use super::Api;
use crate::integrations::notify::control::ControlFuture;
use crate::integrations::notify::{
    ControlError, DeadPage, EndpointStats, Notice, NotifyControl, OutboxRow,
};

type Reply = Result<Response, ApiError>;

/// Largest page of dead events.
const MAX_LIMIT: usize = 500;

/// One dead event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadItem {
    endpoint: String,
    event_id: String,
    #[schema(example = "agent-state")]
    event_type: String,
    /// The agent (events of one agent are delivered in order).
    agent: String,
    /// Failed attempts.
    attempts: u32,
    last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    dead_at: Option<jiff::Timestamp>,
    /// The event as the endpoint receives it (as JSON).
    event: Notice,
}

/// `GET /v1/notifications/dead`: a page; `next` is the next page's `after`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadList {
    items: Vec<DeadItem>,
    next: Option<u64>,
}

/// How many dead events a replay made pending again.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    replayed: usize,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFigures {
    endpoint: String,
    /// Waiting for delivery or in flight.
    pending: usize,
    in_flight: usize,
    dead: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationStats {
    endpoints: Vec<EndpointFigures>,
}

/// The dead-list query, as the OpenAPI document lists it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub struct DeadParams {
    /// Only this endpoint's dead events.
    endpoint: Option<String>,
    /// The previous page's `next` (events committed after it).
    after: Option<u64>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
}

/// The replay-all query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReplayParams {
    /// Only this endpoint's dead events (default: every configured endpoint's).
    endpoint: Option<String>,
}

impl Api {
    fn notifications(&self) -> Result<&Arc<dyn NotifyControl>, ApiError> {
        self.callback_api()?.notifications.as_ref().ok_or_else(|| {
            ApiError::unavailable_because("notifications are not enabled on this switch")
                .with_code("notifications_disabled")
        })
    }
}

#[utoipa::path(
    get, path = "/v1/notifications/dead", tag = "notifications",
    params(DeadParams),
    responses(
        (status = 200, description = "Dead events in commit order", body = DeadList),
        (status = 422, description = "A query parameter is not acceptable (named in `field`)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn dead(
    State(api): State<Arc<Api>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let pairs = pairs(query)?;
    let (mut endpoint, mut after, mut limit) = (None, 0, 0);
    for (name, value) in only_once(pairs, &["endpoint", "after", "limit"])? {
        match name.as_str() {
            "endpoint" => endpoint = Some(non_empty("endpoint", value)?),
            "after" => {
                after = value.parse().map_err(|_| {
                    ApiError::invalid("after", "after must be a previous page's next")
                })?
            }
            _ => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("limit", format!("limit must be 1 to {MAX_LIMIT}"))
                    })?
            }
        }
    }
    let control = api.notifications()?;
    let page = ask(&api, control.dead(endpoint, after, limit)).await?;
    Ok(Json(list(page)).into_response())
}

#[utoipa::path(
    post, path = "/v1/notifications/dead/{endpoint}/{eventId}/replay", tag = "notifications",
    params(
        ("endpoint" = String, Path, description = "The endpoint's configured name"),
        ("eventId" = String, Path, description = "The event's id"),
    ),
    responses(
        (status = 202, description = "Pending again, its attempts reset; delivered in the background", body = Replayed),
        (status = 404, description = "No such event in the outbox (delivered, or never)", body = ErrorBody),
        (status = 409, description = "The event is not dead (still pending)", body = ErrorBody),
        (status = 422, description = "Its endpoint is no longer configured", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn replay(
    State(api): State<Arc<Api>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let Path((endpoint, event_id)) =
        path.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("path")))?;
    let control = api.notifications()?;
    ask(&api, control.replay(endpoint, event_id)).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: 1 })).into_response())
}

#[utoipa::path(
    post, path = "/v1/notifications/dead/replay", tag = "notifications",
    params(ReplayParams),
    responses(
        (status = 202, description = "Every dead event (of the endpoint) pending again", body = Replayed),
        (status = 422, description = "No such endpoint is configured", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn replay_all(
    State(api): State<Arc<Api>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let mut endpoint = None;
    for (_, value) in only_once(pairs(query)?, &["endpoint"])? {
        endpoint = Some(non_empty("endpoint", value)?);
    }
    let control = api.notifications()?;
    let replayed = ask(&api, control.replay_all(endpoint)).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })).into_response())
}

#[utoipa::path(
    get, path = "/v1/notifications/stats", tag = "notifications",
    responses(
        (status = 200, description = "Per endpoint: events pending, in flight and dead", body = NotificationStats),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn stats(State(api): State<Arc<Api>>) -> Reply {
    let control = api.notifications()?;
    let stats = ask(&api, control.stats()).await?;
    let endpoints = stats
        .into_iter()
        .map(|s: EndpointStats| EndpointFigures {
            endpoint: s.endpoint,
            pending: s.pending,
            in_flight: s.in_flight,
            dead: s.dead,
        })
        .collect();
    Ok(Json(NotificationStats { endpoints }).into_response())
}

/// Awaits the control's answer, bounded like a center request.
async fn ask<T>(api: &Api, answer: ControlFuture<T>) -> Result<T, ApiError> {
    match tokio::time::timeout(api.reply_timeout, answer).await {
        Ok(answer) => answer.map_err(refusal),
        Err(_) => Err(ApiError::timed_out_for(
            "the notification outbox",
            api.reply_timeout.as_secs(),
        )),
    }
}

fn refusal(e: ControlError) -> ApiError {
    let message = e.to_string();
    match e {
        ControlError::NoSuchEvent { .. } => {
            ApiError::new(StatusCode::NOT_FOUND, message, Some("eventId")).with_code("no_event")
        }
        ControlError::NotDead { .. } => {
            ApiError::new(StatusCode::CONFLICT, message, Some("eventId")).with_code("not_dead")
        }
        ControlError::UnknownEndpoint(_) => {
            ApiError::invalid("endpoint", message).with_code("unknown_endpoint")
        }
        ControlError::Unavailable(_) => ApiError::unavailable_because(message),
    }
}

fn list(page: DeadPage) -> DeadList {
    DeadList {
        items: page.items.into_iter().map(item).collect(),
        next: page.next,
    }
}

fn item(row: OutboxRow) -> DeadItem {
    DeadItem {
        endpoint: row.endpoint,
        event_id: row.event_id,
        event_type: row.event_type,
        agent: row.lane,
        attempts: row.attempts,
        last_error: row.last_error,
        dead_at: row.dead_at,
        event: row.notice,
    }
}

fn pairs(
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|Query(pairs)| pairs)
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("query")))
}

/// The pairs, each a known parameter given once; otherwise a 422 naming it.
fn only_once(
    pairs: Vec<(String, String)>,
    known: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in &pairs {
        let Some(k) = known.iter().find(|k| *k == name) else {
            return Err(ApiError::invalid(
                name,
                format!(
                    "unknown query parameter {name}; known: {}",
                    known.join(", ")
                ),
            ));
        };
        if seen.contains(k) {
            return Err(ApiError::invalid(
                name,
                format!("{name} is given more than once"),
            ));
        }
        seen.push(k);
    }
    Ok(pairs)
}

fn non_empty(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(name, format!("{name} must not be empty")));
    }
    Ok(value)
}

#[cfg(test)]
#[path = "notifications_tests.rs"]
mod tests;
