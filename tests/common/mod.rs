//! Harness for the acceptance tests: the real `switchback` binary on loopback,
//! driven by real SIPp and raw sockets.
//!
//! Synchronisation is on the lines the binary prints (`listening`, `ready`,
//! `event ...`), never on sleeps; every wait has a bound and a failure shows
//! what was seen (stdout lines and the tail of stderr).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod callbacks;
pub mod calls;
pub mod http;
pub mod receiver;
pub mod rtp;
pub mod sippbg;
pub mod ua;
pub mod wav;

pub const STARTUP: Duration = Duration::from_secs(20);
pub const EVENT: Duration = Duration::from_secs(10);

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The knobs the tests vary; everything else is the documented config.
#[derive(Clone, Debug)]
pub struct TestConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub algorithms: Vec<&'static str>,
    pub max_failures: u32,
    pub max_users_per_source: u32,
    pub window_secs: u64,
    pub block_secs: u64,
    pub max_transactions_per_source: usize,
    pub log_sip_messages: bool,
    /// (username, password)
    pub users: Vec<(String, String)>,
}

impl Default for TestConfig {
    fn default() -> Self {
        TestConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            // SIPp 3.6 answers the first challenge and computes MD5 only.
            algorithms: vec!["MD5"],
            max_failures: 10,
            max_users_per_source: 4,
            window_secs: 60,
            block_secs: 300,
            max_transactions_per_source: 200,
            log_sip_messages: true,
            users: (1001..=1005)
                .map(|u| (u.to_string(), format!("pw{u}")))
                .collect(),
        }
    }
}

impl TestConfig {
    pub fn to_toml(&self) -> String {
        let algs: Vec<String> = self.algorithms.iter().map(|a| format!("\"{a}\"")).collect();
        let mut s = format!(
            r#"[general]
log_sip_messages = {log}
max_message_size = 65535
http_api_keys = ["{key}"]

[profiles.internal]
realm = "switchback.local"
registrar = true
tcp_idle_timeout_secs = 600
listen = [
  {{ transport = "udp", address = "127.0.0.1:0" }},
  {{ transport = "tcp", address = "127.0.0.1:0" }},
]

[profiles.internal.timers]
t1_ms = 500
t2_ms = 4000
t4_ms = 5000

[profiles.internal.registration]
min_expires = {min}
max_expires = {max}
default_expires = {def}
nonce_lifetime_secs = 300
algorithms = [{algs}]

[profiles.internal.auth_guard]
max_failures = {mf}
max_users_per_source = {mu}
window_secs = {ws}
block_secs = {bs}
max_transactions_per_source = {mt}
"#,
            log = self.log_sip_messages,
            key = http::TEST_API_KEY,
            min = self.min_expires,
            max = self.max_expires,
            def = self.default_expires,
            algs = algs.join(", "),
            mf = self.max_failures,
            mu = self.max_users_per_source,
            ws = self.window_secs,
            bs = self.block_secs,
            mt = self.max_transactions_per_source,
        );
        for (u, p) in &self.users {
            s.push_str(&format!(
                "\n[[profiles.internal.users]]\nusername = \"{u}\"\npassword = \"{p}\"\n"
            ));
        }
        s
    }
}

#[derive(Clone, Debug)]
pub struct Listener {
    pub profile: String,
    pub transport: String,
    pub addr: SocketAddr,
}

/// An `event NAME key=value ...` line.
#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub fields: HashMap<String, String>,
    pub line: String,
}

impl Event {
    pub fn parse(line: &str) -> Option<Event> {
        let rest = line.strip_prefix("event ")?;
        let (name, mut rest) = match rest.split_once(' ') {
            Some((n, r)) => (n, r),
            None => (rest, ""),
        };
        let mut fields = HashMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let Some((k, after)) = rest.split_once('=') else {
                break;
            };
            let (v, after) = if let Some(q) = after.strip_prefix('"') {
                match q.find('"') {
                    Some(i) => (&q[..i], &q[i + 1..]),
                    None => (q, ""),
                }
            } else {
                match after.find(' ') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, ""),
                }
            };
            fields.insert(k.to_string(), v.to_string());
            rest = after;
        }
        Some(Event {
            name: name.to_string(),
            fields,
            line: line.to_string(),
        })
    }

    pub fn get(&self, k: &str) -> &str {
        self.fields.get(k).map(String::as_str).unwrap_or("")
    }
}

/// A running `switchback run`, killed (SIGTERM, then SIGKILL) on drop.
pub struct Switch {
    child: Option<Child>,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    /// Index in `seen` of the first line no wait has looked at yet.
    cursor: usize,
    pub listeners: Vec<Listener>,
    pub dir: TempDir,
    pub config_path: PathBuf,
    stderr_path: PathBuf,
}

