//! The center's test lab: settings, a center driven in virtual time, and
//! the call events tests feed it. Shared by the test files beside it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::{Center, Recovered};
use crate::call::{CallCommand, CallEvent, CallId, EndedBy, Failure, LegRole, Progress};
use crate::callback::action::*;
use crate::callback::model::*;
use crate::callback::request::CallbackRequest;
use crate::callback::settings::*;

pub(super) const T0: i64 = 1_800_000_000;

pub(super) fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

pub(super) fn backoff(secs: u64) -> Backoff {
    Backoff {
        delay: Duration::from_secs(secs),
        multiplier: 2.0,
        max_delay: Duration::from_secs(3600),
    }
}

pub(super) fn agent(id: &str, skills: &[&str]) -> AgentSettings {
    AgentSettings {
        id: id.into(),
        name: None,
        team: Some("tier1".into()),
        skills: skills.iter().map(|s| s.to_string()).collect(),
        privileges: Privileges::default(),
    }
}

/// A request for the `support` queue to call `number`.
pub(super) fn support(number: &str) -> CallbackRequest {
    CallbackRequest {
        queue_id: "support".into(),
        callback_numbers: vec![number.into()],
        ..CallbackRequest::default()
    }
}

pub(super) fn settings() -> CallbackSettings {
    let queue = QueueSettings {
        id: "support".into(),
        skills: vec![],
        time_zone: None,
        business_hours: vec![],
        closed_dates: vec![],
        max_attempts: 2,
        retry: RetryPolicy {
            busy: backoff(60),
            no_answer: backoff(120),
            failed: backoff(300),
        },
        expiry: Some(Duration::from_secs(24 * 3600)),
    };
    CallbackSettings {
        database: "unused.db".into(),
        offer_timeout: Duration::from_secs(30),
        agent_profile: "internal".into(),
        ready_after_done: true,
        idempotency_window: Duration::from_secs(24 * 3600),
        exclusion: Duration::from_secs(600),
        options: WebcallbackOptions {
            auto_answer: false,
            auto_answer_timer: Duration::ZERO,
            auto_answer_enable_reject: true,
            auto_dial: false,
            callback_information_content: vec!["callbackUserName".into(), "callbackNumber".into()],
            complete_queue: "wcb-complete".into(),
            park_queue: "wcb-park".into(),
            reschedule_queue: "wcb-reschedule".into(),
            not_ready_on_offer_timeout: Some("Away".into()),
        },
        login: LoginOptions {
            is_auto_ready: true,
            auto_not_ready_reason: None,
            can_unactivate_channel: true,
        },
        queues: BTreeMap::from([("support".to_string(), queue)]),
        agents: BTreeMap::from([
            ("1001".to_string(), agent("1001", &[])),
            ("1002".to_string(), agent("1002", &[])),
        ]),
        notify: Default::default(),
        enrichment: Default::default(),
    }
}

pub(super) struct Lab {
    pub(super) center: Center,
    /// Every write so far, as the store would have them.
    pub(super) writes: Vec<Write>,
    pub(super) commands: Vec<CallCommand>,
    pub(super) desktop: Vec<DesktopEvent>,
}

impl Lab {
    pub(super) fn new() -> Lab {
        Lab::with(settings())
    }

    pub(super) fn with(s: CallbackSettings) -> Lab {
        Lab::recovered(s, Recovered::default(), at(0))
    }

    pub(super) fn recovered(s: CallbackSettings, r: Recovered, now: Timestamp) -> Lab {
        let mut lab = Lab {
            center: Center::new(Arc::new(s), r, now),
            writes: vec![],
            commands: vec![],
            desktop: vec![],
        };
        lab.drain();
        lab
    }

    pub(super) fn drain(&mut self) {
        // After every step the indexes over the live interactions are true.
        if let Err(e) = self.center.check() {
            panic!("the center's indexes are off: {e}");
        }
        self.writes.extend(self.center.take_writes());
        while let Some(c) = self.center.poll_command() {
            self.commands.push(c);
        }
        while let Some(d) = self.center.poll_desktop() {
            self.desktop.push(d);
        }
    }

    pub(super) fn req(&mut self, now: Timestamp, r: Request) -> Result<Reply, ActionError> {
        let out = self.center.handle_request(now, r);
        self.drain();
        out
    }

    pub(super) fn create(&mut self, now: Timestamp, number: &str) -> InteractionId {
        self.create_with(now, number, None, RoutingData::default())
    }

