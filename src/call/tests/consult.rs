//! Consultation, attended transfer, conference and volume on command
//! (`consult`): the caller 1001 (leg a, at 6001) is the agent, the callee
//! 1002 (leg b, answered at 6012) the contact, 1003 (at 6003) is consulted.

use super::*;
use crate::call::{CallId, CommandError, Others, Party, Way};
use crate::media::{LegId, Role};

struct Consulting {
    w: World,
    call: CallId,
    agent: LegId,
    contact: LegId,
    /// Index in `w.out.sent` of the consultation INVITE.
    invite: usize,
    /// The consultation leg (once placed).
    leg: LegId,
}

fn cmd(w: &mut World, c: CallCommand) -> Result<CallId, CommandError> {
    w.calls.handle_command(w.now, &mut w.out, c)
}

/// A bridged call 1001 -> 1002 with a consultation of 1003 placed (not
/// answered yet).
fn consulting() -> Consulting {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(1, 200, "b", true);
    let ev = w.events();
    let started = ev.iter().find(|e| e.starts_with("call-started")).unwrap();
    let id = started.split_whitespace().nth(1).unwrap();
    let call = CallId(id.trim_start_matches("call=").to_string());
    let (agent, contact) = w
        .media()
        .iter()
        .find_map(|m| match m {
            MediaCommand::Bridge { a, b } => Some((*a, *b)),
            _ => None,
        })
        .expect("the call is bridged");
    cmd(
        &mut w,
        CallCommand::Consult {
            call: call.clone(),
            leg: LegRole::A,
            to: "1003".into(),
        },
    )
    .unwrap();
    let invite = w.out.sent.len() - 1;
    let (_, inv, dest) = w.out.sent[invite].clone();
    assert_eq!((inv.method, dest.remote.port()), (Method::Invite, 6003));
    // Offered the contact's codec (PCMA 8): a completed transfer bridges the
    // two packet for packet.
    let offer = String::from_utf8_lossy(&inv.body).to_string();
    assert!(offer.contains(" RTP/AVP 8 101"), "{offer}");
    let media = w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold { leg, held: true } if *leg == contact
        )),
        "the contact is held in the relay: {media:?}"
    );
    let leg = media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .expect("the consultation leg's media is opened");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult call={call} by=a to=1003")),
        "{ev:?}"
    );
    // The contact's phone is not told (the hold is the relay's).
    assert!(
        !w.out.sent.iter().any(|(_, r, d)| r.method == Method::Invite
            && d.remote.port() == 6012
            && r.to_tag().is_some())
    );
    Consulting {
        w,
        call,
        agent,
        contact,
        invite,
        leg,
    }
}

/// The consulted party answers.
fn answered() -> Consulting {
    let mut k = consulting();
    k.w.reply(k.invite, 180, "target", false);
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-progress call={} progress=ringing", k.call)),
        "{ev:?}"
    );
    k.w.reply(k.invite, 200, "target", true);
    let media = k.w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.leg)
        )),
        "agent and consulted party talk: {media:?}"
    );
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-progress call={} progress=answered", k.call)),
        "{ev:?}"
    );
    k
}

fn bye_from(w: &World, n: usize, tag: &str, port: u16, cseq: u32) -> Request {
    let (_, inv, _) = &w.out.sent[n];
    let call_id = inv.call_id().unwrap().to_string();
    let switch_tag = inv.from_tag().unwrap().to_string();
    parse_req(format!(
        "BYE sip:switch@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-bye-{port}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag={tag}\r\nTo: <sip:y@127.0.0.1>;tag={switch_tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
    ))
}

fn byes_to(w: &World, from: usize) -> Vec<u16> {
    w.out.sent[from..]
        .iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
        .map(|(_, _, d)| d.remote.port())
        .collect()
}

fn state_of(r: Result<CallId, CommandError>) -> &'static str {
    match r {
        Err(CommandError::WrongState { state, .. }) => state,
        other => panic!("expected a refusal naming the state, got {other:?}"),
    }
}

