//! Requested times: ISO 8601 / RFC 3339 strings to UTC instants, and the
//! window a callback may be scheduled in. All parsing is jiff's.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

/// How far in the past a requested time may be (clock skew between the
/// integrator and us, and the time a request takes to arrive); such a time
/// means "now".
pub const PAST_TOLERANCE: SignedDuration = SignedDuration::from_mins(5);
/// How far ahead a callback may be scheduled.
pub const MAX_AHEAD: SignedDuration = SignedDuration::from_hours(366 * 24);

/// Longest IANA zone name accepted (the longest in the database is ~32).
const MAX_ZONE_NAME: usize = 64;

/// Why a requested time (or its `timeZone`) was refused: a sentence about
/// the value, for the caller to put after the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("is empty")]
    Empty,
    #[error("is not an ISO 8601 time ({0})")]
    NotIso(String),
    #[error("is not an ISO 8601 time with an offset ({0})")]
    NotIsoWithOffset(String),
    #[error("has a date but no time of day")]
    DateOnly,
    #[error("has no offset: add Z or +hh:mm, or give timeZone to read it in")]
    NoOffset,
    #[error("cannot be placed in {zone} ({reason})")]
    CannotPlace { zone: String, reason: String },
    #[error("is longer than {MAX_ZONE_NAME} characters")]
    ZoneTooLong,
    #[error("{0:?} is not an IANA time zone")]
    UnknownZone(String),
    #[error("{at} is more than 5 minutes in the past (now is {now})")]
    TooEarly { at: Timestamp, now: Timestamp },
    #[error("{at} is more than 366 days ahead")]
    TooLate { at: Timestamp },
}

/// ISO 8601 / RFC 3339 with any offset -> UTC; a time without offset is read
/// in `time_zone` (IANA) when given, else refused.
///
/// Accepted: `2025-06-01T10:00:00Z`, `2025-06-01T12:00:00+02:00`, fractions,
/// ISO 8601 basic format, an RFC 9557 zone annotation after an offset (the
/// offset wins) or alone (`2025-06-01T12:00[Europe/Paris]`), and a civil
/// `2025-06-01T12:00:00` with `time_zone`. A date without a time is refused.
///
/// A civil time that a zone's clocks skip (spring forward) or repeat (fall
/// back) is resolved with jiff's "compatible" disambiguation, the rule of
/// RFC 5545 and Temporal: a skipped time is moved forward by the length of
/// the gap (02:30 on a night 02:00 becomes 03:00 is 03:30 new time), and a
/// repeated time is the earlier of the two instants.
pub fn parse_time(raw: &str, time_zone: Option<&str>) -> Result<Timestamp, TimeError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(TimeError::Empty);
    }
    // With an offset (or `Z`), the instant is fixed whatever the zone.
    if let Ok(ts) = raw.parse::<Timestamp>() {
        return Ok(ts);
    }
    // An annotation without an offset names the zone itself.
    if raw.contains('[') {
        return raw
            .parse::<Zoned>()
            .map(|z| z.timestamp())
            .map_err(|e| TimeError::NotIso(e.to_string()));
    }
    let civil: DateTime = raw
        .parse()
        .map_err(|e: jiff::Error| TimeError::NotIsoWithOffset(e.to_string()))?;
    // jiff reads a lone date as midnight; a callback time needs the time.
    if !raw.contains(['T', 't', ' ']) {
        return Err(TimeError::DateOnly);
    }
    let Some(zone) = time_zone.map(str::trim).filter(|z| !z.is_empty()) else {
        return Err(TimeError::NoOffset);
    };
    let tz = time_zone_named(zone)?;
    tz.to_ambiguous_zoned(civil)
        .compatible()
        .map(|z| z.timestamp())
        .map_err(|e| TimeError::CannotPlace {
            zone: zone.to_string(),
            reason: e.to_string(),
        })
}

/// An IANA time zone by name, from the bundled database.
pub(super) fn time_zone_named(name: &str) -> Result<TimeZone, TimeError> {
    if name.chars().count() > MAX_ZONE_NAME {
        return Err(TimeError::ZoneTooLong);
    }
    TimeZone::get(name).map_err(|_| TimeError::UnknownZone(name.to_string()))
}

