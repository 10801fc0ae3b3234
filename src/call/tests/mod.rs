//! Call-layer scenarios in virtual time: real transaction layer underneath,
//! a recording `SipOut` around it, no sockets and no sleeping.
//!
//! This file holds the world (the fake endpoint, the clock) and the basic
//! flows; `late_offer`, `digest` and `transfer` hold those flows' scenarios.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::media::MediaCommand;
use crate::net::{Destination, ProfileId, Source, TransportKind};
use crate::registrar::{
    Binding, Credentials, DigestAlgorithm, GuardSettings, Registrar, RegistrarEvent,
    RegistrarSettings, RequestAuth, UserDirectory,
};
use crate::session::SessionTable;
use crate::sip::{self, MessageHeaders, Method, Request, Response, SipMessage};
use crate::transaction::{
    ClientEvent, ClientTransactionId, RequestDisposition, ServerTransactionId, TimerSettings,
    TransactionLayer,
};

use super::{CallCommand, CallEvent, CallLayer, EndedBy, LegRole, Originate, SipOut};

mod consult;
mod crossing;
mod digest;
mod failover;
mod gateways;
mod identity;
mod late_offer;
mod path;
mod prack;
mod transfer;

const CONFIG: &str = r#"
[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:5060" }]
users = [{ username = "1001", password = "x" }, { username = "1002", password = "x" }, { username = "1003", password = "x" }]
[profiles.internal.media]
rtp_port_min = 20000
rtp_port_max = 20099
rtp_timeout_secs = 0
[profiles.internal.calls]
ring_timeout_secs = 30
session_expires_secs = 0
[profiles.external]
listen = [{ transport = "udp", address = "127.0.0.1:5080" }]
peers = [{ name = "trunk", address = "127.0.0.1:5090", acl = ["10.0.0.0/8"], username = "u", password = "p" }]
[profiles.external.media]
rtp_port_min = 20100
rtp_port_max = 20199
rtp_timeout_secs = 2
[[dialplan]]
match = "1[0-9]{3}"
to = "user"
[[dialplan]]
match = "[0-9]{6,}"
to = "gateway"
gateway = "trunk"
"#;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

struct Fake {
    layer: TransactionLayer,
    sent: Vec<(ClientTransactionId, Request, Destination)>,
    answers: Vec<(ServerTransactionId, Response)>,
    stateless: Vec<SipMessage>,
    cancelled: Vec<ClientTransactionId>,
    bindings: HashMap<String, Vec<Binding>>,
    /// The internal profile's registrar (digest of phones' INVITEs).
    registrar: Registrar,
}

impl SipOut for Fake {
    fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        destination: Destination,
    ) -> Option<ClientTransactionId> {
        let id = self
            .layer
            .send_request(now, request.clone(), destination)
            .ok()?;
        self.sent.push((id, request, destination));
        Some(id)
    }
    fn respond(
        &mut self,
        now: Instant,
        _p: ProfileId,
        tx: ServerTransactionId,
        response: Response,
    ) {
        let _ = self.layer.respond(now, tx, response.clone());
        self.answers.push((tx, response));
    }
    fn respond_at(&mut self, at: Instant, p: ProfileId, tx: ServerTransactionId, r: Response) {
        // Held-back answers go out at once in virtual time.
        self.respond(at, p, tx, r);
    }
    fn send_stateless(&mut self, _d: Destination, message: SipMessage) {
        self.stateless.push(message);
    }
    fn cancel(&mut self, now: Instant, _p: ProfileId, tx: ClientTransactionId) {
        self.cancelled.push(tx);
        let _ = self.layer.cancel(now, tx);
    }
    fn lookup(&self, _p: ProfileId, user: &str, _now: Instant) -> Option<Vec<Binding>> {
        ["1001", "1002", "1003"]
            .contains(&user)
            .then(|| self.bindings.get(user).cloned().unwrap_or_default())
    }
    fn authenticate(
        &mut self,
        now: Instant,
        source: &Source,
        request: &Request,
    ) -> Option<RequestAuth> {
        (source.profile == INTERNAL)
            .then(|| self.registrar.authenticate_request(now, request, source))
    }
    fn local_address(&self, p: ProfileId, _t: TransportKind) -> Option<SocketAddr> {
        Some(
            if p == INTERNAL {
                "127.0.0.1:5060"
            } else {
                "127.0.0.1:5080"
            }
            .parse()
            .unwrap(),
        )
    }
}

struct World {
    now: Instant,
    calls: CallLayer,
    out: Fake,
}

/// Profiles of one file load in name order: external, then internal.
const INTERNAL: ProfileId = ProfileId(1);

