//! Digest authentication of requests other than REGISTER, proxy-style
//! (RFC 3261 §22.3): a 407 with `Proxy-Authenticate` challenges, the
//! credentials come back in `Proxy-Authorization`. The call layer asks it of
//! an INVITE from a user of this registrar that does not come from an
//! address the user registered from.
//!
//! It is the registrar's own digest, not a second one: the same
//! authenticator (nonces, their lifetime and `stale=true`, nonce-count
//! replay protection, algorithms in the configured order) and the same
//! brute-force guard, which counts wrong credentials here as it counts them
//! on REGISTER and slows or blocks the source alike. Wrong credentials are
//! answered 403 rather than challenged again: a caller that got its
//! password wrong is refused, not asked in a loop.

use std::time::Instant;

use crate::net::Source;
use crate::sip::{make_header, MessageHeaders, Request, Response};

use super::auth::{AuthRequest, AuthResult};
use super::{respond, RegisterOutcome, Registrar, UnsplitValues};

/// The outcome of authenticating a request by `Proxy-Authorization`.
#[derive(Debug, Clone)]
pub enum RequestAuth {
    /// Valid credentials of this user of the registrar.
    Authenticated { username: String },
    /// Not authenticated: answer as the outcome says (a 407 challenge, 400
    /// for unreadable credentials, 403 after wrong ones, perhaps held back
    /// by the guard), or not at all (a blocked source).
    Refused(RegisterOutcome),
}

impl Registrar {
    /// Authenticates `request` (any method but REGISTER) from `source`.
    pub fn authenticate_request(
        &mut self,
        now: Instant,
        request: &Request,
        source: &Source,
    ) -> RequestAuth {
        let ip = source.remote.ip();
        let presented = super::auth::presented(
            &request.header_values_unsplit("Proxy-Authorization"),
            &self.settings.realm,
        );
        if self.blocked(now, ip, request, "From", &presented) {
            return RequestAuth::Refused(RegisterOutcome::Drop);
        }
        let now_ms = self.millis(now);
        let uri = request.uri.to_string();
        let method = request.method.to_string();
        let result = self.auth.check(
            &AuthRequest {
                method: &method,
                request_uri: &uri,
                presented: &presented,
                user_agent: request.header_value("User-Agent"),
                now_ms,
            },
            &self.settings.users,
        );
        let refused = match result {
            AuthResult::Authenticated { username } => {
                self.guard.record_success(ip, &username);
                return RequestAuth::Authenticated { username };
            }
            AuthResult::Challenge => respond(self.proxy_challenge(request, now_ms, false)),
            AuthResult::Stale => respond(self.proxy_challenge(request, now_ms, true)),
            AuthResult::Malformed { reason } => respond(self.response(request, 400, Some(reason))),
            AuthResult::Failed { username } => {
                let r = self.response(request, 403, Some("Wrong Credentials"));
                self.failure(now, source, &username, r)
            }
        };
        RequestAuth::Refused(refused)
    }

    /// 407 with fresh challenges (one per algorithm, one nonce).
    fn proxy_challenge(&mut self, request: &Request, now_ms: u64, stale: bool) -> Response {
        let mut r = self.response(request, 407, None);
        let user = request.header_value("From").and_then(crate::sip::user_part);
        let agent = request.header_value("User-Agent");
        for value in self.auth.challenges(now_ms, stale, user.as_deref(), agent) {
            r.headers.push(make_header("Proxy-Authenticate", value));
        }
        r
    }
}
