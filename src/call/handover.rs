//! Attended transfer across endpoint workers: handing one leg, with its
//! dialog and timers, from the worker that owns it to another.
//!
//! Each worker's call layer owns the calls whose Call-IDs map to it
//! (`crate::shard`). A phone's two calls have Call-IDs the phone chose, so
//! the REFER with Replaces (RFC 3891) that joins them may reach a worker
//! that does not own the replaced dialog. That worker (the requester) finds
//! the owner through the session table, answers 202 and sends it
//! [`PeerCall::Detach`]; the owner takes the far party of the replaced
//! dialog out of its call, ends that call ("replaced", as a local attended
//! transfer does) and sends the leg back in [`PeerCall::Adopt`]; the
//! requester makes it its call's transfer target and completes the
//! transfer as if both calls had been its own. From then on the owner
//! forwards whatever arrives for the leg — SIP messages by Call-ID, media
//! events by leg — to the requester (the endpoint asks [`CallLayer::moved_to`]),
//! until the requester is done with it ([`PeerCall::Forget`]) and one
//! transaction lifetime has passed.
//!
//! Sans-IO like the rest of the call layer: what one worker says to another
//! leaves through [`CallLayer::poll_peer`] and the driver carries it.
//!
//! Owns the handover bookkeeping (`Handover`: forwards by Call-ID and by
//! media leg, adopted legs, messages for other workers). A leg leaves the
//! table whole (`LegTable::hand_over_leg`, with its dialog and timers) and
//! comes in indexed by its dialog only (`LegTable::adopt_leg`: its INVITE
//! transaction, if still open, belongs to the other worker).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dialog::Dialog;
use crate::media::{LegId, MediaEvent};
use crate::net::ProfileId;
use crate::session::DialogKey;

use super::command::{CallEvent, CallId, LegRole};
use super::leg::Leg;
use super::timers::Timer;
use super::transfer::{self, Transfer};
use super::{CallLayer, SipOut};

/// How long a forward outlives the leg: a transaction's lifetime (64 x T1
/// at the default T1), for the answers to its last requests.
const FORWARD_GRACE: Duration = Duration::from_secs(32);

/// What one worker's call layer asks of another's.
#[derive(Debug)]
pub enum PeerCall {
    /// A REFER with Replaces on worker `from`'s `call`, sent by `by` whose
    /// far party is `transferee`: hand over the far party of the replaced
    /// dialog (`replaces`: the header value, RFC 3891 §6.1).
    Detach {
        from: usize,
        call: CallId,
        by: LegId,
        transferee: LegId,
        replaces: String,
    },
    /// The far party of the replaced dialog, for `call` (see `Detach`).
    Adopt {
        call: CallId,
        by: LegId,
        transferee: LegId,
        leg: Box<MovedLeg>,
    },
    /// The replaced dialog was not found (any more): the REFER fails.
    DetachFailed { call: CallId, by: LegId },
    /// The adopter is done with a leg it was given: stop forwarding (after
    /// a grace period) and take its media port back.
    Forget {
        sip_call_id: String,
        leg: LegId,
        profile: ProfileId,
        port: u16,
    },
}

/// A leg in transit between workers.
#[derive(Debug)]
pub struct MovedLeg {
    leg: Box<Leg>,
    dialog: Option<Dialog>,
    timers: Vec<(Instant, Timer)>,
    /// The worker that gave it (and forwards its messages).
    origin: usize,
}

/// Where a handed-over leg's messages go now.
#[derive(Debug)]
pub(super) struct Forward {
    worker: usize,
    leg: LegId,
    /// Set once the adopter forgot the leg: forwarding stops then.
    until: Option<Instant>,
}

/// The handover bookkeeping of one call layer.
#[derive(Debug, Default)]
pub(super) struct Handover {
    /// Legs given away, by their SIP Call-ID.
    forwards: HashMap<String, Forward>,
    /// The same legs by media leg.
    forwarded_legs: HashMap<LegId, usize>,
    /// Legs adopted from another worker: leg -> that worker.
    adopted: HashMap<LegId, usize>,
    /// Messages for other workers.
    out: std::collections::VecDeque<(usize, PeerCall)>,
}

