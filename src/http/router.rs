//! The route table: every path the API serves, which handler answers it,
//! and what guards it (API keys on all but health, a body size limit, JSON
//! answers for unknown routes and methods).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;

use super::errors::ApiError;
use super::{
    agents, auth, callbacks, calls, consult, desktop, events, notifications, openapi, peers,
    recordings, Api,
};

/// Largest request body: an originate with generous case data fits many times.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Every (method, path) the table serves, in axum's path syntax. The
/// OpenAPI test checks the document against it, and a router test checks
/// that each entry reaches a handler, so the three cannot drift apart.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/health"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/calls"),
    ("POST", "/v1/calls"),
    ("GET", "/v1/calls/{id}"),
    ("DELETE", "/v1/calls/{id}"),
    ("POST", "/v1/calls/{id}/hangup"),
    ("POST", "/v1/calls/{id}/hold"),
    ("POST", "/v1/calls/{id}/retrieve"),
    ("POST", "/v1/calls/{id}/mute"),
    ("POST", "/v1/calls/{id}/unmute"),
    ("POST", "/v1/calls/{id}/dtmf"),
    ("POST", "/v1/calls/{id}/recording"),
    ("POST", "/v1/calls/{id}/transfer"),
    ("POST", "/v1/calls/{id}/consult"),
    ("POST", "/v1/calls/{id}/alternate"),
    ("POST", "/v1/calls/{id}/cancel-consult"),
    ("POST", "/v1/calls/{id}/complete-transfer"),
    ("POST", "/v1/calls/{id}/conference"),
    ("POST", "/v1/calls/{id}/remove"),
    ("POST", "/v1/calls/{id}/leave"),
    ("POST", "/v1/calls/{id}/volume"),
    ("POST", "/v1/calls/{id}/listen"),
    ("POST", "/v1/calls/{id}/whisper"),
    ("POST", "/v1/calls/{id}/barge"),
    ("GET", "/v1/events"),
    ("GET", "/v1/callbacks"),
    ("POST", "/v1/callbacks"),
    ("GET", "/v1/callbacks/{id}"),
    ("GET", "/v1/callbacks/{id}/status"),
    ("POST", "/v1/callbacks/{id}/cancel"),
    ("POST", "/v1/callbacks/{id}/reschedule"),
    ("GET", "/v1/agents/{agent}"),
    ("POST", "/v1/agents/{agent}/login"),
    ("POST", "/v1/agents/{agent}/ready"),
    ("POST", "/v1/agents/{agent}/not-ready"),
    ("POST", "/v1/agents/{agent}/logout"),
    ("POST", "/v1/agents/{agent}/schedule"),
    ("GET", "/v1/agents/{agent}/dialable"),
    ("POST", "/v1/agents/{agent}/callbacks/{id}/{action}"),
    ("GET", "/v1/teams/{team}/dialable"),
    ("GET", "/v1/desktop/events"),
    ("GET", "/v1/recordings/{name}"),
    ("GET", "/v1/notifications/dead"),
    ("POST", "/v1/notifications/dead/replay"),
    ("POST", "/v1/notifications/dead/{endpoint}/{eventId}/replay"),
    ("GET", "/v1/notifications/stats"),
    ("GET", "/v1/peers"),
    ("GET", "/v1/peers/{name}"),
];

