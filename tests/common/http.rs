//! A tiny blocking HTTP/1.1 client for the control API (std only): one request per
//! connection (`Connection: close`), JSON bodies, bounded by a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The API key every test configuration grants (`http_api_keys`).
pub const TEST_API_KEY: &str = "test-api-key-0123456789";

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The response head (status line and headers).
    pub head: String,
}

impl Response {
    /// A header's value (first of that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.body))
    }
}

/// Sends `method path` with an optional JSON body and the test API key;
/// panics on a transport failure (the API is local: a failure to connect is
/// a test failure).
pub fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> Response {
    request_with(addr, method, path, body, &[("X-API-Key", TEST_API_KEY)])
}

/// `request` with exactly these extra headers (no API key unless given).
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Response {
    let timeout = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("connect to the HTTP API at {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let body = body.unwrap_or("");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: write: {e}"));
    let mut raw = Vec::new();
    // Read to EOF (Connection: close), or stop once Content-Length bytes are in.
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if complete(&raw) {
                    break;
                }
            }
            Err(e) => panic!(
                "{method} {path}: read: {e} (got {:?})",
                String::from_utf8_lossy(&raw)
            ),
        }
    }
    parse(&raw).unwrap_or_else(|| {
        panic!(
            "{method} {path}: bad HTTP response {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn head_end(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|w| w == b"\r\n\r\n")
}

fn content_length(head: &str) -> Option<usize> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}

fn complete(raw: &[u8]) -> bool {
    let Some(end) = head_end(raw) else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]);
    match content_length(&head) {
        Some(n) => raw.len() >= end + 4 + n,
        None => false,
    }
}

fn parse(raw: &[u8]) -> Option<Response> {
    let end = head_end(raw)?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    } else if let Some(n) = content_length(&head) {
        body.truncate(n);
    }
    Some(Response {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        head,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[(i + 4 + size).min(b.len())..];
    }
    out
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, None)
}

pub fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(addr, "POST", path, Some(body))
}

pub fn delete(addr: SocketAddr, path: &str) -> Response {
    request(addr, "DELETE", path, None)
}

/// POST and insist on a 2xx.
pub fn post_ok(addr: SocketAddr, path: &str, body: &str) -> Response {
    let r = post(addr, path, body);
    assert!(
        (200..300).contains(&r.status),
        "POST {path} {body} -> {} {}",
        r.status,
        r.body
    );
    r
}
