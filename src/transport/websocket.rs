//! SIP over WebSocket (RFC 7118): the `ws` and `wss` listeners.
//!
//! It owns the WebSocket side of a connection: the opening handshake
//! (RFC 6455 §4, through tokio-tungstenite: no hand-written framing), the
//! checks the handshake must pass, and one task per connection that turns
//! each WebSocket message into one SIP message for the endpoint workers
//! (RFC 7118 §4: one SIP message per WebSocket message, text or binary)
//! and each message the workers queue into one WebSocket message. It hands
//! the connection to the workers exactly as a TCP connection is handed
//! (`ConnectionUp` with a writer channel, `ConnectionDown`), so responses
//! and requests to a phone go down the connection its request or binding
//! came on; the registrar ties a binding made over it to the connection.
//!
//! The handshake is refused unless:
//! - the client offers the `sip` subprotocol (`Sec-WebSocket-Protocol:
//!   sip`, RFC 7118 §4.1): 400 otherwise; the answer names it;
//! - the `Origin`, when there is one, is allowed (RFC 6455 §10.2): the
//!   profile's `allowed_origins`, or with none configured a page served
//!   from a loopback address; 403 otherwise. A client without `Origin` is
//!   not a browser (a SIP phone over WebSocket) and is let through: the
//!   check keeps foreign web pages from using a visitor's browser, and the
//!   registrar's digest still guards everything else.
//!
//! Caps, the same as the TCP/TLS listeners': the profile's per-source and
//! total connection limits (a place is held from accept, TLS and WebSocket
//! handshakes included, bounded together by the handshake timeout), the
//! idle timeout, and the stream cap on a message (`max_pending_bytes`,
//! default `max_message_size`) as both the WebSocket frame and message
//! cap: a larger one closes the connection (close code 1009) and is
//! counted. Keep-alives are not SIP: WebSocket pings are answered with
//! pongs (by tungstenite), and a message of CRLFs only is RFC 5626 §3.5.1's
//! ping (a double CRLF, answered with a CRLF) or pong (ignored).
//!
//! It must not open WebSocket connections of its own: a browser does not
//! listen (`Transports::send` fails a message for a closed one at once).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::limits::Permit;
use super::stream::{spawn_accept_loop, HANDSHAKE_TIMEOUT, WRITER_QUEUE};
use super::{announce_connection, deliver_frame, Inbound, ReaderSettings};
use crate::net::TransportKind;

/// The subprotocol of RFC 7118 §7.
const SUBPROTOCOL: &str = "sip";

/// How long a close handshake may take before the connection is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes read from the socket at a time (tungstenite allocates it per
/// connection; its default, 128 KiB, is a lot for thousands of phones).
const READ_BUFFER: usize = 16 * 1024;

/// A profile's WebSocket policy and counters, shared by its listeners.
#[derive(Debug)]
pub struct WebSocketPolicy {
    profile: String,
    /// Normalised origins (see [`normalise_origin`]); empty: loopback pages only.
    origins: Vec<String>,
    refused_origin: AtomicU64,
    refused_subprotocol: AtomicU64,
    oversize: AtomicU64,
    /// When each kind of refusal was last logged (one line a second at most).
    logged: Mutex<[Option<StdInstant>; 3]>,
}

/// Why a WebSocket peer was refused or cut off, for the counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRefusal {
    /// The handshake's Origin is not allowed (403).
    Origin,
    /// The handshake did not offer the `sip` subprotocol (400).
    Subprotocol,
    /// A frame or message over the size cap (connection closed, 1009).
    Oversize,
}

/// WebSocket refusals since start, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WsRefusedCounts {
    pub origin: u64,
    pub subprotocol: u64,
    pub oversize: u64,
}

impl WebSocketPolicy {
    /// `allowed_origins` as configured (validated by the configuration;
    /// an entry that does not parse allows nothing).
    pub fn new(profile: &str, allowed_origins: &[String]) -> Arc<Self> {
        Arc::new(WebSocketPolicy {
            profile: profile.to_string(),
            origins: allowed_origins
                .iter()
                .filter_map(|o| normalise_origin(o))
                .collect(),
            refused_origin: AtomicU64::new(0),
            refused_subprotocol: AtomicU64::new(0),
            oversize: AtomicU64::new(0),
            logged: Mutex::new([None; 3]),
        })
    }

    /// Whether a handshake with this `Origin` header (`None`: none sent)
    /// may go on.
    pub fn origin_allowed(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Some(origin) = normalise_origin(origin) else {
            // `null` (a file:// page, a sandboxed frame) or garbage.
            return false;
        };
        if self.origins.is_empty() {
            return is_loopback_origin(&origin);
        }
        self.origins.contains(&origin)
    }

