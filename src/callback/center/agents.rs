//! Agent login and states: logged out, Ready, Not Ready with a reason,
//! Engaged on a call, Working in after-call work. The `login.webcallback.*`
//! options (docs/web-callbacks.md, Agents) decide where a login lands and whether the
//! channel may be left with interactions open. This file decides which
//! moves an action allows; the agents' state and what a move records are
//! `roster`'s.

use jiff::Timestamp;

use super::Center;
use crate::callback::action::{ActionError, AgentAction, Reply};
use crate::callback::model::{AgentState, State};
use crate::callback::settings::Privilege;

impl Center {
    pub(super) fn agent_action(
        &mut self,
        now: Timestamp,
        agent: &str,
        action: AgentAction,
    ) -> Result<Reply, ActionError> {
        let state = self.agents.find(agent)?.record.state;
        let wrong = |action: &str| ActionError::WrongState {
            action: action.to_string(),
            state: state.to_string(),
        };
        match action {
            AgentAction::Login => {
                self.agents.require(agent, Privilege::UseChannel)?;
                if state != AgentState::LoggedOut {
                    return Err(wrong("login"));
                }
                let login = self.settings.login.clone();
                if login.is_auto_ready {
                    self.set_agent_state(agent, now, AgentState::Ready, None);
                } else {
                    let reason = login.auto_not_ready_reason.or(Some("Login".into()));
                    self.set_agent_state(agent, now, AgentState::NotReady, reason);
                }
            }
            AgentAction::Ready => match state {
                AgentState::LoggedOut => return Err(wrong("ready")),
                AgentState::Engaged => return Err(wrong("ready")),
                _ => self.set_agent_state(agent, now, AgentState::Ready, None),
            },
            AgentAction::NotReady { reason } => match state {
                AgentState::LoggedOut | AgentState::Engaged => return Err(wrong("not-ready")),
                _ => {
                    let reason = reason.filter(|r| !r.trim().is_empty());
                    self.set_agent_state(agent, now, AgentState::NotReady, reason)
                }
            },
            AgentAction::Logout => {
                if state == AgentState::LoggedOut {
                    return Err(wrong("logout"));
                }
                let owns = self.agents.find(agent)?.owns().to_vec();
                if !owns.is_empty() {
                    if !self.settings.login.can_unactivate_channel {
                        return Err(ActionError::WrongState {
                            action: "logout".into(),
                            state: format!("{} interaction(s) open", owns.len()),
                        });
                    }
                    if owns.iter().any(|id| {
                        self.interactions
                            .get(id)
                            .is_some_and(|l| l.cb.call_id.is_some())
                    }) {
                        return Err(ActionError::WrongState {
                            action: "logout".into(),
                            state: "on a call".into(),
                        });
                    }
                    // Open interactions go back to their queue for someone else.
                    for id in owns {
                        self.release_agent(&id, now);
                        self.exclude(&id, agent, now);
                        self.transition(&id, now, State::Queued, "agent logged out");
                    }
                }
                self.set_agent_state(agent, now, AgentState::LoggedOut, None);
            }
        }
        self.agent_view(agent).map(|v| Reply::Agent(Box::new(v)))
    }

    /// An interaction left `agent`. With nothing left to handle, an agent
    /// that was on a call or in after-call work becomes Ready again (or
    /// stays Working until it says so, per `ready_after_done`).
    pub(super) fn agent_freed(&mut self, agent: &str, now: Timestamp) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        if !a.owns().is_empty() {
            return;
        }
        match a.record.state {
            AgentState::Engaged | AgentState::Working => {
                if self.settings.ready_after_done {
                    self.set_agent_state(agent, now, AgentState::Ready, None);
                } else {
                    self.set_agent_state(agent, now, AgentState::Working, None);
                }
            }
            _ => {}
        }
    }
}
