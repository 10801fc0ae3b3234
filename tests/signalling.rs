//! The signalling a contact-center platform sends when it peers with the switch
//! as a SIP trunk, against the real binary with SIPp peers and raw sockets:
//! RFC 3262 reliable provisionals both ways (a gateway's reliable 183 with early
//! media, a caller requiring 100rel), 420 for an unsupported Require, RFC 3325
//! P-Asserted-Identity with per-peer trust, Diversion and History-Info passed,
//! RFC 7433 User-to-User on the legs, and many calls over one TCP connection
//! that the switch reuses toward the peer.
//!
//! Every wait is bounded and synchronised on events, SIPp exits or messages.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::calls::{CallConfig, Lab};
use common::sippbg::{body, header, headers, sdp_audio};
use common::*;

/// A lab whose generated configuration `edit` changed first (keys the shared
/// `CallConfig` does not write: `trusted`, `user_to_user`, a TCP listener).
fn lab_with(mut cfg: CallConfig, edit: impl Fn(String) -> String) -> Lab {
    let recordings = tempfile::tempdir().expect("tempdir");
    cfg.recordings_dir = Some(recordings.path().to_path_buf());
    let text = edit(cfg.to_toml());
    let sw = Switch::start_with_text(&text);
    Lab {
        sw,
        cfg,
        recordings,
    }
}

/// Adds lines to the `trunk` peer's table.
fn peer_keys(text: String, keys: &str) -> String {
    let acl = "acl = [\"127.0.0.1/32\"]\n";
    assert!(text.contains(acl), "no trunk acl in\n{text}");
    text.replacen(acl, &format!("{acl}{keys}\n"), 1)
}

/// Adds lines to a profile's `[calls]` table.
fn calls_keys(text: String, profile: &str, keys: &str) -> String {
    let table = format!("[profiles.{profile}.calls]\n");
    assert!(text.contains(&table), "no {table} in\n{text}");
    text.replacen(&table, &format!("{table}{keys}\n"), 1)
}

#[test]
fn gateway_reliable_183_is_pracked_and_its_early_media_reaches_the_caller() {
    let mut lab = Lab::start(CallConfig::default());
    let gw = lab.gateway("gateway_100rel", |s| {
        s.set("play", 1).set("answer_ms", 1500)
    });
    let ep = rtp::RtpEndpoint::bind();
    let caller = lab
        .caller("1001", "+15551234", "call")
        .rtp_port(ep.port)
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    // The gateway's early media reaches the caller before the answer.
    lab.early_media_before_answer(&call, &ep);
    lab.wait("call-bridged", &[("call", &call)]);
    let a = caller.finish(&mut lab.sw);
    // The gateway's scenario checked Supported: 100rel and RAck: 1 1 INVITE.
    let g = gw.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);
    let inv = &g.received("INVITE ")[0];
    assert!(
        headers(inv, "Supported")
            .iter()
            .any(|v| v.contains("100rel")),
        "Supported: 100rel toward the gateway: {inv}"
    );
    let prack = &g.received("PRACK ")[0];
    assert_eq!(header(prack, "RAck"), Some("1 1 INVITE"), "{prack}");
    assert_eq!(
        header(prack, "Call-ID"),
        header(inv, "Call-ID"),
        "PRACK within the dialog: {prack}"
    );
    assert!(
        header(prack, "To").unwrap_or("").contains("tag="),
        "PRACK within the early dialog: {prack}"
    );
    // The caller's 183 carries the switch's SDP (the early answer).
    let p183 = a.received("SIP/2.0 183");
    assert_eq!(p183.len(), 1, "183 relayed:\n{}", a.messages);
    let sdp = sdp_audio(&p183[0]).expect("SDP in the caller's 183");
    lab.assert_internal_port(sdp.port(), "183 to the caller");
}

