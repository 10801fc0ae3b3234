//! Test fixtures: a fake endpoint task answering [`ControlRequest`]s, a fake
//! [`CallDirectory`], a request helper over `oneshot`, and a minimal raw
//! HTTP/1.1 client for tests against a bound listener.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tower::ServiceExt;

use super::HttpState;
use crate::call::summary::{CallState, LegState, LegSummary};
use crate::call::{
    CallCommand, CallDirectory, CallEvent, CallId, CallSummary, CommandError, ControlRequest,
    LegRole,
};
use crate::media::LegStats;

/// How the fake endpoint treats one command.
pub enum Answer {
    Reply(Result<CallId, CommandError>),
    /// Drop the reply slot: the endpoint died mid-command.
    Drop,
    /// Keep the reply slot and never answer.
    Stall,
}

/// The call a command names, or the originate's chosen id (or "c-new").
pub fn target(command: &CallCommand) -> CallId {
    match command {
        CallCommand::Originate(o) => o.call.clone().unwrap_or(CallId("c-new".into())),
        CallCommand::Hangup { call }
        | CallCommand::Hold { call, .. }
        | CallCommand::Retrieve { call, .. }
        | CallCommand::Mute { call, .. }
        | CallCommand::Unmute { call, .. }
        | CallCommand::SendDtmf { call, .. }
        | CallCommand::StartRecording { call }
        | CallCommand::PauseRecording { call }
        | CallCommand::ResumeRecording { call }
        | CallCommand::StopRecording { call }
        | CallCommand::Transfer { call, .. }
        | CallCommand::Consult { call, .. }
        | CallCommand::Alternate { call }
        | CallCommand::CancelConsult { call }
        | CallCommand::CompleteTransfer { call }
        | CallCommand::Conference { call }
        | CallCommand::Remove { call, .. }
        | CallCommand::Leave { call, .. }
        | CallCommand::Volume { call, .. }
        | CallCommand::Supervise { call, .. } => call.clone(),
    }
}

pub struct FakeDirectory {
    calls: Vec<CallSummary>,
    counters: HashMap<u64, LegStats>,
    peers: Vec<crate::call::PeerStatus>,
}

impl CallDirectory for FakeDirectory {
    fn call(&self, id: &CallId) -> Option<CallSummary> {
        self.calls.iter().find(|c| &c.id == id).cloned()
    }
    fn calls(&self) -> Vec<CallSummary> {
        self.calls.clone()
    }
    fn by_interaction(&self, interaction: &str) -> Vec<CallSummary> {
        self.calls
            .iter()
            .filter(|c| c.interaction.as_deref() == Some(interaction))
            .cloned()
            .collect()
    }
    fn leg_stats(&self, media_leg: u64) -> Option<LegStats> {
        self.counters.get(&media_leg).copied()
    }
    fn peers(&self) -> Vec<crate::call::PeerStatus> {
        self.peers.clone()
    }
}

/// Trunk peers gw-a (up, idle) and gw-b (down, with calls, limits, refusals).
fn peers() -> Vec<crate::call::PeerStatus> {
    use crate::call::peers::{CallFailure, PeerLimits, PingResult, Refusals};
    let a = crate::call::PeerStatus {
        name: "gw-a".into(),
        profile: "external".into(),
        address: Some("127.0.0.1:5090".into()),
        state: "up".into(),
        ping_interval_secs: 0,
        last_ping: None,
        state_changed_at_ms: None,
        calls_in: 0,
        calls_out: 0,
        total_in: 0,
        total_out: 0,
        limits: PeerLimits::default(),
        refused: Refusals::default(),
        last_failure: None,
    };
    let b = crate::call::PeerStatus {
        name: "gw-b".into(),
        address: Some("127.0.0.1:5091".into()),
        state: "down".into(),
        ping_interval_secs: 5,
        last_ping: Some(PingResult {
            ok: false,
            result: "timeout".into(),
            status: None,
            at_ms: 1_700_000_002_000,
        }),
        state_changed_at_ms: Some(1_700_000_002_000),
        calls_in: 1,
        calls_out: 2,
        total_in: 11,
        total_out: 40,
        limits: PeerLimits {
            max_calls_in: 10,
            max_cps_in: 5,
            ..PeerLimits::default()
        },
        refused: Refusals {
            calls_in: 3,
            cps_in: 7,
            ..Refusals::default()
        },
        last_failure: Some(CallFailure {
            status: 408,
            at_ms: 1_700_000_001_000,
        }),
        ..a.clone()
    };
    vec![a, b]
}

fn leg(role: LegRole, media_leg: u64) -> LegSummary {
    LegSummary {
        role,
        state: LegState::Answered,
        target: format!("target-{role}"),
        profile: "internal".into(),
        sip_call_id: format!("sip-{media_leg}"),
        local_tag: "lt".into(),
        remote_tag: Some("rt".into()),
        media_leg,
        rtp_port: 20000 + media_leg as u16,
        held_by_switch: false,
        held_by_phone: false,
        muted: false,
    }
}

fn summary(id: &str, interaction: Option<&str>, legs: Vec<LegSummary>) -> CallSummary {
    CallSummary {
        id: CallId(id.into()),
        interaction: interaction.map(Into::into),
        state: CallState::Bridged,
        from: "1001".into(),
        to: "15551234567".into(),
        legs,
        recording: None,
        recording_paused: false,
        started_at_ms: 1_700_000_000_000,
        answered_at_ms: Some(1_700_000_001_000),
    }
}

