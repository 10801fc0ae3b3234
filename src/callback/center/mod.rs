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
//! Files: `requests` (create, cancel, reschedule, status, lists), `agents`
//! (login and states), `actions` (the desktop's actions on an interaction),
//! `calls` (call events through the mapping table), `endcall` (each call's
//! figures and its end-call event), `dispatch` (timers, due callbacks and
//! offers), `recovery` (start-up after a stop or crash).

mod actions;
mod agents;
mod calls;
mod dispatch;
mod endcall;
mod recovery;
mod requests;

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

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use jiff::Timestamp;

use super::action::{ActionError, Reply, Request};
use super::model::{
    Agent, AgentState, Callback, DesktopEvent, DesktopEventKind, HistoryEntry, HistoryKind,
    InteractionId, State, Write,
};
use super::options;
use super::settings::{
    AgentSettings, CallbackSettings, Privilege, QueueSettings, WebcallbackOptions,
};
use crate::call::{CallCommand, CallEvent, CommandError};
use crate::integrations::notify::{self, AgentChangeNotice, Notice, NoticeKind, OutboxWrite};

pub use recovery::Recovered;

/// Something the center must do at a time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// A waiting callback falls due.
    Due(InteractionId),
    /// A waiting callback's life ends.
    Expire(InteractionId),
    /// An offer times out, or its auto-answer preview runs out.
    Offer(InteractionId),
    /// An agent's exclusion from a queued callback ends: it may be offered
    /// to that agent again.
    Exclusion(InteractionId),
}

/// A live interaction: the record plus what only matters while it lives.
#[derive(Debug, Clone)]
struct Live {
    cb: Callback,
    /// The options in force (defaults with the routing data's overrides).
    options: WebcallbackOptions,
    /// Agents that rejected it or let its offer time out, skipped for it
    /// until the time beside them (`CallbackSettings::exclusion`): another
    /// agent gets it first, yet a team of one is not refused it for ever.
    excluded: Vec<(String, Timestamp)>,
    /// When the current offer ends (timeout, or auto-answer).
    offer_deadline: Option<Timestamp>,
    /// The current offer is accepted when its deadline comes.
    auto_accept: bool,
    /// The customer was reached at least once since it was accepted (for
    /// the "reschedule before call" privilege).
    reached: bool,
    /// When its agent accepted it (for the handling time).
    accepted_at: Option<Timestamp>,
    /// `cb.attempts` when its agent accepted it: more now means the contact
    /// has been called since (an attempt whose agent leg failed is taken
    /// back). `done` on one never called closes it unprocessed, which is
    /// `mark-done`'s privilege. `None` when unknown (recovered at start-up):
    /// counted as called.
    attempts_at_accept: Option<u32>,
}

impl Live {
    fn new(cb: Callback, options: WebcallbackOptions) -> Live {
        Live {
            cb,
            options,
            excluded: Vec::new(),
            offer_deadline: None,
            auto_accept: false,
            reached: false,
            accepted_at: None,
            attempts_at_accept: None,
        }
    }
}

/// A configured agent and its live state.
#[derive(Debug, Clone)]
struct AgentLive {
    settings: AgentSettings,
    record: Agent,
    /// Registered contacts of its phone.
    contacts: HashSet<String>,
    /// The interactions it owns (offered or accepted).
    owns: Vec<InteractionId>,
}

#[derive(Debug)]
pub struct Center {
    settings: Arc<CallbackSettings>,
    live: HashMap<InteractionId, Live>,
    agents: HashMap<String, AgentLive>,
    /// Waiting callbacks by (queue, first number), to merge duplicates.
    pending_by_number: HashMap<(String, String), InteractionId>,
    /// The interaction each voice call belongs to.
    by_call: HashMap<String, InteractionId>,
    idempotency: HashMap<String, (InteractionId, Timestamp)>,
    timers: BTreeSet<(Timestamp, Timer)>,
    /// Queued callbacks waiting for an agent.
    queued: HashSet<InteractionId>,
    /// Something changed that could make an offer possible (a callback
    /// queued, an agent freed, Ready or registered): only then does
    /// `dispatch` look at the queue, not after every request.
    offerable: bool,
    /// Recent handling times per queue (seconds), for the estimated wait.
    handle_times: HashMap<String, VecDeque<u64>>,
    desktop_seq: u64,
    writes: Vec<Write>,
    commands: VecDeque<CallCommand>,
    desktop: VecDeque<DesktopEvent>,
}