fn source(port: u16) -> Source {
    Source {
        profile: INTERNAL,
        transport: TransportKind::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        connection: None,
    }
}

/// Users 1001-1003 with password "x", MD5; blocked after three failures.
fn registrar() -> Registrar {
    let mut users = UserDirectory::new();
    for u in ["1001", "1002", "1003"] {
        users.insert(u, Credentials::password("x"));
    }
    Registrar::new(
        RegistrarSettings {
            realm: "switchback.test".into(),
            algorithms: crate::registrar::AlgorithmPolicy::new(vec![DigestAlgorithm::Md5]),
            users,
            guard: GuardSettings {
                max_failures: 3,
                ..GuardSettings::default()
            },
            ..RegistrarSettings::default()
        },
        [7; 32],
    )
}

fn world() -> World {
    world_with(CONFIG)
}

/// A world on another configuration (same users, bindings and registrar).
fn world_with(config: &str) -> World {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("main.toml");
    std::fs::write(&main, config).unwrap();
    let config = crate::config::load(&main).unwrap();
    let now = Instant::now();
    let mut out = Fake {
        layer: TransactionLayer::new(TimerSettings::default()),
        sent: vec![],
        answers: vec![],
        stateless: vec![],
        cancelled: vec![],
        bindings: HashMap::new(),
        registrar: registrar(),
    };
    for (user, port) in [
        ("1001", 6001),
        ("1002", 6002),
        ("1002", 6012),
        ("1003", 6003),
    ] {
        out.bindings
            .entry(user.into())
            .or_default()
            .push(Binding::new(
                user,
                &format!("sip:{user}@127.0.0.1:{port}"),
                source(port),
                now + Duration::from_secs(600),
            ));
    }
    World {
        now,
        calls: CallLayer::new(config.call_settings(), Arc::new(SessionTable::new())),
        out,
    }
}

fn parse_req(text: String) -> Request {
    match sip::parse(text.as_bytes(), 65535).unwrap() {
        SipMessage::Request(r) => r,
        _ => unreachable!(),
    }
}

fn invite(to: &str, from_port: u16) -> Request {
    parse_req(format!(
        "INVITE sip:{to}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{from_port};branch=z9hG4bK-{to}-{from_port};rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:{to}@127.0.0.1>\r\nCall-ID: a-{to}-{from_port}\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:{from_port}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    ))
}

impl World {
    fn events(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.calls.poll_event())
            .map(|e| e.to_string())
            .collect()
    }

    fn media(&mut self) -> Vec<MediaCommand> {
        std::iter::from_fn(|| self.calls.poll_media()).collect()
    }

    /// A new request through the real transaction layer to the call layer.
    fn receive(&mut self, request: Request, from: Source) {
        match self.out.layer.handle_request(self.now, request, from) {
            RequestDisposition::New { id, request }
                if request.method == Method::Invite && request.to_tag().is_none() =>
            {
                self.calls
                    .handle_invite(self.now, &mut self.out, from, id, request)
            }
            RequestDisposition::New { id, request } => {
                assert!(self
                    .calls
                    .handle_in_dialog(self.now, &mut self.out, from, id, request));
            }
            RequestDisposition::Cancel {
                cancel_id,
                invite_id,
                request,
            } => {
                let _ = self.out.layer.respond(
                    self.now,
                    cancel_id,
                    sip::response_to(&request, 200, None),
                );
                self.calls
                    .handle_cancel(self.now, &mut self.out, from.profile, invite_id.unwrap());
            }
            RequestDisposition::Ack2xx(ack) => self.calls.handle_ack(self.now, &mut self.out, ack),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// A response from the far end to the `n`th request the switch sent.
    fn reply(&mut self, n: usize, code: u16, tag: &str, sdp: bool) {
        let (id, req, dest) = self.out.sent[n].clone();
        let mut r = sip::with_to_tag(sip::response_to(&req, code, None), tag);
        r.headers.push(sip::make_header(
            "Contact",
            format!("<sip:x@{}>", dest.remote),
        ));
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

    fn last_answer_code(&self) -> u16 {
        self.out.answers.last().unwrap().1.status_code.code()
    }
}

#[test]
fn call_forks_to_every_contact_and_the_first_answer_wins() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    let invites: Vec<_> = w
        .out
        .sent
        .iter()
        .map(|(_, r, d)| (r.method, d.remote.port()))
        .collect();
    assert_eq!(invites, [(Method::Invite, 6002), (Method::Invite, 6012)]);
    // Each leg is its own dialog: fresh Call-IDs, our relay in the SDP.
    let (_, b1, _) = &w.out.sent[0];
    assert_ne!(b1.call_id(), Some("a-1002-6001"));
    assert!(String::from_utf8_lossy(&b1.body).contains("c=IN IP4 127.0.0.1"));
    w.reply(0, 180, "f1", false);
    assert_eq!(w.last_answer_code(), 180);
    w.reply(1, 200, "f2", true);
    assert_eq!(w.last_answer_code(), 200);
    let ok = w.out.answers.last().unwrap().1.clone();
    let body = String::from_utf8_lossy(&ok.body);
    assert!(body.contains("m=audio 200"), "{body}");
    assert!(
        body.contains(" 8"),
        "the caller's own codec order and numbers: {body}"
    );
    // ACK to the winner, CANCEL to the other fork.
    assert!(w
        .out
        .stateless
        .iter()
        .any(|m| matches!(m, SipMessage::Request(r) if r.method == Method::Ack)));
    assert_eq!(w.out.cancelled, vec![w.out.sent[0].0]);
    let media = w.media();
    assert!(media
        .iter()
        .any(|m| matches!(m, MediaCommand::Bridge { .. })));
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-bridged") && e.contains("legs=a,b")),
        "{ev:?}"
    );
    // BYE from the caller ends the callee's leg too.
    let to_tag = ok.to_tag().unwrap();
    let bye = parse_req(format!(
        "BYE sip:switchback@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-bye\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:1002@127.0.0.1>;tag={to_tag}\r\nCall-ID: a-1002-6001\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    ));
    w.receive(bye, source(6001));
    assert_eq!(w.last_answer_code(), 200);
    let (_, last, dest) = w.out.sent.last().unwrap();
    assert_eq!((last.method, dest.remote.port()), (Method::Bye, 6012));
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("by=a") && e.contains("cause=hangup")),
        "{ev:?}"
    );
    assert_eq!(w.calls.call_count(), 0);
}

#[test]
fn busy_everywhere_is_relayed_as_busy() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(0, 486, "f1", false);
    assert!(
        w.out
            .answers
            .iter()
            .all(|(_, r)| r.status_code.code() < 300),
        "one fork still rings"
    );
    w.reply(1, 480, "f2", false);
    assert_eq!(w.last_answer_code(), 486);
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("status=486") && e.contains("failure=busy")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("status=486")),
        "{ev:?}"
    );
}

