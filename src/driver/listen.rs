//! Binding every profile's listeners at start: UDP sockets whose readers
//! hand each message to its worker, TCP, TLS, WS and WSS listeners whose
//! connections feed the shared stream channel, and each profile's reader
//! settings for the connections the workers open themselves.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{DriverError, Listener};
use crate::config::Config;
use crate::net::{ProfileId, TransportKind};
use crate::transport::{self, Inbound, InboundFanout, ReaderSettings};

/// What binding left for the workers and for `ready`.
pub struct Bound {
    /// Every UDP socket, shared by every worker's `Transports`.
    pub udp_sockets: Vec<(ProfileId, Arc<UdpSocket>)>,
    /// Every profile may open connections of its own (TCP; TLS to its
    /// peers), from every worker's `Transports`.
    pub outbound: Vec<(ProfileId, ReaderSettings)>,
    pub listeners: Vec<Listener>,
}

/// Binds every profile's `listen` entries; stream connections go to
/// `stream_tx`, UDP datagrams through `fanout`.
pub async fn bind_listeners(
    config: &Config,
    config_dir: &Path,
    fanout: &InboundFanout,
    stream_tx: &mpsc::Sender<Inbound>,
) -> Result<Bound, DriverError> {
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
        outbound.push((profile, settings.clone()));
        let websocket =
            transport::WebSocketPolicy::new(&np.name, &np.profile.websocket.allowed_origins);
        let tls = match &np.profile.tls {
            Some(t) => {
                let base = np
                    .file
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| config_dir.to_path_buf());
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
                    transport::bind_stream(l.address, None, settings.clone(), stream_tx.clone())
                        .await
                        .map_err(bind_err)?
                }
                TransportKind::Tls => transport::bind_stream(
                    l.address,
                    tls.clone(),
                    settings.clone(),
                    stream_tx.clone(),
                )
                .await
                .map_err(bind_err)?,
                // RFC 7118: plain, or over the profile's TLS acceptor.
                TransportKind::Ws | TransportKind::Wss => {
                    let tls = match l.transport {
                        TransportKind::Ws => None,
                        // The configuration refuses wss without [tls].
                        _ => Some(tls.clone().ok_or_else(|| {
                            bind_err(std::io::Error::other("wss needs the profile's [tls]"))
                        })?),
                    };
                    transport::bind_websocket(
                        l.address,
                        tls,
                        settings.clone(),
                        websocket.clone(),
                        stream_tx.clone(),
                    )
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
    Ok(Bound {
        udp_sockets,
        outbound,
        listeners,
    })
}
