//! OPTIONS pings to trunk peers (`ping_interval_secs`), in virtual time.
//!
//! One shard of the call layer pings (the driver calls
//! [`CallLayer::start_pings`] on one endpoint worker); the results go to the
//! shared [`PeerTable`](super::peers::PeerTable), which every shard routes
//! by. Each peer with an interval is pinged at start and then every
//! interval: a round sends one OPTIONS to each server the peer resolved to
//! (RFC 3263; usually one) through `SipOut::send_request`, a non-INVITE
//! client transaction. The round is alive as soon as one server answers
//! with anything but 408 or 503; it fails when every server failed
//! (Timer F, a transport error, 408/503) or when the next round is due
//! with no answer yet. A peer with no server (a name that resolved to
//! nothing) fails its round at once. Answers that come after their round
//! closed are dropped.
//!
//! Sans-IO: `now` comes in, OPTIONS go out through `SipOut`, responses
//! come back as the client transaction events the endpoint hands the call
//! layer ([`CallLayer::handle_client_event`] asks this module first).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::net::{Destination, ProfileId};
use crate::sip::{self, Method};
use crate::transaction::{ClientEvent, ClientTransactionId};

use super::peers::{PeerEvent, PeerTable, PingOutcome};
use super::{new_request, CallLayer, SipOut};

/// The ping schedule and the pings in flight.
#[derive(Debug)]
pub(super) struct Pinger {
    peers: Vec<Pinged>,
    /// Each ping's transaction -> (index in `peers`, round).
    by_tx: HashMap<(ProfileId, ClientTransactionId), (usize, u64)>,
    rounds: u64,
}

#[derive(Debug)]
struct Pinged {
    key: (ProfileId, usize),
    interval: Duration,
    /// When the next round starts (and the open one, if any, has failed).
    next: Instant,
    round: Option<Round>,
}

#[derive(Debug, Clone, Copy)]
struct Round {
    id: u64,
    /// Pings of the round still waiting for an answer.
    outstanding: usize,
}

/// A peer (profile, index) and what its round came to.
pub(super) type RoundResult = ((ProfileId, usize), PingOutcome);

/// A round to start: ping `key`'s servers and report with [`Pinger::sent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Due {
    pub index: usize,
    pub round: u64,
    pub key: (ProfileId, usize),
}

impl Pinger {
    /// Every peer of `table` with a ping interval, first due at `now`;
    /// `None` when no peer is pinged.
    pub fn new(table: &PeerTable, now: Instant) -> Option<Self> {
        let peers: Vec<Pinged> = table
            .keys()
            .filter_map(|(p, i)| {
                let interval = table.ping_policy(p, i)?.interval?;
                Some(Pinged {
                    key: (p, i),
                    interval,
                    next: now,
                    round: None,
                })
            })
            .collect();
        (!peers.is_empty()).then(|| Pinger {
            peers,
            by_tx: HashMap::new(),
            rounds: 0,
        })
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peers.iter().map(|p| p.next).min()
    }

    /// At `now`: rounds that failed for want of an answer, and rounds to start.
    pub fn due(&mut self, now: Instant) -> (Vec<RoundResult>, Vec<Due>) {
        let mut failed = Vec::new();
        let mut start = Vec::new();
        for (index, p) in self.peers.iter_mut().enumerate() {
            if p.next > now {
                continue;
            }
            if p.round.take().is_some() {
                failed.push((p.key, PingOutcome::Timeout));
            }
            self.rounds += 1;
            p.round = Some(Round {
                id: self.rounds,
                outstanding: 0,
            });
            // From `now`, not from the missed instant: a late loop does
            // not fire a burst of rounds.
            p.next = now + p.interval;
            start.push(Due {
                index,
                round: self.rounds,
                key: p.key,
            });
        }
        (failed, start)
    }

    /// The pings of a round went out on these transactions; with none, the
    /// round fails at once with `none_sent` (returned).
    pub fn sent(
        &mut self,
        due: Due,
        txs: &[(ProfileId, ClientTransactionId)],
        none_sent: PingOutcome,
    ) -> Option<PingOutcome> {
        let p = self.peers.get_mut(due.index)?;
        let round = p.round.as_mut().filter(|r| r.id == due.round)?;
        if txs.is_empty() {
            p.round = None;
            return Some(none_sent);
        }
        round.outstanding = txs.len();
        for tx in txs {
            self.by_tx.insert(*tx, (due.index, due.round));
        }
        None
    }

