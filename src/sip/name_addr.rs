//! Reading `name-addr` / `addr-spec` header values (§20.10, §25.1) with
//! quote-aware parameter splitting: rsip's typed Contact splits parameters
//! inside quoted strings (GRUU's `pub-gruu="sip:...;gr=..."`), so header
//! parameters are read here instead.

/// The user part of a SIP or SIPS URI in a name-addr or addr-spec
/// (`"Alice" <sip:1001@pbx>;tag=x` -> `1001`): the registrar's
/// address-of-record key (§10.3 step 5), and the caller or number the call
/// layer routes. `None` for other schemes or a URI without a user.
pub fn user_part(value: &str) -> Option<String> {
    let (uri_text, _) = split_name_addr(value)?;
    let uri = super::parse_uri(uri_text).ok()?;
    let sip = uri
        .scheme
        .as_ref()
        .map(|s| s.to_string().to_ascii_lowercase())
        .is_some_and(|s| s == "sip" || s == "sips");
    if !sip {
        return None;
    }
    let user = uri.auth.as_ref()?.user.trim().to_string();
    (!user.is_empty()).then_some(user)
}

/// Splits a header value into its address (display name and `<uri>`, or a
/// bare addr-spec) and the header-parameter text after it (starting at `;`).
/// A bare addr-spec's parameters all belong to the header (§20.10).
pub fn split_address(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    let split = match find_open_angle(value) {
        Some(open) => open + value[open..].find('>')? + 1,
        None => value.find(';').unwrap_or(value.len()),
    };
    let (address, params) = value.split_at(split);
    Some((address.trim_end(), params))
}

/// Splits `"Name" <uri>;p=v;q` or `uri;p=v` into the URI text and the
/// header parameters (name, optional unquoted-as-sent value).
pub fn split_name_addr(value: &str) -> Option<(&str, Params<'_>)> {
    let (address, rest) = split_address(value)?;
    let uri = match find_open_angle(address) {
        Some(open) => address[open + 1..].trim_end_matches('>').trim(),
        None => address,
    };
    if uri.is_empty() {
        return None;
    }
    Some((uri, split_params(rest)))
}

/// One header parameter's value as sent (`tag`, `expires`, ...), by name.
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let (_, params) = split_name_addr(value)?;
    params
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v)
}

/// The `<` that opens the URI, skipping a quoted display name.
fn find_open_angle(value: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// Where a route entry (`<sip:10.0.0.1:5070;lr;transport=tcp>`) leads when
/// its host is an IP address: the address, the port if written, and the
/// `transport` parameter if any. `None` for a host name (resolving it is
/// the driver's business) or a value that is no SIP URI.
pub fn ip_hop(value: &str) -> Option<(std::net::IpAddr, Option<u16>, Option<String>)> {
    let (uri_text, _) = split_name_addr(value)?;
    let uri = super::parse_uri(uri_text).ok()?;
    let host = uri.host_with_port.host.to_string();
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()?;
    let port = uri.host_with_port.port.map(|p| p.value());
    let transport = uri.params.iter().find_map(|p| match p {
        rsipstack::sip::Param::Transport(t) => Some(t.to_string().to_ascii_lowercase()),
        _ => None,
    });
    Some((ip, port, transport))
}

/// Header parameters: name and value as sent (quotes kept), if any.
pub type Params<'a> = Vec<(&'a str, Option<&'a str>)>;

/// `;a=1;b;c="x;y"` into pairs, respecting quotes.
pub fn split_params(rest: &str) -> Params<'_> {
    let mut pieces = Vec::new();
    let mut quoted = false;
    let mut start = None;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => {
                if let Some(s) = start {
                    pieces.push(&rest[s..i]);
                }
                start = Some(i + 1);
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        pieces.push(&rest[s..]);
    }
    pieces
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (p, None),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_params_in_each_form() {
        assert_eq!(
            split_address(r#""A <x>;y" <sip:a@b;lr>;tag=1"#),
            Some((r#""A <x>;y" <sip:a@b;lr>"#, ";tag=1"))
        );
        assert_eq!(split_address("sip:a@b;tag=1"), Some(("sip:a@b", ";tag=1")));
        assert_eq!(
            split_name_addr(" <sips:p.example.com> ").unwrap().0,
            "sips:p.example.com"
        );
    }

    #[test]
    fn quoted_parameters_stay_whole() {
        let v = r#"<sip:1001@h>;pub-gruu="sip:1001@e;gr=urn:x";reg-id=1;tag=t"#;
        assert_eq!(
            header_param(v, "pub-gruu"),
            Some(r#""sip:1001@e;gr=urn:x""#)
        );
        assert_eq!(header_param(v, "TAG"), Some("t"));
        assert_eq!(header_param("<sip:a@b;tag=no>", "tag"), None);
    }

    #[test]
    fn ip_hop_of_route_entries() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            ip_hop("<sip:127.0.0.1:5070;lr;received=sip:127.0.0.1:40000>"),
            Some((ip("127.0.0.1"), Some(5070), None))
        );
        assert_eq!(
            ip_hop("<sip:[2001:db8::1];lr;transport=TCP>"),
            Some((ip("2001:db8::1"), None, Some("tcp".into())))
        );
        assert_eq!(ip_hop("<sip:edge.example.com;lr>"), None);
        assert_eq!(ip_hop("<tel:+15551234>"), None);
    }

    #[test]
    fn user_part_of_name_addr_and_addr_spec() {
        assert_eq!(
            user_part(r#""Alice" <sip:1001@pbx.example.com>;tag=x"#).as_deref(),
            Some("1001")
        );
        assert_eq!(user_part("sip:1002@pbx").as_deref(), Some("1002"));
        assert_eq!(user_part("<sip:pbx.example.com>"), None);
        assert_eq!(user_part("<tel:+15551234>"), None);
    }
}
