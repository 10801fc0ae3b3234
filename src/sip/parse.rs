//! Parsing with the checks a switch owes its peers (RFC 3261 §8.2, §18.3; RFC 4475).
//!
//! rsipstack parses lazily and leniently; this wrapper adds the strictness:
//! a request must carry readable Via, From, To, Call-ID and CSeq before it
//! can be answered at all, and once it can be answered every other defect is
//! answered with a status whose reason phrase says what is wrong. Nothing
//! here panics on input: the fuzz-style fixtures under `fixtures/sip/` hold
//! each case with its expected outcome.

use std::borrow::Cow;

use rsipstack::sip::headers::make_header;
use rsipstack::sip::{parser, typed, Headers, Method, SipMessage};

use super::build::response_with_headers;
use super::ext::{split_list, MessageHeaders};
use super::Response;

/// Why a message was not accepted.
#[derive(Debug)]
pub enum Malformed {
    /// Not even the headers to address a reply could be read: drop and log.
    Unanswerable { reason: String },
    /// A request that can be answered: send `response` (400, 416, 501, 505, 513).
    Answerable {
        reason: String,
        response: Box<Response>,
    },
}

impl Malformed {
    pub fn reason(&self) -> &str {
        match self {
            Malformed::Unanswerable { reason } | Malformed::Answerable { reason, .. } => reason,
        }
    }
}

/// The headers a reply must copy (§8.2.6.2), read straight from the text so
/// that a reply can be built even when the full parse fails. Borrowed from the
/// datagram: only a folded header (rare) is copied to unfold it.
#[derive(Default)]
struct Essentials<'a> {
    via: Vec<Cow<'a, str>>,
    from: Option<Cow<'a, str>>,
    to: Option<Cow<'a, str>>,
    call_id: Option<Cow<'a, str>>,
    cseq: Option<Cow<'a, str>>,
    content_length: Vec<Cow<'a, str>>,
}

impl Essentials<'_> {
    fn answerable(&self) -> bool {
        !self.via.is_empty()
            && self.from.is_some()
            && self.to.is_some()
            && self.call_id.as_deref().is_some_and(|c| !c.is_empty())
            && self.cseq.as_deref().is_some_and(cseq_text_is_valid)
            && self.via.first().is_some_and(|v| {
                split_list(v)
                    .next()
                    .is_some_and(|v| typed::Via::parse(v).is_ok())
            })
    }

    fn reply(&self, code: u16, reason: &str) -> Response {
        let mut headers = Headers::default();
        for v in &self.via {
            headers.push(make_header("Via", v.to_string()));
        }
        for (name, value) in [
            ("From", &self.from),
            ("To", &self.to),
            ("Call-ID", &self.call_id),
            ("CSeq", &self.cseq),
        ] {
            if let Some(value) = value {
                headers.push(make_header(name, value.to_string()));
            }
        }
        response_with_headers(code, Some(reason), headers)
    }
}

/// `CSeq = 1*DIGIT LWS Method` (§20.16), read as text so that an extension
/// method (which rsip's typed CSeq refuses) can still be answered 501.
fn cseq_text_is_valid(value: &str) -> bool {
    let mut parts = value.split_whitespace();
    let (Some(seq), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    seq.parse::<u32>().is_ok() && method.bytes().all(is_token_byte)
}

/// A request-line or status-line read before the full parse.
enum StartLine<'a> {
    Request {
        method: &'a str,
        uri: &'a str,
        version: &'a str,
    },
    Response,
}