impl CallLayer {
    /// What this layer has for other workers: (worker, message).
    pub fn poll_peer(&mut self) -> Option<(usize, PeerCall)> {
        self.handover.out.pop_front()
    }

    /// Whether any leg was handed over (cheap: asked for every message).
    pub fn forwards_any(&self) -> bool {
        !self.handover.forwards.is_empty()
    }

    /// The worker a message with this Call-ID must go to, when this worker
    /// handed its leg over (`None`: it is this worker's).
    pub fn moved_to(&self, sip_call_id: &str) -> Option<usize> {
        if self.handover.forwards.is_empty() {
            return None;
        }
        self.handover.forwards.get(sip_call_id).map(|f| f.worker)
    }

    /// When the next forward whose leg was forgotten ends (`None`: none is
    /// ending), so that it ends on time and not at the next `Forget`.
    pub(super) fn forward_deadline(&self) -> Option<Instant> {
        if self.handover.forwards.is_empty() {
            return None;
        }
        self.handover
            .forwards
            .values()
            .filter_map(|f| f.until)
            .min()
    }

    /// Drops the forwards whose grace has passed.
    pub(super) fn expire_forwards(&mut self, now: Instant) {
        if !self.handover.forwards.is_empty() {
            self.handover
                .forwards
                .retain(|_, f| f.until.is_none_or(|t| t > now));
        }
    }

    /// The worker a media event must go to, when its leg was handed over.
    pub fn moved_media(&self, event: &MediaEvent) -> Option<usize> {
        if self.handover.forwarded_legs.is_empty() {
            return None;
        }
        let leg = match event {
            MediaEvent::Latched { leg, .. }
            | MediaEvent::Dtmf { leg, .. }
            | MediaEvent::DtmfSent { leg, .. }
            | MediaEvent::DtmfFailed { leg, .. }
            | MediaEvent::RtpTimeout { leg }
            | MediaEvent::OpenFailed { leg, .. } => leg,
            _ => return None,
        };
        self.handover.forwarded_legs.get(leg).copied()
    }

    /// A message from another worker's call layer.
    pub fn handle_peer(&mut self, now: Instant, out: &mut dyn SipOut, message: PeerCall) {
        match message {
            PeerCall::Detach {
                from,
                call,
                by,
                transferee,
                replaces,
            } => self.detach(now, out, from, call, by, transferee, &replaces),
            PeerCall::Adopt {
                call,
                by,
                transferee,
                leg,
            } => self.adopt(now, out, call, by, transferee, *leg),
            PeerCall::DetachFailed { call, by } => {
                if let Some(c) = self.table.call_mut(&call) {
                    c.transfer = None;
                }
                let role = self.table.leg(by).map(|l| l.role).unwrap_or(LegRole::A);
                self.notify_final(now, out, by, 481);
                self.outbox.event(CallEvent::TransferFailed {
                    call,
                    by: role,
                    status: 481,
                });
            }
            PeerCall::Forget {
                sip_call_id,
                leg,
                profile,
                port,
            } => {
                if let Some(f) = self.handover.forwards.get_mut(&sip_call_id) {
                    f.until = Some(now + FORWARD_GRACE);
                }
                self.handover.forwarded_legs.remove(&leg);
                self.release_port(profile, port);
                self.expire_forwards(now);
            }
        }
        self.drain_dialogs(now, out);
        self.publish_dirty();
    }

    /// The replaced dialog of a REFER is another worker's: ask it for the
    /// far party. `false`: no worker has it (the caller answers 481).
    pub(super) fn refer_across(
        &mut self,
        call: &CallId,
        by: LegId,
        transferee: LegId,
        replaces: &str,
    ) -> bool {
        let Some((call_id, to_tag, from_tag)) = transfer::replaces(replaces) else {
            return false;
        };
        let owner = [to_tag, from_tag].into_iter().find_map(|local_tag| {
            let key = DialogKey {
                call_id: call_id.clone(),
                local_tag,
            };
            self.outbox.call_of_dialog(&key)
        });
        let Some(owner) = owner.map(|id| self.shard.map.of_key(&id)) else {
            return false;
        };
        if owner == self.shard.index {
            return false;
        }
        if let Some(c) = self.table.call_mut(call) {
            c.transfer = Some(Transfer {
                by,
                transferee,
                target: String::new(),
                refer: true,
            });
        }
        self.handover.out.push_back((
            owner,
            PeerCall::Detach {
                from: self.shard.index,
                call: call.clone(),
                by,
                transferee,
                replaces: replaces.to_string(),
            },
        ));
        true
    }

