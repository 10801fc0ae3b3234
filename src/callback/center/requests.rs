//! Requests from outside an agent's desktop: create (with idempotency and
//! duplicate merging), cancel, reschedule, the contact's status, and the
//! dialable lists.

use jiff::{SignedDuration, Timestamp};

use super::{Center, Live, Timer};
use crate::callback::action::{
    ActionError, Actor, AgentView, ContactStatus, NewCallback, Reply, Request,
};
use crate::callback::model::{AgentState, Callback, HistoryKind, InteractionId, State, Write};
use crate::callback::{request, routing, schedule};

impl Center {
    pub(super) fn request(
        &mut self,
        now: Timestamp,
        request: Request,
    ) -> Result<Reply, ActionError> {
        match request {
            Request::Create {
                callback,
                idempotency_key,
            } => self.create(now, callback, idempotency_key, "api"),
            Request::Replay { idempotency_key } => Ok(self
                .replay(now, &idempotency_key)
                .unwrap_or(Reply::NoReplay)),
            Request::Cancel { id, by, reason } => self.cancel(now, &id, by, reason),
            Request::Reschedule { id, by, at, number } => {
                self.reschedule_waiting(now, &id, by, at, number)
            }
            Request::Status { id } => self.status(now, &id).map(Reply::Status),
            Request::Agent { agent, action } => self.agent_action(now, &agent, action),
            Request::AgentView { agent } => {
                self.agent_view(&agent).map(|v| Reply::Agent(Box::new(v)))
            }
            Request::Interaction { id, agent, action } => {
                self.interaction_action(now, &id, &agent, action)
            }
            Request::ScheduleForContact {
                agent,
                at,
                number,
                data,
            } => self.schedule_for_contact(now, &agent, at, number, data),
            Request::Dialable { agent, team } => self.dialable(agent.as_deref(), team.as_deref()),
        }
    }

    /// The first result of a create with this key, while the key is
    /// remembered: the live callback, or a pointer to the stored one.
    fn replay(&self, now: Timestamp, key: &str) -> Option<Reply> {
        let (id, at) = self.idempotency.get(key)?;
        let window = SignedDuration::try_from(self.settings.idempotency_window)
            .unwrap_or(SignedDuration::MAX);
        if now.duration_since(*at) >= window {
            return None;
        }
        Some(match self.live.get(id) {
            Some(l) => Reply::Created {
                callback: Box::new(l.cb.clone()),
                new: false,
            },
            None => Reply::Replayed(id.clone()),
        })
    }

