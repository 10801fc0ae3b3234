//! The live interactions (every callback not in a final state) and the
//! indexes over them: which are queued for an agent, which waiting one a
//! duplicate request joins (by queue and first number), and which
//! interaction each voice call belongs to.
//!
//! The indexes follow an interaction's state and request, so both change
//! only through this type ([`Interactions::set_state`],
//! [`Interactions::update_request`]); the rest of a record is the center's
//! to change through [`Interactions::get_mut`]. Nothing here writes,
//! emits or decides: that is the center's.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;

use crate::callback::action::ActionError;
use crate::callback::model::{Callback, InteractionId, State};
use crate::callback::request::CallbackRequest;
use crate::callback::settings::WebcallbackOptions;

/// A live interaction: the record plus what only matters while it lives.
#[derive(Debug, Clone)]
pub(super) struct Live {
    pub(super) cb: Callback,
    /// The options in force (defaults with the routing data's overrides).
    pub(super) options: WebcallbackOptions,
    /// Agents that rejected it or let its offer time out, skipped for it
    /// until the time beside them (`CallbackSettings::exclusion`): another
    /// agent gets it first, yet a team of one is not refused it for ever.
    pub(super) excluded: Vec<(String, Timestamp)>,
    /// When the current offer ends (timeout, or auto-answer).
    pub(super) offer_deadline: Option<Timestamp>,
    /// The current offer is accepted when its deadline comes.
    pub(super) auto_accept: bool,
    /// The customer was reached at least once since it was accepted (for
    /// the "reschedule before call" privilege).
    pub(super) reached: bool,
    /// When its agent accepted it (for the handling time).
    pub(super) accepted_at: Option<Timestamp>,
    /// `cb.attempts` when its agent accepted it: more now means the contact
    /// has been called since (an attempt whose agent leg failed is taken
    /// back). `done` on one never called closes it unprocessed, which is
    /// `mark-done`'s privilege. `None` when unknown (recovered at start-up):
    /// counted as called.
    pub(super) attempts_at_accept: Option<u32>,
    /// Where the voice call's consultation stands, from its call events
    /// (`consult-ringing`, `consulting`, `conferenced`; `None`: two-party).
    /// Not stored: a restart ends calls.
    pub(super) consult: Option<&'static str>,
    /// The agent supervising the voice call, from the first supervision
    /// action until its leg leaves (`call-supervisor-left`).
    pub(super) supervisor: Option<String>,
}

