//! The one error shape every client sees:
//! `{"code": "<machine code>", "message": "<for people>", "field": "<name>"|null}`
//! (and `"privilege"` on a 403 for a missing privilege).
//!
//! Owns the mapping from the call layer's [`CommandError`] and the callback
//! center's [`ActionError`] to HTTP statuses, and from transport trouble
//! (task gone, no answer in time) to 503/504. `code` is what a program
//! branches on (it never changes with the wording); `field` names the request
//! field a client should fix, so a form can put the message next to the
//! right input; it is null when no field is at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::call::CommandError;
use crate::callback::ActionError;

/// A refused request: status, machine code, message, and the field at fault if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// The privilege an agent lacks (403 `forbidden` only).
    pub privilege: Option<&'static str>,
}

/// The error body as sent, and as the OpenAPI document describes it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct Body<'a> {
    /// Stable machine code (`invalid`, `no_callback`, `wrong_state`, ...).
    code: &'a str,
    /// What went wrong, for people.
    message: &'a str,
    /// The request field (body key, query parameter or header) at fault.
    field: Option<&'a str>,
    /// The privilege the agent lacks, on 403 `forbidden`.
    #[serde(skip_serializing_if = "Option::is_none")]
    privilege: Option<&'a str>,
}

/// The code a status carries when nothing more specific applies.
fn default_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        StatusCode::GATEWAY_TIMEOUT => "timeout",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    }
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError {
            status,
            code: default_code(status),
            message: message.into(),
            field: field.map(str::to_owned),
            privilege: None,
        }
    }

    /// The same error under a more specific machine code.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self
    }

    /// 422: the body parsed but a field's value is not acceptable.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message, Some(field))
    }

    /// 503: the endpoint task is gone (its channel closed or it dropped the reply).
    pub fn unavailable() -> Self {
        Self::unavailable_because("the call layer is not running")
    }

    /// 503 with a reason (the callback center or the store is not there).
    pub fn unavailable_because(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message, None)
    }

    /// 504: the command was queued but not answered in time. It may still
    /// take effect, and the message says so rather than implying it failed.
    pub fn timed_out(secs: u64) -> Self {
        Self::timed_out_for("the call layer", secs)
    }

    /// 504 naming who did not answer.
    pub fn timed_out_for(who: &str, secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{who} did not answer within {secs} s; the request may still take effect"),
            None,
        )
    }

    /// 500: a part of the switch answered something the API cannot show.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message, None)
    }

    /// Maps the callback center's refusal.
    pub fn from_action(err: ActionError) -> Self {
        let message = err.to_string();
        match err {
            ActionError::NoCallback(_) => {
                Self::new(StatusCode::NOT_FOUND, message, Some("id")).with_code("no_callback")
            }
            ActionError::NoAgent(_) => {
                Self::new(StatusCode::NOT_FOUND, message, Some("agent")).with_code("no_agent")
            }
            ActionError::Forbidden { privilege, .. } => {
                // The privilege is what is at fault, so `field` names it too:
                // a form shows the message where that privilege's action is.
                let name = privilege.as_str();
                let mut e = Self::new(StatusCode::FORBIDDEN, message, Some(name));
                e.privilege = Some(name);
                e
            }
            ActionError::NotOwner { .. } => {
                Self::new(StatusCode::FORBIDDEN, message, Some("agent")).with_code("not_owner")
            }
            ActionError::WrongState { .. } => {
                Self::new(StatusCode::CONFLICT, message, None).with_code("wrong_state")
            }
            // The center's message already names the field; say it once.
            ActionError::Invalid {
                field,
                message: why,
            } => Self::invalid(&field, why),
            ActionError::Unavailable(why) => Self::unavailable_because(why),
        }
    }

    /// Maps a command refusal. `numbers` is the originate request's `a` and
    /// `b`, used to tell which of them `NoRoute` is about: the call layer
    /// reports the number, and the client needs the field.
    pub fn from_command(err: CommandError, numbers: Option<(&str, &str)>) -> Self {
        let message = err.to_string();
        match err {
            CommandError::NoCall(_) => {
                Self::new(StatusCode::NOT_FOUND, message, Some("call")).with_code("no_call")
            }
            CommandError::NoLeg(..) => {
                Self::new(StatusCode::NOT_FOUND, message, Some("leg")).with_code("no_leg")
            }
            CommandError::NotAnswered(..) => {
                Self::new(StatusCode::CONFLICT, message, Some("leg")).with_code("not_answered")
            }
            CommandError::CallExists(_) => {
                Self::new(StatusCode::CONFLICT, message, Some("call")).with_code("call_exists")
            }
            CommandError::Invalid { field, .. } => Self::invalid(field, message),
            CommandError::NoRoute(number) => {
                let field = match numbers {
                    Some((a, _)) if a == number => Some("a"),
                    Some((_, b)) if b == number => Some("b"),
                    _ => None,
                };
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, message, field).with_code("no_route")
            }
            CommandError::Busy(_) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, message, None).with_code("busy")
            }
            CommandError::WrongState { .. } => {
                Self::new(StatusCode::CONFLICT, message, None).with_code("wrong_state")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            privilege: self.privilege,
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallId, LegRole};
    use crate::callback::{InteractionId, Privilege};

    fn map(err: CommandError) -> (u16, &'static str, Option<String>) {
        let e = ApiError::from_command(err, Some(("1001", "15551234567")));
        (e.status.as_u16(), e.code, e.field)
    }

    #[test]
    fn every_command_error_has_its_status_code_and_field() {
        let id = || CallId("c1".into());
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(map(CommandError::NoCall(id())), (404, "no_call", f("call")));
        assert_eq!(
            map(CommandError::NoLeg(id(), LegRole::C)),
            (404, "no_leg", f("leg"))
        );
        assert_eq!(
            map(CommandError::NotAnswered(id(), LegRole::B)),
            (409, "not_answered", f("leg"))
        );
        assert_eq!(
            map(CommandError::CallExists(id())),
            (409, "call_exists", f("call"))
        );
        assert_eq!(
            map(CommandError::Invalid {
                field: "caller_id",
                message: "not allowed".into()
            }),
            (422, "invalid", f("caller_id"))
        );
        assert_eq!(map(CommandError::Busy("full".into())), (503, "busy", None));
    }

    #[test]
    fn no_route_names_the_number_it_is_about() {
        assert_eq!(
            map(CommandError::NoRoute("1001".into())),
            (422, "no_route", Some("a".into()))
        );
        assert_eq!(
            map(CommandError::NoRoute("15551234567".into())),
            (422, "no_route", Some("b".into()))
        );
        // A number neither side asked for (a rewritten one): no field to blame.
        assert_eq!(
            map(CommandError::NoRoute("999".into())),
            (422, "no_route", None)
        );
        let e = ApiError::from_command(CommandError::NoRoute("1001".into()), None);
        assert_eq!(e.field, None);
    }

    #[test]
    fn every_action_error_has_its_status_code_and_field() {
        let map = |err: ActionError| {
            let e = ApiError::from_action(err);
            (e.status.as_u16(), e.code, e.field, e.privilege)
        };
        let id = || InteractionId("cb-0000000000000001".into());
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(
            map(ActionError::NoCallback(id())),
            (404, "no_callback", f("id"), None)
        );
        assert_eq!(
            map(ActionError::NoAgent("1001".into())),
            (404, "no_agent", f("agent"), None)
        );
        assert_eq!(
            map(ActionError::NotOwner {
                id: id(),
                agent: "1001".into()
            }),
            (403, "not_owner", f("agent"), None)
        );
        assert_eq!(
            map(ActionError::WrongState {
                action: "accept".into(),
                state: "queued".into()
            }),
            (409, "wrong_state", None, None)
        );
        assert_eq!(
            map(ActionError::Invalid {
                field: "callbackNumber".into(),
                message: "not a number".into()
            }),
            (422, "invalid", f("callbackNumber"), None)
        );
        assert_eq!(
            map(ActionError::Unavailable("store is read-only".into())),
            (503, "unavailable", None, None)
        );
        let forbidden = ApiError::from_action(ActionError::Forbidden {
            agent: "1001".into(),
            privilege: Privilege::Decline,
        });
        assert_eq!(
            (forbidden.status.as_u16(), forbidden.code),
            (403, "forbidden")
        );
        assert_eq!(forbidden.field.as_deref(), Some("webcallback.can-decline"));
        assert_eq!(forbidden.privilege, Some("webcallback.can-decline"));
        assert!(
            forbidden.message.contains("webcallback.can-decline"),
            "{}",
            forbidden.message
        );
    }
}