/// Parses one complete message (a datagram, or one frame from a stream).
///
/// `max_size` bounds the whole message; a body longer than Content-Length is
/// cut (§18.3), one shorter is a 400.
pub fn parse(data: &[u8], max_size: usize) -> Result<SipMessage, Malformed> {
    let head_end = memchr::memmem::find(data, b"\r\n\r\n");
    let head = head_end.and_then(|end| data.get(..end)).unwrap_or(data);
    let Ok(head_text) = std::str::from_utf8(head) else {
        return Err(unanswerable("header section is not UTF-8"));
    };
    let mut lines = head_text.split("\r\n");
    let start = lines.next().unwrap_or("");
    let start_line = read_start_line(start);
    let (essentials, bad_line) = read_essentials(lines);
    let is_request = matches!(start_line, Some(StartLine::Request { .. }));
    let answer = |code: u16, reason: &str| -> Malformed {
        if is_request && essentials.answerable() {
            Malformed::Answerable {
                reason: reason.to_string(),
                response: Box::new(essentials.reply(code, reason)),
            }
        } else {
            unanswerable(reason)
        }
    };

    let Some(start_line) = start_line else {
        return Err(unanswerable(
            "start line is neither a request nor a status line",
        ));
    };
    if data.len() > max_size {
        return Err(answer(513, "Message Too Large"));
    }
    let Some(head_end) = head_end else {
        return Err(answer(400, "Missing empty line after headers"));
    };
    // §25.1: header text holds no control characters but HTAB (CR LF only as line ends).
    if head_text
        .bytes()
        .any(|b| (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f)
    {
        return Err(answer(400, "Control character in header"));
    }
    if let Some(line) = bad_line {
        return Err(answer(
            400,
            &format!("Malformed header line: {}", clip(line)),
        ));
    }

    let body_len = data.len() - (head_end + 4);
    let declared = match content_length(&essentials.content_length) {
        Ok(n) => n,
        Err(reason) => return Err(answer(400, reason)),
    };
    if let Some(n) = declared {
        if n > body_len {
            return Err(answer(400, "Content-Length larger than body"));
        }
    }

    if let StartLine::Request {
        method,
        uri,
        version,
    } = start_line
    {
        if version != "SIP/2.0" {
            return Err(answer(505, "Version Not Supported"));
        }
        if !essentials.answerable() {
            return Err(unanswerable(&missing_essential(&essentials)));
        }
        if method.parse::<Method>().is_err() {
            return Err(answer(501, "Not Implemented"));
        }
        let scheme = uri.split(':').next().unwrap_or("");
        if !["sip", "sips", "tel"]
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
        {
            return Err(answer(416, "Unsupported URI Scheme"));
        }
    }

    // Cut a datagram body to Content-Length before handing it on.
    let end = match declared {
        Some(n) => head_end + 4 + n,
        None => data.len(),
    };
    let message = match parser::parse_message(data.get(..end).unwrap_or(data)) {
        Ok(m) => m,
        Err(e) => {
            return Err(answer(
                400,
                &format!("Unparsable message: {}", clip(&e.to_string())),
            ))
        }
    };
    validate(message).map_err(|(code, reason)| answer(code, &reason))
}

/// Checks the parsed message's essential headers in their typed form.
fn validate(message: SipMessage) -> Result<SipMessage, (u16, String)> {
    let bad = |reason: &str| Err((400, reason.to_string()));
    let Some((_, cseq_method)) = message.cseq() else {
        return bad("Malformed CSeq");
    };
    // A request's first Via was already read when it was found answerable.
    if message.is_response() && message.top_via().is_none() {
        return bad("Malformed Via");
    }
    for (name, value) in [
        ("From", message.header_value("From")),
        ("To", message.header_value("To")),
    ] {
        match value {
            Some(v) if typed::From::parse(v).is_ok() => {}
            _ => return bad(&format!("Malformed {name}")),
        }
    }
    if let SipMessage::Request(req) = &message {
        if cseq_method != req.method {
            return bad("CSeq method does not match request method");
        }
        if let Some(mf) = message.header_value("Max-Forwards") {
            if mf.trim().parse::<u8>().is_err() {
                return bad("Malformed Max-Forwards");
            }
        }
        if let Some(exp) = message.header_value("Expires") {
            if exp.trim().parse::<u32>().is_err() {
                return bad("Malformed Expires");
            }
        }
        for contact in message.header_values("Contact") {
            let readable = super::split_name_addr(contact)
                .is_some_and(|(uri, _)| rsipstack::sip::parse_uri(uri).is_ok());
            if contact != "*" && !readable {
                return bad("Malformed Contact");
            }
        }
    }
    Ok(message)
}

fn read_start_line(line: &str) -> Option<StartLine<'_>> {
    if line.starts_with("SIP/") {
        let mut parts = line.splitn(3, ' ');
        let (_, code) = (parts.next(), parts.next()?);
        return (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
            .then_some(StartLine::Response);
    }
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let method = parts.next()?;
    let uri = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !method.bytes().all(is_token_byte) || !uri.contains(':') {
        return None;
    }
    Some(StartLine::Request {
        method,
        uri,
        version,
    })
}

/// The headers [`Essentials`] keeps, by their long or compact name (§7.3.3).
#[derive(Clone, Copy, PartialEq)]
enum Essential {
    Via,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
}

fn essential(name: &str) -> Option<Essential> {
    let is = |long: &str, short: &str| {
        name.eq_ignore_ascii_case(long) || (!short.is_empty() && name.eq_ignore_ascii_case(short))
    };
    if is("Via", "v") {
        Some(Essential::Via)
    } else if is("From", "f") {
        Some(Essential::From)
    } else if is("To", "t") {
        Some(Essential::To)
    } else if is("Call-ID", "i") {
        Some(Essential::CallId)
    } else if is("CSeq", "") {
        Some(Essential::CSeq)
    } else if is("Content-Length", "l") {
        Some(Essential::ContentLength)
    } else {
        None
    }
}

/// Unfolds header lines (§7.3.1) and keeps the ones a reply needs. Returns
/// the first line that is not a header, if any.
fn read_essentials<'a>(lines: impl Iterator<Item = &'a str>) -> (Essentials<'a>, Option<&'a str>) {
    let mut e = Essentials::default();
    let mut bad = None;
    // The header being read: its kind (None: one we do not keep) and value.
    let mut current: Option<(Option<Essential>, Cow<'a, str>)> = None;
    for line in lines {
        if line.starts_with([' ', '\t']) {
            match current.as_mut() {
                Some((_, value)) => {
                    let v = value.to_mut();
                    v.push(' ');
                    v.push_str(line.trim());
                }
                None => bad = bad.or(Some(line)),
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value))
                if !name.trim().is_empty() && name.trim_end().bytes().all(is_token_byte) =>
            {
                if let Some((kind, value)) = current.take() {
                    keep(&mut e, kind, value);
                }
                current = Some((essential(name.trim()), Cow::Borrowed(value.trim())));
            }
            _ => bad = bad.or(Some(line)),
        }
    }
    if let Some((kind, value)) = current {
        keep(&mut e, kind, value);
    }
    (e, bad)
}