    /// Refusals since start.
    pub fn refused(&self) -> WsRefusedCounts {
        WsRefusedCounts {
            origin: self.refused_origin.load(Ordering::Relaxed),
            subprotocol: self.refused_subprotocol.load(Ordering::Relaxed),
            oversize: self.oversize.load(Ordering::Relaxed),
        }
    }

    /// Counts a refusal and logs it, at most one line a second per kind (a
    /// flood must not become a log flood); each line carries the totals.
    fn count(&self, kind: WsRefusal, remote: SocketAddr, detail: &str) {
        let (counter, slot) = match kind {
            WsRefusal::Origin => (&self.refused_origin, 0),
            WsRefusal::Subprotocol => (&self.refused_subprotocol, 1),
            WsRefusal::Oversize => (&self.oversize, 2),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let now = StdInstant::now();
        let due = {
            let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
            match logged.get_mut(slot) {
                Some(last)
                    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) =>
                {
                    *last = Some(now);
                    true
                }
                _ => false,
            }
        };
        if due {
            let c = self.refused();
            let what = match kind {
                WsRefusal::Origin => "websocket handshake refused: origin not allowed",
                WsRefusal::Subprotocol => "websocket handshake refused: no sip subprotocol",
                WsRefusal::Oversize => "websocket message over the size cap, connection closed",
            };
            tracing::warn!(
                profile = %self.profile,
                %remote,
                detail,
                refused_origin = c.origin,
                refused_subprotocol = c.subprotocol,
                oversize = c.oversize,
                "{what}"
            );
        }
    }
}

/// An origin as a browser sends it (RFC 6454 §6.2), lower-cased, without a
/// trailing `/` and without the scheme's default port: `http` or `https`,
/// `://`, a host (a name, an IPv4 address or a bracketed IPv6 one) and an
/// optional port. `None` for anything else (`null`, a path, a user part).
pub fn normalise_origin(origin: &str) -> Option<String> {
    let o = origin.trim().to_ascii_lowercase();
    let o = o.strip_suffix('/').unwrap_or(&o);
    let (scheme, rest) = o.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (ip, after) = v6.split_once(']')?;
            ip.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (format!("[{ip}]"), port)
        }
        None => {
            let (host, port) = match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            };
            let name = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
            if host.is_empty() || !host.bytes().all(name) {
                return None;
            }
            (host.to_string(), port)
        }
    };
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
    };
    Some(match port {
        Some(p) if p != default_port => format!("{scheme}://{host}:{p}"),
        _ => format!("{scheme}://{host}"),
    })
}

/// A normalised origin whose host is a loopback address or `localhost`.
fn is_loopback_origin(origin: &str) -> bool {
    let Some((_, rest)) = origin.split_once("://") else {
        return false;
    };
    let host = match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => rest.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether `Sec-WebSocket-Protocol` (one header or several, each a comma
/// list) offers `sip`.
fn offers_sip<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL))
}

/// What a WebSocket message that is not SIP asks for (RFC 5626 §3.5.1).
#[derive(Debug, PartialEq, Eq)]
enum KeepAlive {
    /// A double CRLF: answer with a CRLF.
    Ping,
    /// A CRLF alone (or other bare line ends): nothing to do.
    Pong,
}

/// `Some` when the message is line ends only (a keep-alive, not SIP).
fn keep_alive(message: &[u8]) -> Option<KeepAlive> {
    if message.is_empty() || !message.iter().all(|b| matches!(b, b'\r' | b'\n')) {
        return None;
    }
    Some(if message.len() >= 4 {
        KeepAlive::Ping
    } else {
        KeepAlive::Pong
    })
}

/// The answer a refused handshake gets.
fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_string()));
    *r.status_mut() = status;
    r
}

/// Binds a `ws` (or, with an acceptor, `wss`) listener and starts accepting.
pub async fn bind_websocket(
    address: SocketAddr,
    tls: Option<TlsAcceptor>,
    settings: ReaderSettings,
    policy: Arc<WebSocketPolicy>,
    tx: mpsc::Sender<Inbound>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    let limits = settings.limits.clone();
    spawn_accept_loop(listener, limits, move |tcp, remote, permit| {
        let (settings, policy, tx, tls) =
            (settings.clone(), policy.clone(), tx.clone(), tls.clone());
        async move {
            // The TLS and WebSocket handshakes share one bound: a peer that
            // connects and stalls holds its place for seconds.
            let deadline = Instant::now() + settings.idle_timeout.min(HANDSHAKE_TIMEOUT);
            let c = Conn {
                local,
                remote,
                settings,
                policy,
                tx,
                permit,
            };
            match tls {
                None => c.upgrade(tcp, TransportKind::Ws, deadline).await,
                Some(acceptor) => {
                    match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => c.upgrade(stream, TransportKind::Wss, deadline).await,
                        Ok(Err(e)) => {
                            tracing::info!(%remote, error = %e, "wss: tls handshake failed")
                        }
                        Err(_) => tracing::info!(%remote, "wss: tls handshake timed out"),
                    }
                }
            }
        }
    });
    Ok(local)
}

