//! Kamailio 5.6 as an edge proxy in front of the switch: the shipped
//! `fixtures/kamailio/edge.cfg` with its port filled in, run in the
//! foreground (`kamailio -f CFG -DD -E`, one worker, no database) on a free
//! loopback port, its stderr kept for reports. Stopped with SIGTERM on drop
//! (the main process then ends its workers), SIGKILL if it lingers.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::common::{free_port, repo_path};
use crate::interop::baresip::{die_with_parent, Log};

const STARTUP: Duration = Duration::from_secs(10);

pub struct Kamailio {
    child: Option<Child>,
    /// Where it listens (UDP).
    pub addr: SocketAddr,
    log: Arc<Log>,
    /// The prefix of its relay log lines (`"edge: "`, `"sbc: "`).
    prefix: &'static str,
    _dir: tempfile::TempDir,
}

impl Kamailio {
    pub fn start() -> Kamailio {
        Kamailio::start_cfg("edge.cfg", free_port(), &[], "edge: ")
    }

    /// Kamailio as a contact-center platform's SBC (`fixtures/kamailio/sbc.cfg`)
    /// on `port` (chosen beforehand, so the switch's trunk peer can name it):
    /// requests from the switch's `external` address go to `platform`, all
    /// others to the switch.
    pub fn start_sbc(port: u16, switch: SocketAddr, platform: SocketAddr) -> Kamailio {
        Kamailio::start_cfg(
            "sbc.cfg",
            port,
            &[
                ("@SWITCH@", switch.to_string()),
                ("@SWITCH_PORT@", switch.port().to_string()),
                ("@PLATFORM@", platform.to_string()),
            ],
            "sbc: ",
        )
    }

    fn start_cfg(file: &str, port: u16, fill: &[(&str, String)], prefix: &'static str) -> Kamailio {
        let found = Command::new("kamailio")
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "kamailio is not installed: run bash scripts/test (installs kamailio)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let template = std::fs::read_to_string(repo_path(&format!("fixtures/kamailio/{file}")))
            .unwrap_or_else(|e| panic!("read fixtures/kamailio/{file}: {e}"));
        let debug = std::env::var("KAMAILIO_DEBUG").unwrap_or_else(|_| "2".into());
        let mut cfg = template
            .replace("@PORT@", &port.to_string())
            .replace("@DEBUG@", &debug);
        for (k, v) in fill {
            cfg = cfg.replace(k, v);
        }
        let left = regex::Regex::new("@[A-Z_]+@").unwrap();
        assert!(
            !left.is_match(&cfg),
            "unfilled placeholder in {file}: {:?}",
            left.find(&cfg)
        );
        let cfg_path = dir.path().join(file);
        std::fs::write(&cfg_path, cfg).expect("write kamailio cfg");
        let mut command = Command::new("kamailio");
        command
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "16", "-M", "4"])
            // Working and runtime directories of its own (no /run/kamailio).
            .arg("-w")
            .arg(dir.path())
            .arg("-Y")
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SIGTERM, not SIGKILL: its main process then stops its workers.
        die_with_parent(&mut command, libc::SIGTERM);
        let mut child = command.spawn().expect("spawn kamailio");
        let log = Arc::new(Log::default());
        log.capture(child.stdout.take().expect("stdout"));
        log.capture(child.stderr.take().expect("stderr"));
        // The UDP socket is set up (and then inherited by the worker) before
        // this line; a request sent after it waits in the socket.
        let ready = log.wait(STARTUP, |lines| {
            lines
                .iter()
                .any(|l| l.contains("SO_RCVBUF is finally"))
                .then_some(())
        });
        let mut k = Kamailio {
            child: Some(child),
            addr: ([127, 0, 0, 1], port).into(),
            log,
            prefix,
            _dir: dir,
        };
        if ready.is_err() {
            panic!("kamailio did not start:\n{}", k.output());
        }
        if let Some(status) = k.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            panic!("kamailio exited ({status}):\n{}", k.output());
        }
        k
    }

    /// Its URI, as a phone's outbound proxy (baresip adds `;lr` itself).
    pub fn uri(&self) -> String {
        format!("sip:{}", self.addr)
    }

    /// Everything it logged.
    pub fn output(&self) -> String {
        self.log.lines().join("\n")
    }

    /// The lines it logged about requests it received (`edge: METHOD ...`).
    pub fn relayed(&self) -> Vec<String> {
        self.log
            .lines()
            .into_iter()
            .filter_map(|l| l.split_once(self.prefix).map(|(_, r)| r.to_string()))
            .filter(|l| !l.starts_with("reply "))
            .collect()
    }

    /// Waits until it relayed a request whose log line starts with `prefix`
    /// (`"BYE sip:1001"`); panics with its log otherwise.
    pub fn wait_relayed(&self, prefix: &str, timeout: Duration) -> String {
        let found = self.log.wait(timeout, |lines| {
            lines
                .iter()
                .filter_map(|l| l.split_once(self.prefix).map(|(_, r)| r))
                .find(|r| r.starts_with(prefix))
                .map(str::to_string)
        });
        found.unwrap_or_else(|_| {
            panic!(
                "kamailio relayed no {prefix:?} within {timeout:?}; relayed: {:#?}",
                self.relayed()
            )
        })
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM lets the main process stop its workers; wait for it on a
        // thread so the wait is bounded.
        // SAFETY: kill(2) on the pid of a child this harness spawned.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        if rx.recv_timeout(Duration::from_secs(5)).is_err() {
            // SAFETY: as above.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
        }
        if std::env::var_os("INTEROP_TRACE").is_some() || std::thread::panicking() {
            eprintln!("--- kamailio {} ---\n{}", self.addr, self.output());
        }
    }
}