/// Files one unfolded header: every Via and Content-Length, the first of the others.
fn keep<'a>(e: &mut Essentials<'a>, kind: Option<Essential>, value: Cow<'a, str>) {
    let first = |slot: &mut Option<Cow<'a, str>>| {
        if slot.is_none() {
            *slot = Some(value.clone());
        }
    };
    match kind {
        Some(Essential::Via) => e.via.push(value),
        Some(Essential::From) => first(&mut e.from),
        Some(Essential::To) => first(&mut e.to),
        Some(Essential::CallId) => first(&mut e.call_id),
        Some(Essential::CSeq) => first(&mut e.cseq),
        Some(Essential::ContentLength) => e.content_length.push(value),
        None => {}
    }
}

fn content_length(values: &[Cow<'_, str>]) -> Result<Option<usize>, &'static str> {
    let mut found: Option<usize> = None;
    for v in values {
        let n: usize = v.trim().parse().map_err(|_| "Malformed Content-Length")?;
        if found.is_some_and(|f| f != n) {
            return Err("Conflicting Content-Length headers");
        }
        found = Some(n);
    }
    Ok(found)
}

fn missing_essential(e: &Essentials) -> String {
    let mut missing = Vec::new();
    if e.via.is_empty() {
        missing.push("Via");
    }
    if e.from.is_none() {
        missing.push("From");
    }
    if e.to.is_none() {
        missing.push("To");
    }
    if e.call_id.as_deref().is_none_or(str::is_empty) {
        missing.push("Call-ID");
    }
    if missing.is_empty() {
        "malformed Via or CSeq".into()
    } else {
        format!("missing {}", missing.join(", "))
    }
}

fn unanswerable(reason: &str) -> Malformed {
    Malformed::Unanswerable {
        reason: reason.to_string(),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Keeps a reason phrase short and printable.
fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(80).collect()
}
