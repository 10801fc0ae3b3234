//! Reading the Contact and To values of a REGISTER (RFC 3261 §10.3 steps
//! 5 and 6, §20.10, §19.1.4; RFC 5626 §4.2 for `+sip.instance`/`reg-id`).
//!
//! Owns the split of a name-addr or addr-spec into its URI and header
//! parameters (without angle brackets every `;param` belongs to the header,
//! §20.10), the `expires` and `q` parameters, and the comparison key that
//! decides whether two Contact URIs name the same binding. Keeps no state.

use std::fmt;

use crate::sip::{parse_uri, split_name_addr, Param, Uri};

/// A Contact preference, in thousandths (`q=0.5` is 500); 1000 when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(pub u16);

impl QValue {
    pub const DEFAULT: QValue = QValue(1000);

    /// Reads `0`, `0.5`, `1.000`... (§25.1 `qvalue`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole = match int {
            "0" => 0u16,
            "1" => 1000,
            _ => return None,
        };
        let mut thousandths = 0u16;
        for (b, weight) in frac.bytes().zip([100, 10, 1]) {
            thousandths += u16::from(b - b'0') * weight;
        }
        let value = whole + thousandths;
        (value <= 1000).then_some(QValue(value))
    }
}

impl fmt::Display for QValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{}.{:03}", self.0 / 1000, self.0 % 1000);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        f.write_str(if s.is_empty() { "0" } else { s })
    }
}

/// One Contact of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactSpec {
    /// The Contact URI as written (without angle brackets).
    pub uri: String,
    /// The whole Contact value as received.
    pub raw: String,
    /// The `expires` parameter, in seconds.
    pub expires: Option<u64>,
    pub q: QValue,
    /// `+sip.instance`, without its quotes (e.g. `<urn:uuid:...>`).
    pub instance_id: Option<String>,
    pub reg_id: Option<u32>,
    /// What two Contacts share when they name the same binding.
    pub key: String,
}

/// The Contact header fields of a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` alone.
    Wildcard,
    List(Vec<ContactSpec>),
}

/// Why the Contacts of a REGISTER are unusable (answered with 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("wildcard Contact combined with other contacts")]
    WildcardWithOthers,
    #[error("invalid Contact URI")]
    BadUri,
    #[error("invalid q value")]
    BadQ,
}

/// Parses every Contact value (comma lists already split). An empty list
/// means the REGISTER is a query (§10.3 step 8 with no Contact).
pub fn parse_contacts(values: &[&str]) -> Result<Option<Contacts>, ContactError> {
    if values.is_empty() {
        return Ok(None);
    }
    if values.iter().any(|v| v.trim() == "*") {
        return if values.len() == 1 {
            Ok(Some(Contacts::Wildcard))
        } else {
            Err(ContactError::WildcardWithOthers)
        };
    }
    values
        .iter()
        .map(|v| parse_contact(v))
        .collect::<Result<Vec<_>, _>>()
        .map(|list| Some(Contacts::List(list)))
}

