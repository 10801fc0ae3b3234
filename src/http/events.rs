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

pub async fn stream(
    State(api): State<Arc<Api>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the response starts: every event sent after the
    // client sees the response headers reaches it.
    let events = BroadcastStream::new(api.events.subscribe());
    let mut stop = api.shutdown.subscribe();
    let stopped = async move {
        // Err means the sender is gone, which is a shutdown too.
        let _ = stop.wait_for(|stopping| *stopping).await;
    };
    let stream = events
        .filter_map(|item| async move { message(item).map(Ok) })
        .take_until(stopped);
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
