//! PJSIP 2.15 phones: one `pjsua_agent.py` process (pjsua2 from PyPI, in
//! `.venv-interop/`) per phone, driven by JSON lines.
//!
//! The interpreter is `SWITCHBACK_PJSUA_PYTHON` (exported by `scripts/test`),
//! else `<repo>/.venv-interop/bin/python`; when neither imports pjsua2 the
//! test fails saying how to install it. Every command is answered (a failed
//! one fails the test with the phone's transcript); every wait for an event
//! is bounded. The process is killed when the `Phone` is dropped; when the
//! test is failing (a wait timed out, a command was refused...) the drop
//! prints every event the phone reported and the tail of its PJSIP log (SIP
//! messages included).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::wav::{self, Wav};
use crate::common::{free_port, repo_path};

/// How long a command's answer may take.
pub const REPLY: Duration = Duration::from_secs(10);
/// The default bound on waiting for a phone's event.
pub const WAIT: Duration = Duration::from_secs(15);

const MISSING: &str =
    "pjsua2 is not installed: run bash scripts/test (installs pjsua2-python into .venv-interop)";

/// The Python interpreter that imports pjsua2 (checked once per test binary).
pub fn python() -> PathBuf {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| super::venv_python("pjsua2", MISSING))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// One pjsua2 phone.
pub struct Phone {
    pub name: String,
    /// Its SIP UDP port on 127.0.0.1.
    pub port: u16,
    /// The frequency it plays into every call, Hz.
    pub tone: f64,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line the phone printed (JSON events; anything else kept as `{"raw": line}`).
    pub seen: Vec<Value>,
    /// Which of `seen` a wait has already matched (each event matches once).
    used: Vec<bool>,
    next_id: u64,
    pub dir: tempfile::TempDir,
}

impl Phone {
    /// Starts a phone named `name` (shown in failures) playing `tone` Hz, on a
    /// free loopback port.
    pub fn start(name: &str, tone: f64) -> Phone {
        Phone::start_with(name, tone, &[])
    }

