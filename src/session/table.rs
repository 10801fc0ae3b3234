//! [`SessionTable`]: calls by id, with dialog-key and interaction indexes,
//! over [`DashMap`] (see the module header for why).
//!
//! Consistency without a global lock: every index entry for a call is
//! written while that call's shard lock is held (`entry` / `get_mut` on
//! `calls`), so a concurrent `remove` either sees the entry in the call's own
//! lists and deletes it, or runs first and the write never happens. Lock
//! order is always `calls` then an index, and nothing takes an index lock
//! then a `calls` lock: lookups through an index copy the call id out and
//! drop that guard before touching `calls`. Each call carries a generation
//! (unique per insertion), and index entries name it, so cleanup after a
//! remove never deletes the entry of a newer call reusing the same id or
//! key, and a lookup never returns a record through a stale entry.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use super::DialogKey;

struct Call<V> {
    gen: u64,
    record: Arc<V>,
    interaction: Option<String>,
    dialogs: Vec<DialogKey>,
}

/// All live calls, shared as `Arc<SessionTable<V>>`. Every method returns
/// owned values (`Arc<V>` clones, `String`s): no guard leaves this module, so
/// nothing can be held across an `.await`.
pub struct SessionTable<V> {
    calls: DashMap<String, Call<V>>,
    /// Dialog key -> (call id, call generation).
    dialogs: DashMap<DialogKey, (String, u64)>,
    /// Interaction id -> its calls, (call id, call generation).
    interactions: DashMap<String, Vec<(String, u64)>>,
    next_gen: AtomicU64,
}

impl<V> std::fmt::Debug for SessionTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTable")
            .field("calls", &self.calls.len())
            .field("dialogs", &self.dialogs.len())
            .finish_non_exhaustive()
    }
}

impl<V: Send + Sync + 'static> Default for SessionTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Send + Sync + 'static> SessionTable<V> {
    pub fn new() -> Self {
        SessionTable {
            calls: DashMap::new(),
            dialogs: DashMap::new(),
            interactions: DashMap::new(),
            next_gen: AtomicU64::new(0),
        }
    }

    /// Inserts a call, or replaces its record if present. The interaction
    /// association becomes `interaction` either way (`None` clears it); the
    /// call's dialog keys are kept on replace.
    pub fn insert(&self, call: &str, record: Arc<V>, interaction: Option<&str>) {
        match self.calls.entry(call.to_owned()) {
            MapEntry::Occupied(mut o) => {
                let c = o.get_mut();
                c.record = record;
                if c.interaction.as_deref() != interaction {
                    if let Some(old) = c.interaction.take() {
                        self.unindex_interaction(&old, call, c.gen);
                    }
                    if let Some(i) = interaction {
                        self.index_interaction(i, call, c.gen);
                    }
                    c.interaction = interaction.map(str::to_owned);
                }
            }
            MapEntry::Vacant(v) => {
                let gen = self.next_gen.fetch_add(1, Ordering::Relaxed);
                if let Some(i) = interaction {
                    self.index_interaction(i, call, gen);
                }
                v.insert(Call {
                    gen,
                    record,
                    interaction: interaction.map(str::to_owned),
                    dialogs: Vec::new(),
                });
            }
        }
    }

    /// Replaces a call's record; false if there is no such call.
    pub fn update(&self, call: &str, record: Arc<V>) -> bool {
        match self.calls.get_mut(call) {
            Some(mut c) => {
                c.record = record;
                true
            }
            None => false,
        }
    }

    /// Removes a call with its dialog keys and interaction index entry.
    pub fn remove(&self, call: &str) -> Option<Arc<V>> {
        let (_, c) = self.calls.remove(call)?;
        // The call is gone from `calls`, so no new index entry can be
        // written for this generation; delete the ones it listed.
        for key in &c.dialogs {
            self.dialogs
                .remove_if(key, |_, (id, gen)| *gen == c.gen && id == call);
        }
        if let Some(i) = &c.interaction {
            self.unindex_interaction(i, call, c.gen);
        }
        Some(c.record)
    }

    pub fn get(&self, call: &str) -> Option<Arc<V>> {
        self.calls.get(call).map(|c| c.record.clone())
    }

    /// Routes `key` to `call` (no-op if the call does not exist). A key
    /// already routed elsewhere moves to this call.
    pub fn add_dialog(&self, call: &str, key: DialogKey) {
        if let Some(mut c) = self.calls.get_mut(call) {
            if !c.dialogs.contains(&key) {
                c.dialogs.push(key.clone());
            }
            let gen = c.gen;
            // Written under the call's lock: see the module header.
            self.dialogs.insert(key, (call.to_owned(), gen));
        }
    }

