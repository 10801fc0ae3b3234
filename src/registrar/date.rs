//! The `Date` header value (RFC 3261 §20.17: RFC 1123 format, always GMT).
//!
//! The registrar never reads a clock: the driver tells it once which wall
//! time corresponds to which `Instant` and the date of a response is derived
//! from the request's `now`. This file only maps and formats.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Maps the monotonic clock of `now` arguments onto wall time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    pub at: Instant,
    pub wall: SystemTime,
}

impl WallClock {
    /// The wall time at `now`.
    pub fn wall_at(&self, now: Instant) -> SystemTime {
        if now >= self.at {
            self.wall + (now - self.at)
        } else {
            self.wall - (self.at - now)
        }
    }
}

/// `Sat, 13 Nov 2010 23:29:00 GMT` (the `httpdate` crate: RFC 1123 as
/// HTTP and SIP both use it).
pub fn http_date(time: SystemTime) -> String {
    // Before 1970 only with a broken clock; httpdate refuses it.
    httpdate::fmt_http_date(time.max(UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_rfc1123() {
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 3261 §20.17's example.
        let t = UNIX_EPOCH + Duration::from_secs(1_289_690_940);
        assert_eq!(http_date(t), "Sat, 13 Nov 2010 23:29:00 GMT");
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800);
        assert_eq!(http_date(leap), "Thu, 29 Feb 2024 00:00:00 GMT");
    }

    #[test]
    fn wall_clock_follows_now() {
        let at = Instant::now();
        let c = WallClock {
            at,
            wall: UNIX_EPOCH + Duration::from_secs(100),
        };
        assert_eq!(
            c.wall_at(at + Duration::from_secs(5)),
            UNIX_EPOCH + Duration::from_secs(105)
        );
    }
}
