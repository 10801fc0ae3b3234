//! The web-callback layer: durable callback requests, agents and queues,
//! and the interaction lifecycle (docs/web-callbacks.md), steering the
//! B2BUA through its origination interface.
//!
//! Sans-IO like the protocol layers: the center takes API requests, call
//! events and an explicit `now`, and returns the store writes to commit
//! first and then the replies, call commands and desktop events to release.

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
