//! The desktop stream: replay from the store, then live, with no gap and
//! no duplicate, through reconnects, lag and filters.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::super::callback_testkit::{
    callback_harness, desktop_event, plausible, t0, CallbackHarness,
};
use super::super::testkit::{assert_error, request, TEST_KEY};
use crate::callback::{AgentState, DesktopEvent, DesktopEventKind, InteractionId, State};

/// One SSE message: `id:`, `event:`, and `data:` as JSON.
#[derive(Debug)]
struct Message {
    id: Option<u64>,
    event: String,
    data: Value,
}

struct SseClient {
    body: Body,
    buf: String,
}

impl SseClient {
    async fn open(app: &Router, uri: &str, last_event_id: Option<&str>) -> SseClient {
        let mut req = HttpRequest::get(uri).header("x-api-key", TEST_KEY);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        SseClient {
            body: response.into_body(),
            buf: String::new(),
        }
    }

    /// The next message; panics when none comes within 5 s or the stream ends.
    async fn next(&mut self) -> Message {
        self.try_next().await.expect("stream ended")
    }

    /// The next message, or `None` when the stream ended.
    async fn try_next(&mut self) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                if raw.starts_with(':') {
                    continue; // keep-alive comment
                }
                return Some(parse(&raw));
            }
            let frame = tokio::time::timeout(Duration::from_secs(5), self.body.frame())
                .await
                .expect("no event within 5 s")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    async fn seqs(&mut self, n: usize) -> Vec<u64> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.next().await.id.expect("no id"));
        }
        out
    }
}

fn parse(raw: &str) -> Message {
    let mut m = Message {
        id: None,
        event: String::new(),
        data: Value::Null,
    };
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            m.id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            m.event = v.to_owned();
        } else if let Some(v) = line.strip_prefix("data: ") {
            m.data = serde_json::from_str(v).unwrap();
        }
    }
    m
}

fn stored(h: &CallbackHarness, seqs: std::ops::RangeInclusive<u64>) {
    let mut log = h.store.desktop.lock().unwrap();
    log.extend(seqs.map(|s| desktop_event(s, "1001")));
}

#[tokio::test]
async fn a_reconnect_replays_what_it_missed_then_goes_live_without_gap_or_duplicate() {
    let h = callback_harness(plausible);
    stored(&h, 1..=5);
    // Event 6 is stored and broadcast while the backlog is being read: it
    // is both in the read and in the subscription, and must arrive once.
    h.store
        .commit_on_read
        .lock()
        .unwrap()
        .push(desktop_event(6, "1001"));
    // Event 7 is stored just after the read's snapshot: only the
    // subscription made before the read has it.
    h.store
        .commit_after_read
        .lock()
        .unwrap()
        .push(desktop_event(7, "1001"));
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events", Some("2")).await;

    let first = sse.next().await;
    assert_eq!(first.id, Some(3));
    assert_eq!(first.event, "interaction");
    assert_eq!(first.data["seq"], 3);
    assert_eq!(first.data["type"], "interaction");
    assert_eq!(first.data["id"], "cb-0000000000000003");
    assert_eq!(first.data["at"], t0().to_string());
    let m = sse.next().await;
    assert_eq!((m.id, m.event.as_str()), (Some(4), "agent"));
    assert_eq!(m.data["state"], "ready");
    assert_eq!(sse.seqs(3).await, vec![5, 6, 7]);

    h.store.commit(desktop_event(8, "1001"));
    h.store.commit(desktop_event(9, "1001"));
    assert_eq!(sse.seqs(2).await, vec![8, 9]);
}

#[tokio::test]
async fn after_in_the_query_works_like_last_event_id_and_the_header_wins() {
    let h = callback_harness(plausible);
    stored(&h, 1..=4);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?after=3", None).await;
    assert_eq!(sse.seqs(1).await, vec![4]);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?after=0", Some("2")).await;
    assert_eq!(sse.seqs(2).await, vec![3, 4]);
}

#[tokio::test]
async fn a_long_backlog_is_read_in_pages_in_order() {
    let h = callback_harness(plausible);
    stored(&h, 1..=600);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?after=0", None).await;
    let got = sse.seqs(600).await;
    assert_eq!(got, (1..=600).collect::<Vec<_>>());
    // 256 + 256 + 88: three pages, the short one ending the backlog.
    assert_eq!(h.store.desktop_reads.load(Ordering::SeqCst), 3);
    h.store.commit(desktop_event(601, "1001"));
    assert_eq!(sse.seqs(1).await, vec![601]);
}

