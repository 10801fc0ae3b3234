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
//!
//! Files: `listen.rs` (binding the listeners), `workers.rs` (the endpoint
//! workers and the routing between them), `peers.rs` and `resolve.rs`
//! (trunk peers' TLS trust and RFC 3263 resolution), `web.rs` (start-up of
//! the web-callback layer and the HTTP API), `callbacks.rs` (the center's
//! task), `outbox.rs` (notification delivery), `limits.rs` (open files).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

mod callbacks;
mod listen;
// getrlimit/setrlimit (libc FFI).
#[allow(unsafe_code)]
pub mod limits;
mod outbox;
mod peers;
mod resolve;
mod web;
mod workers;

pub use callbacks::{CallbackTask, CenterInput};
pub use outbox::{OutboxError, OutboxHandle, OutboxTask};

use crate::call::{self, ControlRequest, Sessions};
use crate::callback::{CenterRequest, DesktopEvent};
use crate::config::Config;
use crate::endpoint::{Endpoint, EndpointEvent, EndpointSettings};
use crate::media::MediaEngine;
use crate::net::{ProfileId, TransportKind};
use crate::shard::Shards;
use crate::store::StoreError;
use crate::transport::{self, Inbound, InboundFanout, Transports};

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
    #[error("no endpoint workers")]
    NoWorkers,
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
///
/// Start-up binds the listeners (`listen.rs`), resolves the trunk peers,
/// builds and spawns the endpoint workers, opens the web-callback layer and
/// the HTTP API (`web.rs`); then this loop routes commands, media events
/// and peer updates to the workers and their events out; `shut_down` stops
/// it all in order.
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
            .ok_or(DriverError::NoWorkers)?
    };
    // Stream readers share one channel; `workers::fan_out` routes it.
    let (tx, rx) = mpsc::channel::<Inbound>(INBOUND_QUEUE);
    let fan_out = tokio::spawn(workers::fan_out(rx, fanout.clone()));
    let bound = listen::bind_listeners(&config, &config_dir, &fanout, &tx).await?;
    // Trunk peers: TLS trust built, names resolved (RFC 3263) before `ready`.
    let (peer_tx, mut peer_rx) = mpsc::channel::<peers::PeerUpdate>(64);
    let first_targets = peers::Peers::new(&config, &config_dir)?
        .start(peer_tx)
        .await;
    let sessions: Sessions = Default::default();
    // Each layer's settings, built once by config/ (none sees the TOML).
    let endpoint_settings = config.endpoint_settings();
    // Trunk peers' limits, counters and health: one table for the process.
    let peer_table = std::sync::Arc::new(call::PeerTable::new(&endpoint_settings.calls));
    let endpoints = start_endpoints(
        &config,
        &endpoint_settings,
        &sessions,
        &peer_table,
        &shards,
        &bound.listeners,
    );
    repair_recordings(&config.general.recordings_dir);
    let (media_tx, mut media_rx) = mpsc::unbounded_channel();
    let media = MediaEngine::start(media_tx);
    let (control_tx, mut control_rx) = mpsc::channel::<ControlRequest>(1024);
    let (routes, ends) = workers::Routes::new(shards.clone());
    let (events_tx_w, mut worker_events) = mpsc::unbounded_channel::<EndpointEvent>();
    let worker_tasks = spawn_workers(
        &config,
        endpoints,
        worker_rx,
        ends,
        &bound,
        &tx,
        &first_targets,
        &media,
        &routes,
        &events_tx_w,
    );
    drop(events_tx_w);
    drop(tx);
    let web = web::start(
        &config,
        &config_dir,
        &sessions,
        &media,
        &peer_table,
        &control_tx,
    )
    .await?;
    let web::Web {
        http,
        callback_task,
        outbox_task,
        center_tx,
        input_tx,
        mut desktop_rx,
        events_tx,
        agent_profile,
    } = web;
    drop(control_tx);
    on_ready(&bound.listeners, http.as_ref().map(|(a, _, _)| *a));

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
            forward_event(&event, &input_tx, &events_tx, agent_profile);
            batch += 1;
            if batch < EVENT_BATCH {
                next = worker_events.try_recv().ok();
            }
        }
        on_flush();
    }
    shut_down(
        worker_tasks,
        fan_out,
        http,
        input_tx,
        center_tx,
        callback_task,
        outbox_task,
    )
    .await;
    Ok(())
}

