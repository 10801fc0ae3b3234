//! `[notify]` checked and turned into [`NotifySettings`]: the
//! workforce-management endpoints (docs/notifications.md) and the base of recording
//! links. Every problem is reported against its key (so with its line); a
//! bad endpoint is left out so the settings stay usable for the report.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};

use super::schema::{General, NotifyEndpointTable, NotifyTable};
use super::validate::Problem;
use super::KeyPath;
use crate::integrations::client::{webhook_url, Url};
use crate::integrations::notify::{
    BodyFormat, DeliveryRetry, EndpointSettings, EventFilter, NotifySettings, Signing,
};

/// The signature header unless configured otherwise.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Switchback-Signature";
/// Shorter secrets are too easy to guess for an HMAC key.
const MIN_SECRET: usize = 16;
const MAX_TIMEOUT_MS: u64 = 120_000;
const MAX_ATTEMPTS: u32 = 1_000;
const MAX_BACKOFF_MS: u64 = 24 * 3600 * 1000;
/// Set by the switch on every request: a configured header may not replace them.
const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "x-switchback-event-id",
    "x-switchback-event-type",
];

/// The settings `table` describes and what is wrong with it. `general`
/// gives the default `public_url` (the HTTP API's listen address; a port
/// 0 is only known once bound, so the driver fills that case in).
pub(super) fn settings(
    table: &NotifyTable,
    general: &General,
    main: &Path,
    check_files: bool,
) -> (NotifySettings, Vec<Problem>) {
    let mut out = Vec::new();
    let base = KeyPath::default().key("notify");
    let mut push = |key: KeyPath, message: String| out.push((main.to_path_buf(), key, message));

    let public_url = match &table.public_url {
        Some(url) => match public_url(url) {
            Ok(url) => Some(url),
            Err(e) => {
                push(base.clone().key("public_url"), e.to_string());
                None
            }
        },
        None => general
            .http_listen
            .filter(|a| a.port() != 0)
            .map(|a| derived_public_url(a, general.http_tls_cert.is_some())),
    };

    let dir = main.parent().unwrap_or(Path::new(""));
    let mut names = HashSet::new();
    let mut endpoints = Vec::new();
    for (i, e) in table.endpoints.iter().enumerate() {
        let key = base.clone().key("endpoints").index(i);
        let mut problems = Vec::new();
        let settings = endpoint(e, dir, check_files, &key, &mut problems);
        if !names.insert(e.name.as_str()) {
            problems.push((
                key.clone().key("name"),
                format!("endpoint {} is defined twice", e.name),
            ));
        }
        let ok = problems.is_empty();
        for (k, m) in problems {
            push(k, m);
        }
        if ok {
            endpoints.push(settings);
        }
    }
    (
        NotifySettings {
            endpoints,
            public_url,
        },
        out,
    )
}

/// `http(s)://ADDRESS` of the HTTP API as bound.
pub fn derived_public_url(addr: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{addr}")
}

