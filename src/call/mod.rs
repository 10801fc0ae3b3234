//! The call layer: Switchback's back-to-back user agent (B2BUA).
//!
//! Every call is two or more legs, each its own dialog with its own Call-ID,
//! tags and CSeq space; the switch terminates each dialog and relays between
//! them (RFC 3261 §12 per leg, RFC 3264 offer/answer rewritten so that media
//! flows through the relay). It routes new INVITEs by the dial plan (users'
//! registered contacts, forked in parallel, through the Path they registered
//! with, RFC 3327; or trunk gateways), places calls
//! for the layer above ("call A; when A answers, call B; bridge"), relays
//! progress, failures, CANCEL, BYE, re-INVITE (hold, RFC 6337), INFO DTMF and
//! REFER transfers (RFC 3515, RFC 3891), transfers on command, keeps RFC 4028
//! session timers, and ends a call whose leg fell silent.
//!
//! It is sans-IO like the layers below it (CONTRIBUTING.md): time arrives as
//! `now`, SIP leaves through the [`SipOut`] the endpoint lends it, media
//! leaves as [`MediaCommand`]s for the relay (which never touches SIP), and
//! what happened leaves as [`CallEvent`]s. It reads no clock, opens no
//! socket, takes no lock and imports nothing above it (`callback/` learns of
//! calls only through the events). Each endpoint worker has its own layer
//! for the calls whose ids map to it (`crate::shard`); after each input the
//! calls that changed are published to the concurrent session table that
//! other tasks read. `handover` moves a leg between workers (attended
//! transfer).
//!
//! [`CallLayer`] is a handful of parts, each the only owner of its state,
//! which the other files reach through its methods (docs/architecture.md,
//! "Inside the call layer"): `table` (who is who: calls, legs, the indexes
//! by dialog and by INVITE transaction, forgotten legs' afterlives), `wheel`
//! (armed timers), `outbox` (events, media commands, calls to publish), the
//! requests in flight (`Pending`, here), the dialogs (`crate::dialog`), the
//! trunk peers' runtime (`gateways::PeerRuntime`) and the handover
//! bookkeeping (`handover::Handover`). A step that needs several parts is a
//! `CallLayer` method that does it in one place (forgetting a leg:
//! `lifecycle::drop_leg`).
//!
//! Files, one concern each:
//! - legs and bridging: `leg` (one dialog and its media), `inbound` (INVITEs
//!   received, RFC 3261 §13.3), `outbound` (legs placed and their responses,
//!   §13.2, §16.7), `lifecycle` (ending legs and calls), `late_offer` (INVITEs
//!   without SDP, RFC 3264 §4), `prack` (RFC 3262 on both kinds of leg),
//!   `negotiate` (SDP rewriting);
//! - requests within a leg's dialog: `in_dialog` (BYE, re-INVITE, UPDATE,
//!   INFO, ACK, §12-§15, RFC 6337);
//! - transfer: `transfer` (REFER and the transfer command, RFC 3515, 3891),
//!   `handover` (across workers), `consult` (consultation, attended
//!   transfer, conference and volume on command), `supervise` (listen,
//!   whisper, barge);
//! - timers: `wheel` (the deadlines), `timers` (ring timeout, RFC 4028);
//! - trunk peers: `peers` (shared limits, counters, health), `gateways` (peer
//!   limits on calls, a route's gateways), `failover` (a peer's next server,
//!   RFC 3263 §4.3), `pings` (OPTIONS), `flows` (a peer's connection),
//!   `digest` (answering 401/407);
//! - the layer above: `command` (commands and events), `controls` (carrying
//!   out commands, media events), `access` (how other tasks reach it);
//! - identity and headers: `identity` (RFC 3325/3323), `uui` (RFC 7433);
//! - what leaves: `outbox`, `publish` (the session table's view), `summary`;
//! - configuration: `settings`, `dialplan`.
//!
//! Nothing here indexes a map or a list (`clippy::indexing_slicing` is
//! denied on the module, src/lib.rs): a leg, call, profile or peer that is
//! gone is `None`, and the request is answered or dropped.

