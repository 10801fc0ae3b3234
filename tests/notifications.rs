//! Workforce-management notifications end to end (docs/notifications.md): the real
//! binary, agents' changes made through the HTTP API, and a real HTTP
//! receiver on loopback standing in for the WFM server, answering as each
//! test scripts it (failures, slow answers). Bodies as JSON and as forms,
//! custom headers, signatures, filters, retries, dead events and their
//! replay, a `kill -9` with events undelivered, and order per agent.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use common::callbacks::{AgentConfig, CallbackConfig, CallbackLab};
use common::receiver::{Receiver, Recorded, Reply};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Bound on every wait for deliveries.
const WITHIN: Duration = Duration::from_secs(20);
const SECRET: &str = "wfm-shared-secret-0001";

/// One `[[notify.endpoints]]` on the test receiver, plain HTTP allowed.
fn endpoint(name: &str, url: &str, events: &str, more: &str) -> String {
    format!(
        "[[notify.endpoints]]\nname = {name:?}\nurl = {url:?}\nallow_http = true\nevents = [{events}]\n{more}\n"
    )
}

fn start(endpoints: &[String], agents: &[&str]) -> CallbackLab {
    CallbackLab::start(CallbackConfig {
        agents: agents.iter().map(|a| AgentConfig::new(a)).collect(),
        extra_toml: endpoints.concat(),
        ..CallbackConfig::default()
    })
}

