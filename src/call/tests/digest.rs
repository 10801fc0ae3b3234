//! Callers that are neither trunk peers nor at a registered address:
//! challenged 407 by the profile's registrar.

use super::*;

/// The INVITE `first` again with credentials answering the last 407.
fn with_credentials(w: &World, first: &Request, user: &str, password: &str) -> Request {
    let challenge = &w.out.answers.last().unwrap().1;
    assert_eq!(challenge.status_code.code(), 407);
    crate::call::digest::answer_challenge(first, challenge, user, password).unwrap()
}

#[test]
fn unregistered_caller_is_admitted_by_digest_as_the_user_it_authenticates() {
    let mut w = world();
    let first = invite("1002", 7777);
    w.receive(first.clone(), source(7777));
    let challenge = w.out.answers.last().unwrap().1.clone();
    assert_eq!(challenge.status_code.code(), 407);
    let offered = challenge.header_value("Proxy-Authenticate").unwrap();
    assert!(offered.contains("realm=\"switchback.test\""), "{offered}");
    assert!(w.out.sent.is_empty(), "nobody rings before authentication");
    // The caller's From says 1001, its credentials say 1003: it is 1003.
    let again = with_credentials(&w, &first, "1003", "x");
    w.receive(again, source(7777));
    assert_eq!(w.out.sent.len(), 2, "both contacts of 1002 ring");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-started") && e.contains("from=1003")),
        "{ev:?}"
    );
    let from = w.out.sent[0].1.header_value("From").unwrap().to_string();
    assert!(from.contains("sip:1003@"), "{from}");
}

#[test]
fn wrong_credentials_get_403_and_count_toward_the_guard() {
    let mut w = world();
    for attempt in 0..3 {
        let first = parse_req(
            sip::SipMessage::Request(invite("1002", 7777))
                .to_string()
                // A fresh branch and Call-ID per attempt.
                .replace("1002-7777", &format!("1002-7777-{attempt}")),
        );
        w.receive(first.clone(), source(7777));
        let again = with_credentials(&w, &first, "1001", "guess");
        w.receive(again, source(7777));
        assert_eq!(w.last_answer_code(), 403, "attempt {attempt}");
        assert!(matches!(
            w.out.registrar.poll_event(),
            Some(RegistrarEvent::AuthFailed { .. })
        ));
    }
    // The third failure blocked 1001 from this address, as on REGISTER;
    // not the address itself, behind which other users may sit.
    let ip = source(7777).remote.ip();
    assert!(!w.out.registrar.is_blocked(w.now, ip));
    let answered = w.out.answers.len();
    let next = parse_req(
        sip::SipMessage::Request(invite("1002", 7777))
            .to_string()
            .replace("1002-7777", "1002-7777-3"),
    );
    w.receive(next, source(7777));
    // Its transaction exists (100 Trying went out) and must end: 403, not
    // another challenge to guess against.
    let finals: Vec<u16> = w.out.answers[answered..]
        .iter()
        .map(|(_, r)| r.status_code.code())
        .filter(|c| *c >= 200)
        .collect();
    assert_eq!(finals, [403], "a blocked user is refused, not challenged");
    assert!(w.out.sent.is_empty());
    assert_eq!(w.calls.call_count(), 0);
}