    pub fn remove_dialog(&self, key: &DialogKey) {
        // The index entry goes while its call's entry is locked, as
        // `add_dialog` adds it: otherwise an add of the same key between
        // the two steps would leave the index pointing at a call whose own
        // list no longer holds the key. Retried if the entry changed owner
        // in between (the call was removed and inserted again).
        loop {
            let Some((call, gen)) = self.dialogs.get(key).map(|e| e.value().clone()) else {
                return;
            };
            let same = |_: &DialogKey, v: &(String, u64)| v.0 == call && v.1 == gen;
            match self.calls.get_mut(&call) {
                Some(mut c) => {
                    if self.dialogs.remove_if(key, same).is_some() {
                        if c.gen == gen {
                            c.dialogs.retain(|k| k != key);
                        }
                        return;
                    }
                }
                None => {
                    if self.dialogs.remove_if(key, same).is_some() {
                        return;
                    }
                }
            }
        }
    }

    /// The call a dialog belongs to: (call id, record).
    pub fn by_dialog(&self, key: &DialogKey) -> Option<(String, Arc<V>)> {
        // Copy out and drop the index guard before locking `calls`.
        let (call, gen) = self.dialogs.get(key).map(|e| e.value().clone())?;
        let record = self
            .calls
            .get(&call)
            .filter(|c| c.gen == gen)?
            .record
            .clone();
        Some((call, record))
    }

    /// The calls an interaction owns, in insertion order.
    pub fn by_interaction(&self, interaction: &str) -> Vec<(String, Arc<V>)> {
        let Some(calls) = self
            .interactions
            .get(interaction)
            .map(|e| e.value().clone())
        else {
            return Vec::new();
        };
        calls
            .into_iter()
            .filter_map(|(call, gen)| {
                let record = self
                    .calls
                    .get(&call)
                    .filter(|c| c.gen == gen)?
                    .record
                    .clone();
                Some((call, record))
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every call at about this moment (shards are read one after another,
    /// so a call inserted or removed meanwhile may or may not appear).
    pub fn snapshot(&self) -> Vec<(String, Arc<V>)> {
        self.calls
            .iter()
            .map(|c| (c.key().clone(), c.record.clone()))
            .collect()
    }

    /// Called with the call's shard lock held.
    fn index_interaction(&self, interaction: &str, call: &str, gen: u64) {
        self.interactions
            .entry(interaction.to_owned())
            .or_default()
            .push((call.to_owned(), gen));
    }

    fn unindex_interaction(&self, interaction: &str, call: &str, gen: u64) {
        if let Some(mut calls) = self.interactions.get_mut(interaction) {
            calls.retain(|(id, g)| !(*g == gen && id == call));
        }
        self.interactions
            .remove_if(interaction, |_, calls| calls.is_empty());
    }
}

#[cfg(test)]
impl<V: Send + Sync + 'static> SessionTable<V> {
    /// Every index entry names a live call of the same generation that
    /// lists it, and every call's interaction and dialogs are indexed.
    pub(crate) fn check_indexes(&self) -> Result<(), String> {
        for e in self.dialogs.iter() {
            let (call, gen) = e.value();
            let c = self
                .calls
                .get(call)
                .ok_or(format!("{:?} -> missing {call}", e.key()))?;
            if c.gen != *gen || !c.dialogs.contains(e.key()) {
                return Err(format!("{:?} -> stale {call}", e.key()));
            }
        }
        for e in self.interactions.iter() {
            if e.value().is_empty() {
                return Err(format!("empty interaction entry {}", e.key()));
            }
            for (call, gen) in e.value() {
                let c = self
                    .calls
                    .get(call)
                    .ok_or(format!("{} -> missing {call}", e.key()))?;
                if c.gen != *gen || c.interaction.as_deref() != Some(e.key().as_str()) {
                    return Err(format!("{} -> stale {call}", e.key()));
                }
            }
        }
        for c in self.calls.iter() {
            if let Some(i) = &c.interaction {
                let listed = self.interactions.get(i).is_some_and(|v| {
                    v.iter()
                        .filter(|(id, g)| *g == c.gen && id == c.key())
                        .count()
                        == 1
                });
                if !listed {
                    return Err(format!("{} not indexed once under {i}", c.key()));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn indexes_empty(&self) -> bool {
        self.dialogs.is_empty() && self.interactions.is_empty()
    }
}
