//! `[callback.enrichment]` and queues' `enrichment`: values read, defaults,
//! and each error's line and key.

use std::path::Path;
use std::time::Duration;

use crate::config::{load_with, Config, ConfigErrors};
use crate::integrations::enrich::{EnrichSettings, OnFailure, QueueEnrichment};

/// One registrar profile and two queues; the text under test follows.
const BASE: &str = "[profiles.a]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n[callback]\n[[callback.queues]]\nid = \"support\"\n";
const BASE_LINES: usize = 5;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    let text = format!("{BASE}{text}");
    load_with(
        Path::new("conf/main.toml"),
        move |_| Ok(text.clone()),
        false,
    )
}

fn enrichment(text: &str) -> EnrichSettings {
    load(text)
        .unwrap_or_else(|e| panic!("{e}"))
        .callback
        .enrichment
}

/// (line within `text`, key, message) of every error.
fn errors(text: &str) -> Vec<(usize, String, String)> {
    let e = load(text).expect_err("expected errors");
    e.0.iter()
        .map(|e| {
            (
                e.line.saturating_sub(BASE_LINES),
                e.key.clone(),
                e.message.clone(),
            )
        })
        .collect()
}

#[test]
fn none_configured_is_empty() {
    assert_eq!(BASE.lines().count(), BASE_LINES);
    assert!(enrichment("").is_empty());
}

#[test]
fn a_global_table_gets_its_defaults() {
    let s = enrichment("[callback.enrichment]\nurl = \"https://crm.example/enrich\"\n");
    let w = s.for_queue("support").expect("global webhook");
    assert_eq!(w.url.as_str(), "https://crm.example/enrich");
    assert!(!w.allow_http);
    assert_eq!(w.api_key_header, "X-API-Key");
    assert_eq!(w.api_key, None);
    assert_eq!(w.timeout, Duration::from_millis(3000));
    assert_eq!(w.on_failure, OnFailure::Accept);
    assert_eq!(w.protected_keys, ["visitorId", "te_channel"]);
    assert_eq!(w.ca_file, None);
    assert_eq!(s.for_queue("any-queue"), Some(w), "every queue");
}

#[test]
fn every_key_is_read() {
    let s = enrichment(
        r#"[callback.enrichment]
url = "http://127.0.0.1:9000/hook"
allow_http = true
api_key_header = "Authorization"
api_key = "Bearer abc123"
timeout_ms = 250
on_failure = "refuse"
protected_keys = ["data.visitorId", "orderId", "visitorId"]
ca_file = "certs/ca.pem"
"#,
    );
    let w = s.global.expect("global");
    assert_eq!(w.url.as_str(), "http://127.0.0.1:9000/hook");
    assert!(w.allow_http);
    assert_eq!(w.api_key_header, "Authorization");
    assert_eq!(w.api_key.map(|k| k.0).as_deref(), Some("Bearer abc123"));
    assert_eq!(w.timeout, Duration::from_millis(250));
    assert_eq!(w.on_failure, OnFailure::Refuse);
    assert_eq!(
        w.protected_keys,
        ["visitorId", "orderId"],
        "prefix dropped, once each"
    );
    assert_eq!(
        w.ca_file.as_deref(),
        Some(Path::new("conf/certs/ca.pem")),
        "relative to the main file"
    );
}

#[test]
fn a_queue_table_replaces_the_global_one_or_turns_it_off() {
    let s = enrichment(
        r#"enrichment = { url = "https://crm.example/support", on_failure = "refuse" }
[[callback.queues]]
id = "quiet"
[callback.queues.enrichment]
enabled = false
[[callback.queues]]
id = "other"
[callback.enrichment]
url = "https://crm.example/all"
"#,
    );
    let support = s.for_queue("support").expect("support's own");
    assert_eq!(support.url.path(), "/support");
    assert_eq!(support.on_failure, OnFailure::Refuse);
    assert_eq!(s.queues.get("quiet"), Some(&QueueEnrichment::Off));
    assert_eq!(s.for_queue("quiet"), None);
    assert_eq!(s.for_queue("other").map(|w| w.url.path()), Some("/all"));
    // A disabled global table: only queues with their own consult one.
    let s = enrichment(
        "enrichment = { url = \"https://crm.example/s\" }\n[callback.enrichment]\nenabled = false\nurl = \"https://crm.example/all\"\n",
    );
    assert!(s.global.is_none());
    assert!(s.for_queue("support").is_some());
}

#[test]
fn plain_http_is_refused_unless_allowed() {
    let e = errors("[callback.enrichment]\nurl = \"http://crm.example/hook\"\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!((e[0].0, e[0].1.as_str()), (2, "callback.enrichment.url"));
    assert!(e[0].2.contains("must use https"), "{e:?}");
    let e = errors("enrichment = { url = \"http://crm.example/hook\" }\n");
    assert_eq!(e[0].1, "callback.queues[0].enrichment.url", "{e:?}");
}

#[test]
fn each_bad_value_is_named_with_its_line() {
    let e = errors(
        r#"[callback.enrichment]
allow_http = true
api_key_header = "Bad Header"
api_key = " padded"
timeout_ms = 0
protected_keys = ["visitorId", "data."]
"#,
    );
    let got: Vec<_> = e.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    for want in [
        (1, "callback.enrichment.url"),
        (3, "callback.enrichment.api_key_header"),
        (4, "callback.enrichment.api_key"),
        (5, "callback.enrichment.timeout_ms"),
        (6, "callback.enrichment.protected_keys[1]"),
    ] {
        assert!(got.contains(&want), "{want:?} missing from {e:?}");
    }
    let e = errors("[callback.enrichment]\nurl = \"https://x.example\"\ntimeout_ms = 60001\n");
    assert_eq!(e[0].1, "callback.enrichment.timeout_ms", "{e:?}");
    let e = errors(
        "[callback.enrichment]\nurl = \"https://x.example\"\napi_key_header = \"Content-Type\"\n",
    );
    assert_eq!(e[0].1, "callback.enrichment.api_key_header", "{e:?}");
}

#[test]
fn unknown_keys_and_policies_are_refused_by_name() {
    let e = errors("[callback.enrichment]\nurl = \"https://x.example\"\non_failure = \"retry\"\n");
    assert_eq!(e[0].0, 3, "{e:?}");
    assert!(
        e[0].2.contains("accept") && e[0].2.contains("refuse"),
        "{e:?}"
    );
    let e = errors("[callback.enrichment]\nurl = \"https://x.example\"\napikey = \"k\"\n");
    assert_eq!(e[0].0, 3, "{e:?}");
    assert!(e[0].2.contains("apikey"), "{e:?}");
}

#[test]
fn a_missing_ca_file_is_reported_when_files_are_checked() {
    let text = format!(
        "{BASE}[callback.enrichment]\nurl = \"https://x.example\"\nca_file = \"nope.pem\"\n"
    );
    let e = load_with(
        Path::new("/nonexistent/main.toml"),
        move |_| Ok(text.clone()),
        true,
    )
    .expect_err("missing CA file");
    let hit =
        e.0.iter()
            .find(|e| e.key == "callback.enrichment.ca_file")
            .unwrap_or_else(|| panic!("{e}"));
    assert!(hit.message.contains("/nonexistent/nope.pem"), "{e}");
}
