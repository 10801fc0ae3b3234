//! The call routes' request bodies and the checks that turn them into
//! call commands; and the checks of shape every body shares (a required
//! field, a bounded text, DTMF digits), which `callback_bodies` uses too.
//!
//! Every field is optional at the serde level so that a missing required
//! field is reported here, by name, as 422 (serde's own "missing field" has
//! no path to name). Checks are about shape only (lengths, characters,
//! enumerations); whether a number routes or a header is allowed on a
//! profile is the call layer's to say.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::ToSchema;

use super::errors::ApiError;
use crate::call::{CallCommand, CallId, LegRole, Monitor, Originate, Others, Party, Way};

/// Longest number, user name, interaction id or caller id accepted.
const MAX_TEXT: usize = 128;
/// Longest call id a client may choose (it travels in URLs and headers).
const MAX_CALL_ID: usize = 64;
/// Longest single header value put on an INVITE.
const MAX_HEADER_VALUE: usize = 1024;
/// RFC 4733 events one request may generate (a call's or an interaction's).
const MAX_DIGITS: usize = 32;

/// `POST /v1/calls`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct OriginateBody {
    pub a: Option<String>,
    pub b: Option<String>,
    pub interaction: Option<String>,
    pub auto_answer: Option<bool>,
    pub caller_id: Option<String>,
    /// Case data headers. A JSON object has no duplicate names and the
    /// order is not meaningful on SIP headers, so a sorted map is faithful.
    pub headers: Option<BTreeMap<String, String>>,
    pub call: Option<String>,
}

impl OriginateBody {
    pub fn into_command(self) -> Result<Originate, ApiError> {
        let a = required("a", self.a)?;
        check_party("a", &a)?;
        let b = required("b", self.b)?;
        check_party("b", &b)?;
        if let Some(id) = &self.interaction {
            check_text("interaction", id)?;
        }
        if let Some(cid) = &self.caller_id {
            check_party("caller_id", cid)?;
        }
        let call = self
            .call
            .map(|c| check_call_id(&c).map(|_| CallId(c)))
            .transpose()?;
        let headers = self.headers.unwrap_or_default();
        for (name, value) in &headers {
            check_header(name, value)?;
        }
        Ok(Originate {
            call,
            a,
            b,
            interaction: self.interaction,
            auto_answer: self.auto_answer.unwrap_or(false),
            headers: headers.into_iter().collect(),
            caller_id: self.caller_id,
            caller_id_name: None,
        })
    }
}

/// `POST /v1/calls/{id}/hold|retrieve|mute|unmute`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct LegBody {
    pub leg: Option<String>,
}

impl LegBody {
    pub fn leg(self) -> Result<LegRole, ApiError> {
        leg(self.leg)
    }
}

/// `POST /v1/calls/{id}/dtmf`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct DtmfBody {
    pub leg: Option<String>,
    pub digits: Option<String>,
}

impl DtmfBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let leg = leg(self.leg)?;
        let digits = digits(self.digits)?;
        Ok(CallCommand::SendDtmf { call, leg, digits })
    }
}

/// `POST /v1/calls/{id}/transfer`: `leg`'s far party goes to `to`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct TransferBody {
    pub leg: Option<String>,
    pub to: Option<String>,
}

impl TransferBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let leg = leg(self.leg)?;
        let to = required("to", self.to)?;
        check_party("to", &to)?;
        Ok(CallCommand::Transfer { call, leg, to })
    }
}

/// `POST /v1/calls/{id}/consult`: `leg` (default `a`, the agent) consults `to`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct ConsultBody {
    /// The agent's leg (default `a`); its far party is held.
    pub leg: Option<String>,
    /// The user or number to consult (routed by the dial plan).
    pub to: Option<String>,
}

impl ConsultBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let leg = match self.leg {
            Some(l) => leg(Some(l))?,
            None => LegRole::A,
        };
        let to = required("to", self.to)?;
        check_party("to", &to)?;
        Ok(CallCommand::Consult { call, leg, to })
    }
}

/// `POST /v1/calls/{id}/remove`: one party of a consultation or conference goes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct PartyBody {
    /// `agent`, `contact` or `consulted`.
    pub party: Option<String>,
}

impl PartyBody {
    pub fn party(self) -> Result<Party, ApiError> {
        party(self.party)
    }
}

/// `POST /v1/calls/{id}/leave`: the agent drops out of a conference.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct LeaveBody {
    /// `stay`, `hang-up`, or `stay-if-internal` (default: the others stay
    /// if one of them is a registered user).
    pub others: Option<String>,
}

impl LeaveBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let others = match self.others.as_deref() {
            None | Some("stay-if-internal") => Others::StayIfInternal,
            Some("stay") => Others::Stay,
            Some("hang-up") => Others::HangUp,
            Some(_) => {
                return Err(ApiError::invalid(
                    "others",
                    "others must be one of stay, hang-up, stay-if-internal",
                ))
            }
        };
        Ok(CallCommand::Leave { call, others })
    }
}

