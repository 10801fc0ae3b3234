//! The dialog layer: RFC 3261 §12 dialogs, with §13.3.1.4 / RFC 6026 2xx
//! reliability and §14 re-INVITE glare.
//!
//! It owns the dialog state (id, role, Early/Confirmed/Terminated, local and
//! remote URIs, CSeq numbers, remote target, route set, secure flag), builds
//! requests within a dialog (§12.2.1.1), checks requests received within one
//! (§12.2.2), retransmits a UAS's 2xx to INVITE until the ACK arrives and
//! re-sends a UAC's ACK when a 2xx is retransmitted.
//!
//! It sits above the transaction layer: it is fed requests and responses the
//! transactions passed up (and 2xx retransmissions that matched no
//! transaction, RFC 6026 §8.9), and hands back messages for the TU to send.
//! It must not do I/O, read the clock or resolve addresses: time arrives as
//! `now`, sends leave through `poll_transmit`, wake-ups through
//! `poll_timeout` (the quinn-proto contract, see CONTRIBUTING.md, Style).
//!
//! Files, one job each: `id` the dialog id, `addr` name-addr helpers,
//! `state` the dialog state and constructors (§12.1), `request` building requests
//! (§12.2.1.1, §13.2.2.4), `incoming` receiving (§12.2.2, §12.2.1.2, §14),
//! `respond` the UAS's responses (§12.1.1), `reliability` the 2xx/ACK timers
//! and glare back-off, `prack` RFC 3262 reliable provisional responses
//! (RSeq/RAck, 1xx retransmission, held 2xx), `table` the endpoint-like
//! collection of dialogs.

mod addr;
mod id;
mod incoming;
mod prack;
mod reliability;
mod request;
mod respond;
mod state;
mod table;
#[cfg(test)]
mod testutil;

use std::time::{Duration, Instant};

use crate::net::Destination;
use crate::sip::{Response, SipMessage};

pub use addr::Body;
pub use id::DialogId;
pub use incoming::{RequestOutcome, ResponseOutcome};
pub use prack::{names_option, Outgoing, ReliableCheck, TAG_100REL};
pub use reliability::{glare_retry_delay, retry_after_secs};
pub use state::{Dialog, DialogState, Role};
pub use table::DialogTable;

/// The timer values the dialog layer uses (§17.1.1.1 defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialogConfig {
    /// RTT estimate; the first 2xx retransmission interval.
    pub t1: Duration,
    /// Cap of the 2xx retransmission interval.
    pub t2: Duration,
}

impl Default for DialogConfig {
    fn default() -> Self {
        DialogConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
        }
    }
}

/// Something the TU must know or act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEvent {
    /// An early dialog was created (a UAC got a 1xx with a To tag).
    Early(DialogId),
    /// The dialog was confirmed (2xx sent or received).
    Confirmed(DialogId),
    /// The ACK for our 2xx to the INVITE with this CSeq number arrived.
    Acked { id: DialogId, cseq: u32 },
    /// No ACK came for our 2xx within 64*T1: the TU should send BYE (§13.3.1.4).
    AckTimeout { id: DialogId, cseq: u32 },
    /// The back-off after a 491 is over: the TU should send its re-INVITE again (§14.1).
    GlareRetry(DialogId),
    /// A response held back until a PRACK (RFC 3262 §3) may go now: the
    /// TU sends it on the INVITE's server transaction.
    Released {
        id: DialogId,
        response: Box<Response>,
    },
    /// No PRACK for our reliable 1xx within 64*T1: the TU should reject the
    /// INVITE with a 5xx (RFC 3262 §3).
    PrackTimeout(DialogId),
    /// The dialog is over; it is dropped from the table once this is polled.
    Terminated {
        id: DialogId,
        reason: TerminateReason,
    },
}

/// Why a dialog ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminateReason {
    /// The peer sent BYE.
    ByeReceived,
    /// Our BYE got its final response.
    ByeCompleted,
    /// A non-2xx final response ended the early dialog (§12.3).
    Rejected,
    /// A 481 or 408 to a request within the dialog (§12.2.1.2).
    Failed,
    /// Other forks' early dialogs after the INVITE completed (§13.2.2.4).
    ForkEnded,
    /// The TU ended it.
    Local,
}

/// A message the dialog layer wants sent, not yet routed: the transaction
/// user decides how it leaves (a retransmitted 2xx through the transport, a
/// re-sent ACK by its Route set). Not the wire-ready
/// [`crate::transaction::Transmit`].
#[derive(Debug, Clone)]
pub struct DialogMessage {
    pub dialog: DialogId,
    /// For a response, where the request came from. `None` for a request
    /// (the re-sent ACK): the TU routes it by its Route / Request-URI
    /// (RFC 3263) as it routes every request within the dialog.
    pub destination: Option<Destination>,
    pub message: SipMessage,
}

/// When the layer next needs `handle_timeout`, and why (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout {
    pub at: Instant,
    pub timer: DialogTimer,
}

/// The dialog layer's timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogTimer {
    /// Retransmit our 2xx to INVITE (RFC 6026, §13.3.1.4).
    Retransmit2xx(DialogId),
    /// Give up waiting for the ACK at 64*T1.
    AckTimeout(DialogId),
    /// Re-INVITE back-off after a 491 (§14.1).
    GlareRetry(DialogId),
    /// Retransmit our reliable 1xx (RFC 3262 §3).
    Retransmit1xx(DialogId),
    /// Give up waiting for the PRACK at 64*T1.
    PrackTimeout(DialogId),
    /// Stop accepting new forks of an answered INVITE (64*T1 after its first 2xx).
    ForkWindow { call_id: String },
}

/// Local misuse or a peer's message that cannot make or drive a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("message lacks {0}")]
    Missing(&'static str),
    #[error("response {0} cannot create a dialog")]
    NotDialogCreating(u16),
    #[error("unreadable URI: {0}")]
    BadUri(String),
    #[error("dialog is terminated")]
    Terminated,
    #[error("no INVITE to acknowledge or cancel")]
    NoInvite,
    #[error("an INVITE transaction is already in progress in this dialog")]
    InvitePending,
}
