//! The transaction table: owns every live transaction, routes messages to
//! them (§17.1.3, §17.2.3), and merges their transmits, events and timers
//! into one sans-IO contract for the endpoint.
//!
//! Timers live in a binary heap of `(deadline, id)`. A transaction's heap
//! entry is pushed whenever its next deadline changes; entries left behind by
//! a change or a removal are recognised as stale (the transaction is gone, or
//! its recorded deadline differs) and skipped, so `poll_timeout` is cheap
//! however many transactions are live.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::time::Instant;

use tracing::{debug, warn};

use super::machine::Machine;
use super::{
    ClientEvent, ClientTransactionKey, InviteClientTransaction, InviteServerTransaction,
    NonInviteClientTransaction, NonInviteServerTransaction, ServerEvent, ServerReceipt,
    ServerTransactionKey, TimerSettings, TransactionError, TransactionState,
};
use crate::net::{Destination, Source};
use crate::sip::{cancel_for, MessageHeaders, Method, Request, Response, SipMessage, ViaInfo};

/// Names a server transaction for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTransactionId(u64);

/// Names a client transaction for as long as it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTransactionId(u64);

/// Either kind of transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionId {
    Client(ClientTransactionId),
    Server(ServerTransactionId),
}

impl fmt::Display for ServerTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "st{}", self.0)
    }
}

impl fmt::Display for ClientTransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ct{}", self.0)
    }
}

impl From<ClientTransactionId> for TransactionId {
    fn from(id: ClientTransactionId) -> Self {
        TransactionId::Client(id)
    }
}

impl From<ServerTransactionId> for TransactionId {
    fn from(id: ServerTransactionId) -> Self {
        TransactionId::Server(id)
    }
}

/// A message to put on the wire.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub destination: Destination,
    pub message: SipMessage,
    /// The transaction that sent it, for `transport_error`; `None` for
    /// `send_stateless`.
    pub transaction: Option<TransactionId>,
}

/// Something the transaction user must hear about.
#[derive(Debug, Clone)]
pub enum TransactionEvent {
    Client {
        id: ClientTransactionId,
        event: ClientEvent,
    },
    Server {
        id: ServerTransactionId,
        event: ServerEvent,
    },
}

/// What became of a received request.
#[derive(Debug, Clone)]
pub enum RequestDisposition {
    /// A new server transaction; the TU must answer it through `respond`.
    /// For INVITE, a 100 Trying is already queued.
    New {
        id: ServerTransactionId,
        request: Request,
    },
    /// A retransmission, handled by its transaction.
    Absorbed,
    /// The ACK for a non-2xx final response we sent: consumed.
    AckForNon2xx,
    /// An ACK for a 2xx (it matched no transaction, or one in Accepted):
    /// it belongs to the dialog layer.
    Ack2xx(Request),
    /// A new CANCEL; its own server transaction `cancel_id` exists. The TU
    /// answers it 200 and the INVITE `invite_id` 487, or answers 481 when
    /// `invite_id` is `None` (§9.2). The INVITE may already have a final
    /// response (see `server_state`), in which case only the 200 is due.
    Cancel {
        cancel_id: ServerTransactionId,
        invite_id: Option<ServerTransactionId>,
        request: Request,
    },
    /// No top Via or CSeq to key a transaction on; `sip::parse` normally
    /// refuses such requests earlier. Drop it, or answer 400 statelessly.
    Invalid(Request),
}

/// What became of a received response.
#[derive(Debug, Clone)]
pub enum ResponseDisposition {
    /// A client transaction took it (events follow through `poll_event`).
    Matched,
    /// No client transaction matches, e.g. a 2xx retransmission after
    /// Timer M: the dialog layer's (RFC 6026 §7.1 says drop it otherwise).
    Stray(Response),
}

// The INVITE machine is boxed: a registrar holds many completed non-INVITE
// transactions, and each entry would otherwise be the INVITE's size. The
// non-INVITE one stays inline (the common case, no allocation), hence the
// allow.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
enum ServerMachine {
    Invite(Box<InviteServerTransaction>),
    NonInvite(NonInviteServerTransaction),
}

/// Forwards a call to whichever machine an entry holds.
macro_rules! delegate {
    ($machine:expr, $enum:ident, $m:ident => $body:expr) => {
        match $machine {
            $enum::Invite($m) => $body,
            $enum::NonInvite($m) => $body,
        }
    };
}

#[derive(Debug)]
struct ServerEntry {
    key: ServerTransactionKey,
    source: Source,
    /// Still awaiting the TU's final response: counted in `per_source`.
    pending: bool,
    destination: Destination,
    machine: ServerMachine,
    scheduled: Option<Instant>,
}

#[derive(Debug)]
enum ClientMachine {
    Invite(InviteClientTransaction),
    NonInvite(NonInviteClientTransaction),
}

/// The §9.1 CANCEL of an INVITE client transaction.
#[derive(Debug, Clone, Copy)]
enum CancelState {
    /// Asked for before any provisional response: sent when one arrives.
    Pending(ClientTransactionId),
    Sent(ClientTransactionId),
}

