//! The contact's and supervisor's routes against a fake center and store.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use serde_json::json;

use super::super::callback_testkit::{callback_harness, plausible, t0, with_history, CenterAnswer};
use super::super::testkit::{accepting, assert_code, assert_error, request, send};
use crate::callback::{Actor, InteractionId, Request, State};

fn post_with(uri: &str, body: &str, headers: &[(&str, &str)]) -> HttpRequest<Body> {
    let mut b = HttpRequest::post(uri).header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

const CREATE: &str = r#"{"queueId": "sales", "callbackNumbers": ["555 0100"]}"#;

#[tokio::test]
async fn create_validates_through_the_seam_and_answers_201_with_location() {
    let mut h = callback_harness(plausible);
    let r = send(
        &h.app,
        post_with("/v1/callbacks", CREATE, &[("idempotency-key", "order-42")]),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert_eq!(r.headers["location"], "/v1/callbacks/cb-00000000000000a1");
    assert_eq!(r.json["id"], "cb-00000000000000a1");
    assert_eq!(r.json["queueId"], "sales");
    assert_eq!(r.json["callbackNumbers"], json!(["+15550100"]));
    assert_eq!(r.json["createdAt"], t0().to_string());
    let Request::Create {
        callback,
        idempotency_key,
    } = h.seen.recv().await.unwrap()
    else {
        panic!("not a create")
    };
    assert_eq!(callback.request.queue_id, "sales");
    assert_eq!(
        callback.request.callback_numbers,
        vec!["+15550100".to_string()]
    );
    assert_eq!(idempotency_key.as_deref(), Some("order-42"));

    // Without a key, and then a replay the center recognises: 200, same shape.
    let r = send(&h.app, post_with("/v1/callbacks", CREATE, &[])).await;
    assert_eq!(r.status, 201);
    assert!(matches!(
        h.seen.recv().await.unwrap(),
        Request::Create {
            idempotency_key: None,
            ..
        }
    ));
    let r = send(
        &h.app,
        post_with(
            "/v1/callbacks",
            CREATE,
            &[("idempotency-key", "seen-before")],
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.headers["location"], "/v1/callbacks/cb-00000000000000a1");
    assert_eq!(r.json["id"], "cb-00000000000000a1");
}

#[tokio::test]
async fn a_replay_of_a_callback_that_is_over_is_read_from_the_store() {
    let replayed = |r: &Request| match r {
        Request::Create { .. } => CenterAnswer::Reply(Ok(crate::callback::Reply::Replayed(
            InteractionId("cb-00000000000000d1".into()),
        ))),
        other => plausible(other),
    };
    let h = callback_harness(replayed);
    let mut over = with_history("cb-00000000000000d1");
    over.callback.state = State::Done;
    h.store.callbacks.lock().unwrap().push(over);
    let r = send(
        &h.app,
        post_with("/v1/callbacks", CREATE, &[("idempotency-key", "k-1")]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.headers["location"], "/v1/callbacks/cb-00000000000000d1");
    assert_eq!(r.json["state"], "done");
}

#[tokio::test]
async fn create_refusals_name_the_field_and_reach_no_center() {
    let mut h = callback_harness(plausible);
    let post = |body: &'static str| request(&h.app, "POST", "/v1/callbacks", Some(body));
    // The seam's (field, message) becomes a 422 naming the field.
    let r = post(r#"{"callbackNumbers": ["5550100"]}"#).await;
    assert_code(&r, 422, "invalid", Some("queueId"));
    assert_eq!(r.json["message"], "queueId is required");
    assert_error(
        &post(r#"{"queueId": "sales", "callbackNumbers": ["call me"]}"#).await,
        422,
        Some("callbackNumbers"),
    );
    // Not JSON at all is the client's syntax: 400 before the seam.
    assert_error(&post(r#"{"queueId": "#).await, 400, Some("body"));
    assert_error(&post("").await, 400, Some("body"));
    let form = HttpRequest::post("/v1/callbacks")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("queueId=sales"))
        .unwrap();
    assert_error(&send(&h.app, form).await, 415, Some("content-type"));
    for bad in ["", "has space", &"k".repeat(256), "caf\u{e9}"] {
        let Ok(value) = axum::http::HeaderValue::from_bytes(bad.as_bytes()) else {
            continue;
        };
        let mut req = post_with("/v1/callbacks", CREATE, &[]);
        req.headers_mut().insert("idempotency-key", value);
        assert_error(&send(&h.app, req).await, 422, Some("Idempotency-Key"));
    }
    let longest = "k".repeat(255);
    let r = send(
        &h.app,
        post_with("/v1/callbacks", CREATE, &[("idempotency-key", &longest)]),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.json);
    assert!(matches!(h.seen.recv().await, Some(Request::Create { .. })));
    assert!(h.seen.try_recv().is_err());
}

#[tokio::test]
async fn list_passes_the_filter_and_names_bad_parameters() {
    let h = callback_harness(plausible);
    let r = request(
        &h.app,
        "GET",
        "/v1/callbacks?state=queued,offered&queue=sales&agent=1001&from=2030-01-01T00:00:00Z&to=2030-02-01T00:00:00%2B01:00&by=due&limit=20&cursor=c1",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["items"][0]["id"], "cb-0000000000000001");
    assert_eq!(r.json["next"], "page-2");
    let filter = h.store.filters.lock().unwrap().pop().unwrap();
    assert_eq!(filter.states, vec![State::Queued, State::Offered]);
    assert_eq!(filter.queue.as_deref(), Some("sales"));
    assert_eq!(filter.agent.as_deref(), Some("1001"));
    assert_eq!(filter.to.unwrap().to_string(), "2030-01-31T23:00:00Z");
    assert!(filter.by_due);
    assert_eq!((filter.limit, filter.cursor.as_deref()), (20, Some("c1")));

    for (query, field) in [
        ("state=sleeping", "state"),
        ("from=yesterday", "from"),
        ("to=2030-01-01", "to"),
        ("by=name", "by"),
        ("limit=0", "limit"),
        ("limit=1000", "limit"),
        ("stat=queued", "stat"),
        ("queue=a&queue=b", "queue"),
    ] {
        let r = request(&h.app, "GET", &format!("/v1/callbacks?{query}"), None).await;
        assert_code(&r, 422, "invalid", Some(field));
    }
    // Nothing refused reached the store.
    assert!(h.store.filters.lock().unwrap().is_empty());
}

#[tokio::test]
async fn show_reads_the_record_with_history_from_the_store() {
    let h = callback_harness(plausible);
    h.store
        .callbacks
        .lock()
        .unwrap()
        .push(with_history("cb-0000000000000007"));
    let r = request(&h.app, "GET", "/v1/callbacks/cb-0000000000000007", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["id"], "cb-0000000000000007");
    assert_eq!(r.json["state"], "queued");
    assert_eq!(r.json["history"][0]["type"], "created");
    assert_eq!(r.json["history"][1]["type"], "state-changed");
    assert_eq!(r.json["history"][1]["to"], "queued");

    let r = request(&h.app, "GET", "/v1/callbacks/cb-nope", None).await;
    assert_code(&r, 404, "no_callback", Some("id"));

    h.store.failing.store(true, Ordering::SeqCst);
    let r = request(&h.app, "GET", "/v1/callbacks/cb-0000000000000007", None).await;
    assert_code(&r, 503, "unavailable", None);
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .contains("disk I/O error"));
    let r = request(&h.app, "GET", "/v1/callbacks", None).await;
    assert_code(&r, 503, "unavailable", None);
}

#[tokio::test]
async fn status_cancel_and_reschedule_go_to_the_center() {
    let mut h = callback_harness(plausible);
    let id = || InteractionId("cb-0000000000000003".into());

    let r = request(
        &h.app,
        "GET",
        "/v1/callbacks/cb-0000000000000003/status",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"id": "cb-0000000000000003", "state": "queued", "position": 2,
               "estimatedWaitSecs": 90, "callbackScheduledTime": null})
    );
    assert_eq!(h.seen.recv().await.unwrap(), Request::Status { id: id() });

    let r = request(
        &h.app,
        "POST",
        "/v1/callbacks/cb-0000000000000003/cancel",
        Some(r#"{"by": "contact", "reason": "solved online"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["state"], "cancelled");
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::Cancel {
            id: id(),
            by: Actor::Contact,
            reason: Some("solved online".into())
        }
    );

    let r = request(
        &h.app,
        "POST",
        "/v1/callbacks/cb-0000000000000003/reschedule",
        Some(
            r#"{"by": "supervisor", "callbackScheduledTime": "2030-03-01T09:00:00",
                "timeZone": "Europe/Paris", "callbackNumber": "+44 20 7946 0000"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(r.json["state"], "rescheduled");
    assert_eq!(r.json["callbackScheduledTime"], "2030-03-01T08:00:00Z");
    assert_eq!(
        h.seen.recv().await.unwrap(),
        Request::Reschedule {
            id: id(),
            by: Actor::Supervisor,
            at: "2030-03-01T08:00:00Z".parse().unwrap(),
            number: Some("+442079460000".into()),
        }
    );

    let post = |uri: &'static str, body: &'static str| request(&h.app, "POST", uri, Some(body));
    let cancel = "/v1/callbacks/cb-0000000000000003/cancel";
    let reschedule = "/v1/callbacks/cb-0000000000000003/reschedule";
    assert_error(&post(cancel, r#"{"by": "agent"}"#).await, 422, Some("by"));
    assert_error(&post(cancel, r#"{"reason": "x"}"#).await, 422, Some("by"));
    assert_error(
        &post(cancel, r#"{"by": "contact", "why": "x"}"#).await,
        422,
        Some("why"),
    );
    assert_error(&post(cancel, r#"{"by": 1}"#).await, 422, Some("by"));
    assert_error(
        &post(reschedule, r#"{"by": "contact"}"#).await,
        422,
        Some("callbackScheduledTime"),
    );
    assert_error(
        &post(reschedule, r#"{"by": "contact", "callbackScheduledTime": "2030-03-01T09:00:00", "timeZone": "Nowhere/City"}"#).await,
        422,
        Some("timeZone"),
    );
    assert_error(
        &post(reschedule, r#"{"by": "contact", "callbackScheduledTime": "2030-03-01T09:00:00Z", "callbackNumber": "none"}"#).await,
        422,
        Some("callbackNumber"),
    );
    assert!(h.seen.try_recv().is_err());
}

/// The center knows live callbacks only. One that is over is read from the
/// store: its status still answers, and changing it is a wrong state.
#[tokio::test]
async fn a_callback_that_is_over_is_a_wrong_state_not_an_unknown_id() {
    use crate::callback::ActionError;
    let h = callback_harness(|request| {
        let id = match request {
            Request::Status { id }
            | Request::Cancel { id, .. }
            | Request::Reschedule { id, .. }
            | Request::Interaction { id, .. } => id.clone(),
            other => return plausible(other),
        };
        CenterAnswer::Reply(Err(ActionError::NoCallback(id)))
    });
    let mut over = with_history("cb-0000000000000009");
    over.callback.state = State::Cancelled;
    over.callback.request.callback_scheduled_time = Some(t0());
    h.store.callbacks.lock().unwrap().push(over);
    // Stored but not final: the center and the store disagree; not "over".
    h.store
        .callbacks
        .lock()
        .unwrap()
        .push(with_history("cb-000000000000000a"));

    let r = request(
        &h.app,
        "GET",
        "/v1/callbacks/cb-0000000000000009/status",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        json!({"id": "cb-0000000000000009", "state": "cancelled", "position": null,
               "estimatedWaitSecs": null, "callbackScheduledTime": t0().to_string()})
    );
    let reschedule = r#"{"by": "contact", "callbackScheduledTime": "2030-01-01T10:00:00Z"}"#;
    for (uri, body) in [
        (
            "/v1/callbacks/cb-0000000000000009/cancel",
            r#"{"by": "contact"}"#,
        ),
        ("/v1/callbacks/cb-0000000000000009/reschedule", reschedule),
        ("/v1/agents/1001/callbacks/cb-0000000000000009/accept", "{}"),
    ] {
        let r = request(&h.app, "POST", uri, Some(body)).await;
        assert_code(&r, 409, "wrong_state", None);
        assert!(
            r.json["message"].as_str().unwrap().contains("cancelled"),
            "{uri}: {}",
            r.json
        );
    }
    for id in ["cb-0000000000000008", "cb-000000000000000a"] {
        let r = request(&h.app, "GET", &format!("/v1/callbacks/{id}/status"), None).await;
        assert_code(&r, 404, "no_callback", Some("id"));
        let uri = format!("/v1/callbacks/{id}/cancel");
        let r = request(&h.app, "POST", &uri, Some(r#"{"by": "contact"}"#)).await;
        assert_code(&r, 404, "no_callback", Some("id"));
    }
    h.store.failing.store(true, Ordering::SeqCst);
    let r = request(
        &h.app,
        "GET",
        "/v1/callbacks/cb-0000000000000009/status",
        None,
    )
    .await;
    assert_code(&r, 503, "unavailable", None);
}

#[tokio::test]
async fn center_trouble_is_503_or_504() {
    let h = callback_harness(|_| CenterAnswer::Drop);
    let r = request(&h.app, "GET", "/v1/callbacks/cb-1/status", None).await;
    assert_code(&r, 503, "unavailable", None);

    // A switch without the callback layer answers its routes 503.
    let h = accepting();
    for (method, uri, body) in [
        ("GET", "/v1/callbacks/cb-1", None),
        ("GET", "/v1/callbacks", None),
        ("POST", "/v1/callbacks", Some(CREATE)),
        ("GET", "/v1/desktop/events", None),
        ("POST", "/v1/agents/1001/login", None),
    ] {
        let r = request(&h.app, method, uri, body).await;
        assert_code(&r, 503, "callbacks_disabled", None);
    }
}

#[tokio::test(start_paused = true)]
async fn a_center_slower_than_5_s_is_504() {
    let h = callback_harness(|_| CenterAnswer::Stall);
    let started = tokio::time::Instant::now();
    let r = request(&h.app, "POST", "/v1/callbacks", Some(CREATE)).await;
    assert_code(&r, 504, "timeout", None);
    assert_eq!(started.elapsed(), super::super::dispatch::REPLY_TIMEOUT);
}
