//! The registrar and location service (RFC 3261 §10.3), with digest
//! authentication (RFC 3261 §22.4, RFC 8760, RFC 7616) and a guard against
//! password guessing.
//!
//! Sans-IO like the other protocol layers: [`Registrar::handle_register`]
//! takes a REGISTER, where it came from and `now`, and answers with the
//! response to send (and how long to hold it back) or with "drop it";
//! [`Registrar::poll_timeout`] / [`Registrar::handle_timeout`] expire
//! bindings on a virtual clock; [`Registrar::poll_event`] reports what
//! happened. Nothing here reads a clock, opens a socket or spawns.
//!
//! Path (RFC 3327): a REGISTER's Path values are kept with the bindings it
//! makes and are the route set of requests sent to those contacts (the call
//! layer preloads them as Route); the 200 OK echoes them when the UA said
//! it supports Path, and every 200 OK says `Supported: path`.
//!
//! The steps follow §10.3: Require (step 2), authentication (3),
//! authorization — the digest username must be the To user (4), the AOR
//! from To (5), Contact processing (6, 7) and the 200 OK listing every
//! current binding (8). Step 1 (is the domain ours?) is left to the caller:
//! Switchback serves one domain, and AORs are keyed by user part only
//! (see `bindings.rs`).
//!
//! Files: `nonce.rs` (stateless nonces, nc replay table), `auth.rs` (the
//! authentication decision and challenges), `proxy_auth.rs` (the same for other requests,
//! by 407: phones' INVITEs), `users.rs` (credentials), `contact.rs`
//! (Contact/To parsing), `bindings.rs` (the location service), `guard.rs`
//! (failure rate limiting), `events.rs`, `date.rs`. The hash arithmetic and
//! header parsing are `crate::digest`, shared with the call layer.

mod algorithms;
// HMAC-SHA256 takes a key of any length (RFC 2104 §2): the `expect` on
// building one cannot fail.
#[allow(clippy::expect_used)]
mod auth;
mod bindings;
mod contact;
mod date;
mod events;
mod guard;
// As for `auth`: HMAC over any key length.
#[allow(clippy::expect_used)]
mod nonce;
mod proxy_auth;
mod users;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, info, warn};

pub use crate::digest::{
    digests_match, ha1_from_password, request_digest, DigestAlgorithm, DigestChallenge,
    DigestCredentials, DigestInput, DigestParseError, QopAuth,
};
pub use algorithms::AlgorithmPolicy;
pub use auth::AuthResult;
pub use bindings::{Binding, LocationService};
pub use contact::QValue;
pub use date::WallClock;
pub use events::RegistrarEvent;
pub use guard::{AuthGuard, FailureOutcome, GuardSettings, Verdict};
pub use proxy_auth::RequestAuth;
pub use users::{Credentials, UserDirectory};

use crate::net::{ConnectionId, Source};
use crate::sip::{
    generate_tag, make_header, response_to, set_content_length, with_to_tag, MessageHeaders,
    Method, Request, Response,
};
use auth::{AuthRequest, Authenticator, Presented};
use bindings::{Change, ContactUpdate, RegisterContext, Update};
use contact::{parse_contacts, Contacts};

/// Registrar configuration.
#[derive(Debug, Clone)]
pub struct RegistrarSettings {
    /// The digest realm (RFC 3261 §22.1: usually the domain).
    pub realm: String,
    /// Shorter non-zero expiries are refused with 423 (§10.3 step 7).
    pub min_expires: u32,
    /// Longer expiries are shortened to this.
    pub max_expires: u32,
    /// The expiry when neither the Contact nor an Expires header gives one.
    pub default_expires: u32,
    /// How long a nonce authenticates before it is answered `stale=true`.
    pub nonce_lifetime: Duration,
    /// Offered algorithms, most preferred first, per user and `User-Agent`
    /// (RFC 8760 §2.4); one WWW-Authenticate per entry, in this order.
    pub algorithms: AlgorithmPolicy,
    /// Accept MD5 credentials without qop (RFC 2069 form, §22.4).
    pub allow_no_qop: bool,
    pub users: UserDirectory,
    pub guard: GuardSettings,
    /// Bindings kept per AOR; a new one displaces the soonest expiring.
    pub max_contacts_per_aor: usize,
    /// Nonces whose nonce-count is remembered at most.
    pub max_tracked_nonces: usize,
}