#[test]
fn caller_cancel_cancels_every_fork_and_gets_487() {
    let mut w = world();
    w.receive(invite("1002", 6001), source(6001));
    w.reply(0, 180, "f1", false);
    w.reply(1, 180, "f2", false);
    let cancel = parse_req(
        "CANCEL sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6001;branch=z9hG4bK-1002-6001;rport\r\nMax-Forwards: 70\r\nFrom: \"Alice\" <sip:1001@127.0.0.1>;tag=caller\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: a-1002-6001\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n".into(),
    );
    w.receive(cancel, source(6001));
    assert_eq!(w.out.cancelled.len(), 2);
    assert_eq!(w.last_answer_code(), 487);
    let ev = w.events();
    assert!(
        ev.iter().any(|e| e.contains("call-ended")
            && e.contains("by=a")
            && e.contains("cause=cancelled")),
        "{ev:?}"
    );
}

#[test]
fn ring_timeout_cancels_and_answers_408() {
    let mut w = world();
    w.receive(invite("1003", 6001), source(6001));
    w.reply(0, 180, "f1", false);
    let due = w.calls.poll_timeout().unwrap();
    assert!(due <= w.now + Duration::from_secs(30));
    w.now += Duration::from_secs(31);
    w.calls.handle_timeout(w.now, &mut w.out);
    assert_eq!(w.out.cancelled.len(), 1);
    assert_eq!(w.last_answer_code(), 408);
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("failure=no-answer")), "{ev:?}");
}

#[test]
fn strangers_unknown_numbers_and_unregistered_users() {
    let mut w = world();
    // Not calling from a registered address, not a trunk peer: challenged.
    w.receive(invite("1002", 7777), source(7777));
    assert_eq!(w.last_answer_code(), 407);
    // On a profile that is no registrar: refused.
    let trunk_side = Source {
        profile: ProfileId(0),
        ..source(7778)
    };
    w.receive(invite("1002", 7778), trunk_side);
    assert_eq!(w.last_answer_code(), 403);
    w.receive(invite("99", 6001), source(6001));
    assert_eq!(w.last_answer_code(), 404);
    w.out.bindings.remove("1003");
    w.receive(invite("1003", 6001), source(6001));
    assert_eq!(w.last_answer_code(), 480);
    assert_eq!(w.calls.call_count(), 0);
}

