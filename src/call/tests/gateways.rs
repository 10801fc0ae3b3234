//! Trunk peers in virtual time: a route's gateways and failing over
//! between them (503, Timer B, transport error; not 486), gateways marked
//! down skipped, limits per peer in and out (503 with Retry-After), slots
//! given back when calls end, and OPTIONS pings taking a peer down and up.

use super::*;
use crate::call::peers::PingOutcome;
use crate::transaction::TransactionEvent;

const EXTERNAL: ProfileId = ProfileId(0);
const A: usize = 0;
const P: usize = 3;

const PEERS: &str = r#"
[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:5060" }]
users = [{ username = "1001", password = "x" }]
[profiles.internal.media]
rtp_port_min = 20000
rtp_port_max = 20099
rtp_timeout_secs = 0
[profiles.internal.calls]
ring_timeout_secs = 30
session_expires_secs = 0
[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:5080" }]
[[profiles.external.peers]]
name = "a"
address = "192.0.2.1:5060"
username = "user-a"
password = "pass-a"
[[profiles.external.peers]]
name = "b"
address = "192.0.2.2:5060"
username = "user-b"
password = "pass-b"
max_calls_out = 1
[[profiles.external.peers]]
name = "cc"
acl = ["10.0.0.0/8"]
max_calls_in = 2
max_cps_in = 2
[[profiles.external.peers]]
name = "p"
address = "192.0.2.3:5060"
ping_interval_secs = 10
ping_failures_before_down = 2
ping_successes_before_up = 1
[profiles.external.media]
rtp_port_min = 20100
rtp_port_max = 20199
rtp_timeout_secs = 0
[profiles.external.calls]
session_expires_secs = 0
[[dialplan]]
match = "9[0-9]+"
to = "gateway"
gateways = ["a", "b"]
[[dialplan]]
match = "8[0-9]+"
to = "gateway"
gateways = ["p", "a"]
"#;

fn external_source(ip: [u8; 4], port: u16) -> Source {
    Source {
        profile: EXTERNAL,
        transport: TransportKind::Udp,
        local: "127.0.0.1:5080".parse().unwrap(),
        remote: SocketAddr::from((ip, port)),
        connection: None,
    }
}

/// An INVITE from a peer's SBC at 10.0.0.1 (its own Call-ID per `n`).
fn sbc_invite(to: &str, n: u16) -> Request {
    let port = 7000 + n;
    parse_req(format!(
        "INVITE sip:{to}@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:{port};branch=z9hG4bK-sbc-{n};rport\r\nMax-Forwards: 70\r\nFrom: <sip:+15550100@10.0.0.1>;tag=sbc\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: sbc-{n}\r\nCSeq: 1 INVITE\r\nContact: <sip:sbc@10.0.0.1:{port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

impl World {
    /// Runs the transaction layer's and the call layer's timers up to now+by.
    fn tick(&mut self, by: Duration) {
        self.now += by;
        self.out.layer.handle_timeout(self.now);
        self.pump();
        if self.calls.poll_timeout().is_some_and(|t| t <= self.now) {
            self.calls.handle_timeout(self.now, &mut self.out);
        }
        self.pump();
    }

    /// Hands the call layer what the transaction layer reported.
    fn pump(&mut self) {
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

    /// (index in `sent`, request, where it went) of requests of `method`.
    fn sent_of(&self, method: Method) -> Vec<(usize, Request, SocketAddr)> {
        self.out
            .sent
            .iter()
            .enumerate()
            .filter(|(_, (_, r, _))| r.method == method)
            .map(|(i, (_, r, d))| (i, r.clone(), d.remote))
            .collect()
    }

    fn status(&self, peer: &str) -> crate::call::PeerStatus {
        self.calls.peer_table().status_of(peer).unwrap()
    }
}

fn gw(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 5060))
}

#[test]
fn a_503_goes_on_to_the_next_gateway_as_a_new_leg_with_its_credentials() {
    let mut w = world_with(PEERS);
    w.receive(invite("9555", 6001), source(6001));
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].2, gw(1), "the first gateway first");
    assert_eq!(w.status("a").calls_out, 1);
    w.reply(invites[0].0, 180, "ga", false);
    w.reply(invites[0].0, 503, "ga", false);
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 2, "503: the next gateway");
    let (first, second) = (&invites[0].1, &invites[1].1);
    assert_eq!(invites[1].2, gw(2));
    assert_ne!(
        first.call_id(),
        second.call_id(),
        "a new leg, its own dialog"
    );
    assert_eq!(second.uri.to_string(), "sip:9555@192.0.2.2:5060");
    assert_eq!(second.cseq().map(|c| c.0), Some(1));
    let (a, b) = (w.status("a"), w.status("b"));
    assert_eq!((a.calls_out, b.calls_out), (0, 1), "the slot moved");
    assert_eq!(a.last_failure.map(|f| f.status), Some(503));
    assert!(b.last_failure.is_none());
    // b challenges: answered with b's credentials, not a's.
    let n = invites[1].0;
    let (id, req, dest) = w.out.sent[n].clone();
    let mut challenge = sip::with_to_tag(sip::response_to(&req, 401, None), "gb");
    challenge.headers.push(sip::make_header(
        "WWW-Authenticate",
        "Digest realm=\"b\", nonce=\"n1\", algorithm=MD5".into(),
    ));
    w.calls.handle_client_event(
        w.now,
        &mut w.out,
        dest.profile,
        id,
        ClientEvent::Final(challenge),
    );
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 3);
    let auth = invites[2].1.header_value("Authorization").unwrap_or("");
    assert!(auth.contains("username=\"user-b\""), "{auth}");
    // The caller heard ringing, not the failure, and is answered by b.
    assert!(w
        .out
        .answers
        .iter()
        .all(|(_, r)| r.status_code.code() < 300));
    w.reply(invites[2].0, 200, "gb", true);
    assert_eq!(w.last_answer_code(), 200);
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("call-bridged")), "{ev:?}");
    assert!(
        !ev.iter().any(|e| e.contains("call-leg-failed")),
        "the failover is no failure of the call: {ev:?}"
    );
}