fn parse_contact(value: &str) -> Result<ContactSpec, ContactError> {
    let (uri_text, params) = split_name_addr(value).ok_or(ContactError::BadUri)?;
    let uri = parse_uri(uri_text).map_err(|_| ContactError::BadUri)?;
    if !is_sip_scheme(&uri) {
        return Err(ContactError::BadUri);
    }
    let mut spec = ContactSpec {
        uri: uri_text.to_string(),
        raw: value.trim().to_string(),
        expires: None,
        q: QValue::DEFAULT,
        instance_id: None,
        reg_id: None,
        key: uri_key(&uri),
    };
    for (name, val) in params {
        match name.to_ascii_lowercase().as_str() {
            // §20.19 spirit: an unreadable delta is ignored rather than fatal;
            // a huge one saturates and is capped by the registrar.
            "expires" => spec.expires = val.and_then(parse_delta),
            "q" => spec.q = val.and_then(QValue::parse).ok_or(ContactError::BadQ)?,
            "+sip.instance" => spec.instance_id = val.map(|v| v.trim_matches('"').to_string()),
            "reg-id" => spec.reg_id = val.and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    Ok(spec)
}

/// Seconds from a delta-seconds text, saturating instead of failing on
/// overflow (§25.1 allows arbitrary length).
pub fn parse_delta(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(t.parse().unwrap_or(u64::MAX))
}

fn is_sip_scheme(uri: &Uri) -> bool {
    uri.scheme
        .as_ref()
        .map(|s| s.to_string().to_ascii_lowercase())
        .is_some_and(|s| s == "sip" || s == "sips")
}

/// A comparison key for §19.1.4 URI equality, simplified: scheme and host
/// case-insensitive, user case-sensitive, port as written, and the
/// parameters that must match when present (`transport`, `user`, `method`,
/// `ttl`, `maddr`); other parameters do not distinguish bindings.
fn uri_key(uri: &Uri) -> String {
    let scheme = uri
        .scheme
        .as_ref()
        .map(|s| s.to_string().to_ascii_lowercase())
        .unwrap_or_default();
    let user = uri.auth.as_ref().map(|a| a.user.as_str()).unwrap_or("");
    let host = uri.host_with_port.host.to_string().to_ascii_lowercase();
    let port = uri
        .host_with_port
        .port
        .as_ref()
        .map(|p| p.value().to_string())
        .unwrap_or_default();
    let mut params: Vec<String> = uri
        .params
        .iter()
        .filter(|p| {
            matches!(
                p,
                Param::Transport(_)
                    | Param::User(_)
                    | Param::Method(_)
                    | Param::Ttl(_)
                    | Param::Maddr(_)
            )
        })
        .map(|p| p.to_string().to_ascii_lowercase())
        .collect();
    params.sort();
    format!("{scheme}:{user}@{host}:{port}{}", params.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        assert_eq!(QValue::parse("0.5"), Some(QValue(500)));
        assert_eq!(QValue::parse("1"), Some(QValue(1000)));
        assert_eq!(QValue::parse("1.000"), Some(QValue(1000)));
        assert_eq!(QValue::parse("0.125"), Some(QValue(125)));
        assert_eq!(QValue::parse("1.5"), None);
        assert_eq!(QValue::parse("0.1234"), None);
        assert_eq!(QValue(500).to_string(), "0.5");
        assert_eq!(QValue(1000).to_string(), "1");
        assert_eq!(QValue(0).to_string(), "0");
    }

    #[test]
    fn contact_params_are_header_params_outside_brackets() {
        let list = parse_contacts(&[
            r#""A; B" <sip:1001@10.0.0.5:5062;transport=tcp;expires=5>;expires=60;q=0.7;+sip.instance="<urn:uuid:0001>";reg-id=1"#,
            "sip:1001@10.0.0.6;expires=30",
        ])
        .unwrap()
        .unwrap();
        let Contacts::List(list) = list else {
            panic!("not a list")
        };
        assert_eq!(
            list[0].uri,
            "sip:1001@10.0.0.5:5062;transport=tcp;expires=5"
        );
        assert_eq!(list[0].expires, Some(60));
        assert_eq!(list[0].q, QValue(700));
        assert_eq!(list[0].instance_id.as_deref(), Some("<urn:uuid:0001>"));
        assert_eq!(list[0].reg_id, Some(1));
        assert_eq!(list[1].uri, "sip:1001@10.0.0.6");
        assert_eq!(list[1].expires, Some(30));
    }

    #[test]
    fn wildcard_rules() {
        assert_eq!(parse_contacts(&[]), Ok(None));
        assert_eq!(parse_contacts(&["*"]), Ok(Some(Contacts::Wildcard)));
        assert_eq!(
            parse_contacts(&["*", "<sip:a@b>"]),
            Err(ContactError::WildcardWithOthers)
        );
        assert_eq!(parse_contacts(&["<mailto:a@b>"]), Err(ContactError::BadUri));
    }

    #[test]
    fn uri_keys_follow_19_1_4_loosely() {
        let key = |v: &str| match parse_contacts(&[v]).unwrap().unwrap() {
            Contacts::List(l) => l[0].key.clone(),
            _ => unreachable!(),
        };
        assert_eq!(key("<sip:bob@EXAMPLE.com>"), key("<SIP:bob@example.com>"));
        assert_ne!(key("<sip:bob@example.com>"), key("<sip:BOB@example.com>"));
        assert_ne!(
            key("<sip:bob@example.com>"),
            key("<sip:bob@example.com:5060>")
        );
        assert_eq!(
            key("<sip:bob@example.com;ob>"),
            key("<sip:bob@example.com>")
        );
        assert_ne!(
            key("<sip:bob@example.com;transport=tcp>"),
            key("<sip:bob@example.com>")
        );
    }
}
