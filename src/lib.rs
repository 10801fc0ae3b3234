//! Switchback: a SIP-native web-callback softswitch.
//!
//! Data flows one way: socket -> [`sip`] (parse) -> [`transaction`] ->
//! [`dialog`] / [`registrar`] -> call -> interaction. Every protocol layer is
//! sans-IO: it takes messages and an explicit `now`, and returns what to send
//! and when it next needs waking. Only [`transport`] touches sockets and clocks.

// No panic reachable from a peer's bytes, and `unsafe` only where a module
// declaration allows it (the libc FFI of media/, transport/udp.rs,
// driver/limits.rs); every public type can be logged with `{:?}` (those
// holding secrets or closures print a summary). Tests are exempt from the
// panic lints (clippy.toml); the crate-wide lints are in Cargo.toml's
// [lints]. `indexing_slicing` is denied per module below where the module
// holds none (media/ still indexes; the HTTP, store and web-callback
// layers index only their own data).
#![deny(unsafe_code)]
#![deny(missing_debug_implementations)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[deny(clippy::indexing_slicing)]
pub mod sip;

#[deny(clippy::indexing_slicing)]
pub mod call;
pub mod callback;
pub mod codec;
pub mod config;
#[deny(clippy::indexing_slicing)]
pub mod dialog;
#[deny(clippy::indexing_slicing)]
pub mod digest;
pub mod driver;
#[deny(clippy::indexing_slicing)]
pub mod endpoint;
pub mod http;
pub mod integrations;
pub mod media;
#[deny(clippy::indexing_slicing)]
pub mod net;
pub mod recording;
#[deny(clippy::indexing_slicing)]
pub mod registrar;
#[deny(clippy::indexing_slicing)]
pub mod sdp;
#[deny(clippy::indexing_slicing)]
pub mod session;
#[deny(clippy::indexing_slicing)]
pub mod shard;
pub mod store;
#[deny(clippy::indexing_slicing)]
pub mod transaction;
#[deny(clippy::indexing_slicing)]
pub mod transport;
