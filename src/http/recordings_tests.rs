//! `GET /v1/recordings/{name}` over a real folder: whole files, one range,
//! unsatisfiable ranges, HEAD, the key, refused names and missing files.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;

use super::testkit::{accepting, assert_code, request, send_as_is, TEST_KEY};
use super::HttpState;

/// 1,000 bytes that tell where in the file a range came from.
fn content() -> Vec<u8> {
    let mut bytes = b"RIFF\x00\x00\x00\x00WAVE".to_vec();
    bytes.extend((bytes.len()..1000).map(|i| (i % 251) as u8));
    bytes
}

/// The API over a recordings folder (`recordings` in the temporary
/// directory) holding `wcb-0123456789abcdef.wav`.
fn app() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let recordings = dir.path().join("recordings");
    std::fs::create_dir(&recordings).unwrap();
    std::fs::write(recordings.join("wcb-0123456789abcdef.wav"), content()).unwrap();
    let state = HttpState {
        recordings_dir: recordings,
        ..accepting().state
    };
    (super::router(state), dir)
}

struct Got {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

async fn get(app: &Router, method: &str, path: &str, range: Option<&str>) -> Got {
    use tower::ServiceExt;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("x-api-key", TEST_KEY);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        headers,
        body: body.to_vec(),
    }
}

const PATH: &str = "/v1/recordings/wcb-0123456789abcdef.wav";

#[tokio::test]
async fn the_whole_file_with_ranges_advertised() {
    let (app, _dir) = app();
    let got = get(&app, "GET", PATH, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "audio/wav");
    assert_eq!(got.headers["accept-ranges"], "bytes");
    assert_eq!(got.headers["content-length"], "1000");
    assert_eq!(got.body, content());

    let head = get(&app, "HEAD", PATH, None).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.headers["content-length"], "1000");
    assert!(head.body.is_empty());
}

#[tokio::test]
async fn one_range_is_206_with_its_content_range() {
    let (app, _dir) = app();
    let got = get(&app, "GET", PATH, Some("bytes=100-199")).await;
    assert_eq!(got.status, 206);
    assert_eq!(got.headers["content-range"], "bytes 100-199/1000");
    assert_eq!(got.headers["content-type"], "audio/wav");
    assert_eq!(got.body, content()[100..200]);

    let tail = get(&app, "GET", PATH, Some("bytes=-12")).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.headers["content-range"], "bytes 988-999/1000");
    assert_eq!(tail.body, content()[988..]);
}

#[tokio::test]
async fn a_range_that_cannot_be_met_is_416_in_the_error_shape() {
    let (app, _dir) = app();
    for range in ["bytes=5000-6000", "bytes=0-1,5-9"] {
        let got = get(&app, "GET", PATH, Some(range)).await;
        assert_eq!(got.status, 416, "{range}");
        assert_eq!(got.headers["content-range"], "bytes */1000", "{range}");
        let json: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(json["code"], "range_not_satisfiable", "{range}");
        assert_eq!(json["field"], "Range", "{range}");
    }
}

#[tokio::test]
async fn a_key_is_needed() {
    let (app, _dir) = app();
    let req = Request::get(PATH).body(Body::empty()).unwrap();
    let r = send_as_is(&app, req).await;
    assert_code(&r, 401, "unauthorized", None);
}

#[tokio::test]
async fn names_that_are_not_a_recording_file_are_refused() {
    let (app, dir) = app();
    // Something worth stealing beside the folder.
    std::fs::write(dir.path().join("secret.wav"), b"secret").unwrap();
    for path in [
        "/v1/recordings/..%2Fsecret.wav",
        "/v1/recordings/%2Fetc%2Fpasswd.wav",
        "/v1/recordings/sub%5Cx.wav",
        "/v1/recordings/..wav",
        "/v1/recordings/a..b.wav",
        "/v1/recordings/wcb-0123456789abcdef.mp3",
        "/v1/recordings/.wav",
        "/v1/recordings/wcb%00.wav",
    ] {
        let r = request(&app, "GET", path, None).await;
        assert_code(&r, 422, "invalid", Some("name"));
    }
    // A second path segment is no route at all.
    let r = request(&app, "GET", "/v1/recordings/../secret.wav", None).await;
    assert_eq!(r.status, 404, "{}", r.json);
}

#[tokio::test]
async fn a_missing_recording_is_404_in_the_error_shape() {
    let (app, _dir) = app();
    let r = request(&app, "GET", "/v1/recordings/wcb-ffffffffffffffff.wav", None).await;
    assert_code(&r, 404, "no_recording", None);
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .contains("wcb-ffffffffffffffff.wav"));
}