#[test]
fn caller_requiring_or_supporting_100rel_gets_a_reliable_183_and_completes() {
    let mut lab = Lab::start(CallConfig::default());
    for (user, rel) in [("1001", "Require"), ("1003", "Supported")] {
        let callee = lab.phone("1002", "phone_early", |s| s.set("answer_ms", 200));
        let caller = lab
            .caller(user, "1002", "call_100rel")
            .key("rel_header", rel)
            .set("hangup_ms", 300)
            .spawn();
        let call = lab.call_started(&[("from", user), ("to", "1002")]);
        lab.wait("call-bridged", &[("call", &call)]);
        // call_100rel checked the RSeq, Require: 100rel and the SDP of the 183,
        // sent the PRACK and received its 200 before the INVITE's.
        let a = caller.finish(&mut lab.sw);
        callee.finish(&mut lab.sw);
        lab.wait("call-ended", &[("call", &call)]);
        let p183 = &a.received("SIP/2.0 183")[0];
        assert!(
            header(p183, "RSeq").is_some(),
            "{rel}: reliable 183: {p183}"
        );
        assert!(
            body(p183).contains("m=audio"),
            "{rel}: the 183 carries the early answer: {p183}"
        );
        // The INVITE's 200 came after the PRACK's (it was held for it).
        let trace: Vec<String> = a
            .trace()
            .into_iter()
            .filter(|(received, m)| {
                (!*received && m.starts_with("PRACK "))
                    || (*received
                        && m.starts_with("SIP/2.0 200")
                        && header(m, "CSeq").is_some_and(|c| c.ends_with("INVITE")))
            })
            .map(|(_, m)| m.lines().next().unwrap_or("").to_string())
            .collect();
        assert!(
            trace.first().is_some_and(|l| l.starts_with("PRACK")),
            "{rel}: the 200 to the INVITE must wait for the PRACK: {trace:?}"
        );
    }
}

/// A request over UDP from a fresh socket to `to`; the status answered.
fn udp_request(to: SocketAddr, method: &str, call_id: &str, extra: &str) -> (Option<u16>, String) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    let local = s.local_addr().unwrap();
    let msg = format!(
        "{method} sip:1002@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{call_id};rport\r\nMax-Forwards: 70\r\nFrom: <sip:1001@{local}>;tag=t-{call_id}\r\nTo: <sip:1002@{to}>\r\nCall-ID: {call_id}\r\nCSeq: 1 {method}\r\nContact: <sip:1001@{local}>\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    s.send(msg.as_bytes()).unwrap();
    let mut buf = vec![0u8; 65535];
    let deadline = std::time::Instant::now() + EVENT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return (None, String::new());
        }
        s.set_read_timeout(Some(left)).unwrap();
        let Ok(n) = s.recv(&mut buf) else {
            return (None, String::new());
        };
        let text = String::from_utf8_lossy(&buf[..n]).to_string();
        let code = text.get(8..11).and_then(|c| c.parse::<u16>().ok());
        if code.is_some_and(|c| c >= 200) {
            return (code, text);
        }
    }
}

#[test]
fn require_of_an_unknown_extension_gets_420_with_unsupported() {
    let lab = Lab::start(CallConfig::default());
    for (to, method) in [
        (lab.internal(), "INVITE"),
        (lab.external(), "INVITE"),
        (lab.internal(), "OPTIONS"),
        (lab.external(), "MESSAGE"),
    ] {
        let id = format!("req-{method}-{}", to.port());
        let (code, text) = udp_request(to, method, &id, "Require: foo, 100rel\r\nRequire: bar\r\n");
        assert_eq!(code, Some(420), "{method} to {to}: {text}");
        assert_eq!(
            header(&text, "Unsupported"),
            Some("foo, bar"),
            "{method}: only what is unknown: {text}"
        );
    }
    // What the switch does support is no reason to refuse (an OPTIONS requiring it).
    let (code, text) = udp_request(
        lab.internal(),
        "OPTIONS",
        "req-ok",
        "Require: 100rel, timer\r\n",
    );
    assert_eq!(code, Some(200), "{text}");
    assert!(
        headers(&text, "Supported")
            .iter()
            .any(|v| v.contains("100rel")),
        "advertised: {text}"
    );
}

