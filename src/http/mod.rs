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
//! The web-callback routes do the same for the callback center: requests
//! become [`callback::Request`]s on the center's queue, history and lists
//! are read from the store through [`CallbackReads`], and desktop events
//! are streamed with replay from the store. Call recordings are served
//! from their folder for the links end-call events carry. Every route but
//! `/v1/health` needs an API key; the server speaks HTTPS when given a TLS
//! config.
//!
//! Files: `router` (the route table), `calls` (the call handlers),
//! `call_bodies` (their request bodies and checks), `extract` (JSON
//! extractors), `dispatch` (command round trip), `events` (call SSE),
//! `errors` (error shape and status mapping), `auth` (API keys),
//! `callback_api` (what the callback routes need from the web-callback
//! layer), `center` (center round trip and store reads), `callbacks`
//! (contact and supervisor routes), `callback_bodies` and `list_query`
//! (their input, and the desktop actions'), `agents` (the agent desktop's
//! routes), `desktop` (desktop SSE with replay), `recordings` (recording
//! downloads with ranges), `notifications` (the outbox's dead events and
//! replays), `peers` (trunk peers' state and counters), `openapi` (the
//! generated document), `doc_types` (types that only describe JSON, named
//! by handlers and document), `tls` (HTTPS listener).
//!
//! [`CallCommand`]: crate::call::CallCommand
//! [`callback::Request`]: crate::callback::Request
//! [`CallbackReads`]: crate::callback::CallbackReads

mod agents;
mod auth;
mod call_bodies;
mod callback_api;
mod callback_bodies;
mod callbacks;
mod calls;
mod center;
mod consult;
mod desktop;
mod dispatch;
mod doc_types;
mod errors;
mod events;
mod extract;
mod list_query;
mod notifications;
mod openapi;
mod peers;
mod recordings;
mod router;
mod tls;

#[cfg(test)]
mod callback_testkit;
#[cfg(test)]
mod recordings_tests;
#[cfg(test)]
mod testkit;

pub use callback_api::{CallbackApi, NormalizeNumber, ParseTime, ValidateCreate};
pub use router::ROUTES;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
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
    /// Keys a client may present (`X-API-Key` or `Authorization: Bearer`);
    /// with none, every route but `GET /v1/health` answers 401.
    pub api_keys: Arc<Vec<String>>,
    /// The web-callback layer; `None`: its routes answer 503.
    pub callback_api: Option<CallbackApi>,
    /// The folder call recordings are written to (`recordings_dir`);
    /// `GET /v1/recordings/{name}` serves its `.wav` files.
    pub recordings_dir: PathBuf,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The API keys are secrets: only how many.
        f.debug_struct("HttpState")
            .field("api_keys", &self.api_keys.len())
            .field("callback_api", &self.callback_api.is_some())
            .field("recordings_dir", &self.recordings_dir)
            .finish_non_exhaustive()
    }
}

/// The handlers' shared state: [`HttpState`] plus what the server adds.
pub(crate) struct Api {
    commands: mpsc::Sender<ControlRequest>,
    directory: Arc<dyn CallDirectory>,
    events: broadcast::Sender<CallEvent>,
    keys: auth::Keys,
    callback_api: Option<CallbackApi>,
    recordings: PathBuf,
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
            keys: auth::Keys::new(&state.api_keys),
            callback_api: state.callback_api,
            recordings: state.recordings_dir,
            reply_timeout: dispatch::REPLY_TIMEOUT,
            shutdown: watch::Sender::new(false),
        })
    }

    /// A future that resolves when the server begins shutting down; event
    /// streams end on it.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.shutdown.subscribe();
        async move {
            // Err means the sender is gone, which is a shutdown too.
            let _ = stop.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The API's routes over `state`, without a listener (tests drive it with
/// `tower::ServiceExt::oneshot`; an embedder may nest it).
pub fn router(state: HttpState) -> axum::Router {
    router::build(Api::new(state))
}

/// Binds `addr` (port 0 picks one) and returns the bound address and the
/// server future; the caller spawns it. With `tls` every connection is
/// HTTPS (a handshake that fails or stalls only costs that connection).
/// When `shutdown` resolves the server stops accepting, ends every event
/// stream, and finishes once in-flight requests are answered.
pub async fn bind(
    addr: SocketAddr,
    state: HttpState,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let api = Api::new(state);
    let app = router::build(api.clone());
    let signal = async move {
        shutdown.await;
        // SSE streams never end by themselves; without this, graceful
        // shutdown would wait on every connected desktop forever.
        api.shutdown.send_replace(true);
    };
    let server = match tls {
        None => Either::Left(serve(listener, app, signal, local)),
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            Either::Right(serve(listener, app, signal, local))
        }
    };
    Ok((local, server))
}

async fn serve<L>(
    listener: L,
    app: axum::Router,
    signal: impl Future<Output = ()> + Send + 'static,
    local: SocketAddr,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(signal)
        .await
    {
        tracing::error!(address = %local, error = %e, "http server failed");
    }
    tracing::info!(address = %local, "http server stopped");
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
        let (addr, server) = super::bind("127.0.0.1:0".parse().unwrap(), h.state, None, shutdown)
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
