//! The agents: each configured agent's settings, its durable record (state,
//! reason, since when, idle since when), its phone's registered contacts
//! and the interactions it owns (offered or accepted). Answers who is free,
//! who may be offered what (`routing::Candidate`s), who may do what
//! (privileges), and moves an agent's state, saying what the move means
//! for workforce management (login, logout, state change).
//!
//! It writes and emits nothing itself: [`Agents::set_state`] returns the
//! change and the center commits, notifies and tells the desktop. Which
//! moves an action allows (login only when logged out ...) is `agents`'.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::callback::action::{ActionError, AgentView};
use crate::callback::model::{Agent, AgentState, InteractionId};
use crate::callback::routing::Candidate;
use crate::callback::settings::{AgentSettings, CallbackSettings, Privilege};
use crate::integrations::notify::{AgentChangeNotice, NoticeKind};

/// A configured agent and its live state.
#[derive(Debug, Clone)]
pub(super) struct AgentLive {
    pub(super) settings: AgentSettings,
    pub(super) record: Agent,
    /// Registered contacts of its phone.
    contacts: HashSet<String>,
    /// The interactions it owns (offered or accepted).
    owns: Vec<InteractionId>,
}

impl AgentLive {
    /// The interactions it owns (offered or accepted), oldest first.
    pub(super) fn owns(&self) -> &[InteractionId] {
        &self.owns
    }

    /// Free for an offer: Ready, a phone registered, owning nothing.
    fn is_free(&self) -> bool {
        self.record.state == AgentState::Ready && !self.contacts.is_empty() && self.owns.is_empty()
    }
}

/// An agent's state moved: the record to store and the notice workforce
/// management gets.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AgentChange {
    pub(super) record: Agent,
    pub(super) notice: NoticeKind,
    /// It became Ready from another state: an offer may now be possible.
    pub(super) became_ready: bool,
}

#[derive(Debug, Default)]
pub(super) struct Agents {
    by_id: HashMap<String, AgentLive>,
}

impl Agents {
    /// Every configured agent, with its stored record (or logged out since
    /// `now` when it has none). Stored agents no longer configured go.
    pub(super) fn new(settings: &CallbackSettings, stored: Vec<Agent>, now: Timestamp) -> Agents {
        let mut stored: HashMap<String, Agent> =
            stored.into_iter().map(|a| (a.id.clone(), a)).collect();
        let by_id = settings
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
                let live = AgentLive {
                    settings: s.clone(),
                    record,
                    contacts: HashSet::new(),
                    owns: Vec::new(),
                };
                (s.id.clone(), live)
            })
            .collect();
        Agents { by_id }
    }

    pub(super) fn get(&self, agent: &str) -> Option<&AgentLive> {
        self.by_id.get(agent)
    }

    /// The agent, or the API's "no agent".
    pub(super) fn find(&self, agent: &str) -> Result<&AgentLive, ActionError> {
        self.get(agent)
            .ok_or_else(|| ActionError::NoAgent(agent.to_string()))
    }

    pub(super) fn state(&self, agent: &str) -> Option<AgentState> {
        self.get(agent).map(|a| a.record.state)
    }

    /// The agent holds `privilege`, or the API's 403 naming it.
    pub(super) fn require(&self, agent: &str, privilege: Privilege) -> Result<(), ActionError> {
        if self.find(agent)?.settings.privileges.allows(privilege) {
            Ok(())
        } else {
            Err(ActionError::Forbidden {
                agent: agent.to_string(),
                privilege,
            })
        }
    }

    /// A phone registered (`up`) or lost `contact`; true when a contact
    /// was added (an offer may now reach the agent).
    pub(super) fn register(&mut self, user: &str, contact: &str, up: bool) -> bool {
        let Some(agent) = self.by_id.get_mut(user) else {
            return false;
        };
        if up {
            agent.contacts.insert(contact.to_string());
        } else {
            agent.contacts.remove(contact);
        }
        up
    }

    pub(super) fn any_free(&self) -> bool {
        self.by_id.values().any(AgentLive::is_free)
    }

    /// Every agent as routing sees it.
    pub(super) fn candidates(&self) -> Vec<Candidate<'_>> {
        self.by_id
            .values()
            .map(|a| Candidate {
                settings: &a.settings,
                state: a.record.state,
                idle_since: a.record.idle_since,
                registered: !a.contacts.is_empty(),
                busy: !a.owns.is_empty(),
            })
            .collect()
    }

    /// How many agents are logged in and not on a break (Ready, Engaged or
    /// Working), at least one: the estimate's divisor.
    pub(super) fn staffed(&self) -> u64 {
        let on = self
            .by_id
            .values()
            .filter(|a| {
                matches!(
                    a.record.state,
                    AgentState::Ready | AgentState::Engaged | AgentState::Working
                )
            })
            .count();
        on.max(1) as u64
    }

    /// One agent, a team's members, or everyone.
    pub(super) fn members(
        &self,
        agent: Option<&str>,
        team: Option<&str>,
    ) -> Result<Vec<&AgentLive>, ActionError> {
        Ok(match (agent, team) {
            (Some(a), _) => vec![self.find(a)?],
            (None, Some(t)) => self
                .by_id
                .values()
                .filter(|a| a.settings.team.as_deref() == Some(t))
                .collect(),
            (None, None) => self.by_id.values().collect(),
        })
    }

    /// The agents on a call or in after-call work.
    pub(super) fn busy(&self) -> Vec<String> {
        self.by_id
            .values()
            .filter(|a| matches!(a.record.state, AgentState::Engaged | AgentState::Working))
            .map(|a| a.record.id.clone())
            .collect()
    }

    /// `agent` now owns `id` (it is offered to it).
    pub(super) fn take(&mut self, agent: &str, id: &InteractionId) {
        if let Some(a) = self.by_id.get_mut(agent) {
            a.owns.push(id.clone());
        }
    }

    /// `agent` no longer owns `id`; true when it now owns nothing (it may
    /// be offered another).
    pub(super) fn release(&mut self, agent: &str, id: &InteractionId) -> bool {
        let Some(a) = self.by_id.get_mut(agent) else {
            return false;
        };
        a.owns.retain(|o| o != id);
        a.owns.is_empty()
    }

    /// The desktop's view of the agent.
    pub(super) fn view(&self, agent: &str) -> Result<AgentView, ActionError> {
        let a = self.find(agent)?;
        Ok(AgentView {
            agent: a.record.clone(),
            team: a.settings.team.clone(),
            skills: a.settings.skills.clone(),
            interactions: a.owns.clone(),
            registered: !a.contacts.is_empty(),
        })
    }

    /// Moves `agent` to `state` (with `reason`); `None` when that is where
    /// it already is, or it is unknown.
    pub(super) fn set_state(
        &mut self,
        agent: &str,
        now: Timestamp,
        state: AgentState,
        reason: Option<String>,
    ) -> Option<AgentChange> {
        let a = self.by_id.get_mut(agent)?;
        if a.record.state == state && a.record.reason == reason {
            return None;
        }
        let was_free = a.record.state == AgentState::Ready;
        let previous = (a.record.state, a.record.reason.take(), a.record.since);
        a.record.state = state;
        a.record.reason = reason;
        a.record.since = now;
        let notice = change_notice(
            &a.settings,
            previous,
            state,
            a.record.reason.as_deref(),
            now,
        );
        let became_ready = state == AgentState::Ready && !was_free;
        if became_ready {
            a.record.idle_since = Some(now);
        }
        Some(AgentChange {
            record: a.record.clone(),
            notice,
            became_ready,
        })
    }
}

