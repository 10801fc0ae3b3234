//! The web-callback API's contract and its durability, end to end: the
//! real binary and its SQLite store, agents' phones registered with SIPp,
//! requests over HTTP, states read from the switch's `event ...` lines and
//! the stored history; `kill -9` and a restart on the same database.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::callbacks::{history_of, AgentConfig, CallbackConfig, CallbackLab, WAIT};
use common::http::{self, Response, TEST_API_KEY};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

// ------------------------------------------------------------------ helpers

/// The test's clock `secs` from now, as RFC 3339.
fn at(secs: i64) -> String {
    (Timestamp::now() + SignedDuration::from_secs(secs)).to_string()
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a timestamp: {v}"))
}

/// A create body for the `support` queue.
fn body(number: &str, extra: &str) -> String {
    format!(r#"{{"queueId":"support","callbackNumbers":["{number}"]{extra}}}"#)
}

/// The `n`-th distinct French mobile number of a test.
fn number(n: usize) -> String {
    format!("+336123450{n:02}")
}

/// Asserts an error answer: status, and the `field` it blames.
fn assert_error(r: &Response, status: u16, field: Option<&str>, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {} {}", r.status, r.body);
    let json = r.json();
    assert_eq!(json["field"].as_str(), field, "{what}: {json}");
    assert!(
        json["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{what}: {json}"
    );
    json
}

/// `GET /v1/callbacks?query`: the ids of the page, and its `next`.
fn list(cb: &CallbackLab, query: &str) -> (Vec<String>, Option<String>) {
    let r = cb.api("GET", &format!("/v1/callbacks?{query}"), None);
    assert_eq!(r.status, 200, "list {query}: {}", r.body);
    let page = r.json();
    let ids = page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("list {query}: {page}"))
        .iter()
        .map(|c| c["id"].as_str().expect("id").to_string())
        .collect();
    (ids, page["next"].as_str().map(str::to_string))
}

/// `GET /v1/callbacks/{id}/status`.
fn status(cb: &CallbackLab, id: &str) -> Value {
    let r = cb.api("GET", &format!("/v1/callbacks/{id}/status"), None);
    assert_eq!(r.status, 200, "status {id}: {}", r.body);
    r.json()
}

fn agent_view(cb: &CallbackLab, agent: &str) -> Value {
    let r = cb.api("GET", &format!("/v1/agents/{agent}"), None);
    assert_eq!(r.status, 200, "agent {agent}: {}", r.body);
    r.json()
}

/// The seq of every desktop event the switch printed, in order.
fn printed_seqs(cb: &mut CallbackLab) -> Vec<u64> {
    cb.lab.sw.drain();
    cb.lab
        .sw
        .seen
        .iter()
        .filter_map(|l| common::Event::parse(l))
        .filter(|e| matches!(e.name.as_str(), "interaction" | "offer" | "agent-state"))
        .map(|e| e.get("seq").parse().expect("seq"))
        .collect()
}

// ------------------------------------------------------------- SSE reader

/// One Server-Sent Events message.
#[derive(Debug)]
struct SseEvent {
    id: Option<u64>,
    event: String,
    data: String,
}

/// A blocking reader of `GET /v1/desktop/events` over one connection.
struct Sse {
    stream: TcpStream,
    /// Bytes received and not yet de-chunked.
    raw: Vec<u8>,
    /// The event-stream text received and not yet parsed.
    text: Vec<u8>,
    chunked: bool,
}

impl Sse {
    /// Connects and returns once the response head is in: the stream is
    /// then subscribed, so nothing that happens afterwards is missed.
    fn connect(addr: SocketAddr, last_event_id: Option<u64>) -> Sse {
        let mut stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let mut req = format!(
            "GET /v1/desktop/events HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {TEST_API_KEY}\r\n\
             Accept: text/event-stream\r\n"
        );
        if let Some(n) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {n}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).expect("write");
        let mut sse = Sse {
            stream,
            raw: Vec::new(),
            text: Vec::new(),
            chunked: false,
        };
        let deadline = Instant::now() + WAIT;
        let end = loop {
            if let Some(end) = sse.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end;
            }
            sse.fill(deadline);
        };
        let head = String::from_utf8_lossy(&sse.raw[..end]).to_string();
        sse.raw.drain(..end + 4);
        assert!(head.starts_with("HTTP/1.1 200"), "SSE answer: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("content-type: text/event-stream"), "{head}");
        sse.chunked = lower.contains("transfer-encoding: chunked");
        sse
    }

    /// Reads more bytes, failing the test at `deadline` or on EOF.
    fn fill(&mut self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "SSE: nothing more within {WAIT:?}");
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!("SSE: the switch closed the stream"),
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e) => panic!("SSE: read: {e}"),
        }
    }

    /// Moves complete chunks (or everything, unchunked) into `text`.
    fn dechunk(&mut self) {
        if !self.chunked {
            self.text.append(&mut self.raw);
            return;
        }
        while let Some(line) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or_else(|_| panic!("SSE: bad chunk size {size_text:?}"));
            assert_ne!(size, 0, "SSE: the switch ended the stream");
            if self.raw.len() < line + 2 + size + 2 {
                return;
            }
            self.text
                .extend_from_slice(&self.raw[line + 2..line + 2 + size]);
            self.raw.drain(..line + 2 + size + 2);
        }
    }

    /// The next event (comments such as keep-alives skipped).
    fn next(&mut self) -> SseEvent {
        let deadline = Instant::now() + WAIT;
        loop {
            self.dechunk();
            while let Some(end) = self.text.windows(2).position(|w| w == b"\n\n") {
                let block = String::from_utf8_lossy(&self.text[..end]).to_string();
                self.text.drain(..end + 2);
                let mut event = SseEvent {
                    id: None,
                    event: String::new(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines().filter(|l| !l.starts_with(':')) {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    any = true;
                    match name {
                        "id" => event.id = Some(value.parse().expect("numeric id")),
                        "event" => event.event = value.to_string(),
                        "data" => event.data.push_str(value),
                        _ => {}
                    }
                }
                if any {
                    return event;
                }
            }
            self.fill(deadline);
        }
    }

    /// The next event, checked to be a well-formed desktop event: its `id`
    /// is its `seq`, its `event` its `type`. Returns (seq, data).
    fn next_desktop(&mut self) -> (u64, Value) {
        let e = self.next();
        let seq = e.id.unwrap_or_else(|| panic!("event without id: {e:?}"));
        let data: Value = serde_json::from_str(&e.data).expect("JSON data");
        assert_eq!(data["seq"], seq, "{e:?}");
        assert_eq!(data["type"], e.event.as_str(), "{e:?}");
        (seq, data)
    }
}

// ------------------------------------------------------------------ tests

/// X rejects the offer: it goes to Y. Y lets it time out: Y is set Not
/// Ready (Away) and the interaction is queued again (both have had it).
#[test]
fn reject_and_timeout_redirect_to_another_agent() {
    let offer_timeout = 4;
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: offer_timeout,
        options: vec![("not_ready_on_offer_timeout".into(), "\"Away\"".into())],
        agents: ["1001", "1002"].map(AgentConfig::new).to_vec(),
        ..CallbackConfig::default()
    });
    for agent in ["1001", "1002"] {
        cb.lab.register(agent);
        cb.login(agent);
        cb.wait_agent(agent, "ready");
    }
    let id = cb.create(&body("+33612345678", ""));
    let x = cb.wait_offer(&id);
    let y = if x == "1001" { "1002" } else { "1001" };

    cb.act_ok(&x, &id, "reject", None);
    cb.lab.wait("offer", &[("id", &id), ("agent", y)]);
    // X is free again, but is not offered what it rejected.
    assert_eq!(agent_view(&cb, &x)["state"], "ready");

    let away = cb.lab.wait_for(
        "agent-state",
        &[("agent", y), ("state", "not-ready")],
        Duration::from_secs(offer_timeout) + WAIT,
    );
    assert_eq!(away.get("reason"), "Away", "{}", away.line);
    cb.lab.wait(
        "interaction",
        &[
            ("id", &id),
            ("state", "queued"),
            ("reason", "offer timed out"),
        ],
    );

    let got = cb.get(&id);
    assert_eq!(got["state"], "queued", "{got}");
    assert!(got["agent"].is_null(), "{got}");
    let rejected = history_of(&got, "rejected");
    assert_eq!(rejected.len(), 1, "{got}");
    assert_eq!(rejected[0]["agent"], x.as_str());
    let timed_out = history_of(&got, "offer-timed-out");
    assert_eq!(timed_out.len(), 1, "{got}");
    assert_eq!(timed_out[0]["agent"], y);
    let offered = history_of(&got, "offered");
    let offered_to: Vec<&str> = offered.iter().filter_map(|o| o["agent"].as_str()).collect();
    assert_eq!(offered_to, [x.as_str(), y]);
    // Y's offer lasted the configured timeout.
    let held = ts(&timed_out[0]["at"]).duration_since(ts(&offered[1]["at"]));
    assert!(
        held >= SignedDuration::from_secs(offer_timeout as i64)
            && held < SignedDuration::from_secs(offer_timeout as i64 + 5),
        "Y held the offer {held:?}"
    );
    assert_eq!(
        cb.history_states(&id),
        ["queued", "offered", "queued", "offered", "queued"]
    );

    let y_view = agent_view(&cb, y);
    assert_eq!(y_view["state"], "not-ready", "{y_view}");
    assert_eq!(y_view["reason"], "Away", "{y_view}");
    // Neither agent is offered it again.
    assert_eq!(cb.lab.sw.events("offer").len(), 2);
}

