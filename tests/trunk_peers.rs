//! Trunk peers under load, on the real binary with SIPp on both sides
//! (fixtures/sipp/trunk_caller.xml as a contact center's SBC,
//! fixtures/sipp/trunk_gateway.xml as gateways that ring, answer and
//! answer pings):
//!
//! - 1,000 calls ringing at once from one source address that a peer's ACL
//!   admits, none refused: the per-source transaction cap (200) guards
//!   unknown sources, not peers;
//! - a peer's rate limit answers 503 with Retry-After past it, counted in
//!   the API, and every other call completes;
//! - two gateways on one route, one killed mid-load: its pings mark it
//!   down, no new call goes to it after that, and the calls caught on it
//!   complete on the other gateway (Timer B, then the next gateway).

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{request, TEST_API_KEY};
use common::sippbg::{free_media_port, parse_trace};
use common::*;

/// The tests here load the machine (up to 1,000 calls, timers of a second):
/// they run one at a time so that none skews another's timing.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A SIPp in the background, killed (by its pid) when dropped.
struct Sipp {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    what: String,
}

impl Sipp {
    /// `sipp -sf fixtures/sipp/SCENARIO.xml` on its own port and folder,
    /// tracing messages (and errors) there.
    fn start(scenario: &str, port: u16, target: Option<SocketAddr>, extra: &[String]) -> Sipp {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = repo_path(&format!("fixtures/sipp/{scenario}.xml"));
        let mut args: Vec<String> = vec![
            "-sf".into(),
            sf.display().to_string(),
            "-t".into(),
            "u1".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-mp".into(),
            free_media_port().to_string(),
            "-cp".into(),
            free_port().to_string(),
            "-nostdin".into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.path().join("errors.log").display().to_string(),
            "-trace_msg".into(),
            "-message_file".into(),
            dir.path().join("messages.log").display().to_string(),
        ];
        if let Some(t) = target {
            args.insert(2, t.to_string());
        }
        args.extend(extra.iter().cloned());
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run sipp: {e}: install Debian's sip-tester (scripts/test does)")
            });
        Sipp {
            child: Some(child),
            dir,
            port,
            what: format!("sipp {}", args.join(" ")),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn messages(&self) -> String {
        std::fs::read_to_string(self.path("messages.log")).unwrap_or_default()
    }

    /// Waits (bounded) until SIPp holds its port.
    fn wait_bound(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::UdpSocket::bind(("127.0.0.1", self.port)).is_ok() {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "{} exited before binding: {st}\n{}",
                    self.what,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not bind in 10 s",
                self.what
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.path("errors.log")).unwrap_or_default()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Waits (at most `timeout`) for SIPp to end by itself; its exit status.
    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL by pid: a gateway that vanishes without a word.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The Call-IDs of the INVITEs it received so far (retransmissions once).
    fn invites_received(&self) -> Vec<String> {
        let mut ids: Vec<String> = parse_trace(&self.messages())
            .into_iter()
            .filter(|(rx, m)| *rx && m.starts_with("INVITE "))
            .filter_map(|(_, m)| common::sippbg::header(&m, "Call-ID").map(str::to_string))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} ---\n{}\n--- trace tail ---\n{}",
                self.what,
                self.stderr(),
                tail_pub(&self.messages(), 80)
            );
        }
        self.kill();
    }
}

/// The shipped configuration's shape: `internal` for phones, `external`
/// for trunks with `peers` (TOML) and the dial plan sending numbers to
/// `route` (TOML, the `[[dialplan]]` body).
fn config(external_extra: &str, peers: &str, route: &str) -> String {
    format!(
        r#"[general]
log_sip_messages = false
http_listen = "127.0.0.1:0"
http_api_keys = ["{TEST_API_KEY}"]

[profiles.internal]
registrar = true
listen = [{{ transport = "udp", address = "127.0.0.1:0" }}]
users = [{{ username = "1001", password = "1234" }}]
[profiles.internal.media]
rtp_port_min = 16384
rtp_port_max = 17999

[profiles.external]
listen = [{{ transport = "udp", address = "127.0.0.1:0" }}]
{external_extra}
[profiles.external.media]
rtp_port_min = 18000
rtp_port_max = 29999
[profiles.external.calls]
session_expires_secs = 0

{peers}

[[dialplan]]
match = "^\\+?([0-9]{{5,15}})$"
number = "$1"
{route}
"#
    )
}

