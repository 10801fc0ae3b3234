//! The create request end to end: bytes through `parse_body` and `validate`.

use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::callback::model::RoutingData;

fn now() -> Timestamp {
    "2025-06-01T10:00:00Z".parse().expect("test time")
}

fn known(queue: &str) -> bool {
    matches!(queue, "support" | "sales")
}

/// Parse and validate a JSON value as the API would.
fn create(body: serde_json::Value) -> Result<CallbackRequest, FieldError> {
    let bytes = serde_json::to_vec(&body).expect("test json");
    validate(parse_body(&bytes)?, now(), &known)
}

fn field_of_refusal(body: serde_json::Value) -> String {
    match create(body.clone()) {
        Ok(cb) => panic!("accepted {body}: {cb:?}"),
        Err(e) => e.field,
    }
}

fn minimal() -> serde_json::Value {
    json!({"queueId": "support", "callbackNumbers": ["+33612345678"]})
}

fn with(key: &str, value: serde_json::Value) -> serde_json::Value {
    let mut body = minimal();
    body[key] = value;
    body
}

#[test]
fn minimal_request_gets_the_defaults() {
    let cb = create(minimal()).unwrap();
    assert_eq!(
        cb,
        CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: vec!["+33612345678".into()],
            ..CallbackRequest::default()
        }
    );
}

