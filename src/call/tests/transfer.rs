//! Blind transfer by the switch on command (`CallCommand::Transfer`).

use super::*;
use crate::call::{CallId, CommandError};

/// A call 1001 -> 1002 answered by the contact at 6012 and bridged; its id.
fn bridged_call(w: &mut World) -> CallId {
    w.receive(invite("1002", 6001), source(6001));
    w.reply(1, 200, "b", true);
    let ev = w.events();
    let started = ev.iter().find(|e| e.starts_with("call-started")).unwrap();
    let id = started.split_whitespace().nth(1).unwrap();
    CallId(id.trim_start_matches("call=").to_string())
}

fn transfer(w: &mut World, call: &CallId, leg: LegRole, to: &str) -> Result<CallId, CommandError> {
    w.calls.handle_command(
        w.now,
        &mut w.out,
        CallCommand::Transfer {
            call: call.clone(),
            leg,
            to: to.into(),
        },
    )
}

#[test]
fn switch_transfer_bridges_the_far_party_to_the_target_and_hangs_up_the_leg() {
    let mut w = world();
    let call = bridged_call(&mut w);
    w.media();
    // Leg b's far party (the caller) goes to 1003.
    transfer(&mut w, &call, LegRole::B, "1003").unwrap();
    let (_, c_inv, c_dest) = w.out.sent.last().unwrap().clone();
    assert_eq!((c_inv.method, c_dest.remote.port()), (Method::Invite, 6003));
    // Offered only the codec the caller is on (PCMA 8) and telephone-event.
    let offer = String::from_utf8_lossy(&c_inv.body).to_string();
    assert!(offer.contains(" RTP/AVP 8 101"), "{offer}");
    assert_eq!(
        transfer(&mut w, &call, LegRole::A, "1003"),
        Err(CommandError::Busy(format!(
            "call {call} is being transferred"
        )))
    );
    let n = w.out.sent.len() - 1;
    w.reply(n, 200, "target", true);
    // The relay is re-pointed (the caller keeps its endpoint: no re-INVITE to it),
    // the contact's leg is hung up, and no NOTIFY goes anywhere (no REFER).
    let media = w.media();
    let bridges: Vec<_> = media
        .iter()
        .filter(|m| matches!(m, MediaCommand::Bridge { .. }))
        .collect();
    assert_eq!(bridges.len(), 1, "{media:?}");
    let sent: Vec<(Method, u16)> = w
        .out
        .sent
        .iter()
        .skip(n + 1)
        .map(|(_, r, d)| (r.method, d.remote.port()))
        .collect();
    assert_eq!(sent, [(Method::Bye, 6012)]);
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-transferred call={call} by=b to=1003 kind=blind")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 1);
    // A second transfer of the same call is refused (one target per call).
    assert!(matches!(
        transfer(&mut w, &call, LegRole::A, "1002"),
        Err(CommandError::Invalid { field: "leg", .. })
    ));
}