fn external(sw: &Switch) -> SocketAddr {
    sw.listeners
        .iter()
        .find(|l| l.profile == "external" && l.transport == "udp")
        .expect("external udp listener")
        .addr
}

fn peer(http: SocketAddr, name: &str) -> serde_json::Value {
    let r = request(http, "GET", &format!("/v1/peers/{name}"), None);
    assert_eq!(r.status, 200, "GET /v1/peers/{name}: {}", r.body);
    r.json()
}

/// The first final response to each INVITE the caller sent (by Call-ID;
/// retransmitted ones once): (status, the message).
fn invite_finals(trace: &str) -> Vec<(u16, String)> {
    let mut seen = std::collections::HashSet::new();
    parse_trace(trace)
        .into_iter()
        .filter(|(rx, m)| {
            *rx && m.starts_with("SIP/2.0 ")
                && common::sippbg::cseq_method(m).eq_ignore_ascii_case("INVITE")
        })
        .filter_map(|(_, m)| {
            let code: u16 = m.get(8..11)?.parse().ok()?;
            let id = common::sippbg::header(&m, "Call-ID")?.to_string();
            (code >= 200 && seen.insert(id)).then_some((code, m))
        })
        .collect()
}

/// Resident memory (kB) and open files of a process.
fn rss_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

