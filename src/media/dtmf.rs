//! RFC 4733 telephone events (DTMF): detection on received streams and
//! generation into a leg. Sans-IO: every call takes an explicit `now`, so the
//! unit tests step through packet loss and timing without sleeping.
//!
//! Detection reports one digit per event (the RTP timestamp identifies an
//! event, §2.5.1.1): on the first end packet (the other two end packets,
//! §2.5.1.4, are retransmissions and are ignored), or, when every end packet
//! was lost, on the start of the next event or after [`END_TIMEOUT`] without
//! an update.
//!
//! Generation follows §2.5.1: per digit a start packet with the marker bit,
//! updates every 50 ms with the duration so far, then three end packets with
//! the E bit, all with the event's start timestamp; `gap_ms` separates digits.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// An event not updated for this long is taken as ended (its end packets lost).
pub const END_TIMEOUT: Duration = Duration::from_millis(250);
/// Interval between updates of a playing event (RFC 4733 §2.5.1.2 suggests 50 ms).
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// Volume field of generated events: -10 dBm0, a usual DTMF level.
const VOLUME: u8 = 10;
/// Longest event the 16-bit duration field can carry at 8 kHz (whole ms).
const MAX_DURATION_MS: u32 = 8000;

/// RFC 4733 §3.2 event code of a DTMF digit.
pub fn digit_code(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(c as u8 - b'A' + 12),
        'a'..='d' => Some(c as u8 - b'a' + 12),
        _ => None,
    }
}

/// The digit of an event code, None for non-DTMF events (flash, tones).
pub fn code_digit(code: u8) -> Option<char> {
    b"0123456789*#ABCD"
        .get(usize::from(code))
        .map(|&b| b as char)
}

/// A detected digit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detected {
    pub digit: char,
    pub duration_ms: u32,
}

#[derive(Clone, Copy, Debug)]
struct RxEvent {
    ts: u32,
    code: u8,
    /// Duration so far, in 8 kHz samples.
    duration: u16,
    reported: bool,
    last_seen: Instant,
}

impl RxEvent {
    fn detected(&self) -> Option<Detected> {
        Some(Detected {
            digit: code_digit(self.code)?,
            duration_ms: u32::from(self.duration) / 8,
        })
    }
}

/// Detector for one received stream.
#[derive(Debug, Default, Clone)]
pub struct DtmfDetector {
    current: Option<RxEvent>,
}

impl DtmfDetector {
    /// Feed one telephone-event packet's payload and RTP timestamp. Returns
    /// up to two digits: a previous event whose end was lost, then this one
    /// if this packet ends it. A payload shorter than 4 bytes is ignored.
    pub fn on_packet(
        &mut self,
        payload: &[u8],
        rtp_ts: u32,
        now: Instant,
    ) -> [Option<Detected>; 2] {
        let mut out = [None, None];
        if payload.len() < 4 {
            return out;
        }
        let code = payload[0];
        let end = payload[1] & 0x80 != 0;
        let duration = u16::from_be_bytes([payload[2], payload[3]]);
        match &mut self.current {
            Some(ev) if ev.ts == rtp_ts && ev.code == code => {
                ev.last_seen = now;
                if ev.reported {
                    // End retransmission, or a stray update after the end.
                    return out;
                }
                ev.duration = ev.duration.max(duration);
                if end {
                    ev.reported = true;
                    out[0] = ev.detected();
                }
            }
            _ => {
                if let Some(prev) = self.current.filter(|e| !e.reported) {
                    out[0] = prev.detected();
                }
                let ev = RxEvent {
                    ts: rtp_ts,
                    code,
                    duration,
                    reported: end,
                    last_seen: now,
                };
                if end {
                    out[1] = ev.detected();
                }
                self.current = Some(ev);
            }
        }
        out
    }

    /// Report an event whose updates stopped without an end packet.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Detected> {
        let ev = self.current.as_mut()?;
        if ev.reported || now.saturating_duration_since(ev.last_seen) < END_TIMEOUT {
            return None;
        }
        ev.reported = true;
        ev.detected()
    }

    /// When [`Self::on_timeout`] may next report something.
    pub fn deadline(&self) -> Option<Instant> {
        self.current
            .filter(|e| !e.reported)
            .map(|e| e.last_seen + END_TIMEOUT)
    }
}

