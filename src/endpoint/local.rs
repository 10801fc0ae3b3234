//! What the endpoint answers by itself, and how profile settings map onto
//! the registrar's and the transaction layer's own settings.

use std::time::Duration;

use crate::config::{Algorithm, NamedProfile, Profile};
use crate::registrar::{
    AlgorithmPolicy, Credentials, DigestAlgorithm, GuardSettings, RegistrarSettings, UserDirectory,
};
use crate::sip::{self, make_header, MessageHeaders, Method, Request, Response};
use crate::transaction::TimerSettings;

/// The methods this switch understands (Allow, §20.5).
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, UPDATE, REFER, NOTIFY, PRACK";
/// Option tags a request may require of the switch outside REGISTER (RFC
/// 3262 reliable provisionals, RFC 4028 session timers, RFC 3891 Replaces);
/// REGISTER's are the registrar's own.
pub const SUPPORTED: [&str; 3] = ["100rel", "timer", "replaces"];
/// Body types it accepts (Accept, §20.1).
pub const ACCEPT: &str = "application/sdp, application/dtmf-relay, message/sipfrag";
const SERVER: &str = concat!("Switchback/", env!("CARGO_PKG_VERSION"));

/// A final response with a To tag and a Server header.
pub fn answer(request: &Request, code: u16, reason: Option<&str>) -> Response {
    let mut response = sip::response_to(request, code, reason);
    response.headers.push(make_header("Server", SERVER.into()));
    if code >= 200 {
        // §8.2.6.2: a tag for every final response; a stable one per request is
        // not needed here because these answers create no dialog.
        response = sip::with_to_tag(response, &sip::generate_tag());
    }
    response
}

/// 200 OK to OPTIONS, saying what the switch supports (§11.2).
pub fn options_ok(request: &Request) -> Response {
    let mut response = answer(request, 200, None);
    response.headers.push(make_header("Allow", ALLOW.into()));
    response.headers.push(make_header("Accept", ACCEPT.into()));
    response
        .headers
        .push(make_header("Accept-Encoding", "identity".into()));
    response
        .headers
        .push(make_header("Accept-Language", "en".into()));
    response.headers.push(make_header(
        "Supported",
        "path, outbound, 100rel, replaces, timer".into(),
    ));
    response
}

/// 420 Bad Extension listing, in `Unsupported`, what the request's
/// `Require` names that the switch lacks (§8.2.2.3); `None` when it lacks
/// nothing. ACK and CANCEL are never refused for it (their Require is the
/// INVITE's, §8.2.2.3).
pub fn unsupported_require(request: &Request) -> Option<Response> {
    if matches!(request.method, Method::Ack | Method::Cancel) {
        return None;
    }
    let missing: Vec<&str> = request
        .header_values("Require")
        .into_iter()
        .map(str::trim)
        .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let mut response = answer(request, 420, None);
    response
        .headers
        .push(make_header("Unsupported", missing.join(", ")));
    Some(response)
}

/// 405 with the Allow list (§8.2.1).
pub fn method_not_allowed(request: &Request) -> Response {
    let mut response = answer(request, 405, None);
    response.headers.push(make_header("Allow", ALLOW.into()));
    response
}

pub fn timer_settings(profile: &Profile) -> TimerSettings {
    TimerSettings {
        t1: Duration::from_millis(profile.timers.t1_ms),
        t2: Duration::from_millis(profile.timers.t2_ms),
        t4: Duration::from_millis(profile.timers.t4_ms),
    }
}

fn digest_algorithms(list: &[Algorithm]) -> Vec<DigestAlgorithm> {
    list.iter()
        .map(|a| match a {
            Algorithm::Md5 => DigestAlgorithm::Md5,
            Algorithm::Sha256 => DigestAlgorithm::Sha256,
        })
        .collect()
}

/// The profile's algorithms, its `User-Agent` rules and its users' own lists.
fn algorithm_policy(np: &NamedProfile) -> AlgorithmPolicy {
    let r = &np.profile.registration;
    let mut policy = AlgorithmPolicy::new(digest_algorithms(&r.algorithms));
    for rule in &r.user_agent_algorithms {
        // Validated when the configuration was loaded.
        if let Ok(re) = regex::Regex::new(&rule.user_agent) {
            policy = policy.with_user_agent(re, digest_algorithms(&rule.algorithms));
        }
    }
    for u in &np.profile.users {
        // A user known only by stored HA1s can answer only those hashes:
        // offering it another would turn its phone's right answer into a
        // failure against the guard.
        let stored: Vec<Algorithm> = [
            (Algorithm::Md5, u.ha1_md5.is_some()),
            (Algorithm::Sha256, u.ha1_sha256.is_some()),
        ]
        .into_iter()
        .filter_map(|(a, has)| has.then_some(a))
        .collect();
        let own = match (&u.algorithms, u.password.is_some()) {
            (Some(a), true) => Some(a.clone()),
            (Some(a), false) => Some(a.iter().copied().filter(|x| stored.contains(x)).collect()),
            (None, false) if stored.len() == 1 => Some(stored),
            (None, _) => None,
        };
        if let Some(a) = own {
            policy = policy.with_user(u.username.clone(), digest_algorithms(&a));
        }
    }
    policy
}

pub fn registrar_settings(np: &NamedProfile) -> RegistrarSettings {
    let p = &np.profile;
    let mut users = UserDirectory::default();
    for u in &p.users {
        let mut c = match &u.password {
            Some(pw) => Credentials::password(pw.clone()),
            None => Credentials::default(),
        };
        if let Some(h) = &u.ha1_md5 {
            c = c.with_ha1(DigestAlgorithm::Md5, h.clone());
        }
        if let Some(h) = &u.ha1_sha256 {
            c = c.with_ha1(DigestAlgorithm::Sha256, h.clone());
        }
        users.insert(u.username.clone(), c);
    }
    let r = &p.registration;
    let g = &p.auth_guard;
    RegistrarSettings {
        realm: p.realm.clone(),
        min_expires: r.min_expires,
        max_expires: r.max_expires,
        default_expires: r.default_expires,
        nonce_lifetime: Duration::from_secs(r.nonce_lifetime_secs),
        algorithms: algorithm_policy(np),
        users,
        guard: GuardSettings {
            max_failures: g.max_failures,
            max_users: g.max_users_per_source,
            window: Duration::from_secs(g.window_secs),
            block: Duration::from_secs(g.block_secs),
            ..GuardSettings::default()
        },
        ..RegistrarSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, require: &str) -> Request {
        let text = format!(
            "{method} sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: r1\r\nCSeq: 1 {method}\r\n{require}Content-Length: 0\r\n\r\n"
        );
        match sip::parse(text.as_bytes(), 65535).unwrap() {
            sip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn require_of_unknown_extensions_gets_420_naming_them() {
        let r = unsupported_require(&request(
            "INVITE",
            "Require: foo, 100rel\r\nRequire: bar\r\n",
        ))
        .unwrap();
        assert_eq!(r.status_code.code(), 420);
        assert_eq!(r.header_value("Unsupported"), Some("foo, bar"));
        assert!(
            unsupported_require(&request("INVITE", "Require: 100rel, timer, replaces\r\n"))
                .is_none()
        );
        assert!(unsupported_require(&request("OPTIONS", "")).is_none());
        assert!(unsupported_require(&request("CANCEL", "Require: foo\r\n")).is_none());
        assert_eq!(
            unsupported_require(&request("BYE", "Require: foo\r\n"))
                .unwrap()
                .status_code
                .code(),
            420
        );
    }
}
