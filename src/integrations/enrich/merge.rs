//! The enrichment payload and merge rules, on the create request's JSON
//! body (sans-IO: values in, values out).
//!
//! The answer may add or change only [`ANSWER_FIELDS`]; a field it leaves
//! out or sends as `null` stays as it was, and any other field is ignored
//! (and reported). `data` is merged key by key (`null` removes a key), and a
//! protected key is never added, changed or removed. `routingData` is merged
//! by its own sub-fields: each one returned replaces the old one (Genesys's
//! `skillIds` and `preferredAgentIds` are the same sub-fields as `skills`
//! and `preferredAgents`, so one replaces the other). Values are not checked
//! here: the merged body goes through the same validation as any create.

use serde_json::{Map, Value};

/// The fields an answer may add or change (docs/enrichment.md, The answer).
pub const ANSWER_FIELDS: [&str; 11] = [
    "scriptId",
    "queueId",
    "routingData",
    "callbackUserName",
    "callbackNumbers",
    "callbackScheduledTime",
    "countryCode",
    "validateCallbackNumbers",
    "data",
    "callerId",
    "callerIdName",
];

/// `routingData`'s sub-fields, each with the other name of the same one.
const ROUTING_FIELDS: [(&str, Option<&str>); 6] = [
    ("skills", Some("skillIds")),
    ("skillIds", Some("skills")),
    ("preferredAgents", Some("preferredAgentIds")),
    ("preferredAgentIds", Some("preferredAgents")),
    ("priority", None),
    ("options", None),
];

/// The request's fields the endpoint is sent (docs/enrichment.md, The request).
const PAYLOAD_FIELDS: [&str; 4] = ["scriptId", "queueId", "scheduleGroupId", "widgetId"];

/// An answer the rules cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAnswer {
    #[error("the answer is a JSON {0}, not an object")]
    NotObject(&'static str),
    #[error("the answer's {field} is a JSON {kind}, not an object")]
    FieldNotObject {
        field: &'static str,
        kind: &'static str,
    },
}

/// The request after the answer, and what the answer did.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Merged {
    pub body: Map<String, Value>,
    /// Paths changed, in the answer's order: `queueId`, `data.tier`,
    /// `routingData.skills`.
    pub changed: Vec<String>,
    /// Answer fields that are not allowed, ignored: `timeZone`, `routingData.foo`.
    pub ignored: Vec<String>,
    /// Protected `data` keys the answer tried to add, change or remove: `data.visitorId`.
    pub protected: Vec<String>,
}

impl Merged {
    /// Whether the value at `field` (a 422's path: `callbackNumbers[1]`,
    /// `data.tier`, `routingData`) came from the answer, or was reshaped by it.
    pub fn touched(&self, field: &str) -> bool {
        self.changed
            .iter()
            .any(|c| within(field, c) || within(c, field))
    }
}

/// `path` is `outer` or inside it (`outer.x`, `outer[1]`).
fn within(path: &str, outer: &str) -> bool {
    path.strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

/// `{phoneNumber, scriptId, queueId, scheduleGroupId, widgetId,
/// countryCode}` from the request as sent: `phoneNumber` is the first of
/// `callbackNumbers`; a missing value is `null`.
pub fn payload(request: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    let first_number = request
        .get("callbackNumbers")
        .and_then(Value::as_array)
        .and_then(|numbers| numbers.first())
        .cloned()
        .unwrap_or(Value::Null);
    out.insert("phoneNumber".into(), first_number);
    for field in PAYLOAD_FIELDS {
        out.insert(
            field.into(),
            request.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    out.insert(
        "countryCode".into(),
        request.get("countryCode").cloned().unwrap_or(Value::Null),
    );
    Value::Object(out)
}

/// Applies `answer` to `request` under the rules above. `protected` holds
/// `data` keys without the `data.` prefix.
pub fn merge(
    request: &Map<String, Value>,
    answer: &Value,
    protected: &[String],
) -> Result<Merged, InvalidAnswer> {
    let Value::Object(answer) = answer else {
        return Err(InvalidAnswer::NotObject(kind(answer)));
    };
    let mut m = Merged {
        body: request.clone(),
        ..Merged::default()
    };
    for (field, value) in answer {
        let Some(&field) = ANSWER_FIELDS.iter().find(|f| **f == field.as_str()) else {
            m.ignored.push(field.clone());
            continue;
        };
        match field {
            "data" => merge_data(&mut m, value, protected)?,
            "routingData" => merge_routing(&mut m, value)?,
            _ if value.is_null() => {}
            _ => {
                if m.body.get(field) != Some(value) {
                    m.body.insert(field.into(), value.clone());
                    m.changed.push(field.into());
                }
            }
        }
    }
    Ok(m)
}

/// An object to merge from: `null` and `""` (the value integrators' templates
/// send for a field left unset) mean nothing to merge.
fn object_of<'a>(
    field: &'static str,
    value: &'a Value,
) -> Result<Option<&'a Map<String, Value>>, InvalidAnswer> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::Object(o) => Ok(Some(o)),
        other => Err(InvalidAnswer::FieldNotObject {
            field,
            kind: kind(other),
        }),
    }
}

