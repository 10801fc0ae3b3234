//! INVITEs the switch receives outside a dialog: who is calling, where the
//! call goes (the dial plan), and the caller's leg (RFC 3261 §13.3 as UAS).
//!
//! A caller is admitted when it is a trunk peer (its source lies in the
//! peer's `acl`), a user of a registrar profile calling from the address
//! it registered from, or, on a registrar profile, anyone who answers a
//! 407 digest challenge with a user's credentials (RFC 3261 §22.3, the
//! registrar's own digest and brute-force guard). The callee side is placed
//! by `outbound`; a CANCEL
//! from the caller ends every leg (§9.2, the callee legs are CANCELled).
//!
//! Owns no state: it makes the caller's leg and its call and puts them in
//! the table (`LegTable::insert_leg` indexes the leg by dialog and by its
//! INVITE transaction for CANCEL). The caller's INVITE is answered only
//! through `respond_uas`, which takes it out of the CANCEL index with its
//! final response; nothing else may answer it.

use std::time::Instant;

use crate::dialog::Dialog;
use crate::media::MediaCommand;
use crate::net::{Destination, ProfileId, Source};
use crate::registrar::{RegisterOutcome, RequestAuth};
use crate::sdp;
use crate::sip::{self, make_header, MessageHeaders, Request, Response};
use crate::transaction::ServerTransactionId;

use super::command::{CallEvent, EndedBy, LegRole};
use super::dialplan;
use super::late_offer::LateOffer;
use super::leg::{Leg, LegMedia, Side};
use super::negotiate;
use super::outbound::{PlaceError, Target, MEDIA_PORTS_EXHAUSTED};
use super::summary::LegState;
use super::table::Call;
use super::{sdp_body, CallLayer, SipOut};

