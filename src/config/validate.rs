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
        profile(np, check_files, g.max_message_size, &mut bound, &mut out);
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
            RouteTarget::Gateway => gateways(config, r, &key, main, out),
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
                if !r.gateways.is_empty() {
                    err("gateways", "only to = \"gateway\" takes gateways".into());
                }
                if r.strategy.is_some() {
                    err("strategy", "only to = \"gateway\" takes a strategy".into());
                }
                if !r.weights.is_empty() {
                    err("weights", "only to = \"gateway\" takes weights".into());
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

/// A gateway route: `gateway` or `gateways` (not both), each a peer with
/// an address, named once; `weights` only with `strategy = "weighted"`,
/// one per gateway, each at least 1.
fn gateways(config: &Config, r: &super::Route, key: &KeyPath, main: &Path, out: &mut Vec<Problem>) {
    let mut err = |k: KeyPath, msg: String| out.push((main.to_path_buf(), k, msg));
    let mut names: Vec<(KeyPath, &String)> = Vec::new();
    match (&r.gateway, r.gateways.is_empty()) {
        (None, true) => err(
            key.clone().key("gateway"),
            "to = \"gateway\" needs gateway = \"<peer name>\" or gateways = [...]".into(),
        ),
        (Some(_), false) => err(
            key.clone().key("gateways"),
            "give gateway or gateways, not both".into(),
        ),
        (Some(g), true) => names.push((key.clone().key("gateway"), g)),
        (None, false) => names.extend(
            r.gateways
                .iter()
                .enumerate()
                .map(|(i, g)| (key.clone().key("gateways").index(i), g)),
        ),
    }
    for (i, (k, g)) in names.iter().enumerate() {
        match config.peer(g) {
            None => err(k.clone(), format!("no peer is called {g}")),
            Some((_, p)) if p.address.is_none() => err(
                k.clone(),
                format!("peer {g} has no address to send calls to"),
            ),
            Some(_) => {}
        }
        if names[..i].iter().any(|(_, other)| other == g) {
            err(k.clone(), format!("peer {g} is listed twice"));
        }
    }
    let weighted = r.strategy == Some(super::GatewayStrategy::Weighted);
    if !r.weights.is_empty() {
        if !weighted {
            err(
                key.clone().key("weights"),
                "weights need strategy = \"weighted\"".into(),
            );
        } else if r.weights.len() != r.gateways.len() {
            err(
                key.clone().key("weights"),
                format!(
                    "{} weights for {} gateways: give one per gateway",
                    r.weights.len(),
                    r.gateways.len()
                ),
            );
        }
        for (i, w) in r.weights.iter().enumerate() {
            if *w == 0 {
                err(
                    key.clone().key("weights").index(i),
                    "must be at least 1".into(),
                );
            }
        }
    }
}

/// What is valid but likely to hurt: `(file, key, message)` each.
pub fn warnings(config: &Config) -> Vec<Problem> {
    let mut out = Vec::new();
    for np in &config.profiles {
        let p = &np.profile;
        if !p.registrar {
            continue;
        }
        let rk = KeyPath::default()
            .key("profiles")
            .key(&np.name)
            .key("registration");
        let mut lists = vec![(rk.clone().key("algorithms"), &p.registration.algorithms)];
        for (i, rule) in p.registration.user_agent_algorithms.iter().enumerate() {
            let key = rk.clone().key("user_agent_algorithms").index(i);
            lists.push((key.key("algorithms"), &rule.algorithms));
        }
        for (i, u) in p.users.iter().enumerate() {
            if let Some(a) = &u.algorithms {
                let key = KeyPath::default()
                    .key("profiles")
                    .key(&np.name)
                    .key("users")
                    .index(i);
                lists.push((key.key("algorithms"), a));
            }
        }
        for (key, list) in lists {
            if list.len() > 1 {
                out.push((
                    np.file.clone(),
                    key,
                    format!(
                        "warning: {} digest challenges in one 401/407; some phones (baresip 1.0) \
                         answer none when offered more than one: offer one, and give the \
                         others per user or per user_agent_algorithms",
                        list.len()
                    ),
                ));
            }
        }
    }
    out
}

fn profile(
    np: &NamedProfile,
    check_files: bool,
    max_message_size: usize,
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
        if matches!(l.transport, TransportKind::Tls | TransportKind::Wss) && p.tls.is_none() {
            err(
                key.key("transport"),
                format!("{} needs a [tls] table with cert and key", l.transport),
            );
        }
    }
    for (i, origin) in p.websocket.allowed_origins.iter().enumerate() {
        if crate::transport::normalise_origin(origin).is_none() {
            err(
                base.clone()
                    .key("websocket")
                    .key("allowed_origins")
                    .index(i),
                format!("{origin:?} is not an origin (scheme://host[:port], http or https)"),
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
            rk.clone().key("algorithms"),
            "at least one digest algorithm is needed".into(),
        );
    }
    for (i, rule) in r.user_agent_algorithms.iter().enumerate() {
        let key = rk.clone().key("user_agent_algorithms").index(i);
        if let Err(e) = regex::Regex::new(&rule.user_agent) {
            err(
                key.clone().key("user_agent"),
                format!("not a regular expression: {e}"),
            );
        }
        if rule.algorithms.is_empty() {
            err(
                key.key("algorithms"),
                "at least one digest algorithm is needed".into(),
            );
        }
    }
    let g = &p.auth_guard;
    let gk = base.clone().key("auth_guard");
    if g.max_failures == 0 {
        err(gk.clone().key("max_failures"), "must be above 0".into());
    }
    if g.max_users_per_source == 0 {
        err(
            gk.clone().key("max_users_per_source"),
            "must be above 0".into(),
        );
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
        if u.algorithms.as_ref().is_some_and(|a| a.is_empty()) {
            err(
                key.clone().key("algorithms"),
                "at least one digest algorithm is needed".into(),
            );
        }
        // Every algorithm this user may be offered (its own list, or the
        // profile's and any phone rule's) needs a secret to check it with.
        let offered: Vec<Algorithm> = match &u.algorithms {
            Some(a) => a.clone(),
            None => r
                .algorithms
                .iter()
                .chain(r.user_agent_algorithms.iter().flat_map(|x| &x.algorithms))
                .copied()
                .collect(),
        };
        let usable = u.password.is_some()
            || offered.contains(&Algorithm::Md5) && u.ha1_md5.is_some()
            || offered.contains(&Algorithm::Sha256) && u.ha1_sha256.is_some();
        if !usable {
            err(
                key.key("username"),
                "needs a password or an HA1 for an offered algorithm".into(),
            );
        }
    }
    let c = &p.connections;
    let ck = base.clone().key("connections");
    if c.max_per_source == 0 {
        err(ck.clone().key("max_per_source"), "must be above 0".into());
    }
    if c.max_total < c.max_per_source {
        err(
            ck.clone().key("max_total"),
            format!("must not be below max_per_source ({})", c.max_per_source),
        );
    }
    if let Some(n) = c.max_pending_bytes {
        if !(1024..=max_message_size).contains(&n) {
            err(
                ck.key("max_pending_bytes"),
                format!("must be between 1024 and max_message_size ({max_message_size})"),
            );
        }
    }
    for (i, peer) in p.peers.iter().enumerate() {
        let key = base.clone().key("peers").index(i);
        if let Some(a) = &peer.address {
            if !valid_host_port(a) {
                err(
                    key.clone().key("address"),
                    format!("{a:?} is not ip[:port] or host[:port]"),
                );
            }
        }
        if peer.transport.is_websocket() {
            err(
                key.clone().key("transport"),
                "a peer is reached over udp, tcp or tls: the switch opens no WebSocket".into(),
            );
        }
        if peer.transport != TransportKind::Tls {
            if peer.ca_file.is_some() {
                err(
                    key.clone().key("ca_file"),
                    "only a peer with transport = \"tls\" takes a ca_file".into(),
                );
            }
            if !peer.tls_verify {
                err(
                    key.clone().key("tls_verify"),
                    "only a peer with transport = \"tls\" takes tls_verify".into(),
                );
            }
        }
        if let (Some(ca), true) = (&peer.ca_file, check_files) {
            let full = np.file.parent().unwrap_or(Path::new("")).join(ca);
            if let Err(e) = std::fs::metadata(&full) {
                err(
                    key.clone().key("ca_file"),
                    format!("{}: {e}", full.display()),
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
                key.clone().key("username"),
                "username and password go together".into(),
            );
        }
        if let Some(Err(e)) = peer
            .user_to_user
            .as_ref()
            .and_then(|u| u.template())
            .map(super::UserToUser::check)
        {
            err(key.clone().key("user_to_user"), e.to_string());
        }
        if peer.ping_interval_secs > 0 && peer.address.is_none() {
            err(
                key.clone().key("ping_interval_secs"),
                "a peer without an address cannot be pinged".into(),
            );
        }
        if peer.ping_interval_secs > 86_400 {
            err(
                key.clone().key("ping_interval_secs"),
                "must be at most 86400 (a day)".into(),
            );
        }
        for (name, value) in [
            ("ping_failures_before_down", peer.ping_failures_before_down),
            ("ping_successes_before_up", peer.ping_successes_before_up),
        ] {
            if value == 0 {
                err(key.clone().key(name), "must be at least 1".into());
            }
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
    if let Some(Err(e)) = c
        .user_to_user
        .as_ref()
        .and_then(|u| u.template())
        .map(super::UserToUser::check)
    {
        err(ck.clone().key("user_to_user"), e.to_string());
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

/// `ip:port`, `[v6]:port`, a bare IP, `host:port` or a bare `host` (the
/// forms `net::PeerAddress` reads).
fn valid_host_port(s: &str) -> bool {
    crate::net::PeerAddress::parse(s).is_some()
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