#[test]
fn timer_b_and_transport_errors_fail_over_but_a_busy_callee_does_not() {
    // Timer B (no answer at all) on a, then b answers.
    let mut w = world_with(PEERS);
    w.receive(invite("9555", 6001), source(6001));
    w.tick(Duration::from_millis(64 * 500 + 1));
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 2, "Timer B: the next gateway");
    assert_eq!(invites[1].2, gw(2));
    assert_eq!(w.status("a").last_failure.map(|f| f.status), Some(408));

    // A transport error on a.
    let mut w = world_with(PEERS);
    w.receive(invite("9555", 6001), source(6001));
    let (id, _, _) = w.out.sent[0].clone();
    w.out.layer.transport_error(w.now, id.into());
    w.pump();
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 2, "transport error: the next gateway");
    // b fails too: nothing left, the caller gets b's 503.
    w.reply(invites[1].0, 503, "gb", false);
    assert_eq!(w.sent_of(Method::Invite).len(), 2);
    assert_eq!(w.last_answer_code(), 503);
    assert_eq!(w.calls.call_count(), 0);
    assert_eq!((w.status("a").calls_out, w.status("b").calls_out), (0, 0));

    // 486 is the callee's answer: no other gateway is tried.
    let mut w = world_with(PEERS);
    w.receive(invite("9555", 6001), source(6001));
    w.reply(0, 486, "ga", false);
    assert_eq!(w.sent_of(Method::Invite).len(), 1);
    assert_eq!(w.last_answer_code(), 486);
    assert!(
        w.status("a").last_failure.is_none(),
        "a busy callee is no peer failure"
    );
}

