//! The two-party relay against its anchor, rtpengine, in the same run (a
//! script that prints figures, not a timed test; issue 14).
//!
//! For each step N, interleaved so both meet the same machine load: our
//! relay (one in-process `MediaEngine`, N bridged calls) and then rtpengine
//! (its own process, userspace forwarding, N calls created over its ng
//! control protocol with an offer from leg A and an answer from leg B),
//! each relaying the same generated G.711 streams: both directions of every
//! call at one 172-byte PCMU packet per `BENCH_PTIME_MS` (20), from the
//! project's generator (`switchback::media::bench::Generator`, its own two
//! threads, one socket standing for every leg's phone). Measured over the
//! same window for both: packets/s relayed (received by the generator),
//! the relay's CPU (our `sb-media` thread from /proc/self/task; every
//! thread of rtpengine from /proc/PID/task), packets/s per core (relayed /
//! CPU share), loss end to end (sent - received, after a drain) and by
//! sequence number, resident memory per call. Then the summary: the highest
//! N each held (< 0.01 % loss by both measures, every stream heard, at
//! least 97 % of what was sent relayed within the window, and the generator
//! sending at least 98 % of the offered rate: on this machine it shares the
//! cores, and a step it cannot drive whole is no proof), the
//! packets/s per core of each at the highest N both held and the ratio
//! ours/rtpengine (target >= 1.2), and every limit a figure hit (the open
//! file limit, the generator falling short of the offered rate).
//!
//! Threads: our relay is one thread; rtpengine gets `RTPENGINE_THREADS`
//! worker threads (default 1, like ours; its default is one per core) plus
//! its housekeeping threads, all counted.
//!
//! Environment: `BENCH_CALLS` (default `250,500,1000,1500,2000,2500`),
//! `BENCH_SECONDS` measured window (5), `BENCH_WARMUP` (1),
//! `BENCH_PTIME_MS` (20), `RTPENGINE_THREADS` (1), `RTPENGINE_BIN`
//! (`rtpengine`). Run through `scripts/bench-relay-anchor`, which raises the
//! open-file limit. A missing rtpengine fails the run, saying so.

#[path = "relay_anchor/ours.rs"]
mod ours;
#[path = "relay_anchor/rtpengine.rs"]
mod rtpengine;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchback::media::bench::{
    grow_buffers, machine_cpu, rss_bytes, thread_cpu, udp_rcvbuf_errors, Generator,
};

/// Loss under which a step counts as held, percent.
const HELD_LOSS: f64 = 0.01;
/// The generator is short when it sent less than this share of the offer.
const GEN_SHORT: f64 = 0.98;
/// The relay is behind when it relayed less than this share of what was
/// sent in the window (its queues grew, even if a drain recovers them).
const BEHIND: f64 = 0.97;
/// Port ranges: ours below the ephemeral range (32768+), rtpengine's above
/// our top; they never hold ports at the same time anyway.
const OURS_PORTS: (u16, u16) = (10000, 31999);
const RTPENGINE_PORTS: (u16, u16) = (34000, 60999);

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy)]
struct Run {
    ptime: Duration,
    warmup: Duration,
    window: Duration,
}

/// One target's figures at one step.
#[derive(Clone, Copy, Default)]
struct Measured {
    offered: f64,
    sent: f64,
    relayed: f64,
    cpu: f64,
    wall: f64,
    loss: f64,
    seq_loss: f64,
    streams: usize,
    min_stream: u64,
    drops: u64,
    gen_cpu: f64,
    busy: f64,
    /// One-minute load average at the end of the window.
    load: f64,
    rss_per_call: f64,
}

impl Measured {
    fn share(&self) -> f64 {
        self.cpu / self.wall
    }
    fn per_core(&self) -> f64 {
        self.relayed / self.share().max(1e-9)
    }
    fn generator_short(&self) -> bool {
        self.sent < GEN_SHORT * self.offered
    }
    /// Nothing lost, every stream heard.
    fn lossless(&self, n: usize) -> bool {
        self.loss < HELD_LOSS && self.seq_loss < HELD_LOSS && self.streams == 2 * n
    }
    fn behind(&self) -> bool {
        self.relayed < BEHIND * self.sent
    }
    /// Lossless and keeping up at the offered rate: a step the generator
    /// could not drive whole says nothing about N calls at that rate.
    fn held(&self, n: usize) -> bool {
        self.lossless(n) && !self.behind() && !self.generator_short()
    }
}

