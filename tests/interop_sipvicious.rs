//! SIPVicious 0.3.8 (PyPI `sipvicious`, installed into `.venv-interop/` by
//! `scripts/test`) against the switch on its shipped configuration: the
//! scanner an attacker points at a PBX gets nothing from it.
//!
//! - `svwar` (extension enumeration) with REGISTER, OPTIONS and INVITE over
//!   a range holding the shipped users 1001-1004 (1001 registered, the
//!   others not) finds none of them on `internal`, and none on `external`
//!   from an address outside its trunk peer's ACL: the switch gives a known
//!   user, a registered one and an unknown one the same final answer (read
//!   from svwar's `--debug` transcript, not only from its verdict).
//! - `svcrack` (password cracking) against a real user, with the right
//!   password after 50 wrong ones, does not find it: the guard blocks the
//!   (source, user) pair after `max_failures` (10) and the right password
//!   then gets no answer, while another user behind the same address still
//!   registers; cracking every shipped user from one address blocks the
//!   address (`source-blocked`), which then gets no answer to anything.
//!
//! svwar's `-b` (binding address) is ignored by 0.3.8, so it always sends
//! from 127.0.0.1; on the shipped configuration that is the demo trunk
//! peer's ACL (`127.0.0.1/32`), a trusted peer which the dial plan answers
//! 480 for a known user without a phone and 404 for an unknown number. The
//! `external` scan therefore moves that ACL away, making the scanner the
//! stranger it would be on a real network.

mod common;
#[path = "interop/mod.rs"]
mod interop;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::sippbg::Sipp;
use common::{free_port, udp_options, Switch, EVENT};
use interop::shipped::{internal, udp_addr, Shipped, PASSWORD};

/// The shipped users (`sip-profiles/internal.toml`).
const USERS: [&str; 4] = ["1001", "1002", "1003", "1004"];
/// The shipped guard's `max_failures`.
const MAX_FAILURES: usize = 10;
/// A scan's bound (svwar takes under a second here; svcrack waits about
/// 10 s for answers that no longer come once it is blocked).
const TOOL_BOUND: Duration = Duration::from_secs(60);

const MISSING: &str =
    "sipvicious is not installed: run bash scripts/test (installs sipvicious into .venv-interop)";

/// The interpreter of the interop venv that imports `sipvicious`.
fn python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| interop::venv_python("sipvicious.svwar, sipvicious.svcrack", MISSING))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One finished run of a SIPVicious tool.
struct ToolRun {
    command: String,
    /// stdout and stderr, interleaved as written.
    output: String,
}

impl ToolRun {
    fn found_nothing(&self) -> bool {
        self.output.contains("WARNING:root:found nothing")
    }
}

impl std::fmt::Display for ToolRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "$ {}\n{}", self.command, self.output)
    }
}

/// Runs `sipvicious.<tool>` with `args`, killed if it outlasts [`TOOL_BOUND`].
fn sipvicious(tool: &str, args: &[String]) -> ToolRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_path = dir.path().join("output.log");
    let out = std::fs::File::create(&out_path).expect("output file");
    let script = format!(
        "import sys; from sipvicious.{tool} import main; sys.argv[0] = '{tool}'; sys.exit(main())"
    );
    let command = format!("sipvicious_{tool} {}", args.join(" "));
    let mut child = Command::new(python())
        .arg("-c")
        .arg(&script)
        .args(args)
        .current_dir(dir.path())
        // Its sessions and logs go under $HOME/.sipvicious: keep them in the tempdir.
        .env("HOME", dir.path())
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
    let deadline = Instant::now() + TOOL_BOUND;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let output = std::fs::read_to_string(&out_path).unwrap_or_default();
            panic!("{command} still running after {TOOL_BOUND:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    ToolRun {
        command,
        output: std::fs::read_to_string(&out_path).unwrap_or_default(),
    }
}

/// Final responses svwar printed with `--debug`, as (To user, status code).
fn final_answers(run: &ToolRun) -> Vec<(String, u16)> {
    run.output
        .lines()
        .filter_map(|l| l.strip_prefix("b'SIP/2.0 "))
        .filter_map(|l| {
            let code: u16 = l.get(..3)?.parse().ok()?;
            let to = l.split("\\r\\n").find(|h| h.starts_with("To:"))?;
            let user = to.split("<sip:").nth(1)?.split('@').next()?.to_string();
            Some((user, code))
        })
        .filter(|(_, code)| *code >= 200)
        .collect()
}

/// svwar over `first`-1012 with `method` against `target`: it must find
/// nothing, and every final answer it got (the random "bad user" it probes
/// first included) must carry one status code, `first`'s among them.
fn svwar_finds_nothing(sw: &mut Switch, target: std::net::SocketAddr, method: &str, first: &str) {
    let run = sipvicious(
        "svwar",
        &[
            "--force".into(),
            "--debug".into(),
            "-P".into(),
            free_port().to_string(),
            "-m".into(),
            method.into(),
            "-e".into(),
            format!("{first}-1012"),
            format!("udp://{target}"),
        ],
    );
    let answers = final_answers(&run);
    assert!(
        answers.iter().any(|(u, _)| u == first),
        "svwar got no final answer for {first}:\n{run}\n{}",
        sw.report()
    );
    let codes: BTreeMap<u16, Vec<&str>> = answers.iter().fold(BTreeMap::new(), |mut m, (u, c)| {
        m.entry(*c).or_default().push(u.as_str());
        m
    });
    assert_eq!(
        codes.len(),
        1,
        "{method} to {target}: known and unknown users answered differently {codes:?}:\n{run}"
    );
    assert!(
        run.found_nothing() && !run.output.contains(" exists"),
        "svwar {method} found something:\n{run}"
    );
}

