//! Checks a parsed configuration for what the types alone cannot say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Algorithm, Config, KeyPath, NamedProfile};
use crate::net::TransportKind;

/// `(file, key, message)` for each problem found.
pub type Problem = (PathBuf, KeyPath, String);

pub fn validate(config: &Config, main: &Path, check_files: bool) -> Vec<Problem> {
    let mut out = Vec::new();
    let g = &config.general;
    if !(1024..=1_048_576).contains(&g.max_message_size) {
        out.push((
            main.to_path_buf(),
            KeyPath::default().key("general").key("max_message_size"),
            "must be between 1024 and 1048576 bytes".into(),
        ));
    }
    if config.profiles.is_empty() {
        out.push((
            main.to_path_buf(),
            KeyPath::default().key("profiles"),
            "no profile is defined".into(),
        ));
    }
    let mut bound: HashMap<(TransportKind, std::net::SocketAddr), String> = HashMap::new();
    for np in &config.profiles {
        profile(np, check_files, &mut bound, &mut out);
    }
    out
}

fn profile(
    np: &NamedProfile,
    check_files: bool,
    bound: &mut HashMap<(TransportKind, std::net::SocketAddr), String>,
    out: &mut Vec<Problem>,
) {
    let p = &np.profile;
    let base = KeyPath::default().key("profiles").key(&np.name);
    let mut err = |key: KeyPath, msg: String| out.push((np.file.clone(), key, msg));

    if p.listen.is_empty() {
        err(
            base.clone().key("listen"),
            "at least one listen address is needed".into(),
        );
    }
    for (i, l) in p.listen.iter().enumerate() {
        let key = base.clone().key("listen").index(i);
        // UDP and TCP may share a port; two streams may not, nor two datagrams.
        let family = if l.transport.is_reliable() {
            TransportKind::Tcp
        } else {
            TransportKind::Udp
        };
        if l.address.port() != 0 {
            if let Some(other) = bound.insert((family, l.address), np.name.clone()) {
                err(
                    key.clone().key("address"),
                    format!(
                        "{} {} is already bound by profile {other}",
                        l.transport, l.address
                    ),
                );
            }
        }
        if l.transport == TransportKind::Tls && p.tls.is_none() {
            err(
                key.key("transport"),
                "tls needs a [tls] table with cert and key".into(),
            );
        }
    }
    if p.realm.trim().is_empty() {
        err(base.clone().key("realm"), "must not be empty".into());
    }
    let t = &p.timers;
    let tk = base.clone().key("timers");
    if t.t1_ms == 0 {
        err(tk.clone().key("t1_ms"), "must be above 0".into());
    }
    if t.t2_ms < t.t1_ms {
        err(tk.clone().key("t2_ms"), "must not be below t1_ms".into());
    }
    if t.t4_ms == 0 {
        err(tk.key("t4_ms"), "must be above 0".into());
    }
    let r = &p.registration;
    let rk = base.clone().key("registration");
    if r.min_expires > r.max_expires {
        err(
            rk.clone().key("min_expires"),
            format!("{} is above max_expires {}", r.min_expires, r.max_expires),
        );
    } else if !(r.min_expires..=r.max_expires).contains(&r.default_expires) {
        err(
            rk.clone().key("default_expires"),
            "must lie between min_expires and max_expires".into(),
        );
    }
    if r.nonce_lifetime_secs == 0 {
        err(
            rk.clone().key("nonce_lifetime_secs"),
            "must be above 0".into(),
        );
    }
    if r.algorithms.is_empty() {
        err(
            rk.key("algorithms"),
            "at least one digest algorithm is needed".into(),
        );
    }
    let g = &p.auth_guard;
    let gk = base.clone().key("auth_guard");
    if g.max_failures == 0 {
        err(gk.clone().key("max_failures"), "must be above 0".into());
    }
    if g.max_transactions_per_source == 0 {
        err(
            gk.key("max_transactions_per_source"),
            "must be above 0".into(),
        );
    }
    if p.registrar && p.users.is_empty() {
        err(
            base.clone().key("users"),
            "a registrar profile needs at least one user".into(),
        );
    }
    let mut seen = HashMap::new();
    for (i, u) in p.users.iter().enumerate() {
        let key = base.clone().key("users").index(i);
        if u.username.is_empty() || u.username.contains(['@', ':', ' ', ';']) {
            err(
                key.clone().key("username"),
                "must be a plain user part".into(),
            );
        }
        if let Some(first) = seen.insert(u.username.clone(), i) {
            err(
                key.clone().key("username"),
                format!("{} is also users[{first}]", u.username),
            );
        }
        for (name, value, len) in [
            ("ha1_md5", &u.ha1_md5, 32),
            ("ha1_sha256", &u.ha1_sha256, 64),
        ] {
            if let Some(v) = value {
                if v.len() != len || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                    err(key.clone().key(name), format!("must be {len} hex digits"));
                }
            }
        }
        let usable = u.password.is_some()
            || p.registration.algorithms.contains(&Algorithm::Md5) && u.ha1_md5.is_some()
            || p.registration.algorithms.contains(&Algorithm::Sha256) && u.ha1_sha256.is_some();
        if !usable {
            err(
                key.key("username"),
                "needs a password or an HA1 for an offered algorithm".into(),
            );
        }
    }
    for (i, peer) in p.peers.iter().enumerate() {
        let key = base.clone().key("peers").index(i);
        if let Some(a) = &peer.address {
            if !valid_host_port(a) {
                err(
                    key.clone().key("address"),
                    format!("{a:?} is not host:port"),
                );
            }
        }
        if peer.address.is_none() && peer.acl.is_empty() {
            err(
                key.clone().key("name"),
                "a peer needs an address or an acl".into(),
            );
        }
        if peer.username.is_some() != peer.password.is_some() {
            err(
                key.key("username"),
                "username and password go together".into(),
            );
        }
    }
    if let (Some(tls), true) = (&p.tls, check_files) {
        let dir = np.file.parent().unwrap_or(Path::new(""));
        for (name, path) in [("cert", &tls.cert), ("key", &tls.key)] {
            let full = dir.join(path);
            if let Err(e) = std::fs::metadata(&full) {
                err(
                    base.clone().key("tls").key(name),
                    format!("{}: {e}", full.display()),
                );
            }
        }
    }
}

fn valid_host_port(s: &str) -> bool {
    if s.parse::<std::net::SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
        None => false,
    }
}