enum Outcome {
    Ran(Measured),
    Limit(String),
}

/// Drive `dests` (stream i to `dests[i]`, every stream answered to `sock`)
/// for warmup + window and measure over the window.
fn drive(
    n: usize,
    sock: UdpSocket,
    dests: Vec<SocketAddr>,
    run: Run,
    relay_cpu: &dyn Fn() -> Duration,
    rss: &dyn Fn() -> u64,
    rss0: u64,
) -> Measured {
    let drops0 = udp_rcvbuf_errors();
    let streams = dests.len();
    let g = Generator::start_every(
        Arc::new(sock),
        dests,
        run.ptime,
        run.warmup + run.window + Duration::from_millis(200),
    )
    .expect("generator");
    std::thread::sleep(run.warmup);
    let gen_cpu = || thread_cpu("rtpgen-tx") + thread_cpu("rtpgen-rx");
    let (t0, cpu0, gen0, load0) = (Instant::now(), relay_cpu(), gen_cpu(), machine_cpu());
    let (sent0, recv0) = (
        g.sent.load(Ordering::Relaxed),
        g.received.load(Ordering::Relaxed),
    );
    std::thread::sleep(run.window);
    let (cpu1, gen1, load1) = (relay_cpu(), gen_cpu(), machine_cpu());
    let wall = t0.elapsed().as_secs_f64();
    let (sent1, recv1) = (
        g.sent.load(Ordering::Relaxed),
        g.received.load(Ordering::Relaxed),
    );
    let rss1 = rss();
    let sent_total = g.sent.clone();
    let report = g.finish(Duration::from_millis(500)).expect("generator run");
    let sent_all = sent_total.load(Ordering::Relaxed);
    Measured {
        offered: streams as f64 / run.ptime.as_secs_f64(),
        sent: (sent1 - sent0) as f64 / wall,
        relayed: (recv1 - recv0) as f64 / wall,
        cpu: (cpu1 - cpu0).as_secs_f64(),
        wall,
        loss: 100.0 * sent_all.saturating_sub(report.received()) as f64 / sent_all.max(1) as f64,
        seq_loss: 100.0 * report.lost() as f64 / (report.received() + report.lost()).max(1) as f64,
        streams: report.streams.len(),
        min_stream: report
            .streams
            .values()
            .map(|s| s.received)
            .min()
            .unwrap_or(0),
        drops: udp_rcvbuf_errors() - drops0,
        gen_cpu: 100.0 * (gen1 - gen0).as_secs_f64() / wall,
        busy: 100.0 * (load1.0 - load0.0) as f64 / (load1.1 - load0.1).max(1) as f64,
        load: std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0),
        rss_per_call: rss1.saturating_sub(rss0) as f64 / n as f64 / 1024.0,
    }
}

fn generator_socket() -> (UdpSocket, SocketAddr) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("generator socket");
    grow_buffers(&sock, 64 << 20);
    let addr = sock.local_addr().expect("generator address");
    (sock, addr)
}

fn step_ours(ours: &mut ours::Ours, n: usize, run: Run) -> Outcome {
    let (sock, gen_addr) = generator_socket();
    let rss0 = rss_bytes();
    let calls = match ours.open(n, gen_addr) {
        Ok(c) => c,
        Err(why) => return Outcome::Limit(why),
    };
    let m = drive(
        n,
        sock,
        calls.addrs.clone(),
        run,
        &|| thread_cpu("sb-media"),
        &rss_bytes,
        rss0,
    );
    ours.close(calls);
    Outcome::Ran(m)
}

fn step_rtpengine(rtpe: &mut rtpengine::Rtpengine, step: usize, n: usize, run: Run) -> Outcome {
    let (sock, gen_addr) = generator_socket();
    let rss0 = rtpe.rss();
    let dests = match rtpe.open(step, n, gen_addr) {
        Ok(d) => d,
        Err(why) => return Outcome::Limit(why),
    };
    let m = drive(n, sock, dests, run, &|| rtpe.cpu(), &|| rtpe.rss(), rss0);
    rtpe.close(step, n);
    Outcome::Ran(m)
}

