//! Call transfer by REFER (RFC 3515) from a leg of a bridged call, or by
//! the switch on command.
//!
//! Blind: `Refer-To: <sip:1003@...>`: the switch answers 202, NOTIFYs
//! `100 Trying`, places the target as a new leg and, when it answers,
//! re-points the relay so that the far party (the transferee) talks to it
//! (the transferee keeps its relay endpoint: no re-INVITE), NOTIFYs
//! `200 OK` and hangs up the transferor. A target that fails is NOTIFYed and
//! the call stays as it was. `CallCommand::Transfer` does the same for a leg
//! the layer above names, without the REFER's NOTIFYs; it takes one transfer
//! target per call (a call whose leg `c` exists is not transferred again).
//! Attended: `Refer-To: <...?Replaces=...>` (RFC 3891) names the
//! transferor's other call through the switch; the two far parties are
//! bridged at once and both transferor legs hung up. Either way the call
//! keeps its id and reports `Transferred`, which the web-callback layer uses
//! to park the parent interaction.
//!
//! Owns the transfer in progress (`Transfer`, kept on its call) and the
//! parsing of Refer-To and Replaces (a peer's bytes: nothing here may
//! panic on them). A replaced dialog of another worker is `handover`'s
//! business; legs move between calls here only by their `call` and role
//! fields and the calls' `b`, `c` and `bridged` (never the table's indexes).

use std::time::Instant;

use crate::dialog::Body;
use crate::media::{LegId, MediaCommand};
use crate::net::ProfileId;
use crate::sip::{self, MessageHeaders, Method, Request};
use crate::transaction::ServerTransactionId;

use super::command::{CallEvent, CallId, CommandError, EndedBy, LegRole};
use super::negotiate::{self, Forward};
use super::outbound::{Caller, Target};
use super::{CallLayer, Pending, SipOut};

#[derive(Debug, Clone)]
pub struct Transfer {
    /// The leg that sent REFER (or that the command named): it goes.
    pub by: LegId,
    /// The far party, who stays.
    pub transferee: LegId,
    pub target: String,
    /// Asked by REFER: `by` is told the outcome by NOTIFY.
    pub refer: bool,
}

/// The parts of a Refer-To value: the target URI text and a Replaces value.
fn refer_to(value: &str) -> Option<(String, Option<String>)> {
    let uri = sip::split_name_addr(value)
        .map(|(u, _)| u)
        .unwrap_or(value)
        .trim();
    let (uri, headers) = match uri.split_once('?') {
        Some((u, h)) => (u, Some(h)),
        None => (uri, None),
    };
    let replaces = headers.and_then(|h| {
        h.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            k.eq_ignore_ascii_case("Replaces")
                .then(|| percent_decode(v))
        })
    });
    Some((uri.to_string(), replaces))
}

/// `%XX` escapes decoded; anything else (a `%` without two hex digits
/// after it, bytes that are not UTF-8) is kept as it is, never a panic.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = (b == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `callid;to-tag=x;from-tag=y` (RFC 3891 §6.1).
pub(super) fn replaces(value: &str) -> Option<(String, String, String)> {
    let mut parts = value.split(';');
    let call_id = parts.next()?.trim().to_string();
    let (mut to, mut from) = (None, None);
    for p in parts {
        let (k, v) = p.split_once('=')?;
        match k.trim().to_ascii_lowercase().as_str() {
            "to-tag" => to = Some(v.trim().to_string()),
            "from-tag" => from = Some(v.trim().to_string()),
            _ => {}
        }
    }
    Some((call_id, to?, from?))
}