/// The key duplicates are merged by: the routing queue and the first number.
fn pending_key(cb: &Callback) -> (String, String) {
    cb.request.duplicate_key()
}

/// How many handling times the estimate averages.
const HANDLE_TIME_SAMPLES: usize = 50;
/// The handling time assumed before any was measured.
const DEFAULT_HANDLE_SECS: u64 = 180;

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
        let Some(agent) = self.agents.get_mut(user) else {
            return;
        };
        if up {
            agent.contacts.insert(contact.to_string());
            self.offerable = true;
        } else {
            agent.contacts.remove(contact);
        }
        self.dispatch(now);
    }

    pub fn handle_timeout(&mut self, now: Timestamp) {
        while let Some((at, _)) = self.timers.first() {
            if *at > now {
                break;
            }
            let Some((_, timer)) = self.timers.pop_first() else {
                break;
            };
            self.fire(now, timer);
        }
        self.dispatch(now);
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// The writes to commit before anything else leaves. A record saved
    /// several times since the last take (created, then queued) is written
    /// once, as it is now: every save is the whole record.
    pub fn take_writes(&mut self) -> Vec<Write> {
        let mut writes = std::mem::take(&mut self.writes);
        let mut saved = HashSet::new();
        let mut keep = vec![true; writes.len()];
        for (i, w) in writes.iter().enumerate().rev() {
            if let Write::Callback(cb) = w {
                keep[i] = saved.insert(&cb.id);
            }
        }
        let mut keep = keep.into_iter();
        writes.retain(|_| keep.next().unwrap_or(true));
        writes
    }

    pub fn poll_command(&mut self) -> Option<CallCommand> {
        self.commands.pop_front()
    }

    pub fn poll_desktop(&mut self) -> Option<DesktopEvent> {
        self.desktop.pop_front()
    }

    /// Forgets `Idempotency-Key`s older than the configured window; returns
    /// the cut-off, for the store to forget the same ones.
    pub fn forget_old_keys(&mut self, now: Timestamp) -> Timestamp {
        let window = jiff::SignedDuration::try_from(self.settings.idempotency_window)
            .unwrap_or(jiff::SignedDuration::MAX);
        let before = now.checked_sub(window).unwrap_or(Timestamp::MIN);
        self.idempotency.retain(|_, (_, at)| *at >= before);
        before
    }

    /// How many interactions are live (not final).
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    // ---- shared helpers for the submodules ----

    fn queue(&self, id: &str) -> Option<&QueueSettings> {
        self.settings.queues.get(id)
    }

    fn get(&self, id: &InteractionId) -> Result<&Live, ActionError> {
        self.live
            .get(id)
            .ok_or_else(|| ActionError::NoCallback(id.clone()))
    }

    fn agent_settings(&self, agent: &str) -> Result<&AgentLive, ActionError> {
        self.agents
            .get(agent)
            .ok_or_else(|| ActionError::NoAgent(agent.to_string()))
    }

    fn require(&self, agent: &str, privilege: Privilege) -> Result<(), ActionError> {
        if self
            .agent_settings(agent)?
            .settings
            .privileges
            .allows(privilege)
        {
            Ok(())
        } else {
            Err(ActionError::Forbidden {
                agent: agent.to_string(),
                privilege,
            })
        }
    }

    fn history(&mut self, id: &InteractionId, now: Timestamp, kind: HistoryKind) {
        self.writes
            .push(Write::History(id.clone(), HistoryEntry { at: now, kind }));
    }

    fn emit(&mut self, now: Timestamp, kind: DesktopEventKind) {
        self.desktop_seq += 1;
        let event = DesktopEvent {
            seq: self.desktop_seq,
            at: now,
            kind,
        };
        self.writes.push(Write::Desktop(event.clone()));
        self.desktop.push_back(event);
    }

    /// Writes the interaction's record as it is now.
    fn save(&mut self, id: &InteractionId, now: Timestamp) {
        if let Some(live) = self.live.get_mut(id) {
            live.cb.updated_at = now;
            self.writes.push(Write::Callback(Box::new(live.cb.clone())));
        }
    }

    /// Moves an interaction to `to`, recording why, telling the desktop and
    /// keeping the indexes (queued set, duplicates, live set) true.
    fn transition(&mut self, id: &InteractionId, now: Timestamp, to: State, reason: &str) {
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        let from = live.cb.state;
        live.cb.state = to;
        live.cb.updated_at = now;
        let key = pending_key(&live.cb);
        let (queue, agent) = (live.cb.interaction_queue.clone(), live.cb.agent.clone());
        if to == State::Queued {
            self.queued.insert(id.clone());
            self.offerable = true;
        } else {
            self.queued.remove(id);
        }
        if to.is_waiting() {
            self.pending_by_number.insert(key, id.clone());
        } else if self.pending_by_number.get(&key) == Some(id) {
            self.pending_by_number.remove(&key);
        }
        if from != to {
            self.history(
                id,
                now,
                HistoryKind::StateChanged {
                    from,
                    to,
                    reason: reason.to_string(),
                },
            );
        }
        self.emit(
            now,
            DesktopEventKind::Interaction {
                id: id.clone(),
                state: to,
                agent,
                queue,
                reason: reason.to_string(),
            },
        );
        self.save(id, now);
        if to.is_final() {
            self.live.remove(id);
        }
    }

    /// Frees the interaction from its agent (offer withdrawn, requeued,
    /// rescheduled, finished). That wraps its calls up: their end-call
    /// events are committed now, with the disposition if one was given.
    fn release_agent(&mut self, id: &InteractionId, now: Timestamp) -> Option<String> {
        self.report_calls(id, now, "interaction-closed");
        let agent = self.live.get_mut(id).and_then(|l| l.cb.agent.take())?;
        if let Some(a) = self.agents.get_mut(&agent) {
            a.owns.retain(|o| o != id);
            self.offerable |= a.owns.is_empty();
        }
        Some(agent)
    }

    fn set_agent_state(
        &mut self,
        agent: &str,
        now: Timestamp,
        state: AgentState,
        reason: Option<String>,
    ) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        if a.record.state == state && a.record.reason == reason {
            return;
        }
        let was_free = a.record.state == AgentState::Ready;
        let previous = (a.record.state, a.record.reason.take(), a.record.since);
        a.record.state = state;
        a.record.reason = reason.clone();
        a.record.since = now;
        let notice = agent_change_notice(&a.settings, previous, state, reason.as_deref(), now);
        if state == AgentState::Ready && !was_free {
            a.record.idle_since = Some(now);
            self.offerable = true;
        }
        let record = a.record.clone();
        self.writes.push(Write::Agent(record));
        self.notify(now, notice);
        self.emit(
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
        let notice = Notice::new(now, kind);
        for d in notify::deliveries(&self.settings.notify, &notice) {
            self.writes
                .push(Write::Outbox(OutboxWrite::Enqueue(Box::new(d))));
        }
    }

    fn resolve_options(&self, cb: &Callback) -> WebcallbackOptions {
        options::resolve(&self.settings.options, &cb.request.routing_data.options)
            .unwrap_or_else(|_| self.settings.options.clone())
    }

    fn record_handle_time(&mut self, queue: &str, secs: u64) {
        let samples = self.handle_times.entry(queue.to_string()).or_default();
        if samples.len() == HANDLE_TIME_SAMPLES {
            samples.pop_front();
        }
        samples.push_back(secs);
    }

    fn average_handle_secs(&self, queue: &str) -> u64 {
        match self.handle_times.get(queue) {
            Some(s) if !s.is_empty() => s.iter().sum::<u64>() / s.len() as u64,
            _ => DEFAULT_HANDLE_SECS,
        }
    }
}

/// Workforce management's view of an agent's change: a login (from logged
/// out), a logout (to logged out), or any other state change.
fn agent_change_notice(
    agent: &AgentSettings,
    (was, was_reason, was_since): (AgentState, Option<String>, Timestamp),
    state: AgentState,
    reason: Option<&str>,
    now: Timestamp,
) -> NoticeKind {
    let change = AgentChangeNotice {
        agent_id: agent.id.clone(),
        agent_name: agent.name.clone(),
        state: state.as_str().to_string(),
        state_name: state.wfm_name(reason),
        reason: reason.map(str::to_string),
        previous_state: Some(was.as_str().to_string()),
        previous_state_name: Some(was.wfm_name(was_reason.as_deref())),
        previous_state_seconds: now.duration_since(was_since).as_secs().try_into().ok(),
    };
    match (was, state) {
        (AgentState::LoggedOut, _) => NoticeKind::AgentLogin(change),
        (_, AgentState::LoggedOut) => NoticeKind::AgentLogout(change),
        _ => NoticeKind::AgentState(change),
    }
}
