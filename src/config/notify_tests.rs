//! `[notify]`: values read, defaults, and each error's line and key.

use std::path::Path;
use std::time::Duration;

use crate::config::{load_with, Config, ConfigErrors};
use crate::integrations::notify::{BodyFormat, DeliveryRetry, EventFilter, Signing};

const PROFILES: &str =
    "[profiles.a]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n";
/// Lines of PROFILES; the notify text starts on the line after.
const BASE_LINES: usize = 2;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    let text = format!("{PROFILES}{text}");
    load_with(
        Path::new("conf/main.toml"),
        move |_| Ok(text.clone()),
        false,
    )
}

/// (line within `text`, key) of every error.
fn errors(text: &str) -> Vec<(usize, String)> {
    let e = load(text).expect_err("expected errors");
    e.0.iter()
        .map(|e| (e.line.saturating_sub(BASE_LINES), e.key.clone()))
        .collect()
}

#[test]
fn an_endpoint_gets_document_004_s_defaults() {
    assert_eq!(PROFILES.lines().count(), BASE_LINES);
    let c = load(
        "[[notify.endpoints]]\nname = \"wfm\"\nurl = \"https://wfm.example/events\"\nevents = [\"agent-states\"]\n",
    )
    .unwrap();
    let n = &c.callback.notify;
    assert_eq!(n.public_url, None, "no HTTP API to link to");
    let e = &n.endpoints[0];
    assert_eq!(e.name, "wfm");
    assert_eq!(e.format, BodyFormat::Form, "URL-encoded is the default");
    assert_eq!(
        e.events,
        EventFilter {
            all_agent_states: true,
            ..Default::default()
        }
    );
    assert_eq!(e.timeout, Duration::from_secs(5));
    assert_eq!(e.retry, DeliveryRetry::default());
    assert_eq!(e.signing, None);
    assert!(e.headers.is_empty() && !e.allow_http && e.ca_file.is_none());
}

#[test]
fn every_key_is_read() {
    let c = load(
        "[general]\nhttp_listen = \"127.0.0.1:8080\"\n\
         [notify]\npublic_url = \"https://switch.example:8443/\"\n\
         [[notify.endpoints]]\nname = \"calls\"\nurl = \"http://127.0.0.1:9/e\"\nallow_http = true\n\
         format = \"json\"\nevents = [\"end-call\", \"agent-login\", \"agent-logout\"]\n\
         headers = { Authorization = \"Basic YWxhZGRpbjpvcGVuc2VzYW1l\", X-Tenant = \"t1\" }\n\
         signing_secret = \"0123456789abcdef\"\nsignature_header = \"X-Sig\"\n\
         timeout_ms = 250\nmax_attempts = 3\nbackoff_initial_ms = 100\nbackoff_max_ms = 1000\n\
         ca_file = \"ca.pem\"\n",
    )
    .unwrap();
    let n = &c.callback.notify;
    assert_eq!(n.public_url.as_deref(), Some("https://switch.example:8443"));
    let e = &n.endpoints[0];
    assert_eq!(e.format, BodyFormat::Json);
    assert_eq!(
        e.events,
        EventFilter {
            all_agent_states: false,
            agent_login: true,
            agent_logout: true,
            end_call: true,
        }
    );
    assert_eq!(
        e.headers,
        [
            (
                "Authorization".into(),
                "Basic YWxhZGRpbjpvcGVuc2VzYW1l".into()
            ),
            ("X-Tenant".into(), "t1".into())
        ]
    );
    assert_eq!(
        e.signing,
        Some(Signing {
            secret: "0123456789abcdef".into(),
            header: "X-Sig".into()
        })
    );
    assert_eq!(e.timeout, Duration::from_millis(250));
    assert_eq!(
        e.retry,
        DeliveryRetry {
            max_attempts: 3,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1)
        }
    );
    assert!(e.allow_http);
    assert_eq!(
        e.ca_file.as_deref(),
        Some(Path::new("conf/ca.pem")),
        "beside the main file"
    );
}

#[test]
fn public_url_defaults_to_the_http_api_s_address() {
    let endpoint =
        "[[notify.endpoints]]\nname = \"w\"\nurl = \"https://w.example\"\nevents = [\"end-call\"]\n";
    let c = load(&format!(
        "[general]\nhttp_listen = \"127.0.0.1:8080\"\n{endpoint}"
    ))
    .unwrap();
    assert_eq!(
        c.callback.notify.public_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    let c = load(&format!(
        "[general]\nhttp_listen = \"127.0.0.1:8443\"\nhttp_tls_cert = \"c.pem\"\nhttp_tls_key = \"k.pem\"\n{endpoint}"
    ))
    .unwrap();
    assert_eq!(
        c.callback.notify.public_url.as_deref(),
        Some("https://127.0.0.1:8443")
    );
    // Port 0 is only known once bound: the driver fills it in.
    let c = load(&format!(
        "[general]\nhttp_listen = \"127.0.0.1:0\"\n{endpoint}"
    ))
    .unwrap();
    assert_eq!(c.callback.notify.public_url, None);
}

#[test]
fn each_mistake_is_named_by_line_and_key() {
    let errs = errors(
        "[notify]\n\
         public_url = \"ftp://x\"\n\
         [[notify.endpoints]]\n\
         name = \"a b\"\n\
         url = \"http://wfm.example/e\"\n\
         format = \"xml\"\n\
         events = [\"agent-states\", \"coffee\"]\n\
         headers = { \"Bad Name\" = \"x\", Content-Type = \"text/plain\", X-Ok = \"caf\\u00e9\" }\n\
         signing_secret = \"short\"\n\
         timeout_ms = 0\n\
         max_attempts = 0\n\
         backoff_initial_ms = 1000\n\
         backoff_max_ms = 10\n\
         [[notify.endpoints]]\n\
         name = \"b\"\n\
         url = \"https://b.example\"\n\
         events = []\n\
         signature_header = \"X-Sig\"\n\
         [[notify.endpoints]]\n\
         name = \"b\"\n\
         url = \"https://b.example\"\n\
         events = [\"end-call\"]\n",
    );
    let want = [
        (2, "notify.public_url"),
        (4, "notify.endpoints[0].name"),
        (5, "notify.endpoints[0].url"),
        (6, "notify.endpoints[0].format"),
        (7, "notify.endpoints[0].events[1]"),
        (8, "notify.endpoints[0].headers.Bad Name"),
        (8, "notify.endpoints[0].headers.Content-Type"),
        (8, "notify.endpoints[0].headers.X-Ok"),
        (9, "notify.endpoints[0].signing_secret"),
        (10, "notify.endpoints[0].timeout_ms"),
        (11, "notify.endpoints[0].max_attempts"),
        (13, "notify.endpoints[0].backoff_max_ms"),
        (17, "notify.endpoints[1].events"),
        (18, "notify.endpoints[1].signature_header"),
        (20, "notify.endpoints[2].name"),
    ];
    for (line, key) in want {
        assert!(
            errs.iter().any(|(l, k)| *l == line && k == key),
            "missing {line}: {key} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
}

#[test]
fn a_typo_is_refused_with_its_line() {
    let errs = errors(
        "[[notify.endpoints]]\nname = \"w\"\nurl = \"https://w.example\"\nevents = [\"end-call\"]\ntimeout = 5\n",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, 5);
}

#[test]
fn the_shipped_configuration_sends_nothing() {
    assert!(crate::config::embedded_default()
        .callback
        .notify
        .endpoints
        .is_empty());
}
