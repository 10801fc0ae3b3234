//! A contact-center platform's load on the shipped default configuration
//! (issue 20's acceptance figure): a SIPp trunk on 127.0.0.1 (the shipped
//! `local-trunk` peer's ACL) sends 200 calls/s for 60 s (12,000 calls,
//! `fixtures/sipp/bench_call_uac.xml`: INVITE with SDP, 100/180, 200, ACK,
//! BYE) to agent 1001, registered from a SIPp UAS
//! (`fixtures/sipp/bench_call_uas.xml`) as the README's Benchmarks section
//! describes. Every call must succeed and neither SIPp may retransmit
//! anything (their `-trace_stat` counters at the end): no answer came later
//! than T1, none was lost, none was refused by a per-source cap.
//!
//! It runs on the build the suite uses (debug). The media ranges are the
//! shipped ones (only listening ports move): a busy switch holds a few
//! hundred port pairs at once, more than the harness's 40-port blocks.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::sippbg::{free_media_port, Sipp};
use common::{free_port, repo_path, Switch, EVENT};
use interop::shipped::{internal, udp_addr, Shipped, PASSWORD};

const RATE: u32 = 200;
const CALLS: u32 = 12_000;
/// How long the run may take in all: 60 s of calls plus a margin for the
/// last ones and for SIPp's own end.
const BOUND: Duration = Duration::from_secs(150);

/// One SIPp process of the load, with statistics and errors in its folder.
struct Load {
    child: Child,
    dir: tempfile::TempDir,
    what: String,
}