/// Calls c1 (interaction i-42, legs a/b with media legs 7/8; only 7 has
/// counters) and c2 (interaction i-7, no legs).
pub fn directory() -> FakeDirectory {
    let counters = LegStats {
        packets_in: 50,
        bytes_in: 8600,
        packets_out: 49,
        bytes_out: 8428,
        lost: 1,
        jitter_ms: 2.5,
        rtcp_in: 1,
        rtcp_out: 1,
        malformed: 0,
    };
    FakeDirectory {
        calls: vec![
            summary(
                "c1",
                Some("i-42"),
                vec![leg(LegRole::A, 7), leg(LegRole::B, 8)],
            ),
            summary("c2", Some("i-7"), vec![]),
        ],
        counters: HashMap::from([(7, counters)]),
        peers: peers(),
    }
}

/// The key every harness accepts; `request` and `send` present it.
pub const TEST_KEY: &str = "test-key-0123456789";

pub struct Harness {
    pub state: HttpState,
    pub app: Router,
    /// Every command the fake endpoint received, in order.
    pub seen: mpsc::UnboundedReceiver<CallCommand>,
}

/// A fake endpoint task answering each command by `answer`. Must run inside a runtime.
pub fn harness(answer: impl Fn(&CallCommand) -> Answer + Send + 'static) -> Harness {
    let (commands, mut queue) = mpsc::channel::<ControlRequest>(8);
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stalled: Vec<oneshot::Sender<_>> = Vec::new();
        while let Some(ControlRequest { command, reply }) = queue.recv().await {
            let answer = answer(&command);
            let _ = seen_tx.send(command);
            match answer {
                Answer::Reply(r) => {
                    let _ = reply.send(r);
                }
                Answer::Drop => drop(reply),
                Answer::Stall => stalled.push(reply),
            }
        }
    });
    let (events, _) = broadcast::channel(16);
    let state = HttpState {
        commands,
        directory: Arc::new(directory()),
        events,
        api_keys: Arc::new(vec![TEST_KEY.to_owned()]),
        callback_api: None,
        recordings_dir: std::env::temp_dir().join("switchback-no-recordings"),
    };
    let app = super::router(state.clone());
    Harness { state, app, seen }
}

/// A fake endpoint that accepts everything, answering with the command's call.
pub fn accepting() -> Harness {
    harness(|c| Answer::Reply(Ok(target(c))))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
}

/// Sends one request through the router; a body is sent as JSON.
pub async fn request(app: &Router, method: &str, uri: &str, body: Option<&str>) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let req = builder
        .body(Body::from(body.unwrap_or("").to_owned()))
        .unwrap();
    send(app, req).await
}

/// Sends `req`, adding the test key when it carries no credential of its own.
pub async fn send(app: &Router, mut req: Request<Body>) -> Reply {
    let headers = req.headers_mut();
    if !headers.contains_key("x-api-key") && !headers.contains_key("authorization") {
        headers.insert("x-api-key", TEST_KEY.parse().unwrap());
    }
    send_as_is(app, req).await
}

/// Sends `req` exactly as built (no key added).
pub async fn send_as_is(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    Reply {
        status,
        headers,
        json,
    }
}

/// Asserts the error shape: status, a machine code, a message, and the
/// field it names.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, field: Option<&str>) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.json);
    let code = reply.json["code"].as_str().unwrap_or("");
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{}",
        reply.json
    );
    assert!(reply.json["message"].is_string(), "{}", reply.json);
    assert_eq!(reply.json["field"].as_str(), field, "{}", reply.json);
}

/// Asserts the error shape and its machine code.
#[track_caller]
pub fn assert_code(reply: &Reply, status: u16, code: &str, field: Option<&str>) {
    assert_error(reply, status, field);
    assert_eq!(reply.json["code"], code, "{}", reply.json);
}

/// A raw HTTP/1.1 GET: writes the request, reads the status line and
/// headers, and returns the status and the reader positioned at the body.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nX-API-Key: {TEST_KEY}\r\n\r\n"
    );
    raw_request(stream, &req).await
}

/// Writes `req` (a whole HTTP/1.1 request) on `stream`, reads the status
/// line and headers, and returns the status and the reader at the body.
pub async fn raw_request<S>(mut stream: S, req: &str) -> (u16, BufReader<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    let status = line.split(' ').nth(1).unwrap().parse().unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    (status, reader)
}

/// Reads one chunk of a chunked body; None at the last chunk or EOF.
pub async fn read_chunk<S: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
) -> Option<String> {
    let mut size = String::new();
    if reader.read_line(&mut size).await.unwrap() == 0 {
        return None;
    }
    let size = usize::from_str_radix(size.trim(), 16).unwrap();
    if size == 0 {
        return None;
    }
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).await.unwrap();
    data.truncate(size);
    Some(String::from_utf8(data).unwrap())
}

/// Reads SSE messages (blank-line separated) until `n` are complete,
/// skipping keep-alive comments.
pub async fn read_sse<S: tokio::io::AsyncRead + Unpin>(
    reader: &mut BufReader<S>,
    n: usize,
) -> Vec<String> {
    let mut buf = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = read_chunk(reader).await.expect("stream ended early");
        buf.push_str(&chunk);
        while let Some(end) = buf.find("\n\n") {
            let message: String = buf.drain(..end + 2).collect();
            if !message.starts_with(':') {
                out.push(message.trim_end().to_owned());
            }
        }
    }
    out
}

/// A `Started` event for `call`.
pub fn started(call: &str) -> CallEvent {
    CallEvent::Started {
        call: CallId(call.into()),
        interaction: Some("i-42".into()),
        from: "1001".into(),
        to: "15551234567".into(),
    }
}
