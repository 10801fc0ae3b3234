//! Call acceptance (B2BUA signalling): real SIPp phones and trunks against the real
//! binary. Each test starts its own switch (ephemeral SIP ports, its own RTP port
//! ranges) and checks both what SIPp saw on the wire (the scenarios' own checks:
//! SIPp exits non-zero on any mismatch; plus reads of the message traces) and the
//! `event call-...` lines the switch printed.
//!
//! Synchronisation is on events, SIPp exits and SIPp holding its port; every wait
//! is bounded.

mod common;

use std::time::Duration;

use common::calls::{CallConfig, Lab};
use common::sippbg::{body, header, sdp_audio, sdp_payload_types, Sipp};
use common::*;

/// A 200/INVITE/183 SDP the switch wrote: c= its media address, m= port in range,
/// payload types among what both sides offered, telephone-event kept.
fn assert_switch_sdp(lab: &Lab, msg: &str, internal: bool, what: &str) {
    let a = sdp_audio(msg).unwrap_or_else(|| panic!("{what}: no SDP audio in\n{msg}"));
    assert_eq!(a.ip().to_string(), "127.0.0.1", "{what}: c= address");
    if internal {
        lab.assert_internal_port(a.port(), what);
    } else {
        lab.assert_external_port(a.port(), what);
    }
    let pts = sdp_payload_types(msg);
    assert!(
        !pts.is_empty() && pts.iter().all(|p| [0u8, 8, 101].contains(p)),
        "{what}: payload types {pts:?}"
    );
    assert!(
        pts.contains(&101),
        "{what}: telephone-event dropped: {pts:?}"
    );
    assert!(
        pts.contains(&0) || pts.contains(&8),
        "{what}: no audio codec: {pts:?}"
    );
}

#[test]
fn phone_to_phone() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab
        .caller("1001", "1002", "call")
        .set("hangup_ms", 500)
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait(
        "call-leg",
        &[("call", &call), ("leg", "b"), ("progress", "ringing")],
    );
    lab.wait(
        "call-leg",
        &[("call", &call), ("leg", "b"), ("progress", "answered")],
    );
    lab.wait("call-bridged", &[("call", &call)]);
    let a = caller.finish(&mut lab.sw);
    let b = callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "a")]);

    // Each leg is its own dialog, and the SDP each phone saw is the switch's.
    let invite_b = &b.received("INVITE ")[0];
    let invite_a = &a.sent("INVITE ")[0];
    assert_ne!(
        header(invite_b, "Call-ID"),
        header(invite_a, "Call-ID"),
        "B leg must have its own Call-ID"
    );
    assert!(
        invite_b.starts_with("INVITE sip:1002@"),
        "Request-URI names the callee: {invite_b}"
    );
    assert!(
        header(invite_b, "From").unwrap_or("").contains("1001"),
        "caller id 1001 on the B leg: {invite_b}"
    );
    assert_switch_sdp(&lab, invite_b, true, "INVITE to 1002");
    let ok_a = a
        .received("SIP/2.0 200")
        .into_iter()
        .find(|m| body(m).contains("m=audio"))
        .expect("200 with SDP");
    assert_switch_sdp(&lab, &ok_a, true, "200 to 1001");
    assert!(
        !a.received("SIP/2.0 180").is_empty(),
        "180 relayed to the caller"
    );
    assert!(!a.received("SIP/2.0 100").is_empty(), "100 Trying at once");
    // The callee's BYE came from the switch when the caller hung up.
    assert_eq!(b.received("BYE ").len(), 1, "the callee got one BYE");
}

