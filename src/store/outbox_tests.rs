//! The outbox table through the store's API: rows committed, updated as
//! attempts succeed, fail and die, and read back (pending at start-up, dead
//! pages, one row, counts).

use jiff::Timestamp;

use super::tests::t;
use super::*;
use crate::integrations::notify::{testkit, Delivery, Notice, NoticeKind, OutboxWrite};

fn notice(id: &str, agent: &str) -> Notice {
    testkit::agent_notice(id, t(1), agent, NoticeKind::AgentState)
}

fn enqueue(endpoint: &str, id: &str, agent: &str) -> Write {
    Write::Outbox(OutboxWrite::Enqueue(Box::new(Delivery {
        endpoint: endpoint.into(),
        lane: agent.into(),
        notice: notice(id, agent),
    })))
}

fn dead(endpoint: &str, id: &str, at: Timestamp) -> Write {
    Write::Outbox(OutboxWrite::Dead {
        endpoint: endpoint.into(),
        event_id: id.into(),
        attempts: 3,
        error: "HTTP 500".into(),
        at,
    })
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("s.db")).unwrap();
    (dir, store)
}

fn ids(rows: &[OutboxRow]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|r| (r.endpoint.as_str(), r.event_id.as_str()))
        .collect()
}

#[tokio::test]
async fn pending_rows_come_back_in_commit_order_with_their_retry_state() {
    let (_dir, store) = open();
    store
        .commit(vec![
            enqueue("a", "e1", "1001"),
            enqueue("b", "e1", "1001"),
            enqueue("a", "e2", "1002"),
        ])
        .await
        .unwrap();
    store
        .commit(vec![
            enqueue("a", "e3", "1001"),
            // The same event again is one row.
            enqueue("a", "e1", "1001"),
            Write::Outbox(OutboxWrite::Retry {
                endpoint: "a".into(),
                event_id: "e2".into(),
                attempts: 2,
                next_at: t(60),
                error: "timed out".into(),
            }),
            Write::Outbox(OutboxWrite::Delivered {
                endpoint: "b".into(),
                event_id: "e1".into(),
            }),
            dead("a", "e3", t(70)),
        ])
        .await
        .unwrap();
    let rows = store.outbox_pending().await.unwrap();
    assert_eq!(ids(&rows), [("a", "e1"), ("a", "e2")]);
    assert!(rows[0].seq < rows[1].seq);
    let e2 = &rows[1];
    assert_eq!((e2.attempts, e2.next_at), (2, t(60)));
    assert_eq!(e2.last_error.as_deref(), Some("timed out"));
    assert_eq!(e2.lane, "1002");
    assert_eq!(e2.event_type, "agent-state");
    assert_eq!(e2.notice, notice("e2", "1002"));
    assert_eq!(rows[0].next_at, t(1), "due when it happened");
}

#[tokio::test]
async fn dead_rows_are_paged_by_seq_per_endpoint_and_replayed() {
    let (_dir, store) = open();
    let mut writes = Vec::new();
    for i in 0..5 {
        writes.push(enqueue("a", &format!("a{i}"), "1001"));
        writes.push(enqueue("b", &format!("b{i}"), "1001"));
    }
    for i in 0..5 {
        writes.push(dead("a", &format!("a{i}"), t(100 + i)));
    }
    writes.push(dead("b", "b0", t(200)));
    store.commit(writes).await.unwrap();

    let page = store.outbox_dead(Some("a".into()), 0, 2).await.unwrap();
    assert_eq!(ids(&page), [("a", "a0"), ("a", "a1")]);
    assert_eq!(page[0].dead_at, Some(t(100)));
    assert_eq!(page[0].attempts, 3);
    assert_eq!(page[0].last_error.as_deref(), Some("HTTP 500"));
    let rest = store
        .outbox_dead(Some("a".into()), page[1].seq, 10)
        .await
        .unwrap();
    assert_eq!(ids(&rest), [("a", "a2"), ("a", "a3"), ("a", "a4")]);
    let all = store.outbox_dead(None, 0, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(store
        .outbox_dead(None, u64::MAX, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.outbox_dead_counts().await.unwrap(),
        [("a".to_string(), 5), ("b".to_string(), 1)]
    );

    store
        .commit(vec![Write::Outbox(OutboxWrite::Replay {
            endpoint: "a".into(),
            event_id: "a1".into(),
            at: t(300),
        })])
        .await
        .unwrap();
    let a1 = store.outbox_row("a", "a1").await.unwrap().unwrap();
    assert_eq!((a1.dead_at, a1.attempts, a1.next_at), (None, 0, t(300)));
    let pending = store.outbox_pending().await.unwrap();
    assert!(pending.iter().any(|r| r.event_id == "a1"));
    assert!(store.outbox_row("a", "nope").await.unwrap().is_none());
    assert!(store.outbox_row("b", "a1").await.unwrap().is_none());
}

#[tokio::test]
async fn an_unreadable_row_does_not_stop_the_others_loading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let (store, _) = Store::open(&path).unwrap();
        store
            .commit(vec![enqueue("a", "e1", "1001"), enqueue("a", "e2", "1001")])
            .await
            .unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE outbox SET body = 'nope' WHERE event_id = 'e1'", [])
        .unwrap();
    drop(conn);
    let (store, _) = Store::open(&path).unwrap();
    let rows = store.outbox_pending().await.unwrap();
    assert_eq!(ids(&rows), [("a", "e2")]);
}
