//! `switchback-rtpgen`: the project's own lightweight RTP load generator.
//!
//! Sends N G.711 streams (160-byte PCMU payloads every 20 ms) from one local
//! socket to N addresses, receives whatever comes back on that socket, and
//! prints per-run totals: packets sent, received, and loss by sequence number
//! per source. The sending and counting live in `switchback::media::bench`,
//! shared with the relay benchmark.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use switchback::media::bench::{grow_buffers, Generator};

#[derive(Parser, Debug)]
#[command(about = "Send N G.711 RTP streams at 20 ms and count what comes back")]
struct Args {
    /// First destination (IPv4 RTP address).
    #[arg(long)]
    to: SocketAddr,
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
    let dests: Vec<SocketAddr> = (0..args.streams)
        .map(|i| {
            let mut a = args.to;
            a.set_port(args.to.port().wrapping_add(i.wrapping_mul(args.step)));
            a
        })
        .collect();
    let sock = UdpSocket::bind(args.bind)?;
    grow_buffers(&sock, 16 << 20);
    println!(
        "rtpgen: {} streams from {} for {} s",
        dests.len(),
        sock.local_addr()?,
        args.seconds
    );
    let g = Generator::start(Arc::new(sock), dests, Duration::from_secs_f64(args.seconds))?;
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