impl Default for RegistrarSettings {
    fn default() -> Self {
        RegistrarSettings {
            realm: "switchback".into(),
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            nonce_lifetime: Duration::from_secs(300),
            algorithms: AlgorithmPolicy::new(vec![DigestAlgorithm::Md5]),
            allow_no_qop: true,
            users: UserDirectory::new(),
            guard: GuardSettings::default(),
            max_contacts_per_aor: 10,
            max_tracked_nonces: 100_000,
        }
    }
}

/// What to do with a REGISTER (or another request the registrar authenticated).
#[derive(Debug, Clone)]
pub enum RegisterOutcome {
    /// Send `response`, after `delay` if given (slowed failure answers).
    Respond {
        response: Response,
        delay: Option<Duration>,
    },
    /// Send this challenge (401) and keep no transaction for it: a
    /// challenge is stateless, as in Kamailio and OpenSIPS. A retransmitted
    /// REGISTER gets a fresh one, as good as the first; what RFC 3261 §8.2.7
    /// rules out is a stateless registrar, and the REGISTER that changes
    /// bindings keeps its transaction. Half the REGISTERs a phone sends are
    /// challenged, and each kept transaction would hold its 401 for 64*T1.
    Challenge(Response),
    /// Send nothing: the source is blocked.
    Drop,
}

impl RegisterOutcome {
    /// The response, if any.
    pub fn response(&self) -> Option<&Response> {
        match self {
            RegisterOutcome::Respond { response, .. } | RegisterOutcome::Challenge(response) => {
                Some(response)
            }
            RegisterOutcome::Drop => None,
        }
    }
}

/// The registrar: authentication, bindings and their expiry.
#[derive(Debug)]
pub struct Registrar {
    settings: RegistrarSettings,
    auth: Authenticator,
    guard: AuthGuard,
    location: LocationService,
    events: VecDeque<RegistrarEvent>,
    /// `now` of the first input: nonce timestamps count from here. Shared
    /// with the sibling registrars of other endpoint workers, which verify
    /// each other's nonces.
    epoch: Arc<OnceLock<Instant>>,
    wall_clock: Option<WallClock>,
}

impl Registrar {
    /// A registrar with these settings; `nonce_secret` keys the nonce MACs
    /// (a random secret per start makes old nonces fail after a restart).
    pub fn new(settings: RegistrarSettings, nonce_secret: [u8; 32]) -> Self {
        let auth = Authenticator::new(
            settings.realm.clone(),
            settings.algorithms.clone(),
            settings.allow_no_qop,
            settings.nonce_lifetime.as_millis() as u64,
            settings.max_tracked_nonces,
            nonce_secret,
        );
        Registrar {
            guard: AuthGuard::new(settings.guard.clone()),
            location: LocationService::new(settings.max_contacts_per_aor),
            auth,
            settings,
            events: VecDeque::new(),
            epoch: Arc::new(OnceLock::new()),
            wall_clock: None,
        }
    }

    /// A registrar for another endpoint worker: the same users and settings,
    /// and the same state where it must be one for all workers — bindings
    /// (a concurrent table), the brute-force guard's records, the nonce key,
    /// serials, epoch and nonce-count replay table. Its events, expiry index
    /// and wall clock are its own.
    pub fn sibling(&self) -> Registrar {
        Registrar {
            settings: self.settings.clone(),
            auth: self.auth.clone(),
            guard: self.guard.sibling(),
            location: self.location.sibling(),
            events: VecDeque::new(),
            epoch: self.epoch.clone(),
            wall_clock: self.wall_clock,
        }
    }

    pub fn settings(&self) -> &RegistrarSettings {
        &self.settings
    }

    /// The users, for changes at run time.
    pub fn users_mut(&mut self) -> &mut UserDirectory {
        &mut self.settings.users
    }

    /// Tells the registrar which wall time `at` is, so 200 OKs can carry a
    /// `Date` header (§10.3 step 8) without reading a clock. Without it the
    /// Date header is left out.
    pub fn set_wall_clock(&mut self, at: Instant, wall: SystemTime) {
        self.wall_clock = Some(WallClock { at, wall });
    }

    /// The location service, read-only.
    pub fn location(&self) -> &LocationService {
        &self.location
    }

