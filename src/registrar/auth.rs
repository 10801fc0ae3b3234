//! Digest authentication of a REGISTER (RFC 3261 §22.4, RFC 8760, RFC 7616).
//!
//! Owns the decision "who sent this request, if anyone": it picks the
//! `Authorization` header for our realm, checks the nonce (ours? fresh?),
//! the algorithm and qop, the request-digest and the nonce-count, and builds
//! the `WWW-Authenticate` challenges (one per algorithm offered to that
//! request, in order of preference, RFC 8760 §2.4; `algorithms.rs` says
//! which). It does not decide what the failure costs the sender (that is
//! `guard.rs`) nor what the response looks like.
//!
//! A response to a nonce we cannot verify (minted by an earlier run, or
//! garbled) is answered like a stale one: a fresh challenge with
//! `stale=true` and no blame, so that a phone that kept a nonce across our
//! restart registers again by itself instead of asking its user for the
//! password (RFC 7616 §3.3 leaves the server this choice).
//!
//! An unknown user is checked against a dummy HA1 derived from the secret,
//! so that it costs the same work and ends in the same answer as a wrong
//! password: the registrar must not reveal which usernames exist.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::algorithms::AlgorithmPolicy;
use super::nonce::{NcCheck, NonceCounts, NonceMinter};
use super::users::UserDirectory;
use crate::digest::{
    digests_match, request_digest, DigestAlgorithm, DigestCredentials, DigestInput, QopAuth,
};

/// The outcome of checking one request's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResult {
    /// Authenticated as this user.
    Authenticated { username: String },
    /// No usable credentials (none, another realm, an algorithm or qop we
    /// do not offer this request): challenge, no blame.
    Challenge,
    /// Correct credentials on an expired or forgotten nonce, or any answer
    /// to a nonce we cannot verify: challenge with `stale=true`, no blame
    /// (RFC 7616 §3.3).
    Stale,
    /// Wrong credentials, unknown user or a replayed nonce-count.
    Failed { username: String },
    /// An unreadable Authorization header, or one for another URI: 400.
    Malformed { reason: &'static str },
}

/// What the authenticator needs from the request.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub method: &'a str,
    /// The Request-URI as text, to compare with the digest `uri`.
    pub request_uri: &'a str,
    /// The credentials the request presents, parsed once by [`presented`].
    pub presented: &'a Presented,
    /// The `User-Agent`, which may choose the algorithms offered.
    pub user_agent: Option<&'a str>,
    /// Milliseconds since the registrar's epoch.
    pub now_ms: u64,
}

/// What a request's `Authorization` (or `Proxy-Authorization`) values hold
/// for one realm. Parsed once per request: the guard wants the claimed user
/// before the digest is checked. (Short-lived, on the stack of one request:
/// its size difference does not matter.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Presented {
    /// No Digest credentials for this realm: challenge.
    Nothing,
    /// Digest credentials that cannot be read, and none readable for this realm.
    Malformed,
    Ours(DigestCredentials),
}

impl Presented {
    /// The user the credentials name, if any.
    pub fn username(&self) -> Option<&str> {
        match self {
            Presented::Ours(c) => Some(&c.username),
            Presented::Nothing | Presented::Malformed => None,
        }
    }
}

/// Reads the first Digest credentials for `realm` among `values`.
pub fn presented(values: &[&str], realm: &str) -> Presented {
    let mut malformed = false;
    for value in values {
        match DigestCredentials::parse(value) {
            Ok(c) if c.realm == realm => return Presented::Ours(c),
            Ok(_) => {}
            Err(crate::digest::DigestParseError::NotDigest) => {}
            Err(_) => malformed = true,
        }
    }
    if malformed {
        Presented::Malformed
    } else {
        Presented::Nothing
    }
}

