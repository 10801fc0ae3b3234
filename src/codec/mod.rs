//! Audio codecs, shared by every layer that touches audio samples: the RTP
//! relay (law conversion between bridged legs, the conference mixer) and the
//! call recorder.
//!
//! Owns: sample formats and their conversions, nothing else. Must not: know
//! RTP, sockets, clocks or files; it is plain arithmetic over tables built
//! at compile time, so it sits at the bottom of the layer order beside the
//! other stateless wire formats (`scripts/check-layers`).
//!
//! Files: [`g711`] (ITU-T G.711 μ-law and A-law, RTP payload types 0 and 8,
//! RFC 3551 §4.5.14).

pub mod g711;

pub use g711::G711;
