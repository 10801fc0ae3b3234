//! The notification outbox's rows: written in the transaction of the change
//! they report, updated as deliveries succeed, fail or die; read back at
//! start-up (what is still to deliver) and by the dead-letter API.

use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, Row};

use super::codec::{from_json, from_micros, micros, to_i64, to_json};
use super::StoreError;
use crate::integrations::notify::{OutboxRow, OutboxWrite};

/// A second enqueue of the same `(endpoint, event_id)` is a no-op: an
/// event is reported once, whoever commits it again.
const ENQUEUE: &str = "
INSERT INTO outbox (endpoint, event_id, lane, event_type, created_at, next_at, body)
VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
ON CONFLICT (endpoint, event_id) DO NOTHING";

const DELIVERED: &str = "DELETE FROM outbox WHERE endpoint = ?1 AND event_id = ?2";

const RETRY: &str = "
UPDATE outbox SET attempts = ?3, next_at = ?4, last_error = ?5
WHERE endpoint = ?1 AND event_id = ?2";

const DEAD: &str = "
UPDATE outbox SET attempts = ?3, last_error = ?4, dead_at = ?5
WHERE endpoint = ?1 AND event_id = ?2";

const REPLAY: &str = "
UPDATE outbox SET attempts = 0, next_at = ?3, dead_at = NULL
WHERE endpoint = ?1 AND event_id = ?2";

pub(super) fn apply(conn: &Connection, write: &OutboxWrite) -> Result<(), StoreError> {
    match write {
        OutboxWrite::Enqueue(d) => {
            let body = to_json("notification", &d.notice)?;
            conn.prepare_cached(ENQUEUE)?.execute(params![
                d.endpoint,
                d.notice.event_id,
                d.lane,
                d.notice.kind.as_str(),
                micros(d.notice.timestamp),
                body,
            ])?;
        }
        OutboxWrite::Delivered { endpoint, event_id } => {
            conn.prepare_cached(DELIVERED)?
                .execute(params![endpoint, event_id])?;
        }
        OutboxWrite::Retry {
            endpoint,
            event_id,
            attempts,
            next_at,
            error,
        } => {
            conn.prepare_cached(RETRY)?.execute(params![
                endpoint,
                event_id,
                attempts,
                micros(*next_at),
                error
            ])?;
        }
        OutboxWrite::Dead {
            endpoint,
            event_id,
            attempts,
            error,
            at,
        } => {
            conn.prepare_cached(DEAD)?.execute(params![
                endpoint,
                event_id,
                attempts,
                error,
                micros(*at)
            ])?;
        }
        OutboxWrite::Replay {
            endpoint,
            event_id,
            at,
        } => {
            conn.prepare_cached(REPLAY)?
                .execute(params![endpoint, event_id, micros(*at)])?;
        }
    }
    Ok(())
}

const COLUMNS: &str =
    "seq, endpoint, event_id, lane, event_type, attempts, next_at, last_error, dead_at, body";

/// A row's columns as read, decoded afterwards (outside the row callback,
/// so a bad body is a typed error, not a SQLite one).
type RawRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<i64>,
    String,
);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    ))
}

fn decode(raw: RawRow) -> Result<OutboxRow, StoreError> {
    let (seq, endpoint, event_id, lane, event_type, attempts, next_at, last_error, dead_at, body) =
        raw;
    let out_of_range = |what: &'static str, v: i64| StoreError::OutOfRange {
        what,
        value: v.to_string(),
    };
    Ok(OutboxRow {
        seq: u64::try_from(seq).map_err(|_| out_of_range("outbox seq", seq))?,
        endpoint,
        event_id,
        lane,
        event_type,
        attempts: u32::try_from(attempts).map_err(|_| out_of_range("outbox attempts", attempts))?,
        next_at: from_micros("outbox next_at", next_at)?,
        last_error,
        dead_at: dead_at
            .map(|at| from_micros("outbox dead_at", at))
            .transpose()?,
        notice: from_json("notification", &body)?,
    })
}

/// Every row still to deliver, in commit order. A row whose body cannot be
/// read is left in the table and reported, not allowed to stop the rest.
pub(super) fn pending(conn: &Connection) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE dead_at IS NULL ORDER BY seq");
    let raws = conn
        .prepare(&sql)?
        .query_map([], raw)?
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows = Vec::with_capacity(raws.len());
    for r in raws {
        let (seq, endpoint) = (r.0, r.1.clone());
        match decode(r) {
            Ok(row) => rows.push(row),
            Err(e) => {
                tracing::error!(seq, endpoint, error = %e, "outbox row unreadable; left as it is")
            }
        }
    }
    Ok(rows)
}

/// Dead rows with `seq > after`, in commit order, at most `limit`.
pub(super) fn dead(
    conn: &Connection,
    endpoint: Option<&str>,
    after: u64,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    // No stored seq is above i64::MAX, so nothing is after such a value.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let mut sql = format!("SELECT {COLUMNS} FROM outbox WHERE dead_at IS NOT NULL AND seq > ?");
    let mut args = vec![Value::Integer(after)];
    if let Some(endpoint) = endpoint {
        sql.push_str(" AND endpoint = ?");
        args.push(Value::Text(endpoint.to_string()));
    }
    sql.push_str(" ORDER BY seq LIMIT ?");
    args.push(Value::Integer(to_i64("limit", limit as u64)?));
    conn.prepare_cached(&sql)?
        .query_map(params_from_iter(args), raw)?
        .map(|r| decode(r?))
        .collect()
}

pub(super) fn row(
    conn: &Connection,
    endpoint: &str,
    event_id: &str,
) -> Result<Option<OutboxRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM outbox WHERE endpoint = ?1 AND event_id = ?2");
    conn.prepare_cached(&sql)?
        .query_map([endpoint, event_id], raw)?
        .next()
        .transpose()?
        .map(decode)
        .transpose()
}

/// How many dead rows each endpoint has (only those with any).
pub(super) fn dead_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    conn.prepare_cached(
        "SELECT endpoint, COUNT(*) FROM outbox WHERE dead_at IS NOT NULL GROUP BY endpoint ORDER BY endpoint",
    )?
    .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?
    .map(|r| {
        let (endpoint, n) = r?;
        Ok((endpoint, u64::try_from(n).unwrap_or(0)))
    })
    .collect()
}
