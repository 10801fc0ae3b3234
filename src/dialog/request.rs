//! Building requests within a dialog (RFC 3261 §12.2.1.1) and the ACK for a
//! 2xx (§13.2.2.4).
//!
//! To/From/Call-ID come from the dialog state, the CSeq from the local
//! sequence number (incremented, except ACK and CANCEL which reuse their
//! INVITE's), the Request-URI and Route from the remote target and route set
//! by loose or strict routing. The Via carries a fresh branch and the sent-by
//! the caller's transport gives; the transaction layer sends it unchanged.

use tracing::debug;

use crate::sip::{
    cancel_for, generate_branch, make_header, set_content_length, Headers, MessageHeaders, Method,
    Request, Uri, Version,
};

use super::addr::{bracketed, is_loose, request_uri_from_route, Body};
use super::state::is_target_refresh;
use super::{Dialog, DialogError, DialogState};

impl Dialog {
    /// A new request within the dialog (§12.2.1.1). `via_sent_by` is the
    /// `host:port` of the transport that will send it. ACK builds the ACK for
    /// the latest INVITE's 2xx ([`Dialog::create_ack`]); CANCEL cancels our
    /// pending re-INVITE (§9.1, same top Via as the INVITE). Extra headers can
    /// be pushed onto the result; keep Content-Length right when changing the body.
    pub fn create_request(
        &mut self,
        method: Method,
        via_sent_by: &str,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        if self.state == DialogState::Terminated {
            return Err(DialogError::Terminated);
        }
        match method {
            Method::Ack => return self.create_ack(via_sent_by, body),
            Method::Cancel => {
                return match (&self.last_invite, self.local_invite_pending) {
                    (Some(invite), true) => Ok(cancel_for(invite)),
                    _ => Err(DialogError::NoInvite),
                }
            }
            // §14.1: no INVITE while another is in progress either way.
            Method::Invite if self.invite_in_progress() => return Err(DialogError::InvitePending),
            _ => {}
        }
        // §12.2.1.1 / §8.1.1.5: an empty local sequence number starts anywhere
        // below 2^31; 1 keeps traces readable.
        let cseq = self.local_seq.map_or(1, |n| n.wrapping_add(1));
        self.local_seq = Some(cseq);
        let request = self.build(method, cseq, via_sent_by, body)?;
        if method == Method::Invite {
            self.last_invite = Some(request.clone());
            self.local_invite_pending = true;
            self.glare_retry_at = None;
        }
        debug!(dialog = %self.id, %method, cseq, "request built");
        Ok(request)
    }

    /// The ACK for the 2xx to our latest INVITE (§13.2.2.4): its own
    /// transaction (fresh branch), the INVITE's CSeq number, routed like any
    /// request in the dialog. It is remembered and re-sent when the 2xx is
    /// retransmitted.
    pub fn create_ack(
        &mut self,
        via_sent_by: &str,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        let cseq = self
            .last_invite
            .as_ref()
            .and_then(|i| i.cseq())
            .map(|(n, _)| n)
            .ok_or(DialogError::NoInvite)?;
        let ack = self.build(Method::Ack, cseq, via_sent_by, body)?;
        self.answered_invite = Some(cseq);
        self.last_ack = Some(ack.clone());
        Ok(ack)
    }

