//! The one table from the B2BUA's call events to web-callback interaction
//! states (docs/web-callbacks.md, States). The voice call of an interaction has
//! the agent's phone as leg A and the contact as leg B.
//!
//! Every row is explicit and has its own unit test; an event that fits no
//! row for the current state is `Ignore`d (the center logs it), never a
//! panic. What a move does beyond the state (retries, freeing the agent)
//! is the center's business, not the table's.

use crate::call::{CallEvent, LegRole, Progress};
use crate::callback::model::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapping {
    /// The interaction moves to this state, for this reason.
    To(State, &'static str),
    /// Kept in the history; the state stays.
    Record,
    /// Does not fit the current state: logged and dropped.
    Ignore,
}

/// What `event` does to an interaction in `state`.
pub fn map(state: State, event: &CallEvent) -> Mapping {
    use CallEvent as E;
    use State as S;
    match (state, event) {
        // Placing the call: the agent's phone first, then the contact.
        (S::Establishing, E::Started { .. }) => Mapping::Record,
        (
            S::Establishing,
            E::Leg {
                leg: LegRole::A, ..
            },
        ) => Mapping::Record,
        (
            S::Establishing,
            E::Leg {
                leg: LegRole::B,
                progress: Progress::Trying | Progress::Ringing | Progress::EarlyMedia,
                ..
            },
        ) => Mapping::Record,
        (
            S::Establishing,
            E::Leg {
                leg: LegRole::B,
                progress: Progress::Answered,
                ..
            },
        ) => Mapping::To(S::Connected, "contact answered"),
        (S::Establishing, E::Bridged { .. }) => Mapping::To(S::Connected, "bridged"),
        (S::Connected | S::OnHold, E::Bridged { .. }) => Mapping::Record,
        (
            S::Establishing,
            E::LegFailed {
                leg: LegRole::A, ..
            },
        ) => Mapping::To(S::ReadyToCall, "agent phone did not answer"),
        (S::Establishing, E::LegFailed { .. }) => {
            Mapping::To(S::ReadyToCall, "contact not reached")
        }
        (S::Establishing, E::Ended { .. }) => {
            Mapping::To(S::ReadyToCall, "call ended before answer")
        }
        // Connected: hold and retrieve, from the switch or either phone.
        (S::Connected, E::Held { .. }) => Mapping::To(S::OnHold, "held"),
        (S::OnHold, E::Retrieved { .. }) => Mapping::To(S::Connected, "retrieved"),
        (S::OnHold, E::Held { .. }) => Mapping::Record,
        (S::Connected, E::Retrieved { .. }) => Mapping::Record,
        (
            S::Connected | S::OnHold,
            E::Muted { .. }
            | E::Unmuted { .. }
            | E::Dtmf { .. }
            | E::DtmfSent { .. }
            | E::RecordingStarted { .. }
            | E::RecordingPaused { .. }
            | E::RecordingResumed { .. }
            | E::RecordingStopped { .. }
            | E::TransferFailed { .. },
        ) => Mapping::Record,
        (S::Establishing | S::Connected | S::OnHold, E::LegLost { .. }) => Mapping::Record,
        // A consultation (leg c) and a conference: the interaction stays
        // connected; the desktop follows them (`center::calls`).
        (
            S::Connected | S::OnHold,
            E::ConsultStarted { .. }
            | E::ConsultProgress { .. }
            | E::ConsultFailed { .. }
            | E::ConsultEnded { .. }
            | E::Alternated { .. }
            | E::Conferenced { .. }
            | E::PartyLeft { .. }
            | E::VolumeSet { .. }
            | E::Supervised { .. }
            | E::SupervisorLeft { .. }
            | E::Leg {
                leg: LegRole::C | LegRole::S,
                ..
            }
            | E::LegFailed {
                leg: LegRole::C | LegRole::S,
                ..
            },
        ) => Mapping::Record,
        (S::Establishing | S::Connected | S::OnHold, E::Transferred { .. }) => {
            Mapping::To(S::Parked, "voice call transferred")
        }
        (S::Connected | S::OnHold, E::Ended { .. }) => Mapping::To(S::ReadyToCall, "call ended"),
        // After the contact was not reached, the call's own end follows.
        (S::ReadyToCall, E::Ended { .. } | E::LegFailed { .. }) => Mapping::Record,
        (S::Scheduled | S::Queued, E::Ended { .. }) => Mapping::Record,
        // A recording stopped by the end of the call lands after it.
        (S::ReadyToCall, E::RecordingStopped { .. }) => Mapping::Record,
        _ => Mapping::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::call::{CallId, EndedBy, Failure};

    fn c() -> CallId {
        CallId("wcb-1".into())
    }
    fn leg(leg: LegRole, progress: Progress) -> CallEvent {
        CallEvent::Leg {
            call: c(),
            leg,
            progress,
        }
    }
    fn failed(leg: LegRole, status: u16) -> CallEvent {
        CallEvent::LegFailed {
            call: c(),
            leg,
            status,
            failure: Failure::from_status(status),
        }
    }
    fn ended() -> CallEvent {
        CallEvent::Ended {
            call: c(),
            by: EndedBy::B,
            cause: "bye".into(),
            status: None,
        }
    }
    fn held() -> CallEvent {
        CallEvent::Held {
            call: c(),
            leg: LegRole::B,
            by_switch: true,
        }
    }
    fn retrieved() -> CallEvent {
        CallEvent::Retrieved {
            call: c(),
            leg: LegRole::B,
            by_switch: true,
        }
    }
    fn transferred() -> CallEvent {
        CallEvent::Transferred {
            call: c(),
            by: LegRole::A,
            to: "1002".into(),
            attended: false,
        }
    }

    #[test]
    fn started_while_establishing_is_recorded() {
        let e = CallEvent::Started {
            call: c(),
            interaction: Some("cb-1".into()),
            from: "1001".into(),
            to: "+33".into(),
        };
        assert_eq!(map(State::Establishing, &e), Mapping::Record);
    }

    #[test]
    fn agent_leg_progress_is_recorded() {
        for p in [Progress::Trying, Progress::Ringing, Progress::Answered] {
            assert_eq!(
                map(State::Establishing, &leg(LegRole::A, p)),
                Mapping::Record
            );
        }
    }

    #[test]
    fn contact_ringing_and_early_media_are_recorded() {
        for p in [Progress::Trying, Progress::Ringing, Progress::EarlyMedia] {
            assert_eq!(
                map(State::Establishing, &leg(LegRole::B, p)),
                Mapping::Record
            );
        }
    }

    #[test]
    fn contact_answer_connects() {
        assert_eq!(
            map(State::Establishing, &leg(LegRole::B, Progress::Answered)),
            Mapping::To(State::Connected, "contact answered")
        );
    }

    #[test]
    fn bridge_connects_and_is_recorded_once_connected() {
        let e = CallEvent::Bridged {
            call: c(),
            a: LegRole::A,
            b: LegRole::B,
        };
        assert_eq!(
            map(State::Establishing, &e),
            Mapping::To(State::Connected, "bridged")
        );
        assert_eq!(map(State::Connected, &e), Mapping::Record);
        assert_eq!(map(State::OnHold, &e), Mapping::Record);
    }

    #[test]
    fn agent_leg_failure_returns_to_ready_to_call() {
        assert_eq!(
            map(State::Establishing, &failed(LegRole::A, 480)),
            Mapping::To(State::ReadyToCall, "agent phone did not answer")
        );
    }

    #[test]
    fn busy_and_no_answer_return_to_ready_to_call() {
        for status in [486, 408, 480, 503, 404] {
            assert_eq!(
                map(State::Establishing, &failed(LegRole::B, status)),
                Mapping::To(State::ReadyToCall, "contact not reached"),
                "{status}"
            );
        }
    }

    #[test]
    fn end_before_answer_returns_to_ready_to_call() {
        assert_eq!(
            map(State::Establishing, &ended()),
            Mapping::To(State::ReadyToCall, "call ended before answer")
        );
    }

    #[test]
    fn hold_and_retrieve() {
        assert_eq!(
            map(State::Connected, &held()),
            Mapping::To(State::OnHold, "held")
        );
        assert_eq!(
            map(State::OnHold, &retrieved()),
            Mapping::To(State::Connected, "retrieved")
        );
        assert_eq!(map(State::OnHold, &held()), Mapping::Record);
        assert_eq!(map(State::Connected, &retrieved()), Mapping::Record);
    }

    #[test]
    fn controls_are_recorded_while_connected_or_held() {
        let events = [
            CallEvent::Muted {
                call: c(),
                leg: LegRole::A,
            },
            CallEvent::Unmuted {
                call: c(),
                leg: LegRole::A,
            },
            CallEvent::Dtmf {
                call: c(),
                leg: LegRole::B,
                digit: '5',
                duration_ms: 100,
                via: "rfc4733",
            },
            CallEvent::DtmfSent {
                call: c(),
                leg: LegRole::B,
                digits: "12".into(),
            },
            CallEvent::RecordingStarted {
                call: c(),
                path: PathBuf::from("r.wav"),
            },
            CallEvent::RecordingPaused { call: c() },
            CallEvent::RecordingResumed { call: c() },
            CallEvent::RecordingStopped {
                call: c(),
                path: PathBuf::from("r.wav"),
            },
            CallEvent::TransferFailed {
                call: c(),
                by: LegRole::A,
                status: 486,
            },
        ];
        for e in &events {
            assert_eq!(map(State::Connected, e), Mapping::Record, "{e:?}");
            assert_eq!(map(State::OnHold, e), Mapping::Record, "{e:?}");
        }
    }

    #[test]
    fn a_lost_leg_is_recorded() {
        let e = CallEvent::LegLost {
            call: c(),
            leg: LegRole::B,
            reason: "rtp-timeout",
        };
        for s in [State::Establishing, State::Connected, State::OnHold] {
            assert_eq!(map(s, &e), Mapping::Record);
        }
    }

    #[test]
    fn transfer_parks() {
        for s in [State::Establishing, State::Connected, State::OnHold] {
            assert_eq!(
                map(s, &transferred()),
                Mapping::To(State::Parked, "voice call transferred")
            );
        }
    }

    #[test]
    fn end_of_a_connected_call_returns_to_ready_to_call() {
        for s in [State::Connected, State::OnHold] {
            assert_eq!(
                map(s, &ended()),
                Mapping::To(State::ReadyToCall, "call ended")
            );
        }
    }

    #[test]
    fn the_end_after_a_failure_is_recorded() {
        assert_eq!(map(State::ReadyToCall, &ended()), Mapping::Record);
        assert_eq!(
            map(State::ReadyToCall, &failed(LegRole::A, 487)),
            Mapping::Record
        );
        assert_eq!(map(State::Scheduled, &ended()), Mapping::Record);
        assert_eq!(map(State::Queued, &ended()), Mapping::Record);
        let stopped = CallEvent::RecordingStopped {
            call: c(),
            path: PathBuf::from("r.wav"),
        };
        assert_eq!(map(State::ReadyToCall, &stopped), Mapping::Record);
    }

    #[test]
    fn events_that_do_not_fit_are_ignored() {
        assert_eq!(map(State::Queued, &held()), Mapping::Ignore);
        assert_eq!(map(State::Done, &ended()), Mapping::Ignore);
        assert_eq!(
            map(State::ReadyToCall, &leg(LegRole::B, Progress::Answered)),
            Mapping::Ignore
        );
        assert_eq!(map(State::Offered, &transferred()), Mapping::Ignore);
        assert_eq!(map(State::Establishing, &held()), Mapping::Ignore);
    }
}
