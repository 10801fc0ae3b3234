//! Web-callback interactions end to end: the real binary, its SQLite
//! store, SIPp as the agent's phone and as the trunk's far end (the
//! contact), the desktop actions over HTTP, states read from the switch's
//! `event interaction ...` lines and the stored history.

mod common;

use common::callbacks::{seq, CallbackConfig, CallbackLab, WAIT};
use common::sippbg::{cseq_method, header, Sipp, SippBg};
use common::{http, Event};

/// Waits until the SIPp peer has received the ACK of its INVITE with `cseq`.
fn acked(peer: &SippBg, cseq: u32) {
    let want = format!("{cseq} ACK");
    peer.wait_received(&format!("ACK {cseq}"), WAIT, |m| {
        cseq_method(m) == "ACK" && header(m, "CSeq").is_some_and(|c| c.trim() == want)
    });
}

/// Create, offer, accept, call (Establishing), the contact answers
/// (Connected), hold and retrieve, end, Done with a disposition; the
/// stored history holds every state in order.
#[test]
fn the_whole_lifecycle_end_to_end() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create(
        r#"{"queueId":"support","callbackNumbers":["+33612345678"],"callbackUserName":"Jane","data":{"orderId":"42"}}"#,
    );
    assert_eq!(cb.wait_offer(&id), "1001");
    cb.accept("1001", &id);
    cb.act_ok("1001", &id, "call", None);
    cb.wait_state(&id, "establishing");
    cb.wait_state(&id, "connected");
    cb.wait_agent("1001", "engaged");
    let call = cb.get(&id)["callId"].as_str().expect("call id").to_string();
    // The contact's leg went through the trunk to the number asked for.
    cb.lab
        .wait("call-started", &[("call", &call), ("interaction", &id)]);

    // Each re-INVITE is let finish (its ACK seen by the contact) before the
    // next request: SIPp cannot take a BYE or a second INVITE meanwhile.
    cb.act_ok("1001", &id, "hold", None);
    cb.wait_state(&id, "on-hold");
    acked(&contact, 2);
    cb.act_ok("1001", &id, "retrieve", None);
    cb.wait_state(&id, "connected");
    acked(&contact, 3);
    cb.act_ok("1001", &id, "end-call", None);
    cb.wait_state(&id, "ready-to-call");
    cb.lab.wait("call-ended", &[("call", &call)]);
    cb.wait_agent("1001", "working");
    let done = cb.act_ok("1001", &id, "done", Some(r#"{"disposition":"Sold"}"#));
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["disposition"], "Sold", "{done}");
    assert_eq!(done["interactionQueue"], "wcb-complete", "{done}");
    cb.wait_agent("1001", "ready");

    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
            "on-hold",
            "connected",
            "ready-to-call",
            "done"
        ]
    );
    let got = cb.get(&id);
    let history = got["history"].as_array().unwrap();
    let attempt = history
        .iter()
        .find(|h| h["type"] == "attempt")
        .expect("attempt");
    assert_eq!(attempt["number"], "+33612345678", "{attempt}");
    assert_eq!(attempt["agent"], "1001", "{attempt}");
    assert!(history
        .iter()
        .any(|h| h["type"] == "disposition" && h["code"] == "Sold"));
    let inv = &contact.finish(&mut cb.lab.sw).received("INVITE ")[0];
    assert!(inv.starts_with("INVITE sip:33612345678@"), "{inv}");
    agent.finish(&mut cb.lab.sw);
}

/// The request's `callerId` and `callerIdName` are the contact leg's
/// caller: its From carries the number and the name as display name.
#[test]
fn caller_id_name_is_the_contact_legs_display_name() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create(
        r#"{"queueId":"support","callbackNumbers":["+33612345678"],"callerId":"+15550100","callerIdName":"Acme Support"}"#,
    );
    assert_eq!(cb.wait_offer(&id), "1001");
    cb.accept("1001", &id);
    cb.act_ok("1001", &id, "call", None);
    cb.wait_state(&id, "connected");
    let call = cb.get(&id)["callId"].as_str().expect("call id").to_string();
    cb.act_ok("1001", &id, "end-call", None);
    cb.lab.wait("call-ended", &[("call", &call)]);
    let inv = &contact.finish(&mut cb.lab.sw).received("INVITE ")[0];
    let from = header(inv, "From").unwrap_or_else(|| panic!("no From: {inv}"));
    assert!(
        from.trim_start()
            .starts_with("\"Acme Support\" <sip:+15550100@"),
        "{from}"
    );
    // The agent's phone is not given the contact's caller name.
    let a_inv = &agent.finish(&mut cb.lab.sw).received("INVITE ")[0];
    let a_from = header(a_inv, "From").unwrap_or_default();
    assert!(!a_from.contains("Acme Support"), "{a_from}");
}

