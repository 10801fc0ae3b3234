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
    /// SIP over WebSocket (RFC 7118), plain.
    Ws,
    /// SIP over WebSocket over TLS (RFC 7118).
    Wss,
}

impl TransportKind {
    /// RFC 3261 §17: reliable transports skip retransmission timers
    /// (WebSocket too, RFC 7118 §5: it runs over TCP).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TransportKind::Udp)
    }

    /// WebSocket (RFC 7118): the switch can only answer on a connection
    /// the peer opened, never open one of its own (a browser does not
    /// listen), so a binding made over it lives as long as its connection.
    pub fn is_websocket(self) -> bool {
        matches!(self, TransportKind::Ws | TransportKind::Wss)
    }

    /// The Via transport token (RFC 7118 §5.1 for `WS` and `WSS`).
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
            TransportKind::Tls => "TLS",
            TransportKind::Ws => "WS",
            TransportKind::Wss => "WSS",
        }
    }

    pub fn from_via_token(token: &str) -> Option<Self> {
        match token.to_ascii_uppercase().as_str() {
            "UDP" => Some(TransportKind::Udp),
            "TCP" => Some(TransportKind::Tcp),
            "TLS" => Some(TransportKind::Tls),
            "WS" => Some(TransportKind::Ws),
            "WSS" => Some(TransportKind::Wss),
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
            TransportKind::Ws => "ws",
            TransportKind::Wss => "wss",
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

/// The default port of a transport (§19.1.2; RFC 7118 §5.2: WebSocket's
/// own, 80 and 443).
pub fn default_port(transport: TransportKind) -> u16 {
    match transport {
        TransportKind::Tls => 5061,
        TransportKind::Ws => 80,
        TransportKind::Wss => 443,
        TransportKind::Udp | TransportKind::Tcp => 5060,
    }
}

/// A trunk peer's configured address, as RFC 3263 §4 reads it: a numeric
/// IP (used as is, default port when none), a host name with a port
/// (A/AAAA only, §4.2), or a host name alone (NAPTR, then SRV, then
/// A/AAAA with the transport's default port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddress {
    pub host: PeerHost,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerHost {
    Ip(IpAddr),
    /// A DNS name, lower-cased, without a trailing dot.
    Name(String),
}

impl PeerAddress {
    /// `ip:port`, `[v6]:port`, a bare IP, `host:port` or a bare `host`.
    pub fn parse(s: &str) -> Option<PeerAddress> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(PeerAddress {
                host: PeerHost::Ip(a.ip()),
                port: Some(a.port()),
            });
        }
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        if let Ok(ip) = bare.unwrap_or(s).parse::<IpAddr>() {
            return Some(PeerAddress {
                host: PeerHost::Ip(ip),
                port: None,
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().ok().filter(|&p| p != 0)?)),
            None => (s, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host);
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return None;
        }
        Some(PeerAddress {
            host: PeerHost::Name(host.to_ascii_lowercase()),
            port,
        })
    }

    /// The host part as a SIP URI writes it (IPv6 in brackets).
    pub fn uri_host(&self) -> String {
        let host = match &self.host {
            PeerHost::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
            PeerHost::Ip(ip) => ip.to_string(),
            PeerHost::Name(n) => n.clone(),
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_addresses_parse_as_rfc_3263_reads_them() {
        let p = PeerAddress::parse("192.0.2.1:5070").unwrap();
        assert_eq!(
            (p.host, p.port),
            (PeerHost::Ip("192.0.2.1".parse().unwrap()), Some(5070))
        );
        assert_eq!(PeerAddress::parse("[::1]:5060").unwrap().port, Some(5060));
        assert_eq!(PeerAddress::parse("[::1]").unwrap().port, None);
        assert_eq!(PeerAddress::parse("192.0.2.1").unwrap().port, None);
        let p = PeerAddress::parse("Trunk.Example.com.").unwrap();
        assert_eq!(
            (p.host.clone(), p.port),
            (PeerHost::Name("trunk.example.com".into()), None)
        );
        assert_eq!(p.uri_host(), "trunk.example.com");
        assert_eq!(
            PeerAddress::parse("trunk.example.com:5080")
                .unwrap()
                .uri_host(),
            "trunk.example.com:5080"
        );
        for bad in [
            "",
            "a..b",
            "host:",
            "host:0",
            "host:99999",
            "-a.b",
            "a b",
            "a_b:5060",
        ] {
            assert!(PeerAddress::parse(bad).is_none(), "{bad:?}");
        }
    }

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
    fn websocket_tokens_round_trip_and_are_reliable() {
        for t in [TransportKind::Ws, TransportKind::Wss] {
            assert_eq!(TransportKind::from_via_token(t.via_token()), Some(t));
            assert!(t.is_reliable() && t.is_websocket());
        }
        assert_eq!(
            TransportKind::from_via_token("wss"),
            Some(TransportKind::Wss)
        );
        assert!(!TransportKind::Tcp.is_websocket() && !TransportKind::Tls.is_websocket());
        assert_eq!(TransportKind::Ws.to_string(), "ws");
        assert_eq!(
            (
                default_port(TransportKind::Ws),
                default_port(TransportKind::Wss)
            ),
            (80, 443)
        );
    }

    #[test]
    fn websocket_answers_on_its_connection_whatever_the_invalid_via_says() {
        // RFC 7118 §5: the Via host of a browser is a made-up `.invalid` name.
        let mut s = udp_source();
        s.transport = TransportKind::Wss;
        s.connection = Some(ConnectionId(4));
        let v = via("df7jal23ls0d.invalid", None, None);
        let d = s.response_destination(&v);
        assert_eq!((d.remote, d.connection), (s.remote, Some(ConnectionId(4))));
        assert_eq!(s.via_stamp(&v), (Some(s.remote.ip()), None));
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
