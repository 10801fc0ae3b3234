//! The agent desktop's routes against a fake center.

use serde_json::json;

use super::super::callback_testkit::{callback_harness, plausible, CenterAnswer};
use super::super::testkit::{assert_code, assert_error, request};
use crate::callback::{
    ActionError, AgentAction, InteractionAction, InteractionId, Privilege, Request,
};

fn interaction(action: InteractionAction) -> Request {
    Request::Interaction {
        id: InteractionId("cb-0000000000000005".into()),
        agent: "1001".into(),
        action,
    }
}

#[tokio::test]
async fn every_interaction_action_reaches_the_center_and_returns_the_callback() {
    use InteractionAction as A;
    let mut h = callback_harness(plausible);
    let cases = [
        ("accept", None, A::Accept),
        ("reject", None, A::Reject),
        ("call", Some("{}"), A::Call),
        ("hold", None, A::Hold),
        ("retrieve", None, A::Retrieve),
        ("mute", None, A::Mute),
        ("unmute", None, A::Unmute),
        (
            "dtmf",
            Some(r#"{"digits": "1#"}"#),
            A::Dtmf {
                digits: "1#".into(),
            },
        ),
        ("start-recording", None, A::StartRecording),
        ("stop-recording", None, A::StopRecording),
        (
            "transfer",
            Some(r#"{"to": "1002"}"#),
            A::Transfer { to: "1002".into() },
        ),
        (
            "consult",
            Some(r#"{"to": "1002"}"#),
            A::Consult { to: "1002".into() },
        ),
        ("alternate", None, A::Alternate),
        ("cancel-consult", None, A::CancelConsult),
        ("complete-transfer", None, A::CompleteTransfer),
        ("conference", None, A::Conference),
        (
            "remove",
            Some(r#"{"party": "consulted"}"#),
            A::Remove {
                party: crate::call::Party::Consulted,
            },
        ),
        ("leave", None, A::Leave),
        (
            "volume",
            Some(r#"{"party": "agent", "direction": "in", "db": 6}"#),
            A::Volume {
                party: crate::call::Party::Agent,
                direction: crate::call::Way::In,
                db: 6,
            },
        ),
        (
            "listen",
            None,
            A::Supervise {
                mode: crate::call::Monitor::Listen,
            },
        ),
        (
            "whisper",
            None,
            A::Supervise {
                mode: crate::call::Monitor::Whisper,
            },
        ),
        (
            "barge",
            None,
            A::Supervise {
                mode: crate::call::Monitor::Barge,
            },
        ),
        ("end-call", None, A::EndCall),
        (
            "done",
            Some(r#"{"disposition": "resolved"}"#),
            A::Done {
                disposition: Some("resolved".into()),
            },
        ),
        (
            "reschedule",
            Some(
                r#"{"callbackScheduledTime": "2030-01-01T10:00:00Z", "callbackNumber": "5550199"}"#,
            ),
            A::Reschedule {
                at: "2030-01-01T10:00:00Z".parse().unwrap(),
                number: Some("5550199".into()),
            },
        ),
        ("decline", None, A::Decline),
        ("mark-done", None, A::MarkDone),
    ];
    assert_eq!(cases.len(), super::ACTIONS.len());
    for (name, body, action) in cases {
        let uri = format!("/v1/agents/1001/callbacks/cb-0000000000000005/{name}");
        let r = request(&h.app, "POST", &uri, body).await;
        assert_eq!(r.status, 200, "{name}: {}", r.json);
        assert_eq!(r.json["id"], "cb-0000000000000005", "{name}");
        assert_eq!(r.json["agent"], "1001", "{name}");
        assert_eq!(h.seen.recv().await.unwrap(), interaction(action), "{name}");
    }
}

#[tokio::test]
async fn bad_actions_and_parameters_are_refused_before_the_center() {
    let mut h = callback_harness(plausible);
    let post = |action: &str, body: Option<&str>| {
        let uri = format!("/v1/agents/1001/callbacks/cb-0000000000000005/{action}");
        let (app, body) = (h.app.clone(), body.map(str::to_owned));
        async move { request(&app, "POST", &uri, body.as_deref()).await }
    };
    let r = post("sing", None).await;
    assert_code(&r, 404, "unknown_action", Some("action"));
    assert!(r.json["message"].as_str().unwrap().contains("mark-done"));
    for digits in [r#""""#, r#""12x""#, r#""1 2""#, "12"] {
        let body = format!(r#"{{"digits": {digits}}}"#);
        assert_error(&post("dtmf", Some(&body)).await, 422, Some("digits"));
    }
    let long = format!(r#"{{"digits": "{}"}}"#, "1".repeat(33));
    assert_error(&post("dtmf", Some(&long)).await, 422, Some("digits"));
    assert_error(&post("dtmf", None).await, 422, Some("digits"));
    assert_error(&post("transfer", Some("{}")).await, 422, Some("to"));
    assert_error(
        &post("accept", Some(r#"{"digits": "1"}"#)).await,
        422,
        Some("digits"),
    );
    assert_error(&post("accept", Some(r#"{"x": 1}"#)).await, 422, Some("x"));
    assert_error(&post("accept", Some("[")).await, 400, Some("body"));
    assert_error(
        &post("reschedule", Some(r#"{"callbackScheduledTime": "later"}"#)).await,
        422,
        Some("callbackScheduledTime"),
    );
    assert!(h.seen.try_recv().is_err());
}

#[tokio::test]
async fn action_errors_map_to_their_statuses() {
    let h = callback_harness(|request| {
        let Request::Interaction { id, agent, action } = request else {
            return plausible(request);
        };
        let id = id.clone();
        CenterAnswer::Reply(Err(match action {
            InteractionAction::Accept => ActionError::NoCallback(id),
            InteractionAction::Reject => ActionError::NoAgent(agent.clone()),
            InteractionAction::Decline => ActionError::Forbidden {
                agent: agent.clone(),
                privilege: Privilege::Decline,
            },
            InteractionAction::Hold => ActionError::NotOwner {
                id,
                agent: agent.clone(),
            },
            InteractionAction::Call => ActionError::WrongState {
                action: "call".into(),
                state: "queued".into(),
            },
            InteractionAction::Transfer { .. } => ActionError::Invalid {
                field: "to".into(),
                message: "no such user".into(),
            },
            _ => ActionError::Unavailable("store full".into()),
        }))
    });
    let post = |action: &str, body: Option<&str>| {
        let uri = format!("/v1/agents/1001/callbacks/cb-0000000000000005/{action}");
        let (app, body) = (h.app.clone(), body.map(str::to_owned));
        async move { request(&app, "POST", &uri, body.as_deref()).await }
    };
    assert_code(&post("accept", None).await, 404, "no_callback", Some("id"));
    assert_code(&post("reject", None).await, 404, "no_agent", Some("agent"));
    let r = post("decline", None).await;
    assert_code(&r, 403, "forbidden", Some("webcallback.can-decline"));
    assert_eq!(r.json["privilege"], "webcallback.can-decline");
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .contains("webcallback.can-decline"));
    assert_code(&post("hold", None).await, 403, "not_owner", Some("agent"));
    assert_code(&post("call", None).await, 409, "wrong_state", None);
    let r = post("transfer", Some(r#"{"to": "9999"}"#)).await;
    assert_code(&r, 422, "invalid", Some("to"));
    assert_eq!(r.json["message"], "no such user");
    let r = post("mute", None).await;
    assert_code(&r, 503, "unavailable", None);
    assert_eq!(r.json["message"], "store full");
    // A field only on privilege errors.
    assert!(post("call", None).await.json.get("privilege").is_none());
}

#[tokio::test]
async fn agent_state_changes_and_view() {
    let mut h = callback_harness(plausible);
    for (path, body, action) in [
        ("login", None, AgentAction::Login),
        ("ready", Some("{}"), AgentAction::Ready),
        (
            "not-ready",
            Some(r#"{"reason": "Lunch"}"#),
            AgentAction::NotReady {
                reason: Some("Lunch".into()),
            },
        ),
        ("not-ready", None, AgentAction::NotReady { reason: None }),
        ("logout", None, AgentAction::Logout),
    ] {
        let r = request(&h.app, "POST", &format!("/v1/agents/1001/{path}"), body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.json);
        assert_eq!(r.json["id"], "1001");
        assert_eq!(r.json["state"], "ready");
        assert_eq!(
            h.seen.recv().await.unwrap(),
            Request::Agent {
                agent: "1001".into(),
                action
            }
        );
    }
    let r = request(&h.app, "GET", "/v1/agents/1001", None).await;
    assert_eq!(r.status, 200);
    // The agent's record is flattened into the view.
    assert_eq!(
        r.json,
        json!({"id": "1001", "state": "ready", "reason": null, "since": "2030-03-17T17:46:40Z",
               "idleSince": null, "team": "blue", "skills": ["en"], "interactions": [],
               "registered": true})
    );
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::AgentView {
            agent: "1001".into()
        }
    );
    assert_error(
        &request(&h.app, "POST", "/v1/agents/1001/login", Some(r#"{"x": 1}"#)).await,
        422,
        Some("x"),
    );
    assert_error(
        &request(
            &h.app,
            "POST",
            "/v1/agents/1001/not-ready",
            Some(r#"{"reason": ""}"#),
        )
        .await,
        422,
        Some("reason"),
    );
    assert_error(
        &request(&h.app, "POST", "/v1/agents/1001/away", None).await,
        404,
        None,
    );
    assert!(h.seen.try_recv().is_err());
}

#[tokio::test]
async fn schedule_for_the_contact_on_the_call_is_201() {
    let mut h = callback_harness(plausible);
    let r = request(
        &h.app,
        "POST",
        "/v1/agents/1001/schedule",
        Some(
            r#"{"callbackScheduledTime": "2030-05-01T14:00:00", "timeZone": "America/New_York",
                "callbackNumber": "555-0123", "data": {"case": "42"}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.headers["location"], "/v1/callbacks/cb-00000000000000b2");
    assert_eq!(r.json["callbackScheduledTime"], "2030-05-01T18:00:00Z");
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::ScheduleForContact {
            agent: "1001".into(),
            at: Some("2030-05-01T18:00:00Z".parse().unwrap()),
            number: Some("555-0123".into()),
            data: [("case".to_string(), "42".to_string())].into(),
        }
    );
    // Everything is optional: the number dialled, as soon as possible.
    let r = request(&h.app, "POST", "/v1/agents/1001/schedule", None).await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::ScheduleForContact {
            agent: "1001".into(),
            at: None,
            number: None,
            data: Default::default(),
        }
    );
    for (body, field) in [
        (
            r#"{"callbackScheduledTime": "whenever"}"#,
            "callbackScheduledTime",
        ),
        (r#"{"timeZone": "Europe/Paris"}"#, "timeZone"),
        (r#"{"callbackNumber": "abc"}"#, "callbackNumber"),
        (r#"{"data": {"a": 1}}"#, "data"),
        (r#"{"data": {"": "x"}}"#, "data"),
    ] {
        let r = request(&h.app, "POST", "/v1/agents/1001/schedule", Some(body)).await;
        assert_error(&r, 422, Some(field));
    }
    assert!(h.seen.try_recv().is_err());
}

#[tokio::test]
async fn dialable_lists_for_an_agent_and_a_team() {
    let mut h = callback_harness(plausible);
    let r = request(&h.app, "GET", "/v1/agents/1001/dialable", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    let ids: Vec<_> = r
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!("cb-0000000000000001"), json!("cb-0000000000000002")]
    );
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::Dialable {
            agent: Some("1001".into()),
            team: None
        }
    );
    let r = request(&h.app, "GET", "/v1/teams/blue/dialable", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::Dialable {
            agent: None,
            team: Some("blue".into())
        }
    );
}

#[tokio::test]
async fn a_reply_of_the_wrong_kind_is_a_500_not_a_guess() {
    let h = callback_harness(|request| match request {
        Request::AgentView { .. } => plausible(&Request::Dialable {
            agent: None,
            team: None,
        }),
        other => plausible(other),
    });
    let r = request(&h.app, "GET", "/v1/agents/1001", None).await;
    assert_code(&r, 500, "internal", None);
}
