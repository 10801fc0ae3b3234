//! RFC 3262 reliable provisional responses (`100rel`, PRACK) on both sides
//! of an INVITE dialog.
//!
//! UAS (§3): a reliable 1xx gets an RSeq (a random start below 2^31, then +1)
//! and `Require: 100rel`; it is retransmitted at T1, doubling, until the PRACK
//! whose RAck names it arrives; after 64*T1 without one the TU is told
//! (`PrackTimeout`) and rejects the INVITE with a 5xx. One reliable 1xx is
//! unacknowledged at a time: later ones are held, and so is a 2xx while an
//! unacknowledged 1xx carries SDP ("the UAS MUST NOT send a final response
//! until those provisional responses are acknowledged"). Held responses leave
//! as `Released` events once the PRACK came (a held final supersedes held
//! 1xx). A PRACK matching nothing is answered 481. As with the 2xx
//! (`reliability`), retransmissions go over unreliable transports only: a
//! stream delivers the first copy, and the give-up applies everywhere.
//!
//! UAC (§4): [`Dialog::reliable_provisional`] tells whether a 1xx needs a
//! PRACK (reliable, next in RSeq order), is a retransmission to discard (its
//! PRACK's own transaction already retransmits), or jumped ahead (not
//! acknowledged, §4); [`Dialog::create_prack`] builds the PRACK with its RAck
//! within the early dialog (§7.2).
//!
//! Sans-IO like the rest of the layer: time arrives as `now`, timers are
//! named (`DialogTimer::Retransmit1xx`, `DialogTimer::PrackTimeout`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;

use crate::net::Destination;
use crate::sip::{make_header, MessageHeaders, Method, Request, Response, SipMessage};

use super::{Body, Dialog, DialogError, DialogEvent, DialogMessage};

/// The option tag of RFC 3262.
pub const TAG_100REL: &str = "100rel";

/// Whether a header list (`Require`, `Supported`) names an option tag.
pub fn names_option<M: MessageHeaders>(message: &M, header: &str, tag: &str) -> bool {
    message
        .header_values(header)
        .iter()
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// A response handed to the dialog to send: out now, or held back.
#[derive(Debug)]
pub enum Outgoing {
    /// Send this (completed: tag, Contact, RSeq for a reliable 1xx).
    Now(Response),
    /// Held until the outstanding reliable 1xx is acknowledged; it leaves as
    /// a [`DialogEvent::Released`].
    Held,
}

/// What a 1xx received on the UAC side asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReliableCheck {
    /// An ordinary provisional response.
    Unreliable,
    /// New and in order: PRACK it with `RAck: rseq cseq INVITE`.
    Prack { rseq: u32, cseq: u32 },
    /// Seen already: discard it (§4).
    Retransmission,
    /// Its RSeq skips one: not acknowledged; the missing one will be retransmitted.
    OutOfOrder,
}

#[derive(Debug)]
struct Outstanding {
    rseq: u32,
    cseq: u32,
    response: Response,
    destination: Destination,
    carries_sdp: bool,
    /// `None` on a reliable transport.
    next_retransmit: Option<Instant>,
    interval: Duration,
    give_up_at: Instant,
}

#[derive(Debug)]
struct HeldResponse {
    request: Request,
    response: Response,
    destination: Destination,
}

/// A dialog's RFC 3262 state (empty until a reliable 1xx is sent or received).
#[derive(Debug, Default)]
pub(crate) struct PrackState {
    /// UAS: the RSeq of the next reliable 1xx.
    next_rseq: Option<u32>,
    /// UAS: the reliable 1xx sent and not yet PRACKed.
    outstanding: Option<Outstanding>,
    /// UAS: responses waiting for `outstanding`'s PRACK.
    held: VecDeque<HeldResponse>,
    /// UAC: the RSeq of the last reliable 1xx acknowledged.
    last_received: Option<u32>,
}

impl PrackState {
    /// Drops what waits (the dialog ended, or a final response went out).
    pub(super) fn clear(&mut self) {
        self.outstanding = None;
        self.held.clear();
    }

    /// The retransmission or give-up deadline, and whether it is the give-up.
    pub(super) fn deadline(&self) -> Option<(Instant, bool)> {
        let o = self.outstanding.as_ref()?;
        Some(match o.next_retransmit {
            Some(at) if at < o.give_up_at => (at, false),
            _ => (o.give_up_at, true),
        })
    }
}

