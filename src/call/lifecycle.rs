//! Ending legs and calls: every leg goes down the way its state requires
//! (BYE when answered, CANCEL when still ringing, a final response to a
//! caller not yet answered), media is closed and ports returned, and the call
//! reports who ended it exactly once (RFC 3261 §15 BYE, §9.1 CANCEL, §13.3.1
//! the caller's final response).
//!
//! Owns no state of its own; it is the one place where a leg is forgotten
//! (`drop_leg`: out of the table with its index entries, `LegTable::forget_leg`,
//! then its timers, its peer slot, its relay port, its media and its dialog
//! key in the session table) and where a call is removed (`end_call`). No
//! other file removes a leg or a call from the table (`handover` hands a leg
//! over whole instead).

use std::time::Instant;

use crate::media::{LegId, MediaCommand};
use crate::sip::{self, Method};

use super::command::{CallEvent, CallId, EndedBy};
use super::leg::Side;
use super::outbound::MEDIA_PORTS_EXHAUSTED;
use super::{CallLayer, Pending, SipOut};

impl CallLayer {
    /// Ends every leg of `call` and reports it ended by `by`.
    pub(super) fn end_call(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        by: EndedBy,
        cause: &str,
        status: Option<u16>,
    ) {
        if self.table.call(call).is_none_or(|c| c.ended) {
            return;
        }
        // A callee's 2xx still waiting for our ACK gets it before its BYE.
        self.settle_late_offer(out, call);
        let Some(c) = self.table.call_mut(call) else {
            return;
        };
        c.ended = true;
        let legs: Vec<LegId> = c.legs().collect();
        let recording = c.recording.take();
        let cancelled = c.cancelled;
        // The caller learns why from the reason phrase too.
        let reason = (cause == MEDIA_PORTS_EXHAUSTED).then_some("No Media Ports");
        for leg in legs {
            self.release_leg(now, out, leg, status, reason, cancelled);
        }
        if recording.is_some() {
            self.outbox.media(MediaCommand::StopRecording {
                call: call.0.clone(),
            });
        }
        self.table.remove_call(call);
        self.outbox.mark(call);
        self.outbox.event(CallEvent::Ended {
            call: call.clone(),
            by,
            cause: cause.to_string(),
            status,
        });
    }

    /// Takes one leg down according to where it stands.
    fn release_leg(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        status: Option<u16>,
        reason: Option<&str>,
        cancelled: bool,
    ) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        if l.ending {
            // Already going: a BYE came in or went out, or a CANCEL is in flight.
            if !matches!(l.side, Side::Uac { .. }) || l.is_answered() {
                self.drop_leg(leg);
            }
            return;
        }
        match &l.side {
            Side::Uas {
                invite,
                answered: false,
                ..
            } => {
                let invite = invite.clone();
                let (code, reason) = if cancelled {
                    (487, None)
                } else {
                    match status.filter(|s| *s >= 300) {
                        Some(s) => (s, reason),
                        None => (480, None),
                    }
                };
                let r = sip::response_to(&invite, code, reason);
                self.respond_uas(now, out, leg, r);
                self.drop_leg(leg);
            }
            Side::Uac { .. } if !l.is_answered() => {
                self.cancel_leg(now, out, leg);
            }
            _ => self.hang_up_leg(now, out, leg),
        }
    }

    /// BYE one leg without ending its call.
    pub(super) fn hang_up_leg(&mut self, now: Instant, out: &mut dyn SipOut, leg: LegId) {
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        if !l.ending {
            l.ending = true;
            let (call_id, tag) = (l.sip_call_id.clone(), l.local_tag.clone());
            if self.send_in_dialog(
                now,
                out,
                leg,
                Method::Bye,
                None,
                Vec::new(),
                Pending::Bye(leg),
            ) {
                self.table.closing(&call_id, &tag, leg);
            }
        }
        self.drop_leg(leg);
    }

    /// Forgets a leg: out of the table and its call (`LegTable::forget_leg`),
    /// media closed, port returned, timers and peer slot dropped.
    pub(super) fn drop_leg(&mut self, leg: LegId) {
        let Some(l) = self.table.forget_leg(leg) else {
            return;
        };
        // Its trunk peer's call slot goes back (gateways.rs).
        self.peers.forget_leg(leg);
        self.forget_adopted(&l);
        self.outbox.media(MediaCommand::Close { leg });
        self.release_port(l.profile, l.media.local.port());
        self.outbox.forget_dialog(&l.sip_call_id, &l.local_tag);
        for key in &l.timers {
            self.timers.cancel(key);
        }
        self.outbox.mark(&l.call);
    }

    /// A leg went silent (RTP timeout, failed session refresh, no ACK): the
    /// call cannot go on half up.
    pub(super) fn leg_lost(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        reason: &'static str,
    ) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let (call, role) = (l.call.clone(), l.role);
        self.outbox.event(CallEvent::LegLost {
            call: call.clone(),
            leg: role,
            reason,
        });
        self.end_call(now, out, &call, EndedBy::Switch, reason, None);
    }
}
