//! The agent desktop's routes: an agent's own state (login, ready, not
//! ready, logout), the actions on an interaction it owns, scheduling a
//! callback for the contact on its current call, and the dialable lists
//! (docs/web-callbacks.md). The agent is named in the path; which agent a key may
//! act as is not this layer's concern (any valid key acts for the desktop).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::callback_bodies::{ActionBody, NotReadyBody, ScheduleBody, ACTIONS};
use super::callbacks::{answer_callback, located, Reply};
use super::errors::{ApiError, Body as ErrorBody};
use super::extract::OptionalJsonBody;
use super::{center, Api};
use crate::callback::{AgentAction, AgentView, Callback, InteractionId, Request};

/// The body of actions that take no parameters: nothing, or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "an empty JSON object")]
pub struct NoBody {}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/callbacks/{id}/{action}", tag = "desktop",
    params(
        ("agent" = String, Path, description = "The agent's SIP user name"),
        ("id" = String, Path, description = "The interaction id"),
        ("action" = String, Path, description = "accept, reject, call, hold, retrieve, mute, unmute, dtmf, start-recording, stop-recording, transfer, consult, alternate, cancel-consult, complete-transfer, conference, remove, leave, volume, listen, whisper, barge, end-call, done, reschedule, decline, mark-done"),
    ),
    request_body(content = ActionBody, description = "Only the fields of the action named; may be empty when it has none"),
    responses(
        (status = 200, description = "The interaction after the action", body = Callback),
        (status = 403, description = "The agent lacks the privilege (`privilege`) or does not own the interaction", body = ErrorBody),
        (status = 404, description = "No such action, callback or agent", body = ErrorBody),
        (status = 409, description = "The action does not fit the interaction's state, or it is over", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn interaction_action(
    State(api): State<Arc<Api>>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<ActionBody>,
) -> Reply {
    let (agent, id, name) = segments(path)?;
    let action = body
        .into_action(&name, api.callback_api()?)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action {name}; actions: {}", ACTIONS.join(", ")),
                Some("action"),
            )
            .with_code("unknown_action")
        })?;
    let request = Request::Interaction {
        id: InteractionId(id),
        agent,
        action,
    };
    answer_callback(&api, request).await
}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/login", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn login(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
    _: OptionalJsonBody<NoBody>,
) -> Reply {
    agent_action(&api, agent, AgentAction::Login).await
}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/ready", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn ready(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
    _: OptionalJsonBody<NoBody>,
) -> Reply {
    agent_action(&api, agent, AgentAction::Ready).await
}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/not-ready", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    request_body = NotReadyBody,
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody))
)]
pub async fn not_ready(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<NotReadyBody>,
) -> Reply {
    let reason = body.reason()?;
    agent_action(&api, agent, AgentAction::NotReady { reason }).await
}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/logout", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody))
)]
pub async fn logout(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
    _: OptionalJsonBody<NoBody>,
) -> Reply {
    agent_action(&api, agent, AgentAction::Logout).await
}

#[utoipa::path(
    get, path = "/v1/agents/{agent}", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody))
)]
pub async fn view(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
) -> Reply {
    let agent = agent_name(agent)?;
    let reply = center::ask(&api, Request::AgentView { agent }).await?;
    Ok(Json(center::agent(reply)?).into_response())
}

#[utoipa::path(
    post, path = "/v1/agents/{agent}/schedule", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    request_body = ScheduleBody,
    responses(
        (status = 201, description = "A callback for the contact of the agent's current call", body = Callback,
            headers(("Location" = String))),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The agent is on no call", body = ErrorBody),
        (status = 422, body = ErrorBody),
    )
)]
pub async fn schedule(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
    OptionalJsonBody(body): OptionalJsonBody<ScheduleBody>,
) -> Reply {
    let agent = agent_name(agent)?;
    let request = body.into_request(agent, api.callback_api()?)?;
    let reply = center::ask(&api, request).await?;
    let callback = center::callback(reply)?;
    Ok(located(StatusCode::CREATED, &callback))
}

#[utoipa::path(
    get, path = "/v1/agents/{agent}/dialable", tag = "desktop",
    params(("agent" = String, Path, description = "The agent's SIP user name")),
    responses((status = 200, description = "Callbacks this agent may dial", body = Vec<Callback>), (status = 404, body = ErrorBody))
)]
pub async fn agent_dialable(
    State(api): State<Arc<Api>>,
    agent: Result<Path<String>, PathRejection>,
) -> Reply {
    let agent = agent_name(agent)?;
    dialable(
        &api,
        Request::Dialable {
            agent: Some(agent),
            team: None,
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/v1/teams/{team}/dialable", tag = "desktop",
    params(("team" = String, Path, description = "The team's name")),
    responses((status = 200, description = "Callbacks the team's agents may dial", body = Vec<Callback>))
)]
pub async fn team_dialable(
    State(api): State<Arc<Api>>,
    team: Result<Path<String>, PathRejection>,
) -> Reply {
    let team = team
        .map(|Path(t)| t)
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("team")))?;
    dialable(
        &api,
        Request::Dialable {
            agent: None,
            team: Some(team),
        },
    )
    .await
}

async fn dialable(api: &Api, request: Request) -> Reply {
    let reply = center::ask(api, request).await?;
    Ok(Json(center::callback_list(reply)?).into_response())
}

async fn agent_action(
    api: &Api,
    agent: Result<Path<String>, PathRejection>,
    action: AgentAction,
) -> Reply {
    let agent = agent_name(agent)?;
    let reply = center::ask(api, Request::Agent { agent, action }).await?;
    Ok(Json(center::agent(reply)?).into_response())
}

fn agent_name(agent: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    agent
        .map(|Path(a)| a)
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("agent")))
}

fn segments(
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<(String, String, String), ApiError> {
    path.map(|Path(p)| p)
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("path")))
}

#[cfg(test)]
#[path = "agents_tests.rs"]
mod tests;
