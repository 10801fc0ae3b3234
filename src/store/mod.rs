//! The durable store of the web-callback layer: one SQLite file in WAL mode
//! with `synchronous=FULL`, holding callbacks, their history, agents, the
//! numbered desktop events and idempotency keys.
//!
//! The center commits what it decided ([`Write`]s) before it answers the
//! API or places a call; [`Store::commit`] returns only once those writes
//! are durable, so after a crash (even `kill -9` or a power cut) nothing
//! acknowledged is lost. On restart [`Store::open`] hands back what the
//! center needs to resume ([`Recovered`]).
//!
//! SQLite never runs on the async runtime: a writer thread owns the only
//! writing connection and commits in groups (see `writer.rs`), a reader
//! thread owns a second connection for the API's reads. Both are fed by
//! bounded channels; a caller awaits its answer. A caller that stops
//! waiting after its commit was queued does not undo it.
//!
//! Owns: the schema and its migrations, row encoding, the list cursor.
//! Does not own: any decision about what to write (the center's).

mod checkpoint;
mod codec;
mod outbox;
mod reads;
mod schema;
mod writer;

// kill(2) of the child the crash tests run (libc FFI).
#[allow(unsafe_code)]
#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod outbox_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use jiff::Timestamp;
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

pub use codec::Cursor;

use crate::callback::{
    CallbackReads, CallbackWithHistory, DesktopEvent, InteractionId, ListFilter, Page, ReadError,
    ReadFuture, Write,
};
use crate::integrations::notify::OutboxRow;
use reads::ReadJob;
use writer::{Counters, Job};

/// Commits queued beyond this wait (asynchronously) for room.
const WRITE_QUEUE: usize = 4096;
const READ_QUEUE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the store's threads: {0}")]
    Spawn(std::io::Error),
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the database {path} cannot use WAL (journal mode {mode})")]
    NoWal { path: PathBuf, mode: String },
    #[error("schema migration to version {version} failed: {source}")]
    Migrate {
        version: u32,
        source: rusqlite::Error,
    },
    #[error("the database has schema version {found}, newer than this build's {known}")]
    NewerSchema { found: u32, known: u32 },
    /// Shared: when a group's transaction fails, every caller in it gets it.
    #[error("sqlite: {0}")]
    Sqlite(Arc<rusqlite::Error>),
    #[error("{what} cannot be encoded or decoded: {source}")]
    Codec {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{what} {value} is outside what the store can keep")]
    OutOfRange { what: &'static str, value: String },
    /// A list cursor that no page handed out (the API answers 422).
    #[error("cursor: not one a previous page returned")]
    BadCursor,
    /// The writer or reader thread is gone; nothing more can be stored.
    #[error("the store's {0} thread has stopped")]
    Closed(&'static str),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(Arc::new(e))
    }
}

/// What the store hands back at start-up (the center's own type).
pub use crate::callback::center::Recovered;

/// What the writer has committed so far: `jobs / transactions` is the
/// group commit's average group size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Transactions committed.
    pub transactions: u64,
    /// Commits (and idempotency sweeps) acknowledged through them.
    pub jobs: u64,
}

/// A commit queued by [`Store::queue_commit`]: resolves once it is durable
/// (or failed).
#[derive(Debug)]
pub struct PendingCommit(oneshot::Receiver<Result<(), StoreError>>);

impl PendingCommit {
    /// Awaited once; a second await reports the writer as closed.
    pub async fn durable(&mut self) -> Result<(), StoreError> {
        (&mut self.0)
            .await
            .map_err(|_| StoreError::Closed("writer"))?
    }
}

/// A handle on the open store; clones share it. The threads stop when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

struct Shared {
    /// Dropped with the last handle: stops the checkpointer.
    _checkpointer: std::sync::mpsc::Sender<()>,
    writer: mpsc::Sender<Job>,
    reader: mpsc::Sender<ReadJob>,
    counters: Arc<Counters>,
}

impl Store {
    /// Opens (creating the file and its folder when missing) and migrates
    /// the database, and reads back what a restart resumes from.
    pub fn open(path: &Path) -> Result<(Store, Recovered), StoreError> {
        Store::open_gated(path, None)
    }

    /// `gate`: the writer starts only once it fires (or is dropped).
    fn open_gated(
        path: &Path,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    ) -> Result<(Store, Recovered), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut writer_conn = schema::open_writer(path)?;
        schema::migrate(&mut writer_conn)?;
        let recovered = reads::recover(&mut writer_conn)?;
        let reader_conn = schema::open_reader(path)?;

