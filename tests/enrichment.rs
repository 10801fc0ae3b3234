//! The enrichment webhook end to end (docs/enrichment.md): the real binary, a real
//! HTTP receiver on loopback as the customer's endpoint, creates over the
//! API and the stored record and history read back. Every wait is on a
//! response or a request reaching the receiver, bounded.

mod common;

use std::time::Duration;

use common::callbacks::{history_of, CallbackConfig, CallbackLab};
use common::http::Response;
use common::receiver::{Receiver, Recorded, Reply};
use jiff::Timestamp;
use serde_json::{json, Value};

/// How long a test waits for the switch to call the endpoint.
const CALLED: Duration = Duration::from_secs(10);

/// The endpoint's timeout in the failure tests, and how late the slow answer is.
const TIMEOUT_MS: u64 = 400;
const SLOW: Duration = Duration::from_millis(2500);

fn create(cb: &CallbackLab, body: &Value) -> Response {
    cb.api("POST", "/v1/callbacks", Some(&body.to_string()))
}

fn created(cb: &CallbackLab, body: &Value) -> Value {
    let r = create(cb, body);
    assert_eq!(r.status, 201, "create {body}: {}", r.body);
    let id = r.json()["id"].as_str().expect("id").to_string();
    cb.get(&id)
}

/// The stored callbacks of `queue` (routing or interaction queue).
fn stored_in(cb: &CallbackLab, queue: &str) -> usize {
    let r = cb.api("GET", &format!("/v1/callbacks?queue={queue}"), None);
    assert_eq!(r.status, 200, "list {queue}: {}", r.body);
    r.json()["items"].as_array().expect("items").len()
}

/// The one `enrichment` history entry of a stored record.
fn enrichment_entry(record: &Value) -> Value {
    let entries = history_of(record, "enrichment");
    assert_eq!(entries.len(), 1, "{record:#}");
    entries[0].clone()
}

fn error(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    r.json()
}

/// `secs` from now, whole seconds (what the store keeps).
fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second() + secs).expect("in range")
}

/// A config with extra queues after the `support` queue, and TOML after them.
fn config(support_lines: &[String], extra: &str) -> CallbackConfig {
    CallbackConfig {
        queue_lines: support_lines.to_vec(),
        extra_toml: extra.to_string(),
        ..CallbackConfig::default()
    }
}

fn called(endpoint: &Receiver) -> Recorded {
    endpoint.next(CALLED)
}

// ------------------------------------------------------------ merge rules

/// `support` has its own webhook (`/support`, key in `Authorization`), `vip`
/// uses the global one (`/global`, `X-API-Key`), `quiet` turns it off.
fn merging_lab(endpoint: &Receiver) -> CallbackLab {
    let support = format!(
        "enrichment = {{ url = {:?}, allow_http = true, api_key_header = \"Authorization\", \
         api_key = \"Bearer support-key\", protected_keys = [\"data.visitorId\", \"te_channel\"] }}",
        endpoint.url("/support")
    );
    let extra = format!(
        "[[callback.queues]]\nid = \"vip\"\n\n\
         [[callback.queues]]\nid = \"quiet\"\nenrichment = {{ enabled = false }}\n\n\
         [callback.enrichment]\nurl = {:?}\nallow_http = true\napi_key = \"global-key\"\n",
        endpoint.url("/global")
    );
    CallbackLab::start(config(&[support], &extra))
}