    /// The contacts registered for `user`, best first (q, then most recent).
    pub fn lookup(&self, user: &str) -> Vec<Binding> {
        self.location.lookup(user)
    }

    /// Like [`Registrar::lookup`], leaving out bindings expired at `now`
    /// that `handle_timeout` has not removed yet.
    pub fn lookup_at(&self, user: &str, now: Instant) -> Vec<Binding> {
        self.location.lookup_at(user, now)
    }

    /// When the next binding expires.
    /// Whether the brute-force guard has blocked this source: the endpoint
    /// then drops every request from it, not only REGISTER.
    pub fn is_blocked(&self, now: Instant, ip: std::net::IpAddr) -> bool {
        self.guard.is_blocked(now, ip)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.location.next_expiry()
    }

    /// Removes the bindings expired at `now` (one `Expired` event each).
    pub fn handle_timeout(&mut self, now: Instant) {
        for b in self.location.expire(now) {
            info!(aor = %b.aor, contact = %b.contact, "binding expired");
            self.events.push_back(RegistrarEvent::Expired {
                aor: b.aor,
                contact: b.contact,
            });
        }
        let now_ms = self.millis(now);
        self.auth.prune(now_ms);
    }

    /// A stream connection closed: the bindings tied to it go (RFC 7118
    /// §5; see `bindings.rs`), one `ConnectionClosed` event each.
    pub fn connection_closed(&mut self, connection: ConnectionId) {
        for b in self.location.connection_closed(connection) {
            info!(aor = %b.aor, contact = %b.contact, "binding gone with its connection");
            self.events.push_back(RegistrarEvent::ConnectionClosed {
                aor: b.aor,
                contact: b.contact,
            });
        }
    }

    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    fn millis(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_init(|| now);
        now.saturating_duration_since(epoch).as_millis() as u64
    }