#[test]
fn late_offer_callee_offers_and_caller_answers_in_ack() {
    let mut lab = Lab::start(CallConfig::default());
    let b_rtp = rtp::RtpEndpoint::bind();
    let callee = lab.phone("1002", "phone_offer", |s| s.rtp_port(b_rtp.port));
    let mut a_rtp = rtp::RtpEndpoint::bind();
    let caller = lab
        .caller("1001", "1002", "call_late_offer")
        .rtp_port(a_rtp.port)
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    // The callee was invited without SDP; its offer reached the caller rewritten.
    let inv_b = callee.wait_received("the INVITE", EVENT, |m| m.starts_with("INVITE "));
    assert!(!body(&inv_b).contains("m=audio"), "no SDP to 1002: {inv_b}");
    let ok_a = caller.wait_received("the 200 with the offer", EVENT, |m| {
        m.starts_with("SIP/2.0 200") && body(m).contains("m=audio")
    });
    assert_switch_sdp(&lab, &ok_a, true, "200 to 1001");
    assert_eq!(sdp_payload_types(&ok_a), [8, 0, 101], "the callee's order");
    // The caller's answer (PCMU) reached the callee in the switch's ACK.
    let ack_b = callee.wait_received("the ACK with the answer", EVENT, |m| {
        m.starts_with("ACK ") && body(m).contains("m=audio")
    });
    assert_switch_sdp(&lab, &ack_b, true, "ACK to 1002");
    assert_eq!(sdp_payload_types(&ack_b), [0, 101], "the caller's choice");
    // Media flows through the relay both ways.
    let a_switch = sdp_audio(&ok_a).expect("SDP in the 200");
    let b_switch = sdp_audio(&ack_b).expect("SDP in the ACK");
    a_rtp.send_tone(a_switch, 440.0, 5);
    let got = b_rtp.recv_until(Duration::from_secs(2), |p| p.len() >= 3);
    assert!(got.len() >= 3, "1001 -> 1002: {} packets", got.len());
    let mut b_rtp = b_rtp;
    b_rtp.send_tone(b_switch, 440.0, 5);
    let got = a_rtp.recv_until(Duration::from_secs(2), |p| p.len() >= 3);
    assert!(got.len() >= 3, "1002 -> 1001: {} packets", got.len());
    let r = http::delete(lab.http(), &format!("/v1/calls/{call}"));
    assert!((200..300).contains(&r.status), "DELETE: {}", r.status);
    caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "switch")]);
}

#[test]
fn unregistered_phone_is_admitted_by_digest() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s.set("hangup_ms", 500));
    // 1001 never registered: its INVITE is challenged (407) and it answers
    // with its credentials.
    let caller = Sipp::new("call_digest", lab.internal())
        .service("1002")
        .key("from_user", "1001")
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg(&lab.password("1001"))
        .spawn();
    let call = lab.call_started(&[("from", "1001"), ("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let a = caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "b")]);
    let challenge = &a.received("SIP/2.0 407")[0];
    assert!(
        header(challenge, "Proxy-Authenticate").is_some_and(|v| v.contains("switchback.local")),
        "{challenge}"
    );
    let invites = a.sent("INVITE ");
    assert!(
        header(&invites[1], "Proxy-Authorization").is_some(),
        "{}",
        invites[1]
    );

    // Wrong credentials: 403, no call, and the registrar's guard counted the failure.
    let bad = Sipp::new("call_digest", lab.internal())
        .service("1002")
        .key("from_user", "1001")
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg("not-the-password")
        .run();
    bad.assert_ok(&mut lab.sw);
    assert_eq!(
        bad.received("SIP/2.0 403").len(),
        1,
        "403 after the challenge:\n{}",
        bad.messages
    );
    lab.wait("auth-failed", &[("user", "1001")]);
    assert_eq!(
        lab.sw.events("call-started").len(),
        1,
        "only the authenticated call started"
    );
}

#[test]
fn callee_hangs_up() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s.set("hangup_ms", 500));
    let caller = lab.caller("1001", "1002", "call").spawn();
    let call = lab.call_started(&[("from", "1001")]);
    caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "b")]);
}

