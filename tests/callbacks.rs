//! Web-callback interactions end to end: the real binary, its SQLite
//! store, SIPp as the agent's phone and as the trunk's far end (the
//! contact), the desktop actions over HTTP, states read from the switch's
//! `event interaction ...` lines and the stored history.

mod common;

use common::callbacks::{CallbackConfig, CallbackLab, WAIT};
use common::sippbg::{cseq_method, header, SippBg};

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
    cb.act_ok("1001", &id, "accept", None);
    cb.wait_state(&id, "ready-to-call");
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
