//! What the center answers without changing anything: the contact's status
//! (place in line and expected wait), an agent's view, and the dialable
//! lists. The expected wait reads the recent handling times per queue,
//! which this file keeps ([`HandleTimes`]; `actions::finish` records one
//! per interaction an agent accepted).

use std::collections::{HashMap, VecDeque};

use jiff::Timestamp;

use super::Center;
use crate::callback::action::{ActionError, AgentView, ContactStatus, Reply};
use crate::callback::model::{Callback, InteractionId};
use crate::callback::routing;

/// How many handling times the estimate averages.
const HANDLE_TIME_SAMPLES: usize = 50;
/// The handling time assumed before any was measured.
const DEFAULT_HANDLE_SECS: u64 = 180;

/// Recent handling times per queue (seconds, from accept to the end).
#[derive(Debug, Default)]
pub(super) struct HandleTimes {
    by_queue: HashMap<String, VecDeque<u64>>,
}

impl HandleTimes {
    pub(super) fn record(&mut self, queue: &str, secs: u64) {
        let samples = self.by_queue.entry(queue.to_string()).or_default();
        if samples.len() == HANDLE_TIME_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(secs);
    }

    /// The average of the last [`HANDLE_TIME_SAMPLES`], or a default.
    pub(super) fn average(&self, queue: &str) -> u64 {
        match self.by_queue.get(queue) {
            Some(s) if !s.is_empty() => s.iter().sum::<u64>() / s.len() as u64,
            _ => DEFAULT_HANDLE_SECS,
        }
    }
}

impl Center {
    pub(super) fn status(
        &self,
        now: Timestamp,
        id: &InteractionId,
    ) -> Result<ContactStatus, ActionError> {
        let cb = &self.interactions.find(id)?.cb;
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
        let queue = &cb.request.queue_id;
        let mut same: Vec<&Callback> = self
            .interactions
            .records()
            .filter(|c| c.request.queue_id == *queue && c.state.is_waiting())
            .collect();
        routing::order_queue(&mut same);
        let position = same.iter().position(|c| c.id == *id).unwrap_or(0) as u64 + 1;
        // Agents who could take this queue's callbacks and are logged in.
        let staffed = self.agents.staffed();
        let handle = self.handle_times.average(queue);
        let until_due = cb.due_at.duration_since(now).as_secs().max(0) as u64;
        let behind = (position - 1) * handle / staffed;
        status.position = Some(position as u32);
        status.estimated_wait_secs = Some(until_due.max(behind));
        Ok(status)
    }

    pub(super) fn agent_view(&self, agent: &str) -> Result<AgentView, ActionError> {
        self.agents.view(agent)
    }

    /// The dialable list: waiting callbacks the agent (or any member of
    /// the team) has the skills for, in the order they will be offered.
    pub(super) fn dialable(
        &self,
        agent: Option<&str>,
        team: Option<&str>,
    ) -> Result<Reply, ActionError> {
        let members = self.agents.members(agent, team)?;
        let mut list: Vec<&Callback> = self
            .interactions
            .records()
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_is_of_the_last_samples_per_queue() {
        let mut times = HandleTimes::default();
        assert_eq!(times.average("support"), DEFAULT_HANDLE_SECS);
        times.record("support", 100);
        times.record("support", 200);
        times.record("sales", 1000);
        assert_eq!(times.average("support"), 150);
        for _ in 0..HANDLE_TIME_SAMPLES {
            times.record("support", 60);
        }
        assert_eq!(times.average("support"), 60, "the oldest dropped");
        assert_eq!(times.average("sales"), 1000);
    }
}
