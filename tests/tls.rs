//! TLS transport against the real binary: a rustls client with a certificate
//! made for the test sends OPTIONS over TLS and must get 200 OK on the same
//! connection. (SIPp 3.6 from Debian has no TLS, so the client is rustls.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

struct Switch(Child);

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the switch on `config` and returns it with its stdout lines up to `ready`.
fn start(config: &std::path::Path) -> (Switch, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchback"))
        // The config's folder as working directory: the default callback
        // database is relative, and must not land in the source tree.
        .current_dir(config.parent().unwrap())
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let switch = Switch(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("switch did not get ready");
        if line == "ready" {
            return (switch, lines);
        }
        lines.push(line);
    }
}

/// A client that trusts only `cert`.
fn client(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(client)
}

#[test]
fn options_over_tls_is_answered_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let config = dir.path().join("switchback.toml");
    std::fs::write(
        &config,
        "[profiles.trunks]\nlisten = [{ transport = \"tls\", address = \"127.0.0.1:0\" }]\n\
         [profiles.trunks.tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    )
    .unwrap();

    let (_switch, lines) = start(&config);
    let addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("listening trunks tls "))
        .map(|a| a.trim().to_string());
    let addr = addr.expect("no tls listener reported");

    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(client(&cert), name).unwrap();
    let tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let local = tcp.local_addr().unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let request = format!(
        "OPTIONS sips:{addr} SIP/2.0\r\nVia: SIP/2.0/TLS {local};branch=z9hG4bKtls1\r\n\
         Max-Forwards: 70\r\nFrom: <sips:probe@127.0.0.1>;tag=t1\r\nTo: <sips:{addr}>\r\n\
         Call-ID: tls-options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    tls.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf).expect("no answer over TLS");
        assert!(n > 0, "connection closed before an answer");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");
    assert!(text.contains("Call-ID: tls-options-1"), "{text}");
    assert!(text.contains("Allow: "), "{text}");
}

/// One HTTP/1.1 GET over TLS; returns the status line and the body.
fn https_get(
    cert: &rcgen::CertifiedKey<rcgen::KeyPair>,
    addr: &str,
    path: &str,
    key: Option<&str>,
) -> (String, String) {
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(client(cert), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let key = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{key}Connection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the server closes (Connection: close); an unclean close
    // after the whole answer is not this test's concern.
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

#[test]
fn the_http_api_serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("http-cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("http-key.pem"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let config = dir.path().join("switchback.toml");
    std::fs::write(
        &config,
        "[general]\nhttp_listen = \"127.0.0.1:0\"\nhttp_tls_cert = \"http-cert.pem\"\n\
         http_tls_key = \"http-key.pem\"\nhttp_api_keys = [\"k-123-0123456789abcdef\"]\n\
         [profiles.internal]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n",
    )
    .unwrap();
    let (_switch, lines) = start(&config);
    let addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("http "))
        .expect("no http listener reported")
        .trim()
        .to_string();

    let (status, body) = https_get(&cert, &addr, "/v1/health", None);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let (status, body) = https_get(&cert, &addr, "/v1/calls", None);
    assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{body}");
    assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
    let (status, body) = https_get(&cert, &addr, "/v1/calls", Some("k-123-0123456789abcdef"));
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains("\"calls\":[]"), "{body}");
}