    pub(super) fn create(
        &mut self,
        now: Timestamp,
        new: NewCallback,
        idempotency_key: Option<String>,
        by: &str,
    ) -> Result<Reply, ActionError> {
        if let Some(replay) = idempotency_key.as_ref().and_then(|k| self.replay(now, k)) {
            return Ok(replay);
        }
        let request = &new.request;
        let Some(queue) = self.queue(&request.queue_id).cloned() else {
            return Err(ActionError::Invalid {
                field: "queueId".into(),
                message: format!("no queue {:?}", request.queue_id),
            });
        };
        // Options a routing strategy overrides must make sense before the
        // request is accepted, not fall back silently when it is offered.
        let options = crate::callback::options::resolve(
            &self.settings.options,
            &request.routing_data.options,
        )
        .map_err(|e| ActionError::Invalid {
            field: format!("routingData.options.{}", e.key),
            message: e.problem.to_string(),
        })?;
        if options.auto_answer_timer >= self.settings.offer_timeout {
            return Err(ActionError::Invalid {
                field: "routingData.options.webcallback.auto-answer.timer".into(),
                message: format!(
                    "must be below the offer timeout ({} s)",
                    self.settings.offer_timeout.as_secs()
                ),
            });
        }
        if request.first_number().is_none() {
            return Err(ActionError::Invalid {
                field: "callbackNumbers".into(),
                message: "at least one number is required".into(),
            });
        }
        // A second pending request for the same number and queue joins the first.
        if let Some(id) = self
            .pending_by_number
            .get(&request.duplicate_key())
            .cloned()
        {
            if let Some(live) = self.live.get_mut(&id) {
                live.cb.request.merge(request);
                let request = serde_json::json!({
                    "callbackNumbers": request.callback_numbers,
                    "callbackScheduledTime": request.callback_scheduled_time,
                    "data": request.data,
                });
                self.history(&id, now, HistoryKind::Merged { request });
                if let Some(note) = new.enrichment {
                    self.history(&id, now, note.into());
                }
                self.save(&id, now);
                if let Some(key) = idempotency_key {
                    self.remember_key(key, &id, now);
                }
                let cb = self.live[&id].cb.clone();
                return Ok(Reply::Created {
                    callback: Box::new(cb),
                    new: false,
                });
            }
        }
        let id = InteractionId::generate();
        let NewCallback {
            request,
            enrichment,
        } = new;
        let wanted = request.callback_scheduled_time.unwrap_or(now).max(now);
        let due = schedule::next_open(&queue, wanted);
        let cb = Callback {
            due_at: due,
            expires_at: schedule::expiry(&queue, due),
            ..Callback::new(id.clone(), request, now)
        };
        let options = self.resolve_options(&cb);
        self.live.insert(id.clone(), Live::new(cb, options));
        self.history(&id, now, HistoryKind::Created { by: by.to_string() });
        if let Some(note) = enrichment {
            self.history(&id, now, note.into());
        }
        if let Some(key) = idempotency_key {
            self.remember_key(key, &id, now);
        }
        self.wait_until(&id, now, due, State::Scheduled, "created");
        if let Some(at) = self.live.get(&id).and_then(|l| l.cb.expires_at) {
            self.timers.insert((at, Timer::Expire(id.clone())));
        }
        let cb = self
            .live
            .get(&id)
            .map(|l| l.cb.clone())
            .ok_or_else(|| ActionError::NoCallback(id.clone()))?;
        Ok(Reply::Created {
            callback: Box::new(cb),
            new: true,
        })
    }

    fn remember_key(&mut self, key: String, id: &InteractionId, now: Timestamp) {
        self.idempotency.insert(key.clone(), (id.clone(), now));
        self.writes.push(Write::Idempotency {
            key,
            id: id.clone(),
            at: now,
        });
    }

    /// Puts a callback in a waiting state until `due`: queued at once when
    /// due now, otherwise `waiting` with a timer.
    pub(super) fn wait_until(
        &mut self,
        id: &InteractionId,
        now: Timestamp,
        due: Timestamp,
        waiting: State,
        reason: &str,
    ) {
        if let Some(l) = self.live.get_mut(id) {
            l.cb.due_at = due;
            l.offer_deadline = None;
        }
        if due <= now {
            self.transition(id, now, State::Queued, reason);
        } else {
            self.transition(id, now, waiting, reason);
            self.timers.insert((due, Timer::Due(id.clone())));
        }
    }

    fn cancel(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        by: Actor,
        reason: Option<String>,
    ) -> Result<Reply, ActionError> {
        let live = self.get(id)?;
        let state = live.cb.state;
        if !(state.is_waiting()
            || state == State::Offered
            || (state == State::ReadyToCall && by == Actor::Supervisor))
        {
            return Err(ActionError::WrongState {
                action: "cancel".into(),
                state: state.to_string(),
            });
        }
        let by_name = match by {
            Actor::Contact => "contact",
            Actor::Supervisor => "supervisor",
        };
        self.history(
            id,
            now,
            HistoryKind::Cancelled {
                by: by_name.to_string(),
                reason,
            },
        );
        let agent = self.release_agent(id, now);
        let cb = self.live[id].cb.clone();
        self.transition(
            id,
            now,
            State::Cancelled,
            &format!("cancelled by {by_name}"),
        );
        if let Some(agent) = agent {
            self.agent_freed(&agent, now);
        }
        Ok(Reply::Callback(Box::new(Callback {
            state: State::Cancelled,
            updated_at: now,
            ..cb
        })))
    }