fn has_sdp(response: &Response) -> bool {
    !response.body.is_empty()
        && response
            .header_value("Content-Type")
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"))
}

/// `RAck: 776656 1 INVITE` -> (776656, 1, INVITE).
fn parse_rack(value: &str) -> Option<(u32, u32, Method)> {
    let mut parts = value.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method = parts.next()?.parse().ok()?;
    Some((rseq, cseq, method))
}

impl Dialog {
    /// UAS: sends `response` (101-199 to the dialog-creating INVITE
    /// `request`) reliably, or holds it while another is unacknowledged. A
    /// held ringing without SDP gives way to a newer 1xx (only the latest
    /// progress matters).
    pub fn send_reliable(
        &mut self,
        now: Instant,
        request: &Request,
        response: Response,
        destination: Destination,
    ) -> Outgoing {
        if self.prack.outstanding.is_some() {
            self.prack
                .held
                .retain(|h| h.response.status_code.code() >= 200 || has_sdp(&h.response));
            debug!(dialog = %self.id, code = response.status_code.code(), "reliable 1xx held until the PRACK");
            self.prack.held.push_back(HeldResponse {
                request: request.clone(),
                response,
                destination,
            });
            return Outgoing::Held;
        }
        Outgoing::Now(self.start_reliable(now, request, response, destination))
    }

    /// UAS: a final response to the dialog-creating INVITE. A 2xx is held
    /// while an unacknowledged reliable 1xx carries SDP (§3); anything else
    /// goes now and ends the waiting (no 1xx may follow a final response).
    pub fn send_final(
        &mut self,
        now: Instant,
        request: &Request,
        response: Response,
        destination: Destination,
    ) -> Outgoing {
        let success = (200..300).contains(&response.status_code.code());
        let sdp_pending = self
            .prack
            .outstanding
            .as_ref()
            .is_some_and(|o| o.carries_sdp)
            || self.prack.held.iter().any(|h| has_sdp(&h.response));
        if success && sdp_pending {
            debug!(dialog = %self.id, "2xx held until the PRACK of the 1xx with SDP");
            self.prack.held.push_back(HeldResponse {
                request: request.clone(),
                response,
                destination,
            });
            return Outgoing::Held;
        }
        self.prack.clear();
        Outgoing::Now(self.prepare_response(now, request, response, destination))
    }

    /// Whether a final 2xx is being held back (a CANCEL may still end the INVITE).
    pub fn final_held(&self) -> bool {
        self.prack
            .held
            .iter()
            .any(|h| h.response.status_code.code() >= 200)
    }

    fn start_reliable(
        &mut self,
        now: Instant,
        request: &Request,
        mut response: Response,
        destination: Destination,
    ) -> Response {
        // §3: the first RSeq is chosen at random between 1 and 2^31 - 1; half
        // of that range leaves room to count up.
        let rseq = self
            .prack
            .next_rseq
            .unwrap_or_else(|| rand::rng().random_range(1..(1u32 << 30)));
        self.prack.next_rseq = Some(rseq.wrapping_add(1));
        response
            .headers
            .push(make_header("Require", TAG_100REL.into()));
        response.headers.push(make_header("RSeq", rseq.to_string()));
        let response = self.prepare_response(now, request, response, destination);
        let cseq = request.cseq().map_or(0, |(n, _)| n);
        let t1 = self.config.t1;
        debug!(dialog = %self.id, rseq, code = response.status_code.code(), "reliable 1xx sent");
        self.prack.outstanding = Some(Outstanding {
            rseq,
            cseq,
            carries_sdp: has_sdp(&response),
            response: response.clone(),
            destination,
            next_retransmit: (!destination.transport.is_reliable()).then(|| now + t1),
            interval: t1,
            give_up_at: now + 64 * t1,
        });
        response
    }

    /// UAS: a PRACK accepted in order by `handle_request`: whether its RAck
    /// names the outstanding reliable 1xx. Releases what was held.
    pub(super) fn prack_matches(&mut self, now: Instant, request: &Request) -> bool {
        let Some((rseq, cseq, method)) = request.header_value("RAck").and_then(parse_rack) else {
            return false;
        };
        let matches = self
            .prack
            .outstanding
            .as_ref()
            .is_some_and(|o| o.rseq == rseq && o.cseq == cseq && method == Method::Invite);
        if !matches {
            debug!(dialog = %self.id, rseq, cseq, "PRACK matches no unacknowledged 1xx");
            return false;
        }
        debug!(dialog = %self.id, rseq, "PRACK received");
        self.prack.outstanding = None;
        self.release_held(now);
        true
    }

