//! `GET /v1/recordings/{name}` (and `HEAD`): a call recording's WAV from
//! the recordings folder, for the link an end-call event carries. Range
//! requests (one byte range, `206` with `Content-Range`; `416` when it
//! cannot be met), `Last-Modified` and conditional requests are tower-http's
//! `ServeFile`; this module only checks the name and keeps refusals in the
//! API's one JSON error shape.
//!
//! A name is one file name, never a path: anything but `A-Z a-z 0-9 - _ .
//! ~` ending in `.wav` (so no separator), or holding `..`, is refused
//! before the file system is touched.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_http::services::ServeFile;

use super::call_bodies::is_unreserved;
use super::errors::{ApiError, Body as ErrorBody};
use super::Api;

/// Longest name accepted (a call id is at most 128 characters).
const MAX_NAME: usize = 200;

/// The bytes of a WAV file, as the OpenAPI document describes them.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only read by the OpenAPI derive.
pub struct Wav(Vec<u8>);

/// A recording's WAV, whole or one byte range. `HEAD` answers the same
/// headers without the body.
#[utoipa::path(get, path = "/v1/recordings/{name}", tag = "calls",
    params(
        ("name" = String, Path, description = "The recording's file name, as an end-call event's `recordingUrl` ends (`wcb-0123456789abcdef.wav`)"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023` or `bytes=-4096`"),
    ),
    responses(
        (status = 200, description = "The whole file", content_type = "audio/wav", body = Wav,
            headers(("Accept-Ranges" = String, description = "`bytes`"), ("Content-Length" = u64))),
        (status = 206, description = "The range asked for", content_type = "audio/wav", body = Wav,
            headers(("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"))),
        (status = 404, description = "No such recording", body = ErrorBody),
        (status = 416, description = "The range is outside the file, or not one range", body = ErrorBody,
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 422, description = "`name` is not a recording's file name", body = ErrorBody),
    ))]
pub async fn download(
    State(api): State<Arc<Api>>,
    name: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let Path(name) = name.map_err(|r| ApiError::new(r.status(), r.body_text(), Some("name")))?;
    check_name(&name)?;
    let path = api.recordings.join(&name);
    let response = ServeFile::new(&path).try_call(request).await.map_err(|e| {
        tracing::warn!(path = %path.display(), error = %e, "recording could not be read");
        ApiError::internal(format!("recording {name} could not be read"))
    })?;
    match response.status() {
        StatusCode::NOT_FOUND => {
            Err(
                ApiError::new(StatusCode::NOT_FOUND, format!("no recording {name}"), None)
                    .with_code("no_recording"),
            )
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            let range = response.headers().get(header::CONTENT_RANGE).cloned();
            let mut refusal = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "the Range is outside the file or is not one byte range",
                Some("Range"),
            )
            .with_code("range_not_satisfiable")
            .into_response();
            if let Some(range) = range {
                refusal.headers_mut().insert(header::CONTENT_RANGE, range);
            }
            Ok(refusal)
        }
        _ => Ok(response.map(Body::new)),
    }
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = name.len() > ".wav".len()
        && name.len() <= MAX_NAME
        && name.ends_with(".wav")
        && !name.contains("..")
        && is_unreserved(name);
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "name",
            format!(
                "name must be a recording's file name: up to {MAX_NAME} of A-Z a-z 0-9 - _ . ~, \
                 ending in .wav, without .."
            ),
        ))
    }
}
