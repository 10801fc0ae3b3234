//! The request's `routingData` to [`RoutingData`].
//!
//! Kept as raw JSON by serde so that the template value `""` (unset)
//! and Genesys Cloud's field names (`skillIds`, `preferredAgentIds`) can be
//! read here, and so that an unknown key is named in the 422 rather than
//! dropped.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::text::check_text;
use super::FieldError;
use crate::callback::model::RoutingData;

/// Bounds on what one request may ask of routing.
const MAX_LIST: usize = 64;
const MAX_NAME: usize = 128;
const MAX_OPTIONS: usize = 64;
const PRIORITY: std::ops::RangeInclusive<i64> = -1000..=1000;
/// Only the `webcallback.*` options may be overridden per
/// request, as a routing strategy would.
const OPTION_PREFIX: &str = "webcallback.";

const KNOWN_KEYS: &str = "skills, skillIds, preferredAgents, preferredAgentIds, priority, options";

/// Absent, `null` and `""` mean the default routing.
pub(super) fn routing_data(value: Option<Value>) -> Result<RoutingData, FieldError> {
    let object = match value {
        None | Some(Value::Null) => return Ok(RoutingData::default()),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(RoutingData::default()),
        Some(Value::Object(object)) => object,
        Some(_) => {
            return Err(FieldError::new(
                "routingData",
                "must be an object (or empty for the default routing)",
            ))
        }
    };
    // A list and its alias both given would leave one silently unused.
    for (name, alias) in [
        ("skills", "skillIds"),
        ("preferredAgents", "preferredAgentIds"),
    ] {
        if object.contains_key(name) && object.contains_key(alias) {
            return Err(FieldError::new(
                format!("routingData.{alias}"),
                format!("give {name} or {alias}, not both"),
            ));
        }
    }
    let mut routing = RoutingData::default();
    for (key, value) in &object {
        let field = format!("routingData.{key}");
        match key.as_str() {
            // Genesys Cloud names the same lists `skillIds` and `preferredAgentIds`.
            "skills" | "skillIds" => routing.skills = names(&field, value)?,
            "preferredAgents" | "preferredAgentIds" => {
                routing.preferred_agents = names(&field, value)?
            }
            "priority" => routing.priority = priority(&field, value)?,
            "options" => routing.options = options(&field, value)?,
            _ => {
                return Err(FieldError::new(
                    field,
                    format!("unknown field (expected one of {KNOWN_KEYS})"),
                ))
            }
        }
    }
    Ok(routing)
}

