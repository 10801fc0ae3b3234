//! The dialog identifier (RFC 3261 §12): Call-ID, local tag, remote tag.
//!
//! Which tag is "local" depends on the direction: in a request we receive the
//! To tag is ours, in a response we receive the From tag is ours (§12.2.2).

use std::fmt;

use crate::sip::{MessageHeaders, Request, Response};

/// Identifies one dialog at one UA. A null tag (RFC 2543 peers) is "".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    pub fn new(call_id: &str, local_tag: &str, remote_tag: &str) -> Self {
        DialogId {
            call_id: call_id.to_string(),
            local_tag: local_tag.to_string(),
            remote_tag: remote_tag.to_string(),
        }
    }

    /// The dialog a received request belongs to: To tag local, From tag remote.
    /// `None` without a Call-ID or To tag (not a request within a dialog).
    pub fn of_incoming_request(request: &Request) -> Option<Self> {
        Some(DialogId {
            call_id: request.call_id()?.to_string(),
            local_tag: request.to_tag()?,
            remote_tag: request.from_tag().unwrap_or_default(),
        })
    }

    /// The dialog a received response belongs to: From tag local, To tag remote.
    /// `None` without a Call-ID, From tag or To tag.
    pub fn of_incoming_response(response: &Response) -> Option<Self> {
        Some(DialogId {
            call_id: response.call_id()?.to_string(),
            local_tag: response.from_tag()?,
            remote_tag: response.to_tag()?,
        })
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};l={};r={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::{invite, ok_to};

    #[test]
    fn tags_swap_with_direction() {
        let req = invite();
        assert_eq!(DialogId::of_incoming_request(&req), None, "no To tag");
        let resp = ok_to(&req, "b1");
        let id = DialogId::of_incoming_response(&resp).unwrap();
        assert_eq!(id, DialogId::new("c1@a.example.com", "a1", "b1"));
        assert_eq!(id.to_string(), "c1@a.example.com;l=a1;r=b1");
    }
}