impl Load {
    fn start(scenario: &str, port: u16, target: Option<SocketAddr>, extra: &[String]) -> Load {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = repo_path(&format!("fixtures/sipp/{scenario}.xml"));
        let mut args: Vec<String> = vec!["-sf".into(), sf.display().to_string()];
        if let Some(t) = target {
            args.push(t.to_string());
        }
        args.extend(
            [
                "-t",
                "u1",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mp",
                &free_media_port().to_string(),
                "-cp",
                &free_port().to_string(),
                "-nostdin",
                "-buff_size",
                "4194304",
                "-timeout",
                &format!("{}s", BOUND.as_secs() - 10),
                "-trace_stat",
                "-stf",
                "stat.csv",
                "-fd",
                "1",
                "-trace_err",
                "-error_file",
                "errors.log",
            ]
            .map(String::from),
        );
        args.extend(extra.iter().cloned());
        let what = format!("(cd {}; sipp {})", dir.path().display(), args.join(" "));
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("stdout.log")).expect("stdout file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file"),
            ))
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run sipp: {e}: install Debian's sip-tester (scripts/test does)")
            });
        Load { child, dir, what }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// Waits until `deadline` for SIPp to end; kills it then. Its exit
    /// status, `None` when it had to be killed.
    fn wait_until(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait sipp") {
                return Some(st);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last row of its statistics, by column name.
    fn stats(&self) -> HashMap<String, String> {
        stats_of(&self.path("stat.csv"))
    }

    fn describe(&self) -> String {
        let err = self.read("errors.log");
        let lines: Vec<&str> = err.lines().collect();
        format!(
            "{}\n--- stderr ---\n{}\n--- errors.log ({} lines, last 40) ---\n{}",
            self.what,
            self.read("stderr.log"),
            lines.len(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SIPp's `-trace_stat` file: a header row of `;`-separated names, then one
/// row per period; the last is the run's end.
fn stats_of(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn count(stats: &HashMap<String, String>, name: &str) -> u64 {
    stats
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in SIPp's statistics: {stats:?}"))
}

/// Registers 1001 from `port` (where the UAS will listen) and waits for it.
fn register_agent(sw: &mut Switch, port: u16) {
    let run = Sipp::new("register", internal(sw))
        .port(port)
        .service("1001")
        .arg("-au")
        .arg("1001")
        .arg("-ap")
        .arg(PASSWORD)
        .run();
    run.assert_ok(sw);
    sw.await_event("registered", &[("user", "1001")], EVENT);
}

#[test]
fn two_hundred_calls_per_second_for_a_minute_from_one_trunk_address() {
    let mut sw = Shipped::new()
        .set("internal.toml", "rtp_port_min", "16384")
        .set("internal.toml", "rtp_port_max", "24575")
        .set("external.toml", "rtp_port_min", "24576")
        .set("external.toml", "rtp_port_max", "32767")
        .start();
    let uas_port = free_port();
    register_agent(&mut sw, uas_port);
    let mut uas = Load::start(
        "bench_call_uas",
        uas_port,
        None,
        &["-m".into(), CALLS.to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::UdpSocket::bind(("127.0.0.1", uas_port)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the SIPp UAS did not bind {uas_port} in 10 s:\n{}",
            uas.describe()
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let started = Instant::now();
    let mut uac = Load::start(
        "bench_call_uac",
        free_port(),
        Some(udp_addr(&sw, "external")),
        &[
            "-s".into(),
            "1001".into(),
            "-r".into(),
            RATE.to_string(),
            "-rp".into(),
            "1000".into(),
            "-m".into(),
            CALLS.to_string(),
            "-l".into(),
            (RATE * 4).to_string(),
            // A response that never comes fails its call rather than hanging it.
            "-recv_timeout".into(),
            "8000".into(),
        ],
    );
    let end = started + BOUND;
    let uac_status = uac.wait_until(end);
    let elapsed = started.elapsed();
    // The UAS ends after its last call's BYE; bounded all the same.
    let uas_status = uas.wait_until(Instant::now() + Duration::from_secs(15));
    sw.assert_alive();
    // Every call reached the agent and ended on the switch too.
    let ended = sw.events("call-ended").len();

    let (c, s) = (uac.stats(), uas.stats());
    let figures = format!(
        "{CALLS} calls at {RATE}/s in {:.1} s; UAC: {} ok, {} failed, {} retransmissions (exit {uac_status:?}); \
         UAS: {} ok, {} failed, {} retransmissions (exit {uas_status:?})",
        elapsed.as_secs_f64(),
        c.get("SuccessfulCall(C)").map_or("?", |v| v),
        c.get("FailedCall(C)").map_or("?", |v| v),
        c.get("Retransmissions(C)").map_or("?", |v| v),
        s.get("SuccessfulCall(C)").map_or("?", |v| v),
        s.get("FailedCall(C)").map_or("?", |v| v),
        s.get("Retransmissions(C)").map_or("?", |v| v),
    );
    eprintln!("{figures}");
    let failed = || {
        format!(
            "{figures}\n--- UAC ---\n{}\n--- UAS ---\n{}\n--- switch stderr ---\n{}",
            uac.describe(),
            uas.describe(),
            sw.stderr_tail()
        )
    };
    assert!(
        uac_status.is_some(),
        "the UAC did not end within {BOUND:?}: {}",
        failed()
    );
    assert_eq!(
        count(&c, "SuccessfulCall(C)"),
        u64::from(CALLS),
        "{}",
        failed()
    );
    assert_eq!(count(&c, "FailedCall(C)"), 0, "{}", failed());
    assert_eq!(count(&c, "Retransmissions(C)"), 0, "{}", failed());
    assert_eq!(
        count(&s, "SuccessfulCall(C)"),
        u64::from(CALLS),
        "{}",
        failed()
    );
    assert_eq!(count(&s, "FailedCall(C)"), 0, "{}", failed());
    assert_eq!(count(&s, "Retransmissions(C)"), 0, "{}", failed());
    assert_eq!(
        uac_status.and_then(|s| s.code()),
        Some(0),
        "SIPp's exit status counts failed calls: {}",
        failed()
    );
    assert_eq!(ended, CALLS as usize, "call-ended events: {}", failed());
}
