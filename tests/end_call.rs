//! End-call events end to end: the real binary, SIPp as the agent's phone
//! and as the trunk's far end (the contact), a call recorded through the
//! desktop API, held, retrieved, ended and wrapped up with a disposition.
//! The interaction's stored call list keeps the call's figures; the
//! recording is served with range requests; and a `[notify]` endpoint for
//! end-call events (a real HTTP receiver) is sent the event with the
//! figures, the disposition and a recording link whose path serves the WAV.

mod common;

use common::callbacks::{history_of, seq, CallbackConfig, CallbackLab, WAIT};
use common::http;
use common::receiver::{Receiver, Reply};
use common::sippbg::{cseq_method, header, SippBg};
use jiff::Timestamp;
use serde_json::Value;

/// The base the recording links are built on. The switch's HTTP port is
/// picked at start-up, so the test fetches the link's path from wherever
/// the API listens.
const PUBLIC_URL: &str = "http://switchback.test:8080";

fn notify_toml(url: &str) -> String {
    format!(
        "[notify]\npublic_url = \"{PUBLIC_URL}\"\n\n[[notify.endpoints]]\nname = \"wfm\"\n\
         url = \"{url}\"\nallow_http = true\nformat = \"json\"\n\
         events = [\"end-call\"]\n"
    )
}

/// Waits until the SIPp peer has received the ACK of its INVITE with `cseq`.
fn acked(peer: &SippBg, cseq: u32) {
    let want = format!("{cseq} ACK");
    peer.wait_received(&format!("ACK {cseq}"), WAIT, |m| {
        cseq_method(m) == "ACK" && header(m, "CSeq").is_some_and(|c| c.trim() == want)
    });
}

/// A recorded call, wrapped up as "Sold".
struct Done {
    cb: CallbackLab,
    id: String,
    call: String,
    /// The recording's file name.
    file: String,
    /// When the stored history says the contact answered, the hold began
    /// and ended, and the call ended (the call's figures come from the
    /// same events at the same instants).
    answered: Timestamp,
    held: Timestamp,
    retrieved: Timestamp,
    ended: Timestamp,
}

fn ms(from: Timestamp, to: Timestamp) -> i64 {
    to.duration_since(from).as_millis() as i64
}

impl Done {
    fn hold_seconds(&self) -> i64 {
        ms(self.held, self.retrieved) / 1000
    }
    fn talk_seconds(&self) -> i64 {
        (ms(self.answered, self.ended) - ms(self.held, self.retrieved)) / 1000
    }
}

