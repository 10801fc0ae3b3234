//! `Store::list`: each filter, their combinations, keyset pages across
//! ties in `created_at`, the page size's default and cap, bad cursors.

use super::tests::{callback, id, open, t};
use super::*;
use crate::callback::{Callback, State};

/// Pages through `filter` with `limit`, checking every page but the last
/// is full.
async fn all_pages(store: &Store, filter: ListFilter, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = store
            .list(ListFilter {
                limit,
                cursor: cursor.take(),
                ..filter.clone()
            })
            .await
            .unwrap();
        ids.extend(page.items.iter().map(|c| c.id.0.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.len(), limit, "only the last page is short");
                cursor = Some(next);
            }
            None => return ids,
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn list_filters_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    // 30 callbacks; created times repeat (i / 2), so ids break ties.
    let mut all = Vec::new();
    for i in 0..30i64 {
        let state = [State::Queued, State::Done, State::Offered][i as usize % 3];
        let mut cb = callback(
            &format!("cb-{:02}", 29 - i),
            state,
            ["sales", "support"][i as usize % 2],
            i / 2,
        );
        if i % 5 == 0 {
            cb.interaction_queue = "complete".into();
        }
        if state == State::Offered {
            cb.agent = Some(["1001", "1002"][i as usize % 2].into());
        }
        cb.due_at = t(1000 - i);
        all.push(cb);
    }
    let writes = all
        .iter()
        .cloned()
        .map(|c| Write::Callback(Box::new(c)))
        .collect();
    store.commit(writes).await.unwrap();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let expect = |keep: &dyn Fn(&Callback) -> bool| -> Vec<String> {
        sorted
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.id.0.clone())
            .collect()
    };

    let everything = all_pages(&store, ListFilter::default(), 7).await;
    assert_eq!(everything, expect(&|_| true));
    assert_eq!(
        all_pages(&store, ListFilter::default(), 30).await,
        everything,
        "exact fit"
    );

    let states = ListFilter {
        states: vec![State::Queued, State::Offered],
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, states, 4).await,
        expect(&|c| matches!(c.state, State::Queued | State::Offered))
    );
    let queue = ListFilter {
        queue: Some("complete".into()),
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, queue, 2).await,
        expect(&|c| c.interaction_queue == "complete")
    );
    let sales = ListFilter {
        queue: Some("sales".into()),
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, sales, 3).await,
        expect(&|c| c.request.queue_id == "sales")
    );
    let agent = ListFilter {
        agent: Some("1002".into()),
        states: vec![State::Offered],
        ..Default::default()
    };
    let by_agent = all_pages(&store, agent, 2).await;
    assert!(!by_agent.is_empty());
    assert_eq!(by_agent, expect(&|c| c.agent.as_deref() == Some("1002")));
    let created = ListFilter {
        from: Some(t(3)),
        to: Some(t(9)),
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, created, 5).await,
        expect(&|c| c.created_at >= t(3) && c.created_at < t(9))
    );
    let due = ListFilter {
        from: Some(t(980)),
        to: Some(t(990)),
        by_due: true,
        ..Default::default()
    };
    assert_eq!(
        all_pages(&store, due, 4).await,
        expect(&|c| c.due_at >= t(980) && c.due_at < t(990))
    );
    let none = ListFilter {
        queue: Some("nobody".into()),
        ..Default::default()
    };
    assert_eq!(
        store.list(none).await.unwrap(),
        Page {
            items: vec![],
            next: None
        }
    );
}

#[tokio::test]
async fn list_limit_defaults_to_50_and_caps_at_500() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let writes = (0..520)
        .map(|i| {
            Write::Callback(Box::new(callback(
                &format!("cb-{i:04}"),
                State::Queued,
                "q",
                i,
            )))
        })
        .collect();
    store.commit(writes).await.unwrap();
    let page = store.list(ListFilter::default()).await.unwrap();
    assert_eq!(page.items.len(), 50);
    assert!(page.next.is_some());
    let page = store
        .list(ListFilter {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 500);
    let rest = store
        .list(ListFilter {
            limit: 10_000,
            cursor: page.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 20);
    assert_eq!(rest.items[0].id, id("cb-0500"));
    assert_eq!(rest.next, None);
}

#[tokio::test]
async fn a_bad_cursor_is_its_own_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    for bad in ["nope", "", "00"] {
        let filter = ListFilter {
            cursor: Some(bad.into()),
            ..Default::default()
        };
        let err = store.list(filter.clone()).await.unwrap_err();
        assert!(matches!(err, StoreError::BadCursor), "{bad:?}: {err}");
        let text = CallbackReads::list(&store, filter)
            .await
            .unwrap_err()
            .to_string();
        assert!(text.starts_with("cursor:"), "{text}");
    }
}
