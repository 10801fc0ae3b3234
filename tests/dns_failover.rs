//! RFC 3263 against the real binary: trunk peers given by name are resolved
//! through a DNS server the test starts on a loopback port (dnsmasq, Debian
//! package `dnsmasq-base`), named by `[general] dns_servers`.
//!
//! - NAPTR -> SRV -> A for UDP: the NAPTR record names an SRV record that
//!   the default SRV name would not find, and the call reaches the SIPp
//!   gateway that SRV record points at.
//! - SRV failover: three servers by priority: nothing listens on the first
//!   (Timer B), a SIPp answering 503 on the second, a SIPp answering on the
//!   third; the call is set up on the third after both others were tried,
//!   in that order.
//! - No NAPTR nor SRV: the name's A record with the default port 5060 (on
//!   127.0.0.5, which Linux routes on `lo`, so no other switch is in the way).
//!
//! Resolution happens before `ready`, so the calls need no waiting for it.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::calls::{CallConfig, Lab, Rule};
use common::sippbg::{Sipp, SippBg};
use common::*;

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// A dnsmasq answering only the records given, on a loopback port; killed on drop.
struct Dns {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dns {
    fn start(records: &[String]) -> Dns {
        assert!(
            std::path::Path::new(DNSMASQ).exists(),
            "{DNSMASQ} is missing: install the Debian package dnsmasq-base (scripts/test does)"
        );
        let port = free_port();
        let mut child = Command::new(DNSMASQ)
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                &format!("--port={port}"),
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--no-resolv",
                "--no-hosts",
                "--log-facility=-",
                "--pid-file=",
                // Authoritative for .test: unknown names are NXDOMAIN at once.
                "--local=/test/",
            ])
            .args(records)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {DNSMASQ}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // dnsmasq binds, then says "started".
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains("started") => break,
                Ok(l) => seen.push(l),
                Err(_) => panic!("dnsmasq did not start: {seen:?}"),
            }
        }
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Dns {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// A lab whose `external` profile has `peers` (name, address) reached by
/// `number` prefixes, resolving through `dns`, with T1 = 50 ms on the
/// trunk side so that Timer B (64*T1) passes in 3.2 s.
fn lab(dns: &Dns, peers: &[(&str, &str, &str)]) -> Lab {
    let mut cfg = CallConfig::default();
    // Quiet logs: the test reads the switch's log lines about failover.
    cfg.base.log_sip_messages = false;
    cfg.dialplan.truncate(1);
    for (prefix, peer, _) in peers {
        cfg.dialplan.push(Rule {
            pattern: format!("^{prefix}([0-9]+)$"),
            to: "gateway",
            gateway: Some(peer.to_string()),
            profile: None,
            number: Some("$1".into()),
            from: vec!["internal".into()],
        });
    }
    let mut text = cfg.to_toml().replacen(
        "max_message_size = 65535\n",
        &format!(
            "max_message_size = 65535\ndns_servers = [\"{}\"]\n",
            dns.addr
        ),
        1,
    );
    text = text.replacen(
        "[profiles.external.timers]\nt1_ms = 500",
        "[profiles.external.timers]\nt1_ms = 50",
        1,
    );
    assert!(text.contains("t1_ms = 50\n"), "the external T1 was set");
    for (_, name, address) in peers {
        text.push_str(&format!(
            "\n[[profiles.external.peers]]\nname = \"{name}\"\naddress = \"{address}\"\ntransport = \"udp\"\n"
        ));
    }
    let recordings = tempfile::tempdir().unwrap();
    Lab {
        sw: Switch::start_with_text(&text),
        cfg,
        recordings,
    }
}

/// A SIPp gateway on `ip:port` running `scenario`, ready when this returns.
fn gateway(lab: &Lab, scenario: &str, ip: &str, port: u16) -> SippBg {
    let bg = Sipp::new(scenario, lab.external())
        .port(port)
        .service("gw")
        .arg("-i")
        .arg(ip)
        .spawn();
    // Bound when its address can no longer be bound (as `SippBg::wait_bound`,
    // on the address given).
    let deadline = Instant::now() + Duration::from_secs(10);
    while UdpSocket::bind((ip, port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "SIPp ({scenario}) did not bind {ip}:{port} in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    bg
}

/// Places a call from phone 1001 to `number`, waits until it is bridged,
/// hangs up, and returns the call id.
fn call_through(lab: &mut Lab, number: &str) -> String {
    let caller = lab
        .caller("1001", number, "call")
        .set("hangup_ms", 300)
        .spawn();
    let call = lab.call_started(&[("from", "1001")]);
    lab.wait_for("call-bridged", &[("call", &call)], Duration::from_secs(15));
    caller.finish(&mut lab.sw);
    lab.wait("call-ended", &[("call", &call), ("by", "a")]);
    call
}

#[test]
fn naptr_then_srv_then_a_over_udp() {
    let live = free_port();
    let dns = Dns::start(&[
        "--naptr-record=naptr.test,10,10,S,SIP+D2U,,_sip._udp.elsewhere.test".into(),
        // A TCP service the peer (udp) must not pick.
        "--naptr-record=naptr.test,5,10,S,SIP+D2T,,_sip._tcp.naptr.test".into(),
        format!("--srv-host=_sip._udp.elsewhere.test,gw-live.test,{live},10,0"),
        "--host-record=gw-live.test,127.0.0.1".into(),
    ]);
    let mut lab = lab(&dns, &[("555", "naptr", "naptr.test")]);
    let gw = gateway(&lab, "phone_answer", "127.0.0.1", live);
    call_through(&mut lab, "5551234");
    let g = gw.finish(&mut lab.sw);
    let invite = &g.received("INVITE ")[0];
    assert!(
        invite.starts_with("INVITE sip:1234@naptr.test SIP/2.0"),
        "the Request-URI names the peer's domain: {invite}"
    );
}

#[test]
fn srv_fails_over_by_priority_to_the_server_that_answers() {
    let (dead, busy, live) = (free_port(), free_port(), free_port());
    let dns = Dns::start(&[
        format!("--srv-host=_sip._udp.srv.test,gw-dead.test,{dead},10,0"),
        format!("--srv-host=_sip._udp.srv.test,gw-busy.test,{busy},20,0"),
        format!("--srv-host=_sip._udp.srv.test,gw-live.test,{live},30,0"),
        "--host-record=gw-dead.test,127.0.0.1".into(),
        "--host-record=gw-busy.test,127.0.0.1".into(),
        "--host-record=gw-live.test,127.0.0.1".into(),
    ]);
    let mut lab = lab(&dns, &[("555", "srv", "srv.test")]);
    let busy_gw = gateway(&lab, "trunk_uas_503", "127.0.0.1", busy);
    let live_gw = gateway(&lab, "phone_answer", "127.0.0.1", live);
    let started = Instant::now();
    call_through(&mut lab, "5551234");
    // The first server was given Timer B (64 * 50 ms) before the next.
    assert!(
        started.elapsed() >= Duration::from_millis(3200),
        "the dead server was tried first ({:?})",
        started.elapsed()
    );
    let b = busy_gw.finish(&mut lab.sw);
    assert_eq!(
        b.received("INVITE ").len(),
        1,
        "the 503 server got the INVITE"
    );
    let l = live_gw.finish(&mut lab.sw);
    let invite = &l.received("INVITE ")[0];
    assert!(
        invite.contains("CSeq: 3 INVITE"),
        "the third attempt of the same leg: {invite}"
    );
    let log = lab.sw.stderr_tail();
    let tries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("trying the peer's next server"))
        .collect();
    assert_eq!(tries.len(), 2, "two moves on:\n{log}");
    assert!(
        tries[0].contains(&format!("failed=127.0.0.1:{dead}")) && tries[0].contains("status=408"),
        "{}",
        tries[0]
    );
    assert!(
        tries[1].contains(&format!("failed=127.0.0.1:{busy}")) && tries[1].contains("status=503"),
        "{}",
        tries[1]
    );
}

#[test]
fn a_name_without_naptr_or_srv_uses_its_a_record_and_port_5060() {
    let dns = Dns::start(&["--host-record=plain.test,127.0.0.5".into()]);
    let mut lab = lab(&dns, &[("555", "plain", "plain.test")]);
    let gw = gateway(&lab, "phone_answer", "127.0.0.5", 5060);
    call_through(&mut lab, "5551234");
    let g = gw.finish(&mut lab.sw);
    assert_eq!(g.received("INVITE ").len(), 1);
}
