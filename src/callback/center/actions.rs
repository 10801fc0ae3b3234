//! The desktop's actions on an interaction (docs/web-callbacks.md): accept,
//! reject, "Call this contact", the call controls, and the ways out (done
//! with a disposition, reschedule, decline, mark done). Each is checked
//! against the agent's privileges and the interaction's state; the voice
//! call's own progress comes back as call events (`calls`).

use jiff::Timestamp;

use super::Center;
use crate::call::{CallCommand, CallId, LegRole, Monitor, Originate, Others};
use crate::callback::action::{ActionError, InteractionAction, Reply};
use crate::callback::call_record::CallRecord;
use crate::callback::model::{AgentState, HistoryKind, InteractionId, State};
use crate::callback::settings::Privilege;

/// The agent's phone is leg A of the voice call, the contact leg B.
const AGENT_LEG: LegRole = LegRole::A;
const CONTACT_LEG: LegRole = LegRole::B;

impl Center {
    pub(super) fn interaction_action(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        agent: &str,
        action: InteractionAction,
    ) -> Result<Reply, ActionError> {
        self.agents.require(agent, Privilege::UseChannel)?;
        if let InteractionAction::Supervise { mode } = action {
            return self.supervise(now, id, agent, mode);
        }
        let live = self.interactions.find(id)?;
        if live.cb.agent.as_deref() != Some(agent) {
            return Err(ActionError::NotOwner {
                id: id.clone(),
                agent: agent.to_string(),
            });
        }
        let state = live.cb.state;
        let has_call = live.cb.call_id.is_some();
        let reached = live.reached;
        let called = live.attempts_at_accept.is_none_or(|n| live.cb.attempts > n);
        let name = action.name();
        let wrong = || ActionError::WrongState {
            action: name.to_string(),
            state: state.to_string(),
        };
        let before_call = matches!(state, State::Offered | State::ReadyToCall) && !has_call;
        match action {
            InteractionAction::Accept => {
                if state != State::Offered {
                    return Err(wrong());
                }
                self.accept(now, id);
            }
            InteractionAction::Reject => {
                if state != State::Offered {
                    return Err(wrong());
                }
                let live = self.interactions.find(id)?;
                if live.auto_accept && !live.options.auto_answer_enable_reject {
                    return Err(ActionError::WrongState {
                        action: name.into(),
                        state: "auto-answer without reject".into(),
                    });
                }
                self.out.history(
                    id,
                    now,
                    HistoryKind::Rejected {
                        agent: agent.into(),
                    },
                );
                self.requeue_from_agent(id, now, "rejected");
            }
            InteractionAction::Call => {
                if state != State::ReadyToCall || has_call {
                    return Err(wrong());
                }
                self.place_call(now, id)?;
            }
            InteractionAction::Hold
            | InteractionAction::Retrieve
            | InteractionAction::Mute
            | InteractionAction::Unmute
            | InteractionAction::Dtmf { .. }
            | InteractionAction::StartRecording
            | InteractionAction::StopRecording
            | InteractionAction::Transfer { .. }
            | InteractionAction::Consult { .. }
            | InteractionAction::Alternate
            | InteractionAction::CancelConsult
            | InteractionAction::CompleteTransfer
            | InteractionAction::Conference
            | InteractionAction::Remove { .. }
            | InteractionAction::Leave
            | InteractionAction::Volume { .. } => {
                // The consultation's own state: refused here by name (409)
                // rather than by the call layer after the answer.
                let consult = self.interactions.find(id)?.consult;
                if !consult_fits(&action, consult) {
                    return Err(ActionError::WrongState {
                        action: name.to_string(),
                        state: consult.unwrap_or("two-party").to_string(),
                    });
                }
                let fits = match &action {
                    InteractionAction::Hold => state == State::Connected,
                    InteractionAction::Retrieve => state == State::OnHold,
                    _ => matches!(state, State::Connected | State::OnHold),
                };
                let Some(call) = self
                    .interactions
                    .find(id)?
                    .cb
                    .call_id
                    .clone()
                    .filter(|_| fits)
                else {
                    return Err(wrong());
                };
                let call = CallId(call);
                let Some((command, detail)) = control_command(call.clone(), action) else {
                    return Err(wrong());
                };
                self.out.history(
                    id,
                    now,
                    HistoryKind::Control {
                        call: call.0,
                        action: name.into(),
                        detail,
                    },
                );
                self.out.command(command);
            }
            InteractionAction::EndCall => {
                let call = self.interactions.find(id)?.cb.call_id.clone();
                let Some(call) = call.filter(|_| {
                    matches!(
                        state,
                        State::Establishing | State::Connected | State::OnHold
                    )
                }) else {
                    return Err(wrong());
                };
                self.out.history(
                    id,
                    now,
                    HistoryKind::Control {
                        call: call.clone(),
                        action: name.into(),
                        detail: None,
                    },
                );
                self.hangup_asked(id, now, &call);
                self.out.command(CallCommand::Hangup { call: CallId(call) });
            }
            InteractionAction::Done { disposition } => {
                if state != State::ReadyToCall || has_call {
                    return Err(wrong());
                }
                if !called {
                    // Closing it without ever calling the contact is what
                    // `mark-done` does, and needs its privilege.
                    self.agents.require(agent, Privilege::MarkDone)?;
                }
                if disposition.is_some() {
                    self.agents.require(agent, Privilege::SetDisposition)?;
                }
                if let Some(code) = &disposition {
                    self.out.history(
                        id,
                        now,
                        HistoryKind::Disposition {
                            agent: agent.into(),
                            code: code.clone(),
                        },
                    );
                }
                self.finish(now, id, State::Done, disposition, "done");
            }
            // Taken before the owner check (`supervise`).
            InteractionAction::Supervise { .. } => return Err(wrong()),
            InteractionAction::MarkDone => {
                if !before_call {
                    return Err(wrong());
                }
                self.agents.require(agent, Privilege::MarkDone)?;
                self.finish(now, id, State::Done, None, "marked done");
            }
            InteractionAction::Decline => {
                if !before_call {
                    return Err(wrong());
                }
                self.agents.require(agent, Privilege::Decline)?;
                self.finish(now, id, State::Declined, None, "declined");
            }
            InteractionAction::Reschedule { at, number } => {
                if !before_call {
                    return Err(wrong());
                }
                self.agents.require(agent, Privilege::Reschedule)?;
                if !reached {
                    self.agents
                        .require(agent, Privilege::RescheduleBeforeCall)?;
                }
                let number = self.new_number(id, number)?;
                super::requests::scheduled_time_in_window(at, now)?;
                let current = self.interactions.find(id)?.cb.request.first_number();
                if number.as_deref().is_some_and(|n| Some(n) != current) {
                    self.agents
                        .require(agent, Privilege::RescheduleOnNewNumber)?;
                }
                self.release_agent(id, now);
                self.reschedule_to(id, now, at, number, &format!("agent {agent}"))?;
                self.agent_freed(agent, now);
            }
        }
        // A finished interaction is no longer live; answer with its last record.
        match self.interactions.get(id) {
            Some(l) => Ok(Reply::Callback(Box::new(l.cb.clone()))),
            None => self
                .out
                .last_saved(id)
                .map(Reply::Callback)
                .ok_or_else(|| ActionError::NoCallback(id.clone())),
        }
    }