#[tokio::test]
async fn without_a_cursor_the_stream_is_live_only() {
    let h = callback_harness(plausible);
    stored(&h, 1..=3);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events", None).await;
    h.store.commit(desktop_event(4, "1001"));
    assert_eq!(sse.seqs(1).await, vec![4]);
    assert_eq!(h.store.desktop_reads.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_lagging_stream_recovers_from_the_store_without_losing_events() {
    let h = callback_harness(plausible);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?after=0", None).await;
    h.store.commit(desktop_event(1, "1001"));
    assert_eq!(sse.seqs(1).await, vec![1]);
    let reads = h.store.desktop_reads.load(Ordering::SeqCst);
    // The broadcast holds 64; the stream is not polled while these go out.
    for seq in 2..=200 {
        h.store.commit(desktop_event(seq, "1001"));
    }
    assert_eq!(sse.seqs(199).await, (2..=200).collect::<Vec<_>>());
    assert!(h.store.desktop_reads.load(Ordering::SeqCst) > reads);
    // What the subscription still holds (137..=200) is not sent again: the
    // stream drains it first, and only then is the next event committed.
    let (next, ()) = tokio::join!(sse.next(), async {
        tokio::task::yield_now().await;
        h.store.commit(desktop_event(201, "1001"));
    });
    assert_eq!(next.id, Some(201));
}

#[tokio::test]
async fn a_stream_that_lags_before_any_event_is_told_so() {
    let h = callback_harness(plausible);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events", None).await;
    for seq in 1..=100 {
        h.store.commit(desktop_event(seq, "1001"));
    }
    let notice = sse.next().await;
    assert_eq!((notice.event.as_str(), notice.id), ("lagged", None));
    assert_eq!(notice.data["missed"], 36);
    assert_eq!(sse.seqs(1).await, vec![37]);
}

#[tokio::test]
async fn the_agent_filter_keeps_its_events_and_its_interactions() {
    let h = callback_harness(plausible);
    let at = t0();
    let ev = |seq: u64, kind: DesktopEventKind| DesktopEvent { seq, at, kind };
    let agent = |seq: u64, who: &str| {
        ev(
            seq,
            DesktopEventKind::Agent {
                agent: who.into(),
                state: AgentState::Ready,
                reason: None,
            },
        )
    };
    let change = |seq: u64, id: &str, who: Option<&str>, state: State| {
        ev(
            seq,
            DesktopEventKind::Interaction {
                id: InteractionId(id.into()),
                state,
                agent: who.map(Into::into),
                queue: "sales".into(),
                reason: "test".into(),
            },
        )
    };
    {
        let mut log = h.store.desktop.lock().unwrap();
        log.push(agent(1, "1001"));
        log.push(agent(2, "1002"));
        log.push(ev(
            3,
            DesktopEventKind::Offer {
                id: InteractionId("cb-a".into()),
                agent: "1001".into(),
                preview: Default::default(),
                auto_answer_secs: None,
                can_reject: true,
            },
        ));
        log.push(change(4, "cb-b", Some("1002"), State::Offered));
        // cb-a goes back to the queue: 1001's desktop must see it leave.
        log.push(change(5, "cb-a", None, State::Queued));
        log.push(change(6, "cb-a", Some("1002"), State::Offered));
        log.push(change(7, "cb-c", Some("1001"), State::Connected));
        log.push(change(8, "cb-c", Some("1001"), State::Done));
        log.push(change(9, "cb-c", None, State::Done));
    }
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?agent=1001&after=0", None).await;
    assert_eq!(sse.seqs(5).await, vec![1, 3, 5, 7, 8]);
    h.store.commit(agent(10, "1002"));
    h.store.commit(agent(11, "1001"));
    assert_eq!(sse.seqs(1).await, vec![11]);
}

#[tokio::test]
async fn bad_cursors_and_parameters_are_named() {
    let h = callback_harness(plausible);
    let get = |uri: &str, last: Option<&str>| {
        let mut req = HttpRequest::get(uri);
        if let Some(id) = last {
            req = req.header("last-event-id", id);
        }
        super::super::testkit::send(&h.app, req.body(Body::empty()).unwrap())
    };
    assert_error(
        &get("/v1/desktop/events", Some("abc")).await,
        422,
        Some("Last-Event-ID"),
    );
    assert_error(
        &get("/v1/desktop/events?after=-1", None).await,
        422,
        Some("after"),
    );
    assert_error(
        &get("/v1/desktop/events?agent=", None).await,
        422,
        Some("agent"),
    );
    assert_error(
        &get("/v1/desktop/events?since=1", None).await,
        422,
        Some("since"),
    );
    assert_error(
        &get("/v1/desktop/events?after=1&after=2", None).await,
        422,
        Some("after"),
    );
    let r = request(&h.app, "GET", "/v1/desktop/events?agent=a&agent=b", None).await;
    assert_error(&r, 422, Some("agent"));
}

#[tokio::test]
async fn an_unreadable_store_ends_the_stream_for_a_reconnect() {
    let h = callback_harness(plausible);
    stored(&h, 1..=3);
    h.store.failing.store(true, Ordering::SeqCst);
    let mut sse = SseClient::open(&h.app, "/v1/desktop/events?after=1", None).await;
    assert!(sse.try_next().await.is_none());
}
