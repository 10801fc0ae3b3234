//! The endpoint: the sans-IO core that every received message enters.
//!
//! Like quinn's `Endpoint::handle`, it answers each message one of three
//! ways: route it to the transaction that owns it, create a new server
//! transaction and hand the request to its owner (the registrar, the OPTIONS
//! responder, later the call layer), or answer statelessly (400 for a
//! malformed request, 503 when a source holds too many transactions; a
//! trunk peer's source is exempt from that cap: its own limits govern it,
//! in the call layer).
//! It keeps one transaction layer and one registrar per profile, so each
//! profile's timers and users stay its own. It never reads the clock nor
//! touches a socket: the driver feeds it `now` and drains `poll_*`.
//!
//! The driver runs one endpoint per worker ([`Endpoint::sharded`]), each
//! fed the messages whose Call-ID maps to it (`crate::shard`); what must be
//! one for all — registrar bindings, nonce key and replay table, the
//! brute-force guard, the session table — is shared by the registrars'
//! siblings and the call layers. What one worker needs another to do (a
//! dialog handed over in an attended transfer) leaves through
//! [`Endpoint::poll_peer`] and arrives through [`Endpoint::handle_peer`].

mod event;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

pub use event::EndpointEvent;
pub use settings::{EndpointProfile, EndpointSettings};

use crate::call::{CallCommand, CallId, CallLayer, CommandError, PeerCall, Sessions, SipOut};
use crate::media::{MediaCommand, MediaEvent};
use crate::net::{Destination, ProfileId, Source, TransportKind};
use crate::registrar::{Binding, RegisterOutcome, Registrar, RequestAuth};
use crate::shard::Shards;
use crate::sip::{self, MessageHeaders, Method, Request, Response, SipMessage};
use crate::transaction::{
    ClientTransactionId, RequestDisposition, ResponseDisposition, ServerTransactionId,
    TransactionEvent, TransactionLayer,
};

/// A message the driver must send: the transaction layer's own type, so a
/// send failure can name the transaction (`None` for what the endpoint sends
/// statelessly).
pub use crate::transaction::Transmit;

/// What one endpoint worker hands another (the driver carries it).
#[derive(Debug)]
pub enum PeerMessage {
    /// A message for a dialog this worker handed over to the addressee.
    Inbound {
        source: Source,
        message: Box<SipMessage>,
    },
    /// A media event of a leg this worker handed over.
    Media(MediaEvent),
    /// The call layers' own (attended transfer across workers).
    Call(PeerCall),
}

/// One profile's protocol state.
struct ProfileState {
    name: String,
    transactions: TransactionLayer,
    registrar: Option<Registrar>,
    max_transactions_per_source: usize,
}

/// A response held back by the brute-force guard (it slows a guessing source).
struct Delayed {
    profile: ProfileId,
    id: ServerTransactionId,
    response: Response,
}

/// Held-back answers by due time; the counter keeps equal times apart.
#[derive(Default)]
struct HeldAnswers {
    due: BTreeMap<(Instant, u64), Delayed>,
    next: u64,
}

impl HeldAnswers {
    fn push(
        &mut self,
        at: Instant,
        profile: ProfileId,
        id: ServerTransactionId,
        response: Response,
    ) {
        self.next += 1;
        self.due.insert(
            (at, self.next),
            Delayed {
                profile,
                id,
                response,
            },
        );
    }
}

pub struct Endpoint {
    profiles: Vec<ProfileState>,
    /// Stateless sends (malformed-request answers, overload 503s).
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    delayed: HeldAnswers,
    /// The To tag of statelessly answered malformed requests (they create no dialog).
    reject_tag: String,
    /// The B2BUA.
    calls: CallLayer,
    /// Where each profile listens, per transport (Via sent-by, Contact).
    locals: HashMap<(ProfileId, TransportKind), SocketAddr>,
    /// Messages for other workers: (worker, message).
    peers: VecDeque<(usize, PeerMessage)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("profiles", &self.profiles.len())
            .field("locals", &self.locals)
            .finish_non_exhaustive()
    }
}

/// The endpoint's transaction layers and registrars lent to the call layer.
struct Context<'a> {
    profiles: &'a mut [ProfileState],
    transmits: &'a mut VecDeque<Transmit>,
    delayed: &'a mut HeldAnswers,
    locals: &'a HashMap<(ProfileId, TransportKind), SocketAddr>,
}

