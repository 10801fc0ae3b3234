//! Notification endpoints as configured (`[[notify.endpoints]]`): where,
//! in which format, with which headers and signature, which events, and
//! the delivery policy.

use std::path::PathBuf;
use std::time::Duration;

use super::notice::NoticeKind;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifySettings {
    pub endpoints: Vec<EndpointSettings>,
    /// The base recording links are built on (`{public_url}/v1/recordings/{name}`),
    /// e.g. `https://switch.example:8080`. Without it, the HTTP API's own
    /// listen address.
    pub public_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    /// Unique among endpoints; outbox rows and the dead-letter API name it.
    pub name: String,
    pub url: String,
    pub format: BodyFormat,
    pub events: EventFilter,
    /// Sent with every request, in order (e.g. `Authorization: Basic ...`).
    pub headers: Vec<(String, String)>,
    pub signing: Option<Signing>,
    /// Bounds one attempt (connect, send, answer).
    pub timeout: Duration,
    pub retry: DeliveryRetry,
    /// Plain HTTP allowed (testing only).
    pub allow_http: bool,
    /// Extra trusted CA certificates (PEM), for a private CA.
    pub ca_file: Option<PathBuf>,
}

/// The body format (`format`): JSON, or URL-encoded form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// An HMAC-SHA256 over the exact body bytes, hex, in `header` as
/// `sha256=<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signing {
    pub secret: String,
    pub header: String,
}

/// Which events an endpoint receives (its `events` list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// "Send All Agents States": logins, logouts and every change.
    pub all_agent_states: bool,
    /// "Agent Login Events" only.
    pub agent_login: bool,
    /// "Agent Logout Events" only.
    pub agent_logout: bool,
    pub end_call: bool,
}

impl EventFilter {
    pub fn wants(&self, kind: &NoticeKind) -> bool {
        match kind {
            NoticeKind::AgentLogin(_) => self.all_agent_states || self.agent_login,
            NoticeKind::AgentLogout(_) => self.all_agent_states || self.agent_logout,
            NoticeKind::AgentState(_) => self.all_agent_states,
            NoticeKind::EndCall(_) => self.end_call,
        }
    }
}

/// Exponential back-off with full jitter between `initial` and `max`; after
/// `max_attempts` failures the event is parked as dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryRetry {
    pub max_attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for DeliveryRetry {
    fn default() -> Self {
        DeliveryRetry {
            max_attempts: 10,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(300),
        }
    }
}
