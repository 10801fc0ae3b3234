//! The enrichment webhook (docs/enrichment.md): before a callback request is
//! accepted, the customer's endpoint for its queue is sent
//! `{phoneNumber, scriptId, queueId, scheduleGroupId, widgetId,
//! countryCode}` and may answer fields to add or change; the merged request
//! is then validated like any other.
//!
//! Owns: which webhook a request consults (by its `queueId` as sent), the
//! exchange (`webhook`), the merge rules (`merge`, sans-IO) and the failure
//! policy (`on_failure`). Does not own: validation (`callback::request`),
//! the HTTP answer (`http::callbacks`) or the history (the center writes
//! the [`EnrichmentNote`] it is handed).
//!
//! Built once at start-up with one HTTP client per webhook; a switch with
//! no webhook configured builds none and the API never calls in here.

pub mod merge;
pub mod settings;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::integrations::client::{self, ClientError};
use serde::{Deserialize, Serialize};

pub use merge::{InvalidAnswer, Merged};
pub use settings::{
    ApiKey, EnrichSettings, OnFailure, QueueEnrichment, WebhookSettings, DEFAULT_API_KEY_HEADER,
    DEFAULT_PROTECTED_KEYS, DEFAULT_TIMEOUT,
};
pub use webhook::{Failure, MAX_ANSWER_BYTES};

/// The webhooks, ready to call.
#[derive(Debug)]
pub struct Enricher {
    global: Option<Arc<Webhook>>,
    /// A queue's own table: its webhook, or `None` when it turned enrichment off.
    queues: BTreeMap<String, Option<Arc<Webhook>>>,
}

#[derive(Debug)]
struct Webhook {
    settings: WebhookSettings,
    client: reqwest::Client,
}

/// How a consultation of the enrichment webhook ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EnrichmentOutcome {
    /// The endpoint answered; its fields were merged.
    Enriched,
    /// Timeout, connection error, non-2xx or invalid body: created as requested.
    Failed,
}

/// What a create carries to its history about enrichment (see
/// `callback::HistoryKind::Enrichment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentNote {
    pub outcome: EnrichmentOutcome,
    pub detail: String,
    pub changed: Vec<String>,
}

/// What enrichment made of a create request's body.
#[derive(Debug, Clone, PartialEq)]
pub enum Enrichment {
    /// No webhook for the request's queue (or no `queueId` to pick one by):
    /// the body goes on as sent, and nothing is recorded.
    Skipped,
    /// The endpoint answered: `body` is the merged request (the original
    /// bytes when nothing changed) and `merged` says what changed.
    Enriched {
        body: Vec<u8>,
        merged: Box<Merged>,
        note: EnrichmentNote,
    },
    /// It failed and the policy is `accept`: the request goes on as sent;
    /// the note says why.
    Unenriched { note: EnrichmentNote },
}

/// It failed and the policy is `refuse`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the enrichment webhook failed: {failure}")]
pub struct Refused {
    pub failure: Failure,
}

impl Enrichment {
    /// What the center records in the history, if anything.
    pub fn note(&self) -> Option<&EnrichmentNote> {
        match self {
            Enrichment::Skipped => None,
            Enrichment::Enriched { note, .. } | Enrichment::Unenriched { note } => Some(note),
        }
    }

    /// The message of a 422 about `field`, saying so when the enrichment
    /// answer gave (or reshaped) the value at fault.
    pub fn blame(&self, field: &str, message: String) -> String {
        match self {
            Enrichment::Enriched { merged, .. } if merged.touched(field) => {
                format!("{message} (the value came from the enrichment answer)")
            }
            _ => message,
        }
    }
}

impl Enricher {
    /// One client per webhook; `None` when no queue has one (the API then
    /// skips enrichment altogether).
    pub fn new(settings: &EnrichSettings) -> Result<Option<Enricher>, ClientError> {
        if settings.is_empty() {
            return Ok(None);
        }
        let build = |w: &WebhookSettings| -> Result<Arc<Webhook>, ClientError> {
            Ok(Arc::new(Webhook {
                client: client::build(w.timeout, w.ca_file.as_deref())?,
                settings: w.clone(),
            }))
        };
        let global = settings.global.as_ref().map(build).transpose()?;
        let mut queues = BTreeMap::new();
        for (queue, choice) in &settings.queues {
            let webhook = match choice {
                QueueEnrichment::Webhook(w) => Some(build(w)?),
                QueueEnrichment::Off => None,
            };
            queues.insert(queue.clone(), webhook);
        }
        Ok(Some(Enricher { global, queues }))
    }

    fn for_queue(&self, queue: &str) -> Option<&Webhook> {
        match self.queues.get(queue) {
            Some(choice) => choice.as_deref(),
            None => self.global.as_deref(),
        }
    }

