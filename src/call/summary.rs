//! The published view of a live call: what the session table holds for
//! readers outside the call layer (the HTTP API, the interaction layer).
//!
//! The call layer owns the working state; after every change it publishes a
//! fresh immutable summary, so a reader on any task sees a consistent call
//! without locking the call layer or holding anything across an `.await`.

use serde::Serialize;

use super::command::{CallId, LegRole};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallState {
    /// Legs are being placed; nobody has answered yet.
    Setup,
    /// The first leg answered; the second is being placed (originated calls).
    Connecting,
    /// Two legs are bridged.
    Bridged,
    /// Hangup in progress.
    Ending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LegState {
    Calling,
    Ringing,
    EarlyMedia,
    Answered,
    Ending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegSummary {
    pub role: LegRole,
    pub state: LegState,
    /// Who the leg reaches (user, number or peer).
    pub target: String,
    pub profile: String,
    /// The leg's SIP dialog as the switch sees it.
    pub sip_call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    /// The relay's id for this leg's media (for counters).
    pub media_leg: u64,
    pub rtp_port: u16,
    pub held_by_switch: bool,
    pub held_by_phone: bool,
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallSummary {
    pub id: CallId,
    pub interaction: Option<String>,
    pub state: CallState,
    pub from: String,
    pub to: String,
    pub legs: Vec<LegSummary>,
    pub recording: Option<String>,
    pub recording_paused: bool,
    /// Unix milliseconds.
    pub started_at_ms: u64,
    pub answered_at_ms: Option<u64>,
}
