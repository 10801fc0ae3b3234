//! The load: callback creations sent over keep-alive connections, either
//! open loop (request `i` is due at `start + i / rate`, whichever
//! connection is free takes it, and its latency counts from that due time,
//! so a request that waited for a free connection is charged the wait) or
//! closed loop (every connection back to back, for the dispatch phase).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::Conn;
use super::switch::{API_KEY, QUEUE};

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `n`th distinct, valid French mobile number (+33 61 then 7 digits):
/// every creation has its own, so none is merged into another.
pub fn number(n: u64) -> String {
    format!("+3361{:07}", n % 10_000_000)
}

pub fn create_body(n: u64, scheduled: Option<&str>) -> String {
    match scheduled {
        Some(at) => format!(
            r#"{{"queueId":"{QUEUE}","callbackNumbers":["{}"],"callbackScheduledTime":"{at}"}}"#,
            number(n)
        ),
        None => format!(
            r#"{{"queueId":"{QUEUE}","callbackNumbers":["{}"]}}"#,
            number(n)
        ),
    }
}

/// One request's outcome.
pub struct Sample {
    /// HTTP status; 0 when the exchange itself failed.
    pub status: u16,
    pub latency: Duration,
    /// When it was answered.
    pub done: Instant,
    /// The created callback (201 only): its id and state.
    pub created: Option<(String, String)>,
    /// The first bytes of an unexpected answer, for the report.
    pub error: Option<String>,
}

/// What one run of requests produced.
pub struct Run {
    pub samples: Vec<Sample>,
    pub started: Instant,
}

impl Run {
    pub fn created(&self) -> impl Iterator<Item = &(String, String)> {
        self.samples.iter().filter_map(|s| s.created.as_ref())
    }

    pub fn failures(&self) -> usize {
        self.samples.iter().filter(|s| s.status != 201).count()
    }

    pub fn first_error(&self) -> Option<&str> {
        self.samples.iter().find_map(|s| s.error.as_deref())
    }

    /// 201s per second from the start to the last answer.
    pub fn achieved_per_second(&self) -> f64 {
        let last = self.samples.iter().map(|s| s.done).max();
        let secs = last.map_or(0.0, |l| l.duration_since(self.started).as_secs_f64());
        let ok = self.samples.len() - self.failures();
        if secs > 0.0 {
            ok as f64 / secs
        } else {
            0.0
        }
    }

    /// (p50, p99, max) latency in milliseconds.
    pub fn percentiles_ms(&self) -> (f64, f64, f64) {
        let mut l: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        l.sort();
        let at = |q: f64| {
            if l.is_empty() {
                return 0.0;
            }
            let i = ((l.len() as f64 * q).ceil() as usize).clamp(1, l.len()) - 1;
            l[i].as_secs_f64() * 1e3
        };
        (at(0.50), at(0.99), at(1.0))
    }
}

/// Opens `n` connections up front, so that connecting is not timed.
pub async fn connect_all(addr: SocketAddr, n: usize) -> std::io::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr, API_KEY, REQUEST_TIMEOUT).await?);
    }
    Ok(conns)
}

/// How requests are paced.
#[derive(Clone, Copy)]
pub enum Pace {
    /// Request `i` is due at `i / rate` seconds after the start.
    Open { rate: f64 },
    /// As fast as the connections go.
    Closed,
}

/// Sends `count` creations numbered `first..first + count` over `conns`.
pub async fn run(
    conns: Vec<Conn>,
    first: u64,
    count: u64,
    pace: Pace,
    scheduled: Option<String>,
) -> (Run, Vec<Conn>) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let scheduled = Arc::new(scheduled);
    let workers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            let (next, scheduled) = (next.clone(), scheduled.clone());
            tokio::spawn(worker(conn, next, started, first, count, pace, scheduled))
        })
        .collect();
    let mut samples = Vec::with_capacity(count as usize);
    let mut conns = Vec::new();
    for w in workers {
        match w.await {
            Ok((conn, mut mine)) => {
                samples.append(&mut mine);
                conns.push(conn);
            }
            Err(e) => eprintln!("load worker failed: {e}"),
        }
    }
    (Run { samples, started }, conns)
}

async fn worker(
    mut conn: Conn,
    next: Arc<AtomicU64>,
    started: Instant,
    first: u64,
    count: u64,
    pace: Pace,
    scheduled: Arc<Option<String>>,
) -> (Conn, Vec<Sample>) {
    let mut samples = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        let due = match pace {
            Pace::Open { rate } => {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                due
            }
            Pace::Closed => Instant::now(),
        };
        let body = create_body(first + i, scheduled.as_deref());
        let answer = conn.request("POST", "/v1/callbacks", Some(&body)).await;
        let done = Instant::now();
        let mut sample = Sample {
            status: 0,
            latency: done.duration_since(due),
            done,
            created: None,
            error: None,
        };
        match answer {
            Ok(r) => {
                sample.status = r.status;
                if r.status == 201 {
                    sample.created = created(&r.body);
                    if sample.created.is_none() {
                        sample.status = 0;
                        sample.error = Some("201 without an id and state".into());
                    }
                } else {
                    let text = String::from_utf8_lossy(&r.body);
                    sample.error = Some(format!("{}: {}", r.status, truncate(&text, 300)));
                }
            }
            Err(e) => sample.error = Some(e.to_string()),
        }
        samples.push(sample);
    }
    (conn, samples)
}

/// `(id, state)` from a created callback's JSON.
fn created(body: &[u8]) -> Option<(String, String)> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = json.get("id")?.as_str()?.to_string();
    let state = json.get("state")?.as_str()?.to_string();
    Some((id, state))
}

pub fn truncate(text: &str, n: usize) -> &str {
    match text.char_indices().nth(n) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
