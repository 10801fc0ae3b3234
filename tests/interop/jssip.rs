//! JsSIP 3.13 in Debian's headless Chromium, as a phone over SIP over
//! WebSocket: one `jssip_phone.py` process (Selenium from PyPI, in
//! `.venv-interop/`) per browser, which serves `jssip_phone.html` and the
//! JsSIP bundle on a loopback port, reports the page's events as JSON lines
//! and takes commands on stdin.
//!
//! What it needs, each installed by `bash scripts/test`: Debian's
//! `chromium` and `chromium-driver`, Selenium in `.venv-interop/`, and
//! `.node-interop/jssip.js` (npm `jssip@3.13` bundled for the browser with
//! esbuild). A missing one fails the test saying which. Every wait is
//! bounded; the browser is closed when the `Browser` is dropped, and a
//! failing test prints the page's events and the tail of the browser
//! console (JsSIP's debug log, with every SIP message).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::repo_path;

/// The default bound on waiting for a page event.
pub const WAIT: Duration = Duration::from_secs(20);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// What the browser phone needs, or why it cannot run (the test fails with it).
fn prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let py = super::venv_python(
        "selenium",
        "selenium is not installed: run bash scripts/test (installs selenium into .venv-interop)",
    )?;
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        if !Path::new(path).exists() {
            return Err(format!(
                "{path} is missing: run bash scripts/test (installs Debian's {package})"
            ));
        }
    }
    let bundle = repo_path(".node-interop/jssip.js");
    if !bundle.exists() {
        return Err(format!(
            "{} is missing: run bash scripts/test (npm jssip@3.13 into .node-interop/, bundled with esbuild)",
            bundle.display()
        ));
    }
    Ok((py, bundle))
}

/// One browser with the JsSIP phone page.
pub struct Browser {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every event the page (or its driver) reported, in order.
    pub seen: Vec<Value>,
    /// How many of `seen` a wait has looked past.
    cursor: usize,
    pub dir: tempfile::TempDir,
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

impl Browser {
    /// Opens the page and starts a JsSIP UA for `uri` (not registered yet)
    /// on the switch's WebSocket listener `ws`; returns once JsSIP reports
    /// its WebSocket connected.
    pub fn start(ws: SocketAddr, uri: &str, password: &str) -> Browser {
        let (py, bundle) = prerequisites().unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("tempdir");
        let script = repo_path("tests/interop/jssip_phone.py");
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        let mut child = Command::new(&py)
            .arg("-u")
            .arg(&script)
            .args(["--ws", &format!("ws://{ws}")])
            .args(["--uri", uri])
            .args(["--password", password])
            .arg("--bundle")
            .arg(&bundle)
            .args(["--chromium", CHROMIUM, "--chromedriver", CHROMEDRIVER])
            .arg("--log")
            .arg(dir.path().join("console.log"))
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
        let mut b = Browser {
            child: Some(child),
            stdin,
            lines: rx,
            seen: Vec::new(),
            cursor: 0,
            dir,
        };
        let loaded = b.wait("page-loaded", Duration::from_secs(60));
        let version = loaded["jssip"].as_str().unwrap_or("");
        assert!(
            version.starts_with("3.13."),
            "the page did not load JsSIP 3.13: {loaded}"
        );
        b.wait("connected", WAIT);
        b
    }

    /// Sends a command (`register`, `unregister`, `quit`, ...) and, unless
    /// it is `quit`, waits for the driver to have run it.
    pub fn command(&mut self, cmd: Value) {
        let name = cmd["cmd"].as_str().unwrap_or("").to_string();
        let stdin = self.stdin.as_mut().expect("the browser's stdin is open");
        writeln!(stdin, "{cmd}").expect("write a command to the browser driver");
        stdin.flush().expect("flush");
        if name != "quit" {
            self.wait_where(&format!("done {name}"), WAIT, |v| {
                kind(v) == "done" && v["cmd"] == name.as_str()
            });
        }
    }

    pub fn register(&mut self) {
        self.command(json!({"cmd": "register"}));
    }

    pub fn unregister(&mut self) {
        self.command(json!({"cmd": "unregister"}));
    }

    /// Writes a PNG of the page.
    pub fn screenshot(&mut self, path: &Path) {
        self.command(json!({"cmd": "screenshot", "path": path.display().to_string()}));
    }

    /// Closes the browser (its WebSocket goes without an un-REGISTER) and
    /// waits (bounded) for the driver to exit.
    pub fn quit(&mut self) {
        self.command(json!({"cmd": "quit"}));
        self.wait("quit", WAIT);
        if let Some(c) = self.child.take() {
            reap(c, Duration::from_secs(10));
        }
    }

    /// The next event of this type not looked past yet.
    pub fn wait(&mut self, what: &str, timeout: Duration) -> Value {
        self.wait_where(what, timeout, |v| kind(v) == what)
    }

    /// The next event satisfying `pred`, looking only at events no earlier
    /// wait has passed. A driver error fails the test at once.
    pub fn wait_where(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.seen.len() {
                let v = self.seen[self.cursor].clone();
                self.cursor += 1;
                if kind(&v) == "driver-error" || kind(&v) == "page-error" {
                    panic!("the browser phone failed while waiting for {what}: {v}");
                }
                if pred(&v) {
                    return v;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let v = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line }));
                    self.seen.push(v);
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out after {timeout:?} waiting for the page's {what}")
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the browser driver exited while waiting for the page's {what}")
                }
            }
        }
    }

    fn report(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen
                .push(serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line })));
        }
        let events: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "--- page events ---\n{}\n--- driver stderr ---\n{}\n--- browser console (tail) ---\n{}",
            events.join("\n"),
            crate::common::tail_pub(&read("stderr.log"), 40),
            crate::common::tail_pub(&read("console.log"), 300)
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            // End of stdin is a quit: the driver closes the browser.
            self.stdin.take();
            reap(c, Duration::from_secs(10));
        }
        if std::thread::panicking() {
            eprintln!("{}", self.report());
        }
    }
}

/// Waits for the driver to exit (it closes the browser first), at most
/// `timeout`; then kills it.
fn reap(mut child: Child, timeout: Duration) {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    if rx.recv_timeout(timeout).is_err() {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(pid.to_string())
            .status();
        let _ = rx.recv_timeout(Duration::from_secs(5));
    }
}
