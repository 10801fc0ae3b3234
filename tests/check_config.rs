//! `switchback check-config FILE`: exit 0 and `FILE: ok`, or exit 1 with one
//! `FILE:LINE: KEY: message` line per error on stderr.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::TestConfig;

fn check(path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchback"))
        .arg("check-config")
        .arg(path)
        .output()
        .expect("run switchback check-config")
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// (line, key) of every `FILE:LINE: KEY: message` line on stderr.
fn errors(out: &Output, file: &Path) -> Vec<(usize, String, String)> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", file.display());
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (line, rest) = rest.split_once(": ")?;
            let (key, msg) = rest.split_once(": ")?;
            Some((line.parse().ok()?, key.to_string(), msg.to_string()))
        })
        .collect()
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_good_config_passes() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "good.toml", &TestConfig::default().to_toml());
    let out = check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{}: ok", p.display()),
        "{}",
        show(&out)
    );
}

#[test]
fn the_shipped_profiles_pass() {
    let p = common::repo_path("sip-profiles/switchback.toml");
    if !p.exists() {
        panic!("sip-profiles/switchback.toml is missing");
    }
    let out = check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        out.stderr.is_empty(),
        "the shipped profiles draw no warning\n{}",
        show(&out)
    );
}

#[test]
fn more_than_one_digest_algorithm_is_warned_about_but_accepted() {
    let text = r#"[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:0" }]
[profiles.internal.registration]
algorithms = ["SHA-256", "MD5"]
[[profiles.internal.registration.user_agent_algorithms]]
user_agent = "^PJSIP"
algorithms = ["SHA-256"]
[[profiles.internal.registration.user_agent_algorithms]]
user_agent = "^Yealink"
algorithms = ["SHA-256", "MD5"]
[[profiles.internal.users]]
username = "1001"
password = "pw"
algorithms = ["MD5", "SHA-256"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "two.toml", text);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let warned: Vec<(usize, String)> = errors(&out, &p)
        .into_iter()
        .filter(|(_, _, m)| m.starts_with("warning:") && m.contains("baresip"))
        .map(|(l, k, _)| (l, k))
        .collect();
    assert_eq!(
        warned,
        [
            (5, "profiles.internal.registration.algorithms".to_string()),
            (
                11,
                "profiles.internal.registration.user_agent_algorithms[1].algorithms".to_string()
            ),
            (15, "profiles.internal.users[0].algorithms".to_string()),
        ],
        "{}",
        show(&out)
    );
}

#[test]
fn a_bad_user_agent_pattern_is_an_error() {
    let text = r#"[profiles.internal]
registrar = true
listen = [{ transport = "udp", address = "127.0.0.1:0" }]
[[profiles.internal.registration.user_agent_algorithms]]
user_agent = "^(PJSIP"
algorithms = ["SHA-256"]
[[profiles.internal.users]]
username = "1001"
ha1_md5 = "0123456789abcdef0123456789abcdef"
algorithms = ["SHA-256"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad-ua.toml", text);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let errs = errors(&out, &p);
    let keys: Vec<&str> = errs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"profiles.internal.registration.user_agent_algorithms[0].user_agent"),
        "{}",
        show(&out)
    );
    // Its only secret is an MD5 HA1 while it is offered SHA-256 alone.
    assert!(
        errs.iter()
            .any(|(l, k, _)| *l == 8 && k == "profiles.internal.users[0].username"),
        "{}",
        show(&out)
    );
}

