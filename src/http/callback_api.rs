//! What the callback routes need from the web-callback layer: the center's
//! request queue, the store's reads, the desktop broadcast, three
//! validation functions, the enrichment webhooks and the notification
//! outbox's controls.
//!
//! The validators are function values rather than direct calls so that the
//! HTTP layer does not depend on how request bodies are checked (that is
//! `callback::request`'s job) and tests can plug in their own. Each returns
//! what the API needs to answer a 422: the field at fault and a message.

use std::fmt;
use std::sync::Arc;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};

use crate::callback::request::{NumberError, TimeError};
use crate::callback::{CallbackReads, CallbackRequest, CenterRequest, DesktopEvent};
use crate::integrations::enrich::Enricher;
use crate::integrations::notify::NotifyControl;

/// Checks a raw `POST /v1/callbacks` body (already known to be JSON) at `now`
/// and turns it into a [`CallbackRequest`], or names the field at fault:
/// `Err((field, message))`, e.g. `("callbackNumbers", "not a phone number")`.
pub type ValidateCreate =
    Arc<dyn Fn(&[u8], Timestamp) -> Result<CallbackRequest, (String, String)> + Send + Sync>;

/// Reads a wall-clock time as a client wrote it (ISO 8601 with an offset,
/// or local to the IANA zone given) into UTC; `Err` says why (its text is
/// the message after the field name).
pub type ParseTime = Arc<dyn Fn(&str, Option<&str>) -> Result<Timestamp, TimeError> + Send + Sync>;

/// Turns a number as a client wrote it into E.164; `Err` says why.
pub type NormalizeNumber = Arc<dyn Fn(&str) -> Result<String, NumberError> + Send + Sync>;

/// The web-callback layer as the API sees it.
#[derive(Clone)]
pub struct CallbackApi {
    /// The center's request queue; each request carries its reply slot.
    pub center: mpsc::Sender<CenterRequest>,
    /// Reads served straight from the store.
    pub reads: Arc<dyn CallbackReads>,
    /// Desktop events as the center releases them (after they are stored).
    pub desktop: broadcast::Sender<DesktopEvent>,
    pub validate_create: ValidateCreate,
    pub parse_time: ParseTime,
    pub normalize_number: NormalizeNumber,
    /// The enrichment webhooks a create consults before validation; `None`
    /// when none is configured (a create then never waits on one).
    pub enricher: Option<Arc<Enricher>>,
    /// The notification outbox (dead letters, replays); `None`: its routes
    /// answer 503.
    pub notifications: Option<Arc<dyn NotifyControl>>,
}

impl fmt::Debug for CallbackApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackApi").finish_non_exhaustive()
    }
}
