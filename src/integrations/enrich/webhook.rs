//! One exchange with a customer's endpoint: POST the payload with the API
//! key, read a bounded answer, and name what went wrong when it did.

use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use super::settings::WebhookSettings;

/// Largest answer read; a valid answer is a handful of fields.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Why an exchange gave no usable answer (the `detail` the API and the
/// history show).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("timeout after {0} ms")]
    Timeout(u128),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("status {0}")]
    Status(u16),
    #[error("body larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("body not JSON: {0}")]
    NotJson(String),
    #[error("invalid body: {0}")]
    Invalid(#[from] super::merge::InvalidAnswer),
    #[error("the API key is not usable in a header")]
    BadKey,
}

/// The endpoint's answer (`{}` for an empty 2xx body: nothing to change).
pub async fn call(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    payload: &Value,
) -> Result<Value, Failure> {
    let mut request = client
        .post(settings.url.clone())
        .header(CONTENT_TYPE, "application/json")
        .header(ACCEPT, "application/json")
        .body(payload.to_string());
    if let Some(key) = &settings.api_key {
        // Both were checked when the configuration was loaded.
        let name = HeaderName::from_bytes(settings.api_key_header.as_bytes())
            .map_err(|_| Failure::BadKey)?;
        let mut value = HeaderValue::from_str(&key.0).map_err(|_| Failure::BadKey)?;
        value.set_sensitive(true);
        request = request.header(name, value);
    }
    let timeout = settings.timeout;
    let mut response = request.send().await.map_err(|e| failure(e, timeout))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure::Status(status.as_u16()));
    }
    if response
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(Failure::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure(e, timeout))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(&body).map_err(|e| Failure::NotJson(e.to_string()))
}

/// reqwest's error, without the URL (it may carry a token) and with its
/// cause, which is what an operator needs ("connection refused").
fn failure(e: reqwest::Error, timeout: Duration) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout(timeout.as_millis());
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if connect {
        Failure::Connect(text)
    } else {
        Failure::Transport(text)
    }
}
