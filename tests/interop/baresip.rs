//! One baresip 1.0 instance (Debian `baresip-core`) as a test phone.
//!
//! Each phone gets a generated config folder (`baresip -f DIR`): G.711 only,
//! `ausine` as the microphone (a sine at the phone's own frequency), no audio
//! player, and the `sndfile` filter, which writes what the phone decodes
//! (what it hears) to `dump-<time>-dec.wav` and what it encodes to `-enc.wav`
//! in that folder. baresip 1.0's `aufile` is a source only, so `sndfile` is
//! the sink. It is driven over `ctrl_tcp` (netstring-framed JSON commands
//! `{"command","params","token"}`, answered by `{"response":true,"ok",...}`;
//! UA events arrive on the same connection as `{"event":true,"type",...}`)
//! with the `menu` module's commands. Accounts are added after the control
//! connection is up (`uanew`), so their REGISTER_OK is not missed.
//!
//! baresip binds its TLS transport on the SIP port + 1 (always, in 1.0), so a
//! phone takes two consecutive free ports. The child is killed on drop; on a
//! panic its stdout (with `-s`: every SIP message) is printed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::free_port;
use crate::common::wav::goertzel;

/// The bound on a phone's start, a command's answer and most events.
pub const WAIT: Duration = Duration::from_secs(10);

/// G.711 recordings: 8 kHz, 16-bit mono.
pub const RATE: u32 = 8000;
const BYTES_PER_SEC: u64 = RATE as u64 * 2;

/// How a phone treats an incoming call (`answermode` of its account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Rings (`CALL_INCOMING`) until told to `answer` or `hangup`.
    Manual,
    /// Answers at once. baresip 1.0 ignores `Call-Info: answer-after`; its
    /// only auto-answer is this account setting.
    Auto,
}

impl Answer {
    fn param(self) -> &'static str {
        match self {
            Answer::Manual => "manual",
            Answer::Auto => "auto",
        }
    }
}

/// A running baresip with its control connection.
pub struct Phone {
    child: Option<Child>,
    /// A name for failure reports (the user it plays).
    pub label: String,
    /// The frequency it sends, in Hz.
    pub tone: u32,
    /// Where it receives SIP (UDP and TCP).
    pub sip: SocketAddr,
    dir: tempfile::TempDir,
    ctrl: TcpStream,
    messages: Receiver<Value>,
    /// Every event received so far, in order.
    pub events: Vec<Value>,
    /// Index in `events` of the first event no wait has consumed.
    cursor: usize,
    next_token: u64,
    log: Arc<Log>,
    /// The account AOR of the user agent, once added.
    pub aor: Option<String>,
}

/// Fails (never skips) when baresip is missing.
pub fn require_baresip() {
    let found = Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found && Path::new(MODULES).join("ctrl_tcp.so").exists(),
        "baresip is not installed: run bash scripts/test (installs baresip-core)"
    );
}

const MODULES: &str = "/usr/lib/baresip/modules";

/// A loopback port `p` such that `p` and `p + 1` are free for UDP and TCP
/// (baresip's SIP transports and its TLS listener).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        let free = UdpSocket::bind(("127.0.0.1", next)).is_ok()
            && TcpListener::bind(("127.0.0.1", next)).is_ok();
        if free {
            return p;
        }
    }
    panic!("no two consecutive free loopback ports");
}

impl Phone {
    /// Starts baresip sending `tone` Hz, without any account yet.
    pub fn start(label: &str, tone: u32) -> Phone {
        Phone::start_with_modules(label, tone, &[])
    }