// ---- retries, failures, reschedule and transfer (real SIP calls) ----

/// Waits for the interaction to pass through `states` in this order (each
/// after the previous, the first after `after`); returns their events.
fn wait_states(cb: &mut CallbackLab, id: &str, after: u64, states: &[&str]) -> Vec<Event> {
    let mut at = after;
    states
        .iter()
        .map(|state| {
            let e = cb.wait_after("interaction", &[("id", id), ("state", state)], at);
            at = seq(&e);
            e
        })
        .collect()
}

/// The agent's next state change to `state` after desktop event `after`.
fn wait_agent_after(cb: &mut CallbackLab, agent: &str, state: &str, after: u64) -> Event {
    cb.wait_after("agent-state", &[("agent", agent), ("state", state)], after)
}

/// The whole call placed without clicks (auto-answer, auto-dial).
const AUTO: &str = r#"{"webcallback.auto-answer": true, "webcallback.auto-dial": true}"#;

fn auto_request(number: &str) -> String {
    format!(
        r#"{{"queueId":"support","callbackNumbers":["{number}"],"routingData":{{"options":{AUTO}}}}}"#
    )
}

/// A SIPp phone that takes `n` calls in a row (this `-m` comes after
/// `Sipp`'s own `-m 1`, and SIPp keeps the last).
fn calls(n: u32) -> impl FnOnce(Sipp) -> Sipp {
    move |s| s.arg("-m").arg(&n.to_string())
}

/// Auto-dial: the contact is busy, the queue's policy retries it after
/// `retry_secs` (Scheduled, then due, offered and dialled again by
/// itself), and the second attempt connects.
#[test]
fn busy_then_retry() {
    let mut cb = CallbackLab::start(CallbackConfig {
        // Room for the busy gateway to exit and the answering one to bind.
        retry_secs: 3,
        ..CallbackConfig::default()
    });
    let agent = cb.lab.phone("1001", "agent_autoanswer", calls(2));
    let busy = cb.lab.gateway("phone_busy", |s| s);
    cb.login("1001");
    let id = cb.create(&auto_request("+33612345678"));
    let first = wait_states(
        &mut cb,
        &id,
        0,
        &[
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "scheduled",
        ],
    );
    let scheduled = &first[4];
    assert!(
        scheduled.get("reason").contains("retry"),
        "{}",
        scheduled.line
    );
    // The agent is free while the contact waits for the retry.
    wait_agent_after(&mut cb, "1001", "ready", seq(&first[3]));
    assert_eq!(cb.get(&id)["attempts"], 1);
    busy.finish(&mut cb.lab.sw);
    let contact = cb.lab.gateway("phone_answer", |s| s);

    let second = wait_states(
        &mut cb,
        &id,
        seq(scheduled),
        &[
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
        ],
    );
    assert_eq!(second[1].get("agent"), "1001", "{}", second[1].line);
    wait_agent_after(&mut cb, "1001", "engaged", seq(&second[2]));
    acked(&contact, 1);
    cb.act_ok("1001", &id, "end-call", None);
    wait_states(&mut cb, &id, seq(&second[4]), &["ready-to-call"]);
    cb.act_ok("1001", &id, "done", None);

    let got = cb.get(&id);
    assert_eq!(got["attempts"], 2, "{got}");
    assert_eq!(got["state"], "done", "{got}");
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "scheduled",
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
            "ready-to-call",
            "done"
        ]
    );
    let attempts = cb.history(&id, "attempt");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["attempt"], 1, "{attempts:?}");
    assert_eq!(attempts[1]["attempt"], 2, "{attempts:?}");
    assert_ne!(attempts[0]["call"], attempts[1]["call"], "{attempts:?}");
    let legs = cb.history(&id, "leg");
    assert!(
        legs.iter().any(|l| l["leg"] == "b" && l["status"] == 486),
        "{legs:?}"
    );
    let inv = &contact.finish(&mut cb.lab.sw).received("INVITE ")[0];
    assert!(inv.starts_with("INVITE sip:33612345678@"), "{inv}");
    let a = agent.finish(&mut cb.lab.sw);
    assert_eq!(a.received("INVITE ").len(), 2, "two calls to the agent");
}

