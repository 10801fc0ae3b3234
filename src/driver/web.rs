//! Start-up of the web-callback layer and the HTTP API: the store opened
//! (and recovered) before anything is served, the notification outbox's
//! delivery task, the center's task, and the API bound (HTTPS with a
//! certificate) with the callback routes' view of all of them.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{CallbackTask, CenterInput, DriverError, OutboxHandle, OutboxTask};
use crate::call::{self, ControlRequest, Sessions};
use crate::callback::center::Center;
use crate::callback::{CenterRequest, DesktopEvent};
use crate::config::Config;
use crate::media::MediaEngine;
use crate::net::ProfileId;
use crate::store::{Store, StoreError};
use crate::transport;

/// The HTTP API as bound: its address, its stop signal, its server task.
pub type Http = (SocketAddr, oneshot::Sender<()>, JoinHandle<()>);
/// The web-callback task (it ends when its inputs close).
pub type CallbackHandle = JoinHandle<Result<(), StoreError>>;
/// The notification delivery task.
pub type OutboxHandleTask = JoinHandle<Result<(), StoreError>>;

/// What the driver's loop and its shutdown need of the web side.
pub struct Web {
    pub http: Option<Http>,
    pub callback_task: CallbackHandle,
    pub outbox_task: OutboxHandleTask,
    /// The center's request queue (dropped at shutdown).
    pub center_tx: mpsc::Sender<CenterRequest>,
    /// Call events and registrations for the center.
    pub input_tx: mpsc::UnboundedSender<CenterInput>,
    /// Desktop events as the center releases them.
    pub desktop_rx: broadcast::Receiver<DesktopEvent>,
    /// The HTTP event stream's call events.
    pub events_tx: broadcast::Sender<call::CallEvent>,
    /// The profile whose registrations are agents' phones.
    pub agent_profile: Option<ProfileId>,
}

/// Opens the store, starts the delivery and center tasks, binds the API.
pub async fn start(
    config: &Config,
    config_dir: &Path,
    sessions: &Sessions,
    media: &MediaEngine,
    peer_table: &Arc<call::PeerTable>,
    control_tx: &mpsc::Sender<ControlRequest>,
) -> Result<Web, DriverError> {
    // The web-callback layer: its store is opened (and recovered) before
    // anything is served, so nothing accepted before a crash is missed.
    let database = &config.callback.database;
    let store_err = |source| DriverError::Store {
        path: database.display().to_string(),
        source,
    };
    let (store, recovered) = Store::open(database).map_err(store_err)?;
    // Read before the web-callback task commits anything: every later row
    // reaches the delivery task through `outbox_tx`, none through both.
    let pending = store.outbox_pending().await.map_err(store_err)?;
    let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
    let (outbox_task, outbox_handle) =
        OutboxTask::new(&config.callback.notify, store.clone(), pending, outbox_rx)?;
    let (center_tx, center_rx) = mpsc::channel::<CenterRequest>(4096);
    let (input_tx, input_rx) = mpsc::unbounded_channel::<CenterInput>();
    let (desktop_tx, desktop_rx) = broadcast::channel::<DesktopEvent>(8192);
    let agent_profile = config
        .profile_index(&config.callback.agent_profile)
        .map(ProfileId);
    let (events_tx, _) = broadcast::channel::<call::CallEvent>(4096);
    let mut http = None;
    if let Some(addr) = config.general.http_listen {
        let state = crate::http::HttpState {
            commands: control_tx.clone(),
            directory: Arc::new(call::Directory {
                sessions: sessions.clone(),
                media: media.clone(),
                peers: peer_table.clone(),
            }),
            events: events_tx.clone(),
            api_keys: Arc::new(config.general.http_api_keys.clone()),
            callback_api: Some(callback_api(
                config,
                &center_tx,
                &store,
                &desktop_tx,
                &outbox_handle,
            )?),
            recordings_dir: config.general.recordings_dir.clone(),
        };
        let tls = match (&config.general.http_tls_cert, &config.general.http_tls_key) {
            (Some(cert), Some(key)) => Some(
                transport::load_tls_acceptor(&config_dir.join(cert), &config_dir.join(key))
                    .map_err(|source| DriverError::HttpTls { source })?
                    .config()
                    .clone(),
            ),
            _ => None,
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (bound, server) = crate::http::bind(addr, state, tls, async move {
            let _ = stop_rx.await;
        })
        .await
        .map_err(|source| DriverError::Http {
            address: addr,
            source,
        })?;
        http = Some((bound, stop_tx, server));
    }
    let mut callback_settings = config.callback.clone();
    if let (None, Some((bound, _, _))) = (&callback_settings.notify.public_url, &http) {
        // Recording links point at the API as bound (its port may be 0 in
        // the configuration).
        let tls = config.general.http_tls_cert.is_some();
        callback_settings.notify.public_url = Some(crate::config::derived_public_url(*bound, tls));
        if bound.ip().is_unspecified() && !callback_settings.notify.endpoints.is_empty() {
            tracing::warn!(address = %bound, "recording links use the HTTP API's unspecified address; set [notify] public_url");
        }
    }
    let center = Center::new(
        Arc::new(callback_settings),
        recovered,
        jiff::Timestamp::now(),
    );
    let callback_task = tokio::spawn(
        CallbackTask {
            center,
            store: store.clone(),
            requests: center_rx,
            inputs: input_rx,
            feedback: input_tx.clone(),
            commands: control_tx.clone(),
            desktop: desktop_tx.clone(),
            outbox: Some(outbox_tx),
        }
        .run(),
    );
    let outbox_task = tokio::spawn(outbox_task.run());
    let http = http.map(|(bound, stop, server)| (bound, stop, tokio::spawn(server)));
    Ok(Web {
        http,
        callback_task,
        outbox_task,
        center_tx,
        input_tx,
        desktop_rx,
        events_tx,
        agent_profile,
    })
}

/// The web-callback routes' view of the center, the store and the request
/// checks of `callback::request`.
fn callback_api(
    config: &Config,
    center: &mpsc::Sender<CenterRequest>,
    store: &Store,
    desktop: &tokio::sync::broadcast::Sender<DesktopEvent>,
    notifications: &OutboxHandle,
) -> Result<crate::http::CallbackApi, DriverError> {
    use crate::callback::request;
    let queues: std::collections::BTreeSet<String> =
        config.callback.queues.keys().cloned().collect();
    let enricher = crate::integrations::enrich::Enricher::new(&config.callback.enrichment)?;
    Ok(crate::http::CallbackApi {
        center: center.clone(),
        reads: std::sync::Arc::new(store.clone()),
        desktop: desktop.clone(),
        validate_create: std::sync::Arc::new(move |bytes, now| {
            let body = request::parse_body(bytes).map_err(|e| (e.field, e.message))?;
            request::validate(body, now, &|q| queues.contains(q)).map_err(|e| (e.field, e.message))
        }),
        parse_time: std::sync::Arc::new(request::parse_time),
        // A new number given later has no request's country code to lean
        // on: it must be international (+E.164).
        normalize_number: std::sync::Arc::new(|raw| request::normalize_number(raw, None, false)),
        enricher: enricher.map(std::sync::Arc::new),
        notifications: Some(std::sync::Arc::new(notifications.clone())),
    })
}