    fn reschedule_waiting(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        by: Actor,
        at: Timestamp,
        number: Option<String>,
    ) -> Result<Reply, ActionError> {
        let state = self.get(id)?.cb.state;
        let number = self.new_number(id, number)?;
        scheduled_time_in_window(at, now)?;
        if !(state.is_waiting() || (state == State::Offered && by == Actor::Supervisor)) {
            return Err(ActionError::WrongState {
                action: "reschedule".into(),
                state: state.to_string(),
            });
        }
        let by_name = match by {
            Actor::Contact => "contact",
            Actor::Supervisor => "supervisor",
        };
        if let Some(agent) = self.release_agent(id, now) {
            self.agent_freed(&agent, now);
        }
        self.reschedule_to(id, now, at, number, by_name)?;
        Ok(Reply::Callback(Box::new(self.get(id)?.cb.clone())))
    }

    /// A reschedule's new number in E.164, read as the callback's own
    /// numbers were (`CallbackRequest::read_number`).
    pub(super) fn new_number(
        &self,
        id: &InteractionId,
        number: Option<String>,
    ) -> Result<Option<String>, ActionError> {
        let Some(raw) = number else { return Ok(None) };
        self.get(id)?
            .cb
            .request
            .read_number(&raw)
            .map(Some)
            .map_err(|e| ActionError::Invalid {
                field: "callbackNumber".into(),
                message: e.to_string(),
            })
    }

    /// Moves a callback to the reschedule queue with a new time (and number).
    pub(super) fn reschedule_to(
        &mut self,
        id: &InteractionId,
        now: Timestamp,
        at: Timestamp,
        number: Option<String>,
        by: &str,
    ) -> Result<(), ActionError> {
        let queue = {
            let live = self.get(id)?;
            self.queue(&live.cb.request.queue_id).cloned()
        };
        let due = match &queue {
            Some(q) => schedule::next_open(q, at.max(now)),
            None => at.max(now),
        };
        let reschedule_queue = self.get(id)?.options.reschedule_queue.clone();
        if let Some(l) = self.live.get_mut(id) {
            // The old pending key goes; `transition` files the new one.
            let key = super::pending_key(&l.cb);
            if self.pending_by_number.get(&key) == Some(id) {
                self.pending_by_number.remove(&key);
            }
            if let Some(n) = &number {
                l.cb.request.call_first(n);
            }
            l.cb.request.callback_scheduled_time = Some(at);
            l.cb.interaction_queue = reschedule_queue;
            l.excluded.clear();
            if let Some(q) = &queue {
                l.cb.expires_at = schedule::expiry(q, due);
            }
        }
        self.history(
            id,
            now,
            HistoryKind::Rescheduled {
                by: by.to_string(),
                at,
                number,
            },
        );
        if let Some(at) = self.live.get(id).and_then(|l| l.cb.expires_at) {
            self.timers.insert((at, Timer::Expire(id.clone())));
        }
        // Rescheduled shows until it falls due, even when that is now.
        if let Some(l) = self.live.get_mut(id) {
            l.cb.due_at = due;
            l.offer_deadline = None;
        }
        self.transition(id, now, State::Rescheduled, &format!("rescheduled by {by}"));
        self.timers.insert((due, Timer::Due(id.clone())));
        Ok(())
    }

    fn status(&self, now: Timestamp, id: &InteractionId) -> Result<ContactStatus, ActionError> {
        let live = self.get(id)?;
        let cb = &live.cb;
        let mut status = ContactStatus {
            id: id.clone(),
            state: cb.state,
            position: None,
            estimated_wait_secs: None,
            callback_scheduled_time: cb.request.callback_scheduled_time,
        };
        if !cb.state.is_waiting() {
            return Ok(status);
        }
        let mut same: Vec<&Callback> = self
            .live
            .values()
            .map(|l| &l.cb)
            .filter(|c| c.request.queue_id == cb.request.queue_id && c.state.is_waiting())
            .collect();
        routing::order_queue(&mut same);
        let position = same.iter().position(|c| c.id == *id).unwrap_or(0) as u64 + 1;
        // Agents who could take this queue's callbacks and are logged in.
        let staffed = self
            .agents
            .values()
            .filter(|a| {
                matches!(
                    a.record.state,
                    AgentState::Ready | AgentState::Engaged | AgentState::Working
                )
            })
            .count()
            .max(1) as u64;
        let handle = self.average_handle_secs(&cb.request.queue_id);
        let until_due = cb.due_at.duration_since(now).as_secs().max(0) as u64;
        let behind = (position - 1) * handle / staffed;
        status.position = Some(position as u32);
        status.estimated_wait_secs = Some(until_due.max(behind));
        Ok(status)
    }