pub mod access;
pub mod command;
mod consult;
mod controls;
pub mod dialplan;
mod digest;
mod failover;
mod flows;
mod gateways;
mod handover;
mod identity;
mod in_dialog;
mod inbound;
mod late_offer;
mod leg;
mod lifecycle;
mod negotiate;
mod out;
mod outbound;
mod outbox;
pub mod peers;
mod pings;
mod prack;
mod publish;
pub mod settings;
pub mod summary;
mod supervise;
mod table;
#[cfg(test)]
mod tests;
mod timers;
mod transfer;
mod uui;
mod wheel;

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

pub use access::{CallDirectory, ControlRequest};
pub use command::*;
pub use handover::PeerCall;
pub use out::SipOut;
pub use peers::{PeerEvent, PeerStatus, PeerTable};
pub use publish::{Directory, Sessions};
pub use summary::*;

use crate::dialog::{DialogEvent, DialogId, DialogTable};
use crate::media::{LegId, MediaCommand, MediaEvent};
use crate::net::{Destination, ProfileId, TransportKind};
use crate::shard::Shard;
use crate::sip::{self, make_header, MessageHeaders, Method, Request, Response};
use crate::transaction::{ClientEvent, ClientTransactionId, ServerTransactionId};

use dialplan::DialPlan;
use settings::CallSettings;

/// What a client transaction the call layer started is for.
#[derive(Debug)]
enum Pending {
    /// The initial INVITE of a UAC leg.
    Invite(LegId),
    /// A re-INVITE on `leg`.
    ReInvite {
        leg: LegId,
        purpose: ReInvite,
    },
    Bye(LegId),
    /// NOTIFY of a REFER's progress; `last` ends the subscription.
    Notify {
        leg: LegId,
        last: bool,
    },
}

#[derive(Debug)]
enum ReInvite {
    /// Relaying the other leg's re-INVITE: answer it when this one is answered.
    Relay {
        from: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: Box<Request>,
    },
    /// The switch holds (true) or retrieves (false) the leg.
    Hold(bool),
    /// RFC 4028 refresh.
    Refresh,
}

/// One endpoint worker's B2BUA: the parts below, each the only owner of its
/// state (module header; docs/architecture.md, "Inside the call layer").
#[derive(Debug)]
pub struct CallLayer {
    /// Profiles and peers; only the relay port pools change at run time.
    settings: CallSettings,
    dialplan: DialPlan,
    /// The legs' dialogs (RFC 3261 §12, RFC 3262), `crate::dialog`'s.
    dialogs: DialogTable,
    /// Calls, legs and how messages find them (`table`).
    table: table::LegTable,
    /// What each client transaction the layer started is for.
    pending: HashMap<(ProfileId, ClientTransactionId), Pending>,
    /// Ring timeouts, session timers (`timers`), by deadline.
    timers: wheel::TimerWheel<timers::Timer>,
    /// Events, media commands, calls to publish (`outbox`).
    outbox: outbox::Outbox,
    /// Wall clock at a known instant, for the summaries' timestamps.
    wall: Option<(Instant, SystemTime)>,
    /// Trunk peers: the shared table, what legs hold of their peers (a
    /// slot, servers and gateways not yet tried), pings (see `gateways`,
    /// `failover`, `pings`).
    peers: gateways::PeerRuntime,
    /// This layer's worker among the endpoint's: the call ids, SIP Call-IDs
    /// and media legs it makes are drawn so that they route back here.
    shard: Shard,
    /// Legs handed to or taken from other workers (`handover.rs`).
    handover: handover::Handover,
}

impl CallLayer {
    /// A call layer with a peer table of its own (tests, a single shard).
    pub fn new(settings: CallSettings, sessions: Sessions) -> Self {
        let peers = std::sync::Arc::new(PeerTable::new(&settings));
        Self::with_peers(settings, sessions, peers)
    }