impl CallLayer {
    pub(super) fn refer_received(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        profile: ProfileId,
        tx: ServerTransactionId,
        request: Request,
    ) {
        let refuse = |this: &mut Self, out: &mut dyn SipOut, code: u16, reason: &str| {
            let r = sip::response_to(&request, code, Some(reason));
            this.answer_in_dialog(now, out, leg, profile, tx, &request, r);
        };
        let Some((uri, replace)) = request.header_value("Refer-To").and_then(refer_to) else {
            return refuse(self, out, 400, "Missing Refer-To");
        };
        let Some((call, entered, by_role)) = self
            .table
            .leg(leg)
            .map(|l| (l.call.clone(), l.profile, l.role))
        else {
            return refuse(self, out, 481, "Call Leg Does Not Exist");
        };
        // One transfer at a time; a consultation's leg `c` is taken too.
        if self
            .table
            .call(&call)
            .is_some_and(|c| c.transfer.is_some() || c.consult.is_some())
        {
            return refuse(self, out, 491, "Transfer In Progress");
        }
        let Some(transferee) = self
            .table
            .partner(leg)
            .filter(|p| self.table.leg(*p).is_some_and(|l| l.is_answered()))
        else {
            return refuse(self, out, 403, "No Answered Call To Transfer");
        };
        let accepted = sip::response_to(&request, 202, None);
        match replace {
            Some(rep) => {
                let Some(target) = self.replaced_partner(&rep) else {
                    // Another worker's dialog (`handover.rs`): it hands the
                    // far party over, and the transfer completes then.
                    if self.refer_across(&call, leg, transferee, &rep) {
                        self.answer_in_dialog(now, out, leg, profile, tx, &request, accepted);
                        return;
                    }
                    return refuse(self, out, 481, "Replaced Call Does Not Exist");
                };
                self.answer_in_dialog(now, out, leg, profile, tx, &request, accepted);
                self.attended(now, out, &call, leg, transferee, target);
            }
            None => {
                let number = crate::sip::user_part(&uri).unwrap_or_default();
                let targets = self
                    .dialplan
                    .route(&number, Some(entered))
                    .ok_or(404u16)
                    .and_then(|r| self.targets(now, out, &r))
                    // Bindings whose contacts all fail to parse leave no
                    // target: unavailable, as with no bindings at all.
                    .and_then(|t| t.into_iter().next().ok_or(480u16));
                self.answer_in_dialog(now, out, leg, profile, tx, &request, accepted);
                self.notify(now, out, leg, "SIP/2.0 100 Trying", false);
                let target = match targets {
                    Ok(t) => t,
                    Err(code) => {
                        self.notify_final(now, out, leg, code);
                        self.outbox.event(CallEvent::TransferFailed {
                            call,
                            by: by_role,
                            status: code,
                        });
                        return;
                    }
                };
                let transfer = Transfer {
                    by: leg,
                    transferee,
                    target: number,
                    refer: true,
                };
                self.start_blind(now, out, &call, transfer, target);
            }
        }
    }