        let counters = Arc::new(Counters::default());
        let (writer_tx, writer_rx) = mpsc::channel(WRITE_QUEUE);
        let (reader_tx, reader_rx) = mpsc::channel(READ_QUEUE);
        writer::spawn(writer_conn, writer_rx, Arc::clone(&counters), gate)
            .map_err(StoreError::Spawn)?;
        reads::spawn(reader_conn, reader_rx).map_err(StoreError::Spawn)?;
        let (checkpointer, stop) = std::sync::mpsc::channel();
        checkpoint::spawn(path, stop)?;
        let store = Store {
            shared: Arc::new(Shared {
                _checkpointer: checkpointer,
                writer: writer_tx,
                reader: reader_tx,
                counters,
            }),
        };
        Ok((store, recovered))
    }

    /// Commits `writes` in one transaction and returns once it is durable.
    /// Commits asked for while the writer is busy are gathered into its
    /// next transaction (one fsync for many callers); each caller is
    /// answered after that COMMIT, with its own batch's outcome.
    pub async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.queue_commit(writes).await?.durable().await
    }

    /// Queues `writes` for the writer and returns the answer to await,
    /// without awaiting it: a caller that must keep deciding while its
    /// commit is out (pipelining) queues the next one behind it. Commits
    /// are applied, and answered, in the order they were queued.
    pub async fn queue_commit(&self, writes: Vec<Write>) -> Result<PendingCommit, StoreError> {
        let (reply, answer) = oneshot::channel();
        if writes.is_empty() {
            let _ = reply.send(Ok(()));
        } else {
            self.send(Job::Commit { writes, reply }).await?;
        }
        Ok(PendingCommit(answer))
    }

    pub async fn callback(
        &self,
        id: &InteractionId,
    ) -> Result<Option<CallbackWithHistory>, StoreError> {
        let id = id.clone();
        self.read(move |conn| reads::callback(conn, &id)).await
    }

    /// A page of callbacks (`limit` 0 means 50; at most 500).
    pub async fn list(&self, filter: ListFilter) -> Result<Page, StoreError> {
        // A bad cursor is the caller's error: refuse it without a round trip.
        if let Some(c) = &filter.cursor {
            Cursor::parse(c)?;
        }
        self.read(move |conn| reads::list(conn, &filter)).await
    }

    /// Desktop events with `seq > after`, oldest first, at most `limit`.
    pub async fn desktop_events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DesktopEvent>, StoreError> {
        self.read(move |conn| reads::desktop_events_after(conn, after, limit))
            .await
    }

    /// Every outbox row still to deliver, in commit order (start-up).
    pub async fn outbox_pending(&self) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(|conn| outbox::pending(conn)).await
    }

    /// Dead outbox rows with `seq > after` (of one endpoint or all), in
    /// commit order, at most `limit`.
    pub async fn outbox_dead(
        &self,
        endpoint: Option<String>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.read(move |conn| outbox::dead(conn, endpoint.as_deref(), after, limit))
            .await
    }

    /// One outbox row, pending or dead.
    pub async fn outbox_row(
        &self,
        endpoint: &str,
        event_id: &str,
    ) -> Result<Option<OutboxRow>, StoreError> {
        let (endpoint, event_id) = (endpoint.to_string(), event_id.to_string());
        self.read(move |conn| outbox::row(conn, &endpoint, &event_id))
            .await
    }

    /// Dead rows per endpoint (endpoints with none are left out).
    pub async fn outbox_dead_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|conn| outbox::dead_counts(conn)).await
    }

    /// Drops idempotency keys recorded before `before`; returns how many.
    pub async fn forget_idempotency_before(&self, before: Timestamp) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::ForgetIdempotency {
            before: codec::micros(before),
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed("writer"))?
    }

    pub fn stats(&self) -> StoreStats {
        let c = &self.shared.counters;
        StoreStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            jobs: c.jobs.load(Ordering::Relaxed),
        }
    }

    async fn send(&self, job: Job) -> Result<(), StoreError> {
        self.shared
            .writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed("writer"))
    }

    /// Runs `query` on the reader thread and awaits its result.
    async fn read<T, F>(&self, query: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| drop(reply.send(query(conn))));
        self.shared
            .reader
            .send(job)
            .await
            .map_err(|_| StoreError::Closed("reader"))?;
        answer.await.map_err(|_| StoreError::Closed("reader"))?
    }
}

/// The API's reads. Errors travel as `ReadError`s showing their message; a
/// bad cursor reads "cursor: ...", and the HTTP layer can tell it apart up
/// front with [`Cursor::parse`].
impl CallbackReads for Store {
    fn callback(&self, id: InteractionId) -> ReadFuture<Option<CallbackWithHistory>> {
        let store = self.clone();
        Box::pin(async move { Store::callback(&store, &id).await.map_err(ReadError::new) })
    }

    fn list(&self, filter: ListFilter) -> ReadFuture<Page> {
        let store = self.clone();
        Box::pin(async move { Store::list(&store, filter).await.map_err(ReadError::new) })
    }

    fn desktop_events_after(&self, after: u64, limit: usize) -> ReadFuture<Vec<DesktopEvent>> {
        let store = self.clone();
        Box::pin(async move {
            Store::desktop_events_after(&store, after, limit)
                .await
                .map_err(ReadError::new)
        })
    }
}