    /// A call layer sharing `peers` (one table per process, across shards).
    pub fn with_peers(
        settings: CallSettings,
        sessions: Sessions,
        peers: std::sync::Arc<PeerTable>,
    ) -> Self {
        CallLayer {
            dialplan: DialPlan::new(&settings.dial_rules),
            dialogs: DialogTable::new(settings.dialog),
            settings,
            table: table::LegTable::default(),
            pending: HashMap::new(),
            timers: wheel::TimerWheel::default(),
            outbox: outbox::Outbox::new(sessions),
            wall: None,
            peers: gateways::PeerRuntime::new(peers),
            shard: Shard::default(),
            handover: Default::default(),
        }
    }

    /// Where a trunk peer's requests go, in order (the driver's RFC 3263
    /// resolution); an unknown peer is ignored.
    pub fn set_peer_targets(
        &mut self,
        profile: ProfileId,
        peer: usize,
        targets: Vec<std::net::SocketAddr>,
    ) {
        if let Some(p) = self
            .settings
            .profiles
            .get_mut(profile.0)
            .and_then(|p| p.peers.get_mut(peer))
        {
            p.targets = targets;
        }
    }

    /// Binds each profile's media ports when they are allocated (see
    /// `media::MediaPorts`): the driver asks for it, tests need not.
    pub fn bind_media_ports(&mut self) {
        for p in &mut self.settings.profiles {
            p.ports.bind_on(p.media_address);
        }
    }

    /// Makes this layer worker `shard.index` of several (before any input).
    pub fn set_shard(&mut self, shard: Shard) {
        // Each worker's media ports are its own share of every range.
        for p in &mut self.settings.profiles {
            p.ports = p.ports.clone().share(shard.index, shard.map.count());
        }
        self.shard = shard;
    }

    /// A fresh call id that routes to this worker.
    fn new_call_id(&self) -> CallId {
        self.shard.generate(|| CallId::generate().0).into()
    }

