//! The bodies of the callback routes other than create, and the checks that
//! turn them into center requests.
//!
//! As in `call_bodies`, every field is optional at the serde level so that a
//! missing one is reported here by name (422). Times and numbers go through
//! the [`CallbackApi`]'s validators; only the shapes the HTTP layer owns
//! (who acts, DTMF digits, text lengths) are checked here. Whether an
//! action fits the interaction is the center's to say.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;
use utoipa::ToSchema;

use super::call_bodies::{check_text_up_to, digits, required};
use super::callback_api::CallbackApi;
use super::errors::ApiError;
use crate::call::{Monitor, Party, Way};
use crate::callback::{Actor, InteractionAction, InteractionId, Request};

/// Longest reason, disposition, transfer target or case-data value.
const MAX_TEXT: usize = 256;
/// Case-data entries one scheduled callback may carry.
const MAX_DATA: usize = 64;

/// `POST /v1/callbacks/{id}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JSON object"
)]
pub struct CancelBody {
    /// `contact` or `supervisor`.
    #[schema(example = "contact")]
    pub by: Option<String>,
    pub reason: Option<String>,
}

impl CancelBody {
    pub fn into_request(self, id: InteractionId) -> Result<Request, ApiError> {
        let by = actor(self.by)?;
        let reason = self.reason.map(|r| text("reason", r)).transpose()?;
        Ok(Request::Cancel { id, by, reason })
    }
}

/// `POST /v1/callbacks/{id}/reschedule`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JSON object"
)]
pub struct RescheduleBody {
    /// `contact` or `supervisor`.
    pub by: Option<String>,
    /// ISO 8601; without an offset it is read in `timeZone`.
    #[schema(example = "2030-01-02T15:30:00+01:00")]
    pub callback_scheduled_time: Option<String>,
    /// A new number to call (any form; stored as E.164).
    pub callback_number: Option<String>,
    /// IANA zone for a time without an offset.
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
}

impl RescheduleBody {
    pub fn into_request(self, id: InteractionId, cb: &CallbackApi) -> Result<Request, ApiError> {
        let by = actor(self.by)?;
        let at = scheduled_time(cb, self.callback_scheduled_time, self.time_zone)?;
        let number = number(cb, self.callback_number)?;
        Ok(Request::Reschedule { id, by, at, number })
    }
}

/// The body of `POST /v1/agents/{agent}/callbacks/{id}/{action}`. Each
/// field belongs to one action; sending it with another is refused by name
/// rather than ignored.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JSON object"
)]
pub struct ActionBody {
    /// `dtmf`: 1 to 32 of 0-9 * # A-D.
    #[schema(example = "12#")]
    pub digits: Option<String>,
    /// `transfer`, `consult`: the user or number the voice call goes to.
    pub to: Option<String>,
    /// `remove`, `volume`: `agent`, `contact` or `consulted`.
    pub party: Option<String>,
    /// `volume`: `in` (what the party says) or `out` (what it hears).
    pub direction: Option<String>,
    /// `volume`: -12..12 dB.
    pub db: Option<i64>,
    /// `done`: the disposition code.
    pub disposition: Option<String>,
    /// `reschedule`: the new time (ISO 8601).
    pub callback_scheduled_time: Option<String>,
    /// `reschedule`: a new number.
    pub callback_number: Option<String>,
    /// `reschedule`: IANA zone for a time without an offset.
    pub time_zone: Option<String>,
}

fn party(value: Option<String>) -> Result<Party, ApiError> {
    required("party", value)?
        .parse()
        .map_err(|()| ApiError::invalid("party", "party must be one of agent, contact, consulted"))
}

/// Every action the desktop route takes, by its path name.
pub const ACTIONS: [&str; 27] = [
    "accept",
    "reject",
    "call",
    "hold",
    "retrieve",
    "mute",
    "unmute",
    "dtmf",
    "start-recording",
    "stop-recording",
    "transfer",
    "consult",
    "alternate",
    "cancel-consult",
    "complete-transfer",
    "conference",
    "remove",
    "leave",
    "volume",
    "listen",
    "whisper",
    "barge",
    "end-call",
    "done",
    "reschedule",
    "decline",
    "mark-done",
];

