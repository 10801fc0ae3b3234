//! The desktop's consultation actions on a connected callback: each goes
//! to the call layer as its command on the voice call, is refused by name
//! when the consultation's state does not fit it, and the desktop stream
//! follows the consultation from the call events.

use super::testlab::*;
use crate::call::{CallCommand, CallEvent, CallId, Failure, LegRole, Party, Progress, Way};
use crate::callback::action::*;
use crate::callback::model::*;

fn connected() -> (Lab, InteractionId, CallId) {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    let call = connect(&mut lab, &id, "1001", at(2));
    (lab, id, call)
}

fn refused_in(r: Result<Reply, ActionError>) -> String {
    match r {
        Err(ActionError::WrongState { state, .. }) => state,
        other => panic!("expected a wrong state, got {other:?}"),
    }
}

fn steps(lab: &Lab) -> Vec<(String, Option<String>)> {
    lab.desktop
        .iter()
        .filter_map(|d| match &d.kind {
            DesktopEventKind::Consultation {
                step,
                detail,
                agent,
                ..
            } => {
                assert_eq!(agent.as_deref(), Some("1001"));
                Some((step.clone(), detail.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn consult_conference_and_complete_transfer_from_the_desktop() {
    let (mut lab, id, call) = connected();
    // Nothing to alternate, conference or complete on a two-party call.
    for action in [
        InteractionAction::Alternate,
        InteractionAction::Conference,
        InteractionAction::CompleteTransfer,
        InteractionAction::CancelConsult,
        InteractionAction::Leave,
    ] {
        assert_eq!(refused_in(lab.act(at(3), &id, "1001", action)), "two-party");
    }
    lab.act(
        at(3),
        &id,
        "1001",
        InteractionAction::Consult { to: "1002".into() },
    )
    .unwrap();
    assert_eq!(
        lab.commands.last(),
        Some(&CallCommand::Consult {
            call: call.clone(),
            leg: LegRole::A,
            to: "1002".into(),
        })
    );
    lab.call(
        at(3),
        CallEvent::ConsultStarted {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
        },
    );
    lab.call(
        at(4),
        CallEvent::ConsultProgress {
            call: call.clone(),
            progress: Progress::Ringing,
        },
    );
    // Before the consulted party answers: no transfer, no second consultation.
    assert_eq!(
        refused_in(lab.act(at(4), &id, "1001", InteractionAction::CompleteTransfer)),
        "consult-ringing"
    );
    assert_eq!(
        refused_in(lab.act(
            at(4),
            &id,
            "1001",
            InteractionAction::Consult { to: "1002".into() }
        )),
        "consult-ringing"
    );
    assert_eq!(
        refused_in(lab.act(
            at(4),
            &id,
            "1001",
            InteractionAction::Transfer { to: "1002".into() }
        )),
        "consult-ringing"
    );
    lab.call(
        at(5),
        CallEvent::ConsultProgress {
            call: call.clone(),
            progress: Progress::Answered,
        },
    );
    assert_eq!(lab.state(&id), State::Connected);
    lab.act(at(6), &id, "1001", InteractionAction::Conference)
        .unwrap();
    assert_eq!(
        lab.commands.last(),
        Some(&CallCommand::Conference { call: call.clone() })
    );
    lab.call(at(6), CallEvent::Conferenced { call: call.clone() });
    lab.act(
        at(7),
        &id,
        "1001",
        InteractionAction::Volume {
            party: Party::Contact,
            direction: Way::Out,
            db: -3,
        },
    )
    .unwrap();
    lab.act(at(8), &id, "1001", InteractionAction::CompleteTransfer)
        .unwrap();
    assert_eq!(
        lab.commands.last(),
        Some(&CallCommand::CompleteTransfer { call: call.clone() })
    );
    lab.call(
        at(8),
        CallEvent::Transferred {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
            attended: true,
        },
    );
    // The parent is parked, as after a blind transfer.
    assert_eq!(lab.state(&id), State::Parked);
    assert_eq!(
        steps(&lab),
        [
            ("started".to_string(), Some("1002".to_string())),
            ("ringing".into(), None),
            ("answered".into(), None),
            ("conferenced".into(), None),
            ("transferred".into(), Some("1002".into())),
        ]
    );
    // The history keeps each step of the voice call.
    let history: Vec<String> = lab
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::History(
                i,
                HistoryEntry {
                    kind: HistoryKind::Control { action, .. },
                    ..
                },
            ) if i == &id => Some(action.clone()),
            _ => None,
        })
        .collect();
    for action in [
        "consult",
        "call-consult",
        "call-conferenced",
        "complete-transfer",
    ] {
        assert!(history.iter().any(|a| a == action), "{action}: {history:?}");
    }
}

#[test]
fn a_failed_consultation_leaves_the_interaction_connected() {
    let (mut lab, id, call) = connected();
    lab.act(
        at(3),
        &id,
        "1001",
        InteractionAction::Consult { to: "1002".into() },
    )
    .unwrap();
    lab.call(
        at(3),
        CallEvent::ConsultStarted {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
        },
    );
    lab.call(
        at(4),
        CallEvent::LegFailed {
            call: call.clone(),
            leg: LegRole::C,
            status: 486,
            failure: Failure::Busy,
        },
    );
    lab.call(
        at(4),
        CallEvent::ConsultFailed {
            call: call.clone(),
            status: 486,
            failure: Failure::Busy,
        },
    );
    assert_eq!(lab.state(&id), State::Connected);
    assert_eq!(
        steps(&lab).last(),
        Some(&("failed".to_string(), Some("busy".to_string())))
    );
    // A new consultation may start.
    lab.act(
        at(5),
        &id,
        "1001",
        InteractionAction::Consult { to: "1002".into() },
    )
    .unwrap();
}

#[test]
fn a_supervisor_joins_from_its_own_phone_and_switches_modes() {
    use crate::call::Monitor;
    use crate::callback::settings::Privilege;
    let mut s = settings();
    if let Some(a) = s.agents.get_mut("1002") {
        a.privileges.supervise = false;
    }
    s.agents.insert("1003".into(), agent("1003", &[]));
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    // Not connected yet: nothing to supervise.
    assert_eq!(
        refused_in(lab.act(
            at(1),
            &id,
            "1003",
            InteractionAction::Supervise {
                mode: Monitor::Listen
            }
        )),
        "offered"
    );
    let call = connect(&mut lab, &id, "1001", at(2));
    // 1002 lacks the privilege: 403 naming it.
    assert_eq!(
        lab.act(
            at(3),
            &id,
            "1002",
            InteractionAction::Supervise {
                mode: Monitor::Listen
            }
        )
        .unwrap_err(),
        ActionError::Forbidden {
            agent: "1002".into(),
            privilege: Privilege::Supervise,
        }
    );
    // 1003 (not the owner) listens: its own phone is called.
    lab.act(
        at(3),
        &id,
        "1003",
        InteractionAction::Supervise {
            mode: Monitor::Listen,
        },
    )
    .unwrap();
    assert_eq!(
        lab.commands.last(),
        Some(&CallCommand::Supervise {
            call: call.clone(),
            mode: Monitor::Listen,
            to: Some("1003".into()),
        })
    );
    // Then whispers: a mode switch, no new phone.
    lab.act(
        at(4),
        &id,
        "1003",
        InteractionAction::Supervise {
            mode: Monitor::Whisper,
        },
    )
    .unwrap();
    assert_eq!(
        lab.commands.last(),
        Some(&CallCommand::Supervise {
            call: call.clone(),
            mode: Monitor::Whisper,
            to: None,
        })
    );
    // The owner is not a second supervisor.
    assert_eq!(
        refused_in(lab.act(
            at(4),
            &id,
            "1001",
            InteractionAction::Supervise {
                mode: Monitor::Barge
            }
        )),
        "supervised"
    );
    lab.call(at(5), CallEvent::SupervisorLeft { call: call.clone() });
    lab.act(
        at(6),
        &id,
        "1001",
        InteractionAction::Supervise {
            mode: Monitor::Barge,
        },
    )
    .unwrap();
    assert_eq!(lab.state(&id), State::Connected);
}
