//! Checks a parsed configuration for what the types alone cannot say.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Algorithm, Config, KeyPath, NamedProfile, RouteTarget};
use crate::net::TransportKind;

/// The most SIP endpoint workers `[general] sip_workers` may ask for.
pub const MAX_SIP_WORKERS: usize = 256;

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
    if g.sip_workers > MAX_SIP_WORKERS {
        out.push((
            main.to_path_buf(),
            KeyPath::default().key("general").key("sip_workers"),
            format!("must be between 0 (one per core) and {MAX_SIP_WORKERS}"),
        ));
    }
    for (i, k) in g.http_api_keys.iter().enumerate() {
        // Keys travel in a header: printable ASCII, no spaces.
        if k.len() < 16 || !k.bytes().all(|b| b.is_ascii_graphic()) {
            out.push((
                main.to_path_buf(),
                KeyPath::default()
                    .key("general")
                    .key("http_api_keys")
                    .index(i),
                "must be at least 16 printable ASCII characters without spaces".into(),
            ));
        }
    }
    http_tls(config, main, check_files, &mut out);
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
    let mut peers: HashMap<&str, &str> = HashMap::new();
    for np in &config.profiles {
        for (i, peer) in np.profile.peers.iter().enumerate() {
            if let Some(other) = peers.insert(&peer.name, &np.name) {
                out.push((
                    np.file.clone(),
                    KeyPath::default()
                        .key("profiles")
                        .key(&np.name)
                        .key("peers")
                        .index(i)
                        .key("name"),
                    format!("peer {} is also defined in profile {other}", peer.name),
                ));
            }
        }
    }
    dialplan(config, main, &mut out);
    out
}

/// Each rule's pattern compiles and its destination exists.
fn dialplan(config: &Config, main: &Path, out: &mut Vec<Problem>) {
    for (i, r) in config.dialplan.iter().enumerate() {
        let key = KeyPath::default().key("dialplan").index(i);
        let mut err =
            |k: &str, msg: String| out.push((main.to_path_buf(), key.clone().key(k), msg));
        if let Err(e) = regex::Regex::new(&r.pattern) {
            err("match", format!("not a regular expression: {e}"));
        }
        match r.to {
            RouteTarget::Gateway => match &r.gateway {
                None => err(
                    "gateway",
                    "to = \"gateway\" needs gateway = \"<peer name>\"".into(),
                ),
                Some(g) => match config.peer(g) {
                    None => err("gateway", format!("no peer is called {g}")),
                    Some((_, p)) if p.address.is_none() => err(
                        "gateway",
                        format!("peer {g} has no address to send calls to"),
                    ),
                    Some(_) => {}
                },
            },
            RouteTarget::User => {
                let registrar = match &r.profile {
                    Some(p) => config.profiles.iter().find(|np| &np.name == p),
                    None => config.profiles.iter().find(|np| np.profile.registrar),
                };
                match registrar {
                    Some(np) if np.profile.registrar => {}
                    Some(np) => err("profile", format!("profile {} is not a registrar", np.name)),
                    None => err(
                        "profile",
                        match &r.profile {
                            Some(p) => format!("no profile is called {p}"),
                            None => "no registrar profile to find users in".into(),
                        },
                    ),
                }
                if r.gateway.is_some() {
                    err("gateway", "only to = \"gateway\" takes a gateway".into());
                }
            }
        }
        for (j, from) in r.from.iter().enumerate() {
            if config.profile_index(from).is_none() {
                out.push((
                    main.to_path_buf(),
                    key.clone().key("from").index(j),
                    format!("no profile is called {from}"),
                ));
            }
        }
    }
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
    let m = &p.media;
    let mk = base.clone().key("media");
    if m.rtp_port_min < 1024 || m.rtp_port_min > m.rtp_port_max || m.rtp_port_max == u16::MAX {
        err(
            mk.clone().key("rtp_port_min"),
            "the RTP range must lie within 1024..65534 with min <= max".into(),
        );
    } else if u32::from(m.rtp_port_max - m.rtp_port_min) < 3 {
        err(
            mk.clone().key("rtp_port_max"),
            "the RTP range must hold at least two port pairs".into(),
        );
    }
    let mut audio = false;
    for (i, c) in m.codecs.iter().enumerate() {
        match c.as_str() {
            "telephone-event" => {}
            "PCMU" | "PCMA" => audio = true,
            _ => err(
                mk.clone().key("codecs").index(i),
                format!("{c:?} is not one of PCMU, PCMA, telephone-event"),
            ),
        }
    }
    if !audio {
        err(
            mk.key("codecs"),
            "at least one of PCMU and PCMA is needed".into(),
        );
    }
    let c = &p.calls;
    let ck = base.clone().key("calls");
    if c.ring_timeout_secs == 0 {
        err(
            ck.clone().key("ring_timeout_secs"),
            "must be above 0".into(),
        );
    }
    if c.session_expires_secs != 0 && c.session_expires_secs < c.min_se_secs.max(90) {
        err(
            ck.clone().key("session_expires_secs"),
            "must be 0 (off) or at least min_se_secs and 90 (RFC 4028 §4)".into(),
        );
    }
    for (i, h) in c
        .case_data_headers
        .iter()
        .chain(&p.outbound.pass_headers)
        .enumerate()
    {
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            err(
                ck.clone().key("case_data_headers").index(i),
                format!("{h:?} is not a header name"),
            );
        }
    }
    for (i, h) in p.outbound.add_headers.iter().enumerate() {
        if h.name.is_empty()
            || !h
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            err(
                base.clone()
                    .key("outbound")
                    .key("add_headers")
                    .index(i)
                    .key("name"),
                format!("{:?} is not a header name", h.name),
            );
        }
        if h.value.contains(['\r', '\n']) {
            err(
                base.clone()
                    .key("outbound")
                    .key("add_headers")
                    .index(i)
                    .key("value"),
                "must be one line".into(),
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

/// `http_tls_cert` and `http_tls_key` come together, with an HTTP listener,
/// and (when files are checked) exist beside the main file.
fn http_tls(config: &Config, main: &Path, check_files: bool, out: &mut Vec<Problem>) {
    let g = &config.general;
    let key = |name: &str| KeyPath::default().key("general").key(name);
    match (&g.http_tls_cert, &g.http_tls_key) {
        (None, None) => return,
        (Some(_), None) => out.push((
            main.to_path_buf(),
            key("http_tls_key"),
            "http_tls_cert needs http_tls_key".into(),
        )),
        (None, Some(_)) => out.push((
            main.to_path_buf(),
            key("http_tls_cert"),
            "http_tls_key needs http_tls_cert".into(),
        )),
        (Some(_), Some(_)) => {}
    }
    if g.http_listen.is_none() {
        out.push((
            main.to_path_buf(),
            key("http_listen"),
            "HTTPS (http_tls_cert, http_tls_key) needs http_listen".into(),
        ));
    }
    if check_files {
        let dir = main.parent().unwrap_or(Path::new(""));
        for (name, path) in [
            ("http_tls_cert", &g.http_tls_cert),
            ("http_tls_key", &g.http_tls_key),
        ] {
            if let Some(path) = path {
                let full = dir.join(path);
                if let Err(e) = std::fs::metadata(&full) {
                    out.push((
                        main.to_path_buf(),
                        key(name),
                        format!("{}: {e}", full.display()),
                    ));
                }
            }
        }
    }
}
