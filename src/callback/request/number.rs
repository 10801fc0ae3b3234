//! Callback numbers to E.164, with libphonenumber's metadata (the
//! `phonenumber` crate) doing the region-specific work: trunk prefixes,
//! international dialling prefixes, country-code detection and validity.
//!
//! Input is screened first to the characters a person writes in a phone
//! number (digits, one leading `+`, and the separators space, `.`, `-`, `/`,
//! `(` and `)`), so letters, extensions and `tel:` parameters never reach
//! the parser and every accepted result is a plain `+` and digits.

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;
use phonenumber::{Mode, ParseError, PhoneNumber};

/// Longest raw input looked at (a formatted 15-digit number with separators
/// fits easily; anything longer is not a number a person typed).
const MAX_RAW: usize = 40;
/// E.164: a country code of 1 to 3 digits, at most 15 digits in all.
const MAX_E164_DIGITS: usize = 15;
/// The plausibility bounds on the national (significant) number when the
/// request does not ask for full validation.
const NATIONAL_DIGITS: std::ops::RangeInclusive<usize> = 4..=14;

/// Why a number (or a `countryCode`) was refused: a sentence about the
/// value, for the caller to put after the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("is a national number: give countryCode or write it as +E.164")]
    National,
    #[error("{0:?} is not a known ISO 3166 region")]
    UnknownRegion(String),
    #[error("{0:?} is neither a dial prefix (\"+33\", \"33\") nor an ISO region (\"FR\")")]
    NotCountryCode(String),
    #[error("{0:?} is not a dial prefix")]
    NotDialPrefix(String),
    #[error("{0:?} is not the dial prefix of a country")]
    NoCountry(String),
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_RAW} characters")]
    TooLongText,
    #[error(
        "may hold only digits, a leading +, spaces, dots, dashes, slashes and \
         parentheses (found {0:?})"
    )]
    Character(char),
    #[error("has no digits")]
    NoDigits,
    #[error("is not a phone number")]
    NotNumber,
    #[error("has no valid country code")]
    NoCountryCode,
    #[error("is too short")]
    TooShort,
    #[error("is too long")]
    TooLong,
    #[error("cannot be read as a phone number ({0})")]
    Unreadable(String),
    #[error("is not a valid number for its region (validateCallbackNumbers is true)")]
    NotValid,
    #[error("is not a plausible E.164 number ({0}: a country code and 4 to 14 digits)")]
    Implausible(String),
}

/// A callback number (or a reschedule's new number) to E.164 with the
/// request's country code.
///
/// `country_code` is the region national numbers are read in: a dial prefix
/// (`"+33"`, `"33"`) or an ISO 3166 region (`"FR"`); a number written with a
/// leading `+` ignores it. With `strict` the number must be valid for its
/// region (`phonenumber::is_valid`: a real range of the numbering plan);
/// without it, it must still be a plausible E.164 number (an assigned country
/// code and 4 to 14 national digits). The error is a sentence about the
/// number, for the caller to put after the field name.
pub fn normalize_number(
    raw: &str,
    country_code: Option<&str>,
    strict: bool,
) -> Result<String, NumberError> {
    let cleaned = screen(raw)?;
    let parsed = if cleaned.starts_with('+') {
        phonenumber::parse(None, &cleaned)
    } else {
        let region = match country_code.map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) => region_for(code)?,
            None => return Err(NumberError::National),
        };
        phonenumber::parse(Some(region), &cleaned)
    }
    .map_err(parse_error)?;
    to_e164(&parsed, strict)
}

/// The region a `countryCode` names: an ISO 3166 alpha-2 code known to the
/// numbering metadata, or a dial prefix (with or without `+`) read as the
/// main region of that code (`+1` is US, `+44` GB, `+7` RU), which is how
/// libphonenumber itself picks the region for a shared code.
pub(super) fn region_for(country_code: &str) -> Result<Id, NumberError> {
    let code = country_code.trim();
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()) {
        let upper = code.to_ascii_uppercase();
        return match upper.parse::<Id>() {
            Ok(id) if DATABASE.by_id(id.as_ref()).is_some() => Ok(id),
            _ => Err(NumberError::UnknownRegion(code.to_string())),
        };
    }
    let digits = code.strip_prefix('+').unwrap_or(code);
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::NotCountryCode(code.to_string()));
    }
    let value: u16 = digits
        .parse()
        .map_err(|_| NumberError::NotDialPrefix(code.to_string()))?;
    // Non-geographic codes (+800, +882) have the pseudo-region "001", which
    // is no Id: they cannot be a default for national numbers.
    DATABASE
        .region(&value)
        .into_iter()
        .flatten()
        .find_map(|region| region.parse::<Id>().ok())
        .ok_or_else(|| NumberError::NoCountry(code.to_string()))
}

/// The characters kept for the parser: digits and a leading `+`; common
/// separators are dropped, anything else is refused.
fn screen(raw: &str) -> Result<String, NumberError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(NumberError::Empty);
    }
    if raw.chars().count() > MAX_RAW {
        return Err(NumberError::TooLongText);
    }
    let mut cleaned = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '0'..='9' => cleaned.push(c),
            '+' if cleaned.is_empty() => cleaned.push(c),
            ' ' | '.' | '-' | '/' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(NumberError::Character(c)),
        }
    }
    if cleaned.trim_start_matches('+').is_empty() {
        return Err(NumberError::NoDigits);
    }
    Ok(cleaned)
}

fn parse_error(e: ParseError) -> NumberError {
    match e {
        ParseError::NoNumber => NumberError::NotNumber,
        ParseError::InvalidCountryCode => NumberError::NoCountryCode,
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => NumberError::TooShort,
        ParseError::TooLong => NumberError::TooLong,
        other => NumberError::Unreadable(other.to_string()),
    }
}

