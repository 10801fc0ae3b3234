//! The transaction layer: RFC 3261 §17 with the RFC 6026 corrections.
//!
//! This module owns every live client and server transaction, their
//! retransmissions and their timers. It is sans-IO: it never reads the clock
//! (every call takes `now`) and never touches a socket (messages leave through
//! [`TransactionLayer::poll_transmit`]). It does not build dialogs, retransmit
//! 2xx responses to INVITE or ACK them (§13.3.1.4 and §13.2.2.4 give that to
//! the dialog layer), stamp `received`/`rport` on Vias, or answer stateless
//! errors; the endpoint above it does.
//!
//! # The four machines
//!
//! Each kind is its own file and its own type, with states named as the RFC
//! draws them and the data a state needs kept inside that state (Timer D
//! exists only in `Completed`, so it cannot be armed in `Calling`):
//!
//! | machine | states | timers |
//! | --- | --- | --- |
//! | [`InviteClientTransaction`] (§17.1.1, RFC 6026 §8.4) | Calling, Proceeding, Completed, Accepted, Terminated | A, B, D, M |
//! | [`NonInviteClientTransaction`] (§17.1.2) | Trying, Proceeding, Completed, Terminated | E, F, K |
//! | [`InviteServerTransaction`] (§17.2.1, RFC 6026 §8.5-8.7) | Proceeding, Completed, Confirmed, Accepted, Terminated | G, H, I, L |
//! | [`NonInviteServerTransaction`] (§17.2.2) | Trying, Proceeding, Completed, Terminated | J |
//!
//! Timer values (Table 4 of RFC 3261, RFC 6026 §8.4/§8.7), from [`TimerSettings`]:
//!
//! | timer | value | reliable transport |
//! | --- | --- | --- |
//! | A, E, G | T1, doubling (E and G capped at T2) | not armed |
//! | B, F, H, L, M | 64·T1 | same |
//! | D | 32 s | zero |
//! | I, K | T4 | zero |
//! | J | 64·T1 | zero |
//!
//! A timer of zero does not arm anything: the machine goes straight to
//! `Terminated` after doing what the state's entry asks (sending the ACK,
//! say), which is what a zero timer firing at once amounts to.
//!
//! What the four share (the output queues, the timer loop, the state log)
//! is one trait, [`Machine`] (`machine.rs`).
//!
//! Every machine follows the crate's contract: `handle_*(now, input)`, then
//! drain `poll_transmit()` and `poll_event()`, and sleep until
//! `poll_timeout()`, calling `handle_timeout(now)` then.
//!
//! **100 Trying.** [`InviteServerTransaction::new`] queues a 100 Trying at
//! once rather than after 200 ms (§17.2.1 allows both). This switch is a
//! B2BUA: it answers an INVITE only when the far leg does, which is nearly
//! always later than 200 ms, so waiting would only delay the message that
//! stops the caller's Timer A.
//!
//! # The table
//!
//! [`TransactionLayer`] is what the endpoint uses. Its API, all sans-IO:
//!
//! - `handle_request(now, Request, Source) -> RequestDisposition`: match per
//!   §17.2.3 (ACK to its INVITE, CANCEL to its own transaction plus a look-up
//!   of the INVITE it cancels per §9.2), or create a new server transaction.
//! - `respond(now, ServerTransactionId, Response) -> Result<(), TransactionError>`:
//!   the TU's answers; they go to `source.response_destination(top Via)`.
//! - `abandon(ServerTransactionId)`: forgets a request the TU will never
//!   answer (the brute-force guard's drop), freeing its per-source quota.
//! - `send_request(now, Request, Destination) -> Result<ClientTransactionId, TransactionError>`:
//!   INVITE or non-INVITE by method. The request must carry its top Via with
//!   a magic-cookie branch (the layer does not know the local sent-by).
//! - `cancel(now, ClientTransactionId) -> Option<ClientTransactionId>`: §9.1
//!   CANCEL, held back until a provisional response has arrived.
//! - `handle_response(now, Response) -> ResponseDisposition`.
//! - `send_stateless(Destination, SipMessage)`: ACK for 2xx, stateless
//!   errors; queued in order with everything else.
//! - `transport_error(now, TransactionId)`, `handle_timeout(now)`,
//!   `poll_timeout() -> Option<Instant>` (`&mut self`: it drops stale heap
//!   entries), `poll_transmit() -> Option<Transmit>` (each names the
//!   transaction that sent it, so a send failure can be reported back),
//!   `poll_event() -> Option<TransactionEvent>`.
//! - `len()`, `server_transactions_from(IpAddr)`, `server_state(id)`,
//!   `client_state(id)`.
//!
//! Terminated transactions are removed as soon as they terminate; their last
//! transmits and the `Terminated` event are still delivered.

mod client_invite;
mod client_non_invite;
mod key;
mod layer;
mod machine;
mod server_invite;
mod server_non_invite;
#[cfg(test)]
mod test_util;

use std::fmt;
use std::time::{Duration, Instant};

pub use client_invite::InviteClientTransaction;
pub use client_non_invite::NonInviteClientTransaction;
pub use key::{ClientTransactionKey, ServerTransactionKey};
pub use layer::{
    ClientTransactionId, RequestDisposition, ResponseDisposition, ServerTransactionId,
    TransactionEvent, TransactionId, TransactionLayer, Transmit,
};
pub use machine::{Machine, Outbox};
pub use server_invite::InviteServerTransaction;
pub use server_non_invite::NonInviteServerTransaction;

