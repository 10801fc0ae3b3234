//! The callback routes' two ways into the web-callback layer: one request to
//! the center, answered once its writes are committed; and a read from the
//! store. Both are bounded in time like the call layer's round trip.

use std::time::Duration;

use tokio::sync::oneshot;

use super::callback_api::CallbackApi;
use super::errors::ApiError;
use super::Api;
use crate::callback::{
    AgentView, Callback, CenterRequest, ContactStatus, ReadFuture, Reply, Request,
};

impl Api {
    /// The callback layer, or 503 when this switch runs without it.
    pub(crate) fn callback_api(&self) -> Result<&CallbackApi, ApiError> {
        self.callback_api.as_ref().ok_or_else(|| {
            ApiError::unavailable_because("the web-callback layer is not enabled on this switch")
                .with_code("callbacks_disabled")
        })
    }
}

/// Sends `request` to the center and returns its reply. The center's
/// refusal is mapped here, since unlike a call command it carries its own
/// field; 503 when the center is gone, 504 when it does not answer in time.
pub async fn ask(api: &Api, request: Request) -> Result<Reply, ApiError> {
    let layer = api.callback_api()?;
    let gone = || ApiError::unavailable_because("the callback center is not running");
    let (reply, answer) = oneshot::channel();
    // The timeout covers the queueing too, as for call commands.
    let exchange = async {
        layer
            .center
            .send(CenterRequest { request, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())
    };
    match tokio::time::timeout(api.reply_timeout, exchange).await {
        Ok(answer) => answer?.map_err(ApiError::from_action),
        Err(_) => Err(ApiError::timed_out_for(
            "the callback center",
            api.reply_timeout.as_secs(),
        )),
    }
}

/// Awaits a store read, bounded like a center request.
pub async fn read<T>(api: &Api, read: ReadFuture<T>) -> Result<T, ApiError> {
    bounded_read(api.reply_timeout, read).await
}

pub async fn bounded_read<T>(limit: Duration, read: ReadFuture<T>) -> Result<T, ApiError> {
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ApiError::unavailable_because(format!(
            "the callback store could not be read: {e}"
        ))),
        Err(_) => Err(ApiError::timed_out_for(
            "the callback store",
            limit.as_secs(),
        )),
    }
}

/// A reply the route did not expect means the center and the API disagree
/// on the protocol: a bug, answered 500 and logged rather than guessed at.
fn unexpected(wanted: &str, got: &Reply) -> ApiError {
    tracing::error!(
        ?got,
        wanted,
        "callback center answered with the wrong reply kind"
    );
    ApiError::internal(format!("the callback center answered without {wanted}"))
}

pub fn callback(reply: Reply) -> Result<Box<Callback>, ApiError> {
    match reply {
        Reply::Callback(c) => Ok(c),
        // A create-like request's reply is a callback as well.
        Reply::Created { callback, .. } => Ok(callback),
        other => Err(unexpected("a callback", &other)),
    }
}

pub fn status(reply: Reply) -> Result<ContactStatus, ApiError> {
    match reply {
        Reply::Status(s) => Ok(s),
        other => Err(unexpected("a status", &other)),
    }
}

pub fn agent(reply: Reply) -> Result<Box<AgentView>, ApiError> {
    match reply {
        Reply::Agent(a) => Ok(a),
        other => Err(unexpected("an agent", &other)),
    }
}

pub fn callback_list(reply: Reply) -> Result<Vec<Callback>, ApiError> {
    match reply {
        Reply::Callbacks(list) => Ok(list),
        other => Err(unexpected("a list of callbacks", &other)),
    }
}

/// `(callback, new)` from a create's reply.
pub fn created(reply: Reply) -> Result<(Box<Callback>, bool), ApiError> {
    match reply {
        Reply::Created { callback, new } => Ok((callback, new)),
        other => Err(unexpected("a created callback", &other)),
    }
}
