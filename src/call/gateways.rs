//! Calls and trunk peers: who may call in, which gateway a call goes out
//! through, and the next gateway when one fails.
//!
//! - Inbound: a call whose source lies in a peer's `acl` takes one of the
//!   peer's inbound call slots (`max_calls_in`, `max_cps_in`, see
//!   `peers`); past a limit it is answered 503 with `Retry-After: 1` and
//!   the refusal counted. The endpoint's per-source cap on transactions
//!   (the anonymous guard) does not apply to such a source: the peer's
//!   limits govern it instead ([`CallLayer::is_peer_source`]).
//! - Outbound: a gateway route lists its peers in the order to try them
//!   (`dialplan`); a call goes to the first one that is up (pings), has an
//!   address, and has an outbound slot free (`max_calls_out`,
//!   `max_cps_out`). None: 503 with `Retry-After: 1` to the caller.
//! - Failover: when the leg to one gateway fails with 503, 408 (Timer B)
//!   or a transport error once every server of that peer was tried (RFC
//!   3263 §4.3, `failover`), the call goes on to the route's next gateway:
//!   a new leg (its own Call-ID, tags and relay port, that peer's
//!   credentials and the profile's headers), placed with what the failed
//!   one was placed with. Any other failure (486, 404, 6xx, a ring timeout
//!   after the callee rang) ends the leg as before.
//!
//! Owns [`PeerRuntime`]: the shared table, and per leg its peer slot and
//! the servers (`failover`) and gateways not yet tried, behind methods. A
//! leg's entry goes when the leg is forgotten (`lifecycle::drop_leg` calls
//! `PeerRuntime::forget_leg`), which gives its slot back.
//! Sans-IO: limits are checked against `now`; nothing here sends but
//! through `SipOut`.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use crate::media::LegId;
use crate::net::{Destination, ProfileId, Source};
use crate::sip::{self, make_header, Request};
use crate::transaction::ServerTransactionId;

use super::command::EndedBy;
use super::leg::Side;
use super::negotiate::Forward;
use super::outbound::{Caller, Target};
use super::peers::{Direction, PeerCall, PeerEvent, PeerTable};
use super::pings::Pinger;
use super::{CallLayer, SipOut};

/// The seconds a 503 refusing a call for a peer's limit (or for want of a
/// gateway) asks the sender to wait: a rate limit's bucket refills within
/// one, and a longer wait would take an SBC's whole trunk out of service.
pub const RETRY_AFTER_SECS: u32 = 1;

/// The call layer's side of trunk peers: the shared table, what each leg
/// holds of its peer (slot, servers and gateways not yet tried), and the
/// pings (on the one shard that sends them, `pings`).
#[derive(Debug)]
pub(super) struct PeerRuntime {
    pub table: Arc<PeerTable>,
    /// Only legs that hold something of a peer have an entry.
    legs: HashMap<LegId, PeerLeg>,
    pub pinger: Option<Pinger>,
    pub events: VecDeque<PeerEvent>,
}

impl PeerRuntime {
    pub fn new(table: Arc<PeerTable>) -> Self {
        PeerRuntime {
            table,
            legs: HashMap::new(),
            pinger: None,
            events: VecDeque::new(),
        }
    }

    /// A leg placed toward a peer: the slot it holds, the route's gateways
    /// after this one, the peer's servers after the first.
    fn placed(
        &mut self,
        leg: LegId,
        slot: Option<Arc<PeerCall>>,
        next: Option<NextGateways>,
        servers: Vec<SocketAddr>,
    ) {
        if slot.is_none() && next.is_none() && servers.is_empty() {
            return;
        }
        let servers = servers.into();
        self.legs.insert(
            leg,
            PeerLeg {
                slot,
                next,
                servers,
            },
        );
    }

    /// The peer's next server for `leg`, taken off its list (`failover`).
    pub fn next_server(&mut self, leg: LegId) -> Option<SocketAddr> {
        self.legs.get_mut(&leg)?.servers.pop_front()
    }

    /// A leg is forgotten: its peer slot is given back, its servers and
    /// gateways left untried are dropped.
    pub fn forget_leg(&mut self, leg: LegId) {
        self.legs.remove(&leg);
    }
}

/// What a leg holds of its peer.
#[derive(Debug, Default)]
struct PeerLeg {
    /// Its place among the peer's calls in progress.
    slot: Option<Arc<PeerCall>>,
    /// A gateway leg: the route's gateways not yet tried.
    next: Option<NextGateways>,
    /// The peer's servers not yet tried (RFC 3263 §4.3, `failover`).
    servers: VecDeque<SocketAddr>,
}

