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

    let mut child = Command::new(env!("CARGO_BIN_EXE_switchback"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _switch = Switch(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("switch did not get ready");
        if let Some(rest) = line.strip_prefix("listening trunks tls ") {
            addr = Some(rest.trim().to_string());
        }
        if line == "ready" {
            break;
        }
    }
    let addr = addr.expect("no tls listener reported");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
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