    /// Handles one REGISTER (§10.3).
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &Request,
        source: &Source,
    ) -> RegisterOutcome {
        let ip = source.remote.ip();
        let presented = auth::presented(
            &request.header_values_unsplit("Authorization"),
            &self.settings.realm,
        );
        if self.blocked(now, ip, request, "To", &presented) {
            debug!(%ip, "REGISTER from blocked source or user dropped");
            return RegisterOutcome::Drop;
        }
        if request.method != Method::Register {
            let mut r = self.response(request, 405, None);
            r.headers.push(make_header("Allow", "REGISTER".into()));
            return respond(r);
        }
        // Step 2: of the extensions a client may require, we implement
        // Path (RFC 3327) only.
        let unsupported: Vec<&str> = request
            .header_values("Require")
            .into_iter()
            .filter(|t| !t.eq_ignore_ascii_case(PATH_TAG))
            .collect();
        if !unsupported.is_empty() {
            let mut r = self.response(request, 420, None);
            r.headers
                .push(make_header("Unsupported", unsupported.join(", ")));
            return respond(r);
        }
        let (Some(call_id), Some((cseq, _))) = (request.call_id(), request.cseq()) else {
            return respond(self.response(request, 400, Some("Missing Call-ID or CSeq")));
        };

        // Step 3: authentication.
        let now_ms = self.millis(now);
        let uri = request.uri.to_string();
        let result = self.auth.check(
            &AuthRequest {
                method: "REGISTER",
                request_uri: &uri,
                presented: &presented,
                user_agent: request.header_value("User-Agent"),
                now_ms,
            },
            &self.settings.users,
        );
        let username = match result {
            AuthResult::Authenticated { username } => username,
            AuthResult::Challenge => return challenge(self.challenge(request, now_ms, false)),
            AuthResult::Stale => {
                debug!("stale nonce, challenging again");
                return challenge(self.challenge(request, now_ms, true));
            }
            AuthResult::Malformed { reason } => {
                return respond(self.response(request, 400, Some(reason)))
            }
            AuthResult::Failed { username } => {
                // 403, not a fresh 401: a phone with a wrong password would
                // answer every new challenge with it again, and so spend
                // several failures of its guard record on one login.
                let r = self.response(request, 403, Some("Wrong Credentials"));
                return self.failure(now, source, &username, r);
            }
        };

        // Steps 4 and 5: the AOR is the To user, and only its owner may
        // change its bindings.
        // The user part of the To URI is the address-of-record key (§10.3 step 5).
        let Some(aor) = request.header_value("To").and_then(crate::sip::user_part) else {
            return respond(self.response(request, 404, Some("No Address of Record")));
        };
        if aor != username {
            warn!(user = %username, %aor, %ip, "credentials for another user");
            let r = self.response(request, 403, Some("Username Does Not Match To"));
            return self.failure(now, source, &username, r);
        }
        self.guard.record_success(ip, &username);

        // Step 6: Contacts and their expiries.
        let contact_values = request.header_values("Contact");
        let contacts = match parse_contacts(&contact_values) {
            Ok(c) => c,
            Err(e) => return respond(self.response(request, 400, Some(&invalid(&e)))),
        };
        let update = match contacts {
            None => None,
            Some(Contacts::Wildcard) => {
                if request.expires() != Some(0) {
                    return respond(self.response(
                        request,
                        400,
                        Some("Wildcard Contact Requires Expires 0"),
                    ));
                }
                Some(Update::RemoveAll)
            }
            Some(Contacts::List(list)) => {
                let header = request
                    .header_value("Expires")
                    .and_then(contact::parse_delta);
                let mut updates = Vec::with_capacity(list.len());
                for spec in list {
                    let asked = spec
                        .expires
                        .or(header)
                        .unwrap_or(u64::from(self.settings.default_expires));
                    if asked != 0 && asked < u64::from(self.settings.min_expires) {
                        let mut r = self.response(request, 423, None);
                        r.headers.push(make_header(
                            "Min-Expires",
                            self.settings.min_expires.to_string(),
                        ));
                        return respond(r);
                    }
                    let expires = asked.min(u64::from(self.settings.max_expires));
                    updates.push(ContactUpdate { spec, expires });
                }
                Some(Update::Contacts(updates))
            }
        };

        // RFC 3327 §5.3: the Path values are the route set toward the
        // contacts, kept with the bindings this request makes.
        let path: Vec<String> = request
            .header_values("Path")
            .into_iter()
            .map(str::to_string)
            .collect();

        // Step 7: apply, all or nothing.
        if let Some(update) = update {
            let ctx = RegisterContext {
                now,
                call_id,
                cseq,
                source,
                path: &path,
            };
            match self.location.apply(&aor, ctx, &update) {
                Ok(changes) => self.report(changes),
                Err(e) => {
                    info!(%aor, call_id, cseq, "REGISTER refused: {e}");
                    return respond(self.response(request, 500, Some("Out of Order CSeq")));
                }
            }
        }

        // Step 8: 200 OK with every current binding.
        let mut r = self.response(request, 200, None);
        for b in &self.location.bindings(&aor) {
            r.headers
                .push(make_header("Contact", contact_value(b, now)));
        }
        // RFC 3327 §5.3: the Path values go back, in order, to a UA that
        // said it supports the extension. One that did not (baresip 1.0,
        // many phones) is still registered with its Path, which the proxy
        // that added it needs, rather than refused 420 ("lazy", not
        // "strict", in Kamailio's terms).
        if !path.is_empty() && supports_path(request) {
            for p in &path {
                r.headers.push(make_header("Path", p.clone()));
            }
        }
        r.headers
            .push(make_header("Supported", PATH_TAG.to_string()));
        if let Some(clock) = self.wall_clock {
            r.headers
                .push(make_header("Date", date::http_date(clock.wall_at(now))));
        }
        respond(r)
    }

    /// A failed authentication: count it, then answer (maybe later) or drop.
    fn failure(
        &mut self,
        now: Instant,
        source: &Source,
        username: &str,
        response: Response,
    ) -> RegisterOutcome {
        let ip = source.remote.ip();
        warn!(user = %username, %ip, "authentication failed");
        self.events.push_back(RegistrarEvent::AuthFailed {
            user: username.to_string(),
            ip,
        });
        match self.guard.record_failure(now, ip, username) {
            FailureOutcome::Answer { delay } => RegisterOutcome::Respond { response, delay },
            FailureOutcome::UserBlocked { until } => {
                let duration = until.saturating_duration_since(now);
                warn!(%ip, user = %username, seconds = duration.as_secs(), "user blocked from this source");
                self.events.push_back(RegistrarEvent::UserBlocked {
                    user: username.to_string(),
                    ip,
                    until,
                    duration,
                });
                RegisterOutcome::Drop
            }
            FailureOutcome::Blocked { until } => {
                let duration = until.saturating_duration_since(now);
                warn!(%ip, seconds = duration.as_secs(), "source blocked");
                self.events.push_back(RegistrarEvent::SourceBlocked {
                    ip,
                    until,
                    duration,
                });
                RegisterOutcome::Drop
            }
        }
    }

    fn report(&mut self, changes: Vec<Change>) {
        for change in changes {
            let event = match change {
                Change::Registered(b, expires) => {
                    info!(aor = %b.aor, contact = %b.contact, expires, "registered");
                    RegistrarEvent::Registered {
                        aor: b.aor,
                        contact: b.contact,
                        expires,
                    }
                }
                Change::Removed(b) => {
                    info!(aor = %b.aor, contact = %b.contact, "unregistered");
                    RegistrarEvent::Unregistered {
                        aor: b.aor,
                        contact: b.contact,
                    }
                }
            };
            self.events.push_back(event);
        }
    }

    /// Whether the guard drops `request`: its source is blocked, or the user
    /// it names (in `auth_header`'s digest username for our realm, or the
    /// `user_header` URI) is blocked from that source. Both are looked at, so
    /// that credentials for a blocked user cannot be tried under another To.
    fn blocked(
        &mut self,
        now: Instant,
        ip: std::net::IpAddr,
        request: &Request,
        user_header: &str,
        presented: &Presented,
    ) -> bool {
        let named = request
            .header_value(user_header)
            .and_then(crate::sip::user_part);
        [named.as_deref(), presented.username()]
            .iter()
            .any(|u| self.guard.check(now, ip, *u) == Verdict::Drop)
    }

    /// 401 with fresh challenges for the AOR's user and phone.
    fn challenge(&mut self, request: &Request, now_ms: u64, stale: bool) -> Response {
        let mut r = self.response(request, 401, None);
        let user = request.header_value("To").and_then(crate::sip::user_part);
        let agent = request.header_value("User-Agent");
        for value in self.auth.challenges(now_ms, stale, user.as_deref(), agent) {
            r.headers.push(make_header("WWW-Authenticate", value));
        }
        r
    }

    /// A response with a To tag; Content-Length is moved last in `respond`.
    fn response(&self, request: &Request, code: u16, reason: Option<&str>) -> Response {
        with_to_tag(response_to(request, code, reason), &generate_tag())
    }
}