fn print_row(n: usize, who: &str, o: &Outcome) {
    match o {
        Outcome::Limit(why) => println!("{n:>6} {who:<10} not run: {why}"),
        Outcome::Ran(m) => {
            let mut notes = Vec::new();
            if !m.lossless(n) {
                notes.push("LOSS");
            }
            if m.behind() {
                notes.push("BEHIND");
            }
            if m.generator_short() {
                notes.push("GENERATOR SHORT");
            }
            println!(
                "{:>6} {:<10} {:>10.0} {:>10.0} {:>8.2}s {:>6.1}% {:>12.0} {:>8.4}% {:>9.4}% {:>7.1} KiB  {}",
                n,
                who,
                m.offered,
                m.relayed,
                m.cpu,
                100.0 * m.share(),
                m.per_core(),
                m.loss,
                m.seq_loss,
                m.rss_per_call,
                notes.join(", ")
            );
            println!(
                "{:>17} sent {:.0}/s; {} sources of {}, fewest packets from one {}; kernel UDP buffer drops {}; generator CPU {:.0} %; machine busy {:.0} %, load average {:.1}",
                "",
                m.sent,
                m.streams,
                2 * n,
                m.min_stream,
                m.drops,
                m.gen_cpu,
                m.busy,
                m.load
            );
        }
    }
}

/// The highest step `who` held, with its figures.
fn highest_held(rows: &[(usize, Outcome)]) -> Option<(usize, Measured)> {
    rows.iter()
        .filter_map(|(n, o)| match o {
            Outcome::Ran(m) if m.held(*n) => Some((*n, *m)),
            _ => None,
        })
        .max_by_key(|(n, _)| *n)
}

