//! Builders for the messages the lower layers originate: responses (§8.2.6),
//! the ACK for a non-2xx final response (§17.1.1.3) and CANCEL (§9.1).

use rand::Rng;
use rsipstack::sip::headers::make_header;
use rsipstack::sip::{Header, Headers, Method, Request, Response, StatusCode, Version};

use super::ext::tag_param;

/// RFC 3261 §8.1.1.7: every branch we create starts with the magic cookie.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A fresh Via branch, unique in space and time.
pub fn generate_branch() -> String {
    format!("{MAGIC_COOKIE}{}", random_token(16))
}

/// A fresh From/To tag (§19.3: at least 32 bits of randomness).
pub fn generate_tag() -> String {
    random_token(12)
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .filter_map(|_| ALPHABET.get(rng.random_range(0..ALPHABET.len())))
        .map(|&b| char::from(b))
        .collect()
}

/// A response to `request` copying Via, From, To, Call-ID and CSeq (§8.2.6.2).
/// `reason` replaces the standard phrase when given.
pub fn response_to(request: &Request, code: u16, reason: Option<&str>) -> Response {
    let mut headers = Headers::default();
    for h in request.headers.iter() {
        if matches!(
            h,
            Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::CSeq(_)
        ) {
            headers.push(h.clone());
        }
    }
    response_with_headers(code, reason, headers)
}

/// A response with these headers, a Content-Length and no body.
pub(crate) fn response_with_headers(code: u16, reason: Option<&str>, headers: Headers) -> Response {
    let status_code = match reason {
        Some(r) if r != StatusCode::from(code).text() => StatusCode::Other(code, r.to_string()),
        _ => StatusCode::from(code),
    };
    let mut response = Response {
        status_code,
        wire_reason: None,
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    set_content_length(&mut response);
    response
}

/// Stamps the topmost Via with `received` and a filled-in `rport`
/// (§18.2.1, RFC 3581 §4), so responses built from the request carry them.
pub fn stamp_top_via<M: rsipstack::sip::prelude::HasHeaders>(
    message: &mut M,
    received: Option<std::net::IpAddr>,
    rport: Option<u16>,
) {
    if received.is_none() && rport.is_none() {
        return;
    }
    // Edited in place: this runs for every request received.
    let Some(header) = message
        .headers_mut()
        .iter_mut()
        .find(|h| matches!(h, Header::Via(_)))
    else {
        return;
    };
    let value = header.value();
    let mut entries = super::ext::split_list(value);
    let Some(top) = entries.next() else {
        return;
    };
    let mut stamped = String::with_capacity(value.len() + 40);
    let kept = top.split(';').map(str::trim).filter(|p| {
        let name = p.split('=').next().unwrap_or("").trim();
        !(name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport"))
    });
    for (i, param) in kept.enumerate() {
        if i > 0 {
            stamped.push(';');
        }
        stamped.push_str(param);
    }
    if let Some(ip) = received {
        stamped.push_str(&format!(";received={ip}"));
    }
    if let Some(port) = rport {
        stamped.push_str(&format!(";rport={port}"));
    } else if top.to_ascii_lowercase().contains(";rport") {
        stamped.push_str(";rport");
    }
    for entry in entries {
        stamped.push_str(", ");
        stamped.push_str(entry);
    }
    *header = make_header("Via", stamped);
}

/// Adds `tag` to the To header unless it already carries one (§8.2.6.2).
pub fn with_to_tag(mut response: Response, tag: &str) -> Response {
    for h in response.headers.iter_mut() {
        if let Header::To(to) = h {
            if tag_param(to.value()).is_none() {
                let value = format!("{};tag={tag}", to.value());
                *h = make_header("To", value);
            }
            break;
        }
    }
    response
}

/// Replaces any Content-Length with the length of the body (§20.14).
pub fn set_content_length<M: rsipstack::sip::prelude::HasHeaders + BodyLen>(message: &mut M) {
    let len = message.body_len();
    let headers = message.headers_mut();
    headers.retain(|h| !matches!(h, Header::ContentLength(_)));
    headers.push(make_header("Content-Length", len.to_string()));
}

/// What `set_content_length` needs to know of a message.
pub trait BodyLen {
    fn body_len(&self) -> usize;
}
impl BodyLen for Request {
    fn body_len(&self) -> usize {
        self.body.len()
    }
}
impl BodyLen for Response {
    fn body_len(&self) -> usize {
        self.body.len()
    }
}

/// The ACK a client INVITE transaction sends for a non-2xx final response
/// (§17.1.1.3): same Request-URI, top Via, From, Call-ID, CSeq number and
/// Route as the INVITE; To from the response.
pub fn ack_for_non_2xx(invite: &Request, response: &Response) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        // Only the top Via entry: a comma list keeps its first element.
        let first = super::ext::split_list(via.value()).next().unwrap_or("");
        headers.push(make_header("Via", first.to_string()));
    }
    headers.push(make_header("Max-Forwards", "70".into()));
    for h in invite.headers.iter() {
        if let Header::From(_) | Header::CallId(_) | Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    if let Some(to) = response.headers.iter().find(|h| matches!(h, Header::To(_))) {
        headers.push(to.clone());
    }
    let seq = cseq_number(invite);
    headers.push(make_header("CSeq", format!("{seq} ACK")));
    let mut ack = Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    set_content_length(&mut ack);
    ack
}

/// CANCEL for a pending INVITE (§9.1): same Request-URI, top Via, From, To,
/// Call-ID, Route and CSeq number as the INVITE.
pub fn cancel_for(invite: &Request) -> Request {
    let mut headers = Headers::default();
    if let Some(via) = invite.headers.iter().find(|h| matches!(h, Header::Via(_))) {
        let first = super::ext::split_list(via.value()).next().unwrap_or("");
        headers.push(make_header("Via", first.to_string()));
    }
    headers.push(make_header("Max-Forwards", "70".into()));
    for h in invite.headers.iter() {
        if let Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) = h {
            headers.push(h.clone());
        }
    }
    let seq = cseq_number(invite);
    headers.push(make_header("CSeq", format!("{seq} CANCEL")));
    let mut cancel = Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        version: Version::V2,
        headers,
        body: Vec::new(),
    };
    set_content_length(&mut cancel);
    cancel
}

