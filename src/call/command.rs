//! What the layer above (the web-callback interactions, the HTTP API) asks of
//! the call layer, and what the call layer reports back.
//!
//! Commands name a call by its [`CallId`] and a leg by its role in the call
//! (`a`, `b`, or a transfer target `c`), never by SIP identifiers: the layer
//! above knows calls, not dialogs. Every command that changes a call has an
//! event that says it happened, so a desktop can follow a call from events
//! alone. Each event prints as one `key=value` line (the binary's stdout).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A call's id: stable for its whole life, also across transfers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallId(pub String);

impl CallId {
    pub fn generate() -> Self {
        CallId(format!(
            "c{:012x}",
            rand::random::<u64>() & 0xffff_ffff_ffff
        ))
    }
}

impl From<String> for CallId {
    fn from(id: String) -> Self {
        CallId(id)
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A leg's part in its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LegRole {
    /// The caller of an inbound call, or the first leg the switch placed (the agent).
    A,
    /// The callee, or the second leg the switch placed (the contact).
    B,
    /// A transfer target, or a consultation.
    C,
    /// A supervisor listening, whispering or barging in.
    S,
}

impl fmt::Display for LegRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LegRole::A => "a",
            LegRole::B => "b",
            LegRole::C => "c",
            LegRole::S => "s",
        })
    }
}

impl std::str::FromStr for LegRole {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "a" => Ok(LegRole::A),
            "b" => Ok(LegRole::B),
            "c" => Ok(LegRole::C),
            "s" => Ok(LegRole::S),
            _ => Err(()),
        }
    }
}

/// A request from the layer above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    /// Call `a`; when it answers, call `b`; bridge them. `a` and `b` are
    /// numbers or user names, routed by the dial plan.
    Originate(Originate),
    Hangup {
        call: CallId,
    },
    Hold {
        call: CallId,
        leg: LegRole,
    },
    Retrieve {
        call: CallId,
        leg: LegRole,
    },
    Mute {
        call: CallId,
        leg: LegRole,
    },
    Unmute {
        call: CallId,
        leg: LegRole,
    },
    /// RFC 4733 digits generated into `leg`.
    SendDtmf {
        call: CallId,
        leg: LegRole,
        digits: String,
    },
    StartRecording {
        call: CallId,
    },
    PauseRecording {
        call: CallId,
    },
    ResumeRecording {
        call: CallId,
    },
    StopRecording {
        call: CallId,
    },
    /// Blind transfer by the switch: `leg`'s far party (the leg bridged to
    /// it) is taken to `to` (routed by the dial plan) as a new leg `c`, and
    /// `leg` is hung up once `c` answers (`Transferred`); if `c` fails, the
    /// call stays as it was (`TransferFailed`).
    Transfer {
        call: CallId,
        leg: LegRole,
        to: String,
    },
    /// Consultation (`consult`): `leg` is the agent; its far party (the
    /// contact) is held by the switch and a new leg `c` calls `to` (routed
    /// by the dial plan); when it answers, the agent talks to it.
    Consult {
        call: CallId,
        leg: LegRole,
        to: String,
    },
    /// Swap which of the contact and the consulted party talks to the agent
    /// (the other is held).
    Alternate {
        call: CallId,
    },
    /// The consultation leg is hung up and the contact retrieved.
    CancelConsult {
        call: CallId,
    },
    /// Attended transfer: the contact talks to the consulted party and the
    /// agent's leg is hung up (`Transferred { attended: true }`).
    CompleteTransfer {
        call: CallId,
    },
    /// Agent, contact and the consulted party hear each other (a room).
    Conference {
        call: CallId,
    },
    /// One party of a consultation or a conference is hung up; the other two
    /// stay bridged.
    Remove {
        call: CallId,
        party: Party,
    },
    /// The agent drops out of a conference; `others` says whether the other
    /// two stay bridged.
    Leave {
        call: CallId,
        others: Others,
    },
    /// A supervisor on the call: with `to`, its phone is called and joins
    /// the call's room in `mode` once it answers; without, the supervisor
    /// already there switches to `mode` (nobody hears a switch).
    Supervise {
        call: CallId,
        mode: Monitor,
        to: Option<String>,
    },
    /// Gain applied in the relay to what `party` says (`In`) or hears
    /// (`Out`), -12..=12 dB. A two-party call is taken into a room of two.
    Volume {
        call: CallId,
        party: Party,
        direction: Way,
        db: i8,
    },
}

/// A party of a consultation or conference, as the desktop names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Party {
    /// The leg that started the consultation (leg `a` of a callback).
    Agent,
    /// Its far party (leg `b` of a callback).
    Contact,
    /// The consultation leg (`c`).
    Consulted,
    /// A supervisor's leg (`s`).
    Supervisor,
}