#[derive(Debug)]
struct ClientEntry {
    key: ClientTransactionKey,
    destination: Destination,
    machine: ClientMachine,
    scheduled: Option<Instant>,
    cancel: Option<CancelState>,
}

/// Every live transaction of the endpoint. See the module header of
/// `transaction` for the API in one place.
#[derive(Debug, Default)]
pub struct TransactionLayer {
    settings: TimerSettings,
    next_id: u64,
    // Boxed: a transaction holds whole messages, and a growing table moves
    // its values when it rehashes (a pause of milliseconds under load).
    servers: HashMap<ServerTransactionId, Box<ServerEntry>>,
    server_keys: HashMap<ServerTransactionKey, ServerTransactionId>,
    clients: HashMap<ClientTransactionId, Box<ClientEntry>>,
    client_keys: HashMap<ClientTransactionKey, ClientTransactionId>,
    per_source: HashMap<IpAddr, usize>,
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl TransactionLayer {
    pub fn new(settings: TimerSettings) -> Self {
        TransactionLayer {
            settings,
            ..Default::default()
        }
    }

    pub fn settings(&self) -> &TimerSettings {
        &self.settings
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    // ---- server side ------------------------------------------------------

    /// Routes a received request (§17.2.3): to the transaction it matches,
    /// or into a new server transaction.
    pub fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        source: Source,
    ) -> RequestDisposition {
        match request.top_via() {
            Some(via) => self.handle_request_via(now, request, &via, source),
            None => RequestDisposition::Invalid(request),
        }
    }

    /// As [`Self::handle_request`], with the request's top Via already read
    /// (the endpoint reads it to stamp `received`/`rport`, which change
    /// neither the key nor where responses go): parsed once per request.
    pub fn handle_request_via(
        &mut self,
        now: Instant,
        request: Request,
        via: &ViaInfo,
        source: Source,
    ) -> RequestDisposition {
        let Some(key) = ServerTransactionKey::from_request_via(&request, via) else {
            return RequestDisposition::Invalid(request);
        };
        if let Some(&id) = self.server_keys.get(&key) {
            let Some(entry) = self.servers.get_mut(&id) else {
                return RequestDisposition::Absorbed;
            };
            let receipt =
                delegate!(&mut entry.machine, ServerMachine, m => m.handle_request(now, &request));
            debug!(%id, ?key, ?receipt, method = %request.method, "request matched a server transaction");
            self.pump_server(id);
            return match receipt {
                ServerReceipt::Absorbed => RequestDisposition::Absorbed,
                ServerReceipt::AckConsumed => RequestDisposition::AckForNon2xx,
                ServerReceipt::PassToTu => RequestDisposition::Ack2xx(request),
            };
        }
        match request.method {
            Method::Ack => RequestDisposition::Ack2xx(request),
            Method::Cancel => {
                let invite_id = key
                    .cancelled_invite()
                    .and_then(|k| self.server_keys.get(&k).copied());
                let cancel_id = self.create_server(now, key, via, request.clone(), source);
                RequestDisposition::Cancel {
                    cancel_id,
                    invite_id,
                    request,
                }
            }
            _ => {
                let id = self.create_server(now, key, via, request.clone(), source);
                RequestDisposition::New { id, request }
            }
        }
    }

    fn create_server(
        &mut self,
        now: Instant,
        key: ServerTransactionKey,
        via: &ViaInfo,
        request: Request,
        source: Source,
    ) -> ServerTransactionId {
        let id = ServerTransactionId(self.next_id());
        let destination = source.response_destination(via);
        let reliable = source.transport.is_reliable();
        let branch = via.branch.clone().unwrap_or_default();
        let machine = if request.method == Method::Invite {
            ServerMachine::Invite(Box::new(InviteServerTransaction::new(
                now,
                request,
                branch,
                reliable,
                self.settings,
            )))
        } else {
            ServerMachine::NonInvite(NonInviteServerTransaction::new(
                now,
                request,
                branch,
                reliable,
                self.settings,
            ))
        };
        debug!(%id, ?key, remote = %source.remote, "server transaction created");
        *self.per_source.entry(source.remote.ip()).or_default() += 1;
        self.server_keys.insert(key.clone(), id);
        self.servers.insert(
            id,
            Box::new(ServerEntry {
                key,
                source,
                pending: true,
                destination,
                machine,
                scheduled: None,
            }),
        );
        self.pump_server(id);
        id
    }

    /// Sends the TU's response through its server transaction; it goes to
    /// the request's `source.response_destination(top Via)`.
    pub fn respond(
        &mut self,
        now: Instant,
        id: ServerTransactionId,
        response: Response,
    ) -> Result<(), TransactionError> {
        let entry = self
            .servers
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        let result = delegate!(&mut entry.machine, ServerMachine, m => m.respond(now, response));
        if let Err(e) = &result {
            debug!(%id, error = %e, "response refused");
        }
        self.pump_server(id);
        result
    }

    /// Forgets a server transaction the TU will never answer (a request from
    /// a source the brute-force guard blocks): it stops holding the source's
    /// quota and its memory at once. RFC 3261 §17.2 has no timer for a
    /// non-INVITE server transaction left in Trying, so one that is merely
    /// left unanswered would live, and count, for ever. A retransmission of
    /// the request is then a new request, judged (and dropped) again.
    pub fn abandon(&mut self, id: ServerTransactionId) {
        let Some(entry) = self.servers.remove(&id) else {
            return;
        };
        debug!(%id, key = ?entry.key, "server transaction abandoned unanswered");
        if self.server_keys.get(&entry.key) == Some(&id) {
            self.server_keys.remove(&entry.key);
        }
        if entry.pending {
            release_source(&mut self.per_source, entry.source.remote.ip());
        }
    }

    /// The request a live server transaction answers (to build responses);
    /// a completed non-INVITE transaction no longer holds it.
    pub fn server_request(&self, id: ServerTransactionId) -> Option<&Request> {
        self.servers
            .get(&id)
            .and_then(|e| delegate!(&e.machine, ServerMachine, m => m.request()))
    }

    /// The state of a live server transaction.
    pub fn server_state(&self, id: ServerTransactionId) -> Option<TransactionState> {
        self.servers
            .get(&id)
            .map(|e| delegate!(&e.machine, ServerMachine, m => m.state()))
    }

    /// How many server transactions started by requests from `ip` still await
    /// a final response (the endpoint bounds this per source; completed
    /// transactions that only absorb retransmissions do not count).
    pub fn server_transactions_from(&self, ip: IpAddr) -> usize {
        self.per_source.get(&ip).copied().unwrap_or(0)
    }

    // ---- client side ------------------------------------------------------

    /// Starts a client transaction for `request` (INVITE or non-INVITE by
    /// method). The request must already carry its top Via with a
    /// magic-cookie branch and a CSeq; ACK is refused (send it with
    /// `send_stateless`: an ACK for 2xx is not a transaction).
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        destination: Destination,
    ) -> Result<ClientTransactionId, TransactionError> {
        let id = ClientTransactionId(self.next_id());
        self.start_client(now, id, request, destination)?;
        Ok(id)
    }