/// One agent change through the API (`login`, `ready`, `not-ready:Lunch`,
/// `logout`); each is one event.
fn change(cb: &CallbackLab, agent: &str, what: &str) {
    let (action, body) = match what.split_once(':') {
        Some((action, reason)) => (action, format!(r#"{{"reason":"{reason}"}}"#)),
        None => (what, String::new()),
    };
    let body = (!body.is_empty()).then_some(body.as_str());
    let r = cb.api("POST", &format!("/v1/agents/{agent}/{action}"), body);
    assert_eq!(r.status, 200, "{what} {agent}: {}", r.body);
}

/// (eventType, state, reason) of a JSON event, to compare with what was done.
fn summary(v: &Value) -> (String, String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    (s("eventType"), s("state"), s("reason"))
}

/// What `change` produces, for comparison with `summary`.
fn expected(what: &str) -> (String, String, String) {
    let (action, reason) = what.split_once(':').unwrap_or((what, ""));
    let (ty, state) = match action {
        "login" => ("agent-login", "ready"),
        "logout" => ("agent-logout", "logged-out"),
        "ready" => ("agent-state", "ready"),
        _ => ("agent-state", "not-ready"),
    };
    (ty.into(), state.into(), reason.into())
}

fn delivered(seen: &[Recorded]) -> Vec<&Recorded> {
    seen.iter()
        .filter(|r| (200..300).contains(&r.status))
        .collect()
}

fn header<'a>(r: &'a Recorded, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers))
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Everything the receiver gets until the outbox holds nothing pending or
/// in flight (read from `GET /v1/notifications/stats` between requests).
fn settle(cb: &CallbackLab, rx: &Receiver) -> Vec<Recorded> {
    let deadline = Instant::now() + WITHIN;
    let mut seen = Vec::new();
    loop {
        let r = cb.api("GET", "/v1/notifications/stats", None);
        assert_eq!(r.status, 200, "stats: {}", r.body);
        let stats = r.json();
        let idle = stats["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .all(|e| e["pending"] == 0 && e["inFlight"] == 0);
        if idle {
            // Every request was recorded before it was answered.
            while let Some(r) = rx.try_next(Duration::ZERO) {
                seen.push(r);
            }
            return seen;
        }
        assert!(Instant::now() < deadline, "outbox still busy: {stats}");
        if let Some(r) = rx.try_next(Duration::from_millis(50)) {
            seen.push(r);
        }
    }
}

#[test]
fn json_and_form_bodies_carry_their_headers_and_a_valid_signature() {
    let json_rx = Receiver::start(Reply::status(200));
    let form_rx = Receiver::start(Reply::status(204));
    let cb = start(
        &[
            endpoint(
                "json",
                &json_rx.url("/wfm/json"),
                r#""agent-states""#,
                &format!(
                    "format = \"json\"\nsigning_secret = {SECRET:?}\n\
                     headers = {{ Authorization = \"Basic YWxhZGRpbjpvcGVuc2VzYW1l\" }}"
                ),
            ),
            endpoint(
                "form",
                &form_rx.url("/wfm/form"),
                r#""agent-states""#,
                "headers = { X-Tenant = \"acme\" }",
            ),
        ],
        &["1001"],
    );
    change(&cb, "1001", "login");
    change(&cb, "1001", "not-ready:Lunch");

    let json = json_rx.collect_until(WITHIN, |s| s.len() >= 2);
    for r in &json {
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("POST", "/wfm/json"));
        assert_eq!(header(r, "content-type"), "application/json");
        assert_eq!(header(r, "authorization"), "Basic YWxhZGRpbjpvcGVuc2VzYW1l");
        assert_eq!(
            header(r, "x-switchback-signature"),
            hmac_hex(&r.body),
            "signed over the exact body"
        );
        let v = r.json();
        assert_eq!(header(r, "x-switchback-event-id"), v["eventId"]);
        assert_eq!(header(r, "x-switchback-event-type"), v["eventType"]);
    }
    let login = json[0].json();
    assert_eq!(login["eventType"], "agent-login");
    assert_eq!(login["agentId"], "1001");
    assert_eq!(login["state"], "ready");
    assert_eq!(login["stateName"], "Available");
    assert_eq!(login["previousState"], "logged-out");
    assert!(login["timestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let lunch = json[1].json();
    assert_eq!(lunch["eventType"], "agent-state");
    assert_eq!(lunch["stateName"], "Lunch");
    assert_eq!(lunch["reason"], "Lunch");
    assert_eq!(lunch["previousStateName"], "Available");
    assert_ne!(lunch["eventId"], login["eventId"]);

    let form = form_rx.collect_until(WITHIN, |s| s.len() >= 2);
    for (r, j) in form.iter().zip(&json) {
        assert_eq!(
            header(r, "content-type"),
            "application/x-www-form-urlencoded"
        );
        assert_eq!(header(r, "x-tenant"), "acme");
        assert!(r.header("x-switchback-signature").is_none(), "not signed");
        assert!(
            r.header("authorization").is_none(),
            "headers are per endpoint"
        );
        let fields: BTreeMap<String, String> = r.form().into_iter().collect();
        let j = j.json();
        // One event, the same id at every endpoint.
        assert_eq!(fields["eventId"], j["eventId"].as_str().unwrap());
        assert_eq!(fields["eventType"], j["eventType"].as_str().unwrap());
        assert_eq!(fields["agentId"], "1001");
        assert_eq!(fields["timestamp"], j["timestamp"].as_str().unwrap());
        assert_eq!(
            fields["previousStateSeconds"],
            j["previousStateSeconds"].to_string(),
            "numbers as text"
        );
        assert_eq!(header(r, "x-switchback-event-id"), fields["eventId"]);
    }
    let login: BTreeMap<String, String> = form[0].form().into_iter().collect();
    assert!(
        !login.contains_key("reason"),
        "nulls are left out: {login:?}"
    );
    let lunch: BTreeMap<String, String> = form[1].form().into_iter().collect();
    assert_eq!(lunch["reason"], "Lunch");
}

#[test]
fn each_endpoint_gets_only_the_events_it_asked_for() {
    let rx = Receiver::start(Reply::status(200));
    let cb = start(
        &[
            endpoint("all", &rx.url("/all"), r#""agent-states""#, ""),
            endpoint("logins", &rx.url("/logins"), r#""agent-login""#, ""),
            endpoint("logouts", &rx.url("/logouts"), r#""agent-logout""#, ""),
            endpoint("calls", &rx.url("/calls"), r#""end-call""#, ""),
        ],
        &["1001"],
    );
    let steps = ["login", "not-ready:Break", "ready", "logout", "login"];
    for s in steps {
        change(&cb, "1001", s);
    }
    let seen = settle(&cb, &rx);
    let at = |path: &str| -> Vec<String> {
        seen.iter()
            .filter(|r| r.uri == path)
            .map(|r| header(r, "x-switchback-event-type").to_string())
            .collect()
    };
    assert_eq!(
        at("/all"),
        [
            "agent-login",
            "agent-state",
            "agent-state",
            "agent-logout",
            "agent-login"
        ]
    );
    assert_eq!(at("/logins"), ["agent-login", "agent-login"]);
    assert_eq!(at("/logouts"), ["agent-logout"]);
    assert!(at("/calls").is_empty());
    assert_eq!(seen.len(), 8, "nothing else was sent");
}

#[test]
fn a_failing_receiver_gets_every_event_once_in_order_after_spaced_retries() {
    let rx = Receiver::start(Reply::status(200));
    rx.script([Reply::status(500), Reply::status(503), Reply::status(500)]);
    let cb = start(
        &[endpoint(
            "wfm",
            &rx.url("/e"),
            r#""agent-states""#,
            "format = \"json\"\nbackoff_initial_ms = 200\nbackoff_max_ms = 400",
        )],
        &["1001"],
    );
    let steps = ["login", "not-ready:Lunch", "ready", "logout"];
    for s in steps {
        change(&cb, "1001", s);
    }
    let seen = rx.collect_until(WITHIN, |s| delivered(s).len() >= steps.len());
    let ids: Vec<String> = seen
        .iter()
        .map(|r| r.json()["eventId"].as_str().unwrap_or("").to_string())
        .collect();
    // The head failed three times and held its lane; then one each, in order.
    assert_eq!(seen.len(), 7, "{ids:?}");
    assert!(ids[..4].iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        seen.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 503, 500, 200, 200, 200, 200]
    );
    let got: Vec<_> = delivered(&seen)
        .iter()
        .map(|r| summary(&r.json()))
        .collect();
    let want: Vec<_> = steps.iter().map(|s| expected(s)).collect();
    assert_eq!(got, want);
    let mut unique = ids[3..].to_vec();
    unique.dedup();
    assert_eq!(unique.len(), 4, "each delivered once: {ids:?}");
    // Retries wait the back-off: at least the initial, at most the max (+ slack).
    for pair in seen[..4].windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(200) && gap < Duration::from_millis(2_000),
            "retry after {gap:?}"
        );
    }
    // Every attempt sent the same bytes.
    assert!(seen[..4].iter().all(|r| r.body == seen[0].body));
}

#[test]
fn a_slow_receiver_is_retried_after_the_timeout() {
    let rx = Receiver::start(Reply::status(200));
    rx.script([Reply::status(200).after(Duration::from_millis(1_500))]);
    let cb = start(
        &[endpoint(
            "wfm",
            &rx.url("/e"),
            r#""agent-login""#,
            "timeout_ms = 300\nbackoff_initial_ms = 100\nbackoff_max_ms = 200",
        )],
        &["1001"],
    );
    change(&cb, "1001", "login");
    let first = rx.next(WITHIN);
    let second = rx.next(WITHIN);
    assert_eq!(first.body, second.body, "the same event again");
    assert_eq!(
        header(&first, "x-switchback-event-id"),
        header(&second, "x-switchback-event-id")
    );
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(400) && gap < Duration::from_millis(1_500),
        "retried {gap:?} after the slow attempt (timeout 300 ms + back-off)"
    );
    // Delivered by the second attempt: nothing more is sent.
    assert!(settle(&cb, &rx).is_empty());
}

#[test]
fn dead_events_are_listed_and_replayed_through_the_api() {
    let rx = Receiver::start(Reply::status(200));
    // Two events, two attempts each, all failing; the third event succeeds.
    rx.script([500, 500, 500, 500].map(Reply::status));
    let cb = start(
        &[endpoint(
            "wfm",
            &rx.url("/e"),
            r#""agent-states""#,
            "format = \"json\"\nmax_attempts = 2\nbackoff_initial_ms = 1000\nbackoff_max_ms = 1000",
        )],
        &["1001"],
    );
    change(&cb, "1001", "login");
    let first = rx.next(WITHIN).json();
    let login_id = first["eventId"].as_str().unwrap().to_string();
    // Waiting for its retry, the event is pending, not dead.
    let r = cb.api(
        "POST",
        &format!("/v1/notifications/dead/wfm/{login_id}/replay"),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.json()["code"], "not_dead");

    change(&cb, "1001", "not-ready:Lunch");
    change(&cb, "1001", "ready");
    // The third event's request means the first two are dead and committed
    // (a lane's next request starts after its previous row's fate is durable).
    let seen = rx.collect_until(WITHIN, |s| delivered(s).len() == 1);
    assert_eq!(seen.len(), 4, "login's retry, lunch twice, ready");
    let lunch_id = seen[1].json()["eventId"].as_str().unwrap().to_string();

    let r = cb.api("GET", "/v1/notifications/dead?endpoint=wfm", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["eventId"], login_id.as_str());
    assert_eq!(items[0]["eventType"], "agent-login");
    assert_eq!(items[0]["agent"], "1001");
    assert_eq!(items[0]["attempts"], 2);
    assert_eq!(items[0]["lastError"], "HTTP 500");
    assert!(items[0]["deadAt"].is_string());
    assert_eq!(items[0]["event"], first, "the event as it was sent");
    assert_eq!(items[1]["eventId"], lunch_id.as_str());
    assert!(page["next"].is_null());
    // Paged by `after`.
    let r = cb.api("GET", "/v1/notifications/dead?limit=1", None);
    let next = r.json()["next"].as_u64().expect("a next page");
    let r = cb.api(
        "GET",
        &format!("/v1/notifications/dead?limit=1&after={next}"),
        None,
    );
    assert_eq!(r.json()["items"][0]["eventId"], lunch_id.as_str());
    let stats = cb.api("GET", "/v1/notifications/stats", None).json();
    assert_eq!(stats["endpoints"][0]["dead"], 2, "{stats}");

    // One replayed, then the rest of the endpoint's.
    let r = cb.api(
        "POST",
        &format!("/v1/notifications/dead/wfm/{login_id}/replay"),
        None,
    );
    assert_eq!((r.status, r.json()["replayed"].as_u64()), (202, Some(1)));
    let again = rx.next(WITHIN);
    assert_eq!((again.status, again.json()), (200, first.clone()));
    let r = cb.api("POST", "/v1/notifications/dead/replay?endpoint=wfm", None);
    assert_eq!((r.status, r.json()["replayed"].as_u64()), (202, Some(1)));
    let again = rx.next(WITHIN);
    assert_eq!(again.json()["eventId"], lunch_id.as_str());
    assert_eq!(again.body, seen[1].body, "the same bytes as before");

    let page = cb.api("GET", "/v1/notifications/dead", None).json();
    assert_eq!(page["items"], Value::Array(vec![]), "{page}");
    assert!(settle(&cb, &rx).is_empty());
    let r = cb.api(
        "POST",
        &format!("/v1/notifications/dead/wfm/{login_id}/replay"),
        None,
    );
    assert_eq!(r.status, 404, "delivered rows are gone: {}", r.body);
    let r = cb.api("POST", "/v1/notifications/dead/replay?endpoint=nope", None);
    assert_eq!(r.status, 422, "{}", r.body);
}

#[test]
fn a_kill_9_loses_no_undelivered_event() {
    let rx = Receiver::start(Reply::status(500));
    let mut cb = start(
        &[endpoint(
            "wfm",
            &rx.url("/e"),
            r#""agent-states""#,
            "format = \"json\"\nmax_attempts = 1000\nbackoff_initial_ms = 100\nbackoff_max_ms = 300",
        )],
        &["1001", "1002"],
    );
    let steps = [
        "login",
        "not-ready:Lunch",
        "ready",
        "not-ready:Away",
        "logout",
    ];
    for s in steps {
        for agent in ["1001", "1002"] {
            change(&cb, agent, s);
        }
    }
    // Both lanes' heads are being retried when the switch dies.
    let before = rx.collect_until(WITHIN, |s| {
        let agents: std::collections::BTreeSet<_> =
            s.iter().map(|r| r.json()["agentId"].to_string()).collect();
        agents.len() == 2
    });
    cb.kill9_and_restart();
    rx.set_default(Reply::status(200));

    let total = steps.len() * 2;
    let seen = rx.collect_until(WITHIN, |s| {
        let ids: std::collections::BTreeSet<String> = delivered(s)
            .iter()
            .map(|r| r.json()["eventId"].to_string())
            .collect();
        ids.len() == total
    });
    let mut by_agent: HashMap<String, Vec<Value>> = HashMap::new();
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in before.iter().chain(&seen) {
        let v = r.json();
        let id = v["eventId"].as_str().unwrap().to_string();
        // An event is the same bytes whenever it is (re)sent.
        let body = bodies.entry(id).or_insert_with(|| r.body.clone());
        assert_eq!(*body, r.body);
    }
    for r in delivered(&seen) {
        let v = r.json();
        by_agent
            .entry(v["agentId"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    let want: Vec<_> = steps.iter().map(|s| expected(s)).collect();
    for agent in ["1001", "1002"] {
        let mut got: Vec<Value> = by_agent.remove(agent).unwrap_or_default();
        // Duplicates are allowed (same id); order is not negotiable.
        got.dedup_by(|a, b| a["eventId"] == b["eventId"]);
        let got: Vec<_> = got.iter().map(summary).collect();
        assert_eq!(got, want, "agent {agent}");
    }
}

#[test]
fn each_agent_s_events_arrive_in_order_across_many_changes_and_failures() {
    let rx = Receiver::start(Reply::status(200));
    // Every fifth answer fails: heads are retried while other lanes go on.
    rx.script((0..400).map(|i| Reply::status(if i % 5 == 2 { 500 } else { 200 })));
    let cb = start(
        &[endpoint(
            "wfm",
            &rx.url("/e"),
            r#""agent-states""#,
            "format = \"json\"\nbackoff_initial_ms = 20\nbackoff_max_ms = 100",
        )],
        &["1001", "1002"],
    );
    let reasons = ["Lunch", "Break", "Training", "Away"];
    let mut done: HashMap<&str, Vec<String>> = HashMap::new();
    for agent in ["1001", "1002"] {
        change(&cb, agent, "login");
        done.entry(agent).or_default().push("login".into());
    }
    for i in 0..30 {
        for agent in ["1001", "1002"] {
            let step = if i % 2 == 0 {
                format!("not-ready:{}", reasons[(i / 2) % reasons.len()])
            } else {
                "ready".to_string()
            };
            change(&cb, agent, &step);
            done.entry(agent).or_default().push(step);
        }
    }
    let total: usize = done.values().map(Vec::len).sum();
    let seen = rx.collect_until(WITHIN, |s| delivered(s).len() >= total);
    assert!(
        seen.iter().any(|r| r.status == 500),
        "failures were injected"
    );
    let mut by_agent: HashMap<String, Vec<Value>> = HashMap::new();
    for r in delivered(&seen) {
        let v = r.json();
        by_agent
            .entry(v["agentId"].as_str().unwrap().to_string())
            .or_default()
            .push(v);
    }
    for (agent, steps) in done {
        let got = by_agent.remove(agent).unwrap_or_default();
        let want: Vec<_> = steps.iter().map(|s| expected(s)).collect();
        assert_eq!(
            got.iter().map(summary).collect::<Vec<_>>(),
            want,
            "agent {agent}"
        );
        let times: Vec<jiff::Timestamp> = got
            .iter()
            .filter_map(|v| v["timestamp"].as_str()?.parse().ok())
            .collect();
        assert_eq!(times.len(), got.len());
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }
}