fn to_e164(number: &PhoneNumber, strict: bool) -> Result<String, NumberError> {
    if strict && !phonenumber::is_valid(number) {
        return Err(NumberError::NotValid);
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    let digits = e164.strip_prefix('+').unwrap_or(&e164);
    let code_len = number.code().value().to_string().len();
    let national = digits.len().saturating_sub(code_len);
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.len() > MAX_E164_DIGITS
        || !NATIONAL_DIGITS.contains(&national)
    {
        return Err(NumberError::Implausible(e164));
    }
    Ok(e164)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str, cc: Option<&str>, strict: bool) -> String {
        normalize_number(raw, cc, strict).unwrap_or_else(|e| panic!("{raw} ({cc:?}): {e}"))
    }

    #[test]
    fn french_numbers_national_and_international() {
        for (raw, cc) in [
            ("06 12 34 56 78", Some("FR")),
            ("06.12.34.56.78", Some("+33")),
            ("0612345678", Some("33")),
            ("+33 6 12 34 56 78", None),
            ("+33 (0)6 12 34 56 78", None),
            ("0033 6 12 34 56 78", Some("FR")),
            // A +E.164 number ignores the country code, even a wrong one.
            ("+33612345678", Some("US")),
        ] {
            assert_eq!(ok(raw, cc, true), "+33612345678", "{raw}");
        }
        assert_eq!(ok("01 42 68 53 00", Some("fr"), true), "+33142685300");
    }

    #[test]
    fn us_numbers_national_and_international() {
        for (raw, cc) in [
            ("(201) 555-0123", Some("US")),
            ("201-555-0123", Some("+1")),
            ("1 201 555 0123", Some("1")),
            ("+1 201 555 0123", None),
            ("011 1 201 555 0123", Some("US")),
        ] {
            assert_eq!(ok(raw, cc, true), "+12015550123", "{raw}");
        }
        // +1 is read as US, but a Canadian number is still valid in its own region.
        assert_eq!(ok("416 967 1111", Some("+1"), true), "+14169671111");
    }

    #[test]
    fn gb_numbers_national_and_international() {
        for (raw, cc) in [
            ("020 7946 0018", Some("GB")),
            ("020 7946 0018", Some("+44")),
            ("+44 20 7946 0018", None),
            ("+44 (0)20 7946 0018", Some("FR")),
            ("00 44 20 7946 0018", Some("GB")),
        ] {
            assert_eq!(ok(raw, cc, true), "+442079460018", "{raw}");
        }
        assert_eq!(ok("07911 123456", Some("GB"), true), "+447911123456");
    }

    #[test]
    fn country_codes_as_dial_prefix_or_region() {
        assert_eq!(region_for("+33"), Ok(Id::FR));
        assert_eq!(region_for("33"), Ok(Id::FR));
        assert_eq!(region_for("FR"), Ok(Id::FR));
        assert_eq!(region_for("gb"), Ok(Id::GB));
        assert_eq!(region_for("+1"), Ok(Id::US));
        assert_eq!(region_for("44"), Ok(Id::GB));
        for bad in ["XX", "+999", "+800", "0", "+", "33a", "1234", "F", "FRA"] {
            assert!(region_for(bad).is_err(), "{bad}");
        }
        let e = normalize_number("0612345678", Some("ZZ"), false).unwrap_err();
        assert!(e.to_string().contains("ZZ"), "{e}");
    }

    #[test]
    fn a_national_number_needs_a_country_code() {
        for cc in [None, Some(""), Some("  ")] {
            let e = normalize_number("0612345678", cc, false).unwrap_err();
            assert!(e.to_string().contains("countryCode"), "{e}");
        }
    }

    #[test]
    fn strict_refuses_what_the_plan_does_not_assign() {
        // +33 0 is no French range; +1 555 0123 is too short for NANP.
        for (raw, cc) in [("+33 0 12 34 56 78", None), ("555 0123", Some("US"))] {
            let e = normalize_number(raw, cc, true).unwrap_err();
            assert!(e.to_string().contains("not a valid number"), "{raw}: {e}");
        }
    }

    #[test]
    fn lenient_accepts_plausible_but_unassigned_numbers() {
        assert_eq!(ok("+33 9 99 99 99 99 9", None, false), "+339999999999");
        assert_eq!(ok("+1 555 0123", None, false), "+15550123");
        assert!(normalize_number("+1 555 0123", None, true).is_err());
    }

    #[test]
    fn impossible_numbers_are_refused() {
        for raw in [
            "",
            "   ",
            "+",
            "+()",
            "abc",
            "06 12 34 56 78 ext 12",
            "tel:+33612345678",
            "+33 6 12#34",
            "++33612345678",
            "+33 6+12345678",
            "+999 1234 5678",
            "+33 12",
            "+33 1234567890123456",
            "+1234567890123456789012345678901234567890123",
            "\u{0663}\u{0664}\u{0665}\u{0666}",
        ] {
            for strict in [true, false] {
                assert!(
                    normalize_number(raw, Some("FR"), strict).is_err(),
                    "{raw:?} strict={strict}"
                );
            }
        }
    }

    #[test]
    fn odd_input_never_panics() {
        // A cheap sweep over short strings of the characters the screen lets
        // through, in the regions the tests use (phonenumber has had panics
        // on odd input in the past).
        let alphabet = ['0', '1', '3', '4', '+', ' ', '(', ')'];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 14) as usize;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 3)) % 8) as usize])
                .collect();
            for cc in [None, Some("FR"), Some("+1"), Some("44")] {
                let _ = normalize_number(&s, cc, seed.is_multiple_of(2));
            }
        }
    }
}
