//! Consultation, attended transfer by command, conference and volume: the
//! desktop actions on a bridged call (issue 14).
//!
//! `Consult` holds the agent's far party (the contact) in the relay and
//! places a new leg `c` to the consulted party, routed by the dial plan like
//! a blind transfer's target (`transfer`) and offered the contact's codec
//! (a completed transfer bridges contact and consulted party packet for
//! packet). From there the agent can alternate between the two, cancel the
//! consultation (contact retrieved), complete the transfer (contact <->
//! consulted, agent hung up: `Transferred { attended: true }`), or join all
//! three in a conference room of the relay (`MediaCommand::Mix`), from which
//! a party can be removed or the agent leave. The consultation's failure
//! (busy, no answer, hung up) never touches the contact's leg: the agent
//! talks to the contact again.
//!
//! Owns the consultation in progress (`Consult`, kept on its call next to a
//! blind transfer's `Transfer`); the consultation leg is the call's leg `c`,
//! so a call has either a transfer target or a consultation, never both.
//! The holds here are the relay's alone (`SetHold`, no re-INVITE): the
//! contact's phone need not know, and a hold the desktop asked for
//! (`held_by_switch`) is never lifted by a consultation. A call with a
//! volume set stays in a room (`mixed`) whatever pair talks, since gains
//! apply only there (`MediaCommand::SetGain`). Sans-IO like the rest of the
//! layer.

use std::time::Instant;

use crate::media::{Direction, DtmfRoute, LegId, MediaCommand, Role};
use crate::sdp;

use super::command::{
    CallEvent, CallId, CommandError, EndedBy, Failure, LegRole, Others, Party, Progress, Way,
};
use super::controls::check_party;
use super::leg::Side;
use super::negotiate::{self, Forward};
use super::outbound::Caller;
use super::{CallLayer, SipOut};

/// Who talks to the agent during a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Talking {
    /// The consulted party (the contact is held).
    Consulted,
    /// The contact (the consulted party is held).
    Contact,
    /// Everyone: a conference room.
    All,
}

#[derive(Debug, Clone)]
pub struct Consult {
    /// The leg that asked: it stays until the transfer completes.
    pub agent: LegId,
    /// The agent's role in the call (for `Transferred` once it is gone).
    pub by: LegRole,
    /// The agent's far party when the consultation started.
    pub contact: LegId,
    /// The consultation leg (the call's leg `c`).
    pub leg: LegId,
    /// Who is consulted, as asked (for events).
    pub to: String,
    pub answered: bool,
    pub talking: Talking,
}

impl Consult {
    /// The state's name in errors and the API.
    pub fn state(&self) -> &'static str {
        match (self.answered, self.talking) {
            (false, _) => "consult-ringing",
            (true, Talking::All) => "conferenced",
            (true, _) => "consulting",
        }
    }
}

