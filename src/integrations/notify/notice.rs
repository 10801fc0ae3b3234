//! The events workforce management is told about, as they are committed to
//! the outbox and (field for field) as the endpoint receives them.
//!
//! Field names are camelCase; the JSON body is this struct, the form body
//! the same fields flattened to `name=value` pairs.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One event. `eventId` is unique: a receiver that sees it twice (at least
/// once delivery) drops the second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub event_id: String,
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    #[serde(flatten)]
    pub kind: NoticeKind,
}

impl Notice {
    /// A new event at `at`: its id is time-ordered with 32 random bits, so
    /// ids from before a restart are never reused.
    pub fn new(at: Timestamp, kind: NoticeKind) -> Notice {
        let us = at.as_microsecond().max(0);
        Notice {
            event_id: format!("ev-{us:014x}{:08x}", rand::random::<u32>()),
            timestamp: at,
            kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "eventType", rename_all = "kebab-case")]
pub enum NoticeKind {
    /// The agent logged in (its first state follows in the same event).
    AgentLogin(AgentChangeNotice),
    /// The agent logged out.
    AgentLogout(AgentChangeNotice),
    /// Any other state change, Not Ready reasons and custom ones included.
    AgentState(AgentChangeNotice),
    /// A call of an interaction is over and its agent has wrapped it up.
    EndCall(EndCallNotice),
}

impl NoticeKind {
    /// The agent whose events must stay in order (the outbox lane).
    pub fn agent(&self) -> &str {
        match self {
            NoticeKind::AgentLogin(n) | NoticeKind::AgentLogout(n) | NoticeKind::AgentState(n) => {
                &n.agent_id
            }
            NoticeKind::EndCall(n) => &n.agent_id,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            NoticeKind::AgentLogin(_) => "agent-login",
            NoticeKind::AgentLogout(_) => "agent-logout",
            NoticeKind::AgentState(_) => "agent-state",
            NoticeKind::EndCall(_) => "end-call",
        }
    }
}

/// An agent's state as workforce management names it (Available, On Break, Away,
/// Lunch, Training, Engaged, Working, or a custom Not Ready reason), beside
/// the switch's own state and reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentChangeNotice {
    pub agent_id: String,
    pub agent_name: Option<String>,
    /// The switch's state: logged-out, ready, not-ready, engaged, working.
    pub state: String,
    /// Workforce management's name of it (`AgentState::wfm_name`).
    pub state_name: String,
    /// Not Ready's reason, as given.
    pub reason: Option<String>,
    pub previous_state: Option<String>,
    pub previous_state_name: Option<String>,
    /// How long the agent was in the previous state.
    pub previous_state_seconds: Option<u64>,
}

/// One voice call of an interaction, reported when its agent has wrapped
/// it up (so the disposition is known).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndCallNotice {
    /// The agent who took the call.
    pub agent_id: String,
    pub agent_name: Option<String>,
    pub interaction_id: String,
    pub call_id: String,
    pub queue_id: String,
    /// The contact's number the call dialled (E.164).
    pub contact_number: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When the contact answered; absent when it never did.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub ended_at: Timestamp,
    /// From the call's start to its end.
    pub duration_seconds: u64,
    /// Answered to ended, hold excluded.
    pub talk_seconds: u64,
    pub hold_seconds: u64,
    pub disposition: Option<String>,
    /// Where the WAV can be fetched (the switch's authenticated API).
    pub recording_url: Option<String>,
    /// Who hung up (agent, contact, switch) and the cause.
    pub ended_by: String,
    pub cause: String,
    /// Cause `transferred`: to whom (the user or number asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_type_is_a_flat_field() {
        let n = super::super::testkit::agent_notice(
            "ev-1",
            "2026-01-02T03:04:05Z".parse().unwrap(),
            "1001",
            NoticeKind::AgentLogin,
        );
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["eventType"], "agent-login");
        assert_eq!(v["agentId"], "1001");
        assert_eq!(v["eventId"], "ev-1");
        let back: Notice = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }
}
