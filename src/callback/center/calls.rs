//! Call events applied to interactions through the mapping table, and what
//! a move means beyond the state: the contact answered (reached), a failed
//! attempt retried by the queue's policy when the interaction dials by
//! itself, the call's end putting the agent in after-call work, a transfer
//! parking the parent interaction. Each event also updates the call's own
//! record (`endcall`). Which interaction a call is for is `interactions`'
//! index, filed when the call is placed (`actions::place_call`).

use jiff::Timestamp;

use super::Center;
use crate::call::{CallCommand, CallEvent, CommandError, Failure, LegRole, Progress};
use crate::callback::mapping::{self, Mapping};
use crate::callback::model::{AgentState, DesktopEventKind, HistoryKind, InteractionId, State};
use crate::callback::schedule::{self, Outcome, RetryDecision};

impl Center {
    pub(super) fn call_event(&mut self, now: Timestamp, event: &CallEvent) {
        let call = event.call().0.clone();
        let Some(id) = self.interactions.call_owner(&call).cloned() else {
            return;
        };
        if matches!(event, CallEvent::Ended { .. }) {
            self.interactions.unbind_call(&call);
        }
        let Some(state) = self.interactions.get(&id).map(|l| l.cb.state) else {
            return;
        };
        self.record_call_event(&id, now, event);
        self.track_consult(&id, now, event);
        let tracked = self.track_call(&id, now, event);
        let mapping = mapping::map(state, event);
        let ended = matches!(event, CallEvent::Ended { .. });
        if ended {
            self.call_over(&id, now, &call);
        } else if tracked && !matches!(mapping, Mapping::To(..)) {
            // No move will store the record: store the call's new figures
            // (a recording, a hold of a held call) for a crash to find.
            self.save(&id, now);
        }
        match mapping {
            Mapping::Ignore => {
                tracing::info!(interaction = %id, %state, event = %event, "call event does not fit the interaction's state; ignored");
            }
            Mapping::Record => {}
            Mapping::To(to, reason) => self.apply(&id, now, state, to, reason, event),
        }
    }

    fn apply(
        &mut self,
        id: &InteractionId,
        now: Timestamp,
        from: State,
        to: State,
        reason: &str,
        event: &CallEvent,
    ) {
        match (to, event) {
            (State::Connected, _) => {
                if let Some(l) = self.interactions.get_mut(id) {
                    l.reached = true;
                }
                self.transition(id, now, to, reason);
            }
            (State::Parked, _) => self.finish(now, id, State::Parked, None, reason),
            (
                State::ReadyToCall,
                CallEvent::LegFailed {
                    leg: LegRole::A, ..
                },
            ) => {
                // The contact was never called: the attempt does not count.
                if let Some(l) = self.interactions.get_mut(id) {
                    l.cb.attempts = l.cb.attempts.saturating_sub(1);
                }
                self.transition(id, now, to, reason);
            }
            (State::ReadyToCall, CallEvent::LegFailed { failure, .. })
                if from == State::Establishing =>
            {
                let outcome = match failure {
                    Failure::Busy => Outcome::Busy,
                    Failure::NoAnswer | Failure::Cancelled => Outcome::NoAnswer,
                    _ => Outcome::Failed,
                };
                self.attempt_failed(id, now, outcome, reason);
            }
            _ => self.transition(id, now, to, reason),
        }
    }