/// A denied privilege answers 403 naming it, and changes nothing.
#[test]
fn forbidden_action_without_its_privilege() {
    let mut agent = AgentConfig::new("1001");
    agent.deny = vec![
        "webcallback.can-decline".into(),
        "webcallback.can-reschedule-on-new-number".into(),
    ];
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: 120,
        agents: vec![agent],
        ..CallbackConfig::default()
    });
    cb.lab.register("1001");
    cb.login("1001");
    let id = cb.create(&body("+33612345678", ""));
    assert_eq!(cb.wait_offer(&id), "1001");

    let refused = |r: &Response, privilege: &str| {
        let json = assert_error(r, 403, Some(privilege), privilege);
        assert_eq!(json["code"], "forbidden", "{json}");
        assert_eq!(json["privilege"], privilege, "{json}");
        assert!(
            json["message"].as_str().unwrap_or("").contains(privilege),
            "{json}"
        );
    };
    refused(
        &cb.act("1001", &id, "decline", None),
        "webcallback.can-decline",
    );
    assert_eq!(cb.get(&id)["state"], "offered");

    let later = at(3600);
    let new_number =
        format!(r#"{{"callbackScheduledTime":"{later}","callbackNumber":"+33698765432"}}"#);
    refused(
        &cb.act("1001", &id, "reschedule", Some(&new_number)),
        "webcallback.can-reschedule-on-new-number",
    );
    let got = cb.get(&id);
    assert_eq!(got["state"], "offered", "{got}");
    assert_eq!(got["agent"], "1001", "{got}");
    assert_eq!(got["callbackNumbers"], serde_json::json!(["+33612345678"]));
    assert!(history_of(&got, "rescheduled").is_empty(), "{got}");
    assert_eq!(cb.history_states(&id), ["queued", "offered"]);

    // What is not denied still works: a reschedule on the same number.
    let same = format!(r#"{{"callbackScheduledTime":"{later}"}}"#);
    let done = cb.act_ok("1001", &id, "reschedule", Some(&same));
    assert_eq!(done["state"], "rescheduled", "{done}");
    assert_eq!(done["interactionQueue"], "wcb-reschedule", "{done}");
    let got = cb.get(&id);
    let rescheduled = history_of(&got, "rescheduled");
    assert_eq!(rescheduled.len(), 1, "{got}");
    assert_eq!(rescheduled[0]["by"], "agent 1001", "{got}");
    assert!(rescheduled[0]["number"].is_null(), "{got}");
    assert_eq!(
        ts(&rescheduled[0]["callbackScheduledTime"]),
        later.parse().unwrap()
    );
}

/// `done` on an accepted interaction that was never called closes it
/// unprocessed, which is `mark-done`'s privilege: without
/// `webcallback.can-mark-done` it is refused 403 naming it, like `mark-done`.
#[test]
fn done_without_a_call_needs_can_mark_done() {
    let mut agent = AgentConfig::new("1001");
    agent.deny = vec!["webcallback.can-mark-done".into()];
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: 120,
        agents: vec![agent],
        ..CallbackConfig::default()
    });
    cb.lab.register("1001");
    cb.login("1001");
    let id = cb.create(&body("+33612345678", ""));
    assert_eq!(cb.wait_offer(&id), "1001");
    let accepted = cb.act_ok("1001", &id, "accept", None);
    assert_eq!(accepted["state"], "ready-to-call", "{accepted}");

    for action in ["done", "mark-done"] {
        let r = cb.act("1001", &id, action, None);
        let json = assert_error(&r, 403, Some("webcallback.can-mark-done"), action);
        assert_eq!(json["privilege"], "webcallback.can-mark-done", "{json}");
    }
    let got = cb.get(&id);
    assert_eq!(got["state"], "ready-to-call", "{got}");
    assert_eq!(got["agent"], "1001", "{got}");
    assert_eq!(
        cb.history_states(&id),
        ["queued", "offered", "ready-to-call"]
    );
}