impl ActionBody {
    /// The action `name` with its parameters; `Ok(None)` when no action has
    /// that name (the route answers 404).
    pub fn into_action(
        self,
        name: &str,
        cb: &CallbackApi,
    ) -> Result<Option<InteractionAction>, ApiError> {
        use InteractionAction as A;
        let simple = match name {
            "accept" => Some(A::Accept),
            "reject" => Some(A::Reject),
            "call" => Some(A::Call),
            "hold" => Some(A::Hold),
            "retrieve" => Some(A::Retrieve),
            "mute" => Some(A::Mute),
            "unmute" => Some(A::Unmute),
            "start-recording" => Some(A::StartRecording),
            "stop-recording" => Some(A::StopRecording),
            "end-call" => Some(A::EndCall),
            "decline" => Some(A::Decline),
            "mark-done" => Some(A::MarkDone),
            "alternate" => Some(A::Alternate),
            "cancel-consult" => Some(A::CancelConsult),
            "complete-transfer" => Some(A::CompleteTransfer),
            "conference" => Some(A::Conference),
            "leave" => Some(A::Leave),
            "listen" => Some(A::Supervise {
                mode: Monitor::Listen,
            }),
            "whisper" => Some(A::Supervise {
                mode: Monitor::Whisper,
            }),
            "barge" => Some(A::Supervise {
                mode: Monitor::Barge,
            }),
            _ => None,
        };
        if let Some(action) = simple {
            self.only(&[])?;
            return Ok(Some(action));
        }
        Ok(Some(match name {
            "dtmf" => {
                self.only(&["digits"])?;
                A::Dtmf {
                    digits: digits(self.digits)?,
                }
            }
            "transfer" | "consult" => {
                self.only(&["to"])?;
                let to = required("to", self.to)?;
                if to.chars().any(char::is_whitespace) {
                    return Err(ApiError::invalid("to", "to must not contain spaces"));
                }
                let to = text("to", to)?;
                if name == "consult" {
                    A::Consult { to }
                } else {
                    A::Transfer { to }
                }
            }
            "remove" => {
                self.only(&["party"])?;
                A::Remove {
                    party: party(self.party)?,
                }
            }
            "volume" => {
                self.only(&["party", "direction", "db"])?;
                let party = party(self.party)?;
                let direction: Way = required("direction", self.direction)?
                    .parse()
                    .map_err(|()| ApiError::invalid("direction", "direction must be in or out"))?;
                let db = self
                    .db
                    .and_then(|d| i8::try_from(d).ok())
                    .filter(|d| (-12..=12).contains(d))
                    .ok_or_else(|| ApiError::invalid("db", "db is required, within -12..12"))?;
                A::Volume {
                    party,
                    direction,
                    db,
                }
            }
            "done" => {
                self.only(&["disposition"])?;
                A::Done {
                    disposition: self
                        .disposition
                        .map(|d| text("disposition", d))
                        .transpose()?,
                }
            }
            "reschedule" => {
                self.only(&["callbackScheduledTime", "callbackNumber", "timeZone"])?;
                A::Reschedule {
                    at: scheduled_time(cb, self.callback_scheduled_time, self.time_zone)?,
                    number: number(cb, self.callback_number)?,
                }
            }
            _ => return Ok(None),
        }))
    }

    /// Refuses, by name, any field present that `allowed` does not list.
    fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        let present = [
            ("digits", self.digits.is_some()),
            ("to", self.to.is_some()),
            ("party", self.party.is_some()),
            ("direction", self.direction.is_some()),
            ("db", self.db.is_some()),
            ("disposition", self.disposition.is_some()),
            (
                "callbackScheduledTime",
                self.callback_scheduled_time.is_some(),
            ),
            ("callbackNumber", self.callback_number.is_some()),
            ("timeZone", self.time_zone.is_some()),
        ];
        match present
            .iter()
            .find(|(name, is)| *is && !allowed.contains(name))
        {
            Some((name, _)) => Err(ApiError::invalid(
                name,
                format!("{name} does not apply to this action"),
            )),
            None => Ok(()),
        }
    }
}

/// `POST /v1/agents/{agent}/not-ready`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JSON object"
)]
pub struct NotReadyBody {
    /// On Break, Away, Lunch, Training or a custom reason.
    pub reason: Option<String>,
}

impl NotReadyBody {
    pub fn reason(self) -> Result<Option<String>, ApiError> {
        self.reason.map(|r| text("reason", r)).transpose()
    }
}

/// `POST /v1/agents/{agent}/schedule` (scheduling while on a call): a callback for
/// the contact of the agent's current call.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a JSON object"
)]
pub struct ScheduleBody {
    /// ISO 8601; absent: as soon as an agent is free.
    pub callback_scheduled_time: Option<String>,
    /// Absent: the number of the current call.
    pub callback_number: Option<String>,
    /// IANA zone for a time without an offset.
    pub time_zone: Option<String>,
    /// Case data carried to the agent who calls back.
    pub data: Option<BTreeMap<String, String>>,
}