#[test]
fn trusted_peer_identity_is_the_caller_and_diversion_history_and_uui_pass() {
    let cfg = CallConfig::default();
    let mut lab = lab_with(cfg, |t| peer_keys(t, "trusted = true"));
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab
        .trunk_caller("15550009", "1002", "call_identity")
        .key("pai", "\"Jane Doe\" <sip:+15550001@cc.example>")
        .key("privacy", "none")
        .key("diversion", "<sip:5550100@cc.example>;reason=unconditional")
        .key("history", "<sip:5550100@cc.example>;index=1")
        .key("uui", "0badc0de;encoding=hex")
        .set("hangup_ms", 300)
        .spawn();
    // The asserted identity is the caller in the events ...
    let call = lab.call_started(&[("from", "+15550001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    let b = callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);
    // ... and on the agent's phone.
    let inv = &b.received("INVITE ")[0];
    let from = header(inv, "From").unwrap_or("");
    assert!(from.contains("\"Jane Doe\" <sip:+15550001@"), "{from}");
    assert!(
        header(inv, "P-Asserted-Identity").is_none(),
        "no PAI to a phone: {inv}"
    );
    assert_eq!(
        header(inv, "Diversion"),
        Some("<sip:5550100@cc.example>;reason=unconditional"),
        "{inv}"
    );
    assert_eq!(
        header(inv, "History-Info"),
        Some("<sip:5550100@cc.example>;index=1"),
        "{inv}"
    );
    assert_eq!(
        header(inv, "User-to-User"),
        Some("0badc0de;encoding=hex"),
        "{inv}"
    );
}

/// Phone 1001 calls the trunk with a forged P-Asserted-Identity, `Privacy:
/// id`, Diversion, History-Info and User-to-User; the INVITE the trunk got.
fn identity_call_to_the_trunk(lab: &mut Lab) -> String {
    let gw = lab.gateway("phone_answer", |s| s);
    let caller = lab
        .caller("1001", "+15551234", "call_identity")
        .key("pai", "<sip:+19999999@forged.example>")
        .key("privacy", "id")
        .key("diversion", "<sip:1009@pbx>;reason=no-answer")
        .key("history", "<sip:1009@pbx>;index=1")
        .key("uui", "01;encoding=hex")
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    let g = gw.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);
    g.received("INVITE ")[0].clone()
}

#[test]
fn untrusted_identity_is_stripped_and_the_switch_asserts_its_users_to_trusted_peers() {
    // The trunk is untrusted by default: the phone's forged PAI never reaches it.
    let mut lab = Lab::start(CallConfig::default());
    let inv = &identity_call_to_the_trunk(&mut lab);
    assert!(header(inv, "P-Asserted-Identity").is_none(), "{inv}");
    assert!(header(inv, "Privacy").is_none(), "{inv}");
    assert!(
        header(inv, "From")
            .unwrap_or("")
            .contains("<sip:anonymous@anonymous.invalid>"),
        "Privacy: id toward an untrusted peer: {inv}"
    );
    assert!(!inv.contains("forged"), "{inv}");

    // Trusted: the switch's own assertion of 1001, and the caller's Privacy.
    let mut lab = lab_with(CallConfig::default(), |t| peer_keys(t, "trusted = true"));
    let inv = &identity_call_to_the_trunk(&mut lab);
    let pai = header(inv, "P-Asserted-Identity").unwrap_or("");
    assert!(pai.starts_with("<sip:1001@"), "{inv}");
    assert_eq!(header(inv, "Privacy"), Some("id"), "{inv}");
    assert!(
        header(inv, "From").unwrap_or("").contains("<sip:1001@"),
        "{inv}"
    );
    assert!(!inv.contains("forged"), "{inv}");
}

#[test]
fn user_to_user_carries_the_case_on_the_agent_and_contact_legs() {
    let cfg = CallConfig {
        pass_headers: vec!["X-Case-Id".into()],
        ..CallConfig::default()
    };
    let mut lab = lab_with(cfg, |t| {
        let t = peer_keys(t, "user_to_user = true");
        calls_keys(t, "internal", "user_to_user = \"{case};encoding=ascii\"")
    });
    let agent = lab.phone("1001", "phone_autoanswer", |s| s);
    let gw = lab.gateway("phone_answer", |s| s.set("hangup_ms", 300));
    let r = http::post(
        lab.http(),
        "/v1/calls",
        r#"{"a":"1001","b":"15551234","auto_answer":true,"headers":{"X-Case-Id":"CASE-42"},"interaction":"cb-7"}"#,
    );
    assert_eq!(r.status, 201, "POST /v1/calls: {}", r.body);
    let call = r.json()["call"].as_str().expect("call id").to_string();
    lab.wait("call-bridged", &[("call", &call)]);
    let g = gw.finish(&mut lab.sw);
    let a = agent.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);
    let inv_a = &a.received("INVITE ")[0];
    assert_eq!(
        header(inv_a, "User-to-User"),
        Some("CASE-42;encoding=ascii"),
        "{inv_a}"
    );
    let inv_b = &g.received("INVITE ")[0];
    let hex: String = "CASE-42".bytes().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        header(inv_b, "User-to-User"),
        Some(format!("{hex};encoding=hex").as_str()),
        "{inv_b}"
    );
}

