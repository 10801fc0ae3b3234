//! Each profile's call settings: media address and port pool, codecs,
//! timers, auto-answer headers, outbound caller-ID and header rules, trunk
//! peers and where their requests go, the dial plan's rules. `config/`
//! builds them from the TOML (`Config::call_settings`); this layer never
//! sees the configuration file's schema. The few option types the TOML
//! names directly (`PrackMode`, `UserToUser`, `HeaderRule`) are defined
//! here, with their meaning.
//!
//! `CallSettings` answers what the call layer asks of the configuration (a
//! profile or peer by id, which peer a source is, a peer's RFC 3262 and RFC
//! 7433 modes with the profile's as fallback, its RFC 3325 trust), so that
//! no other file indexes the profile or peer lists: an id that names
//! nothing is `None` or the default, never a panic. Only the relay port
//! pools change at run time (taken and given back by the call layer).
//!
//! A peer given by IP address has its one target from the start; a peer
//! given by name gets its ordered targets from the driver, which resolves
//! it (RFC 3263) and calls `CallLayer::set_peer_targets`: this layer never
//! resolves a name (that would block, and it reads no clock nor socket).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::dialplan::DialRule;
use super::peers::{PeerLimits, PingPolicy};
use crate::dialog::DialogConfig;
use crate::media::MediaPorts;
use crate::net::{PeerAddress, ProfileId, Source, TransportKind};
use crate::sdp::Codec;

#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub name: String,
    /// The address as written (shown by the peers API).
    pub configured_address: Option<String>,
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
    pub limits: PeerLimits,
    pub ping: PingPolicy,
}

#[derive(Debug, Clone)]
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

#[derive(Debug, Clone)]
pub struct CallSettings {
    pub profiles: Vec<ProfileSettings>,
    pub recordings_dir: PathBuf,
    /// The dialogs' timers (the first profile's T1 and T2).
    pub dialog: DialogConfig,
    /// The dial plan's rules, in order (compiled by `DialPlan::new`).
    pub dial_rules: Vec<DialRule>,
}

impl CallSettings {
    /// A profile's settings (`None` for an id that names none: ids come
    /// from this list, so only a bug would ask).
    pub fn profile(&self, id: ProfileId) -> Option<&ProfileSettings> {
        self.profiles.get(id.0)
    }

    pub fn profile_mut(&mut self, id: ProfileId) -> Option<&mut ProfileSettings> {
        self.profiles.get_mut(id.0)
    }

    /// A trunk peer's settings, by (profile, index among its peers).
    pub fn peer(&self, (profile, peer): (ProfileId, usize)) -> Option<&PeerSettings> {
        self.profile(profile)?.peers.get(peer)
    }

    /// The index of the first trunk peer of `profile` whose `acl` admits `ip`.
    pub fn peer_of_source(&self, profile: ProfileId, ip: IpAddr) -> Option<usize> {
        self.profile(profile)?
            .peers
            .iter()
            .position(|p| p.acl.iter().any(|n| n.contains(&ip)))
    }

    /// The trunk peer a request from `source` comes from, if any.
    pub fn peer_of(&self, source: &Source) -> Option<(ProfileId, usize)> {
        let i = self.peer_of_source(source.profile, source.remote.ip())?;
        Some((source.profile, i))
    }

    /// The RFC 3262 mode toward `peer` on `profile`: the peer's own, else
    /// the profile's.
    pub fn prack_mode(&self, profile: ProfileId, peer: Option<(ProfileId, usize)>) -> PrackMode {
        peer.and_then(|k| self.peer(k)?.prack)
            .or_else(|| self.profile(profile).map(|p| p.prack))
            .unwrap_or_default()
    }

    /// The RFC 7433 setting toward `peer` on `profile`: the peer's own,
    /// else the profile's (`None`: neither says).
    pub fn user_to_user(
        &self,
        profile: ProfileId,
        peer: Option<(ProfileId, usize)>,
    ) -> Option<&UserToUser> {
        peer.and_then(|k| self.peer(k)?.user_to_user.as_ref())
            .or_else(|| self.profile(profile)?.user_to_user.as_ref())
    }

    /// Whether `peer` is in the Trust Domain (RFC 3325, `trusted = true`);
    /// no peer (a phone) never is.
    pub fn trusted(&self, peer: Option<(ProfileId, usize)>) -> bool {
        peer.and_then(|k| self.peer(k)).is_some_and(|p| p.trusted)
    }
}

/// `prack`: how a profile or peer uses RFC 3262 (100rel, PRACK).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrackMode {
    /// `Supported: 100rel` on calls placed; a caller's 100rel is honoured
    /// (its 18x with SDP go reliably; every 18x when it requires 100rel).
    #[default]
    Supported,
    /// `Require: 100rel` on calls placed; every 18x to a caller that
    /// supports 100rel goes reliably.
    Required,
    /// Not advertised; a request requiring 100rel gets 420.
    Off,
}

