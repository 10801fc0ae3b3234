//! Name-addr helpers for the dialog state: reading the URI out of a Contact,
//! Route or From/To value, dropping the tag, and the loose-routing test
//! (RFC 3261 §19.1.1 parameters, §20.10 name-addr forms).
//!
//! Values stay as text where the dialog copies them back out verbatim
//! (From/To, route set entries): re-rendering a parsed header could reorder
//! or re-case parameters a peer compares.

use crate::sip::{parse_uri, split_address, split_name_addr, split_params, Param, Scheme, Uri};

use super::DialogError;

/// A message body with its Content-Type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// The URI text of a name-addr or addr-spec, without brackets.
pub(crate) fn uri_text(value: &str) -> &str {
    split_name_addr(value).map(|(uri, _)| uri).unwrap_or("")
}

/// The parsed URI of a name-addr or addr-spec.
pub(crate) fn uri_of(value: &str) -> Result<Uri, DialogError> {
    let text = uri_text(value);
    parse_uri(text).map_err(|_| DialogError::BadUri(text.to_string()))
}

/// The header value without its `tag` parameter (the dialog's local or
/// remote URI, §12.1.1: "the URI in the From/To field").
pub(crate) fn without_tag(value: &str) -> String {
    let Some((address, params)) = split_address(value) else {
        return value.trim().to_string();
    };
    let mut out = address.to_string();
    for (key, v) in split_params(params) {
        if !key.eq_ignore_ascii_case("tag") {
            out.push(';');
            out.push_str(key);
            if let Some(v) = v {
                out.push('=');
                out.push_str(v);
            }
        }
    }
    out
}

/// Whether a route entry names a loose router (`lr` URI parameter, §16.12.1.1).
pub(crate) fn is_loose(route: &str) -> bool {
    let uri = uri_text(route);
    let uri = uri.split('?').next().unwrap_or(uri);
    uri.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("lr")
    })
}

/// A route entry as a Request-URI for a strict router: the parameters a
/// Request-URI may not carry (`method`, URI headers) removed (§12.2.1.1, §19.1.1).
pub(crate) fn request_uri_from_route(route: &str) -> Result<Uri, DialogError> {
    let mut uri = uri_of(route)?;
    uri.params.retain(|p| !matches!(p, Param::Method(_)));
    uri.headers.clear();
    Ok(uri)
}

pub(crate) fn is_sips(uri: &Uri) -> bool {
    uri.scheme == Some(Scheme::Sips)
}

/// A URI as a name-addr, for a Route or Contact value.
pub(crate) fn bracketed(uri: &Uri) -> String {
    format!("<{uri}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_is_read_from_each_form() {
        assert_eq!(uri_text(r#""A <x>" <sip:a@b;lr>;tag=1"#), "sip:a@b;lr");
        assert_eq!(uri_text("sip:a@b;tag=1"), "sip:a@b");
        assert_eq!(uri_text(" <sips:p.example.com> "), "sips:p.example.com");
    }

    #[test]
    fn tag_is_dropped_and_other_params_kept() {
        assert_eq!(
            without_tag("\"Bob\" <sip:bob@b;x=1>;tag=9;foo=bar"),
            "\"Bob\" <sip:bob@b;x=1>;foo=bar"
        );
        assert_eq!(without_tag("sip:bob@b;TAG=9"), "sip:bob@b");
    }

    #[test]
    fn loose_routing_is_the_lr_uri_parameter() {
        assert!(is_loose("<sip:p1.example.com;lr>"));
        assert!(is_loose("<sip:p1.example.com;transport=tcp;LR=on>"));
        assert!(!is_loose("<sip:p1.example.com>;lr"));
        assert!(!is_loose("<sip:p1.example.com;maddr=lr.example.com>"));
    }

    #[test]
    fn strict_route_loses_method_and_headers_as_request_uri() {
        let uri = request_uri_from_route("<sip:p2.example.com;method=INVITE?X=1>").unwrap();
        assert_eq!(uri.to_string(), "sip:p2.example.com");
    }
}
