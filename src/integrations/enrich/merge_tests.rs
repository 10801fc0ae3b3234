//! The merge rules field by field, protected keys, `routingData` and the
//! payload.

use serde_json::{json, Map, Value};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

fn protected() -> Vec<String> {
    vec!["visitorId".into(), "te_channel".into()]
}

/// A request as a widget sends it.
fn request() -> Map<String, Value> {
    obj(json!({
        "queueId": "support",
        "callbackNumbers": ["06 12 34 56 78"],
        "countryCode": "FR",
        "callbackUserName": "Zoë",
        "scriptId": "s1",
        "widgetId": "w9",
        "routingData": {"skills": ["french"], "priority": 5},
        "data": {"visitorId": "v-1", "te_channel": "web", "orderId": "A-17"}
    }))
}

fn merged(answer: Value) -> Merged {
    merge(&request(), &answer, &protected()).expect("merge")
}

#[test]
fn the_payload_carries_the_request_as_sent_and_nulls_for_what_is_missing() {
    assert_eq!(
        payload(&request()),
        json!({
            "phoneNumber": "06 12 34 56 78",
            "scriptId": "s1",
            "queueId": "support",
            "scheduleGroupId": null,
            "widgetId": "w9",
            "countryCode": "FR"
        })
    );
    let bare = payload(&obj(json!({"queueId": "q"})));
    assert_eq!(bare["phoneNumber"], Value::Null);
    assert_eq!(bare["countryCode"], Value::Null);
    let first = payload(&obj(json!({"callbackNumbers": ["+331", "+332"]})));
    assert_eq!(first["phoneNumber"], "+331");
}

#[test]
fn each_plain_field_the_answer_returns_replaces_the_request_s() {
    let cases = [
        ("scriptId", json!("s2")),
        ("queueId", json!("vip")),
        ("callbackUserName", json!("Zoë Martin")),
        (
            "callbackNumbers",
            json!(["+33 1 42 68 53 00", "06 12 34 56 78"]),
        ),
        ("callbackScheduledTime", json!("2030-01-02T10:00:00Z")),
        ("countryCode", json!("BE")),
        ("validateCallbackNumbers", json!(true)),
        ("callerId", json!("+33 1 00 00 00 00")),
        ("callerIdName", json!("ACME")),
    ];
    for (field, value) in cases {
        let m = merged(json!({ field: value.clone() }));
        assert_eq!(m.body[field], value, "{field}");
        assert_eq!(m.changed, [field], "{field}");
        let mut expected = request();
        expected.insert(field.into(), value);
        assert_eq!(m.body, expected, "{field}: nothing else changes");
    }
}

#[test]
fn fields_left_out_or_null_stay_as_they_were() {
    let m = merged(json!({}));
    assert_eq!(m.body, request());
    assert!(m.changed.is_empty());
    let m = merged(json!({
        "queueId": null, "callbackNumbers": null, "scriptId": null,
        "routingData": null, "data": null, "callerId": null
    }));
    assert_eq!(m.body, request());
    assert!(m.changed.is_empty());
    // The same value again is no change.
    let m = merged(json!({"queueId": "support", "countryCode": "FR"}));
    assert!(m.changed.is_empty(), "{:?}", m.changed);
}

#[test]
fn unknown_fields_are_ignored_and_listed() {
    let m = merged(json!({"timeZone": "Asia/Tokyo", "id": "x", "queueId": "vip"}));
    assert_eq!(m.body.get("timeZone"), None);
    assert_eq!(m.body.get("id"), None);
    assert_eq!(m.ignored, ["id", "timeZone"]);
    assert_eq!(m.changed, ["queueId"]);
}

#[test]
fn data_is_merged_key_by_key() {
    let m = merged(json!({"data": {"tier": "gold", "orderId": "B-2", "empty": null}}));
    assert_eq!(
        Value::Object(m.body["data"].as_object().unwrap().clone()),
        json!({"visitorId": "v-1", "te_channel": "web", "orderId": "B-2", "tier": "gold"})
    );
    assert_eq!(m.changed, ["data.orderId", "data.tier"]);
    // null removes a key.
    let m = merged(json!({"data": {"orderId": null}}));
    assert_eq!(m.body["data"].get("orderId"), None);
    assert_eq!(m.changed, ["data.orderId"]);
}

#[test]
fn data_is_created_when_the_request_has_none() {
    let mut req = request();
    req.remove("data");
    let m = merge(&req, &json!({"data": {"tier": "gold"}}), &protected()).unwrap();
    assert_eq!(m.body["data"], json!({"tier": "gold"}));
    // An answer that ends up adding nothing leaves it absent.
    let m = merge(&req, &json!({"data": {"gone": null}}), &protected()).unwrap();
    assert_eq!(m.body.get("data"), None);
    assert!(m.changed.is_empty());
}

