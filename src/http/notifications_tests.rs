//! The notification routes over a fake [`NotifyControl`]: queries read and
//! refused by name, answers shaped, the control's refusals mapped.

use std::sync::{Arc, Mutex};

use jiff::Timestamp;

use super::super::callback_testkit::fake_api;
use super::super::testkit::{accepting, assert_code, request};
use super::super::HttpState;
use super::*;
use crate::integrations::notify::{testkit, NoticeKind};

/// Answers from a script and records what it was asked.
#[derive(Default)]
struct FakeControl {
    asked: Mutex<Vec<String>>,
    refuse: Mutex<Option<ControlError>>,
}

impl FakeControl {
    fn answer<T: Send + 'static>(&self, asked: String, ok: T) -> ControlFuture<T> {
        self.asked.lock().unwrap().push(asked);
        let result = match self.refuse.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(ok),
        };
        Box::pin(async move { result })
    }
}

fn row(seq: u64) -> OutboxRow {
    let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    OutboxRow {
        seq,
        endpoint: "wfm".into(),
        event_id: format!("ev-{seq}"),
        lane: "1001".into(),
        event_type: "agent-login".into(),
        attempts: 10,
        next_at: at,
        last_error: Some("HTTP 500".into()),
        dead_at: Some(at),
        notice: testkit::agent_notice(&format!("ev-{seq}"), at, "1001", NoticeKind::AgentLogin),
    }
}

impl NotifyControl for FakeControl {
    fn dead(&self, endpoint: Option<String>, after: u64, limit: usize) -> ControlFuture<DeadPage> {
        let page = DeadPage {
            items: vec![row(after + 1), row(after + 2)],
            next: Some(after + 2),
        };
        self.answer(format!("dead {endpoint:?} {after} {limit}"), page)
    }

    fn replay(&self, endpoint: String, event_id: String) -> ControlFuture<()> {
        self.answer(format!("replay {endpoint} {event_id}"), ())
    }

    fn replay_all(&self, endpoint: Option<String>) -> ControlFuture<usize> {
        self.answer(format!("replay-all {endpoint:?}"), 7)
    }

    fn stats(&self) -> ControlFuture<Vec<EndpointStats>> {
        let stats = vec![EndpointStats {
            endpoint: "wfm".into(),
            pending: 3,
            in_flight: 1,
            dead: 2,
        }];
        self.answer("stats".into(), stats)
    }
}

fn app(control: &Arc<FakeControl>) -> axum::Router {
    let (mut api, _fakes) = fake_api();
    api.notifications = Some(control.clone());
    crate::http::router(HttpState {
        callback_api: Some(api),
        ..accepting().state
    })
}

fn asked(control: &FakeControl) -> Vec<String> {
    std::mem::take(&mut *control.asked.lock().unwrap())
}

#[tokio::test]
async fn dead_events_are_listed_a_page_at_a_time() {
    let control = Arc::new(FakeControl::default());
    let app = app(&control);
    let r = request(&app, "GET", "/v1/notifications/dead", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        asked(&control),
        ["dead None 0 0"],
        "the control picks the default"
    );
    let item = &r.json["items"][0];
    assert_eq!(item["endpoint"], "wfm");
    assert_eq!(item["eventId"], "ev-1");
    assert_eq!(item["eventType"], "agent-login");
    assert_eq!(item["agent"], "1001");
    assert_eq!(item["attempts"], 10);
    assert_eq!(item["lastError"], "HTTP 500");
    assert_eq!(item["deadAt"], "2026-01-02T03:04:05Z");
    assert_eq!(item["event"]["eventType"], "agent-login");
    assert_eq!(item["event"]["agentId"], "1001");
    assert_eq!(r.json["next"], 2);

    let r = request(
        &app,
        "GET",
        "/v1/notifications/dead?endpoint=wfm&after=2&limit=500",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(asked(&control), ["dead Some(\"wfm\") 2 500"]);
}

#[tokio::test]
async fn a_bad_query_is_refused_by_name() {
    let control = Arc::new(FakeControl::default());
    let app = app(&control);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("after=x", "after"),
        ("endpoint=", "endpoint"),
        ("endpoint=a&endpoint=b", "endpoint"),
        ("cursor=3", "cursor"),
    ] {
        let r = request(
            &app,
            "GET",
            &format!("/v1/notifications/dead?{query}"),
            None,
        )
        .await;
        assert_code(&r, 422, "invalid", Some(field));
    }
    let r = request(&app, "POST", "/v1/notifications/dead/replay?agent=1", None).await;
    assert_code(&r, 422, "invalid", Some("agent"));
    assert!(asked(&control).is_empty());
}

#[tokio::test]
async fn replays_are_accepted_or_refused_as_the_control_says() {
    let control = Arc::new(FakeControl::default());
    let app = app(&control);
    let r = request(&app, "POST", "/v1/notifications/dead/wfm/ev-9/replay", None).await;
    assert_eq!(r.status, 202, "{}", r.json);
    assert_eq!(r.json["replayed"], 1);
    let r = request(
        &app,
        "POST",
        "/v1/notifications/dead/replay?endpoint=wfm",
        None,
    )
    .await;
    assert_eq!((r.status.as_u16(), &r.json["replayed"]), (202, &7.into()));
    let r = request(&app, "POST", "/v1/notifications/dead/replay", None).await;
    assert_eq!(r.status, 202);
    assert_eq!(
        asked(&control),
        [
            "replay wfm ev-9",
            "replay-all Some(\"wfm\")",
            "replay-all None"
        ]
    );

    let refusals = [
        (
            ControlError::NoSuchEvent {
                endpoint: "wfm".into(),
                event_id: "x".into(),
            },
            404,
            "no_event",
            Some("eventId"),
        ),
        (
            ControlError::NotDead {
                endpoint: "wfm".into(),
                event_id: "x".into(),
            },
            409,
            "not_dead",
            Some("eventId"),
        ),
        (
            ControlError::UnknownEndpoint("old".into()),
            422,
            "unknown_endpoint",
            Some("endpoint"),
        ),
        (
            ControlError::Unavailable("store gone".into()),
            503,
            "unavailable",
            None,
        ),
    ];
    for (error, status, code, field) in refusals {
        *control.refuse.lock().unwrap() = Some(error);
        let r = request(&app, "POST", "/v1/notifications/dead/wfm/x/replay", None).await;
        assert_code(&r, status, code, field);
    }
}

#[tokio::test]
async fn stats_show_each_endpoint_s_queues() {
    let control = Arc::new(FakeControl::default());
    let r = request(&app(&control), "GET", "/v1/notifications/stats", None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    assert_eq!(
        r.json,
        serde_json::json!({"endpoints": [{"endpoint": "wfm", "pending": 3, "inFlight": 1, "dead": 2}]})
    );
}

#[tokio::test]
async fn without_the_outbox_the_routes_answer_503() {
    let (api, _fakes) = fake_api();
    let app = crate::http::router(HttpState {
        callback_api: Some(api),
        ..accepting().state
    });
    let r = request(&app, "GET", "/v1/notifications/dead", None).await;
    assert_code(&r, 503, "notifications_disabled", None);
}
