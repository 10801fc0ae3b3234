//! Header accessors shared by every layer above the parser.
//!
//! They answer `None` rather than an error: a layer that needs a header it
//! cannot read decides for itself whether that is a 400 or a drop.

use std::net::IpAddr;

use rsipstack::sip::prelude::HasHeaders;
use rsipstack::sip::{typed, Header, Method, Param, Request, Response, SipMessage};

/// What the transport and transaction layers need from the topmost Via.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// The transport token, upper case (`UDP`, `TCP`, `TLS`, ...).
    pub transport: String,
    /// `sent-by` host, without brackets for IPv6.
    pub host: String,
    pub port: Option<u16>,
    pub branch: Option<String>,
    pub received: Option<IpAddr>,
    /// `None`: no rport; `Some(None)`: rport without value (RFC 3581 request).
    pub rport: Option<Option<u16>>,
}

impl ViaInfo {
    /// `sent-by` as one comparable string (§17.2.3 matching).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }
}

/// Typed reads of the headers every SIP layer looks at.
pub trait MessageHeaders: HasHeaders {
    fn call_id(&self) -> Option<&str> {
        self.headers().iter().find_map(|h| match h {
            Header::CallId(c) => Some(c.value().trim()),
            _ => None,
        })
    }

    /// CSeq number and method.
    fn cseq(&self) -> Option<(u32, Method)> {
        self.headers().iter().find_map(|h| match h {
            Header::CSeq(c) => typed::CSeq::parse(c.value())
                .ok()
                .map(|c| (c.seq, c.method)),
            _ => None,
        })
    }

    /// The topmost Via value (the first entry of the first Via header).
    fn top_via(&self) -> Option<ViaInfo> {
        let raw = self.headers().iter().find_map(|h| match h {
            Header::Via(v) => Some(v.value()),
            _ => None,
        })?;
        let first = split_list(raw).next()?;
        let via = typed::Via::parse(first).ok()?;
        let hwp = &via.uri.host_with_port;
        let mut info = ViaInfo {
            transport: via.transport.to_string().to_ascii_uppercase(),
            host: hwp.host.to_string().trim_matches(['[', ']']).to_string(),
            port: hwp.port.as_ref().map(|p| p.value()),
            branch: None,
            received: None,
            rport: None,
        };
        for p in &via.params {
            match p {
                Param::Branch(b) => info.branch = Some(b.value().to_string()),
                Param::Received(r) => info.received = r.value().parse().ok(),
                Param::Rport(r) => info.rport = Some(*r),
                _ => {}
            }
        }
        Some(info)
    }

    // Named for SIP's From header, not a conversion.
    #[allow(clippy::wrong_self_convention)]
    fn from_tag(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::From(f) => tag_param(f.value()),
            _ => None,
        })
    }

    fn to_tag(&self) -> Option<String> {
        self.headers().iter().find_map(|h| match h {
            Header::To(t) => tag_param(t.value()),
            _ => None,
        })
    }

    /// The first header with this name (case-insensitive, long form), raw.
    fn header_value(&self, name: &str) -> Option<&str> {
        self.headers()
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(Header::value)
    }

    /// Every value of this header name, comma lists split (not inside quotes or <>).
    fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .flat_map(|h| split_list(h.value()))
            .collect()
    }

    /// Every header of this name, each value whole (for headers whose values
    /// hold commas themselves: WWW-Authenticate, Proxy-Authenticate).
    fn header_values_whole(&self, name: &str) -> Vec<&str> {
        self.headers()
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .map(Header::value)
            .collect()
    }

    /// The Expires header as seconds, if present and numeric.
    fn expires(&self) -> Option<u32> {
        self.header_value("Expires")?.trim().parse().ok()
    }
}

impl MessageHeaders for Request {}
impl MessageHeaders for Response {}
impl MessageHeaders for SipMessage {}

/// The `tag` parameter of a From/To value, outside the `<...>` URI.
pub(crate) fn tag_param(value: &str) -> Option<String> {
    super::name_addr::header_param(value, "tag").map(str::to_string)
}

/// Splits a comma-separated header list, ignoring commas in quotes or angle brackets.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    SplitList { rest: Some(value) }.filter(|p| !p.is_empty())
}

/// The entries of a comma list, one at a time (no allocation: every message
/// splits several headers on the hot path).
struct SplitList<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for SplitList<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let value = self.rest?;
        let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
        for (i, b) in value.bytes().enumerate() {
            if escaped {
                escaped = false;
                continue;
            }
            match b {
                b'\\' if quoted => escaped = true,
                b'"' => quoted = !quoted,
                b'<' if !quoted => depth += 1,
                b'>' if !quoted => depth -= 1,
                b',' if !quoted && depth <= 0 => {
                    self.rest = Some(&value[i + 1..]);
                    return Some(value[..i].trim());
                }
                _ => {}
            }
        }
        self.rest = None;
        Some(value.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_respects_quotes_and_brackets() {
        let v: Vec<_> = split_list(r#""Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>"#).collect();
        assert_eq!(v, vec![r#""Doe, John" <sip:a@b;x=1,2>;q=0.5"#, "<sip:c@d>"]);
    }

    #[test]
    fn tag_is_read_outside_the_uri() {
        assert_eq!(
            tag_param("<sip:a@b;tag=no>;tag=yes").as_deref(),
            Some("yes")
        );
        assert_eq!(tag_param("sip:a@b;tag=x").as_deref(), Some("x"));
        assert_eq!(tag_param("<sip:a@b>"), None);
    }
}
