//! Who is who: the calls of one call layer, their legs, and the indexes by
//! which a SIP message finds its leg.
//!
//! Owns the calls, the legs, the two indexes (a leg's dialog, RFC 3261 §12:
//! its SIP Call-ID and our tag; a caller's INVITE server transaction, for
//! CANCEL, §9.2), the leg numbering, and two short afterlives of forgotten
//! legs: the UAC legs whose INVITE may still be answered (a late 2xx is
//! ACKed and released, §13.2.2.4 / §15) and the legs whose BYE is still in
//! flight (a crossing BYE is answered 200, §15.1.2).
//!
//! The indexes change only here, with the legs: `insert_leg` indexes a leg
//! by its keys, `forget_leg` / `hand_over_leg` drop every entry of it, and
//! a caller's INVITE leaves the CANCEL index when its final response goes
//! (`uas_answered`). A leg's keys (`sip_call_id`, `local_tag`, `profile`
//! and a UAS leg's transaction) are fixed once it is inserted; no other
//! file may change them. An index entry never outlives its leg (the unit
//! tests below check it), so a lookup never finds a leg that is gone.
//!
//! What a call's fields mean and when they change (its legs by role, the
//! bridge, a transfer, a late offer) is the business of the files that act
//! on calls; this one only detaches a forgotten leg from its call. Sans-IO,
//! plain maps owned by one endpoint worker.

use std::collections::HashMap;

use crate::media::LegId;
use crate::net::{Destination, ProfileId};
use crate::shard::Shard;
use crate::transaction::ServerTransactionId;

use super::command::{CallId, Originate};
use super::consult::Consult;
use super::identity::Identity;
use super::late_offer::LateOffer;
use super::leg::{Leg, Side};
use super::summary::CallState;
use super::supervise::Supervision;
use super::transfer::Transfer;

/// A call: its legs by role and where it stands.
#[derive(Debug)]
pub(super) struct Call {
    pub id: CallId,
    pub interaction: Option<String>,
    pub from: String,
    pub to: String,
    /// The caller (inbound) or the first leg placed (originated).
    pub a: LegId,
    /// The callee's forks (inbound) or the second leg (originated).
    pub b: Vec<LegId>,
    /// A transfer target being placed or bridged.
    pub c: Option<LegId>,
    /// Which two legs are bridged now.
    pub bridged: Option<(LegId, LegId)>,
    pub state: CallState,
    /// Originated calls: what to place once `a` answers.
    pub originate: Option<Originate>,
    /// Final statuses of failed forks, for the best answer to the caller (§16.7).
    pub fork_failures: Vec<(u16, Option<String>)>,
    pub cancelled: bool,
    pub recording: Option<std::path::PathBuf>,
    pub recording_paused: bool,
    pub started_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    /// A REFER being carried out.
    pub transfer: Option<Transfer>,
    /// A consultation (leg `c`) in progress (`consult`).
    pub consult: Option<Consult>,
    /// A volume was set: whatever pair talks does so in a room of the relay.
    pub mixed: bool,
    /// A supervisor's leg (`s`) and its mode (`supervise`).
    pub supervisor: Option<Supervision>,
    /// The caller's INVITE had no SDP: where the late offer stands.
    pub late_offer: Option<LateOffer>,
    /// `Ended` was reported: the call is being taken down.
    pub ended: bool,
    /// Who the caller is as the switch vouches for it (RFC 3325, `identity`).
    pub identity: Identity,
}

impl Call {
    /// A call about to get its legs.
    pub fn new(id: CallId, from: &str, to: &str, a: LegId, started_at_ms: u64) -> Self {
        Call {
            id,
            interaction: None,
            from: from.to_string(),
            to: to.to_string(),
            a,
            b: Vec::new(),
            c: None,
            bridged: None,
            state: CallState::Setup,
            originate: None,
            fork_failures: Vec::new(),
            cancelled: false,
            recording: None,
            recording_paused: false,
            started_at_ms,
            answered_at_ms: None,
            transfer: None,
            consult: None,
            mixed: false,
            supervisor: None,
            late_offer: None,
            ended: false,
            identity: Identity::default(),
        }
    }

    /// Every leg the call names, `a` first.
    pub fn legs(&self) -> impl Iterator<Item = LegId> + '_ {
        std::iter::once(self.a)
            .chain(self.b.iter().copied())
            .chain(self.c)
            .chain(self.supervisor.as_ref().map(|s| s.leg))
    }

    /// Forgets `leg` as a callee, a transfer target and a bridged party.
    fn detach(&mut self, leg: LegId) {
        self.b.retain(|&b| b != leg);
        if self.c == Some(leg) {
            self.c = None;
        }
        if self.supervisor.as_ref().is_some_and(|s| s.leg == leg) {
            self.supervisor = None;
        }
        if self.bridged.is_some_and(|(x, y)| x == leg || y == leg) {
            self.bridged = None;
        }
    }
}

