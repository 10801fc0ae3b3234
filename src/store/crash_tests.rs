//! `kill -9` in the middle of a stream of commits loses none that were
//! acknowledged. The test binary runs itself as the child (the ignored
//! `crash_child` test, selected by name), which commits from several tasks
//! at once and prints each id once `commit` has returned; the parent kills
//! it with SIGKILL part-way and reopens the file.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::tests::{callback, desktop, history};
use super::*;
use crate::callback::{HistoryKind, State};

const CHILD_DB: &str = "SWITCHBACK_STORE_CRASH_CHILD_DB";
const WRITERS: u64 = 8;
const COMMITS_PER_WRITER: u64 = 5_000;
/// Acknowledgements seen before the kill.
const KILL_AFTER: usize = 300;
/// The child is killed anyway if it has not been by then (it hung).
const WATCHDOG: Duration = Duration::from_secs(120);

fn writes_for(writer: u64, n: u64) -> (String, Vec<Write>) {
    let cb = callback(&format!("cb-{writer}-{n}"), State::Queued, "q", n as i64);
    let id = cb.id.0.clone();
    let writes = vec![
        Write::Callback(Box::new(cb.clone())),
        Write::History(
            cb.id.clone(),
            history(0, HistoryKind::Created { by: "api".into() }),
        ),
        Write::Desktop(desktop(writer * 1_000_000 + n + 1, &id)),
        Write::Idempotency {
            key: format!("key-{id}"),
            id: cb.id,
            at: cb.created_at,
        },
    ];
    (id, writes)
}

#[test]
#[ignore = "the child process of kill_9_loses_nothing_acknowledged"]
fn crash_child() {
    let path = std::env::var_os(CHILD_DB).expect("run by kill_9_loses_nothing_acknowledged");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let (store, _) = Store::open(Path::new(&path)).unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..COMMITS_PER_WRITER {
                        let (id, writes) = writes_for(w, n);
                        store.commit(writes).await.unwrap();
                        // One write(2) per line: a line is whole or absent.
                        println!("acked {id}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash/callbacks.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::crash_tests::crash_child",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DB, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let (done, watchdog_wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watchdog_wait.recv_timeout(WATCHDOG).is_err() {
            // SAFETY: kill(2) on our own unreaped child; no memory involved.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });

    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = Vec::new();
    let mut killed = false;
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 {
        // A line cut by the kill was not a whole acknowledgement.
        if let Some(id) = line
            .strip_prefix("acked ")
            .and_then(|l| l.strip_suffix('\n'))
        {
            acked.push(id.to_owned());
        }
        line.clear();
        if !killed && acked.len() >= KILL_AFTER {
            // SAFETY: as above.
            assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    drop(done);
    watchdog.join().unwrap();
    assert!(
        killed,
        "the child ended after {} acks: {status}",
        acked.len()
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "killed mid-run, not finished"
    );

    let (store, recovered) = Store::open(&path).unwrap();
    let live: std::collections::HashSet<&str> = recovered
        .callbacks
        .iter()
        .map(|c| c.id.0.as_str())
        .collect();
    let keys: std::collections::HashSet<&str> = recovered
        .idempotency
        .iter()
        .map(|(k, _, _)| k.as_str())
        .collect();
    for id in &acked {
        assert!(live.contains(id.as_str()), "acknowledged {id} lost");
        assert!(
            keys.contains(format!("key-{id}").as_str()),
            "key of {id} lost"
        );
    }
    assert!(recovered.last_desktop_seq >= 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let last = InteractionId(acked.last().unwrap().clone());
        let read = store
            .callback(&last)
            .await
            .unwrap()
            .expect("last acknowledged");
        assert_eq!(read.history.len(), 1);
        let events = store.desktop_events_after(0, 1_000_000).await.unwrap();
        let seen: std::collections::HashSet<String> = events
            .iter()
            .filter_map(|e| match &e.kind {
                crate::callback::DesktopEventKind::Interaction { id, .. } => Some(id.0.clone()),
                _ => None,
            })
            .collect();
        assert!(
            acked.iter().all(|id| seen.contains(id)),
            "a desktop event lost"
        );
    });
}
