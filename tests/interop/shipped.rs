//! The switch on the configuration it ships with (`sip-profiles/`), changed
//! only where two switches on one machine would collide: listening ports
//! (ephemeral), the HTTP port, the RTP ranges, and the address of the demo
//! trunk peer (`local-trunk`), which a test points at a peer it started.
//! Everything a phone meets (realm, users, passwords, digest algorithms,
//! timers, codecs, dial plan, callback queue and agents) is as shipped.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::common::calls::rtp_ranges;
use crate::common::http::{self, Response};
use crate::common::{repo_path, Switch};

/// The shipped demo users' password.
pub const PASSWORD: &str = "1234";
/// The shipped realm.
pub const REALM: &str = "switchback.local";
/// The shipped demo API key.
pub const API_KEY: &str = "switchback-demo-key-0001";

/// A copy of `sip-profiles/` with the collision-prone values replaced.
pub struct Shipped {
    /// (file, from, to) textual replacements, each of which must match.
    edits: Vec<(&'static str, String, String)>,
    /// TOML appended to the main file (`switchback.toml`).
    extra: String,
    /// (file, key, value): every `key = ...` line of the file set to `value`.
    keys: Vec<(&'static str, String, String)>,
}

impl Default for Shipped {
    fn default() -> Self {
        Shipped::new()
    }
}

impl Shipped {
    pub fn new() -> Shipped {
        let ((i_min, i_max), (e_min, e_max)) = rtp_ranges();
        let mut s = Shipped {
            edits: Vec::new(),
            extra: String::new(),
            keys: Vec::new(),
        };
        s = s
            .edit("internal.toml", "127.0.0.1:5060", "127.0.0.1:0")
            .edit("external.toml", "127.0.0.1:5080", "127.0.0.1:0")
            .edit("switchback.toml", "127.0.0.1:8080", "127.0.0.1:0")
            .edit(
                "internal.toml",
                "rtp_port_min = 16384",
                &format!("rtp_port_min = {i_min}"),
            )
            .edit(
                "internal.toml",
                "rtp_port_max = 24575",
                &format!("rtp_port_max = {i_max}"),
            )
            .edit(
                "external.toml",
                "rtp_port_min = 24576",
                &format!("rtp_port_min = {e_min}"),
            )
            .edit(
                "external.toml",
                "rtp_port_max = 32767",
                &format!("rtp_port_max = {e_max}"),
            );
        s
    }

    /// Replaces `from` by `to` in one of the shipped files (every occurrence;
    /// at least one must exist, so a renamed key fails loudly).
    pub fn edit(mut self, file: &'static str, from: &str, to: &str) -> Shipped {
        self.edits.push((file, from.to_string(), to.to_string()));
        self
    }

    /// Sets `key` to `value` (TOML text) wherever a line of `file` assigns
    /// it, whatever the shipped value is (at least one such line must exist).
    pub fn set(mut self, file: &'static str, key: &str, value: &str) -> Shipped {
        self.keys.push((file, key.to_string(), value.to_string()));
        self
    }

    /// Points the demo trunk peer `local-trunk` (and its ACL) at `addr`.
    pub fn trunk(self, addr: SocketAddr) -> Shipped {
        self.edit("external.toml", "127.0.0.1:5090", &addr.to_string())
    }

    /// Appends TOML to the main file.
    pub fn append(mut self, toml: &str) -> Shipped {
        self.extra.push('\n');
        self.extra.push_str(toml);
        self
    }

    /// Writes the configuration into a fresh folder and starts the switch there.
    pub fn start(self) -> Switch {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = repo_path("sip-profiles");
        for entry in std::fs::read_dir(&src).expect("read sip-profiles/") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                std::fs::copy(&path, dir.path().join(path.file_name().unwrap()))
                    .expect("copy profile");
            }
        }
        for (file, from, to) in &self.edits {
            let p = dir.path().join(file);
            let text = std::fs::read_to_string(&p).expect("read copied profile");
            assert!(
                text.contains(from.as_str()),
                "sip-profiles/{file} no longer contains {from:?}: update tests/interop/shipped.rs"
            );
            std::fs::write(&p, text.replace(from.as_str(), to)).expect("write profile");
        }
        for (file, key, value) in &self.keys {
            let p = dir.path().join(file);
            let text = std::fs::read_to_string(&p).expect("read copied profile");
            let mut found = false;
            let lines: Vec<String> = text
                .lines()
                .map(|l| {
                    let assigns = l
                        .trim_start()
                        .strip_prefix(key.as_str())
                        .is_some_and(|r| r.trim_start().starts_with('='));
                    found |= assigns;
                    if assigns {
                        format!("{key} = {value}")
                    } else {
                        l.to_string()
                    }
                })
                .collect();
            assert!(
                found,
                "sip-profiles/{file} no longer sets {key}: update tests/interop/shipped.rs"
            );
            std::fs::write(&p, lines.join("\n") + "\n").expect("write profile");
        }
        let main: PathBuf = dir.path().join("switchback.toml");
        if !self.extra.is_empty() {
            let mut text = std::fs::read_to_string(&main).expect("read main file");
            text.push_str(&self.extra);
            std::fs::write(&main, text).expect("write main file");
        }
        Switch::start_in(dir, main)
    }
}

/// The UDP address of a profile's listener.
pub fn udp_addr(sw: &Switch, profile: &str) -> SocketAddr {
    listener(sw, profile, "udp")
}

/// A profile's listener for one transport.
pub fn listener(sw: &Switch, profile: &str, transport: &str) -> SocketAddr {
    sw.listeners
        .iter()
        .find(|l| l.profile == profile && l.transport == transport)
        .unwrap_or_else(|| panic!("no {transport} listener for {profile}: {:?}", sw.listeners))
        .addr
}

/// The `internal` profile's UDP address (where the phones register).
pub fn internal(sw: &Switch) -> SocketAddr {
    udp_addr(sw, "internal")
}

/// A request to the switch's HTTP API with the shipped demo key.
pub fn api(sw: &Switch, method: &str, path: &str, body: Option<&str>) -> Response {
    let addr = sw.http_addr().expect("the HTTP API's address");
    http::request_with(addr, method, path, body, &[("X-API-Key", API_KEY)])
}

/// [`api`], which must succeed (2xx); its JSON body, or null when empty.
pub fn api_ok(sw: &Switch, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let r = api(sw, method, path, body);
    assert!(
        (200..300).contains(&r.status),
        "{method} {path} {body:?} -> {} {}",
        r.status,
        r.body
    );
    if r.body.is_empty() {
        serde_json::Value::Null
    } else {
        r.json()
    }
}

/// A web callback that was called, answered and done goes through exactly
/// these states (ready-to-call twice: before the call and after it).
pub const CALLED_AND_DONE: [&str; 7] = [
    "queued",
    "offered",
    "ready-to-call",
    "establishing",
    "connected",
    "ready-to-call",
    "done",
];

/// The callback `id` as the API returns it, and the states of its history
/// in order (the `to` of each `state-changed` entry).
pub fn state_history(sw: &Switch, id: &str) -> (serde_json::Value, Vec<String>) {
    let got = api_ok(sw, "GET", &format!("/v1/callbacks/{id}"), None);
    let states = crate::common::callbacks::history_of(&got, "state-changed")
        .iter()
        .filter_map(|h| h["to"].as_str().map(str::to_string))
        .collect();
    (got, states)
}
