//! The call handlers: each parses the request, builds one [`CallCommand`]
//! or reads the [`CallDirectory`], and shapes the answer. None of them
//! decides anything about a call. The table that routes to them is `router`.
//!
//! [`CallDirectory`]: crate::call::CallDirectory

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::call_bodies::{
    DtmfBody, LegBody, ListQuery, OriginateBody, RecordingBody, TransferBody,
};
use super::doc_types::{CallList, CallRef, Health};
use super::errors::{ApiError, Body as ErrorBody};
use super::extract::JsonBody;
use super::{dispatch, Api};
use crate::call::{CallCommand, CallId, LegRole};

pub(super) type Reply = Result<Response, ApiError>;

#[utoipa::path(get, path = "/v1/health", tag = "meta", security(()),
    responses((status = 200, description = "The API is up (needs no key)", body = Health)))]
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = OriginateBody,
    responses(
        (status = 201, description = "The call was placed", body = CallRef, headers(("Location" = String))),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody), (status = 504, body = ErrorBody),
    ))]
pub async fn originate(
    State(api): State<Arc<Api>>,
    JsonBody(body): JsonBody<OriginateBody>,
) -> Reply {
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

#[utoipa::path(get, path = "/v1/calls", tag = "calls",
    params(("interaction" = Option<String>, Query, description = "Only this interaction's calls")),
    responses((status = 200, description = "Live calls", body = CallList), (status = 400, body = ErrorBody)))]
pub async fn list(
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
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses(
        (status = 200, description = "The call's summary, each leg with its media counters", body = serde_json::Value),
        (status = 404, body = ErrorBody),
    ))]
pub async fn show(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
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
        .map(|leg| json!(api.directory.leg_stats(leg.media_leg)))
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

#[utoipa::path(post, path = "/v1/calls/{id}/hangup", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody)))]
pub async fn hangup(State(api): State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    let call = call_id(id)?;
    accepted(&api, CallCommand::Hangup { call }).await
}

#[utoipa::path(delete, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, description = "Hung up (as POST /hangup)", body = CallRef), (status = 404, body = ErrorBody)))]
pub async fn delete_call(state: State<Arc<Api>>, id: Result<Path<String>, PathRejection>) -> Reply {
    hangup(state, id).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/hold", tag = "calls", request_body = LegBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn hold(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Hold { call, leg }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/retrieve", tag = "calls", request_body = LegBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn retrieve(
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

#[utoipa::path(post, path = "/v1/calls/{id}/mute", tag = "calls", request_body = LegBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn mute(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<LegBody>,
) -> Reply {
    on_leg(&api, id, body, |call, leg| CallCommand::Mute { call, leg }).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/unmute", tag = "calls", request_body = LegBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn unmute(
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

#[utoipa::path(post, path = "/v1/calls/{id}/dtmf", tag = "calls", request_body = DtmfBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn dtmf(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<DtmfBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/recording", tag = "calls", request_body = RecordingBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn recording(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<RecordingBody>,
) -> Reply {
    let command = body.into_command(call_id(id)?)?;
    accepted(&api, command).await
}

#[utoipa::path(post, path = "/v1/calls/{id}/transfer", tag = "calls", request_body = TransferBody,
    params(("id" = String, Path, description = "The call id")),
    responses((status = 202, body = CallRef), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn transfer(
    State(api): State<Arc<Api>>,
    id: Result<Path<String>, PathRejection>,
    JsonBody(body): JsonBody<TransferBody>,
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
pub(super) async fn accepted(api: &Api, command: CallCommand) -> Reply {
    let call = dispatch::send(api, command)
        .await?
        .map_err(|e| ApiError::from_command(e, None))?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "call": call }))).into_response())
}