#[test]
fn the_endpoint_gets_the_payload_and_its_answer_is_merged_field_by_field() {
    let endpoint = Receiver::start(Reply::json(200, json!({})));
    let cb = merging_lab(&endpoint);
    let when = at(3600);
    endpoint.script([Reply::json(
        200,
        json!({
            "queueId": "vip",
            "routingData": {"skills": ["gold"]},
            "callbackUserName": "Zoë Martin",
            "callbackNumbers": ["+33 1 42 68 53 00", "06 12 34 56 78"],
            "callbackScheduledTime": when.to_string(),
            "data": {"tier": "gold", "orderId": "B-2", "visitorId": "evil", "te_channel": null},
            "timeZone": "Asia/Tokyo",
            "callerIdName": null
        }),
    )]);
    let request = json!({
        "queueId": "support",
        "callbackNumbers": ["06 12 34 56 78"],
        "countryCode": "FR",
        "scriptId": "s1",
        "widgetId": "w9",
        "scheduleGroupId": "g1",
        "callbackUserName": "Zoë",
        "callerIdName": "ACME",
        "routingData": {"priority": 5, "preferredAgents": ["1002"]},
        "data": {"visitorId": "v-1", "te_channel": "web", "orderId": "A-17"}
    });
    let record = created(&cb, &request);

    // What the endpoint was sent.
    let sent = called(&endpoint);
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.uri, "/support", "the queue's own webhook");
    assert_eq!(sent.header("authorization"), Some("Bearer support-key"));
    assert_eq!(sent.header("x-api-key"), None);
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({
            "phoneNumber": "06 12 34 56 78",
            "scriptId": "s1",
            "queueId": "support",
            "scheduleGroupId": "g1",
            "widgetId": "w9",
            "countryCode": "FR"
        })
    );

    // What was stored: each field the answer returned, and nothing else.
    let c = &record;
    assert_eq!(c["queueId"], "vip", "{c:#}");
    assert_eq!(c["routingData"]["skills"], json!(["gold"]));
    assert_eq!(c["routingData"]["priority"], 5, "sub-fields left out stay");
    assert_eq!(c["routingData"]["preferredAgents"], json!(["1002"]));
    assert_eq!(c["callbackUserName"], "Zoë Martin");
    assert_eq!(
        c["callbackNumbers"],
        json!(["+33142685300", "+33612345678"])
    );
    let stored_time: Timestamp = c["callbackScheduledTime"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a scheduled time");
    assert_eq!(stored_time, when);
    assert_eq!(
        c["data"],
        json!({"visitorId": "v-1", "te_channel": "web", "orderId": "B-2", "tier": "gold"}),
        "merged key by key; protected keys untouched"
    );
    assert_eq!(c["scriptId"], "s1", "left out: unchanged");
    assert_eq!(c["countryCode"], "FR");
    assert_eq!(c["callerIdName"], "ACME", "null: unchanged");
    assert_eq!(c["timeZone"], Value::Null, "not an answer field: ignored");

    let entry = enrichment_entry(&record);
    assert_eq!(entry["outcome"], "enriched");
    assert_eq!(
        entry["changed"],
        json!([
            "callbackNumbers",
            "callbackScheduledTime",
            "callbackUserName",
            "data.orderId",
            "data.tier",
            "queueId",
            "routingData.skills"
        ])
    );
    let detail = entry["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("ignored timeZone"), "{detail}");
    assert!(
        detail.contains("kept protected data.te_channel, data.visitorId"),
        "{detail}"
    );
}

#[test]
fn queues_choose_their_webhook_and_bad_merged_values_are_refused_by_field() {
    let endpoint = Receiver::start(Reply::json(200, json!({})));
    let cb = merging_lab(&endpoint);

    // `vip` has no table of its own: the global webhook, its key header.
    let record = created(
        &cb,
        &json!({"queueId": "vip", "callbackNumbers": ["+33612345601"], "data": {"a": "1"}}),
    );
    let sent = called(&endpoint);
    assert_eq!(sent.uri, "/global");
    assert_eq!(sent.header("x-api-key"), Some("global-key"));
    assert_eq!(sent.json()["phoneNumber"], "+33612345601");
    assert_eq!(sent.json()["scriptId"], Value::Null, "missing: null");
    assert_eq!(record["data"], json!({"a": "1"}));
    let entry = enrichment_entry(&record);
    assert_eq!(entry["outcome"], "enriched");
    assert_eq!(entry["detail"], "the answer changed nothing");

    // An empty 2xx body changes nothing either.
    endpoint.script([Reply::status(204)]);
    let record = created(
        &cb,
        &json!({"queueId": "support", "callbackNumbers": ["+33612345606"]}),
    );
    called(&endpoint);
    assert_eq!(
        enrichment_entry(&record)["detail"],
        "the answer changed nothing"
    );

    // `quiet` turned it off: created without a call. The next call the
    // endpoint sees is the following request's.
    let quiet = created(
        &cb,
        &json!({"queueId": "quiet", "callbackNumbers": ["+33612345602"]}),
    );
    assert!(history_of(&quiet, "enrichment").is_empty(), "{quiet:#}");
    created(
        &cb,
        &json!({"queueId": "vip", "callbackNumbers": ["+33612345603"]}),
    );
    assert_eq!(called(&endpoint).json()["phoneNumber"], "+33612345603");

    // A merged request is validated like any other; the 422 names the
    // field and says the value came from the answer.
    let before = stored_in(&cb, "support") + stored_in(&cb, "vip");
    for (answer, field) in [
        (
            json!({"callbackNumbers": ["not a number"]}),
            "callbackNumbers[0]",
        ),
        (json!({"queueId": "nowhere"}), "queueId"),
        (
            json!({"routingData": {"priority": 5000}}),
            "routingData.priority",
        ),
        (
            json!({"validateCallbackNumbers": "yes"}),
            "validateCallbackNumbers",
        ),
    ] {
        endpoint.script([Reply::json(200, answer.clone())]);
        let r = create(
            &cb,
            &json!({"queueId": "support", "callbackNumbers": ["+33612345604"]}),
        );
        let e = error(&r, 422);
        called(&endpoint);
        assert_eq!(e["field"], field, "{answer}: {e}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("came from the enrichment answer"),
            "{answer}: {e}"
        );
    }
    // The request's own bad value is its own fault, said as usual.
    endpoint.script([Reply::json(200, json!({"data": {"tier": "gold"}}))]);
    let r = create(
        &cb,
        &json!({"queueId": "support", "callbackNumbers": ["+33612345605"], "callerId": "nope"}),
    );
    let e = error(&r, 422);
    called(&endpoint);
    assert_eq!(e["field"], "callerId", "{e}");
    assert!(
        !e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("enrichment"),
        "{e}"
    );
    assert_eq!(
        stored_in(&cb, "support") + stored_in(&cb, "vip"),
        before,
        "nothing stored"
    );
}

// ------------------------------------------------------------ failure policy

/// `support` accepts on failure, `strict` refuses; both call the same
/// endpoint with a short timeout. `down-ok` and `down` point at a closed port.
fn failing_lab(endpoint: &Receiver) -> CallbackLab {
    let table = |url: &str, policy: &str| {
        format!(
            "enrichment = {{ url = {url:?}, allow_http = true, timeout_ms = {TIMEOUT_MS}, \
             on_failure = \"{policy}\" }}"
        )
    };
    let hook = endpoint.url("/hook");
    let closed = format!("http://127.0.0.1:{}/hook", closed_port());
    let extra = format!(
        "[[callback.queues]]\nid = \"strict\"\n{}\n\n\
         [[callback.queues]]\nid = \"down-ok\"\n{}\n\n\
         [[callback.queues]]\nid = \"down\"\n{}\n",
        table(&hook, "refuse"),
        table(&closed, "accept"),
        table(&closed, "refuse"),
    );
    CallbackLab::start(config(&[table(&hook, "accept")], &extra))
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Each failure: the reply that causes it and what the reason must say.
fn failures() -> Vec<(&'static str, Reply, String)> {
    vec![
        (
            "slow",
            Reply::json(200, json!({"queueId": "strict"})).after(SLOW),
            format!("timeout after {TIMEOUT_MS} ms"),
        ),
        ("500", Reply::status(500), "status 500".into()),
        (
            "not json",
            Reply::raw(200, "<html>oops</html>", "text/html"),
            "body not JSON".into(),
        ),
        (
            "not an object",
            Reply::json(200, json!(["queueId", "vip"])),
            "invalid body: the answer is a JSON array".into(),
        ),
        (
            "too large",
            Reply::raw(
                200,
                &format!("{{\"x\":\"{}\"}}", "a".repeat(70_000)),
                "application/json",
            ),
            "body larger than 65536 bytes".into(),
        ),
    ]
}

#[test]
fn with_accept_a_failure_creates_the_request_as_sent_and_records_why() {
    let endpoint = Receiver::start(Reply::json(200, json!({})));
    let cb = failing_lab(&endpoint);
    for (n, (what, reply, reason)) in failures().into_iter().enumerate() {
        endpoint.script([reply]);
        let request = json!({
            "queueId": "support",
            "callbackNumbers": [format!("+3361234561{n}")],
            "data": {"visitorId": "v"}
        });
        let started = std::time::Instant::now();
        let record = created(&cb, &request);
        assert!(
            started.elapsed() < SLOW,
            "{what}: the switch waited for the slow answer"
        );
        called(&endpoint);
        let c = &record;
        assert_eq!(c["queueId"], "support", "{what}: {c:#}");
        assert_eq!(c["data"], json!({"visitorId": "v"}), "{what}");
        let entry = enrichment_entry(&record);
        assert_eq!(entry["outcome"], "failed", "{what}: {entry}");
        let detail = entry["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(&reason), "{what}: {detail}");
        assert!(detail.contains("created as requested"), "{what}: {detail}");
    }
    // A connection error too.
    let record = created(
        &cb,
        &json!({"queueId": "down-ok", "callbackNumbers": ["+33612345619"]}),
    );
    let entry = enrichment_entry(&record);
    assert_eq!(entry["outcome"], "failed");
    let detail = entry["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("cannot connect"), "{detail}");
}

#[test]
fn with_refuse_a_failure_is_a_502_and_nothing_is_stored() {
    let endpoint = Receiver::start(Reply::json(200, json!({})));
    let cb = failing_lab(&endpoint);
    for (n, (what, reply, reason)) in failures().into_iter().enumerate() {
        endpoint.script([reply]);
        let request = json!({"queueId": "strict", "callbackNumbers": [format!("+3361234562{n}")]});
        let e = error(&create(&cb, &request), 502);
        called(&endpoint);
        assert_eq!(e["code"], "enrichment_failed", "{what}: {e}");
        let message = e["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("enrichment webhook failed") && message.contains(&reason),
            "{what}: {e}"
        );
    }
    let e = error(
        &create(
            &cb,
            &json!({"queueId": "down", "callbackNumbers": ["+33612345629"]}),
        ),
        502,
    );
    assert_eq!(e["code"], "enrichment_failed");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot connect"),
        "{e}"
    );
    assert_eq!(stored_in(&cb, "strict"), 0);
    assert_eq!(stored_in(&cb, "down"), 0);

    // The same webhook answering again: the request goes through.
    endpoint.script([Reply::json(200, json!({"callbackUserName": "Zoë"}))]);
    let record = created(
        &cb,
        &json!({"queueId": "strict", "callbackNumbers": ["+33612345630"]}),
    );
    assert_eq!(record["callbackUserName"], "Zoë");
}

#[test]
fn a_retried_create_answers_its_first_result_without_calling_the_webhook_again() {
    let endpoint = Receiver::start(Reply::json(200, json!({"callbackUserName": "Zoë"})));
    let cb = failing_lab(&endpoint);
    let body = json!({"queueId": "strict", "callbackNumbers": ["+33612345640"]}).to_string();
    let create_with_key = || {
        common::http::request_with(
            cb.lab.http(),
            "POST",
            "/v1/callbacks",
            Some(&body),
            &[
                ("X-API-Key", common::http::TEST_API_KEY),
                ("Idempotency-Key", "order-7731"),
            ],
        )
    };
    let first = create_with_key();
    assert_eq!(first.status, 201, "{}", first.body);
    called(&endpoint);
    // The webhook now fails, and `strict` refuses on failure: a retry that
    // asked it again would be refused although the first one was accepted.
    endpoint.set_default(Reply::status(500));
    let again = create_with_key();
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["id"], first.json()["id"]);
    assert_eq!(again.json()["callbackUserName"], "Zoë");
    // The switch answers only after its webhook call came back, and the
    // receiver records a request before answering it: none was made.
    assert!(
        endpoint.try_next(Duration::ZERO).is_none(),
        "the webhook was asked again"
    );
    assert_eq!(stored_in(&cb, "strict"), 1);
}