    /// A client transaction event: `None` when `tx` is no ping (the call
    /// layer's then); `Some(None)` when it is one but decides nothing (a
    /// provisional response, a late answer, another server still out);
    /// `Some(Some(..))` when it closes its round.
    #[allow(clippy::option_option)]
    pub fn event(
        &mut self,
        tx: (ProfileId, ClientTransactionId),
        event: &ClientEvent,
    ) -> Option<Option<RoundResult>> {
        let (index, round) = match event {
            ClientEvent::Provisional(_) => return self.by_tx.get(&tx).map(|_| None),
            // Ends the transaction: forget it whatever it says.
            _ => self.by_tx.remove(&tx)?,
        };
        let outcome = match event {
            ClientEvent::Final(r) => PingOutcome::Answered(r.status_code.code()),
            ClientEvent::Timeout => PingOutcome::Timeout,
            ClientEvent::TransportError => PingOutcome::TransportError,
            // Terminated without a final event first: nothing to count.
            ClientEvent::Terminated | ClientEvent::Provisional(_) => return Some(None),
        };
        let Some(p) = self.peers.get_mut(index) else {
            return Some(None);
        };
        let Some(r) = p.round.as_mut().filter(|r| r.id == round) else {
            return Some(None); // its round already closed
        };
        if outcome.alive() {
            p.round = None;
            return Some(Some((p.key, outcome)));
        }
        r.outstanding = r.outstanding.saturating_sub(1);
        if r.outstanding == 0 {
            p.round = None;
            return Some(Some((p.key, outcome)));
        }
        Some(None)
    }
}

impl CallLayer {
    /// Makes this shard the one that pings trunk peers, from `now` on
    /// (the driver calls it on one endpoint worker, once the peers'
    /// addresses are known).
    pub fn start_pings(&mut self, now: Instant) {
        self.peers.pinger = Pinger::new(&self.peers.table, now);
    }

    /// A peer went down or came back up.
    pub fn poll_peer_event(&mut self) -> Option<PeerEvent> {
        self.peers.events.pop_front()
    }

    pub(super) fn ping_deadline(&self) -> Option<Instant> {
        self.peers.pinger.as_ref()?.poll_timeout()
    }

    /// Whether a client transaction event was a ping's (then it is handled).
    pub(super) fn ping_client_event(
        &mut self,
        now: Instant,
        profile: ProfileId,
        id: ClientTransactionId,
        event: &ClientEvent,
    ) -> bool {
        let Some(pinger) = &mut self.peers.pinger else {
            return false;
        };
        match pinger.event((profile, id), event) {
            None => false,
            Some(None) => true,
            Some(Some((key, outcome))) => {
                self.ping_result(now, key, outcome);
                true
            }
        }
    }

    /// Closes rounds gone unanswered and starts those due.
    pub(super) fn fire_pings(&mut self, now: Instant, out: &mut dyn SipOut) {
        let Some(pinger) = &mut self.peers.pinger else {
            return;
        };
        if pinger.poll_timeout().is_none_or(|t| t > now) {
            return;
        }
        let (failed, start) = pinger.due(now);
        for (key, outcome) in failed {
            self.ping_result(now, key, outcome);
        }
        for due in start {
            let (txs, none_sent) = self.send_pings(now, out, due.key);
            let closed = self
                .peers
                .pinger
                .as_mut()
                .and_then(|p| p.sent(due, &txs, none_sent));
            if let Some(outcome) = closed {
                self.ping_result(now, due.key, outcome);
            }
        }
    }