use crate::sip::Response;

/// The base timer values of RFC 3261 §17.1.1.1 and Table 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    /// RTT estimate; first retransmission interval.
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// Maximum time a message stays in the network.
    pub t4: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        TimerSettings {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerSettings {
    /// 64·T1: Timers B, F, H, J, L and M.
    pub fn t1_x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D on an unreliable transport: "at least 32 seconds" (§17.1.1.2).
    pub fn timer_d(&self) -> Duration {
        Duration::from_secs(32).max(self.t1_x64())
    }

    /// The first retransmission interval, never zero so a misconfigured
    /// T1 cannot spin `handle_timeout`.
    fn first_interval(&self) -> Duration {
        self.t1.max(Duration::from_millis(1))
    }
}

/// Client INVITE timers (§17.1.1.2, RFC 6026 §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteClientTimer {
    /// INVITE retransmission, unreliable transports only.
    A,
    /// Transaction timeout in Calling.
    B,
    /// Wait for response retransmissions in Completed.
    D,
    /// Wait for 2xx retransmissions in Accepted (RFC 6026).
    M,
}

/// Client non-INVITE timers (§17.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteClientTimer {
    /// Request retransmission, unreliable transports only.
    E,
    /// Transaction timeout.
    F,
    /// Wait for response retransmissions in Completed.
    K,
}

/// Server INVITE timers (§17.2.1, RFC 6026 §8.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InviteServerTimer {
    /// Final response retransmission, unreliable transports only.
    G,
    /// Wait for the ACK in Completed.
    H,
    /// Absorb ACK retransmissions in Confirmed.
    I,
    /// Absorb INVITE retransmissions in Accepted (RFC 6026).
    L,
}

/// Server non-INVITE timer (§17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NonInviteServerTimer {
    /// Absorb request retransmissions in Completed.
    J,
}

macro_rules! display_as_debug {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "Timer {:?}", self)
            }
        }
    )*};
}
display_as_debug!(
    InviteClientTimer,
    NonInviteClientTimer,
    InviteServerTimer,
    NonInviteServerTimer
);

/// A transaction's state by its RFC name, for logs, tests and the TU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Accepted,
    Confirmed,
    Terminated,
}

impl fmt::Display for TransactionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What a client transaction tells its transaction user.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// A 1xx response (every one received in Calling/Trying or Proceeding).
    Provisional(Response),
    /// A final response. On INVITE, every 2xx received in Accepted is passed
    /// up again (RFC 6026 §8.4): forked and retransmitted 2xx are the dialog
    /// layer's to sort out and ACK.
    Final(Response),
    /// Timer B or F fired without a final response: act as on a 408 (§8.1.3.1).
    Timeout,
    /// The transport reported a failure sending for this transaction (§17.1.4).
    TransportError,
    /// The transaction ended; its id will not be seen again.
    Terminated,
}

/// What a server transaction tells its transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H fired: the ACK for our non-2xx final response never came.
    Timeout,
    /// The transport reported a failure sending a response (§17.2.4).
    TransportError,
    /// The transaction ended; its id will not be seen again.
    Terminated,
}

/// What a server transaction did with a request that matched it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerReceipt {
    /// A retransmission: answered with the last response or ignored.
    Absorbed,
    /// The ACK for our non-2xx final response (or a retransmission of it).
    AckConsumed,
    /// An ACK that matched an INVITE transaction in Accepted: RFC 6026 §8.7
    /// says it goes to the TU (it acknowledges a 2xx).
    PassToTu,
}

/// Local misuse of the layer: never caused by network data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("no live transaction with this id")]
    UnknownTransaction,
    #[error("a {status}xx response is not allowed in state {state}")]
    WrongState {
        state: TransactionState,
        status: u16,
    },
    #[error("the request has no top Via with a branch")]
    MissingBranch,
    #[error("the request has no readable CSeq")]
    MissingCSeq,
    #[error("ACK is not sent through a transaction; use send_stateless")]
    AckIsNotATransaction,
    #[error("a client transaction with this branch and method already exists")]
    DuplicateKey,
}

/// A retransmission timer: when it next fires and the interval it was armed with.
#[derive(Debug, Clone, Copy)]
struct Retransmit {
    at: Instant,
    interval: Duration,
}

impl Retransmit {
    fn first(now: Instant, settings: &TimerSettings) -> Self {
        let interval = settings.first_interval();
        Retransmit {
            at: now + interval,
            interval,
        }
    }

    /// Re-armed after firing at `now` with the interval doubled, capped at `cap`.
    fn doubled(self, now: Instant, cap: Option<Duration>) -> Self {
        let mut interval = self.interval * 2;
        if let Some(cap) = cap {
            interval = interval.min(cap.max(Duration::from_millis(1)));
        }
        Retransmit {
            at: now + interval,
            interval,
        }
    }

    /// Re-armed after firing at `now` with a fixed interval.
    fn fixed(now: Instant, interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(1));
        Retransmit {
            at: now + interval,
            interval,
        }
    }
}

/// The earliest of a state's armed timers.
fn earliest<T: Copy>(timers: &[(Option<Instant>, T)]) -> Option<(Instant, T)> {
    timers
        .iter()
        .filter_map(|(at, t)| at.map(|at| (at, *t)))
        .min_by_key(|(at, _)| *at)
}

/// Response class helpers on the status code number.
fn is_provisional(code: u16) -> bool {
    code < 200
}
fn is_success(code: u16) -> bool {
    (200..300).contains(&code)
}
