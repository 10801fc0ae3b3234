//! Trunk peers on the driver's side: where their requests go and how TLS
//! to them is verified, kept current; and what happens to a message the
//! transports could not send.
//!
//! At start every peer with an address gets its targets: an IP address at
//! once, a name through `resolve::locate` (RFC 3263), all before `ready`,
//! within a bound. A task then re-resolves each named peer when its answer's
//! TTL runs out (on failure it keeps the last targets and tries again
//! later) and sends [`PeerUpdate`]s to the endpoint loop, which applies
//! them with [`apply`]: the endpoint loop never waits on DNS.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::resolve::{self, Resolved, MIN_TTL};
use crate::config::Config;
use crate::endpoint::{Endpoint, Transmit};
use crate::net::{PeerAddress, PeerHost, ProfileId, TransportKind};
use crate::transport::{self, TlsTarget, Transports};

/// How long start-up waits for every named peer to resolve.
const START_BOUND: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer {peer}: tls: {source}")]
    Tls {
        peer: String,
        source: transport::TlsClientError,
    },
    #[error("dns: {0}")]
    Resolver(#[from] hickory_resolver::ResolveError),
}

/// One peer's targets, for the endpoint loop to apply.
#[derive(Debug, Clone)]
pub struct PeerUpdate {
    profile: ProfileId,
    index: usize,
    name: String,
    tls: Option<TlsTarget>,
    targets: Vec<SocketAddr>,
}

#[derive(Debug, Clone)]
struct Peer {
    profile: ProfileId,
    index: usize,
    name: String,
    host: String,
    port: Option<u16>,
    transport: TransportKind,
    tls: Option<TlsTarget>,
}

/// The peers of a configuration, with their TLS settings built.
pub struct Peers {
    fixed: Vec<PeerUpdate>,
    named: Vec<Peer>,
    resolver: Option<hickory_resolver::TokioResolver>,
}

impl Peers {
    /// Builds each TLS peer's client settings (system roots plus its
    /// `ca_file`, relative to its profile's file) and, when a peer is given
    /// by name, the resolver on `[general] dns_servers`.
    pub fn new(config: &Config, config_dir: &Path) -> Result<Peers, PeerError> {
        let mut fixed = Vec::new();
        let mut named = Vec::new();
        for (p, np) in config.profiles.iter().enumerate() {
            let base = np
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| config_dir.to_path_buf());
            for (index, peer) in np.profile.peers.iter().enumerate() {
                let Some(address) = peer.address.as_deref().and_then(PeerAddress::parse) else {
                    continue;
                };
                let tls = if peer.transport == TransportKind::Tls {
                    // RFC 5922 §7: the name the peer is configured with.
                    let name = match &address.host {
                        PeerHost::Ip(ip) => ip.to_string(),
                        PeerHost::Name(n) => n.clone(),
                    };
                    if !peer.tls_verify {
                        tracing::warn!(peer = %peer.name, "tls_verify = false: the peer's certificate is not checked");
                    }
                    let ca = peer.ca_file.as_ref().map(|f| base.join(f));
                    Some(
                        transport::tls_target(&name, ca.as_deref(), peer.tls_verify).map_err(
                            |source| PeerError::Tls {
                                peer: peer.name.clone(),
                                source,
                            },
                        )?,
                    )
                } else {
                    None
                };
                match address.host {
                    PeerHost::Ip(ip) => fixed.push(PeerUpdate {
                        profile: ProfileId(p),
                        index,
                        name: peer.name.clone(),
                        tls,
                        targets: vec![SocketAddr::new(
                            ip,
                            address
                                .port
                                .unwrap_or(crate::net::default_port(peer.transport)),
                        )],
                    }),
                    PeerHost::Name(host) => named.push(Peer {
                        profile: ProfileId(p),
                        index,
                        name: peer.name.clone(),
                        host,
                        port: address.port,
                        transport: peer.transport,
                        tls,
                    }),
                }
            }
        }
        let resolver = if named.is_empty() {
            None
        } else {
            Some(resolve::build_resolver(&config.general.dns_servers)?)
        };
        Ok(Peers {
            fixed,
            named,
            resolver,
        })
    }

    /// Every peer's first targets (named ones resolved, within a bound),
    /// then a task that keeps the named ones current on `updates`.
    pub async fn start(self, updates: mpsc::Sender<PeerUpdate>) -> Vec<PeerUpdate> {
        let mut first = self.fixed;
        let (Some(resolver), false) = (self.resolver, self.named.is_empty()) else {
            return first;
        };
        let resolver = std::sync::Arc::new(resolver);
        let lookups = self.named.iter().map(|p| {
            let resolver = resolver.clone();
            async move {
                let r = tokio::time::timeout(START_BOUND, locate(&resolver, p)).await;
                r.unwrap_or_else(|_| {
                    tracing::warn!(peer = %p.name, "peer not resolved in time at start");
                    None
                })
            }
        });
        let results = futures_util::future::join_all(lookups).await;
        let mut next = Vec::new();
        for (peer, result) in self.named.into_iter().zip(results) {
            let ttl = match result {
                Some(r) => {
                    first.push(update(&peer, r.targets));
                    r.ttl
                }
                None => MIN_TTL,
            };
            next.push((tokio::time::Instant::now() + ttl, peer));
        }
        tokio::spawn(refresh(resolver, next, updates));
        first
    }
}

