//! Late offer (RFC 3261 §13.2.1): an INVITE without SDP, the offer in the
//! callee's 2xx, the answer in the caller's ACK.

use super::*;

/// An INVITE without SDP (a late offer).
fn invite_without_sdp(to: &str, from_port: u16) -> Request {
    parse_req(format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{to}-{from_port};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: a-{to}-{from_port}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:{from_port}>\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// The caller's ACK for the switch's 200 `ok` (to `to`, from `from_port`), with `sdp` as its body.
fn ack_for(ok: &Response, to: &str, from_port: u16, sdp: Option<&str>) -> Request {
    let tag = ok.to_tag().unwrap();
    let body = sdp.unwrap_or("");
    let ctype = if sdp.is_some() {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    parse_req(format!(
        "ACK sip:switchback@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-ack-{from_port}\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:{to}@127.0.0.1>;tag={tag}\r\nCall-ID: a-{to}-{from_port}\r\nCSeq: 1 ACK\r\n{ctype}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// The ACKs the switch sent outside transactions.
fn acks(out: &Fake) -> Vec<Request> {
    out.stateless
        .iter()
        .filter_map(|m| match m {
            SipMessage::Request(r) if r.method == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .collect()
}

const ANSWER_PCMU: &str = "v=0\r\no=- 2 1 IN IP4 10.2.2.2\r\ns=-\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

#[test]
fn late_offer_callee_offers_in_its_200_and_the_caller_answers_in_its_ack() {
    let mut w = world();
    w.receive(invite_without_sdp("1003", 6001), source(6001));
    // The callee is invited without SDP too.
    let (_, b_inv, _) = w.out.sent[0].clone();
    assert!(b_inv.body.is_empty(), "{b_inv:?}");
    assert!(b_inv.header_value("Content-Type").is_none());
    // SDP in an unreliable 183 is no offer: the caller only hears ringing.
    w.reply(0, 183, "f1", true);
    assert_eq!(w.last_answer_code(), 180);
    assert!(w.out.answers.last().unwrap().1.body.is_empty());
    // The callee's 200 carries the offer (PCMA, PCMU, telephone-event).
    w.reply(0, 200, "f1", true);
    let ok = w.out.answers.last().unwrap().1.clone();
    assert_eq!(ok.status_code.code(), 200);
    let offer = String::from_utf8_lossy(&ok.body).to_string();
    assert!(offer.contains("c=IN IP4 127.0.0.1"), "{offer}");
    assert!(offer.contains(" RTP/AVP 8 0 101"), "{offer}");
    // Its ACK waits for the caller's, also when the 200 is retransmitted.
    w.reply(0, 200, "f1", true);
    assert!(acks(&w.out).is_empty());
    assert_eq!(
        w.out
            .answers
            .iter()
            .filter(|(_, r)| r.status_code.code() == 200)
            .count(),
        1
    );
    assert!(!w.events().iter().any(|e| e.contains("call-bridged")));
    // The caller answers PCMU in its ACK: the callee's ACK carries it in its numbering.
    w.receive(ack_for(&ok, "1003", 6001, Some(ANSWER_PCMU)), source(6001));
    let b_acks = acks(&w.out);
    assert_eq!(b_acks.len(), 1);
    let answer = String::from_utf8_lossy(&b_acks[0].body).to_string();
    assert!(answer.contains("c=IN IP4 127.0.0.1"), "{answer}");
    assert!(answer.contains(" RTP/AVP 0 101"), "{answer}");
    assert_eq!(b_acks[0].call_id(), b_inv.call_id());
    let media = w.media();
    assert!(media.iter().any(|m| matches!(
        m,
        MediaCommand::Update { remote: Some(r), .. } if r.port() == 5000
    )));
    assert!(media
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-bridged") && e.contains("legs=a,b")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 1);
}

#[test]
fn late_offer_without_an_answer_in_the_ack_ends_both_legs() {
    let mut w = world();
    w.receive(invite_without_sdp("1003", 6001), source(6001));
    w.reply(0, 200, "f1", true);
    let ok = w.out.answers.last().unwrap().1.clone();
    w.receive(ack_for(&ok, "1003", 6001, None), source(6001));
    // The callee is ACKed (with an answer to its own offer), then both legs get BYE.
    let b_acks = acks(&w.out);
    assert_eq!(b_acks.len(), 1);
    assert!(String::from_utf8_lossy(&b_acks[0].body).contains("m=audio"));
    let byes: Vec<u16> = w
        .out
        .sent
        .iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
        .map(|(_, _, d)| d.remote.port())
        .collect();
    assert_eq!(byes.len(), 2, "{byes:?}");
    assert!(byes.contains(&6001) && byes.contains(&6003), "{byes:?}");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("cause=no-answer-sdp")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 0);
}

#[test]
fn late_offer_caller_that_never_acks_is_hung_up_and_the_callee_acked_first() {
    let mut w = world();
    w.receive(invite_without_sdp("1003", 6001), source(6001));
    w.reply(0, 200, "f1", true);
    // 64*T1 later the dialog gives up on the caller's ACK.
    w.now += Duration::from_secs(33);
    w.calls.handle_timeout(w.now, &mut w.out);
    assert_eq!(acks(&w.out).len(), 1, "the callee's 200 is ACKed");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("cause=no-ack")),
        "{ev:?}"
    );
    assert!(w
        .out
        .sent
        .iter()
        .any(|(_, r, d)| r.method == Method::Bye && d.remote.port() == 6003));
}

#[test]
fn late_offer_callee_without_an_offer_fails_the_call_with_488() {
    let mut w = world();
    w.receive(invite_without_sdp("1003", 6001), source(6001));
    w.reply(0, 200, "f1", false);
    assert_eq!(w.last_answer_code(), 488);
    assert_eq!(acks(&w.out).len(), 1);
    assert!(w
        .out
        .sent
        .iter()
        .any(|(_, r, d)| r.method == Method::Bye && d.remote.port() == 6003));
    assert_eq!(w.calls.call_count(), 0);
}