/// `POST /v1/calls/{id}/volume`: a gain in the relay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct VolumeBody {
    /// `agent`, `contact` or `consulted`.
    pub party: Option<String>,
    /// `in` (what the party says) or `out` (what it hears).
    pub direction: Option<String>,
    /// -12..12 dB.
    pub db: Option<i64>,
}

impl VolumeBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let party = party(self.party)?;
        let direction: Way = required("direction", self.direction)?
            .parse()
            .map_err(|()| ApiError::invalid("direction", "direction must be in or out"))?;
        let db = self
            .db
            .ok_or_else(|| ApiError::invalid("db", "db is required"))?;
        let db = i8::try_from(db)
            .ok()
            .filter(|d| (-12..=12).contains(d))
            .ok_or_else(|| ApiError::invalid("db", "db must be within -12..12"))?;
        Ok(CallCommand::Volume {
            call,
            party,
            direction,
            db,
        })
    }
}

/// `POST /v1/calls/{id}/listen|whisper|barge`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct SuperviseBody {
    /// The supervisor's user or number, to call it; absent: the supervisor
    /// already on the call switches to this mode.
    pub to: Option<String>,
}

impl SuperviseBody {
    pub fn into_command(self, call: CallId, mode: Monitor) -> Result<CallCommand, ApiError> {
        if let Some(to) = &self.to {
            check_party("to", to)?;
        }
        Ok(CallCommand::Supervise {
            call,
            mode,
            to: self.to,
        })
    }
}

fn party(value: Option<String>) -> Result<Party, ApiError> {
    required("party", value)?
        .parse()
        .map_err(|()| ApiError::invalid("party", "party must be one of agent, contact, consulted"))
}

/// `POST /v1/calls/{id}/recording`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, expecting = "a JSON object")]
pub struct RecordingBody {
    pub action: Option<String>,
}

impl RecordingBody {
    pub fn into_command(self, call: CallId) -> Result<CallCommand, ApiError> {
        let action = required("action", self.action)?;
        Ok(match action.as_str() {
            "start" => CallCommand::StartRecording { call },
            "pause" => CallCommand::PauseRecording { call },
            "resume" => CallCommand::ResumeRecording { call },
            "stop" => CallCommand::StopRecording { call },
            _ => {
                return Err(ApiError::invalid(
                    "action",
                    "action must be one of start, pause, resume, stop",
                ))
            }
        })
    }
}

/// `GET /v1/calls` query string. Unknown parameters are refused so that a
/// misspelt filter does not silently list every call.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub interaction: Option<String>,
}

pub(super) fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value.ok_or_else(|| ApiError::invalid(field, format!("{field} is required")))
}

/// RFC 4733 events 0-15: the sixteen keys of a DTMF pad, 1 to
/// [`MAX_DIGITS`] of them.
pub(super) fn digits(value: Option<String>) -> Result<String, ApiError> {
    let digits = required("digits", value)?;
    let key = |c: char| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D');
    if digits.is_empty() || digits.len() > MAX_DIGITS || !digits.chars().all(key) {
        return Err(ApiError::invalid(
            "digits",
            format!("digits must be 1 to {MAX_DIGITS} of 0-9 * # A-D"),
        ));
    }
    Ok(digits)
}

fn leg(value: Option<String>) -> Result<LegRole, ApiError> {
    required("leg", value)?
        .parse()
        .map_err(|()| ApiError::invalid("leg", "leg must be one of a, b, c"))
}

/// A number or user name: the dial plan decides what it means, but it has
/// to fit in a SIP URI user part without quoting, so no spaces or controls.
fn check_party(field: &str, value: &str) -> Result<(), ApiError> {
    check_text(field, value)?;
    if value.chars().any(char::is_whitespace) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain spaces"),
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    check_text_up_to(field, value, MAX_TEXT)
}

/// 1 to `max` characters, none of them a control character.
pub(super) fn check_text_up_to(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(())
}

/// Only RFC 3986's unreserved characters (A-Z a-z 0-9 - _ . ~): a name
/// made of them needs no escaping in a URL, a header or a log line.
pub(super) fn is_unreserved(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

/// A client-chosen call id ends up in `Location`, URLs and log lines, so it
/// is held to characters that need no escaping anywhere.
fn check_call_id(value: &str) -> Result<(), ApiError> {
    let ok = !value.is_empty() && value.len() <= MAX_CALL_ID && is_unreserved(value);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "call",
            format!("call must be 1 to {MAX_CALL_ID} of A-Z a-z 0-9 - _ . ~"),
        ))
    }
}

