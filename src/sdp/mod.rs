//! Session descriptions (RFC 4566) and the offer/answer rules (RFC 3264) the
//! B2BUA needs to put its RTP relay in the media path of every call.
//!
//! Owns: parsing an SDP body into [`Sdp`] ([`parse`]), the audio view of it
//! ([`AudioStream`]: address, port, RTCP, formats, direction, ptime, hold),
//! choosing formats without transcoding ([`acceptable_formats`],
//! [`answer_formats`], [`default_formats`]), building the offers and answers
//! we send ([`build_offer`], [`build_answer`]) with a per-leg [`Origin`]
//! whose version follows RFC 3264 §8, and serialising ([`Sdp::to_bytes`]).
//!
//! Must not: touch sockets, clocks or SIP messages (the call layer carries
//! bodies in and out), decide policy (which codecs are allowed, when to hold,
//! what to answer 488 with: the call layer does), or leak the model's
//! line-level internals. Sans-IO: `Origin::new` draws a random session id,
//! nothing else here has a side effect.
//!
//! RFCs: 4566 §5 (syntax, line order), §6 (rtpmap, fmtp, ptime, direction);
//! 3264 §5 (offers), §6 and §6.1 (answers: same m= lines in the same order,
//! refusal by port 0, the offerer's PT numbers, direction mirrored), §8
//! (o= version on change; hold); 6337 §5 (hold by sendonly/inactive, and the
//! RFC 2543 `c=0.0.0.0` hold); 3551 table 4 (static payload types); 3605
//! (`a=rtcp`); 4733 (telephone-event).
//!
//! Why not a crate: webrtc-rs `sdp` 0.17 and its sans-IO successor `rtc-sdp`
//! 0.21 (the maintained Rust SDP parsers) share a lexer that enforces the RFC
//! 4566 line order as a state machine. Tried on typical SIP bodies (`sdp`
//! 0.17.2), it rejects a missing `t=` or `s=`, `c=` after `t=`, `a=` before
//! `t=`, a session `b=` before `c=`, any unknown line type, and a sess-id
//! beyond 64 bits: all seen from SIP gateways and phones, and a B2BUA that
//! refuses them fails calls. It also pulls in `url` (with the ICU stack) for
//! `u=`, about 60 crates, for what is here some 1,200 lines with comments. This
//! parser is strict on what decides where media goes (o=, c=, m=, the audio
//! rtpmaps) and lenient on order and on everything it does not act on (see
//! `parse.rs`).
//!
//! Files: `model.rs` (types and the audio view), `parse.rs`, `write.rs`
//! (serialising), `negotiate.rs` (format choice), `build.rs` (offers,
//! answers, Origin).

mod build;
mod model;
mod negotiate;
mod parse;
mod write;

#[cfg(test)]
mod fixtures;

pub use build::{build_answer, build_offer, Origin};
pub use model::{AudioStream, Codec, Direction, PayloadFormat, Sdp, UnknownCodec};
pub use negotiate::{acceptable_formats, answer_formats, default_formats, NoCommonCodec};
pub use parse::{parse, SdpError};
