//! The center: every live interaction and agent, in one sans-IO state
//! machine. It takes API requests, call events, registrations and an
//! explicit `now`, and leaves behind three queues the driver drains in
//! order: the store writes (committed first, in one transaction), then the
//! call commands and the desktop events. Nothing leaves before its writes
//! are durable, which is what lets a `kill -9` lose nothing.
//!
//! One task owns the center, so an interaction can never be offered to two
//! agents at once: offers are decided here, one after another.
//!
//! [`Center`] holds a handful of parts, each in its own file with the state
//! it owns and the methods that keep it true; none of them writes or
//! decides on its own:
//! - `interactions`: the live interactions and their indexes (queued,
//!   duplicates by queue and number, the interaction of each voice call);
//! - `roster`: the agents, their states, phones and what they own;
//! - `timers`: what falls due when;
//! - `idempotency`: the `Idempotency-Key`s and what they created;
//! - `views`: the recent handling times the contact's estimate reads;
//! - `output`: the writes, call commands and numbered desktop events.
//!
//! The behaviour is in the files named for it, as `impl Center` blocks
//! that reach the parts through their methods: `requests` (create, merge,
//! cancel, reschedule), `views` (status, agent view, dialable lists),
//! `agents` (login and states), `actions` (the desktop's actions on an
//! interaction), `calls` (call events through the mapping table),
//! `endcall` (each call's figures and its end-call event), `dispatch`
//! (timers, due callbacks and offers), `recovery` (start-up after a stop
//! or crash). What needs more than one part (a state change: the
//! interaction, its indexes, the history, the desktop and the agent) is
//! here.

mod actions;
mod agents;
mod calls;
mod dispatch;
mod endcall;
mod idempotency;
mod interactions;
mod output;
mod recovery;
mod requests;
mod roster;
mod timers;
mod views;

#[cfg(test)]
mod consult_tests;
#[cfg(test)]
mod endcall_tests;
#[cfg(test)]
mod enrichment_tests;
#[cfg(test)]
mod notice_tests;
#[cfg(test)]
mod testlab;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jiff::Timestamp;

use super::action::{ActionError, Reply, Request};
use super::model::{
    AgentState, Callback, DesktopEventKind, HistoryKind, InteractionId, State, Write,
};
use super::options;
use super::settings::{CallbackSettings, QueueSettings, WebcallbackOptions};
use crate::call::{CallCommand, CallEvent, CommandError};
use crate::integrations::notify::NoticeKind;

use idempotency::IdempotencyKeys;
use interactions::{Interactions, Live};
use output::Output;
use roster::Agents;
use timers::{Timer, Timers};
use views::HandleTimes;

pub use recovery::Recovered;

#[derive(Debug)]
pub struct Center {
    settings: Arc<CallbackSettings>,
    interactions: Interactions,
    agents: Agents,
    timers: Timers,
    keys: IdempotencyKeys,
    handle_times: HandleTimes,
    out: Output,
    /// Something changed that could make an offer possible (a callback
    /// queued, an agent freed, Ready or registered): only then does
    /// `dispatch` look at the queue, not after every request.
    offerable: bool,
}

impl Center {
    /// Handles one API request. Its writes (if any) are queued; the caller
    /// commits them before releasing the reply.
    pub fn handle_request(
        &mut self,
        now: Timestamp,
        request: Request,
    ) -> Result<Reply, ActionError> {
        let reply = self.request(now, request);
        self.dispatch(now);
        reply
    }

    /// One event of the call layer.
    pub fn handle_call_event(&mut self, now: Timestamp, event: &CallEvent) {
        self.call_event(now, event);
        self.dispatch(now);
    }

    /// A command the center sent was refused by the call layer.
    pub fn handle_command_failed(
        &mut self,
        now: Timestamp,
        command: &CallCommand,
        error: &CommandError,
    ) {
        self.command_failed(now, command, error);
        self.dispatch(now);
    }

