//! Per-leg statistics: counters the relay thread writes and any thread reads
//! ([`LegCounters`], atomics), and the RFC 3550 receive-side bookkeeping for
//! loss (A.1 sequence tracking, A.3 expected - received) and interarrival
//! jitter (A.8) on the stream a leg sends us ([`ReceiveStats`], sans-IO,
//! owned by the relay thread).
//!
//! Each counter has a single writer (the relay thread), so increments are a
//! relaxed load and store rather than a locked read-modify-write: the per
//! packet path pays no bus lock, and readers still see a consistent value of
//! each counter (not a snapshot across counters, which nobody needs).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of one leg's counters (as the relay keeps them, and as the
/// HTTP API shows a leg's media).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct LegStats {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RFC 3550 A.3 cumulative loss on the stream received from this leg.
    pub lost: u64,
    /// RFC 3550 A.8 interarrival jitter of the received stream, milliseconds.
    pub jitter_ms: f64,
    pub rtcp_in: u64,
    pub rtcp_out: u64,
    /// Packets received on this leg's ports and dropped as malformed
    /// (too short, wrong version, inconsistent lengths).
    pub malformed: u64,
}

/// Live counters of one leg. Written by the relay thread only.
#[derive(Debug, Default)]
pub struct LegCounters {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
    lost: AtomicU64,
    jitter_bits: AtomicU64,
    rtcp_in: AtomicU64,
    rtcp_out: AtomicU64,
    malformed: AtomicU64,
}

/// Single-writer increment (see the module header).
#[inline]
fn bump(c: &AtomicU64, by: u64) {
    c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
}

impl LegCounters {
    #[inline]
    pub fn rtp_in(&self, bytes: usize) {
        bump(&self.packets_in, 1);
        bump(&self.bytes_in, bytes as u64);
    }
    #[inline]
    pub fn rtp_out(&self, bytes: usize) {
        bump(&self.packets_out, 1);
        bump(&self.bytes_out, bytes as u64);
    }
    /// `packets` RTP packets of `bytes` in all left toward this leg.
    #[inline]
    pub fn rtp_out_many(&self, packets: u64, bytes: u64) {
        bump(&self.packets_out, packets);
        bump(&self.bytes_out, bytes);
    }
    #[inline]
    pub fn rtcp_in(&self) {
        bump(&self.rtcp_in, 1);
    }
    #[inline]
    pub fn rtcp_out(&self, packets: u64) {
        bump(&self.rtcp_out, packets);
    }
    #[inline]
    pub fn malformed(&self) {
        bump(&self.malformed, 1);
    }
    #[inline]
    pub fn set_quality(&self, lost: u64, jitter_ms: f64) {
        self.lost.store(lost, Relaxed);
        self.jitter_bits.store(jitter_ms.to_bits(), Relaxed);
    }

    pub fn snapshot(&self) -> LegStats {
        LegStats {
            packets_in: self.packets_in.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            packets_out: self.packets_out.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            lost: self.lost.load(Relaxed),
            jitter_ms: f64::from_bits(self.jitter_bits.load(Relaxed)),
            rtcp_in: self.rtcp_in.load(Relaxed),
            rtcp_out: self.rtcp_out.load(Relaxed),
            malformed: self.malformed.load(Relaxed),
        }
    }
}

/// RFC 3550 A.1: a jump of fewer packets than this ahead is accepted as loss.
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a packet up to this far behind is late, not a restart.
const MAX_MISORDER: u16 = 100;

/// Sequence, loss and jitter state of the stream one leg sends us.
/// Timestamps are in RTP clock units (8 kHz for G.711 and its events).
#[derive(Debug, Default, Clone)]
pub struct ReceiveStats {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    /// Sequence wraps seen, shifted (RFC 3550's `cycles`).
    cycles: u32,
    /// `Some(s)`: a large jump to `s - 1` was seen; a packet with `s` confirms a
    /// sender restart (RFC 3550's `bad_seq`).
    bad_seq: Option<u16>,
    received: u64,
    /// Loss accumulated on earlier SSRCs of this leg.
    lost_before: u64,
    last_transit: Option<u32>,
    /// RFC 3550 A.8 jitter estimate, in timestamp units.
    jitter: f64,
}

