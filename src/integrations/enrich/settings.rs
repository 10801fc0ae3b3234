//! The enrichment webhook's settings, validated from `[callback.enrichment]`
//! and each queue's `enrichment` table (see `config::callback`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::integrations::client::Url;

/// The header the API key travels in unless configured otherwise.
pub const DEFAULT_API_KEY_HEADER: &str = "X-API-Key";
/// How long the endpoint may take unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);
/// These case-data keys are never overwritten (docs/enrichment.md, Protected keys).
pub const DEFAULT_PROTECTED_KEYS: [&str; 2] = ["visitorId", "te_channel"];

/// Which webhook (if any) each queue consults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnrichSettings {
    /// `[callback.enrichment]`: for every queue without its own table.
    pub global: Option<WebhookSettings>,
    /// Queues with their own `enrichment` table, by queue id.
    pub queues: BTreeMap<String, QueueEnrichment>,
}

/// A queue's own choice, which replaces the global webhook for it.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueEnrichment {
    Webhook(Box<WebhookSettings>),
    /// `enabled = false`: no enrichment for this queue.
    Off,
}

impl EnrichSettings {
    /// The webhook a request for `queue` (as sent) consults.
    pub fn for_queue(&self, queue: &str) -> Option<&WebhookSettings> {
        match self.queues.get(queue) {
            Some(QueueEnrichment::Webhook(w)) => Some(&**w),
            Some(QueueEnrichment::Off) => None,
            None => self.global.as_ref(),
        }
    }

    /// Every webhook configured (the global one first), once each.
    pub fn webhooks(&self) -> impl Iterator<Item = &WebhookSettings> {
        self.global
            .iter()
            .chain(self.queues.values().filter_map(|q| match q {
                QueueEnrichment::Webhook(w) => Some(&**w),
                QueueEnrichment::Off => None,
            }))
    }

    pub fn is_empty(&self) -> bool {
        self.webhooks().next().is_none()
    }
}

/// One customer endpoint and how to treat it.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// HTTPS unless `allow_http` (checked by `client::webhook_url`).
    pub url: Url,
    pub allow_http: bool,
    pub api_key_header: String,
    /// Sent in `api_key_header`; `None`: no key header.
    pub api_key: Option<ApiKey>,
    /// Bounds the whole exchange: connect, send, answer.
    pub timeout: Duration,
    pub on_failure: OnFailure,
    /// `data` keys the answer may never add, change or remove (without `data.`).
    pub protected_keys: Vec<String>,
    /// Extra CA certificates (PEM), already resolved against the main file's folder.
    pub ca_file: Option<PathBuf>,
}

/// What a timeout, a connection error, a non-2xx answer or an invalid
/// body does to the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The callback is created from the request as sent; its history says why.
    #[default]
    Accept,
    /// The request is refused (502 `enrichment_failed`); nothing is stored.
    Refuse,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Accept => "accept",
            OnFailure::Refuse => "refuse",
        }
    }
}

/// A secret shown as `***` in logs and debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(url: &str) -> WebhookSettings {
        WebhookSettings {
            url: Url::parse(url).unwrap(),
            allow_http: false,
            api_key_header: DEFAULT_API_KEY_HEADER.into(),
            api_key: Some(ApiKey("secret-value".into())),
            timeout: DEFAULT_TIMEOUT,
            on_failure: OnFailure::Accept,
            protected_keys: DEFAULT_PROTECTED_KEYS.map(String::from).to_vec(),
            ca_file: None,
        }
    }

    #[test]
    fn a_queue_table_replaces_the_global_one_or_turns_it_off() {
        let s = EnrichSettings {
            global: Some(webhook("https://crm.example/all")),
            queues: BTreeMap::from([
                (
                    "vip".to_string(),
                    QueueEnrichment::Webhook(Box::new(webhook("https://crm.example/vip"))),
                ),
                ("quiet".to_string(), QueueEnrichment::Off),
            ]),
        };
        let url = |q: &str| s.for_queue(q).map(|w| w.url.path().to_string());
        assert_eq!(url("support").as_deref(), Some("/all"));
        assert_eq!(url("vip").as_deref(), Some("/vip"));
        assert_eq!(url("quiet"), None);
        assert_eq!(s.webhooks().count(), 2);
        assert!(!s.is_empty());
        assert!(EnrichSettings::default().is_empty());
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let shown = format!("{:?}", webhook("https://crm.example/x"));
        assert!(!shown.contains("secret-value"), "{shown}");
    }
}