/// A header name must be an RFC 3261 §25.1 token and its value one line:
/// anything else would let a client inject headers into the INVITE.
fn check_header(name: &str, value: &str) -> Result<(), ApiError> {
    let token = |b: u8| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
    };
    if name.is_empty() || !name.bytes().all(token) {
        return Err(ApiError::invalid(
            "headers",
            format!("header name {name:?} is not a token"),
        ));
    }
    if value.len() > MAX_HEADER_VALUE || value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ApiError::invalid(
            "headers",
            format!(
                "header {name} must have a single-line value of at most {MAX_HEADER_VALUE} bytes"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn originate(json: &str) -> Result<Originate, ApiError> {
        super::super::extract::parse::<OriginateBody>(json.as_bytes())?.into_command()
    }

    fn field_of(r: Result<Originate, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.status.as_u16(), 422, "{e:?}");
        e.field.unwrap()
    }

    #[test]
    fn originate_fields_are_checked_and_named() {
        assert_eq!(field_of(originate(r#"{"b": "2"}"#)), "a");
        assert_eq!(field_of(originate(r#"{"a": "1"}"#)), "b");
        assert_eq!(field_of(originate(r#"{"a": "", "b": "2"}"#)), "a");
        assert_eq!(field_of(originate(r#"{"a": "1", "b": "2 3"}"#)), "b");
        assert_eq!(
            field_of(originate(r#"{"a": "1", "b": "2", "call": "x/y"}"#)),
            "call"
        );
        assert_eq!(
            field_of(originate(r#"{"a": "1", "b": "2", "caller_id": "a\u0000"}"#)),
            "caller_id"
        );
        assert_eq!(
            field_of(originate(r#"{"a": "1", "b": "2", "interaction": ""}"#)),
            "interaction"
        );
        for headers in [
            r#"{"X Case": "1"}"#,
            r#"{"X:Case": "1"}"#,
            r#"{"": "1"}"#,
            r#"{"X-Case": "1\r\nVia: evil"}"#,
            r#"{"X-Case": "1\n"}"#,
        ] {
            let body = format!(r#"{{"a": "1", "b": "2", "headers": {headers}}}"#);
            assert_eq!(field_of(originate(&body)), "headers", "{headers}");
        }
        let ok = originate(r#"{"a": "1", "b": "2", "headers": {"X-Case": "a\tb"}}"#).unwrap();
        assert_eq!(ok.headers, vec![("X-Case".into(), "a\tb".into())]);
        assert!(!ok.auto_answer);
    }

    #[test]
    fn digits_legs_and_actions() {
        let call = || CallId("c1".into());
        let dtmf = |leg: Option<&str>, digits: Option<&str>| {
            DtmfBody {
                leg: leg.map(Into::into),
                digits: digits.map(Into::into),
            }
            .into_command(call())
        };
        assert!(dtmf(Some("b"), Some("0123456789*#ABCD")).is_ok());
        for bad in ["", "12e", "a", "1 2", &"1".repeat(33)] {
            assert_eq!(
                dtmf(Some("b"), Some(bad)).unwrap_err().field.as_deref(),
                Some("digits")
            );
        }
        assert_eq!(
            dtmf(None, Some("1")).unwrap_err().field.as_deref(),
            Some("leg")
        );
        assert_eq!(
            dtmf(Some("d"), Some("1")).unwrap_err().field.as_deref(),
            Some("leg")
        );
        assert_eq!(
            dtmf(Some("b"), None).unwrap_err().field.as_deref(),
            Some("digits")
        );
        let rec = |a: &str| {
            RecordingBody {
                action: Some(a.into()),
            }
            .into_command(call())
        };
        assert_eq!(
            rec("pause").unwrap(),
            CallCommand::PauseRecording { call: call() }
        );
        assert_eq!(rec("Stop").unwrap_err().field.as_deref(), Some("action"));
    }

    #[test]
    fn transfer_names_a_leg_and_a_target() {
        let call = || CallId("c1".into());
        let transfer = |leg: Option<&str>, to: Option<&str>| {
            TransferBody {
                leg: leg.map(Into::into),
                to: to.map(Into::into),
            }
            .into_command(call())
        };
        assert_eq!(
            transfer(Some("a"), Some("1003")).unwrap(),
            CallCommand::Transfer {
                call: call(),
                leg: LegRole::A,
                to: "1003".into()
            }
        );
        let field = |r: Result<CallCommand, ApiError>| r.unwrap_err().field;
        assert_eq!(field(transfer(None, Some("1003"))).as_deref(), Some("leg"));
        assert_eq!(field(transfer(Some("b"), None)).as_deref(), Some("to"));
        assert_eq!(field(transfer(Some("b"), Some(""))).as_deref(), Some("to"));
        assert_eq!(
            field(transfer(Some("b"), Some("10 03"))).as_deref(),
            Some("to")
        );
    }
}
