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
}

impl fmt::Display for EndpointEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointEvent::Registrar { event, .. } => write!(f, "{event}"),
            EndpointEvent::Call(event) => write!(f, "{event}"),
        }
    }
}
