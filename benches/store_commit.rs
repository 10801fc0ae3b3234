//! Group-commit benchmark for the durable store: callback creations, each
//! one `Store::commit` of 3 writes (the record, its `created` history step,
//! a desktop event), against a real file (WAL, `synchronous=FULL`, one
//! fsync per transaction). The target is 2,000 creations/s with p99 under
//! 20 ms on 2 cores.
//!
//! Three runs on a 2-worker tokio runtime:
//! - sequential: one caller, one commit at a time (what one fsync per
//!   commit allows, the baseline group commit improves on);
//! - closed loop: `TASKS` callers committing back to back (the most the
//!   store takes);
//! - open loop: creations arriving at `RATE`/s for `SECONDS`, latency
//!   measured from each one's scheduled arrival, so a stall counts in full.
//!
//! Run: `cargo bench --bench store_commit`. The file goes in a temporary
//! folder under `STORE_BENCH_DIR` (default: the system's temp folder; it
//! must be a real disk for the fsyncs to mean anything).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use switchback::callback::{
    Callback, CallbackRequest, DesktopEvent, DesktopEventKind, HistoryEntry, HistoryKind,
    InteractionId, RoutingData, State, Write,
};
use switchback::store::Store;

const SEQUENTIAL: usize = 300;
const TASKS: usize = 64;
const CLOSED_COMMITS: usize = 20_000;
const RATE: u64 = 2_000;
const SECONDS: u64 = 5;

/// One creation's writes, with a fresh id and desktop seq.
fn creation(seq: u64) -> Vec<Write> {
    let now = Timestamp::now();
    let id = InteractionId(format!("cb-{seq:016x}"));
    let request = CallbackRequest {
        queue_id: "sales".into(),
        callback_numbers: vec!["+33123456789".into(), "+33612345678".into()],
        callback_user_name: Some("Ann Example".into()),
        callback_scheduled_time: Some(now),
        time_zone: Some("Europe/Paris".into()),
        country_code: Some("FR".into()),
        validate_callback_numbers: true,
        routing_data: RoutingData {
            skills: vec!["french".into()],
            priority: 1,
            ..Default::default()
        },
        data: BTreeMap::from([
            ("order".into(), "A-123456".into()),
            ("topic".into(), "delivery".into()),
        ]),
        caller_id: Some("+33100000000".into()),
        caller_id_name: None,
        script_id: None,
    };
    let callback = Callback::new(id.clone(), request, now);
    vec![
        Write::Callback(Box::new(callback)),
        Write::History(
            id.clone(),
            HistoryEntry {
                at: now,
                kind: HistoryKind::Created { by: "api".into() },
            },
        ),
        Write::Desktop(DesktopEvent {
            seq,
            at: now,
            kind: DesktopEventKind::Interaction {
                id,
                state: State::Scheduled,
                agent: None,
                queue: "sales".into(),
                reason: "created".into(),
            },
        }),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn report(
    name: &str,
    store: &Store,
    before: switchback::store::StoreStats,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) {
    latencies.sort();
    let after = store.stats();
    let transactions = after.transactions - before.transactions;
    let jobs = after.jobs - before.jobs;
    println!(
        "{name:<12} {:>6} commits in {:>6.2} s = {:>7.0} commits/s | latency p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms | {} transactions, {:.1} commits each",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 1.0).as_secs_f64() * 1e3,
        transactions,
        jobs as f64 / transactions.max(1) as f64,
    );
}

async fn sequential(store: &Store, seq: &AtomicU64) {
    let before = store.stats();
    let start = Instant::now();
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        store
            .commit(creation(seq.fetch_add(1, Ordering::Relaxed)))
            .await
            .expect("commit");
        latencies.push(t.elapsed());
    }
    report("sequential", store, before, start.elapsed(), latencies);
}

async fn closed_loop(store: &Store, seq: &Arc<AtomicU64>) {
    let before = store.stats();
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let (store, seq) = (store.clone(), Arc::clone(seq));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(CLOSED_COMMITS / TASKS);
                for _ in 0..CLOSED_COMMITS / TASKS {
                    let t = Instant::now();
                    store
                        .commit(creation(seq.fetch_add(1, Ordering::Relaxed)))
                        .await
                        .expect("commit");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(CLOSED_COMMITS);
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    report(
        &format!("closed x{TASKS}"),
        store,
        before,
        start.elapsed(),
        latencies,
    );
}

async fn open_loop(store: &Store, seq: &Arc<AtomicU64>) {
    let before = store.stats();
    let total = RATE * SECONDS;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut tasks = Vec::with_capacity(total as usize);
    let mut issued = 0u64;
    while issued < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * RATE as f64) as u64).min(total);
        for n in issued..due {
            let scheduled = start + Duration::from_secs_f64(n as f64 / RATE as f64);
            let (store, seq) = (store.clone(), Arc::clone(seq));
            tasks.push(tokio::spawn(async move {
                store
                    .commit(creation(seq.fetch_add(1, Ordering::Relaxed)))
                    .await
                    .expect("commit");
                scheduled.elapsed()
            }));
        }
        issued = due;
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for task in tasks {
        latencies.push(task.await.expect("task"));
    }
    report(
        &format!("open {RATE}/s"),
        store,
        before,
        start.elapsed(),
        latencies,
    );
}

fn main() {
    let base = std::env::var_os("STORE_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(&base).expect("temporary folder");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (store, _) = Store::open(&dir.path().join("bench.db")).expect("open");
        println!(
            "store file in {} ({} cores)",
            base.display(),
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let seq = Arc::new(AtomicU64::new(1));
        sequential(&store, &seq).await;
        closed_loop(&store, &seq).await;
        open_loop(&store, &seq).await;
    });
}