    pub(super) fn accept(&mut self, now: Timestamp, id: &InteractionId) {
        let Some(live) = self.interactions.get_mut(id) else {
            return;
        };
        live.offer_deadline = None;
        live.auto_accept = false;
        live.accepted_at = Some(now);
        live.attempts_at_accept = Some(live.cb.attempts);
        let auto_dial = live.options.auto_dial;
        let agent = live.cb.agent.clone().unwrap_or_default();
        self.out.history(id, now, HistoryKind::Accepted { agent });
        self.transition(id, now, State::ReadyToCall, "accepted");
        if auto_dial {
            if let Err(e) = self.place_call(now, id) {
                tracing::warn!(interaction = %id, error = %e, "auto-dial failed");
            }
        }
    }

    /// "Call this contact": the agent's phone is rung (auto-answer asked),
    /// then the contact's number through the dial plan.
    pub(super) fn place_call(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
    ) -> Result<(), ActionError> {
        let live = self
            .interactions
            .get_mut(id)
            .ok_or_else(|| ActionError::NoCallback(id.clone()))?;
        let agent = live
            .cb
            .agent
            .clone()
            .ok_or_else(|| ActionError::WrongState {
                action: "call".into(),
                state: "no agent".into(),
            })?;
        let n = live.cb.request.callback_numbers.len().max(1);
        let number = live
            .cb
            .request
            .callback_numbers
            .get(live.cb.attempts as usize % n)
            .cloned()
            .ok_or_else(|| ActionError::Invalid {
                field: "callbackNumbers".into(),
                message: "no number to call".into(),
            })?;
        live.cb.attempts += 1;
        let attempt = live.cb.attempts;
        let call = CallId(format!("wcb-{:016x}", rand::random::<u64>()));
        live.cb.call_id = Some(call.0.clone());
        live.cb.dialled_number = Some(number.clone());
        let caller_id = live.cb.request.caller_id.clone();
        let caller_id_name = live.cb.request.caller_id_name.clone();
        self.interactions.bind_call(&call.0, id);
        self.call_placed(id, CallRecord::placed(&call.0, &agent, &number, now));
        self.out.history(
            id,
            now,
            HistoryKind::Attempt {
                attempt,
                number: number.clone(),
                call: call.0.clone(),
                agent: agent.clone(),
            },
        );
        self.out.command(CallCommand::Originate(Originate {
            call: Some(call),
            a: agent.clone(),
            b: number,
            interaction: Some(id.0.clone()),
            auto_answer: true,
            headers: Vec::new(),
            caller_id,
            caller_id_name,
        }));
        self.transition(id, now, State::Establishing, "call this contact");
        self.set_agent_state(&agent, now, AgentState::Engaged, None);
        Ok(())
    }

