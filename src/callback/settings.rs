//! The web-callback layer's settings, validated from `[callback]` in the
//! configuration (see `config::schema`). Option names are the API's
//! (`webcallback.*`, `login.webcallback.*`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the center needs from configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackSettings {
    /// The SQLite file (created with its folder when missing).
    pub database: PathBuf,
    /// How long an offer waits for accept or reject before it is redirected.
    pub offer_timeout: Duration,
    /// The registrar profile agents' phones register on.
    pub agent_profile: String,
    /// After Done, the agent goes back to Ready by itself (otherwise it
    /// stays Working until it says Ready).
    pub ready_after_done: bool,
    /// How long an `Idempotency-Key` is remembered.
    pub idempotency_window: Duration,
    /// How long an agent that rejected an interaction (or let its offer
    /// time out) is skipped for it.
    pub exclusion: Duration,
    /// Defaults of the `webcallback.*` options; routing data may override them.
    pub options: WebcallbackOptions,
    pub login: LoginOptions,
    /// By queue id. A request for a queue not listed is refused (422 queueId).
    pub queues: BTreeMap<String, QueueSettings>,
    /// By SIP user name.
    pub agents: BTreeMap<String, AgentSettings>,
    /// Workforce-management endpoints: the center commits an outbox row
    /// for each endpoint that wants an event it causes.
    pub notify: crate::integrations::notify::NotifySettings,
    /// The enrichment webhooks consulted before a create is accepted (the
    /// API's business; the center never reads it).
    pub enrichment: crate::integrations::enrich::EnrichSettings,
}

/// `webcallback.*` (docs/web-callbacks.md, Options), resolved per interaction.
#[derive(Debug, Clone, PartialEq)]
pub struct WebcallbackOptions {
    /// `webcallback.auto-answer`: accepted without the agent clicking.
    pub auto_answer: bool,
    /// `webcallback.auto-answer.timer`: seconds of preview before auto-answer.
    pub auto_answer_timer: Duration,
    /// `webcallback.auto-answer.enable-reject`: Reject shown during that preview.
    pub auto_answer_enable_reject: bool,
    /// `webcallback.auto-dial`: "Call this contact" done on accept.
    pub auto_dial: bool,
    /// `webcallback.callback-information.content`: the preview's fields, in order.
    pub callback_information_content: Vec<String>,
    /// `webcallback.complete-queue`
    pub complete_queue: String,
    /// `webcallback.park-queue`
    pub park_queue: String,
    /// `webcallback.reschedule-queue`
    pub reschedule_queue: String,
    /// Not Ready reason given to an agent whose offer timed out (`None`:
    /// the agent stays Ready).
    pub not_ready_on_offer_timeout: Option<String>,
}

/// `login.webcallback.*` (docs/web-callbacks.md, Options).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginOptions {
    /// `login.webcallback.is-auto-ready`
    pub is_auto_ready: bool,
    /// `login.webcallback.auto-not-ready-reason`: the reason when not auto-ready.
    pub auto_not_ready_reason: Option<String>,
    /// `login.webcallback.can-unactivate-channel`: whether the agent may log
    /// the channel out while interactions are open.
    pub can_unactivate_channel: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    pub id: String,
    /// Skills every agent of this queue must have (added to the request's).
    pub skills: Vec<String>,
    /// Business hours' zone (IANA); UTC when absent.
    pub time_zone: Option<String>,
    /// When callbacks may be placed; empty means always.
    pub business_hours: Vec<HoursWindow>,
    /// Whole days closed (holidays), in the queue's zone, sorted.
    pub closed_dates: Vec<jiff::civil::Date>,
    /// Customer-leg attempts before the callback ends as not reached.
    pub max_attempts: u32,
    pub retry: RetryPolicy,
    /// A callback not reached this long after it first fell due ends as not reached.
    pub expiry: Option<Duration>,
}

/// One opening window on some weekdays, in the queue's time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct HoursWindow {
    pub days: Vec<jiff::civil::Weekday>,
    pub start: jiff::civil::Time,
    /// Exclusive; after `start`.
    pub end: jiff::civil::Time,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub busy: Backoff,
    pub no_answer: Backoff,
    pub failed: Backoff,
}

/// The wait before attempt n+1: `delay * multiplier^(n-1)`, capped.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub delay: Duration,
    pub multiplier: f64,
    pub max_delay: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// SIP user name on the agent profile.
    pub id: String,
    pub name: Option<String>,
    pub team: Option<String>,
    pub skills: Vec<String>,
    pub privileges: Privileges,
}

/// The privileges (docs/web-callbacks.md). Every one but `use_channel` depends on it;
/// `reschedule_before_call` also needs `reschedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    pub use_channel: bool,
    pub decline: bool,
    pub set_disposition: bool,
    pub reschedule: bool,
    pub reschedule_before_call: bool,
    pub reschedule_on_new_number: bool,
    pub mark_done: bool,
    pub supervise: bool,
}

impl Default for Privileges {
    fn default() -> Self {
        Privileges {
            use_channel: true,
            decline: true,
            set_disposition: true,
            reschedule: true,
            reschedule_before_call: true,
            reschedule_on_new_number: true,
            mark_done: true,
            supervise: true,
        }
    }
}

/// A privilege's name as configured and as a 403 reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    UseChannel,
    Decline,
    SetDisposition,
    Reschedule,
    RescheduleBeforeCall,
    RescheduleOnNewNumber,
    MarkDone,
    /// Listen, whisper or barge in on another agent's connected callback.
    Supervise,
}

impl Privilege {
    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::UseChannel => "webcallback.can-use",
            Privilege::Decline => "webcallback.can-decline",
            Privilege::SetDisposition => "webcallback.can-set-interaction-disposition",
            Privilege::Reschedule => "webcallback.can-reschedule",
            Privilege::RescheduleBeforeCall => "webcallback.can-reschedule-before-call",
            Privilege::RescheduleOnNewNumber => "webcallback.can-reschedule-on-new-number",
            Privilege::MarkDone => "webcallback.can-mark-done",
            Privilege::Supervise => "webcallback.can-supervise",
        }
    }

    pub const ALL: [Privilege; 8] = [
        Privilege::UseChannel,
        Privilege::Decline,
        Privilege::SetDisposition,
        Privilege::Reschedule,
        Privilege::RescheduleBeforeCall,
        Privilege::RescheduleOnNewNumber,
        Privilege::MarkDone,
        Privilege::Supervise,
    ];

    pub fn parse(s: &str) -> Option<Privilege> {
        Privilege::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl Privileges {
    /// Whether the agent holds `p`, dependencies included.
    pub fn allows(&self, p: Privilege) -> bool {
        if !self.use_channel {
            return false;
        }
        match p {
            Privilege::UseChannel => true,
            Privilege::Decline => self.decline,
            Privilege::SetDisposition => self.set_disposition,
            Privilege::Reschedule => self.reschedule,
            Privilege::RescheduleBeforeCall => self.reschedule && self.reschedule_before_call,
            Privilege::RescheduleOnNewNumber => self.reschedule_on_new_number,
            Privilege::MarkDone => self.mark_done,
            Privilege::Supervise => self.supervise,
        }
    }
}