#[test]
fn phone_to_trunk() {
    let cfg = CallConfig {
        add_headers: vec![("X-Switchback".into(), "1".into())],
        ..CallConfig::default()
    };
    let mut lab = Lab::start(cfg);
    let gw = lab.gateway("phone_answer", |s| s);
    let caller = lab
        .caller("1001", "+15551234", "call")
        .set("hangup_ms", 500)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    let g = gw.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "a")]);
    let inv = &g.received("INVITE ")[0];
    assert!(
        inv.starts_with("INVITE sip:15551234@"),
        "number $1 (no +) sent to the gateway: {inv}"
    );
    assert_switch_sdp(&lab, inv, false, "INVITE to the gateway");
    assert_eq!(
        header(inv, "X-Switchback"),
        Some("1"),
        "outbound add_headers: {inv}"
    );
}

#[test]
fn trunk_to_phone() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab
        .trunk_caller("15550001", "1002", "call")
        .set("hangup_ms", 500)
        .spawn();
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let a = caller.finish(&mut lab.sw);
    let b = callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call)]);
    assert_switch_sdp(&lab, &b.received("INVITE ")[0], true, "INVITE to 1002");
    let ok_a = a
        .received("SIP/2.0 200")
        .into_iter()
        .find(|m| body(m).contains("m=audio"))
        .expect("200 with SDP");
    assert_switch_sdp(&lab, &ok_a, false, "200 to the trunk");
    assert!(
        header(&b.received("INVITE ")[0], "From")
            .unwrap_or("")
            .contains("15550001"),
        "the trunk's caller number reaches the phone"
    );
}

#[test]
fn parallel_forking_first_answer_wins() {
    let mut lab = Lab::start(CallConfig::default());
    // Two registrations for 1002: one answers (after ringing a little), one only rings.
    let answering = lab.phone("1002", "phone_answer", |s| s.set("answer_ms", 300));
    let ringing = lab.phone("1002", "phone_ring", |s| s);
    let caller = lab
        .caller("1001", "1002", "call")
        .set("hangup_ms", 500)
        .spawn();
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    answering.finish(&mut lab.sw);
    // The losing fork got CANCEL (and the scenario answered 200 + 487 and got its ACK).
    let r = ringing.finish(&mut lab.sw);
    assert_eq!(
        r.received("CANCEL ").len(),
        1,
        "the other contact is cancelled"
    );
    lab.wait("call-ended", &[("call", &call)]);
}

#[test]
fn caller_cancels_while_ringing() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_ring", |s| s);
    let caller = lab
        .caller("1001", "1002", "call_cancel")
        .set("cancel_ms", 200)
        .spawn();
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait(
        "call-leg",
        &[("call", &call), ("leg", "b"), ("progress", "ringing")],
    );
    caller.finish(&mut lab.sw); // 200 to CANCEL, 487, ACK
    let b = callee.finish(&mut lab.sw); // CANCEL -> 200, 487 -> ACK
    assert_eq!(b.received("CANCEL ").len(), 1);
    let ended = lab.wait("call-ended", &[("call", &call), ("by", "a")]);
    assert!(!ended.get("cause").is_empty(), "{}", ended.line);
}

#[test]
fn busy_is_relayed() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_busy", |s| s);
    let caller = lab.caller("1001", "1002", "call").spawn();
    let call = lab.call_started(&[("to", "1002")]);
    let a = caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    assert_eq!(
        a.final_status(),
        Some(486),
        "caller gets 486:\n{}",
        a.messages
    );
    lab.wait(
        "call-leg-failed",
        &[
            ("call", &call),
            ("leg", "b"),
            ("status", "486"),
            ("failure", "busy"),
        ],
    );
    lab.wait("call-ended", &[("call", &call), ("status", "486")]);
}

#[test]
fn no_answer_ring_timeout() {
    let cfg = CallConfig {
        ring_timeout_secs: 2,
        ..CallConfig::default()
    };
    let mut lab = Lab::start(cfg);
    let callee = lab.phone("1002", "phone_ring", |s| s);
    let caller = lab.caller("1001", "1002", "call").spawn();
    let call = lab.call_started(&[("to", "1002")]);
    let a = caller.finish(&mut lab.sw);
    let b = callee.finish(&mut lab.sw);
    assert_eq!(
        a.final_status(),
        Some(408),
        "caller gets 408 after the ring timeout:\n{}",
        a.messages
    );
    assert_eq!(b.received("CANCEL ").len(), 1, "the callee is cancelled");
    lab.wait("call-ended", &[("call", &call), ("by", "switch")]);
}

