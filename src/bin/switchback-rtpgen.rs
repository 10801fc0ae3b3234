//! `switchback-rtpgen`: the project's own lightweight RTP load generator.
//!
//! Sends N G.711 streams (160-byte PCMU payloads every 20 ms, or every
//! `--ptime-ms`) from one local socket to N addresses (`--to` and the ports
//! after it, or a `--dests` file: scripts/bench-concurrent's relay ports),
//! receives whatever comes back on that socket, and prints per-run totals:
//! packets sent, received, and loss by sequence number per source. The
//! sending and counting live in `switchback::media::bench`, shared with the
//! relay benchmark.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use switchback::media::bench::{grow_buffers, Generator};

#[derive(Parser, Debug)]
#[command(about = "Send N G.711 RTP streams (every 20 ms by default) and count what comes back")]
struct Args {
    /// First destination (IPv4 RTP address).
    #[arg(long, required_unless_present = "dests")]
    to: Option<SocketAddr>,
    /// A file of destinations, one address a line (instead of `--to`,
    /// `--streams` and `--step`): the relay ports of calls the switch set up.
    #[arg(long, conflicts_with = "to")]
    dests: Option<std::path::PathBuf>,
    /// One packet per stream every this many milliseconds.
    #[arg(long, default_value_t = 20)]
    ptime_ms: u64,
    /// Number of streams; stream i goes to `to` + i * `step` (port).
    #[arg(long, default_value_t = 1)]
    streams: u16,
    /// Port step between destinations (2 = consecutive RTP ports).
    #[arg(long, default_value_t = 2)]
    step: u16,
    /// Local address to send from and receive on.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// How long to send, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Print every source's counts too.
    #[arg(long)]
    per_stream: bool,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let dests: Vec<SocketAddr> = match (&args.dests, args.to) {
        (Some(file), _) => std::fs::read_to_string(file)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.parse().map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{l:?}: {e}"))
                })
            })
            .collect::<Result<_, _>>()?,
        (None, Some(to)) => (0..args.streams)
            .map(|i| {
                let mut a = to;
                a.set_port(to.port().wrapping_add(i.wrapping_mul(args.step)));
                a
            })
            .collect(),
        (None, None) => return Err(std::io::Error::other("--to or --dests is required")),
    };
    let sock = UdpSocket::bind(args.bind)?;
    grow_buffers(&sock, 16 << 20);
    println!(
        "rtpgen: {} streams from {} for {} s, one packet every {} ms",
        dests.len(),
        sock.local_addr()?,
        args.seconds,
        args.ptime_ms
    );
    let g = Generator::start_every(
        Arc::new(sock),
        dests,
        Duration::from_millis(args.ptime_ms.max(1)),
        Duration::from_secs_f64(args.seconds),
    )?;
    let sent = g.sent.clone();
    let report = g.finish(Duration::from_millis(500))?;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let received = report.received();
    if args.per_stream {
        let mut rows: Vec<_> = report.streams.iter().collect();
        rows.sort_by_key(|(a, _)| **a);
        for (addr, s) in rows {
            println!("  {addr}: received {} lost {}", s.received, s.lost());
        }
    }
    println!(
        "sent {sent}  received {received}  sources {}  lost by sequence {}  ({:.4} %)",
        report.streams.len(),
        report.lost(),
        100.0 * report.lost() as f64 / (received + report.lost()).max(1) as f64
    );
    Ok(())
}