#[test]
fn gateways_marked_down_are_skipped_and_all_down_is_503_at_once() {
    let mut w = world_with(PEERS);
    let table = w.calls.peer_table().clone();
    for _ in 0..2 {
        table.record_ping(EXTERNAL, P, &PingOutcome::Timeout, 0);
    }
    assert!(!table.is_up(EXTERNAL, P));
    w.receive(invite("8555", 6001), source(6001));
    let invites = w.sent_of(Method::Invite);
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].2, gw(1), "p is down: a takes the call");
    // No failover back to p either: a fails, nothing left.
    w.reply(0, 503, "ga", false);
    assert_eq!(w.sent_of(Method::Invite).len(), 1);
    assert_eq!(w.last_answer_code(), 503);

    // Every gateway of the route down: 503 with Retry-After, nothing sent.
    for _ in 0..2 {
        table.record_ping(EXTERNAL, A, &PingOutcome::Timeout, 0);
    }
    // a has no pings configured; marking it down by hand shows the rule.
    let sent = w.out.sent.len();
    w.receive(invite("8556", 6001), source(6001));
    assert_eq!(w.out.sent.len(), sent, "no INVITE sent");
    let (_, r) = w.out.answers.last().unwrap();
    assert_eq!(r.status_code.code(), 503);
    assert_eq!(r.header_value("Retry-After"), Some("1"));
    // Up again after one answered ping (ping_successes_before_up = 1).
    table.record_ping(EXTERNAL, P, &PingOutcome::Answered(200), 0);
    w.receive(invite("8557", 6001), source(6001));
    assert_eq!(w.out.sent.last().unwrap().2.remote, gw(3));
}

#[test]
fn a_gateway_at_its_outbound_limit_passes_the_call_on_and_then_503() {
    let mut w = world_with(PEERS);
    let table = w.calls.peer_table().clone();
    // a down: calls go to b, which takes one at a time.
    for _ in 0..2 {
        table.record_ping(EXTERNAL, A, &PingOutcome::Timeout, 0);
    }
    w.receive(invite("9555", 6001), source(6001));
    assert_eq!(w.out.sent.last().unwrap().2.remote, gw(2));
    w.receive(invite("9556", 6001), source(6001));
    let (_, r) = w.out.answers.last().unwrap();
    assert_eq!(r.status_code.code(), 503, "b at max_calls_out, a down");
    assert_eq!(r.header_value("Retry-After"), Some("1"));
    let b = w.status("b");
    assert_eq!((b.calls_out, b.refused.calls_out), (1, 1));
    // The first call ends (busy): b's slot is free again.
    w.reply(0, 486, "gb", false);
    assert_eq!(w.status("b").calls_out, 0);
    w.receive(invite("9557", 6001), source(6001));
    assert_eq!(w.status("b").calls_out, 1);
}

#[test]
fn a_peers_inbound_limits_answer_503_with_retry_after_and_free_with_the_call() {
    let mut w = world_with(PEERS);
    // Two calls from the SBC ring (max_calls_in = 2); the third is refused.
    for n in 0..2 {
        w.receive(
            sbc_invite("9555", n),
            external_source([10, 0, 0, 1], 7000 + n),
        );
    }
    assert_eq!(w.status("cc").calls_in, 2);
    w.receive(sbc_invite("9555", 2), external_source([10, 0, 0, 1], 7002));
    let (_, r) = w.out.answers.last().unwrap();
    assert_eq!(r.status_code.code(), 503);
    assert!(
        r.status_code.to_string().contains("Peer Call Limit"),
        "{}",
        r.status_code
    );
    assert_eq!(r.header_value("Retry-After"), Some("1"));
    assert_eq!(w.calls.call_count(), 2);
    // One call fails (its callee busy): its slot is back.
    w.reply(0, 486, "x", false);
    assert_eq!(w.status("cc").calls_in, 1);
    // The rate limit (2 per second, a bucket of 2, spent by the first two
    // calls; the refused third spent none): refused although a call slot
    // is free.
    w.receive(sbc_invite("9555", 3), external_source([10, 0, 0, 1], 7003));
    let (_, r) = w.out.answers.last().unwrap();
    assert_eq!(r.status_code.code(), 503);
    assert!(
        r.status_code.to_string().contains("Rate"),
        "{}",
        r.status_code
    );
    let cc = w.status("cc");
    assert_eq!((cc.refused.calls_in, cc.refused.cps_in), (1, 1));
    assert_eq!((cc.calls_in, cc.total_in), (1, 2));
    // A second later the bucket has refilled.
    w.now += Duration::from_secs(1);
    w.receive(sbc_invite("9555", 4), external_source([10, 0, 0, 1], 7004));
    assert_eq!(w.status("cc").calls_in, 2);
    // Sources outside every ACL are no peer.
    assert!(w
        .calls
        .is_peer_source(EXTERNAL, "10.9.9.9".parse().unwrap()));
    assert!(!w
        .calls
        .is_peer_source(EXTERNAL, "192.0.2.1".parse().unwrap()));
    assert!(!w
        .calls
        .is_peer_source(INTERNAL, "10.0.0.1".parse().unwrap()));
}

