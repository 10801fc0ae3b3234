//! Commands from the layer above, and what the relay reports back.
//!
//! Hold re-INVITEs the leg (sendonly) and stops the relay toward and from
//! it, so the held party hears nothing; mute only stops the relay from the
//! leg (no signalling; the muted party still hears); DTMF and recording are
//! the relay's. Every command answers with the call it acted on, or a typed
//! error naming what was wrong.
//!
//! Owns no state: commands change a leg's hold and mute flags and a call's
//! recording, and create originated calls (`LegTable::insert_call`); the
//! legs themselves are placed by `outbound`. Media events change no state
//! beyond ending a call whose leg went silent.

use std::time::Instant;

use crate::media::{LegId, MediaCommand, MediaEvent};
use crate::sdp;

use super::command::{CallCommand, CallEvent, CallId, CommandError, EndedBy, LegRole, Originate};
use super::negotiate::Forward;
use super::outbound::Caller;
use super::table::Call;
use super::{CallLayer, SipOut};

impl CallLayer {
    pub(super) fn command(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        command: CallCommand,
    ) -> Result<CallId, CommandError> {
        match command {
            CallCommand::Originate(o) => self.originate(now, out, o),
            CallCommand::Hangup { call } => {
                self.table
                    .call(&call)
                    .ok_or(CommandError::NoCall(call.clone()))?;
                self.end_call(now, out, &call, EndedBy::Switch, "hangup", None);
                Ok(call)
            }
            CallCommand::Hold { call, leg } => self.hold(now, out, call, leg, true),
            CallCommand::Retrieve { call, leg } => self.hold(now, out, call, leg, false),
            CallCommand::Mute { call, leg } => self.mute(call, leg, true),
            CallCommand::Unmute { call, leg } => self.mute(call, leg, false),
            CallCommand::SendDtmf { call, leg, digits } => {
                if digits.is_empty()
                    || digits.len() > 32
                    || !digits
                        .chars()
                        .all(|d| matches!(d, '0'..='9' | '*' | '#' | 'A'..='D'))
                {
                    return Err(CommandError::Invalid {
                        field: "digits",
                        message: "1 to 32 of 0-9 * # A-D".into(),
                    });
                }
                let l = self.answered_leg(&call, leg)?;
                self.outbox.media(MediaCommand::SendDtmf {
                    leg: l,
                    digits,
                    duration_ms: 100,
                    gap_ms: 60,
                });
                Ok(call)
            }
            CallCommand::StartRecording { call } => self.start_recording(&call).map(|_| call),
            CallCommand::Transfer { call, leg, to } => {
                self.transfer_command(now, out, call, leg, to)
            }
            CallCommand::Consult { call, leg, to } => self.consult_command(now, out, call, leg, to),
            CallCommand::Alternate { call } => self.alternate_command(call),
            CallCommand::CancelConsult { call } => self.cancel_consult_command(now, out, call),
            CallCommand::CompleteTransfer { call } => {
                self.complete_transfer_command(now, out, call)
            }
            CallCommand::Conference { call } => self.conference_command(call),
            CallCommand::Remove { call, party } => self.remove_command(now, out, call, party),
            CallCommand::Leave { call, others } => self.leave_command(now, out, call, others),
            CallCommand::Supervise { call, mode, to } => {
                self.supervise_command(now, out, call, mode, to)
            }
            CallCommand::Volume {
                call,
                party,
                direction,
                db,
            } => self.volume_command(call, party, direction, db),
            CallCommand::PauseRecording { call } => self.pause_recording(call, true),
            CallCommand::ResumeRecording { call } => self.pause_recording(call, false),
            CallCommand::StopRecording { call } => {
                let c = self
                    .table
                    .call_mut(&call)
                    .ok_or(CommandError::NoCall(call.clone()))?;
                if c.recording.take().is_none() {
                    return Err(CommandError::Invalid {
                        field: "action",
                        message: "the call is not being recorded".into(),
                    });
                }
                c.recording_paused = false;
                self.outbox.media(MediaCommand::StopRecording {
                    call: call.0.clone(),
                });
                self.outbox.mark(&call);
                Ok(call)
            }
        }
    }

