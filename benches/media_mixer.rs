//! Conference mixer benchmark (a script that prints figures, not a timed
//! test), with the two-party relay measured in the same run beside it.
//!
//! 1. The mixer alone, in virtual time on this thread (no sockets): R
//!    three-party rooms (two PCMU members, one PCMA), every member sending a
//!    tone; the CPU per participant per 20 ms frame to place its packet in
//!    the jitter buffer (decode) and to mix and encode what it hears.
//! 2. The relay with N three-party rooms on loopback, driven by the
//!    project's RTP generator (3N streams at 50 packets/s, its own threads):
//!    the relay thread's CPU (`sb-media`, from schedstat), frames mixed per
//!    second, the share of frames mixed more than 10 ms after they were due
//!    (the mixer's own count; frames a room too far behind skipped count
//!    too), frames received back by the generator, and
//!    the CPU per participant per frame all included (receive, decode, mix,
//!    encode, send). A step "holds" when under 1 % of its frames are late
//!    and at least 99 % of the frames due reach the generator.
//! 3. The two-party relay at the same packet rate (3N/2 bridged calls, no
//!    decoding): packets relayed per second and per core, and the CPU per
//!    packet, so the two paths are compared on one machine in one run.
//!
//! Environment: `BENCH_ROOMS` (default `250,500,1000`), `BENCH_SECONDS`
//! measured window per step (default 5), `BENCH_WARMUP` (default 1),
//! `BENCH_MIXER_ROOMS` and `BENCH_MIXER_FRAMES` for part 1 (default 1000
//! rooms, 500 frames), `BENCH_ONLY=rooms` or `pairs` for one half of the
//! relay runs (to profile it). Run through `scripts/bench-mixer`.

