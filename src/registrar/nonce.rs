//! Stateless digest nonces and the nonce-count replay table.
//!
//! A nonce is `hex(issued_ms || serial || HMAC-SHA256(secret, issued_ms ||
//! serial || realm)[..16])`: the registrar can tell a nonce it minted, and
//! how old it is, without remembering it (RFC 7616 §3.3 and §5.4 suggest
//! exactly this). `issued_ms` counts milliseconds from the registrar's own
//! epoch (its first `now`), so nothing here reads a clock. The serial makes
//! two nonces minted in the same millisecond differ, which matters because
//! the replay table is keyed by nonce.
//!
//! Replay protection (RFC 7616 §3.4 `nc`, §5.5): for every nonce that has
//! authenticated a request with `qop`, the highest `nc` seen is kept until
//! the nonce expires. Memory is bounded: when the table is full the oldest
//! nonce is forgotten and a floor is raised so that every nonce minted at or
//! before it is treated as stale (the client gets a `stale=true` challenge
//! and carries on with a fresh nonce) rather than becoming replayable.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of MAC kept in a nonce: 128 bits is plenty against forgery.
const MAC_LEN: usize = 16;
const NONCE_BYTES: usize = 8 + 4 + MAC_LEN;

/// Identifies a minted nonce: when it was issued and its serial. Ordered by age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceId {
    pub issued_ms: u64,
    pub serial: u32,
}

/// Mints and verifies nonces for one realm with one secret. Clones share
/// the serial counter, so the registrars of several endpoint workers never
/// mint the same nonce (one atomic increment per challenge, no lock).
#[derive(Clone)]
pub struct NonceMinter {
    secret: [u8; 32],
    next_serial: Arc<AtomicU32>,
}

