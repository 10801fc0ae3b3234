//! SIP over WebSocket (RFC 7118) against the real binary, with a Rust
//! WebSocket client (tokio-tungstenite) as the phone:
//!
//! - it registers with digest over `ws` (Via host `*.invalid`, Contact with
//!   `;transport=ws;ob`, RFC 5626 instance and reg-id), OPTIONS gets 200 on
//!   the same connection, a CRLF-CRLF keep-alive gets a CRLF and a WebSocket
//!   ping a pong; a call from a SIPp phone over UDP reaches it down that
//!   connection and its 486 goes back to SIPp; when the socket closes the
//!   binding goes (`binding-closed`) and a new call finds no one;
//! - the handshake is refused with 403 for a foreign Origin (the default
//!   allows loopback pages only; a configured list replaces that) and with
//!   400 without the `sip` subprotocol; a client without Origin (a phone,
//!   not a browser) is let in;
//! - a message over the size cap closes the connection with 1009 and is
//!   counted (the switch's log line carries the total), and the listener
//!   goes on serving;
//! - `wss` with the profile's certificate, and the per-source connection
//!   cap, which holds for WebSocket as for TCP.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::calls::{CallConfig, Lab};
use common::sippbg::{cseq_method, header, headers};
use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

const USER: &str = "1001";
const PASS: &str = "pw1001";

/// Bound on one wait for a WebSocket message.
const IO: Duration = Duration::from_secs(10);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