/// Auto-dial with every attempt busy: after `max_attempts` the interaction
/// ends as not reached and the agent is free again.
#[test]
fn busy_until_the_attempts_run_out_is_not_reached() {
    let mut cb = CallbackLab::start(CallbackConfig {
        max_attempts: 2,
        ..CallbackConfig::default()
    });
    let agent = cb.lab.phone("1001", "agent_autoanswer", calls(2));
    let busy = cb.lab.gateway("phone_busy", calls(2));
    cb.login("1001");
    let id = cb.create(&auto_request("+33612345678"));
    let seen = wait_states(
        &mut cb,
        &id,
        0,
        &[
            "establishing",
            "scheduled",
            "queued",
            "establishing",
            "not-reached",
        ],
    );
    assert_eq!(
        seen[4].get("reason"),
        "attempts exhausted",
        "{}",
        seen[4].line
    );
    wait_agent_after(&mut cb, "1001", "ready", seq(&seen[3]));
    let got = cb.get(&id);
    assert_eq!(got["state"], "not-reached", "{got}");
    assert_eq!(got["attempts"], 2, "{got}");
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "scheduled",
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "not-reached"
        ]
    );
    assert_eq!(cb.history(&id, "attempt").len(), 2);
    let busy_legs = cb
        .history(&id, "leg")
        .into_iter()
        .filter(|l| l["leg"] == "b" && l["status"] == 486)
        .count();
    assert_eq!(busy_legs, 2);
    assert_eq!(busy.finish(&mut cb.lab.sw).received("INVITE ").len(), 2);
    agent.finish(&mut cb.lab.sw);
}

/// Without auto-dial a busy contact sends the interaction back to Ready to
/// Call with its agent, who is out of the call (after-call work) and can
/// call again.
#[test]
fn busy_without_auto_dial_returns_to_ready_to_call() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", calls(2));
    let busy = cb.lab.gateway("phone_busy", |s| s);
    cb.login("1001");
    let id = cb.create_accepted(
        "1001",
        r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#,
    );
    cb.act_ok("1001", &id, "call", None);
    let establishing = cb.wait_state(&id, "establishing");
    let engaged = wait_agent_after(&mut cb, "1001", "engaged", 0);
    let back = wait_states(&mut cb, &id, seq(&establishing), &["ready-to-call"]);
    assert_eq!(
        back[0].get("reason"),
        "contact not reached",
        "{}",
        back[0].line
    );
    assert_eq!(back[0].get("agent"), "1001", "{}", back[0].line);
    // The call's end puts the agent in after-call work, still owning it.
    let working = wait_agent_after(&mut cb, "1001", "working", seq(&engaged));
    let got = cb.get(&id);
    assert_eq!(got["state"], "ready-to-call", "{got}");
    assert_eq!(got["agent"], "1001", "{got}");
    assert_eq!(got["attempts"], 1, "{got}");
    assert!(got["callId"].is_null(), "{got}");
    let view = cb.api("GET", "/v1/agents/1001", None).json();
    assert_eq!(view["state"], "working", "{view}");
    busy.finish(&mut cb.lab.sw);

    // The agent calls again; this time the contact answers.
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.act_ok("1001", &id, "call", None);
    let again = wait_states(&mut cb, &id, seq(&working), &["establishing", "connected"]);
    wait_agent_after(&mut cb, "1001", "engaged", seq(&working));
    acked(&contact, 1);
    cb.act_ok("1001", &id, "end-call", None);
    wait_states(&mut cb, &id, seq(&again[1]), &["ready-to-call"]);
    cb.act_ok("1001", &id, "done", None);
    assert_eq!(cb.get(&id)["attempts"], 2);
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "ready-to-call",
            "establishing",
            "connected",
            "ready-to-call",
            "done"
        ]
    );
    assert_eq!(cb.history(&id, "attempt").len(), 2);
    let legs = cb.history(&id, "leg");
    assert!(
        legs.iter().any(|l| l["leg"] == "b" && l["status"] == 486),
        "{legs:?}"
    );
    contact.finish(&mut cb.lab.sw);
    agent.finish(&mut cb.lab.sw);
}

