//! Which endpoints an event goes to: the outbox rows the center commits
//! with the change that caused the event.

use super::{Delivery, Notice, NotifySettings};

/// One [`Delivery`] per endpoint whose filter wants the event, in the
/// configured order; none when nothing is configured.
pub fn deliveries(settings: &NotifySettings, notice: &Notice) -> Vec<Delivery> {
    settings
        .endpoints
        .iter()
        .filter(|e| e.events.wants(&notice.kind))
        .map(|e| Delivery {
            endpoint: e.name.clone(),
            lane: notice.kind.agent().to_string(),
            notice: notice.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrations::notify::testkit::{self, endpoint};
    use crate::integrations::notify::{AgentChangeNotice, EventFilter, NoticeKind};

    fn agent_notice(kind: fn(AgentChangeNotice) -> NoticeKind) -> Notice {
        testkit::agent_notice("ev-1", jiff::Timestamp::UNIX_EPOCH, "1001", kind)
    }

    #[test]
    fn each_endpoint_gets_what_its_filter_wants() {
        let settings = NotifySettings {
            endpoints: vec![
                endpoint(
                    "all",
                    EventFilter {
                        all_agent_states: true,
                        ..Default::default()
                    },
                ),
                endpoint(
                    "logins",
                    EventFilter {
                        agent_login: true,
                        ..Default::default()
                    },
                ),
                endpoint(
                    "logouts",
                    EventFilter {
                        agent_logout: true,
                        ..Default::default()
                    },
                ),
                endpoint(
                    "calls",
                    EventFilter {
                        end_call: true,
                        ..Default::default()
                    },
                ),
            ],
            public_url: None,
        };
        let names = |n: &Notice| -> Vec<String> {
            deliveries(&settings, n)
                .into_iter()
                .map(|d| {
                    assert_eq!(d.lane, "1001");
                    d.endpoint
                })
                .collect()
        };
        assert_eq!(
            names(&agent_notice(NoticeKind::AgentLogin)),
            ["all", "logins"]
        );
        assert_eq!(
            names(&agent_notice(NoticeKind::AgentLogout)),
            ["all", "logouts"]
        );
        assert_eq!(names(&agent_notice(NoticeKind::AgentState)), ["all"]);
        assert!(deliveries(
            &NotifySettings::default(),
            &agent_notice(NoticeKind::AgentState)
        )
        .is_empty());
    }
}
