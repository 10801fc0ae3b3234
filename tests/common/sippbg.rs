//! SIPp for the call tests: a builder for one run (scenario, ports, `-key`/`-set`
//! values, pcaps), run in the foreground or in the background, and readers for its
//! message trace (which SIPp writes as it goes, so it can be read mid-run).
//!
//! Each run gets its own working directory holding a copy of the scenario (so a
//! test may point the SDP at its own RTP endpoint, see [`Sipp::rtp_port`]) and the
//! pcaps the call scenarios load: `audio.pcap` (default: 440 Hz PCMU, 3 s) and
//! `dtmf.pcap` (RFC 4733 digit 5 from the SIPp package).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{free_port, repo_path, SippRun, Switch};

pub const DTMF_PCAP_DIR: &str = "/usr/share/sip-tester";

/// A loopback UDP port `p` with `p + 2` free too (SIPp binds its media port and +2).
pub fn free_media_port() -> u16 {
    for _ in 0..100 {
        let p = free_port();
        if p < 65000 && UdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
            return p;
        }
    }
    panic!("no free media port pair");
}

#[derive(Clone, Debug)]
pub struct Sipp {
    pub scenario: String,
    pub target: SocketAddr,
    pub port: u16,
    pub media_port: u16,
    pub service: Option<String>,
    pub keys: Vec<(String, String)>,
    pub sets: Vec<(String, String)>,
    pub extra: Vec<String>,
    pub audio: PathBuf,
    pub dtmf: PathBuf,
    pub rtp_port: Option<u16>,
    pub timeout_secs: u32,
}