/// How a supervisor takes part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Monitor {
    /// Hears everyone, heard by no one.
    Listen,
    /// Hears everyone, heard by the agent only.
    Whisper,
    /// A full party.
    Barge,
}

impl fmt::Display for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Monitor::Listen => "listen",
            Monitor::Whisper => "whisper",
            Monitor::Barge => "barge",
        })
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Party::Agent => "agent",
            Party::Contact => "contact",
            Party::Consulted => "consulted",
            Party::Supervisor => "supervisor",
        })
    }
}

impl std::str::FromStr for Party {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "agent" => Ok(Party::Agent),
            "contact" => Ok(Party::Contact),
            "consulted" => Ok(Party::Consulted),
            "supervisor" => Ok(Party::Supervisor),
            _ => Err(()),
        }
    }
}

/// Whether the others stay when the agent leaves a conference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Others {
    Stay,
    HangUp,
    /// Stay if one of them is an internal party (a registered user, not a
    /// trunk peer): the default.
    #[default]
    StayIfInternal,
}

/// Which way a volume applies: to what a party says, or what it hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Way {
    In,
    Out,
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Way::In => "in",
            Way::Out => "out",
        })
    }
}

impl std::str::FromStr for Way {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "in" => Ok(Way::In),
            "out" => Ok(Way::Out),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Originate {
    /// The id to use (the layer above may want to know it before events flow).
    pub call: Option<CallId>,
    pub a: String,
    pub b: String,
    /// The interaction that owns the call.
    pub interaction: Option<String>,
    /// Ask the `a` phone to answer by itself (Call-Info answer-after=0, Alert-Info).
    pub auto_answer: bool,
    /// Case data: headers put on both legs' INVITEs (only names the profile allows).
    pub headers: Vec<(String, String)>,
    /// Caller ID shown to `b` (default: the profile's outbound rule or `a`).
    pub caller_id: Option<String>,
    /// The display name of `b`'s From (default: none, or the gateway
    /// profile's `caller_id_name` where its `caller_id_number` applies).
    pub caller_id_name: Option<String>,
}

/// Why a command could not be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no call {0}")]
    NoCall(CallId),
    #[error("call {0} has no leg {1}")]
    NoLeg(CallId, LegRole),
    #[error("call {0} already exists")]
    CallExists(CallId),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("leg {1} of call {0} is not answered")]
    NotAnswered(CallId, LegRole),
    #[error("{0}")]
    Busy(String),
    /// The command makes no sense in the call's state (`state` names it:
    /// `two-party`, `consult-ringing`, `consulting`, `conferenced`,
    /// `transferring`).
    #[error("call {call} is {state}: {why}")]
    WrongState {
        call: CallId,
        state: &'static str,
        why: &'static str,
    },
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EndedBy {
    A,
    B,
    C,
    /// The switch: a command, a timeout, a failure.
    Switch,
}

impl From<LegRole> for EndedBy {
    fn from(r: LegRole) -> Self {
        match r {
            LegRole::A => EndedBy::A,
            LegRole::B => EndedBy::B,
            LegRole::C => EndedBy::C,
            // A supervisor's leg never ends the call.
            LegRole::S => EndedBy::Switch,
        }
    }
}

impl fmt::Display for EndedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndedBy::A => "a",
            EndedBy::B => "b",
            EndedBy::C => "c",
            EndedBy::Switch => "switch",
        })
    }
}

/// Progress of one leg, as the layer above sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Progress {
    Trying,
    Ringing,
    EarlyMedia,
    Answered,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Progress::Trying => "trying",
            Progress::Ringing => "ringing",
            Progress::EarlyMedia => "early-media",
            Progress::Answered => "answered",
        })
    }
}

/// How a leg failed, mapped from its SIP final response or timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    Busy,
    NoAnswer,
    Rejected,
    Cancelled,
    NotFound,
    Unavailable,
    Failed,
}

impl Failure {
    pub fn from_status(code: u16) -> Self {
        match code {
            486 | 600 => Failure::Busy,
            408 | 480 => Failure::NoAnswer,
            487 => Failure::Cancelled,
            404 | 484 | 604 => Failure::NotFound,
            403 | 603 => Failure::Rejected,
            503 => Failure::Unavailable,
            _ => Failure::Failed,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Failure::Busy => "busy",
            Failure::NoAnswer => "no-answer",
            Failure::Rejected => "rejected",
            Failure::Cancelled => "cancelled",
            Failure::NotFound => "not-found",
            Failure::Unavailable => "unavailable",
            Failure::Failed => "failed",
        })
    }
}

