//! Parser throughput: messages per second through `sip::parse` for the three
//! shapes a switch sees most (REGISTER with Authorization, INVITE with SDP,
//! 200 OK). Plain `Instant` timing; prints figures, asserts nothing.
//!
//! Run: `cargo bench --bench parse` (release profile).

use std::hint::black_box;
use std::time::{Duration, Instant};

const REGISTER: &str = "REGISTER sip:switchback.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-74bf9;rport\r\n\
Max-Forwards: 70\r\n\
From: <sip:1001@switchback.local>;tag=9fxced76sl\r\n\
To: <sip:1001@switchback.local>\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:1001@192.0.2.10:5060;transport=udp>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1\r\n\
Authorization: Digest username=\"1001\", realm=\"switchback.local\", nonce=\"a1b2c3d4e5f60718293a4b5c6d7e8f90\", uri=\"sip:switchback.local\", response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", qop=auth, nc=00000001\r\n\
Expires: 600\r\n\
User-Agent: bench\r\n\
Content-Length: 0\r\n\r\n";

const SDP: &str = "v=0\r\no=1001 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n";

fn invite() -> String {
    format!(
        "INVITE sip:1002@switchback.local SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:1001@switchback.local>;tag=1928301774\r\n\
To: <sip:1002@switchback.local>\r\n\
Call-ID: a84b4c76e66710@192.0.2.10\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:1001@192.0.2.10:5060>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REFER, NOTIFY\r\n\
Supported: replaces, timer\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{}",
        SDP.len(),
        SDP
    )
}

const OK_200: &str = "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-74bf9;rport=5060;received=192.0.2.10\r\n\
From: <sip:1001@switchback.local>;tag=9fxced76sl\r\n\
To: <sip:1001@switchback.local>;tag=37GkEhwl6\r\n\
Call-ID: 3848276298220188511@192.0.2.10\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:1001@192.0.2.10:5060;transport=udp>;expires=600\r\n\
Date: Sat, 21 Nov 2026 11:00:00 GMT\r\n\
Content-Length: 0\r\n\r\n";

fn bench(name: &str, msg: &[u8]) {
    // Sanity: the message must parse, or the figure means nothing.
    switchback::sip::parse(msg, 65535)
        .unwrap_or_else(|e| panic!("{name} does not parse: {}", e.reason()));
    // Warm up, then run for about a second, three times; report the best.
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_millis(1000) {
            for _ in 0..256 {
                black_box(switchback::sip::parse(black_box(msg), 65535).is_ok());
            }
            n += 256;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    println!(
        "{name:<28} {:>6} bytes  {:>10.0} msg/s  {:>7.2} us/msg  {:>7.1} MB/s",
        msg.len(),
        best,
        1e6 / best,
        best * msg.len() as f64 / 1e6
    );
}

fn main() {
    // `cargo test --all-targets` runs benches in test mode with `--bench` absent:
    // do one quick pass so that the target is exercised without taking seconds.
    let quick = !std::env::args().any(|a| a == "--bench");
    let invite = invite();
    let cases: [(&str, &[u8]); 3] = [
        ("REGISTER + Authorization", REGISTER.as_bytes()),
        ("INVITE + SDP", invite.as_bytes()),
        ("200 OK (REGISTER)", OK_200.as_bytes()),
    ];
    if quick {
        for (name, msg) in cases {
            switchback::sip::parse(msg, 65535)
                .unwrap_or_else(|e| panic!("{name} does not parse: {}", e.reason()));
        }
        println!("parse bench: all messages parse (run `cargo bench --bench parse` for figures)");
        return;
    }
    println!("sip::parse throughput, one thread (best of 3 x 1 s):");
    for (name, msg) in cases {
        bench(name, msg);
    }
}
