//! RFC 3263 §4.3 in virtual time: a leg to a trunk peer with several
//! servers moves to the next one on 503, on Timer B and on a transport
//! error, keeps its dialog identifiers, and fails only when none is left.

use super::*;
use crate::transaction::TransactionEvent;

/// The external profile (first by name) and its peer `trunk`.
const EXTERNAL: ProfileId = ProfileId(0);

fn servers() -> Vec<SocketAddr> {
    ["192.0.2.10:5060", "192.0.2.20:5070", "[2001:db8::30]:5060"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect()
}

fn world_with_servers(targets: Vec<SocketAddr>) -> World {
    let mut w = world();
    w.calls.set_peer_targets(EXTERNAL, 0, targets);
    w
}

impl World {
    /// Runs the real transaction layer's timers up to `now` and hands the
    /// call layer what they report (Timer B's timeout, here).
    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.out.layer.handle_timeout(self.now);
        while let Some(e) = self.out.layer.poll_event() {
            if let TransactionEvent::Client { id, event } = e {
                let profile = self
                    .out
                    .sent
                    .iter()
                    .find(|(i, _, _)| *i == id)
                    .map(|(_, _, d)| d.profile)
                    .unwrap_or(EXTERNAL);
                self.calls
                    .handle_client_event(self.now, &mut self.out, profile, id, event);
            }
        }
    }

    /// The INVITEs sent to the peer, with where each went.
    fn invites_to_peer(&self) -> Vec<(Request, SocketAddr)> {
        self.out
            .sent
            .iter()
            .filter(|(_, r, d)| r.method == Method::Invite && d.profile == EXTERNAL)
            .map(|(_, r, d)| (r.clone(), d.remote))
            .collect()
    }
}

fn branch(r: &Request) -> String {
    r.top_via().and_then(|v| v.branch).unwrap_or_default()
}

#[test]
fn a_503_a_timeout_then_an_answer_on_the_third_server() {
    let mut w = world_with_servers(servers());
    w.receive(invite("5551234", 6001), source(6001));
    let sent = w.invites_to_peer();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, servers()[0], "the first server first");
    // The Request-URI names the peer as configured, whichever server gets it.
    assert_eq!(sent[0].0.uri.to_string(), "sip:5551234@127.0.0.1:5090");

    w.reply(0, 503, "s1", false);
    let sent = w.invites_to_peer();
    assert_eq!(sent.len(), 2, "503: the next server");
    let (first, second) = (&sent[0].0, &sent[1].0);
    assert_eq!(sent[1].1, servers()[1]);
    assert_ne!(branch(first), branch(second), "a new transaction");
    assert_eq!(second.cseq().map(|c| c.0), Some(2));
    assert_eq!(first.call_id(), second.call_id(), "the same dialog");
    assert_eq!(
        first.header_value("From"),
        second.header_value("From"),
        "the same local tag"
    );
    assert_eq!(first.uri, second.uri);
    assert!(
        w.out
            .answers
            .iter()
            .all(|(_, r)| r.status_code.code() < 300),
        "the caller hears nothing of it"
    );

    // The second server never answers: Timer B (64*T1) moves on.
    w.advance(Duration::from_millis(64 * 500 + 1));
    let sent = w.invites_to_peer();
    assert_eq!(sent.len(), 3, "Timer B: the next server");
    assert_eq!(sent[2].1, servers()[2]);
    assert_eq!(sent[2].0.cseq().map(|c| c.0), Some(3));

    let n = w.out.sent.len() - 1;
    w.reply(n, 200, "s3", true);
    assert_eq!(w.last_answer_code(), 200, "the caller is answered");
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("call-bridged")), "{ev:?}");
    assert!(
        !ev.iter().any(|e| e.contains("call-leg-failed")),
        "no leg failed: {ev:?}"
    );
}

#[test]
fn a_transport_error_moves_on_and_the_last_failure_reaches_the_caller() {
    let mut w = world_with_servers(servers()[..2].to_vec());
    w.receive(invite("5551234", 6001), source(6001));
    let (id, _, dest) = w.out.sent[0].clone();
    // The driver could not reach the server (refused, TLS certificate
    // not trusted): the transaction reports a transport error.
    w.out.layer.transport_error(w.now, id.into());
    w.advance(Duration::ZERO);
    let sent = w.invites_to_peer();
    assert_eq!(sent.len(), 2, "transport error: the next server");
    assert_eq!(sent[1].1, servers()[1]);
    assert_eq!(dest.remote, servers()[0]);
    let (id, _, _) = w.out.sent.last().unwrap().clone();
    w.out.layer.transport_error(w.now, id.into());
    w.advance(Duration::ZERO);
    assert_eq!(w.invites_to_peer().len(), 2, "no server left");
    assert_eq!(w.last_answer_code(), 503, "a transport error counts as 503");
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("status=503")),
        "{ev:?}"
    );
}

#[test]
fn a_definite_answer_is_not_retried_elsewhere() {
    let mut w = world_with_servers(servers());
    w.receive(invite("5551234", 6001), source(6001));
    w.reply(0, 486, "s1", false);
    assert_eq!(w.invites_to_peer().len(), 1, "486 is the callee's answer");
    assert_eq!(w.last_answer_code(), 486);
}

#[test]
fn a_cancelled_call_does_not_move_on() {
    let mut w = world_with_servers(servers());
    w.receive(invite("5551234", 6001), source(6001));
    w.reply(0, 180, "s1", false);
    let cancel = parse_req(
        "CANCEL sip:5551234@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-5551234-6001;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:5551234@127.0.0.1>\r\nCall-ID: a-5551234-6001\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n".into(),
    );
    w.receive(cancel, source(6001));
    assert_eq!(w.last_answer_code(), 487);
    w.reply(0, 503, "s1", false);
    assert_eq!(w.invites_to_peer().len(), 1, "nothing more is tried");
}

#[test]
fn a_peer_without_servers_gets_503() {
    let mut w = world_with_servers(Vec::new());
    w.receive(invite("5551234", 6001), source(6001));
    assert!(w.invites_to_peer().is_empty());
    assert_eq!(w.last_answer_code(), 503);
}

#[test]
fn new_targets_apply_to_the_next_call() {
    let mut w = world_with_servers(servers()[..1].to_vec());
    w.calls
        .set_peer_targets(EXTERNAL, 0, servers()[1..].to_vec());
    w.receive(invite("5551234", 6001), source(6001));
    assert_eq!(w.invites_to_peer()[0].1, servers()[1]);
}
