//! End-call events in virtual time: each voice call of an interaction is
//! reported once, when its agent has wrapped the interaction up, with its
//! talk and hold figures, the disposition and the recording's link; and a
//! call a crash left unreported is reported at recovery.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::notice_tests::{endpoint, outbox};
use super::testlab::*;
use super::Recovered;
use crate::call::{CallEvent, CallId, EndedBy, LegRole, Progress};
use crate::callback::action::{AgentAction, InteractionAction, Request};
use crate::callback::model::*;
use crate::callback::settings::CallbackSettings;
use crate::integrations::notify::{EndCallNotice, EventFilter, NoticeKind};

const PUBLIC: &str = "https://switch.example:8443";

/// Settings with one endpoint for end-call events and a public base URL;
/// agent 1001 has a name.
fn end_call_settings() -> CallbackSettings {
    let mut s = settings();
    s.notify.endpoints = vec![endpoint(
        "wfm",
        EventFilter {
            end_call: true,
            ..Default::default()
        },
    )];
    s.notify.public_url = Some(PUBLIC.into());
    if let Some(a) = s.agents.get_mut("1001") {
        a.name = Some("Ada Lovelace".into());
    }
    s
}

/// The end-call events committed so far, in order.
fn end_calls(lab: &Lab) -> Vec<EndCallNotice> {
    outbox(lab)
        .into_iter()
        .filter_map(|d| match d.notice.kind {
            NoticeKind::EndCall(n) => {
                assert_eq!((d.endpoint.as_str(), d.lane.as_str()), ("wfm", "1001"));
                Some(n)
            }
            _ => None,
        })
        .collect()
}

fn act(lab: &mut Lab, secs: i64, id: &InteractionId, action: InteractionAction) {
    lab.act(at(secs), id, "1001", action).unwrap();
}

fn held(call: &CallId, leg: LegRole, by_switch: bool) -> CallEvent {
    CallEvent::Held {
        call: call.clone(),
        leg,
        by_switch,
    }
}

fn retrieved(call: &CallId, leg: LegRole) -> CallEvent {
    CallEvent::Retrieved {
        call: call.clone(),
        leg,
        by_switch: true,
    }
}

fn recording(call: &CallId) -> CallEvent {
    CallEvent::RecordingStarted {
        call: call.clone(),
        path: PathBuf::from(format!("/var/lib/switchback/recordings/{call}.wav")),
    }
}

/// Logged in, created at 1 s, offered to 1001, accepted and connected at
/// 2 s (the contact answered at 2 s).
fn connected(s: CallbackSettings) -> (Lab, InteractionId, CallId) {
    let mut lab = Lab::with(s);
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    let call = connect(&mut lab, &id, "1001", at(2));
    (lab, id, call)
}