impl SipOut for Context<'_> {
    fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        destination: Destination,
    ) -> Option<ClientTransactionId> {
        let p = self.profiles.get_mut(destination.profile.0)?;
        match p.transactions.send_request(now, request, destination) {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(error = %e, "request not sent");
                None
            }
        }
    }

    fn respond(
        &mut self,
        now: Instant,
        profile: ProfileId,
        tx: ServerTransactionId,
        response: Response,
    ) {
        if let Some(p) = self.profiles.get_mut(profile.0) {
            if let Err(e) = p.transactions.respond(now, tx, response) {
                tracing::debug!(error = %e, "response not sent");
            }
        }
    }

    fn respond_at(
        &mut self,
        at: Instant,
        profile: ProfileId,
        tx: ServerTransactionId,
        response: Response,
    ) {
        self.delayed.push(at, profile, tx, response);
    }

    fn send_stateless(&mut self, destination: Destination, message: SipMessage) {
        self.transmits.push_back(Transmit {
            destination,
            message,
            transaction: None,
        });
    }

    fn cancel(&mut self, now: Instant, profile: ProfileId, tx: ClientTransactionId) {
        if let Some(p) = self.profiles.get_mut(profile.0) {
            let _ = p.transactions.cancel(now, tx);
        }
    }

    fn lookup(&self, profile: ProfileId, user: &str, now: Instant) -> Option<Vec<Binding>> {
        let r = self.profiles.get(profile.0)?.registrar.as_ref()?;
        if !r.settings().users.contains(user) {
            return None;
        }
        Some(r.lookup_at(user, now))
    }

    fn authenticate(
        &mut self,
        now: Instant,
        source: &Source,
        request: &Request,
    ) -> Option<RequestAuth> {
        let r = self
            .profiles
            .get_mut(source.profile.0)?
            .registrar
            .as_mut()?;
        Some(r.authenticate_request(now, request, source))
    }

    fn local_address(&self, profile: ProfileId, transport: TransportKind) -> Option<SocketAddr> {
        self.locals.get(&(profile, transport)).copied()
    }
}

/// Borrows the parts of the endpoint the call layer works through.
macro_rules! calls_and_context {
    ($self:ident) => {
        (
            &mut $self.calls,
            Context {
                profiles: &mut $self.profiles,
                transmits: &mut $self.transmits,
                delayed: &mut $self.delayed,
                locals: &$self.locals,
            },
        )
    };
}

impl Endpoint {
    /// `secret` keys the registrars' nonces; a fresh one per start makes old nonces stale.
    pub fn new(settings: &EndpointSettings, secret: [u8; 32], sessions: Sessions) -> Self {
        let peers = std::sync::Arc::new(crate::call::PeerTable::new(&settings.calls));
        Self::with_peers(settings, secret, sessions, peers)
    }