/// Enough to place the same call on the route's next gateway.
#[derive(Debug)]
struct NextGateways {
    gateways: Vec<(ProfileId, usize)>,
    number: String,
    offer: Option<Forward>,
    caller: Caller,
    passed: Vec<(String, String)>,
    auto_answer: bool,
}

/// The leg placed, with what it was placed with (for `gateway_leg_placed`).
pub(super) struct Placed<'a> {
    pub offer: Option<&'a Forward>,
    pub caller: &'a Caller,
    pub passed: &'a [(String, String)],
    pub auto_answer: bool,
}

impl CallLayer {
    /// Whether a request from `ip` on `profile` comes from a trunk peer:
    /// then its peer's limits govern it, not the per-source transaction
    /// cap that guards the registrar against unknown sources.
    pub fn is_peer_source(&self, profile: ProfileId, ip: IpAddr) -> bool {
        self.settings.peer_of_source(profile, ip).is_some()
    }

    /// The peers' shared table (also read by the HTTP API).
    pub fn peer_table(&self) -> &Arc<PeerTable> {
        &self.peers.table
    }

    /// An INVITE from a trunk peer takes one of its inbound slots: `Ok(None)`
    /// for a caller that is no peer, `Err(())` once refused (answered 503).
    pub(super) fn admit_peer_call(
        &self,
        now: Instant,
        out: &mut dyn SipOut,
        source: &Source,
        tx: ServerTransactionId,
        request: &Request,
    ) -> Result<Option<PeerCall>, ()> {
        let Some((_, peer)) = self.settings.peer_of(source) else {
            return Ok(None);
        };
        match self
            .peers
            .table
            .admit(source.profile, peer, Direction::In, now)
        {
            Ok(slot) => Ok(Some(slot)),
            Err(limit) => {
                tracing::debug!(remote = %source.remote, peer = %self.peer_name((source.profile, peer)), ?limit, "call from a peer refused by its limit");
                let r = with_retry_after(crate::sip::answer(request, 503, Some(limit.reason())));
                out.respond(now, source.profile, tx, r);
                Err(())
            }
        }
    }

    /// The caller's leg keeps its peer's inbound slot until it is forgotten.
    pub(super) fn hold_peer_slot(&mut self, leg: LegId, slot: PeerCall) {
        self.peers.legs.entry(leg).or_default().slot = Some(Arc::new(slot));
    }

    /// Answers an INVITE that no target could be found for; a 503 (no
    /// gateway up, every one at its limit, none resolved) says when to
    /// come back.
    pub(super) fn refuse_route(
        &self,
        now: Instant,
        out: &mut dyn SipOut,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
        code: u16,
    ) {
        let r = crate::sip::answer(request, code, None);
        let r = if code == 503 { with_retry_after(r) } else { r };
        out.respond(now, profile, tx, r);
    }

    /// The target of a gateway route: the first of `gateways` that is up,
    /// has somewhere to send to and a free outbound slot (which the target
    /// carries); the rest wait for a failover. Err: 503 when none can take
    /// it (484 when the number makes no URI).
    pub(super) fn gateway_targets(
        &self,
        now: Instant,
        gateways: &[(ProfileId, usize)],
        number: &str,
    ) -> Result<Target, u16> {
        let mut refusal = 503;
        for (i, &(profile, peer)) in gateways.iter().enumerate() {
            let name = self.peer_name((profile, peer));
            if !self.peers.table.is_up(profile, peer) {
                tracing::debug!(peer = %name, "gateway down: skipped");
                continue;
            }
            let mut target = match self.gateway_target(profile, peer, number) {
                Ok(t) => t,
                Err(code) => {
                    if code != 503 {
                        refusal = code;
                    }
                    continue;
                }
            };
            match self.peers.table.admit(profile, peer, Direction::Out, now) {
                Ok(slot) => {
                    target.slot = Some(Arc::new(slot));
                    target.next_gateways = gateways.get(i + 1..).unwrap_or_default().to_vec();
                    return Ok(target);
                }
                Err(limit) => {
                    tracing::debug!(peer = %name, ?limit, "gateway at its limit: skipped");
                }
            }
        }
        Err(refusal)
    }

