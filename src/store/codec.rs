//! Rows to records and back: timestamps as integer microseconds (sortable,
//! indexable), records as their serde JSON (the one source of truth; the
//! indexed columns are copies for `WHERE` and `ORDER BY`), and the list
//! cursor.

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;
use crate::callback::InteractionId;

/// A timestamp's column value: microseconds since the Unix epoch, UTC. The
/// JSON body keeps full precision; the column only has to sort.
pub(super) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(super) fn from_micros(what: &'static str, us: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(us).map_err(|_| StoreError::OutOfRange {
        what,
        value: us.to_string(),
    })
}

/// SQLite integers are signed; a `u64` above `i64::MAX` cannot be stored.
pub(super) fn to_i64(what: &'static str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange {
        what,
        value: v.to_string(),
    })
}

pub(super) fn to_json<T: Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|source| StoreError::Codec { what, source })
}

pub(super) fn from_json<T: DeserializeOwned>(
    what: &'static str,
    body: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(body).map_err(|source| StoreError::Codec { what, source })
}

/// Where a list page ended: the last item's `(created_at, id)`, the key the
/// list is ordered by. Opaque to clients (hex of `micros:id`); the HTTP layer
/// may [`Cursor::parse`] one up front to answer 422 before querying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub(super) created_at: i64,
    pub(super) id: InteractionId,
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Cursor, StoreError> {
        let bytes = hex::decode(s).map_err(|_| StoreError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| StoreError::BadCursor)?;
        let (micros, id) = text.split_once(':').ok_or(StoreError::BadCursor)?;
        let created_at = micros.parse::<i64>().map_err(|_| StoreError::BadCursor)?;
        if id.is_empty() {
            return Err(StoreError::BadCursor);
        }
        Ok(Cursor {
            created_at,
            id: InteractionId(id.to_owned()),
        })
    }

    pub fn encode(&self) -> String {
        hex::encode(format!("{}:{}", self.created_at, self.id.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: -5,
            id: InteractionId("cb-00ff:x".into()),
        };
        assert_eq!(Cursor::parse(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "zz",
            "3a",
            &hex::encode("12"),
            &hex::encode("x:cb-1"),
            &hex::encode("1:"),
        ] {
            assert!(
                matches!(Cursor::parse(bad), Err(StoreError::BadCursor)),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            Cursor::parse(&hex::encode([0xff, b':', b'a'])),
            Err(StoreError::BadCursor)
        ));
    }

    #[test]
    fn micros_keep_order_and_reject_out_of_range() {
        let a: Timestamp = "2024-03-01T10:00:00.000001Z".parse().unwrap();
        let b: Timestamp = "2024-03-01T10:00:00.000002Z".parse().unwrap();
        assert!(micros(a) < micros(b));
        assert_eq!(from_micros("t", micros(a)).unwrap(), a);
        assert!(matches!(
            from_micros("t", i64::MAX),
            Err(StoreError::OutOfRange { .. })
        ));
        assert!(matches!(
            to_i64("seq", u64::MAX),
            Err(StoreError::OutOfRange { .. })
        ));
        assert_eq!(to_i64("seq", 7).unwrap(), 7);
    }
}
