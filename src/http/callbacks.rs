//! The contact's and supervisor's routes: create, list, read, status,
//! cancel and reschedule a callback. Each handler checks the request's
//! shape, hands one [`Request`] to the center (or reads the store) and
//! shapes the answer; whether the change is allowed is the center's call.
//! A create first consults its queue's enrichment webhook, when one is
//! configured (`integrations::enrich`), and validates the merged body.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;

use super::callback_bodies::{CancelBody, RescheduleBody};
use super::doc_types::CreateCallbackDoc;
use super::errors::{ApiError, Body as ErrorBody};
use super::extract::{JsonBody, JsonBytes};
use super::{center, list_query, Api, CallbackApi};
use crate::callback::{
    ActionError, Callback, CallbackWithHistory, ContactStatus, InteractionId, NewCallback, Page,
    Request,
};
use crate::integrations::enrich::{Enrichment, Refused};

pub type Reply = Result<Response, ApiError>;

/// The code of [`ActionError::NoCallback`]'s answer.
const NO_CALLBACK: &str = "no_callback";

/// The code of a create refused because its enrichment webhook failed.
pub const ENRICHMENT_FAILED: &str = "enrichment_failed";

/// Longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 255;

#[utoipa::path(
    post, path = "/v1/callbacks", tag = "callbacks",
    request_body(content = CreateCallbackDoc, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters; a retry with the same key returns the first answer's callback")),
    responses(
        (status = 201, description = "Created", body = Callback,
            headers(("Location" = String, description = "/v1/callbacks/{id}"))),
        (status = 200, description = "An idempotent replay, or merged into an open callback for the same number and queue", body = Callback,
            headers(("Location" = String))),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "A field is not acceptable (the message says when the value came from the enrichment answer)", body = ErrorBody),
        (status = 502, description = "`enrichment_failed`: the queue's enrichment webhook failed and its policy refuses the request; nothing is stored", body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn create(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    JsonBytes(body): JsonBytes,
) -> Reply {
    let layer = api.callback_api()?;
    let idempotency_key = idempotency_key(&headers)?;
    // The webhook sees the request as sent; the merged body is validated.
    let enrichment = match &layer.enricher {
        None => Enrichment::Skipped,
        Some(enricher) => {
            // A retried create answers its first result without asking
            // the webhook again (which could now refuse or change it).
            if let Some(key) = &idempotency_key {
                let replay = Request::Replay {
                    idempotency_key: key.clone(),
                };
                match center::ask(&api, replay).await? {
                    crate::callback::Reply::NoReplay => {}
                    first => return created_answer(&api, layer, first).await,
                }
            }
            enricher.enrich(&body).await.map_err(enrichment_failed)?
        }
    };
    let body = match &enrichment {
        Enrichment::Enriched { body, .. } => body.as_slice(),
        Enrichment::Skipped | Enrichment::Unenriched { .. } => &body[..],
    };
    let request = (layer.validate_create)(body, Timestamp::now())
        .map_err(|(field, message)| ApiError::invalid(&field, enrichment.blame(&field, message)))?;
    let callback = NewCallback {
        request,
        enrichment: enrichment.note().cloned(),
    };
    let reply = center::ask(
        &api,
        Request::Create {
            callback,
            idempotency_key,
        },
    )
    .await?;
    created_answer(&api, layer, reply).await
}

/// A create's answer: 201 with a new callback, 200 with the first result
/// of a replay or a merge.
async fn created_answer(api: &Api, layer: &CallbackApi, reply: crate::callback::Reply) -> Reply {
    // A replay of a callback that is over: the first result is in the store.
    if let crate::callback::Reply::Replayed(id) = &reply {
        let record = center::read(api, layer.reads.callback(id.clone()))
            .await?
            .ok_or_else(|| ApiError::internal(format!("replayed callback {id} is not stored")))?;
        return Ok(located(StatusCode::OK, &record.callback));
    }
    let (callback, new) = center::created(reply)?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(located(status, &callback))
}

#[utoipa::path(
    get, path = "/v1/callbacks", tag = "callbacks",
    params(list_query::ListParams),
    responses(
        (status = 200, body = Page),
        (status = 422, description = "A query parameter is not acceptable (named in `field`)", body = ErrorBody),
    )
)]
pub async fn list(
    State(api): State<Arc<Api>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Reply {
    let Query(pairs) =
        query.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("query")))?;
    let filter = list_query::parse(pairs)?;
    let page = center::read(&api, api.callback_api()?.reads.list(filter)).await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(
    get, path = "/v1/callbacks/{id}", tag = "callbacks",
    params(("id" = String, Path, description = "The interaction id")),
    responses(
        (status = 200, description = "The record and its history", body = CallbackWithHistory),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn show(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    let id = interaction(id)?;
    let found = center::read(&api, api.callback_api()?.reads.callback(id.clone())).await?;
    match found {
        Some(record) => Ok(Json(record).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no callback {id}"),
            Some("id"),
        )
        .with_code("no_callback")),
    }
}

#[utoipa::path(
    get, path = "/v1/callbacks/{id}/status", tag = "callbacks",
    params(("id" = String, Path, description = "The interaction id")),
    responses(
        (status = 200, description = "What the contact is told: state, position, expected wait (none once it is over)", body = ContactStatus),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn status(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    let id = interaction(id)?;
    match center::ask(&api, Request::Status { id: id.clone() }).await {
        // Over: the contact is still told so, with no place in line.
        Err(e) if e.code == NO_CALLBACK => {
            let over = finished(&api, &id).await?.ok_or(e)?;
            let status = ContactStatus {
                id,
                state: over.state,
                position: None,
                estimated_wait_secs: None,
                callback_scheduled_time: over.request.callback_scheduled_time,
            };
            Ok(Json(status).into_response())
        }
        reply => Ok(Json(center::status(reply?)?).into_response()),
    }
}

#[utoipa::path(
    post, path = "/v1/callbacks/{id}/cancel", tag = "callbacks",
    params(("id" = String, Path, description = "The interaction id")),
    request_body = CancelBody,
    responses(
        (status = 200, description = "Cancelled", body = Callback),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already over", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn cancel(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<CancelBody>,
) -> Reply {
    let request = body.into_request(interaction(id)?)?;
    answer_callback(&api, request).await
}

#[utoipa::path(
    post, path = "/v1/callbacks/{id}/reschedule", tag = "callbacks",
    params(("id" = String, Path, description = "The interaction id")),
    request_body = RescheduleBody,
    responses(
        (status = 200, description = "Rescheduled", body = Callback),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not waiting, or already over", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn reschedule(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RescheduleBody>,
) -> Reply {
    let id = interaction(id)?;
    let request = body.into_request(id, api.callback_api()?)?;
    answer_callback(&api, request).await
}

/// Sends `request` and answers 200 with the callback it returns. A change
/// to a callback that is over is a wrong state (409), not an unknown id.
pub async fn answer_callback(api: &Api, request: Request) -> Reply {
    let about = match &request {
        Request::Cancel { id, .. } => Some((id.clone(), "cancel")),
        Request::Reschedule { id, .. } => Some((id.clone(), "reschedule")),
        Request::Interaction { id, action, .. } => Some((id.clone(), action.name())),
        _ => None,
    };
    match center::ask(api, request).await {
        Err(e) if e.code == NO_CALLBACK => {
            let Some((id, action)) = about else {
                return Err(e);
            };
            let over = finished(api, &id).await?.ok_or(e)?;
            Err(ApiError::from_action(ActionError::WrongState {
                action: action.into(),
                state: over.state.to_string(),
            }))
        }
        reply => Ok(Json(center::callback(reply?)?).into_response()),
    }
}

/// The center holds live callbacks only: one it does not know is either
/// over (stored in a final state) or was never made (`None`).
async fn finished(api: &Api, id: &InteractionId) -> Result<Option<Callback>, ApiError> {
    let found = center::read(api, api.callback_api()?.reads.callback(id.clone())).await?;
    Ok(found
        .map(|record| record.callback)
        .filter(|cb| cb.state.is_final()))
}

/// 502: the queue's enrichment webhook failed and its policy is `refuse`.
fn enrichment_failed(refused: Refused) -> ApiError {
    ApiError::new(StatusCode::BAD_GATEWAY, refused.to_string(), None).with_code(ENRICHMENT_FAILED)
}

/// `status` with the callback as the body and its URL in `Location`.
pub fn located(status: StatusCode, callback: &Callback) -> Response {
    let mut response = (status, Json(callback)).into_response();
    // Ids the center makes are URL-safe; should one not be, the body still
    // names the callback and only the convenience header is missing.
    match HeaderValue::try_from(format!("/v1/callbacks/{}", callback.id)) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => tracing::warn!(id = %callback.id, "callback id not usable in a Location header"),
    }
    response
}

/// The `{id}` segment; it can only fail on percent-encoding that is not UTF-8.
pub fn interaction(id: Result<Path<String>, PathRejection>) -> Result<InteractionId, ApiError> {
    id.map(|Path(id)| InteractionId(id))
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("id")))
}

/// `Idempotency-Key`: absent, or 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    if bytes.is_empty()
        || bytes.len() > MAX_IDEMPOTENCY_KEY
        || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    // Visible ASCII is UTF-8.
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

#[cfg(test)]
#[path = "callbacks_tests.rs"]
mod tests;