type Ws = WebSocketStream<Box<dyn Io>>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The test config plus a `ws` listener on `internal` (and `extra` TOML
/// appended to the profile).
fn with_ws(toml: &str, extra: &str) -> String {
    let tcp = "  { transport = \"tcp\", address = \"127.0.0.1:0\" },\n";
    assert!(
        toml.contains(tcp),
        "the test config has no tcp listener line"
    );
    let t = toml.replacen(
        tcp,
        &format!("{tcp}  {{ transport = \"ws\", address = \"127.0.0.1:0\" }},\n"),
        1,
    );
    format!("{t}\n{extra}\n")
}

/// A WebSocket handshake to `addr` (over `tls` when given) offering
/// `protocol` and sending `origin`; the answer's subprotocol on success.
fn handshake(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    origin: Option<&str>,
    protocol: Option<&str>,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
) -> Result<(Ws, Option<String>), WsError> {
    rt.block_on(async {
        let tcp = tokio::time::timeout(IO, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect timed out")?;
        let (stream, scheme): (Box<dyn Io>, &str) = match tls {
            None => (Box::new(tcp), "ws"),
            Some(config) => {
                let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
                let s = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await?;
                (Box::new(s), "wss")
            }
        };
        let mut request = format!("{scheme}://{addr}/").into_client_request()?;
        if let Some(o) = origin {
            request.headers_mut().insert("origin", o.parse().unwrap());
        }
        if let Some(p) = protocol {
            request
                .headers_mut()
                .insert("sec-websocket-protocol", p.parse().unwrap());
        }
        let (ws, response) = tokio::time::timeout(
            IO,
            tokio_tungstenite::client_async_with_config(request, stream, None),
        )
        .await
        .expect("handshake timed out")?;
        let chosen = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok((ws, chosen))
    })
}

/// The status a refused handshake got.
fn refused_status(r: Result<(Ws, Option<String>), WsError>) -> u16 {
    match r {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("handshake failed without an HTTP answer: {e}"),
        Ok(_) => panic!("handshake accepted"),
    }
}

/// A SIP phone on one WebSocket, as a browser would be (RFC 7118 §5: a
/// made-up `.invalid` host in Via and Contact).
struct WsPhone {
    rt: tokio::runtime::Runtime,
    ws: Ws,
    host: String,
    user: String,
    n: u32,
    /// Every SIP message received, for failure reports.
    log: Vec<String>,
}

impl WsPhone {
    fn connect(addr: SocketAddr, user: &str) -> WsPhone {
        let rt = runtime();
        let (ws, chosen) = handshake(&rt, addr, None, Some("sip"), None)
            .unwrap_or_else(|e| panic!("ws handshake to {addr}: {e}"));
        assert_eq!(
            chosen.as_deref(),
            Some("sip"),
            "the answer names the subprotocol"
        );
        WsPhone {
            rt,
            ws,
            host: format!("ws{}.invalid", std::process::id()),
            user: user.into(),
            n: 0,
            log: Vec::new(),
        }
    }

    fn send(&mut self, text: &str) {
        self.rt
            .block_on(self.ws.send(Message::text(text.to_string())))
            .expect("ws send");
    }

    /// The next WebSocket message other than a ping or pong.
    fn next(&mut self) -> Option<Message> {
        let deadline = tokio::time::Instant::now() + IO;
        loop {
            let ws = &mut self.ws;
            let got = self
                .rt
                .block_on(async { tokio::time::timeout_at(deadline, ws.next()).await });
            match got {
                Err(_) => panic!(
                    "no WebSocket message in {IO:?}; SIP seen:\n{}",
                    self.log.join("\n---\n")
                ),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(Some(Ok(m))) => return Some(m),
            }
        }
    }

    /// The next SIP message (text or binary), skipping keep-alives.
    fn recv(&mut self) -> String {
        loop {
            let m = self.next().unwrap_or_else(|| {
                panic!(
                    "the switch closed the WebSocket; SIP seen:\n{}",
                    self.log.join("\n---\n")
                )
            });
            let text = match m {
                Message::Text(t) => t.to_string(),
                Message::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
                other => panic!("unexpected WebSocket message {other:?}"),
            };
            if text.trim().is_empty() {
                continue;
            }
            self.log.push(text.clone());
            return text;
        }
    }

    /// The next response to the request with this Call-ID and a final status.
    fn final_response(&mut self, call_id: &str) -> String {
        loop {
            let m = self.recv();
            if m.starts_with("SIP/2.0 ")
                && header(&m, "Call-ID") == Some(call_id)
                && !m.starts_with("SIP/2.0 1")
            {
                return m;
            }
        }
    }

    fn branch(&mut self) -> String {
        self.n += 1;
        format!("z9hG4bK-ws-{}-{}", std::process::id(), self.n)
    }

    fn contact(&self) -> String {
        format!(
            "<sip:{}@{};transport=ws;ob>;reg-id=1;+sip.instance=\"<urn:uuid:00000000-0000-4000-8000-{:012}>\"",
            self.user,
            self.host,
            std::process::id()
        )
    }

    fn options(&mut self, call_id: &str) -> String {
        let branch = self.branch();
        let msg = format!(
            "OPTIONS sip:switchback.local SIP/2.0\r\n\
             Via: SIP/2.0/WS {host};branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@switchback.local>;tag=o{n}\r\n\
             To: <sip:switchback.local>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            host = self.host,
            user = self.user,
            n = self.n,
        );
        self.send(&msg);
        self.final_response(call_id)
    }

    fn register_request(&mut self, call_id: &str, cseq: u32, expires: u32, auth: &str) -> String {
        let branch = self.branch();
        format!(
            "REGISTER sip:switchback.local SIP/2.0\r\n\
             Via: SIP/2.0/WS {host};branch={branch}\r\n\
             Max-Forwards: 69\r\n\
             From: <sip:{user}@switchback.local>;tag=r{pid}\r\n\
             To: <sip:{user}@switchback.local>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: {contact};expires={expires}\r\n\
             Supported: path, outbound, gruu\r\n\
             {auth}User-Agent: switchback-ws-test\r\n\
             Content-Length: 0\r\n\r\n",
            host = self.host,
            user = self.user,
            pid = std::process::id(),
            contact = self.contact(),
        )
    }

    /// REGISTER, its 401, then REGISTER with an MD5 digest; the 200 OK.
    fn register(&mut self, password: &str, expires: u32) -> String {
        let call_id = format!("ws-reg-{}-{}", std::process::id(), self.user);
        let first = self.register_request(&call_id, 1, expires, "");
        self.send(&first);
        let challenge = self.final_response(&call_id);
        assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
        let www = header(&challenge, "WWW-Authenticate").expect("a challenge");
        let auth = digest(
            www,
            &self.user,
            password,
            "REGISTER",
            "sip:switchback.local",
        );
        let second =
            self.register_request(&call_id, 2, expires, &format!("Authorization: {auth}\r\n"));
        self.send(&second);
        self.final_response(&call_id)
    }

    /// Answers an INVITE (after a 100) with `code`, then waits for the
    /// switch's ACK of that final response. Returns the INVITE.
    fn refuse_invite(&mut self, code: u16, reason: &str) -> String {
        let invite = loop {
            let m = self.recv();
            if m.starts_with("INVITE ") {
                break m;
            }
        };
        let vias: String = headers(&invite, "Via")
            .iter()
            .map(|v| format!("Via: {v}\r\n"))
            .collect();
        let mut common = format!(
            "{vias}From: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
            header(&invite, "From").unwrap(),
            header(&invite, "Call-ID").unwrap(),
            header(&invite, "CSeq").unwrap()
        );
        let to = header(&invite, "To").unwrap();
        self.send(&format!(
            "SIP/2.0 100 Trying\r\n{common}To: {to}\r\nContent-Length: 0\r\n\r\n"
        ));
        common.push_str(&format!("To: {to};tag=ws{}\r\n", std::process::id()));
        self.send(&format!(
            "SIP/2.0 {code} {reason}\r\n{common}Content-Length: 0\r\n\r\n"
        ));
        let call_id = header(&invite, "Call-ID").unwrap().to_string();
        loop {
            let m = self.recv();
            if m.starts_with("ACK ") && header(&m, "Call-ID") == Some(call_id.as_str()) {
                return invite;
            }
        }
    }

    /// Sends a close and reads until the switch has closed its side too
    /// (its place under the caps is free by then).
    fn close(mut self) {
        let _ = self.rt.block_on(self.ws.close(None));
        while self.next().is_some() {}
        let mut inner = self.ws.into_inner();
        let mut buf = [0u8; 256];
        self.rt.block_on(async {
            loop {
                match tokio::time::timeout(IO, inner.read(&mut buf)).await {
                    Err(_) => panic!("the switch did not close the connection in {IO:?}"),
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => continue,
                }
            }
        });
    }
}

/// An `Authorization` value answering `www` (RFC 2617 MD5, qop=auth when offered).
fn digest(www: &str, user: &str, password: &str, method: &str, uri: &str) -> String {
    use md5::{Digest, Md5};
    let param = |k: &str| -> Option<String> {
        let i = www.find(&format!("{k}="))?;
        let v = &www[i + k.len() + 1..];
        Some(match v.strip_prefix('"') {
            Some(q) => q[..q.find('"')?].to_string(),
            None => v.split([',', ' ']).next()?.to_string(),
        })
    };
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    let realm = param("realm").expect("realm");
    let nonce = param("nonce").expect("nonce");
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("{method}:{uri}"));
    match param("qop") {
        Some(q) if q.split(',').any(|t| t.trim() == "auth") => {
            let (nc, cnonce) = ("00000001", "0a4f113b");
            let response = h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 response=\"{response}\", algorithm=MD5, qop=auth, nc={nc}, cnonce=\"{cnonce}\""
            )
        }
        _ => {
            let response = h(format!("{ha1}:{nonce}:{ha2}"));
            format!(
                "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
                 response=\"{response}\", algorithm=MD5"
            )
        }
    }
}

