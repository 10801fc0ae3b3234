//! The call tests' configuration and set-up: a switch with an `internal`
//! (registrar) profile and an `external` (trunk) profile, a dial plan, media
//! ranges, call timers and the HTTP API; helpers to register phones and place
//! them on their own SIPp.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use super::sippbg::{Sipp, SippBg};
use super::{free_port, Switch, TestConfig, EVENT};

/// One dial-plan rule, written as `[[dialplan]]`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub pattern: String,
    pub to: &'static str,
    pub gateway: Option<String>,
    pub profile: Option<String>,
    pub number: Option<String>,
    pub from: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct CallConfig {
    /// Registrar knobs and users (1001..1005, password pw<N>).
    pub base: TestConfig,
    pub internal_rtp: (u16, u16),
    pub external_rtp: (u16, u16),
    pub rtp_timeout_secs: u64,
    /// The `external` profile's, when it differs from `rtp_timeout_secs`.
    pub external_rtp_timeout_secs: Option<u64>,
    pub ring_timeout_secs: u64,
    pub session_expires_secs: u32,
    pub min_se_secs: u32,
    pub auto_answer_call_info: String,
    pub auto_answer_alert_info: String,
    pub case_data_headers: Vec<String>,
    pub record: bool,
    /// Where the trunk peer `trunk` receives calls (a SIPp gateway the test starts).
    pub gateway_port: u16,
    /// The trunk's credentials for its 401/407 challenges.
    pub peer_auth: Option<(String, String)>,
    pub caller_id_number: Option<String>,
    pub caller_id_name: Option<String>,
    pub add_headers: Vec<(String, String)>,
    pub pass_headers: Vec<String>,
    pub http: bool,
    pub recordings_dir: Option<std::path::PathBuf>,
    pub dialplan: Vec<Rule>,
}

static NEXT_BLOCK: AtomicU16 = AtomicU16::new(u16::MAX);

