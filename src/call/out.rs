//! What the call layer needs from the endpoint around it: sending through
//! the transaction layers, the location service, the local addresses.
//!
//! A trait rather than queues so that a request's client transaction id is
//! known the moment it is sent (responses and CANCELs are matched by it).
//! The endpoint implements it over its per-profile transaction layers and
//! registrars; unit tests implement it with a recorder. Nothing here does
//! I/O: every send lands in a transaction layer's own queue.

use std::net::SocketAddr;
use std::time::Instant;

use crate::net::{Destination, ProfileId, Source, TransportKind};
use crate::registrar::{Binding, RequestAuth};
use crate::sip::{Request, Response, SipMessage};
use crate::transaction::{ClientTransactionId, ServerTransactionId};

pub trait SipOut {
    /// Starts a client transaction; `None` when it could not be started (logged).
    fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        destination: Destination,
    ) -> Option<ClientTransactionId>;
    /// Answers a server transaction of `profile`.
    fn respond(
        &mut self,
        now: Instant,
        profile: ProfileId,
        tx: ServerTransactionId,
        response: Response,
    );
    /// Answers a server transaction of `profile` at `at`, not before (a
    /// refusal the registrar's brute-force guard holds back).
    fn respond_at(
        &mut self,
        at: Instant,
        profile: ProfileId,
        tx: ServerTransactionId,
        response: Response,
    );
    /// Sends outside any transaction (the ACK to a 2xx, a 2xx retransmission).
    fn send_stateless(&mut self, destination: Destination, message: SipMessage);
    /// CANCELs a pending INVITE client transaction (§9.1).
    fn cancel(&mut self, now: Instant, profile: ProfileId, tx: ClientTransactionId);
    /// The live bindings of `user` on a registrar profile; `None` when the
    /// profile has no such user at all (404 rather than 480).
    fn lookup(&self, profile: ProfileId, user: &str, now: Instant) -> Option<Vec<Binding>>;
    /// Digest authentication of an out-of-dialog request by the registrar of
    /// `source.profile` (`Proxy-Authorization`, 407 challenges; its nonces
    /// and brute-force guard); `None` when the profile is no registrar.
    fn authenticate(
        &mut self,
        now: Instant,
        source: &Source,
        request: &Request,
    ) -> Option<RequestAuth>;
    /// The address a profile listens on for `transport` (Via sent-by, Contact).
    fn local_address(&self, profile: ProfileId, transport: TransportKind) -> Option<SocketAddr>;
}