/// A scheduled time must be at most 5 minutes in the past and at most 366
/// days ahead of `now`.
pub fn check_window(at: Timestamp, now: Timestamp) -> Result<(), TimeError> {
    // Saturating: `now` at the edge of jiff's range leaves that side open.
    let earliest = now.checked_sub(PAST_TOLERANCE).unwrap_or(Timestamp::MIN);
    let latest = now.checked_add(MAX_AHEAD).unwrap_or(Timestamp::MAX);
    if at < earliest {
        return Err(TimeError::TooEarly { at, now });
    }
    if at > latest {
        return Err(TimeError::TooLate { at });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("test timestamp")
    }

    #[test]
    fn offsets_convert_to_the_same_utc_instant() {
        let want = ts("2025-06-01T10:00:00Z");
        for raw in [
            "2025-06-01T10:00:00Z",
            "2025-06-01T10:00:00.000Z",
            "2025-06-01t10:00:00z",
            "2025-06-01T12:00:00+02:00",
            "2025-06-01T05:00:00-05:00",
            "2025-06-01T05:00-05:00",
            "20250601T120000+0200",
            " 2025-06-01T12:00:00+02:00 ",
            "2025-06-01T12:00:00+02:00[Europe/Paris]",
        ] {
            assert_eq!(parse_time(raw, None), Ok(want), "{raw}");
            // A zone given beside an offset changes nothing.
            assert_eq!(parse_time(raw, Some("America/New_York")), Ok(want), "{raw}");
        }
    }

    #[test]
    fn civil_time_is_read_in_the_zone() {
        let want = ts("2025-06-01T10:00:00Z");
        assert_eq!(
            parse_time("2025-06-01T12:00:00", Some("Europe/Paris")),
            Ok(want)
        );
        assert_eq!(
            parse_time("2025-06-01 06:00", Some("America/New_York")),
            Ok(want)
        );
        assert_eq!(parse_time("2025-06-01T10:00:00", Some("UTC")), Ok(want));
        assert_eq!(parse_time("2025-06-01T12:00[Europe/Paris]", None), Ok(want));
        // Winter: Paris is +01:00.
        assert_eq!(
            parse_time("2025-01-15T12:00:00", Some("Europe/Paris")),
            Ok(ts("2025-01-15T11:00:00Z"))
        );
    }

    #[test]
    fn dst_gap_and_fold_use_compatible_disambiguation() {
        // 2025-03-30 02:00 Paris jumps to 03:00: 02:30 does not exist and is
        // moved forward by the gap, to 03:30 CEST.
        assert_eq!(
            parse_time("2025-03-30T02:30:00", Some("Europe/Paris")),
            Ok(ts("2025-03-30T01:30:00Z"))
        );
        // 2025-10-26 03:00 Paris falls back to 02:00: 02:30 happens twice,
        // the earlier (CEST, +02:00) is taken.
        assert_eq!(
            parse_time("2025-10-26T02:30:00", Some("Europe/Paris")),
            Ok(ts("2025-10-26T00:30:00Z"))
        );
        // New York, 2025-11-02 01:30 is repeated: the EDT one.
        assert_eq!(
            parse_time("2025-11-02T01:30:00", Some("America/New_York")),
            Ok(ts("2025-11-02T05:30:00Z"))
        );
    }

    #[test]
    fn times_that_cannot_be_placed_are_refused() {
        for (raw, zone, needle) in [
            ("2025-06-01T12:00:00", None, "timeZone"),
            ("2025-06-01T12:00:00", Some(""), "timeZone"),
            ("2025-06-01", Some("Europe/Paris"), "no time"),
            ("2025-06-01T12:00:00", Some("Mars/Olympus"), "IANA"),
            ("", None, "empty"),
            ("tomorrow", Some("UTC"), "ISO 8601"),
            ("2025-02-30T10:00:00Z", None, "ISO 8601"),
            ("2025-06-01T25:00:00Z", None, "ISO 8601"),
            ("1717236000", None, "ISO 8601"),
        ] {
            let e = parse_time(raw, zone).unwrap_err();
            assert!(e.to_string().contains(needle), "{raw:?} {zone:?}: {e}");
        }
    }

    #[test]
    fn zone_names_come_from_the_iana_database() {
        for name in [
            "Europe/Paris",
            "America/New_York",
            "UTC",
            "Etc/GMT+5",
            "Asia/Kolkata",
        ] {
            assert!(time_zone_named(name).is_ok(), "{name}");
        }
        for name in ["", "CEST", "Europe/Atlantis", "+02:00", &"A".repeat(65)] {
            assert!(time_zone_named(name).is_err(), "{name}");
        }
    }

    #[test]
    fn window_is_five_minutes_back_to_366_days_ahead() {
        let now = ts("2025-06-01T10:00:00Z");
        assert!(check_window(now, now).is_ok());
        assert!(check_window(ts("2025-06-01T09:55:00Z"), now).is_ok());
        let e = check_window(ts("2025-06-01T09:54:59Z"), now).unwrap_err();
        assert!(e.to_string().contains("past"), "{e}");
        assert!(check_window(ts("2026-06-02T10:00:00Z"), now).is_ok());
        let e = check_window(ts("2026-06-02T10:00:01Z"), now).unwrap_err();
        assert!(e.to_string().contains("366 days"), "{e}");
    }
}