/// A reschedule's time and the schedule route's are held to a create's
/// window (at most 5 minutes past, at most 366 days ahead): outside it they
/// are refused 422 naming `callbackScheduledTime`, and nothing changes.
#[test]
fn reschedule_and_schedule_times_are_held_to_the_create_window() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    // No phone is registered: nothing is offered, the callback waits.
    cb.login("1001");
    let id = cb.create(&body("+33612345678", ""));
    let reschedule = format!("/v1/callbacks/{id}/reschedule");
    for (by, when) in [
        ("contact", at(367 * 86_400)),
        ("supervisor", at(367 * 86_400)),
        ("contact", at(-600)),
    ] {
        let r = cb.api(
            "POST",
            &reschedule,
            Some(&format!(
                r#"{{"by":"{by}","callbackScheduledTime":"{when}"}}"#
            )),
        );
        assert_error(&r, 422, Some("callbackScheduledTime"), &when);
    }
    let got = cb.get(&id);
    assert_eq!(got["state"], "queued", "{got}");
    assert!(history_of(&got, "rescheduled").is_empty(), "{got}");

    let r = cb.api(
        "POST",
        "/v1/agents/1001/schedule",
        Some(&format!(
            r#"{{"callbackScheduledTime":"{}","callbackNumber":"+33698765432"}}"#,
            at(367 * 86_400)
        )),
    );
    assert_error(&r, 422, Some("callbackScheduledTime"), "schedule");

    // Inside the window the reschedule is taken.
    let ok = cb.api(
        "POST",
        &reschedule,
        Some(&format!(
            r#"{{"by":"contact","callbackScheduledTime":"{}"}}"#,
            at(365 * 86_400)
        )),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["state"], "rescheduled", "{}", ok.body);
}

