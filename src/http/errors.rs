//! The one error shape every client sees: `{"error": "<message>", "field": "<name>"|null}`.
//!
//! Owns the mapping from the call layer's [`CommandError`] to HTTP statuses
//! and from transport trouble (endpoint gone, no answer in time) to 503/504.
//! `field` names the request field a client should fix, so a form can put
//! the message next to the right input; it is null when no field is at fault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::call::CommandError;

/// A refused request: status, message, and the field at fault if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: field.map(str::to_owned),
        }
    }

    /// 422: the body parsed but a field's value is not acceptable.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message, Some(field))
    }

    /// 503: the endpoint task is gone (its channel closed or it dropped the reply).
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the call layer is not running",
            None,
        )
    }

    /// 504: the command was queued but not answered in time. It may still
    /// take effect, and the message says so rather than implying it failed.
    pub fn timed_out(secs: u64) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "the call layer did not answer within {secs} s; the command may still take effect"
            ),
            None,
        )
    }

    /// Maps a command refusal. `numbers` is the originate request's `a` and
    /// `b`, used to tell which of them `NoRoute` is about: the call layer
    /// reports the number, and the client needs the field.
    pub fn from_command(err: CommandError, numbers: Option<(&str, &str)>) -> Self {
        let message = err.to_string();
        match err {
            CommandError::NoCall(_) => Self::new(StatusCode::NOT_FOUND, message, Some("call")),
            CommandError::NoLeg(..) => Self::new(StatusCode::NOT_FOUND, message, Some("leg")),
            CommandError::NotAnswered(..) => Self::new(StatusCode::CONFLICT, message, Some("leg")),
            CommandError::CallExists(_) => Self::new(StatusCode::CONFLICT, message, Some("call")),
            CommandError::Invalid { field, .. } => Self::invalid(field, message),
            CommandError::NoRoute(number) => {
                let field = match numbers {
                    Some((a, _)) if a == number => Some("a"),
                    Some((_, b)) if b == number => Some("b"),
                    _ => None,
                };
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, message, field)
            }
            CommandError::Busy(_) => Self::new(StatusCode::SERVICE_UNAVAILABLE, message, None),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{CallId, LegRole};

    fn map(err: CommandError) -> (u16, Option<String>) {
        let e = ApiError::from_command(err, Some(("1001", "15551234567")));
        (e.status.as_u16(), e.field)
    }

    #[test]
    fn every_command_error_has_its_status_and_field() {
        let id = || CallId("c1".into());
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(map(CommandError::NoCall(id())), (404, f("call")));
        assert_eq!(map(CommandError::NoLeg(id(), LegRole::C)), (404, f("leg")));
        assert_eq!(
            map(CommandError::NotAnswered(id(), LegRole::B)),
            (409, f("leg"))
        );
        assert_eq!(map(CommandError::CallExists(id())), (409, f("call")));
        assert_eq!(
            map(CommandError::Invalid {
                field: "caller_id",
                message: "not allowed".into()
            }),
            (422, f("caller_id"))
        );
        assert_eq!(map(CommandError::Busy("full".into())), (503, None));
    }

    #[test]
    fn no_route_names_the_number_it_is_about() {
        assert_eq!(
            map(CommandError::NoRoute("1001".into())),
            (422, Some("a".into()))
        );
        assert_eq!(
            map(CommandError::NoRoute("15551234567".into())),
            (422, Some("b".into()))
        );
        // A number neither side asked for (a rewritten one): no field to blame.
        assert_eq!(map(CommandError::NoRoute("999".into())), (422, None));
        let e = ApiError::from_command(CommandError::NoRoute("1001".into()), None);
        assert_eq!(e.field, None);
    }
}
