//! Workforce-management events in virtual time: what the center commits to
//! the outbox for agent changes (end-call events have their own tests).

use super::testlab::*;
use crate::callback::action::AgentAction;
use crate::callback::model::Write;
pub(super) use crate::integrations::notify::testkit::endpoint;
use crate::integrations::notify::{Delivery, EventFilter, NoticeKind, OutboxWrite};

pub(super) fn outbox(lab: &Lab) -> Vec<Delivery> {
    lab.writes
        .iter()
        .filter_map(|w| match w {
            Write::Outbox(OutboxWrite::Enqueue(d)) => Some(d.as_ref().clone()),
            _ => None,
        })
        .collect()
}

fn agent_do(lab: &mut Lab, secs: i64, agent: &str, action: AgentAction) {
    lab.req(
        at(secs),
        crate::callback::action::Request::Agent {
            agent: agent.into(),
            action,
        },
    )
    .unwrap();
}

#[test]
fn agent_changes_are_committed_for_the_endpoints_that_want_them() {
    let mut s = settings();
    s.notify.endpoints = vec![
        endpoint(
            "wfm",
            EventFilter {
                all_agent_states: true,
                ..Default::default()
            },
        ),
        endpoint(
            "logins",
            EventFilter {
                agent_login: true,
                ..Default::default()
            },
        ),
    ];
    let mut lab = Lab::with(s);
    lab.login(at(1), "1001");
    agent_do(
        &mut lab,
        61,
        "1001",
        AgentAction::NotReady {
            reason: Some("Lunch".into()),
        },
    );
    agent_do(&mut lab, 100, "1001", AgentAction::Logout);

    let rows = outbox(&lab);
    let wfm: Vec<_> = rows.iter().filter(|d| d.endpoint == "wfm").collect();
    let logins: Vec<_> = rows.iter().filter(|d| d.endpoint == "logins").collect();
    assert_eq!(logins.len(), 1, "{rows:#?}");
    assert!(matches!(logins[0].notice.kind, NoticeKind::AgentLogin(_)));
    let kinds: Vec<_> = wfm
        .iter()
        .map(|d| {
            assert_eq!(d.lane, "1001");
            match &d.notice.kind {
                NoticeKind::AgentLogin(n)
                | NoticeKind::AgentState(n)
                | NoticeKind::AgentLogout(n) => (
                    d.notice.kind.as_str(),
                    n.state_name.clone(),
                    n.previous_state_name.clone(),
                    n.previous_state_seconds,
                ),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "agent-login",
                "Available".into(),
                Some("Logged Out".into()),
                Some(1)
            ),
            (
                "agent-state",
                "Lunch".into(),
                Some("Available".into()),
                Some(60)
            ),
            (
                "agent-logout",
                "Logged Out".into(),
                Some("Lunch".into()),
                Some(39)
            ),
        ]
    );
    // The same event to two endpoints keeps one id; every event has its own.
    assert_eq!(logins[0].notice.event_id, wfm[0].notice.event_id);
    let mut ids: Vec<_> = wfm.iter().map(|d| &d.notice.event_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3);
}

#[test]
fn nothing_is_committed_without_endpoints() {
    let mut lab = Lab::new();
    lab.login(at(1), "1001");
    agent_do(&mut lab, 2, "1001", AgentAction::Logout);
    assert!(outbox(&lab).is_empty());
}