    /// Consults the webhook of the body's queue and applies its answer, or
    /// the policy when it fails. A body that is not a JSON object is
    /// [`Enrichment::Skipped`]: validation refuses it in its own words.
    pub async fn enrich(&self, body: &[u8]) -> Result<Enrichment, Refused> {
        let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(body) else {
            return Ok(Enrichment::Skipped);
        };
        let Some(queue) = request.get("queueId").and_then(Value::as_str) else {
            return Ok(Enrichment::Skipped);
        };
        let queue = queue.trim();
        let Some(webhook) = self.for_queue(queue) else {
            return Ok(Enrichment::Skipped);
        };
        let started = Instant::now();
        let answer = webhook::call(
            &webhook.client,
            &webhook.settings,
            &merge::payload(&request),
        )
        .await
        .and_then(|answer| {
            merge::merge(&request, &answer, &webhook.settings.protected_keys).map_err(Failure::from)
        });
        let took_ms = started.elapsed().as_millis();
        match answer {
            Ok(merged) => {
                tracing::info!(
                    queue,
                    took_ms,
                    changed = ?merged.changed,
                    ignored = ?merged.ignored,
                    protected = ?merged.protected,
                    "callback request enriched"
                );
                Ok(enriched(body, &request, merged))
            }
            Err(failure) => {
                let policy = webhook.settings.on_failure;
                tracing::warn!(
                    queue,
                    took_ms,
                    policy = policy.as_str(),
                    reason = %failure,
                    "enrichment webhook failed"
                );
                match policy {
                    OnFailure::Refuse => Err(Refused { failure }),
                    OnFailure::Accept => Ok(Enrichment::Unenriched {
                        note: EnrichmentNote {
                            outcome: EnrichmentOutcome::Failed,
                            detail: format!("{failure}; created as requested"),
                            changed: Vec::new(),
                        },
                    }),
                }
            }
        }
    }
}

/// The merged body and its note: which fields changed, which were ignored
/// and which protected keys were kept.
fn enriched(original: &[u8], request: &Map<String, Value>, merged: Merged) -> Enrichment {
    let body = if merged.body == *request {
        original.to_vec()
    } else {
        Value::Object(merged.body.clone()).to_string().into_bytes()
    };
    let mut detail = if merged.changed.is_empty() {
        "the answer changed nothing".to_string()
    } else {
        format!("changed {}", merged.changed.join(", "))
    };
    if !merged.ignored.is_empty() {
        detail.push_str(&format!("; ignored {}", merged.ignored.join(", ")));
    }
    if !merged.protected.is_empty() {
        detail.push_str(&format!("; kept protected {}", merged.protected.join(", ")));
    }
    Enrichment::Enriched {
        body,
        note: EnrichmentNote {
            outcome: EnrichmentOutcome::Enriched,
            detail,
            changed: merged.changed.clone(),
        },
        merged: Box::new(merged),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn request() -> Map<String, Value> {
        match json!({"queueId": "support", "callbackNumbers": ["+33612345678"],
            "data": {"visitorId": "v"}})
        {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn the_note_lists_changes_ignored_fields_and_kept_protected_keys() {
        let req = request();
        let answer = json!({"queueId": "vip", "data": {"visitorId": "x", "tier": "gold"},
            "colour": "red"});
        let merged = merge::merge(&req, &answer, &["visitorId".into()]).unwrap();
        let e = enriched(b"{}", &req, merged);
        let note = e.note().unwrap();
        assert_eq!(note.outcome, EnrichmentOutcome::Enriched);
        assert_eq!(note.changed, ["data.tier", "queueId"]);
        assert_eq!(
            note.detail,
            "changed data.tier, queueId; ignored colour; kept protected data.visitorId"
        );
        let Enrichment::Enriched { body, .. } = &e else {
            panic!("{e:?}")
        };
        let body: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(body["queueId"], "vip");
        assert_eq!(
            e.blame("queueId", "not a known queue".into()),
            "not a known queue (the value came from the enrichment answer)"
        );
        assert_eq!(
            e.blame("callbackNumbers[0]", "bad".into()),
            "bad",
            "the request's own value"
        );
    }

    #[test]
    fn an_answer_that_changes_nothing_keeps_the_original_bytes() {
        let original =
            br#"{"queueId":"support","callbackNumbers":["+33612345678"],"data":{"visitorId":"v"}}"#;
        let merged = merge::merge(&request(), &json!({"queueId": "support"}), &[]).unwrap();
        let e = enriched(original, &request(), merged);
        let Enrichment::Enriched { body, note, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(body.as_slice(), original.as_slice());
        assert_eq!(note.detail, "the answer changed nothing");
        assert_eq!(Enrichment::Skipped.note(), None);
    }

    #[test]
    fn nothing_configured_builds_nothing() {
        assert!(Enricher::new(&EnrichSettings::default()).unwrap().is_none());
        let off = EnrichSettings {
            global: None,
            queues: BTreeMap::from([("q".to_string(), QueueEnrichment::Off)]),
        };
        assert!(Enricher::new(&off).unwrap().is_none());
    }
}