/// Something that happened to a call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum CallEvent {
    /// A call exists: an INVITE was routed, or an origination started.
    Started {
        call: CallId,
        interaction: Option<String>,
        from: String,
        to: String,
    },
    /// A leg's progress: trying, ringing, early media, answered.
    Leg {
        call: CallId,
        leg: LegRole,
        progress: Progress,
    },
    /// A leg failed before answering.
    LegFailed {
        call: CallId,
        leg: LegRole,
        status: u16,
        failure: Failure,
    },
    /// Two legs' media flow through the relay to each other.
    Bridged {
        call: CallId,
        a: LegRole,
        b: LegRole,
    },
    Held {
        call: CallId,
        leg: LegRole,
        by_switch: bool,
    },
    Retrieved {
        call: CallId,
        leg: LegRole,
        by_switch: bool,
    },
    Muted {
        call: CallId,
        leg: LegRole,
    },
    Unmuted {
        call: CallId,
        leg: LegRole,
    },
    /// A digit from a leg (RFC 4733 or SIP INFO).
    Dtmf {
        call: CallId,
        leg: LegRole,
        digit: char,
        duration_ms: u32,
        via: &'static str,
    },
    DtmfSent {
        call: CallId,
        leg: LegRole,
        digits: String,
    },
    RecordingStarted {
        call: CallId,
        path: PathBuf,
    },
    RecordingPaused {
        call: CallId,
    },
    RecordingResumed {
        call: CallId,
    },
    RecordingStopped {
        call: CallId,
        path: PathBuf,
    },
    /// The leg `by` transferred the call: its far party now talks to `to`.
    Transferred {
        call: CallId,
        by: LegRole,
        to: String,
        attended: bool,
    },
    /// A transfer was attempted and failed; the call stays as it was.
    TransferFailed {
        call: CallId,
        by: LegRole,
        status: u16,
    },
    /// A consultation started: `by`'s far party is held, `to` is called.
    ConsultStarted {
        call: CallId,
        by: LegRole,
        to: String,
    },
    /// The consultation leg rings or answered.
    ConsultProgress {
        call: CallId,
        progress: Progress,
    },
    /// The consultation leg failed; the agent talks to the contact again.
    ConsultFailed {
        call: CallId,
        status: u16,
        failure: Failure,
    },
    /// The consultation is over without a transfer (`cancelled`,
    /// `hangup` of the consulted party, `removed`); the agent talks to the
    /// contact again.
    ConsultEnded {
        call: CallId,
        reason: &'static str,
    },
    /// `talking` now talks to the agent; the other party is held.
    Alternated {
        call: CallId,
        talking: Party,
    },
    /// Agent, contact and consulted party hear each other.
    Conferenced {
        call: CallId,
    },
    /// A party left a consultation or conference (`reason`: `removed`,
    /// `left`, `hangup`); the two others stay bridged.
    PartyLeft {
        call: CallId,
        party: Party,
        reason: &'static str,
    },
    /// A supervisor's leg answered and joined in `mode`, or switched to it.
    Supervised {
        call: CallId,
        mode: Monitor,
    },
    /// The supervisor's leg is gone (hung up, removed or failed).
    SupervisorLeft {
        call: CallId,
    },
    /// A gain is set in the relay.
    VolumeSet {
        call: CallId,
        party: Party,
        direction: Way,
        db: i8,
    },
    /// A leg stopped sending media (or failed its session refresh).
    LegLost {
        call: CallId,
        leg: LegRole,
        reason: &'static str,
    },
    /// The call is over: every leg is down.
    Ended {
        call: CallId,
        by: EndedBy,
        cause: String,
        status: Option<u16>,
    },
}

impl CallEvent {
    pub fn call(&self) -> &CallId {
        match self {
            CallEvent::Started { call, .. }
            | CallEvent::Leg { call, .. }
            | CallEvent::LegFailed { call, .. }
            | CallEvent::Bridged { call, .. }
            | CallEvent::Held { call, .. }
            | CallEvent::Retrieved { call, .. }
            | CallEvent::Muted { call, .. }
            | CallEvent::Unmuted { call, .. }
            | CallEvent::Dtmf { call, .. }
            | CallEvent::DtmfSent { call, .. }
            | CallEvent::RecordingStarted { call, .. }
            | CallEvent::RecordingPaused { call }
            | CallEvent::RecordingResumed { call }
            | CallEvent::RecordingStopped { call, .. }
            | CallEvent::Transferred { call, .. }
            | CallEvent::TransferFailed { call, .. }
            | CallEvent::ConsultStarted { call, .. }
            | CallEvent::ConsultProgress { call, .. }
            | CallEvent::ConsultFailed { call, .. }
            | CallEvent::ConsultEnded { call, .. }
            | CallEvent::Alternated { call, .. }
            | CallEvent::Conferenced { call }
            | CallEvent::PartyLeft { call, .. }
            | CallEvent::VolumeSet { call, .. }
            | CallEvent::Supervised { call, .. }
            | CallEvent::SupervisorLeft { call }
            | CallEvent::LegLost { call, .. }
            | CallEvent::Ended { call, .. } => call,
        }
    }
}