fn update(peer: &Peer, targets: Vec<SocketAddr>) -> PeerUpdate {
    PeerUpdate {
        profile: peer.profile,
        index: peer.index,
        name: peer.name.clone(),
        tls: peer.tls.clone(),
        targets,
    }
}

async fn locate(resolver: &hickory_resolver::TokioResolver, p: &Peer) -> Option<Resolved> {
    match resolve::locate(resolver, &p.host, p.port, p.transport).await {
        Ok(r) => {
            let list: Vec<String> = r.targets.iter().map(|a| a.to_string()).collect();
            tracing::info!(peer = %p.name, targets = %list.join(","), ttl_secs = r.ttl.as_secs(), "peer resolved");
            Some(r)
        }
        Err(e) => {
            tracing::warn!(peer = %p.name, error = %e, "peer not resolved");
            None
        }
    }
}

/// Re-resolves each named peer when its time is up; stops when the
/// endpoint loop is gone.
async fn refresh(
    resolver: std::sync::Arc<hickory_resolver::TokioResolver>,
    mut due: Vec<(tokio::time::Instant, Peer)>,
    updates: mpsc::Sender<PeerUpdate>,
) {
    loop {
        let Some(i) = (0..due.len()).min_by_key(|&i| due[i].0) else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(due[i].0) => {}
            _ = updates.closed() => return,
        }
        let peer = &due[i].1;
        let ttl = match locate(&resolver, peer).await {
            Some(r) => {
                if updates.send(update(peer, r.targets)).await.is_err() {
                    return;
                }
                r.ttl
            }
            // The last targets stay in force meanwhile.
            None => MIN_TTL,
        };
        due[i].0 = tokio::time::Instant::now() + ttl;
    }
}

/// Gives the endpoint a peer's targets and the transports its TLS trust.
pub fn apply(update: &PeerUpdate, endpoint: &mut Endpoint, transports: &mut Transports) {
    if let Some(tls) = &update.tls {
        for &a in &update.targets {
            transports.set_tls_target(update.profile, a, tls.clone());
        }
    }
    tracing::debug!(peer = %update.name, targets = update.targets.len(), "peer targets set");
    endpoint.set_peer_targets(update.profile, update.index, update.targets.clone());
}

/// Sends one transmit; a message that cannot leave fails its transaction.
pub fn send(
    transports: &mut Transports,
    endpoint: &mut Endpoint,
    now: std::time::Instant,
    t: Transmit,
) {
    let bytes = bytes::Bytes::from(crate::sip::to_bytes(&t.message));
    if let Err(e) = transports.send(&t.destination, bytes) {
        tracing::info!(error = %e, "message not sent");
        endpoint.handle_send_failure(now, t.destination.profile, &t.message);
    }
}

/// A connection of our own failed: the messages that waited for it fail
/// their transactions.
pub fn connect_failed(
    transports: &mut Transports,
    endpoint: &mut Endpoint,
    now: std::time::Instant,
    profile: ProfileId,
    transport: TransportKind,
    remote: SocketAddr,
    unsent: Vec<bytes::Bytes>,
) {
    transports.connect_failed(transport, remote);
    for bytes in unsent {
        // Our own bytes, so they parse; a size bound is moot here.
        if let Ok(message) = crate::sip::parse(&bytes, usize::MAX) {
            endpoint.handle_send_failure(now, profile, &message);
        }
    }
}