impl Live {
    pub(super) fn new(cb: Callback, options: WebcallbackOptions) -> Live {
        Live {
            cb,
            options,
            excluded: Vec::new(),
            offer_deadline: None,
            auto_accept: false,
            reached: false,
            accepted_at: None,
            attempts_at_accept: None,
            consult: None,
            supervisor: None,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Interactions {
    live: HashMap<InteractionId, Live>,
    /// Those in `Queued`, waiting for an agent.
    queued: HashSet<InteractionId>,
    /// Waiting ones by `CallbackRequest::duplicate_key`, to merge
    /// duplicates into (the latest filed wins a shared key).
    pending: HashMap<(String, String), InteractionId>,
    /// The interaction each voice call belongs to, until the call ends
    /// (which may be after the interaction: a parked one's call goes on).
    by_call: HashMap<String, InteractionId>,
}

impl Interactions {
    /// Adds an interaction (new, or recovered at start-up), filed by the
    /// state it is in.
    pub(super) fn insert(&mut self, live: Live) {
        let id = live.cb.id.clone();
        let (state, key) = (live.cb.state, live.cb.request.duplicate_key());
        self.live.insert(id.clone(), live);
        self.file(&id, state, key);
    }

    pub(super) fn get(&self, id: &InteractionId) -> Option<&Live> {
        self.live.get(id)
    }

    /// The interaction, or the API's "no callback".
    pub(super) fn find(&self, id: &InteractionId) -> Result<&Live, ActionError> {
        self.get(id)
            .ok_or_else(|| ActionError::NoCallback(id.clone()))
    }

    /// Everything but the state and the request, which the indexes follow
    /// (`set_state`, `update_request`).
    pub(super) fn get_mut(&mut self, id: &InteractionId) -> Option<&mut Live> {
        self.live.get_mut(id)
    }

    /// Moves the interaction to `to` and refiles it; the state it left.
    pub(super) fn set_state(
        &mut self,
        id: &InteractionId,
        to: State,
        now: Timestamp,
    ) -> Option<State> {
        let live = self.live.get_mut(id)?;
        let from = live.cb.state;
        live.cb.state = to;
        live.cb.updated_at = now;
        let key = live.cb.request.duplicate_key();
        self.file(id, to, key);
        Some(from)
    }

    /// Changes the interaction's request (a merge, a new first number),
    /// moving it to its new duplicate key.
    pub(super) fn update_request(
        &mut self,
        id: &InteractionId,
        change: impl FnOnce(&mut CallbackRequest),
    ) {
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        let old = live.cb.request.duplicate_key();
        change(&mut live.cb.request);
        let (state, key) = (live.cb.state, live.cb.request.duplicate_key());
        if key != old && self.pending.get(&old) == Some(id) {
            self.pending.remove(&old);
        }
        self.file(id, state, key);
    }

    /// Takes a finished interaction out (and out of every index but the
    /// calls', which its call's end clears).
    pub(super) fn remove(&mut self, id: &InteractionId) -> Option<Live> {
        let live = self.live.remove(id)?;
        self.queued.remove(id);
        let key = live.cb.request.duplicate_key();
        if self.pending.get(&key) == Some(id) {
            self.pending.remove(&key);
        }
        Some(live)
    }

    /// The waiting interaction a request for the same queue and first
    /// number joins.
    pub(super) fn duplicate_of(&self, request: &CallbackRequest) -> Option<&InteractionId> {
        self.pending.get(&request.duplicate_key())
    }

    pub(super) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The records waiting for an agent (in no order).
    pub(super) fn queued(&self) -> impl Iterator<Item = &Callback> {
        self.queued
            .iter()
            .filter_map(|id| self.live.get(id).map(|l| &l.cb))
    }

    /// Every live record (in no order).
    pub(super) fn records(&self) -> impl Iterator<Item = &Callback> {
        self.live.values().map(|l| &l.cb)
    }

    pub(super) fn len(&self) -> usize {
        self.live.len()
    }

    /// `call` is placed for `id`.
    pub(super) fn bind_call(&mut self, call: &str, id: &InteractionId) {
        self.by_call.insert(call.to_string(), id.clone());
    }

    /// The interaction `call` was placed for.
    pub(super) fn call_owner(&self, call: &str) -> Option<&InteractionId> {
        self.by_call.get(call)
    }

    /// Forgets `call` (it ended, or was never placed); whose it was.
    pub(super) fn unbind_call(&mut self, call: &str) -> Option<InteractionId> {
        self.by_call.remove(call)
    }

    /// Files `id` by its state: queued or not, a duplicate's target while
    /// it waits.
    fn file(&mut self, id: &InteractionId, state: State, key: (String, String)) {
        if state == State::Queued {
            self.queued.insert(id.clone());
        } else {
            self.queued.remove(id);
        }
        if state.is_waiting() {
            self.pending.insert(key, id.clone());
        } else if self.pending.get(&key) == Some(id) {
            self.pending.remove(&key);
        }
    }

    /// What the indexes promise: exactly the queued ones are in `queued`,
    /// and every duplicate key points at a live waiting interaction with
    /// that key.
    #[cfg(test)]
    pub(super) fn check(&self) -> Result<(), String> {
        for (id, live) in &self.live {
            if (live.cb.state == State::Queued) != self.queued.contains(id) {
                return Err(format!(
                    "{id} in {} and queued index disagree",
                    live.cb.state
                ));
            }
        }
        if let Some(id) = self.queued.iter().find(|id| !self.live.contains_key(*id)) {
            return Err(format!("queued index names {id}, not live"));
        }
        for (key, id) in &self.pending {
            match self.live.get(id) {
                Some(l) if l.cb.state.is_waiting() && l.cb.request.duplicate_key() == *key => {}
                Some(l) => {
                    return Err(format!(
                        "duplicate key {key:?} names {id} in {} with key {:?}",
                        l.cb.state,
                        l.cb.request.duplicate_key()
                    ))
                }
                None => return Err(format!("duplicate key {key:?} names {id}, not live")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn live(id: &str, number: &str, state: State) -> Live {
        let request = CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: vec![number.into()],
            ..CallbackRequest::default()
        };
        let cb = Callback {
            state,
            ..Callback::new(InteractionId(id.into()), request, at(0))
        };
        Live::new(cb, super::super::testlab::settings().options)
    }

    fn id(s: &str) -> InteractionId {
        InteractionId(s.into())
    }

    fn request(number: &str) -> CallbackRequest {
        CallbackRequest {
            queue_id: "support".into(),
            callback_numbers: vec![number.into()],
            ..CallbackRequest::default()
        }
    }

    #[test]
    fn the_indexes_follow_each_state() {
        let mut all = Interactions::default();
        all.insert(live("cb-1", "+331", State::Scheduled));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+331")), Some(&id("cb-1")));
        assert!(!all.has_queued());

        all.set_state(&id("cb-1"), State::Queued, at(1));
        all.check().unwrap();
        assert_eq!(all.queued().count(), 1);
        assert_eq!(all.duplicate_of(&request("+331")), Some(&id("cb-1")));

        // With an agent: neither queued nor a duplicate's target.
        assert_eq!(
            all.set_state(&id("cb-1"), State::Offered, at(2)),
            Some(State::Queued)
        );
        all.check().unwrap();
        assert!(!all.has_queued());
        assert_eq!(all.duplicate_of(&request("+331")), None);
        assert_eq!(all.get(&id("cb-1")).unwrap().cb.updated_at, at(2));

        all.set_state(&id("cb-1"), State::Rescheduled, at(3));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+331")), Some(&id("cb-1")));

        all.set_state(&id("cb-1"), State::Done, at(4));
        assert!(all.remove(&id("cb-1")).is_some());
        all.check().unwrap();
        assert_eq!(all.len(), 0);
        assert_eq!(all.duplicate_of(&request("+331")), None);
        assert_eq!(all.set_state(&id("cb-1"), State::Queued, at(5)), None);
    }

    #[test]
    fn a_new_first_number_moves_the_duplicate_key() {
        let mut all = Interactions::default();
        all.insert(live("cb-1", "+331", State::Scheduled));
        all.update_request(&id("cb-1"), |r| r.call_first("+332"));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+331")), None);
        assert_eq!(all.duplicate_of(&request("+332")), Some(&id("cb-1")));
        // A merge keeps the first number, and so the key.
        all.update_request(&id("cb-1"), |r| r.merge(&request("+333")));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+332")), Some(&id("cb-1")));
        // Not waiting: the new key is not filed, and the old one goes.
        all.set_state(&id("cb-1"), State::Offered, at(1));
        all.update_request(&id("cb-1"), |r| r.call_first("+334"));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+334")), None);
    }

    #[test]
    fn removing_one_of_two_sharing_a_key_keeps_the_other_filed() {
        let mut all = Interactions::default();
        all.insert(live("cb-1", "+331", State::Queued));
        all.insert(live("cb-2", "+331", State::Queued));
        assert_eq!(all.duplicate_of(&request("+331")), Some(&id("cb-2")));
        all.remove(&id("cb-1"));
        all.check().unwrap();
        assert_eq!(all.duplicate_of(&request("+331")), Some(&id("cb-2")));
        assert_eq!(all.queued().count(), 1);
    }

    #[test]
    fn calls_point_at_their_interaction_until_forgotten() {
        let mut all = Interactions::default();
        all.insert(live("cb-1", "+331", State::ReadyToCall));
        all.bind_call("wcb-1", &id("cb-1"));
        assert_eq!(all.call_owner("wcb-1"), Some(&id("cb-1")));
        // The interaction may end before its call does.
        all.remove(&id("cb-1"));
        assert_eq!(all.call_owner("wcb-1"), Some(&id("cb-1")));
        assert_eq!(all.unbind_call("wcb-1"), Some(id("cb-1")));
        assert_eq!(all.call_owner("wcb-1"), None);
        assert_eq!(all.unbind_call("wcb-1"), None);
    }

    #[test]
    fn an_unknown_interaction_is_the_api_s_no_callback() {
        let all = Interactions::default();
        assert_eq!(
            all.find(&id("cb-9")).err(),
            Some(ActionError::NoCallback(id("cb-9")))
        );
    }
}