/// `user_to_user`: on/off, or a template of the header value with
/// `{case}`, `{case_hex}`, `{interaction}`, `{interaction_hex}`, `{call}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UserToUser {
    Enabled(bool),
    Template(String),
}

/// What is wrong with a `user_to_user` template ([`UserToUser::check`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("must be one non-empty line")]
    NotOneLine,
    #[error("an unclosed {{")]
    Unclosed,
    #[error("unknown placeholder {{{name}}} (known: {known})")]
    UnknownPlaceholder { name: String, known: String },
}

impl UserToUser {
    /// What `true` means: the case reference in hex (RFC 7433 §4.1).
    pub const DEFAULT_TEMPLATE: &'static str = "{case_hex};encoding=hex";

    /// The placeholders a template may use.
    pub const PLACEHOLDERS: [&'static str; 5] =
        ["case", "case_hex", "interaction", "interaction_hex", "call"];

    /// The template in force, `None` when off.
    pub fn template(&self) -> Option<&str> {
        match self {
            UserToUser::Enabled(true) => Some(Self::DEFAULT_TEMPLATE),
            UserToUser::Enabled(false) => None,
            UserToUser::Template(t) => Some(t),
        }
    }

    /// What is wrong with a template, if anything: it must be one non-empty
    /// line whose `{...}` are known placeholders.
    pub fn check(template: &str) -> Result<(), TemplateError> {
        if template.trim().is_empty() || template.contains(['\r', '\n']) {
            return Err(TemplateError::NotOneLine);
        }
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                return Err(TemplateError::Unclosed);
            };
            let name = &rest[open + 1..open + close];
            if !Self::PLACEHOLDERS.contains(&name) {
                return Err(TemplateError::UnknownPlaceholder {
                    name: name.to_string(),
                    known: Self::PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", "),
                });
            }
            rest = &rest[open + close + 1..];
        }
        Ok(())
    }

    /// Fills a template; `None` when it needs a value that is missing (a
    /// case placeholder without a case, an interaction one without one).
    pub fn expand(
        template: &str,
        case: Option<&str>,
        interaction: Option<&str>,
        call: &str,
    ) -> Option<String> {
        let mut out = template.to_string();
        for (name, value) in [("case", case), ("interaction", interaction)] {
            let hex_name = format!("{{{name}_hex}}");
            let plain = format!("{{{name}}}");
            if out.contains(&hex_name) || out.contains(&plain) {
                let v = value.filter(|v| !v.is_empty())?;
                out = out
                    .replace(&hex_name, &hex::encode(v.as_bytes()))
                    .replace(&plain, v);
            }
        }
        Some(out.replace("{call}", call))
    }
}

/// A header every outbound INVITE of a profile carries (`add_headers`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderRule {
    pub name: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CallSettings {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.toml");
        std::fs::write(
            &main,
            "[profiles.external]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n\
             [profiles.external.calls]\nprack = \"required\"\nuser_to_user = true\n\
             [[profiles.external.peers]]\nname = \"own\"\naddress = \"127.0.0.1:5090\"\nacl = [\"10.0.0.0/8\"]\ntrusted = true\nprack = \"off\"\nuser_to_user = false\n\
             [[profiles.external.peers]]\nname = \"plain\"\naddress = \"127.0.0.1:5091\"\nacl = [\"10.0.0.0/8\", \"192.0.2.0/24\"]\n",
        )
        .unwrap();
        crate::config::load(&main).unwrap().call_settings()
    }

    #[test]
    fn peers_are_found_by_acl_and_their_own_settings_come_before_the_profiles() {
        let s = settings();
        let p = ProfileId(0);
        let ip = |a: &str| a.parse::<IpAddr>().unwrap();
        // The first peer whose ACL admits the address.
        assert_eq!(s.peer_of_source(p, ip("10.1.2.3")), Some(0));
        assert_eq!(s.peer_of_source(p, ip("192.0.2.9")), Some(1));
        assert_eq!(s.peer_of_source(p, ip("198.51.100.1")), None);
        assert_eq!(s.peer_of_source(ProfileId(7), ip("10.1.2.3")), None);
        let (own, plain) = (Some((p, 0)), Some((p, 1)));
        assert_eq!(s.prack_mode(p, own), PrackMode::Off);
        assert_eq!(s.prack_mode(p, plain), PrackMode::Required);
        assert_eq!(s.prack_mode(p, None), PrackMode::Required);
        assert_eq!(
            s.prack_mode(ProfileId(7), None),
            PrackMode::default(),
            "no such profile: the default, not a panic"
        );
        assert_eq!(s.user_to_user(p, own), Some(&UserToUser::Enabled(false)));
        assert_eq!(s.user_to_user(p, plain), Some(&UserToUser::Enabled(true)));
        assert!(s.trusted(own) && !s.trusted(plain) && !s.trusted(None));
        assert!(!s.trusted(Some((p, 9))));
        assert!(s.peer((p, 2)).is_none() && s.profile(ProfileId(1)).is_none());
    }
}
