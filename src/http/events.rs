//! `GET /v1/events`: the call layer's event broadcast as Server-Sent Events.
//!
//! One SSE message per [`CallEvent`]: `event:` is the event's tag
//! (`started`, `leg`, `ended`, ...) and `data:` its JSON. A subscriber too slow
//! for the broadcast buffer is told how many events it missed
//! (`event: lagged`, `data: {"missed": n}`) and keeps its stream: a desktop
//! that reconnected would have missed them all the same, and can resync from
//! `GET /v1/calls`. Streams end when the server shuts down, so graceful
//! shutdown does not wait on them forever.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::Api;
use crate::call::CallEvent;

#[utoipa::path(get, path = "/v1/events", tag = "calls",
    responses((status = 200, description = "Server-Sent Events: `event:` the call event's tag, `data:` its JSON",
        content_type = "text/event-stream", body = String)))]
pub async fn stream(
    State(api): State<Arc<Api>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the response starts: every event sent after the
    // client sees the response headers reaches it.
    let events = BroadcastStream::new(api.events.subscribe());
    let stream = events
        .filter_map(|item| async move { message(item).map(Ok) })
        .take_until(api.stopped());
    // Comments every 15 s keep proxies from closing a quiet stream.
    Sse::new(stream).keep_alive(KeepAlive::default())
}

fn message(item: Result<CallEvent, BroadcastStreamRecvError>) -> Option<Event> {
    match item {
        Ok(event) => match serde_json::to_value(&event) {
            Ok(json) => {
                let tag = json.get("event").and_then(|t| t.as_str()).unwrap_or("call");
                Some(Event::default().event(tag).data(json.to_string()))
            }
            // Only a recording path that is not UTF-8 can fail; skipping it
            // keeps the stream alive, and the log says what was lost.
            Err(e) => {
                tracing::warn!(call = %event.call(), error = %e, "event not sent on /v1/events");
                None
            }
        },
        Err(BroadcastStreamRecvError::Lagged(missed)) => Some(
            Event::default()
                .event("lagged")
                .data(serde_json::json!({ "missed": missed }).to_string()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use serde_json::{json, Value};
    use tokio::sync::oneshot;

    use super::super::testkit::{accepting, raw_get, read_sse, started};
    use crate::call::{CallEvent, CallId, EndedBy};

    /// Binds the API on a free loopback port; the sender stops it.
    async fn serve(state: super::super::HttpState) -> (SocketAddr, oneshot::Sender<()>) {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (addr, server) =
            super::super::bind("127.0.0.1:0".parse().unwrap(), state, None, shutdown)
                .await
                .unwrap();
        tokio::spawn(server);
        (addr, stop)
    }

    fn split(message: &str) -> (&str, Value) {
        let mut event = "";
        let mut data = Value::Null;
        for line in message.lines() {
            if let Some(e) = line.strip_prefix("event: ") {
                event = e;
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = serde_json::from_str(d).unwrap();
            }
        }
        (event, data)
    }

    #[tokio::test]
    async fn each_event_arrives_tagged_with_its_json() {
        let h = accepting();
        let events = h.state.events.clone();
        let (addr, _stop) = serve(h.state).await;
        let (status, mut body) = raw_get(addr, "/v1/events").await;
        assert_eq!(status, 200);

        events.send(started("c1")).unwrap();
        events
            .send(CallEvent::Ended {
                call: CallId("c1".into()),
                by: EndedBy::B,
                cause: "normal".into(),
                status: None,
            })
            .unwrap();
        let messages = read_sse(&mut body, 2).await;
        let (tag, data) = split(&messages[0]);
        assert_eq!(tag, "started");
        assert_eq!(
            data,
            json!({"event": "started", "call": "c1", "interaction": "i-42",
                   "from": "1001", "to": "15551234567"})
        );
        let (tag, data) = split(&messages[1]);
        assert_eq!(tag, "ended");
        assert_eq!(data["by"], "b");
        assert_eq!(data["cause"], "normal");
    }

    #[tokio::test]
    async fn a_lagging_client_is_told_how_many_it_missed_and_stays_connected() {
        let h = accepting();
        let events = h.state.events.clone();
        let (addr, _stop) = serve(h.state).await;
        let (_, mut body) = raw_get(addr, "/v1/events").await;

        // The test runtime is single-threaded: the server cannot read while
        // these are sent, so the 16-slot buffer overflows by four.
        for n in 0..20 {
            events.send(started(&format!("c{n}"))).unwrap();
        }
        let messages = read_sse(&mut body, 17).await;
        let (tag, data) = split(&messages[0]);
        assert_eq!(tag, "lagged");
        assert_eq!(data, json!({"missed": 4}));
        let (tag, data) = split(&messages[1]);
        assert_eq!((tag, &data["call"]), ("started", &json!("c4")));
        assert_eq!(split(&messages[16]).1["call"], "c19");

        // Still subscribed after the notice.
        events.send(started("after")).unwrap();
        assert_eq!(split(&read_sse(&mut body, 1).await[0]).1["call"], "after");
    }
}
