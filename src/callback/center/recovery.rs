//! Start-up: the center rebuilt from the store after a clean stop or a
//! crash. No voice call survives a restart, so every interaction that was
//! with an agent goes back to its queue in a defined state, with the
//! attempt it was on counted, and a `recovered` step in its history; its
//! calls not yet reported get their end-call events. Each part starts from
//! what the store kept: the agents' records, the keys, the desktop's last
//! number, and the live interactions, filed by the state they were in.

use std::sync::Arc;

use jiff::Timestamp;

use super::{
    Agents, Center, HandleTimes, IdempotencyKeys, Interactions, Live, Output, Timer, Timers,
};
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
        let agents = Agents::new(&settings, recovered.agents, now);
        let keys = IdempotencyKeys::new(settings.idempotency_window, recovered.idempotency);
        let mut center = Center {
            settings,
            interactions: Interactions::default(),
            agents,
            timers: Timers::default(),
            keys,
            handle_times: HandleTimes::default(),
            out: Output::new(recovered.last_desktop_seq),
            // Recovered queued callbacks are filed without a transition.
            offerable: true,
        };
        for cb in recovered.callbacks {
            center.recover(cb, now);
        }
        // An agent that was on a call or in after-call work has neither now.
        for agent in center.agents.busy() {
            center.set_agent_state(&agent, now, AgentState::Ready, None);
        }
        center
    }

    fn recover(&mut self, cb: Callback, now: Timestamp) {
        let id = cb.id.clone();
        let state = cb.state;
        let (due, expires) = (cb.due_at, cb.expires_at);
        let options = self.resolve_options(&cb);
        // Filed as it is: a waiting one is a duplicate's target, a queued
        // one waits for an agent.
        self.interactions.insert(Live::new(cb, options));
        // Calls the crash left unreported (ended but not wrapped up, or up
        // when it struck) are reported now: the interaction has left its
        // agent. A call that was up ends here, as far as anyone can tell.
        if self.report_calls(&id, now, "switch-restarted") {
            self.save(&id, now);
        }
        match state {
            State::Scheduled | State::Rescheduled => {
                self.timers.at(due, Timer::Due(id.clone()));
            }
            State::Queued => {}
            _ => {
                // With an agent (offered, accepted, on a call): back to the
                // queue. The attempt a lost call was on stays counted.
                self.out
                    .history(&id, now, HistoryKind::Recovered { from: state });
                if let Some(l) = self.interactions.get_mut(&id) {
                    l.cb.agent = None;
                    l.cb.call_id = None;
                    l.cb.due_at = now;
                }
                self.transition(&id, now, State::Queued, "recovered after restart");
            }
        }
        if let Some(at) = expires {
            self.timers.at(at, Timer::Expire(id));
        }
    }
}
