//! The center in virtual time: the lifecycle of docs/web-callbacks.md,
//! driven by requests, call events and timers with an explicit `now`.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::testlab::*;
use super::Recovered;
use crate::call::{CallCommand, CallEvent, CallId, CommandError, Failure, LegRole, Progress};
use crate::callback::action::*;
use crate::callback::model::*;
use crate::callback::request::CallbackRequest;
use crate::callback::settings::*;
#[test]
fn the_whole_lifecycle_with_its_history() {
    let mut lab = Lab::new();
    let id = lab.create(at(0), "+33612345678");
    assert_eq!(lab.state(&id), State::Queued);
    lab.login(at(1), "1001");
    assert_eq!(lab.state(&id), State::Offered);
    assert_eq!(lab.offers(&id), vec!["1001"]);
    let preview = lab
        .desktop
        .iter()
        .find_map(|d| match &d.kind {
            DesktopEventKind::Offer { preview, .. } => Some(preview.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        preview[0],
        PreviewField {
            name: "callbackUserName".into(),
            value: "Jane".into()
        }
    );

    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    assert_eq!(lab.state(&id), State::ReadyToCall);
    lab.act(at(3), &id, "1001", InteractionAction::Call)
        .unwrap();
    assert_eq!(lab.state(&id), State::Establishing);
    let o = lab.last_originate();
    assert_eq!(
        (o.a.as_str(), o.b.as_str(), o.auto_answer),
        ("1001", "+33612345678", true)
    );
    assert_eq!(o.interaction.as_deref(), Some(id.0.as_str()));
    assert_eq!(lab.agent_state("1001").0, AgentState::Engaged);
    let call = o.call.unwrap();

    lab.call(at(4), leg(&call, LegRole::A, Progress::Answered));
    lab.call(at(5), leg(&call, LegRole::B, Progress::Ringing));
    assert_eq!(lab.state(&id), State::Establishing);
    lab.call(at(6), leg(&call, LegRole::B, Progress::Answered));
    assert_eq!(lab.state(&id), State::Connected);

    lab.act(at(7), &id, "1001", InteractionAction::Hold)
        .unwrap();
    assert!(matches!(
        lab.commands.last(),
        Some(CallCommand::Hold {
            leg: LegRole::B,
            ..
        })
    ));
    lab.call(
        at(7),
        CallEvent::Held {
            call: call.clone(),
            leg: LegRole::B,
            by_switch: true,
        },
    );
    assert_eq!(lab.state(&id), State::OnHold);
    lab.act(at(8), &id, "1001", InteractionAction::Retrieve)
        .unwrap();
    lab.call(
        at(8),
        CallEvent::Retrieved {
            call: call.clone(),
            leg: LegRole::B,
            by_switch: true,
        },
    );
    assert_eq!(lab.state(&id), State::Connected);

    lab.act(at(9), &id, "1001", InteractionAction::EndCall)
        .unwrap();
    assert!(matches!(
        lab.commands.last(),
        Some(CallCommand::Hangup { .. })
    ));
    lab.call(at(9), ended(&call));
    assert_eq!(lab.state(&id), State::ReadyToCall);
    assert_eq!(lab.agent_state("1001").0, AgentState::Working);

    let r = lab
        .act(
            at(10),
            &id,
            "1001",
            InteractionAction::Done {
                disposition: Some("Sold".into()),
            },
        )
        .unwrap();
    let Reply::Callback(cb) = r else { panic!() };
    assert_eq!(cb.state, State::Done);
    assert_eq!(cb.disposition.as_deref(), Some("Sold"));
    assert_eq!(cb.interaction_queue, "wcb-complete");
    assert_eq!(lab.agent_state("1001").0, AgentState::Ready);
    assert_eq!(
        lab.path(&id),
        vec![
            State::Queued,
            State::Offered,
            State::ReadyToCall,
            State::Establishing,
            State::Connected,
            State::OnHold,
            State::Connected,
            State::ReadyToCall,
            State::Done
        ]
    );
    assert_eq!(lab.center.live_count(), 0);
    // Desktop events are numbered without gaps.
    let seqs: Vec<u64> = lab.desktop.iter().map(|d| d.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn one_interaction_is_offered_to_one_agent_only() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    lab.login(at(0), "1002");
    let id = lab.create(at(1), "+33612345678");
    assert_eq!(lab.offers(&id).len(), 1);
}

#[test]
fn reject_and_timeout_redirect_to_another_agent() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    assert_eq!(lab.offers(&id), vec!["1001"]);
    lab.login(at(2), "1002");
    lab.act(at(3), &id, "1001", InteractionAction::Reject)
        .unwrap();
    assert_eq!(lab.offers(&id), vec!["1001", "1002"]);
    // 1002 lets it time out: back to the queue, and 1002 goes Not Ready (Away).
    lab.tick(at(3 + 30));
    assert_eq!(
        lab.agent_state("1002"),
        (AgentState::NotReady, Some("Away".into()))
    );
    assert_eq!(lab.state(&id), State::Queued);
    assert_eq!(lab.offers(&id), vec!["1001", "1002"], "both excluded now");
    // A third agent would get it; an excluded one does not.
    assert!(lab
        .act(at(40), &id, "1001", InteractionAction::Accept)
        .is_err());
    // The exclusion lapses (600 s after 1001's reject): with nobody else
    // Ready, 1001 is offered it again rather than it waiting for ever.
    lab.tick(at(3 + 599));
    assert_eq!(lab.offers(&id).len(), 2);
    lab.tick(at(3 + 600));
    assert_eq!(lab.offers(&id), vec!["1001", "1002", "1001"]);
}

#[test]
fn busy_then_retry_when_the_interaction_dials_by_itself() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let routing = RoutingData {
        options: BTreeMap::from([
            (
                "webcallback.auto-answer".to_string(),
                serde_json::json!(true),
            ),
            ("webcallback.auto-dial".to_string(), serde_json::json!(true)),
        ]),
        ..Default::default()
    };
    let id = lab.create_with(at(1), "+33612345678", None, routing);
    // Auto-answer with no timer and auto-dial: straight to the call.
    assert_eq!(lab.state(&id), State::Establishing);
    let call = lab.last_originate().call.unwrap();
    lab.call(at(2), leg(&call, LegRole::A, Progress::Answered));
    lab.call(at(3), failed(&call, 486));
    lab.call(at(3), ended(&call));
    let cb = lab.record(&id);
    assert_eq!(cb.state, State::Scheduled);
    assert_eq!(cb.due_at, at(3 + 60), "the busy back-off");
    assert_eq!(lab.agent_state("1001").0, AgentState::Ready);
    lab.tick(at(63));
    assert_eq!(
        lab.state(&id),
        State::Establishing,
        "offered and dialled again"
    );
    let call2 = lab.last_originate().call.unwrap();
    assert_ne!(call, call2);
    lab.call(at(64), failed(&call2, 480));
    // max_attempts = 2: not reached.
    assert_eq!(lab.state(&id), State::NotReached);
}

#[test]
fn busy_without_auto_dial_returns_to_ready_to_call() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    lab.act(at(2), &id, "1001", InteractionAction::Call)
        .unwrap();
    let call = lab.last_originate().call.unwrap();
    lab.call(at(3), failed(&call, 486));
    lab.call(at(3), ended(&call));
    assert_eq!(lab.state(&id), State::ReadyToCall);
    assert_eq!(lab.record(&id).attempts, 1);
    // The agent calls again: the same number (only one).
    lab.act(at(4), &id, "1001", InteractionAction::Call)
        .unwrap();
    assert_eq!(lab.state(&id), State::Establishing);
}