    /// [`Phone::start`] with more modules loaded (`"mwi.so"`, ...).
    pub fn start_with_modules(label: &str, tone: u32, modules: &[&str]) -> Phone {
        require_baresip();
        let dir = tempfile::tempdir().expect("tempdir");
        let sip_port = free_port_pair();
        let ctrl_port = free_port();
        // RTP ports from the ephemeral range, which the switch's relay ranges
        // (20000..32000, see `rtp_ranges`) stay below.
        let rtp = free_port() & !1;
        let config = format!(
            "poll_method epoll\n\
             sip_listen 127.0.0.1:{sip_port}\n\
             net_interface 127.0.0.1\n\
             call_max_calls 4\n\
             audio_source ausine,{tone}\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             audio_buffer 20-160\n\
             rtp_ports {rtp}-{rtp_max}\n\
             module_path {MODULES}\n\
             module g711.so\n\
             module ausine.so\n\
             module sndfile.so\n\
             module ctrl_tcp.so\n\
             module_app menu.so\n\
             ctrl_tcp_listen 127.0.0.1:{ctrl_port}\n\
             snd_path {snd}\n\
             {extra}",
            rtp_max = rtp + 9,
            snd = dir.path().display(),
            extra = modules
                .iter()
                .map(|m| format!("module {m}\n"))
                .collect::<String>(),
        );
        std::fs::write(dir.path().join("config"), config).expect("write baresip config");
        std::fs::write(dir.path().join("accounts"), "").expect("write accounts");
        let mut command = Command::new("baresip");
        command
            .arg("-f")
            .arg(dir.path())
            .arg("-s")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        die_with_parent(&mut command, libc::SIGKILL);
        let mut child = command.spawn().expect("spawn baresip");
        let log = Arc::new(Log::default());
        log.capture(child.stdout.take().expect("stdout"));
        log.capture(child.stderr.take().expect("stderr"));
        let ready = log.wait(WAIT, |lines| {
            lines
                .iter()
                .any(|l| l.contains("baresip is ready"))
                .then_some(())
        });
        let fail = |what: &str, log: &Log| -> ! {
            let text = log.lines().join("\n");
            panic!("baresip {label}: {what}\n--- baresip output ---\n{text}")
        };
        if ready.is_err() {
            let _ = child.kill();
            let _ = child.wait();
            fail("no `baresip is ready` line", &log);
        }
        let ctrl_addr: SocketAddr = ([127, 0, 0, 1], ctrl_port).into();
        let ctrl = match TcpStream::connect_timeout(&ctrl_addr, WAIT) {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                fail(&format!("ctrl_tcp at {ctrl_addr}: {e}"), &log)
            }
        };
        let reader = ctrl.try_clone().expect("clone ctrl stream");
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            while let Some(v) = read_netstring(&mut r) {
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Phone {
            child: Some(child),
            label: label.to_string(),
            tone,
            sip: ([127, 0, 0, 1], sip_port).into(),
            dir,
            ctrl,
            messages,
            events: Vec::new(),
            cursor: 0,
            next_token: 0,
            log,
            aor: None,
        }
    }

    /// A phone registered as `user`/`password` at `registrar` (UDP), waiting
    /// for REGISTER_OK.
    pub fn registered(
        user: &str,
        password: &str,
        registrar: SocketAddr,
        tone: u32,
        answer: Answer,
    ) -> Phone {
        let mut p = Phone::start(user, tone);
        p.add_account(&account(user, password, registrar, 600, answer, ""));
        p.wait_event("REGISTER_OK", WAIT);
        p
    }

    /// A phone with an account for `user` on itself that does not register:
    /// it only answers calls to `sip:user@its-address` (a trunk's far end).
    pub fn listening(user: &str, tone: u32, answer: Answer) -> Phone {
        let mut p = Phone::start(user, tone);
        let aor = format!(
            "<sip:{user}@{}>;regint=0;answermode={}",
            p.sip,
            answer.param()
        );
        p.add_account(&aor);
        p
    }

    /// `uanew ACCOUNT`: adds a user agent (it registers when `regint` > 0).
    pub fn add_account(&mut self, account_line: &str) {
        let aor = account_line
            .split_once('>')
            .map(|(a, _)| a.trim_start_matches('<').to_string())
            .unwrap_or_else(|| account_line.to_string());
        self.command("uanew", account_line)
            .unwrap_or_else(|e| self.fail(&format!("uanew {account_line}: {e}")));
        self.aor = Some(aor);
    }

    /// `uadel AOR`: deletes the user agent, which unregisters (Expires: 0).
    pub fn remove_account(&mut self) {
        let aor = self.aor.take().expect("an account to remove");
        self.command("uadel", &aor)
            .unwrap_or_else(|e| self.fail(&format!("uadel {aor}: {e}")));
    }

