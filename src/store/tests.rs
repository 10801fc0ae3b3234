//! The store through its public API: every write kind back out, restart
//! recovery, desktop replay, group commit, errors.
//! List queries are tested in `list_tests.rs`, `kill -9` in `crash_tests.rs`.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use jiff::{SignedDuration, Timestamp};

use super::*;
use crate::callback::{
    Agent, AgentState, Callback, CallbackRequest, DesktopEventKind, HistoryEntry, HistoryKind,
    RoutingData, State,
};

pub(super) fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap() + SignedDuration::from_secs(secs)
}

pub(super) fn callback(id: &str, state: State, queue: &str, created: i64) -> Callback {
    let request = CallbackRequest {
        queue_id: queue.into(),
        callback_numbers: vec!["+33123456789".into()],
        callback_user_name: Some("Ann".into()),
        callback_scheduled_time: Some(t(created + 60)),
        time_zone: Some("Europe/Paris".into()),
        country_code: Some("FR".into()),
        validate_callback_numbers: true,
        routing_data: RoutingData {
            skills: vec!["fr".into()],
            preferred_agents: vec![],
            priority: 2,
            options: BTreeMap::from([("webcallback.auto-answer".into(), true.into())]),
        },
        data: BTreeMap::from([("order".into(), "42".into())]),
        caller_id: None,
        caller_id_name: None,
        script_id: None,
    };
    Callback {
        state,
        due_at: t(created + 60),
        ..Callback::new(InteractionId(id.into()), request, t(created))
    }
}

pub(super) fn history(at: i64, kind: HistoryKind) -> HistoryEntry {
    HistoryEntry { at: t(at), kind }
}

pub(super) fn desktop(seq: u64, id: &str) -> DesktopEvent {
    DesktopEvent {
        seq,
        at: t(seq as i64),
        kind: DesktopEventKind::Interaction {
            id: InteractionId(id.into()),
            state: State::Queued,
            agent: None,
            queue: "sales".into(),
            reason: "due".into(),
        },
    }
}

fn agent(id: &str, state: AgentState) -> Agent {
    Agent {
        id: id.into(),
        state,
        reason: None,
        since: t(5),
        idle_since: Some(t(5)),
    }
}

pub(super) fn id(s: &str) -> InteractionId {
    InteractionId(s.into())
}

pub(super) fn open(dir: &tempfile::TempDir) -> (Store, Recovered) {
    Store::open(&dir.path().join("db/callbacks.db")).expect("open")
}

#[tokio::test]
async fn every_write_kind_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (store, recovered) = open(&dir);
    assert_eq!(recovered.callbacks, vec![]);
    assert_eq!(recovered.last_desktop_seq, 0);

    let mut cb = callback("cb-1", State::Queued, "sales", 0);
    let created = history(0, HistoryKind::Created { by: "api".into() });
    let changed = history(
        1,
        HistoryKind::StateChanged {
            from: State::Scheduled,
            to: State::Queued,
            reason: "due".into(),
        },
    );
    store
        .commit(vec![
            Write::Callback(Box::new(cb.clone())),
            Write::History(cb.id.clone(), created.clone()),
            Write::History(cb.id.clone(), changed.clone()),
            Write::Agent(agent("1001", AgentState::Ready)),
            Write::Desktop(desktop(1, "cb-1")),
            Write::Idempotency {
                key: "k-1".into(),
                id: cb.id.clone(),
                at: t(0),
            },
        ])
        .await
        .unwrap();

    // A later commit replaces the record and the agent, and adds a step.
    cb.state = State::Offered;
    cb.agent = Some("1001".into());
    let offered = history(
        2,
        HistoryKind::Offered {
            agent: "1001".into(),
        },
    );
    store
        .commit(vec![
            Write::Callback(Box::new(cb.clone())),
            Write::History(cb.id.clone(), offered.clone()),
            Write::Agent(agent("1001", AgentState::Engaged)),
            Write::Desktop(desktop(2, "cb-1")),
        ])
        .await
        .unwrap();

    let read = store.callback(&cb.id).await.unwrap().expect("stored");
    assert_eq!(read.callback, cb);
    assert_eq!(
        read.history,
        vec![created, changed, offered],
        "oldest first"
    );
    assert_eq!(store.callback(&id("cb-none")).await.unwrap(), None);
    assert_eq!(
        store.desktop_events_after(0, 10).await.unwrap(),
        vec![desktop(1, "cb-1"), desktop(2, "cb-1")]
    );
    let page = store.list(ListFilter::default()).await.unwrap();
    assert_eq!(page.items, vec![cb.clone()]);

    drop(store);
    let (_store, recovered) = open(&dir);
    assert_eq!(recovered.callbacks, vec![cb.clone()]);
    assert_eq!(recovered.agents, vec![agent("1001", AgentState::Engaged)]);
    assert_eq!(recovered.last_desktop_seq, 2);
    assert_eq!(recovered.idempotency, vec![("k-1".into(), cb.id, t(0))]);
}

