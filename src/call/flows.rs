//! Connection reuse toward trunk peers over TCP and TLS.
//!
//! A contact-center platform keeps one connection to the switch and places
//! many calls over it; it expects calls toward it on that same connection
//! (the idea of RFC 5923, without its `alias` negotiation: the peer is known
//! by its `acl`). Requests within a dialog already follow the flow their
//! dialog came on (a leg's destination carries the connection); this adds
//! new INVITEs toward a peer whose `transport` is a stream: they name the
//! peer's latest connection, and the transport opens one of its own only
//! when that connection is gone.
//!
//! Sans-IO: connection ids are opaque here; the transport owns connections.

use crate::net::Source;

use super::outbound::Target;
use super::CallLayer;

impl CallLayer {
    /// Remembers the connection a trunk peer's INVITE came in on.
    pub(super) fn note_peer_flow(&mut self, source: &Source) {
        let Some(connection) = source.connection else {
            return;
        };
        if let Some((_, i)) = self.settings.peer_of(source) {
            // In the table every worker shares: the next call toward the
            // peer may be placed by another worker.
            self.peers
                .table
                .set_flow(source.profile, i, (source.transport, connection));
        }
    }

    /// A target that is a peer reached over the transport of a flow it
    /// opened goes on that flow.
    pub(super) fn with_peer_flow(&self, mut target: Target) -> Target {
        let Some(peer) = target.peer else {
            return target;
        };
        if let Some((transport, connection)) = self.peers.table.flow(peer.0, peer.1) {
            if transport == target.destination.transport && target.destination.connection.is_none()
            {
                target.destination.connection = Some(connection);
            }
        }
        target
    }
}
