//! What the call layer's timers do: ring timeouts and RFC 4028 session timers.
//!
//! The deadlines live on the wheel (`wheel::TimerWheel`), a leg's session
//! timer state on the leg (`SessionTimer`). A timer is armed only through
//! `schedule`, which also records its key on the leg, so that forgetting or
//! handing over the leg takes its timers with it; a timer whose leg is gone
//! fires into nothing.
//!
//! Session timers, per leg: when the switch is the refresher it re-INVITEs
//! with its last SDP (unchanged version, RFC 4028 §7.4 / RFC 3264 §8) at half
//! the interval; when the peer is, a missing refresh by the interval minus
//! min(32 s, interval/3) (§10) ends the call. A refresh that fails (408, 481,
//! no answer) ends it too, so that half a call is never left up.

use std::time::{Duration, Instant};

use crate::media::LegId;
use crate::sip::{make_header, MessageHeaders, Method, Request, Response};

use super::leg::{SessionTimer, Side};
use super::{CallLayer, Pending, ReInvite, SipOut};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The leg has rung long enough.
    Ring(LegId),
    /// Refresh the session, or give up on the peer's refresh.
    Session(LegId),
}

impl Timer {
    pub fn leg(&self) -> LegId {
        match self {
            Timer::Ring(l) | Timer::Session(l) => *l,
        }
    }
}