use std::net::UdpSocket;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchback::codec::G711;
use switchback::media::bench::{
    close_legs, grow_buffers, machine_cpu, open_legs, own_cpu, thread_cpu, udp_rcvbuf_errors,
    Generator,
};
use switchback::media::mixer::{LegState, Mixer, MixerStats, FRAME, FRAME_SAMPLES};
use switchback::media::{DtmfRoute, LegId, MediaCommand, MediaEngine, MediaEvent, PortPool, Role};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn tone_frames(law: G711, freq: f64, n: usize) -> Vec<[u8; FRAME_SAMPLES]> {
    (0..n)
        .map(|k| {
            let mut p = [0u8; FRAME_SAMPLES];
            for (i, b) in p.iter_mut().enumerate() {
                let t = (k * FRAME_SAMPLES + i) as f64 / 8000.0;
                *b = law.encode((8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16);
            }
            p
        })
        .collect()
}

/// Part 1: (push ns, mix ns) per participant per frame.
fn mixer_alone(rooms: usize, frames: usize) -> (f64, f64) {
    let t0 = Instant::now();
    let mut m = Mixer::new();
    let laws = [G711::Pcmu, G711::Pcma, G711::Pcmu];
    for r in 0..rooms {
        let members: Vec<_> = (0..3)
            .map(|i| {
                let state = LegState {
                    law: laws[i],
                    ..LegState::default()
                };
                (LegId((3 * r + i) as u64), Role::Party, state)
            })
            .collect();
        m.set_room(&format!("r{r}"), &members, DtmfRoute::Others, t0);
    }
    let tones: Vec<Vec<[u8; FRAME_SAMPLES]>> = [400.0, 1000.0, 1600.0]
        .iter()
        .zip(laws)
        .map(|(&f, law)| tone_frames(law, f, 50))
        .collect();
    let (mut push, mut mix) = (Duration::ZERO, Duration::ZERO);
    let mut sent = 0usize;
    for f in 0..frames {
        let c0 = own_cpu();
        for r in 0..rooms {
            for (i, law) in laws.iter().enumerate() {
                let leg = LegId((3 * r + i) as u64);
                let payload = &tones[i][f % 50];
                m.push_audio(leg, i as u32, (f * FRAME_SAMPLES) as u32, *law, payload);
            }
        }
        let c1 = own_cpu();
        // After every phase of frame f is due.
        let at = t0 + FRAME * (f as u32 + 1) + FRAME - Duration::from_millis(1);
        sent += m.tick(at).len();
        let c2 = own_cpu();
        push += c1 - c0;
        mix += c2 - c1;
    }
    let per = (3 * rooms * frames) as f64;
    assert_eq!(
        sent,
        3 * rooms * frames,
        "one frame per participant per tick"
    );
    (push.as_nanos() as f64 / per, mix.as_nanos() as f64 / per)
}

/// One measured step through the relay.
struct Step {
    cpu_frac: f64,
    /// Relay-thread CPU per frame mixed (rooms) or per packet relayed, ns.
    ns_per: f64,
    /// Packets (two-party) or frames (rooms) sent by the relay per second.
    out_rate: f64,
    /// Of the frames mixed in the window, the share mixed late (rooms).
    late: f64,
    /// Received by the generator over expected, in the window.
    delivered: f64,
    machine_busy: f64,
    rcvbuf_drops: u64,
    /// CPU share of the generator's two threads.
    gen_frac: f64,
    /// The mixer's counters over the window (rooms).
    mix: MixerStats,
}

fn sent_packets(engine: &MediaEngine, legs: &[LegId]) -> u64 {
    legs.iter()
        .filter_map(|l| engine.stats(*l))
        .map(|s| s.packets_out)
        .sum()
}

/// Open `legs_n` legs, group them (rooms of 3, or bridges of 2), drive
/// them from the generator and measure.
#[allow(clippy::too_many_arguments)]
fn run(
    engine: &MediaEngine,
    events: &mut UnboundedReceiver<MediaEvent>,
    pool: &mut PortPool,
    next_leg: &mut u64,
    legs_n: usize,
    rooms: bool,
    warmup: Duration,
    window: Duration,
) -> Step {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("generator socket");
    grow_buffers(&sock, 64 << 20);
    let gen_addr = sock.local_addr().expect("generator address");
    let legs: Vec<LegId> = (0..legs_n as u64).map(|i| LegId(*next_leg + i)).collect();
    *next_leg += legs_n as u64;
    let addrs = open_legs(engine, events, pool, &legs, gen_addr).expect("legs open");
    if rooms {
        for (i, room) in legs.chunks(3).enumerate() {
            engine.command(MediaCommand::Mix {
                room: format!("bench-{}-{i}", legs[0].0),
                members: room.iter().map(|&l| (l, Role::Party)).collect(),
                dtmf: DtmfRoute::Others,
            });
        }
    } else {
        for pair in legs.chunks(2) {
            engine.command(MediaCommand::Bridge {
                a: pair[0],
                b: pair[1],
            });
        }
    }
    let drops0 = udp_rcvbuf_errors();
    let g = Generator::start(
        Arc::new(sock),
        addrs.clone(),
        warmup + window + Duration::from_millis(200),
    )
    .expect("generator");
    std::thread::sleep(warmup);
    let gen0 = thread_cpu("rtpgen-tx") + thread_cpu("rtpgen-rx");
    let (t0, cpu0, mix0, out0, recv0, load0) = (
        Instant::now(),
        thread_cpu("sb-media"),
        engine.mixer_stats(),
        sent_packets(engine, &legs),
        g.received.load(Ordering::Relaxed),
        machine_cpu(),
    );
    std::thread::sleep(window);
    let gen1 = thread_cpu("rtpgen-tx") + thread_cpu("rtpgen-rx");
    let (wall, cpu1, mix1, out1, recv1, load1) = (
        t0.elapsed().as_secs_f64(),
        thread_cpu("sb-media"),
        engine.mixer_stats(),
        sent_packets(engine, &legs),
        g.received.load(Ordering::Relaxed),
        machine_cpu(),
    );
    let _ = g.finish(Duration::from_millis(300)).expect("generator run");
    let drops = udp_rcvbuf_errors() - drops0;
    if rooms {
        for (i, _) in legs.chunks(3).enumerate() {
            engine.command(MediaCommand::Mix {
                room: format!("bench-{}-{i}", legs[0].0),
                members: Vec::new(),
                dtmf: DtmfRoute::Others,
            });
        }
    }
    close_legs(engine, &legs).expect("legs close");
    for a in addrs {
        pool.release(a.port());
    }
    let frames = (mix1.frames - mix0.frames) as f64;
    let expected = legs_n as f64 * 50.0 * wall;
    let cpu_ns = (cpu1 - cpu0).as_nanos() as f64;
    let done = if rooms { frames } else { (out1 - out0) as f64 };
    Step {
        ns_per: cpu_ns / done.max(1.0),
        cpu_frac: (cpu1 - cpu0).as_secs_f64() / wall,
        out_rate: (out1 - out0) as f64 / wall,
        // A frame skipped by a room too far behind counts as late too.
        late: if rooms {
            let skipped = (mix1.skipped_frames - mix0.skipped_frames) as f64;
            ((mix1.late_frames - mix0.late_frames) as f64 + skipped) / (frames + skipped).max(1.0)
        } else {
            0.0
        },
        delivered: (recv1 - recv0) as f64 / expected,
        machine_busy: (load1.0 - load0.0) as f64 / (load1.1 - load0.1).max(1) as f64,
        rcvbuf_drops: drops,
        gen_frac: (gen1 - gen0).as_secs_f64() / wall,
        mix: MixerStats {
            frames: mix1.frames - mix0.frames,
            late_frames: mix1.late_frames - mix0.late_frames,
            skipped_frames: mix1.skipped_frames - mix0.skipped_frames,
            late_packets: mix1.late_packets - mix0.late_packets,
            resyncs: mix1.resyncs - mix0.resyncs,
            concealed: mix1.concealed - mix0.concealed,
            ..mix1
        },
    }
}

fn main() {
    let steps: Vec<usize> = std::env::var("BENCH_ROOMS")
        .unwrap_or_else(|_| "250,500,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let window = Duration::from_secs_f64(env_f64("BENCH_SECONDS", 5.0));
    let warmup = Duration::from_secs_f64(env_f64("BENCH_WARMUP", 1.0));
    let alone_rooms = env_f64("BENCH_MIXER_ROOMS", 1000.0) as usize;
    let alone_frames = env_f64("BENCH_MIXER_FRAMES", 500.0) as usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // `rooms` or `pairs` runs one half only (for profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();

    let (push, mix) = mixer_alone(alone_rooms, alone_frames);
    let per = push + mix;
    println!(
        "mixer alone ({alone_rooms} three-party rooms, PCMU+PCMA, {alone_frames} frames, one thread, no sockets):"
    );
    println!(
        "  {per:.0} ns per participant per 20 ms frame ({push:.0} ns jitter buffer and decode, {mix:.0} ns mix and encode): {:.0} three-party rooms per core by the mixing alone",
        20e6 / (3.0 * per)
    );

    let (tx, mut events) = unbounded_channel();
    let engine = MediaEngine::start(tx);
    let mut pool = PortPool::new(20000, 60999);
    let mut next_leg = 0u64;

    println!();
    println!(
        "relay, same run, {cores} cores shared with the generator (and anything else running):"
    );
    println!(
        "{:>6} {:>10} {:>11} {:>10} {:>9} {:>10} {:>11} {:>13} {:>12} {:>6}",
        "rooms",
        "legs",
        "frames/s",
        "relay cpu",
        "late %",
        "deliv. %",
        "ns/part/fr",
        "rooms/core",
        "machine %",
        "holds"
    );
    let mut best_rooms = None;
    let mut room_rows = Vec::new();
    for &n in steps.iter().filter(|_| only != "pairs") {
        let s = run(
            &engine,
            &mut events,
            &mut pool,
            &mut next_leg,
            3 * n,
            true,
            warmup,
            window,
        );
        // Every participant gets one frame per 20 ms: a core holds
        // 20 ms / (3 x the cost of one) rooms at that cost.
        let ns_per = s.ns_per;
        let holds = s.late < 0.01 && s.delivered >= 0.99;
        if holds {
            best_rooms = Some(n);
        }
        println!(
            "{:>6} {:>10} {:>11.0} {:>9.1}% {:>8.3}% {:>9.2}% {:>11.0} {:>13.0} {:>11.0}% {:>6}",
            n,
            3 * n,
            s.out_rate,
            100.0 * s.cpu_frac,
            100.0 * s.late,
            100.0 * s.delivered,
            ns_per,
            20e6 / (3.0 * ns_per.max(1.0)),
            100.0 * s.machine_busy,
            if holds { "yes" } else { "no" },
        );
        let m = s.mix;
        println!(
            "       generator CPU {:.0} %; in the window: {} frames mixed, {} late, {} skipped, {} late packets, {} re-anchored streams, {} concealed; latest tick so far {:.1} ms after due",
            100.0 * s.gen_frac,
            m.frames,
            m.late_frames,
            m.skipped_frames,
            m.late_packets,
            m.resyncs,
            m.concealed,
            m.max_lateness_us as f64 / 1000.0
        );
        if s.rcvbuf_drops > 0 {
            println!("       kernel UDP receive-buffer drops: {}", s.rcvbuf_drops);
        }
        room_rows.push((n, ns_per));
    }

    let mut pair_rows = Vec::new();
    println!();
    println!("two-party relay at the same packet rates (no decoding):");
    println!(
        "{:>6} {:>10} {:>11} {:>10} {:>14} {:>11} {:>10} {:>12}",
        "calls",
        "legs",
        "relayed/s",
        "relay cpu",
        "pkts/s/core",
        "ns/packet",
        "deliv. %",
        "machine %"
    );
    for &n in steps.iter().filter(|_| only != "rooms") {
        let calls = 3 * n / 2;
        let s = run(
            &engine,
            &mut events,
            &mut pool,
            &mut next_leg,
            2 * calls,
            false,
            warmup,
            window,
        );
        let per_core = 1e9 / s.ns_per.max(1.0);
        pair_rows.push(s.ns_per);
        println!(
            "{:>6} {:>10} {:>11.0} {:>9.1}% {:>14.0} {:>11.0} {:>9.2}% {:>11.0}%",
            calls,
            2 * calls,
            s.out_rate,
            100.0 * s.cpu_frac,
            per_core,
            s.ns_per,
            100.0 * s.delivered,
            100.0 * s.machine_busy,
        );
        println!("       generator CPU {:.0} %", 100.0 * s.gen_frac);
        if s.rcvbuf_drops > 0 {
            println!("       kernel UDP receive-buffer drops: {}", s.rcvbuf_drops);
        }
    }
    println!();
    for ((n, room_ns), pair_ns) in room_rows.iter().zip(&pair_rows) {
        println!(
            "{n} rooms: {room_ns:.0} ns of relay CPU per mixed frame sent (receive, decode, mix, encode, send) against {pair_ns:.0} ns per packet relayed two-party: {:.2}x",
            room_ns / pair_ns.max(1.0)
        );
    }
    match best_rooms {
        Some(n) => println!(
            "largest step held (< 1 % late frames, >= 99 % delivered): {n} three-party rooms; target >= 1,000 per core"
        ),
        None => println!("no step held (< 1 % late frames, >= 99 % delivered); target >= 1,000 per core"),
    }
}