#[tokio::test]
async fn history_is_numbered_per_interaction_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let step = |n: i64| {
        history(
            n,
            HistoryKind::Offered {
                agent: format!("a{n}"),
            },
        )
    };
    for cb in ["cb-a", "cb-b"] {
        store
            .commit(vec![Write::Callback(Box::new(callback(
                cb,
                State::Queued,
                "q",
                0,
            )))])
            .await
            .unwrap();
    }
    // Interleaved across commits; `at` deliberately out of order, so only
    // the store's numbering can give commit order back.
    store
        .commit(vec![
            Write::History(id("cb-a"), step(9)),
            Write::History(id("cb-b"), step(1)),
            Write::History(id("cb-a"), step(3)),
        ])
        .await
        .unwrap();
    store
        .commit(vec![
            Write::History(id("cb-b"), step(2)),
            Write::History(id("cb-a"), step(1)),
        ])
        .await
        .unwrap();
    let a = store.callback(&id("cb-a")).await.unwrap().unwrap();
    let b = store.callback(&id("cb-b")).await.unwrap().unwrap();
    assert_eq!(a.history, vec![step(9), step(3), step(1)]);
    assert_eq!(b.history, vec![step(1), step(2)]);
}

#[tokio::test]
async fn reopening_recovers_live_callbacks_agents_seq_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let states = [
        State::Scheduled,
        State::Done,
        State::Connected,
        State::Cancelled,
        State::Rescheduled,
        State::Parked,
        State::NotReached,
        State::Declined,
        State::Offered,
    ];
    let all: Vec<Callback> = states
        .iter()
        .enumerate()
        .map(|(i, s)| callback(&format!("cb-{i}"), *s, "q", 100 - i as i64))
        .collect();
    let mut writes: Vec<Write> = all
        .iter()
        .cloned()
        .map(|c| Write::Callback(Box::new(c)))
        .collect();
    writes.push(Write::Agent(agent("1002", AgentState::NotReady)));
    writes.push(Write::Agent(agent("1001", AgentState::Ready)));
    store.commit(writes).await.unwrap();
    store
        .commit(vec![
            Write::Desktop(desktop(7, "cb-0")),
            Write::Desktop(desktop(41, "cb-0")),
        ])
        .await
        .unwrap();
    let keys = [("old", t(-100)), ("new", t(100)), ("mid", t(0))];
    store
        .commit(
            keys.iter()
                .map(|(k, at)| Write::Idempotency {
                    key: (*k).into(),
                    id: id("cb-0"),
                    at: *at,
                })
                .collect(),
        )
        .await
        .unwrap();
    drop(store);

    let (store, recovered) = open(&dir);
    let mut live: Vec<Callback> = all.into_iter().filter(|c| !c.state.is_final()).collect();
    live.sort_by_key(|c| c.created_at);
    assert_eq!(recovered.callbacks, live);
    assert_eq!(
        recovered.agents,
        vec![
            agent("1001", AgentState::Ready),
            agent("1002", AgentState::NotReady)
        ]
    );
    assert_eq!(recovered.last_desktop_seq, 41);
    let names: Vec<&str> = recovered
        .idempotency
        .iter()
        .map(|(k, _, _)| k.as_str())
        .collect();
    assert_eq!(names, ["old", "mid", "new"]);

    assert_eq!(store.forget_idempotency_before(t(0)).await.unwrap(), 1);
    assert_eq!(store.forget_idempotency_before(t(0)).await.unwrap(), 0);
    drop(store);
    let (_store, recovered) = open(&dir);
    let names: Vec<&str> = recovered
        .idempotency
        .iter()
        .map(|(k, _, _)| k.as_str())
        .collect();
    assert_eq!(names, ["mid", "new"]);
}

#[tokio::test]
async fn desktop_events_replay_after_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    // Committed out of order, in three transactions.
    for seqs in [[4u64, 1, 9], [2, 10, 3], [5, 6, 7]] {
        store
            .commit(
                seqs.iter()
                    .map(|s| Write::Desktop(desktop(*s, "cb-1")))
                    .collect(),
            )
            .await
            .unwrap();
    }
    let seqs = |events: Vec<DesktopEvent>| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(store.desktop_events_after(3, 4).await.unwrap()),
        [4, 5, 6, 7]
    );
    assert_eq!(
        seqs(store.desktop_events_after(7, 100).await.unwrap()),
        [9, 10]
    );
    assert_eq!(seqs(store.desktop_events_after(0, 1).await.unwrap()), [1]);
    assert!(store
        .desktop_events_after(10, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .desktop_events_after(u64::MAX, 100)
        .await
        .unwrap()
        .is_empty());
    assert!(store.desktop_events_after(0, 0).await.unwrap().is_empty());
    let via_trait = CallbackReads::desktop_events_after(&store, 8, 1)
        .await
        .unwrap();
    assert_eq!(via_trait, vec![desktop(9, "cb-1")]);
}

/// Polls every future once, so each queues its job; none may finish yet.
async fn queue_all<F: Future + Unpin>(pending: &mut [F]) {
    std::future::poll_fn(|cx| {
        for f in pending.iter_mut() {
            assert!(
                Pin::new(f).poll(cx).is_pending(),
                "answered before the writer ran"
            );
        }
        Poll::Ready(())
    })
    .await
}