/// A dialog as a leg knows it: (SIP Call-ID, our tag).
type DialogKey = (String, String);

fn key_of(leg: &Leg) -> DialogKey {
    (leg.sip_call_id.clone(), leg.local_tag.clone())
}

/// The calls and legs of one call layer, and their indexes.
#[derive(Debug, Default)]
pub(super) struct LegTable {
    // Boxed: legs and calls hold whole messages, and a growing table moves
    // its values when it rehashes (a pause of milliseconds under load).
    calls: HashMap<CallId, Box<Call>>,
    legs: HashMap<LegId, Box<Leg>>,
    /// How every in-dialog message finds its leg.
    by_dialog: HashMap<DialogKey, LegId>,
    /// INVITE server transactions of UAS legs not answered yet (for CANCEL).
    by_server_tx: HashMap<(ProfileId, ServerTransactionId), LegId>,
    /// Legs numbered so far (the next leg is this worker's share of it).
    numbered: u64,
    /// Where unanswered legs already forgotten were sent, until their INVITE
    /// transaction ends: a late 2xx is still ACKed and released.
    gone_uac: HashMap<LegId, Destination>,
    /// Dialogs of legs forgotten after we sent their BYE, until that BYE's
    /// transaction ends: a BYE from the far end crossing ours (both hung up
    /// at once; baresip after the final NOTIFY of its REFER) is answered
    /// 200, not 481.
    closing: HashMap<DialogKey, LegId>,
}

impl LegTable {
    // ---- calls ----

    pub fn call(&self, id: &CallId) -> Option<&Call> {
        self.calls.get(id).map(|c| &**c)
    }

    pub fn call_mut(&mut self, id: &CallId) -> Option<&mut Call> {
        self.calls.get_mut(id).map(|c| &mut **c)
    }

    pub fn has_call(&self, id: &CallId) -> bool {
        self.calls.contains_key(id)
    }

    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    pub fn insert_call(&mut self, call: Call) {
        self.calls.insert(call.id.clone(), Box::new(call));
    }

    /// The call is over; its legs are forgotten apart (`forget_leg`).
    pub fn remove_call(&mut self, id: &CallId) {
        self.calls.remove(id);
    }

    // ---- legs ----

    /// A fresh leg id that routes to this worker.
    pub fn new_leg_id(&mut self, shard: &Shard) -> LegId {
        self.numbered += 1;
        LegId(shard.leg_number(self.numbered))
    }

    pub fn leg(&self, id: LegId) -> Option<&Leg> {
        self.legs.get(&id).map(|l| &**l)
    }

    pub fn leg_mut(&mut self, id: LegId) -> Option<&mut Leg> {
        self.legs.get_mut(&id).map(|l| &mut **l)
    }

    pub fn has_leg(&self, id: LegId) -> bool {
        self.legs.contains_key(&id)
    }

    /// Adds a new leg and indexes it: by its dialog, and a caller's
    /// unanswered INVITE by its transaction. A leg of the same id is
    /// replaced, its index entries with it.
    pub fn insert_leg(&mut self, leg: Box<Leg>) {
        if let Side::Uas {
            tx,
            answered: false,
            ..
        } = &leg.side
        {
            self.by_server_tx.insert((leg.profile, *tx), leg.id);
        }
        self.adopt_leg(leg);
    }

    /// Adds a leg handed over by another worker (`handover`), indexed by
    /// its dialog only: its INVITE transaction, if still open, is that
    /// worker's (transaction ids are per worker), so no CANCEL here finds it.
    pub fn adopt_leg(&mut self, leg: Box<Leg>) {
        let id = leg.id;
        self.unindex(id);
        self.by_dialog.insert(key_of(&leg), id);
        // A leg given back after we had forgotten it is ours again.
        self.gone_uac.remove(&id);
        self.legs.insert(id, leg);
    }

    /// Forgets a leg that leaves the switch: its index entries go and its
    /// call no longer names it; an unanswered UAC leg is remembered until
    /// its INVITE transaction ends (`gone_uac`).
    pub fn forget_leg(&mut self, id: LegId) -> Option<Box<Leg>> {
        let leg = self.hand_over_leg(id)?;
        if matches!(leg.side, Side::Uac { .. }) && !leg.is_answered() {
            self.gone_uac.insert(id, leg.destination);
        }
        Some(leg)
    }