/// The request's own object to merge into: created when absent or `null`
/// (or `""` when `blank_is_empty`, as `routingData` allows); `None` when
/// the request's value is something else, which is left for validation to
/// refuse in the request's own name.
fn target<'a>(
    body: &'a mut Map<String, Value>,
    field: &str,
    blank_is_empty: bool,
) -> Option<&'a mut Map<String, Value>> {
    let slot = body.entry(field).or_insert(Value::Null);
    let empty = match slot {
        Value::Null => true,
        Value::String(s) => blank_is_empty && s.trim().is_empty(),
        _ => false,
    };
    if empty {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut()
}

fn merge_data(m: &mut Merged, value: &Value, protected: &[String]) -> Result<(), InvalidAnswer> {
    let Some(answer) = object_of("data", value)? else {
        return Ok(());
    };
    if answer.is_empty() {
        return Ok(());
    }
    let had_data = m.body.contains_key("data");
    let Some(data) = target(&mut m.body, "data", false) else {
        return Ok(());
    };
    for (key, value) in answer {
        let path = format!("data.{key}");
        let current = data.get(key);
        let unchanged = match value {
            Value::Null => current.is_none(),
            v => current == Some(v),
        };
        if unchanged {
            continue;
        }
        if protected.iter().any(|p| p == key) {
            m.protected.push(path);
            continue;
        }
        if value.is_null() {
            data.remove(key);
        } else {
            data.insert(key.clone(), value.clone());
        }
        m.changed.push(path);
    }
    // Nothing was added after all: leave an absent `data` absent.
    if !had_data && data.is_empty() {
        m.body.remove("data");
    }
    Ok(())
}

fn merge_routing(m: &mut Merged, value: &Value) -> Result<(), InvalidAnswer> {
    let Some(answer) = object_of("routingData", value)? else {
        return Ok(());
    };
    let known: Vec<_> = answer
        .iter()
        .filter(|(key, value)| {
            let allowed = ROUTING_FIELDS.iter().any(|(name, _)| name == key);
            if !allowed {
                m.ignored.push(format!("routingData.{key}"));
            }
            allowed && !value.is_null()
        })
        .collect();
    if known.is_empty() {
        return Ok(());
    }
    let had_routing = m.body.contains_key("routingData");
    let Some(routing) = target(&mut m.body, "routingData", true) else {
        return Ok(());
    };
    for (key, value) in known {
        let alias = ROUTING_FIELDS
            .iter()
            .find(|(name, _)| name == key)
            .and_then(|(_, alias)| *alias);
        let replaced_alias = alias.and_then(|a| routing.remove(a)).is_some();
        if replaced_alias || routing.get(key) != Some(value) {
            routing.insert(key.clone(), value.clone());
            m.changed.push(format!("routingData.{key}"));
        }
    }
    if !had_routing && routing.is_empty() {
        m.body.remove("routingData");
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
