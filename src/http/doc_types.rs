//! Types that exist only to describe JSON in the OpenAPI document: what
//! the handlers build inline (`{"call": id}`) or bodies another module
//! deserializes itself (`POST /v1/callbacks`, checked by
//! `callback::request`). The handlers name them in their `#[utoipa::path]`
//! attributes and `openapi.rs` lists them; this file imports neither.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::callback::{self as cb};

/// `POST /v1/callbacks`'s body (checked by `callback::request`).
#[derive(ToSchema)]
#[schema(rename_all = "camelCase")]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub struct CreateCallbackDoc {
    /// The routing queue (must be configured).
    #[schema(example = "sales")]
    queue_id: String,
    /// Numbers to call, tried in order across attempts (any form; stored as E.164).
    #[schema(example = json!(["+1 555 0100"]))]
    callback_numbers: Vec<String>,
    callback_user_name: Option<String>,
    /// ISO 8601; without an offset it is read in `timeZone`. Absent: as soon as possible.
    #[schema(example = "2030-01-02T15:30:00")]
    callback_scheduled_time: Option<String>,
    /// The contact's IANA time zone.
    #[schema(example = "Europe/Paris")]
    time_zone: Option<String>,
    /// Country for numbers without a `+` (ISO 3166 code or calling code).
    country_code: Option<String>,
    /// Refuse numbers that are not valid for their country.
    validate_callback_numbers: Option<bool>,
    routing_data: Option<cb::RoutingData>,
    /// Case data shown to the agent.
    data: Option<BTreeMap<String, String>>,
    caller_id: Option<String>,
    caller_id_name: Option<String>,
    script_id: Option<String>,
    /// Not stored: passed to the queue's enrichment webhook.
    schedule_group_id: Option<String>,
    /// Not stored: passed to the queue's enrichment webhook.
    widget_id: Option<String>,
}

/// `{"call": id}`: the call a command was taken for.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CallRef {
    call: String,
}

/// `GET /v1/calls`: live call summaries.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct CallList {
    calls: Vec<serde_json::Value>,
}

/// `GET /v1/health`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Health {
    #[schema(example = "ok")]
    status: String,
}