#[test]
fn routing_failures() {
    let mut lab = Lab::start(CallConfig::default());
    // No rule matches 99 -> 404.
    let a = lab.caller("1001", "99", "call").run();
    a.assert_ok(&mut lab.sw);
    assert_eq!(
        a.final_status(),
        Some(404),
        "no dial-plan match:\n{}",
        a.messages
    );
    // A user the switch does not know -> 404.
    let a = lab.caller("1001", "1009", "call").run();
    a.assert_ok(&mut lab.sw);
    assert_eq!(a.final_status(), Some(404), "unknown user:\n{}", a.messages);
    // A known user with no registration -> 480.
    let a = lab.caller("1001", "1003", "call").run();
    a.assert_ok(&mut lab.sw);
    assert_eq!(
        a.final_status(),
        Some(480),
        "user not registered:\n{}",
        a.messages
    );
}

#[test]
fn early_media_then_answer() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_early", |s| {
        s.set("play", 1).set("answer_ms", 1500)
    });
    let ep = rtp::RtpEndpoint::bind();
    let caller = lab
        .caller("1001", "1002", "call")
        .rtp_port(ep.port)
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("to", "1002")]);
    // Early media reaches the caller before the answer.
    let early = lab.early_media_before_answer(&call, &ep);
    assert!(early.iter().all(|p| p.pt == 0), "PCMU relayed as is");
    let a = caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    let p183 = a.received("SIP/2.0 183");
    assert_eq!(p183.len(), 1, "183 relayed:\n{}", a.messages);
    assert_switch_sdp(&lab, &p183[0], true, "183 to the caller");
    lab.wait("call-ended", &[("call", &call)]);
}

#[test]
fn hold_and_retrieve_from_phone() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab
        .caller("1001", "1002", "call_hold")
        .set("hold_ms", 300)
        .set("retrieve_ms", 300)
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait(
        "call-held",
        &[("call", &call), ("leg", "a"), ("by", "phone")],
    );
    lab.wait(
        "call-retrieved",
        &[("call", &call), ("leg", "a"), ("by", "phone")],
    );
    caller.finish(&mut lab.sw); // checks recvonly/inactive, then sendrecv, in the answers
    let b = callee.finish(&mut lab.sw);
    let reinvites: Vec<String> = b.received("INVITE ").into_iter().skip(1).collect();
    assert!(
        reinvites.len() >= 2,
        "hold and retrieve relayed as re-INVITEs:\n{}",
        b.messages
    );
    assert_eq!(
        common::sippbg::sdp_direction(&reinvites[0]),
        "sendonly",
        "{}",
        reinvites[0]
    );
    assert_eq!(
        common::sippbg::sdp_direction(reinvites.last().unwrap()),
        "sendrecv"
    );
    lab.wait("call-ended", &[("call", &call)]);
}

