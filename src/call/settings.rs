//! Each profile's call settings, taken from the configuration once: media
//! address and port pool, codecs, timers, auto-answer headers, outbound
//! caller-ID and header rules, trunk peers and where their requests go.
//!
//! A peer given by IP address has its one target from the start; a peer
//! given by name gets its ordered targets from the driver, which resolves
//! it (RFC 3263) and calls `CallLayer::set_peer_targets`: this layer never
//! resolves a name (that would block, and it reads no clock nor socket).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, HeaderRule, PrackMode, UserToUser};
use crate::media::MediaPorts;
use crate::net::{default_port, PeerAddress, PeerHost, TransportKind};
use crate::sdp::Codec;

#[derive(Debug)]
pub struct PeerSettings {
    pub name: String,
    /// As configured; `None` for a peer that only calls in.
    pub address: Option<PeerAddress>,
    /// Where requests go, in the order to try them (RFC 3263 §4.3): the
    /// IP address as configured, or what the driver resolved (empty until
    /// then, or when resolution found nothing: calls to it get 503).
    pub targets: Vec<SocketAddr>,
    pub transport: TransportKind,
    pub acl: Vec<ipnet::IpNet>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub realm: Option<String>,
    /// RFC 3325: its P-Asserted-Identity is believed and ours is sent to it.
    pub trusted: bool,
    /// Its own RFC 3262 mode (`None`: the profile's).
    pub prack: Option<PrackMode>,
    /// Its own RFC 7433 setting (`None`: the profile's).
    pub user_to_user: Option<UserToUser>,
}

#[derive(Debug)]
pub struct ProfileSettings {
    pub name: String,
    pub registrar: bool,
    pub media_address: IpAddr,
    pub ports: MediaPorts,
    pub codecs: Vec<Codec>,
    pub rtp_timeout: Option<Duration>,
    pub ring_timeout: Duration,
    pub session_expires: u32,
    pub min_se: u32,
    pub auto_answer_call_info: String,
    pub auto_answer_alert_info: String,
    pub case_data_headers: Vec<String>,
    pub record: bool,
    pub prack: PrackMode,
    pub user_to_user: Option<UserToUser>,
    pub caller_id_number: Option<String>,
    pub caller_id_name: Option<String>,
    pub add_headers: Vec<HeaderRule>,
    pub pass_headers: Vec<String>,
    pub peers: Vec<PeerSettings>,
}

#[derive(Debug)]
pub struct CallSettings {
    pub profiles: Vec<ProfileSettings>,
    pub recordings_dir: PathBuf,
}

impl CallSettings {
    pub fn new(config: &Config) -> Self {
        let profiles = config
            .profiles
            .iter()
            .map(|np| {
                let p = &np.profile;
                let peers = p
                    .peers
                    .iter()
                    .map(|peer| {
                        let address = peer.address.as_deref().and_then(PeerAddress::parse);
                        PeerSettings {
                            name: peer.name.clone(),
                            targets: match &address {
                                Some(PeerAddress {
                                    host: PeerHost::Ip(ip),
                                    port,
                                }) => vec![SocketAddr::new(
                                    *ip,
                                    port.unwrap_or(default_port(peer.transport)),
                                )],
                                _ => Vec::new(),
                            },
                            address,
                            transport: peer.transport,
                            acl: peer.acl.clone(),
                            username: peer.username.clone(),
                            password: peer.password.clone(),
                            realm: peer.realm.clone(),
                            trusted: peer.trusted,
                            prack: peer.prack,
                            user_to_user: peer.user_to_user.clone(),
                        }
                    })
                    .collect();
                ProfileSettings {
                    name: np.name.clone(),
                    registrar: p.registrar,
                    media_address: p.media.address,
                    ports: MediaPorts::new(p.media.rtp_port_min, p.media.rtp_port_max),
                    codecs: p
                        .media
                        .codecs
                        .iter()
                        .filter_map(|c| c.parse().ok())
                        .collect(),
                    rtp_timeout: (p.media.rtp_timeout_secs > 0)
                        .then(|| Duration::from_secs(p.media.rtp_timeout_secs)),
                    ring_timeout: Duration::from_secs(p.calls.ring_timeout_secs.max(1)),
                    session_expires: p.calls.session_expires_secs,
                    min_se: p.calls.min_se_secs.max(90),
                    auto_answer_call_info: p.calls.auto_answer_call_info.clone(),
                    auto_answer_alert_info: p.calls.auto_answer_alert_info.clone(),
                    case_data_headers: p.calls.case_data_headers.clone(),
                    record: p.calls.record,
                    prack: p.calls.prack,
                    user_to_user: p.calls.user_to_user.clone(),
                    caller_id_number: p.outbound.caller_id_number.clone(),
                    caller_id_name: p.outbound.caller_id_name.clone(),
                    add_headers: p.outbound.add_headers.clone(),
                    pass_headers: p.outbound.pass_headers.clone(),
                    peers,
                }
            })
            .collect();
        CallSettings {
            profiles,
            recordings_dir: config.general.recordings_dir.clone(),
        }
    }
}