impl Sipp {
    pub fn new(scenario: &str, target: SocketAddr) -> Sipp {
        Sipp {
            scenario: scenario.into(),
            target,
            port: free_port(),
            media_port: free_media_port(),
            service: None,
            keys: Vec::new(),
            sets: Vec::new(),
            extra: Vec::new(),
            audio: repo_path("fixtures/audio/tone_440_pcmu.pcap"),
            dtmf: PathBuf::from(DTMF_PCAP_DIR).join("dtmf_2833_5.pcap"),
            rtp_port: None,
            timeout_secs: 25,
        }
    }
    pub fn port(mut self, p: u16) -> Self {
        self.port = p;
        self
    }
    /// `-s`: the dialled number for callers, the phone's own user for phones.
    pub fn service(mut self, s: &str) -> Self {
        self.service = Some(s.into());
        self
    }
    pub fn key(mut self, k: &str, v: &str) -> Self {
        self.keys.push((k.into(), v.into()));
        self
    }
    pub fn set(mut self, k: &str, v: impl ToString) -> Self {
        self.sets.push((k.into(), v.to_string()));
        self
    }
    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.into());
        self
    }
    /// The pcap played as `audio.pcap` (a path relative to the repository, or absolute).
    pub fn audio(mut self, pcap: &str) -> Self {
        let p = PathBuf::from(pcap);
        self.audio = if p.is_absolute() { p } else { repo_path(pcap) };
        self
    }
    pub fn dtmf_pcap(mut self, pcap: &str) -> Self {
        self.dtmf = PathBuf::from(DTMF_PCAP_DIR).join(pcap);
        self
    }
    /// Writes this port instead of SIPp's media port in the SDP (`m=audio`): the
    /// test's own [`super::rtp::RtpEndpoint`] gets the media. Do not `play` then.
    pub fn rtp_port(mut self, p: u16) -> Self {
        self.rtp_port = Some(p);
        self
    }
    pub fn timeout(mut self, secs: u32) -> Self {
        self.timeout_secs = secs;
        self
    }

    fn prepare(&self) -> (tempfile::TempDir, Vec<String>, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = repo_path(&format!("fixtures/sipp/{}.xml", self.scenario));
        let mut text = std::fs::read_to_string(&src)
            .unwrap_or_else(|e| panic!("scenario {}: {e}", src.display()));
        if let Some(p) = self.rtp_port {
            text = text.replace("m=audio [media_port]", &format!("m=audio {p}"));
        }
        let sf = dir
            .path()
            .join(format!("{}.xml", self.scenario.replace('/', "_")));
        std::fs::write(&sf, text).expect("write scenario");
        std::fs::copy(&self.audio, dir.path().join("audio.pcap"))
            .unwrap_or_else(|e| panic!("copy {}: {e}", self.audio.display()));
        std::fs::copy(&self.dtmf, dir.path().join("dtmf.pcap"))
            .unwrap_or_else(|e| panic!("copy {}: {e}", self.dtmf.display()));
        let mut args: Vec<String> = vec![
            "-sf".into(),
            sf.display().to_string(),
            self.target.to_string(),
            "-t".into(),
            "u1".into(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-mp".into(),
            self.media_port.to_string(),
            "-cp".into(),
            free_port().to_string(),
            "-nostdin".into(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            format!("{}s", self.timeout_secs),
            "-timeout_error".into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.path().join("errors.log").display().to_string(),
            "-trace_msg".into(),
            "-message_file".into(),
            dir.path().join("messages.log").display().to_string(),
        ];
        if let Some(s) = &self.service {
            args.extend(["-s".into(), s.clone()]);
        }
        for (k, v) in &self.keys {
            args.extend(["-key".into(), k.clone(), v.clone()]);
        }
        for (k, v) in &self.sets {
            args.extend(["-set".into(), k.clone(), v.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        let command = format!("(cd {}; sipp {})", dir.path().display(), args.join(" "));
        (dir, args, command)
    }

    /// Runs to the end (bounded by SIPp's own `-timeout`).
    pub fn run(self) -> SippRun {
        self.spawn()
            .wait(Duration::from_secs(self_timeout_margin()))
    }

    /// Starts SIPp and returns at once; for a scenario that waits for a request
    /// (a phone), call [`SippBg::wait_bound`] before making it ring.
    pub fn spawn(self) -> SippBg {
        let (dir, args, command) = self.prepare();
        let out = std::fs::File::create(dir.path().join("stdout.log")).unwrap();
        let err = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new("sipp")
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sipp (install sip-tester): {e}"));
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut child: Child = child;
            let _ = tx.send(child.wait());
        });
        SippBg {
            pid,
            done: rx,
            dir: Some(dir),
            command,
            port: self.port,
            media_port: self.media_port,
            scenario: self.scenario,
            timeout_secs: self.timeout_secs,
        }
    }
}

fn self_timeout_margin() -> u64 {
    40
}

/// A SIPp running in the background; killed if dropped before [`SippBg::wait`].
pub struct SippBg {
    pub pid: u32,
    done: mpsc::Receiver<std::io::Result<std::process::ExitStatus>>,
    dir: Option<tempfile::TempDir>,
    pub command: String,
    pub port: u16,
    pub media_port: u16,
    pub scenario: String,
    pub timeout_secs: u32,
}

impl SippBg {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.as_ref().unwrap().path().join(name)
    }

    /// Waits (bounded) until SIPp holds its SIP port: it is then ready for requests.
    pub fn wait_bound(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", self.port)).is_ok() {
            assert!(
                Instant::now() < deadline,
                "SIPp ({}) did not bind port {} in 10 s",
                self.scenario,
                self.port
            );
            if let Ok(st) = self.done.try_recv() {
                panic!(
                    "SIPp ({}) exited before binding: {st:?}\n{}",
                    self.scenario,
                    self.read("stderr.log")
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    /// The trace so far.
    pub fn messages(&self) -> String {
        self.read("messages.log")
    }

    /// Every message in the trace so far: (received?, text).
    pub fn trace(&self) -> Vec<(bool, String)> {
        parse_trace(&self.messages())
    }

    /// Polls the trace (bounded) until a received message satisfies `pred`.
    pub fn wait_received(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, m)) = self.trace().into_iter().find(|(rx, m)| *rx && pred(m)) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "SIPp ({}) did not receive {what} in {timeout:?}; trace:\n{}",
                self.scenario,
                self.messages()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for SIPp to exit (at most `timeout`, then kills it) and collects the run.
    pub fn wait(mut self, timeout: Duration) -> SippRun {
        let status = match self.done.recv_timeout(timeout) {
            Ok(st) => st.expect("wait sipp"),
            Err(_) => {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(self.pid.to_string())
                    .status();
                self.done
                    .recv_timeout(Duration::from_secs(5))
                    .expect("sipp killed")
                    .expect("wait")
            }
        };
        let dir = self.dir.take().unwrap();
        let messages = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
        let errors = std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
        let stdout = std::fs::read(dir.path().join("stdout.log")).unwrap_or_default();
        let stderr = std::fs::read(dir.path().join("stderr.log")).unwrap_or_default();
        let run = SippRun {
            output: std::process::Output {
                status,
                stdout,
                stderr,
            },
            local_port: self.port,
            messages,
            errors,
            command: self.command.clone(),
            _dir: dir,
        };
        if !run.success() {
            eprintln!(
                "SIPp ({}) exited non-zero:\n{}",
                self.scenario,
                run.describe()
            );
        }
        run
    }

    /// Waits and asserts success (with the switch's output on failure).
    pub fn finish(self, sw: &mut Switch) -> SippRun {
        let t = Duration::from_secs(self.timeout_secs as u64 + 10);
        let run = self.wait(t);
        run.assert_ok(sw);
        run
    }
}

impl Drop for SippBg {
    fn drop(&mut self) {
        if self.dir.is_some() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(self.pid.to_string())
                .status();
            let _ = self.done.recv_timeout(Duration::from_secs(5));
            if std::thread::panicking() {
                eprintln!(
                    "--- SIPp ({}) trace at the failure ---\n{}\n--- errors ---\n{}",
                    self.scenario,
                    super::tail_pub(&self.messages(), 400),
                    self.read("errors.log")
                );
            }
        }
    }
}

/// Splits a SIPp `-trace_msg` file into (received?, message text).
pub fn parse_trace(text: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    for block in text.split("----------------------------------------------- ") {
        let mut lines = block.lines();
        let _date = lines.next();
        let Some(kind) = lines.next() else { continue };
        let received = kind.contains("received");
        if !(received || kind.contains("sent")) {
            continue;
        }
        let body: Vec<&str> = lines.collect();
        let msg = body
            .join("\r\n")
            .trim_start_matches("\r\n")
            .trim()
            .to_string();
        if !msg.is_empty() {
            out.push((received, msg));
        }
    }
    out
}

impl SippRun {
    pub fn trace(&self) -> Vec<(bool, String)> {
        parse_trace(&self.messages)
    }
    /// Received messages whose first line starts with `start` (e.g. "INVITE ", "SIP/2.0 200").
    pub fn received(&self, start: &str) -> Vec<String> {
        self.trace()
            .into_iter()
            .filter(|(rx, m)| *rx && m.starts_with(start))
            .map(|(_, m)| m)
            .collect()
    }
    pub fn sent(&self, start: &str) -> Vec<String> {
        self.trace()
            .into_iter()
            .filter(|(rx, m)| !*rx && m.starts_with(start))
            .map(|(_, m)| m)
            .collect()
    }
    /// The final status a caller got for its first INVITE.
    pub fn final_status(&self) -> Option<u16> {
        self.trace().into_iter().find_map(|(rx, m)| {
            if !rx || !m.starts_with("SIP/2.0 ") || !cseq_method(&m).eq_ignore_ascii_case("INVITE")
            {
                return None;
            }
            let code: u16 = m.get(8..11)?.parse().ok()?;
            (code >= 200).then_some(code)
        })
    }
}

/// A header's value (first occurrence, case-insensitive name, compact forms not handled).
pub fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or(msg);
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn headers<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or(msg);
    head.lines()
        .skip(1)
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .collect()
}

pub fn cseq_method(msg: &str) -> String {
    header(msg, "CSeq")
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("")
        .to_string()
}

pub fn body(msg: &str) -> &str {
    msg.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

/// The audio address an SDP body offers (c= address, m=audio port).
pub fn sdp_audio(msg: &str) -> Option<SocketAddr> {
    let b = body(msg);
    let ip = b
        .lines()
        .find_map(|l| l.trim().strip_prefix("c=IN IP4 "))?
        .trim();
    let port = b
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))?
        .split_whitespace()
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

/// The payload types an SDP body's m=audio line lists.
pub fn sdp_payload_types(msg: &str) -> Vec<u8> {
    body(msg)
        .lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .map(|m| {
            m.split_whitespace()
                .skip(2)
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The SDP direction attribute (sendrecv when none is written).
pub fn sdp_direction(msg: &str) -> &'static str {
    for d in ["sendonly", "recvonly", "inactive", "sendrecv"] {
        if body(msg).lines().any(|l| l.trim() == format!("a={d}")) {
            return d;
        }
    }
    "sendrecv"
}
