//! The web-callback domain's records: what the store keeps and the API shows.
//!
//! A callback request becomes one [`Callback`] (the interaction) that lives
//! until it is done, cancelled, declined, parked or not reached; its
//! [`HistoryEntry`]s record every step. Agents are SIP users with a login
//! ([`Agent`]). Every change the desktop sees is a numbered [`DesktopEvent`].
//! Times are UTC [`Timestamp`]s; a contact's time zone is kept for display
//! and business hours only.

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

pub use super::call_record::CallRecord;
use super::request::CallbackRequest;

/// An interaction's id: `cb-`, the creation time in milliseconds (12 hex
/// digits) and 32 random bits (8 hex digits). Ids that grow with time keep
/// the store's index inserts at its end instead of scattered over it, which
/// halves what each creation writes.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
#[schema(value_type = String, example = "cb-00000000000000a1")]
pub struct InteractionId(pub String);

impl InteractionId {
    pub fn generate() -> Self {
        let ms = jiff::Timestamp::now().as_millisecond().max(0);
        InteractionId(format!("cb-{ms:012x}{:08x}", rand::random::<u32>()))
    }
}

impl fmt::Display for InteractionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an interaction is in its life (docs/web-callbacks.md, States).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Waiting for its scheduled time (or a retry's back-off).
    Scheduled,
    /// Due, waiting for a Ready agent.
    Queued,
    /// Shown to one agent (preview), waiting for accept, reject or time-out.
    Offered,
    /// Accepted by its agent; no voice call up.
    ReadyToCall,
    /// The voice call is being placed (agent leg, then customer leg).
    Establishing,
    Connected,
    OnHold,
    /// Moved to the reschedule queue for a new time; due again later.
    Rescheduled,
    /// Its voice call was transferred; kept in the park queue.
    Parked,
    /// Processed, with a disposition (complete queue).
    Done,
    /// Cancelled by the contact or a supervisor.
    Cancelled,
    /// Attempts or time ran out before the contact was reached.
    NotReached,
    /// The agent declined it.
    Declined,
}

impl State {
    /// No further change: the interaction leaves the live set.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            State::Parked | State::Done | State::Cancelled | State::NotReached | State::Declined
        )
    }

    /// Waiting in a queue for its time or an agent (what the contact's
    /// status reports a position for).
    pub fn is_waiting(self) -> bool {
        matches!(self, State::Scheduled | State::Queued | State::Rescheduled)
    }

    /// An agent owns it (offered or accepted, with or without a call).
    pub fn is_with_agent(self) -> bool {
        matches!(
            self,
            State::Offered
                | State::ReadyToCall
                | State::Establishing
                | State::Connected
                | State::OnHold
        )
    }

    /// The wire name (`ready-to-call`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Scheduled => "scheduled",
            State::Queued => "queued",
            State::Offered => "offered",
            State::ReadyToCall => "ready-to-call",
            State::Establishing => "establishing",
            State::Connected => "connected",
            State::OnHold => "on-hold",
            State::Rescheduled => "rescheduled",
            State::Parked => "parked",
            State::Done => "done",
            State::Cancelled => "cancelled",
            State::NotReached => "not-reached",
            State::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        ALL_STATES.iter().copied().find(|st| st.as_str() == s)
    }
}