/// Registers `user` from `port` (SIPp register.xml) and waits for the event.
fn register(sw: &mut Switch, user: &str, port: u16) {
    let run = Sipp::new("register", internal(sw))
        .port(port)
        .service(user)
        .arg("-au")
        .arg(user)
        .arg("-ap")
        .arg(PASSWORD)
        .run();
    run.assert_ok(sw);
    sw.await_event("registered", &[("user", user)], EVENT);
}

/// A wordlist of 50 wrong passwords, then the right one.
fn wordlist(dir: &tempfile::TempDir) -> PathBuf {
    let mut words: Vec<String> = (1..=50).map(|i| format!("wrong{i}")).collect();
    words.push(PASSWORD.to_string());
    let p = dir.path().join("words.txt");
    std::fs::write(&p, words.join("\n") + "\n").expect("write wordlist");
    p
}

fn svcrack(target: std::net::SocketAddr, user: &str, words: &std::path::Path) -> ToolRun {
    sipvicious(
        "svcrack",
        &[
            "-u".into(),
            user.into(),
            "-d".into(),
            words.display().to_string(),
            "-P".into(),
            free_port().to_string(),
            format!("udp://{target}"),
        ],
    )
}

fn assert_not_cracked(sw: &mut Switch, run: &ToolRun) {
    assert!(
        run.found_nothing() && !run.output.contains("The password for"),
        "svcrack found a password:\n{run}\n{}",
        sw.report()
    );
}

#[test]
fn svwar_enumerates_no_shipped_user() {
    let mut sw = Shipped::new().start();
    register(&mut sw, "1001", free_port());
    let target = internal(&sw);
    // svwar stops at the first answer equal to its "bad user" probe's, so
    // each scan starts at the user it is to test.
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        for first in USERS {
            svwar_finds_nothing(&mut sw, target, method, first);
        }
    }
    assert!(
        sw.events("registered").len() == 1,
        "svwar registered something:\n{}",
        sw.report()
    );
}

#[test]
fn svwar_finds_nothing_on_the_trunk_profile_from_a_stranger() {
    // The scanner is not the trunk peer (see the module header).
    let mut sw = Shipped::new()
        .edit(
            "external.toml",
            "acl = [\"127.0.0.1/32\"]",
            "acl = [\"192.0.2.1/32\"]",
        )
        .start();
    register(&mut sw, "1001", free_port());
    let target = udp_addr(&sw, "external");
    for method in ["REGISTER", "OPTIONS", "INVITE"] {
        for first in USERS {
            svwar_finds_nothing(&mut sw, target, method, first);
        }
    }
    assert!(
        sw.events("call-started").is_empty(),
        "a scan placed a call:\n{}",
        sw.report()
    );
}

#[test]
fn svcrack_does_not_find_a_password_the_guard_blocks_first() {
    let mut sw = Shipped::new().start();
    let dir = tempfile::tempdir().expect("tempdir");
    let words = wordlist(&dir);

    let run = svcrack(internal(&sw), "1001", &words);
    assert_not_cracked(&mut sw, &run);
    let ev = sw.await_event("user-blocked", &[("user", "1001")], EVENT);
    assert_eq!(ev.get("source"), "127.0.0.1", "{ev:?}");
    let failures = sw
        .events("auth-failed")
        .into_iter()
        .filter(|e| e.get("user") == "1001")
        .count();
    assert!(
        (MAX_FAILURES..=MAX_FAILURES + 1).contains(&failures),
        "{failures} failures counted for 1001 (the pair blocks at {MAX_FAILURES}; a wrong \
         password that raced the block may count once more):\n{}",
        sw.report()
    );

    // The right password alone, from the same address: no answer at all.
    let right = dir.path().join("right.txt");
    std::fs::write(&right, format!("{PASSWORD}\n")).expect("write");
    let again = svcrack(internal(&sw), "1001", &right);
    assert_not_cracked(&mut sw, &again);
    assert!(
        again.output.contains("no server response"),
        "the blocked pair was answered:\n{again}"
    );
    assert!(
        !sw.has_event("registered", &[("user", "1001")]),
        "1001 registered:\n{}",
        sw.report()
    );
    assert!(
        !sw.has_event("source-blocked", &[]),
        "one user's failures blocked the whole address:\n{}",
        sw.report()
    );
    // Another phone behind the same address is not locked out.
    register(&mut sw, "1002", free_port());
}

#[test]
fn svcrack_over_every_shipped_user_blocks_the_address() {
    let mut sw = Shipped::new().start();
    let dir = tempfile::tempdir().expect("tempdir");
    let words = wordlist(&dir);
    // One svcrack per user, all at once (each waits ~10 s once blocked).
    let target = internal(&sw);
    let runs: Vec<ToolRun> = std::thread::scope(|s| {
        let handles: Vec<_> = USERS
            .iter()
            .map(|user| s.spawn(|| svcrack(target, user, &words)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("svcrack thread"))
            .collect()
    });
    for run in &runs {
        assert_not_cracked(&mut sw, run);
    }
    let ev = sw.await_event("source-blocked", &[("source", "127.0.0.1")], EVENT);
    assert!(ev.get("for").ends_with('s'), "{ev:?}");
    assert!(
        sw.events("registered").is_empty(),
        "a cracked user registered:\n{}",
        sw.report()
    );
    // The whole address gets no answer now, to anything.
    assert_eq!(
        udp_options(internal(&sw), "sipvicious-after-block"),
        None,
        "a blocked address was answered"
    );
}
