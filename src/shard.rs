//! Which endpoint worker owns a dialog, a call or a media leg.
//!
//! The driver runs several endpoint workers, each owning the transactions,
//! dialogs and calls of its shard. One function decides ownership, and
//! everything that names a dialog or a call is routed by it: a SIP message
//! by its Call-ID, a command by its call id, a media event by its leg. So
//! that the identifiers the switch makes itself (the Call-IDs of the legs it
//! places, the call ids it hands out) come back to the worker that made
//! them, a worker draws them until the function maps them to itself
//! ([`Shard::generate`]): no format to parse, and an identifier chosen by a
//! peer or by the layer above (`POST /v1/calls` with `call`) is routed by the
//! same rule. Media legs are numbered so that `leg % count` is the owner.
//!
//! Pure: no I/O, no clock. The hash keys are random per process (a peer
//! cannot aim its Call-IDs at one worker) and shared by every worker, so all
//! of them agree.

use std::hash::{BuildHasher, RandomState};

/// The shard function of one run: how many workers, and the hash keys.
#[derive(Clone, Debug)]
pub struct Shards {
    count: usize,
    keys: RandomState,
}

impl Default for Shards {
    /// One worker owns everything.
    fn default() -> Self {
        Shards::new(1)
    }
}

impl Shards {
    /// `count` workers (at least one).
    pub fn new(count: usize) -> Self {
        Shards {
            count: count.max(1),
            keys: RandomState::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The owner of a SIP Call-ID or a call id.
    pub fn of_key(&self, key: &str) -> usize {
        if self.count == 1 {
            return 0;
        }
        (self.keys.hash_one(key.trim()) % self.count as u64) as usize
    }

    /// The owner of a media leg.
    pub fn of_leg(&self, leg: u64) -> usize {
        (leg % self.count as u64) as usize
    }

    /// Worker `index`'s view.
    pub fn shard(&self, index: usize) -> Shard {
        Shard {
            index: index % self.count,
            map: self.clone(),
        }
    }
}

/// One worker's place in the [`Shards`].
#[derive(Clone, Debug, Default)]
pub struct Shard {
    pub index: usize,
    pub map: Shards,
}

impl Shard {
    /// Whether this worker owns `key` (a Call-ID or a call id).
    pub fn owns_key(&self, key: &str) -> bool {
        self.map.of_key(key) == self.index
    }

    /// A fresh identifier this worker owns: `make` is asked again until one
    /// maps here (on average `count` draws; `make` must be random).
    pub fn generate<T: AsRef<str>>(&self, mut make: impl FnMut() -> T) -> T {
        loop {
            let id = make();
            if self.owns_key(id.as_ref()) {
                return id;
            }
        }
    }

    /// The `n`th media leg number of this worker (`n` from 1): `leg % count`
    /// is the worker, and worker 0 of one never hands out 0.
    pub fn leg_number(&self, n: u64) -> u64 {
        n * self.map.count as u64 + self.index as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_and_legs_map_back_to_their_worker() {
        let shards = Shards::new(3);
        for i in 0..3 {
            let s = shards.shard(i);
            for _ in 0..50 {
                let id = s.generate(|| format!("{:032x}@switchback", rand::random::<u128>()));
                assert_eq!(shards.of_key(&id), i, "{id}");
            }
            for n in 1..20 {
                assert_eq!(shards.of_leg(s.leg_number(n)), i);
            }
        }
    }

    #[test]
    fn every_worker_agrees_and_one_worker_owns_all() {
        let shards = Shards::new(4);
        let copy = shards.shard(2).map;
        for k in ["a@h", "b@h", " c@h ", "c@h"] {
            assert_eq!(shards.of_key(k), copy.of_key(k));
        }
        assert_eq!(shards.of_key(" c@h "), shards.of_key("c@h"));
        let one = Shards::default();
        assert_eq!(one.of_key("anything"), 0);
        assert_eq!(one.shard(0).leg_number(1), 1);
    }

    #[test]
    fn keys_spread_over_workers() {
        let shards = Shards::new(2);
        let on_zero = (0..1000)
            .filter(|n| shards.of_key(&format!("{n}-1234@127.0.0.1")) == 0)
            .count();
        assert!(
            (350..650).contains(&on_zero),
            "{on_zero} of 1000 on worker 0"
        );
    }
}
