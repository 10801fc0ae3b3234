//! `GET /v1/openapi.json`: the API's OpenAPI 3.1 document, generated from
//! the handlers' `#[utoipa::path]` attributes and the types' `ToSchema`, so
//! it cannot drift from the code. A test checks that it lists every route
//! the router serves ([`super::ROUTES`]).
//!
//! The types that only describe JSON (bodies built inline, bodies another
//! module deserializes itself) are in `doc_types.rs`, which this file and
//! the handlers both import: the handlers never import this file.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    agents, callback_bodies, callbacks, calls, consult, desktop, errors, events, notifications,
    peers, recordings,
};
use crate::callback::{self as cb};

/// The two ways to present an API key; every operation takes either.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchback",
        description = "The control API of a SIP web-callback softswitch: live calls, callbacks, agents, the desktop's event stream and workforce-management notifications. Errors are `{code, message, field}`."
    ),
    paths(
        calls::health, calls::list, calls::originate, calls::show, calls::delete_call,
        calls::hangup, calls::hold, calls::retrieve, calls::mute, calls::unmute,
        calls::dtmf, calls::recording, calls::transfer,
        consult::consult, consult::alternate, consult::cancel_consult, consult::complete_transfer,
        consult::conference, consult::remove, consult::leave, consult::volume,
        consult::listen, consult::whisper, consult::barge, events::stream, recordings::download,
        callbacks::create, callbacks::list, callbacks::show, callbacks::status,
        callbacks::cancel, callbacks::reschedule,
        agents::interaction_action, agents::login, agents::ready, agents::not_ready,
        agents::logout, agents::view, agents::schedule, agents::agent_dialable,
        agents::team_dialable,
        desktop::stream, document,
        notifications::dead, notifications::replay, notifications::replay_all,
        notifications::stats, peers::list, peers::show,
    ),
    components(schemas(
        errors::Body, cb::Callback, cb::CallbackWithHistory, cb::Page, cb::ContactStatus,
        cb::AgentView, cb::DesktopEvent, callback_bodies::ActionBody,
        notifications::DeadList, notifications::DeadItem, notifications::Replayed,
        notifications::NotificationStats, notifications::EndpointFigures,
        crate::integrations::notify::Notice, crate::integrations::notify::NoticeKind,
        crate::integrations::notify::AgentChangeNotice, crate::integrations::notify::EndCallNotice,
        peers::PeerList, crate::call::PeerStatus, crate::call::peers::PeerLimits,
        crate::call::peers::Refusals, crate::call::peers::PingResult, crate::call::peers::CallFailure,
    )),
    modifiers(&Security),
    security(("apiKey" = []), ("bearer" = [])),
    tags(
        (name = "calls", description = "Live calls through the B2BUA, and the trunk peers they use"),
        (name = "callbacks", description = "Web callbacks: the contact's and supervisor's side"),
        (name = "desktop", description = "The agent desktop: agent state, interaction actions, events"),
        (name = "notifications", description = "Workforce-management notifications: dead events and their replay"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

static DOCUMENT: LazyLock<String> = LazyLock::new(|| match ApiDoc::openapi().to_json() {
    Ok(json) => json,
    Err(e) => {
        tracing::error!(error = %e, "the OpenAPI document did not serialize");
        String::from("{}")
    }
});

#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = serde_json::Value))
)]
pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::testkit::{accepting, request};
    use super::super::ROUTES;

    fn operations(doc: &Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete", "patch"] {
                if item.get(method).is_some() {
                    out.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        out
    }

    /// A property of `schema`: its own, or one of the schemas it is made
    /// of (`allOf` parts, `$ref`s into the components).
    fn property<'a>(doc: &'a Value, schema: &'a Value, name: &str) -> Option<&'a Value> {
        if let Some(found) = schema["properties"].get(name) {
            return Some(found);
        }
        if let Some(to) = schema["$ref"].as_str() {
            let target = to.strip_prefix("#/components/schemas/")?;
            return property(doc, &doc["components"]["schemas"][target], name);
        }
        schema["allOf"]
            .as_array()?
            .iter()
            .find_map(|part| property(doc, part, name))
    }

    #[tokio::test]
    async fn the_document_lists_every_route_and_only_those() {
        let h = accepting();
        let r = request(&h.app, "GET", "/v1/openapi.json", None).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "application/json");
        let doc = r.json;
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            doc["openapi"]
        );

        let documented = operations(&doc);
        for (method, path) in ROUTES {
            assert!(
                documented.contains(&(method.to_string(), path.to_string())),
                "{method} {path} is served but not documented"
            );
        }
        for (method, path) in &documented {
            assert!(
                ROUTES.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not in ROUTES"
            );
        }
    }

    #[tokio::test]
    async fn every_operation_needs_a_key_but_health_and_says_how() {
        let h = accepting();
        let doc = request(&h.app, "GET", "/v1/openapi.json", None).await.json;
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes["apiKey"]["type"], "apiKey");
        assert_eq!(schemes["apiKey"]["in"], "header");
        assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
        assert_eq!(schemes["bearer"]["scheme"], "bearer");
        assert_eq!(doc["security"][0]["apiKey"], serde_json::json!([]));
        // Health opts out with an empty requirement.
        assert_eq!(
            doc["paths"]["/v1/health"]["get"]["security"],
            serde_json::json!([{}])
        );
        // Schemas the routes refer to are all there, times as date-time strings.
        // A callback is its request's fields and its own (`allOf`).
        let callback = &doc["components"]["schemas"]["Callback"];
        let created = property(&doc, callback, "createdAt").expect("createdAt");
        assert_eq!(created["type"], "string");
        assert_eq!(created["format"], "date-time");
        let scheduled = property(&doc, callback, "callbackScheduledTime").expect("request time");
        assert!(scheduled.to_string().contains("date-time"), "{scheduled}");
        let numbers = property(&doc, callback, "callbackNumbers").expect("callbackNumbers");
        assert_eq!(numbers["type"], "array");
        let text = doc.to_string();
        for (at, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
            let name: String = text[at + 29..].chars().take_while(|c| *c != '"').collect();
            assert!(
                doc["components"]["schemas"].get(&name).is_some(),
                "missing schema {name}"
            );
        }
    }
}