#[test]
fn consult_then_complete_transfer_bridges_contact_and_consulted_and_hangs_up_the_agent() {
    let mut k = consulting();
    let call = k.call.clone();
    // Before the consulted party answers: no transfer, no conference.
    k.w.reply(k.invite, 180, "target", false);
    assert_eq!(
        state_of(cmd(
            &mut k.w,
            CallCommand::CompleteTransfer { call: call.clone() }
        )),
        "consult-ringing"
    );
    assert_eq!(
        state_of(cmd(
            &mut k.w,
            CallCommand::Conference { call: call.clone() }
        )),
        "consult-ringing"
    );
    k.w.reply(k.invite, 200, "target", true);
    k.w.media();
    // A second consultation while one is up is refused, naming the state.
    assert_eq!(
        state_of(cmd(
            &mut k.w,
            CallCommand::Consult {
                call: call.clone(),
                leg: LegRole::A,
                to: "1002".into(),
            }
        )),
        "consulting"
    );
    let before = k.w.out.sent.len();
    k.w.events();
    cmd(
        &mut k.w,
        CallCommand::CompleteTransfer { call: call.clone() },
    )
    .unwrap();
    let media = k.w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Bridge { a, b } if (*a, *b) == (k.contact, k.leg)
        )),
        "{media:?}"
    );
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold { leg, held: false } if *leg == k.contact
        )),
        "the contact is retrieved: {media:?}"
    );
    assert_eq!(byes_to(&k.w, before), [6001], "only the agent gets a BYE");
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-transferred call={call} by=a to=1003 kind=attended")),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e.contains("call-ended")), "{ev:?}");
    assert_eq!(k.w.calls.call_count(), 1);
    // The consulted party hanging up ends the call now (nobody to go back to).
    let bye = bye_from(&k.w, k.invite, "target", 6003, 2);
    k.w.receive(bye, source(6003));
    assert!(k.w.events().iter().any(|e| e.contains("call-ended")));
    assert_eq!(k.w.calls.call_count(), 0);
}

#[test]
fn alternate_and_cancel_return_to_the_contact() {
    let mut k = answered();
    let call = k.call.clone();
    cmd(&mut k.w, CallCommand::Alternate { call: call.clone() }).unwrap();
    let media = k.w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.contact)
        )) && media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold { leg, held: true } if *leg == k.leg
        )) && media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold { leg, held: false } if *leg == k.contact
        )),
        "{media:?}"
    );
    assert!(k
        .w
        .events()
        .contains(&format!("call-alternated call={call} talking=contact")));
    cmd(&mut k.w, CallCommand::Alternate { call: call.clone() }).unwrap();
    assert!(k
        .w
        .events()
        .contains(&format!("call-alternated call={call} talking=consulted")));
    k.w.media();
    let before = k.w.out.sent.len();
    cmd(&mut k.w, CallCommand::CancelConsult { call: call.clone() }).unwrap();
    assert_eq!(byes_to(&k.w, before), [6003]);
    let media = k.w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.contact)
        )),
        "{media:?}"
    );
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-ended call={call} reason=cancelled")),
        "{ev:?}"
    );
    assert_eq!(
        state_of(cmd(&mut k.w, CallCommand::Alternate { call: call.clone() })),
        "two-party"
    );
    // A new consultation can start.
    cmd(
        &mut k.w,
        CallCommand::Consult {
            call,
            leg: LegRole::A,
            to: "1003".into(),
        },
    )
    .unwrap();
}

#[test]
fn a_busy_consultation_leaves_agent_and_contact_talking() {
    let mut k = consulting();
    let call = k.call.clone();
    k.w.reply(k.invite, 486, "target", false);
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-failed call={call} status=486 failure=busy")),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e.contains("call-ended")), "{ev:?}");
    let media = k.w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.contact)
        )) && media.iter().any(|m| matches!(
            m,
            MediaCommand::SetHold { leg, held: false } if *leg == k.contact
        )),
        "{media:?}"
    );
    assert!(!k.w.out.sent.iter().any(|(_, r, _)| r.method == Method::Bye));
    assert_eq!(k.w.calls.call_count(), 1);
}

#[test]
fn cancelling_a_ringing_consultation_cancels_its_leg_only() {
    let mut k = consulting();
    let call = k.call.clone();
    k.w.reply(k.invite, 180, "target", false);
    cmd(&mut k.w, CallCommand::CancelConsult { call: call.clone() }).unwrap();
    // (The first CANCEL is the contact's lost fork at 6002.)
    assert_eq!(k.w.out.cancelled.last(), Some(&k.w.out.sent[k.invite].0));
    k.w.reply(k.invite, 487, "target", false);
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-ended call={call} reason=cancelled")),
        "{ev:?}"
    );
    assert!(
        !ev.iter()
            .any(|e| e.contains("call-ended") || e.contains("call-consult-failed")),
        "{ev:?}"
    );
    assert_eq!(k.w.calls.call_count(), 1);
}

