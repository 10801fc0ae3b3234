//! Integrations with the contact center's own systems over HTTP: the
//! enrichment webhook consulted before a callback request is accepted
//! (docs/enrichment.md), and workforce-management notifications delivered from a
//! durable outbox (docs/notifications.md).
//!
//! Owns: outbound HTTP (one client module for both), the merge rules of an
//! enrichment answer, which events go where, the outbox's delivery policy.
//! Does not own: the interactions (the center decides what happened) or
//! the store (it commits what it is given).

pub mod client;
pub mod enrich;
pub mod notify;
