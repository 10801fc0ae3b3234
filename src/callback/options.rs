//! `webcallback.*` options for one interaction (docs/web-callbacks.md, Options): the
//! configured defaults with the overrides a routing strategy put in the
//! request's `routingData.options`, and the Callback Information preview
//! those options choose.
//!
//! Pure functions: no store, no clock.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::model::Callback;
use super::settings::WebcallbackOptions;

/// The longest auto-answer preview accepted, in configuration and overrides.
pub const MAX_AUTO_ANSWER_TIMER_SECS: u64 = 3600;

/// An override that cannot be applied; the API answers 422 with the field
/// `routingData.options.KEY`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct OptionError {
    /// The option's name as given (`webcallback.auto-answer`).
    pub key: String,
    pub problem: OptionProblem,
}

/// What is wrong with an override's value (the message after its key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionProblem {
    #[error("unknown option")]
    Unknown,
    #[error("must be true or false, not {0}")]
    NotBoolean(Value),
    #[error("must be whole seconds from 0 to {MAX_AUTO_ANSWER_TIMER_SECS}, not {0}")]
    NotSeconds(Value),
    #[error("entries must be non-empty strings, not {0}")]
    BadEntry(Value),
    #[error("must be an array of names or a comma-separated string, not {0}")]
    NotNames(Value),
    #[error("must be a queue name, not {0}")]
    NotQueue(Value),
}

/// `defaults` with `overrides` applied. Keys are the options' names;
/// booleans may be JSON booleans or the strings "true"/"false" (routing
/// strategies often only write strings), likewise the timer's seconds.
/// The first bad override (in key order) is the error.
pub fn resolve(
    defaults: &WebcallbackOptions,
    overrides: &BTreeMap<String, Value>,
) -> Result<WebcallbackOptions, OptionError> {
    let mut o = defaults.clone();
    for (key, value) in overrides {
        let bad = |problem: OptionProblem| OptionError {
            key: key.clone(),
            problem,
        };
        match key.as_str() {
            "webcallback.auto-answer" => o.auto_answer = boolean(value).map_err(bad)?,
            "webcallback.auto-answer.timer" => {
                o.auto_answer_timer = Duration::from_secs(seconds(value).map_err(bad)?)
            }
            "webcallback.auto-answer.enable-reject" => {
                o.auto_answer_enable_reject = boolean(value).map_err(bad)?
            }
            "webcallback.auto-dial" => o.auto_dial = boolean(value).map_err(bad)?,
            "webcallback.callback-information.content" => {
                o.callback_information_content = content(value).map_err(bad)?
            }
            "webcallback.complete-queue" => o.complete_queue = queue(value).map_err(bad)?,
            "webcallback.park-queue" => o.park_queue = queue(value).map_err(bad)?,
            "webcallback.reschedule-queue" => o.reschedule_queue = queue(value).map_err(bad)?,
            _ => return Err(bad(OptionProblem::Unknown)),
        }
    }
    Ok(o)
}

fn boolean(v: &Value) -> Result<bool, OptionProblem> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(OptionProblem::NotBoolean(v.clone())),
    }
}

fn seconds(v: &Value) -> Result<u64, OptionProblem> {
    let secs = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match secs {
        Some(s) if s <= MAX_AUTO_ANSWER_TIMER_SECS => Ok(s),
        _ => Err(OptionProblem::NotSeconds(v.clone())),
    }
}

/// An array of names, or one string of comma-separated names.
fn content(v: &Value) -> Result<Vec<String>, OptionProblem> {
    match v {
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(OptionProblem::BadEntry(item.clone())),
            })
            .collect(),
        _ => Err(OptionProblem::NotNames(v.clone())),
    }
}

fn queue(v: &Value) -> Result<String, OptionProblem> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(OptionProblem::NotQueue(v.clone())),
    }
}

/// The Callback Information fields `content` names, in that order, with
/// their values; a field with no value (no user name given, an unknown
/// case-data key) is left out. Known names come from the record; any other
/// name is looked up in the case data (`data`). A list, not a map, because
/// the desktop shows the fields in the configured order.
pub fn preview(content: &[String], cb: &Callback) -> Vec<(String, String)> {
    content
        .iter()
        .filter_map(|name| field(name, cb).map(|value| (name.clone(), value)))
        .collect()
}

fn field(name: &str, cb: &Callback) -> Option<String> {
    let r = &cb.request;
    match name {
        "callbackUserName" => r.callback_user_name.clone(),
        "callbackNumber" => r.first_number().map(str::to_string),
        "callbackNumbers" => Some(r.callback_numbers.join(",")).filter(|s| !s.is_empty()),
        "callbackScheduledTime" => r.callback_scheduled_time.map(|t| rfc3339(t, cb)),
        "queueId" => Some(r.queue_id.clone()),
        "scriptId" => r.script_id.clone(),
        "callerId" => r.caller_id.clone(),
        "callerIdName" => r.caller_id_name.clone(),
        "attempts" => Some(cb.attempts.to_string()),
        "timeZone" => r.time_zone.clone(),
        other => r.data.get(other).cloned(),
    }
}

