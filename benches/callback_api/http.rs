//! A hand-written HTTP/1.1 client, just enough for the benchmark: one
//! keep-alive connection sends a request with `Content-Length` and reads
//! the answer's head and its `Content-Length` body; an event stream reads a
//! chunked body and splits it into Server-Sent Events.
//!
//! Hand-written rather than hyper's client so that what is timed is the
//! switch plus one write and one read per request, with nothing pooled or
//! retried behind the benchmark's back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Largest response head or body accepted: a callback record is ~1 KiB.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// One keep-alive connection to the API.
pub struct Conn {
    addr: SocketAddr,
    key: String,
    /// `None` after a failure: the next request connects again.
    stream: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

impl Conn {
    pub async fn open(addr: SocketAddr, key: &str, timeout: Duration) -> std::io::Result<Conn> {
        let mut conn = Conn {
            addr,
            key: key.to_string(),
            stream: None,
            timeout,
        };
        conn.stream = Some(connect(addr).await?);
        Ok(conn)
    }

    /// Sends one request and reads its answer. On any failure the
    /// connection is dropped (a half-read answer cannot be resynchronised)
    /// and the next request opens a new one.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let result = tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await;
        match result {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e)
            }
            Err(_) => {
                self.stream = None;
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{method} {path}: no answer in {:?}", self.timeout),
                ))
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        if self.stream.is_none() {
            self.stream = Some(connect(self.addr).await?);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(invalid("no connection"));
        };
        let request = request_text(self.addr, &self.key, method, path, body, &[]);
        stream.get_mut().write_all(request.as_bytes()).await?;
        let head = read_head(stream).await?;
        let length = head.content_length.unwrap_or(0);
        if head.chunked || length > MAX_RESPONSE {
            return Err(invalid(
                "answer is chunked or too large for a plain request",
            ));
        }
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        if head.close {
            self.stream = None;
        }
        Ok(Response {
            status: head.status,
            body,
        })
    }
}

async fn connect(addr: SocketAddr) -> std::io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect(addr).await?;
    // Requests are one write each; Nagle would only add delay.
    stream.set_nodelay(true)?;
    Ok(BufReader::with_capacity(16 * 1024, stream))
}

fn request_text(
    addr: SocketAddr,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    extra: &[(&str, &str)],
) -> String {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nX-API-Key: {key}\r\n");
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Some(body) => text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => text.push_str("\r\n"),
    }
    text
}

struct Head {
    status: u16,
    content_length: Option<usize>,
    chunked: bool,
    close: bool,
}

/// Reads the status line and headers, up to the empty line.
async fn read_head(stream: &mut BufReader<TcpStream>) -> std::io::Result<Head> {
    let mut line = String::new();
    let mut head = Head {
        status: 0,
        content_length: None,
        chunked: false,
        close: false,
    };
    let mut total = 0;
    loop {
        line.clear();
        let n = stream.read_line(&mut line).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the answer",
            ));
        }
        total += n;
        if total > MAX_RESPONSE {
            return Err(invalid("answer head too large"));
        }
        let text = line.trim_end();
        if head.status == 0 {
            head.status = text
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| invalid(&format!("bad status line {text:?}")))?;
            continue;
        }
        if text.is_empty() {
            return Ok(head);
        }
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            head.content_length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

/// One Server-Sent Event.
#[derive(Debug, Default)]
pub struct SseEvent {
    pub id: Option<u64>,
    pub event: String,
    pub data: String,
}

/// An open `GET` event stream: a chunked body read as SSE.
pub struct EventStream {
    stream: BufReader<TcpStream>,
    /// Bytes of the current chunk not yet read.
    chunk_left: usize,
    /// A partial line carried over between chunks.
    pending: Vec<u8>,
    lines: std::collections::VecDeque<String>,
}

impl EventStream {
    /// Opens the stream; returns once the answer's head is in (the server
    /// has subscribed to its events by then).
    pub async fn open(
        addr: SocketAddr,
        key: &str,
        path: &str,
        last_event_id: Option<u64>,
    ) -> std::io::Result<EventStream> {
        let mut stream = connect(addr).await?;
        let last = last_event_id.map(|n| n.to_string());
        let mut extra = vec![("Accept", "text/event-stream")];
        if let Some(last) = &last {
            extra.push(("Last-Event-ID", last.as_str()));
        }
        let request = request_text(addr, key, "GET", path, None, &extra);
        stream.get_mut().write_all(request.as_bytes()).await?;
        let head = read_head(&mut stream).await?;
        if head.status != 200 {
            return Err(invalid(&format!("event stream answered {}", head.status)));
        }
        if !head.chunked {
            return Err(invalid("event stream is not chunked"));
        }
        Ok(EventStream {
            stream,
            chunk_left: 0,
            pending: Vec::new(),
            lines: Default::default(),
        })
    }

    /// The next event; `None` when the server ended the stream.
    pub async fn next(&mut self) -> std::io::Result<Option<SseEvent>> {
        let mut event = SseEvent::default();
        let mut any = false;
        loop {
            let Some(line) = self.next_line().await? else {
                return Ok(None);
            };
            if line.is_empty() {
                if any {
                    return Ok(Some(event));
                }
                continue;
            }
            // A comment (the keep-alive) carries nothing.
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => event.id = value.parse().ok(),
                "event" => event.event = value.to_string(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Option<String>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(Some(line));
            }
            let Some(data) = self.next_data().await? else {
                return Ok(None);
            };
            self.pending.extend_from_slice(&data);
            while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&raw[..i]);
                self.lines
                    .push_back(text.strip_suffix('\r').unwrap_or(&text).to_string());
            }
        }
    }

    /// The next piece of the chunked body; `None` at its end.
    async fn next_data(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if self.chunk_left == 0 {
            let mut size = String::new();
            // The CRLF that closes the previous chunk, then the size line.
            while size.trim().is_empty() {
                size.clear();
                if self.stream.read_line(&mut size).await? == 0 {
                    return Ok(None);
                }
            }
            let hex = size.trim().split(';').next().unwrap_or("");
            let n = usize::from_str_radix(hex.trim(), 16)
                .map_err(|_| invalid(&format!("bad chunk size {size:?}")))?;
            if n == 0 {
                return Ok(None);
            }
            self.chunk_left = n;
        }
        let mut buf = vec![0; self.chunk_left.min(64 * 1024)];
        let n = self.stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.truncate(n);
        self.chunk_left -= n;
        Ok(Some(buf))
    }
}