#[test]
fn protected_keys_are_never_added_changed_or_removed() {
    let m = merged(json!({"data": {"visitorId": "evil", "te_channel": null, "tier": "gold"}}));
    let data = &m.body["data"];
    assert_eq!(data["visitorId"], "v-1");
    assert_eq!(data["te_channel"], "web");
    assert_eq!(data["tier"], "gold");
    assert_eq!(m.protected, ["data.te_channel", "data.visitorId"]);
    assert_eq!(m.changed, ["data.tier"]);

    // Absent from the request: not added either.
    let mut req = request();
    req.remove("data");
    let m = merge(&req, &json!({"data": {"visitorId": "evil"}}), &protected()).unwrap();
    assert_eq!(m.body.get("data"), None);
    assert_eq!(m.protected, ["data.visitorId"]);

    // The same value is no attempt; a configured list replaces the default.
    let m = merged(json!({"data": {"visitorId": "v-1"}}));
    assert!(m.protected.is_empty() && m.changed.is_empty());
    let m = merge(
        &request(),
        &json!({"data": {"visitorId": "new", "orderId": "X"}}),
        &["orderId".to_string()],
    )
    .unwrap();
    assert_eq!(m.body["data"]["visitorId"], "new");
    assert_eq!(m.body["data"]["orderId"], "A-17");
}

#[test]
fn routing_data_is_merged_by_sub_field() {
    let m = merged(json!({"routingData": {"preferredAgents": ["1002"], "skills": ["vip"]}}));
    assert_eq!(
        m.body["routingData"],
        json!({"skills": ["vip"], "priority": 5, "preferredAgents": ["1002"]})
    );
    assert_eq!(
        m.changed,
        ["routingData.preferredAgents", "routingData.skills"]
    );
    let m = merged(
        json!({"routingData": {"priority": 50, "options": {"webcallback.auto-dial": true}}}),
    );
    assert_eq!(m.body["routingData"]["skills"], json!(["french"]));
    assert_eq!(m.body["routingData"]["priority"], 50);
    assert_eq!(m.changed, ["routingData.options", "routingData.priority"]);
}

#[test]
fn genesys_names_replace_their_twins() {
    let m = merged(json!({"routingData": {"skillIds": ["vip"]}}));
    assert_eq!(
        m.body["routingData"],
        json!({"skillIds": ["vip"], "priority": 5})
    );
    assert_eq!(m.changed, ["routingData.skillIds"]);
    let mut req = request();
    req.insert(
        "routingData".into(),
        json!({"preferredAgentIds": ["a"], "skillIds": ["x"]}),
    );
    let m = merge(
        &req,
        &json!({"routingData": {"preferredAgents": ["b"]}}),
        &protected(),
    )
    .unwrap();
    assert_eq!(
        m.body["routingData"],
        json!({"skillIds": ["x"], "preferredAgents": ["b"]})
    );
}

#[test]
fn routing_data_from_nothing_null_or_blank_and_unknown_sub_fields() {
    for before in [None, Some(json!(null)), Some(json!(""))] {
        let mut req = request();
        match &before {
            None => req.remove("routingData"),
            Some(v) => req.insert("routingData".into(), v.clone()),
        };
        let m = merge(
            &req,
            &json!({"routingData": {"skills": ["vip"], "weight": 3}}),
            &protected(),
        )
        .unwrap();
        assert_eq!(
            m.body["routingData"],
            json!({"skills": ["vip"]}),
            "{before:?}"
        );
        assert_eq!(m.ignored, ["routingData.weight"]);
    }
    // The template's "" and an empty object change nothing.
    for nothing in [json!(""), json!({}), json!({"skills": null})] {
        let m = merged(json!({ "routingData": nothing }));
        assert_eq!(m.body, request());
        assert!(m.changed.is_empty());
    }
}

#[test]
fn a_request_value_of_the_wrong_kind_is_left_for_validation() {
    let mut req = request();
    req.insert("data".into(), json!("oops"));
    req.insert("routingData".into(), json!(7));
    let m = merge(
        &req,
        &json!({"data": {"tier": "gold"}, "routingData": {"priority": 1}}),
        &protected(),
    )
    .unwrap();
    assert_eq!(m.body["data"], "oops");
    assert_eq!(m.body["routingData"], 7);
    assert!(m.changed.is_empty());
}

#[test]
fn answers_that_cannot_be_merged_are_invalid() {
    for (answer, message) in [
        (json!([1]), "the answer is a JSON array, not an object"),
        (json!("ok"), "the answer is a JSON string, not an object"),
        (json!(null), "the answer is a JSON null, not an object"),
        (
            json!({"data": ["x"]}),
            "the answer's data is a JSON array, not an object",
        ),
        (
            json!({"routingData": 3}),
            "the answer's routingData is a JSON number, not an object",
        ),
    ] {
        let err = merge(&request(), &answer, &protected()).unwrap_err();
        assert_eq!(err.to_string(), message, "{answer}");
    }
}

#[test]
fn values_of_the_wrong_type_pass_through_for_validation_to_name() {
    let m = merged(json!({"callbackNumbers": "not a list", "validateCallbackNumbers": "yes"}));
    assert_eq!(m.body["callbackNumbers"], "not a list");
    assert_eq!(m.body["validateCallbackNumbers"], "yes");
}

#[test]
fn touched_says_whether_a_422_s_field_came_from_the_answer() {
    let m = merged(json!({"callbackNumbers": ["x"], "data": {"tier": "gold"},
        "routingData": {"priority": 5000}}));
    assert!(m.touched("callbackNumbers[0]"));
    assert!(m.touched("callbackNumbers"));
    assert!(m.touched("data.tier"));
    assert!(m.touched("data"), "a limit on data as a whole");
    assert!(m.touched("routingData.priority"));
    assert!(!m.touched("data.orderId"));
    assert!(!m.touched("queueId"));
    assert!(!m.touched("callbackNumbersX"));
    assert!(!m.touched("routingData.skills"));
}