    /// `start` with extra options of the script (`--no-ring`, `--no-auto-answer-header`).
    pub fn start_with(name: &str, tone: f64, extra: &[&str]) -> Phone {
        let py = python();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let script = repo_path("tests/interop/pjsua_agent.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let mut child = Command::new(&py)
            .arg("-u")
            .arg(&script)
            .args(["--port", &port.to_string()])
            .args(["--tone", &format!("{}", tone.round() as u32)])
            .arg("--log")
            .arg(dir.path().join("pjsip.log"))
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} {}: {e}", py.display(), script.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut phone = Phone {
            name: name.to_string(),
            port,
            tone,
            child: Some(child),
            stdin,
            lines: rx,
            seen: Vec::new(),
            used: Vec::new(),
            next_id: 0,
            dir,
        };
        let ready = phone.wait_for("ready", Duration::from_secs(20), |e| ev(e) == "ready");
        assert_eq!(
            ready["version"].as_str(),
            Some("2.15.1"),
            "{name}: unexpected PJSIP version"
        );
        phone
    }

    /// The phone's SIP address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn pull(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line }));
                if ev(&v) == "fatal" {
                    panic!("{}: the pjsua2 agent failed: {v}", self.name);
                }
                self.seen.push(v);
                self.used.push(false);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // Disconnected: the process is gone, nothing more will come.
            Err(RecvTimeoutError::Disconnected) => false,
        }
    }

    /// The agent's exit status once it has ended (`None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Takes in everything printed so far, without waiting.
    pub fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line }));
            self.seen.push(v);
            self.used.push(false);
        }
    }

    /// Index of the next event to be printed: `wait_since(mark, ..)` looks
    /// only at what comes after.
    pub fn mark(&mut self) -> usize {
        self.drain();
        self.seen.len()
    }

    /// Waits (at most `timeout`) for the first event not matched before that
    /// satisfies `pred`, and marks it matched. Panics with the transcript.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait_since(0, what, timeout, pred)
    }

    /// `wait_for`, looking only at events from index `from` on.
    pub fn wait_since(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        match self.try_wait_since(from, timeout, pred) {
            Some(v) => v,
            None => panic!(
                "{}: timed out after {timeout:?} waiting for {what} (its events follow)",
                self.name
            ),
        }
    }

    /// Like `wait_since`, but `None` on time-out.
    pub fn try_wait_since(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut i = from;
        loop {
            while i < self.seen.len() {
                if !self.used[i] && pred(&self.seen[i]) {
                    self.used[i] = true;
                    return Some(self.seen[i].clone());
                }
                i += 1;
            }
            // Everything printed so far was looked at: wait for more.
            if Instant::now() >= deadline || !self.pull(deadline) {
                return None;
            }
        }
    }

    /// Whether an event matching `pred` has been printed (no waiting, matched or not).
    pub fn has(&mut self, pred: impl Fn(&Value) -> bool) -> bool {
        self.drain();
        self.seen.iter().any(pred)
    }

    /// Sends a command and returns its successful answer; panics on an error
    /// answer or none within [`REPLY`].
    pub fn cmd(&mut self, cmd: &str, args: Value) -> Value {
        match self.try_cmd(cmd, args.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{}: {cmd} {args}: {e}", self.name),
        }
    }

    /// Sends a command; `Err` with the phone's error message when it refused.
    pub fn try_cmd(&mut self, cmd: &str, args: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = args;
        if msg.is_null() {
            msg = json!({});
        }
        msg["id"] = json!(id);
        msg["cmd"] = json!(cmd);
        let line = format!("{msg}\n");
        let stdin = self.stdin.as_mut().expect("stdin");
        if let Err(e) = stdin.write_all(line.as_bytes()).and_then(|_| stdin.flush()) {
            return Err(format!("cannot write to the agent: {e}"));
        }
        let what = format!("the answer to {cmd} (id {id})");
        let reply = self.wait_for(&what, REPLY, |e| ev(e) == "reply" && e["id"] == json!(id));
        if reply["ok"] == json!(true) {
            Ok(reply)
        } else {
            Err(reply["error"].as_str().unwrap_or("error").to_string())
        }
    }

    // ----------------------------------------------------------- accounts

    /// Registers `user` (password `password`) at `registrar`; returns the
    /// first registration outcome (`reg_state`: code, expires, active).
    pub fn register(&mut self, user: &str, password: &str, registrar: SocketAddr) -> Value {
        let m = self.mark();
        self.cmd(
            "register",
            json!({"user": user, "password": password, "server": registrar.to_string()}),
        );
        self.wait_since(m, "reg_state", WAIT, |e| ev(e) == "reg_state")
    }

    /// Registers and insists on 200 with a binding.
    pub fn register_ok(&mut self, user: &str, password: &str, registrar: SocketAddr) -> Value {
        let r = self.register(user, password, registrar);
        assert!(
            r["code"] == json!(200) && r["active"] == json!(true),
            "{}: registration of {user} failed: {r}",
            self.name
        );
        r
    }

    /// An account with no registrar (a far end reached through a trunk):
    /// incoming calls only.
    pub fn listen_as(&mut self, user: &str) {
        let server = self.addr().to_string();
        self.cmd("local", json!({"user": user, "server": server}));
    }

    // -------------------------------------------------------------- calls

    /// Calls `uri`; returns the phone's call id.
    pub fn call(&mut self, uri: &str) -> i64 {
        self.cmd("call", json!({ "uri": uri }))["call"]
            .as_i64()
            .expect("call id")
    }

    /// Waits for an incoming call; returns (call id, the incoming_call event).
    pub fn incoming(&mut self) -> (i64, Value) {
        let e = self.wait_for("an incoming call", WAIT, |e| ev(e) == "incoming_call");
        (e["call"].as_i64().expect("call id"), e)
    }

    pub fn answer(&mut self, call: i64, code: u16) {
        self.cmd("answer", json!({"call": call, "code": code}));
    }

    pub fn hangup(&mut self, call: i64) {
        self.cmd("hangup", json!({ "call": call }));
    }

    pub fn hold(&mut self, call: i64) {
        self.cmd("hold", json!({ "call": call }));
    }

    pub fn resume(&mut self, call: i64) {
        self.cmd("resume", json!({ "call": call }));
    }

    pub fn dtmf(&mut self, call: i64, digits: &str) {
        self.cmd("dtmf", json!({"call": call, "digits": digits}));
    }

    /// Waits for the call to reach `state` (`early`, `confirmed`, `disconnected`...).
    pub fn wait_state(&mut self, call: i64, state: &str) -> Value {
        self.wait_state_for(call, state, WAIT)
    }

    pub fn wait_state_for(&mut self, call: i64, state: &str, t: Duration) -> Value {
        let what = format!("call {call} {state}");
        self.wait_for(&what, t, |e| {
            ev(e) == "call_state" && e["call"] == json!(call) && e["state"] == json!(state)
        })
    }

    /// Waits for the call's audio to reach `status` (`active`, `local_hold`,
    /// `remote_hold`) after event index `from`.
    pub fn wait_media_since(&mut self, from: usize, call: i64, status: &str) -> Value {
        let what = format!("call {call} media {status}");
        self.wait_since(from, &what, WAIT, |e| {
            ev(e) == "media_state" && e["call"] == json!(call) && e["status"] == json!(status)
        })
    }

    /// Waits for an RFC 4733 digit received on `call`.
    pub fn wait_dtmf(&mut self, call: i64, digit: &str) -> Value {
        let what = format!("DTMF {digit} on call {call}");
        self.wait_for(&what, WAIT, |e| {
            ev(e) == "dtmf" && e["call"] == json!(call) && e["digit"] == json!(digit)
        })
    }

    // -------------------------------------------------------------- audio

    /// Records `secs` seconds of what the phone hears on `call` (polling the
    /// file's size with a deadline), closes the file and reads it.
    pub fn record(&mut self, call: i64, secs: f64) -> Wav {
        let path = self
            .dir
            .path()
            .join(format!("call{call}-{}.wav", self.next_id + 1));
        self.cmd(
            "record",
            json!({"call": call, "path": path.display().to_string()}),
        );
        // 16-bit mono at 8 kHz after a 44-byte header; PJSIP writes in blocks.
        let want = 44 + (secs * 8000.0 * 2.0) as u64;
        let deadline = Instant::now() + Duration::from_secs_f64(secs + 10.0);
        loop {
            let have = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if have >= want {
                break;
            }
            if Instant::now() >= deadline || self.exited().is_some() {
                panic!(
                    "{}: recording {} holds {have} bytes, not {want}, after {:.0} s",
                    self.name,
                    path.display(),
                    secs + 10.0
                );
            }
            // Drains events meanwhile; the bound is the deadline above.
            let step = Instant::now() + Duration::from_millis(50);
            self.pull(step.min(deadline));
        }
        self.cmd("stop_record", json!({ "call": call }));
        wav::read(&path)
    }

    /// Records `secs` seconds on `call` and insists that the phone hears
    /// `far` Hz as the dominant frequency, clearly (20 dB) above its own tone.
    pub fn assert_hears(&mut self, call: i64, far: f64, secs: f64, what: &str) -> Wav {
        let w = self.record(call, secs);
        let report = audio_report(&w, far, self.tone);
        if let Err(e) = check_hears(&w, far, self.tone) {
            panic!("{}: {what}: {e} ({report})", self.name);
        }
        eprintln!("{}: {what}: {report}", self.name);
        w
    }

    // ------------------------------------------------------------ reports

    /// The transcript (every event) and the tail of the PJSIP log.
    pub fn report(&mut self) -> String {
        self.drain();
        let events: Vec<String> = self.seen.iter().map(|v| v.to_string()).collect();
        let log = std::fs::read_to_string(self.dir.path().join("pjsip.log")).unwrap_or_default();
        let stderr =
            std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default();
        let n = std::env::var("SWITCHBACK_TEST_PJSIP_LOG_LINES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(150);
        let status = match self.exited() {
            Some(st) => format!("exited: {st}"),
            None => "running".to_string(),
        };
        format!(
            "--- pjsua2 phone {} (port {}, {status}) events ---\n{}\n--- its stderr (tail) ---\n{}\n--- its PJSIP log (last {n} lines; SWITCHBACK_TEST_PJSIP_LOG_LINES widens) ---\n{}",
            self.name,
            self.port,
            events.join("\n"),
            tail(&stderr, 30),
            tail(&log, n)
        )
    }

    /// Where the PJSIP log is (kept while the phone lives).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("pjsip.log")
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// An event's name.
pub fn ev(v: &Value) -> &str {
    v["event"].as_str().unwrap_or("")
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The first channel, from its first 200 ms on (jitter buffer start-up and
/// the path's first packets left out).
fn signal(w: &Wav) -> &[f64] {
    let x = &w.data[0];
    let skip = (w.sample_rate as usize / 5).min(x.len());
    &x[skip..]
}

/// Goertzel powers of `far` and `own`, the RMS and the dominant frequency.
pub fn audio_report(w: &Wav, far: f64, own: f64) -> String {
    let x = signal(w);
    format!(
        "{} samples at {} Hz: power at {far} Hz {:.3e}, at own {own} Hz {:.3e}, rms {:.4}, dominant {:.0} Hz",
        x.len(),
        w.sample_rate,
        wav::goertzel(x, w.sample_rate, far),
        wav::goertzel(x, w.sample_rate, own),
        wav::rms(x),
        wav::dominant_frequency(x, w.sample_rate)
    )
}

/// The recording holds `far` Hz as its dominant tone, loud enough, and at
/// least 100 times (20 dB) the power at `own` Hz.
pub fn check_hears(w: &Wav, far: f64, own: f64) -> Result<(), String> {
    let x = signal(w);
    if x.len() < (w.sample_rate / 2) as usize {
        return Err(format!("only {} samples", x.len()));
    }
    let p_far = wav::goertzel(x, w.sample_rate, far);
    let p_own = wav::goertzel(x, w.sample_rate, own);
    if wav::rms(x) < 0.01 {
        return Err("silence".into());
    }
    if p_far < 100.0 * p_own.max(1e-12) {
        return Err(format!("the far tone {far} Hz is not 20 dB above {own} Hz"));
    }
    let dom = wav::dominant_frequency(x, w.sample_rate);
    if (dom - far).abs() > 15.0 {
        return Err(format!(
            "the dominant frequency is {dom:.0} Hz, not {far} Hz"
        ));
    }
    Ok(())
}

/// `sip:USER@ADDR`.
pub fn uri(user: &str, addr: SocketAddr) -> String {
    format!("sip:{user}@{addr}")
}
