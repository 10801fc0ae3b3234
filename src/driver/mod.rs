//! The tokio driver: the only place with sockets, clocks and spawn.
//!
//! It binds every profile's listeners, then runs `[general] sip_workers`
//! endpoint workers (default: one per core; `workers.rs`), each a task that
//! owns one shard of the sans-IO [`Endpoint`] and runs it the way quinn
//! runs its endpoint: receive one input, hand it over, drain every
//! `poll_*`, sleep until the earliest `poll_timeout`. Readers route every
//! message to its worker by Call-ID (`crate::shard`); the driver's own loop
//! routes commands and media events the same way and takes every worker's
//! events to the callback task, the HTTP event stream and `on_event`. The
//! endpoint never sees a socket or the clock.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

mod callbacks;
// getrlimit/setrlimit (libc FFI).
#[allow(unsafe_code)]
pub mod limits;
mod outbox;
mod peers;
mod resolve;
mod workers;

pub use callbacks::{CallbackTask, CenterInput};
pub use outbox::{OutboxError, OutboxHandle, OutboxTask};

use crate::call::{self, ControlRequest, Sessions};
use crate::callback::center::Center;
use crate::callback::{CenterRequest, DesktopEvent};
use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointEvent};
use crate::media::MediaEngine;
use crate::net::{ProfileId, TransportKind};
use crate::shard::Shards;
use crate::store::{Store, StoreError};
use crate::transport::{self, Inbound, InboundFanout, ReaderSettings, Transports};

/// How many parsed stream messages may wait for the fan-out to the workers.
const INBOUND_QUEUE: usize = 16 * 1024;

/// The workers `[general] sip_workers` asks for: 0 is one per core.
pub fn worker_count(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    }
}

