//! The route table and its handlers: each handler parses the request,
//! builds one [`CallCommand`] or reads the [`CallDirectory`], and shapes the
//! answer. None of them decides anything about a call.
//!
//! [`CallDirectory`]: crate::call::CallDirectory

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::bodies::{DtmfBody, LegBody, ListQuery, OriginateBody, RecordingBody};
use super::errors::ApiError;
use super::extract::JsonBody;
use super::{dispatch, events, Api};
use crate::call::{CallCommand, CallId, LegRole};

/// Largest request body: an originate with generous case data fits many times.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn table(api: Arc<Api>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/calls", get(list).post(originate))
        .route("/v1/calls/{id}", get(show).delete(hangup))
        .route("/v1/calls/{id}/hangup", post(hangup))
        .route("/v1/calls/{id}/hold", post(hold))
        .route("/v1/calls/{id}/retrieve", post(retrieve))
        .route("/v1/calls/{id}/mute", post(mute))
        .route("/v1/calls/{id}/unmute", post(unmute))
        .route("/v1/calls/{id}/dtmf", post(dtmf))
        .route("/v1/calls/{id}/recording", post(recording))
        .route("/v1/events", get(events::stream))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

type Reply = Result<Response, ApiError>;

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn originate(State(api): State<Arc<Api>>, JsonBody(body): JsonBody<OriginateBody>) -> Reply {
    let originate = body.into_command()?;
    // Kept to tell which side a NoRoute is about.
    let (a, b) = (originate.a.clone(), originate.b.clone());
    let call = dispatch::send(&api, CallCommand::Originate(originate))
        .await?
        .map_err(|e| ApiError::from_command(e, Some((&a, &b))))?;
    let mut response = (StatusCode::CREATED, Json(json!({ "call": call }))).into_response();
    // Ids the call layer makes are URL-safe; should one not be, the body
    // still names the call and only the convenience header is missing.
    match HeaderValue::try_from(format!("/v1/calls/{call}")) {
        Ok(location) => {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Err(_) => tracing::warn!(%call, "call id not usable in a Location header"),
    }
    Ok(response)
}

async fn list(
    State(api): State<Arc<Api>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Reply {
    let Query(query) =
        query.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("query")))?;
    let calls = match query.interaction {
        Some(interaction) => api.directory.by_interaction(&interaction),
        None => api.directory.calls(),
    };
    Ok(Json(json!({ "calls": calls })).into_response())
}

/// One call, with each leg's media counters under `media` (null when the
/// relay has none for it, e.g. before media is set up).
async fn show(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    let call = call_id(id)?;
    let summary = api.directory.call(&call).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no call {call}"),
            Some("call"),
        )
    })?;
    let counters: Vec<Value> = summary
        .legs
        .iter()
        .map(|leg| json!(api.directory.leg_counters(leg.media_leg)))
        .collect();
    let mut view = json!(summary);
    if let Some(legs) = view.get_mut("legs").and_then(Value::as_array_mut) {
        for (leg, media) in legs.iter_mut().zip(counters) {
            if let Some(leg) = leg.as_object_mut() {
                leg.insert("media".to_owned(), media);
            }
        }
    }
    Ok(Json(view).into_response())
}

async fn hangup(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::Hangup { call }).await
}

async fn hold(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Hold { call, leg }).await
}

async fn retrieve(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Retrieve {
        call,
        leg,
    })
    .await
}

async fn mute(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Mute { call, leg }).await
}

async fn unmute(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Unmute {
        call,
        leg,
    })
    .await
}

async fn dtmf(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<DtmfBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

async fn recording(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RecordingBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

async fn on_leg(
    api: &Api,
    id: Result<Path<String>, PathRejection>,
    body: LegBody,
    command: impl FnOnce(CallId, LegRole) -> CallCommand,
) -> Reply {
    let call = call_id(id)?;
    let leg = body.leg()?;
    accepted(api, command(call, leg)).await
}

/// Commands on an existing call answer 202: the call layer took the
/// command; that it happened is reported by its event.
async fn accepted(api: &Api, command: CallCommand) -> Reply {
    let call = dispatch::send(api, command)
        .await?
        .map_err(|e| ApiError::from_command(e, None))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "call": call }))).into_response())
}

/// The `{id}` segment; it can only fail on percent-encoding that is not UTF-8.
fn call_id(id: Result<Path<String>, PathRejection>) -> Result<CallId, ApiError> {
    id.map(|Path(id)| CallId(id))
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("call")))
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
        None,
    )
}

async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
        None,
    )
}
