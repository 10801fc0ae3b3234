//! The notification outbox's rows: written in the transaction of the change
//! they report, updated as deliveries succeed, fail or die.

use rusqlite::{params, Connection};

use super::codec::{micros, to_json};
use super::StoreError;
use crate::integrations::notify::OutboxWrite;

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
