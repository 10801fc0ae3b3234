//! Checks shared by the request's free-text fields.

use super::FieldError;

/// At most `max` characters (not bytes) and no control characters: these
/// values reach agents' screens, logs and SIP headers, where a newline or
/// an escape sequence would forge lines.
pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains a control character"));
    }
    Ok(())
}

/// An optional text field, trimmed. Absent, `null` and blank are all "not
/// given": integrators' templates send `""` for every field they leave
/// unset, and an integrator copying it must not get a 422 for that.
pub(super) fn optional_text(
    field: &str,
    value: Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    check_text(field, trimmed, max)?;
    Ok(Some(trimmed.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_counts_characters() {
        assert!(check_text("f", &"é".repeat(64), 64).is_ok());
        let e = check_text("f", &"é".repeat(65), 64).unwrap_err();
        assert_eq!(e.field, "f");
    }

    #[test]
    fn control_characters_are_refused() {
        for bad in [
            "a\nb",
            "a\rb",
            "\u{1b}[31m",
            "a\u{0}",
            "\u{85}",
            "tab\there",
        ] {
            assert!(check_text("f", bad, 64).is_err(), "{bad:?}");
        }
        assert!(check_text("f", "Zoë O'Brien-Smith (résa #42)", 64).is_ok());
    }

    #[test]
    fn blank_optional_text_is_absent() {
        assert_eq!(optional_text("f", None, 8), Ok(None));
        assert_eq!(optional_text("f", Some(" ".into()), 8), Ok(None));
        assert_eq!(
            optional_text("f", Some(" ab ".into()), 8),
            Ok(Some("ab".into()))
        );
        assert!(optional_text("f", Some("123456789".into()), 8).is_err());
    }
}