fn time(v: &Value) -> Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// Create, accept, call, record, hold, retrieve, end, done with "Sold".
fn recorded_call_done(extra_toml: String) -> Done {
    let mut cb = CallbackLab::start(CallbackConfig {
        extra_toml,
        ..CallbackConfig::default()
    });
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create_accepted(
        "1001",
        r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#,
    );
    cb.act_ok("1001", &id, "call", None);
    cb.wait_state(&id, "connected");
    let call = cb.get(&id)["callId"].as_str().expect("call id").to_string();
    cb.lab.wait("call-bridged", &[("call", &call)]);
    acked(&contact, 1);

    cb.act_ok("1001", &id, "start-recording", None);
    let started = cb.lab.wait("recording-started", &[("call", &call)]);
    let file = std::path::Path::new(started.get("path"))
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a recording file name")
        .to_string();
    cb.act_ok("1001", &id, "hold", None);
    let held = cb.wait_state(&id, "on-hold");
    acked(&contact, 2);
    cb.act_ok("1001", &id, "retrieve", None);
    cb.wait_after(
        "interaction",
        &[("id", &id), ("state", "connected")],
        seq(&held),
    );
    acked(&contact, 3);
    cb.act_ok("1001", &id, "end-call", None);
    cb.wait_after(
        "interaction",
        &[("id", &id), ("state", "ready-to-call")],
        seq(&held),
    );
    cb.lab.wait("call-ended", &[("call", &call)]);
    cb.wait_agent("1001", "working");
    let done = cb.act_ok("1001", &id, "done", Some(r#"{"disposition":"Sold"}"#));
    assert_eq!(done["state"], "done", "{done}");
    agent.finish(&mut cb.lab.sw);
    contact.finish(&mut cb.lab.sw);

    let moves = history_of(&cb.get(&id), "state-changed");
    let at = |to: &str, nth: usize| {
        time(
            &moves
                .iter()
                .filter(|h| h["to"] == to)
                .nth(nth)
                .unwrap_or_else(|| panic!("no move #{nth} to {to}: {moves:?}"))["at"],
        )
    };
    Done {
        answered: at("connected", 0),
        held: at("on-hold", 0),
        retrieved: at("connected", 1),
        ended: at("ready-to-call", 1),
        cb,
        id,
        call,
        file,
    }
}

/// `GET path` with one byte range: 206 with the WAV's first 12 bytes.
fn assert_range_served(cb: &CallbackLab, path: &str) {
    let r = http::request_with(
        cb.lab.http(),
        "GET",
        path,
        None,
        &[("X-API-Key", http::TEST_API_KEY), ("Range", "bytes=0-11")],
    );
    assert_eq!(r.status, 206, "{}\n{}", r.head, r.body);
    assert_eq!(r.header("content-type"), Some("audio/wav"), "{}", r.head);
    let range = r.header("content-range").unwrap_or("");
    assert!(range.starts_with("bytes 0-11/"), "{}", r.head);
    assert!(
        r.body.starts_with("RIFF") && r.body.ends_with("WAVE"),
        "{:?}",
        r.body
    );
    // The API key guards it like every other route.
    let anonymous = http::request_with(cb.lab.http(), "GET", path, None, &[]);
    assert_eq!(anonymous.status, 401);
}

#[test]
fn a_wrapped_up_call_keeps_its_figures_and_its_recording_is_served() {
    let d = recorded_call_done(String::new());
    let got = d.cb.get(&d.id);
    let calls = got["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 1, "{got}");
    let c = &calls[0];
    assert_eq!(c["callId"], d.call.as_str(), "{c}");
    assert_eq!(c["agent"], "1001", "{c}");
    assert_eq!(c["number"], "+33612345678", "{c}");
    assert_eq!(c["recording"], d.file.as_str(), "{c}");
    assert_eq!(time(&c["answeredAt"]), d.answered, "{c}");
    assert_eq!(time(&c["endedAt"]), d.ended, "{c}");
    assert_eq!(c["holdMs"], ms(d.held, d.retrieved), "{c}");
    assert_eq!(c["endedBy"], "agent", "the agent's end-call: {c}");
    assert_eq!(c["reported"], true, "wrapped up: {c}");
    assert_range_served(&d.cb, &format!("/v1/recordings/{}", d.file));
}

#[test]
fn the_end_call_event_reaches_the_wfm_endpoint_after_the_wrap_up() {
    let wfm = Receiver::start(Reply::status(204));
    let d = recorded_call_done(notify_toml(&wfm.url("/wfm/calls")));
    let got = wfm.next(WAIT);
    assert_eq!(
        (got.method.as_str(), got.uri.as_str()),
        ("POST", "/wfm/calls")
    );
    assert_eq!(got.header("x-switchback-event-type"), Some("end-call"));
    let e: Value = got.json();
    assert_eq!(
        got.header("x-switchback-event-id"),
        e["eventId"].as_str(),
        "{e}"
    );
    assert_eq!(e["eventType"], "end-call", "{e}");
    assert!(e["eventId"].as_str().is_some_and(|s| !s.is_empty()), "{e}");
    assert_eq!(e["agentId"], "1001", "{e}");
    assert_eq!(e["interactionId"], d.id.as_str(), "{e}");
    assert_eq!(e["callId"], d.call.as_str(), "{e}");
    assert_eq!(e["queueId"], "support", "{e}");
    assert_eq!(e["contactNumber"], "+33612345678", "{e}");
    assert_eq!(e["disposition"], "Sold", "{e}");
    assert_eq!(time(&e["answeredAt"]), d.answered, "{e}");
    assert_eq!(time(&e["endedAt"]), d.ended, "{e}");
    assert_eq!(e["holdSeconds"], d.hold_seconds(), "{e}");
    assert_eq!(e["talkSeconds"], d.talk_seconds(), "{e}");
    assert_eq!(
        (&e["endedBy"], &e["cause"]),
        (&"agent".into(), &"hangup".into()),
        "{e}"
    );
    let url = e["recordingUrl"].as_str().expect("recordingUrl");
    let path = url
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("{url} is not under {PUBLIC_URL}"));
    assert_eq!(path, format!("/v1/recordings/{}", d.file));
    assert_range_served(&d.cb, path);
}

/// A contact the switch has no media ports for (the trunk profile's range
/// exhausted: both of its pairs held by another socket): the agent's
/// answered leg is hung up, and the call stands on the interaction's record,
/// and in its end-call event, ended by the switch with its cause.
#[test]
fn a_call_that_ran_out_of_media_ports_is_recorded_with_its_cause() {
    let wfm = Receiver::start(Reply::status(204));
    let mut cfg = CallbackConfig {
        extra_toml: notify_toml(&wfm.url("/wfm/calls")),
        ..CallbackConfig::default()
    };
    let first = cfg.calls.external_rtp.0;
    assert!(first.is_multiple_of(2), "an RTP range starts even: {first}");
    let held: Vec<std::net::UdpSocket> = [first, first + 2]
        .iter()
        .map(|p| std::net::UdpSocket::bind(("127.0.0.1", *p)).expect("hold a media port"))
        .collect();
    cfg.calls.external_rtp = (first, first + 3);
    let mut cb = CallbackLab::start(cfg);
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    cb.login("1001");
    let id = cb.create_accepted(
        "1001",
        r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#,
    );
    cb.act_ok("1001", &id, "call", None);
    let establishing = cb.wait_state(&id, "establishing");
    cb.wait_after(
        "interaction",
        &[("id", &id), ("state", "ready-to-call")],
        seq(&establishing),
    );
    let call = cb.get(&id)["calls"][0]["callId"]
        .as_str()
        .expect("the call on the record")
        .to_string();
    let ended = cb.lab.wait("call-ended", &[("call", &call)]);
    assert_eq!(
        (ended.get("by"), ended.get("cause")),
        ("switch", "media-ports-exhausted"),
        "{}",
        ended.line
    );
    agent.finish(&mut cb.lab.sw); // answered, then the switch's BYE

    let got = cb.get(&id);
    let c = &got["calls"][0];
    assert_eq!(
        (&c["endedBy"], &c["cause"], &c["answeredAt"]),
        (
            &"switch".into(),
            &"media-ports-exhausted".into(),
            &Value::Null
        ),
        "{got}"
    );
    cb.wait_agent("1001", "working");
    cb.act_ok("1001", &id, "done", None);
    let e: Value = wfm.next(WAIT).json();
    assert_eq!(e["eventType"], "end-call", "{e}");
    assert_eq!(e["callId"], call.as_str(), "{e}");
    assert_eq!(
        (&e["endedBy"], &e["cause"], &e["answeredAt"]),
        (
            &"switch".into(),
            &"media-ports-exhausted".into(),
            &Value::Null
        ),
        "{e}"
    );
    drop(held);
}
