//! Notification delivery benchmark (issue 5), a script that prints figures:
//! events delivered per second from the durable outbox to a local HTTP
//! receiver, with none lost and each agent's events in order.
//!
//! The real delivery task (`switchback::driver::OutboxTask`) runs against
//! a real store file (WAL, `synchronous=FULL`) under `NOTIFY_BENCH_DIR`
//! (default: the system's temp folder; it must be a real disk for the
//! fsyncs to mean anything) and an axum receiver on loopback (its own
//! thread, answering 200 at once) that records every event id it gets.
//! Bodies are JSON and signed (HMAC-SHA256), as a production endpoint's.
//!
//! 1. Backlog: `EVENTS` (default 20,000) events over `AGENTS` (default 100)
//!    agents are committed to the outbox in transactions of `BATCH`
//!    (default 100), as the center would; then the task starts, loads them
//!    as after a restart, and delivers them. Prints the commit rate and the
//!    delivery rate (first row loaded to last delivery committed).
//! 2. Live: a fresh store; a producer commits `RATE` events/s (default
//!    2,000) in a batch every 10 ms for `LIVE_SECS` (default 5) and hands
//!    each batch to the task after its commit, as the web-callback task
//!    does. Prints the delivered rate and the latency from commit to
//!    arrival (p50, p99, max).
//!
//! Each phase then checks the receiver's record: every event arrived, no
//! agent's events out of order, and the outbox table is empty. Exits
//! non-zero when one is lost or reordered. The target is 2,000 events/s
//! on 2 cores. Run: `scripts/bench-notify` or `cargo bench --bench notify_outbox`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jiff::Timestamp;
use switchback::callback::Write;
use switchback::driver::OutboxTask;
use switchback::integrations::notify::{
    AgentChangeNotice, BodyFormat, Delivery, DeliveryRetry, EndpointSettings, EventFilter, Notice,
    NoticeKind, NotifySettings, OutboxWrite, Signing,
};
use switchback::store::Store;
use tokio::sync::mpsc;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What the receiver saw: (event index, arrival) in arrival order.
type Seen = Arc<Mutex<Vec<(u64, Instant)>>>;

/// Event `index` of `agent`: the id carries both, so the receiver can
/// check order without parsing bodies.
fn delivery(index: u64, agent: u64) -> Delivery {
    let agent_id = format!("{}", 2000 + agent);
    Delivery {
        endpoint: "bench".into(),
        lane: agent_id.clone(),
        notice: Notice {
            event_id: format!("ev-{agent:05}-{index:010}"),
            timestamp: Timestamp::now(),
            kind: NoticeKind::AgentState(AgentChangeNotice {
                agent_id,
                agent_name: Some(format!("Agent {agent}")),
                state: "not-ready".into(),
                state_name: "Lunch".into(),
                reason: Some("Lunch".into()),
                previous_state: Some("ready".into()),
                previous_state_name: Some("Available".into()),
                previous_state_seconds: Some(index % 600),
            }),
        },
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let rest = id.strip_prefix("ev-")?;
    let (agent, index) = rest.split_once('-')?;
    Some((agent.parse().ok()?, index.parse().ok()?))
}

fn settings(addr: SocketAddr) -> NotifySettings {
    NotifySettings {
        endpoints: vec![EndpointSettings {
            name: "bench".into(),
            url: format!("http://{addr}/events"),
            format: BodyFormat::Json,
            events: EventFilter {
                all_agent_states: true,
                ..Default::default()
            },
            headers: vec![("Authorization".into(), "Basic YmVuY2g6YmVuY2g=".into())],
            signing: Some(Signing {
                secret: "bench-shared-secret-01".into(),
                header: "X-Switchback-Signature".into(),
            }),
            timeout: Duration::from_secs(5),
            retry: DeliveryRetry::default(),
            allow_http: true,
            ca_file: None,
        }],
        public_url: None,
    }
}

async fn record(State(seen): State<Seen>, headers: HeaderMap) -> StatusCode {
    let id = headers
        .get("x-switchback-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_id);
    match id {
        Some((_, index)) => {
            seen.lock().expect("seen").push((index, Instant::now()));
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    }
}

/// The receiver on its own thread and runtime (a separate server).
fn start_receiver() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let state = Arc::clone(&seen);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().fallback(record).with_state(state);
            let _ = axum::serve(listener, app).await;
        });
    });
    (addr, seen)
}

/// Every event arrived; each agent's in order. Returns (duplicates, problems).
fn check(seen: &[(u64, Instant)], events: u64, agents: u64) -> (usize, Vec<String>) {
    let mut problems = Vec::new();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut got = vec![false; events as usize];
    let mut duplicates = 0;
    for &(index, _) in seen {
        let Some(slot) = got.get_mut(index as usize) else {
            problems.push(format!("unknown event {index}"));
            continue;
        };
        if *slot {
            duplicates += 1;
            continue;
        }
        *slot = true;
        let agent = index % agents;
        if let Some(prev) = last.insert(agent, index) {
            if prev > index {
                problems.push(format!("agent {agent}: event {index} after {prev}"));
            }
        }
    }
    let lost = got.iter().filter(|g| !**g).count();
    if lost > 0 {
        problems.push(format!("{lost} events never arrived"));
    }
    (duplicates, problems)
}

