//! Legs the switch places (RFC 3261 §13.2 as UAC) and what their INVITE's
//! responses do to the call: progress relayed, early media bridged, the
//! first answer wins and the other forks are CANCELled, failures mapped to
//! the caller (§16.7 best response), 401/407 answered once with the peer's
//! credentials, and the ring timeout.
//!
//! Owns the types of a placement (`Target`, `Caller`, `PlaceError`) and no
//! state: a placed leg goes into the table (`LegTable::insert_leg`), its
//! INVITE into `pending`, its ring timeout onto the wheel (`schedule`), what
//! it holds of a trunk peer into `PeerRuntime` (`gateways`). It sets a
//! call's legs by role, its bridge (`bridge`) and its state as answers come;
//! a transfer re-bridges (`transfer`). It must not forget a leg itself
//! (`lifecycle::drop_leg` does).

use std::net::SocketAddr;
use std::time::Instant;

use crate::dialog::DialogId;
use crate::media::{LegId, MediaCommand};
use crate::net::{Destination, ProfileId};
use crate::sdp;
use crate::sip::{self, MessageHeaders, Method, Request, Response, Uri};

use super::command::{CallEvent, CallId, EndedBy, Failure, LegRole, Progress};
use super::leg::{Leg, LegMedia, Side};
use super::negotiate::{self, Forward};
use super::summary::{CallState, LegState};
use super::timers::Timer;
use super::{new_request, sdp_body, with_sdp, CallLayer, Pending, SipOut};

/// Where a leg is placed.
#[derive(Debug, Clone)]
pub struct Target {
    pub profile: ProfileId,
    pub uri: Uri,
    pub destination: Destination,
    /// A preloaded route set (RFC 3261 §8.1.2): the Path a contact registered
    /// with (RFC 3327 §5.3), first hop first, sent as Route headers; the
    /// destination is then that first hop.
    pub route: Vec<String>,
    /// The trunk peer whose credentials answer challenges.
    pub peer: Option<(ProfileId, usize)>,
    /// The user or number, for events.
    pub label: String,
    /// A trunk peer's further servers, tried in order when this one fails
    /// (RFC 3263 §4.3; see `failover`).
    pub fallback: Vec<SocketAddr>,
    /// The trunk peer's outbound call slot the leg will hold (`gateways`).
    pub slot: Option<std::sync::Arc<super::peers::PeerCall>>,
    /// The route's other gateways, in order, for when this one fails.
    pub next_gateways: Vec<(ProfileId, usize)>,
}

/// Why [`CallLayer::place_leg`] placed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum PlaceError {
    /// No codec of the offer is allowed on the target's profile.
    #[error("no codec in common with the target profile")]
    NoCommonCodec,
    /// Every RTP/RTCP pair of the target profile's media range is taken.
    #[error("the target profile's media ports are exhausted")]
    MediaPortsExhausted,
    /// The transaction layer would not send the INVITE.
    #[error("the INVITE could not be sent")]
    NotSent,
    /// The target names a profile this layer does not have (a bug in the
    /// dial plan or the configuration, never a peer's doing).
    #[error("the target's profile is unknown")]
    UnknownProfile,
}

impl PlaceError {
    /// The call's end cause when no leg could be placed for this reason
    /// (`None`: the caller's own, e.g. `a-failed`).
    pub(super) fn cause(self) -> Option<&'static str> {
        match self {
            PlaceError::MediaPortsExhausted => Some(MEDIA_PORTS_EXHAUSTED),
            PlaceError::NoCommonCodec | PlaceError::NotSent | PlaceError::UnknownProfile => None,
        }
    }

    /// The end cause for a call none of whose legs `errors` could be placed:
    /// media exhaustion when any of them ran into it, else `otherwise`.
    pub(super) fn cause_of(errors: &[PlaceError], otherwise: &'static str) -> &'static str {
        errors.iter().find_map(|e| e.cause()).unwrap_or(otherwise)
    }
}

/// The end cause of a call that failed because a profile's media range had
/// no free port pair (the call record's and the `call-ended` event's).
pub const MEDIA_PORTS_EXHAUSTED: &str = "media-ports-exhausted";

/// Who the placed leg shows as calling.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub user: String,
    pub display: Option<String>,
}