/// The call lab (SIPp phones over UDP) with a `ws` listener on `internal`.
fn ws_lab() -> Lab {
    let mut cfg = CallConfig::default();
    let recordings = tempfile::tempdir().expect("tempdir");
    cfg.recordings_dir = Some(recordings.path().to_path_buf());
    let sw = Switch::start_with_text(&with_ws(&cfg.to_toml(), ""));
    Lab {
        sw,
        cfg,
        recordings,
    }
}

#[test]
fn a_ws_phone_registers_is_called_down_its_connection_and_goes_with_it() {
    let mut lab = ws_lab();
    let ws_addr = lab.sw.addr("ws");
    let mut phone = WsPhone::connect(ws_addr, USER);

    // OPTIONS: answered on the connection, the .invalid Via stamped.
    let ok = phone.options("ws-options-1");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let via = header(&ok, "Via").unwrap();
    assert!(
        via.starts_with("SIP/2.0/WS ")
            && via.contains(".invalid")
            && via.contains("received=127.0.0.1"),
        "{via}"
    );

    // RFC 5626 §3.5.1 keep-alive: a double CRLF gets a CRLF, not a parse.
    phone.send("\r\n\r\n");
    match phone.next() {
        Some(Message::Text(t)) => assert_eq!(t.as_str(), "\r\n"),
        other => panic!("no CRLF pong: {other:?}"),
    }
    // A WebSocket ping gets its pong (read past by `next`, so look here).
    phone
        .rt
        .block_on(phone.ws.send(Message::Ping(b"k".to_vec().into())))
        .unwrap();
    let ws = &mut phone.ws;
    let pong = phone
        .rt
        .block_on(async { tokio::time::timeout(IO, ws.next()).await });
    assert!(
        matches!(&pong, Ok(Some(Ok(Message::Pong(p)))) if p.as_ref() == b"k"),
        "{pong:?}"
    );

    // Digest registration over WS.
    let ok = phone.register(PASS, 600);
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    let contact = header(&ok, "Contact").unwrap();
    assert!(
        contact.contains(";transport=ws;ob") && contact.contains("reg-id=1"),
        "{contact}"
    );
    let registered = lab.sw.await_event("registered", &[("user", USER)], EVENT);
    assert!(
        registered
            .get("contact")
            .contains(".invalid;transport=ws;ob"),
        "{}",
        registered.line
    );

    // A call from a SIPp phone over UDP reaches the WS phone down its
    // connection; its 486 goes back through the switch to SIPp.
    let caller = lab.caller("1002", USER, "call").spawn();
    let invite = phone.refuse_invite(486, "Busy Here");
    assert!(
        invite.starts_with(&format!("INVITE sip:{USER}@{}", phone.host)),
        "{invite}"
    );
    assert!(
        header(&invite, "Via").unwrap().starts_with("SIP/2.0/WS "),
        "{invite}"
    );
    let run = caller.finish(&mut lab.sw);
    assert_eq!(run.final_status(), Some(486), "{}", run.describe());

    // The socket closes: the binding goes with it, and is reported.
    phone.close();
    let gone = lab
        .sw
        .await_event("binding-closed", &[("user", USER)], EVENT);
    assert!(
        gone.get("contact").contains(".invalid;transport=ws;ob"),
        "{}",
        gone.line
    );
    // No one to call now.
    let caller = lab.caller("1002", USER, "call").spawn();
    let run = caller.finish(&mut lab.sw);
    let status = run.final_status();
    assert!(
        matches!(status, Some(404 | 480)),
        "{status:?}\n{}",
        run.describe()
    );
    assert!(
        !run.trace()
            .iter()
            .any(|(rx, m)| *rx && cseq_method(m) == "INVITE" && m.starts_with("SIP/2.0 5")),
        "no transport failure: the binding was gone before the call"
    );
}

