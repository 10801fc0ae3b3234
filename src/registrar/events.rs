//! What the registrar reports to its driver, for logs and the console.
//!
//! Each event renders as one line (`registered user=1001
//! contact=<sip:1001@192.0.2.7:5062> expires=60`) that the binary prints as
//! `event <line>`. Values that come from the network are sanitised so a
//! peer cannot forge extra lines or fields.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Something that happened in the registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A binding was added or refreshed.
    Registered {
        aor: String,
        contact: String,
        expires: u64,
    },
    /// A binding was removed by its owner (expires=0, `*`) or displaced.
    Unregistered { aor: String, contact: String },
    /// A binding reached its expiry without refresh.
    Expired { aor: String, contact: String },
    /// A binding tied to its connection (WebSocket, RFC 7118 §5) went
    /// with it.
    ConnectionClosed { aor: String, contact: String },
    /// Credentials were presented and rejected.
    AuthFailed { user: String, ip: IpAddr },
    /// A user failed too often from one source; requests for it from there
    /// are ignored until `until`.
    UserBlocked {
        user: String,
        ip: IpAddr,
        until: Instant,
        duration: Duration,
    },
    /// Several users failed from one source (guessing or enumeration): it is
    /// ignored until `until`.
    SourceBlocked {
        ip: IpAddr,
        until: Instant,
        duration: Duration,
    },
}

impl RegistrarEvent {
    /// The one-line rendering.
    pub fn to_line(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for RegistrarEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrarEvent::Registered {
                aor,
                contact,
                expires,
            } => write!(
                f,
                "registered user={} contact=<{}> expires={expires}",
                clean(aor),
                clean(contact)
            ),
            RegistrarEvent::Unregistered { aor, contact } => write!(
                f,
                "unregistered user={} contact=<{}>",
                clean(aor),
                clean(contact)
            ),
            RegistrarEvent::Expired { aor, contact } => write!(
                f,
                "binding-expired user={} contact=<{}>",
                clean(aor),
                clean(contact)
            ),
            RegistrarEvent::ConnectionClosed { aor, contact } => write!(
                f,
                "binding-closed user={} contact=<{}>",
                clean(aor),
                clean(contact)
            ),
            RegistrarEvent::AuthFailed { user, ip } => {
                write!(f, "auth-failed user={} source={ip}", clean(user))
            }
            RegistrarEvent::UserBlocked {
                user, ip, duration, ..
            } => write!(
                f,
                "user-blocked user={} source={ip} for={}s",
                clean(user),
                duration.as_secs()
            ),
            RegistrarEvent::SourceBlocked { ip, duration, .. } => {
                write!(f, "source-blocked source={ip} for={}s", duration.as_secs())
            }
        }
    }
}

/// Network text made safe for one log line: at most 128 characters, no
/// whitespace or control characters.
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(128)
        .map(|c| {
            if c.is_whitespace() || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = RegistrarEvent::Registered {
            aor: "1001".into(),
            contact: "sip:1001@192.0.2.7:5062".into(),
            expires: 60,
        };
        assert_eq!(
            e.to_line(),
            "registered user=1001 contact=<sip:1001@192.0.2.7:5062> expires=60"
        );
        let e = RegistrarEvent::AuthFailed {
            user: "evil\nevent x".into(),
            ip: IpAddr::from([192, 0, 2, 1]),
        };
        assert_eq!(
            e.to_line(),
            "auth-failed user=evil_event_x source=192.0.2.1"
        );
        let e = RegistrarEvent::SourceBlocked {
            ip: IpAddr::from([192, 0, 2, 1]),
            until: Instant::now(),
            duration: Duration::from_secs(900),
        };
        assert_eq!(e.to_line(), "source-blocked source=192.0.2.1 for=900s");
        let e = RegistrarEvent::Expired {
            aor: "1001".into(),
            contact: "sip:a@b".into(),
        };
        assert_eq!(e.to_line(), "binding-expired user=1001 contact=<sip:a@b>");
        let e = RegistrarEvent::ConnectionClosed {
            aor: "1001".into(),
            contact: "sip:a@b.invalid;transport=ws".into(),
        };
        assert_eq!(
            e.to_line(),
            "binding-closed user=1001 contact=<sip:a@b.invalid;transport=ws>"
        );
    }
}
