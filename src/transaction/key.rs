//! Transaction matching keys: RFC 3261 §17.1.3 (client) and §17.2.3 (server),
//! with the §9.2 rule that finds the INVITE a CANCEL cancels.

use crate::sip::{MessageHeaders, Method, Request, Response, ViaInfo};

/// RFC 3261 §8.1.1.7: a branch starting with this was made by an RFC 3261 element.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// What identifies a server transaction (§17.2.3).
///
/// An ACK is keyed as INVITE so that it finds the INVITE transaction it
/// acknowledges; a CANCEL keeps its own method (it is its own transaction)
/// and [`ServerTransactionKey::cancelled_invite`] gives the key of the INVITE
/// it targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerTransactionKey {
    /// The top Via carries a magic-cookie branch: branch, sent-by and method.
    Rfc3261 {
        branch: String,
        /// Host (lower case) and port as written in the Via.
        sent_by: String,
        method: Method,
    },
    /// RFC 2543 fallback: the request's own identifiers.
    ///
    /// The To tag is left out for INVITE (and so for its ACK and CANCEL): the
    /// ACK carries the tag our response added while the INVITE had none, and
    /// §17.2.3 compares it against the response rather than the INVITE.
    /// Call-ID, From tag, CSeq number and top Via already tell INVITEs apart.
    Rfc2543 {
        request_uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        cseq: u32,
        /// The top Via entry: transport, sent-by and any non-cookie branch.
        top_via: String,
        method: Method,
    },
}

impl ServerTransactionKey {
    /// The key of a received request; `None` without a readable top Via,
    /// CSeq or (for the RFC 2543 form) Call-ID.
    pub fn from_request(request: &Request) -> Option<Self> {
        Self::from_request_via(request, &request.top_via()?)
    }

    /// The same, with the top Via already read (the layer needs it anyway).
    pub fn from_request_via(request: &Request, via: &ViaInfo) -> Option<Self> {
        let method = match request.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        if let Some(branch) = via
            .branch
            .as_deref()
            .filter(|b| b.starts_with(MAGIC_COOKIE))
        {
            return Some(ServerTransactionKey::Rfc3261 {
                branch: branch.to_string(),
                sent_by: sent_by(&via.host, via.port),
                method,
            });
        }
        let (cseq, _) = request.cseq()?;
        let to_tag = if method == Method::Invite {
            None
        } else {
            request.to_tag()
        };
        Some(ServerTransactionKey::Rfc2543 {
            request_uri: request.uri.to_string(),
            to_tag,
            from_tag: request.from_tag(),
            call_id: request.call_id()?.to_string(),
            cseq,
            top_via: format!(
                "{} {} {}",
                via.transport,
                sent_by(&via.host, via.port),
                via.branch.as_deref().unwrap_or("")
            ),
            method,
        })
    }

    /// The method the key was made for (INVITE for an ACK).
    pub fn method(&self) -> Method {
        match self {
            ServerTransactionKey::Rfc3261 { method, .. }
            | ServerTransactionKey::Rfc2543 { method, .. } => *method,
        }
    }

    /// For a CANCEL's key, the key of the INVITE transaction it cancels
    /// (§9.2: every part matches except the method); `None` for other methods.
    pub fn cancelled_invite(&self) -> Option<Self> {
        if self.method() != Method::Cancel {
            return None;
        }
        let mut key = self.clone();
        match &mut key {
            ServerTransactionKey::Rfc3261 { method, .. } => *method = Method::Invite,
            ServerTransactionKey::Rfc2543 { method, to_tag, .. } => {
                *method = Method::Invite;
                *to_tag = None;
            }
        }
        Some(key)
    }
}

fn sent_by(host: &str, port: Option<u16>) -> String {
    let host = host.to_ascii_lowercase();
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// What identifies a client transaction (§17.1.3): the top Via branch we
/// put in the request, and the CSeq method (so a CANCEL, which copies the
/// INVITE's branch, has its own transaction).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientTransactionKey {
    pub branch: String,
    pub method: Method,
}