/// The option tag of RFC 3327.
const PATH_TAG: &str = "path";

/// Whether the REGISTER says its UA supports Path (Supported or Require).
fn supports_path(request: &Request) -> bool {
    ["Supported", "Require"].iter().any(|h| {
        request
            .header_values(h)
            .iter()
            .any(|t| t.eq_ignore_ascii_case(PATH_TAG))
    })
}

fn challenge(mut response: Response) -> RegisterOutcome {
    set_content_length(&mut response);
    RegisterOutcome::Challenge(response)
}

fn respond(mut response: Response) -> RegisterOutcome {
    set_content_length(&mut response);
    RegisterOutcome::Respond {
        response,
        delay: None,
    }
}

fn invalid(e: &contact::ContactError) -> String {
    match e {
        contact::ContactError::WildcardWithOthers => "Wildcard Contact With Others".into(),
        contact::ContactError::BadUri => "Invalid Contact URI".into(),
        contact::ContactError::BadQ => "Invalid Contact q".into(),
    }
}

/// A Contact of the 200 OK: the URI with its remaining expiry, q, and the
/// instance parameters RFC 5626 §6 asks a registrar to echo.
fn contact_value(b: &Binding, now: Instant) -> String {
    let mut v = format!("<{}>;expires={}", b.contact, b.remaining_secs(now));
    if b.q != QValue::DEFAULT {
        v.push_str(&format!(";q={}", b.q));
    }
    if let Some(instance) = &b.instance_id {
        v.push_str(&format!(";+sip.instance=\"{instance}\""));
    }
    if let Some(reg_id) = b.reg_id {
        v.push_str(&format!(";reg-id={reg_id}"));
    }
    v
}

/// Header values without splitting on commas (an Authorization value is
/// itself a comma list of parameters).
trait UnsplitValues {
    fn header_values_unsplit(&self, name: &str) -> Vec<&str>;
}

impl UnsplitValues for Request {
    fn header_values_unsplit(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value())
            .collect()
    }
}