impl Caller {
    pub fn from_request(request: &Request) -> Self {
        let from = request.header_value("From").unwrap_or("");
        let display = from
            .split('<')
            .next()
            .map(|d| d.trim().trim_matches('"').to_string())
            .filter(|d| !d.is_empty() && from.contains('<'));
        Caller {
            user: crate::sip::user_part(from).unwrap_or_default(),
            display,
        }
    }
}

impl CallLayer {
    /// Sends an INVITE for a new leg of `call`. `offer` is what to offer the
    /// party; `None` sends the INVITE without SDP (a late-offer caller: the
    /// party's 2xx then carries the offer). `passed` are the inbound leg's
    /// headers (copied when the profile's `pass_headers` names them) or the
    /// case data of an origination; `auto_answer` asks a phone to answer by
    /// itself.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place_leg(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        role: LegRole,
        target: Target,
        offer: Option<&Forward>,
        caller: &Caller,
        passed: &[(String, String)],
        auto_answer: bool,
    ) -> Result<LegId, PlaceError> {
        // A peer's own connection carries calls toward it (`flows`).
        let mut target = self.with_peer_flow(target);
        let profile = target.profile;
        let Some(settings) = self.settings.profile_mut(profile) else {
            return Err(PlaceError::UnknownProfile);
        };
        let formats = match offer {
            Some(offer) => negotiate::restrict(&offer.formats, &settings.codecs),
            None => Vec::new(),
        };
        if offer.is_some() && !negotiate::has_audio(&formats) {
            tracing::info!(%call, "no codec in common with the target profile");
            return Err(PlaceError::NoCommonCodec);
        }
        let Some(port) = settings.ports.allocate() else {
            tracing::warn!(profile = %settings.name, %call, "RTP ports exhausted");
            return Err(PlaceError::MediaPortsExhausted);
        };
        let local = SocketAddr::new(settings.media_address, port);
        let mut origin = sdp::Origin::new(local.ip());
        let body = offer.map(|offer| {
            sdp::build_offer(&mut origin, local, &formats, offer.direction, offer.ptime).to_bytes()
        });
        let transport = target.destination.transport;
        let sent_by = self.sent_by(out, profile, transport);
        let host = sent_by.clone();
        let Some(settings) = self.settings.profile(profile) else {
            return Err(PlaceError::UnknownProfile); // found just above
        };
        let (rtp_timeout, ring_timeout) = (settings.rtp_timeout, settings.ring_timeout);
        let sip_call_id = self.new_sip_call_id();
        let local_tag = sip::generate_tag();
        let (user, display) = match (&settings.caller_id_number, target.peer) {
            (Some(n), Some(_)) => (
                n.clone(),
                settings.caller_id_name.clone().or(caller.display.clone()),
            ),
            _ => (caller.user.clone(), caller.display.clone()),
        };
        let display = display
            .map(|d| {
                let d: String = d
                    .chars()
                    .filter(|c| !matches!(c, '"' | '\\') && !c.is_control())
                    .collect();
                format!("\"{d}\" ")
            })
            .unwrap_or_default();
        // RFC 3323/3325 privacy toward whoever is outside the Trust Domain (`identity`).
        let (user, display, from_host) =
            self.leg_from_identity(call, &target, user, display, host.clone());
        let mut headers: Vec<(String, String)> = vec![
            (
                "Via".into(),
                format!(
                    "SIP/2.0/{} {sent_by};branch={};rport",
                    transport.via_token(),
                    sip::generate_branch()
                ),
            ),
            ("Max-Forwards".into(), "70".into()),
        ];
        headers.extend(
            target
                .route
                .iter()
                .map(|r| ("Route".to_string(), r.clone())),
        );
        headers.extend([
            (
                "From".into(),
                format!("{display}<sip:{user}@{from_host}>;tag={local_tag}"),
            ),
            ("To".into(), format!("<{}>", target.uri)),
            ("Call-ID".into(), sip_call_id.clone()),
            ("CSeq".into(), "1 INVITE".into()),
            ("Contact".into(), self.contact(out, profile, transport)),
            ("Allow".into(), crate::sip::ALLOW.into()),
        ]);
        // Supported/Require with 100rel as the target's `prack` says (`prack`).
        headers.extend(self.option_tags_for(&target));
        if settings.session_expires > 0 {
            headers.push((
                "Session-Expires".into(),
                settings.session_expires.to_string(),
            ));
            headers.push(("Min-SE".into(), settings.min_se.to_string()));
        }
        if target.peer.is_some() {
            for rule in &settings.add_headers {
                headers.push((rule.name.clone(), rule.value.clone()));
            }
        }
        // Phones get the case data and the pass list; peers the pass list.
        let allowed: Vec<&String> = if target.peer.is_some() {
            settings.pass_headers.iter().collect()
        } else {
            settings
                .case_data_headers
                .iter()
                .chain(&settings.pass_headers)
                .collect()
        };
        for (name, value) in passed {
            if allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) && self.may_pass(&target, name)
            {
                headers.push((name.clone(), value.clone()));
            }
        }
        // PAI/Privacy toward trusted peers (`identity`), User-to-User (`uui`).
        headers.extend(self.identity_headers(call, &target));
        headers.extend(self.uui_header(call, &target, passed));
        if auto_answer {
            headers.push((
                "Call-Info".into(),
                format!("<sip:{host}>;{}", settings.auto_answer_call_info),
            ));
            headers.push(("Alert-Info".into(), settings.auto_answer_alert_info.clone()));
        }
        if body.is_some() {
            headers.push(("Content-Type".into(), "application/sdp".into()));
        }
        let request = new_request(
            Method::Invite,
            target.uri.clone(),
            headers,
            body.clone().unwrap_or_default(),
        );
        self.dialogs.invite_sent(request.clone(), transport);
        let Some(tx) = out.send_request(now, request.clone(), target.destination) else {
            self.release_port(profile, port);
            return Err(PlaceError::NotSent);
        };
        let leg = self.table.new_leg_id(&self.shard);
        self.pending
            .insert((target.destination.profile, tx), Pending::Invite(leg));
        self.outbox.media(MediaCommand::Open {
            leg,
            call: call.0.clone(),
            local,
            remote: None,
            remote_rtcp: None,
            payloads: negotiate::payload_map(&formats),
            rtp_timeout,
        });
        let ring = now + ring_timeout;
        self.table.insert_leg(Box::new(Leg {
            id: leg,
            call: call.clone(),
            role,
            profile,
            target: target.label.clone(),
            side: Side::Uac {
                invite: request,
                tx: Some(tx),
                auth_tries: 0,
                peer: target.peer,
            },
            destination: target.destination,
            sip_call_id,
            local_tag,
            dialog: None,
            state: LegState::Calling,
            media: LegMedia {
                local,
                origin,
                remote: None,
                formats,
                last_sent: body,
            },
            held_by_phone: false,
            held_by_switch: false,
            hold_offered: false,
            muted: false,
            early_answer: None,
            ring_deadline: Some(ring),
            session: None,
            ending: false,
            timers: Vec::new(),
        }));
        self.schedule(ring, Timer::Ring(leg));
        // Trunk peers: the leg holds its slot, the peer's other servers and
        // the route's other gateways (gateways.rs).
        self.gateway_leg_placed(
            leg,
            &mut target,
            super::gateways::Placed {
                offer,
                caller,
                passed,
                auto_answer,
            },
        );
        if let Some(c) = self.table.call_mut(call) {
            match role {
                LegRole::A => c.a = leg,
                LegRole::B => c.b.push(leg),
                LegRole::C => c.c = Some(leg),
                // `supervise` records it once placed.
                LegRole::S => {}
            }
        }
        self.outbox.mark(call);
        self.outbox.event(CallEvent::Leg {
            call: call.clone(),
            leg: role,
            progress: Progress::Trying,
        });
        Ok(leg)
    }

    /// A 1xx to a leg's INVITE.
    pub(super) fn invite_provisional(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        r: Response,
    ) {
        let code = r.status_code.code();
        if code == 100 {
            return;
        }
        // RFC 3262: a reliable 1xx is PRACKed, a repeated one dropped (`prack`).
        if !self.prack_provisional(now, out, leg, &r) {
            return;
        }
        // Without 100rel an SDP in a 1xx to an offerless INVITE is no offer
        // we could answer: a late-offer callee only rings until its 2xx.
        let late = self
            .table
            .leg(leg)
            .and_then(|l| self.table.call(&l.call))
            .is_some_and(|c| c.late_offer.is_some());
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        if l.ending || l.is_answered() {
            return;
        }
        if r.to_tag().is_some() {
            l.dialog = crate::dialog::DialogId::of_incoming_response(&r);
        }
        let call = l.call.clone();
        let role = l.role;
        let sdp = sdp_body(&r, &r.body).filter(|_| !late);
        let early = sdp.as_deref().and_then(negotiate::read_answer);
        let progress = if early.is_some() {
            Progress::EarlyMedia
        } else {
            Progress::Ringing
        };
        let new_state = if early.is_some() {
            LegState::EarlyMedia
        } else {
            LegState::Ringing
        };
        let changed = l.state != new_state;
        if l.state != LegState::EarlyMedia {
            l.state = new_state;
        }
        if let Some((_, stream)) = &early {
            self.apply_remote(leg, stream.clone(), None);
        }
        if changed {
            self.outbox.event(CallEvent::Leg {
                call: call.clone(),
                leg: role,
                progress,
            });
            if role == LegRole::C {
                self.consult_progress(&call, leg, progress);
            }
        }
        self.outbox.mark(&call);
        let Some(c) = self.table.call(&call) else {
            return;
        };
        let a = c.a;
        match role {
            // The caller of an inbound call hears what the callee plays.
            LegRole::B if c.originate.is_none() => {
                let a_answered = self.table.leg(a).is_some_and(|l| l.early_answer.is_some());
                match early {
                    Some((_, stream)) if !a_answered => {
                        let Some(answer) = self.answer_for_a(a, &stream) else {
                            return;
                        };
                        self.outbox.media(MediaCommand::Bridge { a, b: leg });
                        if let Some(c) = self.table.call_mut(&call) {
                            c.bridged = Some((a, leg));
                        }
                        if let Some(al) = self.table.leg_mut(a) {
                            al.early_answer = Some(answer.clone());
                            al.state = LegState::EarlyMedia;
                        }
                        if let Some(resp) = self.caller_response(a, 183) {
                            let resp = with_sdp(resp, Some(&answer));
                            self.respond_uas(now, out, a, resp);
                        }
                    }
                    Some(_) => {}
                    None if !a_answered => {
                        if let Some(al) = self.table.leg_mut(a) {
                            al.state = LegState::Ringing;
                        }
                        // 183 without media for the caller is ringing to it.
                        let code = if code == 183 {
                            180
                        } else {
                            code.clamp(180, 182)
                        };
                        if let Some(resp) = self.caller_response(a, code) {
                            let resp = with_sdp(resp, None);
                            self.respond_uas(now, out, a, resp);
                        }
                    }
                    None => {}
                }
            }
            // The agent of an originated call hears the contact's ringback or announcements.
            LegRole::B | LegRole::C if early.is_some() => {
                let partner = if role == LegRole::B {
                    Some(a)
                } else {
                    self.transferee(&call).or_else(|| self.consult_agent(&call))
                };
                if let Some(p) =
                    partner.filter(|p| self.table.leg(*p).is_some_and(|l| l.is_answered()))
                {
                    self.outbox.media(MediaCommand::Bridge { a: p, b: leg });
                }
            }
            _ => {}
        }
    }

    /// A response to the INVITE of leg `a` (the caller's), to complete and
    /// send with `respond_uas`; `None` when the leg is gone.
    pub(super) fn caller_response(&self, a: LegId, code: u16) -> Option<Response> {
        let invite = match &self.table.leg(a)?.side {
            Side::Uas { invite, .. } => invite,
            Side::Uac { invite, .. } => invite,
        };
        Some(sip::response_to(invite, code, None))
    }

    /// Builds the caller's answer from the callee's answer stream.
    pub(super) fn answer_for_a(
        &mut self,
        a: LegId,
        b_stream: &sdp::AudioStream,
    ) -> Option<Vec<u8>> {
        let al = self.table.leg_mut(a)?;
        let offer_stream = al.media.remote.clone()?;
        let offer_sdp = match &al.side {
            Side::Uas { invite, .. } => negotiate::read_answer(&invite.body)?.0,
            Side::Uac { .. } => return None,
        };
        let formats = sdp::answer_formats(&offer_stream, &b_stream.formats).ok()?;
        let answer = sdp::build_answer(
            &mut al.media.origin,
            &offer_sdp,
            al.media.local,
            &formats,
            b_stream.direction,
            b_stream.ptime.or(offer_stream.ptime),
        )
        .to_bytes();
        al.media.formats = formats.clone();
        al.media.last_sent = Some(answer.clone());
        self.outbox.media(MediaCommand::Update {
            leg: a,
            remote: offer_stream.rtp_addr(),
            remote_rtcp: offer_stream.rtcp,
            payloads: negotiate::payload_map(&formats),
            remote_sends: negotiate::flows(&offer_stream).0,
            remote_receives: negotiate::flows(&offer_stream).1,
        });
        Some(answer)
    }

    /// Records what a party described and tells the relay.
    pub(super) fn apply_remote(
        &mut self,
        leg: LegId,
        stream: sdp::AudioStream,
        formats: Option<Vec<sdp::PayloadFormat>>,
    ) {
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        let formats = formats.unwrap_or_else(|| {
            // An answer's formats are ours to use, in its numbering.
            stream.formats.clone()
        });
        let (sends, receives) = negotiate::flows(&stream);
        l.media.formats = formats.clone();
        l.media.remote = Some(stream.clone());
        self.outbox.media(MediaCommand::Update {
            leg,
            remote: stream.rtp_addr(),
            remote_rtcp: stream.rtcp,
            payloads: negotiate::payload_map(&formats),
            remote_sends: sends,
            remote_receives: receives,
        });
    }

    /// A final response to something the call layer sent.
    pub(super) fn client_final(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        pending: Pending,
        r: Response,
        dialog: Option<DialogId>,
    ) {
        match pending {
            Pending::Invite(leg) => self.invite_final(now, out, leg, r, dialog),
            Pending::ReInvite { leg, purpose } => self.reinvite_final(now, out, leg, purpose, r),
            Pending::Bye(leg) => {
                tracing::debug!(%leg, status = r.status_code.code(), "BYE answered");
                self.table.bye_done(leg);
            }
            Pending::Notify { leg, last } => {
                let code = r.status_code.code();
                if code >= 300 || last {
                    tracing::debug!(%leg, code, "NOTIFY answered");
                }
            }
        }
    }

    /// A request the call layer sent got no answer (Timer B/F) or could not be sent.
    pub(super) fn client_failed(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        pending: Pending,
        code: u16,
    ) {
        match pending {
            Pending::Invite(leg) => {
                // RFC 3263 §4.3: the peer's next server, if it has one.
                let retried = self.try_next_target(now, out, leg, code);
                if !retried {
                    self.leg_failed(now, out, leg, code, None)
                }
            }
            Pending::ReInvite { leg, purpose } => match purpose {
                ReInviteKind::Refresh => self.leg_lost(now, out, leg, "session-refresh-failed"),
                // The party whose re-INVITE we relayed gets the 408 within its dialog.
                ReInviteKind::Relay {
                    from,
                    profile,
                    tx,
                    request,
                } => {
                    let r = sip::response_to(&request, 408, None);
                    self.answer_in_dialog(now, out, from, profile, tx, &request, r);
                }
                ReInviteKind::Hold(_) => {}
            },
            Pending::Bye(leg) => self.table.bye_done(leg),
            Pending::Notify { .. } => {}
        }
    }

    fn invite_final(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        r: Response,
        dialog: Option<DialogId>,
    ) {
        let code = r.status_code.code();
        let Some(l) = self.table.leg(leg) else {
            // Cancelled and forgotten, but answered after all: ACK and BYE (§15).
            if let (Some(id), Some(d), true) =
                (dialog, self.table.gone_uac(leg), (200..300).contains(&code))
            {
                self.release_dialog(now, out, id, d);
            }
            return;
        };
        if (200..300).contains(&code) {
            let Some(id) = dialog else {
                return; // a retransmission: the dialog re-sent its ACK
            };
            if l.ending || l.is_answered() {
                // Cancelled too late, or a second fork's 2xx: ACK and BYE it.
                let gone = l.ending && !l.is_answered();
                self.stray_fork(now, out, id, &r);
                if gone {
                    self.drop_leg(leg);
                }
                return;
            }
            self.leg_answered(now, out, leg, id, r);
            return;
        }
        if l.ending {
            self.drop_leg(leg);
            return;
        }
        if (code == 401 || code == 407) && self.answer_auth(now, out, leg, &r) {
            return;
        }
        // RFC 3263 §4.3: a 503 sends the request to the peer's next server.
        if code == 503 && self.try_next_target(now, out, leg, code) {
            return;
        }
        let reason = Some(r.status_code.to_string());
        self.leg_failed(now, out, leg, code, reason);
    }

    /// Resends the INVITE with credentials; false when we cannot or already did.
    fn answer_auth(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        r: &Response,
    ) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return false;
        };
        let Side::Uac {
            invite,
            auth_tries,
            peer: Some((p, i)),
            ..
        } = &l.side
        else {
            return false;
        };
        if *auth_tries > 0 {
            return false;
        }
        let Some(peer) = self.settings.peer((*p, *i)) else {
            return false;
        };
        let (Some(user), Some(pass)) = (&peer.username, &peer.password) else {
            return false;
        };
        let Some(next) = super::digest::answer_challenge(invite, r, user, pass) else {
            return false;
        };
        let destination = l.destination;
        self.dialogs
            .invite_sent(next.clone(), destination.transport);
        let Some(tx) = out.send_request(now, next.clone(), destination) else {
            return false;
        };
        self.pending
            .insert((destination.profile, tx), Pending::Invite(leg));
        if let Some(l) = self.table.leg_mut(leg) {
            l.side = Side::Uac {
                invite: next,
                tx: Some(tx),
                auth_tries: 1,
                peer: match &l.side {
                    Side::Uac { peer, .. } => *peer,
                    _ => None,
                },
            };
        }
        true
    }

    /// A leg's INVITE got a 2xx: ACK it, and move the call on.
    fn leg_answered(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        id: DialogId,
        r: Response,
    ) {
        // A late offer's 2xx carries the offer: its ACK waits for the caller's answer.
        let late = self.awaits_late_offer(leg);
        let Some(destination) = self.table.leg(leg).map(|l| l.destination) else {
            return;
        };
        let via = self.sent_by(out, destination.profile, destination.transport);
        if !late {
            if let Ok(ack) = self.dialogs.create_ack(&id, &via, None) {
                out.send_stateless(destination, ack.into());
            }
        }
        // An offer already answered in a PRACK leaves nothing to read (`prack`).
        let answer = sdp_body(&r, &r.body)
            .filter(|_| !late && !self.early_offer_answered(leg))
            .and_then(|b| negotiate::read_answer(&b));
        if let Some(l) = self.table.leg_mut(leg) {
            l.dialog = Some(id.clone());
            l.state = LegState::Answered;
            l.ring_deadline = None;
        }
        if let Some((_, stream)) = &answer {
            self.apply_remote(leg, stream.clone(), None);
        }
        self.session_from_response(now, leg, &r);
        let Some((call, role)) = self.table.leg(leg).map(|l| (l.call.clone(), l.role)) else {
            return;
        };
        self.outbox.mark(&call);
        self.outbox.event(CallEvent::Leg {
            call: call.clone(),
            leg: role,
            progress: Progress::Answered,
        });
        let Some(c) = self.table.call(&call) else {
            return;
        };
        let a = c.a;
        let originated = c.originate.is_some();
        match role {
            LegRole::B if !originated => {
                // The first answer wins; the other forks are cancelled (§16.7 step 10).
                let others: Vec<LegId> = c.b.iter().copied().filter(|&b| b != leg).collect();
                for o in others {
                    self.cancel_leg(now, out, o);
                }
                if let Some(c) = self.table.call_mut(&call) {
                    c.b = vec![leg];
                }
                if late {
                    return self.late_offer_received(now, out, &call, leg, id, &r);
                }
                if self.late_offer_answered_early(now, out, &call, leg) {
                    return;
                }
                let early = self.table.leg(a).and_then(|l| l.early_answer.clone());
                let answer = match (&answer, early) {
                    // The caller already has an answer in a 183: the 200 repeats it (RFC 3264 §4).
                    (_, Some(e)) => Some(e),
                    (Some((_, s)), None) => self.answer_for_a(a, s),
                    (None, None) => None,
                };
                let Some(answer) = answer else {
                    self.end_call(now, out, &call, EndedBy::Switch, "no-answer-sdp", Some(488));
                    return;
                };
                let Some(mut ok) = self.caller_response(a, 200) else {
                    return;
                };
                self.session_for_uas_answer(now, a, &mut ok);
                let ok = with_sdp(ok, Some(&answer));
                self.respond_uas(now, out, a, ok);
                if let Some(al) = self.table.leg_mut(a) {
                    al.state = LegState::Answered;
                }
                self.bridge(now, &call, a, leg);
            }
            LegRole::A if originated => {
                if let Some(c) = self.table.call_mut(&call) {
                    c.state = CallState::Connecting;
                }
                self.place_second_leg(now, out, &call);
            }
            LegRole::B => self.bridge(now, &call, a, leg),
            LegRole::C if self.consult_of(&call, leg).is_some() => {
                self.consult_answered(&call, leg)
            }
            LegRole::C => self.transfer_target_answered(now, out, &call, leg),
            LegRole::S => self.supervisor_answered(&call, leg),
            LegRole::A => {}
        }
    }

    /// Bridges two answered legs and starts a profile-configured recording.
    pub(super) fn bridge(&mut self, now: Instant, call: &CallId, a: LegId, b: LegId) {
        self.outbox.media(MediaCommand::Bridge { a, b });
        let wall = self.wall_ms(now);
        let Some(c) = self.table.call_mut(call) else {
            return;
        };
        c.bridged = Some((a, b));
        c.state = CallState::Bridged;
        c.answered_at_ms.get_or_insert(wall);
        let ra = self.table.leg(a).map(|l| l.role).unwrap_or(LegRole::A);
        let rb = self.table.leg(b).map(|l| l.role).unwrap_or(LegRole::B);
        let record = self
            .table
            .leg(a)
            .and_then(|l| self.settings.profile(l.profile))
            .is_some_and(|p| p.record);
        self.outbox.mark(call);
        self.outbox.event(CallEvent::Bridged {
            call: call.clone(),
            a: ra,
            b: rb,
        });
        if record && self.table.call(call).is_some_and(|c| c.recording.is_none()) {
            let _ = self.start_recording(call);
        }
    }

    /// An originated call's first leg answered: place the second.
    fn place_second_leg(&mut self, now: Instant, out: &mut dyn SipOut, call: &CallId) {
        let Some(c) = self.table.call(call) else {
            return;
        };
        let Some(o) = c.originate.clone() else {
            return;
        };
        let Some(formats) = self
            .table
            .leg(c.a)
            .map(|l| negotiate::follow(&l.media.formats))
        else {
            return;
        };
        let routed = self
            .dialplan
            .route(&o.b, None)
            .ok_or(404u16)
            .and_then(|r| self.targets(now, out, &r));
        let targets = match routed {
            Ok(t) => t,
            Err(code) => {
                self.outbox.event(CallEvent::LegFailed {
                    call: call.clone(),
                    leg: LegRole::B,
                    status: code,
                    failure: Failure::from_status(code),
                });
                self.end_call(now, out, call, EndedBy::Switch, "b-failed", Some(code));
                return;
            }
        };
        let caller = Caller {
            user: o.caller_id.clone().unwrap_or_else(|| o.a.clone()),
            display: o.caller_id_name.clone(),
        };
        let forward = Forward {
            formats,
            direction: sdp::Direction::SendRecv,
            ptime: None,
        };
        let mut placed = 0;
        let mut errors = Vec::new();
        for t in targets {
            match self.place_leg(
                now,
                out,
                call,
                LegRole::B,
                t,
                Some(&forward),
                &caller,
                &o.headers,
                false,
            ) {
                Ok(_) => placed += 1,
                Err(e) => errors.push(e),
            }
        }
        if placed == 0 {
            let cause = PlaceError::cause_of(&errors, "b-failed");
            self.end_call(now, out, call, EndedBy::Switch, cause, Some(503));
        }
    }

    /// A leg that will not answer: report it and settle the call.
    pub(super) fn leg_failed(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        code: u16,
        reason: Option<String>,
    ) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let (call, role) = (l.call.clone(), l.role);
        self.drop_leg(leg);
        self.account_failure(
            now,
            out,
            &call,
            role,
            leg,
            code,
            reason,
            EndedBy::from(role),
        );
    }

    /// Reports a failed leg and ends the call when nothing is left to try.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn account_failure(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        role: LegRole,
        leg: LegId,
        code: u16,
        reason: Option<String>,
        by: EndedBy,
    ) {
        let cancelled = self.table.call(call).is_some_and(|c| c.cancelled);
        if !cancelled {
            self.outbox.event(CallEvent::LegFailed {
                call: call.clone(),
                leg: role,
                status: code,
                failure: Failure::from_status(code),
            });
        }
        let Some(c) = self.table.call_mut(call) else {
            return;
        };
        match role {
            LegRole::B => {
                c.b.retain(|&b| b != leg);
                c.fork_failures.push((code, reason));
                if c.b.is_empty() {
                    let (status, _) = best_failure(&c.fork_failures);
                    let cause = Failure::from_status(status).to_string();
                    self.end_call(now, out, call, by, &cause, Some(status));
                }
            }
            LegRole::A => {
                let cause = Failure::from_status(code).to_string();
                self.end_call(now, out, call, by, &cause, Some(code));
            }
            LegRole::C => {
                c.c = None;
                if c.consult.as_ref().is_some_and(|k| k.leg == leg) {
                    self.consult_failed(call, code);
                } else {
                    self.transfer_target_failed(now, out, call, code);
                }
            }
            LegRole::S => {
                self.supervisor_gone(call, leg);
            }
        }
    }

    /// Ring timeout or lost race: CANCEL an unanswered leg, detached from its call.
    pub(super) fn cancel_leg(&mut self, now: Instant, out: &mut dyn SipOut, leg: LegId) {
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        if l.ending {
            return;
        }
        l.ending = true;
        if let Side::Uac { tx: Some(tx), .. } = &l.side {
            out.cancel(now, l.destination.profile, *tx);
        }
        let call = l.call.clone();
        self.outbox.media(MediaCommand::Close { leg });
        if let Some(c) = self.table.call_mut(&call) {
            c.b.retain(|&b| b != leg);
            if c.c == Some(leg) {
                c.c = None;
            }
        }
        self.outbox.mark(&call);
    }
}

