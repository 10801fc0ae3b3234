//! The next server of a trunk peer (RFC 3263 §4.3): when a leg's INVITE
//! to one of the peer's servers fails with a transport error, no answer in
//! time (Timer B, 408) or a 503, the same INVITE goes to the next target of
//! the ordered list the driver resolved, as a new transaction (new branch,
//! higher CSeq; the dialog's Call-ID and tags stay). Only when none is left
//! does the leg fail, with the last server's status.
//!
//! Sans-IO like the rest of the call layer: the targets arrive already
//! resolved (`settings::PeerSettings::targets`); this never resolves a name
//! nor reads the clock. The ring timeout keeps running across servers, so
//! the whole attempt stays bounded. The servers a leg has not tried yet are
//! its entry in `gateways::PeerRuntime` (taken one by one with
//! `next_server`, dropped with the leg); this file owns no state.

use std::time::Instant;

use crate::media::LegId;
use crate::net::Destination;

use super::digest::next_attempt;
use super::leg::Side;
use super::{CallLayer, Pending, SipOut};

impl CallLayer {
    /// Sends the leg's INVITE to the peer's next server; false when there
    /// is none left (or the leg is going away), and the leg should fail.
    pub(super) fn try_next_target(
        &mut self,
        now: Instant,
        out: &mut dyn SipOut,
        leg: LegId,
        code: u16,
    ) -> bool {
        let Some(l) = self.table.leg(leg) else {
            return false;
        };
        let Side::Uac { invite, peer, .. } = &l.side else {
            return false;
        };
        if l.ending || l.is_answered() {
            return false;
        }
        let (invite, peer, previous) = (invite.clone(), *peer, l.destination);
        while let Some(remote) = self.peers.next_server(leg) {
            let destination = Destination {
                remote,
                connection: None,
                ..previous
            };
            let next = next_attempt(&invite);
            self.dialogs
                .invite_sent(next.clone(), destination.transport);
            let Some(tx) = out.send_request(now, next.clone(), destination) else {
                continue;
            };
            tracing::info!(%leg, failed = %previous.remote, status = code, next = %remote, "trying the peer's next server");
            self.pending
                .insert((destination.profile, tx), Pending::Invite(leg));
            if let Some(l) = self.table.leg_mut(leg) {
                l.destination = destination;
                // A new server: its challenge, if any, is answered afresh.
                l.side = Side::Uac {
                    invite: next,
                    tx: Some(tx),
                    auth_tries: 0,
                    peer,
                };
            }
            return true;
        }
        // No server of this peer left: the route's next gateway, if any (gateways.rs).
        self.next_gateway(now, out, leg, code)
    }
}
