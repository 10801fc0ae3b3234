//! The per-source transaction bound counts only transactions awaiting an
//! answer: a busy but well-behaved source (an office behind one NAT, a trunk)
//! is not refused because its answered transactions linger for Timer J.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;

#[test]
fn answered_transactions_do_not_use_up_the_source_quota() {
    let config = TestConfig {
        max_transactions_per_source: 20,
        ..TestConfig::default()
    };
    let mut sw = Switch::start(&config);
    let target = sw.addr("udp");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(target).unwrap();
    let local = sock.local_addr().unwrap();
    // Five times the quota, one after another from the same address and port.
    for i in 0..100 {
        let call_id = format!("quota-{i}");
        sock.send(&options_request(local, Transport::Udp, &call_id))
            .unwrap();
        let (got, _) = udp_await_response(&sock, &call_id, Duration::from_secs(5));
        assert_eq!(
            got,
            Some(200),
            "OPTIONS #{i} from one source\n{}",
            sw.report()
        );
    }
}