fn cseq_number(request: &Request) -> u32 {
    use super::ext::MessageHeaders;
    request.cseq().map(|(n, _)| n).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse, MessageHeaders, SipMessage};

    fn invite() -> Request {
        let raw = "INVITE sip:bob@example.com SIP/2.0\r\n\
            Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.2\r\n\
            Max-Forwards: 70\r\n\
            Route: <sip:proxy.example.com;lr>\r\n\
            From: <sip:alice@example.com>;tag=a1\r\n\
            To: <sip:bob@example.com>\r\n\
            Call-ID: c1@10.0.0.1\r\n\
            CSeq: 7 INVITE\r\n\
            Content-Length: 0\r\n\r\n";
        match parse(raw.as_bytes(), 65535).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    #[test]
    fn response_copies_the_dialog_headers_and_adds_a_tag_once() {
        let r = with_to_tag(response_to(&invite(), 486, None), "t1");
        let r = with_to_tag(r, "t2");
        assert_eq!(r.status_code.code(), 486);
        assert_eq!(r.to_tag().as_deref(), Some("t1"));
        assert_eq!(r.call_id(), Some("c1@10.0.0.1"));
        assert_eq!(r.cseq(), Some((7, Method::Invite)));
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 486 Busy Here\r\n"), "{text}");
        assert!(text.contains("Content-Length: 0\r\n"), "{text}");
    }

    #[test]
    fn custom_reason_phrase_goes_on_the_wire() {
        let r = response_to(&invite(), 400, Some("Malformed CSeq"));
        let text = String::from_utf8(r.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Malformed CSeq\r\n"), "{text}");
    }

    #[test]
    fn ack_for_non_2xx_keeps_the_top_via_and_takes_to_from_the_response() {
        let inv = invite();
        let resp = with_to_tag(response_to(&inv, 486, None), "b9");
        let ack = ack_for_non_2xx(&inv, &resp);
        assert_eq!(ack.cseq(), Some((7, Method::Ack)));
        assert_eq!(ack.to_tag().as_deref(), Some("b9"));
        assert_eq!(ack.top_via().unwrap().branch.as_deref(), Some("z9hG4bKabc"));
        assert_eq!(ack.header_values("Via").len(), 1);
        assert!(ack.header_value("Route").is_some());
    }

    #[test]
    fn via_is_stamped_with_received_and_rport() {
        let mut r = invite();
        r.headers.retain(|h| !matches!(h, Header::Via(_)));
        r.headers.push_front(make_header(
            "Via",
            "SIP/2.0/UDP pc.example;rport;branch=z9hG4bKx, SIP/2.0/UDP b".into(),
        ));
        stamp_top_via(&mut r, Some("192.0.2.1".parse().unwrap()), Some(4000));
        let v = r.top_via().unwrap();
        assert_eq!(v.received, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(v.rport, Some(Some(4000)));
        assert_eq!(v.branch.as_deref(), Some("z9hG4bKx"));
        assert_eq!(r.header_values("Via").len(), 2);
        assert_eq!(
            r.headers.iter().position(|h| matches!(h, Header::Via(_))),
            Some(0)
        );
    }

    #[test]
    fn cancel_matches_the_invite() {
        let c = cancel_for(&invite());
        assert_eq!(c.cseq(), Some((7, Method::Cancel)));
        assert_eq!(c.top_via().unwrap().branch.as_deref(), Some("z9hG4bKabc"));
        assert_eq!(c.to_tag(), None);
    }

    #[test]
    fn branches_carry_the_magic_cookie_and_differ() {
        let (a, b) = (generate_branch(), generate_branch());
        assert!(a.starts_with(MAGIC_COOKIE));
        assert_ne!(a, b);
    }
}