    /// Sends what waited for the PRACK: a held final response supersedes held
    /// 1xx; otherwise the next held 1xx goes (reliably).
    fn release_held(&mut self, now: Instant) {
        let next = match self
            .prack
            .held
            .iter()
            .position(|h| h.response.status_code.code() >= 200)
        {
            Some(i) => {
                let h = self.prack.held.remove(i);
                self.prack.held.clear();
                h
            }
            None => self.prack.held.pop_front(),
        };
        let Some(h) = next else {
            return;
        };
        let response = if h.response.status_code.code() >= 200 {
            self.prepare_response(now, &h.request, h.response, h.destination)
        } else {
            self.start_reliable(now, &h.request, h.response, h.destination)
        };
        self.events.push_back(DialogEvent::Released {
            id: self.id.clone(),
            response: Box::new(response),
        });
    }

    /// Runs the reliable-1xx timer at `now`.
    pub(super) fn step_prack_timer(&mut self, now: Instant) {
        let Some(o) = self.prack.outstanding.as_mut() else {
            return;
        };
        if now >= o.give_up_at {
            let rseq = o.rseq;
            self.prack.clear();
            debug!(dialog = %self.id, rseq, "no PRACK within 64*T1");
            self.events
                .push_back(DialogEvent::PrackTimeout(self.id.clone()));
            return;
        }
        if let Some(at) = o.next_retransmit.filter(|at| *at <= now) {
            // §3: the interval doubles each time (no T2 cap for 1xx).
            o.interval *= 2;
            o.next_retransmit = Some(at + o.interval);
            debug!(dialog = %self.id, rseq = o.rseq, "retransmitting reliable 1xx");
            let transmit = DialogMessage {
                dialog: self.id.clone(),
                destination: Some(o.destination),
                message: SipMessage::Response(o.response.clone()),
            };
            self.transmits.push_back(transmit);
        }
    }

    /// UAC: what a 1xx to our INVITE asks for (§4). A reliable one in order
    /// is recorded as acknowledged: the caller sends the PRACK.
    pub fn reliable_provisional(&mut self, response: &Response) -> ReliableCheck {
        let code = response.status_code.code();
        if !(101..200).contains(&code) || !names_option(response, "Require", TAG_100REL) {
            return ReliableCheck::Unreliable;
        }
        let Some(rseq) = response
            .header_value("RSeq")
            .and_then(|v| v.trim().parse::<u32>().ok())
        else {
            return ReliableCheck::Unreliable;
        };
        let Some((cseq, Method::Invite)) = response.cseq() else {
            return ReliableCheck::Unreliable;
        };
        match self.prack.last_received {
            Some(last) if rseq <= last => ReliableCheck::Retransmission,
            Some(last) if rseq > last.wrapping_add(1) => ReliableCheck::OutOfOrder,
            _ => {
                self.prack.last_received = Some(rseq);
                ReliableCheck::Prack { rseq, cseq }
            }
        }
    }

