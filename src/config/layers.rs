//! What `config/` builds for each layer from the TOML: the call layer's
//! settings (`CallSettings`, with the dial plan's rules and the trunk
//! peers' limits), the endpoint's (`EndpointSettings`: transaction timers,
//! registrar settings per profile). The layers below take these types and
//! never the configuration's schema, so that a change of file format stops
//! here.

use std::net::SocketAddr;
use std::time::Duration;

use super::{Algorithm, Config, GatewayStrategy, NamedProfile, Profile, RouteTarget};
use crate::call::dialplan::{DialRule, DialTarget};
use crate::call::peers::{PeerLimits, PingPolicy};
use crate::call::settings::{CallSettings, PeerSettings, ProfileSettings};
use crate::dialog::DialogConfig;
use crate::endpoint::{EndpointProfile, EndpointSettings};
use crate::media::MediaPorts;
use crate::net::{default_port, PeerAddress, PeerHost, ProfileId};
use crate::registrar::{
    AlgorithmPolicy, Credentials, DigestAlgorithm, GuardSettings, RegistrarSettings, UserDirectory,
};
use crate::transaction::TimerSettings;

impl Config {
    /// The call layer's settings: every profile's media, timers, outbound
    /// rules and trunk peers, and the dial plan's rules with their names
    /// resolved.
    pub fn call_settings(&self) -> CallSettings {
        let config = self;
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
                            configured_address: peer.address.clone(),
                            limits: PeerLimits {
                                max_calls_in: peer.max_calls_in,
                                max_calls_out: peer.max_calls_out,
                                max_cps_in: peer.max_cps_in,
                                max_cps_out: peer.max_cps_out,
                            },
                            ping: PingPolicy {
                                interval: (peer.ping_interval_secs > 0 && peer.address.is_some())
                                    .then(|| Duration::from_secs(peer.ping_interval_secs)),
                                failures_before_down: peer.ping_failures_before_down.max(1),
                                successes_before_up: peer.ping_successes_before_up.max(1),
                            },
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
        // The dialogs' 2xx retransmissions follow the first profile's T1/T2.
        let first = config.profiles.first().map(|p| &p.profile.timers);
        CallSettings {
            profiles,
            recordings_dir: config.general.recordings_dir.clone(),
            dialog: DialogConfig {
                t1: Duration::from_millis(first.map_or(500, |t| t.t1_ms)),
                t2: Duration::from_millis(first.map_or(4000, |t| t.t2_ms)),
            },
            dial_rules: self.dial_rules(),
        }
    }

    /// The dial plan's rules with their profile and peer names resolved; a
    /// rule naming an unknown gateway (or no registrar profile) is skipped
    /// with a warning, as validation rejects such configurations.
    fn dial_rules(&self) -> Vec<DialRule> {
        let config = self;
        let mut rules = Vec::new();
        for (i, r) in config.dialplan.iter().enumerate() {
            let target = match r.to {
                RouteTarget::User => {
                    let profile = match &r.profile {
                        Some(name) => config.profile_index(name),
                        None => config.profiles.iter().position(|p| p.profile.registrar),
                    };
                    match profile {
                        Some(p) => DialTarget::User(ProfileId(p)),
                        None => continue,
                    }
                }
                RouteTarget::Gateway => {
                    let names: Vec<&String> = r.gateway.iter().chain(&r.gateways).collect();
                    let gateways: Vec<(ProfileId, usize)> = names
                        .iter()
                        .filter_map(|g| {
                            let (p, _) = config.peer(g)?;
                            let peer = config.profiles[p]
                                .profile
                                .peers
                                .iter()
                                .position(|x| &x.name == *g)?;
                            Some((ProfileId(p), peer))
                        })
                        .collect();
                    if gateways.is_empty() || gateways.len() != names.len() {
                        tracing::warn!(rule = i, "dial plan gateway unknown; rule skipped");
                        continue;
                    }
                    let weights = (r.strategy == Some(GatewayStrategy::Weighted)).then(|| {
                        match r.weights.len() == gateways.len() {
                            true => r.weights.iter().map(|w| (*w).max(1)).collect(),
                            false => vec![1; gateways.len()],
                        }
                    });
                    DialTarget::Gateway(gateways, weights)
                }
            };
            let from = r
                .from
                .iter()
                .filter_map(|n| config.profile_index(n).map(ProfileId))
                .collect();
            rules.push(DialRule {
                pattern: r.pattern.clone(),
                target,
                number: r.number.clone().unwrap_or_else(|| "$0".into()),
                from,
            });
        }
        rules
    }