    /// The contact was not reached. An interaction that dials by itself is
    /// retried by its queue's policy (or ends as not reached); otherwise it
    /// goes back to Ready to Call and the agent decides.
    fn attempt_failed(
        &mut self,
        id: &InteractionId,
        now: Timestamp,
        outcome: Outcome,
        reason: &str,
    ) {
        let Some(live) = self.interactions.get(id) else {
            return;
        };
        if !live.options.auto_dial {
            self.transition(id, now, State::ReadyToCall, reason);
            return;
        }
        let decision = match self.queue(&live.cb.request.queue_id) {
            Some(q) => {
                schedule::after_attempt(q, outcome, live.cb.attempts, now, live.cb.expires_at)
            }
            None => RetryDecision::GiveUp,
        };
        let agent = self.release_agent(id, now);
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.call_id = None;
        }
        match decision {
            RetryDecision::RetryAt(at) => {
                let why = format!("{reason}; retry");
                self.wait_until(id, now, at, State::Scheduled, &why);
            }
            RetryDecision::GiveUp => {
                self.finish(now, id, State::NotReached, None, "attempts exhausted")
            }
        }
        if let Some(agent) = agent {
            self.agent_freed(&agent, now);
        }
    }

    /// The voice call is over: the interaction has no call, and its agent
    /// (if it still owns it) is in after-call work.
    fn call_over(&mut self, id: &InteractionId, now: Timestamp, call: &str) {
        let Some(live) = self.interactions.get_mut(id) else {
            return;
        };
        if live.cb.call_id.as_deref() == Some(call) {
            live.cb.call_id = None;
        }
        let agent = live.cb.agent.clone();
        self.save(id, now);
        if let Some(agent) = agent {
            if self.agents.state(&agent) == Some(AgentState::Engaged) {
                self.set_agent_state(&agent, now, AgentState::Working, None);
            }
        }
    }

    /// Follows the voice call's consultation: its state for the actions'
    /// checks, and a desktop event for each step of it.
    fn track_consult(&mut self, id: &InteractionId, now: Timestamp, event: &CallEvent) {
        let (state, step, detail): (Option<&'static str>, &str, Option<String>) = match event {
            CallEvent::ConsultStarted { to, .. } => {
                (Some("consult-ringing"), "started", Some(to.clone()))
            }
            CallEvent::ConsultProgress {
                progress: Progress::Answered,
                ..
            } => (Some("consulting"), "answered", None),
            CallEvent::ConsultProgress { progress, .. } => {
                (Some("consult-ringing"), progress_name(*progress), None)
            }
            CallEvent::ConsultFailed { failure, .. } => (None, "failed", Some(failure.to_string())),
            CallEvent::ConsultEnded { reason, .. } => (None, "ended", Some(reason.to_string())),
            CallEvent::Alternated { talking, .. } => {
                (Some("consulting"), "alternated", Some(talking.to_string()))
            }
            CallEvent::Conferenced { .. } => (Some("conferenced"), "conferenced", None),
            CallEvent::PartyLeft { party, .. } => (None, "party-left", Some(party.to_string())),
            CallEvent::Transferred {
                attended: true, to, ..
            } => (None, "transferred", Some(to.clone())),
            CallEvent::SupervisorLeft { .. }
            | CallEvent::LegFailed {
                leg: LegRole::S, ..
            } => {
                if let Some(live) = self.interactions.get_mut(id) {
                    live.supervisor = None;
                }
                return;
            }
            _ => return,
        };
        let Some(live) = self.interactions.get_mut(id) else {
            return;
        };
        live.consult = state;
        let agent = live.cb.agent.clone();
        self.out.emit(
            now,
            DesktopEventKind::Consultation {
                id: id.clone(),
                agent,
                step: step.to_string(),
                detail,
            },
        );
    }

    fn record_call_event(&mut self, id: &InteractionId, now: Timestamp, event: &CallEvent) {
        let call = event.call().0.clone();
        let kind = match event {
            CallEvent::Started { .. } => return,
            CallEvent::Leg { leg, progress, .. } => HistoryKind::Leg {
                call,
                leg: leg.to_string(),
                event: progress.to_string(),
                status: None,
            },
            CallEvent::LegFailed {
                leg,
                status,
                failure,
                ..
            } => HistoryKind::Leg {
                call,
                leg: leg.to_string(),
                event: failure.to_string(),
                status: Some(*status),
            },
            CallEvent::LegLost { leg, reason, .. } => HistoryKind::Leg {
                call,
                leg: leg.to_string(),
                event: format!("lost ({reason})"),
                status: None,
            },
            CallEvent::Ended {
                by, cause, status, ..
            } => HistoryKind::CallEnded {
                call,
                by: by.to_string(),
                cause: cause.clone(),
                status: *status,
            },
            other => {
                let line = other.to_string();
                let action = line
                    .split_whitespace()
                    .next()
                    .unwrap_or("call-event")
                    .to_string();
                HistoryKind::Control {
                    call,
                    action,
                    detail: Some(line),
                }
            }
        };
        self.out.history(id, now, kind);
    }

    pub(super) fn command_failed(
        &mut self,
        now: Timestamp,
        command: &CallCommand,
        error: &CommandError,
    ) {
        let CallCommand::Originate(o) = command else {
            tracing::info!(%error, ?command, "call command refused");
            return;
        };
        let Some(call) = &o.call else {
            return;
        };
        let Some(id) = self.interactions.unbind_call(&call.0) else {
            return;
        };
        self.call_refused(&id, &call.0);
        self.out.history(
            &id,
            now,
            HistoryKind::Leg {
                call: call.0.clone(),
                leg: "a".into(),
                event: format!("refused: {error}"),
                status: None,
            },
        );
        let agent = match self.interactions.get_mut(&id) {
            Some(l) if l.cb.state == State::Establishing => {
                l.cb.call_id = None;
                l.cb.attempts = l.cb.attempts.saturating_sub(1);
                l.cb.agent.clone()
            }
            _ => {
                self.save(&id, now);
                return;
            }
        };
        self.transition(&id, now, State::ReadyToCall, "call could not be placed");
        if let Some(agent) = agent {
            self.set_agent_state(&agent, now, AgentState::Ready, None);
        }
    }
}

fn progress_name(p: Progress) -> &'static str {
    match p {
        Progress::Trying => "trying",
        Progress::Ringing => "ringing",
        Progress::EarlyMedia => "early-media",
        Progress::Answered => "answered",
    }
}
