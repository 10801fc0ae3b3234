//! One leg of a call: one dialog with one party, and its media.
//!
//! A leg is either the server side of an INVITE the switch received (the
//! caller, `Side::Uas`) or the client side of one it sent (`Side::Uac`).
//! Its SIP identity (Call-ID, our tag) is its own: the B2BUA never lets one
//! leg's identifiers leak into another (§ "Every call is two or more legs").
//!
//! The leg's keys (`sip_call_id`, `local_tag`, `profile`, a UAS leg's
//! transaction) index it in the table (`table`) and never change once it is
//! there; the rest of its fields belong to the file acting on the leg.

use std::net::SocketAddr;
use std::time::Instant;

use crate::dialog::DialogId;
use crate::media::LegId;
use crate::net::{Destination, ProfileId, Source};
use crate::sdp::{AudioStream, Origin, PayloadFormat};
use crate::sip::Request;
use crate::transaction::{ClientTransactionId, ServerTransactionId};

use super::command::{CallId, LegRole};
use super::summary::LegState;

#[derive(Debug)]
pub enum Side {
    /// We answer: the INVITE that created the leg and its server transaction.
    Uas {
        invite: Request,
        tx: ServerTransactionId,
        source: Source,
        /// A final response went out on `tx`.
        answered: bool,
    },
    /// We call: our INVITE (latest, after any auth retry) and its transaction.
    Uac {
        invite: Request,
        tx: Option<ClientTransactionId>,
        /// Credentials tried once per challenge realm (a second 401/407 fails).
        auth_tries: u8,
        /// The peer whose credentials answer challenges, if any.
        peer: Option<(ProfileId, usize)>,
    },
}

/// The media half of a leg, as negotiated in SDP.
#[derive(Debug)]
pub struct LegMedia {
    /// Our relay address for this leg (RTP; RTCP is the next port).
    pub local: SocketAddr,
    /// Our o= line toward this leg.
    pub origin: Origin,
    /// What the party last described (offer or answer).
    pub remote: Option<AudioStream>,
    /// The formats in force on this leg (after offer/answer).
    pub formats: Vec<PayloadFormat>,
    /// The last SDP we sent this leg: repeated on offerless re-INVITEs and refreshes.
    pub last_sent: Option<Vec<u8>>,
}

/// RFC 4028 session timer state of a confirmed leg.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimer {
    pub interval_secs: u32,
    /// We refresh (re-INVITE at half the interval); otherwise the peer must.
    pub we_refresh: bool,
    /// When we refresh next, or when we give up on the peer's refresh.
    pub deadline: Instant,
}

#[derive(Debug)]
pub struct Leg {
    pub id: LegId,
    pub call: CallId,
    pub role: LegRole,
    pub profile: ProfileId,
    /// Who the leg reaches, for events and the summary.
    pub target: String,
    pub side: Side,
    /// Where requests within this leg go: the flow the party used (NAT-safe)
    /// or the peer's address.
    pub destination: Destination,
    pub sip_call_id: String,
    pub local_tag: String,
    /// The dialog in use (for a UAC leg: the fork that answered, or the
    /// latest early one).
    pub dialog: Option<DialogId>,
    pub state: LegState,
    pub media: LegMedia,
    pub held_by_phone: bool,
    pub held_by_switch: bool,
    /// What the last SDP we offered this leg said about a switch hold; a
    /// hold or retrieve asked while an INVITE was in progress is sent when
    /// it ends.
    pub hold_offered: bool,
    pub muted: bool,
    /// UAS: an SDP answer went out in a 1xx (the 2xx must repeat it).
    pub early_answer: Option<Vec<u8>>,
    /// Ring timeout (UAC legs that have not answered).
    pub ring_deadline: Option<Instant>,
    pub session: Option<SessionTimer>,
    /// A BYE went out or came in: the leg is going away.
    pub ending: bool,
    /// Keys of this leg's armed timers (removed with the leg).
    pub timers: Vec<super::wheel::TimerKey>,
}

impl Leg {
    pub fn is_answered(&self) -> bool {
        self.state == LegState::Answered
    }

    /// Responses go where §18.2.2 says; for a stream, the connection of the flow.
    pub fn destination_for_response(&self, via: &crate::sip::ViaInfo) -> Destination {
        match &self.side {
            Side::Uas { source, .. } => source.response_destination(via),
            Side::Uac { .. } => self.destination,
        }
    }
}