/// The external profile listens on TCP too.
fn with_external_tcp(text: String) -> String {
    let udp =
        "[profiles.external]\nlisten = [ { transport = \"udp\", address = \"127.0.0.1:0\" } ]";
    assert!(text.contains(udp), "{text}");
    text.replacen(
        udp,
        "[profiles.external]\nlisten = [ { transport = \"udp\", address = \"127.0.0.1:0\" }, { transport = \"tcp\", address = \"127.0.0.1:0\" } ]",
        1,
    )
}

fn external_tcp(lab: &Lab) -> SocketAddr {
    lab.sw
        .listeners
        .iter()
        .find(|l| l.profile == "external" && l.transport == "tcp")
        .unwrap_or_else(|| panic!("no external tcp listener: {:?}", lab.sw.listeners))
        .addr
}

/// Established TCP connections the switch process holds (its socket inodes
/// matched against /proc/net/tcp and tcp6): accepted and opened alike.
fn switch_connections(lab: &Lab) -> usize {
    let pid = lab.sw.pid();
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| {
                let link = std::fs::read_link(e.ok()?.path()).ok()?;
                let l = link.to_string_lossy().to_string();
                l.strip_prefix("socket:[")
                    .and_then(|x| x.strip_suffix(']'))
                    .map(str::to_string)
            })
            .collect()
        })
        .unwrap_or_default();
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .filter(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 9 && f[3] == "01" && inodes.contains(f[9])
                })
                .count()
        })
        .sum()
}

#[test]
fn several_calls_over_one_tcp_connection_and_the_switch_answers_on_it() {
    let mut lab = lab_with(CallConfig::default(), with_external_tcp);
    let tcp = external_tcp(&lab);
    let callee = lab.phone("1002", "phone_answer", |s| s.arg("-m").arg("3"));
    // SIPp in `t1` mode: one connection for every call; three at once. Nobody
    // hangs up but the switch, whose BYEs must come over that connection.
    let caller = common::sippbg::Sipp::new("call", tcp)
        .service("1002")
        .key("from_user", "15550001")
        .arg("-t")
        .arg("t1")
        .arg("-m")
        .arg("3")
        .arg("-l")
        .arg("3")
        .arg("-r")
        .arg("10")
        .spawn();
    let mut calls = Vec::new();
    while calls.len() < 3 {
        // Only lines not examined yet: three distinct calls.
        let ev = lab.sw.wait_event("call-bridged", &[], EVENT);
        calls.push(ev.get("call").to_string());
    }
    assert_eq!(
        switch_connections(&lab),
        1,
        "three calls, one connection from the peer"
    );
    for call in &calls {
        let r = http::delete(lab.http(), &format!("/v1/calls/{call}"));
        assert!(
            r.status < 300,
            "DELETE /v1/calls/{call}: {} {}",
            r.status,
            r.body
        );
    }
    for call in &calls {
        lab.wait("call-ended", &[("call", call)]);
    }
    // The caller got its three BYEs and answered them. They can only have come
    // over its connection: its ephemeral client port listens for nothing, so a
    // connection of the switch's own to it would have been refused.
    let a = caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    assert_eq!(a.received("BYE ").len(), 3, "{}", a.messages);
}

/// Reads SIP messages from `s` until one starting with `start` (bounded).
fn read_until(s: &mut TcpStream, buf: &mut Vec<u8>, start: &str, seen: &mut Vec<String>) -> String {
    let deadline = std::time::Instant::now() + EVENT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match read_stream_message(s, buf, left) {
            Ok(Some(m)) => {
                let text = String::from_utf8_lossy(&m).to_string();
                seen.push(text.lines().next().unwrap_or("").to_string());
                if text.starts_with(start) {
                    return text;
                }
            }
            other => {
                panic!("waiting for {start:?} on the peer's connection: {other:?}; seen {seen:?}")
            }
        }
    }
}

