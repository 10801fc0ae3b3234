//! The reader thread and the queries: one connection of its own, so reads
//! never wait for the writer's fsync (WAL lets them see the last commit
//! while the next one is being written), and never run on the async runtime.

use std::thread;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use tokio::sync::mpsc;

use super::codec::{from_json, from_micros, to_i64, Cursor};
use super::{Recovered, StoreError};
use crate::callback::{
    Agent, Callback, CallbackWithHistory, DesktopEvent, HistoryEntry, InteractionId, ListFilter,
    Page, ALL_STATES,
};

/// A query to run on the reader's connection; it sends its own answer.
pub(super) type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub(super) const DEFAULT_LIMIT: usize = 50;
pub(super) const MAX_LIMIT: usize = 500;

pub(super) fn spawn(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<ReadJob>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("store-reader".into())
        .spawn(move || {
            while let Some(job) = jobs.blocking_recv() {
                job(&mut conn);
            }
        })
        .map(drop)
}

/// The record and its history, from one snapshot.
pub(super) fn callback(
    conn: &mut Connection,
    id: &InteractionId,
) -> Result<Option<CallbackWithHistory>, StoreError> {
    let tx = conn.transaction()?;
    let body: Option<String> = tx
        .prepare_cached("SELECT body FROM callbacks WHERE id = ?1")?
        .query_map([&id.0], |row| row.get(0))?
        .next()
        .transpose()?;
    let Some(body) = body else {
        return Ok(None);
    };
    let callback: Callback = from_json("callback", &body)?;
    let history = tx
        .prepare_cached("SELECT body FROM history WHERE interaction_id = ?1 ORDER BY seq")?
        .query_map([&id.0], |row| row.get::<_, String>(0))?
        .map(|body| from_json::<HistoryEntry>("history entry", &body?))
        .collect::<Result<Vec<_>, _>>()?;
    tx.finish()?;
    Ok(Some(CallbackWithHistory { callback, history }))
}

/// One page in `(created_at, id)` order, after the cursor's key.
pub(super) fn list(conn: &Connection, filter: &ListFilter) -> Result<Page, StoreError> {
    let cursor = filter.cursor.as_deref().map(Cursor::parse).transpose()?;
    let limit = match filter.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    let mut sql = String::from("SELECT created_at, id, body FROM callbacks WHERE 1");
    let mut args: Vec<Value> = Vec::new();
    if !filter.states.is_empty() {
        sql.push_str(" AND state IN (");
        sql.push_str(&vec!["?"; filter.states.len()].join(", "));
        sql.push(')');
        args.extend(filter.states.iter().map(|s| Value::Text(s.as_str().into())));
    }
    if let Some(queue) = &filter.queue {
        sql.push_str(" AND (queue_id = ? OR interaction_queue = ?)");
        args.extend([Value::Text(queue.clone()), Value::Text(queue.clone())]);
    }
    if let Some(agent) = &filter.agent {
        sql.push_str(" AND agent = ?");
        args.push(Value::Text(agent.clone()));
    }
    let column = if filter.by_due {
        "due_at"
    } else {
        "created_at"
    };
    if let Some(from) = filter.from {
        sql.push_str(&format!(" AND {column} >= ?"));
        args.push(Value::Integer(from.as_microsecond()));
    }
    if let Some(to) = filter.to {
        sql.push_str(&format!(" AND {column} < ?"));
        args.push(Value::Integer(to.as_microsecond()));
    }
    if let Some(c) = &cursor {
        sql.push_str(" AND (created_at, id) > (?, ?)");
        args.extend([Value::Integer(c.created_at), Value::Text(c.id.0.clone())]);
    }
    // One row more than the page tells whether there is a next page.
    sql.push_str(" ORDER BY created_at, id LIMIT ?");
    args.push(Value::Integer(to_i64("limit", limit as u64 + 1)?));

    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt
        .query_map(params_from_iter(args), |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = match rows.last() {
        Some((created_at, id, _)) if more => Some(
            Cursor {
                created_at: *created_at,
                id: InteractionId(id.clone()),
            }
            .encode(),
        ),
        _ => None,
    };
    let items = rows
        .iter()
        .map(|(_, _, body)| from_json::<Callback>("callback", body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Page { items, next })
}

/// Events with `seq > after`, oldest first, at most `limit`.
pub(super) fn desktop_events_after(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<DesktopEvent>, StoreError> {
    // No stored seq is above i64::MAX, so nothing is after such a value.
    let Ok(after) = i64::try_from(after) else {
        return Ok(Vec::new());
    };
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    conn.prepare_cached("SELECT body FROM desktop_events WHERE seq > ?1 ORDER BY seq LIMIT ?2")?
        .query_map([after, limit], |row| row.get::<_, String>(0))?
        .map(|body| from_json("desktop event", &body?))
        .collect()
}

/// What the center needs back after a restart, from one snapshot.
pub(super) fn recover(conn: &mut Connection) -> Result<Recovered, StoreError> {
    let tx = conn.transaction()?;
    let live: Vec<Value> = ALL_STATES
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| Value::Text(s.as_str().into()))
        .collect();
    let sql = format!(
        "SELECT body FROM callbacks WHERE state IN ({}) ORDER BY created_at, id",
        vec!["?"; live.len()].join(", ")
    );
    let callbacks = tx
        .prepare(&sql)?
        .query_map(params_from_iter(live), |row| row.get::<_, String>(0))?
        .map(|body| from_json::<Callback>("callback", &body?))
        .collect::<Result<Vec<_>, _>>()?;
    let agents = tx
        .prepare("SELECT body FROM agents ORDER BY id")?
        .query_map([], |row| row.get::<_, String>(0))?
        .map(|body| from_json::<Agent>("agent", &body?))
        .collect::<Result<Vec<_>, _>>()?;
    let last_seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM desktop_events",
        [],
        |row| row.get(0),
    )?;
    let last_desktop_seq = u64::try_from(last_seq).map_err(|_| StoreError::OutOfRange {
        what: "desktop event seq",
        value: last_seq.to_string(),
    })?;
    let idempotency = tx
        .prepare("SELECT key, interaction_id, at FROM idempotency ORDER BY at, key")?
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?
        .map(|row| {
            let (key, id, at) = row?;
            Ok((key, InteractionId(id), from_micros("idempotency time", at)?))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    tx.finish()?;
    Ok(Recovered {
        callbacks,
        agents,
        last_desktop_seq,
        idempotency,
    })
}