/// Each malformed or unacceptable request is refused with its status and
/// the field at fault; authentication, unknown ids and wrong states too.
#[test]
fn bad_requests_are_answered_4xx_naming_the_field() {
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: 120,
        ..CallbackConfig::default()
    });
    let n = r#""callbackNumbers":["+33612345678"]"#;
    let past = at(-3600);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("missing queueId", format!("{{{n}}}"), 422, "queueId"),
        (
            "unknown queue",
            format!(r#"{{"queueId":"nope",{n}}}"#),
            422,
            "queueId",
        ),
        (
            "no numbers",
            r#"{"queueId":"support","callbackNumbers":[]}"#.into(),
            422,
            "callbackNumbers",
        ),
        (
            "impossible number",
            body("12", r#","countryCode":"FR""#),
            422,
            "callbackNumbers[0]",
        ),
        (
            "impossible international number",
            body("+12", ""),
            422,
            "callbackNumbers[0]",
        ),
        (
            "national number without countryCode",
            body("06 12 34 56 78", ""),
            422,
            "callbackNumbers[0]",
        ),
        (
            "second number bad",
            r#"{"queueId":"support","callbackNumbers":["+33612345678","x"]}"#.into(),
            422,
            "callbackNumbers[1]",
        ),
        (
            "bad time",
            body("+33612345678", r#","callbackScheduledTime":"tomorrow""#),
            422,
            "callbackScheduledTime",
        ),
        (
            "time in the past",
            body(
                "+33612345678",
                &format!(r#","callbackScheduledTime":"{past}""#),
            ),
            422,
            "callbackScheduledTime",
        ),
        (
            "bad zone",
            body(
                "+33612345678",
                r#","callbackScheduledTime":"2030-01-01T10:00","timeZone":"Mars/Olympus""#,
            ),
            422,
            "timeZone",
        ),
        (
            "unknown field",
            body("+33612345678", r#","colour":"red""#),
            422,
            "colour",
        ),
        (
            "nested data",
            body("+33612345678", r#","data":{"order":{"id":1}}"#),
            422,
            "data.order",
        ),
        (
            "type error",
            r#"{"queueId":"support","callbackNumbers":"123"}"#.into(),
            422,
            "callbackNumbers",
        ),
        (
            "malformed JSON",
            r#"{"queueId":"support","#.into(),
            400,
            "body",
        ),
    ];
    for (what, json, status, field) in &cases {
        let r = cb.api("POST", "/v1/callbacks", Some(json));
        assert_error(&r, *status, Some(field), what);
    }
    let national = cb.api("POST", "/v1/callbacks", Some(&body("06 12 34 56 78", "")));
    assert!(national.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("countryCode"));
    // Nothing was created by any of them.
    assert_eq!(list(&cb, "").0.len(), 0);

    // Authentication.
    let addr = cb.lab.http();
    let anonymous = http::request_with(addr, "GET", "/v1/callbacks", None, &[]);
    assert_error(&anonymous, 401, None, "no key");
    assert_eq!(anonymous.header("WWW-Authenticate"), Some("Bearer"));
    let wrong = http::request_with(
        addr,
        "POST",
        "/v1/callbacks",
        Some(&body("+33612345678", "")),
        &[("X-API-Key", "not-the-key")],
    );
    assert_error(&wrong, 401, None, "wrong key");
    assert_eq!(list(&cb, "").0.len(), 0, "a refused key created nothing");

    // Unknown ids.
    let unknown = "cb-00000000deadbeef";
    for (method, path, json) in [
        ("GET", format!("/v1/callbacks/{unknown}"), None),
        ("GET", format!("/v1/callbacks/{unknown}/status"), None),
        (
            "POST",
            format!("/v1/callbacks/{unknown}/cancel"),
            Some(r#"{"by":"contact"}"#),
        ),
    ] {
        let r = cb.api(method, &path, json);
        let e = assert_error(&r, 404, Some("id"), &path);
        assert_eq!(e["code"], "no_callback", "{e}");
    }

    // Wrong states: an agent's second login, a call before accepting,
    // a cancel once it is already over.
    cb.lab.register("1001");
    cb.login("1001");
    let again = cb.api("POST", "/v1/agents/1001/login", None);
    assert_eq!(
        assert_error(&again, 409, None, "login twice")["code"],
        "wrong_state"
    );
    let id = cb.create(&body("+33612345678", ""));
    assert_eq!(cb.wait_offer(&id), "1001");
    let call = cb.act("1001", &id, "call", None);
    assert_eq!(
        assert_error(&call, 409, None, "call")["code"],
        "wrong_state"
    );
    assert_eq!(cb.get(&id)["state"], "offered");
    let cancel = format!("/v1/callbacks/{id}/cancel");
    let r = cb.api("POST", &cancel, Some(r#"{"by":"contact"}"#));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled");
    let twice = cb.api("POST", &cancel, Some(r#"{"by":"contact"}"#));
    assert_eq!(
        assert_error(&twice, 409, None, "cancel twice")["code"],
        "wrong_state"
    );
    let late = cb.api(
        "POST",
        &format!("/v1/callbacks/{id}/reschedule"),
        Some(&format!(
            r#"{{"by":"contact","callbackScheduledTime":"{}"}}"#,
            at(3600)
        )),
    );
    assert_eq!(
        assert_error(&late, 409, None, "reschedule over")["code"],
        "wrong_state"
    );
    assert_eq!(cb.get(&id)["state"], "cancelled");
}

/// A retried create (same Idempotency-Key) and a second request for the
/// same number and queue both come back to the first callback.
#[test]
fn idempotency_key_and_duplicate_merge() {
    let cb = CallbackLab::start(CallbackConfig::default());
    let addr = cb.lab.http();
    let first = body("+33612345678", r#","data":{"orderId":"42"}"#);
    let keyed = |json: &str| {
        http::request_with(
            addr,
            "POST",
            "/v1/callbacks",
            Some(json),
            &[
                ("X-API-Key", TEST_API_KEY),
                ("Idempotency-Key", "order-42-try"),
            ],
        )
    };
    let r1 = keyed(&first);
    assert_eq!(r1.status, 201, "{}", r1.body);
    let id = r1.json()["id"].as_str().expect("id").to_string();
    let location = format!("/v1/callbacks/{id}");
    assert_eq!(r1.header("Location"), Some(location.as_str()));
    let r2 = keyed(&first);
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(r2.json()["id"], id.as_str());
    assert_eq!(r2.header("Location"), Some(location.as_str()));
    assert!(
        history_of(&cb.get(&id), "merged").is_empty(),
        "a replay is not a merge"
    );

    // No key, same number (written another way) and queue: merged.
    let second = r#"{"queueId":"support","callbackNumbers":["06 12 34 56 78","+33698765432"],"countryCode":"FR","data":{"note":"call after 5"}}"#;
    let r3 = cb.api("POST", "/v1/callbacks", Some(second));
    assert_eq!(r3.status, 200, "{}", r3.body);
    let merged = r3.json();
    assert_eq!(merged["id"], id.as_str(), "{merged}");
    assert_eq!(merged["data"]["orderId"], "42", "{merged}");
    assert_eq!(merged["data"]["note"], "call after 5", "{merged}");
    assert_eq!(
        merged["callbackNumbers"],
        serde_json::json!(["+33612345678", "+33698765432"])
    );
    let got = cb.get(&id);
    assert_eq!(got["data"]["note"], "call after 5", "{got}");
    assert_eq!(history_of(&got, "merged").len(), 1, "{got}");

    // Another number is another callback.
    let other = cb.create(&body("+33611111111", ""));
    assert_ne!(other, id);
    let (ids, next) = list(&cb, "");
    assert_eq!(ids, [id.clone(), other]);
    assert_eq!(next, None);
    assert_eq!(list(&cb, "state=queued").0.len(), 2);
}

/// The list's filters and paging; the contact's status (position and
/// expected wait), cancel and reschedule.
#[test]
fn list_filters_paging_and_contact_status() {
    let cb = CallbackLab::start(CallbackConfig::default());
    // a, b, c due now (queued: nobody is logged in), d and e later.
    let now_ids: Vec<String> = (0..3).map(|i| cb.create(&body(&number(i), ""))).collect();
    let (d_at, e_at) = (at(3600), at(7200));
    let d = cb.create(&body(
        &number(3),
        &format!(r#","callbackScheduledTime":"{d_at}""#),
    ));
    let e = cb.create(&body(
        &number(4),
        &format!(r#","callbackScheduledTime":"{e_at}""#),
    ));
    let (a, b, c) = (&now_ids[0], &now_ids[1], &now_ids[2]);
    let v = |ids: &[&String]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let all = [a.clone(), b.clone(), c.clone(), d.clone(), e.clone()];

    assert_eq!(list(&cb, "").0, all);
    assert_eq!(list(&cb, "state=queued").0, v(&[a, b, c]));
    assert_eq!(list(&cb, "state=scheduled").0, v(&[&d, &e]));
    assert_eq!(list(&cb, "state=scheduled,queued").0, all);
    assert_eq!(list(&cb, "state=offered").0.len(), 0);
    assert_eq!(list(&cb, "queue=support").0, all);
    assert_eq!(list(&cb, "queue=sales").0.len(), 0);
    // Time ranges: by creation ([from, to)) and by due time.
    let created: Vec<String> = all
        .iter()
        .map(|id| cb.get(id)["createdAt"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        list(&cb, &format!("from={}&to={}", created[1], created[3])).0,
        v(&[b, c])
    );
    assert_eq!(
        list(&cb, &format!("by=due&from={}", at(1800))).0,
        v(&[&d, &e])
    );
    assert_eq!(
        list(&cb, &format!("by=due&from={}&to={}", at(1800), at(5400))).0,
        v(&[&d])
    );
    let bad = cb.api("GET", "/v1/callbacks?state=asleep", None);
    assert_error(&bad, 422, Some("state"), "bad state filter");

    // Pages of two until `next` is absent: every id once, in order.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_string();
    let mut pages = 0;
    loop {
        let (ids, next) = list(&cb, &query);
        assert!(ids.len() <= 2, "{ids:?}");
        seen.extend(ids);
        pages += 1;
        match next {
            Some(cursor) => query = format!("limit=2&cursor={cursor}"),
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, all);

    // Positions 1..5 (due order), and the wait grows with the position.
    let statuses: Vec<Value> = all.iter().map(|id| status(&cb, id)).collect();
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(s["position"], i as u64 + 1, "{s}");
        assert_eq!(s["id"], all[i].as_str(), "{s}");
    }
    let wait = |s: &Value| s["estimatedWaitSecs"].as_u64().expect("estimatedWaitSecs");
    assert_eq!(statuses[0]["state"], "queued");
    assert_eq!(wait(&statuses[0]), 0);
    let one_ahead = wait(&statuses[1]);
    assert!(one_ahead > 0, "{}", statuses[1]);
    assert_eq!(wait(&statuses[2]), 2 * one_ahead, "{}", statuses[2]);
    // Scheduled: at least until it is due.
    assert!(wait(&statuses[3]) > 3500, "{}", statuses[3]);
    assert_eq!(
        statuses[3]["callbackScheduledTime"],
        cb.get(&d)["callbackScheduledTime"]
    );

    // The contact cancels b: c moves up, and its wait shrinks.
    let r = cb.api(
        "POST",
        &format!("/v1/callbacks/{b}/cancel"),
        Some(r#"{"by":"contact","reason":"no longer needed"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let c_now = status(&cb, c);
    assert_eq!(c_now["position"], 2, "{c_now}");
    assert_eq!(wait(&c_now), one_ahead, "{c_now}");
    let b_now = status(&cb, b);
    assert_eq!(b_now["state"], "cancelled", "{b_now}");
    assert!(b_now["position"].is_null(), "{b_now}");
    let cancelled = history_of(&cb.get(b), "cancelled");
    assert_eq!(cancelled[0]["by"], "contact");
    assert_eq!(cancelled[0]["reason"], "no longer needed");

    // The contact reschedules c after e: last in line, in the reschedule queue.
    let c_at = at(10800);
    let r = cb.api(
        "POST",
        &format!("/v1/callbacks/{c}/reschedule"),
        Some(&format!(
            r#"{{"by":"contact","callbackScheduledTime":"{c_at}"}}"#
        )),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let moved = r.json();
    assert_eq!(moved["state"], "rescheduled", "{moved}");
    assert_eq!(moved["interactionQueue"], "wcb-reschedule", "{moved}");
    assert_eq!(ts(&moved["callbackScheduledTime"]), c_at.parse().unwrap());
    let c_now = status(&cb, c);
    assert_eq!(c_now["position"], 4, "{c_now}");
    assert!(wait(&c_now) > 10000, "{c_now}");
    assert_eq!(status(&cb, &d)["position"], 2);
    assert_eq!(list(&cb, "queue=wcb-reschedule").0, v(&[c]));
    assert_eq!(list(&cb, "state=rescheduled").0, v(&[c]));
    assert_eq!(list(&cb, "state=cancelled").0, v(&[b]));
    assert_eq!(list(&cb, "state=queued").0, v(&[a]));
    let rescheduled = history_of(&cb.get(c), "rescheduled");
    assert_eq!(rescheduled.len(), 1, "{rescheduled:?}");
    assert_eq!(rescheduled[0]["by"], "contact", "{rescheduled:?}");
    assert_eq!(
        ts(&rescheduled[0]["callbackScheduledTime"]),
        c_at.parse().unwrap()
    );
}

/// A desktop that reconnects with `Last-Event-ID: N` gets every event
/// after N, in order, then the live ones: no gap, no duplicate.
#[test]
fn desktop_events_resume_after_a_reconnect() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let addr = cb.lab.http();

    let mut sse = Sse::connect(addr, None);
    // No phone is registered: nothing is offered, the events are ours.
    cb.login("1001");
    let first: Vec<String> = (0..3).map(|i| cb.create(&body(&number(i), ""))).collect();
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(sse.next_desktop());
    }
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "not consecutive: {seqs:?}"
    );
    assert_eq!(got[0].1["type"], "agent", "{}", got[0].1);
    assert_eq!(got[0].1["agent"], "1001");
    assert_eq!(got[0].1["state"], "ready");
    for (i, (_, data)) in got[1..].iter().enumerate() {
        assert_eq!(data["type"], "interaction", "{data}");
        assert_eq!(data["id"], first[i].as_str(), "{data}");
        assert_eq!(data["state"], "queued", "{data}");
    }
    let last = *seqs.last().unwrap();
    drop(sse);

    // Changes while the desktop is away.
    let r = cb.api(
        "POST",
        &format!("/v1/callbacks/{}/cancel", first[0]),
        Some(r#"{"by":"supervisor"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let more: Vec<String> = (3..5).map(|i| cb.create(&body(&number(i), ""))).collect();
    let r = cb.api(
        "POST",
        "/v1/agents/1001/not-ready",
        Some(r#"{"reason":"Lunch"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    cb.lab.wait(
        "agent-state",
        &[
            ("agent", "1001"),
            ("state", "not-ready"),
            ("reason", "Lunch"),
        ],
    );
    let missed: Vec<u64> = printed_seqs(&mut cb)
        .into_iter()
        .filter(|s| *s > last)
        .collect();
    assert_eq!(missed.len(), 4, "{missed:?}");
    let newest = *missed.last().unwrap();

    let mut sse = Sse::connect(addr, Some(last));
    let replay: Vec<(u64, Value)> = (0..missed.len()).map(|_| sse.next_desktop()).collect();
    let replayed: Vec<u64> = replay.iter().map(|(s, _)| *s).collect();
    assert_eq!(replayed, missed);
    assert_eq!(replayed, ((last + 1)..=newest).collect::<Vec<_>>());
    assert_eq!(replay[0].1["id"], first[0].as_str());
    assert_eq!(replay[0].1["state"], "cancelled");
    assert_eq!(replay[1].1["id"], more[0].as_str());
    assert_eq!(replay[2].1["id"], more[1].as_str());
    assert_eq!(replay[3].1["type"], "agent");
    assert_eq!(replay[3].1["reason"], "Lunch");

    // Then live: the next change is the very next seq, nothing repeated.
    let live = cb.create(&body(&number(5), ""));
    let (seq, data) = sse.next_desktop();
    assert_eq!(seq, newest + 1, "{data}");
    assert_eq!(data["id"], live.as_str());
}

/// The offer event's fields are camelCase like the rest of the API
/// (`autoAnswerSecs`, `canReject`), on the live stream as from the store.
#[test]
fn offer_event_fields_are_camel_case() {
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: 120,
        ..CallbackConfig::default()
    });
    let addr = cb.lab.http();
    cb.lab.register("1001");
    let mut sse = Sse::connect(addr, None);
    cb.login("1001");
    let options = r#"{"webcallback.auto-answer": true, "webcallback.auto-answer.timer": 30, "webcallback.auto-answer.enable-reject": false}"#;
    let id = cb.create(&body(
        &number(0),
        &format!(r#","routingData":{{"options":{options}}}"#),
    ));
    assert_eq!(cb.wait_offer(&id), "1001");
    let mut seen = Vec::new();
    let offer = loop {
        let (seq, data) = sse.next_desktop();
        if data["type"] == "offer" {
            break (seq, data);
        }
        assert!(seen.len() < 10, "no offer event among {seen:?}");
        seen.push(data);
    };
    let check = |data: &Value| {
        assert_eq!(data["id"], id.as_str(), "{data}");
        assert_eq!(data["autoAnswerSecs"], 30, "{data}");
        assert_eq!(data["canReject"], false, "{data}");
        assert!(data.get("auto_answer_secs").is_none(), "{data}");
        assert!(data.get("can_reject").is_none(), "{data}");
    };
    check(&offer.1);
    drop(sse);
    // The same event replayed from the store after a reconnect.
    let mut sse = Sse::connect(addr, Some(offer.0 - 1));
    let (seq, data) = sse.next_desktop();
    assert_eq!(seq, offer.0, "{data}");
    check(&data);
}

/// `kill -9` while a callback waits for its time: after the restart it is
/// still there, the agent still logged in, and it is offered when due.
/// Every callback acknowledged before the kill survives it.
#[test]
fn kill9_during_a_scheduled_wait_loses_nothing() {
    let mut cb = CallbackLab::start(CallbackConfig {
        offer_timeout_secs: 60,
        ..CallbackConfig::default()
    });
    cb.lab.register("1001");
    cb.login("1001");
    let due = Timestamp::now() + SignedDuration::from_secs(4);
    let id = cb.create(&body(
        "+33612345678",
        &format!(r#","callbackScheduledTime":"{due}","data":{{"orderId":"7"}}"#),
    ));
    cb.kill9_and_restart();

    let got = cb.get(&id);
    assert_eq!(got["callbackNumbers"], serde_json::json!(["+33612345678"]));
    assert_eq!(got["data"]["orderId"], "7", "{got}");
    assert_eq!(ts(&got["callbackScheduledTime"]), due);
    assert_eq!(ts(&got["dueAt"]), due);
    if Timestamp::now() < due {
        assert_eq!(got["state"], "scheduled", "{got}");
    }
    let view = agent_view(&cb, "1001");
    assert_eq!(view["state"], "ready", "{view}");
    assert_eq!(view["registered"], false, "bindings do not survive: {view}");

    cb.lab.register("1001");
    assert_eq!(agent_view(&cb, "1001")["registered"], true);
    assert_eq!(cb.wait_offer(&id), "1001");
    let got = cb.get(&id);
    assert_eq!(got["state"], "offered", "{got}");
    let offered = history_of(&got, "offered");
    assert!(ts(&offered[0]["at"]) >= due, "offered before due: {got}");

    // Many acknowledged creates, then kill -9 at once: none is lost.
    let addr = cb.lab.http();
    let threads: Vec<_> = (0..5)
        .map(|t| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|i| {
                        let n = format!("+3361300{t}{i:03}");
                        let r = http::request(addr, "POST", "/v1/callbacks", Some(&body(&n, "")));
                        assert_eq!(r.status, 201, "{}", r.body);
                        r.json()["id"].as_str().expect("id").to_string()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acknowledged: BTreeSet<String> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("creator"))
        .collect();
    assert_eq!(acknowledged.len(), 50);
    cb.kill9_and_restart();

    let (ids, next) = list(&cb, "limit=500");
    assert_eq!(next, None);
    let stored: BTreeSet<String> = ids.into_iter().collect();
    let lost: Vec<&String> = acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "lost after kill -9: {lost:?}");
    assert_eq!(stored.len(), 51);
    assert!(stored.contains(&id));
}

/// `kill -9` during a connected call: after the restart the interaction is
/// back in its queue with the attempt counted, and says why.
#[test]
fn kill9_during_a_call_requeues_with_the_attempt_counted() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create(&body("+33612345678", ""));
    assert_eq!(cb.wait_offer(&id), "1001");
    cb.act_ok("1001", &id, "accept", None);
    cb.act_ok("1001", &id, "call", None);
    cb.wait_state(&id, "connected");
    let before = cb.get(&id);
    assert_eq!(before["attempts"], 1, "{before}");
    assert!(before["callId"].is_string(), "{before}");

    cb.kill9_and_restart();
    // The phones' SIPp talk to a switch that is gone; they are not judged.
    drop(agent);
    drop(contact);

    cb.lab.wait(
        "interaction",
        &[
            ("id", &id),
            ("state", "queued"),
            ("reason", "recovered after restart"),
        ],
    );
    let got = cb.get(&id);
    assert_eq!(got["state"], "queued", "{got}");
    assert_eq!(got["attempts"], 1, "{got}");
    assert!(got["agent"].is_null(), "{got}");
    assert!(got["callId"].is_null(), "{got}");
    let recovered = history_of(&got, "recovered");
    assert_eq!(recovered.len(), 1, "{got}");
    assert_eq!(recovered[0]["from"], "connected", "{got}");
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
            "queued"
        ]
    );
    let attempts = history_of(&got, "attempt");
    assert_eq!(attempts.len(), 1, "{got}");
    // The agent is no longer on a call; its phone must register again.
    let view = agent_view(&cb, "1001");
    assert_eq!(view["state"], "ready", "{view}");
    assert_eq!(view["registered"], false, "{view}");
    assert_eq!(view["interactions"], serde_json::json!([]), "{view}");
}