#[test]
fn the_consulted_party_hanging_up_ends_the_consultation_only() {
    let mut k = answered();
    let call = k.call.clone();
    let bye = bye_from(&k.w, k.invite, "target", 6003, 2);
    k.w.receive(bye, source(6003));
    assert_eq!(k.w.last_answer_code(), 200);
    let ev = k.w.events();
    assert!(
        ev.iter()
            .any(|e| e == &format!("call-consult-ended call={call} reason=hangup")),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| e.contains("call-ended")), "{ev:?}");
    assert!(k.w.media().iter().any(|m| matches!(
        m,
        MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.contact)
    )));
    assert_eq!(k.w.calls.call_count(), 1);
}

#[test]
fn conference_mixes_all_three_and_remove_goes_back_to_two() {
    let mut k = answered();
    let call = k.call.clone();
    cmd(&mut k.w, CallCommand::Conference { call: call.clone() }).unwrap();
    let media = k.w.media();
    let members = media
        .iter()
        .find_map(|m| match m {
            MediaCommand::Mix { room, members, .. } if room == &call.0 => Some(members.clone()),
            _ => None,
        })
        .expect("a room");
    assert_eq!(
        members,
        vec![
            (k.agent, Role::Party),
            (k.contact, Role::Party),
            (k.leg, Role::Party)
        ]
    );
    assert!(k
        .w
        .events()
        .contains(&format!("call-conferenced call={call}")));
    assert_eq!(
        state_of(cmd(&mut k.w, CallCommand::Alternate { call: call.clone() })),
        "conferenced"
    );
    let before = k.w.out.sent.len();
    cmd(
        &mut k.w,
        CallCommand::Remove {
            call: call.clone(),
            party: Party::Consulted,
        },
    )
    .unwrap();
    assert_eq!(byes_to(&k.w, before), [6003]);
    assert!(k.w.media().iter().any(|m| matches!(
        m,
        MediaCommand::Bridge { a, b } if (*a, *b) == (k.agent, k.contact)
    )));
    assert!(k
        .w
        .events()
        .contains(&format!("call-consult-ended call={call} reason=removed")));
    assert_eq!(k.w.calls.call_count(), 1);
}

#[test]
fn the_agent_leaving_a_conference_leaves_an_internal_party_with_the_contact() {
    let mut k = answered();
    let call = k.call.clone();
    cmd(&mut k.w, CallCommand::Conference { call: call.clone() }).unwrap();
    k.w.media();
    k.w.events();
    let before = k.w.out.sent.len();
    cmd(
        &mut k.w,
        CallCommand::Leave {
            call: call.clone(),
            others: Others::StayIfInternal,
        },
    )
    .unwrap();
    assert_eq!(byes_to(&k.w, before), [6001]);
    assert!(k.w.media().iter().any(|m| matches!(
        m,
        MediaCommand::Bridge { a, b } if (*a, *b) == (k.contact, k.leg)
    )));
    let ev = k.w.events();
    assert!(
        ev.contains(&format!(
            "call-party-left call={call} party=agent reason=left"
        )) && ev.contains(&format!(
            "call-transferred call={call} by=a to=1003 kind=attended"
        )),
        "{ev:?}"
    );
    assert_eq!(k.w.calls.call_count(), 1);
}

#[test]
fn the_agent_leaving_with_hang_up_ends_the_call() {
    let mut k = answered();
    let call = k.call.clone();
    cmd(&mut k.w, CallCommand::Conference { call: call.clone() }).unwrap();
    cmd(
        &mut k.w,
        CallCommand::Leave {
            call,
            others: Others::HangUp,
        },
    )
    .unwrap();
    assert!(k
        .w
        .events()
        .iter()
        .any(|e| e.contains("call-ended") && e.contains("cause=agent-left")));
    assert_eq!(k.w.calls.call_count(), 0);
}

