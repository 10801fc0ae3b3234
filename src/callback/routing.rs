//! Which agent a due callback is offered to, and in which order due
//! callbacks are served. Pure functions over snapshots the center passes in.
//!
//! An agent is eligible when Ready, registered, free (no interaction
//! offered or accepted), holding the `webcallback.can-use` privilege, not
//! excluded for this callback (it rejected it or let the offer time out),
//! and having every skill the queue and the request require (exact,
//! case-sensitive names). Among eligible agents the request's preferred
//! agents come first, in the request's order; then the longest idle.

use std::cmp::Reverse;

use jiff::Timestamp;

use super::model::{AgentState, Callback};
use super::settings::{AgentSettings, Privilege, QueueSettings};

/// One agent as routing sees it now.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub settings: &'a AgentSettings,
    pub state: AgentState,
    /// When the agent last became free; `None` counts as idle the longest
    /// (free since login, never handed anything), so a fresh agent is
    /// served before one who just finished a call.
    pub idle_since: Option<Timestamp>,
    /// A phone is registered for the agent.
    pub registered: bool,
    /// Already has an offered or accepted interaction.
    pub busy: bool,
}

/// The agent `cb` should be offered to, if any is eligible (see the module
/// header). Ties in idle time go to the smaller agent id, so the choice is
/// the same whatever order `candidates` come in.
pub fn pick_agent<'a>(
    cb: &Callback,
    queue: &QueueSettings,
    candidates: &[Candidate<'a>],
    excluded: &[String],
) -> Option<&'a str> {
    let eligible = |c: &&Candidate<'a>| {
        let a = c.settings;
        c.state == AgentState::Ready
            && c.registered
            && !c.busy
            && a.privileges.allows(Privilege::UseChannel)
            && !excluded.contains(&a.id)
            && queue
                .skills
                .iter()
                .chain(&cb.request.routing_data.skills)
                .all(|s| a.skills.contains(s))
    };
    let preferred = cb
        .request
        .routing_data
        .preferred_agents
        .iter()
        .find_map(|id| {
            candidates
                .iter()
                .filter(eligible)
                .find(|c| &c.settings.id == id)
        });
    preferred
        .or_else(|| {
            candidates
                .iter()
                .filter(eligible)
                // None sorts before Some: idle since forever.
                .min_by(|a, b| (a.idle_since, &a.settings.id).cmp(&(b.idle_since, &b.settings.id)))
        })
        .map(|c| c.settings.id.as_str())
}

