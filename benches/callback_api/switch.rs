//! The switch under test: a configuration in a temporary folder, the
//! release binary started on it, its `http ADDR` and `ready` lines awaited,
//! its CPU time read from /proc, and SIGTERM at the end.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const API_KEY: &str = "callback-bench-key-0001";
pub const QUEUE: &str = "support";

const STARTUP: Duration = Duration::from_secs(30);

/// One internal registrar profile (no agent logs in), the API on
/// an ephemeral port, and the web-callback layer with one always-open queue.
fn config_text(database: &Path) -> String {
    format!(
        r#"[general]
log_sip_messages = false
max_message_size = 65535
http_listen = "127.0.0.1:0"
http_api_keys = ["{API_KEY}"]

[profiles.internal]
realm = "switchback.local"
registrar = true
listen = [{{ transport = "udp", address = "127.0.0.1:0" }}]

# A registrar profile needs a user; nobody registers in this benchmark.
[[profiles.internal.users]]
username = "1001"
password = "bench-unused"

[callback]
database = {database:?}
offer_timeout_secs = 30

[[callback.queues]]
id = "{QUEUE}"
skills = []
time_zone = "UTC"
max_attempts = 3
"#
    )
}

pub struct Switch {
    child: Option<Child>,
    pub http: SocketAddr,
    pub dir: PathBuf,
    pub database: PathBuf,
}

impl Switch {
    /// Writes the configuration into `dir` and starts the switch there.
    pub fn start(dir: &Path) -> Result<Switch, String> {
        let database = dir.join("data").join("callbacks.db");
        let config = dir.join("switchback.toml");
        std::fs::write(&config, config_text(&database)).map_err(|e| e.to_string())?;
        let stderr = std::fs::File::create(dir.join("stderr.log")).map_err(|e| e.to_string())?;
        let log = std::env::var("SWITCHBACK_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchback"))
            .current_dir(dir)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("SWITCHBACK_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start the switch: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        // Read every line for as long as the switch runs: a full pipe would
        // stall its event printing, and so the center.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !ready {
                    ready = line == "ready";
                    let _ = tx.send(line);
                }
            }
        });
        let mut switch = Switch {
            child: Some(child),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: dir.to_path_buf(),
            database,
        };
        let deadline = Instant::now() + STARTUP;
        let mut http = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line == "ready" => break,
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("http ") {
                        http = addr.trim().parse().ok();
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "the switch printed no `ready` within {STARTUP:?}; stderr:\n{}",
                        switch.stderr_tail()
                    ))
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the switch exited before `ready`; stderr:\n{}",
                        switch.stderr_tail()
                    ))
                }
            }
        }
        switch.http = http.ok_or("no `http ADDR` line before `ready`")?;
        Ok(switch)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then SIGKILL after `grace`. True when it stopped by itself
    /// with success.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_secs(5));
        }
    }
}

/// What the switch has used so far, from /proc: CPU and run-queue wait by
/// thread (`task/*/schedstat`), bytes written (`io`), and the machine's
/// CPU pressure (`/proc/pressure/cpu`, the time some task waited for a CPU).
pub struct Usage {
    at: Instant,
    /// (thread name, ns on a CPU, ns waiting for one), summed by name.
    threads: Vec<(String, u64, u64)>,
    write_bytes: u64,
    pressure_us: Option<u64>,
}

/// What it used between two readings.
pub struct Used {
    /// "0.93 cores (tokio-rt-worker 0.71, store-writer 0.15, ...)".
    pub cpu: String,
    /// Its threads' total wait for a CPU, in ms per second.
    pub waited_ms_per_s: f64,
    /// Bytes it caused to be written to storage (`write_bytes`).
    pub written: u64,
    /// Share of the time some task on the machine waited for a CPU.
    pub pressure: Option<f64>,
}

impl Usage {
    pub fn read(switch: &Switch) -> Usage {
        let pid = switch.pid();
        Usage {
            at: Instant::now(),
            threads: pid.map(thread_sched).unwrap_or_default(),
            write_bytes: pid.and_then(write_bytes).unwrap_or(0),
            pressure_us: cpu_pressure_us(),
        }
    }

    pub fn since(&self, before: &Usage) -> Used {
        let secs = self.at.duration_since(before.at).as_secs_f64().max(1e-9);
        let mut used: Vec<(String, f64)> = Vec::new();
        let mut waited = 0u64;
        for (name, run, wait) in &self.threads {
            let (was_run, was_wait) = before
                .threads
                .iter()
                .find(|(n, _, _)| n == name)
                .map_or((0, 0), |(_, r, w)| (*r, *w));
            waited += wait.saturating_sub(was_wait);
            used.push((
                name.clone(),
                run.saturating_sub(was_run) as f64 / 1e9 / secs,
            ));
        }
        used.retain(|(_, c)| *c >= 0.01);
        used.sort_by(|a, b| b.1.total_cmp(&a.1));
        let total: f64 = used.iter().map(|(_, c)| c).sum();
        let parts: Vec<String> = used
            .iter()
            .take(4)
            .map(|(n, c)| format!("{n} {c:.2}"))
            .collect();
        Used {
            cpu: format!("{total:.2} cores ({})", parts.join(", ")),
            waited_ms_per_s: waited as f64 / 1e6 / secs,
            written: self.write_bytes.saturating_sub(before.write_bytes),
            pressure: match (self.pressure_us, before.pressure_us) {
                (Some(a), Some(b)) => Some(a.saturating_sub(b) as f64 / 1e6 / secs),
                _ => None,
            },
        }
    }
}

fn write_bytes(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// `some ... total=US` of /proc/pressure/cpu (absent on older kernels).
fn cpu_pressure_us() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))
        .and_then(|v| v.parse().ok())
}

/// (name, ns on a CPU, ns waiting for one) per thread name of process
/// `pid`; threads of one name (the tokio workers) are summed.
fn thread_sched(pid: u32) -> Vec<(String, u64, u64)> {
    let mut by_name: Vec<(String, u64, u64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let (Ok(name), Ok(sched)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue;
        };
        let mut fields = sched
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let (run, wait) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        let name = name.trim().to_string();
        match by_name.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, r, w)) => {
                *r += run;
                *w += wait;
            }
            None => by_name.push((name, run, wait)),
        }
    }
    by_name
}