fn main() {
    let steps: Vec<usize> = std::env::var("BENCH_CALLS")
        .unwrap_or_else(|_| "250,500,1000,1500,2000,2500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let run = Run {
        ptime: Duration::from_millis(env_f64("BENCH_PTIME_MS", 20.0).max(1.0) as u64),
        window: Duration::from_secs_f64(env_f64("BENCH_SECONDS", 5.0)),
        warmup: Duration::from_secs_f64(env_f64("BENCH_WARMUP", 1.0)),
    };
    let threads = env_f64("RTPENGINE_THREADS", 1.0).max(1.0) as usize;

    let dir = tempfile::tempdir().expect("temporary directory");
    let mut rtpe = match rtpengine::Rtpengine::start(
        threads,
        RTPENGINE_PORTS.0,
        RTPENGINE_PORTS.1,
        dir.path(),
    ) {
        Ok(r) => r,
        Err(why) => panic!("the anchor cannot run: {why}"),
    };
    let mut ours = ours::Ours::start(OURS_PORTS.0, OURS_PORTS.1);
    let (_, fd_limit) = ours::fds();
    println!(
        "relay anchor: G.711 both ways at one packet per {} ms per stream, {:.0} s window after {:.0} s warm-up; \
         switchback: 1 relay thread (sb-media), {} sockets per call; rtpengine {} (pid {}): --num-threads={}, {} threads in all, userspace only; \
         open-file limit {} per process; {} cores shared with the generator",
        run.ptime.as_millis(),
        run.window.as_secs_f64(),
        run.warmup.as_secs_f64(),
        ours::FDS_PER_CALL,
        rtpe.version,
        rtpe.pid(),
        rtpe.threads,
        rtpe.thread_count(),
        fd_limit,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    println!(
        "{:>6} {:<10} {:>10} {:>10} {:>9} {:>7} {:>12} {:>9} {:>10} {:>11}  notes",
        "calls",
        "relay",
        "offered/s",
        "relayed/s",
        "cpu",
        "cpu %",
        "pkts/s/core",
        "loss %",
        "seq loss %",
        "RSS/call"
    );

    let mut ours_rows = Vec::new();
    let mut rtpe_rows = Vec::new();
    for (step, &n) in steps.iter().enumerate() {
        let o = step_ours(&mut ours, n, run);
        print_row(n, "switchback", &o);
        ours_rows.push((n, o));
        let r = step_rtpengine(&mut rtpe, step, n, run);
        print_row(n, "rtpengine", &r);
        rtpe_rows.push((n, r));
    }

    println!(
        "summary (held: < {HELD_LOSS} % loss end to end and by sequence, every stream heard, \
         >= {:.0} % of what was sent relayed within the window, the generator sending >= {:.0} % \
         of the offer):",
        100.0 * BEHIND,
        100.0 * GEN_SHORT
    );
    for (who, rows) in [("switchback", &ours_rows), ("rtpengine", &rtpe_rows)] {
        match highest_held(rows) {
            Some((n, m)) => println!(
                "  {who:<10} held {n} calls ({:.0} packets/s relayed, {:.0} per core, at {:.0} % of a core){}",
                m.relayed,
                m.per_core(),
                100.0 * m.share(),
                if Some(n) == rows.iter().map(|(n, _)| *n).max() {
                    " (the highest step run: it may hold more)"
                } else {
                    ""
                }
            ),
            None => println!("  {who:<10} held none of the steps"),
        }
        for (n, o) in rows.iter() {
            match o {
                Outcome::Limit(why) => println!("  {who:<10} LIMIT at {n} calls: {why}"),
                Outcome::Ran(m) if m.generator_short() => println!(
                    "  {who:<10} GENERATOR SHORT at {n} calls: sent {:.0}/s of {:.0}/s offered ({}; not counted as held)",
                    m.sent,
                    m.offered,
                    if m.lossless(*n) { "nothing lost" } else { "with loss" }
                ),
                Outcome::Ran(m) if m.lossless(*n) && m.behind() => println!(
                    "  {who:<10} BEHIND at {n} calls: relayed {:.0}/s of {:.0}/s sent in the window (nothing lost after the drain; not counted as held)",
                    m.relayed, m.sent
                ),
                Outcome::Ran(_) => {}
            }
        }
    }
    // Calls held, and packets/s per core where each was at its own best.
    if let (Some((na, a)), Some((nb, b))) = (highest_held(&ours_rows), highest_held(&rtpe_rows)) {
        let top = steps.iter().copied().max().unwrap_or(0);
        println!(
            "  CALLS HELD switchback/rtpengine: {}{:.2} ({na} / {nb}); packets/s per core at each one's highest held step: {:.2} ({:.0} / {:.0})",
            match (na == top, nb == top) {
                (true, true) => "both held the highest step run, so undecided: ",
                (true, false) => ">= ",
                _ => "",
            },
            na as f64 / nb as f64,
            a.per_core() / b.per_core().max(1e-9),
            a.per_core(),
            b.per_core()
        );
    }
    // Per-core figures where both held, and the ratio at the highest such N.
    let both: Vec<(usize, Measured, Measured)> = ours_rows
        .iter()
        .zip(&rtpe_rows)
        .filter_map(|((n, a), (_, b))| match (a, b) {
            (Outcome::Ran(a), Outcome::Ran(b)) if a.held(*n) && b.held(*n) => Some((*n, *a, *b)),
            _ => None,
        })
        .collect();
    for (n, a, b) in &both {
        println!(
            "  at {n:>5} calls both held: packets/s per core switchback {:.0}, rtpengine {:.0}, ratio {:.2}",
            a.per_core(),
            b.per_core(),
            a.per_core() / b.per_core().max(1e-9)
        );
    }
    match both.last() {
        Some((n, a, b)) => {
            let ratio = a.per_core() / b.per_core().max(1e-9);
            println!(
                "  RATIO switchback/rtpengine at {n} calls (the highest both held): {ratio:.2} (target >= 1.2: {})",
                if ratio >= 1.2 { "met" } else { "NOT met" }
            );
        }
        None => println!("  RATIO: no step held by both"),
    }
    // Warnings rtpengine logged (a per-packet complaint would skew its CPU).
    let warnings = rtpe.log_lines();
    if warnings > 0 {
        println!("rtpengine logged {warnings} warnings; {}", rtpe.log_tail());
    }
}