#[test]
fn a_thousand_calls_ringing_at_once_from_one_peer_address_are_all_admitted() {
    let _serial = one_at_a_time();
    const CALLS: usize = 1000;
    let gw_port = free_port();
    let mut gateway = Sipp::start(
        "trunk_gateway",
        gw_port,
        None,
        // Each call rings 8 s before it is answered.
        &["-d".into(), "8000".into()],
    );
    gateway.wait_bound();
    let peers = format!(
        "[[profiles.external.peers]]\nname = \"local-trunk\"\naddress = \"127.0.0.1:{gw_port}\"\ntransport = \"udp\"\nacl = [\"127.0.0.1/32\"]\n"
    );
    let mut sw = Switch::start_with_text(&config(
        "",
        &peers,
        "to = \"gateway\"\ngateway = \"local-trunk\"",
    ));
    let http = sw.http_addr().expect("http line");
    let started = Instant::now();
    let mut caller = Sipp::start(
        "trunk_caller",
        free_port(),
        Some(external(&sw)),
        &[
            "-s",
            "15551234",
            "-r",
            "200",
            "-m",
            "1000",
            "-l",
            "2000",
            "-timeout",
            "50s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    // Watch the peer while the calls ring: every one of them in progress
    // at once, in and out.
    let (mut peak_in, mut peak_out) = (0u64, 0u64);
    let mut figures = None;
    let deadline = Instant::now() + Duration::from_secs(55);
    while caller.exited().is_none() && Instant::now() < deadline {
        let p = peer(http, "local-trunk");
        let (i, o) = (
            p["calls_in"].as_u64().unwrap(),
            p["calls_out"].as_u64().unwrap(),
        );
        if i >= peak_in && i as usize == CALLS && figures.is_none() {
            figures = Some(rss_and_fds(sw.pid()));
        }
        peak_in = peak_in.max(i);
        peak_out = peak_out.max(o);
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = caller.wait(Duration::from_secs(5));
    let trace = caller.messages();
    let finals = invite_finals(&trace);
    let refused: Vec<&(u16, String)> = finals.iter().filter(|(c, _)| *c != 200).collect();
    assert!(
        refused.is_empty(),
        "{} of {CALLS} calls refused, e.g. {:?}\n{}",
        refused.len(),
        refused.first(),
        sw.report()
    );
    assert_eq!(finals.len(), CALLS, "every call answered\n{}", sw.report());
    assert!(
        status.is_some_and(|s| s.success()),
        "the caller SIPp: {status:?}\n{}",
        caller.stderr()
    );
    assert_eq!(
        (peak_in, peak_out),
        (CALLS as u64, CALLS as u64),
        "all {CALLS} calls ringing at once, in and out"
    );
    let p = peer(http, "local-trunk");
    assert_eq!(p["refused"]["calls_in"], 0);
    assert_eq!(p["refused"]["cps_in"], 0);
    assert_eq!(p["total_in"], CALLS as u64);
    assert_eq!(p["total_out"], CALLS as u64);
    let (rss, fds) = figures.expect("figures at the peak");
    eprintln!(
        "{CALLS} calls ringing at once through one peer: switch RSS {rss} kB, {fds} open files; whole run {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        !sw.seen.iter().any(|l| l.contains("Too Many Transactions")),
        "the per-source cap answered"
    );
}

#[test]
fn a_peers_rate_limit_answers_503_with_retry_after_and_nothing_else_fails() {
    let _serial = one_at_a_time();
    const CALLS: usize = 200;
    let gw_port = free_port();
    let mut gateway = Sipp::start("trunk_gateway", gw_port, None, &["-d".into(), "0".into()]);
    gateway.wait_bound();
    let peers = format!(
        "[[profiles.external.peers]]\nname = \"cc\"\nacl = [\"127.0.0.1/32\"]\nmax_cps_in = 20\n\
         [[profiles.external.peers]]\nname = \"gw\"\naddress = \"127.0.0.1:{gw_port}\"\n"
    );
    let mut sw = Switch::start_with_text(&config("", &peers, "to = \"gateway\"\ngateway = \"gw\""));
    let http = sw.http_addr().expect("http line");
    // 100 calls/s for 2 s against 20/s (a bucket of 20).
    let mut caller = Sipp::start(
        "trunk_caller",
        free_port(),
        Some(external(&sw)),
        &[
            "-s",
            "15551234",
            "-r",
            "100",
            "-m",
            "200",
            "-l",
            "400",
            "-timeout",
            "30s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    let status = caller.wait(Duration::from_secs(35));
    assert!(
        status.is_some_and(|s| s.success()),
        "the caller SIPp: {status:?}\n{}\n{}",
        caller.stderr(),
        sw.report()
    );
    let finals = invite_finals(&caller.messages());
    assert_eq!(finals.len(), CALLS, "a final answer to every call");
    let refused: Vec<&String> = finals
        .iter()
        .filter(|(c, _)| *c == 503)
        .map(|(_, m)| m)
        .collect();
    let answered = finals.iter().filter(|(c, _)| *c == 200).count();
    assert_eq!(
        answered + refused.len(),
        CALLS,
        "only 200 or 503: {:?}",
        finals.iter().find(|(c, _)| *c != 200 && *c != 503)
    );
    // The burst (20) plus 20/s over the ~2 s of the run, give or take the
    // scheduling of a loaded machine.
    assert!(
        (30..=90).contains(&answered),
        "{answered} calls admitted at 20/s out of {CALLS} offered over 2 s"
    );
    for m in &refused {
        assert_eq!(
            common::sippbg::header(m, "Retry-After"),
            Some("1"),
            "a refusal without Retry-After:\n{m}"
        );
        assert!(m.starts_with("SIP/2.0 503 Peer Call Rate Exceeded"), "{m}");
    }
    let cc = peer(http, "cc");
    assert_eq!(cc["refused"]["cps_in"], refused.len() as u64, "{cc}");
    assert_eq!(cc["refused"]["calls_in"], 0);
    assert_eq!(cc["total_in"], answered as u64);
    assert_eq!(cc["limits"]["max_cps_in"], 20);
    // Every call has ended: the slots are all back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while peer(http, "cc")["calls_in"] != 0 || peer(http, "gw")["calls_out"] != 0 {
        assert!(
            Instant::now() < deadline,
            "calls still counted: {}",
            peer(http, "cc")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(peer(http, "gw")["total_out"], answered as u64);
}

#[test]
fn a_gateway_that_dies_is_marked_down_by_its_pings_and_its_calls_complete_on_the_other() {
    let _serial = one_at_a_time();
    const CALLS: usize = 300;
    let (pa, pb) = (free_port(), free_port());
    let mut gw_a = Sipp::start("trunk_gateway", pa, None, &["-d".into(), "0".into()]);
    let mut gw_b = Sipp::start("trunk_gateway", pb, None, &["-d".into(), "0".into()]);
    gw_a.wait_bound();
    gw_b.wait_bound();
    // T1 = 100 ms: Timer B (an INVITE nobody answers) is 6.4 s.
    let peers = format!(
        "[[profiles.external.peers]]\nname = \"cc\"\nacl = [\"127.0.0.1/32\"]\n\
         [[profiles.external.peers]]\nname = \"gw-a\"\naddress = \"127.0.0.1:{pa}\"\nping_interval_secs = 1\nping_failures_before_down = 2\nping_successes_before_up = 1\n\
         [[profiles.external.peers]]\nname = \"gw-b\"\naddress = \"127.0.0.1:{pb}\"\nping_interval_secs = 1\nping_failures_before_down = 2\nping_successes_before_up = 1\n"
    );
    let mut sw = Switch::start_with_text(&config(
        "[profiles.external.timers]\nt1_ms = 100\nt2_ms = 4000\nt4_ms = 5000",
        &peers,
        "to = \"gateway\"\ngateways = [\"gw-a\", \"gw-b\"]",
    ));
    let http = sw.http_addr().expect("http line");
    // Both answer their first ping.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ["gw-a", "gw-b"]
        .iter()
        .any(|g| peer(http, g)["last_ping"]["ok"] != true)
    {
        assert!(
            Instant::now() < deadline,
            "pings not answered: {} {}",
            peer(http, "gw-a"),
            peer(http, "gw-b")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut caller = Sipp::start(
        "trunk_caller",
        free_port(),
        Some(external(&sw)),
        &[
            "-s",
            "15551234",
            "-r",
            "20",
            "-m",
            "300",
            "-l",
            "400",
            "-timeout",
            "50s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    // gw-a takes the calls (it is first) until it dies, 40 calls in.
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw_a.invites_received().len() < 40 {
        assert!(
            Instant::now() < deadline,
            "gw-a got {} INVITEs",
            gw_a.invites_received().len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_kill = gw_a.invites_received().len();
    gw_a.kill();
    let killed = Instant::now();
    let down = sw.wait_event("peer-down", &[("peer", "gw-a")], Duration::from_secs(8));
    let down_after = killed.elapsed();
    // From here on, nothing new goes to gw-a.
    let a_at_down = peer(http, "gw-a");
    assert_eq!(a_at_down["state"], "down", "{a_at_down}");
    let placed_on_a = a_at_down["total_out"].as_u64().unwrap();

    let status = caller.wait(Duration::from_secs(50));
    let finals = invite_finals(&caller.messages());
    assert!(
        status.is_some_and(|s| s.success()),
        "the caller SIPp: {status:?}\n{}\n{}",
        caller.stderr(),
        sw.report()
    );
    assert_eq!(finals.len(), CALLS);
    assert!(
        finals.iter().all(|(c, _)| *c == 200),
        "every call answered: {:?}",
        finals.iter().find(|(c, _)| *c != 200)
    );
    let (a, b) = (peer(http, "gw-a"), peer(http, "gw-b"));
    assert_eq!(
        a["total_out"].as_u64().unwrap(),
        placed_on_a,
        "a call went to gw-a after it was marked down"
    );
    assert_eq!(a["state"], "down");
    assert_eq!(b["state"], "up");
    // The calls caught on gw-a (sent after it died, before its pings said
    // so) failed there on Timer B and were placed again on gw-b.
    let moved = a["total_out"].as_u64().unwrap() + b["total_out"].as_u64().unwrap() - CALLS as u64;
    assert!(moved >= 1, "no call failed over: a {a} b {b}");
    assert_eq!(a["last_failure"]["status"], 408, "{a}");
    assert_eq!(
        b["total_out"].as_u64().unwrap() as usize,
        gw_b.invites_received().len(),
        "gw-b got every call placed on it"
    );
    assert!(b["last_failure"].is_null(), "{b}");

    // gw-b dies too: with every gateway of the route down, a call is
    // refused at once (503, Retry-After), not after two Timer Bs.
    gw_b.kill();
    sw.wait_event("peer-down", &[("peer", "gw-b")], Duration::from_secs(8));
    let asked = Instant::now();
    let mut one = Sipp::start(
        "trunk_caller",
        free_port(),
        Some(external(&sw)),
        &[
            "-s",
            "15551234",
            "-m",
            "1",
            "-timeout",
            "10s",
            "-timeout_error",
        ]
        .map(String::from),
    );
    let st = one.wait(Duration::from_secs(15));
    let took = asked.elapsed();
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", one.stderr());
    let finals = invite_finals(&one.messages());
    assert_eq!(finals.len(), 1);
    assert_eq!(finals[0].0, 503, "{}", finals[0].1);
    assert_eq!(
        common::sippbg::header(&finals[0].1, "Retry-After"),
        Some("1")
    );
    assert!(
        took < Duration::from_secs(5),
        "refused after {took:?}: not at once"
    );
    eprintln!(
        "gw-a killed after {before_kill} INVITEs, marked down {:.1} s later ({}); {placed_on_a} calls placed on gw-a, {} on gw-b, {moved} failed over from gw-a",
        down_after.as_secs_f64(),
        down.line,
        b["total_out"]
    );
}