/// RFC 3339 at the contact's UTC offset when their zone is known (the
/// agent then reads the time the contact asked for), else in UTC.
fn rfc3339(t: jiff::Timestamp, cb: &Callback) -> String {
    match cb
        .request
        .time_zone
        .as_deref()
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
    {
        Some(tz) => t.display_with_offset(tz.to_offset(t)).to_string(),
        None => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::callback::model::{InteractionId, State};
    use crate::callback::CallbackRequest;

    fn defaults() -> WebcallbackOptions {
        WebcallbackOptions {
            auto_answer: false,
            auto_answer_timer: Duration::ZERO,
            auto_answer_enable_reject: true,
            auto_dial: false,
            callback_information_content: vec!["callbackNumber".into()],
            complete_queue: "done".into(),
            park_queue: "park".into(),
            reschedule_queue: "later".into(),
            not_ready_on_offer_timeout: Some("Away".into()),
        }
    }

    fn over(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn no_overrides_keep_the_defaults() {
        assert_eq!(resolve(&defaults(), &BTreeMap::new()), Ok(defaults()));
    }

    #[test]
    fn every_documented_option_overrides() {
        let o = resolve(
            &defaults(),
            &over(&[
                ("webcallback.auto-answer", json!(true)),
                ("webcallback.auto-answer.timer", json!(10)),
                ("webcallback.auto-answer.enable-reject", json!(false)),
                ("webcallback.auto-dial", json!(true)),
                (
                    "webcallback.callback-information.content",
                    json!(["queueId", "orderId"]),
                ),
                ("webcallback.complete-queue", json!("c")),
                ("webcallback.park-queue", json!("p")),
                ("webcallback.reschedule-queue", json!("r")),
            ]),
        )
        .unwrap();
        let want = WebcallbackOptions {
            auto_answer: true,
            auto_answer_timer: Duration::from_secs(10),
            auto_answer_enable_reject: false,
            auto_dial: true,
            callback_information_content: vec!["queueId".into(), "orderId".into()],
            complete_queue: "c".into(),
            park_queue: "p".into(),
            reschedule_queue: "r".into(),
            not_ready_on_offer_timeout: Some("Away".into()),
        };
        assert_eq!(o, want);
    }

    #[test]
    fn strings_stand_for_booleans_numbers_and_lists() {
        let o = resolve(
            &defaults(),
            &over(&[
                ("webcallback.auto-answer", json!("TRUE")),
                ("webcallback.auto-dial", json!("true")),
                ("webcallback.auto-answer.enable-reject", json!("false")),
                ("webcallback.auto-answer.timer", json!(" 5 ")),
                (
                    "webcallback.callback-information.content",
                    json!("callbackUserName, callbackNumber,,queueId,"),
                ),
            ]),
        )
        .unwrap();
        assert!(o.auto_answer && o.auto_dial && !o.auto_answer_enable_reject);
        assert_eq!(o.auto_answer_timer, Duration::from_secs(5));
        assert_eq!(
            o.callback_information_content,
            ["callbackUserName", "callbackNumber", "queueId"]
        );
    }

    #[test]
    fn bad_overrides_name_their_key() {
        let cases = [
            ("webcallback.auto-answer", json!("yes")),
            ("webcallback.auto-answer", json!(1)),
            ("webcallback.auto-dial", json!(null)),
            ("webcallback.auto-answer.timer", json!(-1)),
            ("webcallback.auto-answer.timer", json!(1.5)),
            (
                "webcallback.auto-answer.timer",
                json!(MAX_AUTO_ANSWER_TIMER_SECS + 1),
            ),
            ("webcallback.callback-information.content", json!([1])),
            ("webcallback.callback-information.content", json!([""])),
            ("webcallback.callback-information.content", json!(true)),
            ("webcallback.park-queue", json!("")),
            ("webcallback.complete-queue", json!(7)),
            ("webcallback.ringing-bell", json!("x")),
            ("auto-answer", json!(true)),
        ];
        for (key, value) in cases {
            let e = resolve(&defaults(), &over(&[(key, value.clone())])).unwrap_err();
            assert_eq!(e.key, key, "{value}: {e}");
        }
    }

    fn callback() -> Callback {
        let t: jiff::Timestamp = "2025-03-01T09:00:00Z".parse().unwrap();
        let request = CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: vec!["+33123456789".into(), "+33987654321".into()],
            callback_user_name: Some("Ada".into()),
            callback_scheduled_time: Some(t),
            validate_callback_numbers: true,
            data: [("orderId".to_string(), "A-17".to_string())].into(),
            script_id: Some("s1".into()),
            ..CallbackRequest::default()
        };
        Callback {
            state: State::Queued,
            attempts: 2,
            ..Callback::new(InteractionId("cb-0000000000000001".into()), request, t)
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn preview_keeps_the_configured_order_and_reads_case_data() {
        let p = preview(
            &names(&[
                "queueId",
                "orderId",
                "callbackNumber",
                "callbackUserName",
                "callbackNumbers",
                "attempts",
                "scriptId",
                "callbackScheduledTime",
            ]),
            &callback(),
        );
        let want: Vec<(String, String)> = [
            ("queueId", "support"),
            ("orderId", "A-17"),
            ("callbackNumber", "+33123456789"),
            ("callbackUserName", "Ada"),
            ("callbackNumbers", "+33123456789,+33987654321"),
            ("attempts", "2"),
            ("scriptId", "s1"),
            ("callbackScheduledTime", "2025-03-01T09:00:00Z"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(p, want);
    }

    #[test]
    fn preview_leaves_out_fields_without_a_value() {
        let p = preview(
            &names(&["callerId", "timeZone", "nope", "queueId"]),
            &callback(),
        );
        assert_eq!(p, [("queueId".to_string(), "support".to_string())]);
    }

    #[test]
    fn scheduled_time_is_shown_at_the_contact_offset() {
        let mut cb = callback();
        cb.request.time_zone = Some("Europe/Paris".into());
        let p = preview(&names(&["callbackScheduledTime", "timeZone"]), &cb);
        assert_eq!(p[0].1, "2025-03-01T10:00:00+01:00");
        assert_eq!(p[1].1, "Europe/Paris");
        // The same instant as the UTC form.
        let back: jiff::Timestamp = p[0].1.parse().unwrap();
        assert_eq!(Some(back), cb.request.callback_scheduled_time);
    }
}