/// The `{id}` segment; it can only fail on percent-encoding that is not UTF-8.
pub(super) fn call_id(id: Result<Path<String>, PathRejection>) -> Result<CallId, ApiError> {
    id.map(|Path(id)| CallId(id))
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("call")))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::json;

    use super::super::testkit::{accepting, assert_error, harness, request, send, target, Answer};
    use crate::call::{CallCommand, CallId, CommandError, LegRole, Originate};

    fn id(s: &str) -> CallId {
        CallId(s.into())
    }

    #[tokio::test]
    async fn health_says_ok() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/health", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json, json!({"status": "ok"}));
    }

    #[tokio::test]
    async fn originate_sends_every_field_and_answers_201_with_location() {
        let mut h = accepting();
        let body = r#"{"a": "1001", "b": "15551234567", "interaction": "i-42",
            "auto_answer": true, "caller_id": "+15550100",
            "headers": {"X-Case-Id": "42"}, "call": "optional-id"}"#;
        let r = request(&h.app, "POST", "/v1/calls", Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.json);
        assert_eq!(r.json, json!({"call": "optional-id"}));
        assert_eq!(r.headers["location"], "/v1/calls/optional-id");
        assert_eq!(
            h.seen.recv().await.unwrap(),
            CallCommand::Originate(Originate {
                call: Some(id("optional-id")),
                a: "1001".into(),
                b: "15551234567".into(),
                interaction: Some("i-42".into()),
                auto_answer: true,
                headers: vec![("X-Case-Id".into(), "42".into())],
                caller_id: Some("+15550100".into()),
                caller_id_name: None,
            })
        );

        // Only a and b are needed; the call layer picks the id.
        let r = request(
            &h.app,
            "POST",
            "/v1/calls",
            Some(r#"{"a": "1001", "b": "1002"}"#),
        )
        .await;
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["location"], "/v1/calls/c-new");
        let CallCommand::Originate(o) = h.seen.recv().await.unwrap() else {
            panic!()
        };
        assert_eq!((o.call, o.auto_answer, o.headers.len()), (None, false, 0));
    }

    #[tokio::test]
    async fn originate_refuses_missing_and_malformed_fields_by_name() {
        let mut h = accepting();
        let post = |body: &'static str| request(&h.app, "POST", "/v1/calls", Some(body));
        assert_error(&post(r#"{"b": "1002"}"#).await, 422, Some("a"));
        assert_error(&post(r#"{"a": "1001"}"#).await, 422, Some("b"));
        assert_error(&post(r#"{"a": 1001, "b": "1002"}"#).await, 422, Some("a"));
        assert_error(
            &post(r#"{"a": "1", "b": "2", "auto_answer": "yes"}"#).await,
            422,
            Some("auto_answer"),
        );
        assert_error(
            &post(r#"{"a": "1", "b": "2", "autoanswer": true}"#).await,
            422,
            Some("autoanswer"),
        );
        assert_error(
            &post(r#"{"a": "1", "b": "2", "headers": {"Bad Name": "1"}}"#).await,
            422,
            Some("headers"),
        );
        assert_error(
            &post(r#"{"a": "1", "b": "2", "headers": {"X-A": "1\r\nX-B: 2"}}"#).await,
            422,
            Some("headers"),
        );
        assert_error(
            &post(r#"{"a": "1", "b": "2", "headers": {"X-A": 1}}"#).await,
            422,
            Some("headers"),
        );
        assert_error(
            &post(r#"{"a": "1", "b": "2", "headers": ["X-A"]}"#).await,
            422,
            Some("headers"),
        );
        assert_error(&post(r#"["a"]"#).await, 422, Some("body"));
        // Nothing reached the call layer.
        assert!(h.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn bodies_that_are_not_json_are_refused_in_the_same_shape() {
        let h = accepting();
        assert_error(
            &request(&h.app, "POST", "/v1/calls", Some(r#"{"a": "1","#)).await,
            400,
            Some("body"),
        );
        assert_error(
            &request(&h.app, "POST", "/v1/calls", Some("")).await,
            400,
            Some("body"),
        );
        assert_error(
            &request(&h.app, "POST", "/v1/calls/c1/hold", None).await,
            400,
            Some("body"),
        );
        let form = Request::post("/v1/calls")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("a=1&b=2"))
            .unwrap();
        assert_error(&send(&h.app, form).await, 415, Some("content-type"));
        let no_type = Request::post("/v1/calls")
            .body(Body::from(r#"{"a":"1","b":"2"}"#))
            .unwrap();
        assert_error(&send(&h.app, no_type).await, 415, Some("content-type"));
    }

    #[tokio::test]
    async fn bodies_over_64_kib_are_refused() {
        let h = accepting();
        let padding = "x".repeat(super::super::router::BODY_LIMIT);
        let body = format!(r#"{{"a": "1", "b": "2", "interaction": "{padding}"}}"#);
        let r = request(&h.app, "POST", "/v1/calls", Some(&body)).await;
        assert_error(&r, 413, Some("body"));
        // Just under the limit is read (and then judged on its content).
        let body = format!(
            r#"{{"a": "1", "b": "2", "interaction": "{}"}}"#,
            "x".repeat(60_000)
        );
        let r = request(&h.app, "POST", "/v1/calls", Some(&body)).await;
        assert_error(&r, 422, Some("interaction"));
    }

    #[tokio::test]
    async fn list_returns_every_call_or_one_interactions() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/calls", None).await;
        assert_eq!(r.status, 200);
        let ids: Vec<_> = r.json["calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("c1"), json!("c2")]);

        let r = request(&h.app, "GET", "/v1/calls?interaction=i-42", None).await;
        assert_eq!(r.json["calls"].as_array().unwrap().len(), 1);
        assert_eq!(r.json["calls"][0]["interaction"], "i-42");
        assert_eq!(r.json["calls"][0]["legs"][0]["role"], "a");

        let r = request(&h.app, "GET", "/v1/calls?interaction=none", None).await;
        assert_eq!(r.json, json!({"calls": []}));

        assert_error(
            &request(&h.app, "GET", "/v1/calls?interation=i-42", None).await,
            400,
            Some("query"),
        );
    }

    #[tokio::test]
    async fn show_returns_the_summary_with_each_legs_counters() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/calls/c1", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json["id"], "c1");
        assert_eq!(r.json["state"], "bridged");
        assert_eq!(r.json["legs"][0]["media_leg"], 7);
        assert_eq!(r.json["legs"][0]["media"]["packets_in"], 50);
        assert_eq!(r.json["legs"][0]["media"]["jitter_ms"], 2.5);
        // No counters for media leg 8 yet: null, not a missing key.
        assert_eq!(r.json["legs"][1]["media"], json!(null));
        assert!(r.json["legs"][1].as_object().unwrap().contains_key("media"));

        assert_error(
            &request(&h.app, "GET", "/v1/calls/nope", None).await,
            404,
            Some("call"),
        );
    }

    #[tokio::test]
    async fn delete_and_post_hangup_both_hang_up() {
        let mut h = accepting();
        for (method, uri) in [("DELETE", "/v1/calls/c1"), ("POST", "/v1/calls/c1/hangup")] {
            let r = request(&h.app, method, uri, None).await;
            assert_eq!(r.status, 202);
            assert_eq!(r.json, json!({"call": "c1"}));
            assert_eq!(
                h.seen.recv().await.unwrap(),
                CallCommand::Hangup { call: id("c1") }
            );
        }
    }

    #[tokio::test]
    async fn leg_commands_name_their_leg() {
        let mut h = accepting();
        let call = || id("c1");
        let cases = [
            (
                "hold",
                "a",
                CallCommand::Hold {
                    call: call(),
                    leg: LegRole::A,
                },
            ),
            (
                "retrieve",
                "a",
                CallCommand::Retrieve {
                    call: call(),
                    leg: LegRole::A,
                },
            ),
            (
                "mute",
                "b",
                CallCommand::Mute {
                    call: call(),
                    leg: LegRole::B,
                },
            ),
            (
                "unmute",
                "c",
                CallCommand::Unmute {
                    call: call(),
                    leg: LegRole::C,
                },
            ),
        ];
        for (action, leg, command) in cases {
            let uri = format!("/v1/calls/c1/{action}");
            let body = format!(r#"{{"leg": "{leg}"}}"#);
            let r = request(&h.app, "POST", &uri, Some(&body)).await;
            assert_eq!(r.status, 202, "{action}: {}", r.json);
            assert_eq!(h.seen.recv().await.unwrap(), command);
            assert_error(
                &request(&h.app, "POST", &uri, Some(r#"{"leg": "d"}"#)).await,
                422,
                Some("leg"),
            );
            assert_error(
                &request(&h.app, "POST", &uri, Some(r#"{"leg": "A"}"#)).await,
                422,
                Some("leg"),
            );
            assert_error(
                &request(&h.app, "POST", &uri, Some("{}")).await,
                422,
                Some("leg"),
            );
        }
        assert!(h.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn dtmf_checks_digits() {
        let mut h = accepting();
        let uri = "/v1/calls/c1/dtmf";
        let r = request(
            &h.app,
            "POST",
            uri,
            Some(r#"{"leg": "b", "digits": "12#"}"#),
        )
        .await;
        assert_eq!(r.status, 202);
        assert_eq!(
            h.seen.recv().await.unwrap(),
            CallCommand::SendDtmf {
                call: id("c1"),
                leg: LegRole::B,
                digits: "12#".into()
            }
        );
        for bad in [r#""""#, r#""12x""#, r#""1 2""#, r#"12"#] {
            let body = format!(r#"{{"leg": "b", "digits": {bad}}}"#);
            assert_error(
                &request(&h.app, "POST", uri, Some(&body)).await,
                422,
                Some("digits"),
            );
        }
        let long = format!(r#"{{"leg": "b", "digits": "{}"}}"#, "1".repeat(33));
        assert_error(
            &request(&h.app, "POST", uri, Some(&long)).await,
            422,
            Some("digits"),
        );
        assert_error(
            &request(&h.app, "POST", uri, Some(r#"{"digits": "1"}"#)).await,
            422,
            Some("leg"),
        );
        assert!(h.seen.try_recv().is_err());
    }

    #[tokio::test]
    async fn recording_actions() {
        let mut h = accepting();
        let uri = "/v1/calls/c1/recording";
        let call = || id("c1");
        for (action, command) in [
            ("start", CallCommand::StartRecording { call: call() }),
            ("pause", CallCommand::PauseRecording { call: call() }),
            ("resume", CallCommand::ResumeRecording { call: call() }),
            ("stop", CallCommand::StopRecording { call: call() }),
        ] {
            let body = format!(r#"{{"action": "{action}"}}"#);
            assert_eq!(request(&h.app, "POST", uri, Some(&body)).await.status, 202);
            assert_eq!(h.seen.recv().await.unwrap(), command);
        }
        assert_error(
            &request(&h.app, "POST", uri, Some(r#"{"action": "rewind"}"#)).await,
            422,
            Some("action"),
        );
        assert_error(
            &request(&h.app, "POST", uri, Some("{}")).await,
            422,
            Some("action"),
        );
    }

    #[tokio::test]
    async fn call_layer_refusals_map_to_statuses() {
        let h = harness(|command| {
            let call = target(command);
            Answer::Reply(Err(match call.0.as_str() {
                "no-call" => CommandError::NoCall(call),
                "no-leg" => CommandError::NoLeg(call, LegRole::C),
                "ringing" => CommandError::NotAnswered(call, LegRole::B),
                "busy" => CommandError::Busy("too many calls".into()),
                "bad" => CommandError::Invalid {
                    field: "leg",
                    message: "leg c is not in a transfer".into(),
                },
                other => panic!("unexpected {other}"),
            }))
        });
        let hold = |call: &str| {
            let uri = format!("/v1/calls/{call}/hold");
            let app = h.app.clone();
            async move { request(&app, "POST", &uri, Some(r#"{"leg": "b"}"#)).await }
        };
        assert_error(&hold("no-call").await, 404, Some("call"));
        assert_error(&hold("no-leg").await, 404, Some("leg"));
        assert_error(&hold("ringing").await, 409, Some("leg"));
        assert_error(&hold("busy").await, 503, None);
        assert_error(&hold("bad").await, 422, Some("leg"));
        let r = request(&h.app, "DELETE", "/v1/calls/no-call", None).await;
        assert_error(&r, 404, Some("call"));
        assert_eq!(r.json["message"], "no call no-call");
        assert_eq!(r.json["code"], "no_call");
    }

    #[tokio::test]
    async fn originate_refusals_name_the_side_that_failed() {
        let h = harness(|command| {
            let CallCommand::Originate(o) = command else {
                panic!()
            };
            Answer::Reply(Err(match o.call.as_ref().map(|c| c.0.as_str()) {
                Some("dup") => CommandError::CallExists(target(command)),
                Some("route-a") => CommandError::NoRoute(o.a.clone()),
                Some("route-b") => CommandError::NoRoute(o.b.clone()),
                Some("route-x") => CommandError::NoRoute("sip:rewritten".into()),
                _ => CommandError::Invalid {
                    field: "caller_id",
                    message: "not allowed on profile".into(),
                },
            }))
        });
        let post = |call: &str| {
            let body = format!(r#"{{"a": "1001", "b": "15551234567", "call": "{call}"}}"#);
            let app = h.app.clone();
            async move { request(&app, "POST", "/v1/calls", Some(&body)).await }
        };
        assert_error(&post("dup").await, 409, Some("call"));
        assert_error(&post("route-a").await, 422, Some("a"));
        assert_error(&post("route-b").await, 422, Some("b"));
        assert_error(&post("route-x").await, 422, None);
        assert_error(&post("other").await, 422, Some("caller_id"));
    }

    #[tokio::test]
    async fn an_endpoint_that_is_gone_is_503() {
        // The reply slot dropped mid-command.
        let h = harness(|_| Answer::Drop);
        assert_error(
            &request(&h.app, "POST", "/v1/calls/c1/hangup", None).await,
            503,
            None,
        );

        // The command queue closed: the endpoint task ended.
        let h = accepting();
        let (commands, queue) = tokio::sync::mpsc::channel(1);
        drop(queue);
        let state = super::super::HttpState {
            commands,
            ..h.state
        };
        let app = super::super::router(state);
        assert_error(
            &request(&app, "DELETE", "/v1/calls/c1", None).await,
            503,
            None,
        );
        // Reads do not need the endpoint.
        assert_eq!(request(&app, "GET", "/v1/calls/c1", None).await.status, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reply_slower_than_5_s_is_504() {
        let h = harness(|_| Answer::Stall);
        let started = tokio::time::Instant::now();
        let r = request(&h.app, "POST", "/v1/calls", Some(r#"{"a": "1", "b": "2"}"#)).await;
        assert_error(&r, 504, None);
        assert_eq!(started.elapsed(), super::super::dispatch::REPLY_TIMEOUT);
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/nothing", None).await;
        assert_error(&r, 404, None);
        assert_eq!(r.json["code"], "unknown_route");
        assert_error(&request(&h.app, "GET", "/calls", None).await, 404, None);
        assert_error(
            &request(&h.app, "PUT", "/v1/calls/c1", None).await,
            405,
            None,
        );
        let r = request(&h.app, "GET", "/v1/calls/c1/hold", None).await;
        assert_error(&r, 405, None);
        assert_eq!(r.json["code"], "method_not_allowed");
        assert_error(
            &request(&h.app, "POST", "/v1/health", None).await,
            405,
            None,
        );
    }
}
