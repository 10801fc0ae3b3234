//! Test fixtures: Alice (a.example.com, tag a1) calls Bob (b.example.com,
//! answering with tag b1 unless said otherwise). Messages are written as text
//! and parsed with `crate::sip::parse`, as they would arrive.

use crate::net::{Destination, ProfileId, TransportKind};
use crate::sip::{parse, MessageHeaders, Method, Request, Response, SipMessage};

pub const INVITE_TEXT: &str = "INVITE sip:bob@b.example.com SIP/2.0
    Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKinv1
    Max-Forwards: 70
    From: \"Alice\" <sip:alice@a.example.com>;tag=a1
    To: <sip:bob@b.example.com>
    Call-ID: c1@a.example.com
    CSeq: 1 INVITE
    Contact: <sip:alice@10.0.0.1:5060>";

pub const CONTACT_B: &str = "Contact: <sip:bob@10.0.0.2:5060>";

/// Joins trimmed lines with CRLF, adds `extra` headers and an empty body.
fn wire(text: &str, extra: &[&str]) -> Vec<u8> {
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.extend_from_slice(extra);
    lines.push("Content-Length: 0");
    format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes()
}

pub fn req(text: &str) -> Request {
    match parse(&wire(text, &[]), 65535).expect("fixture parses") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => panic!("fixture is a response"),
    }
}

pub fn invite() -> Request {
    req(INVITE_TEXT)
}

pub fn invite_with(extra: &[&str]) -> Request {
    match parse(&wire(INVITE_TEXT, extra), 65535).expect("fixture parses") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

/// A response to `request` as its peer would send it: the request's Via,
/// From, To (plus `to_tag` if it has none), Call-ID and CSeq, then `extra`.
pub fn resp_to(request: &Request, code: u16, to_tag: Option<&str>, extra: &[&str]) -> Response {
    let mut to = request.header_value("To").unwrap().to_string();
    if let (Some(tag), None) = (to_tag, request.to_tag()) {
        to = format!("{to};tag={tag}");
    }
    let (seq, method) = request.cseq().unwrap();
    let text = format!(
        "SIP/2.0 {code} Whatever
        Via: {}
        From: {}
        To: {to}
        Call-ID: {}
        CSeq: {seq} {method}",
        request.header_values("Via").join(", "),
        request.header_value("From").unwrap(),
        request.call_id().unwrap(),
    );
    match parse(&wire(&text, extra), 65535).expect("fixture parses") {
        SipMessage::Response(r) => r,
        SipMessage::Request(_) => panic!("fixture is a request"),
    }
}

/// Bob's 200 with his Contact and `extra` headers (e.g. Record-Route).
pub fn ok_with(invite: &Request, tag: &str, extra: &[&str]) -> Response {
    let mut all = vec![CONTACT_B];
    all.extend_from_slice(extra);
    resp_to(invite, 200, Some(tag), &all)
}

pub fn ok_to(invite: &Request, tag: &str) -> Response {
    ok_with(invite, tag, &[])
}

/// A request from Alice within the dialog Bob answered with `bob_tag`.
pub fn in_dialog_req(method: Method, cseq: u32, bob_tag: &str, extra: &[&str]) -> Request {
    let text = format!(
        "{method} sip:bob@10.0.0.2:5060 SIP/2.0
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{method}{cseq}
        Max-Forwards: 70
        From: \"Alice\" <sip:alice@a.example.com>;tag=a1
        To: <sip:bob@b.example.com>;tag={bob_tag}
        Call-ID: c1@a.example.com
        CSeq: {cseq} {method}"
    );
    match parse(&wire(&text, extra), 65535).expect("fixture parses") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

/// A request from Bob (tag b1) to Alice within the dialog.
pub fn peer_req(method: Method, cseq: u32) -> Request {
    req(&format!(
        "{method} sip:alice@10.0.0.1:5060 SIP/2.0
        Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bKpeer{cseq}
        Max-Forwards: 70
        From: <sip:bob@b.example.com>;tag=b1
        To: \"Alice\" <sip:alice@a.example.com>;tag=a1
        Call-ID: c1@a.example.com
        CSeq: {cseq} {method}"
    ))
}

pub fn dest(transport: TransportKind) -> Destination {
    Destination {
        profile: ProfileId(0),
        transport,
        remote: "10.0.0.1:5060".parse().unwrap(),
        connection: None,
    }
}