#[test]
fn switch_transfer_to_a_busy_target_leaves_the_call_as_it_was() {
    let mut w = world();
    let call = bridged_call(&mut w);
    w.media();
    transfer(&mut w, &call, LegRole::A, "1003").unwrap();
    let n = w.out.sent.len() - 1;
    w.reply(n, 486, "target", false);
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-transfer-failed call={call} by=a status=486")),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e.contains("call-ended")), "{ev:?}");
    // The two parties are bridged again; nobody got a BYE.
    assert!(w
        .media()
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
    assert!(!w.out.sent.iter().any(|(_, r, _)| r.method == Method::Bye));
    assert_eq!(w.calls.call_count(), 1);
    // The call can be transferred again after a failure.
    transfer(&mut w, &call, LegRole::A, "1003").unwrap();
}

#[test]
fn switch_transfer_refusals() {
    let mut w = world();
    let none = CallId("nope".into());
    assert_eq!(
        transfer(&mut w, &none, LegRole::A, "1003"),
        Err(CommandError::NoCall(none.clone()))
    );
    let call = bridged_call(&mut w);
    assert_eq!(
        transfer(&mut w, &call, LegRole::A, "99"),
        Err(CommandError::NoRoute("99".into()))
    );
    assert!(matches!(
        transfer(&mut w, &call, LegRole::A, "10 03"),
        Err(CommandError::Invalid { field: "to", .. })
    ));
    assert_eq!(
        transfer(&mut w, &call, LegRole::C, "1003"),
        Err(CommandError::NoLeg(call.clone(), LegRole::C))
    );
    w.out.bindings.remove("1003");
    assert!(matches!(
        transfer(&mut w, &call, LegRole::A, "1003"),
        Err(CommandError::Busy(_))
    ));
}

/// A request from the callee (1002 at 6012, leg b) within its dialog with
/// the switch, built from the INVITE the switch sent it.
fn from_callee(w: &World, method: &str, cseq: u32, headers: &str, body: &str) -> Request {
    let (_, inv, _) = &w.out.sent[1];
    let call_id = inv.call_id().unwrap().to_string();
    let switch_tag = inv.from_tag().unwrap().to_string();
    let ctype = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    parse_req(format!(
        "{method} sip:switch@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6012;branch=z9hG4bK-b-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1002@127.0.0.1>;tag=b\r\nTo: <sip:1001@127.0.0.1>;tag={switch_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:1002@127.0.0.1:6012>\r\n{headers}{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// The transferor held the transferee before its REFER (as most phones do):
/// that hold was relayed to the transferee (sendonly), so once the target
/// answers the switch re-INVITEs the transferee with sendrecv; otherwise it
/// would never send audio to the target.
#[test]
fn blind_transfer_after_a_hold_resumes_the_transferee() {
    let mut w = world();
    let _call = bridged_call(&mut w);
    // 1002 holds: relayed to the caller as a sendonly offer, which it accepts.
    let hold_sdp = SDP.replace("a=fmtp:101 0-15\r\n", "a=fmtp:101 0-15\r\na=sendonly\r\n");
    w.receive(from_callee(&w, "INVITE", 2, "", &hold_sdp), source(6012));
    let n = w.out.sent.len() - 1;
    let (_, relayed, dest) = w.out.sent[n].clone();
    assert_eq!((relayed.method, dest.remote.port()), (Method::Invite, 6001));
    assert!(String::from_utf8_lossy(&relayed.body).contains("a=sendonly"));
    w.reply(n, 200, "caller", true);
    assert_eq!(w.last_answer_code(), 200, "the hold is answered to 1002");

    // 1002 transfers the caller to 1003; 1003 answers.
    w.receive(
        from_callee(&w, "REFER", 3, "Refer-To: <sip:1003@127.0.0.1>\r\n", ""),
        source(6012),
    );
    assert_eq!(w.last_answer_code(), 202);
    let target = w
        .out
        .sent
        .iter()
        .rposition(|(_, r, d)| r.method == Method::Invite && d.remote.port() == 6003)
        .expect("the target is called");
    // The target is offered media as usual (sendrecv).
    assert!(!String::from_utf8_lossy(&w.out.sent[target].1.body).contains("a=sendonly"));
    let before = w.out.sent.len();
    w.reply(target, 200, "target", true);
    let resumed: Vec<_> = w.out.sent[before..]
        .iter()
        .filter(|(_, r, d)| r.method == Method::Invite && d.remote.port() == 6001)
        .collect();
    assert_eq!(resumed.len(), 1, "one re-INVITE to the transferee");
    let body = String::from_utf8_lossy(&resumed[0].1.body).to_string();
    assert!(
        body.contains("a=sendrecv") && !body.contains("a=sendonly"),
        "{body}"
    );
}

/// Without a hold before the REFER nothing is re-INVITEd: the transferee
/// keeps its relay endpoint and direction.
#[test]
fn blind_transfer_without_a_hold_sends_no_reinvite() {
    let mut w = world();
    let _call = bridged_call(&mut w);
    w.receive(
        from_callee(&w, "REFER", 2, "Refer-To: <sip:1003@127.0.0.1>\r\n", ""),
        source(6012),
    );
    assert_eq!(w.last_answer_code(), 202);
    let target = w.out.sent.len() - 1;
    assert_eq!(w.out.sent[target].2.remote.port(), 6003);
    let before = w.out.sent.len();
    w.reply(target, 200, "target", true);
    assert!(
        !w.out.sent[before..]
            .iter()
            .any(|(_, r, d)| r.method == Method::Invite && d.remote.port() == 6001),
        "no re-INVITE to the transferee"
    );
}

/// A Replaces whose escapes are cut short before a character of two bytes
/// (`%4é`) is no dialog the switch knows: 481, and the call goes on. (The
/// decoder once sliced the text mid-character there: a panic a peer could
/// cause with one header.)
#[test]
fn a_refer_with_a_broken_escape_in_its_replaces_is_refused_not_a_panic() {
    let mut w = world();
    let _call = bridged_call(&mut w);
    w.receive(
        from_callee(
            &w,
            "REFER",
            2,
            "Refer-To: <sip:1003@127.0.0.1?Replaces=abc%4\u{e9};to-tag=1;from-tag=2>\r\n",
            "",
        ),
        source(6012),
    );
    assert_eq!(w.last_answer_code(), 481);
    assert_eq!(w.calls.call_count(), 1, "the call is still up");
}
