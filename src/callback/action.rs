//! What the API asks of the center, and what it answers. The HTTP layer
//! turns requests into these and these into JSON; the center decides.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;

use super::model::{
    Agent, Callback, DesktopEvent, EnrichmentNote, HistoryEntry, InteractionId, State,
};
use super::request::CallbackRequest;
use super::settings::Privilege;
use crate::call::{Monitor, Party, Way};

/// A create as the center takes it: the validated request and, when the
/// enrichment webhook was consulted, what it did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewCallback {
    /// Built by `request::validate` from the API body (numbers in E.164,
    /// time in UTC).
    pub request: CallbackRequest,
    /// Set by the API when the enrichment webhook was consulted; the center
    /// records it in the new (or merged-into) interaction's history.
    pub enrichment: Option<EnrichmentNote>,
}

impl From<CallbackRequest> for NewCallback {
    /// A create the enrichment webhook was not consulted for.
    fn from(request: CallbackRequest) -> NewCallback {
        NewCallback {
            request,
            enrichment: None,
        }
    }
}

/// Who acts on a callback from outside an agent's desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Actor {
    Contact,
    Supervisor,
}

impl Actor {
    /// The wire name (`contact`, `supervisor`), as history entries say it.
    pub fn name(self) -> &'static str {
        match self {
            Actor::Contact => "contact",
            Actor::Supervisor => "supervisor",
        }
    }
}

// A request crosses one channel once; boxing the create would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Create {
        callback: NewCallback,
        idempotency_key: Option<String>,
    },
    /// What a create with this `Idempotency-Key` would return without
    /// creating anything: the first result, or [`Reply::NoReplay`]. Asked
    /// before work a replay must not repeat (the enrichment webhook).
    Replay {
        idempotency_key: String,
    },
    Cancel {
        id: InteractionId,
        by: Actor,
        reason: Option<String>,
    },
    /// By the contact or a supervisor (an agent uses `InteractionAction::Reschedule`).
    Reschedule {
        id: InteractionId,
        by: Actor,
        at: Timestamp,
        number: Option<String>,
    },
    /// The contact-facing status.
    Status {
        id: InteractionId,
    },
    Agent {
        agent: String,
        action: AgentAction,
    },
    AgentView {
        agent: String,
    },
    Interaction {
        id: InteractionId,
        agent: String,
        action: InteractionAction,
    },
    /// Schedule a callback while on a call: a new one for the contact of the agent's
    /// current call (number defaults to the one dialled).
    ScheduleForContact {
        agent: String,
        at: Option<Timestamp>,
        number: Option<String>,
        data: BTreeMap<String, String>,
    },
    /// The dialable list: callbacks an agent (or a team) may dial.
    Dialable {
        agent: Option<String>,
        team: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentAction {
    Login,
    Ready,
    NotReady { reason: Option<String> },
    Logout,
}

#[derive(Debug, Clone, PartialEq)]
pub enum InteractionAction {
    Accept,
    Reject,
    /// "Call this contact".
    Call,
    Hold,
    Retrieve,
    Mute,
    Unmute,
    Dtmf {
        digits: String,
    },
    StartRecording,
    StopRecording,
    /// Blind transfer of the voice call to a user or number.
    Transfer {
        to: String,
    },
    /// Consultation: the contact is held, `to` is called for the agent.
    Consult {
        to: String,
    },
    Alternate,
    CancelConsult,
    /// Attended transfer: the contact talks to the consulted party.
    CompleteTransfer,
    Conference,
    Remove {
        party: Party,
    },
    /// The agent drops out of the conference.
    Leave,
    Volume {
        party: Party,
        direction: Way,
        db: i8,
    },
    /// A supervisor (the acting agent, not the owner) joins the voice call
    /// from its own phone, or switches to this mode.
    Supervise {
        mode: Monitor,
    },
    EndCall,
    Done {
        disposition: Option<String>,
    },
    Reschedule {
        at: Timestamp,
        number: Option<String>,
    },
    Decline,
    MarkDone,
}

impl InteractionAction {
    pub fn name(&self) -> &'static str {
        match self {
            InteractionAction::Accept => "accept",
            InteractionAction::Reject => "reject",
            InteractionAction::Call => "call",
            InteractionAction::Hold => "hold",
            InteractionAction::Retrieve => "retrieve",
            InteractionAction::Mute => "mute",
            InteractionAction::Unmute => "unmute",
            InteractionAction::Dtmf { .. } => "dtmf",
            InteractionAction::StartRecording => "start-recording",
            InteractionAction::StopRecording => "stop-recording",
            InteractionAction::Transfer { .. } => "transfer",
            InteractionAction::Consult { .. } => "consult",
            InteractionAction::Alternate => "alternate",
            InteractionAction::CancelConsult => "cancel-consult",
            InteractionAction::CompleteTransfer => "complete-transfer",
            InteractionAction::Conference => "conference",
            InteractionAction::Remove { .. } => "remove",
            InteractionAction::Leave => "leave",
            InteractionAction::Volume { .. } => "volume",
            InteractionAction::Supervise { mode } => match mode {
                Monitor::Listen => "listen",
                Monitor::Whisper => "whisper",
                Monitor::Barge => "barge",
            },
            InteractionAction::EndCall => "end-call",
            InteractionAction::Done { .. } => "done",
            InteractionAction::Reschedule { .. } => "reschedule",
            InteractionAction::Decline => "decline",
            InteractionAction::MarkDone => "mark-done",
        }
    }
}

