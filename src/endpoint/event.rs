//! What the endpoint reports upward: one line each on the binary's stdout.

use std::fmt;

use crate::call::CallEvent;
use crate::net::ProfileId;
use crate::registrar::RegistrarEvent;

#[derive(Debug, Clone)]
pub enum EndpointEvent {
    Registrar {
        profile: ProfileId,
        event: RegistrarEvent,
    },
    Call(CallEvent),
    /// A trunk peer went down or came back up (its pings).
    Peer(crate::call::PeerEvent),
}

impl fmt::Display for EndpointEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointEvent::Registrar { event, .. } => write!(f, "{event}"),
            EndpointEvent::Call(event) => write!(f, "{event}"),
            EndpointEvent::Peer(event) => write!(f, "{event}"),
        }
    }
}