/// The agent reschedules an accepted callback on a new number: it waits
/// in the reschedule queue, falls due, is offered again and the call goes
/// to the new number.
#[test]
fn reschedule_on_a_new_number() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create(r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#);
    assert_eq!(cb.wait_offer(&id), "1001");
    cb.act_ok("1001", &id, "accept", None);
    let accepted = cb.wait_state(&id, "ready-to-call");
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(3);
    let body = format!(r#"{{"callbackScheduledTime":"{at}","callbackNumber":"+33698765432"}}"#);
    let moved = cb.act_ok("1001", &id, "reschedule", Some(&body));
    assert_eq!(moved["state"], "rescheduled", "{moved}");
    assert_eq!(moved["interactionQueue"], "wcb-reschedule", "{moved}");
    let rescheduled = wait_states(&mut cb, &id, seq(&accepted), &["rescheduled"]);
    assert_eq!(
        rescheduled[0].get("queue"),
        "wcb-reschedule",
        "{}",
        rescheduled[0].line
    );
    // Due: back in its queue, offered again.
    let due = wait_states(&mut cb, &id, seq(&rescheduled[0]), &["queued", "offered"]);
    assert!(
        jiff::Timestamp::now() >= at,
        "queued before the time asked for"
    );
    assert_eq!(due[0].get("queue"), "support", "{}", due[0].line);
    assert_eq!(due[1].get("agent"), "1001", "{}", due[1].line);
    cb.act_ok("1001", &id, "accept", None);
    let ready = wait_states(&mut cb, &id, seq(&due[1]), &["ready-to-call"]);
    cb.act_ok("1001", &id, "call", None);
    let connected = wait_states(&mut cb, &id, seq(&ready[0]), &["establishing", "connected"]);
    acked(&contact, 1);
    cb.act_ok("1001", &id, "end-call", None);
    wait_states(&mut cb, &id, seq(&connected[1]), &["ready-to-call"]);
    cb.act_ok("1001", &id, "done", None);

    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "rescheduled",
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
            "ready-to-call",
            "done"
        ]
    );
    let got = cb.get(&id);
    assert_eq!(got["callbackNumbers"][0], "+33698765432", "{got}");
    assert_eq!(got["attempts"], 1, "{got}");
    let r = &cb.history(&id, "rescheduled")[0];
    assert_eq!(r["number"], "+33698765432", "{r}");
    assert_eq!(r["by"], "agent 1001", "{r}");
    let when: jiff::Timestamp = r["callbackScheduledTime"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("the new time in {r}"));
    assert_eq!(when.as_second(), at.as_second(), "{r}");
    let attempt = &cb.history(&id, "attempt")[0];
    assert_eq!(attempt["number"], "+33698765432", "{attempt}");
    let inv = &contact.finish(&mut cb.lab.sw).received("INVITE ")[0];
    assert!(inv.starts_with("INVITE sip:33698765432@"), "{inv}");
    agent.finish(&mut cb.lab.sw);
}