    fn build(
        &self,
        method: Method,
        cseq: u32,
        via_sent_by: &str,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        let (uri, routes) = self.request_uri_and_routes()?;
        let mut headers = Headers::default();
        let via = format!(
            "SIP/2.0/{} {via_sent_by};branch={}",
            self.transport.via_token(),
            generate_branch()
        );
        headers.push(make_header("Via", via));
        headers.push(make_header("Max-Forwards", "70".into()));
        for route in routes {
            headers.push(make_header("Route", route));
        }
        let from = format!("{};tag={}", self.local_uri, self.id.local_tag);
        headers.push(make_header("From", from));
        let to = match self.id.remote_tag.as_str() {
            "" => self.remote_uri.clone(),
            tag => format!("{};tag={tag}", self.remote_uri),
        };
        headers.push(make_header("To", to));
        headers.push(make_header("Call-ID", self.id.call_id.clone()));
        headers.push(make_header("CSeq", format!("{cseq} {method}")));
        if is_target_refresh(method) {
            if let Some(contact) = &self.local_contact {
                headers.push(make_header("Contact", contact.clone()));
            }
        }
        let body = body.map_or_else(Vec::new, |b| {
            headers.push(make_header("Content-Type", b.content_type));
            b.bytes
        });
        let mut request = Request {
            method,
            uri,
            version: Version::V2,
            headers,
            body,
        };
        set_content_length(&mut request);
        Ok(request)
    }

