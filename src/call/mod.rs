//! The call layer: the B2BUA (placeholder while it is being written).

pub mod command;
pub mod control;
pub mod summary;

pub use command::*;
pub use control::{CallDirectory, ControlRequest};
pub use summary::*;
