//! Who the caller is, and what each leg is told about it: RFC 3325
//! P-Asserted-Identity with per-peer trust, RFC 3323/3325 privacy.
//!
//! Trust is a property of trunk peers (`trusted = true`): the switch and its
//! trusted peers form the Trust Domain. A PAI from a trusted peer is believed:
//! its user is the caller (the `from=` of the call events, the From user and
//! display on the legs the switch places); a PAI from anyone else is ignored
//! and never passed on. For a registered or authenticated user the switch
//! asserts the identity itself. Toward a trusted peer the asserted identity
//! goes in a PAI (with the caller's Privacy header); toward anyone else no PAI
//! leaves, and when the caller asked for privacy (`Privacy: id`, `user` or
//! `header`) the From is anonymous (`"Anonymous"
//! <sip:anonymous@anonymous.invalid>`, RFC 3323 §4.1.1.3); `Privacy: none`
//! changes nothing. Phones are no members of the Trust Domain.
//!
//! Sans-IO; it only reads the configuration and the caller's INVITE.

use crate::net::Source;
use crate::sip::{self, split_address, MessageHeaders, Request};

use super::command::CallId;
use super::outbound::{Caller, Target};
use super::{CallLayer, SipOut};

/// Headers about identity that only this module writes (never passed on
/// by `pass_headers`).
const IDENTITY_HEADERS: [&str; 3] = ["P-Asserted-Identity", "P-Preferred-Identity", "Privacy"];

/// The caller's identity as the switch vouches for it, kept on the call.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The P-Asserted-Identity value to send to trusted peers.
    pub asserted: Option<String>,
    /// The caller asked for its identity to be withheld.
    pub private: bool,
    /// The caller's Privacy header, passed to trusted peers.
    pub privacy: Option<String>,
}

/// Whether a header name is one of those this module owns.
pub fn is_identity_header(name: &str) -> bool {
    IDENTITY_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

/// The display name of a name-addr (`"Alice" <sip:...>` -> `Alice`).
fn display_of(value: &str) -> Option<String> {
    let (address, _) = split_address(value)?;
    let open = address.find('<')?;
    let d = address[..open].trim().trim_matches('"').trim();
    (!d.is_empty()).then(|| d.to_string())
}

/// The user of a `sip:`/`sips:` or `tel:` identity.
fn identity_user(value: &str) -> Option<String> {
    if let Some(u) = sip::user_part(value) {
        return Some(u);
    }
    let (address, _) = split_address(value)?;
    let uri = address
        .rsplit_once('<')
        .map_or(address, |(_, u)| u.trim_end_matches('>'));
    let number = uri.trim().strip_prefix("tel:")?;
    let number = number.split(';').next()?.trim();
    (!number.is_empty()).then(|| number.to_string())
}

impl CallLayer {
    /// The caller of a new INVITE admitted as `admitted` (its From user, or
    /// the user it authenticated as), and the identity the call keeps.
    pub(super) fn caller_identity(
        &self,
        out: &dyn SipOut,
        source: &Source,
        request: &Request,
        admitted: String,
    ) -> (Caller, Identity) {
        let from = Caller::from_request(request);
        let peer = self.settings.peer_of(source);
        let trusted = self.settings.trusted(peer);
        let privacy = request
            .header_values_whole("Privacy")
            .first()
            .map(|v| v.trim().to_string());
        let private = privacy.as_deref().is_some_and(|p| {
            p.split(';').any(|t| {
                matches!(
                    t.trim().to_ascii_lowercase().as_str(),
                    "id" | "user" | "header"
                )
            })
        });
        let pai = request
            .header_values("P-Asserted-Identity")
            .first()
            .map(|v| v.to_string());
        if pai.is_some() && !trusted {
            tracing::debug!(remote = %source.remote, "P-Asserted-Identity from an untrusted source removed");
        }
        let (caller, asserted) = match (pai, trusted, peer) {
            (Some(pai), true, _) => match identity_user(&pai) {
                Some(user) => (
                    Caller {
                        user,
                        display: display_of(&pai).or(from.display.clone()),
                    },
                    Some(pai),
                ),
                None => (
                    Caller {
                        user: admitted,
                        ..from
                    },
                    None,
                ),
            },
            // A peer without (believed) PAI is who its From says, unasserted.
            (_, _, Some(_)) => (
                Caller {
                    user: admitted,
                    ..from
                },
                None,
            ),
            // A registered or authenticated user: the switch asserts it.
            (_, _, None) => {
                let host = self.sent_by(out, source.profile, source.transport);
                let asserted = format!("<sip:{admitted}@{host}>");
                (
                    Caller {
                        user: admitted,
                        ..from
                    },
                    Some(asserted),
                )
            }
        };
        (
            caller,
            Identity {
                asserted,
                private,
                privacy,
            },
        )
    }

    /// PAI and Privacy for a leg of `call` toward `target` (trusted peers only).
    pub(super) fn identity_headers(&self, call: &CallId, target: &Target) -> Vec<(String, String)> {
        let Some(identity) = self.table.call(call).map(|c| &c.identity) else {
            return Vec::new();
        };
        if !self.settings.trusted(target.peer) {
            return Vec::new();
        }
        let mut headers = Vec::new();
        if let Some(pai) = &identity.asserted {
            headers.push(("P-Asserted-Identity".to_string(), pai.clone()));
        }
        if let Some(p) = &identity.privacy {
            headers.push(("Privacy".to_string(), p.clone()));
        }
        headers
    }

    /// The From user, display (already quoted, with its space) and host of
    /// a leg toward `target`: anonymous when the caller asked for privacy
    /// and the target is outside the Trust Domain.
    pub(super) fn leg_from_identity(
        &self,
        call: &CallId,
        target: &Target,
        user: String,
        display: String,
        host: String,
    ) -> (String, String, String) {
        let private = self.table.call(call).is_some_and(|c| c.identity.private);
        if private && !self.settings.trusted(target.peer) {
            (
                "anonymous".into(),
                "\"Anonymous\" ".into(),
                "anonymous.invalid".into(),
            )
        } else {
            (user, display, host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_read_from_sip_and_tel_uris() {
        assert_eq!(
            identity_user("\"Jane\" <sip:+15551234@gw.example>").as_deref(),
            Some("+15551234")
        );
        assert_eq!(
            identity_user("<tel:+15551234;phone-context=x>").as_deref(),
            Some("+15551234")
        );
        assert_eq!(identity_user("tel:5551234").as_deref(), Some("5551234"));
        assert_eq!(identity_user("<http://x>"), None);
        assert_eq!(
            display_of("\"Jane Doe\" <sip:1@x>").as_deref(),
            Some("Jane Doe")
        );
        assert_eq!(display_of("<sip:1@x>"), None);
        assert!(is_identity_header("privacy") && !is_identity_header("Diversion"));
    }
}