/// Error for a digit string that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmfError {
    #[error("invalid DTMF digit {0:?}")]
    InvalidDigit(char),
    #[error("no digits to send")]
    Empty,
    #[error("leg negotiated no telephone-event payload type")]
    NoEventPayload,
    #[error("unknown leg")]
    UnknownLeg,
}

#[derive(Debug, Clone)]
struct Job {
    text: String,
    codes: Vec<u8>,
    /// Event duration in ms (capped to what the field can carry).
    duration_ms: u32,
    gap: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Digit `index` of the front job starts at `at` (None: as soon as polled).
    Waiting { index: usize, at: Option<Instant> },
    /// Digit `index` of the front job started at `start`; `updates` packets
    /// (start included) and `ends` end packets have been sent.
    Playing {
        index: usize,
        start: Instant,
        updates: u32,
        ends: u8,
    },
}

/// One packet (or report) the sender wants out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DtmfAction {
    /// An RFC 4733 payload. `begin` = first packet of the event (marker bit,
    /// new timestamp standing for the wall time `at`); otherwise the event's
    /// timestamp again.
    Packet {
        begin: bool,
        at: Instant,
        payload: [u8; 4],
    },
    /// Every digit of one `SendDtmf` was sent.
    Sent { digits: String },
}

/// Generator for one leg.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    jobs: VecDeque<Job>,
    phase: Phase,
}

impl Default for DtmfSender {
    fn default() -> Self {
        DtmfSender {
            jobs: VecDeque::new(),
            phase: Phase::Waiting { index: 0, at: None },
        }
    }
}

const UPDATE_INTERVAL_MS: u32 = 50;

fn payload(code: u8, end: bool, duration_ms: u32) -> [u8; 4] {
    let d = (duration_ms.min(MAX_DURATION_MS) * 8) as u16;
    let [hi, lo] = d.to_be_bytes();
    [code, if end { 0x80 } else { 0 } | VOLUME, hi, lo]
}

impl DtmfSender {
    /// Queue `digits` after whatever is playing.
    pub fn queue(&mut self, digits: &str, duration_ms: u32, gap_ms: u32) -> Result<(), DtmfError> {
        let codes = digits
            .chars()
            .map(|c| digit_code(c).ok_or(DtmfError::InvalidDigit(c)))
            .collect::<Result<Vec<u8>, _>>()?;
        if codes.is_empty() {
            return Err(DtmfError::Empty);
        }
        self.jobs.push_back(Job {
            text: digits.to_owned(),
            codes,
            duration_ms: duration_ms.clamp(1, MAX_DURATION_MS),
            gap: Duration::from_millis(u64::from(gap_ms)),
        });
        Ok(())
    }

    /// Whether an event is being played (forwarded audio must be held back).
    pub fn playing(&self) -> bool {
        matches!(self.phase, Phase::Playing { .. })
    }

    /// Nothing queued or playing.
    pub fn idle(&self) -> bool {
        self.jobs.is_empty()
    }

    /// When [`Self::poll`] next has something to do (None: nothing queued, or
    /// due at once).
    pub fn deadline(&self) -> Option<Instant> {
        let job = self.jobs.front()?;
        match self.phase {
            Phase::Waiting { at, .. } => at,
            Phase::Playing { start, updates, .. } => {
                if updates < job.duration_ms.div_ceil(UPDATE_INTERVAL_MS) {
                    Some(start + UPDATE_INTERVAL * updates)
                } else {
                    Some(start + Duration::from_millis(u64::from(job.duration_ms)))
                }
            }
        }
    }