#[test]
fn gateway_challenge_is_answered_once_with_the_peer_credentials() {
    let mut w = world();
    w.receive(invite("5551234", 6001), source(6001));
    assert_eq!(w.out.sent[0].2.remote.port(), 5090);
    let (id, req, dest) = w.out.sent[0].clone();
    let mut r = sip::with_to_tag(sip::response_to(&req, 407, None), "gw");
    r.headers.push(sip::make_header(
        "Proxy-Authenticate",
        "Digest realm=\"gw\", nonce=\"abc\", qop=\"auth\"".into(),
    ));
    w.calls
        .handle_client_event(w.now, &mut w.out, dest.profile, id, ClientEvent::Final(r));
    let (_, again, _) = w.out.sent.last().unwrap();
    assert_eq!(again.cseq().map(|c| c.0), Some(2));
    let auth = again.header_value("Proxy-Authorization").unwrap();
    assert!(
        auth.contains("username=\"u\"") && auth.contains("realm=\"gw\""),
        "{auth}"
    );
    // A second challenge is not answered again: the caller gets 403.
    let n = w.out.sent.len() - 1;
    w.reply(n, 407, "gw2", false);
    assert_eq!(w.last_answer_code(), 403);
}

#[test]
fn origination_calls_a_then_b_and_bridges() {
    let mut w = world();
    let call = w
        .calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Originate(Originate {
                a: "1003".into(),
                b: "5551234".into(),
                auto_answer: true,
                headers: vec![("X-Case-Id".into(), "42".into())],
                ..Default::default()
            }),
        )
        .unwrap();
    let (_, a_inv, _) = w.out.sent[0].clone();
    assert!(a_inv
        .header_value("Call-Info")
        .unwrap()
        .contains("answer-after=0"));
    assert_eq!(a_inv.header_value("X-Case-Id"), Some("42"));
    w.reply(0, 200, "agent", true);
    let (_, b_inv, dest) = w.out.sent.last().unwrap().clone();
    assert_eq!(dest.remote.port(), 5090);
    // B is offered only the codec A chose, and telephone-event.
    let body = String::from_utf8_lossy(&b_inv.body).to_string();
    assert!(
        body.contains("m=audio") && body.contains(" 8 101"),
        "{body}"
    );
    let n = w.out.sent.len() - 1;
    w.reply(n, 183, "contact", true);
    w.reply(n, 200, "contact", true);
    let ev = w.events();
    assert!(ev.iter().any(|e| e.contains("call-bridged")), "{ev:?}");
    // Controls reach the relay.
    w.calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Mute {
                call: call.clone(),
                leg: LegRole::A,
            },
        )
        .unwrap();
    w.calls
        .handle_command(
            w.now,
            &mut w.out,
            CallCommand::Hold {
                call: call.clone(),
                leg: LegRole::B,
            },
        )
        .unwrap();
    let media = w.media();
    assert!(media
        .iter()
        .any(|m| matches!(m, MediaCommand::SetMute { muted: true, .. })));
    assert!(media
        .iter()
        .any(|m| matches!(m, MediaCommand::SetHold { held: true, .. })));
    let (_, hold, _) = w.out.sent.last().unwrap();
    assert_eq!(hold.method, Method::Invite);
    assert!(String::from_utf8_lossy(&hold.body).contains("a=sendonly"));
    let err = w.calls.handle_command(
        w.now,
        &mut w.out,
        CallCommand::SendDtmf {
            call: call.clone(),
            leg: LegRole::B,
            digits: "12x".into(),
        },
    );
    assert!(err.is_err());
    w.calls
        .handle_command(w.now, &mut w.out, CallCommand::Hangup { call })
        .unwrap();
    let ev = w.events();
    assert!(
        ev.iter()
            .any(|e| e.contains("call-ended") && e.contains("by=switch")),
        "{ev:?}"
    );
    let _ = EndedBy::Switch;
    let _: Option<CallEvent> = None;
}
#[test]
fn each_leg_gets_its_own_profiles_rtp_timeout() {
    let mut w = world();
    w.receive(invite("5551234", 6001), source(6001));
    let opened: Vec<_> = w
        .media()
        .into_iter()
        .filter_map(|m| match m {
            MediaCommand::Open {
                local, rtp_timeout, ..
            } => Some((local.port(), rtp_timeout)),
            _ => None,
        })
        .collect();
    // The phone's leg (internal, 0: never) and the trunk's (external, 2 s).
    assert_eq!(opened.len(), 2, "{opened:?}");
    assert_eq!(opened[0].1, None, "{opened:?}");
    assert!((20000..20100).contains(&opened[0].0), "{opened:?}");
    assert_eq!(opened[1].1, Some(Duration::from_secs(2)), "{opened:?}");
    assert!((20100..20200).contains(&opened[1].0), "{opened:?}");
}