/// Agent 1001, with a privilege withheld, has accepted an offer.
fn accepted_without(deny: impl FnOnce(&mut Privileges)) -> (Lab, InteractionId) {
    let mut s = settings();
    if let Some(a) = s.agents.get_mut("1001") {
        deny(&mut a.privileges);
    }
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    (lab, id)
}

#[test]
fn reschedule_on_a_new_number_needs_its_privilege() {
    let (mut lab, id) = accepted_without(|p| p.reschedule_on_new_number = false);
    let err = lab
        .act(
            at(3),
            &id,
            "1001",
            InteractionAction::Reschedule {
                at: at(3600),
                number: Some("+33698765432".into()),
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        ActionError::Forbidden {
            agent: "1001".into(),
            privilege: Privilege::RescheduleOnNewNumber
        }
    );
    // The same number is allowed; it waits in the reschedule queue.
    lab.act(
        at(3),
        &id,
        "1001",
        InteractionAction::Reschedule {
            at: at(3600),
            number: None,
        },
    )
    .unwrap();
    let cb = lab.record(&id);
    assert_eq!(
        (cb.state, cb.interaction_queue.as_str()),
        (State::Rescheduled, "wcb-reschedule")
    );
    lab.tick(at(3600));
    assert_eq!(lab.offers(&id), vec!["1001", "1001"]);
}

/// Reschedules (agent, contact, supervisor) and the schedule route are
/// held to a create's window: at most 5 minutes past, 366 days ahead; a
/// time outside it is refused naming `callbackScheduledTime` and changes
/// nothing.
#[test]
fn reschedule_and_schedule_times_are_held_to_the_create_window() {
    let (mut lab, id) = accepted_without(|_| {});
    let too_far = at(3 + 367 * 86_400);
    let too_old = at(3 - 600);
    let outside = |r: Result<Reply, ActionError>| match r {
        Err(ActionError::Invalid { field, message }) => {
            assert_eq!(field, "callbackScheduledTime", "{message}");
            message
        }
        other => panic!("not refused: {other:?}"),
    };
    for (when, words) in [(too_far, "366 days"), (too_old, "in the past")] {
        let message = outside(lab.act(
            at(3),
            &id,
            "1001",
            InteractionAction::Reschedule {
                at: when,
                number: None,
            },
        ));
        assert!(message.contains(words), "{message}");
    }
    let cb = lab.record(&id);
    assert_eq!(
        (cb.state, cb.agent.as_deref()),
        (State::ReadyToCall, Some("1001"))
    );

    let waiting = lab.create(at(4), "+33622222222");
    for by in [Actor::Contact, Actor::Supervisor] {
        outside(lab.req(
            at(5),
            Request::Reschedule {
                id: waiting.clone(),
                by,
                at: too_far,
                number: None,
            },
        ));
    }
    assert_eq!(lab.state(&waiting), State::Queued);

    outside(lab.req(
        at(6),
        Request::ScheduleForContact {
            agent: "1001".into(),
            at: Some(at(6 + 367 * 86_400)),
            number: None,
            data: BTreeMap::new(),
        },
    ));
    // Inside the window all three still work.
    lab.act(
        at(7),
        &id,
        "1001",
        InteractionAction::Reschedule {
            at: at(7 + 366 * 86_400),
            number: None,
        },
    )
    .unwrap();
    assert_eq!(lab.state(&id), State::Rescheduled);
}

#[test]
fn a_national_new_number_is_read_in_the_callbacks_country() {
    let (mut lab, id) = accepted_without(|_| {});
    // Created as +E.164 without a country code: a national number is refused.
    let national = |n: &str| InteractionAction::Reschedule {
        at: at(3600),
        number: Some(n.into()),
    };
    let err = lab.act(at(3), &id, "1001", national("06 98 76 54 32"));
    assert!(
        matches!(&err, Err(ActionError::Invalid { field, .. }) if field == "callbackNumber"),
        "{err:?}"
    );
    // With the callback's country (FR) it becomes E.164.
    let mut s = settings();
    s.agents.retain(|id, _| id == "1001");
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let r = lab.req(
        at(1),
        Request::Create {
            callback: NewCallback::from(CallbackRequest {
                country_code: Some("FR".into()),
                ..support("+33612345678")
            }),
            idempotency_key: None,
        },
    );
    let Ok(Reply::Created { callback, .. }) = r else {
        panic!("{r:?}")
    };
    lab.act(at(2), &callback.id, "1001", InteractionAction::Accept)
        .unwrap();
    lab.act(at(3), &callback.id, "1001", national("06 98 76 54 32"))
        .unwrap();
    assert_eq!(
        lab.record(&callback.id).request.callback_numbers,
        ["+33698765432", "+33612345678"]
    );
}

#[test]
fn reschedule_before_the_call_needs_its_privilege() {
    let (mut lab, id) = accepted_without(|p| p.reschedule_before_call = false);
    let err = lab
        .act(
            at(3),
            &id,
            "1001",
            InteractionAction::Reschedule {
                at: at(3600),
                number: None,
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        ActionError::Forbidden {
            privilege: Privilege::RescheduleBeforeCall,
            ..
        }
    ));
    // After connecting and disconnecting, plain reschedule is enough.
    let call = connect(&mut lab, &id, "1001", at(4));
    lab.call(at(5), ended(&call));
    lab.act(
        at(6),
        &id,
        "1001",
        InteractionAction::Reschedule {
            at: at(3600),
            number: None,
        },
    )
    .unwrap();
    assert_eq!(lab.state(&id), State::Rescheduled);
}

#[test]
fn decline_and_mark_done_follow_privileges() {
    let mut s = settings();
    s.agents.get_mut("1001").unwrap().privileges.decline = false;
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    let err = lab
        .act(at(2), &id, "1001", InteractionAction::Decline)
        .unwrap_err();
    assert!(matches!(
        err,
        ActionError::Forbidden {
            privilege: Privilege::Decline,
            ..
        }
    ));
    lab.act(at(2), &id, "1001", InteractionAction::MarkDone)
        .unwrap();
    let cb = lab.record(&id);
    assert_eq!((cb.state, cb.disposition.clone()), (State::Done, None));
}

/// `done` on an accepted interaction never called closes it unprocessed:
/// it needs `webcallback.can-mark-done` like `mark-done`. Once the contact
/// has been called (reached or not) it does not; an attempt whose agent
/// leg failed never called the contact and does not count.
#[test]
fn done_without_a_call_needs_the_mark_done_privilege() {
    let mut s = settings();
    s.agents.get_mut("1001").unwrap().privileges.mark_done = false;
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    let done = || InteractionAction::Done { disposition: None };
    let err = lab.act(at(3), &id, "1001", done()).unwrap_err();
    assert!(
        matches!(
            err,
            ActionError::Forbidden {
                privilege: Privilege::MarkDone,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(lab.state(&id), State::ReadyToCall);

    // The agent's own phone fails: the contact was still never called.
    lab.act(at(4), &id, "1001", InteractionAction::Call)
        .unwrap();
    let call = lab.last_originate().call.unwrap();
    lab.call(
        at(5),
        CallEvent::LegFailed {
            call: call.clone(),
            leg: LegRole::A,
            status: 480,
            failure: Failure::from_status(480),
        },
    );
    lab.call(at(5), ended(&call));
    assert_eq!(lab.state(&id), State::ReadyToCall);
    let after_agent_leg = lab.act(at(6), &id, "1001", done());
    assert!(
        matches!(
            after_agent_leg,
            Err(ActionError::Forbidden {
                privilege: Privilege::MarkDone,
                ..
            })
        ),
        "{after_agent_leg:?} {:?}",
        lab.record(&id)
    );

    // The contact is called and does not answer: done is the wrap-up.
    lab.act(at(7), &id, "1001", InteractionAction::Call)
        .unwrap();
    let call = lab.last_originate().call.unwrap();
    lab.call(at(8), leg(&call, LegRole::A, Progress::Answered));
    lab.call(at(9), failed(&call, 486));
    lab.call(at(9), ended(&call));
    assert_eq!(lab.state(&id), State::ReadyToCall);
    lab.act(at(10), &id, "1001", done()).unwrap();
    assert_eq!(lab.state(&id), State::Done);
}

#[test]
fn a_transfer_parks_the_parent_interaction() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    let call = connect(&mut lab, &id, "1001", at(2));
    lab.act(
        at(3),
        &id,
        "1001",
        InteractionAction::Transfer { to: "1002".into() },
    )
    .unwrap();
    assert!(matches!(
        lab.commands.last(),
        Some(CallCommand::Transfer {
            leg: LegRole::A,
            ..
        })
    ));
    lab.call(
        at(4),
        CallEvent::Transferred {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
            attended: false,
        },
    );
    let cb = lab.record(&id);
    assert_eq!(
        (cb.state, cb.interaction_queue.as_str()),
        (State::Parked, "wcb-park")
    );
    assert_eq!(lab.agent_state("1001").0, AgentState::Ready);
    // The rest of the call no longer concerns the interaction.
    lab.call(at(60), ended(&call));
    assert_eq!(lab.state(&id), State::Parked);
}

#[test]
fn idempotency_key_and_duplicates_return_the_first() {
    let mut lab = Lab::new();
    let new = NewCallback::from(support("+33612345678"));
    let first = lab
        .req(
            at(0),
            Request::Create {
                callback: new.clone(),
                idempotency_key: Some("k1".into()),
            },
        )
        .unwrap();
    let again = lab
        .req(
            at(5),
            Request::Create {
                callback: new.clone(),
                idempotency_key: Some("k1".into()),
            },
        )
        .unwrap();
    let (
        Reply::Created {
            callback: a,
            new: true,
        },
        Reply::Created {
            callback: b,
            new: false,
        },
    ) = (first, again)
    else {
        panic!("expected created then replayed");
    };
    assert_eq!(a.id, b.id);
    // Same number and queue without a key: merged into the pending one.
    let mut dup = new;
    dup.request.data.insert("orderId".into(), "42".into());
    let merged = lab
        .req(
            at(6),
            Request::Create {
                callback: dup,
                idempotency_key: None,
            },
        )
        .unwrap();
    let Reply::Created {
        callback: m,
        new: false,
    } = merged
    else {
        panic!()
    };
    assert_eq!(m.id, a.id);
    assert_eq!(
        m.request.data.get("orderId").map(String::as_str),
        Some("42")
    );
    assert_eq!(lab.center.live_count(), 1);
}

#[test]
fn a_scheduled_callback_fires_when_due_and_expires_unreached() {
    let mut lab = Lab::new();
    let id = lab.create_with(at(0), "+33612345678", Some(at(600)), RoutingData::default());
    assert_eq!(lab.state(&id), State::Scheduled);
    assert_eq!(lab.center.poll_timeout(), Some(at(600)));
    lab.tick(at(599));
    assert_eq!(lab.state(&id), State::Scheduled);
    lab.tick(at(600));
    assert_eq!(lab.state(&id), State::Queued);
    // Nobody logs in for a day: it ends as not reached.
    lab.tick(at(600 + 24 * 3600));
    assert_eq!(lab.state(&id), State::NotReached);
}

#[test]
fn business_hours_delay_a_due_callback() {
    let mut s = settings();
    let q = s.queues.get_mut("support").unwrap();
    q.time_zone = Some("UTC".into());
    // Open 09:00-17:00 every day, UTC; T0 is 2027-01-15T08:00:00Z.
    q.business_hours = vec![HoursWindow {
        days: vec![
            jiff::civil::Weekday::Monday,
            jiff::civil::Weekday::Tuesday,
            jiff::civil::Weekday::Wednesday,
            jiff::civil::Weekday::Thursday,
            jiff::civil::Weekday::Friday,
            jiff::civil::Weekday::Saturday,
            jiff::civil::Weekday::Sunday,
        ],
        start: jiff::civil::time(9, 0, 0, 0),
        end: jiff::civil::time(17, 0, 0, 0),
    }];
    let mut lab = Lab::with(s);
    let now: Timestamp = "2027-01-15T08:00:00Z".parse().unwrap();
    let id = lab.create(now, "+33612345678");
    let cb = lab.record(&id);
    assert_eq!(cb.state, State::Scheduled);
    assert_eq!(
        cb.due_at,
        "2027-01-15T09:00:00Z".parse::<Timestamp>().unwrap()
    );
}

#[test]
fn contact_status_reports_position_and_a_recomputed_wait() {
    let mut lab = Lab::new();
    let a = lab.create(at(0), "+33611111111");
    let b = lab.create(at(1), "+33622222222");
    let Reply::Status(s) = lab.req(at(2), Request::Status { id: b.clone() }).unwrap() else {
        panic!()
    };
    assert_eq!(s.position, Some(2));
    let first = s.estimated_wait_secs.unwrap();
    assert!(first > 0);
    // The first one leaves the queue: the second moves up and waits less.
    lab.req(
        at(3),
        Request::Cancel {
            id: a,
            by: Actor::Contact,
            reason: None,
        },
    )
    .unwrap();
    let Reply::Status(s) = lab.req(at(4), Request::Status { id: b }).unwrap() else {
        panic!()
    };
    assert_eq!(s.position, Some(1));
    assert!(s.estimated_wait_secs.unwrap() < first);
}

#[test]
fn a_restart_mid_call_requeues_with_the_attempt_counted() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    connect(&mut lab, &id, "1001", at(2));
    let before = lab.record(&id);
    assert_eq!((before.state, before.attempts), (State::Connected, 1));
    let agent = lab
        .writes
        .iter()
        .rev()
        .find_map(|w| match w {
            Write::Agent(a) if a.id == "1001" => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    let recovered = Recovered {
        callbacks: vec![before],
        agents: vec![agent],
        last_desktop_seq: lab.desktop.last().unwrap().seq,
        idempotency: vec![],
    };
    let after = Lab::recovered(settings(), recovered, at(100));
    let cb = after.record(&id);
    assert_eq!(
        (cb.state, cb.attempts, cb.agent.clone(), cb.call_id.clone()),
        (State::Queued, 1, None, None)
    );
    assert!(after.writes.iter().any(|w| matches!(w,
        Write::History(i, HistoryEntry { kind: HistoryKind::Recovered { from: State::Connected }, .. }) if *i == id)));
    assert_eq!(after.agent_state("1001").0, AgentState::Ready);
    // Desktop numbering continues where it stopped.
    assert!(after.desktop[0].seq > lab.desktop.last().unwrap().seq);
}

#[test]
fn a_refused_originate_returns_to_ready_to_call() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    lab.act(at(2), &id, "1001", InteractionAction::Call)
        .unwrap();
    let CallCommand::Originate(o) = lab.commands.last().unwrap().clone() else {
        panic!()
    };
    lab.center.handle_command_failed(
        at(3),
        &CallCommand::Originate(o),
        &CommandError::NoRoute("+33612345678".into()),
    );
    lab.drain();
    let cb = lab.record(&id);
    assert_eq!((cb.state, cb.attempts), (State::ReadyToCall, 0));
    assert_eq!(lab.agent_state("1001").0, AgentState::Ready);
}

#[test]
fn actions_outside_their_state_or_owner_are_refused() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    lab.login(at(0), "1002");
    let id = lab.create(at(1), "+33612345678");
    let owner = lab.offers(&id)[0].clone();
    let other = if owner == "1001" { "1002" } else { "1001" };
    assert!(matches!(
        lab.act(at(2), &id, other, InteractionAction::Accept),
        Err(ActionError::NotOwner { .. })
    ));
    assert!(matches!(
        lab.act(at(2), &id, &owner, InteractionAction::Hold),
        Err(ActionError::WrongState { .. })
    ));
    assert!(matches!(
        lab.act(
            at(2),
            &id,
            &owner,
            InteractionAction::Done { disposition: None }
        ),
        Err(ActionError::WrongState { .. })
    ));
    assert!(matches!(
        lab.req(
            at(2),
            Request::Agent {
                agent: "9999".into(),
                action: AgentAction::Login
            }
        ),
        Err(ActionError::NoAgent(_))
    ));
}

#[test]
fn an_agent_with_an_open_call_cannot_log_out_and_logout_requeues_the_rest() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    let call = connect(&mut lab, &id, "1001", at(2));
    assert!(matches!(
        lab.req(
            at(3),
            Request::Agent {
                agent: "1001".into(),
                action: AgentAction::Logout
            }
        ),
        Err(ActionError::WrongState { .. })
    ));
    lab.call(at(4), ended(&call));
    lab.req(
        at(5),
        Request::Agent {
            agent: "1001".into(),
            action: AgentAction::Logout,
        },
    )
    .unwrap();
    assert_eq!(lab.state(&id), State::Queued);
    assert_eq!(lab.agent_state("1001").0, AgentState::LoggedOut);
}

#[test]
fn an_agent_on_a_call_schedules_a_new_callback_for_the_contact() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    connect(&mut lab, &id, "1001", at(2));
    let r = lab
        .req(
            at(3),
            Request::ScheduleForContact {
                agent: "1001".into(),
                at: Some(at(7200)),
                number: None,
                data: BTreeMap::from([("topic".to_string(), "renewal".to_string())]),
            },
        )
        .unwrap();
    let Reply::Created {
        callback,
        new: true,
    } = r
    else {
        panic!()
    };
    assert_ne!(callback.id, id);
    assert_eq!(
        callback.request.callback_numbers,
        vec!["+33612345678".to_string()]
    );
    assert_eq!(callback.state, State::Scheduled);
    assert_eq!(
        callback.request.data.get("topic").map(String::as_str),
        Some("renewal")
    );
}

