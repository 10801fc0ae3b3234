//! One voice call of an interaction, as the call layer reported it: when it
//! started, when the contact answered, its hold periods, its recording and
//! how it ended. The record lives on the interaction ([`Callback::calls`])
//! so its figures survive a `kill -9` until the call's end-call event is
//! committed (`reported`), which happens once the agent has wrapped the
//! interaction up and the disposition is known.
//!
//! Pure: events and times go in, figures come out; the center decides when
//! a call is reported.
//!
//! [`Callback::calls`]: super::model::Callback::calls

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::call::{CallEvent, EndedBy, LegRole, Progress};

/// One voice call placed for an interaction (agent leg `a`, contact leg `b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub call_id: String,
    /// The agent whose phone took the call.
    pub agent: String,
    /// The contact's number it dialled (E.164).
    pub number: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    /// When the contact answered; absent while (or if) it never did.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub answered_at: Option<Timestamp>,
    /// Hold time of the hold periods already over, in milliseconds.
    pub hold_ms: u64,
    /// Legs on hold now (`a`, `b`), by the switch or by their phone. A
    /// hold period lasts while any leg is held, so overlapping holds of
    /// both sides count once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_legs: Vec<String>,
    /// When the hold period in progress began.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub held_since: Option<Timestamp>,
    /// The recording's file name in the recordings folder.
    pub recording: Option<String>,
    /// When the call (or, after a transfer, the agent's part of it) ended.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    /// `agent`, `contact`, `transfer-target` or `switch`.
    pub ended_by: Option<String>,
    /// The agent asked for the hang-up (end-call): the switch's end of
    /// the call is the agent's.
    #[serde(default)]
    pub hangup_asked: bool,
    pub cause: Option<String>,
    /// Transferred (blind or attended): to whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transferred_to: Option<String>,
    /// Its end-call event has been committed (it never is twice).
    pub reported: bool,
}

/// A call's durations in whole seconds, rounded down, so that talk plus
/// hold never exceeds the duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    /// From the start to the end.
    pub duration_seconds: u64,
    /// From the answer to the end, hold excluded (0 when never answered).
    pub talk_seconds: u64,
    pub hold_seconds: u64,
}

/// Who ended a call, as workforce management reads it.
pub fn ended_by_name(by: EndedBy) -> &'static str {
    match by {
        EndedBy::A => "agent",
        EndedBy::B => "contact",
        EndedBy::C => "transfer-target",
        EndedBy::Switch => "switch",
    }
}

impl CallRecord {
    /// The call the center has just asked for.
    pub fn placed(call_id: &str, agent: &str, number: &str, now: Timestamp) -> CallRecord {
        CallRecord {
            call_id: call_id.to_string(),
            agent: agent.to_string(),
            number: number.to_string(),
            started_at: now,
            answered_at: None,
            hold_ms: 0,
            held_legs: Vec::new(),
            held_since: None,
            recording: None,
            ended_at: None,
            ended_by: None,
            hangup_asked: false,
            cause: None,
            transferred_to: None,
            reported: false,
        }
    }