impl ReceiveStats {
    /// Account one valid packet. `arrival` is the local arrival time in the
    /// same clock units as `rtp_ts`; `timed` is false for packets whose
    /// timestamp does not advance with their sending time (RFC 4733 events
    /// keep the start timestamp), which must not feed the jitter estimate.
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, rtp_ts: u32, arrival: u32, timed: bool) {
        if self.ssrc != Some(ssrc) {
            // New source: keep its predecessor's loss, restart tracking.
            self.lost_before += self.current_lost();
            self.ssrc = Some(ssrc);
            self.restart(seq);
            self.last_transit = None;
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta == 0 {
                // Duplicate of the highest packet: counted as received (A.3
                // lets duplicates lower the loss figure; it is clamped at 0).
                self.received += 1;
            } else if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
                self.received += 1;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A very large jump: a restarted sender, or a stray packet.
                if self.bad_seq == Some(seq) {
                    self.lost_before += self.current_lost();
                    self.restart(seq);
                } else {
                    self.bad_seq = Some(seq.wrapping_add(1));
                    return;
                }
            } else {
                // Late or reordered packet.
                self.received += 1;
            }
        }
        if timed {
            let transit = arrival.wrapping_sub(rtp_ts);
            if let Some(last) = self.last_transit {
                let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
                self.jitter += (d - self.jitter) / 16.0;
            }
            self.last_transit = Some(transit);
        }
    }

    fn restart(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.received = 1;
    }

    fn current_lost(&self) -> u64 {
        if self.ssrc.is_none() {
            return 0;
        }
        let extended_max = u64::from(self.cycles) + u64::from(self.max_seq);
        let expected = extended_max + 1 - u64::from(self.base_seq);
        expected.saturating_sub(self.received)
    }

    /// Cumulative packets lost (RFC 3550 A.3), never negative.
    pub fn lost(&self) -> u64 {
        self.lost_before + self.current_lost()
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loss_no_jitter_on_a_perfect_stream() {
        let mut s = ReceiveStats::default();
        for i in 0..100u32 {
            s.on_packet(
                7,
                65500u16.wrapping_add(i as u16),
                i * 160,
                1000 + i * 160,
                true,
            );
        }
        assert_eq!(s.lost(), 0);
        assert_eq!(s.jitter(), 0.0);
    }

    #[test]
    fn loss_counts_gaps_across_wrap_and_ignores_reordering() {
        let mut s = ReceiveStats::default();
        let seqs = [65530u16, 65531, 65533, 65532, 1, 2, 5];
        for (i, q) in seqs.iter().enumerate() {
            s.on_packet(1, *q, 0, i as u32, false);
        }
        // Expected 65530..=65535, 0..=5 = 12 packets; received 7.
        assert_eq!(s.lost(), 5);
    }

    #[test]
    fn jitter_follows_rfc3550_a8() {
        let mut s = ReceiveStats::default();
        // Packets every 160 ticks; arrivals alternate 0 and +80 late.
        let mut expected = 0.0f64;
        for i in 0..10u32 {
            let late = if i % 2 == 1 { 80 } else { 0 };
            s.on_packet(1, i as u16, i * 160, i * 160 + late, true);
            if i > 0 {
                expected += (80.0 - expected) / 16.0;
            }
        }
        assert!(
            (s.jitter() - expected).abs() < 1e-9,
            "{} vs {expected}",
            s.jitter()
        );
    }

    #[test]
    fn new_ssrc_keeps_old_loss_and_restarts() {
        let mut s = ReceiveStats::default();
        s.on_packet(1, 10, 0, 0, false);
        s.on_packet(1, 13, 0, 0, false); // 2 lost
        s.on_packet(2, 5000, 0, 0, false);
        s.on_packet(2, 5001, 0, 0, false);
        assert_eq!(s.lost(), 2);
    }

    #[test]
    fn restarted_sender_is_confirmed_by_two_packets() {
        let mut s = ReceiveStats::default();
        s.on_packet(1, 100, 0, 0, false);
        s.on_packet(1, 101, 0, 0, false);
        // Jump of 20000: ignored once, accepted when the next follows.
        s.on_packet(1, 20101, 0, 0, false);
        s.on_packet(1, 20102, 0, 0, false);
        s.on_packet(1, 20103, 0, 0, false);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn counters_snapshot() {
        let c = LegCounters::default();
        c.rtp_in(172);
        c.rtp_in(172);
        c.rtp_out(100);
        c.rtcp_in();
        c.malformed();
        c.set_quality(3, 1.5);
        let s = c.snapshot();
        assert_eq!(
            (s.packets_in, s.bytes_in, s.packets_out, s.bytes_out),
            (2, 344, 1, 100)
        );
        assert_eq!((s.lost, s.rtcp_in, s.rtcp_out, s.malformed), (3, 1, 0, 1));
        assert_eq!(s.jitter_ms, 1.5);
    }
}

/// The mixer's counters (`super::mixer::MixerStats`), published by the relay
/// thread after each tick and readable from any thread.
#[derive(Debug, Default)]
pub struct MixerCounters {
    values: [AtomicU64; 9],
}

impl MixerCounters {
    pub fn publish(&self, s: &super::mixer::MixerStats) {
        let v = [
            s.rooms,
            s.members,
            s.frames,
            s.late_frames,
            s.skipped_frames,
            s.late_packets,
            s.resyncs,
            s.concealed,
            s.max_lateness_us,
        ];
        for (a, x) in self.values.iter().zip(v) {
            a.store(x, Relaxed);
        }
    }

    pub fn snapshot(&self) -> super::mixer::MixerStats {
        let [rooms, members, frames, late_frames, skipped_frames, late_packets, resyncs, concealed, max_lateness_us] =
            self.values.each_ref().map(|a| a.load(Relaxed));
        super::mixer::MixerStats {
            rooms,
            members,
            frames,
            late_frames,
            skipped_frames,
            late_packets,
            resyncs,
            concealed,
            max_lateness_us,
        }
    }
}