#[test]
fn hold_and_retrieve_from_switch() {
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab.caller("1001", "1002", "call").spawn(); // waits for BYE
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let api = lab.http();
    http::post_ok(api, &format!("/v1/calls/{call}/hold"), r#"{"leg":"b"}"#);
    lab.wait(
        "call-held",
        &[("call", &call), ("leg", "b"), ("by", "switch")],
    );
    let s = lab.summary(&call);
    assert_eq!(Lab::leg(&s, "b")["held_by_switch"], true, "{s}");
    callee.wait_received("a hold re-INVITE", EVENT, |m| {
        m.starts_with("INVITE ")
            && ["sendonly", "inactive"].contains(&common::sippbg::sdp_direction(m))
    });
    // The hold transaction is over once the switch ACKs the phone's 200.
    callee.wait_received("the ACK of the hold re-INVITE", EVENT, |m| {
        m.starts_with("ACK ") && header(m, "CSeq").is_some_and(|c| c.starts_with("2 "))
    });
    http::post_ok(api, &format!("/v1/calls/{call}/retrieve"), r#"{"leg":"b"}"#);
    lab.wait(
        "call-retrieved",
        &[("call", &call), ("leg", "b"), ("by", "switch")],
    );
    callee.wait_received("a retrieve re-INVITE", EVENT, |m| {
        m.starts_with("INVITE ")
            && header(m, "CSeq").is_some_and(|c| c.starts_with("3 "))
            && common::sippbg::sdp_direction(m) == "sendrecv"
    });
    callee.wait_received("the ACK of the retrieve re-INVITE", EVENT, |m| {
        m.starts_with("ACK ") && header(m, "CSeq").is_some_and(|c| c.starts_with("3 "))
    });
    let r = http::delete(api, &format!("/v1/calls/{call}"));
    assert!(
        (200..300).contains(&r.status),
        "DELETE: {} {}",
        r.status,
        r.body
    );
    caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "switch")]);
}