#[test]
fn handshakes_need_the_sip_subprotocol_and_an_allowed_origin() {
    let rt = runtime();
    // Default: no list, loopback pages only.
    let sw = Switch::start_with_text(&with_ws(&TestConfig::default().to_toml(), ""));
    let addr = sw.addr("ws");
    let evil = handshake(&rt, addr, Some("https://evil.example"), Some("sip"), None);
    assert_eq!(refused_status(evil), 403, "a foreign Origin");
    let none = handshake(&rt, addr, Some("http://127.0.0.1:8080"), None, None);
    assert_eq!(refused_status(none), 400, "no subprotocol");
    let other = handshake(&rt, addr, None, Some("chat"), None);
    assert_eq!(refused_status(other), 400, "another subprotocol only");
    let file = handshake(&rt, addr, Some("null"), Some("sip"), None);
    assert_eq!(refused_status(file), 403, "a file:// page");
    for origin in [
        Some("http://127.0.0.1:8080"),
        Some("http://localhost:3000"),
        None,
    ] {
        let (_ws, chosen) = handshake(&rt, addr, origin, Some("chat, sip"), None)
            .unwrap_or_else(|e| panic!("{origin:?} refused: {e}"));
        assert_eq!(chosen.as_deref(), Some("sip"));
    }
    drop(sw);

    // A list replaces the default.
    let sw = Switch::start_with_text(&with_ws(
        &TestConfig::default().to_toml(),
        "[profiles.internal.websocket]\nallowed_origins = [\"https://desk.example.com\"]\n",
    ));
    let addr = sw.addr("ws");
    assert!(handshake(
        &rt,
        addr,
        Some("https://desk.example.com"),
        Some("sip"),
        None
    )
    .is_ok());
    let loopback = handshake(&rt, addr, Some("http://127.0.0.1:8080"), Some("sip"), None);
    assert_eq!(refused_status(loopback), 403);
    let evil = handshake(
        &rt,
        addr,
        Some("https://desk.example.com.evil.example"),
        Some("sip"),
        None,
    );
    assert_eq!(refused_status(evil), 403);
}