    /// As `new`, with the process's one trunk-peer table (shared with the
    /// HTTP API and any other endpoint worker).
    pub fn with_peers(
        settings: &EndpointSettings,
        secret: [u8; 32],
        sessions: Sessions,
        peers: std::sync::Arc<crate::call::PeerTable>,
    ) -> Self {
        let profiles = settings
            .profiles
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Each profile gets its own key, derived so that profiles never share nonces.
                let mut key = secret;
                key[0] ^= i as u8;
                ProfileState {
                    name: p.name.clone(),
                    transactions: TransactionLayer::new(p.timers),
                    registrar: p.registrar.clone().map(|r| Registrar::new(r, key)),
                    max_transactions_per_source: p.max_transactions_per_source,
                }
            })
            .collect();
        Self {
            profiles,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            delayed: HeldAnswers::default(),
            reject_tag: sip::generate_tag(),
            calls: CallLayer::with_peers(settings.calls.clone(), sessions, peers),
            locals: HashMap::new(),
            peers: VecDeque::new(),
        }
    }

    /// The transaction layer of `profile` (`None` for a profile this
    /// endpoint was not built with, which no source names).
    fn transactions(&mut self, profile: ProfileId) -> Option<&mut TransactionLayer> {
        self.profiles
            .get_mut(profile.0)
            .map(|p| &mut p.transactions)
    }

    /// Makes this endpoint the one that pings trunk peers (`ping_interval_secs`).
    pub fn start_pings(&mut self, now: Instant) {
        self.calls.start_pings(now);
    }

    /// Media ports are bound when allocated, before any SDP names them (the
    /// driver's choice: the sans-IO scenarios allocate numbers only).
    pub fn bind_media_ports(&mut self) {
        self.calls.bind_media_ports();
    }

    /// The endpoints of `shards.count()` workers: each owns the
    /// transactions, dialogs and calls of the Call-IDs and call ids that map
    /// to it (`crate::shard`), and all share what must be one: the session
    /// table, and per registrar profile the bindings, the nonce key and
    /// replay table, and the brute-force guard (`Registrar::sibling`).
    pub fn sharded(
        settings: &EndpointSettings,
        secret: [u8; 32],
        sessions: Sessions,
        peers: std::sync::Arc<crate::call::PeerTable>,
        shards: &Shards,
    ) -> Vec<Self> {
        let first = Self::with_peers(settings, secret, sessions.clone(), peers.clone());
        let mut all: Vec<Self> = (1..shards.count())
            .map(|i| {
                let mut e = Self::with_peers(settings, secret, sessions.clone(), peers.clone());
                for (p, mine) in e.profiles.iter_mut().zip(&first.profiles) {
                    p.registrar = mine.registrar.as_ref().map(Registrar::sibling);
                }
                e.calls.set_shard(shards.shard(i));
                e
            })
            .collect();
        let mut first = first;
        first.calls.set_shard(shards.shard(0));
        all.insert(0, first);
        all
    }

    /// The addresses the listeners bound (ports chosen by the OS included).
    pub fn set_local_address(
        &mut self,
        profile: ProfileId,
        transport: TransportKind,
        address: SocketAddr,
    ) {
        self.locals.entry((profile, transport)).or_insert(address);
    }

    /// A command from the layer above (the HTTP API).
    pub fn handle_command(
        &mut self,
        now: Instant,
        command: CallCommand,
    ) -> Result<CallId, CommandError> {
        let (calls, mut cx) = calls_and_context!(self);
        calls.handle_command(now, &mut cx, command)
    }

    /// An event from the media relay.
    pub fn handle_media_event(&mut self, now: Instant, event: MediaEvent) {
        if let Some(worker) = self.calls.moved_media(&event) {
            self.peers.push_back((worker, PeerMessage::Media(event)));
            return;
        }
        let (calls, mut cx) = calls_and_context!(self);
        calls.handle_media_event(now, &mut cx, event);
    }

    /// What the call layer asks of the media relay.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.calls.poll_media()
    }

    /// Gives the registrars the wall clock once, for their Date headers.
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        for p in &mut self.profiles {
            if let Some(r) = &mut p.registrar {
                r.set_wall_clock(now, wall);
            }
        }
        self.calls.set_wall_clock(now, wall);
    }

    /// A well-formed message from the network.
    pub fn handle_message(&mut self, now: Instant, source: Source, message: SipMessage) {
        // A dialog handed to another worker (attended transfer): its messages follow it.
        let moved = match self.calls.forwards_any() {
            true => message.call_id().and_then(|c| self.calls.moved_to(c)),
            false => None,
        };
        if let Some(worker) = moved {
            self.peers.push_back((
                worker,
                PeerMessage::Inbound {
                    source,
                    message: Box::new(message),
                },
            ));
            return;
        }
        let Some(profile) = self.profiles.get_mut(source.profile.0) else {
            return;
        };
        match message {
            SipMessage::Request(mut request) => {
                if profile
                    .registrar
                    .as_ref()
                    .is_some_and(|r| r.is_blocked(now, source.remote.ip()))
                {
                    tracing::debug!(remote = %source.remote, "request from a blocked source dropped");
                    return;
                }
                let Some(via) = request.top_via() else { return };
                let (received, rport) = source.via_stamp(&via);
                sip::stamp_top_via(&mut request, received, rport);
                let span = tracing::debug_span!("request", profile = %profile.name, method = %request.method, call_id = request.call_id().unwrap_or(""));
                let _enter = span.enter();
                if request.method != Method::Ack
                    && profile
                        .transactions
                        .server_transactions_from(source.remote.ip())
                        >= profile.max_transactions_per_source
                    // A trunk peer's calls are bounded by its own limits.
                    && !self.calls.is_peer_source(source.profile, source.remote.ip())
                {
                    tracing::info!(remote = %source.remote, "too many transactions from this source");
                    let mut response = sip::response_to(
                        &request,
                        503,
                        Some("Too Many Transactions From This Source"),
                    );
                    response
                        .headers
                        .push(sip::make_header("Retry-After", "5".into()));
                    self.transmits.push_back(Transmit {
                        destination: source.response_destination(&via),
                        message: response.into(),
                        transaction: None,
                    });
                    return;
                }
                match profile
                    .transactions
                    .handle_request_via(now, request, &via, source)
                {
                    RequestDisposition::New { id, request } => {
                        self.dispatch(now, source, id, request)
                    }
                    RequestDisposition::Cancel {
                        cancel_id,
                        invite_id,
                        request,
                    } => {
                        let status = if invite_id.is_some() { 200 } else { 481 };
                        if let Some(t) = self.transactions(source.profile) {
                            let _ = t.respond(now, cancel_id, sip::answer(&request, status, None));
                        }
                        if let Some(invite_id) =
                            invite_id.filter(|&i| self.calls.owns_invite(source.profile, i))
                        {
                            let (calls, mut cx) = calls_and_context!(self);
                            calls.handle_cancel(now, &mut cx, source.profile, invite_id);
                        } else if let Some(invite_id) = invite_id {
                            if let Some(t) = self.transactions(source.profile) {
                                if let Some(invite) = t.server_request(invite_id).cloned() {
                                    let _ =
                                        t.respond(now, invite_id, sip::answer(&invite, 487, None));
                                }
                            }
                        }
                    }
                    RequestDisposition::Ack2xx(ack) => {
                        let (calls, mut cx) = calls_and_context!(self);
                        calls.handle_ack(now, &mut cx, ack);
                    }
                    RequestDisposition::Invalid(_) => {
                        tracing::debug!("request without transaction key dropped")
                    }
                    RequestDisposition::Absorbed | RequestDisposition::AckForNon2xx => {}
                }
            }
            SipMessage::Response(response) => {
                match profile.transactions.handle_response(now, response) {
                    ResponseDisposition::Matched => {}
                    ResponseDisposition::Stray(r) => {
                        tracing::debug!(
                            status = r.status_code.code(),
                            call_id = r.call_id().unwrap_or(""),
                            "stray response"
                        );
                        let (calls, mut cx) = calls_and_context!(self);
                        calls.handle_stray_response(now, &mut cx, r);
                    }
                }
                self.route_transaction_events(now);
            }
        }
    }

    /// A message from another worker.
    pub fn handle_peer(&mut self, now: Instant, message: PeerMessage) {
        match message {
            PeerMessage::Inbound { source, message } => self.handle_message(now, source, *message),
            PeerMessage::Media(event) => self.handle_media_event(now, event),
            PeerMessage::Call(m) => {
                let (calls, mut cx) = calls_and_context!(self);
                calls.handle_peer(now, &mut cx, m);
            }
        }
    }

    /// A message for another worker: (worker, message).
    pub fn poll_peer(&mut self) -> Option<(usize, PeerMessage)> {
        if let Some(p) = self.peers.pop_front() {
            return Some(p);
        }
        self.calls
            .poll_peer()
            .map(|(w, m)| (w, PeerMessage::Call(m)))
    }

    /// A malformed request the parser could still answer.
    pub fn handle_reject(&mut self, _now: Instant, source: Source, response: Response) {
        if let Some(via) = response.top_via() {
            // RFC 3581 §4 and §18.2.1 apply to statelessly answered requests too.
            let mut response = sip::with_to_tag(response, &self.reject_tag);
            let (received, rport) = source.via_stamp(&via);
            sip::stamp_top_via(&mut response, received, rport);
            self.transmits.push_back(Transmit {
                destination: source.response_destination(&via),
                message: response.into(),
                transaction: None,
            });
        }
    }

    /// A new server transaction: find who answers it.
    fn dispatch(
        &mut self,
        now: Instant,
        source: Source,
        id: ServerTransactionId,
        request: Request,
    ) {
        // RFC 3261 §8.2.2.3: an extension we lack is refused before anything
        // else (REGISTER's are the registrar's to judge).
        if request.method != Method::Register {
            if let Some(response) = sip::unsupported_require(&request) {
                if let Some(t) = self.transactions(source.profile) {
                    let _ = t.respond(now, id, response);
                }
                return;
            }
        }
        let response = match request.method {
            Method::Register => match self
                .profiles
                .get_mut(source.profile.0)
                .and_then(|p| p.registrar.as_mut())
            {
                Some(registrar) => match registrar.handle_register(now, &request, &source) {
                    RegisterOutcome::Respond {
                        response,
                        delay: None,
                    } => response,
                    RegisterOutcome::Respond {
                        response,
                        delay: Some(delay),
                    } => {
                        self.delayed.push(now + delay, source.profile, id, response);
                        return;
                    }
                    RegisterOutcome::Challenge(response) => {
                        if let Some(t) = self.transactions(source.profile) {
                            let _ = t.respond(now, id, response);
                            t.abandon(id);
                        }
                        return;
                    }
                    // A blocked source or user: no answer at all, and no
                    // transaction left waiting for one (it would hold the
                    // source's quota for ever, turning a blocked user into a
                    // blocked address).
                    RegisterOutcome::Drop => {
                        if let Some(t) = self.transactions(source.profile) {
                            t.abandon(id);
                        }
                        return;
                    }
                },
                None => sip::answer(&request, 405, Some("This Profile Is Not A Registrar")),
            },
            // A request within a dialog: the call layer's, or 481 (§12.2.2).
            _ if request.to_tag().is_some() => {
                if self.calls.owns_request(&request) {
                    let (calls, mut cx) = calls_and_context!(self);
                    calls.handle_in_dialog(now, &mut cx, source, id, request);
                    return;
                }
                if self.calls.is_crossing_bye(&request) {
                    sip::answer(&request, 200, None)
                } else {
                    sip::answer(&request, 481, None)
                }
            }
            Method::Options => sip::options_ok(&request),
            Method::Invite => {
                let (calls, mut cx) = calls_and_context!(self);
                calls.handle_invite(now, &mut cx, source, id, request);
                return;
            }
            Method::Bye => sip::answer(&request, 481, None),
            _ => sip::method_not_allowed(&request),
        };
        if let Some(t) = self.transactions(source.profile) {
            let _ = t.respond(now, id, response);
        }
    }

    /// The driver could not send `message` (no connection could be made,
    /// the peer's TLS certificate was refused, ...): the client transaction
    /// that sent it fails with a transport error (RFC 3261 §17.1.4), which
    /// the call layer takes as a 503 and a reason to try the peer's next
    /// server (RFC 3263 §4.3).
    pub fn handle_send_failure(&mut self, now: Instant, profile: ProfileId, message: &SipMessage) {
        let SipMessage::Request(request) = message else {
            return;
        };
        if let Some(p) = self.profiles.get_mut(profile.0) {
            if p.transactions.request_transport_error(now, request) {
                self.route_transaction_events(now);
            }
        }
    }

    /// Where a trunk peer's requests go, in order: the driver's RFC 3263
    /// resolution of a peer given by name.
    pub fn set_peer_targets(&mut self, profile: ProfileId, peer: usize, targets: Vec<SocketAddr>) {
        self.calls.set_peer_targets(profile, peer, targets);
    }

    /// A stream connection closed (the driver has forgotten its writer):
    /// the bindings tied to it go (RFC 7118 §5).
    pub fn connection_closed(&mut self, connection: crate::net::ConnectionId) {
        for p in &mut self.profiles {
            if let Some(r) = &mut p.registrar {
                r.connection_closed(connection);
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            if let Some(t) = self.transactions(d.profile) {
                let _ = t.respond(now, d.id, d.response);
            }
        }
        if self.calls.poll_timeout().is_some_and(|t| t <= now) {
            let (calls, mut cx) = calls_and_context!(self);
            calls.handle_timeout(now, &mut cx);
        }
        for p in &mut self.profiles {
            if p.transactions.poll_timeout().is_some_and(|t| t <= now) {
                p.transactions.handle_timeout(now);
            }
            if let Some(r) = &mut p.registrar {
                if r.poll_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                }
            }
        }
        self.route_transaction_events(now);
    }

    /// Client transaction events go to the call layer, which sent those requests.
    fn route_transaction_events(&mut self, now: Instant) {
        for i in 0..self.profiles.len() {
            while let Some(e) = self
                .profiles
                .get_mut(i)
                .and_then(|p| p.transactions.poll_event())
            {
                match e {
                    TransactionEvent::Client { id, event } => {
                        let (calls, mut cx) = calls_and_context!(self);
                        calls.handle_client_event(now, &mut cx, ProfileId(i), id, event);
                    }
                    other => tracing::trace!(?other, "transaction event"),
                }
            }
        }
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let delayed = self.delayed.due.keys().next().map(|(at, _)| *at);
        self.profiles
            .iter_mut()
            .flat_map(|p| {
                [
                    p.transactions.poll_timeout(),
                    p.registrar.as_ref().and_then(|r| r.poll_timeout()),
                ]
            })
            .chain([delayed, self.calls.poll_timeout()])
            .flatten()
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        self.profiles
            .iter_mut()
            .find_map(|p| p.transactions.poll_transmit())
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        if let Some(e) = self.calls.poll_event() {
            return Some(EndpointEvent::Call(e));
        }
        if let Some(e) = self.calls.poll_peer_event() {
            return Some(EndpointEvent::Peer(e));
        }
        for (i, p) in self.profiles.iter_mut().enumerate() {
            if let Some(e) = p.registrar.as_mut().and_then(|r| r.poll_event()) {
                return Some(EndpointEvent::Registrar {
                    profile: ProfileId(i),
                    event: e,
                });
            }
        }
        None
    }
}
