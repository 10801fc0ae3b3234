//! End-call events (docs/notifications.md): each voice call of an interaction is
//! followed on the interaction's record ([`CallRecord`]) and reported once
//! its agent has wrapped the interaction up, so the event carries the
//! disposition. Wrapping up is whatever takes the interaction from its
//! agent first: done (with or without a disposition), reschedule, decline,
//! a transfer that parks it, a logout's requeue, an auto-dial retry, a
//! supervisor's cancel; all of them go through `release_agent`, which
//! reports. After a crash, `recovery` reports what was left.
//!
//! The event's outbox rows are committed in the same batch as the record
//! marked `reported`, so a call is reported exactly once, crash or not.

use jiff::Timestamp;

use super::Center;
use crate::call::CallEvent;
use crate::callback::call_record::CallRecord;
use crate::callback::model::InteractionId;
use crate::integrations::notify::{EndCallNotice, NoticeKind};

/// Where recording links point, under the public base URL.
pub const RECORDINGS_PATH: &str = "/v1/recordings";

impl Center {
    /// A new voice call of the interaction.
    pub(super) fn call_placed(&mut self, id: &InteractionId, record: CallRecord) {
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.calls.push(record);
        }
    }

    /// Follows one event on the call's record; true when the record changed
    /// (the caller stores it).
    pub(super) fn track_call(
        &mut self,
        id: &InteractionId,
        now: Timestamp,
        event: &CallEvent,
    ) -> bool {
        let call = &event.call().0;
        self.interactions
            .get_mut(id)
            .and_then(|l| {
                l.cb.calls
                    .iter_mut()
                    .find(|c| c.call_id == *call && !c.reported)
            })
            .is_some_and(|c| c.observe(now, event))
    }

    /// The agent asked to hang the call up: its end is the agent's doing.
    pub(super) fn hangup_asked(&mut self, id: &InteractionId, now: Timestamp, call: &str) {
        let Some(l) = self.interactions.get_mut(id) else {
            return;
        };
        if let Some(c) = l.cb.calls.iter_mut().find(|c| c.call_id == call) {
            c.hangup_asked = true;
            self.save(id, now);
        }
    }

    /// The call layer refused to place the call: there was none to report.
    pub(super) fn call_refused(&mut self, id: &InteractionId, call: &str) {
        if let Some(l) = self.interactions.get_mut(id) {
            l.cb.calls.retain(|c| c.call_id != call);
        }
    }

    /// Commits an end-call event for each call of the interaction not yet
    /// reported, and marks them reported; true if there was any. The
    /// caller saves the record in the same batch. A call still up (only
    /// after a restart, in practice) is closed at `now` with `cause`.
    pub(super) fn report_calls(&mut self, id: &InteractionId, now: Timestamp, cause: &str) -> bool {
        let Some(live) = self.interactions.get_mut(id) else {
            return false;
        };
        let cb = &mut live.cb;
        let mut notices = Vec::new();
        for call in cb.calls.iter_mut().filter(|c| !c.reported) {
            call.end(now, "switch", cause);
            call.reported = true;
            let figures = call.figures(now);
            let agent_name = self
                .agents
                .get(&call.agent)
                .and_then(|a| a.settings.name.clone());
            notices.push(EndCallNotice {
                agent_id: call.agent.clone(),
                agent_name,
                interaction_id: cb.id.0.clone(),
                call_id: call.call_id.clone(),
                queue_id: cb.request.queue_id.clone(),
                contact_number: Some(call.number.clone()),
                started_at: call.started_at,
                answered_at: call.answered_at,
                ended_at: call.ended_at.unwrap_or(now),
                duration_seconds: figures.duration_seconds,
                talk_seconds: figures.talk_seconds,
                hold_seconds: figures.hold_seconds,
                disposition: cb.disposition.clone(),
                recording_url: call
                    .recording
                    .as_deref()
                    .map(|name| recording_url(self.settings.notify.public_url.as_deref(), name)),
                ended_by: call.ended_by.clone().unwrap_or_else(|| "switch".into()),
                cause: call.cause.clone().unwrap_or_default(),
                transferred_to: call.transferred_to.clone(),
            });
        }
        let any = !notices.is_empty();
        for notice in notices {
            self.notify(now, NoticeKind::EndCall(notice));
        }
        any
    }
}

/// `{public_url}/v1/recordings/{name}`, or the path alone without a base.
pub fn recording_url(public_url: Option<&str>, name: &str) -> String {
    let base = public_url.unwrap_or("").trim_end_matches('/');
    format!("{base}{RECORDINGS_PATH}/{name}")
}

#[cfg(test)]
mod tests {
    use super::recording_url;

    #[test]
    fn recording_links_join_the_base_and_the_file_name() {
        assert_eq!(
            recording_url(Some("https://switch.example:8443/"), "wcb-1.wav"),
            "https://switch.example:8443/v1/recordings/wcb-1.wav"
        );
        assert_eq!(
            recording_url(Some("http://127.0.0.1:8080"), "wcb-1.wav"),
            "http://127.0.0.1:8080/v1/recordings/wcb-1.wav"
        );
        assert_eq!(recording_url(None, "wcb-1.wav"), "/v1/recordings/wcb-1.wav");
    }
}