pub const ALL_STATES: [State; 13] = [
    State::Scheduled,
    State::Queued,
    State::Offered,
    State::ReadyToCall,
    State::Establishing,
    State::Connected,
    State::OnHold,
    State::Rescheduled,
    State::Parked,
    State::Done,
    State::Cancelled,
    State::NotReached,
    State::Declined,
];

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a callback is routed (the request's `routingData`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", default)]
pub struct RoutingData {
    /// Every skill listed is required of the agent.
    pub skills: Vec<String>,
    /// Agents tried first (when Ready), in this order.
    pub preferred_agents: Vec<String>,
    /// Higher is offered first; ties go to the earlier due time.
    pub priority: i32,
    /// `webcallback.*` option overrides, as a routing strategy would set
    /// them (`"webcallback.auto-answer": true`).
    pub options: BTreeMap<String, serde_json::Value>,
}

/// One web-callback interaction (the durable record): the request as it
/// stands now, and where the interaction is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Callback {
    pub id: InteractionId,
    /// What was asked for; its fields are the record's own in JSON.
    #[serde(flatten)]
    pub request: CallbackRequest,
    /// The interaction queue it sits in now (the routing queue, or the
    /// complete, reschedule or park queue).
    pub interaction_queue: String,
    pub state: State,
    /// When it may next be offered (scheduled time, retry back-off).
    #[schema(value_type = String, format = DateTime)]
    pub due_at: Timestamp,
    /// After this it ends as not reached.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    /// Customer-leg calls placed so far.
    pub attempts: u32,
    /// The agent that owns it (offered or accepted).
    pub agent: Option<String>,
    /// The voice call in progress, if any.
    pub call_id: Option<String>,
    /// The number the current or last attempt dialled.
    pub dialled_number: Option<String>,
    pub disposition: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Its voice calls, oldest first, each with its figures and whether
    /// its end-call event was committed yet (records stored before this
    /// field existed read as none).
    #[serde(default)]
    pub calls: Vec<CallRecord>,
}

impl Callback {
    /// A new interaction for `request`, created at `now`: scheduled, due
    /// at `now`, in its routing queue, with no agent, call or attempt yet.
    pub fn new(id: InteractionId, request: CallbackRequest, now: Timestamp) -> Callback {
        Callback {
            id,
            interaction_queue: request.queue_id.clone(),
            request,
            state: State::Scheduled,
            due_at: now,
            expires_at: None,
            attempts: 0,
            agent: None,
            call_id: None,
            dialled_number: None,
            disposition: None,
            created_at: now,
            updated_at: now,
            calls: Vec::new(),
        }
    }
}

/// One step in an interaction's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: HistoryKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum HistoryKind {
    /// Accepted through the API (`merged` when a later duplicate joined it).
    Created {
        by: String,
    },
    /// A second request for the same number and queue was folded into this one.
    Merged {
        request: serde_json::Value,
    },
    StateChanged {
        from: State,
        to: State,
        reason: String,
    },
    Offered {
        agent: String,
    },
    Accepted {
        agent: String,
    },
    Rejected {
        agent: String,
    },
    OfferTimedOut {
        agent: String,
    },
    /// A voice call was placed for this interaction.
    Attempt {
        attempt: u32,
        number: String,
        call: String,
        agent: String,
    },
    /// A leg of the voice call progressed or failed.
    Leg {
        call: String,
        leg: String,
        event: String,
        status: Option<u16>,
    },
    CallEnded {
        call: String,
        by: String,
        cause: String,
        status: Option<u16>,
    },
    /// A call control the agent used (hold, mute, dtmf, recording, transfer).
    Control {
        call: String,
        action: String,
        detail: Option<String>,
    },
    Disposition {
        agent: String,
        code: String,
    },
    Rescheduled {
        by: String,
        /// The new time. Not `at` on the wire: the entry's own `at` (the
        /// flattened [`HistoryEntry`]) already has that name.
        #[serde(rename = "callbackScheduledTime")]
        #[schema(value_type = String, format = DateTime)]
        at: Timestamp,
        number: Option<String>,
    },
    Cancelled {
        by: String,
        reason: Option<String>,
    },
    /// The switch restarted while the interaction was in `from`.
    Recovered {
        from: State,
    },
    /// The enrichment webhook was consulted before the request was
    /// accepted: what it changed, or why the request went on as sent.
    Enrichment {
        outcome: EnrichmentOutcome,
        detail: String,
        /// Fields the answer changed (`queueId`, `data.tier`, `routingData.skills`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changed: Vec<String>,
    },
}

// `EnrichmentOutcome` and `EnrichmentNote` are the enrichment boundary's
// own types (`integrations::enrich`), re-exported here for the history.
pub use crate::integrations::enrich::{EnrichmentNote, EnrichmentOutcome};

