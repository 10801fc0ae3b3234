//! Two endpoint workers in virtual time, routed the way the driver routes
//! (`crate::shard`: a message by its Call-ID, a cross-worker message by its
//! address): every message of a call reaches the worker that owns it, the
//! Call-IDs the switch makes map back to that worker, and an attended
//! transfer joining calls of two workers completes, the handed-over leg's
//! later messages following it. Then one worker's own rooms: what it
//! answers by itself (OPTIONS, 481, 405, a parser's 400, 403 to a
//! stranger; a peer's address exempt from the per-source cap),
//! retransmissions absorbed by the transaction layer below it, and CANCEL
//! through the B2BUA.

use std::net::SocketAddr;
use std::time::Instant;

use super::{Endpoint, EndpointEvent, Transmit};
use crate::call::CallEvent;
use crate::net::{ProfileId, Source, TransportKind};
use crate::session::SessionTable;
use crate::shard::Shards;
use crate::sip::{self, MessageHeaders, Method, Request, SipMessage};

const CONFIG: &str = r#"
[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:5080" }]
peers = [
  { name = "trunk", acl = ["10.0.0.0/8"] },
  { name = "gw", address = "127.0.0.1:5090" },
]
[profiles.external.media]
rtp_port_min = 20000
rtp_port_max = 20099
rtp_timeout_secs = 0
[profiles.external.calls]
session_expires_secs = 0
[[dialplan]]
match = "[0-9]{6,}"
to = "gateway"
gateway = "gw"
"#;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

const LOCAL: &str = "127.0.0.1:5080";

struct World {
    shards: Shards,
    workers: Vec<Endpoint>,
    now: Instant,
    /// What each worker sent: (worker, message).
    sent: Vec<(usize, Transmit)>,
    events: Vec<(usize, EndpointEvent)>,
    /// Which worker took each message the network delivered: (worker, Call-ID).
    took: Vec<(usize, String)>,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    world_with("")
}

/// The shared configuration plus `extra` TOML.
fn world_with(extra: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.toml");
    std::fs::write(&main, format!("{CONFIG}{extra}")).unwrap();
    let config = crate::config::load(&main).unwrap();
    let shards = Shards::new(2);
    let sessions = std::sync::Arc::new(SessionTable::new());
    let now = Instant::now();
    let settings = config.endpoint_settings();
    let peers = std::sync::Arc::new(crate::call::PeerTable::new(&settings.calls));
    let mut workers = Endpoint::sharded(&settings, [3; 32], sessions, peers, &shards);
    for w in &mut workers {
        w.set_wall_clock(now, std::time::SystemTime::now());
        w.set_local_address(ProfileId(0), TransportKind::Udp, LOCAL.parse().unwrap());
    }
    World {
        shards,
        workers,
        now,
        sent: vec![],
        events: vec![],
        took: vec![],
        _dir: dir,
    }
}

fn source(remote: &str) -> Source {
    Source {
        profile: ProfileId(0),
        transport: TransportKind::Udp,
        local: LOCAL.parse().unwrap(),
        remote: remote.parse::<SocketAddr>().unwrap(),
        connection: None,
    }
}

fn parse(text: &str) -> SipMessage {
    let text = text.replace("\r\n", "\n").replace('\n', "\r\n");
    sip::parse(text.as_bytes(), 65535).expect("test message parses")
}

impl World {
    /// The network: a message goes to the worker its Call-ID maps to.
    fn deliver(&mut self, from: &str, message: SipMessage) -> usize {
        let call_id = message.call_id().unwrap().to_string();
        let w = self.shards.of_key(&call_id);
        self.took.push((w, call_id));
        self.workers[w].handle_message(self.now, source(from), message);
        self.pump();
        w
    }

    /// Drains every worker, carrying cross-worker messages, until quiet.
    fn pump(&mut self) {
        loop {
            let mut busy = false;
            for i in 0..self.workers.len() {
                while self.workers[i].poll_media().is_some() {}
                while let Some(t) = self.workers[i].poll_transmit() {
                    self.sent.push((i, t));
                }
                while let Some(e) = self.workers[i].poll_event() {
                    self.events.push((i, e));
                }
                while let Some((to, m)) = self.workers[i].poll_peer() {
                    busy = true;
                    self.workers[to].handle_peer(self.now, m);
                }
            }
            if !busy {
                break;
            }
        }
    }

    /// Requests the switch sent, with the worker that sent them.
    fn requests(&self, method: Method) -> Vec<(usize, Request)> {
        self.sent
            .iter()
            .filter_map(|(w, t)| match &t.message {
                SipMessage::Request(r) if r.method == method => Some((*w, r.clone())),
                _ => None,
            })
            .collect()
    }

    /// Responses the switch sent with this Call-ID and status.
    fn responses(&self, call_id: &str, code: u16) -> Vec<(usize, sip::Response)> {
        self.sent
            .iter()
            .filter_map(|(w, t)| match &t.message {
                SipMessage::Response(r)
                    if r.call_id() == Some(call_id) && r.status_code.code() == code =>
                {
                    Some((*w, r.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn call_events(&self) -> Vec<(usize, CallEvent)> {
        self.events
            .iter()
            .filter_map(|(w, e)| match e {
                EndpointEvent::Call(c) => Some((*w, c.clone())),
                _ => None,
            })
            .collect()
    }

    /// A Call-ID chosen by the trunk that lands on `worker`.
    fn call_id_on(&self, worker: usize, n: usize) -> String {
        (0..)
            .map(|i| format!("trunk-{n}-{i}@10.0.0.1"))
            .find(|c| self.shards.of_key(c) == worker)
            .unwrap()
    }

    /// A trunk call to 5551234 answered by the gateway: (the switch's tag
    /// toward the caller, the B leg's INVITE as sent).
    fn call(&mut self, call_id: &str) -> (String, Request) {
        let invites_before = self.requests(Method::Invite).len();
        let invite = trunk_invite(call_id);
        let w = self.deliver("10.0.0.1:5060", invite);
        let invites = self.requests(Method::Invite);
        assert_eq!(
            invites.len(),
            invites_before + 1,
            "the B leg was placed; sent: {:?}",
            self.sent
                .iter()
                .map(|(i, t)| (
                    i,
                    String::from_utf8_lossy(&sip::to_bytes(&t.message)).into_owned()
                ))
                .collect::<Vec<_>>()
        );
        let (bw, b_invite) = invites.last().cloned().unwrap();
        assert_eq!(bw, w, "the B leg is placed by the caller's worker");
        let b_call_id = b_invite.call_id().unwrap().to_string();
        assert_eq!(
            self.shards.of_key(&b_call_id),
            w,
            "the B leg's Call-ID {b_call_id} maps back to worker {w}"
        );
        // The gateway rings, then answers.
        let ringing = sip::with_to_tag(sip::response_to(&b_invite, 180, None), "gw-tag");
        self.deliver("127.0.0.1:5090", ringing.into());
        let mut ok = sip::with_to_tag(sip::response_to(&b_invite, 200, None), "gw-tag");
        ok.headers.push(sip::make_header(
            "Contact",
            "<sip:gw@127.0.0.1:5090>".into(),
        ));
        ok.headers
            .push(sip::make_header("Content-Type", "application/sdp".into()));
        ok.body = SDP.as_bytes().to_vec();
        sip::set_content_length(&mut ok);
        assert_eq!(self.deliver("127.0.0.1:5090", ok.into()), w);
        let (ow, a_ok) = self
            .responses(call_id, 200)
            .last()
            .cloned()
            .expect("200 to the caller");
        assert_eq!(ow, w);
        let tag = a_ok.to_tag().expect("our tag");
        let ack = parse(&format!(
            "ACK sip:switchback@{LOCAL} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-ack-{call_id}
Max-Forwards: 70
From: <sip:100@10.0.0.1>;tag=from-{call_id}
To: <sip:5551234@{LOCAL}>;tag={tag}
Call-ID: {call_id}
CSeq: 1 ACK
Content-Length: 0

"
        ));
        assert_eq!(self.deliver("10.0.0.1:5060", ack), w);
        (tag, b_invite)
    }
}

fn bridged(w: &World) -> Vec<(usize, String)> {
    w.call_events()
        .into_iter()
        .filter_map(|(i, e)| match e {
            CallEvent::Bridged { call, .. } => Some((i, call.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_message_of_a_call_reaches_the_worker_that_owns_it() {
    let mut w = world();
    for worker in [0, 1] {
        let call_id = w.call_id_on(worker, worker);
        w.call(&call_id);
        // Everything the network delivered for this call (the caller's
        // Call-ID and the B leg's) was taken by one worker.
        let b_call_id = w
            .requests(Method::Invite)
            .last()
            .unwrap()
            .1
            .call_id()
            .unwrap()
            .to_string();
        assert!(
            w.took
                .iter()
                .filter(|(_, c)| *c == call_id || *c == b_call_id)
                .all(|(t, _)| *t == worker),
            "{:?}",
            w.took
        );
        // And so the call's events come from that worker, with an id it owns.
        let (bw, call) = bridged(&w).last().cloned().expect("bridged");
        assert_eq!(bw, worker);
        assert_eq!(w.shards.of_key(&call), worker, "call id {call}");
    }
    // Media legs are numbered per worker: no two workers share one.
    assert!(w.call_events().iter().all(|(i, e)| match e {
        CallEvent::Bridged { call, .. } => w.shards.of_key(&call.0) == *i,
        _ => true,
    }));
}

#[test]
fn attended_transfer_joins_calls_of_two_workers() {
    let mut w = world();
    let c1 = w.call_id_on(0, 1);
    let c2 = w.call_id_on(1, 2);
    let (tag1, b1) = w.call(&c1);
    let (tag2, b2) = w.call(&c2);
    let calls = bridged(&w);
    assert_eq!(calls.len(), 2);
    let (call1, call2) = (calls[0].1.clone(), calls[1].1.clone());

    // The trunk (in both calls the caller) refers call 1's far party to the
    // far party of call 2: REFER on call 1, Replaces naming call 2's dialog.
    let replaces = format!("{c2}%3Bto-tag%3D{tag2}%3Bfrom-tag%3Dfrom-{c2}");
    let refer = parse(&format!(
        "REFER sip:switchback@{LOCAL} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-refer-{c1}
Max-Forwards: 70
From: <sip:100@10.0.0.1>;tag=from-{c1}
To: <sip:5551234@{LOCAL}>;tag={tag1}
Call-ID: {c1}
CSeq: 2 REFER
Contact: <sip:100@10.0.0.1:5060>
Refer-To: <sip:5551234@{LOCAL}?Replaces={replaces}>
Content-Length: 0

"
    ));
    assert_eq!(w.deliver("10.0.0.1:5060", refer), 0);
    assert_eq!(w.responses(&c1, 202).len(), 1, "REFER accepted");

    let events = w.call_events();
    assert!(
        events.iter().any(|(i, e)| *i == 0
            && matches!(e, CallEvent::Transferred { call, attended: true, .. } if call.0 == call1)),
        "{events:?}"
    );
    assert!(
        events.iter().any(|(i, e)| *i == 1
            && matches!(e, CallEvent::Ended { call, cause, .. } if call.0 == call2 && cause == "replaced")),
        "{events:?}"
    );
    // Both of the transferor's dialogs are hung up, each by its worker.
    let byes = w.requests(Method::Bye);
    for (worker, call_id) in [(0, &c1), (1, &c2)] {
        assert!(
            byes.iter()
                .any(|(i, r)| *i == worker && r.call_id() == Some(call_id.as_str())),
            "BYE on {call_id} from worker {worker}: {byes:?}"
        );
    }
    // The NOTIFY closing the refer subscription says 200.
    let notifies = w.requests(Method::Notify);
    assert!(
        notifies
            .iter()
            .any(|(i, r)| *i == 0 && String::from_utf8_lossy(&r.body).starts_with("SIP/2.0 200")),
        "{notifies:?}"
    );

    // Call 2's gateway leg now belongs to call 1 on worker 0, but its
    // Call-ID still maps to worker 1: its BYE is forwarded, and ends call 1
    // (the transferee, call 1's gateway leg, is hung up by worker 0).
    let b2_call_id = b2.call_id().unwrap().to_string();
    let mut bye = sip::Request {
        method: Method::Bye,
        uri: sip::parse_uri(&format!("sip:switchback@{LOCAL}")).unwrap(),
        version: sip::Version::V2,
        headers: Default::default(),
        body: vec![],
    };
    let from_tag = b2.from_tag().unwrap();
    for (name, value) in [
        (
            "Via",
            "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-gw-bye".to_string(),
        ),
        ("Max-Forwards", "70".into()),
        ("From", "<sip:gw@127.0.0.1:5090>;tag=gw-tag".into()),
        ("To", format!("<sip:switchback@{LOCAL}>;tag={from_tag}")),
        ("Call-ID", b2_call_id.clone()),
        ("CSeq", "7 BYE".into()),
    ] {
        bye.headers.push(sip::make_header(name, value));
    }
    sip::set_content_length(&mut bye);
    assert_eq!(
        w.deliver("127.0.0.1:5090", bye.into()),
        1,
        "routed by Call-ID"
    );
    let ok = w.responses(&b2_call_id, 200);
    assert!(
        ok.iter()
            .any(|(i, r)| *i == 0 && r.cseq().is_some_and(|(_, m)| m == Method::Bye)),
        "worker 0 answers the forwarded BYE: {ok:?}"
    );
    let ended: Vec<_> = w
        .call_events()
        .into_iter()
        .filter(|(_, e)| matches!(e, CallEvent::Ended { call, .. } if call.0 == call1))
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].0, 0);
    let b1_call_id = b1.call_id().unwrap();
    assert!(
        w.requests(Method::Bye)
            .iter()
            .any(|(i, r)| *i == 0 && r.call_id() == Some(b1_call_id)),
        "the transferee is hung up"
    );

    // Worker 0 is done with the leg: worker 1 forwards its Call-ID for one
    // transaction lifetime more, then forgets it on its own timer (not at
    // some later handover's message).
    assert_eq!(w.workers[1].calls.moved_to(&b2_call_id), Some(0));
    // Driven the way the driver drives it: wake at each deadline it asks for.
    let end = w.now + std::time::Duration::from_secs(40);
    for _ in 0..10_000 {
        match w.workers[1].poll_timeout() {
            Some(at) if at <= end => {
                w.now = w.now.max(at);
                let now = w.now;
                w.workers[1].handle_timeout(now);
                w.pump();
            }
            _ => break,
        }
    }
    assert_eq!(
        w.workers[1].calls.moved_to(&b2_call_id),
        None,
        "the forward outlived its grace"
    );
}

/// An out-of-dialog request from the trunk at 10.0.0.1.
fn trunk_request(method: &str, call_id: &str, branch: &str, to_tag: Option<&str>) -> SipMessage {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    parse(&format!(
        "{method} sip:5551234@{LOCAL} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{branch}
Max-Forwards: 70
From: <sip:100@10.0.0.1>;tag=from-{call_id}
To: <sip:5551234@{LOCAL}>{to_tag}
Call-ID: {call_id}
CSeq: 1 {method}
Contact: <sip:100@10.0.0.1:5060>
Content-Length: 0

"
    ))
}

/// The trunk's INVITE with an offer.
fn trunk_invite(call_id: &str) -> SipMessage {
    trunk_invite_from(call_id, "10.0.0.1")
}

/// An INVITE with an offer from another trunk host.
fn trunk_invite_from(call_id: &str, host: &str) -> SipMessage {
    parse(&format!(
        "INVITE sip:5551234@{LOCAL} SIP/2.0
Via: SIP/2.0/UDP {host}:5060;branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:100@10.0.0.1>;tag=from-{call_id}
To: <sip:5551234@{LOCAL}>
Call-ID: {call_id}
CSeq: 1 INVITE
Contact: <sip:100@10.0.0.1:5060>
Content-Type: application/sdp
Content-Length: {}

{SDP}",
        SDP.len()
    ))
}

fn codes(w: &World, call_id: &str) -> Vec<u16> {
    w.sent
        .iter()
        .filter_map(|(_, t)| match &t.message {
            SipMessage::Response(r) if r.call_id() == Some(call_id) => Some(r.status_code.code()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_retransmitted_invite_is_absorbed_and_answered_with_the_last_provisional() {
    let mut w = world();
    let call_id = w.call_id_on(0, 10);
    w.deliver("10.0.0.1:5060", trunk_invite(&call_id));
    assert_eq!(w.requests(Method::Invite).len(), 1, "the B leg is placed");
    assert_eq!(codes(&w, &call_id), [100]);
    w.deliver("10.0.0.1:5060", trunk_invite(&call_id));
    assert_eq!(
        w.requests(Method::Invite).len(),
        1,
        "the retransmission places no second B leg"
    );
    assert_eq!(codes(&w, &call_id), [100, 100], "the 100 Trying again");
    let started = w
        .call_events()
        .iter()
        .filter(|(_, e)| matches!(e, CallEvent::Started { .. }))
        .count();
    assert_eq!(started, 1, "{:?}", w.call_events());
}

#[test]
fn options_is_answered_by_the_switch_and_its_retransmission_gets_the_same_answer() {
    let mut w = world();
    let options = trunk_request("OPTIONS", "opt-1@10.0.0.1", "opt-1", None);
    w.deliver("10.0.0.1:5060", options.clone());
    w.deliver("10.0.0.1:5060", options);
    let oks = w.responses("opt-1@10.0.0.1", 200);
    assert_eq!(oks.len(), 2, "{:?}", codes(&w, "opt-1@10.0.0.1"));
    let tags: Vec<_> = oks.iter().map(|(_, r)| r.to_tag()).collect();
    assert!(tags[0].is_some());
    assert_eq!(
        tags[0], tags[1],
        "the retransmission gets the same response"
    );
    let allow = oks[0]
        .1
        .header_value("Allow")
        .expect("Allow on 200 OPTIONS");
    for method in ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REFER"] {
        assert!(allow.contains(method), "{method} in Allow: {allow}");
    }
    assert!(w.call_events().is_empty());
}

#[test]
fn requests_for_no_dialog_and_methods_not_served_are_answered_statelessly() {
    let mut w = world();
    // A BYE for a dialog the switch never had: 481 (§12.2.2).
    let bye = trunk_request("BYE", "bye-1@10.0.0.1", "bye-1", Some("nosuch"));
    w.deliver("10.0.0.1:5060", bye);
    assert_eq!(codes(&w, "bye-1@10.0.0.1"), [481]);
    // SUBSCRIBE is not served: 405 with the methods that are (§8.2.1).
    let subscribe = trunk_request("SUBSCRIBE", "sub-1@10.0.0.1", "sub-1", None);
    w.deliver("10.0.0.1:5060", subscribe);
    let answers = w.responses("sub-1@10.0.0.1", 405);
    assert_eq!(answers.len(), 1, "{:?}", codes(&w, "sub-1@10.0.0.1"));
    assert!(answers[0].1.header_value("Allow").is_some());
    assert!(w.requests(Method::Invite).is_empty());
}

#[test]
fn a_request_the_parser_refused_gets_its_400_with_a_tag_and_the_source_stamped() {
    let mut w = world();
    let SipMessage::Request(request) =
        trunk_request("OPTIONS", "bad-1@10.0.0.1", "bad-1;rport", None)
    else {
        unreachable!()
    };
    let response = sip::response_to(&request, 400, Some("Bad Header"));
    // The request came through a NAT: another address than its Via names.
    let from_nat = source("192.0.2.7:40000");
    w.workers[0].handle_reject(w.now, from_nat, response);
    w.pump();
    let (_, t) = w.sent.last().expect("the 400 is sent");
    let SipMessage::Response(r) = &t.message else {
        panic!("a response: {:?}", t.message)
    };
    assert_eq!(r.status_code.code(), 400);
    assert!(r.to_tag().is_some(), "a stateless answer carries a To tag");
    let via = r.top_via().expect("Via");
    assert_eq!(via.received, Some("192.0.2.7".parse().unwrap()));
    assert_eq!(via.rport, Some(Some(40000)), "{via:?}");
    assert_eq!(
        t.destination.remote,
        "192.0.2.7:40000".parse::<SocketAddr>().unwrap(),
        "RFC 3581: back to where it came from"
    );
    assert!(t.transaction.is_none(), "stateless");
}

#[test]
fn a_trunk_peers_address_is_exempt_from_the_per_source_cap_and_a_stranger_is_refused() {
    let mut w = world_with("[profiles.external.auth_guard]\nmax_transactions_per_source = 2\n");
    // Three calls ringing at once from the peer's address (in its acl): the
    // anonymous guard's cap of two does not apply to it.
    let calls: Vec<String> = (0..3).map(|n| w.call_id_on(0, 20 + n)).collect();
    for c in &calls {
        w.deliver("10.0.0.1:5060", trunk_invite(c));
    }
    for c in &calls {
        assert_eq!(codes(&w, c), [100], "{c}");
    }
    assert_eq!(w.requests(Method::Invite).len(), 3, "three B legs");
    // An address outside every peer's acl places nothing: 403 at once.
    let stranger = w.call_id_on(0, 30);
    let invite = trunk_invite_from(&stranger, "192.0.2.1");
    w.workers[0].handle_message(w.now, source("192.0.2.1:5060"), invite);
    w.pump();
    assert_eq!(codes(&w, &stranger), [100, 403]);
    assert_eq!(w.requests(Method::Invite).len(), 3);
}

#[test]
fn cancel_before_answer_ends_both_legs() {
    let mut w = world();
    let call_id = w.call_id_on(1, 40);
    w.deliver("10.0.0.1:5060", trunk_invite(&call_id));
    let (_, b_invite) = w.requests(Method::Invite).last().cloned().unwrap();
    let ringing = sip::with_to_tag(sip::response_to(&b_invite, 180, None), "gw-tag");
    w.deliver("127.0.0.1:5090", ringing.into());
    assert_eq!(codes(&w, &call_id), [100, 180]);
    let cancel = parse(&format!(
        "CANCEL sip:5551234@{LOCAL} SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-{call_id}
Max-Forwards: 70
From: <sip:100@10.0.0.1>;tag=from-{call_id}
To: <sip:5551234@{LOCAL}>
Call-ID: {call_id}
CSeq: 1 CANCEL
Content-Length: 0

"
    ));
    w.deliver("10.0.0.1:5060", cancel);
    let answers = codes(&w, &call_id);
    assert!(answers.contains(&200), "CANCEL answered: {answers:?}");
    assert!(answers.contains(&487), "INVITE ended 487: {answers:?}");
    let cancels = w.requests(Method::Cancel);
    assert_eq!(cancels.len(), 1, "the B leg is cancelled");
    assert_eq!(cancels[0].1.call_id(), b_invite.call_id());
}