/// Two RTP port ranges (internal, external) of 40 ports each that no other test of
/// this process uses and that are free right now. They lie in 20000..32000, below
/// Linux's ephemeral range, so `free_port()` never hands them to a SIPp.
pub fn rtp_ranges() -> ((u16, u16), (u16, u16)) {
    const BLOCKS: u16 = 150;
    let _ = NEXT_BLOCK.compare_exchange(
        u16::MAX,
        (std::process::id() % BLOCKS as u32) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..BLOCKS {
        let b = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst) % BLOCKS;
        let start = 20000 + b * 80;
        let free = (start..start + 80).all(|p| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if free {
            return ((start, start + 39), (start + 40, start + 79));
        }
    }
    panic!("no free RTP port block in 20000..32000");
}

impl Default for CallConfig {
    fn default() -> Self {
        let (internal_rtp, external_rtp) = rtp_ranges();
        CallConfig {
            base: TestConfig::default(),
            internal_rtp,
            external_rtp,
            rtp_timeout_secs: 10,
            external_rtp_timeout_secs: None,
            ring_timeout_secs: 10,
            session_expires_secs: 0,
            min_se_secs: 90,
            auto_answer_call_info: "answer-after=0".into(),
            auto_answer_alert_info: "<http://127.0.0.1/>;info=alert-autoanswer".into(),
            case_data_headers: vec!["X-Case-Id".into(), "X-Interaction-Id".into()],
            record: false,
            gateway_port: free_port(),
            peer_auth: None,
            caller_id_number: None,
            caller_id_name: None,
            add_headers: Vec::new(),
            pass_headers: vec!["X-Case-Id".into()],
            http: true,
            recordings_dir: None,
            dialplan: vec![
                Rule {
                    pattern: "^(1[0-9]{3})$".into(),
                    to: "user",
                    gateway: None,
                    profile: Some("internal".into()),
                    number: None,
                    from: vec![],
                },
                Rule {
                    pattern: "^\\+?([0-9]{5,15})$".into(),
                    to: "gateway",
                    gateway: Some("trunk".into()),
                    profile: None,
                    number: Some("$1".into()),
                    from: vec!["internal".into()],
                },
            ],
        }
    }
}

fn q(s: &str) -> String {
    format!("{s:?}")
}

fn list(v: &[String]) -> String {
    v.iter().map(|s| q(s)).collect::<Vec<_>>().join(", ")
}

impl CallConfig {
    pub fn to_toml(&self) -> String {
        let mut s = self.base.to_toml();
        // [general] gets the HTTP API and the recordings folder.
        let mut general = String::new();
        if self.http {
            general.push_str("http_listen = \"127.0.0.1:0\"\n");
        }
        if let Some(d) = &self.recordings_dir {
            general.push_str(&format!(
                "recordings_dir = {}\n",
                q(&d.display().to_string())
            ));
        }
        s = s.replacen(
            "max_message_size = 65535\n",
            &format!("max_message_size = 65535\n{general}"),
            1,
        );
        let calls = |p: &str| {
            format!(
                r#"
[profiles.{p}.calls]
ring_timeout_secs = {ring}
session_expires_secs = {se}
min_se_secs = {minse}
auto_answer_call_info = {ci}
auto_answer_alert_info = {ai}
case_data_headers = [{cd}]
record = {rec}
"#,
                ring = self.ring_timeout_secs,
                se = self.session_expires_secs,
                minse = self.min_se_secs,
                ci = q(&self.auto_answer_call_info),
                ai = q(&self.auto_answer_alert_info),
                cd = list(&self.case_data_headers),
                rec = self.record,
            )
        };
        let media = |p: &str, (lo, hi): (u16, u16), t: u64| {
            format!(
                r#"
[profiles.{p}.media]
address = "127.0.0.1"
rtp_port_min = {lo}
rtp_port_max = {hi}
codecs = ["PCMU", "PCMA", "telephone-event"]
rtp_timeout_secs = {t}
"#
            )
        };
        s.push_str(&media("internal", self.internal_rtp, self.rtp_timeout_secs));
        s.push_str(&calls("internal"));
        s.push_str(
            r#"
[profiles.external]
listen = [ { transport = "udp", address = "127.0.0.1:0" } ]

[profiles.external.timers]
t1_ms = 500
t2_ms = 4000
t4_ms = 5000
"#,
        );
        s.push_str(&format!(
            "\n[[profiles.external.peers]]\nname = \"trunk\"\naddress = \"127.0.0.1:{}\"\ntransport = \"udp\"\nacl = [\"127.0.0.1/32\"]\n",
            self.gateway_port
        ));
        if let Some((u, p)) = &self.peer_auth {
            s.push_str(&format!("username = {}\npassword = {}\n", q(u), q(p)));
        }
        let external_timeout = self
            .external_rtp_timeout_secs
            .unwrap_or(self.rtp_timeout_secs);
        s.push_str(&media("external", self.external_rtp, external_timeout));
        s.push_str(&calls("external"));
        s.push_str("\n[profiles.external.outbound]\n");
        if let Some(n) = &self.caller_id_number {
            s.push_str(&format!("caller_id_number = {}\n", q(n)));
        }
        if let Some(n) = &self.caller_id_name {
            s.push_str(&format!("caller_id_name = {}\n", q(n)));
        }
        s.push_str(&format!("pass_headers = [{}]\n", list(&self.pass_headers)));
        let adds: Vec<String> = self
            .add_headers
            .iter()
            .map(|(n, v)| format!("{{ name = {}, value = {} }}", q(n), q(v)))
            .collect();
        s.push_str(&format!("add_headers = [{}]\n", adds.join(", ")));
        for r in &self.dialplan {
            s.push_str(&format!(
                "\n[[dialplan]]\nmatch = {}\nto = {}\n",
                q(&r.pattern),
                q(r.to)
            ));
            if let Some(g) = &r.gateway {
                s.push_str(&format!("gateway = {}\n", q(g)));
            }
            if let Some(p) = &r.profile {
                s.push_str(&format!("profile = {}\n", q(p)));
            }
            if let Some(n) = &r.number {
                s.push_str(&format!("number = {}\n", q(n)));
            }
            if !r.from.is_empty() {
                s.push_str(&format!("from = [{}]\n", list(&r.from)));
            }
        }
        s
    }
}

/// A running switch with the call configuration it was started with.
pub struct Lab {
    pub sw: Switch,
    pub cfg: CallConfig,
    pub recordings: tempfile::TempDir,
}

impl Lab {
    pub fn start(cfg: CallConfig) -> Lab {
        Lab::start_with(cfg, "")
    }

    /// `start` with more TOML appended to the main file (e.g. `[callback]`).
    pub fn start_with(mut cfg: CallConfig, extra: &str) -> Lab {
        let recordings = tempfile::tempdir().expect("tempdir");
        if cfg.recordings_dir.is_none() {
            cfg.recordings_dir = Some(recordings.path().to_path_buf());
        }
        let sw = Switch::start_with_text(&format!("{}\n{extra}", cfg.to_toml()));
        Lab {
            sw,
            cfg,
            recordings,
        }
    }

    /// The `internal` profile's UDP address (phones).
    pub fn internal(&self) -> SocketAddr {
        self.profile_addr("internal")
    }

    /// The `external` profile's UDP address (trunks).
    pub fn external(&self) -> SocketAddr {
        self.profile_addr("external")
    }

    fn profile_addr(&self, profile: &str) -> SocketAddr {
        self.sw
            .listeners
            .iter()
            .find(|l| l.profile == profile && l.transport == "udp")
            .unwrap_or_else(|| panic!("no udp listener for {profile}: {:?}", self.sw.listeners))
            .addr
    }

    /// Waits for leg b of `call` to report early media, then for at least 10
    /// RTP packets at `ep` before the call is answered; returns them.
    pub fn early_media_before_answer(
        &mut self,
        call: &str,
        ep: &super::rtp::RtpEndpoint,
    ) -> Vec<super::rtp::RtpPacket> {
        self.wait(
            "call-leg",
            &[("call", call), ("leg", "b"), ("progress", "early-media")],
        );
        let early = ep.recv_until(Duration::from_secs(1), |p| p.len() >= 10);
        let answered_yet = self.sw.has_event(
            "call-leg",
            &[("call", call), ("leg", "b"), ("progress", "answered")],
        );
        assert!(
            early.len() >= 10,
            "only {} early RTP packets reached the caller",
            early.len()
        );
        assert!(!answered_yet, "early media must flow before the 200");
        early
    }

    pub fn http(&self) -> SocketAddr {
        self.sw
            .http_addr()
            .unwrap_or_else(|| panic!("no `http <addr>` line before `ready`: {:?}", self.sw.seen))
    }

    pub fn password(&self, user: &str) -> String {
        self.cfg
            .base
            .users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no user {user}"))
    }

    /// Registers `user` with a contact at a fresh local port (SIPp `register.xml`
    /// sent from that very port, so the binding's source is the phone's) and waits
    /// for the `registered` event. Returns the port for the phone's SIPp.
    pub fn register(&mut self, user: &str) -> u16 {
        let port = free_port();
        self.register_at(user, port);
        port
    }

    pub fn register_at(&mut self, user: &str, port: u16) {
        let pw = self.password(user);
        let run = Sipp::new("register", self.internal())
            .port(port)
            .service(user)
            .arg("-au")
            .arg(user)
            .arg("-ap")
            .arg(&pw)
            .run();
        run.assert_ok(&mut self.sw);
        let port_s = port.to_string();
        let sw = &mut self.sw;
        let line = sw.wait_for(&format!("registered {user} at port {port}"), EVENT, |l| {
            super::Event::parse(l).is_some_and(|e| {
                e.name == "registered"
                    && e.get("user") == user
                    && e.get("contact").contains(&port_s)
            })
        });
        let _ = line;
    }

    /// A phone for `user` that registers at a fresh port, then runs `scenario` there in
    /// the background, ready (bound) when this returns.
    pub fn phone(&mut self, user: &str, scenario: &str, tune: impl FnOnce(Sipp) -> Sipp) -> SippBg {
        let port = self.register(user);
        self.phone_at(user, port, scenario, tune)
    }

    pub fn phone_at(
        &mut self,
        user: &str,
        port: u16,
        scenario: &str,
        tune: impl FnOnce(Sipp) -> Sipp,
    ) -> SippBg {
        let s = tune(
            Sipp::new(scenario, self.internal())
                .port(port)
                .service(user),
        );
        let bg = s.spawn();
        bg.wait_bound();
        bg
    }

    /// The trunk's gateway (a SIPp UAS at `gateway_port`), ready when this returns.
    pub fn gateway(&mut self, scenario: &str, tune: impl FnOnce(Sipp) -> Sipp) -> SippBg {
        let s = tune(
            Sipp::new(scenario, self.external())
                .port(self.cfg.gateway_port)
                .service("gw"),
        );
        let bg = s.spawn();
        bg.wait_bound();
        bg
    }

    /// A registered phone calling `number` (registers `user` first, from the port the
    /// caller's SIPp then uses).
    pub fn caller(&mut self, user: &str, number: &str, scenario: &str) -> Sipp {
        let port = self.register(user);
        Sipp::new(scenario, self.internal())
            .port(port)
            .service(number)
            .key("from_user", user)
    }

    /// A trunk calling `number` through the external profile (ACL, no registration).
    pub fn trunk_caller(&self, from: &str, number: &str, scenario: &str) -> Sipp {
        Sipp::new(scenario, self.external())
            .service(number)
            .key("from_user", from)
    }

    /// Waits for `call-started` matching `fields` and returns the call id.
    pub fn call_started(&mut self, fields: &[(&str, &str)]) -> String {
        self.sw
            .await_event("call-started", fields, EVENT)
            .get("call")
            .to_string()
    }

    pub fn wait(&mut self, name: &str, fields: &[(&str, &str)]) -> super::Event {
        self.sw.await_event(name, fields, EVENT)
    }

    pub fn wait_for(&mut self, name: &str, fields: &[(&str, &str)], t: Duration) -> super::Event {
        self.sw.await_event(name, fields, t)
    }

    /// GET /v1/calls/{id} as JSON.
    pub fn summary(&self, call: &str) -> serde_json::Value {
        let r = super::http::get(self.http(), &format!("/v1/calls/{call}"));
        assert_eq!(r.status, 200, "GET /v1/calls/{call}: {}", r.body);
        r.json()
    }

    /// The leg object with this role in a summary.
    pub fn leg(summary: &serde_json::Value, role: &str) -> serde_json::Value {
        summary["legs"]
            .as_array()
            .and_then(|l| l.iter().find(|x| x["role"] == role))
            .cloned()
            .unwrap_or_else(|| panic!("no leg {role} in {summary}"))
    }

    /// Asserts a port lies in one of the profile ranges.
    pub fn assert_internal_port(&self, port: u16, what: &str) {
        let (lo, hi) = self.cfg.internal_rtp;
        assert!(
            (lo..=hi).contains(&port),
            "{what}: port {port} outside internal range {lo}..{hi}"
        );
    }

    pub fn assert_external_port(&self, port: u16, what: &str) {
        let (lo, hi) = self.cfg.external_rtp;
        assert!(
            (lo..=hi).contains(&port),
            "{what}: port {port} outside external range {lo}..{hi}"
        );
    }
}
