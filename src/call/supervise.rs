//! A supervisor on a live call: listen (hears everyone, heard by no one),
//! whisper (heard by the agent only) or barge (a full party), switched
//! without the call noticing (issue 14).
//!
//! `Supervise` with a target places the supervisor's phone as leg `s`
//! (routed by the dial plan, offered the agent's codecs: the relay's room
//! mixes G.711 of either law); once it answers, the call's talking parties
//! and the supervisor are one room of the relay (`MediaCommand::Mix`) with
//! the supervisor's role (`Role::Listen`, `Whisper { to: agent }`,
//! `Party`). Without a target it switches the present supervisor's mode
//! with `SetRole`: nobody's audio path changes, so nobody hears it. While a
//! supervisor is in, every pair `consult` would bridge talks in that room
//! instead (`consult::pair`), so the supervisor follows a consultation; the
//! supervisor leaving (BYE, `Remove`, a failure) puts the others back as
//! they were. A supervisor's leg never ends the call.
//!
//! Owns the supervision (`Supervision`, kept on its call). Sans-IO.

use std::time::Instant;

use crate::media::{LegId, MediaCommand, Role};
use crate::sdp;

use super::command::{CallEvent, CallId, CommandError, LegRole, Monitor};
use super::consult::Talking;
use super::controls::check_party;
use super::negotiate::{self, Forward};
use super::outbound::Caller;
use super::{CallLayer, SipOut};

#[derive(Debug, Clone)]
pub struct Supervision {
    /// The supervisor's leg (`s`).
    pub leg: LegId,
    pub mode: Monitor,
    pub answered: bool,
}