    /// Where a call to one trunk peer goes: its first server, the others
    /// in reserve (RFC 3263 §4.3, `failover`).
    fn gateway_target(&self, profile: ProfileId, peer: usize, number: &str) -> Result<Target, u16> {
        let p = self.settings.peer((profile, peer)).ok_or(503u16)?;
        // No target (a name not resolved, or resolved to nothing):
        // 503, as when every server of the peer failed.
        let (&first, rest) = p.targets.split_first().ok_or(503u16)?;
        // The Request-URI names the peer as configured (its domain
        // for a peer found by DNS), whichever server gets it.
        let host = p
            .address
            .as_ref()
            .map(|a| a.uri_host())
            .unwrap_or_else(|| first.to_string());
        let uri = sip::parse_uri(&format!("sip:{number}@{host}")).map_err(|_| 484u16)?;
        Ok(Target {
            profile,
            uri,
            destination: Destination {
                profile,
                transport: p.transport,
                remote: first,
                connection: None,
            },
            route: Vec::new(),
            peer: Some((profile, peer)),
            label: number.to_string(),
            fallback: rest.to_vec(),
            slot: None,
            next_gateways: Vec::new(),
        })
    }

    /// `place_leg` placed `leg` toward `target`: the leg keeps the peer's
    /// slot and its other servers, and a gateway leg remembers the route's
    /// other gateways.
    pub(super) fn gateway_leg_placed(
        &mut self,
        leg: LegId,
        target: &mut Target,
        placed: Placed<'_>,
    ) {
        let next = std::mem::take(&mut target.next_gateways);
        let number = &target.label;
        let next = (!next.is_empty()).then(|| NextGateways {
            gateways: next,
            number: number.to_string(),
            offer: placed.offer.cloned(),
            caller: placed.caller.clone(),
            passed: placed.passed.to_vec(),
            auto_answer: placed.auto_answer,
        });
        let (slot, servers) = (target.slot.take(), std::mem::take(&mut target.fallback));
        self.peers.placed(leg, slot, next, servers);
    }

    /// The leg to a gateway failed with `code` (503, 408 or a transport
    /// error) after every server of its peer: recorded on the peer, and the
    /// call goes on to the route's next gateway that can take it. False
    /// when there is none (the leg then fails as it is).
    pub(super) fn next_gateway(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        code: u16,
    ) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return false;
        };
        let Side::Uac {
            peer: Some((profile, peer)),
            ..
        } = l.side
        else {
            return false;
        };
        if !matches!(code, 408 | 503) {
            return false;
        }
        let (call, role) = (l.call.clone(), l.role);
        let wall = self.wall_ms(now);
        self.peers.table.record_failure(profile, peer, code, wall);
        let Some(next) = self.peers.legs.get(&leg).and_then(|p| p.next.as_ref()) else {
            return false;
        };
        let Ok(target) = self.gateway_targets(now, &next.gateways, &next.number) else {
            return false;
        };
        let Some(next) = self.peers.legs.get_mut(&leg).and_then(|p| p.next.take()) else {
            return false;
        };
        tracing::info!(
            %leg,
            failed = %self.peer_name((profile, peer)),
            status = code,
            next = %target.peer.map(|k| self.peer_name(k)).unwrap_or(""),
            "trying the route's next gateway"
        );
        // The failed leg's INVITE transaction is over: nothing of it to wait for.
        self.drop_leg(leg);
        self.table.uac_done(leg);
        let placed = self.place_leg(
            now,
            out,
            &call,
            role,
            target,
            next.offer.as_ref(),
            &next.caller,
            &next.passed,
            next.auto_answer,
        );
        if placed.is_err() {
            self.account_failure(now, out, &call, role, leg, code, None, EndedBy::from(role));
        }
        true
    }
}

fn with_retry_after(mut r: crate::sip::Response) -> crate::sip::Response {
    r.headers
        .push(make_header("Retry-After", RETRY_AFTER_SECS.to_string()));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leg_holds_its_servers_in_order_until_it_is_forgotten() {
        let mut peers = PeerRuntime::new(Arc::new(PeerTable::default()));
        let (leg, other) = (LegId(1), LegId(2));
        let servers: Vec<SocketAddr> = vec![
            "127.0.0.1:5091".parse().unwrap(),
            "127.0.0.1:5092".parse().unwrap(),
        ];
        peers.placed(leg, None, None, servers.clone());
        // A leg that holds nothing of a peer takes no entry.
        peers.placed(other, None, None, Vec::new());
        assert_eq!(peers.legs.len(), 1);
        assert_eq!(peers.next_server(leg), Some(servers[0]));
        assert_eq!(peers.next_server(other), None);
        assert_eq!(peers.next_server(leg), Some(servers[1]));
        assert_eq!(peers.next_server(leg), None, "every server tried");
        peers.forget_leg(leg);
        assert!(peers.legs.is_empty());
        assert_eq!(peers.next_server(leg), None);
    }
}