async fn wait_for(seen: &Seen, events: u64, bound: Duration) -> Option<Instant> {
    let deadline = Instant::now() + bound;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    loop {
        tick.tick().await;
        let s = seen.lock().expect("seen");
        if s.len() as u64 >= events {
            return s.last().map(|(_, at)| *at);
        }
        drop(s);
        if Instant::now() > deadline {
            return None;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// Phase 1: a committed backlog, loaded at start-up and delivered.
async fn backlog(dir: &std::path::Path, events: u64, agents: u64, batch: u64) -> Vec<String> {
    let (addr, seen) = start_receiver();
    let (store, _) = Store::open(&dir.join("backlog.db")).expect("store");
    let start = Instant::now();
    let mut index = 0;
    while index < events {
        let writes: Vec<Write> = (index..(index + batch).min(events))
            .map(|i| Write::Outbox(OutboxWrite::Enqueue(Box::new(delivery(i, i % agents)))))
            .collect();
        index += writes.len() as u64;
        store.commit(writes).await.expect("commit");
    }
    let committed = start.elapsed();
    println!(
        "backlog: {events} events over {agents} agents committed in {:.2} s ({:.0} events/s, {batch} a transaction)",
        committed.as_secs_f64(),
        events as f64 / committed.as_secs_f64()
    );

    let start = Instant::now();
    let pending = store.outbox_pending().await.expect("pending");
    let (tx, rx) = mpsc::unbounded_channel();
    let (task, _handle) =
        OutboxTask::new(&settings(addr), store.clone(), pending, rx).expect("task");
    let task = tokio::spawn(task.run());
    let Some(last) = wait_for(&seen, events, Duration::from_secs(600)).await else {
        return vec![format!(
            "backlog: only {} of {events} arrived",
            seen.lock().expect("seen").len()
        )];
    };
    // The task commits its last deliveries and stops once its input closes.
    drop(tx);
    task.await.expect("task").expect("store");
    let done = start.elapsed();
    let arrived = last.duration_since(start);
    println!(
        "backlog: delivered in {:.2} s = {:.0} events/s (last arrival at {:.2} s = {:.0} events/s)",
        done.as_secs_f64(),
        events as f64 / done.as_secs_f64(),
        arrived.as_secs_f64(),
        events as f64 / arrived.as_secs_f64()
    );
    let seen = seen.lock().expect("seen").clone();
    let (duplicates, mut problems) = check(&seen, events, agents);
    let left = store.outbox_pending().await.expect("pending").len();
    if left > 0 {
        problems.push(format!("backlog: {left} rows still in the outbox"));
    }
    println!(
        "backlog: {duplicates} duplicates, {left} rows left, order {}",
        if problems.is_empty() {
            "kept"
        } else {
            "BROKEN"
        }
    );
    problems
}

/// Phase 2: events committed at `rate` while the task delivers them.
async fn live(dir: &std::path::Path, rate: u64, secs: u64, agents: u64) -> Vec<String> {
    let (addr, seen) = start_receiver();
    let (store, _) = Store::open(&dir.join("live.db")).expect("store");
    let (tx, rx) = mpsc::unbounded_channel();
    let (task, _handle) =
        OutboxTask::new(&settings(addr), store.clone(), Vec::new(), rx).expect("task");
    let task = tokio::spawn(task.run());

    let events = rate * secs;
    let per_tick = (rate / 100).max(1);
    let mut committed_at: Vec<Instant> = Vec::with_capacity(events as usize);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let start = Instant::now();
    let mut index = 0;
    while index < events {
        tick.tick().await;
        let batch: Vec<Delivery> = (index..(index + per_tick).min(events))
            .map(|i| delivery(i, i % agents))
            .collect();
        index += batch.len() as u64;
        let writes = batch
            .iter()
            .map(|d| Write::Outbox(OutboxWrite::Enqueue(Box::new(d.clone()))))
            .collect();
        store.commit(writes).await.expect("commit");
        let now = Instant::now();
        committed_at.extend(batch.iter().map(|_| now));
        let _ = tx.send(batch);
    }
    let offered = start.elapsed();
    let Some(last) = wait_for(&seen, events, Duration::from_secs(120)).await else {
        return vec![format!(
            "live: only {} of {events} arrived",
            seen.lock().expect("seen").len()
        )];
    };
    drop(tx);
    task.await.expect("task").expect("store");
    let seen = seen.lock().expect("seen").clone();
    let mut latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(i, at)| Some(at.duration_since(*committed_at.get(*i as usize)?)))
        .collect();
    latencies.sort();
    let span = last.duration_since(start);
    println!(
        "live: {events} events offered at {rate}/s over {:.2} s; all arrived within {:.2} s = {:.0} events/s; commit to arrival p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        offered.as_secs_f64(),
        span.as_secs_f64(),
        events as f64 / span.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        percentile(&latencies, 1.0).as_secs_f64() * 1e3,
    );
    let (duplicates, mut problems) = check(&seen, events, agents);
    let left = store.outbox_pending().await.expect("pending").len();
    if left > 0 {
        problems.push(format!("live: {left} rows still in the outbox"));
    }
    println!(
        "live: {duplicates} duplicates, {left} rows left, order {}",
        if problems.is_empty() {
            "kept"
        } else {
            "BROKEN"
        }
    );
    problems
}

fn main() -> ExitCode {
    let events = env_u64("EVENTS", 20_000);
    let agents = env_u64("AGENTS", 100).max(1);
    let batch = env_u64("BATCH", 100).max(1);
    let rate = env_u64("RATE", 2_000).max(1);
    let secs = env_u64("LIVE_SECS", 5).max(1);
    let base = std::env::var_os("NOTIFY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base).expect("bench folder");
    // Two workers, like the switch on this 2-core machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let problems = rt.block_on(async {
        let mut problems = backlog(dir.path(), events, agents, batch).await;
        problems.extend(live(dir.path(), rate, secs, agents).await);
        problems
    });
    if problems.is_empty() {
        println!("ok: none lost, every agent's events in order");
        ExitCode::SUCCESS
    } else {
        for p in problems.iter().take(20) {
            println!("FAIL: {p}");
        }
        ExitCode::FAILURE
    }
}