#[test]
fn volume_takes_a_two_party_call_into_a_room_of_two_and_keeps_it_there() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(1, 200, "b", true);
    let ev = w.events();
    let started = ev.iter().find(|e| e.starts_with("call-started")).unwrap();
    let call = CallId(
        started
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("call=")
            .to_string(),
    );
    w.media();
    assert!(matches!(
        cmd(
            &mut w,
            CallCommand::Volume {
                call: call.clone(),
                party: Party::Contact,
                direction: Way::Out,
                db: 13,
            }
        ),
        Err(CommandError::Invalid { field: "db", .. })
    ));
    assert_eq!(
        cmd(
            &mut w,
            CallCommand::Volume {
                call: call.clone(),
                party: Party::Consulted,
                direction: Way::Out,
                db: 6,
            }
        ),
        Err(CommandError::NoLeg(call.clone(), LegRole::C))
    );
    cmd(
        &mut w,
        CallCommand::Volume {
            call: call.clone(),
            party: Party::Contact,
            direction: Way::Out,
            db: -6,
        },
    )
    .unwrap();
    let media = w.media();
    assert!(
        matches!(&media[..], [MediaCommand::Mix { members, .. }, MediaCommand::SetGain { db, direction: crate::media::Direction::Out, .. }] if members.len() == 2 && *db == -6.0),
        "{media:?}"
    );
    assert!(w.events().contains(&format!(
        "call-volume call={call} party=contact direction=out db=-6"
    )));
    // A consultation answered in a mixed call is a room of two too (the gain stays).
    cmd(
        &mut w,
        CallCommand::Consult {
            call: call.clone(),
            leg: LegRole::A,
            to: "1003".into(),
        },
    )
    .unwrap();
    let n = w.out.sent.len() - 1;
    w.media();
    w.reply(n, 200, "target", true);
    let media = w.media();
    assert!(
        media
            .iter()
            .any(|m| matches!(m, MediaCommand::Mix { members, .. } if members.len() == 2)),
        "{media:?}"
    );
    assert!(!media
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
}

#[test]
fn desktop_actions_without_a_consultation_are_refused_naming_the_state() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(1, 200, "b", true);
    let ev = w.events();
    let started = ev.iter().find(|e| e.starts_with("call-started")).unwrap();
    let call = CallId(
        started
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("call=")
            .to_string(),
    );
    for c in [
        CallCommand::Alternate { call: call.clone() },
        CallCommand::CancelConsult { call: call.clone() },
        CallCommand::CompleteTransfer { call: call.clone() },
        CallCommand::Conference { call: call.clone() },
        CallCommand::Leave {
            call: call.clone(),
            others: Others::Stay,
        },
        CallCommand::Remove {
            call: call.clone(),
            party: Party::Contact,
        },
    ] {
        let r = cmd(&mut w, c.clone());
        assert_eq!(state_of(r.clone()), "two-party", "{c:?}");
        assert_eq!(
            r.unwrap_err().to_string(),
            format!("call {call} is two-party: no consultation is up")
        );
    }
    let none = CallId("nope".into());
    assert_eq!(
        cmd(&mut w, CallCommand::Conference { call: none.clone() }),
        Err(CommandError::NoCall(none))
    );
    assert_eq!(
        cmd(
            &mut w,
            CallCommand::Consult {
                call: call.clone(),
                leg: LegRole::A,
                to: "99".into(),
            }
        ),
        Err(CommandError::NoRoute("99".into()))
    );
    // A blind transfer while consulting is refused (leg c is taken).
    cmd(
        &mut w,
        CallCommand::Consult {
            call: call.clone(),
            leg: LegRole::A,
            to: "1003".into(),
        },
    )
    .unwrap();
    assert!(cmd(
        &mut w,
        CallCommand::Transfer {
            call,
            leg: LegRole::A,
            to: "1003".into(),
        }
    )
    .is_err());
}

/// A bridged call 1001 -> 1002 and its id and legs (a, b).
fn bridged() -> (World, CallId, LegId, LegId) {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(1, 200, "b", true);
    let ev = w.events();
    let started = ev.iter().find(|e| e.starts_with("call-started")).unwrap();
    let call = CallId(
        started
            .split_whitespace()
            .nth(1)
            .unwrap()
            .trim_start_matches("call=")
            .to_string(),
    );
    let (a, b) = w
        .media()
        .iter()
        .find_map(|m| match m {
            MediaCommand::Bridge { a, b } => Some((*a, *b)),
            _ => None,
        })
        .unwrap();
    (w, call, a, b)
}

