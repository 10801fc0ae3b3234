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
