//! The checkpointer thread: copies the WAL back into the database file
//! beside the writer, not inside its commits.
//!
//! SQLite's automatic checkpoint runs in the committing connection, so the
//! commit that crosses the threshold also copies thousands of pages and
//! fsyncs the database file: at a few thousand commits a second that is a
//! stall every few dozen milliseconds, straight into the API's p99. Here a
//! connection of its own runs a PASSIVE checkpoint every `EVERY` (it never
//! blocks the writer or the readers; frames a reader still needs wait for
//! the next round). The writer keeps a far higher automatic threshold as a
//! safety net should this thread be gone.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use rusqlite::Connection;

use super::schema;
use super::StoreError;

const EVERY: Duration = Duration::from_millis(100);

/// Starts the thread; it stops when `stop`'s sender is dropped (with the
/// last handle on the store).
pub(super) fn spawn(path: &Path, stop: Receiver<()>) -> Result<(), StoreError> {
    let conn = schema::open_checkpointer(path)?;
    thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || run(&conn, &stop))
        .map(drop)
        .map_err(StoreError::Spawn)
}

fn run(conn: &Connection, stop: &Receiver<()>) {
    // Nothing is ever sent: the sender's drop ends the wait early.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(EVERY) {
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "store: checkpoint failed; retried next round");
        }
    }
    // A last full copy so the next start reads a short WAL.
    let _ = checkpoint(conn);
}

/// One PASSIVE round; returns (WAL frames, frames copied).
pub(super) fn checkpoint(conn: &Connection) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::callback;
    use super::*;
    use crate::callback::Write;
    use crate::store::Store;

    #[tokio::test]
    async fn committed_frames_are_copied_back_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let (store, _) = Store::open(&path).unwrap();
        for i in 0..20 {
            let cb = callback(&format!("cb-{i}"), crate::callback::State::Queued, "q", i);
            store
                .commit(vec![Write::Callback(Box::new(cb))])
                .await
                .unwrap();
        }
        // Whether the thread's round came first or not, a PASSIVE round
        // finds every frame of the WAL copied into the database file.
        let conn = schema::open_checkpointer(&path).unwrap();
        let (frames, copied) = checkpoint(&conn).unwrap();
        assert!(frames > 0, "the commits went to the WAL");
        assert_eq!(copied, frames);
        drop(store);
    }
}
