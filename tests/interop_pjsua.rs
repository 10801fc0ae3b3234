//! PJSIP 2.15 (pjsua2 from PyPI) phones against the real binary on its
//! shipped configuration: registration, calls between phones through the
//! B2BUA with audio checked by frequency, DTMF, hold, the failure cases,
//! blind and attended transfer, and one web callback end to end.
//!
//! Each phone is its own Python process (`tests/interop/pjsua_agent.py`)
//! playing its own tone; what a phone hears is recorded and analysed
//! (Goertzel): the far phone's tone must dominate, 20 dB above its own.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::time::Duration;

use serde_json::{json, Value};

use common::{Event, Switch, EVENT};
use interop::pjsua::{ev, uri, Phone};
use interop::shipped::{api_ok, internal, state_history, Shipped, CALLED_AND_DONE, PASSWORD};

/// Each phone's tone, Hz: far apart, no one another's harmonic.
const TONE_1001: f64 = 500.0;
const TONE_1002: f64 = 700.0;
const TONE_1003: f64 = 900.0;
const TONE_1004: f64 = 1100.0;
const TONE_CONTACT: f64 = 1300.0;

/// Seconds of audio recorded for one direction's check.
const LISTEN: f64 = 1.5;

fn tone(user: &str) -> f64 {
    match user {
        "1001" => TONE_1001,
        "1002" => TONE_1002,
        "1003" => TONE_1003,
        "1004" => TONE_1004,
        _ => TONE_CONTACT,
    }
}

/// A pjsua2 phone registered as `user` (shipped password), once the switch
/// has the binding.
fn phone(sw: &mut Switch, user: &str) -> Phone {
    let mut p = Phone::start(user, tone(user));
    p.register_ok(user, PASSWORD, internal(sw));
    sw.await_event("registered", &[("user", user)], EVENT);
    p
}

/// `caller` calls `callee`'s number; the callee rings and answers. Returns
/// (caller's call id, callee's call id, the switch's call id).
fn connect(sw: &mut Switch, caller: &mut Phone, callee: &mut Phone) -> (i64, i64, String) {
    let target = uri(&callee.name, internal(sw));
    let a = caller.call(&target);
    let (b, inc) = callee.incoming();
    assert!(
        inc["request_uri"]
            .as_str()
            .unwrap_or("")
            .starts_with(&format!("INVITE sip:{}@", callee.name)),
        "{inc}"
    );
    caller.wait_state(a, "early");
    callee.answer(b, 200);
    caller.wait_state(a, "confirmed");
    callee.wait_state(b, "confirmed");
    let started = sw.await_event(
        "call-started",
        &[("from", &caller.name), ("to", &callee.name)],
        EVENT,
    );
    let call = started.get("call").to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    (a, b, call)
}

/// Both phones hear each other's tone on their calls.
fn audio_both_ways(x: &mut Phone, xc: i64, y: &mut Phone, yc: i64, when: &str) {
    let (tx, ty) = (x.tone, y.tone);
    x.assert_hears(
        xc,
        ty,
        LISTEN,
        &format!("{when}: {} hears {}", x.name, y.name),
    );
    y.assert_hears(
        yc,
        tx,
        LISTEN,
        &format!("{when}: {} hears {}", y.name, x.name),
    );
}

fn code(e: &Value) -> i64 {
    e["code"].as_i64().unwrap_or(-1)
}

// ------------------------------------------------------------ registration