impl From<EnrichmentNote> for HistoryKind {
    fn from(n: EnrichmentNote) -> Self {
        HistoryKind::Enrichment {
            outcome: n.outcome,
            detail: n.detail,
            changed: n.changed,
        }
    }
}

/// An agent's state (docs/web-callbacks.md, Agents; Not Ready carries a reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    LoggedOut,
    Ready,
    NotReady,
    /// On a voice call.
    Engaged,
    /// After-call work.
    Working,
}

impl AgentState {
    /// Workforce management's label of a state (docs/notifications.md):
    /// Ready is "Available", Not Ready is its reason (or "Not Ready"
    /// without one), the others as they are.
    pub fn wfm_name(self, reason: Option<&str>) -> String {
        match self {
            AgentState::LoggedOut => "Logged Out".into(),
            AgentState::Ready => "Available".into(),
            AgentState::NotReady => reason.unwrap_or("Not Ready").to_string(),
            AgentState::Engaged => "Engaged".into(),
            AgentState::Working => "Working".into(),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged-out",
            AgentState::Ready => "ready",
            AgentState::NotReady => "not-ready",
            AgentState::Engaged => "engaged",
            AgentState::Working => "working",
        }
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent's durable record (configuration gives skills and privileges).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// The SIP user name on the internal profile.
    pub id: String,
    pub state: AgentState,
    /// Not Ready's reason (On Break, Away, Lunch, Training or custom).
    pub reason: Option<String>,
    /// When the state was entered.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
    /// When the agent last became free (longest idle first).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub idle_since: Option<Timestamp>,
}

/// A numbered change the desktop stream carries; a desktop that reconnects
/// with its last `seq` is sent everything after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DesktopEvent {
    pub seq: u64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: DesktopEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DesktopEventKind {
    Interaction {
        id: InteractionId,
        state: State,
        agent: Option<String>,
        queue: String,
        reason: String,
    },
    /// An interaction offered to `agent`, with its preview.
    Offer {
        id: InteractionId,
        agent: String,
        /// `webcallback.callback-information.content`'s fields, in its order.
        preview: Vec<PreviewField>,
        /// The auto-answer timer; `null` without auto-answer. (Stored
        /// events from before the rename read back by their old names.)
        #[serde(rename = "autoAnswerSecs", alias = "auto_answer_secs")]
        auto_answer_secs: Option<u64>,
        #[serde(rename = "canReject", alias = "can_reject")]
        can_reject: bool,
    },
    Agent {
        agent: String,
        state: AgentState,
        reason: Option<String>,
    },
    /// A step of the voice call's consultation: `started` (detail: who),
    /// `ringing`, `answered`, `failed` (detail: the cause), `alternated`
    /// (detail: who talks to the agent now), `conferenced`, `party-left`
    /// (detail: the party), `ended` (detail: why), `transferred` (detail:
    /// to whom).
    Consultation {
        id: InteractionId,
        agent: Option<String>,
        step: String,
        detail: Option<String>,
    },
}

/// One line of an offer's preview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PreviewField {
    pub name: String,
    pub value: String,
}

/// What the center asks the store to commit, in one transaction, before
/// anyone is answered or any call is placed.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert or replace the interaction's record.
    Callback(Box<Callback>),
    History(InteractionId, HistoryEntry),
    Agent(Agent),
    Desktop(DesktopEvent),
    /// `Idempotency-Key` → the interaction it created (kept 24 h).
    Idempotency {
        key: String,
        id: InteractionId,
        at: Timestamp,
    },
    /// A notification outbox row (committed with the change it reports).
    Outbox(crate::integrations::notify::OutboxWrite),
}

