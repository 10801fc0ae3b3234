//! Stream connection caps against the real binary: a flood of idle TCP
//! connections from one source (and a few from other loopback sources,
//! which Linux routes on `lo`) is cut at `max_per_source` and
//! `max_total`, each refused connection is closed at once, the accepted
//! ones stay usable, and a phone on another source still registers (SIPp
//! over TCP: 401, then 200). A peer that sends an endless header block or
//! announces a body larger than `max_pending_bytes` is disconnected.
//!
//! An accepted connection is told from a refused one without waiting: a
//! CRLF-CRLF ping is answered by a CRLF pong (RFC 5626) on an open one; a
//! refused one reads as closed (end of stream or reset).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

const USER: &str = "1001";
const PASS: &str = "pw1001";

/// Bounded wait on one socket operation.
const IO: Duration = Duration::from_secs(10);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A TCP connection to `target` from `ip` (bound before connecting, which
/// std cannot do).
fn connect_from(rt: &tokio::runtime::Runtime, ip: &str, target: SocketAddr) -> TcpStream {
    let ip: IpAddr = ip.parse().unwrap();
    let stream = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip, 0))
            .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
        tokio::time::timeout(IO, s.connect(target))
            .await
            .unwrap_or_else(|_| panic!("connect from {ip} timed out"))
            .unwrap_or_else(|e| panic!("connect from {ip}: {e}"))
    });
    let std = stream.into_std().unwrap();
    std.set_nonblocking(false).unwrap();
    std.set_read_timeout(Some(IO)).unwrap();
    std
}

/// True when the switch keeps the connection (it answers a ping with a
/// pong), false when it closed it; panics when neither happens in time.
fn is_open(s: &mut TcpStream, what: &str) -> bool {
    if s.write_all(b"\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 8];
    match s.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => {
            assert_eq!(&buf[..n], b"\r\n", "{what}: a pong");
            true
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("{what}: neither answered nor closed within {IO:?}")
        }
        Err(_) => false,
    }
}

/// Opens `n` connections from `ip` one after the other; returns the ones
/// the switch kept and how many it closed.
fn flood(
    rt: &tokio::runtime::Runtime,
    ip: &str,
    target: SocketAddr,
    n: usize,
) -> (Vec<TcpStream>, usize) {
    let mut kept = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let mut s = connect_from(rt, ip, target);
        if is_open(&mut s, &format!("connection {i} from {ip}")) {
            kept.push(s);
        } else {
            refused += 1;
        }
    }
    (kept, refused)
}

/// Closes our side and waits for the switch's close: by then its place is
/// free again (the switch frees it before it closes).
fn close_and_wait(mut s: TcpStream) {
    s.shutdown(Shutdown::Write).unwrap();
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("the switch did not close within {IO:?}")
            }
            Err(_) => return,
        }
    }
}

fn config(connections: &str) -> String {
    let base = TestConfig {
        log_sip_messages: false,
        ..TestConfig::default()
    }
    .to_toml();
    format!("{base}\n[profiles.internal.connections]\n{connections}\n")
}