/// Orders due callbacks for service: higher priority first, then earlier
/// due time, then earlier creation, then id (a total order, so the result
/// does not depend on the input order).
pub fn order_queue(cbs: &mut [&Callback]) {
    cbs.sort_by(|a, b| {
        let key = |c: &'_ Callback| {
            (
                Reverse(c.request.routing_data.priority),
                c.due_at,
                c.created_at,
            )
        };
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::callback::model::{InteractionId, RoutingData, State};
    use crate::callback::settings::{Privileges, RetryPolicy};
    use crate::callback::{Backoff, CallbackRequest};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn agent(id: &str, skills: &[&str]) -> AgentSettings {
        AgentSettings {
            id: id.into(),
            name: None,
            team: None,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            privileges: Privileges::default(),
        }
    }

    fn ready<'a>(settings: &'a AgentSettings, idle_since: &str) -> Candidate<'a> {
        Candidate {
            settings,
            state: AgentState::Ready,
            idle_since: Some(ts(idle_since)),
            registered: true,
            busy: false,
        }
    }

    fn queue(skills: &[&str]) -> QueueSettings {
        let b = Backoff {
            delay: Duration::from_secs(60),
            multiplier: 1.0,
            max_delay: Duration::from_secs(60),
        };
        QueueSettings {
            id: "support".into(),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            time_zone: None,
            business_hours: vec![],
            closed_dates: vec![],
            max_attempts: 3,
            retry: RetryPolicy {
                busy: b.clone(),
                no_answer: b.clone(),
                failed: b,
            },
            expiry: None,
        }
    }

    fn cb(id: &str, skills: &[&str], preferred: &[&str]) -> Callback {
        let t = ts("2025-01-01T00:00:00Z");
        let request = CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: vec!["+33123456789".into()],
            validate_callback_numbers: true,
            routing_data: RoutingData {
                skills: skills.iter().map(|s| s.to_string()).collect(),
                preferred_agents: preferred.iter().map(|s| s.to_string()).collect(),
                priority: 0,
                options: Default::default(),
            },
            ..CallbackRequest::default()
        };
        Callback {
            state: State::Queued,
            ..Callback::new(InteractionId(id.into()), request, t)
        }
    }

    const EARLY: &str = "2025-01-01T08:00:00Z";
    const LATE: &str = "2025-01-01T09:00:00Z";

    #[test]
    fn longest_idle_first_ties_by_id() {
        let (a, b, c) = (agent("1003", &[]), agent("1001", &[]), agent("1002", &[]));
        let cands = [ready(&a, LATE), ready(&b, LATE), ready(&c, EARLY)];
        let q = queue(&[]);
        assert_eq!(
            pick_agent(&cb("x", &[], &[]), &q, &cands, &[]),
            Some("1002")
        );
        let cands = [ready(&a, LATE), ready(&b, LATE)];
        assert_eq!(
            pick_agent(&cb("x", &[], &[]), &q, &cands, &[]),
            Some("1001")
        );
    }

    #[test]
    fn never_busy_agent_counts_as_idle_longest() {
        let (a, b) = (agent("1001", &[]), agent("1002", &[]));
        let mut fresh = ready(&b, LATE);
        fresh.idle_since = None;
        let cands = [ready(&a, EARLY), fresh];
        assert_eq!(
            pick_agent(&cb("x", &[], &[]), &queue(&[]), &cands, &[]),
            Some("1002")
        );
    }

    #[test]
    fn every_skill_of_queue_and_request_is_required() {
        let a = agent("1001", &["english"]);
        let b = agent("1002", &["english", "billing"]);
        let c = agent("1003", &["billing"]);
        let cands = [ready(&a, EARLY), ready(&b, LATE), ready(&c, EARLY)];
        let q = queue(&["english"]);
        assert_eq!(
            pick_agent(&cb("x", &["billing"], &[]), &q, &cands, &[]),
            Some("1002")
        );
        assert_eq!(
            pick_agent(&cb("x", &[], &[]), &q, &cands, &[]),
            Some("1001")
        );
        assert_eq!(
            pick_agent(&cb("x", &["Billing"], &[]), &q, &cands, &[]),
            None,
            "skills are case-sensitive"
        );
    }

    #[test]
    fn preferred_agents_first_in_request_order_when_eligible() {
        let (a, b, c) = (agent("1001", &[]), agent("1002", &[]), agent("1003", &[]));
        let mut c_busy = ready(&c, EARLY);
        c_busy.busy = true;
        let cands = [ready(&a, EARLY), ready(&b, LATE), c_busy];
        let q = queue(&[]);
        assert_eq!(
            pick_agent(&cb("x", &[], &["1003", "1002", "1001"]), &q, &cands, &[]),
            Some("1002"),
            "1003 is busy; 1002 is preferred over the longer-idle 1001"
        );
        assert_eq!(
            pick_agent(&cb("x", &[], &["9999"]), &q, &cands, &[]),
            Some("1001"),
            "an unknown preferred agent falls back to longest idle"
        );
    }

    #[test]
    fn excluded_agents_are_skipped_even_when_preferred() {
        let (a, b) = (agent("1001", &[]), agent("1002", &[]));
        let cands = [ready(&a, EARLY), ready(&b, LATE)];
        let q = queue(&[]);
        let excluded = ["1001".to_string()];
        assert_eq!(
            pick_agent(&cb("x", &[], &["1001"]), &q, &cands, &excluded),
            Some("1002")
        );
        let all = ["1001".to_string(), "1002".to_string()];
        assert_eq!(pick_agent(&cb("x", &[], &[]), &q, &cands, &all), None);
    }

    #[test]
    fn the_use_channel_privilege_is_needed() {
        let mut a = agent("1001", &[]);
        a.privileges.use_channel = false;
        let b = agent("1002", &[]);
        let cands = [ready(&a, EARLY), ready(&b, LATE)];
        assert_eq!(
            pick_agent(&cb("x", &[], &["1001"]), &queue(&[]), &cands, &[]),
            Some("1002")
        );
    }

    #[test]
    fn unregistered_busy_and_not_ready_agents_are_skipped() {
        let (a, b, c, d) = (
            agent("1001", &[]),
            agent("1002", &[]),
            agent("1003", &[]),
            agent("1004", &[]),
        );
        let mut unregistered = ready(&a, EARLY);
        unregistered.registered = false;
        let mut busy = ready(&b, EARLY);
        busy.busy = true;
        let mut working = ready(&c, EARLY);
        working.state = AgentState::Working;
        let mut not_ready = ready(&d, EARLY);
        not_ready.state = AgentState::NotReady;
        let q = queue(&[]);
        let x = cb("x", &[], &[]);
        let cands = [unregistered, busy, working, not_ready];
        assert_eq!(pick_agent(&x, &q, &cands, &[]), None);
        for state in [AgentState::Engaged, AgentState::LoggedOut] {
            let mut c = ready(&a, EARLY);
            c.state = state;
            assert_eq!(pick_agent(&x, &q, &[c], &[]), None, "{state}");
        }
        assert_eq!(pick_agent(&x, &q, &[ready(&a, EARLY)], &[]), Some("1001"));
    }

    #[test]
    fn queue_order_priority_due_created_id() {
        let mut low_early = cb("cb-a", &[], &[]);
        low_early.due_at = ts("2025-01-01T08:00:00Z");
        let mut high_late = cb("cb-b", &[], &[]);
        high_late.request.routing_data.priority = 5;
        high_late.due_at = ts("2025-01-01T10:00:00Z");
        let mut low_late_old = cb("cb-d", &[], &[]);
        low_late_old.due_at = ts("2025-01-01T09:00:00Z");
        low_late_old.created_at = ts("2024-12-31T00:00:00Z");
        let mut low_late_new_d = cb("cb-e", &[], &[]);
        low_late_new_d.due_at = ts("2025-01-01T09:00:00Z");
        let mut low_late_new_c = cb("cb-c", &[], &[]);
        low_late_new_c.due_at = ts("2025-01-01T09:00:00Z");
        let mut negative = cb("cb-f", &[], &[]);
        negative.request.routing_data.priority = -1;
        negative.due_at = ts("2024-01-01T00:00:00Z");
        let mut v = vec![
            &negative,
            &low_late_new_d,
            &low_late_new_c,
            &low_early,
            &low_late_old,
            &high_late,
        ];
        order_queue(&mut v);
        let ids: Vec<&str> = v.iter().map(|c| c.id.0.as_str()).collect();
        assert_eq!(ids, ["cb-b", "cb-a", "cb-d", "cb-c", "cb-e", "cb-f"]);
    }
}
