//! Timers above the transactions: the UAS's 2xx retransmission until the ACK
//! (RFC 3261 §13.3.1.4 as amended by RFC 6026 §8.1) and the §14.1 re-INVITE
//! back-off after a 491.
//!
//! RFC 6026 lets the INVITE server transaction forget the 2xx, so the TU
//! (this layer) re-sends it: at T1, then doubling, capped at T2, only over
//! unreliable transports; on every transport it gives up at 64*T1 and tells
//! the TU to end the session with BYE.

use std::time::{Duration, Instant};

use rand::Rng;
use tracing::debug;

use crate::net::Destination;
use crate::sip::{Response, SipMessage};

use super::{Dialog, DialogConfig, DialogEvent, DialogMessage};

/// The state "2xx sent, ACK not yet received" (exists only while waiting).
#[derive(Debug)]
pub(crate) struct AwaitingAck {
    pub(super) cseq: u32,
    response: Response,
    destination: Destination,
    /// `None` on a reliable transport: the transport carries it there.
    next_retransmit: Option<Instant>,
    interval: Duration,
    give_up_at: Instant,
}

/// What a fired ACK timer leads to.
enum AckStep {
    Wait(AwaitingAck),
    Retransmit(AwaitingAck),
    GiveUp(u32),
}

impl AwaitingAck {
    /// Starts waiting at `now`, the moment the 2xx was first sent.
    pub(super) fn start(
        now: Instant,
        cseq: u32,
        response: Response,
        destination: Destination,
        config: &DialogConfig,
    ) -> Self {
        let unreliable = !destination.transport.is_reliable();
        AwaitingAck {
            cseq,
            response,
            destination,
            next_retransmit: unreliable.then(|| now + config.t1),
            interval: config.t1,
            give_up_at: now + 64 * config.t1,
        }
    }

    /// The next deadline, and whether it is the give-up one.
    pub(super) fn deadline(&self) -> (Instant, bool) {
        match self.next_retransmit {
            Some(at) if at < self.give_up_at => (at, false),
            _ => (self.give_up_at, true),
        }
    }

    fn step(mut self, now: Instant, config: &DialogConfig) -> AckStep {
        if now >= self.give_up_at {
            return AckStep::GiveUp(self.cseq);
        }
        match self.next_retransmit {
            Some(at) if at <= now => {
                self.interval = (self.interval * 2).min(config.t2);
                self.next_retransmit = Some(at + self.interval);
                AckStep::Retransmit(self)
            }
            _ => AckStep::Wait(self),
        }
    }
}

impl Dialog {
    /// Runs the ACK timer at `now`; returns the state to keep, if any.
    pub(super) fn step_ack_timer(
        &mut self,
        waiting: AwaitingAck,
        now: Instant,
    ) -> Option<AwaitingAck> {
        match waiting.step(now, &self.config) {
            AckStep::Wait(w) => Some(w),
            AckStep::Retransmit(w) => {
                debug!(dialog = %self.id, cseq = w.cseq, "retransmitting 2xx");
                self.transmits.push_back(DialogMessage {
                    dialog: self.id.clone(),
                    destination: Some(w.destination),
                    message: SipMessage::Response(w.response.clone()),
                });
                Some(w)
            }
            AckStep::GiveUp(cseq) => {
                debug!(dialog = %self.id, cseq, "no ACK for 2xx within 64*T1");
                self.events.push_back(DialogEvent::AckTimeout {
                    id: self.id.clone(),
                    cseq,
                });
                None
            }
        }
    }
}

/// §14.1: how long a UAC waits after a 491 before trying again: 2.1-4 s if
/// it generated the Call-ID, 0-2 s otherwise, in units of 10 ms.
pub fn glare_retry_delay(owns_call_id: bool) -> Duration {
    let units = if owns_call_id {
        rand::rng().random_range(210..=400u64)
    } else {
        rand::rng().random_range(0..=200u64)
    };
    Duration::from_millis(units * 10)
}