    /// A phone registered (`up`) or lost a contact.
    pub fn handle_registration(&mut self, now: Timestamp, user: &str, contact: &str, up: bool) {
        if self.agents.get(user).is_none() {
            return;
        }
        self.offerable |= self.agents.register(user, contact, up);
        self.dispatch(now);
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some(timer) = self.timers.pop_due(now) {
            self.fire(now, timer);
        }
        self.dispatch(now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.next()
    }

    /// The writes to commit before anything else leaves. A record saved
    /// several times since the last take (created, then queued) is written
    /// once, as it is now: every save is the whole record.
    pub fn take_writes(&mut self) -> Vec<Write> {
        self.out.take_writes()
    }

    pub fn poll_command(&mut self) -> Option<CallCommand> {
        self.out.poll_command()
    }

    pub fn poll_desktop(&mut self) -> Option<crate::callback::model::DesktopEvent> {
        self.out.poll_desktop()
    }

    /// Forgets `Idempotency-Key`s older than the configured window; returns
    /// the cut-off, for the store to forget the same ones.
    pub fn forget_old_keys(&mut self, now: Timestamp) -> Timestamp {
        self.keys.forget_old(now)
    }

    /// How many interactions are live (not final).
    pub fn live_count(&self) -> usize {
        self.interactions.len()
    }

    /// The indexes over the live interactions are true (for the tests'
    /// lab, after every step).
    #[cfg(test)]
    fn check(&self) -> Result<(), String> {
        self.interactions.check()
    }

    // ---- what needs more than one part ----

    fn queue(&self, id: &str) -> Option<&QueueSettings> {
        self.settings.queues.get(id)
    }

    /// Writes the interaction's record as it is now.
    fn save(&mut self, id: &InteractionId, now: Timestamp) {
        if let Some(live) = self.interactions.get_mut(id) {
            live.cb.updated_at = now;
            self.out.save(&live.cb);
        }
    }

    /// Moves an interaction to `to`, recording why, telling the desktop and
    /// keeping the indexes (queued set, duplicates, live set) true.
    fn transition(&mut self, id: &InteractionId, now: Timestamp, to: State, reason: &str) {
        let Some(from) = self.interactions.set_state(id, to, now) else {
            return;
        };
        self.offerable |= to == State::Queued;
        if from != to {
            self.out.history(
                id,
                now,
                HistoryKind::StateChanged {
                    from,
                    to,
                    reason: reason.to_string(),
                },
            );
        }
        let Some(cb) = self.interactions.get(id).map(|l| &l.cb) else {
            return;
        };
        self.out.emit(
            now,
            DesktopEventKind::Interaction {
                id: id.clone(),
                state: to,
                agent: cb.agent.clone(),
                queue: cb.interaction_queue.clone(),
                reason: reason.to_string(),
            },
        );
        self.out.save(cb);
        if to.is_final() {
            self.interactions.remove(id);
        }
    }

    /// Frees the interaction from its agent (offer withdrawn, requeued,
    /// rescheduled, finished). That wraps its calls up: their end-call
    /// events are committed now, with the disposition if one was given.
    fn release_agent(&mut self, id: &InteractionId, now: Timestamp) -> Option<String> {
        self.report_calls(id, now, "interaction-closed");
        let agent = self.interactions.get_mut(id)?.cb.agent.take()?;
        self.offerable |= self.agents.release(&agent, id);
        Some(agent)
    }

    /// Moves an agent's state: stored, reported to workforce management and
    /// shown on the desktop.
    fn set_agent_state(
        &mut self,
        agent: &str,
        now: Timestamp,
        state: AgentState,
        reason: Option<String>,
    ) {
        let Some(change) = self.agents.set_state(agent, now, state, reason) else {
            return;
        };
        self.offerable |= change.became_ready;
        let reason = change.record.reason.clone();
        self.out.write(Write::Agent(change.record));
        self.notify(now, change.notice);
        self.out.emit(
            now,
            DesktopEventKind::Agent {
                agent: agent.to_string(),
                state,
                reason,
            },
        );
    }

    /// Commits an outbox row for every endpoint that wants this event.
    fn notify(&mut self, now: Timestamp, kind: NoticeKind) {
        self.out.notify(&self.settings.notify, now, kind);
    }

    fn resolve_options(&self, cb: &Callback) -> WebcallbackOptions {
        options::resolve(&self.settings.options, &cb.request.routing_data.options)
            .unwrap_or_else(|_| self.settings.options.clone())
    }
}