#[test]
fn a_call_event_that_does_not_fit_is_ignored() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    lab.act(at(2), &id, "1001", InteractionAction::Accept)
        .unwrap();
    lab.act(at(2), &id, "1001", InteractionAction::Call)
        .unwrap();
    let call = lab.last_originate().call.unwrap();
    // A hold before anyone answered does not fit Establishing.
    lab.call(
        at(3),
        CallEvent::Held {
            call: call.clone(),
            leg: LegRole::B,
            by_switch: false,
        },
    );
    assert_eq!(lab.state(&id), State::Establishing);
    // Events of unknown calls change nothing.
    lab.call(at(3), ended(&CallId("other".into())));
    assert_eq!(lab.state(&id), State::Establishing);
}

#[test]
fn routing_option_overrides_are_checked_at_creation() {
    let mut lab = Lab::new();
    for (key, value, field) in [
        (
            "webcallback.auto-dial",
            serde_json::json!("maybe"),
            "routingData.options.webcallback.auto-dial",
        ),
        (
            "webcallback.no-such",
            serde_json::json!(true),
            "routingData.options.webcallback.no-such",
        ),
        (
            "webcallback.auto-answer.timer",
            serde_json::json!(30),
            "routingData.options.webcallback.auto-answer.timer",
        ),
    ] {
        let r = lab.req(
            at(0),
            Request::Create {
                callback: NewCallback::from(CallbackRequest {
                    routing_data: RoutingData {
                        options: BTreeMap::from([(key.to_string(), value)]),
                        ..Default::default()
                    },
                    ..support("+33612345678")
                }),
                idempotency_key: None,
            },
        );
        match r {
            Err(ActionError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert_eq!(lab.center.live_count(), 0);
}

#[test]
fn idempotency_keys_are_forgotten_after_their_window() {
    let mut lab = Lab::new();
    let new = NewCallback::from(support("+33612345678"));
    lab.req(
        at(0),
        Request::Create {
            callback: new.clone(),
            idempotency_key: Some("k".into()),
        },
    )
    .unwrap();
    let cutoff = lab.center.forget_old_keys(at(24 * 3600 + 1));
    assert_eq!(cutoff, at(1));
    // The key is gone: the same request with it is a merge now, not a replay.
    let again = lab
        .req(
            at(24 * 3600 + 2),
            Request::Create {
                callback: new,
                idempotency_key: Some("k".into()),
            },
        )
        .unwrap();
    assert!(matches!(again, Reply::Created { new: false, .. }));
    assert!(lab.writes.iter().any(|w| matches!(
        w,
        Write::History(
            _,
            HistoryEntry {
                kind: HistoryKind::Merged { .. },
                ..
            }
        )
    )));
}

#[test]
fn a_replayed_key_of_a_finished_callback_names_it() {
    let mut lab = Lab::new();
    lab.login(at(0), "1001");
    let new = NewCallback::from(support("+33612345678"));
    let first = lab.req(
        at(1),
        Request::Create {
            callback: new.clone(),
            idempotency_key: Some("k".into()),
        },
    );
    let Ok(Reply::Created {
        callback,
        new: true,
    }) = first
    else {
        panic!("{first:?}")
    };
    lab.act(at(2), &callback.id, "1001", InteractionAction::MarkDone)
        .unwrap();
    let again = lab.req(
        at(3),
        Request::Create {
            callback: new,
            idempotency_key: Some("k".into()),
        },
    );
    assert_eq!(again, Ok(Reply::Replayed(callback.id)));
    assert_eq!(lab.center.live_count(), 0);
}

#[test]
fn a_record_saved_twice_in_one_turn_is_written_once_as_it_ends() {
    let mut lab = Lab::new();
    lab.writes.clear();
    let id = lab.create(at(1), "+33612345678");
    let saves: Vec<State> = lab
        .writes
        .iter()
        .filter_map(|w| match w {
            Write::Callback(cb) if cb.id == id => Some(cb.state),
            _ => None,
        })
        .collect();
    // Created (scheduled) and due at once (queued): one write, the last.
    assert_eq!(saves, [State::Queued]);
    assert_eq!(lab.path(&id), [State::Queued], "the history keeps the move");
}

#[test]
fn a_replay_lookup_answers_the_first_result_and_creates_nothing() {
    let mut lab = Lab::new();
    let replay = |lab: &mut Lab, secs| {
        lab.req(
            at(secs),
            Request::Replay {
                idempotency_key: "k-1".into(),
            },
        )
    };
    assert_eq!(replay(&mut lab, 0), Ok(Reply::NoReplay));
    let r = lab.req(
        at(1),
        Request::Create {
            callback: NewCallback::from(support("+33612345678")),
            idempotency_key: Some("k-1".into()),
        },
    );
    let Ok(Reply::Created {
        callback,
        new: true,
    }) = r
    else {
        panic!("{r:?}")
    };
    lab.writes.clear();
    match replay(&mut lab, 2) {
        Ok(Reply::Created {
            callback: first,
            new: false,
        }) => assert_eq!(first.id, callback.id),
        other => panic!("{other:?}"),
    }
    assert!(lab.writes.is_empty(), "a lookup writes nothing");
    // Past the window (24 h) the key is forgotten.
    assert_eq!(replay(&mut lab, 1 + 24 * 3600), Ok(Reply::NoReplay));
}
