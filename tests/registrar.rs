//! Registrar acceptance: real SIPp against the real binary, over UDP and TCP.
//!
//! Each test starts its own switch (ephemeral ports), runs one SIPp scenario
//! from `fixtures/sipp/`, and checks both what SIPp saw on the wire (the
//! scenario's own checks; SIPp exits non-zero on any mismatch) and the
//! `event` lines the switch printed.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

const USER: &str = "1001";
const PASS: &str = "pw1001";

fn register_then_event(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    let run = sipp_user("register", t, &sw, USER, PASS, &[]);
    run.assert_ok(&mut sw);
    let ev = sw.wait_event("registered", &[("user", USER)], EVENT);
    let port = run.local_port.to_string();
    assert!(
        ev.get("contact").contains(&port),
        "contact should name SIPp's port {port}: {}",
        ev.line
    );
    let expires: u32 = ev
        .get("expires")
        .parse()
        .unwrap_or_else(|_| panic!("numeric expires: {}", ev.line));
    assert!(
        (60..=600).contains(&expires),
        "expires within min..requested: {}",
        ev.line
    );
    // The binding is there for a query.
    sipp_user("query_one", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
}

#[test]
fn register_udp() {
    register_then_event(Transport::Udp);
}

#[test]
fn register_tcp() {
    register_then_event(Transport::Tcp);
}

fn reregister(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    sipp_user("reregister", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    sw.wait_event("registered", &[("user", USER)], EVENT);
    // A refresh keeps exactly one binding (checked in the scenario and again here).
    sipp_user("query_one", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
}

#[test]
fn reregister_udp() {
    reregister(Transport::Udp);
}

#[test]
fn reregister_tcp() {
    reregister(Transport::Tcp);
}

fn unregister(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    sipp_user("unregister", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    sw.wait_event("registered", &[("user", USER)], EVENT);
    sw.wait_event("unregistered", &[("user", USER)], EVENT);
    sipp_user("query_none", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
}

#[test]
fn unregister_udp() {
    unregister(Transport::Udp);
}

#[test]
fn unregister_tcp() {
    unregister(Transport::Tcp);
}

fn short_expiry(t: Transport) {
    let cfg = TestConfig {
        min_expires: 1,
        ..TestConfig::default()
    };
    let mut sw = Switch::start(&cfg);
    sipp_user("register_short_expiry", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    let ev = sw.wait_event("registered", &[("user", USER)], EVENT);
    assert_eq!(
        ev.get("expires"),
        "2",
        "granted what was asked: {}",
        ev.line
    );
    // Expires: 2 -> binding-expired within a bound (2 s plus the switch's sweep).
    let gone = sw.wait_event(
        "binding-expired",
        &[("user", USER)],
        Duration::from_secs(12),
    );
    assert_eq!(
        gone.get("contact"),
        ev.get("contact"),
        "the binding that expired is the one registered"
    );
    sipp_user("query_none", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
}

#[test]
fn short_expiry_udp() {
    short_expiry(Transport::Udp);
}

#[test]
fn short_expiry_tcp() {
    short_expiry(Transport::Tcp);
}

fn too_brief(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default()); // min_expires = 60, scenario asks 5
    sipp_user("register_too_brief", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    sipp_user("query_none", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    assert!(
        sw.events("registered").is_empty(),
        "423 must not register:\n{}",
        sw.report()
    );
}

#[test]
fn interval_too_brief_udp() {
    too_brief(Transport::Udp);
}

#[test]
fn interval_too_brief_tcp() {
    too_brief(Transport::Tcp);
}

fn wrong_password(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    sipp_user("wrong_password", t, &sw, USER, "not-the-password", &[]).assert_ok(&mut sw);
    let ev = sw.wait_event("auth-failed", &[("user", USER)], EVENT);
    assert!(
        sw.events("registered").is_empty(),
        "a wrong password registered:\n{}",
        sw.report()
    );
    sipp_user("query_none", t, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    // Contract: `event auth-failed user=... source=...`.
    assert!(
        ev.get("source").contains("127.0.0.1"),
        "auth-failed must name the peer in source=: {}",
        ev.line
    );
}

#[test]
fn wrong_password_udp() {
    wrong_password(Transport::Udp);
}

#[test]
fn wrong_password_tcp() {
    wrong_password(Transport::Tcp);
}

fn unknown_user(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    sipp_user("wrong_password", t, &sw, "9999", "whatever", &[]).assert_ok(&mut sw);
    sw.wait_event("auth-failed", &[("user", "9999")], EVENT);
    assert!(
        sw.events("registered").is_empty(),
        "an unknown user registered:\n{}",
        sw.report()
    );
}

#[test]
fn unknown_user_udp() {
    unknown_user(Transport::Udp);
}

#[test]
fn unknown_user_tcp() {
    unknown_user(Transport::Tcp);
}

fn options(t: Transport) {
    let mut sw = Switch::start(&TestConfig::default());
    sipp("options", t, sw.addr(t.name()), &[]).assert_ok(&mut sw);
}

#[test]
fn options_udp() {
    options(Transport::Udp);
}

#[test]
fn options_tcp() {
    options(Transport::Tcp);
}

/// Repeated wrong passwords for one user end in `user-blocked`: that user
/// gets no answer from that address any more, while another user behind the
/// same address (an office NAT) still registers. Failures for a second user
/// from the address then block the whole source (`source-blocked`): it gets
/// no answer at all, while another source still does.
#[test]
fn brute_force_blocks_the_user_then_the_source_udp() {
    let cfg = TestConfig {
        max_failures: 3,
        max_users_per_source: 2,
        ..TestConfig::default()
    };
    let mut sw = Switch::start(&cfg);
    let target = sw.addr("udp");
    let port = free_port();
    // 6 attempts, one at a time; once blocked, each attempt times out after 1.5 s.
    let mut args = user_args(USER, "guess");
    args.extend(["-m", "6", "-l", "1", "-recv_timeout", "1500"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sipp_from_port("wrong_password", Transport::Udp, target, port, &args);
    let blocked = sw.wait_event("user-blocked", &[("user", USER)], EVENT);
    assert!(
        blocked.get("source").starts_with("127.0.0.1"),
        "{}",
        blocked.line
    );
    let failures = sw.events("auth-failed").len();
    assert!(
        failures >= 3,
        "blocked after max_failures = 3 failures, saw {failures}:\n{}",
        sw.report()
    );
    assert!(sw.events("registered").is_empty(), "{}", sw.report());
    assert!(
        !run.success(),
        "once blocked, the last attempts must get no answer:\n{}",
        run.describe()
    );
    assert!(!sw.has_event("source-blocked", &[]), "{}", sw.report());

    // Another user on the same address, with the right password: registered.
    let other_user = "1002";
    let run = sipp_user(
        "register",
        Transport::Udp,
        &sw,
        other_user,
        &password(&cfg, other_user),
        &[],
    );
    assert!(run.success(), "{}\n{}", run.describe(), sw.report());
    sw.await_event("registered", &[("user", other_user)], EVENT);

    // A second user failing from this address: guessing, the source goes.
    let run = sipp_user(
        "wrong_password",
        Transport::Udp,
        &sw,
        "1003",
        "guess",
        &["-m", "1"],
    );
    let blocked = sw.wait_event("source-blocked", &[], EVENT);
    assert!(
        blocked.get("source").starts_with("127.0.0.1"),
        "{}",
        blocked.line
    );
    assert!(
        !run.success(),
        "the blocking attempt is dropped:\n{}",
        run.describe()
    );

    // The blocked source (the exact address SIPp used) gets no answer: not to a
    // REGISTER, and not to anything else (a block drops the source's traffic).
    let sock = UdpSocket::bind(("127.0.0.1", port)).expect("rebind SIPp's port");
    sock.connect(target).unwrap();
    let local = sock.local_addr().unwrap();
    let register = String::from_utf8(options_request(local, Transport::Udp, "blocked-register"))
        .unwrap()
        .replace("OPTIONS", "REGISTER")
        .replace("<sip:switch@", "<sip:1004@")
        .replace("<sip:probe@", "<sip:1004@");
    sock.send(register.as_bytes()).unwrap();
    let (answer, _) = udp_await_response(&sock, "blocked-register", Duration::from_secs(2));
    assert_eq!(
        answer,
        None,
        "a blocked source was answered to REGISTER\n{}",
        sw.report()
    );
    sock.send(&options_request(local, Transport::Udp, "blocked-options"))
        .unwrap();
    let (answer, _) = udp_await_response(&sock, "blocked-options", Duration::from_secs(2));
    assert_eq!(
        answer,
        None,
        "a blocked source was answered to OPTIONS (the block covers REGISTER only?)\n{}",
        sw.report()
    );

    // Another source is still served (127.0.0.2 is loopback on Linux).
    let other = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    other.connect(target).unwrap();
    other
        .send(&options_request(
            other.local_addr().unwrap(),
            Transport::Udp,
            "other-probe",
        ))
        .unwrap();
    let (answer, _) = udp_await_response(&other, "other-probe", EVENT);
    assert_eq!(
        answer,
        Some(200),
        "another source must still be answered:\n{}",
        sw.report()
    );
}

fn password(cfg: &TestConfig, user: &str) -> String {
    cfg.users
        .iter()
        .find(|(u, _)| u == user)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("no user {user} in the test configuration"))
}

/// SIGTERM stops the switch cleanly.
#[test]
fn sigterm_exits_zero() {
    let mut sw = Switch::start(&TestConfig::default());
    assert_eq!(
        udp_options(sw.addr("udp"), "before-term"),
        Some(200),
        "{}",
        sw.report()
    );
    let status = sw.terminate(Duration::from_secs(10));
    match status {
        Some(st) => assert!(
            st.success(),
            "exit status after SIGTERM: {st}\n{}",
            sw.report()
        ),
        None => panic!("did not exit within 10 s of SIGTERM\n{}", sw.report()),
    }
}

/// A challenge is stateless: the switch keeps no transaction for a 401, so a
/// retransmitted REGISTER (same branch) is challenged again, with a fresh
/// nonce, and the answer to that challenge registers.
#[test]
fn challenge_is_stateless_and_a_retransmission_gets_a_fresh_nonce() {
    let mut sw = Switch::start(&TestConfig::default());
    let target = sw.addr("udp");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    let register = format!(
        "REGISTER sip:{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-stateless-1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{USER}@{target}>;tag=st1\r\n\
         To: <sip:{USER}@{target}>\r\n\
         Call-ID: stateless-challenge\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:{USER}@{local}>\r\n\
         Expires: 60\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let mut nonces = Vec::new();
    let mut buf = vec![0u8; 70_000];
    for _ in 0..2 {
        sock.send_to(register.as_bytes(), target).unwrap();
        sock.set_read_timeout(Some(EVENT)).unwrap();
        let n = sock.recv(&mut buf).expect("no answer to REGISTER");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("SIP/2.0 401"), "expected 401:\n{text}");
        let nonce = text
            .split("nonce=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("401 without a nonce")
            .to_string();
        nonces.push(nonce);
    }
    assert_ne!(
        nonces[0], nonces[1],
        "the retransmission got the first 401 again: the challenge was kept in a transaction"
    );
    // Either challenge is good for the login that follows.
    sipp_user("register", Transport::Udp, &sw, USER, PASS, &[]).assert_ok(&mut sw);
    sw.wait_event("registered", &[("user", USER)], EVENT);
}
