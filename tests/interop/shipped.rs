//! The switch on the configuration it ships with (`sip-profiles/`), changed
//! only where two switches on one machine would collide: listening ports
//! (ephemeral), the HTTP port, the RTP ranges, and the address of the demo
//! trunk peer (`local-trunk`), which a test points at a peer it started.
//! Everything a phone meets (realm, users, passwords, digest algorithms,
//! timers, codecs, dial plan, callback queue and agents) is as shipped.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::common::calls::rtp_ranges;
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