/// The endpoint workers' endpoints (one shard each), on the wall clock,
/// their media ports bound, their listeners' addresses known; the first
/// one pings the trunk peers that ask for it.
fn start_endpoints(
    config: &Config,
    settings: &EndpointSettings,
    sessions: &Sessions,
    peer_table: &std::sync::Arc<call::PeerTable>,
    shards: &Shards,
    listeners: &[Listener],
) -> Vec<Endpoint> {
    let mut endpoints = Endpoint::sharded(
        settings,
        rand::random(),
        sessions.clone(),
        peer_table.clone(),
        shards,
    );
    let (now, wall) = (std::time::Instant::now(), std::time::SystemTime::now());
    for endpoint in &mut endpoints {
        endpoint.set_wall_clock(now, wall);
        endpoint.bind_media_ports();
        for l in listeners {
            if let Some(i) = config.profile_index(&l.profile) {
                endpoint.set_local_address(ProfileId(i), l.transport, l.address);
            }
        }
    }
    // One worker (the first) pings the peers that ask for it.
    if let Some(first) = endpoints.first_mut() {
        first.start_pings(std::time::Instant::now());
    }
    endpoints
}

/// A recording left half-written by a crash is made readable again.
fn repair_recordings(dir: &std::path::Path) {
    for (path, outcome) in crate::recording::repair_dir(dir) {
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
}

/// One task per endpoint, each with its own `Transports` over the shared
/// UDP sockets and outbound connections, and the trunk peers' servers as
/// first resolved (RFC 3263; later resolutions reach every worker through
/// `routes.peer_updates`).
#[allow(clippy::too_many_arguments)]
fn spawn_workers(
    config: &Config,
    endpoints: Vec<Endpoint>,
    worker_rx: Vec<mpsc::Receiver<Inbound>>,
    ends: Vec<workers::WorkerChannels>,
    bound: &listen::Bound,
    stream_tx: &mpsc::Sender<Inbound>,
    first_targets: &[peers::PeerUpdate],
    media: &MediaEngine,
    routes: &workers::Routes,
    events: &mpsc::UnboundedSender<EndpointEvent>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut worker_tasks = Vec::new();
    for ((endpoint, inbound), channels) in endpoints.into_iter().zip(worker_rx).zip(ends) {
        let mut transports = Transports::new(config.general.log_sip_messages);
        for (profile, socket) in &bound.udp_sockets {
            transports.add_udp(*profile, socket.clone());
        }
        for (profile, settings) in &bound.outbound {
            transports.allow_outbound(*profile, settings.clone(), stream_tx.clone());
        }
        let mut endpoint = endpoint;
        for u in first_targets {
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
            events.clone(),
        )));
    }
    worker_tasks
}

/// Where a worker's event goes besides `on_event`: a call event to the
/// web-callback task and the HTTP event stream; a registration change of
/// the agents' profile to the web-callback task (an agent's phone).
fn forward_event(
    event: &EndpointEvent,
    input_tx: &mpsc::UnboundedSender<CenterInput>,
    events_tx: &tokio::sync::broadcast::Sender<call::CallEvent>,
    agent_profile: Option<ProfileId>,
) {
    match event {
        EndpointEvent::Call(e) => {
            let _ = input_tx.send(CenterInput::Call(e.clone()));
            let _ = events_tx.send(e.clone());
        }
        EndpointEvent::Registrar { profile, event: r } if Some(*profile) == agent_profile => {
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
}

/// Stops everything in order: the workers and the fan-out, the HTTP API
/// (its server awaited), then the web-callback task (its last turn's
/// writes committed) and the notification delivery, each given 5 s.
async fn shut_down(
    worker_tasks: Vec<tokio::task::JoinHandle<()>>,
    fan_out: tokio::task::JoinHandle<()>,
    http: Option<web::Http>,
    input_tx: mpsc::UnboundedSender<CenterInput>,
    center_tx: mpsc::Sender<CenterRequest>,
    callback_task: web::CallbackHandle,
    outbox_task: web::OutboxHandleTask,
) {
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
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
