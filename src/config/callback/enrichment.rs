//! `[callback.enrichment]` and each queue's `enrichment` table checked and
//! turned into [`EnrichSettings`]. A queue's table replaces the global one
//! whole (nothing is inherited), so each enabled table needs its own `url`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::Problems;
use crate::config::schema::{CallbackTable, EnrichmentTable};
use crate::config::KeyPath;
use crate::integrations::client;
use crate::integrations::enrich::{
    ApiKey, EnrichSettings, QueueEnrichment, WebhookSettings, DEFAULT_API_KEY_HEADER,
    DEFAULT_PROTECTED_KEYS, DEFAULT_TIMEOUT,
};

const MAX_TIMEOUT_MS: u64 = 60_000;

/// Headers the client sets itself; a key in one of them would corrupt the request.
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "accept",
];

/// The webhooks `t` configures. `check_files`: the CA files must be
/// readable and hold certificates (off for the embedded configuration).
pub(super) fn settings(
    t: &CallbackTable,
    base: &KeyPath,
    check_files: bool,
    p: &mut Problems,
) -> EnrichSettings {
    let global = t.enrichment.as_ref().and_then(|table| {
        let key = base.clone().key("enrichment");
        enabled(table).then(|| webhook(table, &key, check_files, p))?
    });
    let mut queues = BTreeMap::new();
    for (i, q) in t.queues.iter().enumerate() {
        let Some(table) = &q.enrichment else {
            continue;
        };
        let key = base.clone().key("queues").index(i).key("enrichment");
        let choice = if enabled(table) {
            match webhook(table, &key, check_files, p) {
                Some(w) => QueueEnrichment::Webhook(Box::new(w)),
                // Already reported; the load fails.
                None => continue,
            }
        } else {
            QueueEnrichment::Off
        };
        queues.insert(q.id.clone(), choice);
    }
    EnrichSettings { global, queues }
}

fn enabled(table: &EnrichmentTable) -> bool {
    table.enabled.unwrap_or(true)
}

/// One enabled table; `None` when it has no usable URL (reported).
fn webhook(
    t: &EnrichmentTable,
    key: &KeyPath,
    check_files: bool,
    p: &mut Problems,
) -> Option<WebhookSettings> {
    let allow_http = t.allow_http.unwrap_or(false);
    let url = match &t.url {
        None => {
            p.push(
                key.clone().key("url"),
                "is required (or set enabled = false)".into(),
            );
            None
        }
        Some(raw) => match client::webhook_url(raw, allow_http) {
            Ok(url) => Some(url),
            Err(e) => {
                p.push(key.clone().key("url"), e.to_string());
                None
            }
        },
    };
    let api_key_header = api_key_header(t, key, p);
    let api_key = t.api_key.as_ref().and_then(|k| {
        if usable_header_value(k) {
            Some(ApiKey(k.clone()))
        } else {
            p.push(
                key.clone().key("api_key"),
                "must be printable ASCII, not empty, without leading or trailing spaces".into(),
            );
            None
        }
    });
    let timeout = match t.timeout_ms {
        None => DEFAULT_TIMEOUT,
        Some(ms) => Duration::from_millis(p.bounded(
            key.clone().key("timeout_ms"),
            ms,
            1..=MAX_TIMEOUT_MS,
            DEFAULT_TIMEOUT.as_millis() as u64,
        )),
    };
    let protected_keys = protected_keys(t, key, p);
    let ca_file = t.ca_file.as_ref().map(|ca| {
        let full = p.file.parent().unwrap_or(Path::new("")).join(ca);
        if check_files {
            // Building a client reads and parses the file as start-up will.
            if let Err(e) = client::build(timeout, Some(&full)) {
                p.push(key.clone().key("ca_file"), e.to_string());
            }
        }
        full
    });
    Some(WebhookSettings {
        url: url?,
        allow_http,
        api_key_header,
        api_key,
        timeout,
        on_failure: t.on_failure.unwrap_or_default(),
        protected_keys,
        ca_file,
    })
}

fn api_key_header(t: &EnrichmentTable, key: &KeyPath, p: &mut Problems) -> String {
    let Some(name) = &t.api_key_header else {
        return DEFAULT_API_KEY_HEADER.into();
    };
    let problem = if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        Some(format!("{name:?} is not an HTTP header name"))
    } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        Some(format!("{name} is set by the switch itself"))
    } else {
        None
    };
    match problem {
        Some(message) => {
            p.push(key.clone().key("api_key_header"), message);
            DEFAULT_API_KEY_HEADER.into()
        }
        None => name.clone(),
    }
}

/// Printable ASCII (spaces inside allowed, for `Bearer <token>`).
fn usable_header_value(v: &str) -> bool {
    !v.is_empty()
        && v.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !v.starts_with(' ')
        && !v.ends_with(' ')
}

/// The list as configured (replacing the default), `data.` prefixes dropped.
fn protected_keys(t: &EnrichmentTable, key: &KeyPath, p: &mut Problems) -> Vec<String> {
    let Some(list) = &t.protected_keys else {
        return DEFAULT_PROTECTED_KEYS.map(String::from).to_vec();
    };
    let mut keys = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let name = raw.strip_prefix("data.").unwrap_or(raw);
        if name.trim().is_empty() {
            p.push(
                key.clone().key("protected_keys").index(i),
                format!("{raw:?} names no data key"),
            );
        } else if !keys.iter().any(|k| k == name) {
            keys.push(name.to_string());
        }
    }
    keys
}

#[cfg(test)]
#[path = "enrichment_tests.rs"]
mod tests;