    fn start_client(
        &mut self,
        now: Instant,
        id: ClientTransactionId,
        request: Request,
        destination: Destination,
    ) -> Result<(), TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::AckIsNotATransaction);
        }
        let key =
            ClientTransactionKey::from_request(&request).ok_or(TransactionError::MissingBranch)?;
        if request.cseq().is_none() {
            return Err(TransactionError::MissingCSeq);
        }
        if self.client_keys.contains_key(&key) {
            return Err(TransactionError::DuplicateKey);
        }
        let reliable = destination.transport.is_reliable();
        let machine = if request.method == Method::Invite {
            ClientMachine::Invite(InviteClientTransaction::new(
                now,
                request,
                reliable,
                self.settings,
            ))
        } else {
            ClientMachine::NonInvite(NonInviteClientTransaction::new(
                now,
                request,
                reliable,
                self.settings,
            ))
        };
        debug!(%id, ?key, remote = %destination.remote, "client transaction created");
        self.client_keys.insert(key.clone(), id);
        self.clients.insert(
            id,
            Box::new(ClientEntry {
                key,
                destination,
                machine,
                scheduled: None,
                cancel: None,
            }),
        );
        self.pump_client(now, id);
        Ok(())
    }

    /// Cancels a pending INVITE client transaction (§9.1). Returns the id of
    /// the CANCEL's own client transaction, whose response arrives as its
    /// events. Before any provisional response the CANCEL is held back and
    /// sent when one arrives; if a final response comes first, it is never
    /// sent and its id only sees `Terminated`. `None` when `id` is not a live
    /// INVITE awaiting its final response. Calling it twice returns the same id.
    pub fn cancel(&mut self, now: Instant, id: ClientTransactionId) -> Option<ClientTransactionId> {
        let entry = self.clients.get(&id)?;
        let ClientMachine::Invite(invite) = &entry.machine else {
            return None;
        };
        if let Some(CancelState::Pending(c) | CancelState::Sent(c)) = entry.cancel {
            return Some(c);
        }
        let state = invite.state();
        let cancel_id = ClientTransactionId(self.next_id());
        let entry = self.clients.get_mut(&id)?;
        match state {
            TransactionState::Calling => {
                debug!(%id, %cancel_id, "CANCEL held until a provisional response");
                entry.cancel = Some(CancelState::Pending(cancel_id));
                Some(cancel_id)
            }
            TransactionState::Proceeding => {
                entry.cancel = Some(CancelState::Sent(cancel_id));
                if self.send_cancel(now, id, cancel_id) {
                    Some(cancel_id)
                } else {
                    if let Some(entry) = self.clients.get_mut(&id) {
                        entry.cancel = None;
                    }
                    None
                }
            }
            _ => None,
        }
    }

    /// Starts the CANCEL for INVITE `id` under `cancel_id`.
    fn send_cancel(
        &mut self,
        now: Instant,
        id: ClientTransactionId,
        cancel_id: ClientTransactionId,
    ) -> bool {
        let Some(entry) = self.clients.get(&id) else {
            return false;
        };
        let ClientMachine::Invite(invite) = &entry.machine else {
            return false;
        };
        let cancel = cancel_for(invite.request());
        let destination = entry.destination;
        match self.start_client(now, cancel_id, cancel, destination) {
            Ok(()) => true,
            Err(e) => {
                warn!(%id, error = %e, "CANCEL could not be started");
                false
            }
        }
    }

    /// Routes a received response to its client transaction (§17.1.3).
    pub fn handle_response(&mut self, now: Instant, response: Response) -> ResponseDisposition {
        let Some(id) = ClientTransactionKey::from_response(&response)
            .and_then(|key| self.client_keys.get(&key).copied())
        else {
            return ResponseDisposition::Stray(response);
        };
        let Some(entry) = self.clients.get_mut(&id) else {
            return ResponseDisposition::Stray(response);
        };
        debug!(%id, code = response.status_code.code(), "response matched a client transaction");
        delegate!(&mut entry.machine, ClientMachine, m => m.handle_response(now, response));
        self.pump_client(now, id);
        ResponseDisposition::Matched
    }

    /// The state of a live client transaction.
    pub fn client_state(&self, id: ClientTransactionId) -> Option<TransactionState> {
        self.clients
            .get(&id)
            .map(|e| delegate!(&e.machine, ClientMachine, m => m.state()))
    }

    // ---- both -------------------------------------------------------------

    /// Queues a message outside any transaction (ACK for 2xx, 2xx
    /// retransmissions after Timer L, stateless errors), in order with the rest.
    pub fn send_stateless(&mut self, destination: Destination, message: SipMessage) {
        self.transmits.push_back(Transmit {
            destination,
            message,
            transaction: None,
        });
    }

    /// The driver could not send a message of transaction `id`.
    pub fn transport_error(&mut self, now: Instant, id: TransactionId) {
        match id {
            TransactionId::Server(id) => {
                if let Some(e) = self.servers.get_mut(&id) {
                    delegate!(&mut e.machine, ServerMachine, m => m.transport_error(now));
                    self.pump_server(id);
                }
            }
            TransactionId::Client(id) => {
                if let Some(e) = self.clients.get_mut(&id) {
                    delegate!(&mut e.machine, ClientMachine, m => m.transport_error(now));
                    self.pump_client(now, id);
                }
            }
        }
    }

    /// The driver could not send `request`, which a client transaction of
    /// ours sent (found by its branch and method, §17.1.3); false when none
    /// did (an ACK for a 2xx, a transaction already gone).
    pub fn request_transport_error(&mut self, now: Instant, request: &Request) -> bool {
        let Some(id) = ClientTransactionKey::from_request(request)
            .and_then(|key| self.client_keys.get(&key).copied())
        else {
            return false;
        };
        self.transport_error(now, TransactionId::Client(id));
        true
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            match id {
                TransactionId::Server(sid) => {
                    if let Some(e) = self.servers.get_mut(&sid) {
                        if e.scheduled == Some(at) {
                            e.scheduled = None;
                            delegate!(&mut e.machine, ServerMachine, m => m.handle_timeout(now));
                            self.pump_server(sid);
                        }
                    }
                }
                TransactionId::Client(cid) => {
                    if let Some(e) = self.clients.get_mut(&cid) {
                        if e.scheduled == Some(at) {
                            e.scheduled = None;
                            delegate!(&mut e.machine, ClientMachine, m => m.handle_timeout(now));
                            self.pump_client(now, cid);
                        }
                    }
                }
            }
        }
    }

    /// The earliest deadline of any live transaction.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            let live = match id {
                TransactionId::Server(id) => self.servers.get(&id).map(|e| e.scheduled),
                TransactionId::Client(id) => self.clients.get(&id).map(|e| e.scheduled),
            };
            if live == Some(Some(at)) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// Live transactions, both kinds.
    pub fn len(&self) -> usize {
        self.servers.len() + self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // ---- bookkeeping ------------------------------------------------------

    /// Moves a server transaction's output into the layer's queues, re-arms
    /// its timer, and removes it once terminated.
    fn pump_server(&mut self, id: ServerTransactionId) {
        let Some(entry) = self.servers.get_mut(&id) else {
            return;
        };
        let destination = entry.destination;
        delegate!(&mut entry.machine, ServerMachine, m => drain(
            m,
            destination,
            TransactionId::Server(id),
            &mut self.transmits,
            &mut self.events,
            |event| TransactionEvent::Server { id, event },
        ));
        if delegate!(&entry.machine, ServerMachine, m => m.is_terminated()) {
            let Some(entry) = self.servers.remove(&id) else {
                return;
            };
            debug!(%id, key = ?entry.key, "server transaction removed");
            if self.server_keys.get(&entry.key) == Some(&id) {
                self.server_keys.remove(&entry.key);
            }
            if entry.pending {
                release_source(&mut self.per_source, entry.source.remote.ip());
            }
            return;
        }
        // A final response was sent: the transaction no longer holds the source's quota,
        // even though it lives on (Timer J, up to 64*T1) to absorb retransmissions.
        let state = delegate!(&entry.machine, ServerMachine, m => m.state());
        if entry.pending
            && !matches!(
                state,
                TransactionState::Trying | TransactionState::Proceeding
            )
        {
            entry.pending = false;
            release_source(&mut self.per_source, entry.source.remote.ip());
        }
        if let ServerMachine::NonInvite(m) = &mut entry.machine {
            m.shrink();
        }
        let next =
            delegate!(&entry.machine, ServerMachine, m => m.poll_timeout().map(|(at, _)| at));
        reschedule(
            &mut entry.scheduled,
            next,
            &mut self.timers,
            TransactionId::Server(id),
        );
    }

    /// As `pump_server`, plus the held-back CANCEL of an INVITE.
    fn pump_client(&mut self, now: Instant, id: ClientTransactionId) {
        let Some(entry) = self.clients.get_mut(&id) else {
            return;
        };
        let destination = entry.destination;
        delegate!(&mut entry.machine, ClientMachine, m => drain(
            m,
            destination,
            TransactionId::Client(id),
            &mut self.transmits,
            &mut self.events,
            |event| TransactionEvent::Client { id, event },
        ));
        let state = delegate!(&entry.machine, ClientMachine, m => m.state());
        if let Some(CancelState::Pending(cancel_id)) = entry.cancel {
            match state {
                TransactionState::Calling => {}
                TransactionState::Proceeding => {
                    entry.cancel = Some(CancelState::Sent(cancel_id));
                    if !self.send_cancel(now, id, cancel_id) {
                        self.events.push_back(TransactionEvent::Client {
                            id: cancel_id,
                            event: ClientEvent::Terminated,
                        });
                    }
                }
                _ => {
                    // A final response (or a timeout) came first: nothing to cancel.
                    entry.cancel = None;
                    debug!(%id, %cancel_id, "held CANCEL dropped");
                    self.events.push_back(TransactionEvent::Client {
                        id: cancel_id,
                        event: ClientEvent::Terminated,
                    });
                }
            }
        }
        let Some(entry) = self.clients.get_mut(&id) else {
            return;
        };
        if state == TransactionState::Terminated {
            if let Some(entry) = self.clients.remove(&id) {
                debug!(%id, key = ?entry.key, "client transaction removed");
                if self.client_keys.get(&entry.key) == Some(&id) {
                    self.client_keys.remove(&entry.key);
                }
            }
            return;
        }
        let next =
            delegate!(&entry.machine, ClientMachine, m => m.poll_timeout().map(|(at, _)| at));
        reschedule(
            &mut entry.scheduled,
            next,
            &mut self.timers,
            TransactionId::Client(id),
        );
    }
}