impl Switch {
    pub fn start(config: &TestConfig) -> Switch {
        Switch::start_with_text(&config.to_toml())
    }

    pub fn start_with_text(config_text: &str) -> Switch {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("switchback.toml");
        std::fs::write(&config_path, config_text).expect("write config");
        Switch::start_in(dir, config_path)
    }

    /// Starts `switchback run --config config_path` with `dir` as its working
    /// directory (kept, with the stderr log, for as long as the switch lives).
    pub fn start_in(dir: TempDir, config_path: PathBuf) -> Switch {
        let stderr_path = dir.path().join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchback"))
            // Its own working directory: the default database and recordings
            // folder are relative, and no two switches may share them.
            .current_dir(dir.path())
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env(
                "SWITCHBACK_LOG",
                std::env::var("SWITCHBACK_TEST_LOG")
                    .or_else(|_| std::env::var("SWITCHBACK_LOG"))
                    .unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn switchback");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut sw = Switch {
            child: Some(child),
            lines: rx,
            seen: Vec::new(),
            cursor: 0,
            listeners: Vec::new(),
            dir,
            config_path,
            stderr_path,
        };
        sw.wait_for("the `ready` line", STARTUP, |l| l == "ready");
        for line in sw.seen.clone() {
            if let Some(l) = parse_listening(&line) {
                sw.listeners.push(l);
            }
        }
        assert!(
            !sw.listeners.is_empty(),
            "no `listening` line before `ready`:\n{}",
            sw.report()
        );
        sw
    }