#[tokio::test]
async fn commits_queued_while_the_writer_is_busy_share_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, held) = std::sync::mpsc::channel();
    let (store, _) = Store::open_gated(&dir.path().join("g.db"), Some(held)).unwrap();
    // The held writer stands for one busy with a previous transaction.
    let mut pending: Vec<_> = (0..64u64)
        .map(|i| {
            let cb = callback(&format!("cb-{i}"), State::Queued, "q", i as i64);
            Box::pin(store.commit(vec![
                Write::Callback(Box::new(cb.clone())),
                Write::History(
                    cb.id.clone(),
                    history(0, HistoryKind::Created { by: "api".into() }),
                ),
                Write::Desktop(desktop(i + 1, &cb.id.0)),
            ]))
        })
        .collect();
    queue_all(&mut pending).await;
    assert_eq!(store.stats(), StoreStats::default());
    gate.send(()).unwrap();
    for commit in pending {
        commit.await.unwrap();
    }
    assert_eq!(
        store.stats(),
        StoreStats {
            transactions: 1,
            jobs: 64
        }
    );
    assert_eq!(store.desktop_events_after(0, 100).await.unwrap().len(), 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_from_many_tasks_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let cb = callback(&format!("cb-{i:03}"), State::Queued, "q", i as i64);
                store
                    .commit(vec![
                        Write::Callback(Box::new(cb)),
                        Write::Desktop(desktop(i + 1, "x")),
                    ])
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.jobs, 200);
    assert!(
        stats.transactions >= 1 && stats.transactions <= 200,
        "{stats:?}"
    );
    let page = store
        .list(ListFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((page.items.len(), page.next), (200, None));
}

#[tokio::test]
async fn a_failed_batch_is_undone_alone_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, held) = std::sync::mpsc::channel();
    let (store, _) = Store::open_gated(&dir.path().join("e.db"), Some(held)).unwrap();
    let first = store.commit(vec![Write::Desktop(desktop(1, "cb-a"))]);
    // Same seq again: refused, and its callback with it.
    let duplicate = store.commit(vec![
        Write::Callback(Box::new(callback("cb-dup", State::Queued, "q", 0))),
        Write::Desktop(desktop(1, "cb-dup")),
    ]);
    let too_big = store.commit(vec![
        Write::Callback(Box::new(callback("cb-big", State::Queued, "q", 0))),
        Write::Desktop(desktop(u64::MAX, "cb-big")),
    ]);
    let after = store.commit(vec![Write::Callback(Box::new(callback(
        "cb-ok",
        State::Queued,
        "q",
        0,
    )))]);
    let mut pending = [
        Box::pin(first),
        Box::pin(duplicate),
        Box::pin(too_big),
        Box::pin(after),
    ];
    queue_all(&mut pending).await;
    gate.send(()).unwrap();
    let [first, duplicate, too_big, after] = pending;
    first.await.unwrap();
    assert!(matches!(duplicate.await, Err(StoreError::Sqlite(_))));
    assert!(matches!(too_big.await, Err(StoreError::OutOfRange { .. })));
    after.await.unwrap();
    assert_eq!(
        store.stats().transactions,
        1,
        "one group despite the failures"
    );

    assert_eq!(store.callback(&id("cb-dup")).await.unwrap(), None);
    assert_eq!(store.callback(&id("cb-big")).await.unwrap(), None);
    assert!(store.callback(&id("cb-ok")).await.unwrap().is_some());
    assert_eq!(
        store.desktop_events_after(0, 10).await.unwrap(),
        vec![desktop(1, "cb-a")]
    );
    // The writer carries on.
    store
        .commit(vec![Write::Desktop(desktop(2, "cb-a"))])
        .await
        .unwrap();
}

#[test]
fn opening_a_bad_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Store::open(&file.join("sub/db.sqlite")),
        Err(StoreError::Io { .. })
    ));
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::Open { .. })
    ));
    std::fs::write(dir.path().join("junk.db"), vec![7u8; 8192]).unwrap();
    assert!(Store::open(&dir.path().join("junk.db")).is_err());
}

#[test]
fn a_newer_schema_is_refused_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    drop(Store::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (3)", [])
        .unwrap();
    drop(conn);
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NewerSchema { found: 3, known: 2 })
    ));
}

#[tokio::test]
async fn an_undecodable_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let (store, _) = Store::open(&path).unwrap();
    store
        .commit(vec![Write::Callback(Box::new(callback(
            "cb-1",
            State::Queued,
            "q",
            0,
        )))])
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE callbacks SET body = '{\"id\": 3}'", [])
        .unwrap();
    assert!(matches!(
        store.callback(&id("cb-1")).await,
        Err(StoreError::Codec { .. })
    ));
    assert!(matches!(
        store.list(ListFilter::default()).await,
        Err(StoreError::Codec { .. })
    ));
    let text = CallbackReads::callback(&store, id("cb-1"))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("callback"), "{text}");
    drop(store);
    assert!(matches!(Store::open(&path), Err(StoreError::Codec { .. })));
}