impl CallLayer {
    /// A new INVITE (no To tag) on `source`'s profile, already answered 100 Trying.
    pub fn handle_invite(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        source: Source,
        tx: ServerTransactionId,
        request: Request,
    ) {
        let profile = source.profile;
        let reject = |out: &mut dyn SipOut, code: u16, reason: Option<&str>| {
            let mut r = crate::sip::answer(&request, code, reason);
            if code == 488 {
                r.headers.push(make_header(
                    "Warning",
                    "304 switchback \"Media type not available\"".into(),
                ));
            }
            out.respond(now, profile, tx, r);
        };
        // RFC 3262 off here: a caller requiring 100rel gets 420 (`prack`).
        if let Some(r) = self.refuse_unsupported(&source, &request) {
            return out.respond(now, profile, tx, r);
        }
        let Some(admitted) = self.admit(now, out, &source, tx, &request) else {
            return;
        };
        // RFC 3325: a trusted peer's asserted identity is the caller (`identity`).
        let (caller, identity) = self.caller_identity(out, &source, &request, admitted);
        let from_user = caller.user.clone();
        self.note_peer_flow(&source);
        // A trunk peer's call takes a place within its limits (gateways.rs).
        let Ok(peer_slot) = self.admit_peer_call(now, out, &source, tx, &request) else {
            return;
        };
        let number = request.uri.user().unwrap_or("").to_string();
        let Some(route) = self.dialplan.route(&number, Some(profile)) else {
            tracing::info!(%number, "no dial plan rule matches");
            return reject(out, 404, None);
        };
        let targets = match self.targets(now, out, &route) {
            Ok(t) => t,
            Err(code) => return self.refuse_route(now, out, profile, tx, &request, code),
        };
        // No SDP: a late offer (RFC 3261 §13.2.1); the callee's 2xx will carry
        // the offer and the caller's ACK the answer (see `late_offer`).
        let offer = match sdp_body(&request, &request.body) {
            None => None,
            Some(bytes) => {
                let codecs = self.settings.profile(profile).map(|p| p.codecs.as_slice());
                match negotiate::read_offer(&bytes, codecs.unwrap_or_default()) {
                    Ok(o) => Some(o),
                    Err(negotiate::OfferError::Unreadable) => {
                        return reject(out, 400, Some("Malformed SDP"))
                    }
                    Err(negotiate::OfferError::NoCommonCodec) => return reject(out, 488, None),
                }
            }
        };
        let allocated = self
            .settings
            .profile_mut(profile)
            .and_then(|p| Some((p.ports.allocate()?, p.media_address, p.rtp_timeout)));
        let Some((port, media_address, rtp_timeout)) = allocated else {
            // No leg to hang a call on, but a failed call all the same: it
            // leaves the record every failed call leaves (call-started, then
            // call-ended with its cause), not only a log line.
            let call = self.new_call_id();
            tracing::warn!(profile = %self.profile_name(profile), %call, "RTP ports exhausted");
            self.outbox.event(CallEvent::Started {
                call: call.clone(),
                interaction: None,
                from: from_user,
                to: number,
            });
            self.outbox.event(CallEvent::Ended {
                call,
                by: EndedBy::Switch,
                cause: MEDIA_PORTS_EXHAUSTED.to_string(),
                status: Some(503),
            });
            return reject(out, 503, Some("No Media Ports"));
        };
        let local = std::net::SocketAddr::new(media_address, port);
        let local_tag = sip::generate_tag();
        let contact = self.contact(out, profile, source.transport);
        let dialog = match Dialog::uas(&request, &local_tag, &contact, source.transport) {
            Ok(d) => d,
            Err(e) => {
                self.release_port(profile, port);
                tracing::debug!(error = %e, "INVITE cannot create a dialog");
                return reject(out, 400, Some("Missing Contact"));
            }
        };
        let dialog_id = self.dialogs.insert(dialog);
        let call_id = self.new_call_id();
        let a = self.table.new_leg_id(&self.shard);
        let sip_call_id = request.call_id().unwrap_or("").to_string();
        self.outbox.media(MediaCommand::Open {
            leg: a,
            call: call_id.0.clone(),
            local,
            remote: offer.as_ref().and_then(|o| o.stream.rtp_addr()),
            remote_rtcp: offer.as_ref().and_then(|o| o.stream.rtcp),
            payloads: offer
                .as_ref()
                .and_then(|o| negotiate::payload_map(&o.formats)),
            rtp_timeout,
        });
        let destination = Destination {
            profile,
            transport: source.transport,
            remote: source.remote,
            connection: source.connection,
        };
        let leg = Leg {
            id: a,
            call: call_id.clone(),
            role: LegRole::A,
            profile,
            target: from_user.clone(),
            side: Side::Uas {
                invite: request.clone(),
                tx,
                source,
                answered: false,
            },
            destination,
            sip_call_id,
            local_tag,
            dialog: Some(dialog_id),
            state: LegState::Calling,
            media: LegMedia {
                local,
                origin: sdp::Origin::new(local.ip()),
                remote: offer.as_ref().map(|o| o.stream.clone()),
                formats: offer
                    .as_ref()
                    .map(|o| o.formats.clone())
                    .unwrap_or_default(),
                last_sent: None,
            },
            held_by_phone: offer.as_ref().is_some_and(|o| o.stream.is_hold()),
            held_by_switch: false,
            hold_offered: false,
            muted: false,
            early_answer: None,
            ring_deadline: None,
            session: None,
            ending: false,
            timers: Vec::new(),
        };
        self.table.insert_leg(Box::new(leg));
        if let Some(slot) = peer_slot {
            self.hold_peer_slot(a, slot);
        }
        let mut call = Call::new(call_id.clone(), &from_user, &number, a, self.wall_ms(now));
        if offer.is_none() {
            call.late_offer = Some(LateOffer::Awaiting);
        }
        call.identity = identity;
        self.table.insert_call(call);
        self.outbox.mark(&call_id);
        self.outbox.event(CallEvent::Started {
            call: call_id.clone(),
            interaction: None,
            from: from_user.clone(),
            to: number.clone(),
        });
        // Only the headers a target's profile may pass on are read (place_leg
        // picks pass_headers for gateways, with case_data_headers for phones).
        let passed: Vec<(String, String)> = targets
            .first()
            .and_then(|t| self.settings.profile(t.profile))
            .map(|p| {
                p.pass_headers
                    .iter()
                    .chain(&p.case_data_headers)
                    .filter_map(|name| {
                        let value = request.header_value(name)?;
                        Some((name.clone(), value.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let forward = offer.as_ref().map(|o| o.to_forward());
        let mut placed = 0;
        let mut errors = Vec::new();
        for target in targets {
            match self.place_leg(
                now,
                out,
                &call_id,
                LegRole::B,
                target,
                forward.as_ref(),
                &caller,
                &passed,
                false,
            ) {
                Ok(_) => placed += 1,
                Err(e) => errors.push(e),
            }
        }
        if placed == 0 {
            let cause = PlaceError::cause_of(&errors, "no-leg-placed");
            self.end_call(now, out, &call_id, EndedBy::Switch, cause, Some(503));
        }
    }

    /// Who is calling, or `None` once the INVITE has been answered. Trunk
    /// peers (by ACL) and users calling from an address they registered
    /// from are who their From says; anyone else on a registrar profile is
    /// challenged (407, the registrar's digest) and is the user whose
    /// credentials it then sends; elsewhere anyone else gets 403.
    fn admit(
        &self,
        now: Instant,
        out: &mut dyn SipOut,
        source: &Source,
        tx: ServerTransactionId,
        request: &Request,
    ) -> Option<String> {
        let from = request.header_value("From").unwrap_or("");
        let from_user = crate::sip::user_part(from).unwrap_or_default();
        if self.known_source(now, out, source, &from_user) {
            return Some(from_user);
        }
        let refusal = match out.authenticate(now, source, request) {
            Some(RequestAuth::Authenticated { username }) => {
                tracing::debug!(remote = %source.remote, user = %username, "INVITE authenticated by digest");
                return Some(username);
            }
            Some(RequestAuth::Refused(RegisterOutcome::Respond { response, delay })) => {
                match delay {
                    Some(d) => out.respond_at(now + d, source.profile, tx, response),
                    None => out.respond(now, source.profile, tx, response),
                }
                return None;
            }
            // Never made for requests other than REGISTER; answered like any
            // refusal (an INVITE's transaction absorbs the ACK).
            Some(RequestAuth::Refused(RegisterOutcome::Challenge(response))) => {
                out.respond(now, source.profile, tx, response);
                return None;
            }
            // The source is blocked from now on; this INVITE still gets its
            // final answer (a server transaction must not be left without one).
            Some(RequestAuth::Refused(RegisterOutcome::Drop)) => "Forbidden",
            None => "Not Registered From This Address",
        };
        tracing::info!(remote = %source.remote, user = %from_user, "INVITE from an unknown party refused");
        let r = crate::sip::answer(request, 403, Some(refusal));
        out.respond(now, source.profile, tx, r);
        None
    }

    /// Trunk peers by ACL; registrar users from the address they registered from.
    fn known_source(&self, now: Instant, out: &dyn SipOut, source: &Source, user: &str) -> bool {
        let Some(p) = self.settings.profile(source.profile) else {
            return false;
        };
        let ip = source.remote.ip();
        if p.peers
            .iter()
            .any(|peer| peer.acl.iter().any(|n| n.contains(&ip)))
        {
            return true;
        }
        // Over UDP the very address it registered from (its NAT binding);
        // over a stream, a new connection has a new port: the address only.
        // A binding made through a proxy (with a Path) came from the
        // proxy's address, which every phone behind it shares: it proves
        // nothing, and such a caller is challenged.
        let same = |b: &crate::registrar::Binding| {
            b.path.is_empty()
                && match source.transport {
                    crate::net::TransportKind::Udp => b.source.remote == source.remote,
                    _ => b.source.remote.ip() == ip,
                }
        };
        p.registrar
            && out
                .lookup(source.profile, user, now)
                .is_some_and(|bs| bs.iter().any(same))
    }

    /// Where a routed number is placed: every registered contact of a user
    /// (parallel forking), or the first gateway of the route that can take
    /// it (`gateways`).
    pub(super) fn targets(
        &self,
        now: Instant,
        out: &dyn SipOut,
        route: &dialplan::Destination,
    ) -> Result<Vec<Target>, u16> {
        match route {
            dialplan::Destination::User { profile, user } => {
                let bindings = out.lookup(*profile, user, now).ok_or(404u16)?;
                if bindings.is_empty() {
                    return Err(480);
                }
                Ok(bindings
                    .into_iter()
                    .filter_map(|b| {
                        Some(Target {
                            profile: *profile,
                            uri: sip::parse_uri(&b.contact).ok()?,
                            destination: path_destination(&b),
                            route: b.path.clone(),
                            peer: None,
                            label: user.clone(),
                            fallback: Vec::new(),
                            slot: None,
                            next_gateways: Vec::new(),
                        })
                    })
                    .collect())
            }
            dialplan::Destination::Gateway { gateways, number } => {
                Ok(vec![self.gateway_targets(now, gateways, number)?])
            }
        }
    }

    /// The caller CANCELled its INVITE: CANCEL the callee legs, 487 the caller.
    pub fn handle_cancel(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        profile: ProfileId,
        invite_tx: ServerTransactionId,
    ) {
        let Some(leg) = self.table.leg_of_invite(profile, invite_tx) else {
            return;
        };
        let Some(call) = self.table.leg(leg).map(|l| l.call.clone()) else {
            return;
        };
        if let Some(c) = self.table.call_mut(&call) {
            c.cancelled = true;
        }
        self.end_call(now, out, &call, EndedBy::A, "cancelled", Some(487));
        self.drain_dialogs(now, out);
        self.publish_dirty();
    }

    /// Answers the caller's INVITE (a UAS leg) through its dialog.
    pub(super) fn respond_uas(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: super::LegId,
        response: Response,
    ) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let Side::Uas {
            invite,
            tx,
            source,
            answered: false,
        } = &l.side
        else {
            return;
        };
        let code = response.status_code.code();
        let (invite, tx, source, profile) = (invite.clone(), *tx, *source, l.profile);
        let destination = invite
            .top_via()
            .map(|v| source.response_destination(&v))
            .unwrap_or(l.destination);
        let dialog = l.dialog.clone();
        // RFC 3262 (`prack`): a reliable 1xx, or a 2xx held until a PRACK.
        let Some(response) =
            self.uas_response(now, leg, dialog.as_ref(), &invite, response, destination)
        else {
            return;
        };
        if code >= 200 {
            self.table.uas_answered(leg);
        }
        out.respond(now, profile, tx, response);
    }
}

/// Where a request for a registered contact goes: where its REGISTER came
/// from, or, when it registered with a Path (RFC 3327 §5.3), the first Path
/// hop, which is where the Route the request carries leads (loose routing,
/// RFC 3261 §16.12). A first hop named by an IP address is sent to as
/// written (its `transport` parameter, else the REGISTER's transport); a
/// host name is not resolved here (no I/O in this layer), and the REGISTER's
/// source stands in for it: the proxy that added the Path is that first hop
/// in the usual edge-proxy setup.
fn path_destination(b: &crate::registrar::Binding) -> Destination {
    let source = Destination {
        profile: b.source.profile,
        transport: b.source.transport,
        remote: b.source.remote,
        connection: b.source.connection,
    };
    let Some(first) = b.path.first() else {
        return source;
    };
    match hop_address(first) {
        Some((remote, _)) if remote == b.source.remote => source,
        Some((remote, transport)) => Destination {
            profile: b.source.profile,
            transport: transport.unwrap_or(b.source.transport),
            remote,
            connection: None,
        },
        None => source,
    }
}

/// The address and transport of a route entry whose host is an IP address.
fn hop_address(route: &str) -> Option<(std::net::SocketAddr, Option<crate::net::TransportKind>)> {
    let (ip, port, transport) = sip::ip_hop(route)?;
    let transport = transport.and_then(|t| crate::net::TransportKind::from_via_token(&t));
    let port = port.unwrap_or_else(|| {
        crate::net::default_port(transport.unwrap_or(crate::net::TransportKind::Udp))
    });
    Some((std::net::SocketAddr::new(ip, port), transport))
}
