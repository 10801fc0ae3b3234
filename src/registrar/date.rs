//! The `Date` header value (RFC 3261 §20.17: RFC 1123 format, always GMT).
//!
//! The registrar never reads a clock: the driver tells it once which wall
//! time corresponds to which `Instant` and the date of a response is derived
//! from the request's `now`. This file only formats.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn http_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // 1970-01-01 was a Thursday.
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        d,
        MONTHS[(mo - 1) as usize],
        y,
        h,
        m,
        s
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31), proleptic
/// Gregorian (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

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
