//! [`CallbackRequest`]: what a callback was asked for, once validated. It
//! is the core a create ([`NewCallback`](crate::callback::NewCallback))
//! and the interaction's record ([`Callback`](crate::callback::Callback))
//! share, so the fields and their rules are written once: [`validate`]
//! builds it from the API body, and the changes made to it later (a
//! duplicate merged in, a reschedule's number, a follow-up for the same
//! contact) go through its methods, which keep what validation
//! established (numbers in E.164 without duplicates, read in the request's
//! own country and as strictly as at creation).
//!
//! [`validate`]: super::validate

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::number::{normalize_number, NumberError};
use crate::callback::model::RoutingData;

/// A validated callback request: queue known, numbers in E.164 (first
/// tried first), time in UTC, texts bounded. On the record it is the
/// request as it stands now (a reschedule moves its time and may put a new
/// number first). Its JSON fields sit at the top level of the record's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallbackRequest {
    /// The routing queue it was created for (`queueId`).
    pub queue_id: String,
    /// E.164 numbers, tried in order across attempts.
    pub callback_numbers: Vec<String>,
    pub callback_user_name: Option<String>,
    /// The time the contact (or a reschedule) asked for, UTC.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub callback_scheduled_time: Option<Timestamp>,
    /// The contact's IANA time zone, when given.
    pub time_zone: Option<String>,
    pub country_code: Option<String>,
    pub validate_callback_numbers: bool,
    pub routing_data: RoutingData,
    /// Case data (the request's `data`).
    pub data: BTreeMap<String, String>,
    pub caller_id: Option<String>,
    pub caller_id_name: Option<String>,
    pub script_id: Option<String>,
}

impl CallbackRequest {
    /// The number called first.
    pub fn first_number(&self) -> Option<&str> {
        self.callback_numbers.first().map(String::as_str)
    }

    /// What duplicates are merged by: the routing queue and the first
    /// number (a second request for both joins the first while it waits).
    pub fn duplicate_key(&self) -> (String, String) {
        (
            self.queue_id.clone(),
            self.first_number().unwrap_or_default().to_string(),
        )
    }