    /// One OPTIONS to each server of the peer; what could be sent, and
    /// what the round is if nothing could.
    fn send_pings(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        (profile, peer): (ProfileId, usize),
    ) -> (Vec<(ProfileId, ClientTransactionId)>, PingOutcome) {
        let Some(p) = self.settings.peer((profile, peer)) else {
            return (Vec::new(), PingOutcome::NoTarget);
        };
        let Some(first) = p.targets.first() else {
            return (Vec::new(), PingOutcome::NoTarget);
        };
        let host = p
            .address
            .as_ref()
            .map(|a| a.uri_host())
            .unwrap_or_else(|| first.to_string());
        let (transport, targets) = (p.transport, p.targets.clone());
        let Ok(uri) = sip::parse_uri(&format!("sip:{host}")) else {
            return (Vec::new(), PingOutcome::NoTarget);
        };
        let sent_by = self.sent_by(out, profile, transport);
        let contact = self.contact(out, profile, transport);
        let mut txs = Vec::new();
        for remote in targets {
            let headers = vec![
                (
                    "Via".to_string(),
                    format!(
                        "SIP/2.0/{} {sent_by};branch={};rport",
                        transport.via_token(),
                        sip::generate_branch()
                    ),
                ),
                ("Max-Forwards".into(), "70".into()),
                (
                    "From".into(),
                    format!("<sip:switchback@{sent_by}>;tag={}", sip::generate_tag()),
                ),
                ("To".into(), format!("<{uri}>")),
                // Drawn like a placed leg's, so its answer comes back to
                // this worker (the one that pings).
                ("Call-ID".into(), self.new_sip_call_id()),
                ("CSeq".into(), "1 OPTIONS".into()),
                ("Contact".into(), contact.clone()),
                ("Accept".into(), "application/sdp".into()),
            ];
            let request = new_request(Method::Options, uri.clone(), headers, Vec::new());
            let destination = Destination {
                profile,
                transport,
                remote,
                connection: None,
            };
            if let Some(tx) = out.send_request(now, request, destination) {
                txs.push((profile, tx));
            }
        }
        (txs, PingOutcome::TransportError)
    }

