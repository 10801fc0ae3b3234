//! Every fixture in `fixtures/sip/` thrown at the running binary.
//!
//! Over UDP: an `answer = N` fixture must be answered with N; a `drop` fixture
//! must not be answered (checked by sending an OPTIONS probe right after it on
//! the same socket: the probe's 200 must come back and nothing for the dropped
//! message before it). Over TCP: the stream-safe answer fixtures and the 70 KB
//! message. Afterwards the switch must be alive and answer OPTIONS on both.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;
const SENT_BY: &str = "SIP/2.0/UDP 192.0.2.10:5060";

struct Fixture {
    name: String,
    bytes: Vec<u8>,
    answer: Option<u16>,
    drop: bool,
}

fn fixtures() -> Vec<Fixture> {
    let dir = repo_path("fixtures/sip");
    let man: toml::Table = std::fs::read_to_string(dir.join("expected.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut out: BTreeMap<String, Fixture> = BTreeMap::new();
    for (name, e) in &man {
        let bytes = std::fs::read(dir.join(format!("{name}.sip"))).unwrap();
        out.insert(
            name.clone(),
            Fixture {
                name: name.clone(),
                bytes,
                answer: e
                    .get("answer")
                    .and_then(|v| v.as_integer())
                    .map(|n| n as u16),
                drop: e.get("outcome").and_then(|v| v.as_str()) == Some("drop"),
            },
        );
    }
    out.into_values().collect()
}

/// Points the fixture's Via at our socket (and transport), so replies reach us.
fn readdress(bytes: &[u8], local: SocketAddr, transport: &str) -> Vec<u8> {
    let from = SENT_BY.as_bytes();
    let to = format!("SIP/2.0/{transport} {local}");
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to.as_bytes());
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn call_id_of(name: &str) -> String {
    format!("{name}@192.0.2.10")
}

#[test]
fn fixtures_over_udp_then_still_serving() {
    let mut sw = Switch::start(&TestConfig::default());
    let target = sw.addr("udp");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(target).unwrap();
    let local = sock.local_addr().unwrap();
    let all = fixtures();
    let known: Vec<String> = all.iter().map(|f| call_id_of(&f.name)).collect();
    let mut problems = Vec::new();
    let mut checked = 0;
    for f in &all {
        let bytes = readdress(&f.bytes, local, "UDP");
        if bytes.len() > MAX_DATAGRAM {
            continue; // sent over TCP below
        }
        sock.send(&bytes).unwrap();
        if let Some(code) = f.answer {
            checked += 1;
            let (got, _) = udp_await_response(&sock, &call_id_of(&f.name), Duration::from_secs(5));
            if got != Some(code) {
                problems.push(format!("{}: expected {code}, got {got:?}", f.name));
            }
        } else if f.drop {
            checked += 1;
            let probe = format!("probe-after-{}", f.name);
            sock.send(&options_request(local, Transport::Udp, &probe))
                .unwrap();
            let (got, others) = udp_await_response(&sock, &probe, EVENT);
            if got != Some(200) {
                problems.push(format!(
                    "{}: the OPTIONS probe after it got {got:?}",
                    f.name
                ));
            }
            // Anything else that arrived must belong to an earlier, answerable fixture.
            for (code, cid) in others {
                if !known.contains(&cid) || cid == call_id_of(&f.name) {
                    problems.push(format!(
                        "{}: should be dropped, but {code} {cid:?} arrived",
                        f.name
                    ));
                }
            }
        }
        sw.assert_alive();
    }
    assert!(checked >= 20, "only {checked} fixtures checked");
    sw.assert_alive();
    assert_eq!(
        udp_options(target, "final-udp"),
        Some(200),
        "UDP OPTIONS after the fixtures\n{}",
        sw.report()
    );
    assert_eq!(
        tcp_options(sw.addr("tcp"), "final-tcp"),
        Some(200),
        "TCP OPTIONS after the fixtures\n{}",
        sw.report()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{}",
        problems.len(),
        problems.join("\n  "),
        sw.report()
    );
}

/// Answerable fixtures whose framing does not depend on Content-Length
/// semantics (on a stream, a short body just means "wait for more").
const STREAM_SAFE: &[&str] = &[
    "unknown_method",
    "unknown_uri_scheme",
    "version_7",
    "cseq_method_mismatch",
    "max_forwards_non_numeric",
    "expires_non_numeric",
    "header_without_colon",
];

#[test]
fn fixtures_over_tcp_then_still_serving() {
    let mut sw = Switch::start(&TestConfig::default());
    let target = sw.addr("tcp");
    let all = fixtures();
    let mut problems = Vec::new();

    // One connection, several bad requests in a row: each answered, the connection kept.
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
    let local = s.local_addr().unwrap();
    let mut buf = Vec::new();
    for name in STREAM_SAFE {
        let f = all
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("fixture {name}"));
        let want = f.answer.expect("answer fixture");
        s.write_all(&readdress(&f.bytes, local, "TCP")).unwrap();
        let cid = call_id_of(name);
        let got = loop {
            match read_stream_message(&mut s, &mut buf, Duration::from_secs(5)) {
                Ok(Some(m)) => match response_summary(&m) {
                    Some((code, c)) if c == cid => break Some(code),
                    _ => continue,
                },
                Ok(None) => break None,
                Err(_) => break None,
            }
        };
        if got != Some(want) {
            problems.push(format!("{name} over TCP: expected {want}, got {got:?}"));
        }
    }

    // 70 KB > max_message_size: 513, or the connection closed; never a hang or a crash.
    let big = all
        .iter()
        .find(|f| f.name == "too_large_70k")
        .expect("too_large_70k fixture");
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).unwrap();
    let local = s.local_addr().unwrap();
    let _ = s.write_all(&readdress(&big.bytes, local, "TCP")); // may fail if the switch closes early
    let mut buf = Vec::new();
    match read_stream_message(&mut s, &mut buf, Duration::from_secs(10)) {
        Ok(Some(m)) => match response_summary(&m) {
            Some((513, _)) => {}
            other => problems.push(format!(
                "too_large_70k over TCP: expected 513 or close, got {other:?}"
            )),
        },
        Ok(None) => {} // closed: acceptable for an over-long frame
        Err(e) => problems.push(format!(
            "too_large_70k over TCP: neither answered nor closed within 10 s ({e})"
        )),
    }

    sw.assert_alive();
    assert_eq!(
        tcp_options(target, "final-tcp"),
        Some(200),
        "TCP OPTIONS afterwards\n{}",
        sw.report()
    );
    assert_eq!(
        udp_options(sw.addr("udp"), "final-udp"),
        Some(200),
        "UDP OPTIONS afterwards\n{}",
        sw.report()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}\n{}",
        problems.len(),
        problems.join("\n  "),
        sw.report()
    );
}