#[test]
fn an_oversize_message_closes_the_connection_and_is_counted() {
    let mut sw = Switch::start_with_text(&with_ws(&TestConfig::default().to_toml(), ""));
    let addr = sw.addr("ws");
    let mut phone = WsPhone::connect(addr, USER);
    // One byte over max_message_size (65535), in one frame.
    let big = format!(
        "OPTIONS sip:a SIP/2.0\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(65_536)
    );
    phone.send(&big);
    match phone.next() {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size, "{frame:?}"),
        other => panic!("no 1009 close: {other:?}\n{}", sw.report()),
    }
    assert!(phone.next().is_none(), "the connection ends");
    // The switch logged the refusal, with its total, before it closed.
    let log = sw.stderr_tail();
    let line = log
        .lines()
        .find(|l| l.contains("websocket message over the size cap"))
        .unwrap_or_else(|| panic!("no oversize log line:\n{log}"));
    assert!(line.contains("oversize=1"), "{line}");
    // The listener goes on; a message at the cap's size is fine.
    let mut phone = WsPhone::connect(addr, USER);
    let ok = phone.options("ws-after-oversize");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
}

#[test]
fn wss_uses_the_profile_certificate_and_the_connection_caps_hold() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let mut toml = with_ws(
        &TestConfig::default().to_toml(),
        &format!(
            "[profiles.internal.tls]\ncert = {:?}\nkey = {:?}\n\
             [profiles.internal.connections]\nmax_per_source = 2\nmax_total = 10\n",
            dir.path().join("cert.pem").display().to_string(),
            dir.path().join("key.pem").display().to_string()
        ),
    );
    toml = toml.replacen(
        "{ transport = \"ws\", address = \"127.0.0.1:0\" },",
        "{ transport = \"wss\", address = \"127.0.0.1:0\" },",
        1,
    );
    let sw = Switch::start_with_text(&toml);
    let addr = sw.addr("wss");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let client = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let (mut first, chosen) = handshake(&rt, addr, None, Some("sip"), Some(client.clone()))
        .unwrap_or_else(|e| panic!("wss handshake: {e}"));
    assert_eq!(chosen.as_deref(), Some("sip"));
    let options = "OPTIONS sip:switchback.local SIP/2.0\r\nVia: SIP/2.0/WSS wss1.invalid;branch=z9hG4bK-wss-1\r\n\
                   Max-Forwards: 70\r\nFrom: <sip:probe@switchback.local>;tag=w1\r\nTo: <sip:switchback.local>\r\n\
                   Call-ID: wss-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    rt.block_on(first.send(Message::text(options))).unwrap();
    let answer = rt
        .block_on(async { tokio::time::timeout(IO, first.next()).await })
        .expect("no answer over wss");
    let text = match answer {
        Some(Ok(Message::Text(t))) => t.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(
        text.starts_with("SIP/2.0 200") && text.contains("SIP/2.0/WSS wss1.invalid"),
        "{text}"
    );

    // Two from this address are the cap: a third is closed before its
    // handshake completes.
    let (_second, _) =
        handshake(&rt, addr, None, Some("sip"), Some(client.clone())).expect("second");
    let started = Instant::now();
    let third = handshake(&rt, addr, None, Some("sip"), Some(client.clone()));
    assert!(
        third.is_err(),
        "a third connection past max_per_source = 2 was accepted"
    );
    assert!(started.elapsed() < IO, "closed at once, not timed out");
}
