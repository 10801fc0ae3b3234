//! Publishing calls to the concurrent session table.
//!
//! The call layer's own maps are the working state, touched only by the
//! endpoint task. Readers elsewhere (the HTTP API, the interaction layer)
//! see calls through the session table: after each input the calls that
//! changed are summarised afresh and swapped in whole, so a reader never sees
//! half an update and never waits for the endpoint.
//!
//! This file builds a call's summary from the table and holds the read
//! side ([`Directory`]); the writes and the set of changed calls are the
//! outbox's (`outbox::Outbox::publish`). It changes no call state.

use std::sync::Arc;

use crate::session::SessionTable;

use super::command::CallId;
use super::leg::Side;
use super::settings::CallSettings;
use super::summary::{CallSummary, LegCounters, LegSummary};
use super::table::LegTable;
use super::{CallDirectory, CallLayer};

/// The session table of live calls, shared by every task.
pub type Sessions = Arc<SessionTable<CallSummary>>;

impl CallLayer {
    /// Publishes the calls changed since the last time (`Outbox::publish`).
    pub(super) fn publish_dirty(&mut self) {
        let CallLayer {
            outbox,
            table,
            settings,
            ..
        } = self;
        outbox.publish(|id| summary(table, settings, id));
    }
}

/// What the session table shows of call `id` (`None`: it is gone).
fn summary(table: &LegTable, settings: &CallSettings, id: &CallId) -> Option<CallSummary> {
    let call = table.call(id)?;
    let legs =
        call.legs()
            .filter_map(|l| table.leg(l))
            .map(|l| LegSummary {
                role: l.role,
                state: l.state.clone(),
                target: l.target.clone(),
                profile: settings
                    .profile(l.profile)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                sip_call_id: l.sip_call_id.clone(),
                local_tag: l.local_tag.clone(),
                remote_tag: l.dialog.as_ref().map(|d| d.remote_tag.clone()).or_else(|| {
                    match &l.side {
                        Side::Uas { invite, .. } => crate::sip::MessageHeaders::from_tag(invite),
                        Side::Uac { .. } => None,
                    }
                }),
                media_leg: l.id.0,
                rtp_port: l.media.local.port(),
                held_by_switch: l.held_by_switch,
                held_by_phone: l.held_by_phone,
                muted: l.muted,
            })
            .collect();
    Some(CallSummary {
        id: call.id.clone(),
        interaction: call.interaction.clone(),
        state: call.state.clone(),
        from: call.from.clone(),
        to: call.to.clone(),
        legs,
        recording: call.recording.as_ref().map(|p| p.display().to_string()),
        recording_paused: call.recording_paused,
        started_at_ms: call.started_at_ms,
        answered_at_ms: call.answered_at_ms,
    })
}

/// What HTTP and other tasks read: the session table plus the relay's
/// counters, and the trunk peers' table.
#[derive(Debug)]
pub struct Directory {
    pub sessions: Sessions,
    pub media: crate::media::MediaEngine,
    pub peers: std::sync::Arc<super::peers::PeerTable>,
}

impl CallDirectory for Directory {
    fn call(&self, id: &CallId) -> Option<CallSummary> {
        self.sessions.get(&id.0).map(|s| (*s).clone())
    }

    fn calls(&self) -> Vec<CallSummary> {
        let mut v: Vec<CallSummary> = self
            .sessions
            .snapshot()
            .into_iter()
            .map(|(_, s)| (*s).clone())
            .collect();
        v.sort_by_key(|s| s.started_at_ms);
        v
    }

    fn by_interaction(&self, interaction: &str) -> Vec<CallSummary> {
        self.sessions
            .by_interaction(interaction)
            .into_iter()
            .map(|(_, s)| (*s).clone())
            .collect()
    }

    fn leg_counters(&self, media_leg: u64) -> Option<LegCounters> {
        let s = self.media.stats(crate::media::LegId(media_leg))?;
        Some(LegCounters {
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            lost: s.lost,
            jitter_ms: s.jitter_ms,
            rtcp_in: s.rtcp_in,
            rtcp_out: s.rtcp_out,
        })
    }

    fn peers(&self) -> Vec<super::peers::PeerStatus> {
        self.peers.statuses()
    }
}