    /// Sends one command and waits (bounded) for its response; `Ok(data)` when
    /// baresip says ok. Events arriving meanwhile are kept for later waits.
    pub fn command(&mut self, command: &str, params: &str) -> Result<String, String> {
        self.next_token += 1;
        let token = format!("t{}", self.next_token);
        let mut msg = serde_json::json!({"command": command, "token": token});
        if !params.is_empty() {
            msg["params"] = Value::String(params.to_string());
        }
        let body = msg.to_string();
        let frame = format!("{}:{},", body.len(), body);
        self.ctrl
            .write_all(frame.as_bytes())
            .unwrap_or_else(|e| self.fail(&format!("write to ctrl_tcp: {e}")));
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok(v) if v["response"] == true => {
                    if v["token"] != token.as_str() {
                        continue;
                    }
                    let data = v["data"].as_str().unwrap_or("").to_string();
                    return if v["ok"] == true { Ok(data) } else { Err(data) };
                }
                Ok(v) => self.events.push(v),
                Err(_) => self.fail(&format!("no response to `{command} {params}`")),
            }
        }
    }

    /// `dial URI`.
    pub fn dial(&mut self, uri: &str) {
        self.command("dial", uri)
            .unwrap_or_else(|e| self.fail(&format!("dial {uri}: {e}")));
    }

    /// `accept`: answers the ringing call.
    pub fn answer(&mut self) {
        self.command("accept", "")
            .unwrap_or_else(|e| self.fail(&format!("accept: {e}")));
    }

    /// `hangup`: ends the current call; on a ringing incoming call, 486.
    pub fn hangup(&mut self) {
        self.command("hangup", "")
            .unwrap_or_else(|e| self.fail(&format!("hangup: {e}")));
    }

    /// `hold`: re-INVITE with `a=sendonly`.
    pub fn hold(&mut self) {
        self.command("hold", "")
            .unwrap_or_else(|e| self.fail(&format!("hold: {e}")));
    }

    /// `resume`: re-INVITE with `a=sendrecv`.
    pub fn resume(&mut self) {
        self.command("resume", "")
            .unwrap_or_else(|e| self.fail(&format!("resume: {e}")));
    }

    /// `sndcode DIGITS`: RFC 4733 telephone-events, then key release.
    pub fn send_dtmf(&mut self, digits: &str) {
        self.command("sndcode", digits)
            .unwrap_or_else(|e| self.fail(&format!("sndcode {digits}: {e}")));
    }

    /// `transfer URI`: blind transfer of the current call by REFER.
    pub fn transfer(&mut self, uri: &str) {
        self.command("transfer", uri)
            .unwrap_or_else(|e| self.fail(&format!("transfer {uri}: {e}")));
    }

    fn pull(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(v) => {
                if v["event"] == true {
                    self.events.push(v);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Waits for the next unconsumed event whose `type` is `kind`.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Value {
        self.wait_event_where(kind, timeout, |_| true)
    }

    /// Waits for the next unconsumed event of `kind` that `pred` accepts;
    /// events before it are consumed. Panics with every event seen.
    pub fn wait_event_where(
        &mut self,
        kind: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            while self.cursor < self.events.len() {
                let e = &self.events[self.cursor];
                self.cursor += 1;
                if e["type"] == kind && pred(e) {
                    return e.clone();
                }
            }
            if !self.pull(deadline) {
                self.fail(&format!("timed out after {timeout:?} waiting for {kind}"));
            }
        }
    }

    /// Marks every event received so far as consumed: later waits see only
    /// what comes after this call.
    pub fn skip_events(&mut self) {
        while let Ok(v) = self.messages.try_recv() {
            if v["event"] == true {
                self.events.push(v);
            }
        }
        self.cursor = self.events.len();
    }

    /// Whether an event of `kind` has arrived (consumed or not), without waiting.
    pub fn has_event(&mut self, kind: &str) -> bool {
        while let Ok(v) = self.messages.try_recv() {
            if v["event"] == true {
                self.events.push(v);
            }
        }
        self.events.iter().any(|e| e["type"] == kind)
    }

    /// The event types seen so far, in order (for messages).
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| {
                let t = e["type"].as_str().unwrap_or("?");
                match e["param"].as_str() {
                    Some(p) => format!("{t}({p})"),
                    None => t.to_string(),
                }
            })
            .filter(|t| !t.starts_with("CALL_RTCP"))
            .collect()
    }

    /// baresip's output so far (with `-s`, its SIP trace).
    pub fn output(&self) -> String {
        self.log_lines(usize::MAX).join("\n")
    }

    /// The last `n` lines baresip printed.
    fn log_lines(&self, n: usize) -> Vec<String> {
        let lines = self.log.lines();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Waits (at most `timeout`) until baresip has printed a line containing
    /// `needle` (its SIP trace included); returns that line.
    pub fn wait_output(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log(&format!("a line with {needle:?}"), timeout, |lines| {
            lines.iter().find(|l| l.contains(needle)).cloned()
        })
    }

    /// Waits (at most `timeout`) until `found` finds something in what
    /// baresip printed so far.
    pub fn wait_log<T>(
        &self,
        what: &str,
        timeout: Duration,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        self.log
            .wait(timeout, found)
            .unwrap_or_else(|_| self.fail(&format!("printed no {what} within {timeout:?}")))
    }

    /// Panics with what the phone saw and said.
    pub fn fail(&self, what: &str) -> ! {
        let tail = self.log_lines(300);
        panic!(
            "baresip {} ({}): {what}\nevents: {:?}\n--- baresip output (tail) ---\n{}",
            self.label,
            self.sip,
            self.event_types(),
            tail.join("\n")
        )
    }

    // ------------------------------------------------------------ audio

    /// The decoded-audio recordings (what the phone heard), oldest first:
    /// one per call stream.
    fn recordings(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("dump-") && n.ends_with("-dec.wav"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Where the phone's hearing stands now: a mark for [`Phone::heard_since`].
    pub fn mark(&self) -> Mark {
        let files = self.recordings();
        Mark {
            file: files.len(),
            bytes: files.last().map(|f| data_len(f)).unwrap_or(0),
        }
    }

    /// Samples heard after `mark` (in the recording that was newest then, or
    /// in newer ones).
    fn samples_since(&self, mark: Mark) -> Vec<f64> {
        let files = self.recordings();
        let mut out = Vec::new();
        for (i, f) in files.iter().enumerate() {
            if i + 1 < mark.file {
                continue;
            }
            let skip = if i + 1 == mark.file { mark.bytes } else { 0 };
            out.extend(read_samples(f, skip));
        }
        out
    }

    /// Waits (polling the recording, at most `timeout`) until `secs` seconds
    /// of audio were heard after `mark`; returns those samples.
    pub fn heard_since(&self, mark: Mark, secs: f64, timeout: Duration) -> Vec<f64> {
        let want = (secs * RATE as f64) as usize;
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.samples_since(mark);
            if s.len() >= want {
                return s;
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "heard {:.2} s of audio after {mark:?} within {timeout:?}, wanted {secs} s \
                     (recordings: {:?})",
                    s.len() as f64 / RATE as f64,
                    self.recordings()
                ));
            }
            // Polling a file that baresip appends to: the bounded wait the
            // harness allows for audio to accumulate.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that the phone hears `far` Hz clearly after `mark`: over the
    /// last second of `secs` seconds heard, the far tone holds most of the
    /// energy, its own tone (an echo or a loop) next to none.
    pub fn assert_hears(&self, mark: Mark, far: u32, secs: f64) {
        let s = self.heard_since(mark, secs, Duration::from_secs_f64(secs + 10.0));
        let window = &s[s.len() - RATE as usize..];
        let level = crate::common::wav::rms(window);
        let far_share = tone_share(window, far);
        let own_share = tone_share(window, self.tone);
        if !(level > 0.05 && far_share > 0.6 && own_share < 0.05) {
            self.fail(&format!(
                "does not hear {far} Hz clearly: rms {level:.3}, {far} Hz share {far_share:.3}, \
                 own {} Hz share {own_share:.3}",
                self.tone
            ));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // INTEROP_TRACE=1 prints every phone's whole output (its SIP trace).
        if std::env::var_os("INTEROP_TRACE").is_some() {
            eprintln!(
                "--- baresip {} ({}) events: {:?}\n--- output ---\n{}",
                self.label,
                self.sip,
                self.event_types(),
                self.output()
            );
        } else if std::thread::panicking() {
            let tail = self.log_lines(150);
            eprintln!(
                "--- baresip {} ({}) events: {:?}\n--- output (tail) ---\n{}",
                self.label,
                self.sip,
                self.event_types(),
                tail.join("\n")
            );
        }
    }
}

/// What a child process printed, line by line; waiters are woken on each
/// line (the Kamailio harness uses it too).
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    /// Collects the lines of `out` on a thread of its own.
    pub fn capture(self: &Arc<Self>, out: impl Read + Send + 'static) {
        let log = self.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                log.push(line);
            }
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // Nothing panics while holding it, but read through poisoning anyway.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: String) {
        self.lock().push(line);
        self.grew.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.lock().clone()
    }

    /// Waits (at most `timeout`) until `found` finds something in the lines
    /// so far; `Err(lines)` on time-out.
    pub fn wait<T>(
        &self,
        timeout: Duration,
        found: impl Fn(&[String]) -> Option<T>,
    ) -> Result<T, Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lock();
        loop {
            if let Some(t) = found(&lines) {
                return Ok(t);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(lines.clone());
            }
            lines = self
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// Has the kernel send `signal` to the child when the thread that spawned
/// it ends, so a test process killed or aborted leaves no peer behind.
pub fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A position in what a phone heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// How many recordings existed.
    file: usize,
    /// Data bytes of the newest one.
    bytes: u64,
}

/// An account line for `uanew`: `user` at `registrar` (UDP, baresip's default).
pub fn account(
    user: &str,
    password: &str,
    registrar: SocketAddr,
    regint: u32,
    answer: Answer,
    extra: &str,
) -> String {
    format!(
        "<sip:{user}@{registrar}>;auth_pass={password};regint={regint};answermode={}{extra}",
        answer.param()
    )
}

/// The fraction of `x`'s energy at `freq` (1 for a pure tone, 0 without it).
pub fn tone_share(x: &[f64], freq: u32) -> f64 {
    let energy: f64 = x.iter().map(|v| v * v).sum();
    if energy == 0.0 {
        return 0.0;
    }
    // goertzel() is |X(f)|² / N; a sine's |X|² is N·E/2.
    2.0 * goertzel(x, RATE, f64::from(freq)) / energy
}

/// The data bytes of a sndfile dump. libsndfile writes the sizes in the
/// header only when the file is closed, so the file length counts.
fn data_len(path: &Path) -> u64 {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    match data_offset(&bytes) {
        Some(off) => (bytes.len() - off) as u64 & !1,
        None => 0,
    }
}

fn data_offset(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().ok()?) as usize;
        if id == b"data" {
            return Some(at + 8);
        }
        at += 8 + size + (size & 1);
    }
    None
}

/// 16-bit samples of a sndfile dump after `skip` data bytes, as -1..1.
fn read_samples(path: &Path, skip: u64) -> Vec<f64> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let Some(off) = data_offset(&bytes) else {
        return Vec::new();
    };
    let data = &bytes[(off + skip as usize).min(bytes.len())..];
    data.chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0)
        .collect()
}

/// Reads one netstring (`LEN:JSON,`); `None` at the end of the stream.
fn read_netstring(r: &mut impl BufRead) -> Option<Value> {
    let mut len = Vec::new();
    r.read_until(b':', &mut len).ok()?;
    if len.last() != Some(&b':') {
        return None;
    }
    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut body = vec![0u8; n + 1];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body[..n]).ok()
}

/// The shipped configuration as these tests run it: as shipped (its MD5-only
/// challenge is what baresip 1.0 needs; see `two_challenges_stop_baresip`).
pub fn shipped() -> crate::interop::shipped::Shipped {
    crate::interop::shipped::Shipped::new()
}
