//! The web-callback API's request bodies and their validation: JSON as
//! integrators send it (Genesys Cloud's create-callback schema) in, a
//! [`CallbackRequest`] (numbers in E.164, times in UTC) out, or a
//! [`FieldError`] naming the JSON path at fault, which the API answers
//! with 422.
//!
//! Two steps, so that every refusal names a field: [`parse_body`] turns the
//! bytes into a [`CreateCallbackBody`] (serde's type errors carry their path
//! through `serde_path_to_error`, and unknown fields are refused so a typo
//! is never silently ignored), then [`validate`] checks values. Validation
//! is sans-IO: the clock and the queue directory are arguments. The
//! validated request is the core both a create and the interaction's record
//! carry (`validated`); what changes it later goes through its methods.

mod case_data;
mod number;
mod routing_data;
mod text;
mod time;
mod validated;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use jiff::Timestamp;

pub use number::{normalize_number, NumberError};
pub use time::{check_window, parse_time, TimeError, MAX_AHEAD, PAST_TOLERANCE};
pub use validated::CallbackRequest;

use text::{check_text, optional_text};

/// The field named when the JSON as a whole is at fault (a syntax error,
/// trailing bytes, not an object). The API answers those 400, not 422.
pub const BODY_FIELD: &str = "body";

/// Numbers one request may give.
pub const MAX_CALLBACK_NUMBERS: usize = 5;
const MAX_QUEUE_ID: usize = 128;
const MAX_USER_NAME: usize = 128;
const MAX_CALLER_ID_NAME: usize = 64;
const MAX_SCRIPT_ID: usize = 128;
/// `+` and 3 digits, or a 2-letter region.
const MAX_COUNTRY_CODE: usize = 8;
/// Room for an ISO 8601 time with fraction, offset and zone annotation.
const MAX_TIME_TEXT: usize = 80;
const MAX_ZONE_TEXT: usize = 64;
const MAX_NUMBER_TEXT: usize = 40;

/// A refused request: the JSON path of the field (`callbackNumbers[1]`,
/// `routingData.priority`, `data.orderId`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The JSON body of POST /v1/callbacks, field names as integrators use them (camelCase).
///
/// Every field defaults at the serde level so that a missing required field
/// is reported by [`validate`], by name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
#[schema(example = json!({
    "queueId": "support",
    "callbackNumbers": ["06 12 34 56 78", "+33 1 42 68 53 00"],
    "countryCode": "FR",
    "callbackUserName": "Zoë Martin",
    "callbackScheduledTime": "2025-06-02T14:30:00",
    "timeZone": "Europe/Paris",
    "routingData": {"skills": ["french"], "priority": 10},
    "data": {"orderId": "A-17", "amount": 42}
}))]
pub struct CreateCallbackBody {
    /// The routing queue (required, and known to the switch).
    pub queue_id: String,
    /// 1 to 5 numbers, tried in order; national numbers are read with
    /// `countryCode`, separators are ignored, duplicates dropped.
    pub callback_numbers: Vec<String>,
    /// The contact's name as shown to the agent (at most 128 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_user_name: Option<String>,
    /// When to call: ISO 8601 with an offset (`2025-06-02T12:30:00Z`,
    /// `…+02:00`), or without one and read in `timeZone`. Absent: as soon as
    /// an agent is free. At most 5 minutes past and 366 days ahead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_scheduled_time: Option<String>,
    /// For national numbers: a dial prefix (`+33`, `33`) or an ISO 3166
    /// region (`FR`). Numbers written with `+` ignore it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// true: each number must be valid in its region's numbering plan.
    /// false (default): a plausible E.164 number is enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validate_callback_numbers: Option<bool>,
    /// `{skills | skillIds, preferredAgents | preferredAgentIds, priority
    /// (-1000..1000), options {"webcallback.*": any}}`; absent, null or `""`
    /// for the default routing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub routing_data: Option<serde_json::Value>,
    /// Case data: at most 100 keys of 1 to 64 characters; string, number or
    /// boolean values of at most 1024 characters, kept as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    /// The number the contact sees calling; normalised like a callback number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id: Option<String>,
    /// The name the contact sees calling (at most 64 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller_id_name: Option<String>,
    /// The agent script to show (at most 128 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script_id: Option<String>,
    /// The contact's IANA time zone (`Europe/Paris`): reads a scheduled time
    /// without offset, and is kept for display and business hours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Not stored: passed to the enrichment webhook (its payload carries
    /// it, see docs/enrichment.md), and accepted so that an integrator echoing
    /// that payload back is not refused for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub schedule_group_id: Option<serde_json::Value>,
    /// Not stored: passed to the enrichment webhook, like `scheduleGroupId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub widget_id: Option<serde_json::Value>,
}

/// The body of POST /v1/callbacks, with JSON type errors naming their path.
pub fn parse_body(bytes: &[u8]) -> Result<CreateCallbackBody, FieldError> {
    parse_json(bytes)
}