impl fmt::Display for CallEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallEvent::Started {
                call,
                interaction,
                from,
                to,
            } => {
                write!(f, "call-started call={call} from={from} to={to}")?;
                if let Some(i) = interaction {
                    write!(f, " interaction={i}")?;
                }
                Ok(())
            }
            CallEvent::Leg {
                call,
                leg,
                progress,
            } => write!(f, "call-leg call={call} leg={leg} progress={progress}"),
            CallEvent::LegFailed {
                call,
                leg,
                status,
                failure,
            } => write!(
                f,
                "call-leg-failed call={call} leg={leg} status={status} failure={failure}"
            ),
            CallEvent::Bridged { call, a, b } => write!(f, "call-bridged call={call} legs={a},{b}"),
            CallEvent::Held {
                call,
                leg,
                by_switch,
            } => write!(f, "call-held call={call} leg={leg} by={}", by(*by_switch)),
            CallEvent::Retrieved {
                call,
                leg,
                by_switch,
            } => write!(
                f,
                "call-retrieved call={call} leg={leg} by={}",
                by(*by_switch)
            ),
            CallEvent::Muted { call, leg } => write!(f, "call-muted call={call} leg={leg}"),
            CallEvent::Unmuted { call, leg } => write!(f, "call-unmuted call={call} leg={leg}"),
            CallEvent::Dtmf {
                call,
                leg,
                digit,
                duration_ms,
                via,
            } => write!(
                f,
                "call-dtmf call={call} leg={leg} digit={digit} duration_ms={duration_ms} via={via}"
            ),
            CallEvent::DtmfSent { call, leg, digits } => {
                write!(f, "call-dtmf-sent call={call} leg={leg} digits={digits}")
            }
            CallEvent::RecordingStarted { call, path } => {
                write!(f, "recording-started call={call} path={}", path.display())
            }
            CallEvent::RecordingPaused { call } => write!(f, "recording-paused call={call}"),
            CallEvent::RecordingResumed { call } => write!(f, "recording-resumed call={call}"),
            CallEvent::RecordingStopped { call, path } => {
                write!(f, "recording-stopped call={call} path={}", path.display())
            }
            CallEvent::Transferred {
                call,
                by,
                to,
                attended,
            } => write!(
                f,
                "call-transferred call={call} by={by} to={to} kind={}",
                if *attended { "attended" } else { "blind" }
            ),
            CallEvent::TransferFailed { call, by, status } => {
                write!(
                    f,
                    "call-transfer-failed call={call} by={by} status={status}"
                )
            }
            CallEvent::ConsultStarted { call, by, to } => {
                write!(f, "call-consult call={call} by={by} to={to}")
            }
            CallEvent::ConsultProgress { call, progress } => {
                write!(f, "call-consult-progress call={call} progress={progress}")
            }
            CallEvent::ConsultFailed {
                call,
                status,
                failure,
            } => write!(
                f,
                "call-consult-failed call={call} status={status} failure={failure}"
            ),
            CallEvent::ConsultEnded { call, reason } => {
                write!(f, "call-consult-ended call={call} reason={reason}")
            }
            CallEvent::Alternated { call, talking } => {
                write!(f, "call-alternated call={call} talking={talking}")
            }
            CallEvent::Conferenced { call } => write!(f, "call-conferenced call={call}"),
            CallEvent::PartyLeft {
                call,
                party,
                reason,
            } => write!(
                f,
                "call-party-left call={call} party={party} reason={reason}"
            ),
            CallEvent::Supervised { call, mode } => {
                write!(f, "call-supervised call={call} mode={mode}")
            }
            CallEvent::SupervisorLeft { call } => {
                write!(f, "call-supervisor-left call={call}")
            }
            CallEvent::VolumeSet {
                call,
                party,
                direction,
                db,
            } => write!(
                f,
                "call-volume call={call} party={party} direction={direction} db={db}"
            ),
            CallEvent::LegLost { call, leg, reason } => {
                write!(f, "call-leg-lost call={call} leg={leg} reason={reason}")
            }
            CallEvent::Ended {
                call,
                by,
                cause,
                status,
            } => {
                write!(f, "call-ended call={call} by={by} cause={cause}")?;
                if let Some(s) = status {
                    write!(f, " status={s}")?;
                }
                Ok(())
            }
        }
    }
}

fn by(switch: bool) -> &'static str {
    if switch {
        "switch"
    } else {
        "phone"
    }
}