    /// The address of the first listener with this transport (`udp`, `tcp`).
    pub fn addr(&self, transport: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|l| l.transport == transport)
            .unwrap_or_else(|| panic!("no {transport} listener in {:?}", self.listeners))
            .addr
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        if self.cursor < self.seen.len() {
            self.cursor += 1;
            return Some(self.seen[self.cursor - 1].clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.seen.push(line.clone());
                self.cursor = self.seen.len();
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads everything printed so far, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
    }

    /// Waits (at most `timeout`) for the next line matching `pred`, looking only at
    /// lines not yet examined by a previous wait. Panics with what was seen.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        while let Some(line) = self.next_line(deadline) {
            if pred(&line) {
                return line;
            }
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            self.report()
        );
    }

    /// Waits for `event NAME` whose fields include every `(key, value)` given.
    pub fn wait_event(&mut self, name: &str, fields: &[(&str, &str)], timeout: Duration) -> Event {
        let what = format!("event {name} {fields:?}");
        let line = self.wait_for(&what, timeout, |l| {
            Event::parse(l)
                .is_some_and(|e| e.name == name && fields.iter().all(|(k, v)| e.get(k) == *v))
        });
        Event::parse(&line).expect("matched an event")
    }

    /// The HTTP API's address, from the `http <addr>` line printed before `ready`.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.seen
            .iter()
            .find_map(|l| l.strip_prefix("http ")?.trim().parse().ok())
    }

    /// Like [`Switch::wait_event`], but also matches lines an earlier wait already
    /// passed over: for events whose relative order the test does not care about.
    pub fn await_event(&mut self, name: &str, fields: &[(&str, &str)], timeout: Duration) -> Event {
        self.drain();
        let hit = |l: &str| {
            Event::parse(l).filter(|e| e.name == name && fields.iter().all(|(k, v)| e.get(k) == *v))
        };
        if let Some(e) = self.seen.iter().find_map(|l| hit(l)) {
            return e;
        }
        self.cursor = self.seen.len();
        self.wait_event(name, fields, timeout)
    }

    /// Whether an event matching `fields` has been printed (no waiting).
    pub fn has_event(&mut self, name: &str, fields: &[(&str, &str)]) -> bool {
        self.drain();
        self.seen
            .iter()
            .filter_map(|l| Event::parse(l))
            .any(|e| e.name == name && fields.iter().all(|(k, v)| e.get(k) == *v))
    }

    /// Every event line about this call so far, in order.
    pub fn call_events(&mut self, call: &str) -> Vec<String> {
        self.drain();
        self.seen
            .iter()
            .filter(|l| Event::parse(l).is_some_and(|e| e.get("call") == call))
            .cloned()
            .collect()
    }

    /// All events printed so far (drains first).
    pub fn events(&mut self, name: &str) -> Vec<Event> {
        self.drain();
        self.seen
            .iter()
            .filter_map(|l| Event::parse(l))
            .filter(|e| e.name == name)
            .collect()
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        // SWITCHBACK_TEST_STDERR_LINES widens the tail shown on a failure.
        let n = std::env::var("SWITCHBACK_TEST_STDERR_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn report(&mut self) -> String {
        self.drain();
        format!(
            "--- switchback stdout ({} lines) ---\n{}\n--- switchback stderr (tail) ---\n{}",
            self.seen.len(),
            self.seen.join("\n"),
            self.stderr_tail()
        )
    }

    /// `None` while running.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn assert_alive(&mut self) {
        if let Some(st) = self.exit_status() {
            panic!("switchback exited ({st}):\n{}", self.report());
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("child").id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        // Stdout reaches EOF when the process exits: the reader thread then
        // ends and the line channel disconnects. That is the event waited on.
        let deadline = Instant::now() + timeout;
        while self.next_line(deadline).is_some() {}
        if Instant::now() < deadline {
            if let Ok(status) = child.wait() {
                return Some(status);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Switch {
    /// `kill -9`: no chance to flush or say goodbye. Returns once reaped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate(Duration::from_secs(5));
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// `listening <profile> <udp|tcp|tls> <ip:port>`
pub fn parse_listening(line: &str) -> Option<Listener> {
    let mut parts = line.split_whitespace();
    if parts.next()? != "listening" {
        return None;
    }
    let profile = parts.next()?.to_string();
    let transport = parts.next()?.to_ascii_lowercase();
    let addr = parts.next()?.parse().ok()?;
    Some(Listener {
        profile,
        transport,
        addr,
    })
}

static NEXT_PORT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// A loopback port free for both UDP and TCP right now, for a peer the
/// test starts next (SIPp, a phone). Taken from 10000..20000, below the RTP
/// ranges of `calls::rtp_ranges` and below Linux's ephemeral range, so that
/// no socket bound to port 0 in the meantime (by the switch, another peer or
/// another test thread) can take it before the peer binds it. Picks are 8
/// apart, because peers bind the ports after theirs too (SIPp its media on
/// +2 and +3, baresip its TLS listener on +1); a counter keeps this
/// process's picks apart, starting at a place drawn from the pid.
pub fn free_port() -> u16 {
    use std::sync::atomic::Ordering;
    const BLOCKS: u32 = 10_000 / 8;
    let _ = NEXT_PORT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2_654_435_761) % BLOCKS,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..BLOCKS {
        let block = NEXT_PORT.fetch_add(1, Ordering::SeqCst) % BLOCKS;
        let port = (10_000 + block * 8) as u16;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free loopback port in 10000..20000");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
    fn sipp_mode(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
}

/// One SIPp run and where its traces are.
pub struct SippRun {
    pub output: Output,
    pub local_port: u16,
    pub messages: String,
    pub errors: String,
    pub command: String,
    pub(crate) _dir: TempDir,
}

impl SippRun {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    pub fn describe(&self) -> String {
        format!(
            "$ {}\nexit: {}\n--- sipp errors ---\n{}\n--- sipp messages (tail) ---\n{}\n--- sipp stderr ---\n{}",
            self.command,
            self.output.status,
            self.errors,
            tail(&self.messages, 200),
            String::from_utf8_lossy(&self.output.stderr)
        )
    }

    /// Panics unless SIPp exited 0; the message includes its traces and the switch's output.
    pub fn assert_ok(&self, sw: &mut Switch) {
        assert!(
            self.success(),
            "SIPp scenario failed\n{}\n{}",
            self.describe(),
            sw.report()
        );
    }
}

pub fn tail_pub(s: &str, n: usize) -> String {
    tail(s, n)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `sipp` with scenario `fixtures/sipp/NAME.xml` once (`-m 1` unless `extra`
/// sets `-m`) against `target`, bounded by `-timeout 20s -timeout_error`, from a
/// fresh local port, tracing errors and messages into a temporary directory.
pub fn sipp(scenario: &str, transport: Transport, target: SocketAddr, extra: &[&str]) -> SippRun {
    sipp_from_port(scenario, transport, target, free_port(), extra)
}

pub fn sipp_from_port(
    scenario: &str,
    transport: Transport,
    target: SocketAddr,
    port: u16,
    extra: &[&str],
) -> SippRun {
    let dir = tempfile::tempdir().expect("tempdir");
    let sf = repo_path(&format!("fixtures/sipp/{scenario}.xml"));
    assert!(sf.exists(), "no scenario {}", sf.display());
    let msg_file = dir.path().join("messages.log");
    let err_file = dir.path().join("errors.log");
    let mut args: Vec<String> = vec![
        "-sf".into(),
        sf.display().to_string(),
        target.to_string(),
        "-t".into(),
        transport.sipp_mode().into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        port.to_string(),
        "-cp".into(),
        free_port().to_string(),
        "-nostdin".into(),
        "-timeout".into(),
        "20s".into(),
        "-timeout_error".into(),
        "-trace_err".into(),
        "-error_file".into(),
        err_file.display().to_string(),
        "-trace_msg".into(),
        "-message_file".into(),
        msg_file.display().to_string(),
    ];
    if !extra.contains(&"-m") {
        args.extend(["-m".into(), "1".into()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let command = format!("sipp {}", args.join(" "));
    let output = Command::new("sipp")
        .args(&args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run sipp (install sip-tester): {e}"));
    let messages = std::fs::read_to_string(&msg_file).unwrap_or_default();
    let errors = std::fs::read_to_string(&err_file).unwrap_or_default();
    let run = SippRun {
        output,
        local_port: port,
        messages,
        errors,
        command,
        _dir: dir,
    };
    if !run.success() {
        eprintln!("SIPp exited non-zero:\n{}", run.describe());
    }
    run
}

/// Credentials arguments for user `u` of the default test config.
pub fn user_args(user: &str, password: &str) -> Vec<String> {
    vec![
        "-s".into(),
        user.into(),
        "-au".into(),
        user.into(),
        "-ap".into(),
        password.into(),
    ]
}

pub fn sipp_user(
    scenario: &str,
    transport: Transport,
    sw: &Switch,
    user: &str,
    password: &str,
    extra: &[&str],
) -> SippRun {
    let mut args = user_args(user, password);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sipp(scenario, transport, sw.addr(transport.name()), &args)
}

// ------------------------------------------------------------------ raw SIP

/// An OPTIONS request from `local` (Via sent-by) with this Call-ID.
pub fn options_request(local: SocketAddr, transport: Transport, call_id: &str) -> Vec<u8> {
    format!(
        "OPTIONS sip:{local} SIP/2.0\r\n\
         Via: SIP/2.0/{t} {local};branch=z9hG4bK-{cid};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:probe@{local}>;tag=probe-{cid}\r\n\
         To: <sip:switch@{local}>\r\n\
         Call-ID: {cid}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        t = transport.name().to_uppercase(),
        cid = call_id,
    )
    .into_bytes()
}

/// Status code and Call-ID of a response (via the crate's own parser).
pub fn response_summary(bytes: &[u8]) -> Option<(u16, String)> {
    // Read as text, independently of the switch's own parser: a response to an
    // extension method (CSeq: 1 NEWMETHOD) is outside rsip's method set.
    let text = std::str::from_utf8(bytes).ok()?;
    let head = &text[..text.find("\r\n\r\n")?];
    let mut lines = head.split("\r\n");
    let code = lines
        .next()?
        .strip_prefix("SIP/2.0 ")?
        .get(..3)?
        .parse()
        .ok()?;
    let call_id = lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("call-id") || name.eq_ignore_ascii_case("i"))
            .then(|| value.trim().to_string())
    })?;
    Some((code, call_id))
}

/// Receives datagrams until a response with this Call-ID arrives or `timeout`
/// passes. Returns (status, responses with other Call-IDs seen meanwhile).
pub fn udp_await_response(
    sock: &UdpSocket,
    call_id: &str,
    timeout: Duration,
) -> (Option<u16>, Vec<(u16, String)>) {
    let deadline = Instant::now() + timeout;
    let mut others = Vec::new();
    let mut buf = vec![0u8; 70_000];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (None, others);
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => match response_summary(&buf[..n]) {
                Some((code, cid)) if cid == call_id => return (Some(code), others),
                Some(other) => others.push(other),
                None => others.push((0, String::from_utf8_lossy(&buf[..n.min(200)]).into_owned())),
            },
            Err(_) => return (None, others),
        }
    }
}

/// Reads one SIP message from a stream (head, then Content-Length bytes).
/// `Ok(None)` when the peer closed the connection first.
pub fn read_stream_message(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    timeout: Duration,
) -> std::io::Result<Option<Vec<u8>>> {
    let deadline = Instant::now() + timeout;
    loop {
        // Skip keep-alive CRLFs between messages.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    let n = n.trim().to_ascii_lowercase();
                    (n == "content-length" || n == "l").then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let msg: Vec<u8> = buf.drain(..end + 4 + len).collect();
                return Ok(Some(msg));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no complete message",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16384];
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Sends OPTIONS over a fresh TCP connection and returns the answer's status.
pub fn tcp_options(target: SocketAddr, call_id: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(5)).ok()?;
    let local = s.local_addr().ok()?;
    s.write_all(&options_request(local, Transport::Tcp, call_id))
        .ok()?;
    let mut buf = Vec::new();
    let deadline = Instant::now() + EVENT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = read_stream_message(&mut s, &mut buf, left).ok()??;
        if let Some((code, cid)) = response_summary(&msg) {
            if cid == call_id && code >= 200 {
                return Some(code);
            }
        }
    }
}

/// Sends OPTIONS from a fresh UDP socket and returns the final answer's status.
pub fn udp_options(target: SocketAddr, call_id: &str) -> Option<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").ok()?;
    s.connect(target).ok()?;
    s.send(&options_request(
        s.local_addr().ok()?,
        Transport::Udp,
        call_id,
    ))
    .ok()?;
    udp_await_response(&s, call_id, EVENT).0
}
