//! Fixtures for the tests of notifications, wherever they live: an
//! endpoint and an agent's change as the center would build them.

use std::time::Duration;

use jiff::Timestamp;

use super::{
    AgentChangeNotice, BodyFormat, DeliveryRetry, EndpointSettings, EventFilter, Notice, NoticeKind,
};

/// A JSON endpoint with default retries that wants `events`.
pub fn endpoint(name: &str, events: EventFilter) -> EndpointSettings {
    EndpointSettings {
        name: name.into(),
        url: "https://wfm.example/events".into(),
        format: BodyFormat::Json,
        events,
        headers: vec![],
        signing: None,
        timeout: Duration::from_secs(5),
        retry: DeliveryRetry::default(),
        allow_http: false,
        ca_file: None,
    }
}

/// Every agent change, logins and logouts included.
pub fn all_agent_states() -> EventFilter {
    EventFilter {
        all_agent_states: true,
        ..Default::default()
    }
}

/// `agent` became Ready (Available) from being logged out 5 s before.
pub fn ready(agent: &str) -> AgentChangeNotice {
    AgentChangeNotice {
        agent_id: agent.into(),
        agent_name: None,
        state: "ready".into(),
        state_name: "Available".into(),
        reason: None,
        previous_state: Some("logged-out".into()),
        previous_state_name: Some("Logged Out".into()),
        previous_state_seconds: Some(5),
    }
}

/// An event `id` at `at` of kind `kind` (e.g. `NoticeKind::AgentLogin`)
/// about [`ready`]`(agent)`.
pub fn agent_notice(
    id: &str,
    at: Timestamp,
    agent: &str,
    kind: fn(AgentChangeNotice) -> NoticeKind,
) -> Notice {
    Notice {
        event_id: id.into(),
        timestamp: at,
        kind: kind(ready(agent)),
    }
}