/// One accepted connection, before and after its handshake.
struct Conn {
    local: SocketAddr,
    remote: SocketAddr,
    settings: ReaderSettings,
    policy: Arc<WebSocketPolicy>,
    tx: mpsc::Sender<Inbound>,
    /// Held until the connection ends: its place under the profile's caps.
    permit: Permit,
}

impl Conn {
    /// The WebSocket handshake with the checks of the module header, then
    /// the connection's life.
    async fn upgrade<S>(self, stream: S, transport: TransportKind, deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let remote = self.remote;
        let cap = self
            .settings
            .max_pending_bytes
            .min(self.settings.max_message_size);
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .max_message_size(Some(cap))
            .max_frame_size(Some(cap));
        let policy = self.policy.clone();
        // The shape is tungstenite's `Callback`: its error is the HTTP answer.
        #[allow(clippy::result_large_err)]
        let check = move |request: &Request, mut response: Response| {
            let origin = request
                .headers()
                .get("origin")
                .map(|v| v.to_str().unwrap_or("<not ascii>"));
            if !policy.origin_allowed(origin) {
                let origin = origin.unwrap_or("-");
                policy.count(WsRefusal::Origin, remote, origin);
                return Err(refusal(StatusCode::FORBIDDEN, "Origin not allowed"));
            }
            let offered = request
                .headers()
                .get_all("sec-websocket-protocol")
                .iter()
                .filter_map(|v| v.to_str().ok());
            if !offers_sip(offered) {
                policy.count(WsRefusal::Subprotocol, remote, "-");
                return Err(refusal(
                    StatusCode::BAD_REQUEST,
                    "Sec-WebSocket-Protocol: sip required (RFC 7118)",
                ));
            }
            response.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
            Ok(response)
        };
        let handshake =
            tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config));
        match tokio::time::timeout_at(deadline, handshake).await {
            Ok(Ok(ws)) => self.run(ws, transport).await,
            Ok(Err(e)) => {
                tracing::info!(%remote, %transport, error = %e, "websocket handshake failed")
            }
            Err(_) => tracing::info!(%remote, %transport, "websocket handshake timed out"),
        }
    }

    /// Reads, writes and keeps the connection until it closes, fails or
    /// idles out; the workers hear of it from up to down.
    async fn run<S>(self, mut ws: WebSocketStream<S>, transport: TransportKind)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Conn {
            local,
            remote,
            settings,
            policy,
            tx,
            permit,
        } = self;
        let (writer_tx, mut writer_rx) = mpsc::channel::<Bytes>(WRITER_QUEUE);
        let Some((id, source)) =
            announce_connection(&tx, transport, local, remote, &settings, writer_tx).await
        else {
            return;
        };
        tracing::debug!(%remote, %transport, connection = id.0, "websocket open");
        let mut deadline = Instant::now() + settings.idle_timeout;
        // The close frame sent before the connection goes, if any.
        let mut close = None;
        let reason = loop {
            tokio::select! {
                read = ws.next() => {
                    deadline = Instant::now() + settings.idle_timeout;
                    let payload = match read {
                        None => break "closed by peer",
                        Some(Ok(Message::Text(text))) => Bytes::from(text),
                        Some(Ok(Message::Binary(bytes))) => bytes,
                        // Pings are answered by tungstenite; pongs and the
                        // peer's close need nothing (the stream ends next).
                        Some(Ok(_)) => continue,
                        Some(Err(WsError::Capacity(e))) => {
                            policy.count(WsRefusal::Oversize, remote, &e.to_string());
                            close = Some(CloseFrame {
                                code: CloseCode::Size,
                                reason: "SIP message too large".into(),
                            });
                            break "message over the size cap";
                        }
                        Some(Err(e)) => {
                            tracing::info!(%remote, error = %e, "websocket error");
                            break "websocket error";
                        }
                    };
                    match keep_alive(&payload) {
                        Some(KeepAlive::Ping) => {
                            if ws.send(Message::text("\r\n")).await.is_err() {
                                break "write error";
                            }
                        }
                        Some(KeepAlive::Pong) => {}
                        None => {
                            if !deliver_frame(&payload, source, &settings, &tx).await {
                                break "endpoint gone";
                            }
                        }
                    }
                }
                out = writer_rx.recv() => {
                    let Some(bytes) = out else { break "endpoint gone" };
                    if ws.send(to_message(bytes)).await.is_err() {
                        break "write error";
                    }
                    deadline = Instant::now() + settings.idle_timeout;
                }
                _ = tokio::time::sleep_until(deadline) => {
                    close = Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "idle".into(),
                    });
                    break "idle timeout";
                }
            }
        };
        tracing::debug!(%remote, connection = id.0, reason, "websocket closed");
        // The place is free before the peer can see the close.
        drop(permit);
        if let Some(frame) = close {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(Some(frame))).await;
        }
        let _ = tx.send(Inbound::ConnectionDown { id }).await;
    }
}