/// Register, refresh, unregister; the switch's bindings follow, and a call to
/// the unregistered user is refused (480).
#[test]
fn register_reregister_unregister() {
    let mut sw = Shipped::new().start();
    let mut p = phone(&mut sw, "1001");

    let m = p.mark();
    p.cmd("reregister", Value::Null);
    let again = p.wait_since(m, "the refresh's reg_state", Duration::from_secs(15), |e| {
        ev(e) == "reg_state"
    });
    assert_eq!(code(&again), 200, "{again}");
    assert_eq!(again["active"], json!(true), "{again}");
    // Two `registered` lines: the first registration and the refresh.
    sw.wait_event("registered", &[("user", "1001")], EVENT);

    let m = p.mark();
    p.cmd("unregister", Value::Null);
    let gone = p.wait_since(
        m,
        "the unregistration's reg_state",
        Duration::from_secs(15),
        |e| ev(e) == "reg_state",
    );
    assert_eq!(code(&gone), 200, "{gone}");
    assert_eq!(gone["active"], json!(false), "{gone}");
    sw.await_event("unregistered", &[("user", "1001")], EVENT);

    // Nobody is there any more: 480 to a caller.
    let mut caller = phone(&mut sw, "1002");
    let c = caller.call(&uri("1001", internal(&sw)));
    let end = caller.wait_state(c, "disconnected");
    assert_eq!(code(&end), 480, "{end}");
}

/// Registers 1003 with the registrar offering `algorithms` (one
/// WWW-Authenticate each, in this order); returns the Authorization lines
/// PJSIP sent (read from its log), after checking the 401 carried them all.
fn register_offered(algorithms: &str) -> Vec<String> {
    let mut sw = Shipped::new()
        .set("internal.toml", "algorithms", algorithms)
        .start();
    let p = phone(&mut sw, "1003");
    let log = std::fs::read_to_string(p.log_path()).expect("PJSIP log");
    let challenges: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("WWW-Authenticate:"))
        .collect();
    for alg in ["MD5", "SHA-256"] {
        assert_eq!(
            challenges
                .iter()
                .any(|l| l.contains(&format!("algorithm={alg},"))),
            algorithms.contains(&format!("\"{alg}\"")),
            "the 401 should carry exactly {algorithms}: {challenges:?}"
        );
    }
    let answers: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("Authorization:"))
        .map(str::to_string)
        .collect();
    assert!(!answers.is_empty(), "no Authorization sent");
    answers
}