    /// Takes a leg out of this table whole (to another worker): its index
    /// entries go and its call no longer names it.
    pub fn hand_over_leg(&mut self, id: LegId) -> Option<Box<Leg>> {
        self.unindex(id);
        let leg = self.legs.remove(&id)?;
        if let Some(c) = self.calls.get_mut(&leg.call) {
            c.detach(id);
        }
        Some(leg)
    }

    /// Drops the index entries of leg `id` (those still naming it: a newer
    /// leg of the same key keeps its own).
    fn unindex(&mut self, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let key = key_of(leg);
        if self.by_dialog.get(&key) == Some(&id) {
            self.by_dialog.remove(&key);
        }
        if let Side::Uas { tx, .. } = &leg.side {
            let tx = (leg.profile, *tx);
            if self.by_server_tx.get(&tx) == Some(&id) {
                self.by_server_tx.remove(&tx);
            }
        }
    }

    /// The final response to a caller's INVITE went: the leg no longer
    /// takes a CANCEL. False when it had already gone (or is no caller).
    pub fn uas_answered(&mut self, id: LegId) -> bool {
        let Some(leg) = self.legs.get_mut(&id) else {
            return false;
        };
        let Side::Uas { tx, answered, .. } = &mut leg.side else {
            return false;
        };
        let first = !*answered;
        *answered = true;
        let tx = (leg.profile, *tx);
        if self.by_server_tx.get(&tx) == Some(&id) {
            self.by_server_tx.remove(&tx);
        }
        first
    }

    // ---- lookups ----

    /// The leg of the dialog (SIP Call-ID, our tag).
    pub fn leg_of_dialog(&self, call_id: &str, local_tag: &str) -> Option<LegId> {
        self.by_dialog
            .get(&(call_id.to_string(), local_tag.to_string()))
            .copied()
    }

    /// The caller's leg whose INVITE is server transaction `tx`.
    pub fn leg_of_invite(&self, profile: ProfileId, tx: ServerTransactionId) -> Option<LegId> {
        self.by_server_tx.get(&(profile, tx)).copied()
    }

    /// The other bridged (or being bridged) leg of `leg`'s call.
    pub fn partner(&self, leg: LegId) -> Option<LegId> {
        let l = self.legs.get(&leg)?;
        let (x, y) = self.calls.get(&l.call)?.bridged?;
        if x == leg {
            Some(y)
        } else if y == leg {
            Some(x)
        } else {
            None
        }
    }

    // ---- afterlives ----

    /// Where a forgotten unanswered UAC leg was sent.
    pub fn gone_uac(&self, id: LegId) -> Option<Destination> {
        self.gone_uac.get(&id).copied()
    }

    /// The INVITE transaction of a forgotten UAC leg ended.
    pub fn uac_done(&mut self, id: LegId) {
        self.gone_uac.remove(&id);
    }

    /// Our BYE for `leg` (dialog `call_id`, `local_tag`) is in flight.
    pub fn closing(&mut self, call_id: &str, local_tag: &str, leg: LegId) {
        self.closing
            .insert((call_id.to_string(), local_tag.to_string()), leg);
    }

    /// Our BYE for `leg` was answered or failed.
    pub fn bye_done(&mut self, leg: LegId) {
        self.closing.retain(|_, l| *l != leg);
    }

    /// Whether our BYE for the dialog (SIP Call-ID, our tag) is in flight.
    pub fn is_closing(&self, call_id: &str, local_tag: &str) -> bool {
        self.closing
            .contains_key(&(call_id.to_string(), local_tag.to_string()))
    }