/// The agent transfers the connected contact to 1002: the voice call goes
/// on without the agent, the interaction is parked and the agent is free.
#[test]
fn park_on_transfer() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "agent_autoanswer", |s| s);
    let target = cb.lab.phone("1002", "phone_answer", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create_accepted(
        "1001",
        r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#,
    );
    cb.act_ok("1001", &id, "call", None);
    let connected = cb.wait_state(&id, "connected");
    let engaged = cb.wait_agent("1001", "engaged");
    let call = cb.get(&id)["callId"].as_str().expect("call id").to_string();
    acked(&contact, 1);

    cb.act_ok("1001", &id, "transfer", Some(r#"{"to":"1002"}"#));
    let tr = cb
        .lab
        .wait("call-transferred", &[("call", &call), ("by", "a")]);
    assert_eq!(tr.get("to"), "1002", "{}", tr.line);
    let parked = wait_states(&mut cb, &id, seq(&connected), &["parked"]);
    assert_eq!(parked[0].get("queue"), "wcb-park", "{}", parked[0].line);
    wait_agent_after(&mut cb, "1001", "ready", seq(&engaged));
    // The agent's phone was hung up; the contact talks to 1002.
    let a = agent.finish(&mut cb.lab.sw);
    assert_eq!(a.received("BYE ").len(), 1, "{}", a.messages);
    let s = cb.lab.summary(&call);
    assert_eq!(s["legs"].as_array().map(Vec::len), Some(2), "{s}");

    let r = http::delete(cb.lab.http(), &format!("/v1/calls/{call}"));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    cb.lab.wait("call-ended", &[("call", &call)]);
    let t = target.finish(&mut cb.lab.sw);
    assert!(
        t.received("INVITE ")[0].starts_with("INVITE sip:1002@"),
        "{}",
        t.messages
    );
    assert_eq!(t.received("BYE ").len(), 1, "{}", t.messages);
    let c = contact.finish(&mut cb.lab.sw);
    assert_eq!(c.received("BYE ").len(), 1, "{}", c.messages);

    let got = cb.get(&id);
    assert_eq!(got["state"], "parked", "{got}");
    assert_eq!(got["interactionQueue"], "wcb-park", "{got}");
    assert!(got["agent"].is_null(), "{got}");
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "connected",
            "parked"
        ]
    );
    let controls = cb.history(&id, "control");
    assert!(
        controls
            .iter()
            .any(|c| c["action"] == "transfer" && c["detail"] == "1002"),
        "{controls:?}"
    );
    let view = cb.api("GET", "/v1/agents/1001", None).json();
    assert_eq!(view["state"], "ready", "{view}");
}

/// The agent's own phone refuses the call: the contact was never dialled,
/// so the attempt does not count and the interaction is back in Ready to
/// Call with its agent.
#[test]
fn agent_phone_that_does_not_answer() {
    let mut cb = CallbackLab::start(CallbackConfig::default());
    let agent = cb.lab.phone("1001", "phone_busy", |s| s);
    let contact = cb.lab.gateway("phone_answer", |s| s);
    cb.login("1001");
    let id = cb.create_accepted(
        "1001",
        r#"{"queueId":"support","callbackNumbers":["+33612345678"]}"#,
    );
    cb.act_ok("1001", &id, "call", None);
    let establishing = cb.wait_state(&id, "establishing");
    let engaged = wait_agent_after(&mut cb, "1001", "engaged", 0);
    let back = wait_states(&mut cb, &id, seq(&establishing), &["ready-to-call"]);
    assert_eq!(
        back[0].get("reason"),
        "agent phone did not answer",
        "{}",
        back[0].line
    );
    wait_agent_after(&mut cb, "1001", "working", seq(&engaged));
    let got = cb.get(&id);
    assert_eq!(got["state"], "ready-to-call", "{got}");
    assert_eq!(got["attempts"], 0, "{got}");
    assert_eq!(got["agent"], "1001", "{got}");
    assert!(got["callId"].is_null(), "{got}");
    let legs = cb.history(&id, "leg");
    assert!(
        legs.iter().any(|l| l["leg"] == "a" && l["status"] == 486),
        "{legs:?}"
    );
    assert!(legs.iter().all(|l| l["leg"] != "b"), "{legs:?}");
    assert_eq!(cb.history(&id, "attempt").len(), 1);
    cb.act_ok("1001", &id, "done", None);
    assert_eq!(
        cb.history_states(&id),
        [
            "queued",
            "offered",
            "ready-to-call",
            "establishing",
            "ready-to-call",
            "done"
        ]
    );
    agent.finish(&mut cb.lab.sw);
    // The contact was never called.
    let untouched = contact.trace();
    assert!(untouched.is_empty(), "{untouched:?}");
}