    /// Takes an offered or accepted interaction from its agent and puts it
    /// back in its queue for someone else.
    pub(super) fn requeue_from_agent(&mut self, id: &InteractionId, now: Timestamp, reason: &str) {
        if let Some(agent) = self.release_agent(id, now) {
            if let Some(l) = self.interactions.get_mut(id) {
                l.offer_deadline = None;
                l.auto_accept = false;
            }
            self.exclude(id, &agent, now);
            self.transition(id, now, State::Queued, reason);
            self.agent_freed(&agent, now);
        } else {
            self.transition(id, now, State::Queued, reason);
        }
    }

    /// Ends an interaction for good (done, declined, not reached, parked).
    pub(super) fn finish(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        to: State,
        disposition: Option<String>,
        reason: &str,
    ) {
        let Some(live) = self.interactions.get_mut(id) else {
            return;
        };
        let queue = match to {
            State::Done => Some(live.options.complete_queue.clone()),
            State::Parked => Some(live.options.park_queue.clone()),
            _ => None,
        };
        if let Some(q) = queue {
            live.cb.interaction_queue = q;
        }
        if disposition.is_some() {
            live.cb.disposition = disposition;
        }
        let handled = live
            .accepted_at
            .map(|at| now.duration_since(at).as_secs().max(0) as u64);
        if let Some(secs) = handled {
            self.handle_times.record(&live.cb.request.queue_id, secs);
        }
        let agent = self.release_agent(id, now);
        self.transition(id, now, to, reason);
        if let Some(agent) = agent {
            self.agent_freed(&agent, now);
        }
    }
}

