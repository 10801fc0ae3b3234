//! The consultation routes on a live call: consult, alternate,
//! cancel-consult, complete-transfer, conference, remove, leave, volume;
//! and a supervisor's: listen, whisper, barge.
//! Each builds one [`CallCommand`] (the call layer's `consult` decides);
//! a command that makes no sense in the call's state answers 409
//! `wrong_state` naming the state. The desktop's actions of the same names
//! on a web callback go through the center instead (`agents`).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};

use super::call_bodies::{ConsultBody, LeaveBody, PartyBody, SuperviseBody, VolumeBody};
use super::calls::{accepted, call_id, Reply};
use super::errors::Body as ErrorBody;
use super::extract::JsonBody;
use super::Api;
use crate::call::{CallCommand, Monitor};

#[allow(unused_imports)] // Named by the OpenAPI attributes.
use super::doc_types::CallRef;

#[utoipa::path(post, path = "/v1/calls/{id}/consult", tag = "calls", request_body = ConsultBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "A consultation or transfer is up already (`wrong_state`), or the leg is not answered", body = ErrorBody), (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn consult(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<ConsultBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/alternate", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No answered consultation, or a conference (`wrong_state`)", body = ErrorBody)))]
pub async fn alternate(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::Alternate { call }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/cancel-consult", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No consultation (`wrong_state`)", body = ErrorBody)))]
pub async fn cancel_consult(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::CancelConsult { call }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/complete-transfer", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No consultation, or the consulted party has not answered (`wrong_state`)", body = ErrorBody)))]
pub async fn complete_transfer(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::CompleteTransfer { call }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/conference", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No answered consultation (`wrong_state`)", body = ErrorBody)))]
pub async fn conference(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::Conference { call }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/remove", tag = "calls", request_body = PartyBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No consultation (`wrong_state`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<PartyBody>,
) -> Reply {
    let call = call_id(id)?;
    let party = body.party()?;
    accepted(&api, CallCommand::Remove { call, party }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/leave", tag = "calls", request_body = LeaveBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "No answered consultation (`wrong_state`)", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn leave(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LeaveBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/volume", tag = "calls", request_body = VolumeBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn volume(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<VolumeBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/listen", tag = "calls", request_body = SuperviseBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, description = "A supervisor is on the call already and `to` was given (`wrong_state`), or the call is not answered", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn listen(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<SuperviseBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?, Monitor::Listen)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/whisper", tag = "calls", request_body = SuperviseBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn whisper(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<SuperviseBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?, Monitor::Whisper)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/barge", tag = "calls", request_body = SuperviseBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn barge(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<SuperviseBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?, Monitor::Barge)?;
    accepted(&api, command).await
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{accepting, assert_error, harness, request, Answer};
    use crate::call::{CallCommand, CallId, CommandError, LegRole, Monitor, Others, Party, Way};

    fn call() -> CallId {
        CallId("c1".into())
    }

    #[tokio::test]
    async fn each_route_sends_its_command() {
        let mut h = accepting();
        for (path, body, command) in [
            (
                "consult",
                Some(r#"{"to": "1003"}"#),
                CallCommand::Consult {
                    call: call(),
                    leg: LegRole::A,
                    to: "1003".into(),
                },
            ),
            (
                "consult",
                Some(r#"{"leg": "b", "to": "+14155550123"}"#),
                CallCommand::Consult {
                    call: call(),
                    leg: LegRole::B,
                    to: "+14155550123".into(),
                },
            ),
            ("alternate", None, CallCommand::Alternate { call: call() }),
            (
                "cancel-consult",
                None,
                CallCommand::CancelConsult { call: call() },
            ),
            (
                "complete-transfer",
                None,
                CallCommand::CompleteTransfer { call: call() },
            ),
            ("conference", None, CallCommand::Conference { call: call() }),
            (
                "remove",
                Some(r#"{"party": "consulted"}"#),
                CallCommand::Remove {
                    call: call(),
                    party: Party::Consulted,
                },
            ),
            (
                "leave",
                Some("{}"),
                CallCommand::Leave {
                    call: call(),
                    others: Others::StayIfInternal,
                },
            ),
            (
                "leave",
                Some(r#"{"others": "hang-up"}"#),
                CallCommand::Leave {
                    call: call(),
                    others: Others::HangUp,
                },
            ),
            (
                "listen",
                Some(r#"{"to": "1005"}"#),
                CallCommand::Supervise {
                    call: call(),
                    mode: Monitor::Listen,
                    to: Some("1005".into()),
                },
            ),
            (
                "whisper",
                Some("{}"),
                CallCommand::Supervise {
                    call: call(),
                    mode: Monitor::Whisper,
                    to: None,
                },
            ),
            (
                "barge",
                Some("{}"),
                CallCommand::Supervise {
                    call: call(),
                    mode: Monitor::Barge,
                    to: None,
                },
            ),
            (
                "volume",
                Some(r#"{"party": "contact", "direction": "out", "db": -6}"#),
                CallCommand::Volume {
                    call: call(),
                    party: Party::Contact,
                    direction: Way::Out,
                    db: -6,
                },
            ),
        ] {
            let uri = format!("/v1/calls/c1/{path}");
            let r = request(&h.app, "POST", &uri, body).await;
            assert_eq!(r.status, 202, "{path}: {}", r.json);
            assert_eq!(r.json["call"], "c1");
            assert_eq!(h.seen.recv().await.unwrap(), command, "{path}");
        }
    }

    #[tokio::test]
    async fn bad_bodies_name_the_field() {
        let h = accepting();
        let post = |path: &'static str, body: &'static str| {
            let app = h.app.clone();
            async move { request(&app, "POST", &format!("/v1/calls/c1/{path}"), Some(body)).await }
        };
        assert_error(&post("consult", "{}").await, 422, Some("to"));
        assert_error(
            &post("consult", r#"{"to": "10 03"}"#).await,
            422,
            Some("to"),
        );
        assert_error(
            &post("consult", r#"{"leg": "x", "to": "1003"}"#).await,
            422,
            Some("leg"),
        );
        assert_error(&post("remove", "{}").await, 422, Some("party"));
        assert_error(&post("listen", r#"{"to": "a b"}"#).await, 422, Some("to"));
        assert_error(
            &post("remove", r#"{"party": "boss"}"#).await,
            422,
            Some("party"),
        );
        assert_error(
            &post("leave", r#"{"others": "maybe"}"#).await,
            422,
            Some("others"),
        );
        let volume = r#"{"party": "agent", "direction": "up", "db": 3}"#;
        assert_error(&post("volume", volume).await, 422, Some("direction"));
        let volume = r#"{"party": "agent", "direction": "in", "db": 13}"#;
        assert_error(&post("volume", volume).await, 422, Some("db"));
        let volume = r#"{"party": "agent", "direction": "in"}"#;
        assert_error(&post("volume", volume).await, 422, Some("db"));
        let volume = r#"{"party": "me", "direction": "in", "db": 1}"#;
        assert_error(&post("volume", volume).await, 422, Some("party"));
    }

    #[tokio::test]
    async fn a_command_out_of_place_is_409_naming_the_state() {
        let h = harness(|command| {
            let CallCommand::CompleteTransfer { call } = command else {
                panic!("{command:?}")
            };
            Answer::Reply(Err(CommandError::WrongState {
                call: call.clone(),
                state: "consult-ringing",
                why: "the consulted party has not answered",
            }))
        });
        let r = request(&h.app, "POST", "/v1/calls/c1/complete-transfer", None).await;
        assert_error(&r, 409, None);
        assert_eq!(r.json["code"], "wrong_state");
        assert_eq!(
            r.json["message"],
            "call c1 is consult-ringing: the consulted party has not answered"
        );
    }
}