#[test]
fn done_reports_talk_hold_disposition_and_the_recording_link() {
    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(at(5), recording(&call));
    // Stored at once, though the interaction's state did not move.
    let file = format!("{call}.wav");
    assert_eq!(lab.record(&id).calls[0].recording.as_deref(), Some(&*file));
    // 20..30 s held by the switch, 40..45 s by the contact's phone.
    act(&mut lab, 20, &id, InteractionAction::Hold);
    lab.call(at(20), held(&call, LegRole::B, true));
    lab.call(at(30), retrieved(&call, LegRole::B));
    lab.call(at(40), held(&call, LegRole::B, false));
    lab.call(at(45), retrieved(&call, LegRole::B));
    // The agent's end-call: the switch hangs up, on the agent's behalf.
    act(&mut lab, 62, &id, InteractionAction::EndCall);
    lab.call(
        at(62),
        CallEvent::Ended {
            call: call.clone(),
            by: EndedBy::Switch,
            cause: "hangup".into(),
            status: None,
        },
    );
    // Ended but not wrapped up: nothing yet, the figures are on the record.
    assert!(end_calls(&lab).is_empty());
    let stored = lab.record(&id).calls;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].hold_ms, stored[0].ended_at, stored[0].reported),
        (15_000, Some(at(62)), false)
    );

    act(
        &mut lab,
        90,
        &id,
        InteractionAction::Done {
            disposition: Some("Sold".into()),
        },
    );
    let events = end_calls(&lab);
    assert_eq!(
        events,
        [EndCallNotice {
            agent_id: "1001".into(),
            agent_name: Some("Ada Lovelace".into()),
            interaction_id: id.0.clone(),
            call_id: call.0.clone(),
            queue_id: "support".into(),
            contact_number: Some("+33612345678".into()),
            started_at: at(2),
            answered_at: Some(at(2)),
            ended_at: at(62),
            duration_seconds: 60,
            talk_seconds: 45,
            hold_seconds: 15,
            disposition: Some("Sold".into()),
            recording_url: Some(format!("{PUBLIC}/v1/recordings/{call}.wav")),
            ended_by: "agent".into(),
            cause: "hangup".into(),
            transferred_to: None,
        }]
    );
    // The event is committed with the record that says so.
    let cb = lab.record(&id);
    assert_eq!(cb.state, State::Done);
    assert!(cb.calls[0].reported);
    let notice = outbox(&lab)
        .into_iter()
        .find(|d| matches!(d.notice.kind, NoticeKind::EndCall(_)))
        .unwrap()
        .notice;
    assert_eq!(notice.timestamp, at(90));
    let json = serde_json::to_value(&notice).unwrap();
    assert_eq!(json["eventType"], "end-call");
    assert_eq!(json["talkSeconds"], 45);
}

#[test]
fn a_hold_open_when_the_call_ends_counts_up_to_the_end() {
    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(at(10), held(&call, LegRole::B, true));
    lab.call(at(15), held(&call, LegRole::A, false));
    lab.call(at(20), ended(&call));
    act(
        &mut lab,
        25,
        &id,
        InteractionAction::Done { disposition: None },
    );
    let e = &end_calls(&lab)[0];
    assert_eq!(
        (
            e.duration_seconds,
            e.talk_seconds,
            e.hold_seconds,
            e.recording_url.clone()
        ),
        (18, 8, 10, None)
    );
    assert_eq!(
        (e.ended_by.as_str(), e.disposition.clone()),
        ("contact", None)
    );
}

/// The ways out other than Done report too, without a disposition.
#[test]
fn reschedule_decline_and_mark_done_wrap_the_call_up() {
    let reschedule = InteractionAction::Reschedule {
        at: at(3600),
        number: None,
    };
    let ways = [
        ("reschedule", reschedule, State::Rescheduled),
        ("decline", InteractionAction::Decline, State::Declined),
        ("mark done", InteractionAction::MarkDone, State::Done),
    ];
    for (name, action, state) in ways {
        let (mut lab, id, call) = connected(end_call_settings());
        lab.call(at(32), ended(&call));
        assert!(end_calls(&lab).is_empty(), "{name}");
        act(&mut lab, 40, &id, action);
        assert_eq!(lab.state(&id), state, "{name}");
        let events = end_calls(&lab);
        assert_eq!(events.len(), 1, "{name}");
        assert_eq!(
            (
                events[0].talk_seconds,
                events[0].disposition.clone(),
                events[0].ended_at
            ),
            (30, None, at(32)),
            "{name}"
        );
        assert!(lab.record(&id).calls[0].reported, "{name}");
    }
}

#[test]
fn an_unanswered_call_has_no_answer_time_and_no_talk() {
    let mut lab = Lab::with(end_call_settings());
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    act(&mut lab, 2, &id, InteractionAction::Accept);
    act(&mut lab, 2, &id, InteractionAction::Call);
    let call = lab.last_originate().call.unwrap();
    lab.call(at(3), leg(&call, LegRole::A, Progress::Answered));
    lab.call(at(4), leg(&call, LegRole::B, Progress::Ringing));
    lab.call(at(20), failed(&call, 480));
    lab.call(at(20), ended(&call));
    assert_eq!(lab.state(&id), State::ReadyToCall);
    act(
        &mut lab,
        25,
        &id,
        InteractionAction::Done {
            disposition: Some("No answer".into()),
        },
    );
    let e = &end_calls(&lab)[0];
    assert_eq!(e.answered_at, None);
    assert_eq!(
        (e.duration_seconds, e.talk_seconds, e.hold_seconds),
        (18, 0, 0)
    );
    assert_eq!(
        (e.ended_by.as_str(), e.cause.as_str()),
        ("contact", "no-answer")
    );
    assert_eq!(e.disposition.as_deref(), Some("No answer"));
}

