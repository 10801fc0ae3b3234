//! The switch's own answers to requests (RFC 3261 §8.2): the final
//! responses the endpoint sends statelessly (405, 420, 481, 503, OPTIONS)
//! and the call layer sends when it refuses a request, with the Server
//! header and To tag every one of them carries, and the Allow, Supported
//! and Accept lists the switch advertises (§20.1, §20.5, §20.37).
//!
//! Below both the endpoint and the call layer, so that neither imports the
//! other for them. No state, no I/O.

use super::{make_header, MessageHeaders, Method, Request, Response};

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
    let mut response = super::response_to(request, code, reason);
    response.headers.push(make_header("Server", SERVER.into()));
    if code >= 200 {
        // §8.2.6.2: a tag for every final response; a stable one per request is
        // not needed here because these answers create no dialog.
        response = super::with_to_tag(response, &super::generate_tag());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, require: &str) -> Request {
        let text = format!(
            "{method} sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-r\r\nFrom: <sip:1001@127.0.0.1>;tag=a\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: r1\r\nCSeq: 1 {method}\r\n{require}Content-Length: 0\r\n\r\n"
        );
        match super::super::parse(text.as_bytes(), 65535).unwrap() {
            super::super::SipMessage::Request(r) => r,
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
