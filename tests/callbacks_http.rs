//! The callback routes against the real switch: the HTTP layer, the center
//! task and the SQLite store together (create with replay, read, status,
//! list, cancel), over the test HTTP client.

mod common;

use common::http::{request, request_with, TEST_API_KEY};
use common::Switch;

fn config() -> String {
    format!(
        "[general]\nhttp_listen = \"127.0.0.1:0\"\nhttp_api_keys = [\"{TEST_API_KEY}\"]\n\
         [profiles.internal]\nregistrar = true\n\
         listen = [{{ transport = \"udp\", address = \"127.0.0.1:0\" }}]\n\
         [[profiles.internal.users]]\nusername = \"1001\"\npassword = \"pw1001\"\n\
         [callback]\ndatabase = \"callbacks.db\"\n\
         [[callback.queues]]\nid = \"sales\"\n"
    )
}

fn http_addr(sw: &Switch) -> std::net::SocketAddr {
    sw.seen
        .iter()
        .find_map(|l| l.strip_prefix("http "))
        .expect("no `http` line before `ready`")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_callback_is_created_once_read_listed_and_cancelled() {
    let sw = Switch::start_with_text(&config());
    let api = http_addr(&sw);
    let body = r#"{"queueId": "sales", "callbackNumbers": ["+1 415 555 0100"], "callbackUserName": "Ada"}"#;
    let create = |key: &str| {
        request_with(
            api,
            "POST",
            "/v1/callbacks",
            Some(body),
            &[("X-API-Key", TEST_API_KEY), ("Idempotency-Key", key)],
        )
    };

    let r = create("order-1");
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/callbacks/{id}").as_str())
    );
    assert_eq!(created["callbackNumbers"][0], "+14155550100");
    assert_eq!(created["queueId"], "sales");

    // A retry with the same key returns the same callback, 200.
    let r = create("order-1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], id.as_str());

    let r = request(
        api,
        "POST",
        "/v1/callbacks",
        Some(r#"{"queueId": "nope", "callbackNumbers": ["+14155550100"]}"#),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "queueId");

    let r = request(api, "GET", &format!("/v1/callbacks/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let record = r.json();
    assert_eq!(record["id"], id.as_str());
    assert!(
        !record["history"].as_array().unwrap().is_empty(),
        "{record}"
    );

    let r = request(api, "GET", &format!("/v1/callbacks/{id}/status"), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["id"], id.as_str());

    let r = request(api, "GET", "/v1/callbacks?queue=sales&limit=10", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], id.as_str());

    let r = request(
        api,
        "POST",
        &format!("/v1/callbacks/{id}/cancel"),
        Some(r#"{"by": "contact", "reason": "solved"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled");
    let r = request(api, "GET", "/v1/callbacks?state=cancelled", None);
    assert_eq!(r.json()["items"][0]["id"], id.as_str());
    let r = request(api, "GET", "/v1/callbacks/cb-0000000000000000", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["code"], "no_callback");

    // Without a key only health answers.
    let r = request_with(api, "GET", "/v1/callbacks", None, &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        request_with(api, "GET", "/v1/health", None, &[]).status,
        200
    );
}
