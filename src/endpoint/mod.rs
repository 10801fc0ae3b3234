//! The endpoint: the sans-IO core that every received message enters.
//!
//! Like quinn's `Endpoint::handle`, it answers each message one of three
//! ways: route it to the transaction that owns it, create a new server
//! transaction and hand the request to its owner (the registrar, the OPTIONS
//! responder, later the call layer), or answer statelessly (400 for a
//! malformed request, 503 when a source holds too many transactions).
//! It keeps one transaction layer and one registrar per profile, so each
//! profile's timers and users stay its own. It never reads the clock nor
//! touches a socket: the driver feeds it `now` and drains `poll_*`.

mod event;
mod local;

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

pub use event::EndpointEvent;

use crate::config::Config;
use crate::net::{Destination, ProfileId, Source};
use crate::registrar::{RegisterOutcome, Registrar};
use crate::sip::{self, MessageHeaders, Method, Request, Response, SipMessage};
use crate::transaction::{
    RequestDisposition, ResponseDisposition, ServerTransactionId, TransactionLayer,
};

/// A message the driver must send.
#[derive(Debug, Clone)]
pub struct Transmit {
    pub destination: Destination,
    pub message: SipMessage,
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

pub struct Endpoint {
    profiles: Vec<ProfileState>,
    /// Stateless sends (malformed-request answers, overload 503s).
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
    /// Held-back answers by due time; the counter keeps equal times apart.
    delayed: BTreeMap<(Instant, u64), Delayed>,
    next_delayed: u64,
    /// The To tag of statelessly answered malformed requests (they create no dialog).
    reject_tag: String,
}

impl Endpoint {
    /// `secret` keys the registrars' nonces; a fresh one per start makes old nonces stale.
    pub fn new(config: &Config, secret: [u8; 32]) -> Self {
        let profiles = config
            .profiles
            .iter()
            .enumerate()
            .map(|(i, np)| {
                // Each profile gets its own key, derived so that profiles never share nonces.
                let mut key = secret;
                key[0] ^= i as u8;
                ProfileState {
                    name: np.name.clone(),
                    transactions: TransactionLayer::new(local::timer_settings(&np.profile)),
                    registrar: np
                        .profile
                        .registrar
                        .then(|| Registrar::new(local::registrar_settings(np), key)),
                    max_transactions_per_source: np.profile.auth_guard.max_transactions_per_source,
                }
            })
            .collect();
        Self {
            profiles,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            delayed: BTreeMap::new(),
            next_delayed: 0,
            reject_tag: sip::generate_tag(),
        }
    }

    /// Gives the registrars the wall clock once, for their Date headers.
    pub fn set_wall_clock(&mut self, now: Instant, wall: std::time::SystemTime) {
        for p in &mut self.profiles {
            if let Some(r) = &mut p.registrar {
                r.set_wall_clock(now, wall);
            }
        }
    }

    /// A well-formed message from the network.
    pub fn handle_message(&mut self, now: Instant, source: Source, message: SipMessage) {
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
                    });
                    return;
                }
                match profile.transactions.handle_request(now, request, source) {
                    RequestDisposition::New { id, request } => {
                        self.dispatch(now, source, id, request)
                    }
                    RequestDisposition::Cancel {
                        cancel_id,
                        invite_id,
                        request,
                    } => {
                        let profile = &mut self.profiles[source.profile.0];
                        let status = if invite_id.is_some() { 200 } else { 481 };
                        let _ = profile.transactions.respond(
                            now,
                            cancel_id,
                            local::answer(&request, status, None),
                        );
                        if let Some(invite_id) = invite_id {
                            if let Some(invite) =
                                profile.transactions.server_request(invite_id).cloned()
                            {
                                let _ = profile.transactions.respond(
                                    now,
                                    invite_id,
                                    local::answer(&invite, 487, None),
                                );
                            }
                        }
                    }
                    // A 2xx ACK with no dialog to take it: dialogs come with the call layer.
                    RequestDisposition::Ack2xx(ack) => tracing::debug!(
                        call_id = ack.call_id().unwrap_or(""),
                        "ACK for no dialog dropped"
                    ),
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
                            "stray response dropped"
                        )
                    }
                }
            }
        }
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
        let profile = &mut self.profiles[source.profile.0];
        let response = match request.method {
            Method::Register => match &mut profile.registrar {
                Some(registrar) => match registrar.handle_register(now, &request, &source) {
                    RegisterOutcome::Respond {
                        response,
                        delay: None,
                    } => response,
                    RegisterOutcome::Respond {
                        response,
                        delay: Some(delay),
                    } => {
                        self.delay(now + delay, source.profile, id, response);
                        return;
                    }
                    // A blocked source: no answer at all; Timer J cleans up.
                    RegisterOutcome::Drop => return,
                },
                None => local::answer(&request, 405, Some("This Profile Is Not A Registrar")),
            },
            Method::Options => local::options_ok(&request),
            // An in-dialog request: no dialog exists until the call layer creates one (§12.2.2).
            _ if request.to_tag().is_some() => local::answer(&request, 481, None),
            Method::Invite => match &profile.registrar {
                Some(r)
                    if !r
                        .lookup_at(request.uri.user().unwrap_or(""), now)
                        .is_empty() =>
                {
                    local::answer(&request, 480, Some("Call Routing Not Available"))
                }
                Some(r)
                    if r.settings()
                        .users
                        .contains(request.uri.user().unwrap_or("")) =>
                {
                    local::answer(&request, 480, Some("Not Registered"))
                }
                _ => local::answer(&request, 404, None),
            },
            Method::Bye => local::answer(&request, 481, None),
            _ => local::method_not_allowed(&request),
        };
        let _ = profile.transactions.respond(now, id, response);
    }

    fn delay(
        &mut self,
        at: Instant,
        profile: ProfileId,
        id: ServerTransactionId,
        response: Response,
    ) {
        self.next_delayed += 1;
        self.delayed.insert(
            (at, self.next_delayed),
            Delayed {
                profile,
                id,
                response,
            },
        );
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let d = entry.remove();
            let _ = self.profiles[d.profile.0]
                .transactions
                .respond(now, d.id, d.response);
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
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let delayed = self.delayed.keys().next().map(|(at, _)| *at);
        self.profiles
            .iter_mut()
            .flat_map(|p| {
                [
                    p.transactions.poll_timeout(),
                    p.registrar.as_ref().and_then(|r| r.poll_timeout()),
                ]
            })
            .chain([delayed])
            .flatten()
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        self.profiles.iter_mut().find_map(|p| {
            p.transactions.poll_transmit().map(|t| Transmit {
                destination: t.destination,
                message: t.message,
            })
        })
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        if let Some(e) = self.events.pop_front() {
            return Some(e);
        }
        for (i, p) in self.profiles.iter_mut().enumerate() {
            // Transaction events have no owner above the endpoint yet; they are logged.
            while let Some(e) = p.transactions.poll_event() {
                tracing::trace!(?e, "transaction event");
            }
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