/// The contact-facing status: recomputed on every read.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactStatus {
    pub id: InteractionId,
    pub state: State,
    /// 1 is next; `None` once an agent has it or it is over.
    pub position: Option<u32>,
    /// Seconds until an agent is expected to call, from the queue's recent
    /// handling times and Ready agents.
    pub estimated_wait_secs: Option<u64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub callback_scheduled_time: Option<Timestamp>,
}

/// An agent as the desktop sees it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    #[serde(flatten)]
    pub agent: Agent,
    pub team: Option<String>,
    pub skills: Vec<String>,
    /// Interactions the agent owns now.
    pub interactions: Vec<InteractionId>,
    /// Whether a phone is registered for the agent.
    pub registered: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The created (or, for a retried or merged create, the existing) callback.
    Created {
        callback: Box<Callback>,
        /// false when an `Idempotency-Key` replay or a merge returned an existing one.
        new: bool,
    },
    /// An `Idempotency-Key` replay of a callback that is over: the center
    /// no longer holds it, the store does.
    Replayed(InteractionId),
    /// The key of a [`Request::Replay`] is not known (or past its window).
    NoReplay,
    Callback(Box<Callback>),
    Status(ContactStatus),
    Agent(Box<AgentView>),
    Callbacks(Vec<Callback>),
}

/// Why the center refused a request. The HTTP layer maps each to a status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// 404
    #[error("no callback {0}")]
    NoCallback(InteractionId),
    /// 404
    #[error("no agent {0}")]
    NoAgent(String),
    /// 403, naming the privilege.
    #[error("agent {agent} lacks privilege {}", privilege.as_str())]
    Forbidden { agent: String, privilege: Privilege },
    /// 403: the interaction belongs to another agent (or none).
    #[error("callback {id} is not {agent}'s")]
    NotOwner { id: InteractionId, agent: String },
    /// 409: the action does not fit the interaction's or agent's state.
    #[error("cannot {action} in state {state}")]
    WrongState { action: String, state: String },
    /// 422, naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 503: the call layer or the store could not take it.
    #[error("{0}")]
    Unavailable(String),
}

/// A history read (from the store): the record and its steps.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackWithHistory {
    #[serde(flatten)]
    pub callback: Callback,
    pub history: Vec<HistoryEntry>,
}

/// A list query (`GET /v1/callbacks`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListFilter {
    /// Any of these states (empty: all).
    pub states: Vec<State>,
    /// Matches the routing queue or the interaction queue it sits in now.
    pub queue: Option<String>,
    pub agent: Option<String>,
    /// `created_at` (or `due_at` when `by_due`) within [from, to).
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub by_due: bool,
    /// Page size (the store caps it at 500).
    pub limit: usize,
    /// The previous page's `next`.
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    pub items: Vec<Callback>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next: Option<String>,
}

/// A boxed future, so the reads can sit behind a trait object.
pub type ReadFuture<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, ReadError>> + Send + 'static>>;

/// Why a read failed: the reader's own error (the store's, which this
/// layer cannot name: the store sits above it), shown as it is.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ReadError {
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl ReadError {
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        ReadError {
            source: source.into(),
        }
    }
}

/// Reads the API serves straight from the store, without the center.
pub trait CallbackReads: Send + Sync + 'static {
    fn callback(&self, id: InteractionId) -> ReadFuture<Option<CallbackWithHistory>>;
    fn list(&self, filter: ListFilter) -> ReadFuture<Page>;
    /// Desktop events with `seq > after`, oldest first, at most `limit`.
    fn desktop_events_after(&self, after: u64, limit: usize) -> ReadFuture<Vec<DesktopEvent>>;
}

/// One request to the center's task, answered once its writes are committed.
#[derive(Debug)]
pub struct CenterRequest {
    pub request: Request,
    pub reply: tokio::sync::oneshot::Sender<Result<Reply, ActionError>>,
}
