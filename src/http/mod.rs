//! The HTTP control API over live calls (axum, JSON, versioned under `/v1`).
//!
//! It owns the translation from HTTP to the call layer and back: requests
//! become [`CallCommand`]s sent to the endpoint task as [`ControlRequest`]s,
//! reads go to the [`CallDirectory`], and the [`CallEvent`] broadcast is
//! served as Server-Sent Events. It holds no call logic and no call state:
//! it never decides whether a command makes sense for a call (the call layer
//! answers that) and never caches a summary (the directory is the truth).
//! Every refusal, axum's own included, has one JSON shape (`errors`).
//!
//! Files: `routes` (table and handlers), `bodies` (request bodies and their
//! checks), `extract` (JSON extractor), `dispatch` (command round trip),
//! `events` (SSE), `errors` (error shape and status mapping).
//!
//! [`CallCommand`]: crate::call::CallCommand

mod bodies;
mod dispatch;
mod errors;
mod events;
mod extract;
mod routes;

#[cfg(test)]
mod testkit;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};

use crate::call::{CallDirectory, CallEvent, ControlRequest};

/// What the API needs from the rest of the switch.
#[derive(Clone)]
pub struct HttpState {
    /// The endpoint task's command queue.
    pub commands: mpsc::Sender<ControlRequest>,
    /// Live calls, read without going through the endpoint.
    pub directory: Arc<dyn CallDirectory>,
    /// The call layer's events; each `/v1/events` client subscribes.
    pub events: broadcast::Sender<CallEvent>,
}

/// The handlers' shared state: [`HttpState`] plus what the server adds.
pub(crate) struct Api {
    commands: mpsc::Sender<ControlRequest>,
    directory: Arc<dyn CallDirectory>,
    events: broadcast::Sender<CallEvent>,
    reply_timeout: Duration,
    /// Flips to true when the server shuts down; event streams end on it.
    shutdown: watch::Sender<bool>,
}

impl Api {
    fn new(state: HttpState) -> Arc<Self> {
        Arc::new(Api {
            commands: state.commands,
            directory: state.directory,
            events: state.events,
            reply_timeout: dispatch::REPLY_TIMEOUT,
            shutdown: watch::Sender::new(false),
        })
    }
}

/// The API's routes over `state`, without a listener (tests drive it with
/// `tower::ServiceExt::oneshot`; an embedder may nest it).
pub fn router(state: HttpState) -> axum::Router {
    routes::table(Api::new(state))
}

/// Binds `addr` (port 0 picks one) and returns the bound address and the
/// server future; the caller spawns it. When `shutdown` resolves the server
/// stops accepting, ends every event stream, and finishes once in-flight
/// requests are answered.
pub async fn bind(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let api = Api::new(state);
    let app = routes::table(api.clone());
    let server = async move {
        let signal = async move {
            shutdown.await;
            // SSE streams never end by themselves; without this, graceful
            // shutdown would wait on every connected desktop forever.
            api.shutdown.send_replace(true);
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::error!(address = %local, error = %e, "http server failed");
        }
        tracing::info!(address = %local, "http server stopped");
    };
    Ok((local, server))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::oneshot;

    use super::testkit::{accepting, raw_get, read_chunk, read_sse, started};

    #[tokio::test]
    async fn bind_serves_on_a_chosen_port_and_shutdown_ends_event_streams() {
        let h = accepting();
        let events = h.state.events.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let (addr, server) = super::bind("127.0.0.1:0".parse().unwrap(), h.state, shutdown)
            .await
            .unwrap();
        assert_ne!(addr.port(), 0);
        let server = tokio::spawn(server);

        let (status, _) = raw_get(addr, "/v1/health").await;
        assert_eq!(status, 200);
        let (_, mut stream) = raw_get(addr, "/v1/events").await;
        events.send(started("c1")).unwrap();
        assert_eq!(read_sse(&mut stream, 1).await.len(), 1);

        // An open event stream must not hold the server up.
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("server did not stop")
            .unwrap();
        // The stream ended cleanly (last chunk) or the connection closed.
        assert_eq!(read_chunk(&mut stream).await, None);
    }
}
