//! rtpengine as the benchmark's anchor: its own process, started here with
//! its own command line on loopback and stopped when this handle drops, its
//! calls created and deleted over the ng control protocol
//! (`switchback::media::bench::ng`).

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchback::media::bench::ng::{audio_sdp, NgClient};

pub struct Rtpengine {
    child: Child,
    ng: NgClient,
    log: PathBuf,
    pub version: String,
    pub threads: usize,
}

/// The binary: `RTPENGINE_BIN`, else `rtpengine` from Debian's
/// `rtpengine-daemon`.
fn binary() -> PathBuf {
    std::env::var_os("RTPENGINE_BIN").map_or_else(|| "rtpengine".into(), PathBuf::from)
}

/// CPU time used by every thread of process `pid` (schedstat, ns).
fn task_cpu(pid: u32) -> Duration {
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in dir.flatten() {
            let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += sched
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

impl Rtpengine {
    /// Start rtpengine in the foreground on 127.0.0.1 with `threads` worker
    /// threads, media ports `port_min..=port_max`, kernel forwarding off,
    /// its log (warnings and worse) in `dir`; wait until ng answers a ping.
    pub fn start(threads: usize, port_min: u16, port_max: u16, dir: &Path) -> Result<Self, String> {
        let bin = binary();
        let version = Command::new(&bin).arg("--version").output().map_err(|e| {
            format!(
                "cannot run {} ({e}): the anchor needs rtpengine 10.5 \
                     (`apt-get install rtpengine-daemon`, or set RTPENGINE_BIN)",
                bin.display()
            )
        })?;
        let version = String::from_utf8_lossy(&version.stdout).to_string()
            + &String::from_utf8_lossy(&version.stderr);
        let version = version
            .lines()
            .find_map(|l| l.trim().strip_prefix("Version: "))
            .unwrap_or("unknown")
            .to_string();
        // A free loopback port for ng (released just before rtpengine binds it).
        let ng_addr = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map_err(|e| format!("no port for ng: {e}"))?;
        let log = dir.join("rtpengine.log");
        let log_file = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=4",
            "--table=-1",
            "--interface=127.0.0.1",
            "--delete-delay=0",
            "--timeout=120",
        ])
        .arg(format!("--listen-ng={ng_addr}"))
        .arg(format!("--port-min={port_min}"))
        .arg(format!("--port-max={port_max}"))
        .arg(format!("--num-threads={threads}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours;
        // it runs in the forked child before exec. If this bench dies
        // without running its drop (SIGKILL), rtpengine gets SIGTERM.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let ng = NgClient::new(ng_addr, Duration::from_millis(200), 1)
            .map_err(|e| format!("ng client: {e}"))?;
        let mut me = Rtpengine {
            child,
            ng,
            log,
            version,
            threads,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if me.ng.ping().is_ok() {
                break;
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                return Err(format!("rtpengine exited ({status}): {}", me.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "rtpengine's ng listener {ng_addr} did not answer a ping within 15 s: {}",
                    me.log_tail()
                ));
            }
            // Not listening yet (a refused send fails at once): poll again.
            std::thread::sleep(Duration::from_millis(50));
        }
        // Running: from now on a request is sent again when its reply is
        // late, for up to 20 s: with one worker thread, rtpengine reads ng
        // on the same poller as media, and right after a step it overran it
        // may still be working through queued packets.
        me.ng = NgClient::new(ng_addr, Duration::from_secs(2), 10)
            .map_err(|e| format!("ng client: {e}"))?;
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time used so far by all of rtpengine's threads.
    pub fn cpu(&self) -> Duration {
        task_cpu(self.pid())
    }

    /// Its threads (count).
    pub fn thread_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid())).map_or(0, |d| d.count())
    }

    /// Resident set size, bytes.
    pub fn rss(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Open descriptors of the rtpengine process.
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }

    /// Lines in its log (warnings and worse).
    pub fn log_lines(&self) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |t| t.lines().count())
    }

    /// The last lines of its log, for an error message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
        format!("log {}:\n  {tail}", self.log.display())
    }

    fn call_id(step: usize, k: usize) -> String {
        format!("anchor-{step}-{k}")
    }

    /// Create `n` calls (offer from leg A, answer from leg B, both at the
    /// generator's `remote`). Returns each leg's destination, leg i of call
    /// k at 2k + i: the port rtpengine gave that leg to send to. On a
    /// refusal, deletes what it created and says why and after how many.
    pub fn open(
        &mut self,
        step: usize,
        n: usize,
        remote: SocketAddr,
    ) -> Result<Vec<SocketAddr>, String> {
        let sdp = audio_sdp(remote, step as u64);
        let mut dests = Vec::with_capacity(2 * n);
        for k in 0..n {
            let id = Self::call_id(step, k);
            let made = self
                .ng
                .offer(&id, "a", &sdp)
                .and_then(|to_b| Ok((self.ng.answer(&id, "a", "b", &sdp)?, to_b)));
            match made {
                Ok((to_a, to_b)) => {
                    dests.push(to_a);
                    dests.push(to_b);
                }
                Err(e) => {
                    let fds = self.fds();
                    // The call whose offer or answer failed may exist half made.
                    let _ = self.ng.delete(&id, "a");
                    self.close(step, k);
                    return Err(format!(
                        "call {} of {n} refused: {e} (rtpengine had {fds} descriptors open)",
                        k + 1
                    ));
                }
            }
        }
        Ok(dests)
    }

    /// Delete calls 0..n of `step`.
    pub fn close(&mut self, step: usize, n: usize) {
        for k in 0..n {
            if let Err(e) = self.ng.delete(&Self::call_id(step, k), "a") {
                eprintln!("rtpengine: delete {}: {e}", Self::call_id(step, k));
            }
        }
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        // SIGTERM lets it close its sockets; SIGKILL if it lingers.
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
