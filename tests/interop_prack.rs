//! RFC 3262 with a real client: two PJSIP 2.15 (pjsua2) phones whose accounts
//! require 100rel (`PJSUA_100REL_MANDATORY`, the agent's `--require-100rel`)
//! call each other through the switch on its shipped configuration. The caller
//! requires 100rel of the switch (its INVITE says `Require: 100rel`), so it
//! must get its ringing reliably and PRACK it; the callee, being called, sends
//! its 180 reliably, which the switch must PRACK. The call then connects and
//! each phone hears the other's tone.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use common::EVENT;
use interop::pjsua::{uri, Phone};
use interop::shipped::{udp_addr, Shipped, PASSWORD};

/// The SIP messages of a PJSIP log that start with `start` (the log prints
/// each message after a "TX"/"RX" line, up to the "--end msg--" marker).
fn logged(phone: &Phone, direction: &str, start: &str) -> Vec<String> {
    let log = std::fs::read_to_string(phone.log_path()).unwrap_or_default();
    let mut out = Vec::new();
    let mut lines = log.lines();
    while let Some(l) = lines.next() {
        if !(l.contains(direction) && l.contains("bytes")) {
            continue;
        }
        let msg: Vec<&str> = lines
            .by_ref()
            .take_while(|m| !m.contains("--end msg--"))
            .collect();
        if msg.first().is_some_and(|m| m.starts_with(start)) {
            out.push(msg.join("\n"));
        }
    }
    out
}

#[test]
fn pjsua_phones_requiring_100rel_call_each_other_through_the_switch() {
    let mut sw = Shipped::new().start();
    let internal = udp_addr(&sw, "internal");
    let mut a = Phone::start_with("1001", 500.0, &["--require-100rel"]);
    a.register_ok("1001", PASSWORD, internal);
    sw.await_event("registered", &[("user", "1001")], EVENT);
    let mut b = Phone::start_with("1002", 700.0, &["--require-100rel"]);
    b.register_ok("1002", PASSWORD, internal);
    sw.await_event("registered", &[("user", "1002")], EVENT);

    let ac = a.call(&uri("1002", internal));
    let (bc, _) = b.incoming();
    // The callee rang (its agent answers 180 by itself), reliably; the caller
    // reached the early state only through a reliable 18x it PRACKed.
    a.wait_state(ac, "early");
    b.answer(bc, 200);
    a.wait_state(ac, "confirmed");
    b.wait_state(bc, "confirmed");
    let call = sw
        .await_event("call-started", &[("from", "1001"), ("to", "1002")], EVENT)
        .get("call")
        .to_string();
    sw.await_event("call-bridged", &[("call", &call)], EVENT);
    a.assert_hears(ac, 700.0, 1.5, "1001 hears 1002");
    b.assert_hears(bc, 500.0, 1.5, "1002 hears 1001");

    // What went over the wire, from each phone's own log.
    let invite = logged(&a, "TX", "INVITE sip:1002@");
    assert!(
        invite.iter().any(|m| m.contains("Require: 100rel")),
        "the caller requires 100rel: {invite:?}\n{}",
        a.report()
    );
    let ringing = logged(&a, "RX", "SIP/2.0 18");
    assert!(
        !ringing.is_empty() && ringing.iter().all(|m| m.contains("RSeq:")),
        "every 18x to the caller is reliable: {ringing:?}\n{}",
        a.report()
    );
    assert!(
        !logged(&a, "TX", "PRACK ").is_empty(),
        "the caller PRACKed\n{}",
        a.report()
    );
    let b_invite = logged(&b, "RX", "INVITE sip:1002@");
    assert!(
        b_invite.iter().any(|m| m.contains("100rel")),
        "the switch offers 100rel to the callee: {b_invite:?}"
    );
    assert!(
        logged(&b, "TX", "SIP/2.0 180")
            .iter()
            .any(|m| m.contains("RSeq:")),
        "the callee rang reliably\n{}",
        b.report()
    );
    let prack = logged(&b, "RX", "PRACK ");
    assert!(
        prack.iter().any(|m| m.contains("RAck:")),
        "the switch PRACKed the callee's 180: {prack:?}\n{}",
        b.report()
    );

    a.hangup(ac);
    a.wait_state(ac, "disconnected");
    b.wait_state(bc, "disconnected");
    sw.await_event("call-ended", &[("call", &call)], EVENT);
}
