//! Each profile's call settings: media address and port pool, codecs,
//! timers, auto-answer headers, outbound caller-ID and header rules, trunk
//! peers and where their requests go, the dial plan's rules. `config/`
//! builds them from the TOML (`Config::call_settings`); this layer never
//! sees the configuration file's schema. The few option types the TOML
//! names directly (`PrackMode`, `UserToUser`, `HeaderRule`) are defined
//! here, with their meaning.
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
use crate::net::{PeerAddress, ProfileId, TransportKind};
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