    /// `CallCommand::Transfer`: the switch takes `role`'s far party to `to`.
    pub(super) fn transfer_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        role: LegRole,
        to: String,
    ) -> Result<CallId, CommandError> {
        super::controls::check_party("to", &to)?;
        let by = self.answered_leg(&call, role)?;
        let c = self
            .table
            .call(&call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        if c.transfer.is_some() {
            return Err(CommandError::Busy(format!(
                "call {call} is being transferred"
            )));
        }
        if c.c.is_some() {
            return Err(CommandError::Invalid {
                field: "leg",
                message: format!("call {call} has a transfer target already (leg c)"),
            });
        }
        let transferee = self.answered_partner(&call, by, role)?;
        let target = self.first_target(now, &*out, &to)?;
        let transfer = Transfer {
            by,
            transferee,
            target: to,
            refer: false,
        };
        self.start_blind(now, out, &call, transfer, target);
        Ok(call)
    }

    /// Places a blind transfer's target as leg `c`, offered only the codec
    /// the transferee uses (its relay endpoint stays as it is).
    /// The far party of `leg` (role `role` of `call`), answered and not
    /// ending: who a transfer or a consultation acts on.
    pub(super) fn answered_partner(
        &self,
        call: &CallId,
        leg: LegId,
        role: LegRole,
    ) -> Result<LegId, CommandError> {
        self.table
            .partner(leg)
            .filter(|p| {
                self.table
                    .leg(*p)
                    .is_some_and(|l| l.is_answered() && !l.ending)
            })
            .ok_or_else(|| CommandError::Invalid {
                field: "leg",
                message: format!("leg {role} of call {call} has no answered far party"),
            })
    }

    /// Where a new leg to `to` goes on command (a transfer target, a
    /// consulted party, a supervisor): the dial plan's route, its first
    /// target; 480 from the route (no phone registered) is `Busy`.
    pub(super) fn first_target(
        &self,
        now: Instant,
        out: &dyn SipOut,
        to: &str,
    ) -> Result<Target, CommandError> {
        let route = self
            .dialplan
            .route(to, None)
            .ok_or_else(|| CommandError::NoRoute(to.to_string()))?;
        self.targets(now, out, &route)
            .map_err(|code| match code {
                480 => CommandError::Busy(format!("{to} is not registered")),
                _ => CommandError::NoRoute(to.to_string()),
            })?
            .into_iter()
            .next()
            .ok_or_else(|| CommandError::NoRoute(to.to_string()))
    }

    fn start_blind(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        transfer: Transfer,
        target: Target,
    ) {
        let transferee = transfer.transferee;
        if let Some(c) = self.table.call_mut(call) {
            c.transfer = Some(transfer);
        }
        let Some((formats, user)) = self
            .table
            .leg(transferee)
            .map(|l| (negotiate::follow(&l.media.formats), l.target.clone()))
        else {
            return self.transfer_target_failed(now, out, call, 503);
        };
        let forward = Forward {
            formats,
            direction: crate::sdp::Direction::SendRecv,
            ptime: None,
        };
        let caller = Caller {
            user,
            display: None,
        };
        if self
            .place_leg(
                now,
                out,
                call,
                LegRole::C,
                target,
                Some(&forward),
                &caller,
                &[],
                false,
            )
            .is_err()
        {
            self.transfer_target_failed(now, out, call, 503);
        }
    }

    /// The partner leg (in its own call) of the dialog a Replaces names.
    pub(super) fn replaced_partner(&self, value: &str) -> Option<LegId> {
        let (call_id, to_tag, from_tag) = replaces(value)?;
        // The transferor's view: our tag is its to-tag when it called us, its
        // from-tag when we called it.
        let leg = [to_tag, from_tag]
            .into_iter()
            .find_map(|tag| self.table.leg_of_dialog(&call_id, &tag))?;
        self.table
            .partner(leg)
            .filter(|p| self.table.leg(*p).is_some_and(|l| l.is_answered()))
    }

    fn attended(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        by: LegId,
        transferee: LegId,
        target: LegId,
    ) {
        let Some(other_call) = self.table.leg(target).map(|l| l.call.clone()) else {
            return;
        };
        self.take_out_of_call(target);
        self.join_as_target(now, out, call, by, transferee, target);
        self.outbox.mark(&other_call);
        self.end_call(now, out, &other_call, EndedBy::Switch, "replaced", None);
    }

    /// Takes an attended transfer's target leg out of its own call.
    pub(super) fn take_out_of_call(&mut self, target: LegId) {
        let Some(other_call) = self.table.leg(target).map(|l| l.call.clone()) else {
            return;
        };
        let transferor2 = self.table.partner(target);
        if let Some(oc) = self.table.call_mut(&other_call) {
            oc.b.retain(|&l| l != target);
            if oc.c == Some(target) {
                oc.c = None;
            }
            oc.bridged = None;
            if oc.a == target {
                // Keep the other call's `a` pointing at a leg it still owns.
                oc.a = transferor2.unwrap_or(LegId(0));
            }
        }
    }

    /// Makes `target` (out of its own call) `call`'s C leg bridged to
    /// `transferee`, and completes the attended transfer `by` asked for: its
    /// NOTIFY, the event, and `by` hung up.
    pub(super) fn join_as_target(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        by: LegId,
        transferee: LegId,
        target: LegId,
    ) {
        let Some(by_role) = self.table.leg(by).map(|l| l.role) else {
            return;
        };
        let Some(t) = self.table.leg_mut(target) else {
            return;
        };
        let label = t.target.clone();
        t.call = call.clone();
        t.role = LegRole::C;
        if let Some(c) = self.table.call_mut(call) {
            c.c = Some(target);
        }
        self.outbox.media(MediaCommand::Bridge {
            a: transferee,
            b: target,
        });
        if let Some(c) = self.table.call_mut(call) {
            c.bridged = Some((transferee, target));
        }
        self.outbox.mark(call);
        self.lift_relayed_hold(now, out, transferee);
        self.lift_relayed_hold(now, out, target);
        self.notify_final(now, out, by, 200);
        self.outbox.event(CallEvent::Transferred {
            call: call.clone(),
            by: by_role,
            to: label,
            attended: true,
        });
        // Both of the transferor's legs go (the other with its call).
        self.hang_up_leg(now, out, by);
    }

    /// The transfer target answered: re-bridge the transferee to it.
    pub(super) fn transfer_target_answered(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        target: LegId,
    ) {
        let Some(t) = self.table.call_mut(call).and_then(|c| c.transfer.take()) else {
            return;
        };
        self.outbox.media(MediaCommand::Bridge {
            a: t.transferee,
            b: target,
        });
        if let Some(c) = self.table.call_mut(call) {
            c.bridged = Some((t.transferee, target));
        }
        self.outbox.mark(call);
        self.lift_relayed_hold(now, out, t.transferee);
        let by_role = self.table.leg(t.by).map(|l| l.role).unwrap_or(LegRole::A);
        if t.refer {
            self.notify_final(now, out, t.by, 200);
        }
        self.outbox.event(CallEvent::Transferred {
            call: call.clone(),
            by: by_role,
            to: t.target,
            attended: false,
        });
        self.hang_up_leg(now, out, t.by);
    }

    pub(super) fn transfer_target_failed(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        code: u16,
    ) {
        let Some(t) = self.table.call_mut(call).and_then(|c| c.transfer.take()) else {
            return;
        };
        let by_role = self.table.leg(t.by).map(|l| l.role).unwrap_or(LegRole::A);
        if t.refer {
            self.notify_final(now, out, t.by, code);
        }
        self.outbox.event(CallEvent::TransferFailed {
            call: call.clone(),
            by: by_role,
            status: code,
        });
        if self.table.has_leg(t.by) {
            // Back to the call as it was (early media may have moved the bridge).
            self.outbox.media(MediaCommand::Bridge {
                a: t.by,
                b: t.transferee,
            });
        } else {
            // The transferor already left: nobody is left for the transferee.
            self.end_call(
                now,
                out,
                call,
                EndedBy::Switch,
                "transfer-failed",
                Some(code),
            );
        }
    }

    /// Whether `leg` hanging up leaves the rest of the call up: it sent a
    /// REFER still being carried out, or it is no longer in the bridge.
    pub(super) fn transferor_leaves(&mut self, call: &CallId, leg: LegId) -> bool {
        let Some(c) = self.table.call(call) else {
            return false;
        };
        let pending = c.transfer.as_ref().is_some_and(|t| t.by == leg);
        let outside = c.bridged.is_some_and(|(x, y)| {
            x != leg && y != leg && self.table.has_leg(x) && self.table.has_leg(y)
        });
        if pending || outside {
            self.drop_leg(leg);
            return true;
        }
        false
    }

    /// Takes a leg a transfer has just re-bridged off the hold its departing
    /// partner put it on. A phone's hold is relayed to the far party (our
    /// SDP to it says sendonly or inactive, so it stops sending); the
    /// transferor usually holds before it transfers, and once it has left
    /// nobody would ever retrieve, so the transferee would stay silent. A
    /// re-INVITE offering sendrecv resumes it (RFC 3264 §8.4). A switch hold
    /// stays; a party holding by itself stays held by its own offers.
    pub(super) fn lift_relayed_hold(&mut self, now: Instant, out: &mut dyn SipOut, leg: LegId) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        if !l.is_answered() || l.ending || l.held_by_switch {
            return;
        }
        let held = l
            .media
            .last_sent
            .as_deref()
            .and_then(|b| crate::sdp::parse(b).ok())
            .and_then(|s| s.audio())
            .is_some_and(|a| a.is_hold());
        if !held {
            return;
        }
        if !self.send_hold_reinvite(now, out, leg, false) {
            // An INVITE is in progress on the leg: the catch-up after it
            // (`reinvite_final`: switch hold differs from what was offered)
            // sends the retrieve, since what we last offered was a hold.
            if let Some(l) = self.table.leg_mut(leg) {
                l.hold_offered = true;
            }
        }
    }

    /// The leg staying in a transfer.
    pub(super) fn transferee(&self, call: &CallId) -> Option<LegId> {
        self.table
            .call(call)?
            .transfer
            .as_ref()
            .map(|t| t.transferee)
    }

    pub(super) fn notify_final(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        code: u16,
    ) {
        let reason = crate::sip::StatusCode::from(code).to_string();
        let line = format!("SIP/2.0 {reason}");
        self.notify(now, out, leg, &line, true);
    }

    /// NOTIFY of the implicit refer subscription with a sipfrag status line.
    fn notify(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        status_line: &str,
        last: bool,
    ) {
        if self.table.leg(leg).is_none_or(|l| l.ending) {
            return;
        }
        let state = if last {
            "terminated;reason=noresource".to_string()
        } else {
            "active;expires=60".to_string()
        };
        let body = Body {
            content_type: "message/sipfrag;version=2.0".into(),
            bytes: format!("{status_line}\r\n").into_bytes(),
        };
        self.send_in_dialog(
            now,
            out,
            leg,
            Method::Notify,
            Some(body),
            vec![
                ("Event".into(), "refer".into()),
                ("Subscription-State".into(), state),
            ],
            Pending::Notify { leg, last },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refer_to_with_and_without_replaces() {
        assert_eq!(
            refer_to("<sip:1003@127.0.0.1>"),
            Some(("sip:1003@127.0.0.1".into(), None))
        );
        let (uri, rep) =
            refer_to("<sip:1003@h?Replaces=abc%40h%3Bto-tag%3D11%3Bfrom-tag%3D22>").unwrap();
        assert_eq!(uri, "sip:1003@h");
        assert_eq!(rep.as_deref(), Some("abc@h;to-tag=11;from-tag=22"));
        assert_eq!(
            replaces("abc@h;to-tag=11;from-tag=22"),
            Some(("abc@h".into(), "11".into(), "22".into()))
        );
        assert_eq!(replaces("abc@h;to-tag=11"), None);
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("a%2"), "a%2");
        // A `%` before a character of two bytes: kept, not a panic on a
        // slice that would split the character.
        assert_eq!(percent_decode("%4é"), "%4é");
        assert_eq!(percent_decode("%é"), "%é");
        assert_eq!(percent_decode("%41%42"), "AB");
    }
}