/// A bound listener, as reported once at start.
#[derive(Debug, Clone)]
pub struct Listener {
    pub profile: String,
    pub transport: TransportKind,
    pub address: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("profile {profile}: cannot bind {transport} {address}: {source}")]
    Bind {
        profile: String,
        transport: TransportKind,
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("profile {profile}: tls: {source}")]
    Tls {
        profile: String,
        source: transport::TlsSetupError,
    },
    #[error("store {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("http: tls: {source}")]
    HttpTls { source: transport::TlsSetupError },
    #[error("http: cannot bind {address}: {source}")]
    Http {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("enrichment webhook: {0}")]
    Enrichment(#[from] crate::integrations::client::ClientError),
    #[error("{0}")]
    Notify(#[from] OutboxError),
    #[error("{0}")]
    Peer(#[from] peers::PeerError),
}

/// Events handed to `on_event` before `on_flush` is called.
const EVENT_BATCH: usize = 256;

/// Runs the switch until `shutdown` resolves. `on_event` and `on_desktop`
/// are called for each event, `on_flush` after each batch of them (so that
/// a printer may write a batch at once).
pub async fn run(
    config: Config,
    config_dir: std::path::PathBuf,
    shutdown: impl Future<Output = ()>,
    on_ready: impl FnOnce(&[Listener], Option<SocketAddr>),
    mut on_event: impl FnMut(&EndpointEvent),
    mut on_desktop: impl FnMut(&DesktopEvent),
    mut on_flush: impl FnMut(),
) -> Result<(), DriverError> {
    let shards = Shards::new(worker_count(config.general.sip_workers));
    let mut worker_inbound = Vec::new();
    let mut worker_rx = Vec::new();
    for _ in 0..shards.count() {
        let (tx, rx) = mpsc::channel::<Inbound>(workers::WORKER_QUEUE);
        worker_inbound.push(tx);
        worker_rx.push(rx);
    }
    let fanout = {
        let shards = shards.clone();
        InboundFanout::new(worker_inbound, move |i| workers::route_inbound(&shards, i))
    };
    // Stream readers share one channel; `workers::fan_out` routes it.
    let (tx, rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let fan_out = tokio::spawn(workers::fan_out(rx, fanout.clone()));
    // Each worker gets its own `Transports` over these (see below).
    let mut udp_sockets = Vec::new();
    let mut outbound = Vec::new();
    let mut listeners = Vec::new();
    for (index, np) in config.profiles.iter().enumerate() {
        let profile = ProfileId(index);
        let c = &np.profile.connections;
        let settings = ReaderSettings {
            profile,
            max_message_size: config.general.max_message_size,
            max_pending_bytes: c
                .max_pending_bytes
                .unwrap_or(config.general.max_message_size),
            log_messages: config.general.log_sip_messages,
            idle_timeout: Duration::from_secs(np.profile.tcp_idle_timeout_secs.max(1)),
            limits: transport::ConnectionLimits::new(&np.name, c.max_per_source, c.max_total),
        };
        // Every profile may open connections of its own (TCP; TLS to its
        // peers), from every worker's `Transports` (built below).
        outbound.push((profile, settings.clone()));
        let tls = match &np.profile.tls {
            Some(t) => {
                let base = np
                    .file
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| config_dir.clone());
                Some(
                    transport::load_tls_acceptor(&base.join(&t.cert), &base.join(&t.key)).map_err(
                        |source| DriverError::Tls {
                            profile: np.name.clone(),
                            source,
                        },
                    )?,
                )
            }
            None => None,
        };
        for l in &np.profile.listen {
            let bind_err = |source| DriverError::Bind {
                profile: np.name.clone(),
                transport: l.transport,
                address: l.address,
                source,
            };
            let address = match l.transport {
                TransportKind::Udp => {
                    // One reader parses and hands each message to its worker.
                    let (socket, local) =
                        transport::bind_udp(l.address, settings.clone(), fanout.clone())
                            .await
                            .map_err(bind_err)?;
                    udp_sockets.push((profile, socket));
                    local
                }
                TransportKind::Tcp => {
                    transport::bind_stream(l.address, None, settings.clone(), tx.clone())
                        .await
                        .map_err(bind_err)?
                }
                TransportKind::Tls => {
                    transport::bind_stream(l.address, tls.clone(), settings.clone(), tx.clone())
                        .await
                        .map_err(bind_err)?
                }
            };
            listeners.push(Listener {
                profile: np.name.clone(),
                transport: l.transport,
                address,
            });
        }
    }
    // Trunk peers: TLS trust built, names resolved (RFC 3263) before `ready`.
    let (peer_tx, mut peer_rx) = mpsc::channel::<peers::PeerUpdate>(64);
    let first_targets = peers::Peers::new(&config, &config_dir)?
        .start(peer_tx)
        .await;
    let sessions: Sessions = Default::default();
    // Trunk peers' limits, counters and health: one table for the process.
    // Each layer's settings, built once by config/ (none sees the TOML).
    let endpoint_settings = config.endpoint_settings();
    let peer_table = std::sync::Arc::new(call::PeerTable::new(&endpoint_settings.calls));
    let mut endpoints = Endpoint::sharded(
        &endpoint_settings,
        rand::random(),
        sessions.clone(),
        peer_table.clone(),
        &shards,
    );
    let (now, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
    for endpoint in &mut endpoints {
        endpoint.set_wall_clock(now, wall);
        endpoint.bind_media_ports();
        for l in &listeners {
            if let Some(i) = config.profile_index(&l.profile) {
                endpoint.set_local_address(ProfileId(i), l.transport, l.address);
            }
        }
    }
    // One worker (the first) pings the peers that ask for it.
    if let Some(first) = endpoints.first_mut() {
        first.start_pings(std::time::Instant::now());
    }
    // A recording left half-written by a crash is made readable again.
    for (path, outcome) in crate::recording::repair_dir(&config.general.recordings_dir) {
        match outcome {
            Ok(crate::recording::RepairOutcome::Repaired { frames }) => {
                tracing::warn!(path = %path.display(), frames, "recording repaired after an unclean stop")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "recording could not be repaired")
            }
        }
    }
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(media_tx);
    let (control_tx, mut control_rx) = mpsc::channel::<ControlRequest>(1024);
    let (routes, ends) = workers::Routes::new(shards.clone());
    let (events_tx_w, mut worker_events) = mpsc::unbounded_channel::<EndpointEvent>();
    let mut worker_tasks = Vec::new();
    for ((endpoint, inbound), channels) in endpoints.into_iter().zip(worker_rx).zip(ends) {
        let mut transports = Transports::new(config.general.log_sip_messages);
        for (profile, socket) in &udp_sockets {
            transports.add_udp(*profile, socket.clone());
        }
        for (profile, settings) in &outbound {
            transports.allow_outbound(*profile, settings.clone(), tx.clone());
        }
        let mut endpoint = endpoint;
        // Trunk peers' servers as first resolved (RFC 3263); later
        // resolutions reach every worker through `routes.peer_updates`.
        for u in &first_targets {
            peers::apply(u, &mut endpoint, &mut transports);
        }
        let worker = workers::Worker {
            endpoint,
            transports,
            peer_updates: channels.peer_updates,
            inbound,
            commands: channels.commands,
            media_events: channels.media_events,
            peer: channels.peer,
        };
        worker_tasks.push(tokio::spawn(workers::run(
            worker,
            media.clone(),
            routes.clone(),
            events_tx_w.clone(),
        )));
    }
    drop(events_tx_w);
    drop(tx);
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
    let (desktop_tx, mut desktop_rx) = tokio::sync::broadcast::channel::<DesktopEvent>(8192);
    let agent_profile = config
        .profile_index(&config.callback.agent_profile)
        .map(ProfileId);
    let (events_tx, _) = tokio::sync::broadcast::channel::<call::CallEvent>(4096);
    let mut http = None;
    if let Some(addr) = config.general.http_listen {
        let state = crate::http::HttpState {
            commands: control_tx.clone(),
            directory: std::sync::Arc::new(call::Directory {
                sessions: sessions.clone(),
                media: media.clone(),
                peers: peer_table.clone(),
            }),
            events: events_tx.clone(),
            api_keys: std::sync::Arc::new(config.general.http_api_keys.clone()),
            callbacks: Some(callback_api(
                &config,
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
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
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
        std::sync::Arc::new(callback_settings),
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
    drop(control_tx);
    on_ready(&listeners, http.as_ref().map(|(a, _, _)| *a));

    tokio::pin!(shutdown);
    loop {
        // Not biased: a stream of events must not starve commands.
        let first = tokio::select! {
            _ = &mut shutdown => break,
            event = worker_events.recv() => match event {
                Some(e) => Some(e),
                None => break,
            },
            Some(event) = media_rx.recv() => {
                routes.media_event(event);
                None
            }
            Some(update) = peer_rx.recv() => {
                routes.peer_update(update);
                None
            }
            desktop = desktop_rx.recv() => {
                match desktop {
                    Ok(d) => on_desktop(&d),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "desktop event log fell behind");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
                None
            }
            Some(request) = control_rx.recv() => {
                routes.command(request);
                None
            }
        };
        // The events already waiting go out together (one write for the
        // batch; each worker's, and so each call's, order is kept).
        let mut next = first;
        let mut batch = 0;
        while let Some(event) = next.take() {
            on_event(&event);
            match &event {
                EndpointEvent::Call(e) => {
                    let _ = input_tx.send(CenterInput::Call(e.clone()));
                    let _ = events_tx.send(e.clone());
                }
                EndpointEvent::Registrar { profile, event: r }
                    if Some(*profile) == agent_profile =>
                {
                    use crate::registrar::RegistrarEvent as R;
                    let change = match r {
                        R::Registered { aor, contact, .. } => Some((aor, contact, true)),
                        R::Unregistered { aor, contact } | R::Expired { aor, contact } => {
                            Some((aor, contact, false))
                        }
                        _ => None,
                    };
                    if let Some((user, contact, up)) = change {
                        let _ = input_tx.send(CenterInput::Registration {
                            user: user.clone(),
                            contact: contact.clone(),
                            up,
                        });
                    }
                }
                _ => {}
            }
            batch += 1;
            if batch < EVENT_BATCH {
                next = worker_events.try_recv().ok();
            }
        }
        on_flush();
    }
    tracing::info!("shutting down");
    for task in &worker_tasks {
        task.abort();
    }
    fan_out.abort();
    if let Some((_, stop, task)) = http {
        let _ = stop.send(());
        let _ = task.await;
    }
    // The web-callback task ends when its inputs close; its last turn's
    // writes are committed before it does.
    drop(input_tx);
    drop(center_tx);
    match tokio::time::timeout(Duration::from_secs(5), callback_task).await {
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "web-callback layer stopped on a store error")
        }
        Err(_) => tracing::warn!("web-callback layer did not stop in time"),
        _ => {}
    }
    // It stops once the web-callback task (its only source of rows) has;
    // attempts still out are left pending in the store.
    match tokio::time::timeout(Duration::from_secs(5), outbox_task).await {
        Ok(Ok(Err(e))) => {
            tracing::error!(error = %e, "notification delivery stopped on a store error")
        }
        Err(_) => tracing::warn!("notification delivery did not stop in time"),
        _ => {}
    }
    Ok(())
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

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