    /// The next action due at or before `now`, if any. Call until None.
    pub fn poll(&mut self, now: Instant) -> Option<DtmfAction> {
        let job = self.jobs.front()?;
        match self.phase {
            Phase::Waiting { index, at } => {
                // Late polls start late rather than back-dating the timestamp.
                let start = at.map_or(now, |a| a.max(now));
                if at.is_some_and(|a| now < a) {
                    return None;
                }
                self.phase = Phase::Playing {
                    index,
                    start,
                    updates: 1,
                    ends: 0,
                };
                let so_far = UPDATE_INTERVAL_MS.min(job.duration_ms);
                Some(DtmfAction::Packet {
                    begin: true,
                    at: start,
                    payload: payload(job.codes[index], false, so_far),
                })
            }
            Phase::Playing {
                index,
                start,
                updates,
                ends,
            } => {
                let code = job.codes[index];
                let d = job.duration_ms;
                if updates < d.div_ceil(UPDATE_INTERVAL_MS) {
                    let at = start + UPDATE_INTERVAL * updates;
                    if now < at {
                        return None;
                    }
                    self.phase = Phase::Playing {
                        index,
                        start,
                        updates: updates + 1,
                        ends,
                    };
                    let so_far = ((updates + 1) * UPDATE_INTERVAL_MS).min(d);
                    return Some(DtmfAction::Packet {
                        begin: false,
                        at,
                        payload: payload(code, false, so_far),
                    });
                }
                let end_at = start + Duration::from_millis(u64::from(d));
                if now < end_at {
                    return None;
                }
                if ends < 3 {
                    self.phase = Phase::Playing {
                        index,
                        start,
                        updates,
                        ends: ends + 1,
                    };
                    return Some(DtmfAction::Packet {
                        begin: false,
                        at: end_at,
                        payload: payload(code, true, d),
                    });
                }
                // Digit done: the next one after the gap, or the job is done
                // (and the next job, if any, also waits a gap).
                let next_at = Some(end_at + job.gap);
                if index + 1 < job.codes.len() {
                    self.phase = Phase::Waiting {
                        index: index + 1,
                        at: next_at,
                    };
                    self.poll(now)
                } else {
                    let done = self.jobs.pop_front().map(|j| j.text).unwrap_or_default();
                    self.phase = Phase::Waiting {
                        index: 0,
                        at: next_at,
                    };
                    Some(DtmfAction::Sent { digits: done })
                }
            }
        }
    }

    /// Drop everything queued (leg closed); returns the digit strings dropped.
    pub fn clear(&mut self) -> Vec<String> {
        self.phase = Phase::Waiting { index: 0, at: None };
        self.jobs.drain(..).map(|j| j.text).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ev(code: u8, end: bool, dur: u16) -> [u8; 4] {
        let [hi, lo] = dur.to_be_bytes();
        [code, if end { 0x8a } else { 0x0a }, hi, lo]
    }

    #[test]
    fn detects_once_on_end_and_ignores_end_retransmissions() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        assert_eq!(d.on_packet(&ev(5, false, 400), 1000, t0), [None, None]);
        assert_eq!(
            d.on_packet(&ev(5, false, 800), 1000, t0 + ms(50)),
            [None, None]
        );
        let r = d.on_packet(&ev(5, true, 1280), 1000, t0 + ms(100));
        assert_eq!(
            r[0],
            Some(Detected {
                digit: '5',
                duration_ms: 160
            })
        );
        assert_eq!(
            d.on_packet(&ev(5, true, 1280), 1000, t0 + ms(101)),
            [None, None]
        );
        assert_eq!(
            d.on_packet(&ev(5, true, 1280), 1000, t0 + ms(102)),
            [None, None]
        );
        assert_eq!(d.on_timeout(t0 + ms(1000)), None);
        // Same digit again is a new event (new timestamp).
        let r = d.on_packet(&ev(5, true, 800), 3000, t0 + ms(400));
        assert_eq!(
            r,
            [
                None,
                Some(Detected {
                    digit: '5',
                    duration_ms: 100
                })
            ]
        );
    }