    /// §12.2.1.1: with an empty route set, or a loose first hop, the
    /// Request-URI is the remote target and Route the route set; a strict
    /// first hop becomes the Request-URI and the remote target goes last.
    fn request_uri_and_routes(&self) -> Result<(Uri, Vec<String>), DialogError> {
        match self.route_set.first() {
            None => Ok((self.remote_target.clone(), Vec::new())),
            Some(first) if is_loose(first) => {
                Ok((self.remote_target.clone(), self.route_set.clone()))
            }
            Some(first) => {
                let uri = request_uri_from_route(first)?;
                let mut routes: Vec<String> = self.route_set.get(1..).unwrap_or_default().to_vec();
                routes.push(bracketed(&self.remote_target));
                Ok((uri, routes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::*;
    use crate::net::TransportKind;

    fn uac_with_routes(rr: &[&str]) -> Dialog {
        let inv = invite();
        let ok = ok_with(&inv, "b1", rr);
        Dialog::uac(&inv, &ok, TransportKind::Udp).unwrap()
    }

    fn routes(r: &Request) -> Vec<&str> {
        r.header_values("Route")
    }

    #[test]
    fn no_route_set_targets_the_contact() {
        let mut d = uac_with_routes(&[]);
        let bye = d
            .create_request(Method::Bye, "10.0.0.1:5060", None)
            .unwrap();
        assert_eq!(bye.uri.to_string(), "sip:bob@10.0.0.2:5060");
        assert!(routes(&bye).is_empty());
        assert_eq!(bye.cseq(), Some((2, Method::Bye)));
        assert_eq!(bye.from_tag().as_deref(), Some("a1"));
        assert_eq!(bye.to_tag().as_deref(), Some("b1"));
        assert_eq!(bye.call_id(), Some("c1@a.example.com"));
        assert_eq!(bye.header_value("Max-Forwards"), Some("70"));
        assert_eq!(
            bye.header_value("Contact"),
            None,
            "BYE is no target refresh"
        );
        let via = bye.top_via().unwrap();
        assert_eq!(
            (via.transport.as_str(), via.sent_by()),
            ("UDP", "10.0.0.1:5060".into())
        );
        assert!(via.branch.unwrap().starts_with("z9hG4bK"));
    }

    #[test]
    fn loose_route_set_goes_in_route_in_order() {
        let mut d =
            uac_with_routes(&["Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>"]);
        let info = d.create_request(Method::Info, "10.0.0.1", None).unwrap();
        assert_eq!(info.uri.to_string(), "sip:bob@10.0.0.2:5060");
        assert_eq!(
            routes(&info),
            ["<sip:p1.example.com;lr>", "<sip:p2.example.com;lr>"]
        );
    }

    #[test]
    fn strict_first_hop_becomes_the_request_uri() {
        let mut d = uac_with_routes(&[
            "Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;method=INVITE>",
        ]);
        let bye = d.create_request(Method::Bye, "10.0.0.1", None).unwrap();
        assert_eq!(bye.uri.to_string(), "sip:p1.example.com");
        assert_eq!(
            routes(&bye),
            ["<sip:p2.example.com;lr>", "<sip:bob@10.0.0.2:5060>"]
        );
    }

    #[test]
    fn cseq_increments_but_ack_and_cancel_reuse_the_invite() {
        let mut d = uac_with_routes(&[]);
        let reinvite = d.create_request(Method::Invite, "h", None).unwrap();
        assert_eq!(reinvite.cseq(), Some((2, Method::Invite)));
        assert!(reinvite.header_value("Contact").is_some());
        let cancel = d.create_request(Method::Cancel, "h", None).unwrap();
        assert_eq!(cancel.cseq(), Some((2, Method::Cancel)));
        assert_eq!(
            cancel.top_via(),
            reinvite.top_via(),
            "§9.1 CANCEL matches the INVITE"
        );
        assert_eq!(
            d.create_request(Method::Invite, "h", None).unwrap_err(),
            DialogError::InvitePending
        );
        let ack = d.create_request(Method::Ack, "h", None).unwrap();
        assert_eq!(ack.cseq(), Some((2, Method::Ack)));
        assert_ne!(
            ack.top_via().unwrap().branch,
            reinvite.top_via().unwrap().branch
        );
        let update = d.create_request(Method::Update, "h", None).unwrap();
        assert_eq!(update.cseq(), Some((3, Method::Update)));
        assert_eq!(d.local_seq(), Some(3));
    }

    #[test]
    fn uas_starts_its_local_sequence_and_swaps_from_and_to() {
        let inv = invite_with(&["Record-Route: <sip:p1.example.com;lr>"]);
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", TransportKind::Tcp).unwrap();
        let bye = d
            .create_request(Method::Bye, "10.0.0.2:5060", None)
            .unwrap();
        assert_eq!(bye.cseq(), Some((1, Method::Bye)));
        assert_eq!(bye.uri.to_string(), "sip:alice@10.0.0.1:5060");
        assert_eq!(routes(&bye), ["<sip:p1.example.com;lr>"]);
        assert_eq!(
            bye.header_value("From"),
            Some("<sip:bob@b.example.com>;tag=b1")
        );
        assert_eq!(
            bye.header_value("To"),
            Some("\"Alice\" <sip:alice@a.example.com>;tag=a1")
        );
        assert_eq!(bye.top_via().unwrap().transport, "TCP");
    }

    #[test]
    fn body_gets_its_type_and_length() {
        let mut d = uac_with_routes(&[]);
        let body = Body {
            content_type: "application/sdp".into(),
            bytes: b"v=0\r\n".to_vec(),
        };
        let r = d.create_request(Method::Invite, "h", Some(body)).unwrap();
        assert_eq!(r.header_value("Content-Type"), Some("application/sdp"));
        assert_eq!(r.header_value("Content-Length"), Some("5"));
    }

    #[test]
    fn terminated_dialog_builds_nothing() {
        let mut d = uac_with_routes(&[]);
        d.terminate(crate::dialog::TerminateReason::Local);
        assert_eq!(
            d.create_request(Method::Bye, "h", None).unwrap_err(),
            DialogError::Terminated
        );
    }

    #[test]
    fn built_request_survives_the_wire() {
        let mut d = uac_with_routes(&["Record-Route: <sip:p1.example.com;lr>"]);
        let body = Body {
            content_type: "application/sdp".into(),
            bytes: b"v=0\r\n".to_vec(),
        };
        let reinvite = d
            .create_request(Method::Invite, "10.0.0.1:5060", Some(body))
            .unwrap();
        let bytes = reinvite.to_bytes();
        let crate::sip::SipMessage::Request(back) = crate::sip::parse(&bytes, 65535).unwrap()
        else {
            panic!("not a request")
        };
        assert_eq!(back.method, Method::Invite);
        assert_eq!(back.cseq(), Some((2, Method::Invite)));
        assert_eq!(
            back.header_value("Contact"),
            Some("<sip:alice@10.0.0.1:5060>")
        );
        assert_eq!(back.header_values("Route"), ["<sip:p1.example.com;lr>"]);
        assert_eq!(back.body, b"v=0\r\n");
    }
}
