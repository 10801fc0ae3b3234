//! Bodies of the requests that change an existing callback: reschedule
//! (POST /v1/callbacks/{id}/reschedule, and an agent's reschedule) and
//! cancel. Checked like the create request, field by field.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text::optional_text;
use super::{normalize_number, scheduled_time, time, FieldError, MAX_NUMBER_TEXT, MAX_ZONE_TEXT};

/// Longest cancellation reason kept.
const MAX_REASON: usize = 256;

/// A new time for a callback, and optionally a new number to call.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[schema(example = json!({
    "callbackScheduledTime": "2025-06-03T09:00:00+02:00",
    "callbackNumber": "06 98 76 54 32"
}))]
pub struct RescheduleBody {
    /// ISO 8601 with an offset, or without one and read in `timeZone`
    /// (required; at most 5 minutes past and 366 days ahead).
    pub callback_scheduled_time: String,
    /// Call this number from now on; a national number is read with the
    /// callback's own `countryCode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_number: Option<String>,
    /// IANA zone for a time given without offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

impl RescheduleBody {
    /// The new time in UTC and the new number in E.164. `country_code` and
    /// `strict` are the interaction's own (`countryCode`,
    /// `validateCallbackNumbers`), so a new number is held to the same rule
    /// as the ones it replaces.
    pub fn validate(
        self,
        now: Timestamp,
        country_code: Option<&str>,
        strict: bool,
    ) -> Result<(Timestamp, Option<String>), FieldError> {
        let time_zone = optional_text("timeZone", self.time_zone, MAX_ZONE_TEXT)?;
        if let Some(zone) = &time_zone {
            time::time_zone_named(zone).map_err(|m| FieldError::new("timeZone", m))?;
        }
        let at = scheduled_time(
            "callbackScheduledTime",
            Some(self.callback_scheduled_time),
            time_zone.as_deref(),
            now,
        )?
        .ok_or_else(|| FieldError::new("callbackScheduledTime", "is required"))?;
        let number = optional_text("callbackNumber", self.callback_number, MAX_NUMBER_TEXT)?
            .map(|raw| {
                normalize_number(&raw, country_code, strict)
                    .map_err(|m| FieldError::new("callbackNumber", m))
            })
            .transpose()?;
        Ok((at, number))
    }
}

/// Why the contact or a supervisor cancels (optional).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CancelBody {
    /// Kept in the callback's history (at most 256 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CancelBody {
    /// The reason, trimmed; blank is none.
    pub fn validate(self) -> Result<Option<String>, FieldError> {
        optional_text("reason", self.reason, MAX_REASON)
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_json;
    use super::*;

    fn now() -> Timestamp {
        "2025-06-01T10:00:00Z".parse().expect("test time")
    }

    fn reschedule(json: &str) -> Result<(Timestamp, Option<String>), FieldError> {
        parse_json::<RescheduleBody>(json.as_bytes())?.validate(now(), Some("FR"), false)
    }

    #[test]
    fn reschedule_time_and_number() {
        let (at, number) = reschedule(
            r#"{"callbackScheduledTime": "2025-06-03T09:00:00+02:00",
                "callbackNumber": "06 98 76 54 32"}"#,
        )
        .unwrap();
        assert_eq!(at, "2025-06-03T07:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(number.as_deref(), Some("+33698765432"));

        let (at, number) = reschedule(
            r#"{"callbackScheduledTime": "2025-06-03T09:00", "timeZone": "America/New_York"}"#,
        )
        .unwrap();
        assert_eq!(at, "2025-06-03T13:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(number, None);
    }

    #[test]
    fn reschedule_number_uses_the_interactions_country_and_strictness() {
        let body = || RescheduleBody {
            callback_scheduled_time: "2025-06-03T09:00:00Z".into(),
            callback_number: Some("020 7946 0018".into()),
            time_zone: None,
        };
        let (_, n) = body().validate(now(), Some("+44"), true).unwrap();
        assert_eq!(n.as_deref(), Some("+442079460018"));
        let e = body().validate(now(), None, false).unwrap_err();
        assert_eq!(e.field, "callbackNumber");
        let unassigned = RescheduleBody {
            callback_number: Some("+1 555 0123".into()),
            ..body()
        };
        assert!(unassigned.clone().validate(now(), None, false).is_ok());
        assert_eq!(
            unassigned.validate(now(), None, true).unwrap_err().field,
            "callbackNumber"
        );
    }

    #[test]
    fn reschedule_refusals_name_the_field() {
        for (json, field) in [
            (r#"{}"#, "callbackScheduledTime"),
            (r#"{"callbackScheduledTime": ""}"#, "callbackScheduledTime"),
            (
                r#"{"callbackScheduledTime": "2025-06-01T09:00:00Z"}"#,
                "callbackScheduledTime",
            ),
            (
                r#"{"callbackScheduledTime": "2027-06-01T09:00:00Z"}"#,
                "callbackScheduledTime",
            ),
            (
                r#"{"callbackScheduledTime": "2025-06-03T09:00"}"#,
                "callbackScheduledTime",
            ),
            (
                r#"{"callbackScheduledTime": "2025-06-03T09:00", "timeZone": "Paris"}"#,
                "timeZone",
            ),
            (
                r#"{"callbackScheduledTime": "2025-06-03T09:00Z", "callbackNumber": "call me"}"#,
                "callbackNumber",
            ),
            (
                r#"{"callbackScheduledTime": 1717236000}"#,
                "callbackScheduledTime",
            ),
            (
                r#"{"callbackScheduledTime": "2025-06-03T09:00Z", "number": "1"}"#,
                "number",
            ),
        ] {
            assert_eq!(reschedule(json).unwrap_err().field, field, "{json}");
        }
    }

    #[test]
    fn cancel_reason() {
        let parse = |json: &str| parse_json::<CancelBody>(json.as_bytes())?.validate();
        assert_eq!(parse("{}"), Ok(None));
        assert_eq!(parse(r#"{"reason": null}"#), Ok(None));
        assert_eq!(parse(r#"{"reason": "  "}"#), Ok(None));
        assert_eq!(
            parse(r#"{"reason": " no longer needed "}"#),
            Ok(Some("no longer needed".into()))
        );
        let long = format!(r#"{{"reason": "{}"}}"#, "x".repeat(257));
        assert_eq!(parse(&long).unwrap_err().field, "reason");
        assert_eq!(
            parse(r#"{"reason": "a\u001bb"}"#).unwrap_err().field,
            "reason"
        );
        assert_eq!(parse(r#"{"reason": 5}"#).unwrap_err().field, "reason");
        assert_eq!(parse(r#"{"why": "x"}"#).unwrap_err().field, "why");
    }
}