    pub(super) fn create_with(
        &mut self,
        now: Timestamp,
        number: &str,
        when: Option<Timestamp>,
        routing: RoutingData,
    ) -> InteractionId {
        let r = self.req(
            now,
            Request::Create {
                callback: NewCallback::from(CallbackRequest {
                    callback_user_name: Some("Jane".into()),
                    callback_scheduled_time: when,
                    routing_data: routing,
                    ..support(number)
                }),
                idempotency_key: None,
            },
        );
        match r {
            Ok(Reply::Created {
                callback,
                new: true,
            }) => callback.id,
            other => panic!("create: {other:?}"),
        }
    }

    pub(super) fn login(&mut self, now: Timestamp, agent: &str) {
        self.req(
            now,
            Request::Agent {
                agent: agent.into(),
                action: AgentAction::Login,
            },
        )
        .unwrap();
        self.center
            .handle_registration(now, agent, &format!("sip:{agent}@127.0.0.1"), true);
        self.drain();
    }

    pub(super) fn act(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        agent: &str,
        action: InteractionAction,
    ) -> Result<Reply, ActionError> {
        self.req(
            now,
            Request::Interaction {
                id: id.clone(),
                agent: agent.into(),
                action,
            },
        )
    }

    pub(super) fn call(&mut self, now: Timestamp, e: CallEvent) {
        self.center.handle_call_event(now, &e);
        self.drain();
    }

    pub(super) fn tick(&mut self, now: Timestamp) {
        self.center.handle_timeout(now);
        self.drain();
    }

    /// The interaction's state as the store last got it.
    pub(super) fn state(&self, id: &InteractionId) -> State {
        self.record(id).state
    }

    pub(super) fn record(&self, id: &InteractionId) -> Callback {
        self.writes
            .iter()
            .rev()
            .find_map(|w| match w {
                Write::Callback(cb) if cb.id == *id => Some((**cb).clone()),
                _ => None,
            })
            .expect("no record written")
    }

    pub(super) fn agent_state(&self, agent: &str) -> (AgentState, Option<String>) {
        self.writes
            .iter()
            .rev()
            .find_map(|w| match w {
                Write::Agent(a) if a.id == agent => Some((a.state, a.reason.clone())),
                _ => None,
            })
            .expect("no agent record")
    }

    /// The states the interaction went through, from its history writes.
    pub(super) fn path(&self, id: &InteractionId) -> Vec<State> {
        self.writes
            .iter()
            .filter_map(|w| match w {
                Write::History(
                    i,
                    HistoryEntry {
                        kind: HistoryKind::StateChanged { to, .. },
                        ..
                    },
                ) if i == id => Some(*to),
                _ => None,
            })
            .collect()
    }

    pub(super) fn offers(&self, id: &InteractionId) -> Vec<String> {
        self.desktop
            .iter()
            .filter_map(|d| match &d.kind {
                DesktopEventKind::Offer { id: i, agent, .. } if i == id => Some(agent.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn last_originate(&self) -> crate::call::Originate {
        self.commands
            .iter()
            .rev()
            .find_map(|c| match c {
                CallCommand::Originate(o) => Some(o.clone()),
                _ => None,
            })
            .expect("no originate")
    }
}

pub(super) fn leg(call: &CallId, leg: LegRole, progress: Progress) -> CallEvent {
    CallEvent::Leg {
        call: call.clone(),
        leg,
        progress,
    }
}

pub(super) fn ended(call: &CallId) -> CallEvent {
    CallEvent::Ended {
        call: call.clone(),
        by: EndedBy::B,
        cause: "bye".into(),
        status: None,
    }
}

pub(super) fn failed(call: &CallId, status: u16) -> CallEvent {
    CallEvent::LegFailed {
        call: call.clone(),
        leg: LegRole::B,
        status,
        failure: Failure::from_status(status),
    }
}

/// Offer, accept and place the call; returns the voice call's id.
pub(super) fn connect(lab: &mut Lab, id: &InteractionId, agent: &str, now: Timestamp) -> CallId {
    if lab.state(id) == State::Offered {
        lab.act(now, id, agent, InteractionAction::Accept).unwrap();
    }
    lab.act(now, id, agent, InteractionAction::Call).unwrap();
    let call = lab.last_originate().call.unwrap();
    lab.call(now, leg(&call, LegRole::A, Progress::Answered));
    lab.call(now, leg(&call, LegRole::B, Progress::Ringing));
    lab.call(now, leg(&call, LegRole::B, Progress::Answered));
    call
}
