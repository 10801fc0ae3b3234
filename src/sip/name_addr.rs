//! Reading `name-addr` / `addr-spec` header values (§20.10, §25.1) with
//! quote-aware parameter splitting: rsip's typed Contact splits parameters
//! inside quoted strings (GRUU's `pub-gruu="sip:...;gr=..."`), so header
//! parameters are read here instead.

/// Splits `"Name" <uri>;p=v;q` or `uri;p=v` into the URI text and the
/// header parameters (name, optional unquoted-as-sent value).
pub fn split_name_addr(value: &str) -> Option<(&str, Params<'_>)> {
    let value = value.trim();
    let (uri, rest) = match find_open_angle(value) {
        Some(open) => {
            let close = value[open..].find('>')? + open;
            (value[open + 1..close].trim(), &value[close + 1..])
        }
        None => match value.find(';') {
            Some(i) => (value[..i].trim(), &value[i..]),
            None => (value, ""),
        },
    };
    if uri.is_empty() {
        return None;
    }
    Some((uri, split_params(rest)))
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