impl ScheduleBody {
    pub fn into_request(self, agent: String, cb: &CallbackApi) -> Result<Request, ApiError> {
        let at = match self.callback_scheduled_time {
            Some(raw) => Some(scheduled_time(cb, Some(raw), self.time_zone)?),
            None if self.time_zone.is_some() => {
                return Err(ApiError::invalid(
                    "timeZone",
                    "timeZone only applies with callbackScheduledTime",
                ))
            }
            None => None,
        };
        let number = number(cb, self.callback_number)?;
        let data = self.data.unwrap_or_default();
        if data.len() > MAX_DATA {
            return Err(ApiError::invalid(
                "data",
                format!("data holds at most {MAX_DATA} entries"),
            ));
        }
        for (key, value) in &data {
            if key.is_empty() || key.len() > MAX_TEXT || value.len() > MAX_TEXT {
                return Err(ApiError::invalid(
                    "data",
                    format!(
                        "data keys must be 1 to {MAX_TEXT} bytes and values at most {MAX_TEXT}"
                    ),
                ));
            }
        }
        Ok(Request::ScheduleForContact {
            agent,
            at,
            number,
            data,
        })
    }
}

fn actor(value: Option<String>) -> Result<Actor, ApiError> {
    match required("by", value)?.as_str() {
        "contact" => Ok(Actor::Contact),
        "supervisor" => Ok(Actor::Supervisor),
        _ => Err(ApiError::invalid("by", "by must be contact or supervisor")),
    }
}

fn text(field: &str, value: String) -> Result<String, ApiError> {
    check_text_up_to(field, &value, MAX_TEXT)?;
    Ok(value)
}

/// The zone is checked first so that a bad one is blamed on `timeZone`,
/// not on the time read in it.
fn scheduled_time(
    cb: &CallbackApi,
    raw: Option<String>,
    zone: Option<String>,
) -> Result<Timestamp, ApiError> {
    let raw = required("callbackScheduledTime", raw)?;
    if let Some(zone) = &zone {
        if jiff::tz::TimeZone::get(zone).is_err() {
            return Err(ApiError::invalid(
                "timeZone",
                format!("{zone:?} is not an IANA time zone"),
            ));
        }
    }
    (cb.parse_time)(&raw, zone.as_deref())
        .map_err(|e| ApiError::invalid("callbackScheduledTime", e.to_string()))
}