    /// Takes one of the call's events into account; true when the record
    /// changed (and must be stored). Nothing changes once it has ended.
    pub fn observe(&mut self, now: Timestamp, event: &CallEvent) -> bool {
        if self.ended_at.is_some() {
            return false;
        }
        match event {
            CallEvent::Started { .. } => {
                self.started_at = now;
                true
            }
            CallEvent::Leg {
                leg: LegRole::B,
                progress: Progress::Answered,
                ..
            }
            | CallEvent::Bridged { .. } => self.answered(now),
            CallEvent::Held { leg, .. } => {
                let leg = leg.to_string();
                if self.held_legs.contains(&leg) {
                    return false;
                }
                self.held_legs.push(leg);
                self.held_since.get_or_insert(now);
                true
            }
            CallEvent::Retrieved { leg, .. } => {
                let leg = leg.to_string();
                let before = self.held_legs.len();
                self.held_legs.retain(|l| *l != leg);
                if self.held_legs.is_empty() {
                    self.close_hold(now);
                }
                before != self.held_legs.len()
            }
            CallEvent::RecordingStarted { path, .. } => {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string);
                let changed = name.is_some() && name != self.recording;
                if changed {
                    self.recording = name;
                }
                changed
            }
            // A leg that fails before the contact answered ends the call
            // (its `Ended` follows, possibly after the interaction moved on).
            CallEvent::LegFailed {
                leg: leg @ (LegRole::A | LegRole::B),
                failure,
                ..
            } if self.answered_at.is_none() => {
                self.end(
                    now,
                    ended_by_name(EndedBy::from(*leg)),
                    &failure.to_string(),
                );
                true
            }
            // The agent's part of the call is over; the contact talks on
            // with the transfer target, on another interaction's account.
            CallEvent::Transferred { by, to, .. } => {
                self.transferred_to = Some(to.clone());
                self.end(now, ended_by_name(EndedBy::from(*by)), "transferred");
                true
            }
            CallEvent::Ended { by, cause, .. } => {
                let by = match by {
                    EndedBy::Switch if self.hangup_asked => EndedBy::A,
                    other => *other,
                };
                self.end(now, ended_by_name(by), cause);
                true
            }
            _ => false,
        }
    }

    fn answered(&mut self, now: Timestamp) -> bool {
        if self.answered_at.is_some() {
            return false;
        }
        self.answered_at = Some(now);
        true
    }

    fn close_hold(&mut self, now: Timestamp) {
        if let Some(since) = self.held_since.take() {
            self.hold_ms += millis(since, now);
        }
        self.held_legs.clear();
    }

    /// Marks the call over at `now` (a hold still open ends with it); the
    /// first end recorded stands.
    pub fn end(&mut self, now: Timestamp, by: &str, cause: &str) {
        if self.ended_at.is_some() {
            return;
        }
        self.close_hold(now);
        self.ended_at = Some(now);
        self.ended_by = Some(by.to_string());
        self.cause = Some(cause.to_string());
    }

    /// The call's durations up to its end (or `now` if it has none yet).
    pub fn figures(&self, now: Timestamp) -> Figures {
        let end = self.ended_at.unwrap_or(now);
        let hold_ms = self.hold_ms + self.held_since.map_or(0, |s| millis(s, end));
        let talk_ms = self
            .answered_at
            .map_or(0, |a| millis(a, end).saturating_sub(hold_ms));
        Figures {
            duration_seconds: millis(self.started_at, end) / 1000,
            talk_seconds: talk_ms / 1000,
            hold_seconds: hold_ms / 1000,
        }
    }
}