/// Any of this module's bodies from JSON bytes. A value of the wrong type
/// names its path (`callbackNumbers[1]`), an unknown or missing field its
/// name; malformed JSON, trailing bytes or a non-object name [`BODY_FIELD`].
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FieldError> {
    // serde's derived structs also read a JSON array positionally; the API
    // takes objects only.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(FieldError::new(BODY_FIELD, "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let field = if inner.is_data() {
            field_of(&path, &inner.to_string())
        } else {
            BODY_FIELD.to_owned()
        };
        FieldError::new(field, inner.to_string())
    })?;
    de.end()
        .map_err(|e| FieldError::new(BODY_FIELD, e.to_string()))?;
    Ok(value)
}

/// The path serde_path_to_error tracked (`.` when the error is about the
/// object itself), else the field serde's message names.
fn field_of(path: &str, message: &str) -> String {
    if path != "." {
        return path.to_owned();
    }
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            if let Some(end) = rest.find('`') {
                return rest[..end].to_owned();
            }
        }
    }
    BODY_FIELD.to_owned()
}

/// Checks a create request and builds its [`CallbackRequest`]: queue
/// known, numbers in E.164 (deduplicated, in order), time in UTC within its
/// window, routing data and case data mapped, texts bounded.
pub fn validate(
    body: CreateCallbackBody,
    now: Timestamp,
    known_queue: &dyn Fn(&str) -> bool,
) -> Result<CallbackRequest, FieldError> {
    let queue_id = body.queue_id.trim();
    if queue_id.is_empty() {
        return Err(FieldError::new("queueId", "is required"));
    }
    check_text("queueId", queue_id, MAX_QUEUE_ID)?;
    if !known_queue(queue_id) {
        return Err(FieldError::new(
            "queueId",
            format!("{queue_id:?} is not a known queue"),
        ));
    }

    let country_code = optional_text("countryCode", body.country_code, MAX_COUNTRY_CODE)?;
    if let Some(code) = &country_code {
        number::region_for(code).map_err(|e| FieldError::new("countryCode", e.to_string()))?;
    }
    let validate_callback_numbers = body.validate_callback_numbers.unwrap_or(false);
    let callback_numbers = callback_numbers(
        &body.callback_numbers,
        country_code.as_deref(),
        validate_callback_numbers,
    )?;

    let time_zone = optional_text("timeZone", body.time_zone, MAX_ZONE_TEXT)?;
    if let Some(zone) = &time_zone {
        time::time_zone_named(zone).map_err(|e| FieldError::new("timeZone", e.to_string()))?;
    }
    let callback_scheduled_time = scheduled_time(
        "callbackScheduledTime",
        body.callback_scheduled_time,
        time_zone.as_deref(),
        now,
    )?;

    let routing_data = routing_data::routing_data(body.routing_data)?;
    let data = case_data::case_data(body.data)?;

    let caller_id = optional_text("callerId", body.caller_id, MAX_NUMBER_TEXT)?
        .map(|raw| {
            normalize_number(&raw, country_code.as_deref(), false)
                .map_err(|e| FieldError::new("callerId", e.to_string()))
        })
        .transpose()?;
    let caller_id_name = optional_text("callerIdName", body.caller_id_name, MAX_CALLER_ID_NAME)?;
    let callback_user_name =
        optional_text("callbackUserName", body.callback_user_name, MAX_USER_NAME)?;
    let script_id = optional_text("scriptId", body.script_id, MAX_SCRIPT_ID)?;
    // scheduleGroupId and widgetId are deliberately dropped (see the body);
    // the enrichment webhook is sent them before validation.

    Ok(CallbackRequest {
        queue_id: queue_id.to_owned(),
        callback_numbers,
        callback_user_name,
        callback_scheduled_time,
        time_zone,
        country_code,
        validate_callback_numbers,
        routing_data,
        data,
        caller_id,
        caller_id_name,
        script_id,
    })
}

/// 1 to 5 entries, each to E.164; duplicates after normalisation are
/// dropped keeping the first (`06…` and `+336…` are one number).
fn callback_numbers(
    raw: &[String],
    country_code: Option<&str>,
    strict: bool,
) -> Result<Vec<String>, FieldError> {
    if raw.is_empty() {
        return Err(FieldError::new(
            "callbackNumbers",
            "at least one number is required",
        ));
    }
    if raw.len() > MAX_CALLBACK_NUMBERS {
        return Err(FieldError::new(
            "callbackNumbers",
            format!("at most {MAX_CALLBACK_NUMBERS} numbers may be given"),
        ));
    }
    let mut numbers: Vec<String> = Vec::with_capacity(raw.len());
    for (i, entry) in raw.iter().enumerate() {
        let e164 = normalize_number(entry, country_code, strict)
            .map_err(|e| FieldError::new(format!("callbackNumbers[{i}]"), e.to_string()))?;
        if !numbers.contains(&e164) {
            numbers.push(e164);
        }
    }
    Ok(numbers)
}

/// An optional requested time, to UTC and within its window.
fn scheduled_time(
    field: &str,
    raw: Option<String>,
    time_zone: Option<&str>,
    now: Timestamp,
) -> Result<Option<Timestamp>, FieldError> {
    let Some(raw) = optional_text(field, raw, MAX_TIME_TEXT)? else {
        return Ok(None);
    };
    let at = parse_time(&raw, time_zone).map_err(|e| FieldError::new(field, e.to_string()))?;
    time::check_window(at, now).map_err(|e| FieldError::new(field, e.to_string()))?;
    Ok(Some(at))
}

#[cfg(test)]
mod tests;