    /// Folds a later request for the same queue and number into this one:
    /// its numbers this one lacks are tried after this one's, and its case
    /// data fills the keys this one lacks (the first request's values win).
    pub fn merge(&mut self, later: &CallbackRequest) {
        for (k, v) in &later.data {
            self.data.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for n in &later.callback_numbers {
            if !self.callback_numbers.contains(n) {
                self.callback_numbers.push(n.clone());
            }
        }
    }

    /// Puts `number` (in E.164) first, keeping the others after it in
    /// their order and never twice.
    pub fn call_first(&mut self, number: &str) {
        self.callback_numbers.retain(|x| x != number);
        self.callback_numbers.insert(0, number.to_string());
    }

    /// A number given after creation (a reschedule's, the schedule route's)
    /// in E.164. One written with `+` was normalised by the API already; a
    /// national one is read here, in this request's country and as strictly
    /// as its numbers were at creation.
    pub fn read_number(&self, raw: &str) -> Result<String, NumberError> {
        if raw.trim_start().starts_with('+') {
            return Ok(raw.to_string());
        }
        normalize_number(
            raw,
            self.country_code.as_deref(),
            self.validate_callback_numbers,
        )
    }

    /// A new request for the same contact (an agent schedules a callback
    /// while on a call): same queue, names, routing, caller id and script,
    /// this one's case data overlaid with `data`, one number (already
    /// chosen, so not checked again) and the time asked for.
    pub fn follow_up(
        &self,
        number: String,
        at: Option<Timestamp>,
        data: BTreeMap<String, String>,
    ) -> CallbackRequest {
        let mut merged = self.data.clone();
        merged.extend(data);
        CallbackRequest {
            callback_numbers: vec![number],
            callback_scheduled_time: at,
            validate_callback_numbers: false,
            data: merged,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(numbers: &[&str]) -> CallbackRequest {
        CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            country_code: Some("FR".into()),
            data: BTreeMap::from([("orderId".into(), "A-17".into())]),
            ..CallbackRequest::default()
        }
    }

    #[test]
    fn duplicates_are_keyed_by_queue_and_first_number() {
        let r = request(&["+33612345678", "+33142685300"]);
        assert_eq!(r.first_number(), Some("+33612345678"));
        assert_eq!(
            r.duplicate_key(),
            ("support".to_string(), "+33612345678".to_string())
        );
        assert_eq!(
            request(&[]).duplicate_key(),
            ("support".to_string(), String::new())
        );
    }

    #[test]
    fn a_merge_adds_new_numbers_last_and_keeps_the_first_values() {
        let mut first = request(&["+33612345678"]);
        let mut later = request(&["+33142685300", "+33612345678"]);
        later.data.insert("orderId".into(), "B-2".into());
        later.data.insert("tier".into(), "gold".into());
        first.merge(&later);
        assert_eq!(first.callback_numbers, ["+33612345678", "+33142685300"]);
        assert_eq!(first.data["orderId"], "A-17");
        assert_eq!(first.data["tier"], "gold");
        assert_eq!(first.duplicate_key().1, "+33612345678");
    }

    #[test]
    fn a_number_called_first_is_never_listed_twice() {
        let mut r = request(&["+33612345678", "+33142685300"]);
        r.call_first("+33142685300");
        assert_eq!(r.callback_numbers, ["+33142685300", "+33612345678"]);
        r.call_first("+33698765432");
        assert_eq!(
            r.callback_numbers,
            ["+33698765432", "+33142685300", "+33612345678"]
        );
    }

    #[test]
    fn later_numbers_are_read_in_the_request_country_and_strictness() {
        let mut r = request(&["+33612345678"]);
        assert_eq!(r.read_number("06 98 76 54 32").unwrap(), "+33698765432");
        // Written with `+`: the API normalised it already.
        assert_eq!(r.read_number("+33698765432").unwrap(), "+33698765432");
        r.country_code = None;
        assert_eq!(r.read_number("0698765432"), Err(NumberError::National));
        r.country_code = Some("US".into());
        assert_eq!(r.read_number("555 0123").unwrap(), "+15550123");
        r.validate_callback_numbers = true;
        assert_eq!(r.read_number("555 0123"), Err(NumberError::NotValid));
        assert_eq!(r.read_number("201 555 0123").unwrap(), "+12015550123");
    }

    #[test]
    fn a_follow_up_keeps_the_contact_and_overlays_its_data() {
        let mut r = request(&["+33612345678", "+33142685300"]);
        r.validate_callback_numbers = true;
        r.callback_user_name = Some("Zoë".into());
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        let next = r.follow_up(
            "+33142685300".into(),
            Some(at),
            BTreeMap::from([("orderId".into(), "C-3".into()), ("x".into(), "y".into())]),
        );
        assert_eq!(next.callback_numbers, ["+33142685300"]);
        assert_eq!(next.callback_scheduled_time, Some(at));
        assert_eq!(next.callback_user_name.as_deref(), Some("Zoë"));
        assert_eq!(next.queue_id, "support");
        assert!(!next.validate_callback_numbers);
        assert_eq!(next.data["orderId"], "C-3");
        assert_eq!(next.data["x"], "y");
    }

    /// On the record the request's fields are the record's own (flattened):
    /// the JSON a client reads does not change shape.
    #[test]
    fn the_json_field_names_are_the_api_ones() {
        let json = serde_json::to_value(request(&["+33612345678"])).unwrap();
        for key in [
            "queueId",
            "callbackNumbers",
            "callbackUserName",
            "callbackScheduledTime",
            "timeZone",
            "countryCode",
            "validateCallbackNumbers",
            "routingData",
            "data",
            "callerId",
            "callerIdName",
            "scriptId",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json.as_object().unwrap().len(), 12, "{json}");
    }
}