/// Two challenges, MD5 first (the order `sip-profiles/internal.toml` ships
/// with before the MD5-only default): PJSIP 2.15 answers the first, MD5,
/// with one Authorization, and is registered.
#[test]
fn registers_when_offered_md5_then_sha256() {
    let answers = register_offered(r#"["MD5", "SHA-256"]"#);
    assert!(
        answers.iter().all(|a| a.contains("algorithm=MD5,")),
        "{answers:?}"
    );
}

/// Two challenges, SHA-256 first: PJSIP 2.15 answers SHA-256 and is registered.
#[test]
fn registers_when_offered_sha256_then_md5() {
    let answers = register_offered(r#"["SHA-256", "MD5"]"#);
    assert!(
        answers.iter().all(|a| a.contains("algorithm=SHA-256,")),
        "{answers:?}"
    );
}

/// SHA-256 alone (RFC 8760): PJSIP 2.15 registers.
#[test]
fn registers_when_offered_sha256_only() {
    let answers = register_offered(r#"["SHA-256"]"#);
    assert!(
        answers.iter().all(|a| a.contains("algorithm=SHA-256,")),
        "{answers:?}"
    );
}

/// A wrong password: 401/403 to the phone, no binding (a call to the user
/// gets 480), `auth-failed` on the switch.
#[test]
fn wrong_password_gets_no_binding() {
    let mut sw = Shipped::new().start();
    let mut bad = Phone::start("1004-wrong", TONE_1004);
    let r = bad.register("1004", "wrong-password", internal(&sw));
    assert!(
        [401, 403].contains(&code(&r)),
        "a wrong password must be refused with 401 or 403: {r}"
    );
    assert_eq!(r["active"], json!(false), "{r}");
    sw.await_event("auth-failed", &[("user", "1004")], EVENT);
    assert!(!sw.has_event("registered", &[("user", "1004")]));

    // Another user behind the same address registers (the guard counts
    // failures per user first), and one wrong login cost one failure: the
    // 403 does not invite the phone to try its wrong password again.
    let mut caller = phone(&mut sw, "1001");
    let failures = sw
        .events("auth-failed")
        .into_iter()
        .filter(|e| e.get("user") == "1004")
        .count();
    assert_eq!(failures, 1, "one login, one failure:\n{}", sw.report());
    let c = caller.call(&uri("1004", internal(&sw)));
    let end = caller.wait_state(c, "disconnected");
    assert_eq!(code(&end), 480, "1004 has no binding: {end}");
    // The phone with the wrong password was never rung.
    assert!(!bad.has(|e| ev(e) == "incoming_call"));
}

// ------------------------------------------------------ phone to phone

/// 1001 calls 1002 through the B2BUA: ringing, answer, audio both ways,
/// RFC 4733 digits both ways, hold and resume (audio back), 1002 hangs up
/// and both calls close.
#[test]
fn call_audio_dtmf_hold_resume_and_callee_hangs_up() {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let (ac, bc, call) = connect(&mut sw, &mut a, &mut b);
    audio_both_ways(&mut a, ac, &mut b, bc, "after answer");

    // RFC 4733 both ways, seen by the far phone.
    a.dtmf(ac, "5#");
    b.wait_dtmf(bc, "5");
    b.wait_dtmf(bc, "#");
    b.dtmf(bc, "9");
    a.wait_dtmf(ac, "9");
    sw.await_event("call-dtmf", &[("call", &call), ("digit", "5")], EVENT);

    // Hold from 1001: its own audio is on local hold, 1002 sees the far end
    // holding, the switch says so, and the call stays up.
    let (ma, mb) = (a.mark(), b.mark());
    a.hold(ac);
    a.wait_media_since(ma, ac, "local_hold");
    b.wait_media_since(mb, bc, "remote_hold");
    sw.await_event("call-held", &[("call", &call)], EVENT);
    let (ma, mb) = (a.mark(), b.mark());
    a.resume(ac);
    a.wait_media_since(ma, ac, "active");
    b.wait_media_since(mb, bc, "active");
    sw.await_event("call-retrieved", &[("call", &call)], EVENT);
    assert!(
        !a.has(|e| ev(e) == "call_state" && e["state"] == "disconnected")
            && !b.has(|e| ev(e) == "call_state" && e["state"] == "disconnected"),
        "hold ended the call"
    );
    audio_both_ways(&mut a, ac, &mut b, bc, "after resume");

    b.hangup(bc);
    b.wait_state(bc, "disconnected");
    a.wait_state(ac, "disconnected");
    sw.await_event("call-ended", &[("call", &call)], EVENT);
}

/// The caller hangs up an established call: both close.
#[test]
fn caller_hangs_up() {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let (ac, bc, call) = connect(&mut sw, &mut a, &mut b);
    a.hangup(ac);
    a.wait_state(ac, "disconnected");
    b.wait_state(bc, "disconnected");
    sw.await_event("call-ended", &[("call", &call)], EVENT);
}

/// The caller gives up while the callee rings: CANCEL reaches 1002 (487)
/// and the caller's call ends with 487.
#[test]
fn cancel_before_answer() {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let ac = a.call(&uri("1002", internal(&sw)));
    let (bc, _) = b.incoming();
    a.wait_state(ac, "early");
    a.hangup(ac);
    let end_b = b.wait_state(bc, "disconnected");
    assert_eq!(code(&end_b), 487, "{end_b}");
    let end_a = a.wait_state(ac, "disconnected");
    assert_eq!(code(&end_a), 487, "{end_a}");
}

/// The callee answers 486: the caller gets 486.
#[test]
fn busy() {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let ac = a.call(&uri("1002", internal(&sw)));
    let (bc, _) = b.incoming();
    b.answer(bc, 486);
    let end = a.wait_state(ac, "disconnected");
    assert_eq!(code(&end), 486, "{end}");
    b.wait_state(bc, "disconnected");
}

/// Nobody answers: the switch gives up after `ring_timeout_secs` (408 to the
/// caller, CANCEL to the callee).
#[test]
fn no_answer() {
    // The shipped 60 s ring timeout, shortened so the test takes seconds:
    // the behaviour is the same at any value.
    let mut sw = Shipped::new()
        .edit(
            "internal.toml",
            "ring_timeout_secs = 60",
            "ring_timeout_secs = 3",
        )
        .start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let ac = a.call(&uri("1002", internal(&sw)));
    let (bc, _) = b.incoming();
    let end = a.wait_state_for(ac, "disconnected", Duration::from_secs(15));
    assert_eq!(code(&end), 408, "{end}");
    let end_b = b.wait_state(bc, "disconnected");
    assert_eq!(code(&end_b), 487, "{end_b}");
}

// -------------------------------------------------------------- transfer

/// Blind transfer by REFER: 1001 calls 1002, 1002 transfers 1001 to 1003;
/// 1001 and 1003 talk, 1002's call is ended.
#[test]
fn blind_transfer() {
    blind_transfer_case(false);
}

/// The same, with 1002 holding 1001 before it transfers, as most desk
/// phones do: the switch must take 1001 off that hold once 1003 answers.
#[test]
fn blind_transfer_after_hold() {
    blind_transfer_case(true);
}

fn blind_transfer_case(hold_first: bool) {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let mut c = phone(&mut sw, "1003");
    let (ac, bc, call) = connect(&mut sw, &mut a, &mut b);
    if hold_first {
        let (ma, mb) = (a.mark(), b.mark());
        b.hold(bc);
        b.wait_media_since(mb, bc, "local_hold");
        a.wait_media_since(ma, ac, "remote_hold");
    }

    b.cmd(
        "xfer",
        json!({"call": bc, "uri": uri("1003", internal(&sw))}),
    );
    let (cc, _) = c.incoming();
    c.answer(cc, 200);
    c.wait_state(cc, "confirmed");
    let done = b.wait_for("the final transfer NOTIFY", Duration::from_secs(15), |e| {
        ev(e) == "xfer_status" && e["final"] == json!(true)
    });
    assert_eq!(code(&done), 200, "{done}");
    b.wait_state(bc, "disconnected");
    let tr = sw.await_event("call-transferred", &[("call", &call)], EVENT);
    assert_eq!(tr.get("kind"), "blind", "{}", tr.line);

    audio_both_ways(&mut a, ac, &mut c, cc, "after the blind transfer");
    assert!(!a.has(|e| ev(e) == "call_state" && e["state"] == "disconnected"));
    a.hangup(ac);
    c.wait_state(cc, "disconnected");
}

/// Attended transfer: 1001 calls 1002; 1002 calls 1003; 1002 transfers
/// with Replaces; 1001 and 1003 are bridged, both of 1002's calls closed.
#[test]
fn attended_transfer() {
    let mut sw = Shipped::new().start();
    let mut a = phone(&mut sw, "1001");
    let mut b = phone(&mut sw, "1002");
    let mut c = phone(&mut sw, "1003");
    let (ac, b1, call1) = connect(&mut sw, &mut a, &mut b);
    // 1002 holds the first call while it consults, as a phone does.
    let m = b.mark();
    b.hold(b1);
    b.wait_media_since(m, b1, "local_hold");
    let (b2, cc, _call2) = connect(&mut sw, &mut b, &mut c);

    b.cmd("xfer_replaces", json!({"call": b1, "dest": b2}));
    let done = b.wait_for("the final transfer NOTIFY", Duration::from_secs(15), |e| {
        ev(e) == "xfer_status" && e["final"] == json!(true)
    });
    assert_eq!(code(&done), 200, "{done}");
    b.wait_state(b1, "disconnected");
    b.wait_state(b2, "disconnected");
    let tr = sw.await_event("call-transferred", &[("kind", "attended")], EVENT);
    eprintln!("{}", tr.line);
    let _ = call1;

    // 1001 kept its call, 1003 kept its call; they now hear each other.
    assert!(!a.has(|e| ev(e) == "call_state" && e["state"] == "disconnected"));
    assert!(!c.has(|e| ev(e) == "call_state" && e["state"] == "disconnected"));
    audio_both_ways(&mut a, ac, &mut c, cc, "after the attended transfer");
    c.hangup(cc);
    a.wait_state(ac, "disconnected");
}

// ------------------------------------------------------------ web callback

/// One web callback end to end: agent 1001's pjsua2 phone auto-answers the
/// switch's call (Call-Info answer-after=0), the contact is another pjsua2
/// phone behind the trunk `local-trunk`; Establishing, Connected, audio both
/// ways, the contact hangs up, Done.
#[test]
fn web_callback_end_to_end() {
    let mut contact = Phone::start("contact", TONE_CONTACT);
    contact.listen_as("contact");
    let mut sw = Shipped::new().trunk(contact.addr()).start();
    let mut agent = phone(&mut sw, "1001");

    api_ok(&sw, "POST", "/v1/agents/1001/login", None);
    let created = api_ok(
        &sw,
        "POST",
        "/v1/callbacks",
        Some(
            r#"{"queueId":"support","callbackNumbers":["+33612345678"],"callbackUserName":"Jane"}"#,
        ),
    );
    let id = created["id"].as_str().expect("callback id").to_string();
    let offer = sw.await_event("offer", &[("id", &id)], EVENT);
    assert_eq!(offer.get("agent"), "1001", "{}", offer.line);
    api_ok(
        &sw,
        "POST",
        &format!("/v1/agents/1001/callbacks/{id}/accept"),
        Some("{}"),
    );
    let s = interaction(&mut sw, &id, "ready-to-call", 0);
    api_ok(
        &sw,
        "POST",
        &format!("/v1/agents/1001/callbacks/{id}/call"),
        Some("{}"),
    );
    let s = interaction(&mut sw, &id, "establishing", s);

    // The agent's phone answers by itself, as the header asks.
    let (ac, inc) = agent.incoming();
    let call_info = inc["call_info"].to_string();
    assert!(call_info.contains("answer-after=0"), "{inc}");
    agent.wait_for("auto-answer", Duration::from_secs(5), |e| {
        ev(e) == "auto_answered" && e["call"] == json!(ac)
    });
    agent.wait_state(ac, "confirmed");

    // Then the contact, through the trunk, dialled as the number without '+'.
    let (cc, cinc) = contact.incoming();
    assert!(
        cinc["request_uri"]
            .as_str()
            .unwrap_or("")
            .starts_with("INVITE sip:33612345678@"),
        "{cinc}"
    );
    contact.answer(cc, 200);
    contact.wait_state(cc, "confirmed");
    let s = interaction(&mut sw, &id, "connected", s);
    audio_both_ways(&mut agent, ac, &mut contact, cc, "callback connected");

    contact.hangup(cc);
    agent.wait_state(ac, "disconnected");
    let s = interaction(&mut sw, &id, "ready-to-call", s);
    let done = api_ok(
        &sw,
        "POST",
        &format!("/v1/agents/1001/callbacks/{id}/done"),
        Some(r#"{"disposition":"Reached"}"#),
    );
    assert_eq!(done["state"], "done", "{done}");
    interaction(&mut sw, &id, "done", s);

    let (got, states) = state_history(&sw, &id);
    assert_eq!(states, CALLED_AND_DONE, "{got}");
}

/// Waits for the interaction's desktop event `state` numbered after `after`
/// (states repeat: ready-to-call comes before the call and after it).
fn interaction(sw: &mut Switch, id: &str, state: &str, after: u64) -> u64 {
    let fits = |e: &Event| {
        e.name == "interaction" && e.get("id") == id && e.get("state") == state && seq(e) > after
    };
    if let Some(e) = sw.events("interaction").into_iter().find(|e| fits(e)) {
        return seq(&e);
    }
    let what = format!("interaction {id} {state} after seq {after}");
    let line = sw.wait_for(&what, EVENT, |l| Event::parse(l).is_some_and(|e| fits(&e)));
    seq(&Event::parse(&line).expect("a matched event"))
}

fn seq(e: &Event) -> u64 {
    e.get("seq").parse().unwrap_or(0)
}