    /// A fresh SIP Call-ID for a leg we place, routed back to this worker.
    pub(super) fn new_sip_call_id(&self) -> String {
        self.shard
            .generate(|| format!("{:032x}@switchback", rand::random::<u128>()))
    }

    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.wall = Some((now, wall));
    }

    pub fn call_count(&self) -> usize {
        self.table.call_count()
    }

    /// Whether an INVITE server transaction belongs to a call (CANCEL routing).
    pub fn owns_invite(&self, profile: ProfileId, tx: ServerTransactionId) -> bool {
        self.table.leg_of_invite(profile, tx).is_some()
    }

    /// Whether a request within a dialog is one of ours.
    pub fn owns_request(&self, request: &Request) -> bool {
        self.leg_of_request(request).is_some()
    }

    /// Whether `request` is a BYE for a dialog whose BYE we sent a moment
    /// ago (its transaction still running): the endpoint answers it 200,
    /// the session being over on both sides (RFC 3261 §15.1.2).
    pub fn is_crossing_bye(&self, request: &Request) -> bool {
        let (Some(call_id), Some(tag)) = (request.call_id(), request.to_tag()) else {
            return false;
        };
        request.method == Method::Bye && self.table.is_closing(call_id, &tag)
    }

    /// A client transaction event for a request the call layer sent.
    pub fn handle_client_event(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        profile: ProfileId,
        id: ClientTransactionId,
        event: ClientEvent,
    ) {
        // OPTIONS pings to trunk peers are the `pings` module's.
        if self.ping_client_event(now, profile, id, &event) {
            return;
        }
        match event {
            ClientEvent::Provisional(r) => {
                self.feed_dialogs_response(now, &r);
                if let Some(Pending::Invite(leg)) = self.pending.get(&(profile, id)) {
                    let leg = *leg;
                    self.invite_provisional(now, out, leg, r);
                }
            }
            ClientEvent::Final(r) => {
                let dialog = self.feed_dialogs_response(now, &r);
                let code = r.status_code.code();
                let pending = self.pending.remove(&(profile, id));
                if let Some(p) = pending {
                    // An INVITE transaction passes every 2xx up (forks, RFC
                    // 6026): later ones of an initial INVITE are other forks.
                    if code < 300 {
                        if let Pending::Invite(leg) = &p {
                            self.pending.insert((profile, id), Pending::Invite(*leg));
                        }
                    } else if let Pending::Invite(leg) = &p {
                        self.table.uac_done(*leg);
                    }
                    self.client_final(now, out, p, r, dialog);
                }
            }
            // RFC 3261 §8.1.3.1: no answer in time is a 408, a transport
            // error is treated as a 503 (both send a trunk leg to the
            // peer's next server, RFC 3263 §4.3).
            ClientEvent::Timeout => {
                if let Some(p) = self.pending.remove(&(profile, id)) {
                    self.client_failed(now, out, p, 408);
                }
            }
            ClientEvent::TransportError => {
                if let Some(p) = self.pending.remove(&(profile, id)) {
                    self.client_failed(now, out, p, 503);
                }
            }
            ClientEvent::Terminated => {
                if let Some(Pending::Invite(leg)) = self.pending.remove(&(profile, id)) {
                    self.table.uac_done(leg);
                }
            }
        }
        self.drain_dialogs(now, out);
        self.publish_dirty();
    }

    /// A response that matched no transaction: a retransmitted 2xx to an
    /// INVITE (RFC 6026): the dialog re-sends its ACK.
    pub fn handle_stray_response(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        response: Response,
    ) {
        if (200..300).contains(&response.status_code.code())
            && response.cseq().is_some_and(|(_, m)| m == Method::Invite)
        {
            if let crate::dialog::ResponseOutcome::Dialog { id, created: true } =
                self.dialogs.handle_response(now, &response)
            {
                // A fork's 2xx arriving after its transaction ended: not wanted.
                self.stray_fork(now, out, id, &response);
            }
            self.drain_dialogs(now, out);
        }
    }

    /// A media event from the relay.
    pub fn handle_media_event(&mut self, now: Instant, out: &mut dyn SipOut, event: MediaEvent) {
        self.media_event(now, out, event);
        self.drain_dialogs(now, out);
        self.publish_dirty();
    }

    /// A command from the layer above.
    pub fn handle_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        command: CallCommand,
    ) -> Result<CallId, CommandError> {
        let r = self.command(now, out, command);
        self.drain_dialogs(now, out);
        self.publish_dirty();
        r
    }

    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.outbox.poll_event()
    }

    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.outbox.poll_media()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.next_deadline();
        let dialogs = self.dialogs.next_deadline();
        own.into_iter()
            .chain(dialogs)
            .chain(self.ping_deadline())
            .chain(self.forward_deadline())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut dyn SipOut) {
        if self.dialogs.next_deadline().is_some_and(|at| at <= now) {
            self.dialogs.handle_timeout(now);
        }
        self.fire_timers(now, out);
        self.fire_pings(now, out);
        self.expire_forwards(now);
        self.drain_dialogs(now, out);
        self.publish_dirty();
    }

    // ---- shared helpers ----

    fn wall_ms(&self, now: Instant) -> u64 {
        let wall = match self.wall {
            Some((at, wall)) if now >= at => wall + (now - at),
            Some((at, wall)) => wall - (at - now),
            None => SystemTime::now(),
        };
        wall.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// The codecs the profile of `leg` allows (none when the leg is gone:
    /// every offer is then refused as having no codec in common).
    fn leg_codecs(&self, leg: LegId) -> Vec<crate::sdp::Codec> {
        self.table
            .leg(leg)
            .and_then(|l| self.settings.profile(l.profile))
            .map(|p| p.codecs.clone())
            .unwrap_or_default()
    }

    /// A profile's name, for logs.
    fn profile_name(&self, profile: ProfileId) -> &str {
        self.settings
            .profile(profile)
            .map_or("", |p| p.name.as_str())
    }

    /// A trunk peer's name, for logs.
    fn peer_name(&self, peer: (ProfileId, usize)) -> &str {
        self.settings.peer(peer).map_or("", |p| p.name.as_str())
    }

    /// Gives a relay port of `profile` back to its pool.
    fn release_port(&mut self, profile: ProfileId, port: u16) {
        if let Some(p) = self.settings.profile_mut(profile) {
            p.ports.release(port);
        }
    }

    /// `host:port` for our Via on `profile` over `transport`.
    fn sent_by(&self, out: &dyn SipOut, profile: ProfileId, transport: TransportKind) -> String {
        out.local_address(profile, transport)
            .or_else(|| out.local_address(profile, TransportKind::Udp))
            .map(|a| a.to_string())
            .unwrap_or_else(|| "127.0.0.1:5060".into())
    }

    /// Our Contact on `profile`.
    fn contact(&self, out: &dyn SipOut, profile: ProfileId, transport: TransportKind) -> String {
        let host = self.sent_by(out, profile, transport);
        match transport {
            TransportKind::Udp => format!("<sip:switchback@{host}>"),
            t => format!(
                "<sip:switchback@{host};transport={}>",
                t.via_token().to_ascii_lowercase()
            ),
        }
    }

    /// Sends a request within `leg`'s dialog, remembering what it is for.
    #[allow(clippy::too_many_arguments)]
    fn send_in_dialog(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        method: Method,
        body: Option<crate::dialog::Body>,
        extra: Vec<(String, String)>,
        purpose: Pending,
    ) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return false;
        };
        let Some(dialog) = l.dialog.clone() else {
            return false;
        };
        let destination = l.destination;
        let via = self.sent_by(out, l.profile, destination.transport);
        let mut request = match self.dialogs.create_request(&dialog, method, &via, body) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(%leg, %method, error = %e, "request within the leg not sent");
                return false;
            }
        };
        for (name, value) in extra {
            request.headers.push(make_header(&name, value));
        }
        match out.send_request(now, request, destination) {
            Some(tx) => {
                self.pending.insert((destination.profile, tx), purpose);
                true
            }
            None => false,
        }
    }

    /// Feeds a response to the dialog table; the dialog it belongs to, if any.
    fn feed_dialogs_response(&mut self, now: Instant, r: &Response) -> Option<DialogId> {
        match self.dialogs.handle_response(now, r) {
            crate::dialog::ResponseOutcome::Dialog { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Sends what the dialog layer queued (2xx retransmissions, re-ACKs) and
    /// acts on its events.
    fn drain_dialogs(&mut self, now: Instant, out: &mut dyn SipOut) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.dialogs.poll_transmit() {
                progressed = true;
                let destination = t.destination.or_else(|| {
                    self.table
                        .leg_of_dialog(&t.dialog.call_id, &t.dialog.local_tag)
                        .and_then(|l| self.table.leg(l))
                        .map(|l| l.destination)
                });
                if let Some(d) = destination {
                    out.send_stateless(d, t.message);
                }
            }
            while let Some(e) = self.dialogs.poll_event() {
                progressed = true;
                self.dialog_event(now, out, e);
            }
            if !progressed {
                break;
            }
        }
    }

    fn dialog_event(&mut self, now: Instant, out: &mut dyn SipOut, e: DialogEvent) {
        match e {
            DialogEvent::AckTimeout { id, .. } => {
                // §13.3.1.4: no ACK for our 2xx: the session is not up; end it.
                if let Some(l) = self
                    .table
                    .leg_of_dialog(&id.call_id, &id.local_tag)
                    .and_then(|l| self.table.leg(l))
                {
                    let (call, role) = (l.call.clone(), l.role);
                    self.outbox.event(CallEvent::LegLost {
                        call: call.clone(),
                        leg: role,
                        reason: "no-ack",
                    });
                    self.end_call(now, out, &call, EndedBy::Switch, "no-ack", None);
                }
            }
            DialogEvent::GlareRetry(id) => {
                if let Some(leg) = self.table.leg_of_dialog(&id.call_id, &id.local_tag) {
                    self.retry_reinvite(now, out, leg);
                }
            }
            e @ (DialogEvent::Released { .. } | DialogEvent::PrackTimeout(_)) => {
                self.prack_dialog_event(now, out, e)
            }
            // A leg's index entry goes with the leg (`table`), not with one
            // of its dialogs: other forks' dialogs share the key.
            DialogEvent::Terminated { .. }
            | DialogEvent::Early(_)
            | DialogEvent::Confirmed(_)
            | DialogEvent::Acked { .. } => {}
        }
    }

    /// The leg that an in-dialog request addresses (its To tag is ours).
    fn leg_of_request(&self, request: &Request) -> Option<LegId> {
        self.table
            .leg_of_dialog(request.call_id()?, &request.to_tag()?)
    }

    /// A final answer to a request (not the dialog-creating INVITE), through
    /// its dialog so that tags and Contact are right.
    #[allow(clippy::too_many_arguments)]
    fn answer_in_dialog(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: &Request,
        response: Response,
    ) {
        let response = match self
            .table
            .leg(leg)
            .and_then(|l| Some((l, l.dialog.clone()?)))
        {
            Some((l, d)) => {
                let destination = request
                    .top_via()
                    .map(|v| l.destination_for_response(&v))
                    .unwrap_or(l.destination);
                self.dialogs
                    .prepare_response(now, &d, request, response, destination)
                    .unwrap_or_else(|| sip::response_to(request, 481, None))
            }
            None => response,
        };
        out.respond(now, profile, tx, response);
    }

    fn stray_fork(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        id: DialogId,
        response: &Response,
    ) {
        // ACK it, then BYE it: only one fork may win (§13.2.2.4).
        let Some(destination) = self
            .table
            .leg_of_dialog(&id.call_id, &id.local_tag)
            .and_then(|l| self.table.leg(l))
            .map(|l| l.destination)
        else {
            return;
        };
        tracing::debug!(
            status = response.status_code.code(),
            "extra fork answered: released"
        );
        self.release_dialog(now, out, id, destination);
    }

    /// ACKs a 2xx nobody wants and BYEs its dialog.
    fn release_dialog(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        id: DialogId,
        destination: Destination,
    ) {
        let via = self.sent_by(out, destination.profile, destination.transport);
        if let Ok(ack) = self.dialogs.create_ack(&id, &via, None) {
            out.send_stateless(destination, ack.into());
        }
        if let Ok(bye) = self.dialogs.create_request(&id, Method::Bye, &via, None) {
            let _ = out.send_request(now, bye, destination);
        }
    }
}

/// The body of a message as an SDP, if it has one.
fn sdp_body(message: &impl MessageHeaders, body: &[u8]) -> Option<Vec<u8>> {
    let is_sdp = message
        .header_value("Content-Type")
        .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"));
    (is_sdp && !body.is_empty()).then(|| body.to_vec())
}

/// Requests built by hand (out of dialog) get a fresh Via and Max-Forwards.
fn new_request(
    method: Method,
    uri: sip::Uri,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Request {
    let mut hs = sip::Headers::default();
    for (n, v) in headers {
        hs.push(make_header(&n, v));
    }
    let mut request = Request {
        method,
        uri,
        version: sip::Version::V2,
        headers: hs,
        body,
    };
    sip::set_content_length(&mut request);
    request
}

/// Puts an SDP body on a response.
fn with_sdp(mut response: Response, sdp: Option<&[u8]>) -> Response {
    if let Some(sdp) = sdp {
        response
            .headers
            .push(make_header("Content-Type", "application/sdp".into()));
        response.body = sdp.to_vec();
    }
    sip::set_content_length(&mut response);
    response
}
