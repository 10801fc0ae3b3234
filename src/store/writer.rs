//! The writer thread: the only connection that writes, and group commit.
//!
//! Callers queue jobs on a bounded channel and await their answer. The
//! thread takes the first job, then everything already queued behind it
//! (jobs that arrived while it was busy with the previous transaction), and
//! commits them all in one SQLite transaction: one fsync for many callers.
//! Each job runs in its own savepoint, so one caller's bad batch (a
//! duplicate desktop seq, say) is rolled back alone and answered with its
//! error while the rest of the group commits. Nobody is answered before
//! the COMMIT returns; if the COMMIT fails, everybody in the group is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use rusqlite::{params, Connection};
use tokio::sync::{mpsc, oneshot};

use super::codec::{micros, to_i64, to_json};
use super::outbox;
use super::StoreError;
use crate::callback::Write;

/// Most jobs gathered into one transaction: bounds how long the first of
/// them waits for the fsync behind the rest.
const MAX_GROUP: usize = 512;

pub(super) enum Job {
    Commit {
        writes: Vec<Write>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Delete idempotency keys with `at` below these microseconds.
    ForgetIdempotency {
        before: i64,
        reply: oneshot::Sender<Result<usize, StoreError>>,
    },
}

/// What the writer has done, for tests, benches and metrics.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub transactions: AtomicU64,
    pub jobs: AtomicU64,
}

/// Starts the thread. It runs until every sender is dropped, after
/// `gate` (tests hold the writer back with it) lets it start.
pub(super) fn spawn(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    counters: Arc<Counters>,
    gate: Option<std::sync::mpsc::Receiver<()>>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            if let Some(gate) = gate {
                // A dropped sender opens the gate too.
                let _ = gate.recv();
            }
            run(conn, jobs, &counters);
        })
        .map(drop)
}

fn run(conn: Connection, mut jobs: mpsc::Receiver<Job>, counters: &Counters) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Some(first) = jobs.blocking_recv() {
        group.push(first);
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(&conn, &mut group, counters);
    }
}

/// A job that has run (or been skipped), waiting for the COMMIT's outcome.
enum Ran {
    Commit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Forget(
        oneshot::Sender<Result<usize, StoreError>>,
        Result<usize, StoreError>,
    ),
}

impl Ran {
    /// A job's own failure stands; a success counts only if the group committed.
    fn answer(self, group_failure: Option<&Arc<rusqlite::Error>>) {
        fn settle<T>(
            own: Result<T, StoreError>,
            group: Option<&Arc<rusqlite::Error>>,
        ) -> Result<T, StoreError> {
            match (own, group) {
                (Ok(_), Some(e)) => Err(StoreError::Sqlite(Arc::clone(e))),
                (own, _) => own,
            }
        }
        // A caller that gave up waiting is no reason to stop.
        match self {
            Ran::Commit(reply, own) => drop(reply.send(settle(own, group_failure))),
            Ran::Forget(reply, own) => drop(reply.send(settle(own, group_failure))),
        }
    }
}

fn commit_group(conn: &Connection, group: &mut Vec<Job>, counters: &Counters) {
    let count = group.len() as u64;
    let mut ran = Vec::with_capacity(group.len());
    let outcome = run_group(conn, group.drain(..), &mut ran);
    match &outcome {
        Ok(()) => {
            counters.transactions.fetch_add(1, Ordering::Relaxed);
            counters.jobs.fetch_add(count, Ordering::Relaxed);
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = count, "store: transaction failed, nothing of it kept");
            if !conn.is_autocommit() {
                if let Err(e) = conn.execute_batch("ROLLBACK") {
                    tracing::warn!(error = %e, "store: rollback failed");
                }
            }
        }
    }
    for job in ran {
        job.answer(outcome.as_ref().err());
    }
}

