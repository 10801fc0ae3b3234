//! A real HTTP receiver on loopback that a test controls: it stands in for
//! the customer's enrichment endpoint or a workforce-management server.
//!
//! Every request is recorded (method, path, headers, body) and answered by
//! the next scripted [`Reply`] (status, body, delay), or by the default
//! reply once the script runs out. The test waits for requests with a bound
//! ([`Receiver::next`]); nothing sleeps.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    /// Held this long before answering (a slow endpoint).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            content_type: "text/plain",
            delay: Duration::ZERO,
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            content_type: "application/json",
            delay: Duration::ZERO,
        }
    }

    /// A body sent as given (for answers that are not valid JSON).
    pub fn raw(status: u16, body: &str, content_type: &'static str) -> Reply {
        Reply {
            status,
            body: body.to_string(),
            content_type,
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The status it is answered with.
    pub status: u16,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// A URL-encoded form body as (name, value) pairs, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_bytes(&self.body)
            .unwrap_or_else(|e| panic!("body is not a form ({e}): {}", self.text()))
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    seen: mpsc::Sender<Recorded>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Recorded>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on 127.0.0.1 (a free port), answering `default` to everything
    /// not scripted.
    pub fn start(default: Reply) -> Receiver {
        let (seen, requests) = mpsc::channel();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(default),
            seen,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("receiver address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("receiver listener");
                let app = axum::Router::new().fallback(answer).with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Receiver {
            addr,
            shared,
            requests,
            shutdown: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests with these, in order, before the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().expect("script").extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        *self.shared.default.lock().expect("default") = reply;
    }

    /// The next request, waiting at most `within`.
    pub fn next(&self, within: Duration) -> Recorded {
        match self.requests.recv_timeout(within) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no request reached the receiver within {within:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the receiver stopped"),
        }
    }

    /// The next request if one comes within `within`.
    pub fn try_next(&self, within: Duration) -> Option<Recorded> {
        self.requests.recv_timeout(within).ok()
    }

    /// Waits for requests until `done` says the collected list is complete.
    pub fn collect_until(
        &self,
        within: Duration,
        mut done: impl FnMut(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = std::time::Instant::now() + within;
        let mut seen = Vec::new();
        while !done(&seen) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.requests.recv_timeout(left) {
                Ok(r) => seen.push(r),
                Err(_) => panic!(
                    "receiver: condition not met within {within:?}; {} requests seen: {:#?}",
                    seen.len(),
                    seen.iter().map(Recorded::text).collect::<Vec<_>>()
                ),
            }
        }
        seen
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.shutdown.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let next = shared.script.lock().expect("script").pop_front();
        next.unwrap_or_else(|| shared.default.lock().expect("default").clone())
    };
    let recorded = Recorded {
        at: std::time::Instant::now(),
        status: reply.status,
        method: method.to_string(),
        uri: uri.to_string(),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    let _ = shared.seen.send(recorded);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", reply.content_type)], reply.body).into_response()
}
