//! Interop harness: the switch on its shipped configuration, driven by real
//! user agents (baresip, PJSIP's pjsua2, Kamailio as an edge proxy).
//!
//! Each peer has one file here; the test binaries `tests/interop_*.rs` pull
//! this folder in with `#[path]`. A peer that is not installed fails the test
//! with a message naming what is missing: `bash scripts/test` installs them.

#![allow(dead_code)]

pub mod baresip;
pub mod kamailio;
pub mod pjsua;
pub mod shipped;