#[test]
fn full_request_maps_every_field() {
    let cb = create(json!({
        "queueId": " sales ",
        "callbackNumbers": ["06 12 34 56 78", "+33 6 12 34 56 78", "01.42.68.53.00"],
        "callbackUserName": "Zoë Martin",
        "callbackScheduledTime": "2025-06-02T14:30:00",
        "timeZone": "Europe/Paris",
        "countryCode": "FR",
        "validateCallbackNumbers": true,
        "routingData": {"skillIds": ["french"], "priority": 10,
                        "options": {"webcallback.auto-answer": true}},
        "data": {"orderId": "A-17", "amount": 42},
        "callerId": "01 42 68 53 01",
        "callerIdName": "Switchback Support",
        "scriptId": "script-7",
        "scheduleGroupId": "sg-1",
        "widgetId": 123
    }))
    .unwrap();
    assert_eq!(cb.queue_id, "sales");
    assert_eq!(cb.callback_numbers, ["+33612345678", "+33142685300"]);
    assert_eq!(cb.callback_user_name.as_deref(), Some("Zoë Martin"));
    assert_eq!(
        cb.callback_scheduled_time,
        Some("2025-06-02T12:30:00Z".parse().unwrap())
    );
    assert_eq!(cb.time_zone.as_deref(), Some("Europe/Paris"));
    assert_eq!(cb.country_code.as_deref(), Some("FR"));
    assert!(cb.validate_callback_numbers);
    assert_eq!(cb.routing_data.skills, ["french"]);
    assert_eq!(cb.routing_data.priority, 10);
    assert_eq!(
        cb.routing_data.options["webcallback.auto-answer"],
        json!(true)
    );
    let data: BTreeMap<String, String> = [("amount", "42"), ("orderId", "A-17")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    // scheduleGroupId and widgetId are accepted and not kept anywhere.
    assert_eq!(cb.data, data);
    assert_eq!(cb.caller_id.as_deref(), Some("+33142685301"));
    assert_eq!(cb.caller_id_name.as_deref(), Some("Switchback Support"));
    assert_eq!(cb.script_id.as_deref(), Some("script-7"));
}

#[test]
fn document_002_template_with_blanks_is_read_as_defaults() {
    // An enrichment template's full answer, filled in only where a create needs it.
    let cb = create(json!({
        "scriptId": "",
        "queueId": "support",
        "routingData": "",
        "callbackUserName": "",
        "callbackNumbers": ["+442079460018"],
        "callbackScheduledTime": "",
        "countryCode": "",
        "validateCallbackNumbers": true,
        "data": {"visitorId": "v-1"},
        "callerId": "",
        "callerIdName": ""
    }))
    .unwrap();
    assert_eq!(cb.routing_data, RoutingData::default());
    assert_eq!(cb.callback_scheduled_time, None);
    assert_eq!(cb.script_id, None);
    assert_eq!(cb.caller_id, None);
    assert_eq!(cb.country_code, None);
}

#[test]
fn queue_is_required_and_known() {
    let mut no_queue = minimal();
    no_queue.as_object_mut().unwrap().remove("queueId");
    assert_eq!(field_of_refusal(no_queue), "queueId");
    assert_eq!(field_of_refusal(with("queueId", json!(""))), "queueId");
    assert_eq!(field_of_refusal(with("queueId", json!("  "))), "queueId");
    assert_eq!(
        field_of_refusal(with("queueId", json!("billing"))),
        "queueId"
    );
    assert_eq!(field_of_refusal(with("queueId", json!(null))), "queueId");
    assert_eq!(
        field_of_refusal(with("queueId", json!("sup\nport"))),
        "queueId"
    );
    let e = create(with("queueId", json!("billing"))).unwrap_err();
    assert!(e.message.contains("not a known queue"), "{e}");
}

#[test]
fn callback_numbers_one_to_five_normalised_and_deduplicated() {
    let mut no_numbers = minimal();
    no_numbers
        .as_object_mut()
        .unwrap()
        .remove("callbackNumbers");
    assert_eq!(field_of_refusal(no_numbers), "callbackNumbers");
    assert_eq!(
        field_of_refusal(with("callbackNumbers", json!([]))),
        "callbackNumbers"
    );
    let six: Vec<String> = (0..6).map(|i| format!("+3361234567{i}")).collect();
    assert_eq!(
        field_of_refusal(with("callbackNumbers", json!(six))),
        "callbackNumbers"
    );
    let five = &six[..5];
    assert_eq!(
        create(with("callbackNumbers", json!(five)))
            .unwrap()
            .callback_numbers,
        five
    );
    let cb = create(json!({
        "queueId": "support",
        "countryCode": "+33",
        "callbackNumbers": ["+33 1 42 68 53 00", "06-12-34-56-78", "01 42 68 53 00", "+33612345678"]
    }))
    .unwrap();
    assert_eq!(cb.callback_numbers, ["+33142685300", "+33612345678"]);
}

#[test]
fn bad_numbers_name_their_index() {
    let body = json!({"queueId": "support", "countryCode": "FR",
                      "callbackNumbers": ["0612345678", "call me", "+33142685300"]});
    assert_eq!(field_of_refusal(body), "callbackNumbers[1]");
    let body = json!({"queueId": "support", "callbackNumbers": ["+33612345678", "0142685300"]});
    let e = create(body).unwrap_err();
    assert_eq!(e.field, "callbackNumbers[1]");
    assert!(e.message.contains("countryCode"), "{e}");
    assert_eq!(
        field_of_refusal(with("callbackNumbers", json!(["+33612345678", ""]))),
        "callbackNumbers[1]"
    );
}

#[test]
fn validate_callback_numbers_selects_strict_or_plausible() {
    let unassigned = json!(["+1 555 0123"]);
    let mut body = with("callbackNumbers", unassigned.clone());
    assert!(create(body.clone()).is_ok(), "absent means plausible");
    body["validateCallbackNumbers"] = json!(false);
    assert!(create(body.clone()).is_ok());
    body["validateCallbackNumbers"] = json!(true);
    assert_eq!(field_of_refusal(body), "callbackNumbers[0]");
    assert_eq!(
        field_of_refusal(with("validateCallbackNumbers", json!("yes"))),
        "validateCallbackNumbers"
    );
}

#[test]
fn country_code_must_be_a_prefix_or_region() {
    for cc in ["+33", "33", "FR", "fr"] {
        let body =
            json!({"queueId": "support", "countryCode": cc, "callbackNumbers": ["0612345678"]});
        assert_eq!(
            create(body).unwrap().callback_numbers,
            ["+33612345678"],
            "{cc}"
        );
    }
    // Refused even when every number is international: it is kept for reschedules.
    assert_eq!(
        field_of_refusal(with("countryCode", json!("XX"))),
        "countryCode"
    );
    assert_eq!(
        field_of_refusal(with("countryCode", json!("+999"))),
        "countryCode"
    );
    assert_eq!(
        field_of_refusal(with("countryCode", json!(33))),
        "countryCode"
    );
}

#[test]
fn scheduled_time_parsed_to_utc_within_its_window() {
    for raw in [
        "2025-06-02T10:00:00Z",
        "2025-06-02T12:00:00+02:00",
        "2025-06-02T05:00:00-05:00",
    ] {
        let cb = create(with("callbackScheduledTime", json!(raw))).unwrap();
        assert_eq!(
            cb.callback_scheduled_time,
            Some("2025-06-02T10:00:00Z".parse().unwrap()),
            "{raw}"
        );
    }
    // Just inside the 5-minute tolerance.
    assert!(create(with("callbackScheduledTime", json!("2025-06-01T09:56:00Z"))).is_ok());
    for raw in [
        "2025-06-01T09:54:00Z",
        "2026-06-03T10:00:00Z",
        "2025-06-02T10:00:00",
        "next tuesday",
    ] {
        assert_eq!(
            field_of_refusal(with("callbackScheduledTime", json!(raw))),
            "callbackScheduledTime",
            "{raw}"
        );
    }
}

#[test]
fn time_zone_is_checked_and_kept_as_given() {
    let cb = create(with("timeZone", json!("America/New_York"))).unwrap();
    assert_eq!(cb.time_zone.as_deref(), Some("America/New_York"));
    assert_eq!(
        field_of_refusal(with("timeZone", json!("EST5EDT-ish"))),
        "timeZone"
    );
    assert_eq!(
        field_of_refusal(with("timeZone", json!("+02:00"))),
        "timeZone"
    );
    let mut body = with("timeZone", json!("Europe/Atlantis"));
    body["callbackScheduledTime"] = json!("2025-06-02T10:00:00");
    assert_eq!(field_of_refusal(body), "timeZone");
}

#[test]
fn routing_data_errors_name_the_path() {
    assert_eq!(
        field_of_refusal(with("routingData", json!({"priority": 5000}))),
        "routingData.priority"
    );
    assert_eq!(
        field_of_refusal(with("routingData", json!({"queueId": "x"}))),
        "routingData.queueId"
    );
    let cb = create(with("routingData", json!(null))).unwrap();
    assert_eq!(cb.routing_data, RoutingData::default());
    let cb = create(with("routingData", json!({"preferredAgentIds": ["1001"]}))).unwrap();
    assert_eq!(cb.routing_data.preferred_agents, ["1001"]);
}

#[test]
fn data_errors_name_the_key() {
    assert_eq!(
        field_of_refusal(with("data", json!({"orderId": {"id": 1}}))),
        "data.orderId"
    );
    assert_eq!(
        field_of_refusal(with("data", json!({"orderId": null}))),
        "data.orderId"
    );
    assert_eq!(field_of_refusal(with("data", json!(["a"]))), "data");
    let cb = create(with("data", json!({"paid": true, "total": 12.5}))).unwrap();
    assert_eq!(cb.data["paid"], "true");
    assert_eq!(cb.data["total"], "12.5");
}

#[test]
fn caller_id_is_a_lenient_number() {
    let mut body = with("callerId", json!("01 42 68 53 00"));
    body["countryCode"] = json!("FR");
    assert_eq!(
        create(body).unwrap().caller_id.as_deref(),
        Some("+33142685300")
    );
    // Lenient even when the callback numbers are validated strictly.
    let mut body = with("callerId", json!("+1 555 0123"));
    body["validateCallbackNumbers"] = json!(true);
    assert_eq!(
        create(body).unwrap().caller_id.as_deref(),
        Some("+15550123")
    );
    assert_eq!(
        field_of_refusal(with("callerId", json!("anonymous"))),
        "callerId"
    );
    assert_eq!(
        field_of_refusal(with("callerId", json!("0142685300"))),
        "callerId"
    );
}

#[test]
fn names_and_script_are_bounded_texts() {
    let ok = |key: &str, n: usize| create(with(key, json!("é".repeat(n)))).is_ok();
    assert!(ok("callerIdName", 64));
    assert!(!ok("callerIdName", 65));
    assert!(ok("callbackUserName", 128));
    assert!(!ok("callbackUserName", 129));
    assert!(ok("scriptId", 128));
    assert!(!ok("scriptId", 129));
    for key in ["callerIdName", "callbackUserName"] {
        assert_eq!(
            field_of_refusal(with(key, json!("Eve\r\nX-Injected: 1"))),
            key
        );
        assert_eq!(field_of_refusal(with(key, json!("a\u{1b}[2J"))), key);
    }
}

#[test]
fn unknown_fields_are_named_but_webhook_fields_accepted() {
    let e = create(with("callbackNumber", json!("+33612345678"))).unwrap_err();
    assert_eq!(e.field, "callbackNumber");
    assert!(e.message.contains("unknown field"), "{e}");
    assert_eq!(
        field_of_refusal(with("queue_id", json!("support"))),
        "queue_id"
    );
    let mut body = with("scheduleGroupId", json!("sg-1"));
    body["widgetId"] = json!("123");
    assert!(create(body).is_ok());
}

#[test]
fn type_errors_name_the_path() {
    let cases = [
        (
            r#"{"queueId": "support", "callbackNumbers": "123"}"#,
            "callbackNumbers",
        ),
        (
            r#"{"queueId": "support", "callbackNumbers": ["+33612345678", 5]}"#,
            "callbackNumbers[1]",
        ),
        (r#"{"queueId": 7, "callbackNumbers": []}"#, "queueId"),
        (
            r#"{"queueId": "s", "callbackNumbers": [], "data": "x"}"#,
            "data",
        ),
        (
            r#"{"queueId": "s", "callbackNumbers": [], "callerIdName": ["a"]}"#,
            "callerIdName",
        ),
        (
            r#"{"queueId": "s", "callbackScheduledTime": 1717236000}"#,
            "callbackScheduledTime",
        ),
        (r#"["queueId"]"#, BODY_FIELD),
        (r#" ["support", ["+33612345678"]]"#, BODY_FIELD),
        (r#"{"queueId": "#, BODY_FIELD),
        (r#"{"queueId": "support"} {}"#, BODY_FIELD),
        ("", BODY_FIELD),
        ("not json", BODY_FIELD),
    ];
    for (json, field) in cases {
        let e = parse_body(json.as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{json}: {e}");
    }
    let e = parse_body(br#"{"queueId": "s", "callbackNumbers": "123"}"#).unwrap_err();
    assert!(e.message.contains("expected a sequence"), "{e}");
}

#[test]
fn missing_field_of_a_strict_body_is_named() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        need: String,
    }
    assert_eq!(parse_json::<Strict>(b"{}").unwrap_err().field, "need");
}

#[test]
fn field_error_reads_field_then_message() {
    let e = FieldError::new("data.orderId", "must be a string, a number or a boolean");
    assert_eq!(
        e.to_string(),
        "data.orderId: must be a string, a number or a boolean"
    );
}

#[test]
fn openapi_schema_names_the_camel_case_fields() {
    use utoipa::PartialSchema;
    let schema = serde_json::to_value(CreateCallbackBody::schema()).expect("schema json");
    let props = schema["properties"].as_object().expect("properties");
    for key in [
        "queueId",
        "callbackNumbers",
        "routingData",
        "data",
        "timeZone",
        "widgetId",
    ] {
        assert!(props.contains_key(key), "{key} missing from {schema}");
    }
    assert_eq!(schema["additionalProperties"], json!(false), "{schema}");
}

#[test]
fn body_round_trips_through_serde() {
    let body = parse_body(&serde_json::to_vec(&minimal()).unwrap()).unwrap();
    let again = serde_json::to_value(&body).unwrap();
    assert_eq!(again, minimal());
}