impl ClientTransactionKey {
    /// The key of a request we are about to send; `None` without a branch.
    pub fn from_request(request: &Request) -> Option<Self> {
        Some(ClientTransactionKey {
            branch: request.top_via()?.branch?,
            method: request.method,
        })
    }

    /// The key a received response matches; `None` without a top Via
    /// branch or a CSeq.
    pub fn from_response(response: &Response) -> Option<Self> {
        Some(ClientTransactionKey {
            branch: response.top_via()?.branch?,
            method: response.cseq()?.1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transaction::test_util::*;

    fn key(r: &Request) -> ServerTransactionKey {
        ServerTransactionKey::from_request(r).unwrap()
    }

    #[test]
    fn ack_matches_its_invite_and_cancel_is_its_own_transaction() {
        let inv = key(&invite());
        let ack = key(&request_with("ACK", BRANCH, 1, Some("s1")));
        assert_eq!(inv, ack);
        let cancel = key(&request_with("CANCEL", BRANCH, 1, None));
        assert_ne!(cancel, inv);
        assert_eq!(cancel.method(), Method::Cancel);
        assert_eq!(cancel.cancelled_invite(), Some(inv.clone()));
        assert_eq!(inv.cancelled_invite(), None);
    }

    #[test]
    fn branch_sent_by_and_method_all_count() {
        let inv = key(&invite());
        assert_ne!(inv, key(&request_with("INVITE", "z9hG4bKother", 1, None)));
        assert_ne!(inv, key(&request_with("OPTIONS", BRANCH, 1, None)));
        let mut moved = invite();
        for h in moved.headers.iter_mut() {
            if let crate::sip::Header::Via(_) = h {
                *h = crate::sip::Header::Via(crate::sip::ViaHeader::new(format!(
                    "SIP/2.0/UDP PC33.atlanta.example.com:5070;branch={BRANCH}"
                )));
            }
        }
        assert_ne!(inv, key(&moved));
        match key(&moved) {
            ServerTransactionKey::Rfc3261 { sent_by, .. } => {
                assert_eq!(sent_by, "pc33.atlanta.example.com:5070")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc_2543_fallback_without_magic_cookie() {
        let inv = key(&request_with("INVITE", "", 5, None));
        assert!(matches!(inv, ServerTransactionKey::Rfc2543 { cseq: 5, .. }));
        // Its ACK carries our To tag and still matches; an old-style branch counts.
        assert_eq!(inv, key(&request_with("ACK", "", 5, Some("s1"))));
        assert_ne!(inv, key(&request_with("INVITE", "", 6, None)));
        assert_ne!(
            key(&request_with("INVITE", "1234", 5, None)),
            inv,
            "top Via differs"
        );
        // CANCEL finds it.
        let cancel = key(&request_with("CANCEL", "", 5, None));
        assert_eq!(cancel.cancelled_invite(), Some(inv));
        // Non-INVITE keys keep the To tag.
        assert_ne!(
            key(&request_with("BYE", "", 7, Some("a"))),
            key(&request_with("BYE", "", 7, Some("b")))
        );
    }

    #[test]
    fn client_key_from_request_and_response() {
        let inv = invite();
        let k = ClientTransactionKey::from_request(&inv).unwrap();
        assert_eq!(k.method, Method::Invite);
        assert_eq!(
            ClientTransactionKey::from_response(&response(&inv, 180, None)),
            Some(k.clone())
        );
        let cancel = request_with("CANCEL", BRANCH, 1, None);
        let ck = ClientTransactionKey::from_response(&response(&cancel, 200, None)).unwrap();
        assert_eq!(ck.branch, k.branch);
        assert_ne!(ck, k);
        assert_eq!(
            ClientTransactionKey::from_request(&request_with("OPTIONS", "", 1, None)),
            None
        );
    }
}
