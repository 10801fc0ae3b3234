//! How tasks outside the endpoint reach the call layer: commands travel to
//! the endpoint task over a channel with a reply slot; reads go to the
//! session table directly, never through the endpoint.

use tokio::sync::oneshot;

use super::command::{CallCommand, CallId, CommandError};
use super::summary::CallSummary;
use crate::media::LegStats;

/// A command on its way to the endpoint task, with where its answer goes.
#[derive(Debug)]
pub struct ControlRequest {
    pub command: CallCommand,
    /// `Ok(call)` names the call the command created or acted on.
    pub reply: oneshot::Sender<Result<CallId, CommandError>>,
}

/// Read access to live calls, from any task, without locks held across `.await`.
pub trait CallDirectory: Send + Sync + 'static {
    fn call(&self, id: &CallId) -> Option<CallSummary>;
    fn calls(&self) -> Vec<CallSummary>;
    fn by_interaction(&self, interaction: &str) -> Vec<CallSummary>;
    /// Media counters of a leg, by its `media_leg` id.
    fn leg_stats(&self, media_leg: u64) -> Option<LegStats>;
    /// Every trunk peer's state, limits and counters, in configuration order.
    fn peers(&self) -> Vec<super::peers::PeerStatus>;
}