#[test]
fn a_supervisor_listens_whispers_and_barges_without_the_call_noticing() {
    use crate::call::Monitor;
    let (mut w, call, a, b) = bridged();
    // No supervisor yet: a mode switch needs a phone to call.
    assert!(matches!(
        cmd(
            &mut w,
            CallCommand::Supervise {
                call: call.clone(),
                mode: Monitor::Whisper,
                to: None
            }
        ),
        Err(CommandError::Invalid { field: "to", .. })
    ));
    cmd(
        &mut w,
        CallCommand::Supervise {
            call: call.clone(),
            mode: Monitor::Listen,
            to: Some("1003".into()),
        },
    )
    .unwrap();
    let n = w.out.sent.len() - 1;
    let (_, inv, dest) = w.out.sent[n].clone();
    assert_eq!((inv.method, dest.remote.port()), (Method::Invite, 6003));
    let s = w
        .media()
        .iter()
        .find_map(|m| match m {
            MediaCommand::Open { leg, .. } => Some(*leg),
            _ => None,
        })
        .unwrap();
    w.reply(n, 200, "sup", true);
    let media = w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Mix { members, .. }
                if members == &vec![(a, Role::Party), (b, Role::Party), (s, Role::Listen)]
        )),
        "{media:?}"
    );
    assert!(w
        .events()
        .contains(&format!("call-supervised call={call} mode=listen")));
    // A second supervisor is refused naming the state.
    assert_eq!(
        state_of(cmd(
            &mut w,
            CallCommand::Supervise {
                call: call.clone(),
                mode: Monitor::Listen,
                to: Some("1003".into()),
            }
        )),
        "supervised"
    );
    // Switching modes changes only the role: no signalling, no re-mix.
    let before = w.out.sent.len();
    for (mode, role) in [
        (Monitor::Whisper, Role::Whisper { to: a }),
        (Monitor::Barge, Role::Party),
        (Monitor::Listen, Role::Listen),
    ] {
        cmd(
            &mut w,
            CallCommand::Supervise {
                call: call.clone(),
                mode,
                to: None,
            },
        )
        .unwrap();
        let media = w.media();
        assert!(
            matches!(&media[..], [MediaCommand::SetRole { leg, role: r }] if *leg == s && *r == role),
            "{media:?}"
        );
        assert!(w
            .events()
            .contains(&format!("call-supervised call={call} mode={mode}")));
    }
    assert_eq!(w.out.sent.len(), before, "nobody is signalled");
    // The supervisor hangs up: the two parties are bridged as before.
    let bye = bye_from(&w, n, "sup", 6003, 2);
    w.receive(bye, source(6003));
    assert!(w
        .media()
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { a: x, b: y } if (*x, *y) == (a, b))));
    let ev = w.events();
    assert!(
        ev.contains(&format!("call-supervisor-left call={call}"))
            && !ev.iter().any(|e| e.contains("call-ended")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 1);
}

#[test]
fn a_supervisor_follows_a_consultation_and_can_be_removed() {
    use crate::call::Monitor;
    let (mut w, call, a, _b) = bridged();
    cmd(
        &mut w,
        CallCommand::Supervise {
            call: call.clone(),
            mode: Monitor::Whisper,
            to: Some("1003".into()),
        },
    )
    .unwrap();
    let n = w.out.sent.len() - 1;
    w.reply(n, 200, "sup", true);
    w.media();
    // The agent consults a gateway number: the supervisor stays in the room
    // with agent and consulted party.
    cmd(
        &mut w,
        CallCommand::Consult {
            call: call.clone(),
            leg: LegRole::A,
            to: "5551234".into(),
        },
    )
    .unwrap();
    let k = w.out.sent.len() - 1;
    w.media();
    w.reply(k, 200, "gw", true);
    let media = w.media();
    assert!(
        media.iter().any(|m| matches!(
            m,
            MediaCommand::Mix { members, .. }
                if members.len() == 3 && members[0].0 == a
                    && matches!(members[2].1, Role::Whisper { to } if to == a)
        )),
        "{media:?}"
    );
    let before = w.out.sent.len();
    cmd(
        &mut w,
        CallCommand::Remove {
            call: call.clone(),
            party: Party::Supervisor,
        },
    )
    .unwrap();
    assert_eq!(byes_to(&w, before), [6003]);
    assert!(w
        .events()
        .contains(&format!("call-supervisor-left call={call}")));
    assert_eq!(w.calls.call_count(), 1);
}