#[test]
fn two_calls_of_one_interaction_are_each_reported_once() {
    let mut lab = Lab::with(end_call_settings());
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    act(&mut lab, 2, &id, InteractionAction::Accept);
    act(&mut lab, 2, &id, InteractionAction::Call);
    let first = lab.last_originate().call.unwrap();
    lab.call(at(5), failed(&first, 486));
    lab.call(at(5), ended(&first));
    let second = connect(&mut lab, &id, "1001", at(10));
    assert_ne!(first, second);
    lab.call(at(70), ended(&second));
    assert_eq!(lab.record(&id).calls.len(), 2);
    act(
        &mut lab,
        80,
        &id,
        InteractionAction::Done {
            disposition: Some("Callback kept".into()),
        },
    );
    let events = end_calls(&lab);
    let ids: Vec<_> = events.iter().map(|e| e.call_id.as_str()).collect();
    assert_eq!(ids, [first.0.as_str(), second.0.as_str()]);
    assert_eq!(events[0].answered_at, None);
    assert_eq!(events[1].answered_at, Some(at(10)));
    assert_eq!(events[1].talk_seconds, 60);
    assert!(events
        .iter()
        .all(|e| e.disposition.as_deref() == Some("Callback kept")));
    // Late events of a finished interaction report nothing more.
    lab.call(at(81), ended(&second));
    assert_eq!(end_calls(&lab).len(), 2);
}

#[test]
fn an_auto_dial_retry_reports_the_failed_call_at_once() {
    let mut lab = Lab::with(end_call_settings());
    lab.login(at(0), "1001");
    let routing = RoutingData {
        options: BTreeMap::from([
            ("webcallback.auto-answer".into(), serde_json::json!(true)),
            ("webcallback.auto-dial".into(), serde_json::json!(true)),
        ]),
        ..Default::default()
    };
    let id = lab.create_with(at(1), "+33612345678", None, routing);
    let call = lab.last_originate().call.unwrap();
    lab.call(at(2), leg(&call, LegRole::A, Progress::Answered));
    lab.call(at(6), failed(&call, 486));
    assert_eq!(lab.state(&id), State::Scheduled);
    let events = end_calls(&lab);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].cause.as_str(), events[0].ended_at),
        ("busy", at(6))
    );
    lab.call(at(6), ended(&call));
    assert_eq!(end_calls(&lab).len(), 1, "its end changes nothing");
}

#[test]
fn a_transfer_that_parks_and_a_logout_requeue_report_the_call() {
    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(
        at(30),
        CallEvent::Transferred {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
            attended: false,
        },
    );
    assert_eq!(lab.state(&id), State::Parked);
    let e = &end_calls(&lab)[0];
    assert_eq!(
        (e.ended_by.as_str(), e.cause.as_str(), e.talk_seconds),
        ("agent", "transferred", 28)
    );

    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(at(12), ended(&call));
    lab.req(
        at(20),
        Request::Agent {
            agent: "1001".into(),
            action: AgentAction::Logout,
        },
    )
    .unwrap();
    assert_eq!(lab.state(&id), State::Queued);
    assert_eq!(end_calls(&lab).len(), 1);
    assert_eq!(end_calls(&lab)[0].talk_seconds, 10);
}

#[test]
fn an_attended_transfer_reports_to_whom() {
    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(
        at(30),
        CallEvent::Transferred {
            call: call.clone(),
            by: LegRole::A,
            to: "1002".into(),
            attended: true,
        },
    );
    assert_eq!(lab.state(&id), State::Parked);
    let e = &end_calls(&lab)[0];
    assert_eq!(
        (e.cause.as_str(), e.transferred_to.as_deref()),
        ("transferred", Some("1002"))
    );
}

