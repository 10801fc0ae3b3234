//! Addresses shared by the sans-IO layers and the transport driver: where a
//! message came from and where one must go. No sockets here.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::sip::ViaInfo;

/// The transports a profile can listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    Udp,
    Tcp,
    Tls,
}

impl TransportKind {
    /// RFC 3261 §17: reliable transports skip retransmission timers.
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
        }
    }

    pub fn from_via_token(token: &str) -> Option<Self> {
        match token.to_ascii_uppercase().as_str() {
            "UDP" => Some(TransportKind::Udp),
            "TCP" => Some(TransportKind::Tcp),
            "TLS" => Some(TransportKind::Tls),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Udp => "udp",
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
        })
    }
}

/// A stream connection, named by the driver; lets a response or an in-dialog
/// request reuse the connection a request came in on (§18.2.2, RFC 5923 spirit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Which configured profile a socket belongs to (index into the config's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ProfileId(pub usize);

/// Where a received message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub profile: ProfileId,
    pub transport: TransportKind,
    /// The listening socket's address.
    pub local: SocketAddr,
    /// The peer's address as the socket saw it.
    pub remote: SocketAddr,
    /// Set on stream transports.
    pub connection: Option<ConnectionId>,
}

/// Where a message must be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Destination {
    pub profile: ProfileId,
    pub transport: TransportKind,
    pub remote: SocketAddr,
    /// A stream connection to try first; the driver opens a new one when it is gone.
    pub connection: Option<ConnectionId>,
}

impl Source {
    /// The address responses to a request from here go to (RFC 3261 §18.2.2
    /// with RFC 3581): on a stream, the connection the request came in on;
    /// on UDP, the source address when the Via asked for rport, otherwise the
    /// `received` host (the source IP) with the Via port or 5060.
    pub fn response_destination(&self, via: &ViaInfo) -> Destination {
        let remote = if self.transport.is_reliable() || via.rport.is_some() {
            self.remote
        } else {
            let port = via.port.unwrap_or(default_port(self.transport));
            SocketAddr::new(self.remote.ip(), port)
        };
        Destination {
            profile: self.profile,
            transport: self.transport,
            remote,
            connection: self.connection,
        }
    }

    /// The `received` and `rport` values a server adds to the top Via
    /// (§18.2.1, RFC 3581 §4): `received` when the sent-by host differs from
    /// the source IP, `rport` filled in when the client asked for it.
    pub fn via_stamp(&self, via: &ViaInfo) -> (Option<IpAddr>, Option<u16>) {
        let sent_by_ip: Option<IpAddr> = via.host.parse().ok();
        let received = (sent_by_ip != Some(self.remote.ip()) || via.rport.is_some())
            .then_some(self.remote.ip());
        let rport = via.rport.map(|_| self.remote.port());
        (received, rport)
    }
}

/// The default port of a transport (§19.1.2).
pub fn default_port(transport: TransportKind) -> u16 {
    match transport {
        TransportKind::Tls => 5061,
        _ => 5060,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(host: &str, port: Option<u16>, rport: Option<Option<u16>>) -> ViaInfo {
        ViaInfo {
            transport: "UDP".into(),
            host: host.into(),
            port,
            branch: Some("z9hG4bK1".into()),
            received: None,
            rport,
        }
    }

    fn udp_source() -> Source {
        Source {
            profile: ProfileId(0),
            transport: TransportKind::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "192.0.2.7:40000".parse().unwrap(),
            connection: None,
        }
    }

    #[test]
    fn udp_without_rport_answers_the_via_port_at_the_source_ip() {
        let d = udp_source().response_destination(&via("10.0.0.1", Some(5062), None));
        assert_eq!(d.remote, "192.0.2.7:5062".parse().unwrap());
        let d = udp_source().response_destination(&via("10.0.0.1", None, None));
        assert_eq!(d.remote.port(), 5060);
    }

    #[test]
    fn rport_answers_the_source_port_and_is_stamped() {
        let s = udp_source();
        let v = via("10.0.0.1", Some(5062), Some(None));
        assert_eq!(s.response_destination(&v).remote, s.remote);
        assert_eq!(s.via_stamp(&v), (Some(s.remote.ip()), Some(40000)));
    }

    #[test]
    fn received_only_when_sent_by_differs() {
        let s = udp_source();
        assert_eq!(
            s.via_stamp(&via("192.0.2.7", Some(40000), None)),
            (None, None)
        );
        assert_eq!(
            s.via_stamp(&via("pc.example.com", None, None)).0,
            Some(s.remote.ip())
        );
    }

    #[test]
    fn streams_answer_on_their_connection() {
        let mut s = udp_source();
        s.transport = TransportKind::Tcp;
        s.connection = Some(ConnectionId(9));
        let d = s.response_destination(&via("10.0.0.1", Some(5062), None));
        assert_eq!((d.remote, d.connection), (s.remote, Some(ConnectionId(9))));
    }
}
