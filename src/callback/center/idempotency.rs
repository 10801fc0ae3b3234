//! `Idempotency-Key`s: which interaction a create with a given key made,
//! remembered for the configured window (`CallbackSettings::
//! idempotency_window`), so a retried create answers its first result
//! instead of making a second callback. Each key is written to the store
//! with the create it belongs to, and comes back at start-up.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::callback::model::{InteractionId, Write};

#[derive(Debug)]
pub(super) struct IdempotencyKeys {
    window: SignedDuration,
    /// Key -> the interaction it created, and when.
    keys: HashMap<String, (InteractionId, Timestamp)>,
}

impl IdempotencyKeys {
    pub(super) fn new(
        window: std::time::Duration,
        recovered: Vec<(String, InteractionId, Timestamp)>,
    ) -> IdempotencyKeys {
        IdempotencyKeys {
            window: SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX),
            keys: recovered
                .into_iter()
                .map(|(k, id, at)| (k, (id, at)))
                .collect(),
        }
    }

    /// The interaction `key` created, while the key is within its window.
    pub(super) fn find(&self, key: &str, now: Timestamp) -> Option<&InteractionId> {
        let (id, at) = self.keys.get(key)?;
        (now.duration_since(*at) < self.window).then_some(id)
    }

    /// Remembers that `key` created (or was merged into) `id`; the write
    /// to commit with it.
    pub(super) fn remember(&mut self, key: String, id: &InteractionId, now: Timestamp) -> Write {
        self.keys.insert(key.clone(), (id.clone(), now));
        Write::Idempotency {
            key,
            id: id.clone(),
            at: now,
        }
    }

    /// Forgets the keys older than the window; returns the cut-off, for
    /// the store to forget the same ones.
    pub(super) fn forget_old(&mut self, now: Timestamp) -> Timestamp {
        let before = now.checked_sub(self.window).unwrap_or(Timestamp::MIN);
        self.keys.retain(|_, (_, at)| *at >= before);
        before
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_key_answers_within_its_window_only() {
        let id = InteractionId("cb-1".into());
        let mut keys = IdempotencyKeys::new(Duration::from_secs(100), Vec::new());
        assert_eq!(keys.find("k", at(0)), None);
        let write = keys.remember("k".into(), &id, at(0));
        assert_eq!(
            write,
            Write::Idempotency {
                key: "k".into(),
                id: id.clone(),
                at: at(0)
            }
        );
        assert_eq!(keys.find("k", at(99)), Some(&id));
        assert_eq!(keys.find("k", at(100)), None, "the window is half-open");
        assert_eq!(keys.forget_old(at(100)), at(0));
        assert_eq!(keys.find("k", at(50)), Some(&id), "kept at the cut-off");
        assert_eq!(keys.forget_old(at(101)), at(1));
        assert_eq!(keys.find("k", at(50)), None, "forgotten");
    }

    #[test]
    fn recovered_keys_answer_and_an_endless_window_saturates() {
        let id = InteractionId("cb-2".into());
        let keys = IdempotencyKeys::new(Duration::MAX, vec![("k".into(), id.clone(), at(0))]);
        assert_eq!(keys.find("k", at(1_000_000)), Some(&id));
        let mut keys = keys;
        assert_eq!(keys.forget_old(at(0)), Timestamp::MIN);
    }
}