/// Whole milliseconds from `from` to `to` (0 if `to` is earlier).
fn millis(from: Timestamp, to: Timestamp) -> u64 {
    u64::try_from(to.duration_since(from).as_millis()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::call::{CallId, Failure};

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
    }
    fn c() -> CallId {
        CallId("wcb-1".into())
    }
    fn held(leg: LegRole) -> CallEvent {
        CallEvent::Held {
            call: c(),
            leg,
            by_switch: true,
        }
    }
    fn retrieved(leg: LegRole) -> CallEvent {
        CallEvent::Retrieved {
            call: c(),
            leg,
            by_switch: false,
        }
    }
    fn answered() -> CallEvent {
        CallEvent::Leg {
            call: c(),
            leg: LegRole::B,
            progress: Progress::Answered,
        }
    }
    fn ended(by: EndedBy) -> CallEvent {
        CallEvent::Ended {
            call: c(),
            by,
            cause: "hangup".into(),
            status: None,
        }
    }

    #[test]
    fn overlapping_holds_of_both_sides_count_once_and_talk_excludes_them() {
        let mut r = CallRecord::placed("wcb-1", "1001", "+33612345678", at(0));
        assert!(!r.observe(
            at(500),
            &CallEvent::Leg {
                call: c(),
                leg: LegRole::A,
                progress: Progress::Answered
            }
        ));
        assert_eq!(
            r.answered_at, None,
            "the agent's answer is not the contact's"
        );
        assert!(r.observe(at(2_000), &answered()));
        assert!(!r.observe(
            at(2_100),
            &CallEvent::Bridged {
                call: c(),
                a: LegRole::A,
                b: LegRole::B
            }
        ));
        assert_eq!(r.answered_at, Some(at(2_000)));
        // b held 10..30 s, a held 20..40 s: one period of 30 s.
        assert!(r.observe(at(10_000), &held(LegRole::B)));
        assert!(!r.observe(at(11_000), &held(LegRole::B)), "a refresh");
        assert!(r.observe(at(20_000), &held(LegRole::A)));
        assert!(r.observe(at(30_000), &retrieved(LegRole::B)));
        assert_eq!(r.held_since, Some(at(10_000)));
        assert!(r.observe(at(40_000), &retrieved(LegRole::A)));
        assert_eq!((r.hold_ms, r.held_since), (30_000, None));
        assert!(r.observe(at(62_900), &ended(EndedBy::B)));
        assert_eq!(
            r.figures(at(99_000)),
            Figures {
                duration_seconds: 62,
                talk_seconds: 30,
                hold_seconds: 30
            }
        );
        assert_eq!(r.ended_by.as_deref(), Some("contact"));
        assert_eq!(r.cause.as_deref(), Some("hangup"));
        assert!(!r.observe(at(70_000), &held(LegRole::B)), "over");
    }

    #[test]
    fn a_hold_open_at_the_end_counts_up_to_the_end() {
        let mut r = CallRecord::placed("wcb-1", "1001", "+33612345678", at(0));
        r.observe(at(1_000), &answered());
        r.observe(at(5_000), &held(LegRole::B));
        assert_eq!(r.figures(at(8_000)).hold_seconds, 3, "so far");
        r.observe(at(9_000), &ended(EndedBy::A));
        assert_eq!(
            r.figures(at(50_000)),
            Figures {
                duration_seconds: 9,
                talk_seconds: 4,
                hold_seconds: 4
            }
        );
        assert_eq!(r.ended_by.as_deref(), Some("agent"));
        assert!(r.held_legs.is_empty());
    }

    #[test]
    fn a_failed_contact_ends_the_call_unanswered_and_the_first_end_stands() {
        let mut r = CallRecord::placed("wcb-1", "1001", "+33612345678", at(0));
        assert!(r.observe(
            at(4_000),
            &CallEvent::LegFailed {
                call: c(),
                leg: LegRole::B,
                status: 486,
                failure: Failure::Busy,
            }
        ));
        assert!(!r.observe(at(4_001), &ended(EndedBy::Switch)));
        assert_eq!(r.answered_at, None);
        assert_eq!(r.ended_at, Some(at(4_000)));
        assert_eq!(
            (r.ended_by.as_deref(), r.cause.as_deref()),
            (Some("contact"), Some("busy"))
        );
        assert_eq!(r.figures(at(9_000)).talk_seconds, 0);
        assert_eq!(r.figures(at(9_000)).duration_seconds, 4);
    }

    #[test]
    fn a_transfer_ends_the_agents_part_and_the_recording_is_its_file_name() {
        let mut r = CallRecord::placed("wcb-1", "1001", "+33612345678", at(0));
        r.observe(at(1_000), &answered());
        assert!(r.observe(
            at(2_000),
            &CallEvent::RecordingStarted {
                call: c(),
                path: PathBuf::from("/var/rec/wcb-1.wav"),
            }
        ));
        assert_eq!(r.recording.as_deref(), Some("wcb-1.wav"));
        r.observe(
            at(6_000),
            &CallEvent::Transferred {
                call: c(),
                by: LegRole::A,
                to: "1002".into(),
                attended: false,
            },
        );
        assert_eq!(r.ended_at, Some(at(6_000)));
        assert_eq!(r.cause.as_deref(), Some("transferred"));
        assert_eq!(r.figures(at(60_000)).talk_seconds, 5);
    }

    #[test]
    fn the_record_reads_back() {
        let mut r = CallRecord::placed("wcb-1", "1001", "+33612345678", at(0));
        r.observe(at(1_000), &held(LegRole::B));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["callId"], "wcb-1");
        assert_eq!(json["heldLegs"], serde_json::json!(["b"]));
        let back: CallRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