    pub(super) fn agent_view(&self, agent: &str) -> Result<AgentView, ActionError> {
        let a = self.agent_settings(agent)?;
        Ok(AgentView {
            agent: a.record.clone(),
            team: a.settings.team.clone(),
            skills: a.settings.skills.clone(),
            interactions: a.owns.clone(),
            registered: !a.contacts.is_empty(),
        })
    }

    /// The dialable list: waiting callbacks the agent (or any member of
    /// the team) has the skills for, in the order they will be offered.
    fn dialable(&self, agent: Option<&str>, team: Option<&str>) -> Result<Reply, ActionError> {
        let members: Vec<&super::AgentLive> = match (agent, team) {
            (Some(a), _) => vec![self.agent_settings(a)?],
            (None, Some(t)) => self
                .agents
                .values()
                .filter(|a| a.settings.team.as_deref() == Some(t))
                .collect(),
            (None, None) => self.agents.values().collect(),
        };
        let mut list: Vec<&Callback> = self
            .live
            .values()
            .map(|l| &l.cb)
            .filter(|c| c.state.is_waiting())
            .filter(|c| {
                members.iter().any(|m| {
                    let queue_skills = self
                        .queue(&c.request.queue_id)
                        .map(|q| q.skills.as_slice())
                        .unwrap_or(&[]);
                    queue_skills
                        .iter()
                        .chain(c.request.routing_data.skills.iter())
                        .all(|s| m.settings.skills.contains(s))
                })
            })
            .collect();
        routing::order_queue(&mut list);
        Ok(Reply::Callbacks(list.into_iter().cloned().collect()))
    }

    fn schedule_for_contact(
        &mut self,
        now: Timestamp,
        agent: &str,
        at: Option<Timestamp>,
        number: Option<String>,
        data: std::collections::BTreeMap<String, String>,
    ) -> Result<Reply, ActionError> {
        self.require(agent, crate::callback::settings::Privilege::UseChannel)?;
        if let Some(at) = at {
            scheduled_time_in_window(at, now)?;
        }
        let a = self.agent_settings(agent)?;
        // The interaction of the agent's current call (or the last it owns).
        let current = a
            .owns
            .iter()
            .rev()
            .filter_map(|id| self.live.get(id))
            .find(|l| l.cb.call_id.is_some())
            .or_else(|| a.owns.iter().rev().find_map(|id| self.live.get(id)))
            .ok_or_else(|| ActionError::WrongState {
                action: "schedule".into(),
                state: "no current contact".into(),
            })?;
        let cb = &current.cb;
        let number = self
            .new_number(&cb.id, number)?
            .or_else(|| cb.dialled_number.clone())
            .or_else(|| cb.request.first_number().map(str::to_string))
            .ok_or_else(|| ActionError::Invalid {
                field: "callbackNumber".into(),
                message: "the current contact has no number".into(),
            })?;
        let new = NewCallback {
            request: cb.request.follow_up(number, at, data),
            enrichment: None,
        };
        self.create(now, new, None, &format!("agent {agent}"))
    }
}

/// A time a reschedule or the schedule route asks for is held to a
/// create's window (`request::check_window`: at most 5 minutes past, at
/// most 366 days ahead), refused naming `callbackScheduledTime`.
pub(super) fn scheduled_time_in_window(at: Timestamp, now: Timestamp) -> Result<(), ActionError> {
    request::check_window(at, now).map_err(|e| ActionError::Invalid {
        field: "callbackScheduledTime".into(),
        message: e.to_string(),
    })
}