    /// `Detach` at the owner of the replaced dialog.
    #[allow(clippy::too_many_arguments)]
    fn detach(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        from: usize,
        call: CallId,
        by: LegId,
        transferee: LegId,
        replaces: &str,
    ) {
        let found = self
            .replaced_partner(replaces)
            .and_then(|t| Some((t, self.table.leg(t)?.call.clone())));
        let Some((target, other_call)) = found else {
            self.handover
                .out
                .push_back((from, PeerCall::DetachFailed { call, by }));
            return;
        };
        self.take_out_of_call(target);
        let Some(leg) = self.export_leg(target, from) else {
            return;
        };
        self.handover.out.push_back((
            from,
            PeerCall::Adopt {
                call,
                by,
                transferee,
                leg: Box::new(leg),
            },
        ));
        self.outbox.mark(&other_call);
        self.end_call(
            now,
            out,
            &other_call,
            super::EndedBy::Switch,
            "replaced",
            None,
        );
    }

    /// Takes a leg out of this layer, without closing its media or its
    /// dialog, and forwards what arrives for it to `to`.
    fn export_leg(&mut self, leg: LegId, to: usize) -> Option<MovedLeg> {
        let mut l = self.table.hand_over_leg(leg)?;
        self.outbox.forget_dialog(&l.sip_call_id, &l.local_tag);
        let dialog = l.dialog.as_ref().and_then(|d| self.dialogs.remove(d));
        let timers = std::mem::take(&mut l.timers)
            .into_iter()
            .filter_map(|k| self.timers.cancel(&k).map(|t| (k.0, t)))
            .collect();
        // A leg this worker had adopted itself goes on to its new owner.
        let origin = self.handover.adopted.remove(&leg);
        self.handover.forwards.insert(
            l.sip_call_id.clone(),
            Forward {
                worker: to,
                leg,
                until: None,
            },
        );
        self.handover.forwarded_legs.insert(leg, to);
        Some(MovedLeg {
            leg: l,
            dialog,
            timers,
            origin: origin.unwrap_or(self.shard.index),
        })
    }

    /// `Adopt` at the worker that took the REFER.
    fn adopt(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        by: LegId,
        transferee: LegId,
        moved: MovedLeg,
    ) {
        let MovedLeg {
            mut leg,
            dialog,
            timers,
            origin,
        } = moved;
        let id = leg.id;
        leg.call = call.clone();
        leg.role = LegRole::C;
        if let Some(d) = dialog {
            self.dialogs.insert(d);
        }
        if origin != self.shard.index {
            self.handover.adopted.insert(id, origin);
        }
        // The worker that gave it forwards to us; one we gave it to earlier
        // may give it back: then it is ours again.
        if let Some(f) = self.handover.forwards.remove(&leg.sip_call_id) {
            self.handover.forwarded_legs.remove(&f.leg);
        }
        self.table.adopt_leg(leg);
        for (at, t) in timers {
            self.schedule(at, t);
        }
        let ready = self.table.call(&call).is_some_and(|c| !c.ended)
            && self.table.has_leg(by)
            && self.table.has_leg(transferee);
        if let Some(c) = self.table.call_mut(&call) {
            c.transfer = None;
        }
        if !ready {
            // The transferor's call went meanwhile: nobody to join.
            self.hang_up_leg(now, out, id);
            return;
        }
        self.join_as_target(now, out, &call, by, transferee, id);
    }

    /// A leg leaves this layer for good: the worker it came from stops
    /// forwarding and takes its port back.
    pub(super) fn forget_adopted(&mut self, l: &Leg) {
        if let Some(origin) = self.handover.adopted.remove(&l.id) {
            self.handover.out.push_back((
                origin,
                PeerCall::Forget {
                    sip_call_id: l.sip_call_id.clone(),
                    leg: l.id,
                    profile: l.profile,
                    port: l.media.local.port(),
                },
            ));
        }
    }
}
