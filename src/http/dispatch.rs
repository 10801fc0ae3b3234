//! Hands one command to the endpoint task and waits, boundedly, for its
//! answer. The only place the API talks to the call layer's command side.

use std::time::Duration;

use tokio::sync::oneshot;

use super::errors::ApiError;
use super::Api;
use crate::call::{CallCommand, CallId, CommandError, ControlRequest};

/// How long a client waits for the call layer before 504. The endpoint
/// answers commands on its next loop turn; seconds mean it is stuck.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `command` and returns the call layer's answer. The outer error is
/// the transport's (503 endpoint gone, 504 no answer in time); the inner is
/// the call layer's refusal, left for the caller to map with its context.
pub async fn send(
    api: &Api,
    command: CallCommand,
) -> Result<Result<CallId, CommandError>, ApiError> {
    let (reply, answer) = oneshot::channel();
    let request = ControlRequest { command, reply };
    // The timeout covers the queueing too: a full command queue for that
    // long is the same overload to the client as a slow answer.
    let exchange = async {
        api.commands
            .send(request)
            .await
            .map_err(|_| ApiError::unavailable())?;
        // A dropped reply slot means the endpoint went away mid-command.
        answer.await.map_err(|_| ApiError::unavailable())
    };
    match tokio::time::timeout(api.reply_timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(ApiError::timed_out(api.reply_timeout.as_secs())),
    }
}