/// An absolute http(s) URL without query or fragment, kept without its
/// trailing slash (links are `{public_url}/v1/...`).
fn public_url(url: &str) -> Result<String, UrlError> {
    let parsed = Url::parse(url).map_err(|e| UrlError::NotUrl(url.to_string(), e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(UrlError::NotHttp(url.to_string()));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(UrlError::QueryOrFragment(url.to_string()));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// What is wrong with `notify.public_url`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("{0:?} is not a URL: {1}")]
    NotUrl(String, String),
    #[error("{0:?} must be an http:// or https:// URL with a host")]
    NotHttp(String),
    #[error("{0:?} must not have a query or fragment")]
    QueryOrFragment(String),
}

/// What is wrong with a header name an endpoint sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderNameError {
    #[error("{0:?} is not a header name")]
    Invalid(String),
    #[error("{0} is set by the switch")]
    Reserved(String),
}

fn endpoint(
    e: &NotifyEndpointTable,
    dir: &Path,
    check_files: bool,
    key: &KeyPath,
    p: &mut Vec<(KeyPath, String)>,
) -> EndpointSettings {
    let mut push = |k: &str, message: String| p.push((key.clone().key(k), message));
    // Names appear in the dead-letter API's paths.
    if e.name.is_empty()
        || !e
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        push(
            "name",
            format!(
                "{:?} is not a name (letters, digits, '-', '_', '.')",
                e.name
            ),
        );
    }
    if let Err(err) = webhook_url(&e.url, e.allow_http) {
        push("url", err.to_string());
    }
    let format = match e.format.as_str() {
        "json" => BodyFormat::Json,
        "form" => BodyFormat::Form,
        other => {
            push(
                "format",
                format!("{other:?} is neither \"json\" nor \"form\""),
            );
            BodyFormat::Form
        }
    };
    let mut events = EventFilter::default();
    if e.events.is_empty() {
        push(
            "events",
            "at least one of agent-states, agent-login, agent-logout, end-call".into(),
        );
    }
    for (j, name) in e.events.iter().enumerate() {
        match name.as_str() {
            "agent-states" => events.all_agent_states = true,
            "agent-login" => events.agent_login = true,
            "agent-logout" => events.agent_logout = true,
            "end-call" => events.end_call = true,
            other => p.push((
                key.clone().key("events").index(j),
                format!(
                    "unknown event {other:?} (agent-states, agent-login, agent-logout, end-call)"
                ),
            )),
        }
    }
    let mut push = |k: KeyPath, message: String| p.push((k, message));
    let signing = match &e.signing_secret {
        Some(secret) => {
            if secret.chars().count() < MIN_SECRET {
                push(
                    key.clone().key("signing_secret"),
                    format!("must be at least {MIN_SECRET} characters"),
                );
            }
            let header = e
                .signature_header
                .clone()
                .unwrap_or_else(|| DEFAULT_SIGNATURE_HEADER.into());
            if let Err(e) = header_name(&header) {
                push(key.clone().key("signature_header"), e.to_string());
            }
            Some(Signing {
                secret: secret.clone(),
                header,
            })
        }
        None => {
            if e.signature_header.is_some() {
                push(
                    key.clone().key("signature_header"),
                    "needs signing_secret".into(),
                );
            }
            None
        }
    };
    let mut headers = Vec::new();
    for (name, value) in &e.headers {
        let k = key.clone().key("headers").key(name);
        match header_name(name) {
            Err(e) => push(k, e.to_string()),
            Ok(())
                if signing
                    .as_ref()
                    .is_some_and(|s| s.header.eq_ignore_ascii_case(name)) =>
            {
                push(k, "is the signature header".into())
            }
            Ok(()) if !header_value(value) => push(
                k,
                "the value must be visible ASCII (tabs and spaces allowed)".into(),
            ),
            Ok(()) => headers.push((name.clone(), value.clone())),
        }
    }
    let timeout_ms = bounded(e.timeout_ms, 1, MAX_TIMEOUT_MS);
    if timeout_ms.is_none() {
        push(
            key.clone().key("timeout_ms"),
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        );
    }
    if !(1..=MAX_ATTEMPTS).contains(&e.max_attempts) {
        push(
            key.clone().key("max_attempts"),
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        );
    }
    let initial = bounded(e.backoff_initial_ms, 1, MAX_BACKOFF_MS);
    if initial.is_none() {
        push(
            key.clone().key("backoff_initial_ms"),
            format!("must be between 1 and {MAX_BACKOFF_MS}"),
        );
    }
    if bounded(e.backoff_max_ms, 1, MAX_BACKOFF_MS).is_none() {
        push(
            key.clone().key("backoff_max_ms"),
            format!("must be between 1 and {MAX_BACKOFF_MS}"),
        );
    } else if e.backoff_max_ms < e.backoff_initial_ms {
        push(
            key.clone().key("backoff_max_ms"),
            format!(
                "must not be below backoff_initial_ms ({})",
                e.backoff_initial_ms
            ),
        );
    }
    let ca_file = e.ca_file.as_ref().map(|f| dir.join(f));
    if let (Some(full), true) = (&ca_file, check_files) {
        if let Err(err) = std::fs::metadata(full) {
            push(
                key.clone().key("ca_file"),
                format!("{}: {err}", full.display()),
            );
        }
    }
    EndpointSettings {
        name: e.name.clone(),
        url: e.url.clone(),
        format,
        events,
        headers,
        signing,
        timeout: Duration::from_millis(timeout_ms.unwrap_or(5_000)),
        retry: DeliveryRetry {
            max_attempts: e.max_attempts.max(1),
            initial: Duration::from_millis(e.backoff_initial_ms.max(1)),
            max: Duration::from_millis(e.backoff_max_ms.max(e.backoff_initial_ms).max(1)),
        },
        allow_http: e.allow_http,
        ca_file,
    }
}

fn bounded(v: u64, min: u64, max: u64) -> Option<u64> {
    (min..=max).contains(&v).then_some(v)
}

/// Visible ASCII, spaces and tabs (obs-text is legal in HTTP but
/// receivers read it differently).
fn header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && HeaderValue::from_str(value).is_ok()
}

fn header_name(name: &str) -> Result<(), HeaderNameError> {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(HeaderNameError::Invalid(name.to_string()));
    }
    if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(HeaderNameError::Reserved(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