impl std::fmt::Debug for NonceMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("NonceMinter")
            .field("next_serial", &self.next_serial.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl NonceMinter {
    pub fn new(secret: [u8; 32]) -> Self {
        NonceMinter {
            secret,
            next_serial: Arc::new(AtomicU32::new(0)),
        }
    }

    /// A fresh nonce issued at `issued_ms` for `realm`.
    pub fn mint(&mut self, issued_ms: u64, realm: &str) -> String {
        let id = NonceId {
            issued_ms,
            serial: self.next_serial.fetch_add(1, Ordering::Relaxed),
        };
        let mut bytes = Vec::with_capacity(NONCE_BYTES);
        bytes.extend_from_slice(&id.issued_ms.to_be_bytes());
        bytes.extend_from_slice(&id.serial.to_be_bytes());
        bytes.extend_from_slice(&self.mac(id, realm)[..MAC_LEN]);
        hex::encode(bytes)
    }

    /// The nonce's identity if this minter made it for `realm`, `None` for
    /// anything forged, truncated or minted with another secret.
    pub fn verify(&self, nonce: &str, realm: &str) -> Option<NonceId> {
        if nonce.len() != NONCE_BYTES * 2 {
            return None;
        }
        let bytes = hex::decode(nonce).ok()?;
        let issued_ms = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let serial = u32::from_be_bytes(bytes.get(8..12)?.try_into().ok()?);
        let id = NonceId { issued_ms, serial };
        let mac = self.mac(id, realm);
        bool::from(mac.get(..MAC_LEN)?.ct_eq(bytes.get(12..)?)).then_some(id)
    }

    fn mac(&self, id: NonceId, realm: &str) -> [u8; 32] {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        mac.update(&id.issued_ms.to_be_bytes());
        mac.update(&id.serial.to_be_bytes());
        mac.update(realm.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// How a nonce-count checks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NcCheck {
    /// Higher than any seen for this nonce: accepted and recorded.
    Fresh,
    /// Not higher than one already accepted: a replay.
    Replay,
    /// The nonce was forgotten to bound memory: answer as if stale.
    Forgotten,
}

/// Lock shards of the replay table at most.
const COUNT_SHARDS: usize = 16;

/// The highest `nc` accepted per live nonce, shared by the registrars of
/// every endpoint worker (a client may use one nonce on several Call-IDs,
/// which land on different workers). Split by nonce serial into up to
/// [`COUNT_SHARDS`] tables, each under its own mutex held only for one
/// lookup: consecutive challenges land on different tables, so workers
/// rarely meet on one. Each table keeps its own capacity and floor.
#[derive(Debug, Clone)]
pub struct NonceCounts {
    tables: Arc<[Mutex<CountTable>]>,
}

impl NonceCounts {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        // Small tables (tests, tiny limits) stay whole: one floor for all.
        let shards = (capacity / 64).clamp(1, COUNT_SHARDS);
        NonceCounts {
            tables: (0..shards)
                .map(|_| Mutex::new(CountTable::new(capacity / shards)))
                .collect(),
        }
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "`new` makes at least one table and the index is taken modulo their count"
    )]
    fn table(&self, id: NonceId) -> std::sync::MutexGuard<'_, CountTable> {
        let t = &self.tables[id.serial as usize % self.tables.len()];
        // A panic elsewhere cannot leave a table half-updated: every
        // operation completes or changes nothing, so a poisoned lock is usable.
        t.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a nonce was dropped from the table (and so must be refused).
    pub fn is_forgotten(&self, id: NonceId) -> bool {
        self.table(id).is_forgotten(id)
    }

    /// Checks `nc` against the nonce's history and records it when fresh.
    /// `now_ms` and `lifetime_ms` prune nonces that expired.
    pub fn check_and_record(
        &mut self,
        id: NonceId,
        nc: u32,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> NcCheck {
        self.table(id).check_and_record(id, nc, now_ms, lifetime_ms)
    }

    /// Forgets nonces older than their lifetime.
    pub fn prune(&mut self, now_ms: u64, lifetime_ms: u64) {
        for t in self.tables.iter() {
            t.lock()
                .unwrap_or_else(|e| e.into_inner())
                .prune(now_ms, lifetime_ms);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).seen.len())
            .sum()
    }
}

/// One table of the replay table.
#[derive(Debug)]
struct CountTable {
    seen: BTreeMap<NonceId, u32>,
    capacity: usize,
    /// Nonces at or below this were (or may have been) forgotten.
    floor: Option<NonceId>,
}

impl CountTable {
    fn new(capacity: usize) -> Self {
        CountTable {
            seen: BTreeMap::new(),
            capacity: capacity.max(1),
            floor: None,
        }
    }

    /// Whether a nonce was dropped from the table (and so must be refused).
    pub fn is_forgotten(&self, id: NonceId) -> bool {
        self.floor.is_some_and(|f| id <= f)
    }

    /// Checks `nc` against the nonce's history and records it when fresh.
    /// `now_ms` and `lifetime_ms` prune nonces that expired.
    pub fn check_and_record(
        &mut self,
        id: NonceId,
        nc: u32,
        now_ms: u64,
        lifetime_ms: u64,
    ) -> NcCheck {
        if self.is_forgotten(id) {
            return NcCheck::Forgotten;
        }
        if let Some(highest) = self.seen.get_mut(&id) {
            if nc <= *highest {
                return NcCheck::Replay;
            }
            *highest = nc;
            return NcCheck::Fresh;
        }
        if nc == 0 {
            // RFC 7616 §3.4: the count starts at 00000001.
            return NcCheck::Replay;
        }
        self.prune(now_ms, lifetime_ms);
        while self.seen.len() >= self.capacity {
            if let Some((oldest, _)) = self.seen.pop_first() {
                self.floor = Some(self.floor.map_or(oldest, |f| f.max(oldest)));
            }
        }
        if self.is_forgotten(id) {
            return NcCheck::Forgotten;
        }
        self.seen.insert(id, nc);
        NcCheck::Fresh
    }

    /// Forgets nonces older than their lifetime: they can no longer
    /// authenticate anything, so their counts are useless.
    pub fn prune(&mut self, now_ms: u64, lifetime_ms: u64) {
        while let Some((id, _)) = self.seen.first_key_value() {
            if id.issued_ms.saturating_add(lifetime_ms) < now_ms {
                self.seen.pop_first();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_nonces_verify_and_differ() {
        let mut m = NonceMinter::new([7; 32]);
        let a = m.mint(1000, "sw");
        let b = m.mint(1000, "sw");
        assert_ne!(a, b);
        assert_eq!(
            m.verify(&a, "sw"),
            Some(NonceId {
                issued_ms: 1000,
                serial: 0
            })
        );
        assert_eq!(m.verify(&b, "sw").unwrap().serial, 1);
        assert_eq!(m.verify(&a, "other"), None);
        assert_eq!(NonceMinter::new([8; 32]).verify(&a, "sw"), None);
    }

    #[test]
    fn tampered_nonces_fail() {
        let mut m = NonceMinter::new([7; 32]);
        let a = m.mint(5, "sw");
        // Claim a later issue time with the old MAC.
        let forged = format!("{}{}", "00000000000fffff", &a[16..]);
        assert_eq!(m.verify(&forged, "sw"), None);
        assert_eq!(m.verify(&a[..a.len() - 2], "sw"), None);
        assert_eq!(m.verify("zz", "sw"), None);
        assert_eq!(m.verify(&"g".repeat(a.len()), "sw"), None);
    }

    #[test]
    fn nc_must_grow() {
        let id = NonceId {
            issued_ms: 0,
            serial: 0,
        };
        let mut t = NonceCounts::new(8);
        assert_eq!(t.check_and_record(id, 1, 0, 1000), NcCheck::Fresh);
        assert_eq!(t.check_and_record(id, 1, 0, 1000), NcCheck::Replay);
        assert_eq!(t.check_and_record(id, 0x10, 0, 1000), NcCheck::Fresh);
        assert_eq!(t.check_and_record(id, 0x100, 0, 1000), NcCheck::Fresh);
        assert_eq!(t.check_and_record(id, 0xff, 0, 1000), NcCheck::Replay);
        assert_eq!(t.check_and_record(id, u32::MAX, 0, 1000), NcCheck::Fresh);
    }

    #[test]
    fn table_is_bounded_and_forgotten_nonces_are_refused() {
        let mut t = NonceCounts::new(2);
        let ids: Vec<_> = (0..3)
            .map(|s| NonceId {
                issued_ms: 10,
                serial: s,
            })
            .collect();
        for id in &ids {
            assert_eq!(t.check_and_record(*id, 1, 10, 1000), NcCheck::Fresh);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.check_and_record(ids[0], 2, 10, 1000), NcCheck::Forgotten);
        assert_eq!(t.check_and_record(ids[2], 2, 10, 1000), NcCheck::Fresh);
    }

    #[test]
    fn clones_share_serials_and_counts() {
        let mut a = NonceMinter::new([7; 32]);
        let mut b = a.clone();
        let x = a.mint(1, "sw");
        let y = b.mint(1, "sw");
        assert_ne!(x, y);
        let (ix, iy) = (a.verify(&x, "sw").unwrap(), b.verify(&y, "sw").unwrap());
        let mut t = NonceCounts::new(100_000);
        let mut u = t.clone();
        assert_eq!(t.check_and_record(ix, 1, 1, 1000), NcCheck::Fresh);
        assert_eq!(u.check_and_record(iy, 1, 1, 1000), NcCheck::Fresh);
        // A replay seen by the other worker's copy.
        assert_eq!(u.check_and_record(ix, 1, 1, 1000), NcCheck::Replay);
        assert_eq!(t.check_and_record(iy, 2, 1, 1000), NcCheck::Fresh);
        assert_eq!(t.len(), 2);
        t.prune(5000, 1000);
        assert_eq!(u.len(), 0);
    }

    #[test]
    fn expired_nonces_are_pruned() {
        let mut t = NonceCounts::new(8);
        let old = NonceId {
            issued_ms: 0,
            serial: 0,
        };
        let new = NonceId {
            issued_ms: 5000,
            serial: 1,
        };
        t.check_and_record(old, 1, 0, 1000);
        t.check_and_record(new, 1, 5000, 1000);
        assert_eq!(t.len(), 1);
        assert!(!t.is_forgotten(old));
    }
}
