//! The center's requests, routed to the files that handle them; and those
//! from outside an agent's desktop: create (with idempotency and duplicate
//! merging), cancel, reschedule, and scheduling a new callback for the
//! contact of an agent's current call. The read-only ones (status, views,
//! dialable lists) are `views`'.

use jiff::Timestamp;

use super::{Center, Live, Timer};
use crate::callback::action::{ActionError, Actor, NewCallback, Reply, Request};
use crate::callback::model::{Callback, HistoryKind, InteractionId, State};
use crate::callback::settings::Privilege;
use crate::callback::{request, schedule};

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
        let id = self.keys.find(key, now)?;
        Some(match self.interactions.get(id) {
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
        if let Some(id) = self.interactions.duplicate_of(request).cloned() {
            return self.merge(now, &id, new, idempotency_key);
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
        let expires = cb.expires_at;
        self.interactions.insert(Live::new(cb, options));
        self.out
            .history(&id, now, HistoryKind::Created { by: by.to_string() });
        if let Some(note) = enrichment {
            self.out.history(&id, now, note.into());
        }
        if let Some(key) = idempotency_key {
            self.remember_key(key, &id, now);
        }
        self.wait_until(&id, now, due, State::Scheduled, "created");
        if let Some(at) = expires {
            self.timers.at(at, Timer::Expire(id.clone()));
        }
        let cb = self.interactions.find(&id)?.cb.clone();
        Ok(Reply::Created {
            callback: Box::new(cb),
            new: true,
        })
    }

    /// Folds a duplicate create into the waiting interaction `id`: its new
    /// numbers and case data join (`CallbackRequest::merge`), and a
    /// `merged` history entry keeps what it asked for.
    fn merge(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        new: NewCallback,
        idempotency_key: Option<String>,
    ) -> Result<Reply, ActionError> {
        let NewCallback {
            request,
            enrichment,
        } = new;
        self.interactions
            .update_request(id, |first| first.merge(&request));
        let asked = serde_json::json!({
            "callbackNumbers": request.callback_numbers,
            "callbackScheduledTime": request.callback_scheduled_time,
            "data": request.data,
        });
        self.out
            .history(id, now, HistoryKind::Merged { request: asked });
        if let Some(note) = enrichment {
            self.out.history(id, now, note.into());
        }
        self.save(id, now);
        if let Some(key) = idempotency_key {
            self.remember_key(key, id, now);
        }
        Ok(Reply::Created {
            callback: Box::new(self.interactions.find(id)?.cb.clone()),
            new: false,
        })
    }

    fn remember_key(&mut self, key: String, id: &InteractionId, now: Timestamp) {
        let write = self.keys.remember(key, id, now);
        self.out.write(write);
    }

    fn cancel(
        &mut self,
        now: Timestamp,
        id: &InteractionId,
        by: Actor,
        reason: Option<String>,
    ) -> Result<Reply, ActionError> {
        let state = self.interactions.find(id)?.cb.state;
        if !(state.is_waiting()
            || state == State::Offered
            || (state == State::ReadyToCall && by == Actor::Supervisor))
        {
            return Err(ActionError::WrongState {
                action: "cancel".into(),
                state: state.to_string(),
            });
        }
        let by_name = by.name();
        self.out.history(
            id,
            now,
            HistoryKind::Cancelled {
                by: by_name.to_string(),
                reason,
            },
        );
        let agent = self.release_agent(id, now);
        let cb = self.interactions.find(id)?.cb.clone();
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
        let state = self.interactions.find(id)?.cb.state;
        let number = self.new_number(id, number)?;
        scheduled_time_in_window(at, now)?;
        if !(state.is_waiting() || (state == State::Offered && by == Actor::Supervisor)) {
            return Err(ActionError::WrongState {
                action: "reschedule".into(),
                state: state.to_string(),
            });
        }
        if let Some(agent) = self.release_agent(id, now) {
            self.agent_freed(&agent, now);
        }
        self.reschedule_to(id, now, at, number, by.name())?;
        Ok(Reply::Callback(Box::new(
            self.interactions.find(id)?.cb.clone(),
        )))
    }

    /// A reschedule's new number in E.164, read as the callback's own
    /// numbers were (`CallbackRequest::read_number`).
    pub(super) fn new_number(
        &self,
        id: &InteractionId,
        number: Option<String>,
    ) -> Result<Option<String>, ActionError> {
        let Some(raw) = number else { return Ok(None) };
        self.interactions
            .find(id)?
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
        let live = self.interactions.find(id)?;
        let queue = self.queue(&live.cb.request.queue_id).cloned();
        let reschedule_queue = live.options.reschedule_queue.clone();
        let due = match &queue {
            Some(q) => schedule::next_open(q, at.max(now)),
            None => at.max(now),
        };
        self.interactions.update_request(id, |r| {
            if let Some(n) = &number {
                r.call_first(n);
            }
            r.callback_scheduled_time = Some(at);
        });
        let mut expires = None;
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.interaction_queue = reschedule_queue;
            l.excluded.clear();
            if let Some(q) = &queue {
                l.cb.expires_at = schedule::expiry(q, due);
            }
            expires = l.cb.expires_at;
        }
        self.out.history(
            id,
            now,
            HistoryKind::Rescheduled {
                by: by.to_string(),
                at,
                number,
            },
        );
        if let Some(at) = expires {
            self.timers.at(at, Timer::Expire(id.clone()));
        }
        // Rescheduled shows until it falls due, even when that is now.
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.due_at = due;
            l.offer_deadline = None;
        }
        self.transition(id, now, State::Rescheduled, &format!("rescheduled by {by}"));
        self.timers.at(due, Timer::Due(id.clone()));
        Ok(())
    }

    fn schedule_for_contact(
        &mut self,
        now: Timestamp,
        agent: &str,
        at: Option<Timestamp>,
        number: Option<String>,
        data: std::collections::BTreeMap<String, String>,
    ) -> Result<Reply, ActionError> {
        self.agents.require(agent, Privilege::UseChannel)?;
        if let Some(at) = at {
            scheduled_time_in_window(at, now)?;
        }
        let owns = self.agents.find(agent)?.owns();
        // The interaction of the agent's current call (or the last it owns).
        let current = owns
            .iter()
            .rev()
            .filter_map(|id| self.interactions.get(id))
            .find(|l| l.cb.call_id.is_some())
            .or_else(|| owns.iter().rev().find_map(|id| self.interactions.get(id)))
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
