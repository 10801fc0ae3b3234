//! The session table: every live call, looked up from three directions —
//! by SIP dialog identifiers (Call-ID + our tag, per arriving message), by
//! call id (commands from the HTTP layer) and by the interaction id that
//! owns the call (the desktop).
//!
//! Owns the indexes and their consistency; does not own the call records
//! (generic `V`, defined by the call layer) nor any I/O. No global mutex,
//! and no guard ever leaves this module: lookups hand out `Arc<V>` clones,
//! so nothing can be held across an `.await`.
//!
//! Why dashmap (sharded RwLocks) and not papaya (lock-free reads), as the
//! card asked: measured, not assumed. `cargo bench --bench session_table`
//! runs the same small table over both maps (plus this module's) on 2
//! threads at once, 10,000 live calls, 1,000,000 ops per thread, median of
//! 5 interleaved rounds, on the 2-core development machine (busy with other
//! builds: absolute figures are low and noisy, the ratios held over 3 runs):
//!
//! | mix                               | dashmap         | papaya          | this table      |
//! |-----------------------------------|-----------------|-----------------|-----------------|
//! | A: endpoint (by_dialog + churn)   | 0.22 Mops/s     | 0.19 Mops/s     | 0.25 Mops/s     |
//! |    p99 lookup                     | 2.5 µs          | 2.8 µs          | 2.5 µs          |
//! | A: readers (get, by_interaction)  | 0.32 Mops/s     | 0.17 Mops/s     | 0.30 Mops/s     |
//! |    p99 lookup                     | 1.3 µs          | 1.7 µs          | 1.4 µs          |
//! | B: two endpoints, total           | 0.61 Mops/s     | 0.38 Mops/s     | 0.62 Mops/s     |
//! |    p99 lookup                     | 2.1-2.3 µs      | 2.8-2.9 µs      | 2.0-2.1 µs      |
//!
//! (An earlier run, 2,000,000 ops, 3 rounds: mix A total 0.74 vs 0.67, mix
//! B 1.11 vs 0.63 Mops/s, dashmap first.) dashmap was as fast or faster in
//! every cell, 1.1-1.9x overall: with 2 threads on 8 shards two operations
//! rarely meet on one shard, so its read locks are an uncontended atomic,
//! while papaya pays for a reclamation guard per map access (two per
//! dialog lookup) and for a copy-on-write allocation per update. dashmap
//! also lets an index be written under the owning call's shard lock, which
//! makes remove-vs-insert races simple to get right (see `table.rs`);
//! papaya needs publish-then-validate with undo for the same guarantee.
//! What papaya would buy — a reader never waits for a preempted writer —
//! did not show in the p99s here; if profiles ever show shard contention
//! (far more cores, or hot calls), the bench keeps both variants to re-run.

mod table;

#[cfg(test)]
mod tests;

pub use table::SessionTable;

/// SIP dialog identifiers as seen from our side: the Call-ID and our tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
}