#[test]
fn semantic_errors_are_each_reported_with_line_and_key() {
    let text = r#"[profiles.internal]
registrar = true
listen = [
  { transport = "udp", address = "127.0.0.1:5060" },
  { transport = "udp", address = "127.0.0.1:5060" },
]
[profiles.internal.registration]
min_expires = 600
max_expires = 60
algorithms = ["MD5"]
[[profiles.internal.users]]
username = "1001"
[[profiles.internal.users]]
username = "1002"
password = "fine"
"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", text);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let errs = errors(&out, &p);
    let stderr_lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(
        errs.len(),
        stderr_lines,
        "every stderr line is FILE:LINE: KEY: message\n{}",
        show(&out)
    );
    let has = |line: &[usize], key: &str| errs.iter().any(|(l, k, _)| line.contains(l) && k == key);
    let mut missing = Vec::new();
    if !has(&[5], "profiles.internal.listen[1].address") {
        missing.push("duplicate listen address at 5: profiles.internal.listen[1].address");
    }
    if !has(&[8], "profiles.internal.registration.min_expires")
        && !has(&[9], "profiles.internal.registration.max_expires")
    {
        missing.push("min_expires > max_expires at 8 (min_expires) or 9 (max_expires)");
    }
    if !errs
        .iter()
        .any(|(l, k, _)| [11, 12].contains(l) && k.starts_with("profiles.internal.users[0]"))
    {
        missing.push("user without password or ha1 at 11/12: profiles.internal.users[0]...");
    }
    if errs
        .iter()
        .any(|(_, k, _)| k.starts_with("profiles.internal.users[1]"))
    {
        missing.push("(no error expected for users[1], which has a password)");
    }
    assert!(
        missing.is_empty(),
        "not reported as expected: {missing:?}\ngot {errs:?}\n{}",
        show(&out)
    );
}

fn single_error(name: &str, text: &str, line: usize, key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), name, text);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let errs = errors(&out, &p);
    assert!(
        errs.iter().any(|(l, k, _)| *l == line && k == key),
        "expected {}:{line}: {key}: ...\ngot {errs:?}\n{}",
        p.display(),
        show(&out)
    );
}

#[test]
fn a_bad_address_names_its_line_and_key() {
    single_error(
        "addr.toml",
        "[profiles.internal]\nregistrar = true\nlisten = [\n  { transport = \"udp\", address = \"127.0.0.1:5060\" },\n  { transport = \"udp\", address = \"not-an-address\" },\n]\n",
        5,
        "profiles.internal.listen[1].address",
    );
}

#[test]
fn too_many_sip_workers_names_its_line_and_key() {
    single_error(
        "workers.toml",
        "[general]\nsip_workers = 100000\n\n[profiles.internal]\nregistrar = true\nlisten = [ { transport = \"udp\", address = \"127.0.0.1:5060\" } ]\n",
        2,
        "general.sip_workers",
    );
}

#[test]
fn an_unknown_transport_names_its_line_and_key() {
    single_error(
        "transport.toml",
        "[profiles.internal]\nregistrar = true\nlisten = [\n  { transport = \"sctp\", address = \"127.0.0.1:5060\" },\n]\n",
        4,
        "profiles.internal.listen[0].transport",
    );
}

#[test]
fn callback_errors_name_their_line_and_key() {
    let mut text = TestConfig::default().to_toml();
    let base = text.lines().count();
    text.push_str(
        r#"[callback]
agent_profile = "internal"
[[callback.queues]]
id = "support"
time_zone = "Europe/Nowhere"
business_hours = [{ days = ["mon"], from = "18:00", to = "09:00" }]
[[callback.agents]]
user = "1001"
deny = ["webcallback.can-teleport"]
[[callback.agents]]
user = "9999"
"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "callback.toml", &text);
    let out = check(&p);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let errs: Vec<(usize, String)> = errors(&out, &p)
        .into_iter()
        .map(|(l, k, _)| (l - base, k))
        .collect();
    let want = [
        (5, "callback.queues[0].time_zone"),
        (6, "callback.queues[0].business_hours[0].to"),
        (9, "callback.agents[0].deny[0]"),
        (11, "callback.agents[1].user"),
    ];
    let want: Vec<(usize, String)> = want.iter().map(|(l, k)| (*l, k.to_string())).collect();
    assert_eq!(errs, want, "{}", show(&out));
}

#[test]
fn a_missing_file_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = check(&dir.path().join("nope.toml"));
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(!out.stderr.is_empty(), "{}", show(&out));
}

#[test]
fn media_ranges_beyond_the_open_file_limit_are_warned_about() {
    use std::os::unix::process::CommandExt;
    let p = common::repo_path("sip-profiles/switchback.toml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchback"));
    cmd.arg("check-config").arg(&p);
    // SAFETY: setrlimit is async-signal-safe; it only lowers the child's limit.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run switchback check-config");
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("16384 ports")
            && stderr.contains("only 4096 files")
            && stderr.contains("about 768 relayed calls"),
        "{}",
        show(&out)
    );
}