/// A list of skill or agent names: strings, without blanks; duplicates are
/// dropped keeping the first (order matters for preferred agents).
fn names(field: &str, value: &Value) -> Result<Vec<String>, FieldError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => return Err(FieldError::new(field, "must be an array of strings")),
    };
    if items.len() > MAX_LIST {
        return Err(FieldError::new(
            field,
            format!("has more than {MAX_LIST} entries"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        let Value::String(name) = item else {
            return Err(FieldError::new(item_field, "must be a string"));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(FieldError::new(item_field, "is empty"));
        }
        check_text(&item_field, name, MAX_NAME)?;
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

fn priority(field: &str, value: &Value) -> Result<i32, FieldError> {
    if value.is_null() {
        return Ok(0);
    }
    value
        .as_i64()
        .filter(|p| PRIORITY.contains(p))
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| FieldError::new(field, "must be an integer from -1000 to 1000"))
}

fn options(field: &str, value: &Value) -> Result<BTreeMap<String, Value>, FieldError> {
    let object: &Map<String, Value> = match value {
        Value::Null => return Ok(BTreeMap::new()),
        Value::Object(object) => object,
        _ => return Err(FieldError::new(field, "must be an object")),
    };
    if object.len() > MAX_OPTIONS {
        return Err(FieldError::new(
            field,
            format!("has more than {MAX_OPTIONS} options"),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, value) in object {
        let key_field = format!("{field}.{key}");
        let name_ok = key
            .strip_prefix(OPTION_PREFIX)
            .is_some_and(|rest| !rest.is_empty());
        if !name_ok {
            return Err(FieldError::new(
                key_field,
                format!("only {OPTION_PREFIX}* options may be set"),
            ));
        }
        check_text(&key_field, key, MAX_NAME)?;
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(value: Value) -> FieldError {
        routing_data(Some(value)).unwrap_err()
    }

    #[test]
    fn absent_null_and_empty_string_are_the_default() {
        for v in [None, Some(Value::Null), Some(json!("")), Some(json!(" "))] {
            assert_eq!(routing_data(v), Ok(RoutingData::default()));
        }
        assert_eq!(routing_data(Some(json!({}))), Ok(RoutingData::default()));
    }

    #[test]
    fn full_routing_data_maps_across() {
        let r = routing_data(Some(json!({
            "skills": ["french", " billing ", "french"],
            "preferredAgents": ["1002", "1001"],
            "priority": -20,
            "options": {"webcallback.auto-answer": true, "webcallback.park-queue": "park"}
        })))
        .unwrap();
        assert_eq!(r.skills, ["french", "billing"]);
        assert_eq!(r.preferred_agents, ["1002", "1001"]);
        assert_eq!(r.priority, -20);
        assert_eq!(r.options["webcallback.auto-answer"], json!(true));
        assert_eq!(r.options["webcallback.park-queue"], json!("park"));
    }

    #[test]
    fn genesys_aliases_are_read() {
        let r = routing_data(Some(json!({
            "skillIds": ["sk-1"],
            "preferredAgentIds": ["ag-1"],
            "priority": 5
        })))
        .unwrap();
        assert_eq!(r.skills, ["sk-1"]);
        assert_eq!(r.preferred_agents, ["ag-1"]);
        assert_eq!(r.priority, 5);
        let e = err(json!({"skills": ["a"], "skillIds": ["b"]}));
        assert_eq!(e.field, "routingData.skillIds");
        let e = err(json!({"preferredAgentIds": [], "preferredAgents": []}));
        assert_eq!(e.field, "routingData.preferredAgentIds");
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = err(json!({"skills": [], "languageId": "fr"}));
        assert_eq!(e.field, "routingData.languageId");
        assert!(e.message.contains("unknown"), "{e}");
    }

    #[test]
    fn wrong_shapes_name_the_path() {
        let cases = [
            (json!("fast"), "routingData"),
            (json!(5), "routingData"),
            (json!(["a"]), "routingData"),
            (json!({"skills": "french"}), "routingData.skills"),
            (json!({"skills": ["a", 3]}), "routingData.skills[1]"),
            (json!({"skills": ["a", ""]}), "routingData.skills[1]"),
            (json!({"skillIds": ["a\u{7}"]}), "routingData.skillIds[0]"),
            (
                json!({"preferredAgents": [null]}),
                "routingData.preferredAgents[0]",
            ),
            (json!({"priority": 1001}), "routingData.priority"),
            (json!({"priority": -1001}), "routingData.priority"),
            (json!({"priority": 1.5}), "routingData.priority"),
            (json!({"priority": "5"}), "routingData.priority"),
            (json!({"options": []}), "routingData.options"),
            (
                json!({"options": {"login.webcallback.is-auto-ready": true}}),
                "routingData.options.login.webcallback.is-auto-ready",
            ),
            (
                json!({"options": {"webcallback.": 1}}),
                "routingData.options.webcallback.",
            ),
        ];
        for (value, field) in cases {
            assert_eq!(err(value.clone()).field, field, "{value}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert_eq!(err(json!({ "skills": many })).field, "routingData.skills");
    }

    #[test]
    fn priority_bounds_are_inclusive_and_null_is_zero() {
        for p in [-1000, 0, 1000] {
            assert_eq!(
                routing_data(Some(json!({ "priority": p })))
                    .unwrap()
                    .priority,
                p
            );
        }
        let r = routing_data(Some(json!({"priority": null, "skills": null}))).unwrap();
        assert_eq!(r, RoutingData::default());
    }
}