#[test]
fn retrieve_right_after_hold_still_retrieves() {
    // Retrieve is asked while the hold re-INVITE is still in progress: the switch took
    // the command (2xx) and reports call-retrieved, so the phone must end up sendrecv.
    let mut lab = Lab::start(CallConfig::default());
    let callee = lab.phone("1002", "phone_answer", |s| s);
    let caller = lab.caller("1001", "1002", "call").spawn();
    let call = lab.call_started(&[("to", "1002")]);
    lab.wait("call-bridged", &[("call", &call)]);
    let api = lab.http();
    http::post_ok(api, &format!("/v1/calls/{call}/hold"), r#"{"leg":"b"}"#);
    http::post_ok(api, &format!("/v1/calls/{call}/retrieve"), r#"{"leg":"b"}"#);
    lab.wait(
        "call-retrieved",
        &[("call", &call), ("leg", "b"), ("by", "switch")],
    );
    callee.wait_received("a re-INVITE back to sendrecv after the hold", EVENT, |m| {
        m.starts_with("INVITE ")
            && header(m, "CSeq").is_some_and(|c| !c.starts_with("1 ") && !c.starts_with("2 "))
            && common::sippbg::sdp_direction(m) == "sendrecv"
    });
    callee.wait_received("the ACK of that re-INVITE", EVENT, |m| {
        m.starts_with("ACK ")
            && header(m, "CSeq").is_some_and(|c| !c.starts_with("1 ") && !c.starts_with("2 "))
    });
    let r = http::delete(api, &format!("/v1/calls/{call}"));
    assert!(
        (200..300).contains(&r.status),
        "DELETE: {} {}",
        r.status,
        r.body
    );
    caller.finish(&mut lab.sw);
    callee.finish(&mut lab.sw);
}

#[test]
fn originate_with_auto_answer_and_case_data() {
    let cfg = CallConfig {
        pass_headers: vec!["X-Case-Id".into()],
        ..CallConfig::default()
    };
    let mut lab = Lab::start(cfg);
    let agent = lab.phone("1001", "phone_autoanswer", |s| s);
    let gw = lab.gateway("phone_answer", |s| s.set("hangup_ms", 500));
    let r = http::post(
        lab.http(),
        "/v1/calls",
        r#"{"a":"1001","b":"15551234","auto_answer":true,"headers":{"X-Case-Id":"42"},"interaction":"i-1"}"#,
    );
    assert_eq!(r.status, 201, "POST /v1/calls: {}", r.body);
    let call = r.json()["call"].as_str().expect("call id").to_string();
    lab.wait("call-started", &[("call", &call), ("interaction", "i-1")]);
    lab.wait(
        "call-leg",
        &[("call", &call), ("leg", "a"), ("progress", "answered")],
    );
    lab.wait("call-bridged", &[("call", &call)]);
    let s = lab.summary(&call);
    assert_eq!(s["interaction"], "i-1", "{s}");
    let g = gw.finish(&mut lab.sw);
    let a = agent.finish(&mut lab.sw); // checked Call-Info, Alert-Info and X-Case-Id
    lab.wait("call-ended", &[("call", &call), ("by", "b")]);
    let inv_a = &a.received("INVITE ")[0];
    assert!(
        header(inv_a, "Call-Info")
            .unwrap_or("")
            .contains("answer-after=0"),
        "{inv_a}"
    );
    assert!(
        header(inv_a, "Alert-Info")
            .unwrap_or("")
            .contains("autoanswer"),
        "{inv_a}"
    );
    assert_eq!(header(inv_a, "X-Case-Id"), Some("42"), "{inv_a}");
    let inv_b = &g.received("INVITE ")[0];
    assert!(inv_b.starts_with("INVITE sip:15551234@"), "{inv_b}");
    assert_eq!(
        header(inv_b, "X-Case-Id"),
        Some("42"),
        "case data on the B leg too: {inv_b}"
    );
    assert!(
        header(inv_b, "Call-Info").is_none_or(|v| !v.contains("answer-after")),
        "no auto-answer toward the contact: {inv_b}"
    );
}

#[test]
fn outbound_auth_407_on_trunk() {
    let cfg = CallConfig {
        peer_auth: Some(("trunkuser".into(), "trunkpw".into())),
        ..CallConfig::default()
    };
    let mut lab = Lab::start(cfg);
    let gw = lab.gateway("trunk_uas_auth407", |s| s);
    let caller = lab
        .caller("1001", "15551234", "call")
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    let g = gw.finish(&mut lab.sw);
    let invites = g.received("INVITE ");
    assert_eq!(invites.len(), 2, "INVITE, then INVITE with credentials");
    let auth = header(&invites[1], "Proxy-Authorization").expect("Proxy-Authorization");
    verify_digest(auth, "INVITE", "trunkuser", "trunkpw", "trunk.test");
    assert_ne!(
        header(&invites[0], "CSeq"),
        header(&invites[1], "CSeq"),
        "a new CSeq for the authenticated INVITE"
    );
}

#[test]
fn outbound_auth_401_on_trunk() {
    let cfg = CallConfig {
        peer_auth: Some(("trunkuser".into(), "trunkpw".into())),
        ..CallConfig::default()
    };
    let mut lab = Lab::start(cfg);
    // SIPp's verifyauth checks the Authorization header against these credentials.
    let gw = lab.gateway("trunk_uas_auth401", |s| {
        s.key("auth_user", "trunkuser").key("auth_pass", "trunkpw")
    });
    let caller = lab
        .caller("1001", "15551234", "call")
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    lab.wait("call-bridged", &[("call", &call)]);
    caller.finish(&mut lab.sw);
    gw.finish(&mut lab.sw);
}

/// Recomputes an RFC 2617/8760 MD5 digest response from its header.
fn verify_digest(auth: &str, method: &str, user: &str, password: &str, realm: &str) {
    use md5::{Digest, Md5};
    let param = |k: &str| -> String {
        let i = auth
            .find(&format!("{k}="))
            .unwrap_or_else(|| panic!("no {k} in {auth}"));
        let v = &auth[i + k.len() + 1..];
        if let Some(q) = v.strip_prefix('"') {
            q[..q.find('"').unwrap()].to_string()
        } else {
            v.split([',', ' ']).next().unwrap().to_string()
        }
    };
    let h = |s: String| hex::encode(Md5::digest(s.as_bytes()));
    assert_eq!(param("username"), user, "{auth}");
    assert_eq!(param("realm"), realm, "{auth}");
    let ha1 = h(format!("{user}:{realm}:{password}"));
    let ha2 = h(format!("{method}:{}", param("uri")));
    let expect = if auth.contains("qop=") {
        h(format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            param("nonce"),
            param("nc"),
            param("cnonce"),
            param("qop")
        ))
    } else {
        h(format!("{ha1}:{}:{ha2}", param("nonce")))
    };
    assert_eq!(param("response"), expect, "digest response wrong in {auth}");
}