    /// The number of entries of each index: legs, by dialog, by INVITE
    /// transaction, gone UAC legs, closing dialogs.
    #[cfg(test)]
    fn sizes(&self) -> [usize; 5] {
        [
            self.legs.len(),
            self.by_dialog.len(),
            self.by_server_tx.len(),
            self.gone_uac.len(),
            self.closing.len(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::command::LegRole;
    use crate::call::leg::LegMedia;
    use crate::call::summary::LegState;
    use crate::net::{Source, TransportKind};
    use crate::sip::{self, Method, SipMessage};
    use crate::transaction::{RequestDisposition, TimerSettings, TransactionLayer};
    use std::time::Instant;

    const INVITE: &str = "INVITE sip:1002@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-BRANCH\r\nMax-Forwards: 70\r\nFrom: <sip:1001@127.0.0.1>;tag=f\r\nTo: <sip:1002@127.0.0.1>\r\nCall-ID: CALLID\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:5061>\r\nContent-Length: 0\r\n\r\n";

    fn invite(call_id: &str) -> sip::Request {
        let text = INVITE.replace("CALLID", call_id).replace("BRANCH", call_id);
        match sip::parse(text.as_bytes(), 65535).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn source() -> Source {
        Source {
            profile: ProfileId(0),
            transport: TransportKind::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "127.0.0.1:5061".parse().unwrap(),
            connection: None,
        }
    }

    /// Real server transaction ids, one per INVITE received.
    fn server_tx(layer: &mut TransactionLayer, request: &sip::Request) -> ServerTransactionId {
        match layer.handle_request(Instant::now(), request.clone(), source()) {
            RequestDisposition::New { id, request } if request.method == Method::Invite => id,
            other => panic!("not a new INVITE transaction: {other:?}"),
        }
    }

    fn leg(id: LegId, call: &CallId, sip_call_id: &str, side: Side) -> Box<Leg> {
        Box::new(Leg {
            id,
            call: call.clone(),
            role: LegRole::A,
            profile: ProfileId(0),
            target: "1001".into(),
            side,
            destination: Destination {
                profile: ProfileId(0),
                transport: TransportKind::Udp,
                remote: "127.0.0.1:5061".parse().unwrap(),
                connection: None,
            },
            sip_call_id: sip_call_id.into(),
            local_tag: format!("tag-{}", id.0),
            dialog: None,
            state: LegState::Calling,
            media: LegMedia {
                local: "127.0.0.1:20000".parse().unwrap(),
                origin: crate::sdp::Origin::new("127.0.0.1".parse().unwrap()),
                remote: None,
                formats: Vec::new(),
                last_sent: None,
            },
            held_by_phone: false,
            held_by_switch: false,
            hold_offered: false,
            muted: false,
            early_answer: None,
            ring_deadline: None,
            session: None,
            ending: false,
            timers: Vec::new(),
        })
    }

    fn uas(tx: ServerTransactionId, request: &sip::Request) -> Side {
        Side::Uas {
            invite: request.clone(),
            tx,
            source: source(),
            answered: false,
        }
    }

    fn uac(request: &sip::Request) -> Side {
        Side::Uac {
            invite: request.clone(),
            tx: None,
            auth_tries: 0,
            peer: None,
        }
    }

    /// A call with caller leg `a` (UAS) and callee leg `b` (UAC), bridged.
    fn call_of_two(t: &mut LegTable, layer: &mut TransactionLayer) -> (CallId, LegId, LegId) {
        let shard = Shard::default();
        let call = CallId("c1".into());
        let (a, b) = (t.new_leg_id(&shard), t.new_leg_id(&shard));
        let r = invite("in-1");
        let tx = server_tx(layer, &r);
        t.insert_call(Call::new(call.clone(), "1001", "1002", a, 0));
        t.insert_leg(leg(a, &call, "in-1", uas(tx, &r)));
        t.insert_leg(leg(b, &call, "out-1", uac(&invite("out-1"))));
        let c = t.call_mut(&call).unwrap();
        c.b.push(b);
        c.bridged = Some((a, b));
        (call, a, b)
    }

    #[test]
    fn legs_are_found_by_dialog_and_by_invite_transaction_until_forgotten() {
        let mut layer = TransactionLayer::new(TimerSettings::default());
        let mut t = LegTable::default();
        let (call, a, b) = call_of_two(&mut t, &mut layer);
        assert_ne!(a, b, "leg ids are unique");
        assert_eq!(t.sizes(), [2, 2, 1, 0, 0]);
        assert_eq!(t.leg_of_dialog("in-1", &format!("tag-{}", a.0)), Some(a));
        assert_eq!(t.leg_of_dialog("out-1", &format!("tag-{}", b.0)), Some(b));
        assert_eq!(t.leg_of_dialog("out-1", "other"), None);
        let Side::Uas { tx, .. } = t.leg(a).unwrap().side else {
            unreachable!()
        };
        assert_eq!(t.leg_of_invite(ProfileId(0), tx), Some(a));
        assert_eq!((t.partner(a), t.partner(b)), (Some(b), Some(a)));

        // The caller is answered: no CANCEL finds it any more, once.
        assert!(t.uas_answered(a));
        assert!(!t.uas_answered(a), "already answered");
        assert!(
            !t.uas_answered(b),
            "a UAC leg has no INVITE of ours to answer"
        );
        assert_eq!(t.leg_of_invite(ProfileId(0), tx), None);
        assert_eq!(t.sizes(), [2, 2, 0, 0, 0]);

        // Forgetting the callee leg drops its dialog and its place in the call.
        let gone = t.forget_leg(b).unwrap();
        assert_eq!(gone.id, b);
        assert!(!t.has_leg(b) && t.forget_leg(b).is_none());
        assert_eq!(t.leg_of_dialog("out-1", &format!("tag-{}", b.0)), None);
        let c = t.call(&call).unwrap();
        assert!(c.b.is_empty() && c.bridged.is_none());
        assert_eq!(t.partner(a), None);
        // Unanswered, so its INVITE may still be answered: remembered.
        assert_eq!(t.gone_uac(b).map(|d| d.remote.port()), Some(5061));
        t.uac_done(b);
        assert_eq!(t.gone_uac(b), None);

        t.forget_leg(a).unwrap();
        assert_eq!(t.sizes(), [0, 0, 0, 0, 0], "no index outlives its leg");
        t.remove_call(&call);
        assert!(!t.has_call(&call));
        assert_eq!(t.call_count(), 0);
    }

    #[test]
    fn forgetting_a_caller_still_ringing_drops_its_cancel_entry() {
        let mut layer = TransactionLayer::new(TimerSettings::default());
        let mut t = LegTable::default();
        let (_, a, b) = call_of_two(&mut t, &mut layer);
        t.forget_leg(a).unwrap();
        assert_eq!(t.sizes(), [1, 1, 0, 0, 0], "nothing of the caller is left");
        assert_eq!(t.gone_uac(a), None, "a caller is no UAC leg");
        // An answered UAC leg is not remembered either.
        t.leg_mut(b).unwrap().state = LegState::Answered;
        t.forget_leg(b).unwrap();
        assert_eq!(t.sizes(), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_leg_handed_over_leaves_no_entry_and_comes_back_whole() {
        let mut layer = TransactionLayer::new(TimerSettings::default());
        let mut t = LegTable::default();
        let (call, a, b) = call_of_two(&mut t, &mut layer);
        let moved = t.hand_over_leg(b).unwrap();
        assert_eq!(
            t.sizes(),
            [1, 1, 1, 0, 0],
            "handed over, not gone: no afterlife"
        );
        assert_eq!(t.partner(a), None);
        // Given back (another worker's attended transfer, `handover`).
        t.adopt_leg(moved);
        assert_eq!(t.leg_of_dialog("out-1", &format!("tag-{}", b.0)), Some(b));
        assert_eq!(t.sizes(), [2, 2, 1, 0, 0]);
        // Inserting the same leg again replaces it without a stray entry.
        t.insert_leg(leg(b, &call, "out-1", uac(&invite("out-1"))));
        assert_eq!(t.sizes(), [2, 2, 1, 0, 0]);
        // A gone UAC leg given back is no longer gone.
        t.forget_leg(b).unwrap();
        assert!(t.gone_uac(b).is_some());
        t.adopt_leg(leg(b, &call, "out-1", uac(&invite("out-1"))));
        assert_eq!(t.gone_uac(b), None);
        // A caller still ringing moves without its INVITE transaction: that
        // is the other worker's, and no CANCEL here may find it.
        let Side::Uas { tx, .. } = t.leg(a).unwrap().side else {
            unreachable!()
        };
        let caller = t.hand_over_leg(a).unwrap();
        assert_eq!(t.sizes(), [1, 1, 0, 0, 0]);
        t.adopt_leg(caller);
        assert_eq!(t.leg_of_invite(ProfileId(0), tx), None);
        assert_eq!(t.sizes(), [2, 2, 0, 0, 0]);
        t.forget_leg(a).unwrap();
        t.forget_leg(b).unwrap();
        t.uac_done(b);
        assert_eq!(t.sizes(), [0, 0, 0, 0, 0]);
    }

    #[test]
    fn a_bye_in_flight_is_known_by_its_dialog_until_it_ends() {
        let mut t = LegTable::default();
        let (l1, l2) = (LegId(1), LegId(2));
        t.closing("x", "t1", l1);
        t.closing("y", "t2", l2);
        assert!(t.is_closing("x", "t1") && t.is_closing("y", "t2"));
        assert!(!t.is_closing("x", "t2"));
        t.bye_done(l1);
        assert!(!t.is_closing("x", "t1") && t.is_closing("y", "t2"));
        t.bye_done(l2);
        assert_eq!(t.sizes(), [0, 0, 0, 0, 0]);
    }
}