    /// The endpoint's settings: per profile its transaction timers, its
    /// registrar (when it is one) and its per-source cap, and the call
    /// layer's settings.
    pub fn endpoint_settings(&self) -> EndpointSettings {
        EndpointSettings {
            profiles: self
                .profiles
                .iter()
                .map(|np| EndpointProfile {
                    name: np.name.clone(),
                    timers: timer_settings(&np.profile),
                    registrar: np.profile.registrar.then(|| registrar_settings(np)),
                    max_transactions_per_source: np.profile.auth_guard.max_transactions_per_source,
                })
                .collect(),
            calls: self.call_settings(),
        }
    }
}

fn timer_settings(profile: &Profile) -> TimerSettings {
    TimerSettings {
        t1: Duration::from_millis(profile.timers.t1_ms),
        t2: Duration::from_millis(profile.timers.t2_ms),
        t4: Duration::from_millis(profile.timers.t4_ms),
    }
}

fn digest_algorithms(list: &[Algorithm]) -> Vec<DigestAlgorithm> {
    list.iter()
        .map(|a| match a {
            Algorithm::Md5 => DigestAlgorithm::Md5,
            Algorithm::Sha256 => DigestAlgorithm::Sha256,
        })
        .collect()
}

/// The profile's algorithms, its `User-Agent` rules and its users' own lists.
fn algorithm_policy(np: &NamedProfile) -> AlgorithmPolicy {
    let r = &np.profile.registration;
    let mut policy = AlgorithmPolicy::new(digest_algorithms(&r.algorithms));
    for rule in &r.user_agent_algorithms {
        // Validated when the configuration was loaded.
        if let Ok(re) = regex::Regex::new(&rule.user_agent) {
            policy = policy.with_user_agent(re, digest_algorithms(&rule.algorithms));
        }
    }
    for u in &np.profile.users {
        // A user known only by stored HA1s can answer only those hashes:
        // offering it another would turn its phone's right answer into a
        // failure against the guard.
        let stored: Vec<Algorithm> = [
            (Algorithm::Md5, u.ha1_md5.is_some()),
            (Algorithm::Sha256, u.ha1_sha256.is_some()),
        ]
        .into_iter()
        .filter_map(|(a, has)| has.then_some(a))
        .collect();
        let own = match (&u.algorithms, u.password.is_some()) {
            (Some(a), true) => Some(a.clone()),
            (Some(a), false) => Some(a.iter().copied().filter(|x| stored.contains(x)).collect()),
            (None, false) if stored.len() == 1 => Some(stored),
            (None, _) => None,
        };
        if let Some(a) = own {
            policy = policy.with_user(u.username.clone(), digest_algorithms(&a));
        }
    }
    policy
}

fn registrar_settings(np: &NamedProfile) -> RegistrarSettings {
    let p = &np.profile;
    let mut users = UserDirectory::default();
    for u in &p.users {
        let mut c = match &u.password {
            Some(pw) => Credentials::password(pw.clone()),
            None => Credentials::default(),
        };
        if let Some(h) = &u.ha1_md5 {
            c = c.with_ha1(DigestAlgorithm::Md5, h.clone());
        }
        if let Some(h) = &u.ha1_sha256 {
            c = c.with_ha1(DigestAlgorithm::Sha256, h.clone());
        }
        users.insert(u.username.clone(), c);
    }
    let r = &p.registration;
    let g = &p.auth_guard;
    RegistrarSettings {
        realm: p.realm.clone(),
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        nonce_lifetime: Duration::from_secs(r.nonce_lifetime_secs),
        algorithms: algorithm_policy(np),
        users,
        guard: GuardSettings {
            max_failures: g.max_failures,
            max_users: g.max_users_per_source,
            window: Duration::from_secs(g.window_secs),
            block: Duration::from_secs(g.block_secs),
            ..GuardSettings::default()
        },
        ..RegistrarSettings::default()
    }
}
