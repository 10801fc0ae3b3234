//! Outbound TLS to trunk peers against the real binary: a phone (SIPp)
//! dials a number routed to a peer with `transport = "tls"`; the switch
//! opens a TLS connection of its own to the peer, checks its certificate
//! against the peer's `ca_file` for the peer's host name, and the call is
//! set up, bridged and hung up over it. A second peer whose certificate the
//! switch does not trust never receives the call: the handshake fails and
//! the caller gets 503.
//!
//! The trunks are rustls servers run by the test with certificates made
//! for it (rcgen, as `tests/tls.rs` does); SIPp 3.6 has no TLS.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use common::calls::{CallConfig, Lab, Rule};
use common::sippbg::header;
use common::*;

/// What a test trunk saw: each SIP message, or how its handshake ended.
#[derive(Debug)]
enum Seen {
    Message(String),
    HandshakeFailed(String),
}

/// A TLS trunk on a fresh loopback port with `cert`: it answers INVITE
/// with 200 (SDP at `rtp_port`), other requests with 200, and reports
/// everything it reads. It serves connections one after the other.
fn tls_trunk(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    rtp_port: u16,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls_pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { return };
            tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            // Drive the handshake to its end before any SIP.
            while tls.conn.is_handshaking() {
                if let Err(e) = tls.conn.complete_io(&mut tls.sock) {
                    let _ = tx.send(Seen::HandshakeFailed(e.to_string()));
                    break;
                }
            }
            if tls.conn.is_handshaking() {
                continue;
            }
            serve(&mut tls, addr, rtp_port, &tx);
        }
    });
    (addr, rx)
}

/// Reads SIP messages off one connection (framed by Content-Length) and answers them.
fn serve(
    tls: &mut rustls::StreamOwned<rustls::ServerConnection, std::net::TcpStream>,
    me: SocketAddr,
    rtp_port: u16,
    tx: &mpsc::Sender<Seen>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    (n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + len {
                break;
            }
            let msg = String::from_utf8_lossy(&buf[..end + 4 + len]).to_string();
            buf.drain(..end + 4 + len);
            if let Some(answer) = answer(&msg, me, rtp_port) {
                if tls.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            let _ = tx.send(Seen::Message(msg));
        }
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn answer(msg: &str, me: SocketAddr, rtp_port: u16) -> Option<String> {
    let method = msg.split(' ').next()?;
    if method.starts_with("SIP/") || method == "ACK" {
        return None;
    }
    let h = |name: &str| header(msg, name).unwrap_or("").to_string();
    let mut to = h("To");
    if !to.contains("tag=") {
        to.push_str(";tag=tlstrunk");
    }
    let (extra, body) = if method == "INVITE" {
        let sdp = format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
        );
        (
            format!("Contact: <sip:gw@{me};transport=tls>\r\nContent-Type: application/sdp\r\n"),
            sdp,
        )
    } else {
        (String::new(), String::new())
    };
    Some(format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        h("Via"),
        h("From"),
        h("Call-ID"),
        h("CSeq"),
        body.len()
    ))
}

/// The next message a trunk reports whose first line starts with `start`.
fn next_message(rx: &mpsc::Receiver<Seen>, start: &str, sw: &mut Switch) -> String {
    let deadline = std::time::Instant::now() + EVENT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Seen::Message(m)) if m.starts_with(start) => return m,
            Ok(other) => seen.push(format!("{other:?}")),
            Err(_) => panic!(
                "the TLS trunk got no {start:?} in {EVENT:?}; it saw {seen:?}\n{}",
                sw.report()
            ),
        }
    }
}

fn cert() -> rcgen::CertifiedKey<rcgen::KeyPair> {
    rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap()
}

/// A lab whose `external` profile has two TLS peers, both trusting only
/// `trusted` (their `ca_file`): `tls-trunk` (numbers 555...) and
/// `bad-trunk` (numbers 666...).
fn lab(trusted: &rcgen::CertifiedKey<rcgen::KeyPair>, good: SocketAddr, bad: SocketAddr) -> Lab {
    let mut cfg = CallConfig::default();
    let gw = |pattern: &str, peer: &str| Rule {
        pattern: pattern.into(),
        to: "gateway",
        gateway: Some(peer.into()),
        profile: None,
        number: Some("$1".into()),
        from: vec!["internal".into()],
    };
    cfg.dialplan.truncate(1); // keep 1xxx -> user
    cfg.dialplan.push(gw("^555([0-9]+)$", "tls-trunk"));
    cfg.dialplan.push(gw("^666([0-9]+)$", "bad-trunk"));
    let recordings = tempfile::tempdir().unwrap();
    cfg.recordings_dir = Some(recordings.path().to_path_buf());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("trunk-ca.pem"), trusted.cert.pem()).unwrap();
    let text = format!(
        "{}\n[[profiles.external.peers]]\nname = \"tls-trunk\"\naddress = \"{good}\"\ntransport = \"tls\"\nca_file = \"trunk-ca.pem\"\n\
         \n[[profiles.external.peers]]\nname = \"bad-trunk\"\naddress = \"{bad}\"\ntransport = \"tls\"\nca_file = \"trunk-ca.pem\"\n",
        cfg.to_toml()
    );
    let path = dir.path().join("switchback.toml");
    std::fs::write(&path, text).unwrap();
    Lab {
        sw: Switch::start_in(dir, path),
        cfg,
        recordings,
    }
}

#[test]
fn a_call_to_a_tls_trunk_goes_over_a_verified_connection_of_our_own() {
    let good_cert = cert();
    let bad_cert = cert();
    let (good, good_rx) = tls_trunk(&good_cert, sippbg::free_media_port());
    let (bad, bad_rx) = tls_trunk(&bad_cert, sippbg::free_media_port());
    let mut lab = lab(&good_cert, good, bad);

    // Trusted: the whole call over the switch's own TLS connection.
    let caller = lab
        .caller("1001", "5551234", "call")
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    let invite = next_message(&good_rx, "INVITE ", &mut lab.sw);
    assert!(
        invite.starts_with(&format!("INVITE sip:1234@{good}")),
        "the number, to the peer's address: {invite}"
    );
    let via = header(&invite, "Via").unwrap_or("");
    assert!(via.starts_with("SIP/2.0/TLS "), "sent over TLS: {via}");
    lab.wait("call-bridged", &[("call", &call)]);
    next_message(&good_rx, "ACK ", &mut lab.sw);
    caller.finish(&mut lab.sw);
    next_message(&good_rx, "BYE ", &mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "a")]);

    // Not trusted: the handshake fails, the peer gets nothing, the caller 503.
    let run = lab.caller("1002", "6665678", "call").run();
    assert_eq!(
        run.final_status(),
        Some(503),
        "the caller of an untrusted peer\n{}\n{}",
        run.describe(),
        lab.sw.report()
    );
    lab.wait("call-leg-failed", &[("status", "503")]);
    match bad_rx.recv_timeout(EVENT) {
        // The switch refused the certificate with an alert (UnknownCA).
        Ok(Seen::HandshakeFailed(e)) => assert!(e.contains("alert"), "{e}"),
        other => panic!("the untrusted trunk should see a failed handshake only: {other:?}"),
    }
    assert!(
        !matches!(bad_rx.try_recv(), Ok(Seen::Message(_))),
        "no SIP reached the untrusted trunk"
    );
    let log = lab.sw.stderr_tail();
    assert!(
        log.contains("outbound connection failed") && log.contains("tls handshake"),
        "the log says why:\n{log}"
    );
}