/// Moves a machine's output into the layer's queues, each message named by
/// the transaction that sent it.
fn drain<M: Machine>(
    machine: &mut M,
    destination: Destination,
    transaction: TransactionId,
    transmits: &mut VecDeque<Transmit>,
    events: &mut VecDeque<TransactionEvent>,
    wrap: impl Fn(M::Event) -> TransactionEvent,
) {
    while let Some(message) = machine.poll_transmit() {
        transmits.push_back(Transmit {
            destination,
            message,
            transaction: Some(transaction),
        });
    }
    while let Some(event) = machine.poll_event() {
        events.push_back(wrap(event));
    }
}

/// Records a transaction's next deadline and queues it in the layer's heap
/// when it changed (stale heap entries are skipped by `poll_timeout`).
fn reschedule(
    scheduled: &mut Option<Instant>,
    next: Option<Instant>,
    timers: &mut BinaryHeap<Reverse<(Instant, TransactionId)>>,
    id: TransactionId,
) {
    if next != *scheduled {
        *scheduled = next;
        if let Some(at) = next {
            timers.push(Reverse((at, id)));
        }
    }
}

fn release_source(per_source: &mut HashMap<IpAddr, usize>, ip: IpAddr) {
    if let Some(n) = per_source.get_mut(&ip) {
        *n -= 1;
        if *n == 0 {
            per_source.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_util::*;

    fn layer() -> (Instant, TransactionLayer) {
        (Instant::now(), TransactionLayer::new(settings()))
    }

    fn transmits(l: &mut TransactionLayer) -> Vec<Transmit> {
        std::iter::from_fn(|| l.poll_transmit()).collect()
    }

    fn events(l: &mut TransactionLayer) -> Vec<TransactionEvent> {
        std::iter::from_fn(|| l.poll_event()).collect()
    }

    fn status(t: &Transmit) -> u16 {
        match &t.message {
            SipMessage::Response(r) => r.status_code.code(),
            SipMessage::Request(r) => panic!("expected a response, got {}", r.method),
        }
    }

    fn method(t: &Transmit) -> Method {
        match &t.message {
            SipMessage::Request(r) => r.method,
            SipMessage::Response(r) => panic!("expected a request, got {}", r.status_code),
        }
    }

    fn new_id(d: RequestDisposition) -> ServerTransactionId {
        match d {
            RequestDisposition::New { id, .. } => id,
            other => panic!("{other:?}"),
        }
    }

    /// Runs every timer up to `until`.
    fn run_until(l: &mut TransactionLayer, until: Instant) {
        while let Some(at) = l.poll_timeout() {
            if at > until {
                break;
            }
            l.handle_timeout(at);
        }
    }

    #[test]
    fn server_invite_flow_with_non_2xx_and_ack() {
        let (t0, mut l) = layer();
        let src = udp_source();
        let id = new_id(l.handle_request(t0, invite(), src));
        let out = transmits(&mut l);
        assert_eq!(out.len(), 1);
        assert_eq!(status(&out[0]), 100);
        assert_eq!(out[0].destination.remote, "192.0.2.7:5060".parse().unwrap());
        assert_eq!(l.server_transactions_from(src.remote.ip()), 1);

        assert!(matches!(
            l.handle_request(t0, invite(), src),
            RequestDisposition::Absorbed
        ));
        assert_eq!(status(&transmits(&mut l)[0]), 100);

        let req = l.server_request(id).unwrap().clone();
        l.respond(t0, id, response(&req, 486, Some("s1"))).unwrap();
        assert_eq!(status(&transmits(&mut l)[0]), 486);
        assert_eq!(l.poll_timeout(), Some(t0 + T1), "Timer G");

        let ack = request_with("ACK", BRANCH, 1, Some("s1"));
        assert!(matches!(
            l.handle_request(t0 + MS_1, ack, src),
            RequestDisposition::AckForNon2xx
        ));
        assert_eq!(l.server_state(id), Some(TransactionState::Confirmed));
        assert_eq!(
            l.poll_timeout(),
            Some(t0 + MS_1 + T4),
            "Timer I, G and H gone"
        );
        run_until(&mut l, t0 + MS_1 + T4);
        assert!(l.is_empty());
        assert_eq!(l.server_transactions_from(src.remote.ip()), 0);
        let ev = events(&mut l);
        assert!(matches!(
            ev.as_slice(),
            [TransactionEvent::Server { id: e, event: ServerEvent::Terminated }] if *e == id
        ));
        assert_eq!(l.poll_timeout(), None);
    }

    #[test]
    fn unmatched_ack_goes_to_the_dialog_layer() {
        let (t0, mut l) = layer();
        let ack = request_with("ACK", "z9hG4bKnew", 1, Some("s1"));
        assert!(matches!(
            l.handle_request(t0, ack, udp_source()),
            RequestDisposition::Ack2xx(_)
        ));
        assert!(l.is_empty());
    }

    #[test]
    fn ack_matching_an_accepted_invite_goes_up() {
        let (t0, mut l) = layer();
        let id = new_id(l.handle_request(t0, invite(), udp_source()));
        l.respond(t0, id, response(&invite(), 200, Some("s1")))
            .unwrap();
        let ack = request_with("ACK", BRANCH, 1, Some("s1"));
        assert!(matches!(
            l.handle_request(t0, ack, udp_source()),
            RequestDisposition::Ack2xx(_)
        ));
        run_until(&mut l, t0 + T1 * 64);
        assert!(l.is_empty(), "Timer L ended it");
    }

    #[test]
    fn cancel_finds_its_invite_and_is_its_own_transaction() {
        let (t0, mut l) = layer();
        let src = udp_source();
        let invite_id = new_id(l.handle_request(t0, invite(), src));
        transmits(&mut l);
        let cancel = request_with("CANCEL", BRANCH, 1, None);
        let (cancel_id, found) = match l.handle_request(t0, cancel.clone(), src) {
            RequestDisposition::Cancel {
                cancel_id,
                invite_id,
                ..
            } => (cancel_id, invite_id),
            other => panic!("{other:?}"),
        };
        assert_eq!(found, Some(invite_id));
        assert_ne!(cancel_id, invite_id);
        l.respond(t0, cancel_id, response(&cancel, 200, Some("s1")))
            .unwrap();
        l.respond(t0, invite_id, response(&invite(), 487, Some("s1")))
            .unwrap();
        let codes: Vec<u16> = transmits(&mut l).iter().map(status).collect();
        assert_eq!(codes, vec![200, 487]);
        // A retransmitted CANCEL gets the 200 again.
        assert!(matches!(
            l.handle_request(t0, cancel, src),
            RequestDisposition::Absorbed
        ));
        assert_eq!(status(&transmits(&mut l)[0]), 200);
        // A CANCEL for nothing we know.
        let stray = request_with("CANCEL", "z9hG4bKnothing", 1, None);
        assert!(matches!(
            l.handle_request(t0, stray, src),
            RequestDisposition::Cancel {
                invite_id: None,
                ..
            }
        ));
    }

    #[test]
    fn rfc_2543_requests_are_matched_too() {
        let (t0, mut l) = layer();
        let old = request_with("INVITE", "", 9, None);
        let id = new_id(l.handle_request(t0, old.clone(), udp_source()));
        assert!(matches!(
            l.handle_request(t0, old.clone(), udp_source()),
            RequestDisposition::Absorbed
        ));
        l.respond(t0, id, response(&old, 480, Some("s1"))).unwrap();
        let ack = request_with("ACK", "", 9, Some("s1"));
        assert!(matches!(
            l.handle_request(t0, ack, udp_source()),
            RequestDisposition::AckForNon2xx
        ));
    }

    #[test]
    fn responses_on_streams_use_the_connection_and_timer_j_is_zero() {
        let (t0, mut l) = layer();
        let src = tcp_source();
        let id = new_id(l.handle_request(t0, options(), src));
        assert!(transmits(&mut l).is_empty(), "no 100 for OPTIONS");
        l.respond(t0, id, response(&options(), 200, Some("s1")))
            .unwrap();
        let out = transmits(&mut l);
        assert_eq!(out[0].destination.connection, src.connection);
        assert_eq!(out[0].destination.remote, src.remote);
        assert!(l.is_empty(), "Timer J is zero on TCP");
        assert_eq!(
            l.respond(t0, id, response(&options(), 200, None)),
            Err(TransactionError::UnknownTransaction)
        );
    }

    #[test]
    fn client_invite_retransmits_then_is_cancelled_and_acked() {
        let (t0, mut l) = layer();
        let dst = udp_destination();
        let id = l.send_request(t0, invite(), dst).unwrap();
        let out = transmits(&mut l);
        assert_eq!((method(&out[0]), out[0].destination), (Method::Invite, dst));
        assert_eq!(out[0].transaction, Some(TransactionId::Client(id)));
        assert_eq!(l.poll_timeout(), Some(t0 + T1));
        l.handle_timeout(t0 + T1);
        assert_eq!(method(&transmits(&mut l)[0]), Method::Invite);
        assert_eq!(l.poll_timeout(), Some(t0 + T1 * 3));

        let now = t0 + T1 * 2;
        assert!(matches!(
            l.handle_response(now, response(&invite(), 180, Some("b1"))),
            ResponseDisposition::Matched
        ));
        assert!(matches!(
            events(&mut l).as_slice(),
            [TransactionEvent::Client {
                event: ClientEvent::Provisional(_),
                ..
            }]
        ));
        let cancel_id = l.cancel(now, id).unwrap();
        assert_eq!(l.cancel(now, id), Some(cancel_id), "idempotent");
        let out = transmits(&mut l);
        assert_eq!(out.len(), 1);
        let SipMessage::Request(cancel) = &out[0].message else {
            panic!()
        };
        assert_eq!(cancel.method, Method::Cancel);
        assert_eq!(cancel.cseq(), Some((1, Method::Cancel)));
        assert_eq!(cancel.top_via().unwrap().branch.as_deref(), Some(BRANCH));
        assert_eq!(out[0].destination, dst);

        // 200 to the CANCEL and 487 to the INVITE reach their own transactions.
        l.handle_response(now, response(cancel, 200, Some("b1")));
        l.handle_response(now, response(&invite(), 487, Some("b1")));
        let ev = events(&mut l);
        assert!(matches!(
            &ev[0],
            TransactionEvent::Client { id: c, event: ClientEvent::Final(r) } if *c == cancel_id && r.status_code.code() == 200
        ));
        assert!(matches!(
            &ev[1],
            TransactionEvent::Client { id: c, event: ClientEvent::Final(r) } if *c == id && r.status_code.code() == 487
        ));
        assert_eq!(method(&transmits(&mut l)[0]), Method::Ack);
        assert_eq!(l.client_state(id), Some(TransactionState::Completed));
        run_until(&mut l, now + SECS_32);
        assert!(l.is_empty());
    }

    #[test]
    fn cancel_before_a_provisional_waits_for_one() {
        let (t0, mut l) = layer();
        let id = l.send_request(t0, invite(), udp_destination()).unwrap();
        transmits(&mut l);
        let cancel_id = l.cancel(t0, id).unwrap();
        assert!(
            transmits(&mut l).is_empty(),
            "§9.1: not before a provisional"
        );
        l.handle_response(t0 + MS_1, response(&invite(), 100, None));
        let out = transmits(&mut l);
        assert_eq!(method(&out[0]), Method::Cancel);
        assert_eq!(l.client_state(cancel_id), Some(TransactionState::Trying));
    }

    #[test]
    fn held_cancel_is_dropped_when_a_final_response_comes_first() {
        let (t0, mut l) = layer();
        let id = l.send_request(t0, invite(), udp_destination()).unwrap();
        let cancel_id = l.cancel(t0, id).unwrap();
        events(&mut l);
        l.handle_response(t0, response(&invite(), 486, Some("b1")));
        let sent: Vec<Method> = transmits(&mut l).iter().map(method).collect();
        assert_eq!(sent, vec![Method::Invite, Method::Ack]);
        assert!(events(&mut l).iter().any(|e| matches!(
            e,
            TransactionEvent::Client { id: c, event: ClientEvent::Terminated } if *c == cancel_id
        )));
        assert_eq!(l.cancel(t0, id), None);
    }

    #[test]
    fn timer_b_reports_a_timeout_and_removes_the_transaction() {
        let (t0, mut l) = layer();
        let id = l.send_request(t0, invite(), udp_destination()).unwrap();
        run_until(&mut l, t0 + T1 * 64);
        let invites = transmits(&mut l).len();
        assert_eq!(invites, 7, "the INVITE and six retransmissions");
        let ev = events(&mut l);
        assert!(
            matches!(&ev[0], TransactionEvent::Client { id: c, event: ClientEvent::Timeout } if *c == id)
        );
        assert!(matches!(
            &ev[1],
            TransactionEvent::Client {
                event: ClientEvent::Terminated,
                ..
            }
        ));
        assert!(l.is_empty());
    }

    #[test]
    fn late_2xx_is_stray_after_timer_m() {
        let (t0, mut l) = layer();
        l.send_request(t0, invite(), udp_destination()).unwrap();
        let ok = response(&invite(), 200, Some("b1"));
        assert!(matches!(
            l.handle_response(t0, ok.clone()),
            ResponseDisposition::Matched
        ));
        assert!(matches!(
            l.handle_response(t0 + T1, ok.clone()),
            ResponseDisposition::Matched
        ));
        run_until(&mut l, t0 + T1 * 64);
        assert!(l.is_empty());
        assert!(matches!(
            l.handle_response(t0 + T1 * 65, ok),
            ResponseDisposition::Stray(_)
        ));
    }

    #[test]
    fn poll_timeout_is_the_earliest_across_transactions_and_skips_stale_entries() {
        let (t0, mut l) = layer();
        let a = l.send_request(t0, invite(), udp_destination()).unwrap();
        let later = t0 + MS_1 * 100;
        l.send_request(
            later,
            request_with("OPTIONS", "z9hG4bKopt", 3, None),
            udp_destination(),
        )
        .unwrap();
        assert_eq!(l.poll_timeout(), Some(t0 + T1));
        // A provisional disarms Timers A and B of the INVITE: only OPTIONS' E is left.
        l.handle_response(t0, response(&invite(), 180, None));
        assert_eq!(l.client_state(a), Some(TransactionState::Proceeding));
        assert_eq!(l.poll_timeout(), Some(later + T1));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn send_request_refuses_ack_and_missing_branch() {
        let (t0, mut l) = layer();
        let ack = request_with("ACK", BRANCH, 1, Some("x"));
        assert_eq!(
            l.send_request(t0, ack, udp_destination()),
            Err(TransactionError::AckIsNotATransaction)
        );
        let no_branch = request_with("OPTIONS", "", 1, None);
        assert_eq!(
            l.send_request(t0, no_branch, udp_destination()),
            Err(TransactionError::MissingBranch)
        );
        l.send_request(t0, options(), udp_destination()).unwrap();
        assert_eq!(
            l.send_request(t0, options(), udp_destination()),
            Err(TransactionError::DuplicateKey)
        );
    }

    #[test]
    fn transport_error_is_reported_with_the_id() {
        let (t0, mut l) = layer();
        let id = l.send_request(t0, options(), udp_destination()).unwrap();
        l.transport_error(t0, id.into());
        let ev = events(&mut l);
        assert!(
            matches!(&ev[0], TransactionEvent::Client { id: c, event: ClientEvent::TransportError } if *c == id)
        );
        assert!(l.is_empty());
    }

    #[test]
    fn a_request_that_could_not_be_sent_fails_its_transaction() {
        let (t0, mut l) = layer();
        let id = l.send_request(t0, options(), udp_destination()).unwrap();
        let mut other = options();
        other.method = Method::Info;
        assert!(
            !l.request_transport_error(t0, &other),
            "no such transaction"
        );
        assert!(l.request_transport_error(t0, &options()));
        let ev = events(&mut l);
        assert!(
            matches!(&ev[0], TransactionEvent::Client { id: c, event: ClientEvent::TransportError } if *c == id)
        );
    }

    #[test]
    fn per_source_count_tracks_live_server_transactions() {
        let (t0, mut l) = layer();
        let src = udp_source();
        new_id(l.handle_request(t0, invite(), src));
        let bye = request_with("BYE", "z9hG4bKbye", 2, Some("s1"));
        let bye_id = new_id(l.handle_request(t0, bye.clone(), src));
        let other = tcp_source();
        new_id(l.handle_request(t0, request_with("OPTIONS", "z9hG4bKo", 3, None), other));
        assert_eq!(l.server_transactions_from(src.remote.ip()), 2);
        assert_eq!(l.server_transactions_from(other.remote.ip()), 1);
        l.respond(t0, bye_id, response(&bye, 200, None)).unwrap();
        // Answered: no longer counted, though Timer J keeps it alive.
        assert_eq!(l.server_transactions_from(src.remote.ip()), 1);
        assert!(l.server_state(bye_id).is_some());
        run_until(&mut l, t0 + T1 * 64);
        assert_eq!(l.server_transactions_from(src.remote.ip()), 1);
    }

    #[test]
    fn an_abandoned_server_transaction_frees_its_source_at_once() {
        let (t0, mut l) = layer();
        let src = udp_source();
        let reg = request_with("REGISTER", "z9hG4bKreg", 1, None);
        let id = new_id(l.handle_request(t0, reg.clone(), src));
        assert_eq!(l.server_transactions_from(src.remote.ip()), 1);
        l.abandon(id);
        assert_eq!(l.server_transactions_from(src.remote.ip()), 0);
        assert!(l.server_state(id).is_none() && l.is_empty());
        assert!(transmits(&mut l).is_empty(), "nothing is sent");
        // Its retransmission is a new request for the TU to judge again.
        assert!(matches!(
            l.handle_request(t0, reg, src),
            RequestDisposition::New { .. }
        ));
    }
}