impl CallLayer {
    pub(super) fn supervise_command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        mode: Monitor,
        to: Option<String>,
    ) -> Result<CallId, CommandError> {
        let c = self
            .table
            .call(&call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        if let Some(s) = c.supervisor.clone() {
            if to.is_some() {
                return Err(CommandError::WrongState {
                    call: call.clone(),
                    state: "supervised",
                    why: "a supervisor is on the call already (switch modes without to)",
                });
            }
            if !s.answered {
                return Err(CommandError::NotAnswered(call.clone(), LegRole::S));
            }
            if let Some(sv) = self
                .table
                .call_mut(&call)
                .and_then(|c| c.supervisor.as_mut())
            {
                sv.mode = mode;
            }
            let role = self.supervisor_role(&call, mode);
            self.outbox
                .media(MediaCommand::SetRole { leg: s.leg, role });
            self.outbox.event(CallEvent::Supervised {
                call: call.clone(),
                mode,
            });
            return Ok(call);
        }
        let Some(to) = to else {
            return Err(CommandError::Invalid {
                field: "to",
                message: "to is required: no supervisor is on the call".into(),
            });
        };
        check_party("to", &to)?;
        let Some((x, _)) = c.bridged else {
            return Err(CommandError::NotAnswered(call.clone(), LegRole::B));
        };
        let agent = c.consult.as_ref().map_or(c.a, |k| k.agent);
        let target = self.first_target(now, &*out, &to)?;
        let formats = self
            .table
            .leg(agent)
            .or_else(|| self.table.leg(x))
            .map(|l| negotiate::follow(&l.media.formats))
            .unwrap_or_default();
        let user = self
            .table
            .leg(agent)
            .map(|l| l.target.clone())
            .unwrap_or_default();
        let forward = Forward {
            formats,
            direction: sdp::Direction::SendRecv,
            ptime: None,
        };
        let caller = Caller {
            user,
            display: None,
        };
        let leg = self
            .place_leg(
                now,
                out,
                &call,
                LegRole::S,
                target,
                Some(&forward),
                &caller,
                &[],
                false,
            )
            .map_err(|e| CommandError::Busy(format!("supervisor leg not placed: {e}")))?;
        if let Some(c) = self.table.call_mut(&call) {
            c.supervisor = Some(Supervision {
                leg,
                mode,
                answered: false,
            });
        }
        self.outbox.mark(&call);
        Ok(call)
    }

    /// The mixer role of a supervisor in `mode` on `call`.
    pub(super) fn supervisor_role(&self, call: &CallId, mode: Monitor) -> Role {
        match mode {
            Monitor::Listen => Role::Listen,
            Monitor::Barge => Role::Party,
            Monitor::Whisper => {
                let agent = self
                    .table
                    .call(call)
                    .map(|c| c.consult.as_ref().map_or(c.a, |k| k.agent))
                    .unwrap_or(LegId(0));
                Role::Whisper { to: agent }
            }
        }
    }

    /// The answered supervisor of `call` with its role, for a room.
    pub(super) fn supervisor_member(&self, call: &CallId) -> Option<(LegId, Role)> {
        let s = self.table.call(call)?.supervisor.as_ref()?;
        s.answered
            .then(|| (s.leg, self.supervisor_role(call, s.mode)))
    }

    /// The parties talking now, as a room's members (the supervisor apart).
    fn talking(&self, call: &CallId) -> Vec<(LegId, Role)> {
        let Some(c) = self.table.call(call) else {
            return Vec::new();
        };
        match &c.consult {
            Some(k) if k.talking == Talking::All => vec![
                (k.agent, Role::Party),
                (k.contact, Role::Party),
                (k.leg, Role::Party),
            ],
            _ => c
                .bridged
                .map(|(x, y)| vec![(x, Role::Party), (y, Role::Party)])
                .unwrap_or_default(),
        }
    }

    /// The supervisor's phone answered: it joins the room.
    pub(super) fn supervisor_answered(&mut self, call: &CallId, leg: LegId) {
        let Some(s) = self
            .table
            .call_mut(call)
            .and_then(|c| c.supervisor.as_mut())
            .filter(|s| s.leg == leg)
        else {
            return;
        };
        s.answered = true;
        let mode = s.mode;
        let mut members = self.talking(call);
        members.push((leg, self.supervisor_role(call, mode)));
        self.outbox.media(MediaCommand::Mix {
            room: call.0.clone(),
            members,
            dtmf: crate::media::DtmfRoute::Others,
        });
        self.outbox.mark(call);
        self.outbox.event(CallEvent::Supervised {
            call: call.clone(),
            mode,
        });
    }

    /// The supervisor's leg is gone or going (`leg` already dropped or
    /// hung up): the others talk as they did before it came.
    pub(super) fn supervisor_gone(&mut self, call: &CallId, leg: LegId) -> bool {
        let Some(c) = self.table.call_mut(call) else {
            return false;
        };
        if c.supervisor.as_ref().is_none_or(|s| s.leg != leg) {
            return false;
        }
        let answered = c.supervisor.take().is_some_and(|s| s.answered);
        let mixed = c.mixed;
        if answered {
            let members = self.talking(call);
            match members.as_slice() {
                [(x, _), (y, _)] if !mixed => {
                    self.outbox.media(MediaCommand::Bridge { a: *x, b: *y });
                }
                [] => {}
                _ => self.outbox.media(MediaCommand::Mix {
                    room: call.0.clone(),
                    members,
                    dtmf: crate::media::DtmfRoute::Others,
                }),
            }
        }
        self.outbox.mark(call);
        self.outbox
            .event(CallEvent::SupervisorLeft { call: call.clone() });
        true
    }

    /// `Remove { party: Supervisor }`.
    pub(super) fn remove_supervisor(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
    ) -> Result<CallId, CommandError> {
        let s = self
            .table
            .call(&call)
            .ok_or(CommandError::NoCall(call.clone()))?
            .supervisor
            .clone()
            .ok_or(CommandError::NoLeg(call.clone(), LegRole::S))?;
        // Before the leg goes: dropping it detaches it from the call.
        self.supervisor_gone(&call, s.leg);
        if s.answered {
            self.hang_up_leg(now, out, s.leg);
        } else {
            self.cancel_leg(now, out, s.leg);
        }
        Ok(call)
    }
}