/// The one-line rendering on the binary's stdout (`event offer id=...`).
impl fmt::Display for DesktopEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DesktopEventKind::Interaction {
                id,
                state,
                agent,
                queue,
                reason,
            } => write!(
                f,
                "interaction seq={} id={id} state={state} queue={queue} agent={} reason={:?}",
                self.seq,
                agent.as_deref().unwrap_or("-"),
                reason
            ),
            DesktopEventKind::Offer {
                id,
                agent,
                auto_answer_secs,
                can_reject,
                ..
            } => write!(
                f,
                "offer seq={} id={id} agent={agent} auto_answer={} can_reject={can_reject}",
                self.seq,
                auto_answer_secs.map_or("-".to_string(), |s| s.to_string())
            ),
            DesktopEventKind::Agent {
                agent,
                state,
                reason,
            } => write!(
                f,
                "agent-state seq={} agent={agent} state={state} reason={:?}",
                self.seq,
                reason.as_deref().unwrap_or("")
            ),
            DesktopEventKind::Consultation {
                id,
                agent,
                step,
                detail,
            } => write!(
                f,
                "consultation seq={} id={id} agent={} step={step} detail={}",
                self.seq,
                agent.as_deref().unwrap_or("-"),
                detail.as_deref().unwrap_or("-")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_state_names_follow_document_004() {
        assert_eq!(AgentState::Ready.wfm_name(None), "Available");
        assert_eq!(AgentState::NotReady.wfm_name(Some("Lunch")), "Lunch");
        assert_eq!(AgentState::NotReady.wfm_name(None), "Not Ready");
        assert_eq!(AgentState::Engaged.wfm_name(None), "Engaged");
        assert_eq!(AgentState::Working.wfm_name(None), "Working");
    }

    /// Every field of an entry has its own JSON name, so what the store
    /// writes reads back (a `rescheduled` entry once wrote `at` twice).
    /// The offer's fields are camelCase like the rest of the API; an event
    /// stored under the old snake_case names still reads back.
    #[test]
    fn offer_fields_are_camel_case_and_old_rows_read_back() {
        let event = DesktopEvent {
            seq: 7,
            at: "2025-03-01T09:00:00Z".parse().unwrap(),
            kind: DesktopEventKind::Offer {
                id: InteractionId("cb-1".into()),
                agent: "1001".into(),
                preview: Vec::new(),
                auto_answer_secs: Some(30),
                can_reject: false,
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["autoAnswerSecs"], 30, "{json}");
        assert_eq!(json["canReject"], false, "{json}");
        assert!(json.get("auto_answer_secs").is_none(), "{json}");
        assert!(json.get("can_reject").is_none(), "{json}");
        let old = r#"{"seq":7,"at":"2025-03-01T09:00:00Z","type":"offer","id":"cb-1","agent":"1001","preview":[],"auto_answer_secs":30,"can_reject":false}"#;
        assert_eq!(serde_json::from_str::<DesktopEvent>(old).unwrap(), event);
    }

    #[test]
    fn a_rescheduled_entry_reads_back() {
        let entry = HistoryEntry {
            at: Timestamp::from_second(1_700_000_000).unwrap(),
            kind: HistoryKind::Rescheduled {
                by: "agent 1001".into(),
                at: Timestamp::from_second(1_700_000_600).unwrap(),
                number: Some("+33698765432".into()),
            },
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["at"], "2023-11-14T22:13:20Z", "{json}");
        assert_eq!(
            json["callbackScheduledTime"], "2023-11-14T22:23:20Z",
            "{json}"
        );
        let text = serde_json::to_string(&entry).unwrap();
        let back: HistoryEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(back, entry);
    }

    #[test]
    fn an_enrichment_entry_reads_back() {
        let note = EnrichmentNote {
            outcome: EnrichmentOutcome::Enriched,
            detail: "changed queueId".into(),
            changed: vec!["queueId".into()],
        };
        let entry = HistoryEntry {
            at: Timestamp::from_second(1_700_000_000).unwrap(),
            kind: note.into(),
        };
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["type"], "enrichment", "{json}");
        assert_eq!(json["outcome"], "enriched", "{json}");
        assert_eq!(json["changed"], serde_json::json!(["queueId"]), "{json}");
        let back: HistoryEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back, entry);
    }
}