use super::ReInvite as ReInviteKind;

/// RFC 3261 §16.7 step 6: the response to forward when every fork failed:
/// a 6xx if any, else the lowest class, preferring the informative codes.
pub fn best_failure(failures: &[(u16, Option<String>)]) -> (u16, Option<String>) {
    if let Some(f) = failures.iter().find(|(c, _)| *c >= 600) {
        return f.clone();
    }
    let mut best: Option<&(u16, Option<String>)> = None;
    for f in failures {
        let class = f.0 / 100;
        best = match best {
            None => Some(f),
            Some(b) if class < b.0 / 100 => Some(f),
            Some(b) if class == b.0 / 100 && preferred(f.0) && !preferred(b.0) => Some(f),
            keep => keep,
        };
    }
    let (code, reason) = best.cloned().unwrap_or((480, None));
    // A trunk's challenge we could not answer is ours to refuse, not the caller's to answer.
    match code {
        401 | 407 => (403, None),
        408 if failures.len() > 1 => (480, None),
        c => (c, reason),
    }
}

fn preferred(code: u16) -> bool {
    matches!(code, 486 | 600 | 484 | 404 | 415 | 420 | 488)
}

#[cfg(test)]
mod tests {
    use super::best_failure;

    #[test]
    fn best_failure_prefers_6xx_then_lowest_class_then_busy() {
        assert_eq!(best_failure(&[(486, None), (603, None)]).0, 603);
        assert_eq!(best_failure(&[(503, None), (480, None)]).0, 480);
        assert_eq!(best_failure(&[(480, None), (486, None)]).0, 486);
        assert_eq!(best_failure(&[(407, None)]).0, 403);
        assert_eq!(best_failure(&[(408, None)]).0, 408);
        assert_eq!(best_failure(&[]).0, 480);
    }
}
