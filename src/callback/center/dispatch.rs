//! Timers and offers: a waiting callback falls due (inside its queue's
//! business hours) or expires; due callbacks go to Ready agents (routing
//! decides who), one at a time, so no interaction is ever offered to two
//! agents at once. An offer ends by accept, reject, its timeout
//! (redirected, the agent optionally set Not Ready) or auto-answer when its
//! preview timer runs out. The timers themselves are `timers`'.

use jiff::{SignedDuration, Timestamp};

use super::{Center, Timer};
use crate::callback::model::{
    AgentState, Callback, DesktopEventKind, HistoryKind, InteractionId, PreviewField, State,
};
use crate::callback::{options, routing, schedule};

impl Center {
    /// Offers queued callbacks to free agents, best callback first.
    pub(super) fn dispatch(&mut self, now: Timestamp) {
        if !std::mem::take(&mut self.offerable)
            || !self.interactions.has_queued()
            || !self.agents.any_free()
        {
            return;
        }
        let mut order: Vec<&Callback> = self.interactions.queued().collect();
        routing::order_queue(&mut order);
        let order: Vec<InteractionId> = order.into_iter().map(|c| c.id.clone()).collect();
        for id in order {
            if !self.agents.any_free() {
                break;
            }
            let Some(live) = self.interactions.get(&id) else {
                continue;
            };
            let Some(queue) = self.queue(&live.cb.request.queue_id) else {
                continue;
            };
            let candidates = self.agents.candidates();
            let excluded: Vec<String> = live
                .excluded
                .iter()
                .filter(|(_, until)| *until > now)
                .map(|(agent, _)| agent.clone())
                .collect();
            let picked =
                routing::pick_agent(&live.cb, queue, &candidates, &excluded).map(str::to_string);
            if let Some(agent) = picked {
                self.offer(&id, &agent, now);
            }
        }
    }

    /// Skips `agent` for this interaction for the configured time; when it
    /// lapses the queue is looked at again.
    pub(super) fn exclude(&mut self, id: &InteractionId, agent: &str, now: Timestamp) {
        let until = now
            .checked_add(span(self.settings.exclusion))
            .unwrap_or(Timestamp::MAX);
        let Some(l) = self.interactions.get_mut(id) else {
            return;
        };
        l.excluded.retain(|(a, _)| a != agent);
        l.excluded.push((agent.to_string(), until));
        self.timers.at(until, Timer::Exclusion(id.clone()));
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
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.due_at = due;
            l.offer_deadline = None;
        }
        if due <= now {
            self.transition(id, now, State::Queued, reason);
        } else {
            self.transition(id, now, waiting, reason);
            self.timers.at(due, Timer::Due(id.clone()));
        }
    }

    fn offer(&mut self, id: &InteractionId, agent: &str, now: Timestamp) {
        let offer_timeout = self.settings.offer_timeout;
        let Some(live) = self.interactions.get_mut(id) else {
            return;
        };
        live.cb.agent = Some(agent.to_string());
        let opts = live.options.clone();
        let (deadline, auto_accept) = if opts.auto_answer {
            (now + span(opts.auto_answer_timer), true)
        } else {
            (now + span(offer_timeout), false)
        };
        live.offer_deadline = Some(deadline);
        live.auto_accept = auto_accept;
        let preview: Vec<PreviewField> =
            options::preview(&opts.callback_information_content, &live.cb)
                .into_iter()
                .map(|(name, value)| PreviewField { name, value })
                .collect();
        self.agents.take(agent, id);
        self.out.history(
            id,
            now,
            HistoryKind::Offered {
                agent: agent.to_string(),
            },
        );
        self.transition(id, now, State::Offered, &format!("offered to {agent}"));
        self.out.emit(
            now,
            DesktopEventKind::Offer {
                id: id.clone(),
                agent: agent.to_string(),
                preview,
                auto_answer_secs: opts.auto_answer.then_some(opts.auto_answer_timer.as_secs()),
                can_reject: !opts.auto_answer || opts.auto_answer_enable_reject,
            },
        );
        if auto_accept && deadline <= now {
            self.accept(now, id);
        } else {
            self.timers.at(deadline, Timer::Offer(id.clone()));
        }
    }

    pub(super) fn offer_timed_out(&mut self, id: &InteractionId, now: Timestamp) {
        let Some(live) = self.interactions.get(id) else {
            return;
        };
        let agent = live.cb.agent.clone().unwrap_or_default();
        let reason = live.options.not_ready_on_offer_timeout.clone();
        self.out.history(
            id,
            now,
            HistoryKind::OfferTimedOut {
                agent: agent.clone(),
            },
        );
        self.requeue_from_agent(id, now, "offer timed out");
        if let Some(reason) = reason {
            if self.agents.state(&agent) == Some(AgentState::Ready) {
                self.set_agent_state(&agent, now, AgentState::NotReady, Some(reason));
            }
        }
    }

    /// A timer came due; it still applies only if the interaction is where
    /// the timer expected it (timers are not cancelled, they lapse).
    pub(super) fn fire(&mut self, now: Timestamp, timer: Timer) {
        match timer {
            Timer::Due(id) => {
                let Some(l) = self.interactions.get(&id) else {
                    return;
                };
                if !matches!(l.cb.state, State::Scheduled | State::Rescheduled) || l.cb.due_at > now
                {
                    return;
                }
                let due = match self.queue(&l.cb.request.queue_id) {
                    Some(q) => schedule::next_open(q, now),
                    None => now,
                };
                if due > now {
                    // Outside business hours: wait for the next opening.
                    let state = l.cb.state;
                    self.wait_until(&id, now, due, state, "outside business hours");
                    return;
                }
                let queue_id = l.cb.request.queue_id.clone();
                if let Some(l) = self.interactions.get_mut(&id) {
                    l.cb.interaction_queue = queue_id;
                }
                self.transition(&id, now, State::Queued, "due");
            }
            Timer::Expire(id) => {
                let Some(l) = self.interactions.get(&id) else {
                    return;
                };
                if !l.cb.state.is_waiting() || l.cb.expires_at.is_none_or(|at| at > now) {
                    return;
                }
                self.finish(now, &id, State::NotReached, None, "expired");
            }
            Timer::Exclusion(id) => {
                if let Some(l) = self.interactions.get_mut(&id) {
                    l.excluded.retain(|(_, until)| *until > now);
                    self.offerable |= l.cb.state == State::Queued;
                }
            }
            Timer::Offer(id) => {
                let Some(l) = self.interactions.get(&id) else {
                    return;
                };
                if l.cb.state != State::Offered || l.offer_deadline.is_none_or(|at| at > now) {
                    return;
                }
                if l.auto_accept {
                    self.accept(now, &id);
                } else {
                    self.offer_timed_out(&id, now);
                }
            }
        }
    }
}

fn span(d: std::time::Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}