impl CallLayer {
    /// `CallCommand::Consult`.
    pub(super) fn consult_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        role: LegRole,
        to: String,
    ) -> Result<CallId, CommandError> {
        check_party("to", &to)?;
        let agent = self.answered_leg(&call, role)?;
        let c = self
            .table
            .call(&call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        if let Some(k) = &c.consult {
            return Err(CommandError::WrongState {
                call: call.clone(),
                state: k.state(),
                why: "a consultation is up already",
            });
        }
        if c.transfer.is_some() {
            return Err(wrong(&call, "transferring", "a transfer is in progress"));
        }
        if c.c.is_some() {
            return Err(wrong(
                &call,
                "transferred",
                "the call has a transfer target (leg c) already",
            ));
        }
        let contact = self.answered_partner(&call, agent, role)?;
        let target = self.first_target(now, &*out, &to)?;
        let Some((formats, user)) = self.table.leg(contact).map(|l| {
            (
                negotiate::follow(&l.media.formats),
                self.table
                    .leg(agent)
                    .map(|a| a.target.clone())
                    .unwrap_or_else(|| l.target.clone()),
            )
        }) else {
            return Err(CommandError::NoLeg(call, LegRole::B));
        };
        self.outbox.media(MediaCommand::SetHold {
            leg: contact,
            held: true,
        });
        self.outbox.event(CallEvent::ConsultStarted {
            call: call.clone(),
            by: role,
            to: to.clone(),
        });
        let forward = Forward {
            formats,
            direction: sdp::Direction::SendRecv,
            ptime: None,
        };
        let caller = Caller {
            user,
            display: None,
        };
        match self.place_leg(
            now,
            out,
            &call,
            LegRole::C,
            target,
            Some(&forward),
            &caller,
            &[],
            false,
        ) {
            Ok(leg) => {
                if let Some(c) = self.table.call_mut(&call) {
                    c.consult = Some(Consult {
                        agent,
                        by: role,
                        contact,
                        leg,
                        to,
                        answered: false,
                        talking: Talking::Consulted,
                    });
                }
                self.outbox.mark(&call);
            }
            Err(e) => {
                tracing::warn!(%call, error = %e, "consultation leg not placed");
                self.rejoin(&call, agent, contact);
                self.outbox.event(CallEvent::ConsultFailed {
                    call: call.clone(),
                    status: 503,
                    failure: Failure::Unavailable,
                });
            }
        }
        Ok(call)
    }

    /// The consultation of `call` whose leg is `leg`, if any.
    pub(super) fn consult_of(&self, call: &CallId, leg: LegId) -> Option<&Consult> {
        self.table
            .call(call)?
            .consult
            .as_ref()
            .filter(|k| k.leg == leg)
    }

    /// The agent of `call`'s consultation: it hears the consulted party's
    /// ringback (early media).
    pub(super) fn consult_agent(&self, call: &CallId) -> Option<LegId> {
        self.table.call(call)?.consult.as_ref().map(|k| k.agent)
    }

    /// The consultation leg rings (or sends early media).
    pub(super) fn consult_progress(&mut self, call: &CallId, leg: LegId, progress: Progress) {
        if self.consult_of(call, leg).is_some() {
            self.outbox.event(CallEvent::ConsultProgress {
                call: call.clone(),
                progress,
            });
        }
    }

    /// The consulted party answered: the agent talks to it, the contact
    /// stays held.
    pub(super) fn consult_answered(&mut self, call: &CallId, leg: LegId) {
        let Some(k) = self
            .table
            .call_mut(call)
            .and_then(|c| c.consult.as_mut())
            .filter(|k| k.leg == leg)
        else {
            return;
        };
        k.answered = true;
        k.talking = Talking::Consulted;
        let agent = k.agent;
        self.pair(call, agent, leg);
        self.outbox.event(CallEvent::ConsultProgress {
            call: call.clone(),
            progress: Progress::Answered,
        });
    }

    /// The consultation leg failed before answering: back to the contact.
    pub(super) fn consult_failed(&mut self, call: &CallId, code: u16) {
        let Some(k) = self.table.call_mut(call).and_then(|c| c.consult.take()) else {
            return;
        };
        self.rejoin(call, k.agent, k.contact);
        self.outbox.event(CallEvent::ConsultFailed {
            call: call.clone(),
            status: code,
            failure: Failure::from_status(code),
        });
    }

    /// A BYE from a party of a consultation: the consulted party hanging
    /// up ends the consultation, the contact hanging up after the consulted
    /// party answered leaves agent and consulted party talking, and the
    /// agent hanging up in a conference leaves it (as `Leave` with the
    /// default). Whether the rest of the call stays up.
    pub(super) fn consult_party_gone(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        leg: LegId,
    ) -> bool {
        let Some(k) = self.table.call(call).and_then(|c| c.consult.clone()) else {
            return false;
        };
        if leg == k.leg {
            self.drop_leg(leg);
            self.end_consult(call, &k, "hangup");
            return true;
        }
        if leg == k.contact && k.answered {
            self.drop_leg(leg);
            self.without_contact(call, &k, "hangup");
            return true;
        }
        if leg == k.agent && k.talking == Talking::All {
            self.drop_leg(leg);
            self.agent_leaves(now, out, call, &k, Others::default(), "hangup");
            return true;
        }
        false
    }

    /// The consultation of `call`, answered unless `ringing_ok`.
    fn consultation(&self, call: &CallId, ringing_ok: bool) -> Result<Consult, CommandError> {
        let c = self
            .table
            .call(call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        let Some(k) = &c.consult else {
            return Err(wrong(call, "two-party", "no consultation is up"));
        };
        if !ringing_ok && !k.answered {
            return Err(wrong(
                call,
                "consult-ringing",
                "the consulted party has not answered",
            ));
        }
        Ok(k.clone())
    }

    pub(super) fn alternate_command(&mut self, call: CallId) -> Result<CallId, CommandError> {
        let k = self.consultation(&call, false)?;
        let (talking, held, next) = match k.talking {
            Talking::Consulted => (k.contact, k.leg, Talking::Contact),
            Talking::Contact => (k.leg, k.contact, Talking::Consulted),
            Talking::All => {
                return Err(wrong(&call, "conferenced", "everyone talks already"));
            }
        };
        self.hold_in_relay(held, true);
        self.hold_in_relay(talking, false);
        self.pair(&call, k.agent, talking);
        if let Some(c) = self.table.call_mut(&call).and_then(|c| c.consult.as_mut()) {
            c.talking = next;
        }
        self.outbox.event(CallEvent::Alternated {
            call: call.clone(),
            talking: if next == Talking::Contact {
                Party::Contact
            } else {
                Party::Consulted
            },
        });
        Ok(call)
    }

    pub(super) fn cancel_consult_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
    ) -> Result<CallId, CommandError> {
        let k = self.consultation(&call, true)?;
        self.release_consulted(now, out, &k);
        self.end_consult(&call, &k, "cancelled");
        Ok(call)
    }

    pub(super) fn complete_transfer_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
    ) -> Result<CallId, CommandError> {
        let k = self.consultation(&call, false)?;
        if let Some(c) = self.table.call_mut(&call) {
            c.consult = None;
        }
        self.join_others(now, out, &call, &k);
        self.outbox.event(CallEvent::Transferred {
            call: call.clone(),
            by: k.by,
            to: k.to.clone(),
            attended: true,
        });
        self.hang_up_leg(now, out, k.agent);
        Ok(call)
    }

    pub(super) fn conference_command(&mut self, call: CallId) -> Result<CallId, CommandError> {
        let k = self.consultation(&call, false)?;
        if k.talking == Talking::All {
            return Ok(call);
        }
        self.hold_in_relay(k.contact, false);
        self.hold_in_relay(k.leg, false);
        let mut members = vec![
            (k.agent, Role::Party),
            (k.contact, Role::Party),
            (k.leg, Role::Party),
        ];
        members.extend(self.supervisor_member(&call));
        self.outbox.media(MediaCommand::Mix {
            room: call.0.clone(),
            members,
            dtmf: DtmfRoute::Others,
        });
        if let Some(c) = self.table.call_mut(&call) {
            c.bridged = Some((k.agent, k.contact));
            if let Some(k) = c.consult.as_mut() {
                k.talking = Talking::All;
            }
        }
        self.outbox.mark(&call);
        self.outbox
            .event(CallEvent::Conferenced { call: call.clone() });
        Ok(call)
    }

    pub(super) fn remove_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        party: Party,
    ) -> Result<CallId, CommandError> {
        match party {
            Party::Consulted => {
                let k = self.consultation(&call, true)?;
                self.release_consulted(now, out, &k);
                self.end_consult(&call, &k, "removed");
            }
            Party::Contact => {
                let k = self.consultation(&call, false)?;
                self.hang_up_leg(now, out, k.contact);
                self.without_contact(&call, &k, "removed");
            }
            Party::Supervisor => return self.remove_supervisor(now, out, call),
            Party::Agent => {
                let k = self.consultation(&call, false)?;
                self.hang_up_leg(now, out, k.agent);
                self.agent_leaves(now, out, &call, &k, Others::Stay, "removed");
            }
        }
        Ok(call)
    }

    pub(super) fn leave_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        others: Others,
    ) -> Result<CallId, CommandError> {
        let k = self.consultation(&call, false)?;
        self.hang_up_leg(now, out, k.agent);
        self.agent_leaves(now, out, &call, &k, others, "left");
        Ok(call)
    }

    pub(super) fn volume_command(
        &mut self,
        call: CallId,
        party: Party,
        direction: Way,
        db: i8,
    ) -> Result<CallId, CommandError> {
        if !(-12..=12).contains(&db) {
            return Err(CommandError::Invalid {
                field: "db",
                message: format!("{db} is not within -12..12"),
            });
        }
        let c = self
            .table
            .call(&call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        let k = c.consult.clone();
        let (leg, role) = match (party, &k) {
            (Party::Agent, Some(k)) => (Some(k.agent), LegRole::A),
            (Party::Contact, Some(k)) => (Some(k.contact), LegRole::B),
            (Party::Consulted, Some(k)) => (Some(k.leg), LegRole::C),
            (Party::Agent, None) => (Some(c.a), LegRole::A),
            (Party::Contact, None) => (c.b.first().copied(), LegRole::B),
            (Party::Consulted, None) => (c.c, LegRole::C),
            (Party::Supervisor, _) => (c.supervisor.as_ref().map(|s| s.leg), LegRole::S),
        };
        let leg = leg.ok_or(CommandError::NoLeg(call.clone(), role))?;
        if !self
            .table
            .leg(leg)
            .is_some_and(|l| l.is_answered() && !l.ending)
        {
            return Err(CommandError::NotAnswered(call.clone(), role));
        }
        let supervised = c.supervisor.as_ref().is_some_and(|s| s.answered);
        if !c.mixed && k.is_none() && !supervised {
            // Gains apply in a room: the two-party call becomes a room of two.
            let Some((x, y)) = c.bridged else {
                return Err(CommandError::NotAnswered(call.clone(), LegRole::B));
            };
            self.outbox.media(MediaCommand::Mix {
                room: call.0.clone(),
                members: vec![(x, Role::Party), (y, Role::Party)],
                dtmf: DtmfRoute::Others,
            });
        }
        if let Some(c) = self.table.call_mut(&call) {
            c.mixed = true;
        }
        self.outbox.media(MediaCommand::SetGain {
            leg,
            direction: match direction {
                Way::In => Direction::In,
                Way::Out => Direction::Out,
            },
            db: f32::from(db),
        });
        self.outbox.event(CallEvent::VolumeSet {
            call: call.clone(),
            party,
            direction,
            db,
        });
        Ok(call)
    }

    // ---- steps shared by the commands ----

    /// Two legs of `call` talk to each other: a bridge, or a room of two
    /// once a volume was set.
    fn pair(&mut self, call: &CallId, x: LegId, y: LegId) {
        let mixed = self.table.call(call).is_some_and(|c| c.mixed);
        let supervisor = self.supervisor_member(call);
        self.outbox.media(if mixed || supervisor.is_some() {
            let mut members = vec![(x, Role::Party), (y, Role::Party)];
            members.extend(supervisor);
            MediaCommand::Mix {
                room: call.0.clone(),
                members,
                dtmf: DtmfRoute::Others,
            }
        } else {
            MediaCommand::Bridge { a: x, b: y }
        });
        if let Some(c) = self.table.call_mut(call) {
            c.bridged = Some((x, y));
        }
        self.outbox.mark(call);
    }

    /// The relay's hold of one leg, unless the desktop holds it.
    fn hold_in_relay(&mut self, leg: LegId, held: bool) {
        if self.table.leg(leg).is_some_and(|l| !l.held_by_switch) {
            self.outbox.media(MediaCommand::SetHold { leg, held });
        }
    }

    /// The agent talks to the contact again (contact retrieved).
    fn rejoin(&mut self, call: &CallId, agent: LegId, contact: LegId) {
        if !self.table.has_leg(agent) || !self.table.has_leg(contact) {
            return;
        }
        self.hold_in_relay(contact, false);
        self.pair(call, agent, contact);
    }

    /// Hangs up (or cancels) the consultation leg.
    fn release_consulted(&mut self, now: Instant, out: &mut dyn SipOut, k: &Consult) {
        let answered = self.table.leg(k.leg).is_some_and(|l| l.is_answered());
        if answered {
            self.hang_up_leg(now, out, k.leg);
        } else {
            self.cancel_leg(now, out, k.leg);
        }
    }

    /// The consultation is over; the agent talks to the contact again.
    fn end_consult(&mut self, call: &CallId, k: &Consult, reason: &'static str) {
        if let Some(c) = self.table.call_mut(call) {
            c.consult = None;
            if c.c == Some(k.leg) {
                c.c = None;
            }
        }
        self.rejoin(call, k.agent, k.contact);
        self.outbox.event(CallEvent::ConsultEnded {
            call: call.clone(),
            reason,
        });
    }

    /// The contact left (hung up or removed): agent and consulted party talk.
    fn without_contact(&mut self, call: &CallId, k: &Consult, reason: &'static str) {
        if let Some(c) = self.table.call_mut(call) {
            c.consult = None;
        }
        self.hold_in_relay(k.leg, false);
        self.pair(call, k.agent, k.leg);
        self.outbox.event(CallEvent::PartyLeft {
            call: call.clone(),
            party: Party::Contact,
            reason,
        });
    }

    /// Contact and consulted party talk to each other, unheld.
    fn join_others(&mut self, now: Instant, out: &mut dyn SipOut, call: &CallId, k: &Consult) {
        self.hold_in_relay(k.contact, false);
        self.hold_in_relay(k.leg, false);
        self.pair(call, k.contact, k.leg);
        // The agent's phone may have held either of them before it left.
        self.lift_relayed_hold(now, out, k.contact);
        self.lift_relayed_hold(now, out, k.leg);
    }

    /// The agent left (its leg is gone or going): the others stay if
    /// `others` says so, else the call ends.
    fn agent_leaves(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: &CallId,
        k: &Consult,
        others: Others,
        reason: &'static str,
    ) {
        if let Some(c) = self.table.call_mut(call) {
            c.consult = None;
        }
        let stay = match others {
            Others::Stay => true,
            Others::HangUp => false,
            Others::StayIfInternal => self.is_internal(k.contact) || self.is_internal(k.leg),
        };
        self.outbox.event(CallEvent::PartyLeft {
            call: call.clone(),
            party: Party::Agent,
            reason,
        });
        if !stay {
            self.end_call(now, out, call, EndedBy::Switch, "agent-left", None);
            return;
        }
        self.join_others(now, out, call, k);
        self.outbox.event(CallEvent::Transferred {
            call: call.clone(),
            by: k.by,
            to: k.to.clone(),
            attended: true,
        });
    }

    /// A registered user (not a trunk peer): a leg we placed without a
    /// peer, or a caller whose source is no peer.
    fn is_internal(&self, leg: LegId) -> bool {
        self.table.leg(leg).is_some_and(|l| match &l.side {
            Side::Uac { peer, .. } => peer.is_none(),
            Side::Uas { source, .. } => self.settings.peer_of(source).is_none(),
        })
    }
}

fn wrong(call: &CallId, state: &'static str, why: &'static str) -> CommandError {
    CommandError::WrongState {
        call: call.clone(),
        state,
        why,
    }
}
