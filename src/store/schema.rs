//! The database file's settings and its schema, versioned: `schema_version`
//! records every migration applied, and [`migrate`] applies the missing
//! ones in order, each in its own transaction. Migrations only ever go
//! forward; a file written by a newer build is refused, not guessed at.
//!
//! Version 2 adds the notification outbox: one row per event and endpoint,
//! written in the same transaction as the change it reports.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::StoreError;

/// One forward step of the schema.
pub(super) struct Migration {
    pub version: u32,
    pub sql: &'static str,
}

/// Every record is kept whole as JSON (`body`); the other columns are
/// copies for filtering and ordering. Times are integer microseconds, UTC.
const V1: &str = "
CREATE TABLE callbacks (
    id                TEXT PRIMARY KEY,
    state             TEXT NOT NULL,
    queue_id          TEXT NOT NULL,
    interaction_queue TEXT NOT NULL,
    agent             TEXT,
    created_at        INTEGER NOT NULL,
    due_at            INTEGER NOT NULL,
    body              TEXT NOT NULL
);
CREATE INDEX callbacks_by_created ON callbacks (created_at, id);
CREATE INDEX callbacks_by_due ON callbacks (due_at);
CREATE INDEX callbacks_by_state ON callbacks (state);
CREATE INDEX callbacks_by_queue ON callbacks (queue_id);
CREATE INDEX callbacks_by_interaction_queue ON callbacks (interaction_queue);
CREATE INDEX callbacks_by_agent ON callbacks (agent);

-- seq counts an interaction's steps from 1, in the order they were committed.
CREATE TABLE history (
    interaction_id TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    at             INTEGER NOT NULL,
    body           TEXT NOT NULL,
    PRIMARY KEY (interaction_id, seq)
) WITHOUT ROWID;

CREATE TABLE agents (
    id   TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

-- seq is the center's numbering, which the desktop resumes from.
CREATE TABLE desktop_events (
    seq  INTEGER PRIMARY KEY,
    at   INTEGER NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE idempotency (
    key            TEXT PRIMARY KEY,
    interaction_id TEXT NOT NULL,
    at             INTEGER NOT NULL
);
CREATE INDEX idempotency_by_at ON idempotency (at);
";

/// `seq` is commit order (AUTOINCREMENT: never reused, so a lane's order
/// survives deletions); a row with `dead_at` is parked until replayed.
const V2: &str = "
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint   TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    lane       TEXT NOT NULL,
    event_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    next_at    INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    dead_at    INTEGER,
    body       TEXT NOT NULL,
    UNIQUE (endpoint, event_id)
);
CREATE INDEX outbox_dead ON outbox (endpoint, dead_at) WHERE dead_at IS NOT NULL;
";

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: V1,
    },
    Migration {
        version: 2,
        sql: V2,
    },
];

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's connection: WAL (readers never block the writer, one fsync
/// per commit) and `synchronous=FULL` (a commit survives power loss, not
/// only a process crash).
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    // Savepoint journals and sort spills stay in memory: the group commit's
    // per-batch savepoints otherwise copy pages to a temporary file.
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(open_err)?;
    // The checkpointer thread copies the WAL back; this is its safety net.
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
        .map_err(open_err)?;
    Ok(conn)
}

/// Pages of WAL after which the writer checkpoints by itself (64 MiB of
/// 4 KiB pages): reached only when the checkpointer thread falls behind.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

/// The checkpointer's connection: same file, copies the WAL back.
pub(super) fn open_checkpointer(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(open_err)?;
    Ok(conn)
}

/// The reader's connection: same file, never writes.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(open_err)?;
    Ok(conn)
}

/// Brings the schema up to this build's version; returns that version.
pub(super) fn migrate(conn: &mut Connection) -> Result<u32, StoreError> {
    migrate_with(conn, MIGRATIONS)
}

fn migrate_with(conn: &mut Connection, migrations: &[Migration]) -> Result<u32, StoreError> {
    let known = migrations.last().map_or(0, |m| m.version);
    let step_err = |version| move |source| StoreError::Migrate { version, source };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version    INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )",
    )
    .map_err(step_err(0))?;
    loop {
        // The version is read inside the step's write transaction, so two
        // processes opening one file at once cannot both apply a step.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(step_err(0))?;
        let current: u32 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |row| row.get(0),
            )
            .map_err(step_err(0))?;
        if current > known {
            return Err(StoreError::NewerSchema {
                found: current,
                known,
            });
        }
        let Some(next) = migrations.iter().find(|m| m.version > current) else {
            tx.commit().map_err(step_err(current))?;
            return Ok(known);
        };
        let err = step_err(next.version);
        tx.execute_batch(next.sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [next.version],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> Vec<u32> {
        let mut stmt = conn
            .prepare("SELECT version FROM schema_version ORDER BY version")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn fresh_file_gets_every_table_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut conn = open_writer(&path).unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), 2);
        assert_eq!(migrate(&mut conn).unwrap(), 2, "second run is a no-op");
        assert_eq!(version(&conn), vec![1, 2]);
        for table in [
            "callbacks",
            "history",
            "agents",
            "desktop_events",
            "idempotency",
            "outbox",
        ] {
            let n: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "{table}");
        }
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "FULL");
    }

    #[test]
    fn later_steps_apply_in_order_and_only_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("a.db")).unwrap();
        migrate(&mut conn).unwrap();
        let more = [
            Migration {
                version: 1,
                sql: V1,
            },
            Migration {
                version: 2,
                sql: V2,
            },
            Migration {
                version: 3,
                sql: "CREATE TABLE t3 (x INTEGER)",
            },
            Migration {
                version: 4,
                sql: "ALTER TABLE t3 ADD COLUMN y TEXT",
            },
        ];
        assert_eq!(migrate_with(&mut conn, &more).unwrap(), 4);
        assert_eq!(migrate_with(&mut conn, &more).unwrap(), 4);
        assert_eq!(version(&conn), vec![1, 2, 3, 4]);
        conn.execute("INSERT INTO t3 (x, y) VALUES (1, 'a')", [])
            .unwrap();
    }

    #[test]
    fn failed_step_leaves_the_previous_version() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("a.db")).unwrap();
        let bad = [
            Migration {
                version: 1,
                sql: V1,
            },
            Migration {
                version: 2,
                sql: "CREATE TABLE t2 (x INTEGER); THIS IS NOT SQL",
            },
        ];
        let err = migrate_with(&mut conn, &bad).unwrap_err();
        assert!(
            matches!(err, StoreError::Migrate { version: 2, .. }),
            "{err}"
        );
        assert_eq!(version(&conn), vec![1]);
        let t2: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 't2'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(t2, 0, "the failed step was rolled back whole");
    }

    #[test]
    fn newer_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("a.db")).unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (9)", [])
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(
            matches!(err, StoreError::NewerSchema { found: 9, known: 2 }),
            "{err}"
        );
    }
}
