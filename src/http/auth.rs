//! API-key authentication for every route but `GET /v1/health`.
//!
//! A client presents a key as `X-API-Key: KEY` or `Authorization: Bearer
//! KEY` (when both are sent, `X-API-Key` is the one judged, so a proxy's own
//! `Authorization` does not get in the way). Keys are compared as SHA-256
//! digests in constant time: neither a key's bytes nor its length shows in
//! how long a refusal takes, and every configured key is compared every
//! time. With no key configured every protected route refuses: an API
//! that drives calls is never open by accident.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::errors::ApiError;
use super::Api;

/// The header a key may be sent in (besides `Authorization: Bearer`).
pub const API_KEY_HEADER: &str = "x-api-key";

/// The configured keys, kept only as digests.
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

impl Keys {
    /// Empty keys are dropped: an empty `X-API-Key:` must never pass.
    pub fn new(keys: &[String]) -> Self {
        Keys {
            digests: keys
                .iter()
                .filter(|k| !k.is_empty())
                .map(|k| Sha256::digest(k.as_bytes()).into())
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys, in time independent of which.
    pub fn accepts(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut any = Choice::from(0);
        for key in &self.digests {
            any |= key[..].ct_eq(&digest[..]);
        }
        any.into()
    }
}

/// What the request carries as a credential.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    Nothing,
    Key(&'a str),
    /// A credential header that cannot hold a key (another scheme, not text).
    Unusable(&'static str),
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers.get(API_KEY_HEADER) {
        return match value.to_str() {
            Ok(key) if !key.trim().is_empty() => Presented::Key(key.trim()),
            _ => Presented::Unusable("X-API-Key must hold the key as visible text"),
        };
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Presented::Nothing;
    };
    let Ok(value) = value.to_str() else {
        return Presented::Unusable("Authorization must be visible text");
    };
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    // RFC 9110 §11.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Presented::Unusable("Authorization must use the Bearer scheme");
    }
    match token.trim() {
        "" => Presented::Unusable("Authorization: Bearer needs the key after the scheme"),
        key => Presented::Key(key),
    }
}

/// The 401 every refusal here answers, with the challenge RFC 6750 asks for.
fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message, None).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Middleware: lets the request through only with a configured key.
pub async fn require_key(State(api): State<Arc<Api>>, req: Request, next: Next) -> Response {
    if api.keys.is_empty() {
        return unauthorized("no API key is configured: only GET /v1/health answers");
    }
    match presented(req.headers()) {
        Presented::Nothing => {
            unauthorized("an API key is required (X-API-Key: KEY or Authorization: Bearer KEY)")
        }
        Presented::Unusable(why) => unauthorized(why),
        Presented::Key(key) if api.keys.accepts(key) => next.run(req).await,
        Presented::Key(_) => unauthorized("the API key is not valid"),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;

    use super::super::testkit::{accepting, assert_code, send_as_is, TEST_KEY};
    use super::*;

    #[test]
    fn keys_match_exactly_and_empty_keys_never_match() {
        let keys = Keys::new(&["alpha".into(), String::new(), "beta-key".into()]);
        assert!(keys.accepts("alpha"));
        assert!(keys.accepts("beta-key"));
        for wrong in ["", "alph", "alphaa", "Alpha", "beta"] {
            assert!(!keys.accepts(wrong), "{wrong}");
        }
        assert!(Keys::new(&[String::new()]).is_empty());
    }

    #[test]
    fn credentials_are_read_from_either_header() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let got = |m: &HeaderMap| format!("{:?}", presented(m));
        assert_eq!(got(&h(&[])), "Nothing");
        assert_eq!(got(&h(&[("x-api-key", "k1")])), r#"Key("k1")"#);
        assert_eq!(got(&h(&[("authorization", "Bearer k2")])), r#"Key("k2")"#);
        assert_eq!(
            got(&h(&[("authorization", "bearer   k2 ")])),
            r#"Key("k2")"#
        );
        // X-API-Key is the one judged when both are there.
        assert_eq!(
            got(&h(&[("x-api-key", "k1"), ("authorization", "Basic dTpw")])),
            r#"Key("k1")"#
        );
        assert!(got(&h(&[("authorization", "Basic dTpw")])).starts_with("Unusable"));
        assert!(got(&h(&[("authorization", "Bearer")])).starts_with("Unusable"));
        assert!(got(&h(&[("x-api-key", " ")])).starts_with("Unusable"));
    }

    async fn get(
        app: &axum::Router,
        path: &str,
        header: Option<(&str, &str)>,
    ) -> super::super::testkit::Reply {
        let mut req = Request::get(path);
        if let Some((name, value)) = header {
            req = req.header(name, value);
        }
        send_as_is(app, req.body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn every_route_but_health_needs_a_valid_key() {
        let h = accepting();
        let app = &h.app;
        let r = get(app, "/v1/calls", None).await;
        assert_code(&r, 401, "unauthorized", None);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert!(r.json["message"].as_str().unwrap().contains("X-API-Key"));

        let r = get(app, "/v1/calls", Some(("x-api-key", "wrong"))).await;
        assert_code(&r, 401, "unauthorized", None);
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        let r = get(app, "/v1/calls", Some(("authorization", "Bearer wrong"))).await;
        assert_code(&r, 401, "unauthorized", None);
        let r = get(app, "/v1/calls", Some(("authorization", "Basic dTpw"))).await;
        assert_code(&r, 401, "unauthorized", None);

        let r = get(app, "/v1/calls", Some(("x-api-key", TEST_KEY))).await;
        assert_eq!(r.status, 200, "{}", r.json);
        let bearer = format!("Bearer {TEST_KEY}");
        let r = get(app, "/v1/calls", Some(("authorization", &bearer))).await;
        assert_eq!(r.status, 200, "{}", r.json);

        // Unknown routes do not tell an anonymous client what exists.
        assert_code(
            &get(app, "/v1/nothing", None).await,
            401,
            "unauthorized",
            None,
        );

        let r = get(app, "/v1/health", None).await;
        assert_eq!(r.status, 200);
    }

    #[tokio::test]
    async fn with_no_key_configured_only_health_answers() {
        let h = accepting();
        let state = super::super::HttpState {
            api_keys: Arc::new(vec![]),
            ..h.state
        };
        let app = super::super::router(state);
        let r = get(&app, "/v1/calls", Some(("x-api-key", TEST_KEY))).await;
        assert_code(&r, 401, "unauthorized", None);
        let r = get(&app, "/v1/calls", Some(("x-api-key", ""))).await;
        assert_code(&r, 401, "unauthorized", None);
        assert_eq!(get(&app, "/v1/health", None).await.status, 200);
    }
}
