//! Media relay benchmark (a script that prints figures, not a timed test).
//!
//! For each step N: open N calls (two legs each) on loopback in one
//! `MediaEngine`, bridge them, drive both directions of every call at
//! 50 packets/s from the project's RTP generator (its own threads), and print
//! packets/s relayed, CPU used by the relay thread (`sb-media`, from
//! `/proc/self/task/*/schedstat`), packets per second per core, loss and
//! resident memory per call.
//!
//! Environment: `BENCH_CALLS` (default `250,500,1000,2000,2500`),
//! `BENCH_SECONDS` measured window per step (default 5), `BENCH_WARMUP`
//! seconds before measuring (default 1). Run through `scripts/bench-media`.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchback::media::bench::{
    close_legs, grow_buffers, machine_cpu, open_legs, rss_bytes, thread_cpu, udp_rcvbuf_errors,
    Generator,
};
use switchback::media::{LegId, MediaCommand, MediaEngine, PortPool};
use tokio::sync::mpsc::unbounded_channel;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn relayed(engine: &MediaEngine, legs: &[LegId]) -> u64 {
    legs.iter()
        .filter_map(|l| engine.stats(*l))
        .map(|s| s.packets_out)
        .sum()
}

fn main() {
    let steps: Vec<usize> = std::env::var("BENCH_CALLS")
        .unwrap_or_else(|_| "250,500,1000,2000,2500".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let window = Duration::from_secs_f64(env_f64("BENCH_SECONDS", 5.0));
    let warmup = Duration::from_secs_f64(env_f64("BENCH_WARMUP", 1.0));

    let (tx, mut events) = unbounded_channel();
    let engine = MediaEngine::start(tx);
    let mut pool = PortPool::new(20000, 60999);
    let mut next_leg = 0u64;

    println!(
        "{:>6} {:>12} {:>10} {:>9} {:>14} {:>9} {:>11} {:>12}",
        "calls",
        "relayed/s",
        "relay cpu",
        "cpu %",
        "pkts/s/core",
        "loss %",
        "seq loss %",
        "RSS/call"
    );
    for n in steps {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("generator socket");
        grow_buffers(&sock, 64 << 20);
        let gen_addr = sock.local_addr().unwrap();
        let rss0 = rss_bytes();
        let drops0 = udp_rcvbuf_errors();
        let legs: Vec<LegId> = (0..2 * n as u64).map(|i| LegId(next_leg + i)).collect();
        next_leg += 2 * n as u64;
        let addrs = open_legs(&engine, &mut events, &mut pool, &legs, gen_addr).expect("legs open");
        for pair in legs.chunks(2) {
            engine.command(MediaCommand::Bridge {
                a: pair[0],
                b: pair[1],
            });
        }

        let g = Generator::start(
            Arc::new(sock),
            addrs.clone(),
            warmup + window + Duration::from_millis(200),
        )
        .expect("generator");
        std::thread::sleep(warmup);
        let (t0, cpu0, out0) = (
            Instant::now(),
            thread_cpu("sb-media"),
            relayed(&engine, &legs),
        );
        let gen0 = thread_cpu("rtpgen-tx") + thread_cpu("rtpgen-rx");
        let load0 = machine_cpu();
        let (sent0, recv0) = (
            g.sent.load(Ordering::Relaxed),
            g.received.load(Ordering::Relaxed),
        );
        std::thread::sleep(window);
        let (cpu1, out1) = (thread_cpu("sb-media"), relayed(&engine, &legs));
        let gen1 = thread_cpu("rtpgen-tx") + thread_cpu("rtpgen-rx");
        let load1 = machine_cpu();
        let wall = t0.elapsed().as_secs_f64();
        let (sent1, recv1) = (
            g.sent.load(Ordering::Relaxed),
            g.received.load(Ordering::Relaxed),
        );
        let rss1 = rss_bytes();
        let sent_total = g.sent.clone();
        let report = g.finish(Duration::from_millis(500)).expect("generator run");
        let drops = udp_rcvbuf_errors() - drops0;
        let min_stream = report
            .streams
            .values()
            .map(|s| s.received)
            .min()
            .unwrap_or(0);

        let rate = (out1 - out0) as f64 / wall;
        let cpu = (cpu1 - cpu0).as_secs_f64();
        let frac = cpu / wall;
        // End-to-end loss over the whole run (every packet has drained).
        let sent_all = sent_total.load(Ordering::Relaxed);
        let loss =
            100.0 * sent_all.saturating_sub(report.received()) as f64 / sent_all.max(1) as f64;
        let seq_loss =
            100.0 * report.lost() as f64 / (report.received() + report.lost()).max(1) as f64;
        let rss_per_call = rss1.saturating_sub(rss0) as f64 / n as f64 / 1024.0;
        println!(
            "{:>6} {:>12.0} {:>9.2}s {:>8.1}% {:>14.0} {:>8.4}% {:>10.4}% {:>9.1} KiB",
            n,
            rate,
            cpu,
            frac * 100.0,
            rate / frac.max(1e-9),
            loss,
            seq_loss,
            rss_per_call
        );
        println!(
            "        sent {:.0}/s, received {:.0}/s in the window; {} sources of {}, fewest packets from one {}; kernel UDP buffer drops {}; generator CPU {:.0} %; machine busy {:.0} % of {} cores",
            (sent1 - sent0) as f64 / wall,
            (recv1 - recv0) as f64 / wall,
            report.streams.len(),
            2 * n,
            min_stream,
            drops,
            100.0 * (gen1 - gen0).as_secs_f64() / wall,
            100.0 * (load1.0 - load0.0) as f64 / (load1.1 - load0.1).max(1) as f64,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        );

        close_legs(&engine, &legs).expect("legs close");
        for a in addrs {
            pool.release(a.port());
        }
    }
}