/// `Session-Expires: 1800;refresher=uac` -> (1800, Some("uac")).
fn session_expires(value: &str) -> Option<(u32, Option<String>)> {
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

impl CallLayer {
    /// Arms a timer of a leg; the leg keeps the key so that forgetting the
    /// leg removes its timers without scanning them all.
    pub(super) fn schedule(&mut self, at: Instant, timer: Timer) {
        let key = self.timers.schedule(at, timer);
        if let Some(l) = self.table.leg_mut(timer.leg()) {
            l.timers.push(key);
        }
    }

    pub(super) fn fire_timers(&mut self, now: Instant, out: &mut dyn SipOut) {
        while let Some(timer) = self.timers.pop_expired(now) {
            match timer {
                Timer::Ring(leg) => {
                    let due = self.table.leg(leg).is_some_and(|l| {
                        !l.is_answered() && !l.ending && l.ring_deadline.is_some_and(|d| d <= now)
                    });
                    if due {
                        tracing::info!(%leg, "ring timeout");
                        self.cancel_leg(now, out, leg);
                        self.leg_failed_after_cancel(now, out, leg, 408);
                    }
                }
                Timer::Session(leg) => self.session_due(now, out, leg),
            }
        }
    }

    /// A leg CANCELled by the switch counts as failed with `code` at once; its
    /// 487 (or a late 2xx, ACKed and released) is handled when it comes.
    fn leg_failed_after_cancel(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        code: u16,
    ) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let (call, role) = (l.call.clone(), l.role);
        // The switch gave up on the leg: it ended the call, not the callee.
        self.account_failure(
            now,
            out,
            &call,
            role,
            leg,
            code,
            None,
            super::EndedBy::Switch,
        );
    }

    /// Session timer of a UAC leg, from its 2xx.
    pub(super) fn session_from_response(&mut self, now: Instant, leg: LegId, r: &Response) {
        let Some((secs, refresher)) = r.header_value("Session-Expires").and_then(session_expires)
        else {
            return;
        };
        if secs == 0 {
            return;
        }
        // RFC 4028 §7.2: without refresher=uas in the 2xx, we (the UAC) refresh.
        let we_refresh = refresher.as_deref() != Some("uas");
        self.start_session(now, leg, secs, we_refresh);
    }

    /// Session timer of the caller's leg, negotiated in our 2xx (RFC 4028 §9).
    pub(super) fn session_for_uas_answer(&mut self, now: Instant, leg: LegId, ok: &mut Response) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let Side::Uas { invite, .. } = &l.side else {
            return;
        };
        let min_se = self
            .settings
            .profile(l.profile)
            .map(|p| p.min_se)
            .unwrap_or_default();
        let Some((asked, refresher)) = invite
            .header_value("Session-Expires")
            .and_then(session_expires)
        else {
            return;
        };
        let secs = asked.max(min_se);
        let supports = invite
            .header_values("Supported")
            .iter()
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("timer")));
        // The UAC refreshes if it supports timers and did not ask us to.
        let uac_refreshes = supports && refresher.as_deref() != Some("uas");
        let who = if uac_refreshes { "uac" } else { "uas" };
        ok.headers.push(make_header(
            "Session-Expires",
            format!("{secs};refresher={who}"),
        ));
        if supports {
            ok.headers.push(make_header("Require", "timer".into()));
        }
        self.start_session(now, leg, secs, !uac_refreshes);
    }

    fn start_session(&mut self, now: Instant, leg: LegId, secs: u32, we_refresh: bool) {
        let deadline = now + session_wait(secs, we_refresh);
        if let Some(l) = self.table.leg_mut(leg) {
            l.session = Some(SessionTimer {
                interval_secs: secs,
                we_refresh,
                deadline,
            });
        }
        self.schedule(deadline, Timer::Session(leg));
    }

    /// The peer refreshed the session (re-INVITE or UPDATE received).
    pub(super) fn session_refreshed(&mut self, now: Instant, leg: LegId, request: &Request) {
        let Some(l) = self.table.leg_mut(leg) else {
            return;
        };
        let Some(s) = &mut l.session else {
            return;
        };
        if let Some((secs, _)) = request
            .header_value("Session-Expires")
            .and_then(session_expires)
        {
            s.interval_secs = secs.max(90);
        }
        s.deadline = now + session_wait(s.interval_secs, s.we_refresh);
        let at = s.deadline;
        self.schedule(at, Timer::Session(leg));
    }

    fn session_due(&mut self, now: Instant, out: &mut dyn SipOut, leg: LegId) {
        let Some(l) = self.table.leg(leg) else {
            return;
        };
        let Some(s) = l.session else {
            return;
        };
        if s.deadline > now {
            return; // re-armed by a refresh since
        }
        if !s.we_refresh {
            tracing::info!(%leg, "session timer expired without refresh");
            return self.leg_lost(now, out, leg, "session-expired");
        }
        let body = l.media.last_sent.clone().map(|bytes| crate::dialog::Body {
            content_type: "application/sdp".into(),
            bytes,
        });
        let extra = vec![
            (
                "Session-Expires".into(),
                format!("{};refresher=uac", s.interval_secs),
            ),
            ("Supported".into(), "timer".into()),
        ];
        let sent = self.send_in_dialog(
            now,
            out,
            leg,
            Method::Invite,
            body,
            extra,
            Pending::ReInvite {
                leg,
                purpose: ReInvite::Refresh,
            },
        );
        if !sent {
            // An INVITE is in progress: it refreshes the session too; look again soon.
            self.schedule(now + Duration::from_secs(2), Timer::Session(leg));
            if let Some(l) = self.table.leg_mut(leg) {
                if let Some(s) = &mut l.session {
                    s.deadline = now + Duration::from_secs(2);
                }
            }
            return;
        }
        let next = now + session_wait(s.interval_secs, true);
        if let Some(l) = self.table.leg_mut(leg) {
            if let Some(s) = &mut l.session {
                s.deadline = next;
            }
        }
        self.schedule(next, Timer::Session(leg));
    }
}

/// How long until we refresh (half the interval) or give up on the peer
/// (the interval minus min(32 s, interval/3), RFC 4028 §10).
fn session_wait(secs: u32, we_refresh: bool) -> Duration {
    let secs = u64::from(secs.max(1));
    if we_refresh {
        Duration::from_secs(secs / 2)
    } else {
        Duration::from_secs(secs - (secs / 3).min(32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_expires_header_and_waits() {
        assert_eq!(
            session_expires("1800;refresher=uac"),
            Some((1800, Some("uac".into())))
        );
        assert_eq!(session_expires(" 90 "), Some((90, None)));
        assert_eq!(session_expires("x"), None);
        assert_eq!(session_wait(1800, true), Duration::from_secs(900));
        assert_eq!(session_wait(1800, false), Duration::from_secs(1768));
        assert_eq!(session_wait(90, false), Duration::from_secs(60));
    }
}
