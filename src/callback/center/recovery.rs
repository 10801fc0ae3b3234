//! Start-up: the center rebuilt from the store after a clean stop or a
//! crash. No voice call survives a restart, so every interaction that was
//! with an agent goes back to its queue in a defined state, with the
//! attempt it was on counted, and a `recovered` step in its history; its
//! calls not yet reported get their end-call events.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::{AgentLive, Center, Live, Timer};
use crate::callback::model::{Agent, AgentState, Callback, HistoryKind, InteractionId, State};
use crate::callback::settings::CallbackSettings;

/// What the store hands back at start-up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// Every callback not in a final state.
    pub callbacks: Vec<Callback>,
    pub agents: Vec<Agent>,
    pub last_desktop_seq: u64,
    pub idempotency: Vec<(String, InteractionId, Timestamp)>,
}

impl Center {
    /// The center over `recovered`. The recovery's own writes (requeued
    /// interactions, freed agents) are queued: commit them before serving.
    pub fn new(settings: Arc<CallbackSettings>, recovered: Recovered, now: Timestamp) -> Center {
        let mut stored: HashMap<String, Agent> = recovered
            .agents
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let agents = settings
            .agents
            .values()
            .map(|s| {
                let record = stored.remove(&s.id).unwrap_or(Agent {
                    id: s.id.clone(),
                    state: AgentState::LoggedOut,
                    reason: None,
                    since: now,
                    idle_since: None,
                });
                (
                    s.id.clone(),
                    AgentLive {
                        settings: s.clone(),
                        record,
                        contacts: Default::default(),
                        owns: Vec::new(),
                    },
                )
            })
            .collect();
        let mut center = Center {
            settings,
            live: HashMap::new(),
            agents,
            pending_by_number: HashMap::new(),
            by_call: HashMap::new(),
            idempotency: recovered
                .idempotency
                .into_iter()
                .map(|(k, id, at)| (k, (id, at)))
                .collect(),
            timers: Default::default(),
            queued: Default::default(),
            // Recovered queued callbacks are filed without a transition.
            offerable: true,
            handle_times: HashMap::new(),
            desktop_seq: recovered.last_desktop_seq,
            writes: Vec::new(),
            commands: Default::default(),
            desktop: Default::default(),
        };
        for cb in recovered.callbacks {
            center.recover(cb, now);
        }
        // An agent that was on a call or in after-call work has neither now.
        let busy: Vec<String> = center
            .agents
            .values()
            .filter(|a| matches!(a.record.state, AgentState::Engaged | AgentState::Working))
            .map(|a| a.record.id.clone())
            .collect();
        for agent in busy {
            center.set_agent_state(&agent, now, AgentState::Ready, None);
        }
        center
    }

    fn recover(&mut self, cb: Callback, now: Timestamp) {
        let id = cb.id.clone();
        let state = cb.state;
        let options = self.resolve_options(&cb);
        let live = Live::new(cb, options);
        let key = super::pending_key(&live.cb);
        let (due, expires) = (live.cb.due_at, live.cb.expires_at);
        self.live.insert(id.clone(), live);
        // Calls the crash left unreported (ended but not wrapped up, or up
        // when it struck) are reported now: the interaction has left its
        // agent. A call that was up ends here, as far as anyone can tell.
        if self.report_calls(&id, now, "switch-restarted") {
            self.save(&id, now);
        }
        match state {
            State::Scheduled | State::Rescheduled => {
                self.pending_by_number.insert(key, id.clone());
                self.timers.insert((due, Timer::Due(id.clone())));
            }
            State::Queued => {
                self.pending_by_number.insert(key, id.clone());
                self.queued.insert(id.clone());
            }
            _ => {
                // With an agent (offered, accepted, on a call): back to the
                // queue. The attempt a lost call was on stays counted.
                self.history(&id, now, HistoryKind::Recovered { from: state });
                if let Some(l) = self.live.get_mut(&id) {
                    l.cb.agent = None;
                    l.cb.call_id = None;
                    l.cb.due_at = now;
                }
                self.transition(&id, now, State::Queued, "recovered after restart");
            }
        }
        if let Some(at) = expires {
            self.timers.insert((at, Timer::Expire(id)));
        }
    }
}