/// A SIP message as a WebSocket message: text when it is UTF-8 (every
/// message the switch writes without a binary body), binary otherwise
/// (RFC 7118 §4.2).
fn to_message(bytes: Bytes) -> Message {
    match tokio_tungstenite::tungstenite::Utf8Bytes::try_from(bytes.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalise_as_browsers_send_them() {
        for (given, want) in [
            ("https://Desk.Example.com", Some("https://desk.example.com")),
            (
                "https://desk.example.com/",
                Some("https://desk.example.com"),
            ),
            (
                "https://desk.example.com:443",
                Some("https://desk.example.com"),
            ),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080")),
            ("http://[::1]:80", Some("http://[::1]")),
            ("http://[::1]:8080", Some("http://[::1]:8080")),
            ("null", None),
            ("file://", None),
            ("ftp://a.example", None),
            ("https://a.example/path", None),
            ("https://user@a.example", None),
            ("https://a.example:0", None),
            ("https://a.example:99999", None),
            ("https://[nothex]", None),
            ("https://", None),
        ] {
            assert_eq!(normalise_origin(given).as_deref(), want, "{given}");
        }
    }

    #[test]
    fn without_a_list_only_loopback_pages_and_non_browsers_connect() {
        let p = WebSocketPolicy::new("p", &[]);
        assert!(p.origin_allowed(None), "a SIP phone sends no Origin");
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.8.9.10",
            "https://localhost:4443",
            "http://[::1]:8080",
        ] {
            assert!(p.origin_allowed(Some(ok)), "{ok}");
        }
        for refused in [
            "https://evil.example",
            "http://10.0.0.1",
            "null",
            "http://localhost.evil.example",
            "http://127.0.0.1.evil.example",
        ] {
            assert!(!p.origin_allowed(Some(refused)), "{refused}");
        }
    }

    #[test]
    fn a_list_allows_exactly_its_origins() {
        let p = WebSocketPolicy::new("p", &["https://desk.example.com/".into()]);
        assert!(p.origin_allowed(Some("https://desk.example.com")));
        assert!(p.origin_allowed(Some("https://DESK.example.com:443")));
        assert!(!p.origin_allowed(Some("http://desk.example.com")));
        assert!(!p.origin_allowed(Some("https://desk.example.com:8443")));
        // A list replaces the loopback default.
        assert!(!p.origin_allowed(Some("http://127.0.0.1:8080")));
        assert!(p.origin_allowed(None));
    }

    #[test]
    fn the_sip_subprotocol_is_found_among_others() {
        assert!(offers_sip(["sip"]));
        assert!(offers_sip(["chat, SIP"]));
        assert!(offers_sip(["chat", "sip"]));
        assert!(!offers_sip(["chat, sips"]));
        assert!(!offers_sip([]));
    }

    #[test]
    fn line_ends_alone_are_keep_alives_not_sip() {
        assert_eq!(keep_alive(b"\r\n\r\n"), Some(KeepAlive::Ping));
        assert_eq!(keep_alive(b"\r\n"), Some(KeepAlive::Pong));
        assert_eq!(keep_alive(b""), None);
        assert_eq!(keep_alive(b"OPTIONS sip:a SIP/2.0\r\n\r\n"), None);
    }

    #[test]
    fn refusals_are_counted_by_kind() {
        let p = WebSocketPolicy::new("p", &[]);
        let remote: SocketAddr = "127.0.0.1:1".parse().unwrap();
        p.count(WsRefusal::Oversize, remote, "x");
        p.count(WsRefusal::Oversize, remote, "x");
        p.count(WsRefusal::Origin, remote, "x");
        assert_eq!(
            p.refused(),
            WsRefusedCounts {
                origin: 1,
                subprotocol: 0,
                oversize: 2
            }
        );
    }

    #[test]
    fn utf8_goes_as_text_and_the_rest_as_binary() {
        assert!(matches!(
            to_message(Bytes::from_static(b"SIP/2.0 200 OK\r\n\r\n")),
            Message::Text(_)
        ));
        assert!(matches!(
            to_message(Bytes::from_static(b"\xff\xfe")),
            Message::Binary(_)
        ));
    }
}