#[test]
fn a_connection_flood_is_capped_and_registration_goes_on() {
    let mut sw = Switch::start_with_text(&config("max_per_source = 20\nmax_total = 70\n"));
    let target = sw.addr("tcp");
    let rt = runtime();

    // One source, 300 connections: 20 kept, the rest closed at once.
    let (first, refused) = flood(&rt, "127.0.0.1", target, 300);
    assert_eq!(
        (first.len(), refused),
        (20, 280),
        "127.0.0.1: kept and refused\n{}",
        sw.report()
    );
    // Two more sources get their own 20 each.
    let (second, refused_2) = flood(&rt, "127.0.0.2", target, 25);
    let (third, refused_3) = flood(&rt, "127.0.0.3", target, 25);
    assert_eq!(
        (second.len(), refused_2, third.len(), refused_3),
        (20, 5, 20, 5),
        "127.0.0.2 and 127.0.0.3\n{}",
        sw.report()
    );
    // 60 open: a fourth source reaches the profile's 70 after 10.
    let (fourth, refused_4) = flood(&rt, "127.0.0.5", target, 15);
    assert_eq!(
        (fourth.len(), refused_4),
        (10, 5),
        "127.0.0.5 against max_total\n{}",
        sw.report()
    );
    // Its ten leave; a phone on yet another source registers over TCP.
    for s in fourth {
        close_and_wait(s);
    }
    let run = sipp_user(
        "register",
        Transport::Tcp,
        &sw,
        USER,
        PASS,
        &["-i", "127.0.0.4"],
    );
    run.assert_ok(&mut sw);
    let ev = sw.wait_event("registered", &[("user", USER)], EVENT);
    assert!(
        ev.get("contact").contains("127.0.0.4"),
        "the phone registered from 127.0.0.4: {}",
        ev.line
    );
    assert!(
        run.messages.contains("SIP/2.0 401") && run.messages.contains("SIP/2.0 200"),
        "401 then 200 on the wire:\n{}",
        tail_pub(&run.messages, 60)
    );
    // The connections kept all along still work.
    for (i, s) in first.into_iter().chain(second).chain(third).enumerate() {
        let mut s = s;
        assert!(is_open(&mut s, &format!("kept connection {i}")));
    }
    // The refusals are counted in the log.
    let log = sw.stderr_tail();
    assert!(
        log.contains("inbound connection refused") && log.contains("cap=\"max_per_source\""),
        "a refusal with its counters in the log:\n{log}"
    );
    sw.assert_alive();
}

#[test]
fn a_message_past_max_pending_bytes_closes_its_connection() {
    let mut sw = Switch::start_with_text(&config("max_pending_bytes = 4096\n"));
    let target = sw.addr("tcp");

    // A body announced far past the cap: closed as soon as the header
    // block ends, without waiting for any body.
    let mut s = TcpStream::connect(target).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    let local = s.local_addr().unwrap();
    let head = format!(
        "REGISTER sip:{target} SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-huge\r\n\
         Max-Forwards: 70\r\nFrom: <sip:1001@{target}>;tag=h\r\nTo: <sip:1001@{target}>\r\n\
         Call-ID: huge-body\r\nCSeq: 1 REGISTER\r\nContent-Length: 1000000000\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let closed = match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!(
            "answered instead of closed: {}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(_) => true,
    };
    assert!(
        closed,
        "still open {IO:?} after a 1 GB Content-Length\n{}",
        sw.report()
    );

    // An endless header block: closed once it passes the cap. We write in
    // pieces until the switch's close stops us (bounded: 4 MiB at most,
    // which the socket buffers alone cannot swallow).
    let mut s = TcpStream::connect(target).unwrap();
    s.set_read_timeout(Some(IO)).unwrap();
    s.set_write_timeout(Some(IO)).unwrap();
    s.write_all(b"REGISTER sip:x SIP/2.0\r\n").unwrap();
    let line = format!("X-Padding: {}\r\n", "a".repeat(1000));
    let mut written = 0usize;
    let mut stopped = false;
    while written < 4 << 20 {
        match s.write(line.as_bytes()) {
            Ok(n) => written += n,
            Err(_) => {
                stopped = true;
                break;
            }
        }
    }
    if !stopped {
        // Everything fit in the buffers: the close must still come.
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => stopped = true,
            Ok(n) => panic!("answered: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => stopped = true,
        }
    }
    assert!(
        stopped,
        "an endless header block was not cut ({written} bytes written)\n{}",
        sw.report()
    );
    let log = sw.stderr_tail();
    assert!(
        log.matches("message larger than the 4096-byte limit")
            .count()
            >= 2,
        "both connections closed for the cap:\n{log}"
    );
    // Within the cap, the profile answers as before, on TCP and UDP.
    assert_eq!(tcp_options(target, "after-the-cap"), Some(200));
    assert_eq!(udp_options(sw.addr("udp"), "after-the-cap-udp"), Some(200));
    sw.assert_alive();
}
