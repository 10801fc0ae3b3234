//! The SIP message model and its wire format.
//!
//! This module is the only place that names `rsipstack`: everything else in the
//! crate reaches rsip's data model through the re-exports and helpers here, so
//! that a change of parser touches one folder. It owns parsing (with the
//! validation RFC 3261 §8.2 and RFC 4475 expect), stream framing (§18.3),
//! header accessors, the builders for responses, ACK and CANCEL, and the
//! switch's own answers (`answer.rs`: Server, Allow, Supported, Accept).
//! It does no I/O and keeps no state.

mod answer;
mod build;
mod ext;
mod framing;
mod name_addr;
mod parse;

pub use answer::{
    answer, method_not_allowed, options_ok, unsupported_require, ACCEPT, ALLOW, SUPPORTED,
};
pub use build::{
    ack_for_non_2xx, cancel_for, generate_branch, generate_tag, response_to, set_content_length,
    stamp_top_via, with_to_tag, MAGIC_COOKIE,
};
pub use ext::{MessageHeaders, ViaInfo};
pub use framing::{Frame, FramingError, StreamFramer};
pub use name_addr::{
    header_param, ip_hop, split_address, split_name_addr, split_params, user_part, Params,
};
pub use parse::{parse, Malformed};

pub use rsipstack::sip::headers::auth::{AuthQop, Qop as DigestQop};
pub use rsipstack::sip::headers::make_header;
pub use rsipstack::sip::prelude::{HasHeaders, HeadersExt, ToTypedHeader, UntypedHeader};
pub use rsipstack::sip::typed::tokenizers::AuthTokenizer;
pub use rsipstack::sip::{
    parse_uri, typed, CallId, Contact as ContactHeader, ContentLength, ContentType, Header,
    Headers, Host, HostWithPort, Method, Param, Request, Response, Scheme, SipMessage, StatusCode,
    StatusCodeKind, Transport, Uri, Version, Via as ViaHeader,
};

/// Renders a message as it goes on the wire.
pub fn to_bytes(message: &SipMessage) -> Vec<u8> {
    message.to_bytes()
}