    /// UAC: the PRACK for the reliable 1xx `rseq` to the INVITE `cseq`
    /// (§7.2), with an answer when that 1xx carried an offer.
    pub fn create_prack(
        &mut self,
        via_sent_by: &str,
        rseq: u32,
        cseq: u32,
        body: Option<Body>,
    ) -> Result<Request, DialogError> {
        let mut prack = self.create_request(Method::PRack, via_sent_by, body)?;
        prack
            .headers
            .push(make_header("RAck", format!("{rseq} {cseq} INVITE")));
        Ok(prack)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::*;
    use crate::dialog::{DialogState, DialogTimer, RequestOutcome};
    use crate::net::TransportKind;

    const SDP_HEADERS: [&str; 1] = ["Content-Type: application/sdp"];

    fn with_sdp(mut r: Response) -> Response {
        r.body = b"v=0\r\n".to_vec();
        crate::sip::set_content_length(&mut r);
        r
    }

    fn uas(transport: TransportKind) -> (Dialog, Request) {
        let inv = invite_with(&["Supported: 100rel"]);
        let d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", transport).unwrap();
        (d, inv)
    }

    fn sent(o: Outgoing) -> Response {
        match o {
            Outgoing::Now(r) => r,
            Outgoing::Held => panic!("held"),
        }
    }

    fn rseq(r: &Response) -> u32 {
        r.header_value("RSeq").unwrap().parse().unwrap()
    }

    fn prack(rseq: u32, cseq: u32) -> Request {
        in_dialog_req(
            Method::PRack,
            cseq,
            "b1",
            &[&format!("RAck: {rseq} 1 INVITE")],
        )
    }

    #[test]
    fn reliable_183_is_retransmitted_doubling_until_its_prack() {
        let t0 = Instant::now();
        let (mut d, inv) = uas(TransportKind::Udp);
        let p = with_sdp(resp_to(&inv, 183, None, &SDP_HEADERS));
        let r = sent(d.send_reliable(t0, &inv, p, dest(TransportKind::Udp)));
        assert!(names_option(&r, "Require", "100rel"));
        let n = rseq(&r);
        assert!((1..1u32 << 31).contains(&n));
        assert_eq!(r.to_tag().as_deref(), Some("b1"));
        // Retransmitted at 500, 1500, 3500 ms (T1 doubling).
        let mut at = Vec::new();
        for _ in 0..3 {
            let t = d.poll_timeout().unwrap();
            assert!(matches!(t.timer, DialogTimer::Retransmit1xx(_)));
            d.handle_timeout(t.at);
            let tx = d.poll_transmit().unwrap();
            assert!(matches!(tx.message, SipMessage::Response(ref x) if rseq(x) == n));
            at.push((t.at - t0).as_millis());
        }
        assert_eq!(at, vec![500, 1500, 3500]);
        // The 2xx waits: the 183 carried SDP.
        let ok = resp_to(&inv, 200, None, &[]);
        assert!(matches!(
            d.send_final(t0, &inv, ok, dest(TransportKind::Udp)),
            Outgoing::Held
        ));
        assert!(d.final_held());
        assert_eq!(d.state(), DialogState::Early);
        // A PRACK naming another RSeq is refused with 481.
        match d.handle_request(t0, &prack(n + 1, 2)) {
            RequestOutcome::Reject(r) => assert_eq!(r.status_code.code(), 481),
            other => panic!("{other:?}"),
        }
        // The right one stops the retransmissions and releases the 2xx.
        assert!(matches!(
            d.handle_request(t0, &prack(n, 3)),
            RequestOutcome::Accepted(_)
        ));
        let released: Vec<_> = std::iter::from_fn(|| d.poll_event()).collect();
        assert!(
            released.iter().any(|e| matches!(e, DialogEvent::Released { response, .. } if response.status_code.code() == 200)),
            "{released:?}"
        );
        assert_eq!(d.state(), DialogState::Confirmed);
        // Only the 2xx's ACK wait is left.
        assert!(matches!(
            d.poll_timeout().unwrap().timer,
            DialogTimer::Retransmit2xx(_)
        ));
    }

    #[test]
    fn no_prack_within_64_t1_tells_the_tu() {
        let t0 = Instant::now();
        let (mut d, inv) = uas(TransportKind::Tcp);
        let p = resp_to(&inv, 180, None, &[]);
        sent(d.send_reliable(t0, &inv, p, dest(TransportKind::Tcp)));
        // Over a stream: no retransmission, only the give-up.
        let t = d.poll_timeout().unwrap();
        assert!(matches!(t.timer, DialogTimer::PrackTimeout(_)));
        assert_eq!(t.at, t0 + Duration::from_secs(32));
        d.handle_timeout(t.at);
        assert!(d.poll_transmit().is_none());
        assert!(matches!(d.poll_event(), Some(DialogEvent::PrackTimeout(_))));
        assert!(d.poll_timeout().is_none());
    }

    #[test]
    fn second_reliable_1xx_waits_for_the_first_prack_and_counts_up() {
        let t0 = Instant::now();
        let (mut d, inv) = uas(TransportKind::Udp);
        let first = sent(d.send_reliable(
            t0,
            &inv,
            resp_to(&inv, 180, None, &[]),
            dest(TransportKind::Udp),
        ));
        let p = with_sdp(resp_to(&inv, 183, None, &SDP_HEADERS));
        assert!(matches!(
            d.send_reliable(t0, &inv, p, dest(TransportKind::Udp)),
            Outgoing::Held
        ));
        // A 2xx with nothing of SDP outstanding... but the held 183 has SDP: held too.
        let ok = resp_to(&inv, 200, None, &[]);
        assert!(matches!(
            d.send_final(t0, &inv, ok, dest(TransportKind::Udp)),
            Outgoing::Held
        ));
        assert!(matches!(
            d.handle_request(t0, &prack(rseq(&first), 2)),
            RequestOutcome::Accepted(_)
        ));
        // The final supersedes the held 183.
        let released: Vec<u16> = std::iter::from_fn(|| d.poll_event())
            .filter_map(|e| match e {
                DialogEvent::Released { response, .. } => Some(response.status_code.code()),
                _ => None,
            })
            .collect();
        assert_eq!(released, vec![200]);
    }

    #[test]
    fn held_1xx_goes_reliably_after_the_prack_with_the_next_rseq() {
        let t0 = Instant::now();
        let (mut d, inv) = uas(TransportKind::Udp);
        let first = sent(d.send_reliable(
            t0,
            &inv,
            resp_to(&inv, 180, None, &[]),
            dest(TransportKind::Udp),
        ));
        let p = with_sdp(resp_to(&inv, 183, None, &SDP_HEADERS));
        assert!(matches!(
            d.send_reliable(t0, &inv, p, dest(TransportKind::Udp)),
            Outgoing::Held
        ));
        d.handle_request(t0, &prack(rseq(&first), 2));
        match d.poll_event() {
            Some(DialogEvent::Released { response, .. }) => {
                assert_eq!(response.status_code.code(), 183);
                assert_eq!(rseq(&response), rseq(&first) + 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_2xx_may_follow_an_unacknowledged_1xx_without_sdp() {
        let t0 = Instant::now();
        let (mut d, inv) = uas(TransportKind::Udp);
        sent(d.send_reliable(
            t0,
            &inv,
            resp_to(&inv, 180, None, &[]),
            dest(TransportKind::Udp),
        ));
        let ok = sent(d.send_final(
            t0,
            &inv,
            resp_to(&inv, 200, None, &[]),
            dest(TransportKind::Udp),
        ));
        assert_eq!(ok.status_code.code(), 200);
        // The 180 is no longer retransmitted.
        assert!(matches!(
            d.poll_timeout().unwrap().timer,
            DialogTimer::Retransmit2xx(_)
        ));
    }

    #[test]
    fn uac_pracks_in_order_and_discards_retransmissions() {
        let inv = invite();
        let p = |rseq: u32| {
            resp_to(
                &inv,
                183,
                Some("b1"),
                &[CONTACT_B, "Require: 100rel", &format!("RSeq: {rseq}")],
            )
        };
        let mut d = Dialog::uac(&inv, &p(7), TransportKind::Udp).unwrap();
        assert_eq!(
            d.reliable_provisional(&p(7)),
            ReliableCheck::Prack { rseq: 7, cseq: 1 }
        );
        assert_eq!(d.reliable_provisional(&p(7)), ReliableCheck::Retransmission);
        assert_eq!(d.reliable_provisional(&p(9)), ReliableCheck::OutOfOrder);
        assert_eq!(
            d.reliable_provisional(&p(8)),
            ReliableCheck::Prack { rseq: 8, cseq: 1 }
        );
        let plain = resp_to(&inv, 180, Some("b1"), &[CONTACT_B]);
        assert_eq!(d.reliable_provisional(&plain), ReliableCheck::Unreliable);
        let prack = d.create_prack("10.0.0.1:5060", 8, 1, None).unwrap();
        assert_eq!(prack.method, Method::PRack);
        assert_eq!(prack.header_value("RAck"), Some("8 1 INVITE"));
        assert_eq!(prack.cseq(), Some((2, Method::PRack)));
        assert_eq!(prack.to_tag().as_deref(), Some("b1"));
        assert_eq!(prack.uri.to_string(), "sip:bob@10.0.0.2:5060");
        // The ACK of the 2xx still carries the INVITE's CSeq.
        d.handle_response(Instant::now(), &ok_to(&inv, "b1"));
        let ack = d.create_ack("10.0.0.1:5060", None).unwrap();
        assert_eq!(ack.cseq(), Some((1, Method::Ack)));
    }

    #[test]
    fn rack_parses() {
        assert_eq!(
            parse_rack("776656 1 INVITE"),
            Some((776656, 1, Method::Invite))
        );
        assert_eq!(parse_rack("x 1 INVITE"), None);
        assert_eq!(parse_rack("1 1"), None);
    }
}
