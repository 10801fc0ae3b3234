//! The request's `data`: case data shown to the agent and passed on with
//! the call, kept as text.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::FieldError;

const MAX_KEYS: usize = 100;
const MAX_KEY_CHARS: usize = 64;
const MAX_VALUE_CHARS: usize = 1024;

/// Strings are kept as sent; numbers and booleans become their JSON text
/// (`42`, `4.5`, `true`), which is what an integrator would have written had
/// they quoted them. Anything nested, or `null`, has no single text and is
/// refused, naming `data.KEY`.
pub(super) fn case_data(
    data: Option<Map<String, Value>>,
) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(data) = data else {
        return Ok(BTreeMap::new());
    };
    if data.len() > MAX_KEYS {
        return Err(FieldError::new(
            "data",
            format!("has more than {MAX_KEYS} keys"),
        ));
    }
    let mut out = BTreeMap::new();
    for (key, value) in data {
        let field = format!("data.{key}");
        let key_chars = key.chars().count();
        if key_chars == 0 {
            return Err(FieldError::new("data", "has an empty key"));
        }
        if key_chars > MAX_KEY_CHARS {
            return Err(FieldError::new(
                field,
                format!("the key is longer than {MAX_KEY_CHARS} characters"),
            ));
        }
        if key.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "the key contains a control character",
            ));
        }
        let text = match value {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null | Value::Array(_) | Value::Object(_) => {
                return Err(FieldError::new(
                    field,
                    "must be a string, a number or a boolean",
                ))
            }
        };
        if text.chars().count() > MAX_VALUE_CHARS {
            return Err(FieldError::new(
                field,
                format!("is longer than {MAX_VALUE_CHARS} characters"),
            ));
        }
        out.insert(key, text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: Value) -> Result<BTreeMap<String, String>, FieldError> {
        match v {
            Value::Object(map) => case_data(Some(map)),
            _ => panic!("test data must be an object"),
        }
    }

    #[test]
    fn scalars_become_text() {
        let d = data(json!({
            "orderId": "A-17",
            "amount": 42,
            "ratio": 4.5,
            "negative": -3,
            "vip": true,
            "churn": false,
            "note": "line one\nline two"
        }))
        .unwrap();
        assert_eq!(d["orderId"], "A-17");
        assert_eq!(d["amount"], "42");
        assert_eq!(d["ratio"], "4.5");
        assert_eq!(d["negative"], "-3");
        assert_eq!(d["vip"], "true");
        assert_eq!(d["churn"], "false");
        assert_eq!(d["note"], "line one\nline two");
        assert_eq!(case_data(None), Ok(BTreeMap::new()));
    }

    #[test]
    fn nested_and_null_values_name_the_key() {
        for v in [
            json!({"x": {"a": 1}}),
            json!({"x": [1]}),
            json!({"x": null}),
        ] {
            assert_eq!(data(v).unwrap_err().field, "data.x");
        }
    }

    #[test]
    fn size_bounds() {
        let ok_key = "k".repeat(MAX_KEY_CHARS);
        let ok_value = "v".repeat(MAX_VALUE_CHARS);
        assert!(data(json!({ ok_key.clone(): ok_value.clone() })).is_ok());

        let long_key = "k".repeat(MAX_KEY_CHARS + 1);
        assert_eq!(
            data(json!({ long_key.clone(): "v" })).unwrap_err().field,
            format!("data.{long_key}")
        );
        assert_eq!(data(json!({"": ""})).unwrap_err().field, "data");
        assert_eq!(data(json!({"a\nb": "v"})).unwrap_err().field, "data.a\nb");
        let long_value = format!("{ok_value}v");
        assert_eq!(
            data(json!({"orderId": long_value})).unwrap_err().field,
            "data.orderId"
        );

        let full: Map<String, Value> = (0..MAX_KEYS).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(case_data(Some(full.clone())).unwrap().len(), MAX_KEYS);
        let mut over = full;
        over.insert("one-more".into(), json!(1));
        assert_eq!(case_data(Some(over)).unwrap_err().field, "data");
    }
}