impl Center {
    /// `listen`, `whisper`, `barge` by a supervisor (any agent with the
    /// privilege, not the owner): its own phone (its SIP user) is called
    /// into the voice call, or switches mode if it is in already.
    fn supervise(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        agent: &str,
        mode: Monitor,
    ) -> Result<Reply, ActionError> {
        self.agents.require(agent, Privilege::Supervise)?;
        let live = self.interactions.find(id)?;
        let name = InteractionAction::Supervise { mode }.name();
        let state = live.cb.state;
        let call = live
            .cb
            .call_id
            .clone()
            .filter(|_| matches!(state, State::Connected | State::OnHold))
            .ok_or_else(|| ActionError::WrongState {
                action: name.to_string(),
                state: state.to_string(),
            })?;
        let to = match live.supervisor.as_deref() {
            None => Some(agent.to_string()),
            Some(s) if s == agent => None,
            Some(_) => {
                return Err(ActionError::WrongState {
                    action: name.to_string(),
                    state: "supervised".into(),
                })
            }
        };
        if let Some(l) = self.interactions.get_mut(id) {
            l.supervisor = Some(agent.to_string());
        }
        self.out.history(
            id,
            now,
            HistoryKind::Control {
                call: call.clone(),
                action: name.into(),
                detail: Some(agent.to_string()),
            },
        );
        self.out.command(CallCommand::Supervise {
            call: CallId(call),
            mode,
            to,
        });
        let cb = self.interactions.find(id)?.cb.clone();
        Ok(Reply::Callback(Box::new(cb)))
    }
}

/// The call command behind a control, and the detail its history keeps.
fn control_command(
    call: CallId,
    action: InteractionAction,
) -> Option<(CallCommand, Option<String>)> {
    Some(match action {
        InteractionAction::Hold => (
            CallCommand::Hold {
                call,
                leg: CONTACT_LEG,
            },
            None,
        ),
        InteractionAction::Retrieve => (
            CallCommand::Retrieve {
                call,
                leg: CONTACT_LEG,
            },
            None,
        ),
        InteractionAction::Mute => (
            CallCommand::Mute {
                call,
                leg: AGENT_LEG,
            },
            None,
        ),
        InteractionAction::Unmute => (
            CallCommand::Unmute {
                call,
                leg: AGENT_LEG,
            },
            None,
        ),
        InteractionAction::Dtmf { digits } => (
            CallCommand::SendDtmf {
                call,
                leg: CONTACT_LEG,
                digits: digits.clone(),
            },
            Some(digits),
        ),
        InteractionAction::StartRecording => (CallCommand::StartRecording { call }, None),
        InteractionAction::StopRecording => (CallCommand::StopRecording { call }, None),
        InteractionAction::Transfer { to } => (
            CallCommand::Transfer {
                call,
                leg: AGENT_LEG,
                to: to.clone(),
            },
            Some(to),
        ),
        InteractionAction::Consult { to } => (
            CallCommand::Consult {
                call,
                leg: AGENT_LEG,
                to: to.clone(),
            },
            Some(to),
        ),
        InteractionAction::Alternate => (CallCommand::Alternate { call }, None),
        InteractionAction::CancelConsult => (CallCommand::CancelConsult { call }, None),
        InteractionAction::CompleteTransfer => (CallCommand::CompleteTransfer { call }, None),
        InteractionAction::Conference => (CallCommand::Conference { call }, None),
        InteractionAction::Remove { party } => {
            (CallCommand::Remove { call, party }, Some(party.to_string()))
        }
        InteractionAction::Leave => (
            CallCommand::Leave {
                call,
                others: Others::default(),
            },
            None,
        ),
        InteractionAction::Volume {
            party,
            direction,
            db,
        } => (
            CallCommand::Volume {
                call,
                party,
                direction,
                db,
            },
            Some(format!("{party} {direction} {db} dB")),
        ),
        _ => return None,
    })
}

/// Whether a consultation action makes sense in the consultation's state
/// (`None`: two-party). Other actions always do.
fn consult_fits(action: &InteractionAction, consult: Option<&str>) -> bool {
    use InteractionAction as A;
    match action {
        A::Consult { .. } => consult.is_none(),
        A::Alternate | A::Conference => consult == Some("consulting"),
        A::CancelConsult | A::Remove { .. } => consult.is_some(),
        A::CompleteTransfer | A::Leave => {
            matches!(consult, Some("consulting" | "conferenced"))
        }
        // A blind transfer takes leg c, which a consultation holds.
        A::Transfer { .. } => consult.is_none(),
        _ => true,
    }
}