#[test]
fn new_calls_toward_a_tcp_peer_go_over_the_connection_it_opened() {
    // The peer is configured at a port nobody listens on: an INVITE toward it
    // can only arrive over the connection the peer itself opened.
    let dead = free_port();
    let cfg = CallConfig {
        gateway_port: dead,
        ..CallConfig::default()
    };
    let mut lab = lab_with(cfg, |t| {
        with_external_tcp(t).replace("transport = \"udp\"\nacl", "transport = \"tcp\"\nacl")
    });
    let tcp = external_tcp(&lab);
    // The platform connects and places a call to phone 1002 over its connection.
    let phone = lab.phone("1002", "phone_answer", |s| s);
    let mut s = TcpStream::connect_timeout(&tcp, Duration::from_secs(5)).expect("connect");
    let local = s.local_addr().unwrap();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";
    let invite = format!(
        "INVITE sip:1002@{tcp};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-p1\r\nMax-Forwards: 70\r\nFrom: <sip:15550001@{local}>;tag=p1\r\nTo: <sip:1002@{tcp}>\r\nCall-ID: peer-call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:15550001@{local};transport=tcp>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    s.write_all(invite.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    let ok = read_until(&mut s, &mut buf, "SIP/2.0 200", &mut seen);
    let to = header(&ok, "To").unwrap().to_string();
    let ack = format!(
        "ACK sip:switchback@{tcp};transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bK-p1ack\r\nMax-Forwards: 70\r\nFrom: <sip:15550001@{local}>;tag=p1\r\nTo: {to}\r\nCall-ID: peer-call-1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(ack.as_bytes()).unwrap();
    let first = lab.wait("call-bridged", &[]).get("call").to_string();
    // Now a phone calls out through that peer: the INVITE comes over the same connection.
    let caller = lab
        .caller("1001", "+15551234", "call")
        .set("hangup_ms", 300)
        .spawn();
    let inv = read_until(&mut s, &mut buf, "INVITE ", &mut seen);
    assert!(inv.starts_with("INVITE sip:15551234@"), "{inv}");
    let reply = |code: &str, extra: &str, body: &str| {
        let mut r = format!("SIP/2.0 {code}\r\n");
        for name in ["Via", "From", "Call-ID", "CSeq"] {
            for v in headers(&inv, name) {
                r.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        r.push_str(&format!(
            "To: {};tag=peer2\r\n",
            header(&inv, "To").unwrap()
        ));
        r.push_str(&format!(
            "Contact: <sip:15551234@{local};transport=tcp>\r\n{extra}"
        ));
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        r
    };
    s.write_all(reply("200 OK", "Content-Type: application/sdp\r\n", sdp).as_bytes())
        .unwrap();
    read_until(&mut s, &mut buf, "ACK ", &mut seen);
    // The phone hangs up: the switch's BYE to the peer comes over the connection too.
    let bye = read_until(&mut s, &mut buf, "BYE ", &mut seen);
    let mut ok = String::from("SIP/2.0 200 OK\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for v in headers(&bye, name) {
            ok.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    ok.push_str("Content-Length: 0\r\n\r\n");
    s.write_all(ok.as_bytes()).unwrap();
    caller.finish(&mut lab.sw);
    assert_eq!(switch_connections(&lab), 1, "one connection: {seen:?}");
    let r = http::delete(lab.http(), &format!("/v1/calls/{first}"));
    assert!(r.status < 300, "{}", r.body);
    read_until(&mut s, &mut buf, "BYE ", &mut seen);
    phone.finish(&mut lab.sw);
}

#[test]
fn check_config_names_bad_signalling_keys_by_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    let text = r#"[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:0" }]

[profiles.external.calls]
user_to_user = "{case};x={nope}"

[[profiles.external.peers]]
name = "cc"
address = "127.0.0.1:5090"
acl = ["127.0.0.1/32"]
trusted = true
prack = "required"
user_to_user = "two\nlines"
"#;
    std::fs::write(&p, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchback"))
        .arg("check-config")
        .arg(&p)
        .output()
        .expect("run switchback check-config");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let f = p.display().to_string();
    assert!(
        stderr.contains(&format!(
            "{f}:5: profiles.external.calls.user_to_user: unknown placeholder {{nope}}"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{f}:13: profiles.external.peers[0].user_to_user: must be one non-empty line"
        )),
        "{stderr}"
    );
    // An unknown prack mode is a type error on its line.
    std::fs::write(
        &p,
        text.replace("\"required\"", "\"sometimes\"")
            .replace("two\\nlines", "{call}")
            .replace("{nope}", "{case}"),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchback"))
        .arg("check-config")
        .arg(&p)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(stderr.contains(&format!("{f}:12:")), "{stderr}");
}