/// The router over `api`: every route of [`ROUTES`], guarded.
pub fn build(api: Arc<Api>) -> Router {
    let open = Router::new()
        .route("/v1/health", get(calls::health))
        .method_not_allowed_fallback(no_method);
    let protected = Router::new()
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/calls", get(calls::list).post(calls::originate))
        .route(
            "/v1/calls/{id}",
            get(calls::show).delete(calls::delete_call),
        )
        .route("/v1/calls/{id}/hangup", post(calls::hangup))
        .route("/v1/calls/{id}/hold", post(calls::hold))
        .route("/v1/calls/{id}/retrieve", post(calls::retrieve))
        .route("/v1/calls/{id}/mute", post(calls::mute))
        .route("/v1/calls/{id}/unmute", post(calls::unmute))
        .route("/v1/calls/{id}/dtmf", post(calls::dtmf))
        .route("/v1/calls/{id}/recording", post(calls::recording))
        .route("/v1/calls/{id}/transfer", post(calls::transfer))
        .route("/v1/calls/{id}/consult", post(consult::consult))
        .route("/v1/calls/{id}/alternate", post(consult::alternate))
        .route(
            "/v1/calls/{id}/cancel-consult",
            post(consult::cancel_consult),
        )
        .route(
            "/v1/calls/{id}/complete-transfer",
            post(consult::complete_transfer),
        )
        .route("/v1/calls/{id}/conference", post(consult::conference))
        .route("/v1/calls/{id}/remove", post(consult::remove))
        .route("/v1/calls/{id}/leave", post(consult::leave))
        .route("/v1/calls/{id}/volume", post(consult::volume))
        .route("/v1/calls/{id}/listen", post(consult::listen))
        .route("/v1/calls/{id}/whisper", post(consult::whisper))
        .route("/v1/calls/{id}/barge", post(consult::barge))
        .route("/v1/events", get(events::stream))
        .route(
            "/v1/callbacks",
            get(callbacks::list).post(callbacks::create),
        )
        .route("/v1/callbacks/{id}", get(callbacks::show))
        .route("/v1/callbacks/{id}/status", get(callbacks::status))
        .route("/v1/callbacks/{id}/cancel", post(callbacks::cancel))
        .route("/v1/callbacks/{id}/reschedule", post(callbacks::reschedule))
        .route("/v1/agents/{agent}", get(agents::view))
        .route("/v1/agents/{agent}/login", post(agents::login))
        .route("/v1/agents/{agent}/ready", post(agents::ready))
        .route("/v1/agents/{agent}/not-ready", post(agents::not_ready))
        .route("/v1/agents/{agent}/logout", post(agents::logout))
        .route("/v1/agents/{agent}/schedule", post(agents::schedule))
        .route("/v1/agents/{agent}/dialable", get(agents::agent_dialable))
        .route(
            "/v1/agents/{agent}/callbacks/{id}/{action}",
            post(agents::interaction_action),
        )
        .route("/v1/teams/{team}/dialable", get(agents::team_dialable))
        .route("/v1/desktop/events", get(desktop::stream))
        // `get` answers HEAD too (axum drops the body).
        .route("/v1/recordings/{name}", get(recordings::download))
        .route("/v1/notifications/dead", get(notifications::dead))
        .route(
            "/v1/notifications/dead/replay",
            post(notifications::replay_all),
        )
        .route(
            "/v1/notifications/dead/{endpoint}/{eventId}/replay",
            post(notifications::replay),
        )
        .route("/v1/notifications/stats", get(notifications::stats))
        .route("/v1/peers", get(peers::list))
        .route("/v1/peers/{name}", get(peers::show))
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        // After the fallbacks, so an anonymous client learns nothing about
        // which paths exist.
        .layer(middleware::from_fn_with_state(
            api.clone(),
            auth::require_key,
        ));
    open.merge(protected)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route {method} {}", uri.path()),
        None,
    )
    .with_code("unknown_route")
}

async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
        None,
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::super::testkit::accepting;

    #[tokio::test]
    async fn every_listed_route_reaches_a_handler() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let h = accepting();
        for (method, path) in super::ROUTES {
            let uri = path
                .replace("{id}", "x")
                .replace("{agent}", "x")
                .replace("{team}", "x")
                .replace("{action}", "accept")
                .replace("{name}", "x.wav")
                .replace("{endpoint}", "x")
                .replace("{eventId}", "x");
            let req = Request::builder()
                .method(*method)
                .uri(&uri)
                .header("x-api-key", super::super::testkit::TEST_KEY)
                .body(Body::empty())
                .unwrap();
            let response = h.app.clone().oneshot(req).await.unwrap();
            assert_ne!(response.status(), 405, "{method} {path}");
            // Event streams never end: only a JSON answer is read whole.
            if response.headers()["content-type"] == "application/json" {
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert_ne!(json["code"], "unknown_route", "{method} {path}");
            }
        }
    }
}
