//! The web-callback layer: durable callback requests, agents and queues,
//! and the interaction lifecycle (docs/web-callbacks.md), steering the
//! B2BUA through its origination interface.
//!
//! Sans-IO like the protocol layers: the center takes API requests, call
//! events and an explicit `now`, and returns the store writes to commit
//! first and then the replies, call commands and desktop events to release.
//!
//! Files: `model` (the records: [`Callback`], history, agents, desktop
//! events, writes), `request` (API bodies validated into the
//! [`CallbackRequest`] a create and the record share), `action` (what the
//! API asks of the center and what it answers), `center` (the state
//! machine, in parts: docs/architecture.md, "The web-callback center"),
//! `mapping` (call events to interaction states), `call_record` (one voice
//! call's figures), `routing` (which agent, which callback first),
//! `schedule` (business hours, back-off, expiry), `options` (per-interaction
//! options and the offer's preview), `settings` (the layer's settings).

pub mod action;
pub mod call_record;
pub mod center;
pub mod mapping;
pub mod model;
pub mod options;
pub mod request;
pub mod routing;
pub mod schedule;
pub mod settings;

pub use action::*;
pub use model::*;
pub use options::{OptionError, OptionProblem, MAX_AUTO_ANSWER_TIMER_SECS};
pub use request::CallbackRequest;
pub use settings::*;
