//! Session table: indexes stay consistent on remove and replace, and under
//! concurrent churn from two threads.

use std::sync::Arc;

use super::*;

fn key(call_id: &str, tag: &str) -> DialogKey {
    DialogKey {
        call_id: call_id.to_owned(),
        local_tag: tag.to_owned(),
    }
}

fn sorted(mut v: Vec<(String, Arc<u32>)>) -> Vec<(String, u32)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(c, r)| (c, *r)).collect()
}

#[test]
fn calls_by_id() {
    let t = SessionTable::new();
    assert!(t.is_empty());
    t.insert("c1", Arc::new(1u32), None);
    t.insert("c2", Arc::new(2), None);
    assert_eq!(t.len(), 2);
    assert_eq!(t.get("c1").as_deref(), Some(&1));
    assert!(t.update("c1", Arc::new(10)));
    assert!(!t.update("nope", Arc::new(0)));
    assert_eq!(t.get("c1").as_deref(), Some(&10));
    assert_eq!(sorted(t.snapshot()), [("c1".into(), 10), ("c2".into(), 2)]);
    assert_eq!(t.remove("c1").as_deref(), Some(&10));
    assert_eq!(t.remove("c1"), None);
    assert_eq!(t.get("c1"), None);
    assert_eq!(t.len(), 1);
    t.check_indexes().unwrap();
}

#[test]
fn dialogs_follow_their_call() {
    let t = SessionTable::new();
    t.insert("c1", Arc::new(1u32), None);
    let (a, b) = (key("x@h", "t1"), key("y@h", "t2"));
    t.add_dialog("c1", a.clone());
    t.add_dialog("c1", b.clone());
    t.add_dialog("c1", b.clone());
    t.add_dialog("missing", key("z@h", "t3"));
    assert_eq!(t.by_dialog(&key("z@h", "t3")), None);
    let (call, rec) = t.by_dialog(&a).unwrap();
    assert_eq!((call.as_str(), *rec), ("c1", 1));
    // update and replace keep the dialogs and show the new record.
    t.update("c1", Arc::new(2));
    assert_eq!(*t.by_dialog(&b).unwrap().1, 2);
    t.insert("c1", Arc::new(3), Some("i1"));
    assert_eq!(*t.by_dialog(&b).unwrap().1, 3);
    t.remove_dialog(&a);
    assert_eq!(t.by_dialog(&a), None);
    assert!(t.by_dialog(&b).is_some());
    t.check_indexes().unwrap();
    t.remove("c1");
    assert_eq!(t.by_dialog(&b), None);
    t.check_indexes().unwrap();
    assert!(t.indexes_empty());
}

#[test]
fn interactions_index_moves_with_replace_and_goes_with_remove() {
    let t = SessionTable::new();
    t.insert("c1", Arc::new(1u32), Some("i1"));
    t.insert("c2", Arc::new(2), Some("i1"));
    t.insert("c3", Arc::new(3), Some("i2"));
    t.insert("c4", Arc::new(4), None);
    assert_eq!(
        sorted(t.by_interaction("i1")),
        [("c1".into(), 1), ("c2".into(), 2)]
    );
    // Replacing c2 moves it to i2; replacing c3 with the same interaction
    // leaves it there once.
    t.insert("c2", Arc::new(20), Some("i2"));
    t.insert("c3", Arc::new(30), Some("i2"));
    assert_eq!(sorted(t.by_interaction("i1")), [("c1".into(), 1)]);
    assert_eq!(
        sorted(t.by_interaction("i2")),
        [("c2".into(), 20), ("c3".into(), 30)]
    );
    // Replacing with None drops it from the index.
    t.insert("c3", Arc::new(31), None);
    assert_eq!(sorted(t.by_interaction("i2")), [("c2".into(), 20)]);
    t.check_indexes().unwrap();
    t.remove("c1");
    assert!(t.by_interaction("i1").is_empty());
    assert!(t.by_interaction("nobody").is_empty());
    for c in ["c2", "c3", "c4"] {
        t.remove(c);
    }
    t.check_indexes().unwrap();
    assert!(t.indexes_empty());
}

#[test]
fn a_removed_then_reinserted_call_id_does_not_inherit_old_dialogs() {
    let t = SessionTable::new();
    t.insert("c1", Arc::new(1u32), Some("i1"));
    t.add_dialog("c1", key("x@h", "t1"));
    t.remove("c1");
    t.insert("c1", Arc::new(2), None);
    assert_eq!(t.by_dialog(&key("x@h", "t1")), None);
    assert!(t.by_interaction("i1").is_empty());
    t.check_indexes().unwrap();
}

#[test]
fn concurrent_churn_leaves_no_dangling_index_entries() {
    let t = Arc::new(SessionTable::<u32>::new());
    // Both threads work the same 64 call ids so inserts, dialog adds and
    // removes of one call race each other.
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            let t = t.clone();
            std::thread::spawn(move || {
                let mut x = 0x2545_F491u32 ^ (w * 0x9E37_79B9);
                for i in 0..20_000u32 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let c = format!("c{}", x % 64);
                    match (x >> 8) % 6 {
                        0 | 1 => {
                            let inter = format!("i{}", x % 7);
                            t.insert(&c, Arc::new(i), (x & 0x100 != 0).then_some(inter.as_str()));
                            t.add_dialog(&c, key(&c, &format!("t{w}")));
                        }
                        2 => {
                            t.add_dialog(&c, key(&c, &format!("t{}", x % 3)));
                        }
                        3 => {
                            t.remove(&c);
                        }
                        4 => {
                            t.remove_dialog(&key(&c, &format!("t{}", x % 3)));
                            t.update(&c, Arc::new(i));
                        }
                        _ => {
                            if let Some((call, _)) = t.by_dialog(&key(&c, &format!("t{w}"))) {
                                assert_eq!(call, c);
                            }
                            for (call, _) in t.by_interaction(&format!("i{}", x % 7)) {
                                assert!(call.starts_with('c'));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    t.check_indexes().unwrap();
    for (c, _) in t.snapshot() {
        t.remove(&c);
    }
    assert!(t.is_empty());
    t.check_indexes().unwrap();
    assert!(t.indexes_empty());
}

#[test]
fn the_table_is_shareable() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<SessionTable<u32>>();
}
