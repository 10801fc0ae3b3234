//! Requests, responses and addresses for the transaction tests, built by
//! parsing text so that they look exactly like what comes off the wire.

use std::time::{Duration, Instant};

use super::TimerSettings;
use crate::net::{ConnectionId, Destination, ProfileId, Source, TransportKind};
use crate::sip::{parse, response_to, with_to_tag, Request, Response, SipMessage};

pub const BRANCH: &str = "z9hG4bK776asdhds";
pub const T1: Duration = Duration::from_millis(500);
pub const T2: Duration = Duration::from_secs(4);
pub const T4: Duration = Duration::from_secs(5);
pub const SECS_32: Duration = Duration::from_secs(32);
pub const MS_1: Duration = Duration::from_millis(1);

pub fn settings() -> TimerSettings {
    TimerSettings::default()
}

/// Milliseconds from `t0` to `t`.
pub fn ms(t0: Instant, t: Instant) -> u128 {
    (t - t0).as_millis()
}

pub fn request(text: &str) -> Request {
    let text = text.replace('\n', "\r\n");
    match parse(text.as_bytes(), 65535).expect("test request parses") {
        SipMessage::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

/// A request with the given method, branch, CSeq number and extra To params.
pub fn request_with(method: &str, branch: &str, cseq: u32, to_tag: Option<&str>) -> Request {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let branch = if branch.is_empty() {
        String::new()
    } else {
        format!(";branch={branch}")
    };
    request(&format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\n\
         Via: SIP/2.0/UDP pc33.atlanta.example.com:5060{branch}\n\
         Max-Forwards: 70\n\
         To: Bob <sip:bob@biloxi.example.com>{to_tag}\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\n\
         CSeq: {cseq} {method}\n\
         Contact: <sip:alice@pc33.atlanta.example.com>\n\
         Content-Length: 0\n\n"
    ))
}

pub fn invite() -> Request {
    request_with("INVITE", BRANCH, 1, None)
}

pub fn options() -> Request {
    request_with("OPTIONS", BRANCH, 2, None)
}

/// A response to `req`, with a To tag when given.
pub fn response(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let r = response_to(req, code, None);
    match to_tag {
        Some(tag) => with_to_tag(r, tag),
        None => r,
    }
}

pub fn udp_source() -> Source {
    Source {
        profile: ProfileId(0),
        transport: TransportKind::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        remote: "192.0.2.7:5060".parse().unwrap(),
        connection: None,
    }
}

pub fn tcp_source() -> Source {
    Source {
        transport: TransportKind::Tcp,
        connection: Some(ConnectionId(3)),
        remote: "192.0.2.8:40000".parse().unwrap(),
        ..udp_source()
    }
}

pub fn udp_destination() -> Destination {
    Destination {
        profile: ProfileId(0),
        transport: TransportKind::Udp,
        remote: "198.51.100.9:5060".parse().unwrap(),
        connection: None,
    }
}