    /// The leg of `call` in `role`, answered and not going away.
    pub(super) fn answered_leg(&self, call: &CallId, role: LegRole) -> Result<LegId, CommandError> {
        let c = self
            .table
            .call(call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        let (leg, l) = match role {
            LegRole::A => Some(c.a),
            LegRole::B => c.b.first().copied(),
            LegRole::C => c.c,
            LegRole::S => c.supervisor.as_ref().map(|s| s.leg),
        }
        .and_then(|id| Some((id, self.table.leg(id)?)))
        .ok_or(CommandError::NoLeg(call.clone(), role))?;
        if !l.is_answered() || l.ending {
            return Err(CommandError::NotAnswered(call.clone(), role));
        }
        Ok(leg)
    }

    fn hold(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        call: CallId,
        role: LegRole,
        held: bool,
    ) -> Result<CallId, CommandError> {
        let leg = self.answered_leg(&call, role)?;
        let Some(l) = self.table.leg_mut(leg) else {
            return Err(CommandError::NoLeg(call, role));
        };
        if l.held_by_switch == held {
            return Ok(call);
        }
        l.held_by_switch = held;
        self.outbox.media(MediaCommand::SetHold { leg, held });
        if !self.send_hold_reinvite(now, out, leg, held) {
            // An INVITE is in progress on the leg: the relay holds it at once
            // and the re-INVITE goes out when that INVITE ends.
            tracing::info!(%leg, "hold re-INVITE deferred: INVITE in progress");
        }
        self.outbox.mark(&call);
        self.outbox.event(if held {
            CallEvent::Held {
                call: call.clone(),
                leg: role,
                by_switch: true,
            }
        } else {
            CallEvent::Retrieved {
                call: call.clone(),
                leg: role,
                by_switch: true,
            }
        });
        Ok(call)
    }

    fn mute(&mut self, call: CallId, role: LegRole, muted: bool) -> Result<CallId, CommandError> {
        let leg = self.answered_leg(&call, role)?;
        let Some(l) = self.table.leg_mut(leg) else {
            return Err(CommandError::NoLeg(call, role));
        };
        if l.muted != muted {
            l.muted = muted;
            self.outbox.media(MediaCommand::SetMute { leg, muted });
            self.outbox.mark(&call);
            self.outbox.event(if muted {
                CallEvent::Muted {
                    call: call.clone(),
                    leg: role,
                }
            } else {
                CallEvent::Unmuted {
                    call: call.clone(),
                    leg: role,
                }
            });
        }
        Ok(call)
    }

    pub(super) fn start_recording(&mut self, call: &CallId) -> Result<(), CommandError> {
        let c = self
            .table
            .call_mut(call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        if c.recording.is_some() {
            return Err(CommandError::Invalid {
                field: "action",
                message: "the call is already being recorded".into(),
            });
        }
        let Some((a, b)) = c.bridged else {
            return Err(CommandError::NotAnswered(call.clone(), LegRole::B));
        };
        let path = self.settings.recordings_dir.join(format!("{}.wav", call.0));
        c.recording = Some(path.clone());
        c.recording_paused = false;
        self.outbox.media(MediaCommand::StartRecording {
            call: call.0.clone(),
            legs: [a, b],
            path,
        });
        self.outbox.mark(call);
        Ok(())
    }

    fn pause_recording(&mut self, call: CallId, pause: bool) -> Result<CallId, CommandError> {
        let c = self
            .table
            .call_mut(&call)
            .ok_or(CommandError::NoCall(call.clone()))?;
        if c.recording.is_none() {
            return Err(CommandError::Invalid {
                field: "action",
                message: "the call is not being recorded".into(),
            });
        }
        if c.recording_paused == pause {
            return Ok(call);
        }
        c.recording_paused = pause;
        self.outbox.media(if pause {
            MediaCommand::PauseRecording {
                call: call.0.clone(),
            }
        } else {
            MediaCommand::ResumeRecording {
                call: call.0.clone(),
            }
        });
        self.outbox.mark(&call);
        self.outbox.event(if pause {
            CallEvent::RecordingPaused { call: call.clone() }
        } else {
            CallEvent::RecordingResumed { call: call.clone() }
        });
        Ok(call)
    }

    /// "Call A; when A answers, call B; bridge them."
    fn originate(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        o: Originate,
    ) -> Result<CallId, CommandError> {
        check_party("a", &o.a)?;
        check_party("b", &o.b)?;
        let call = o.call.clone().unwrap_or_else(|| self.new_call_id());
        if self.table.has_call(&call) {
            return Err(CommandError::CallExists(call));
        }
        let route = self
            .dialplan
            .route(&o.a, None)
            .ok_or_else(|| CommandError::NoRoute(o.a.clone()))?;
        // The B side must be routable before anyone's phone rings.
        self.dialplan
            .route(&o.b, None)
            .ok_or_else(|| CommandError::NoRoute(o.b.clone()))?;
        let targets = self.targets(now, out, &route).map_err(|code| match code {
            480 => CommandError::Busy(format!("{} is not registered", o.a)),
            _ => CommandError::NoRoute(o.a.clone()),
        })?;
        // Only the first registered contact is rung for the agent: an agent
        // answers on one phone (several would all auto-answer).
        let Some(target) = targets.into_iter().next() else {
            return Err(CommandError::Busy(format!("{} is not registered", o.a)));
        };
        let Some(profile) = self.settings.profile(target.profile) else {
            return Err(CommandError::NoRoute(o.a.clone()));
        };
        for (name, _) in &o.headers {
            if !profile
                .case_data_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                return Err(CommandError::Invalid {
                    field: "headers",
                    message: format!(
                        "{name} is not a case-data header of profile {}",
                        profile.name
                    ),
                });
            }
        }
        let codecs = profile.codecs.clone();
        // A placeholder caller leg id until `place_leg` fills it in.
        let placeholder = LegId(0);
        let mut record = Call::new(call.clone(), &o.a, &o.b, placeholder, self.wall_ms(now));
        record.interaction = o.interaction.clone();
        record.originate = Some(o.clone());
        self.table.insert_call(record);
        self.outbox.event(CallEvent::Started {
            call: call.clone(),
            interaction: o.interaction.clone(),
            from: o.a.clone(),
            to: o.b.clone(),
        });
        let forward = Forward {
            formats: sdp::default_formats(&codecs),
            direction: sdp::Direction::SendRecv,
            ptime: Some(20),
        };
        let caller = Caller {
            user: o.caller_id.clone().unwrap_or_else(|| o.b.clone()),
            display: None,
        };
        if let Err(e) = self.place_leg(
            now,
            out,
            &call,
            LegRole::A,
            target,
            Some(&forward),
            &caller,
            &o.headers,
            o.auto_answer,
        ) {
            let cause = e.cause().unwrap_or("a-failed");
            self.end_call(now, out, &call, EndedBy::Switch, cause, Some(503));
        }
        Ok(call)
    }

    pub(super) fn media_event(&mut self, now: Instant, out: &mut dyn SipOut, event: MediaEvent) {
        match event {
            MediaEvent::Dtmf {
                leg,
                digit,
                duration_ms,
            } => {
                if let Some(l) = self.table.leg(leg) {
                    self.outbox.event(CallEvent::Dtmf {
                        call: l.call.clone(),
                        leg: l.role,
                        digit,
                        duration_ms,
                        via: "rfc4733",
                    });
                }
            }
            MediaEvent::DtmfSent { leg, digits } => {
                if let Some(l) = self.table.leg(leg) {
                    self.outbox.event(CallEvent::DtmfSent {
                        call: l.call.clone(),
                        leg: l.role,
                        digits,
                    });
                }
            }
            MediaEvent::DtmfFailed { leg, reason } => {
                tracing::info!(%leg, %reason, "DTMF could not be sent");
            }
            MediaEvent::RtpTimeout { leg } => {
                if self
                    .table
                    .leg(leg)
                    .is_some_and(|l| l.is_answered() && !l.held_by_phone)
                {
                    self.leg_lost(now, out, leg, "rtp-timeout");
                }
            }
            MediaEvent::Latched { leg, remote } => {
                tracing::debug!(%leg, %remote, "media latched");
            }
            MediaEvent::RecordingStarted { call, path } => {
                self.outbox.event(CallEvent::RecordingStarted {
                    call: CallId(call),
                    path,
                });
            }
            MediaEvent::RecordingStopped { call, path } => {
                self.outbox.event(CallEvent::RecordingStopped {
                    call: CallId(call),
                    path,
                });
            }
            MediaEvent::RecordingFailed { call, reason } => {
                tracing::warn!(%call, %reason, "recording failed");
                if let Some(c) = self.table.call_mut(&CallId(call.clone())) {
                    c.recording = None;
                }
            }
            MediaEvent::OpenFailed { leg, reason } => {
                tracing::warn!(%leg, %reason, "media could not be opened");
                if let Some(call) = self.table.leg(leg).map(|l| l.call.clone()) {
                    self.end_call(now, out, &call, EndedBy::Switch, "media-failed", Some(503));
                }
            }
        }
    }
}

/// A number or user name the dial plan can route (`field` names it in the error).
pub(super) fn check_party(field: &'static str, v: &str) -> Result<(), CommandError> {
    if v.is_empty()
        || v.len() > 64
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+*#._-".contains(c))
    {
        return Err(CommandError::Invalid {
            field,
            message: format!("{v:?} is not a number or user name"),
        });
    }
    Ok(())
}
