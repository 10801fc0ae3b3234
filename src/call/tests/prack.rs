//! RFC 3262 reliable provisional responses through the B2BUA, in virtual
//! time: a gateway's reliable 183 PRACKed, a caller's reliable 18x, its 2xx
//! held until the PRACK, the give-up, a late offer answered in a PRACK.

use super::*;

/// A request from the caller at `from_port` to `to`, with `extra` headers,
/// with or without SDP.
pub(super) fn invite_ext(to: &str, from_port: u16, extra: &[&str], sdp: bool) -> Request {
    let (ctype, body) = if sdp {
        ("Content-Type: application/sdp\r\n", SDP)
    } else {
        ("", "")
    };
    let extra: String = extra.iter().map(|h| format!("{h}\r\n")).collect();
    parse_req(format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{to}-{from_port};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: a-{to}-{from_port}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:{from_port}>\r\n{extra}{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// A request within the caller's dialog (`to_tag` from our responses).
fn caller_request(
    method: &str,
    to: &str,
    from_port: u16,
    cseq: u32,
    to_tag: &str,
    extra: &[&str],
) -> Request {
    let extra: String = extra.iter().map(|h| format!("{h}\r\n")).collect();
    parse_req(format!(
        "{method} sip:switchback@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{method}-{cseq}\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:{to}@127.0.0.1>;tag={to_tag}\r\nCall-ID: a-{to}-{from_port}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    ))
}

impl World {
    /// `reply` with extra headers (e.g. `Require: 100rel`, `RSeq: 1`).
    pub(super) fn reply_ext(&mut self, n: usize, code: u16, tag: &str, sdp: bool, extra: &[&str]) {
        let (id, req, dest) = self.out.sent[n].clone();
        let mut r = sip::with_to_tag(sip::response_to(&req, code, None), tag);
        r.headers.push(sip::make_header(
            "Contact",
            format!("<sip:x@{}>", dest.remote),
        ));
        for h in extra {
            let (name, value) = h.split_once(':').unwrap();
            r.headers
                .push(sip::make_header(name.trim(), value.trim().to_string()));
        }
        if sdp {
            r.headers
                .push(sip::make_header("Content-Type", "application/sdp".into()));
            r.body = SDP.as_bytes().to_vec();
        }
        sip::set_content_length(&mut r);
        let event = if code < 200 {
            ClientEvent::Provisional(r)
        } else {
            ClientEvent::Final(r)
        };
        self.calls
            .handle_client_event(self.now, &mut self.out, dest.profile, id, event);
    }

    /// Runs the call layer's own timers (not the transactions') up to `now`.
    fn advance_calls(&mut self, by: Duration) {
        self.now += by;
        while let Some(t) = self.calls.poll_timeout().filter(|t| *t <= self.now) {
            let _ = t;
            self.calls.handle_timeout(self.now, &mut self.out);
        }
    }

    fn last_answer(&self) -> Response {
        self.out.answers.last().unwrap().1.clone()
    }
}

fn acks(out: &Fake) -> Vec<Request> {
    out.stateless
        .iter()
        .filter_map(|m| match m {
            SipMessage::Request(r) if r.method == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn has_tag(m: &impl MessageHeaders, header: &str, tag: &str) -> bool {
    m.header_values(header)
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

#[test]
fn gateway_reliable_183_is_pracked_and_its_early_media_reaches_the_caller() {
    let mut w = world();
    w.receive(invite("5551234", 6001), source(6001));
    let (_, inv, _) = w.out.sent[0].clone();
    assert!(has_tag(&inv, "Supported", "100rel"), "{inv}");
    assert!(inv.header_value("Require").is_none());
    w.reply_ext(0, 183, "gw", true, &["Require: 100rel", "RSeq: 42"]);
    // §7.2: PRACK within the early dialog, RAck naming the 183.
    let (_, prack, dest) = w.out.sent.last().unwrap().clone();
    assert_eq!(prack.method, Method::PRack);
    assert_eq!(prack.header_value("RAck"), Some("42 1 INVITE"));
    assert_eq!(prack.cseq(), Some((2, Method::PRack)));
    assert_eq!(prack.to_tag().as_deref(), Some("gw"));
    assert_eq!(prack.call_id(), inv.call_id());
    assert_eq!(dest.remote.port(), 5090);
    // The caller hears it: 183 with the switch's SDP, bridged early.
    let p = w.last_answer();
    assert_eq!(p.status_code.code(), 183);
    assert!(String::from_utf8_lossy(&p.body).contains("m=audio 200"));
    assert!(
        p.header_value("RSeq").is_none(),
        "the caller did not ask for 100rel"
    );
    assert!(w
        .media()
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
    // A retransmitted 183 gets no second PRACK.
    let sent = w.out.sent.len();
    w.reply_ext(0, 183, "gw", true, &["Require: 100rel", "RSeq: 42"]);
    assert_eq!(w.out.sent.len(), sent);
    // The 200 (without SDP: the answer was reliable) is ACKed with the INVITE's CSeq.
    w.reply(0, 200, "gw", false);
    let a = acks(&w.out);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].cseq(), Some((1, Method::Ack)));
    let ok = w.last_answer();
    assert_eq!(ok.status_code.code(), 200);
    assert!(String::from_utf8_lossy(&ok.body).contains("m=audio 200"));
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("call-bridged")), "{ev:?}");
}

/// A caller supporting 100rel calls 1003, whose phone sends 183 with SDP.
fn reliable_183_to_caller(w: &mut World) -> (Response, u32) {
    w.receive(
        invite_ext("1003", 6001, &["Supported: 100rel, timer"], true),
        source(6001),
    );
    w.reply(0, 183, "f1", true);
    let p = w.last_answer();
    assert_eq!(p.status_code.code(), 183);
    assert!(has_tag(&p, "Require", "100rel"), "{p}");
    assert!(String::from_utf8_lossy(&p.body).contains("m=audio"));
    let rseq = p.header_value("RSeq").unwrap().parse().unwrap();
    (p, rseq)
}

#[test]
fn caller_supporting_100rel_gets_a_reliable_183_and_its_200_waits_for_the_prack() {
    let mut w = world();
    let (p, rseq) = reliable_183_to_caller(&mut w);
    let tag = p.to_tag().unwrap();
    // Retransmitted at T1 (500 ms) until the PRACK.
    w.advance_calls(Duration::from_millis(500));
    let again = w
        .out
        .stateless
        .iter()
        .filter(|m| matches!(m, SipMessage::Response(r) if r.status_code.code() == 183))
        .count();
    assert_eq!(again, 1);
    // The callee answers: the caller's 200 is held (the 183 carried the answer).
    w.reply(0, 200, "f1", true);
    assert_eq!(w.last_answer_code(), 183);
    // A PRACK naming another RSeq: 481.
    let wrong = format!("RAck: {} 1 INVITE", rseq + 5);
    w.receive(
        caller_request("PRACK", "1003", 6001, 2, &tag, &[&wrong]),
        source(6001),
    );
    assert_eq!(w.last_answer_code(), 481);
    // The right one: 200 to it, then the 200 to the INVITE with the same answer.
    let right = format!("RAck: {rseq} 1 INVITE");
    w.receive(
        caller_request("PRACK", "1003", 6001, 3, &tag, &[&right]),
        source(6001),
    );
    let n = w.out.answers.len();
    let (prack_ok, invite_ok) = (&w.out.answers[n - 2].1, &w.out.answers[n - 1].1);
    assert_eq!(prack_ok.cseq(), Some((3, Method::PRack)));
    assert_eq!(prack_ok.status_code.code(), 200);
    assert_eq!(invite_ok.cseq(), Some((1, Method::Invite)));
    assert_eq!(invite_ok.status_code.code(), 200);
    assert_eq!(
        invite_ok.body, p.body,
        "the 200 repeats the answer (RFC 3264 §4)"
    );
    assert!(has_tag(invite_ok, "Supported", "100rel"));
    // No more 183 retransmissions.
    let before = w.out.stateless.len();
    w.advance_calls(Duration::from_secs(5));
    assert!(!w.out.stateless[before..]
        .iter()
        .any(|m| matches!(m, SipMessage::Response(r) if r.status_code.code() == 183)));
}

#[test]
fn no_prack_within_64_t1_gets_the_caller_504_and_ends_the_call() {
    // Ringing may last longer than 64*T1 (32 s) here.
    let mut w = world_with(&CONFIG.replace("ring_timeout_secs = 30", "ring_timeout_secs = 60"));
    reliable_183_to_caller(&mut w);
    w.advance_calls(Duration::from_secs(33));
    assert_eq!(w.last_answer_code(), 504);
    assert_eq!(w.out.cancelled.len(), 1, "the ringing callee is cancelled");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("cause=no-prack")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 0);
}

#[test]
fn caller_requiring_100rel_gets_even_its_ringing_reliably() {
    let mut w = world();
    w.receive(
        invite_ext("1003", 6001, &["Require: 100rel"], true),
        source(6001),
    );
    w.reply(0, 180, "f1", false);
    let r = w.last_answer();
    assert_eq!(r.status_code.code(), 180);
    assert!(r.header_value("RSeq").is_some(), "{r}");
    // A ringing without SDP does not hold the 200 back.
    w.reply(0, 200, "f1", true);
    assert_eq!(w.last_answer_code(), 200);
}

#[test]
fn late_offer_callee_offering_in_a_reliable_183_is_answered_in_the_prack() {
    let mut w = world();
    w.receive(invite_ext("1003", 6001, &[], false), source(6001));
    let (_, b_inv, _) = w.out.sent[0].clone();
    assert!(b_inv.body.is_empty());
    // The callee offers PCMA, PCMU, telephone-event in a reliable 183.
    w.reply_ext(0, 183, "f1", true, &["Require: 100rel", "RSeq: 1"]);
    let (_, prack, _) = w.out.sent.last().unwrap().clone();
    assert_eq!(prack.method, Method::PRack);
    let answer = String::from_utf8_lossy(&prack.body).to_string();
    assert_eq!(prack.header_value("Content-Type"), Some("application/sdp"));
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    assert!(
        answer.contains(" RTP/AVP 8 101"),
        "one codec and events: {answer}"
    );
    // The caller only rings (it made no offer to answer).
    assert_eq!(w.last_answer_code(), 180);
    // The callee's 200 is ACKed at once (no answer owed) ...
    w.reply(0, 200, "f1", false);
    let a = acks(&w.out);
    assert_eq!(a.len(), 1);
    assert!(a[0].body.is_empty());
    // ... and the caller is offered that codec in its 200.
    let ok = w.last_answer();
    assert_eq!(ok.status_code.code(), 200);
    let offer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(offer.contains(" RTP/AVP 8 101"), "{offer}");
    // Its ACK answers: bridged.
    let tag = ok.to_tag().unwrap();
    let answer_pcma = "v=0\r\no=- 2 1 IN IP4 10.2.2.2\r\ns=-\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let ack = parse_req(format!(
        "ACK sip:switchback@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-ack\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:1003@127.0.0.1>;tag={tag}\r\nCall-ID: a-1003-6001\r\nCSeq: 1 ACK\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer_pcma}",
        answer_pcma.len()
    ));
    w.receive(ack, source(6001));
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("call-bridged")), "{ev:?}");
}

const OFF: &str = r#"
[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:5060" }]
users = [{ username = "1001", password = "x" }, { username = "1002", password = "x" }, { username = "1003", password = "x" }]
[profiles.internal.calls]
session_expires_secs = 0
prack = "off"
[profiles.internal.media]
rtp_port_min = 20000
rtp_port_max = 20099
[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:5080" }]
peers = [{ name = "trunk", address = "127.0.0.1:5090", acl = ["10.0.0.0/8"], prack = "required" }]
[profiles.external.media]
rtp_port_min = 20100
rtp_port_max = 20199
[[dialplan]]
match = "1[0-9]{3}"
to = "user"
[[dialplan]]
match = "[0-9]{6,}"
to = "gateway"
gateway = "trunk"
"#;

#[test]
fn prack_off_refuses_require_100rel_and_required_asks_it_of_the_peer() {
    let mut w = world_with(OFF);
    w.receive(
        invite_ext("1003", 6001, &["Require: 100rel"], true),
        source(6001),
    );
    let r = w.last_answer();
    assert_eq!(r.status_code.code(), 420);
    assert_eq!(r.header_value("Unsupported"), Some("100rel"));
    assert_eq!(w.calls.call_count(), 0);
    // A caller merely supporting it is served without (its 183 unreliable).
    w.receive(
        invite_ext("1003", 6011, &["Supported: 100rel"], true),
        source(6001),
    );
    let (_, to_phone, _) = w.out.sent[0].clone();
    assert!(!has_tag(&to_phone, "Supported", "100rel"), "{to_phone}");
    w.reply(0, 183, "f1", true);
    assert!(w.last_answer().header_value("RSeq").is_none());
    // Toward the peer set to "required": Require: 100rel.
    w.receive(invite_ext("5551234", 6001, &[], true), source(6001));
    let (_, to_peer, _) = w.out.sent.last().unwrap().clone();
    assert!(has_tag(&to_peer, "Require", "100rel"), "{to_peer}");
    assert!(has_tag(&to_peer, "Supported", "100rel"), "{to_peer}");
}
