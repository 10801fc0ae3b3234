//! What the call layer has for the world outside it, until the driver
//! drains it: call events for the layer above, media commands for the
//! relay, and the calls that changed since the last publication to the
//! session table.
//!
//! Owns those queues and the write side of the session table (`Sessions`);
//! it never reads a call or a leg itself: `publish` is handed the summary
//! of each changed call by its caller (`publish.rs` builds it from the leg
//! table). Sans-IO: the driver polls the queues; the session table is
//! memory shared with the readers, written in whole snapshots.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::media::MediaCommand;
use crate::session::DialogKey;

use super::command::{CallEvent, CallId};
use super::publish::Sessions;
use super::summary::CallSummary;

#[derive(Debug)]
pub(super) struct Outbox {
    events: VecDeque<CallEvent>,
    media: VecDeque<MediaCommand>,
    /// Calls changed since the last publication, each once, in order.
    dirty: Vec<CallId>,
    sessions: Sessions,
}

impl Outbox {
    pub fn new(sessions: Sessions) -> Self {
        Outbox {
            events: VecDeque::new(),
            media: VecDeque::new(),
            dirty: Vec::new(),
            sessions,
        }
    }

    /// Reports `e` to the layer above.
    pub fn event(&mut self, e: CallEvent) {
        tracing::debug!(event = %e, "call event");
        self.events.push_back(e);
    }

    /// Tells the relay `c`.
    pub fn media(&mut self, c: MediaCommand) {
        self.media.push_back(c);
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media.pop_front()
    }

    /// `call` changed: it is published again (or unpublished, when it is
    /// gone) at the end of the input being handled.
    pub fn mark(&mut self, call: &CallId) {
        if !self.dirty.contains(call) {
            self.dirty.push(call.clone());
        }
    }

    /// Publishes every call marked since the last time: its summary
    /// (`summary` gives it; `None` for a call that is gone) replaces the
    /// published one whole, with the dialog keys of its legs.
    pub fn publish(&mut self, mut summary: impl FnMut(&CallId) -> Option<CallSummary>) {
        for id in std::mem::take(&mut self.dirty) {
            match summary(&id) {
                Some(summary) => {
                    let keys: Vec<DialogKey> = summary
                        .legs
                        .iter()
                        .map(|l| DialogKey {
                            call_id: l.sip_call_id.clone(),
                            local_tag: l.local_tag.clone(),
                        })
                        .collect();
                    let interaction = summary.interaction.clone();
                    // Insert replaces a published call and keeps its dialog keys.
                    self.sessions
                        .insert(&id.0, Arc::new(summary), interaction.as_deref());
                    for k in keys {
                        self.sessions.add_dialog(&id.0, k);
                    }
                }
                None => {
                    self.sessions.remove(&id.0);
                }
            }
        }
    }

    /// A leg left this layer: its dialog no longer finds its call.
    pub fn forget_dialog(&self, sip_call_id: &str, local_tag: &str) {
        self.sessions.remove_dialog(&DialogKey {
            call_id: sip_call_id.to_string(),
            local_tag: local_tag.to_string(),
        });
    }

    /// The published call (of any worker) that a dialog belongs to.
    pub fn call_of_dialog(&self, key: &DialogKey) -> Option<String> {
        self.sessions.by_dialog(key).map(|(id, _)| id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::command::LegRole;
    use crate::call::summary::{CallState, LegState, LegSummary};
    use crate::session::SessionTable;

    fn summary(id: &str, tag: &str) -> CallSummary {
        CallSummary {
            id: CallId(id.into()),
            interaction: Some("cb-1".into()),
            state: CallState::Setup,
            from: "1001".into(),
            to: "1002".into(),
            legs: vec![LegSummary {
                role: LegRole::A,
                state: LegState::Calling,
                target: "1001".into(),
                profile: "internal".into(),
                sip_call_id: format!("sip-{id}"),
                local_tag: tag.into(),
                remote_tag: None,
                media_leg: 1,
                rtp_port: 20000,
                held_by_switch: false,
                held_by_phone: false,
                muted: false,
            }],
            recording: None,
            recording_paused: false,
            started_at_ms: 0,
            answered_at_ms: None,
        }
    }

    #[test]
    fn queues_drain_in_order() {
        let mut o = Outbox::new(Arc::new(SessionTable::new()));
        let call = CallId("c1".into());
        o.event(CallEvent::RecordingPaused { call: call.clone() });
        o.event(CallEvent::RecordingResumed { call: call.clone() });
        o.media(MediaCommand::StopRecording { call: "c1".into() });
        assert!(matches!(
            o.poll_event(),
            Some(CallEvent::RecordingPaused { .. })
        ));
        assert!(matches!(
            o.poll_event(),
            Some(CallEvent::RecordingResumed { .. })
        ));
        assert!(o.poll_event().is_none());
        assert!(matches!(
            o.poll_media(),
            Some(MediaCommand::StopRecording { .. })
        ));
        assert!(o.poll_media().is_none());
    }

    #[test]
    fn marked_calls_are_summarised_once_each_and_a_gone_call_is_unpublished() {
        let sessions: Sessions = Arc::new(SessionTable::new());
        let mut o = Outbox::new(sessions.clone());
        let (c1, c2) = (CallId("c1".into()), CallId("c2".into()));
        o.mark(&c1);
        o.mark(&c2);
        o.mark(&c1);
        let mut asked = Vec::new();
        o.publish(|id| {
            asked.push(id.clone());
            Some(summary(&id.0, "t1"))
        });
        assert_eq!(asked, [c1.clone(), c2.clone()], "each once, in order");
        assert_eq!(sessions.len(), 2);
        let key = DialogKey {
            call_id: "sip-c1".into(),
            local_tag: "t1".into(),
        };
        assert_eq!(o.call_of_dialog(&key).as_deref(), Some("c1"));
        // Nothing marked: nothing asked.
        o.publish(|_| panic!("no call was marked"));
        // A leg leaves: its dialog no longer finds the call, the call stays.
        o.forget_dialog("sip-c1", "t1");
        assert_eq!(o.call_of_dialog(&key), None);
        assert!(sessions.get("c1").is_some());
        // The call is gone: unpublished.
        o.mark(&c1);
        o.publish(|_| None);
        assert!(sessions.get("c1").is_none());
        assert_eq!(sessions.len(), 1);
    }
}