/// Digest state: realm, algorithms, nonce minting and replay table.
/// Clones share the nonce serials and the replay table (endpoint workers).
#[derive(Clone)]
pub struct Authenticator {
    realm: String,
    algorithms: AlgorithmPolicy,
    allow_no_qop: bool,
    lifetime_ms: u64,
    minter: NonceMinter,
    counts: NonceCounts,
    /// The password unknown users are checked against; derived from the
    /// secret so nobody can know it.
    dummy_password: String,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The dummy password is derived from the secret: never printed.
        f.debug_struct("Authenticator")
            .field("realm", &self.realm)
            .field("algorithms", &self.algorithms)
            .field("allow_no_qop", &self.allow_no_qop)
            .field("lifetime_ms", &self.lifetime_ms)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(
        realm: String,
        algorithms: AlgorithmPolicy,
        allow_no_qop: bool,
        lifetime_ms: u64,
        max_tracked_nonces: usize,
        secret: [u8; 32],
    ) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("any key length");
        mac.update(b"switchback dummy password");
        let dummy_password = hex::encode(mac.finalize().into_bytes());
        Authenticator {
            realm,
            algorithms,
            allow_no_qop,
            lifetime_ms,
            minter: NonceMinter::new(secret),
            counts: NonceCounts::new(max_tracked_nonces),
            dummy_password,
        }
    }

    /// `WWW-Authenticate` values for a fresh challenge to a request from
    /// `user` sent by `user_agent`: one nonce, one value per algorithm
    /// offered to it, in preference order.
    pub fn challenges(
        &mut self,
        now_ms: u64,
        stale: bool,
        user: Option<&str>,
        user_agent: Option<&str>,
    ) -> Vec<String> {
        let nonce = self.minter.mint(now_ms, &self.realm);
        let realm = quote(&self.realm);
        self.algorithms
            .offered(user, user_agent)
            .iter()
            .map(|alg| {
                let mut v = format!(
                    "Digest realm={realm}, nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    alg.token()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Forgets nonce-counts of expired nonces.
    pub fn prune(&mut self, now_ms: u64) {
        self.counts.prune(now_ms, self.lifetime_ms);
    }

    /// Checks the credentials of a request.
    pub fn check(&mut self, req: &AuthRequest<'_>, users: &UserDirectory) -> AuthResult {
        let creds = match req.presented {
            Presented::Ours(c) => c,
            Presented::Malformed => {
                return AuthResult::Malformed {
                    reason: "Malformed Authorization",
                }
            }
            Presented::Nothing => return AuthResult::Challenge,
        };

        let algorithm = match creds.algorithm.as_deref() {
            None => DigestAlgorithm::Md5,
            Some(t) => match DigestAlgorithm::from_token(t) {
                Some(a) => a,
                None => return AuthResult::Challenge,
            },
        };
        if !self
            .algorithms
            .offered(Some(&creds.username), req.user_agent)
            .contains(&algorithm)
        {
            return AuthResult::Challenge;
        }
        let qop = match creds.qop.as_deref() {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                match (creds.nc_raw.as_deref(), creds.cnonce.as_deref()) {
                    (Some(nc), Some(cnonce)) => Some(QopAuth { nc, cnonce }),
                    _ => {
                        return AuthResult::Malformed {
                            reason: "Missing nc or cnonce",
                        }
                    }
                }
            }
            Some(_) => return AuthResult::Challenge, // auth-int or unknown
            // RFC 2069 form: MD5 only, and only if allowed.
            None if algorithm == DigestAlgorithm::Md5 && self.allow_no_qop => None,
            None => return AuthResult::Challenge,
        };
        if !same_uri(&creds.uri, req.request_uri) {
            // RFC 7616 §3.4.6: the digest must be for this request.
            return AuthResult::Malformed {
                reason: "Digest URI Mismatch",
            };
        }
        let Some(nonce_id) = self.minter.verify(&creds.nonce, &self.realm) else {
            // Not a nonce of this run: a fresh one, and the phone may retry
            // without bothering its user.
            return AuthResult::Stale;
        };
        if nonce_id.issued_ms > req.now_ms {
            // Minted by an earlier run with the same secret: not ours now.
            return AuthResult::Stale;
        }

        // The same work whether or not the user exists.
        let known = users
            .get(&creds.username)
            .and_then(|c| c.ha1(algorithm, &creds.username, &self.realm));
        let ha1 = match &known {
            Some(h) => h.clone(),
            None => crate::digest::ha1_from_password(
                algorithm,
                &creds.username,
                &self.realm,
                &self.dummy_password,
            ),
        };
        let expected = request_digest(&DigestInput {
            algorithm,
            ha1: &ha1,
            method: req.method,
            uri: &creds.uri,
            nonce: &creds.nonce,
            qop,
            cnonce: creds.cnonce.as_deref(),
        });
        let correct = match expected {
            Ok(e) => digests_match(&e, &creds.response) & known.is_some(),
            Err(_) => {
                return AuthResult::Malformed {
                    reason: "Missing cnonce",
                }
            }
        };
        let username = creds.username.clone();
        if !correct {
            return AuthResult::Failed { username };
        }
        let age = req.now_ms - nonce_id.issued_ms;
        if age > self.lifetime_ms || self.counts.is_forgotten(nonce_id) {
            return AuthResult::Stale;
        }
        if let Some(nc) = creds.nc.filter(|_| qop.is_some()) {
            match self
                .counts
                .check_and_record(nonce_id, nc, req.now_ms, self.lifetime_ms)
            {
                NcCheck::Fresh => {}
                NcCheck::Replay => return AuthResult::Failed { username },
                NcCheck::Forgotten => return AuthResult::Stale,
            }
        }
        AuthResult::Authenticated { username }
    }
}

/// Whether the digest `uri` names the Request-URI: equal as text ignoring
/// case, or equal after parsing (clients differ in escaping and parameter
/// order; the host must agree, and the user unless the digest `uri` has
/// none: SIPp and some phones put only the server's address there on an
/// INVITE to `user@server`. The nonce-count still binds the credentials to
/// one request).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    let (a, b) = (digest_uri.trim(), request_uri.trim());
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match (crate::sip::parse_uri(a), crate::sip::parse_uri(b)) {
        (Ok(x), Ok(y)) => {
            let user = |u: &crate::sip::Uri| u.auth.as_ref().map(|a| a.user.clone());
            x.host_with_port
                .to_string()
                .eq_ignore_ascii_case(&y.host_with_port.to_string())
                && (user(&x).is_none() || user(&x) == user(&y))
        }
        _ => false,
    }
}

/// A quoted-string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_comparison() {
        assert!(same_uri("sip:Example.com", "sip:example.com"));
        assert!(same_uri("sip:example.com;transport=tcp", "sip:example.com"));
        assert!(!same_uri("sip:other.com", "sip:example.com"));
        assert!(!same_uri("sip:example.com:5070", "sip:example.com"));
        // The server's address for an INVITE to one of its users (SIPp).
        assert!(same_uri("sip:example.com", "sip:1002@example.com"));
        assert!(!same_uri("sip:1003@example.com", "sip:1002@example.com"));
        assert!(!same_uri("sip:1002@example.com", "sip:example.com"));
    }

    #[test]
    fn challenges_share_one_nonce_in_preference_order() {
        let mut a = Authenticator::new(
            "r\"x".into(),
            AlgorithmPolicy::new(vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]),
            true,
            1000,
            16,
            [1; 32],
        );
        let c = a.challenges(0, true, None, None);
        assert_eq!(c.len(), 2);
        assert!(
            c[0].starts_with(r#"Digest realm="r\"x", nonce=""#),
            "{}",
            c[0]
        );
        assert!(c[0].contains("algorithm=SHA-256") && c[1].contains("algorithm=MD5"));
        assert!(c[0].ends_with("stale=true"));
        let nonce = |v: &str| v.split("nonce=\"").nth(1).unwrap()[..56].to_string();
        assert_eq!(nonce(&c[0]), nonce(&c[1]));
    }
}
