//! `GET /v1/callbacks`'s query string into a [`ListFilter`].
//!
//! The pairs are read by hand rather than through a serde struct so that
//! every refusal names its parameter: an unknown one (a misspelt filter
//! must not silently list everything), a repeated one, or a bad value.

use jiff::Timestamp;
use utoipa::IntoParams;

use super::errors::ApiError;
use crate::callback::{ListFilter, State};

/// Page size when the client names none.
pub const DEFAULT_LIMIT: usize = 50;
/// Largest page (the store's own cap).
pub const MAX_LIMIT: usize = 500;

/// The query parameters, as the OpenAPI document lists them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub struct ListParams {
    /// Comma-separated states (`queued,offered`); absent: every state.
    #[param(example = "queued,offered")]
    state: Option<String>,
    /// The routing queue, or the interaction queue it sits in now.
    queue: Option<String>,
    /// The agent that owns it.
    agent: Option<String>,
    /// RFC 3339; inclusive lower bound of `by`'s time.
    #[param(example = "2030-01-01T00:00:00Z")]
    from: Option<String>,
    /// RFC 3339; exclusive upper bound.
    to: Option<String>,
    /// `created` (default) or `due`: which time `from` and `to` bound.
    by: Option<String>,
    /// Page size, 1 to 500 (default 50).
    limit: Option<usize>,
    /// The previous page's `next`.
    cursor: Option<String>,
}

pub fn parse(pairs: Vec<(String, String)>) -> Result<ListFilter, ApiError> {
    let mut filter = ListFilter {
        limit: DEFAULT_LIMIT,
        ..ListFilter::default()
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in pairs {
        if seen.contains(&name) {
            return Err(ApiError::invalid(
                &name,
                format!("{name} is given more than once"),
            ));
        }
        match name.as_str() {
            "state" => filter.states = states(&value)?,
            "queue" => filter.queue = Some(non_empty("queue", value)?),
            "agent" => filter.agent = Some(non_empty("agent", value)?),
            "from" => filter.from = Some(time("from", &value)?),
            "to" => filter.to = Some(time("to", &value)?),
            "by" => {
                filter.by_due = match value.as_str() {
                    "created" => false,
                    "due" => true,
                    _ => return Err(ApiError::invalid("by", "by must be created or due")),
                }
            }
            "limit" => filter.limit = limit(&value)?,
            "cursor" => filter.cursor = Some(non_empty("cursor", value)?),
            _ => {
                return Err(ApiError::invalid(
                    &name,
                    format!(
                        "unknown query parameter {name}; known: state, queue, agent, from, to, by, limit, cursor"
                    ),
                ))
            }
        }
        seen.push(name);
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if to < from {
            return Err(ApiError::invalid("to", "to must not be before from"));
        }
    }
    Ok(filter)
}

fn states(value: &str) -> Result<Vec<State>, ApiError> {
    let mut out = Vec::new();
    for name in value.split(',') {
        let state = State::parse(name.trim()).ok_or_else(|| {
            ApiError::invalid(
                "state",
                format!("{name:?} is not a state (scheduled, queued, offered, ready-to-call, ...)"),
            )
        })?;
        if !out.contains(&state) {
            out.push(state);
        }
    }
    Ok(out)
}

fn non_empty(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(name, format!("{name} must not be empty")));
    }
    Ok(value)
}

fn time(name: &str, value: &str) -> Result<Timestamp, ApiError> {
    value.parse().map_err(|_| {
        ApiError::invalid(
            name,
            format!("{name} must be an RFC 3339 time with an offset (2030-01-01T00:00:00Z)"),
        )
    })
}

fn limit(value: &str) -> Result<usize, ApiError> {
    match value.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid(
            "limit",
            format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ListFilter, ApiError> {
        parse(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn blamed(pairs: &[(&str, &str)]) -> String {
        let e = q(pairs).unwrap_err();
        assert_eq!(e.status.as_u16(), 422, "{e:?}");
        e.field.unwrap()
    }

    #[test]
    fn every_parameter_reaches_the_filter() {
        let f = q(&[
            ("state", "queued,ready-to-call,queued"),
            ("queue", "sales"),
            ("agent", "1001"),
            ("from", "2030-01-01T00:00:00Z"),
            ("to", "2030-01-02T00:00:00+01:00"),
            ("by", "due"),
            ("limit", "500"),
            ("cursor", "abc"),
        ])
        .unwrap();
        assert_eq!(f.states, vec![State::Queued, State::ReadyToCall]);
        assert_eq!(f.queue.as_deref(), Some("sales"));
        assert_eq!(f.agent.as_deref(), Some("1001"));
        assert_eq!(f.from.unwrap().to_string(), "2030-01-01T00:00:00Z");
        assert_eq!(f.to.unwrap().to_string(), "2030-01-01T23:00:00Z");
        assert!(f.by_due);
        assert_eq!(f.limit, 500);
        assert_eq!(f.cursor.as_deref(), Some("abc"));

        let f = q(&[]).unwrap();
        assert_eq!(
            (f.limit, f.by_due, f.states.len()),
            (DEFAULT_LIMIT, false, 0)
        );
        assert!(!q(&[("by", "created")]).unwrap().by_due);
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(blamed(&[("state", "queued,asleep")]), "state");
        assert_eq!(blamed(&[("state", "")]), "state");
        assert_eq!(blamed(&[("from", "2030-01-01")]), "from");
        assert_eq!(blamed(&[("to", "yesterday")]), "to");
        assert_eq!(
            blamed(&[
                ("from", "2030-01-02T00:00:00Z"),
                ("to", "2030-01-01T00:00:00Z")
            ]),
            "to"
        );
        assert_eq!(blamed(&[("by", "updated")]), "by");
        for bad in ["0", "501", "-1", "ten", ""] {
            assert_eq!(blamed(&[("limit", bad)]), "limit", "{bad}");
        }
        assert_eq!(blamed(&[("queue", "")]), "queue");
        assert_eq!(blamed(&[("sate", "queued")]), "sate");
        assert_eq!(blamed(&[("agent", "a"), ("agent", "b")]), "agent");
    }
}