    /// Records a round's result; a change of state is logged and reported.
    fn ping_result(&mut self, now: Instant, (profile, peer): (ProfileId, usize), o: PingOutcome) {
        let wall = self.wall_ms(now);
        tracing::debug!(profile = profile.0, peer, outcome = ?o, "ping");
        if let Some(e) = self.peers.table.record_ping(profile, peer, &o, wall) {
            if e.up {
                tracing::info!(peer = %e.peer, pings = e.pings, "trunk peer up: calls go to it again");
            } else {
                tracing::warn!(peer = %e.peer, pings = e.pings, last = e.last, status = ?e.status, "trunk peer down: routing skips it");
            }
            self.peers.events.push_back(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn table() -> Arc<PeerTable> {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.toml");
        std::fs::write(
            &main,
            "[profiles.external]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n\
             [[profiles.external.peers]]\nname = \"quiet\"\naddress = \"127.0.0.1:5090\"\n\
             [[profiles.external.peers]]\nname = \"a\"\naddress = \"127.0.0.1:5091\"\nping_interval_secs = 5\n\
             [[profiles.external.peers]]\nname = \"b\"\naddress = \"127.0.0.1:5092\"\nping_interval_secs = 2\n",
        )
        .unwrap();
        Arc::new(PeerTable::new(
            &crate::config::load(&main).unwrap().call_settings(),
        ))
    }

    const OPTIONS: &str = "OPTIONS sip:127.0.0.1:5091 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-p\r\nMax-Forwards: 70\r\nFrom: <sip:switchback@127.0.0.1>;tag=t\r\nTo: <sip:127.0.0.1:5091>\r\nCall-ID: ping\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn options() -> sip::Request {
        match sip::parse(OPTIONS.as_bytes(), 65535).unwrap() {
            sip::SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    /// Real transaction ids: `n` OPTIONS sent through a transaction layer.
    fn txs(n: usize) -> Vec<(ProfileId, ClientTransactionId)> {
        let mut layer = crate::transaction::TransactionLayer::new(Default::default());
        let now = Instant::now();
        (0..n)
            .map(|i| {
                let text = OPTIONS.replace("z9hG4bK-p", &format!("z9hG4bK-p{i}"));
                let sip::SipMessage::Request(r) = sip::parse(text.as_bytes(), 65535).unwrap()
                else {
                    unreachable!()
                };
                let d = Destination {
                    profile: ProfileId(0),
                    transport: crate::net::TransportKind::Udp,
                    remote: "127.0.0.1:5091".parse().unwrap(),
                    connection: None,
                };
                (ProfileId(0), layer.send_request(now, r, d).unwrap())
            })
            .collect()
    }

    fn ok(code: u16) -> ClientEvent {
        ClientEvent::Final(sip::response_to(&options(), code, None))
    }

    #[test]
    fn only_peers_with_an_interval_are_pinged_each_on_its_own_schedule() {
        assert!(Pinger::new(&PeerTable::default(), Instant::now()).is_none());
        let t0 = Instant::now();
        let t = txs(3);
        let tx = |n: usize| t[n - 1];
        let mut p = Pinger::new(&table(), t0).unwrap();
        assert_eq!(p.poll_timeout(), Some(t0), "first round at start");
        let (failed, start) = p.due(t0);
        assert!(failed.is_empty());
        let keys: Vec<_> = start.iter().map(|d| d.key.1).collect();
        assert_eq!(keys, [1, 2], "a and b, not quiet");
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        // a answers; b's ping is sent and never answered.
        assert_eq!(
            p.sent(start[0], &[tx(1)], PingOutcome::TransportError),
            None
        );
        assert_eq!(
            p.sent(start[1], &[tx(2)], PingOutcome::TransportError),
            None
        );
        assert_eq!(
            p.event(tx(1), &ok(200)),
            Some(Some(((ProfileId(0), 1), PingOutcome::Answered(200))))
        );
        // b's next round is due at 2 s: its open round fails as a timeout.
        let (failed, start) = p.due(t0 + Duration::from_secs(2));
        assert_eq!(failed, [((ProfileId(0), 2), PingOutcome::Timeout)]);
        assert_eq!(start.len(), 1);
        // The late answer to b's first ping closes nothing.
        assert_eq!(p.event(tx(2), &ok(200)), Some(None));
        // a is due again at 5 s, b at 4 s.
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_secs(4)));
        // Not a ping: the call layer's.
        assert_eq!(p.event(tx(3), &ok(200)), None);
    }

    #[test]
    fn a_round_with_several_servers_is_alive_on_one_answer_and_fails_on_all_failures() {
        let t0 = Instant::now();
        let t = txs(4);
        let tx = |n: usize| t[n - 1];
        let mut p = Pinger::new(&table(), t0).unwrap();
        let (_, start) = p.due(t0);
        let a = start[0];
        assert_eq!(
            p.sent(a, &[tx(1), tx(2)], PingOutcome::TransportError),
            None
        );
        assert_eq!(
            p.event(tx(1), &ClientEvent::Timeout),
            Some(None),
            "one left"
        );
        assert_eq!(
            p.event(tx(2), &ok(503)),
            Some(Some(((ProfileId(0), 1), PingOutcome::Answered(503)))),
            "every server failed: the round fails with the last outcome"
        );
        // Next round: a provisional decides nothing, then a 404 is alive.
        let (_, start) = p.due(t0 + Duration::from_secs(5));
        let a = *start.iter().find(|d| d.key.1 == 1).unwrap();
        p.sent(a, &[tx(3), tx(4)], PingOutcome::TransportError);
        let trying = ClientEvent::Provisional(sip::response_to(&options(), 100, None));
        assert_eq!(p.event(tx(3), &trying), Some(None));
        assert_eq!(
            p.event(tx(3), &ok(404)),
            Some(Some(((ProfileId(0), 1), PingOutcome::Answered(404))))
        );
        assert_eq!(p.event(tx(4), &ok(200)), Some(None), "the round is closed");
        // Nothing could be sent: the round fails at once.
        let (_, start) = p.due(t0 + Duration::from_secs(10));
        let a = *start.iter().find(|d| d.key.1 == 1).unwrap();
        assert_eq!(
            p.sent(a, &[], PingOutcome::NoTarget),
            Some(PingOutcome::NoTarget)
        );
        let (failed, _) = p.due(t0 + Duration::from_secs(15));
        assert!(
            !failed.iter().any(|(k, _)| k.1 == 1),
            "a closed round is not failed twice"
        );
    }
}
