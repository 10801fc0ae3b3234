//! What an endpoint receives for one event: the body in its configured
//! format and the signature over those exact bytes. Pure functions: the
//! delivery task renders a body once per (event, endpoint) and sends the
//! same bytes on every attempt, so a signature never depends on the try.
//!
//! JSON is the [`Notice`] as it is serialized (camelCase, flat
//! `eventType`). The form (the default format, URL-encoded) is the same
//! fields flattened to `name=value` pairs: nulls omitted, numbers and
//! booleans as their text.

use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::{BodyFormat, Notice};

pub const JSON: &str = "application/json";
pub const FORM: &str = "application/x-www-form-urlencoded";

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the event cannot be serialized: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the event cannot be form-encoded: {0}")]
    Form(#[from] serde_urlencoded::ser::Error),
}

/// A rendered body and its `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Bytes,
    pub content_type: &'static str,
}

pub fn render(format: BodyFormat, notice: &Notice) -> Result<Body, BodyError> {
    match format {
        BodyFormat::Json => Ok(Body {
            bytes: Bytes::from(serde_json::to_vec(notice)?),
            content_type: JSON,
        }),
        BodyFormat::Form => Ok(Body {
            bytes: Bytes::from(serde_urlencoded::to_string(form_fields(notice)?)?),
            content_type: FORM,
        }),
    }
}

/// The notice's fields as text pairs, in the JSON object's order (nulls
/// left out; a nested value, should an event ever have one, as its JSON).
fn form_fields(notice: &Notice) -> Result<Vec<(String, String)>, BodyError> {
    let Value::Object(fields) = serde_json::to_value(notice)? else {
        return Ok(Vec::new());
    };
    Ok(fields
        .into_iter()
        .filter_map(|(name, value)| {
            let text = match value {
                Value::Null => return None,
                Value::String(s) => s,
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                nested @ (Value::Array(_) | Value::Object(_)) => nested.to_string(),
            };
            Some((name, text))
        })
        .collect())
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` keyed with `secret`. A receiver
/// recomputes it over the bytes it received and compares in constant time.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::notify::{AgentChangeNotice, EndCallNotice, NoticeKind};

    fn login() -> Notice {
        Notice {
            event_id: "ev-1".into(),
            timestamp: "2026-01-02T03:04:05Z".parse().unwrap(),
            kind: NoticeKind::AgentLogin(AgentChangeNotice {
                agent_id: "1001".into(),
                agent_name: Some("Ann & Bo".into()),
                state: "not-ready".into(),
                state_name: "Lunch".into(),
                reason: Some("Lunch".into()),
                previous_state: None,
                previous_state_name: None,
                previous_state_seconds: Some(42),
            }),
        }
    }

    #[test]
    fn json_is_the_notice_itself() {
        let body = render(BodyFormat::Json, &login()).unwrap();
        assert_eq!(body.content_type, "application/json");
        let back: Notice = serde_json::from_slice(&body.bytes).unwrap();
        assert_eq!(back, login());
    }

    #[test]
    fn form_flattens_fields_and_leaves_out_nulls() {
        let body = render(BodyFormat::Form, &login()).unwrap();
        assert_eq!(body.content_type, "application/x-www-form-urlencoded");
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body.bytes).unwrap();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("eventId"), Some("ev-1"));
        assert_eq!(get("eventType"), Some("agent-login"));
        assert_eq!(get("timestamp"), Some("2026-01-02T03:04:05Z"));
        assert_eq!(get("agentName"), Some("Ann & Bo"), "escaped and back");
        assert_eq!(get("previousStateSeconds"), Some("42"));
        assert_eq!(get("previousState"), None, "null omitted");
        assert!(!String::from_utf8_lossy(&body.bytes).contains("null"));
    }

    #[test]
    fn an_end_call_form_carries_numbers_and_times_as_text() {
        let notice = Notice {
            event_id: "ev-2".into(),
            timestamp: "2026-01-02T03:10:00Z".parse().unwrap(),
            kind: NoticeKind::EndCall(EndCallNotice {
                agent_id: "1002".into(),
                agent_name: None,
                interaction_id: "cb-1".into(),
                call_id: "c-1".into(),
                queue_id: "support".into(),
                contact_number: Some("+15550100".into()),
                started_at: "2026-01-02T03:00:00Z".parse().unwrap(),
                answered_at: None,
                ended_at: "2026-01-02T03:09:00Z".parse().unwrap(),
                duration_seconds: 540,
                talk_seconds: 500,
                hold_seconds: 30,
                disposition: Some("sold".into()),
                recording_url: None,
                ended_by: "agent".into(),
                cause: "normal".into(),
                transferred_to: None,
            }),
        };
        let body = render(BodyFormat::Form, &notice).unwrap();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body.bytes).unwrap();
        assert!(pairs.contains(&("talkSeconds".into(), "500".into())));
        assert!(pairs.contains(&("contactNumber".into(), "+15550100".into())));
        assert!(pairs.contains(&("eventType".into(), "end-call".into())));
        assert!(!pairs.iter().any(|(n, _)| n == "answeredAt"));
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(signature(b"Jefe", b"x"), signature(b"Jeff", b"x"));
    }
}