/// §14.2: the Retry-After (seconds) on a 500 to an overlapping INVITE.
pub fn retry_after_secs() -> u32 {
    rand::rng().random_range(0..=10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialog::testutil::*;
    use crate::dialog::{DialogState, DialogTimer};
    use crate::net::TransportKind;
    use crate::sip::Method;

    #[test]
    fn glare_delay_ranges_follow_call_id_ownership() {
        for _ in 0..500 {
            let own = glare_retry_delay(true);
            assert!(own >= Duration::from_millis(2100) && own <= Duration::from_secs(4));
            assert_eq!(own.as_millis() % 10, 0);
            let other = glare_retry_delay(false);
            assert!(other <= Duration::from_secs(2));
            assert_eq!(other.as_millis() % 10, 0);
            assert!(retry_after_secs() <= 10);
        }
    }

    /// A UAS dialog that has just sent its 2xx at `t0` over `transport`.
    fn answered(t0: Instant, transport: TransportKind) -> Dialog {
        let inv = invite();
        let mut d = Dialog::uas(&inv, "b1", "<sip:bob@10.0.0.2>", transport).unwrap();
        let ok = d.prepare_response(t0, &inv, resp_to(&inv, 200, None, &[]), dest(transport));
        assert_eq!(ok.status_code.code(), 200);
        assert_eq!(d.state(), DialogState::Confirmed);
        d
    }

    /// Drives the dialog through virtual time, returning the offsets (ms
    /// after t0) of each retransmission and of the give-up.
    fn run(d: &mut Dialog, t0: Instant) -> (Vec<u128>, Option<u128>) {
        let (mut sent, mut gave_up) = (Vec::new(), None);
        while let Some(t) = d.poll_timeout() {
            d.handle_timeout(t.at);
            while let Some(tx) = d.poll_transmit() {
                assert!(
                    matches!(tx.message, SipMessage::Response(ref r) if r.status_code.code() == 200)
                );
                sent.push((t.at - t0).as_millis());
            }
            while let Some(ev) = d.poll_event() {
                if let DialogEvent::AckTimeout { cseq, .. } = ev {
                    assert_eq!(cseq, 1);
                    gave_up = Some((t.at - t0).as_millis());
                }
            }
        }
        (sent, gave_up)
    }

    #[test]
    fn udp_2xx_is_retransmitted_doubling_to_t2_until_64_t1() {
        let t0 = Instant::now();
        let mut d = answered(t0, TransportKind::Udp);
        let first = d.poll_timeout().unwrap();
        assert_eq!(first.at, t0 + Duration::from_millis(500));
        assert!(matches!(first.timer, DialogTimer::Retransmit2xx(_)));
        let (sent, gave_up) = run(&mut d, t0);
        // T1=500ms: intervals 500, 1000, 2000, then 4000 (T2) each time.
        assert_eq!(
            sent,
            vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(gave_up, Some(32_000));
        assert_eq!(d.state(), DialogState::Confirmed, "the TU sends BYE");
    }

    #[test]
    fn reliable_transport_only_gives_up() {
        let t0 = Instant::now();
        let mut d = answered(t0, TransportKind::Tcp);
        assert!(matches!(
            d.poll_timeout().unwrap().timer,
            DialogTimer::AckTimeout(_)
        ));
        assert_eq!(run(&mut d, t0), (vec![], Some(32_000)));
    }

    #[test]
    fn ack_stops_the_retransmissions() {
        let t0 = Instant::now();
        let mut d = answered(t0, TransportKind::Udp);
        d.handle_timeout(t0 + Duration::from_millis(500));
        assert!(d.poll_transmit().is_some());
        let ack = in_dialog_req(Method::Ack, 1, "b1", &[]);
        d.handle_request(t0 + Duration::from_millis(700), &ack);
        assert!(d.poll_timeout().is_none());
        assert!(d
            .events
            .iter()
            .any(|e| matches!(e, DialogEvent::Acked { cseq: 1, .. })));
        d.handle_timeout(t0 + Duration::from_secs(40));
        assert!(d.poll_transmit().is_none());
        assert!(!d
            .events
            .iter()
            .any(|e| matches!(e, DialogEvent::AckTimeout { .. })));
    }

    #[test]
    fn ack_for_an_older_invite_does_not_stop_them() {
        let t0 = Instant::now();
        let mut d = answered(t0, TransportKind::Udp);
        let stale = in_dialog_req(Method::Ack, 0, "b1", &[]);
        d.handle_request(t0, &stale);
        assert!(d.poll_timeout().is_some());
    }
}