/// A number written with `+` is normalised here; a national one goes to the
/// center as written, which reads it in the callback's own country.
fn number(cb: &CallbackApi, raw: Option<String>) -> Result<Option<String>, ApiError> {
    raw.map(|raw| {
        if raw.trim_start().starts_with('+') {
            (cb.normalize_number)(&raw)
                .map_err(|e| ApiError::invalid("callbackNumber", e.to_string()))
        } else if !raw.chars().any(|c| c.is_ascii_digit())
            || !raw
                .chars()
                .all(|c| c.is_ascii_digit() || " -.()/".contains(c))
        {
            Err(ApiError::invalid(
                "callbackNumber",
                format!("{raw:?} is not a phone number"),
            ))
        } else {
            Ok(raw.trim().to_string())
        }
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::super::callback_testkit::fake_api;
    use super::*;

    fn action(name: &str, json: &str) -> Result<Option<InteractionAction>, ApiError> {
        let (cb, _) = fake_api();
        let body: ActionBody = super::super::extract::parse(json.as_bytes())?;
        body.into_action(name, &cb)
    }

    fn field(r: Result<Option<InteractionAction>, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.status.as_u16(), 422, "{e:?}");
        e.field.unwrap()
    }

    #[test]
    fn every_action_name_parses_and_others_do_not() {
        for name in ACTIONS {
            let body = match name {
                "dtmf" => r#"{"digits": "1"}"#,
                "transfer" | "consult" => r#"{"to": "1002"}"#,
                "remove" => r#"{"party": "consulted"}"#,
                "volume" => r#"{"party": "contact", "direction": "in", "db": -3}"#,
                "reschedule" => r#"{"callbackScheduledTime": "2030-01-01T10:00:00Z"}"#,
                _ => "{}",
            };
            let parsed = action(name, body).unwrap().unwrap();
            assert_eq!(parsed.name(), name);
        }
        assert_eq!(action("accepts", "{}").unwrap(), None);
        assert_eq!(action("Accept", "{}").unwrap(), None);
    }

    #[test]
    fn consultation_parameters_are_checked_and_named() {
        assert_eq!(
            action(
                "volume",
                r#"{"party": "agent", "direction": "out", "db": 12}"#
            )
            .unwrap(),
            Some(InteractionAction::Volume {
                party: Party::Agent,
                direction: Way::Out,
                db: 12
            })
        );
        assert_eq!(field(action("consult", "{}")), "to");
        assert_eq!(field(action("consult", r#"{"to": "a b"}"#)), "to");
        assert_eq!(field(action("remove", "{}")), "party");
        assert_eq!(field(action("remove", r#"{"party": "boss"}"#)), "party");
        assert_eq!(
            field(action("conference", r#"{"party": "agent"}"#)),
            "party"
        );
        let v = |body| field(action("volume", body));
        assert_eq!(v(r#"{"direction": "in", "db": 1}"#), "party");
        assert_eq!(v(r#"{"party": "agent", "db": 1}"#), "direction");
        assert_eq!(
            v(r#"{"party": "agent", "direction": "up", "db": 1}"#),
            "direction"
        );
        assert_eq!(
            v(r#"{"party": "agent", "direction": "in", "db": 13}"#),
            "db"
        );
        assert_eq!(v(r#"{"party": "agent", "direction": "in"}"#), "db");
        assert_eq!(field(action("consult", r#"{"to": "1002", "db": 1}"#)), "db");
    }

    #[test]
    fn action_parameters_are_checked_and_named() {
        assert_eq!(
            action("dtmf", r#"{"digits": "0123456789*#ABCD"}"#).unwrap(),
            Some(InteractionAction::Dtmf {
                digits: "0123456789*#ABCD".into()
            })
        );
        for bad in [r#""""#, r#""12e""#, r#""1 2""#, r#""a""#] {
            assert_eq!(
                field(action("dtmf", &format!(r#"{{"digits": {bad}}}"#))),
                "digits"
            );
        }
        let long = format!(r#"{{"digits": "{}"}}"#, "1".repeat(33));
        assert_eq!(field(action("dtmf", &long)), "digits");
        assert_eq!(field(action("dtmf", "{}")), "digits");
        assert_eq!(field(action("transfer", "{}")), "to");
        assert_eq!(field(action("transfer", r#"{"to": "a b"}"#)), "to");
        // A parameter of another action is refused by name, not ignored.
        assert_eq!(field(action("accept", r#"{"digits": "1"}"#)), "digits");
        assert_eq!(field(action("dtmf", r#"{"digits": "1", "to": "x"}"#)), "to");
        assert_eq!(
            action("done", r#"{"disposition": "sold"}"#).unwrap(),
            Some(InteractionAction::Done {
                disposition: Some("sold".into())
            })
        );
        assert_eq!(
            action("done", "{}").unwrap(),
            Some(InteractionAction::Done { disposition: None })
        );
        assert_eq!(
            field(action("done", r#"{"disposition": ""}"#)),
            "disposition"
        );
    }

    #[test]
    fn reschedule_times_zones_and_numbers_are_blamed_on_their_field() {
        let at = "2030-01-01T10:00:00Z".parse::<Timestamp>().unwrap();
        assert_eq!(
            action(
                "reschedule",
                r#"{"callbackScheduledTime": "2030-01-01T10:00:00Z", "callbackNumber": "555 0100"}"#
            )
            .unwrap(),
            Some(InteractionAction::Reschedule {
                at,
                // National: read by the center in the callback's country.
                number: Some("555 0100".into())
            })
        );
        assert_eq!(field(action("reschedule", "{}")), "callbackScheduledTime");
        assert_eq!(
            field(action("reschedule", r#"{"callbackScheduledTime": "soon"}"#)),
            "callbackScheduledTime"
        );
        assert_eq!(
            field(action(
                "reschedule",
                r#"{"callbackScheduledTime": "2030-01-01T10:00", "timeZone": "Mars/Olympus"}"#
            )),
            "timeZone"
        );
        assert_eq!(
            field(action(
                "reschedule",
                r#"{"callbackScheduledTime": "2030-01-01T10:00:00Z", "callbackNumber": "x"}"#
            )),
            "callbackNumber"
        );
    }

    #[test]
    fn cancel_and_reschedule_name_who_acts() {
        let (cb, _) = fake_api();
        let id = || InteractionId("cb-1".into());
        let cancel = |json: &str| {
            super::super::extract::parse::<CancelBody>(json.as_bytes())
                .and_then(|b| b.into_request(id()))
        };
        assert_eq!(
            cancel(r#"{"by": "supervisor", "reason": "duplicate"}"#).unwrap(),
            Request::Cancel {
                id: id(),
                by: Actor::Supervisor,
                reason: Some("duplicate".into())
            }
        );
        for bad in [r#"{}"#, r#"{"by": "agent"}"#, r#"{"by": "Contact"}"#] {
            assert_eq!(cancel(bad).unwrap_err().field.as_deref(), Some("by"));
        }
        let reschedule = |json: &str| {
            super::super::extract::parse::<RescheduleBody>(json.as_bytes())
                .and_then(|b| b.into_request(id(), &cb))
        };
        assert!(matches!(
            reschedule(r#"{"by": "contact", "callbackScheduledTime": "2030-01-01T10:00:00Z"}"#),
            Ok(Request::Reschedule {
                by: Actor::Contact,
                number: None,
                ..
            })
        ));
        assert_eq!(
            reschedule(r#"{"by": "contact"}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("callbackScheduledTime")
        );
    }
}
