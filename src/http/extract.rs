//! Request extractors that fail in the API's error shape instead of axum's
//! plain-text rejections.
//!
//! [`JsonBody`] reads the body within the router's size limit, insists on a
//! JSON media type (a browser cannot send `application/json` cross-site
//! without a CORS preflight, so this also keeps simple forms from driving
//! calls), and turns serde's complaints into a message plus the top-level
//! field they are about. It does no validation of values; that is `call_bodies`
//! and `callback_bodies`.
//! [`OptionalJsonBody`] also takes an empty body (an action with no
//! parameters); [`JsonBytes`] only checks the syntax and leaves the bytes to
//! a validator that names fields its own way.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;

use super::errors::ApiError;

/// A JSON request body deserialized into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Like [`JsonBody`], but an empty body stands for `T::default()`: for
/// actions whose fields are all optional, so a client may send nothing.
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJsonBody<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = is_json(req.headers());
        let bytes = limited_bytes(req, state).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(T::default()));
        }
        if !json_type {
            return Err(not_json());
        }
        parse(&bytes).map(OptionalJsonBody)
    }
}

/// A body that is well-formed JSON, kept as bytes for a validator that
/// deserializes it itself (and names fields its own way).
#[derive(Debug)]
pub struct JsonBytes(pub Bytes);

impl<S> FromRequest<S> for JsonBytes
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_bytes(req, state).await?;
        // Syntax is the client's (400); shape and values are the validator's (422).
        parse::<serde::de::IgnoredAny>(&bytes)?;
        Ok(JsonBytes(bytes))
    }
}

/// The body, non-empty and declared JSON.
async fn json_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let json_type = is_json(req.headers());
    let bytes = limited_bytes(req, state).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the request needs a JSON object body",
            Some("body"),
        ));
    }
    if !json_type {
        return Err(not_json());
    }
    Ok(bytes)
}

/// The size limit is enforced here (DefaultBodyLimit): 413 for a body too large.
async fn limited_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state)
        .await
        .map_err(|r| ApiError::new(r.status(), r.body_text(), Some("body")))
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "the body must be sent as Content-Type: application/json",
        Some("content-type"),
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // Parameters (charset) do not matter; `+json` suffixes are JSON too.
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Malformed JSON is the client's syntax (400, field `body`); well-formed
/// JSON of the wrong shape is a field's fault (422, naming it).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = top_level_field(e.path(), e.inner());
        let inner = e.into_inner();
        if inner.is_data() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                inner.to_string(),
                Some(&field),
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, inner.to_string(), Some("body"))
        }
    })?;
    // Trailing garbage after the object is a syntax error too.
    de.end()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string(), Some("body")))?;
    Ok(value)
}

/// The field a client should look at: the first key of the error's path
/// (`headers.X-Case-Id` is the `headers` field's fault), the unknown key
/// serde names when there is no path, else the body as a whole.
fn top_level_field(path: &serde_path_to_error::Path, err: &serde_json::Error) -> String {
    if let Some(Segment::Map { key }) = path.iter().next() {
        return key.clone();
    }
    let msg = err.to_string();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            return rest[..end].to_owned();
        }
    }
    "body".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, expecting = "a JSON object")]
    #[allow(dead_code)]
    struct Probe {
        leg: Option<String>,
        headers: Option<std::collections::BTreeMap<String, String>>,
    }

    fn err(body: &str) -> (u16, Option<String>) {
        let e = parse::<Probe>(body.as_bytes()).unwrap_err();
        (e.status.as_u16(), e.field)
    }

    #[test]
    fn serde_errors_name_the_top_level_field() {
        let f = |s: &str| Some(s.to_owned());
        assert_eq!(err("{\"leg\": 5}"), (422, f("leg")));
        assert_eq!(err("{\"headers\": {\"X-A\": 1}}"), (422, f("headers")));
        assert_eq!(err("{\"lgg\": \"a\"}"), (422, f("lgg")));
        assert_eq!(err("[1]"), (422, f("body")));
        assert_eq!(err("{\"leg\": "), (400, f("body")));
        assert_eq!(err("{} x"), (400, f("body")));
        assert!(parse::<Probe>(b" {\"leg\": \"a\"} ").is_ok());
    }

    #[test]
    fn json_media_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for (v, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            assert_eq!(is_json(&h), ok, "{v}");
        }
    }
}