    #[test]
    fn lost_end_packets_report_on_next_event_or_timeout() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        d.on_packet(&ev(11, false, 400), 100, t0);
        d.on_packet(&ev(11, false, 800), 100, t0 + ms(50));
        // The next event starts: '#' is reported with its last known duration.
        let r = d.on_packet(&ev(10, false, 400), 5000, t0 + ms(300));
        assert_eq!(
            r,
            [
                Some(Detected {
                    digit: '#',
                    duration_ms: 100
                }),
                None
            ]
        );
        assert_eq!(d.deadline(), Some(t0 + ms(300) + END_TIMEOUT));
        assert_eq!(d.on_timeout(t0 + ms(400)), None);
        assert_eq!(
            d.on_timeout(t0 + ms(300) + END_TIMEOUT),
            Some(Detected {
                digit: '*',
                duration_ms: 50
            })
        );
        assert_eq!(d.on_timeout(t0 + ms(2000)), None);
        // Late end packets of the timed-out event stay silent.
        assert_eq!(
            d.on_packet(&ev(10, true, 800), 5000, t0 + ms(600)),
            [None, None]
        );
    }

    #[test]
    fn short_payloads_and_non_digits_are_ignored() {
        let t0 = Instant::now();
        let mut d = DtmfDetector::default();
        assert_eq!(d.on_packet(&[1, 2, 3], 1, t0), [None, None]);
        assert_eq!(d.on_packet(&ev(16, true, 800), 1, t0), [None, None]);
    }

    #[test]
    fn digit_codes() {
        let all: String = (0..16).map(|c| code_digit(c).unwrap()).collect();
        assert_eq!(all, "0123456789*#ABCD");
        for (i, c) in all.chars().enumerate() {
            assert_eq!(digit_code(c), Some(i as u8));
        }
        assert_eq!(digit_code('b'), Some(13));
        assert_eq!(digit_code('E'), None);
        assert_eq!(code_digit(16), None);
    }

    /// Collect every action up to `until`, stepping to each deadline.
    fn run(s: &mut DtmfSender, t0: Instant, until: Instant) -> Vec<(Duration, DtmfAction)> {
        let mut out = Vec::new();
        let mut now = t0;
        loop {
            while let Some(a) = s.poll(now) {
                out.push((now - t0, a));
            }
            match s.deadline() {
                Some(d) if d <= until => now = d.max(now),
                _ => return out,
            }
        }
    }

    #[test]
    fn generates_start_updates_and_three_ends_per_digit() {
        let t0 = Instant::now();
        let mut s = DtmfSender::default();
        s.queue("1#", 120, 60).unwrap();
        let acts = run(&mut s, t0, t0 + ms(10_000));
        let pkt = |begin: bool, at: u64, p: [u8; 4]| DtmfAction::Packet {
            begin,
            at: t0 + ms(at),
            payload: p,
        };
        let expected = vec![
            (ms(0), pkt(true, 0, ev(1, false, 400))),
            (ms(50), pkt(false, 50, ev(1, false, 800))),
            (ms(100), pkt(false, 100, ev(1, false, 960))),
            (ms(120), pkt(false, 120, ev(1, true, 960))),
            (ms(120), pkt(false, 120, ev(1, true, 960))),
            (ms(120), pkt(false, 120, ev(1, true, 960))),
            (ms(180), pkt(true, 180, ev(11, false, 400))),
            (ms(230), pkt(false, 230, ev(11, false, 800))),
            (ms(280), pkt(false, 280, ev(11, false, 960))),
            (ms(300), pkt(false, 300, ev(11, true, 960))),
            (ms(300), pkt(false, 300, ev(11, true, 960))),
            (ms(300), pkt(false, 300, ev(11, true, 960))),
            (
                ms(300),
                DtmfAction::Sent {
                    digits: "1#".into(),
                },
            ),
        ];
        assert_eq!(acts, expected);
        assert!(s.idle());
        assert!(!s.playing());
    }

    #[test]
    fn playing_flag_and_rejections() {
        let t0 = Instant::now();
        let mut s = DtmfSender::default();
        assert_eq!(s.queue("12x", 100, 50), Err(DtmfError::InvalidDigit('x')));
        assert_eq!(s.queue("", 100, 50), Err(DtmfError::Empty));
        s.queue("9", 100, 50).unwrap();
        assert!(!s.playing());
        assert!(matches!(
            s.poll(t0),
            Some(DtmfAction::Packet { begin: true, .. })
        ));
        assert!(s.playing());
        assert_eq!(s.poll(t0 + ms(10)), None);
        assert_eq!(s.clear(), vec!["9".to_string()]);
        assert!(s.idle());
    }
}