/// Workforce management's view of an agent's change: a login (from logged
/// out), a logout (to logged out), or any other state change.
fn change_notice(
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

#[cfg(test)]
mod tests {
    use super::super::testlab::settings;
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn id(s: &str) -> InteractionId {
        InteractionId(s.into())
    }

    #[test]
    fn only_a_ready_registered_agent_owning_nothing_is_free() {
        let mut agents = Agents::new(&settings(), Vec::new(), at(0));
        assert_eq!(agents.state("1001"), Some(AgentState::LoggedOut));
        assert!(!agents.any_free());
        agents.set_state("1001", at(1), AgentState::Ready, None);
        assert!(!agents.any_free(), "no phone registered");
        assert!(agents.register("1001", "sip:1001@127.0.0.1", true));
        assert!(agents.any_free());
        agents.take("1001", &id("cb-1"));
        assert!(!agents.any_free(), "owns an interaction");
        assert!(agents.candidates().iter().any(|c| c.busy));
        assert!(agents.release("1001", &id("cb-1")));
        assert!(agents.any_free());
        assert!(!agents.register("1001", "sip:1001@127.0.0.1", false));
        assert!(!agents.any_free(), "phone gone");
        assert!(!agents.register("nobody", "sip:x@127.0.0.1", true));
    }

    #[test]
    fn a_state_change_says_what_workforce_management_sees() {
        let mut agents = Agents::new(&settings(), Vec::new(), at(0));
        let login = agents
            .set_state("1001", at(10), AgentState::Ready, None)
            .unwrap();
        assert!(login.became_ready);
        assert_eq!(login.record.idle_since, Some(at(10)));
        let NoticeKind::AgentLogin(n) = &login.notice else {
            panic!("{:?}", login.notice)
        };
        assert_eq!(n.state_name, "Available");
        assert_eq!(n.previous_state_seconds, Some(10));
        // The same state and reason again is no change.
        assert_eq!(
            agents.set_state("1001", at(11), AgentState::Ready, None),
            None
        );
        let away = agents
            .set_state("1001", at(20), AgentState::NotReady, Some("Lunch".into()))
            .unwrap();
        assert!(!away.became_ready);
        assert!(matches!(&away.notice, NoticeKind::AgentState(n) if n.state_name == "Lunch"));
        let out = agents
            .set_state("1001", at(30), AgentState::LoggedOut, None)
            .unwrap();
        assert!(matches!(&out.notice, NoticeKind::AgentLogout(n)
            if n.previous_state_name.as_deref() == Some("Lunch")));
        assert_eq!(
            agents.set_state("nobody", at(31), AgentState::Ready, None),
            None
        );
    }

    #[test]
    fn stored_records_come_back_and_unknown_agents_are_named() {
        let stored = Agent {
            id: "1002".into(),
            state: AgentState::Working,
            reason: None,
            since: at(-5),
            idle_since: None,
        };
        let agents = Agents::new(&settings(), vec![stored.clone()], at(0));
        assert_eq!(agents.get("1002").map(|a| &a.record), Some(&stored));
        assert_eq!(agents.busy(), ["1002"]);
        assert_eq!(agents.staffed(), 1);
        assert_eq!(
            agents.find("9999").err(),
            Some(ActionError::NoAgent("9999".into()))
        );
        assert_eq!(agents.members(None, Some("tier1")).unwrap().len(), 2);
        assert_eq!(agents.members(None, Some("blue")).unwrap().len(), 0);
        assert!(agents.require("1001", Privilege::UseChannel).is_ok());
    }
}