/// Runs every job in one transaction. An `Err` means the transaction as a
/// whole is lost; jobs not yet run are pushed as successes and then failed
/// with it by [`Ran::answer`].
fn run_group(
    conn: &Connection,
    group: impl Iterator<Item = Job>,
    ran: &mut Vec<Ran>,
) -> Result<(), Arc<rusqlite::Error>> {
    let mut broken = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .map_err(Arc::new)
        .err();
    for job in group {
        match job {
            Job::Commit { writes, reply } => {
                let own = match broken {
                    Some(_) => Ok(()),
                    None => in_savepoint(conn, |c| writes.iter().try_for_each(|w| apply(c, w)))
                        .unwrap_or_else(|e| {
                            broken = Some(e);
                            Ok(())
                        }),
                };
                ran.push(Ran::Commit(reply, own));
            }
            Job::ForgetIdempotency { before, reply } => {
                let own = match broken {
                    Some(_) => Ok(0),
                    None => {
                        in_savepoint(conn, |c| forget_idempotency(c, before)).unwrap_or_else(|e| {
                            broken = Some(e);
                            Ok(0)
                        })
                    }
                };
                ran.push(Ran::Forget(reply, own));
            }
        }
    }
    if let Some(e) = broken {
        return Err(e);
    }
    conn.prepare_cached("COMMIT")
        .and_then(|mut s| s.execute([]))
        .map(drop)
        .map_err(Arc::new)
}

/// Runs `f` so that its failure undoes only its own writes. The outer
/// `Err` is for a transaction SQLite itself abandoned (disk full, I/O
/// error), which takes the whole group with it.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<Result<T, StoreError>, Arc<rusqlite::Error>> {
    let exec = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(drop)
            .map_err(Arc::new)
    };
    exec("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            exec("RELEASE job")?;
            Ok(Ok(v))
        }
        Err(StoreError::Sqlite(e)) if conn.is_autocommit() => Err(e),
        Err(own) => {
            exec("ROLLBACK TO job")?;
            exec("RELEASE job")?;
            Ok(Err(own))
        }
    }
}

const UPSERT_CALLBACK: &str = "
INSERT INTO callbacks (id, state, queue_id, interaction_queue, agent, created_at, due_at, body)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO UPDATE SET
    state = excluded.state, queue_id = excluded.queue_id,
    interaction_queue = excluded.interaction_queue, agent = excluded.agent,
    created_at = excluded.created_at, due_at = excluded.due_at, body = excluded.body";

/// The next step number of this interaction (the primary key makes the MAX
/// an index probe).
const INSERT_HISTORY: &str = "
INSERT INTO history (interaction_id, seq, at, body)
VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM history WHERE interaction_id = ?1), ?2, ?3)";

const UPSERT_AGENT: &str = "
INSERT INTO agents (id, body) VALUES (?1, ?2)
ON CONFLICT (id) DO UPDATE SET body = excluded.body";

/// Not a replace: a seq used twice is the center's bug, and overwriting
/// would change an event a desktop may already have been sent.
const INSERT_DESKTOP: &str = "INSERT INTO desktop_events (seq, at, body) VALUES (?1, ?2, ?3)";

const UPSERT_IDEMPOTENCY: &str = "
INSERT INTO idempotency (key, interaction_id, at) VALUES (?1, ?2, ?3)
ON CONFLICT (key) DO UPDATE SET interaction_id = excluded.interaction_id, at = excluded.at";

fn apply(conn: &Connection, write: &Write) -> Result<(), StoreError> {
    match write {
        Write::Callback(cb) => {
            let body = to_json("callback", cb.as_ref())?;
            conn.prepare_cached(UPSERT_CALLBACK)?.execute(params![
                cb.id.0,
                cb.state.as_str(),
                cb.request.queue_id,
                cb.interaction_queue,
                cb.agent,
                micros(cb.created_at),
                micros(cb.due_at),
                body,
            ])?;
        }
        Write::History(id, entry) => {
            let body = to_json("history entry", entry)?;
            conn.prepare_cached(INSERT_HISTORY)?
                .execute(params![id.0, micros(entry.at), body])?;
        }
        Write::Agent(agent) => {
            let body = to_json("agent", agent)?;
            conn.prepare_cached(UPSERT_AGENT)?
                .execute(params![agent.id, body])?;
        }
        Write::Desktop(event) => {
            let seq = to_i64("desktop event seq", event.seq)?;
            let body = to_json("desktop event", event)?;
            conn.prepare_cached(INSERT_DESKTOP)?
                .execute(params![seq, micros(event.at), body])?;
        }
        Write::Idempotency { key, id, at } => {
            conn.prepare_cached(UPSERT_IDEMPOTENCY)?
                .execute(params![key, id.0, micros(*at)])?;
        }
        Write::Outbox(w) => outbox::apply(conn, w)?,
    }
    Ok(())
}

fn forget_idempotency(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    let n = conn
        .prepare_cached("DELETE FROM idempotency WHERE at < ?1")?
        .execute([before])?;
    Ok(n)
}
