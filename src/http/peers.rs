//! `GET /v1/peers` and `GET /v1/peers/{name}`: each trunk peer's state (up
//! or down by its OPTIONS pings, the last ping), its calls in progress in
//! and out, its limits, the refusals per limit and the last call that
//! failed on it. Read from the call layer's shared peer table through the
//! [`CallDirectory`](crate::call::CallDirectory); nothing here decides.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::errors::{ApiError, Body as ErrorBody};
use super::Api;
use crate::call::PeerStatus;

/// `GET /v1/peers`.
#[derive(Serialize, ToSchema)]
pub struct PeerList {
    peers: Vec<PeerStatus>,
}

/// Every trunk peer, in configuration order.
#[utoipa::path(get, path = "/v1/peers", tag = "calls",
    responses((status = 200, description = "Every trunk peer's state, calls in progress, limits and refusals", body = PeerList)))]
pub async fn list(State(api): State<Arc<Api>>) -> Response {
    Json(PeerList {
        peers: api.directory.peers(),
    })
    .into_response()
}

/// One trunk peer by name.
#[utoipa::path(get, path = "/v1/peers/{name}", tag = "calls",
    params(("name" = String, Path, description = "The peer's name as configured")),
    responses(
        (status = 200, description = "The peer's state, calls in progress, limits and refusals", body = PeerStatus),
        (status = 404, description = "No peer of that name", body = ErrorBody),
    ))]
pub async fn show(
    State(api): State<Arc<Api>>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("name")))?;
    let peer = api
        .directory
        .peers()
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no peer {name}"),
                Some("name"),
            )
            .with_code("no_peer")
        })?;
    Ok(Json(peer).into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testkit::{accepting, assert_error, request};

    #[tokio::test]
    async fn peers_are_listed_and_shown_by_name() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/peers", None).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let peers = r.json["peers"].as_array().unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(peers[0]["name"], "gw-a");
        assert_eq!(peers[1]["name"], "gw-b");

        let r = request(&h.app, "GET", "/v1/peers/gw-b", None).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let p = &r.json;
        assert_eq!(p["state"], "down");
        assert_eq!(p["profile"], "external");
        assert_eq!(p["address"], "127.0.0.1:5091");
        assert_eq!(p["ping_interval_secs"], 5);
        assert_eq!(
            p["last_ping"],
            json!({"ok": false, "result": "timeout", "status": null, "at_ms": 1_700_000_002_000u64})
        );
        assert_eq!(p["calls_in"], 1);
        assert_eq!(p["calls_out"], 2);
        assert_eq!(p["total_out"], 40);
        assert_eq!(
            p["limits"],
            json!({"max_calls_in": 10, "max_calls_out": 0, "max_cps_in": 5, "max_cps_out": 0})
        );
        assert_eq!(
            p["refused"],
            json!({"calls_in": 3, "calls_out": 0, "cps_in": 7, "cps_out": 0})
        );
        assert_eq!(
            p["last_failure"],
            json!({"status": 408, "at_ms": 1_700_000_001_000u64})
        );

        let r = request(&h.app, "GET", "/v1/peers/nope", None).await;
        assert_error(&r, 404, Some("name"));
        assert_eq!(r.json["code"], "no_peer");
    }
}