/// `kill -9` after the call ended but before Done: the stored record still
/// has the figures, and recovery reports the call; a call that was up when
/// the switch died ends at the restart.
#[test]
fn recovery_reports_what_a_crash_left_unreported() {
    let (mut lab, id, call) = connected(end_call_settings());
    lab.call(at(5), recording(&call));
    lab.call(at(10), held(&call, LegRole::B, true));
    lab.call(at(40), ended(&call));
    let stored = lab.record(&id);
    assert_eq!(
        stored.calls[0].recording.as_deref(),
        Some(&*format!("{call}.wav"))
    );
    let recovered = Recovered {
        callbacks: vec![stored],
        ..Default::default()
    };
    let after = Lab::recovered(end_call_settings(), recovered.clone(), at(500));
    let events = end_calls(&after);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (
            events[0].ended_at,
            events[0].talk_seconds,
            events[0].hold_seconds,
            events[0].cause.as_str()
        ),
        (at(40), 8, 30, "bye")
    );
    assert_eq!(
        events[0].recording_url.as_deref(),
        Some(&*format!("{PUBLIC}/v1/recordings/{call}.wav"))
    );
    let cb = after.record(&id);
    assert_eq!(cb.state, State::Queued);
    assert!(cb.calls[0].reported, "stored with the event");
    // A second restart reports nothing again.
    let again = Lab::recovered(
        end_call_settings(),
        Recovered {
            callbacks: vec![cb],
            ..Default::default()
        },
        at(600),
    );
    assert!(end_calls(&again).is_empty());

    // Up when the switch died: it ended, as far as anyone knows, at the restart.
    let (lab, id, _) = connected(end_call_settings());
    let after = Lab::recovered(
        end_call_settings(),
        Recovered {
            callbacks: vec![lab.record(&id)],
            ..Default::default()
        },
        at(100),
    );
    let e = &end_calls(&after)[0];
    assert_eq!(
        (
            e.ended_at,
            e.ended_by.as_str(),
            e.cause.as_str(),
            e.talk_seconds
        ),
        (at(100), "switch", "switch-restarted", 98)
    );
}

#[test]
fn no_event_without_an_end_call_endpoint_but_the_calls_are_kept() {
    let mut s = end_call_settings();
    s.notify.endpoints = vec![endpoint(
        "states",
        EventFilter {
            all_agent_states: true,
            ..Default::default()
        },
    )];
    let (mut lab, id, call) = connected(s);
    lab.call(at(20), ended(&call));
    act(
        &mut lab,
        25,
        &id,
        InteractionAction::Done { disposition: None },
    );
    let rows = outbox(&lab);
    assert!(!rows.is_empty(), "agent states still go out");
    assert!(rows
        .iter()
        .all(|d| !matches!(d.notice.kind, NoticeKind::EndCall(_))));
    let cb = lab.record(&id);
    assert_eq!(cb.calls.len(), 1);
    assert!(cb.calls[0].reported);
}

#[test]
fn a_refused_call_leaves_no_record_and_old_records_read_without_calls() {
    let mut lab = Lab::with(end_call_settings());
    lab.login(at(0), "1001");
    let id = lab.create(at(1), "+33612345678");
    act(&mut lab, 2, &id, InteractionAction::Accept);
    act(&mut lab, 2, &id, InteractionAction::Call);
    let command = lab.commands.last().unwrap().clone();
    let call = lab.last_originate().call.unwrap();
    lab.center.handle_command_failed(
        at(2),
        &command,
        &crate::call::CommandError::NoRoute("1001".into()),
    );
    lab.drain();
    let cb = lab.record(&id);
    assert_eq!(cb.state, State::ReadyToCall);
    assert!(cb.calls.iter().all(|c| c.call_id != call.0), "{cb:?}");

    // A record stored before calls were kept has none.
    let mut json = serde_json::to_value(&cb).unwrap();
    json.as_object_mut().unwrap().remove("calls");
    let old: Callback = serde_json::from_value(json).unwrap();
    assert!(old.calls.is_empty());
}