#[test]
fn pings_go_out_as_options_and_take_the_peer_down_and_up() {
    let mut w = world_with(PEERS);
    assert_eq!(w.calls.poll_timeout(), None, "no pings until started");
    w.calls.start_pings(w.now);
    assert_eq!(w.calls.poll_timeout(), Some(w.now));
    w.tick(Duration::ZERO);
    let options = w.sent_of(Method::Options);
    assert_eq!(options.len(), 1, "only p is pinged");
    let (n, ping, to) = options[0].clone();
    assert_eq!(to, gw(3));
    assert_eq!(ping.uri.to_string(), "sip:192.0.2.3:5060");
    assert!(ping.header_value("From").unwrap().contains("tag="));
    // A 404 is an answer: alive, nothing changes.
    w.reply(n, 404, "p", false);
    let p = w.status("p");
    assert_eq!(
        (p.state.as_str(), p.last_ping.unwrap().status),
        ("up", Some(404))
    );
    // The next rounds are never answered: down after the second failure.
    w.tick(Duration::from_secs(10));
    assert_eq!(w.sent_of(Method::Options).len(), 2);
    w.tick(Duration::from_secs(10));
    assert_eq!(w.sent_of(Method::Options).len(), 3);
    assert_eq!(w.calls.poll_peer_event(), None, "one failure so far");
    w.tick(Duration::from_secs(10));
    assert_eq!(w.sent_of(Method::Options).len(), 4);
    let e = w.calls.poll_peer_event().expect("down after two failures");
    assert_eq!(e.to_string(), "peer-down peer=p pings=2 last=timeout");
    assert_eq!(w.status("p").state, "down");
    // Calls to the route now skip p.
    w.receive(invite("8555", 6001), source(6001));
    assert_eq!(w.sent_of(Method::Invite)[0].2, gw(1));
    // The open round's ping is answered 200: up (one success is enough here).
    let (n, _, _) = w.sent_of(Method::Options)[3].clone();
    w.reply(n, 200, "p", false);
    let e = w.calls.poll_peer_event().expect("up again");
    assert!(e.up, "{e}");
    assert_eq!(w.status("p").state, "up");
    // A 503 to a ping is a failure; the Timer F timeouts of pings whose
    // rounds closed long ago count for nothing.
    w.tick(Duration::from_secs(10));
    let (n, _, _) = w.sent_of(Method::Options)[4].clone();
    w.reply(n, 503, "p", false);
    assert_eq!(w.status("p").last_ping.unwrap().result, "refused");
    assert_eq!(w.status("p").state, "up", "one failure");
    w.tick(Duration::from_secs(10));
    assert_eq!(
        w.status("p").state,
        "up",
        "the 503's round is not failed twice"
    );
    w.tick(Duration::from_secs(10));
    assert_eq!(w.sent_of(Method::Options).len(), 7);
    assert_eq!(w.status("p").state, "down");
}
