//! Configuration: loading the TOML files, validating them, and the embedded
//! default that `switchback run` uses without `--config`.
//!
//! A configuration is a main file (`[general]`, `include = [...]`, and
//! optionally profiles of its own) plus the profile files it includes,
//! relative to its own folder. Errors are collected, not stopped at, and each
//! names its file, line and key.

mod callback;
mod layers;
mod locate;
mod notify;
pub mod schema;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use locate::KeyPath;
pub use notify::derived_public_url;
pub use schema::*;

/// The configuration in force: general settings and the profiles in order.
#[derive(Debug, Clone)]
pub struct Config {
    pub general: General,
    pub profiles: Vec<NamedProfile>,
    /// The dial plan, in the order rules are tried.
    pub dialplan: Vec<Route>,
    /// The web-callback layer (defaults when `[callback]` is absent).
    pub callback: crate::callback::CallbackSettings,
    /// What is valid but likely to hurt (printed by `check-config`, logged
    /// at start), located like errors.
    pub warnings: Vec<ConfigError>,
}

impl Config {
    /// The profile and peer called `name` (peer names are unique across profiles).
    pub fn peer(&self, name: &str) -> Option<(usize, &Peer)> {
        self.profiles.iter().enumerate().find_map(|(i, np)| {
            np.profile
                .peers
                .iter()
                .find(|p| p.name == name)
                .map(|p| (i, p))
        })
    }

    pub fn profile_index(&self, name: &str) -> Option<usize> {
        self.profiles.iter().position(|p| p.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct NamedProfile {
    pub name: String,
    pub profile: Profile,
    /// The file the profile was read from, for error messages.
    pub file: PathBuf,
}

/// One configuration error, located.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

/// Every error found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// The shipped profiles, compiled in: loopback only, demo users 1001-1004.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "sip-profiles/switchback.toml",
        include_str!("../../sip-profiles/switchback.toml"),
    ),
    (
        "sip-profiles/internal.toml",
        include_str!("../../sip-profiles/internal.toml"),
    ),
    (
        "sip-profiles/external.toml",
        include_str!("../../sip-profiles/external.toml"),
    ),
];

/// The embedded default configuration.
// The embedded files are compile-time data, checked by a unit test; a
// failure here is a build defect, never a peer's doing.
#[allow(clippy::expect_used)]
pub fn embedded_default() -> Config {
    let read = |p: &Path| {
        EMBEDDED
            .iter()
            .find(|(name, _)| Path::new(name) == p)
            .map(|(_, text)| text.to_string())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not embedded"))
    };
    load_with(Path::new(EMBEDDED[0].0), read, false)
        .expect("the embedded configuration is valid (checked by a unit test)")
}

/// Loads and validates a configuration from disk, with its includes.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with(path, |p| std::fs::read_to_string(p), true)
}

/// Loading, with the file reader injected so the embedded files take the same path.
fn load_with(
    main: &Path,
    read: impl Fn(&Path) -> std::io::Result<String>,
    check_files: bool,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let mut texts: BTreeMap<PathBuf, String> = BTreeMap::new();
    let main_file = match read_file(main, &read, &mut texts, &mut errors) {
        Some(f) => f,
        None => return Err(ConfigErrors(errors)),
    };
    let base = main.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut files = vec![(main.to_path_buf(), main_file.profiles)];
    for (i, inc) in main_file.include.iter().enumerate() {
        let path = base.join(inc);
        if path == main {
            push_error(
                &mut errors,
                &texts,
                main,
                KeyPath::default().key("include").index(i),
                "a file cannot include itself",
            );
            continue;
        }
        match read_file(&path, &read, &mut texts, &mut errors) {
            Some(f) => {
                let main_only = [
                    ("general", f.general.is_some()),
                    ("include", !f.include.is_empty()),
                    ("dialplan", !f.dialplan.is_empty()),
                    ("callback", f.callback.is_some()),
                    ("notify", f.notify.is_some()),
                ];
                if let Some((key, _)) = main_only.iter().find(|(_, set)| *set) {
                    push_error(
                        &mut errors,
                        &texts,
                        &path,
                        KeyPath::default().key(key),
                        "only the main file may set this",
                    );
                }
                files.push((path, f.profiles));
            }
            None => {
                // Could not be read at all: point at the include entry instead.
                if let Some(e) = errors.pop_if(|e| e.line == 0) {
                    push_error(
                        &mut errors,
                        &texts,
                        main,
                        KeyPath::default().key("include").index(i),
                        &e.message,
                    );
                }
            }
        }
    }

    let mut profiles: Vec<NamedProfile> = Vec::new();
    for (file, file_profiles) in files {
        for (name, profile) in file_profiles {
            if let Some(first) = profiles.iter().find(|p| p.name == name) {
                let msg = format!("profile defined twice (also in {})", first.file.display());
                push_error(
                    &mut errors,
                    &texts,
                    &file,
                    KeyPath::default().key("profiles").key(&name),
                    &msg,
                );
                continue;
            }
            profiles.push(NamedProfile {
                name,
                profile,
                file: file.clone(),
            });
        }
    }
    let (mut callback, callback_problems) = callback::settings(
        &main_file.callback.unwrap_or_default(),
        &profiles,
        main,
        check_files,
    );
    let general = main_file.general.unwrap_or_default();
    let (notify, notify_problems) = notify::settings(
        &main_file.notify.unwrap_or_default(),
        &general,
        main,
        check_files,
    );
    callback.notify = notify;
    let mut config = Config {
        general,
        profiles,
        dialplan: main_file.dialplan,
        callback,
        warnings: Vec::new(),
    };
    let mut warnings = Vec::new();
    for (file, key, message) in validate::warnings(&config) {
        push_error(&mut warnings, &texts, &file, key, &message);
    }
    config.warnings = warnings;
    let problems = validate::validate(&config, main, check_files);
    let all = problems
        .into_iter()
        .chain(callback_problems)
        .chain(notify_problems);
    for (file, key, message) in all {
        push_error(&mut errors, &texts, &file, key, &message);
    }
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read_file(
    path: &Path,
    read: &impl Fn(&Path) -> std::io::Result<String>,
    texts: &mut BTreeMap<PathBuf, String>,
    errors: &mut Vec<ConfigError>,
) -> Option<ConfigFile> {
    let text = match read(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(ConfigError {
                file: path.display().to_string(),
                line: 0,
                key: String::new(),
                message: format!("cannot read {}: {e}", path.display()),
            });
            return None;
        }
    };
    let parsed = toml::from_str::<ConfigFile>(&text);
    texts.insert(path.to_path_buf(), text);
    let text = &texts[path];
    match parsed {
        Ok(f) => Some(f),
        Err(e) => {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            errors.push(ConfigError {
                file: path.display().to_string(),
                line: locate::line_of_offset(text, offset),
                key: locate::key_at(text, offset).to_string(),
                message: e.message().trim().to_string(),
            });
            None
        }
    }
}

fn push_error(
    errors: &mut Vec<ConfigError>,
    texts: &BTreeMap<PathBuf, String>,
    file: &Path,
    key: KeyPath,
    message: &str,
) {
    let line = texts
        .get(file)
        .map(|t| locate::line_of(t, &key))
        .unwrap_or(1);
    errors.push(ConfigError {
        file: file.display().to_string(),
        line,
        key: key.to_string(),
        message: message.to_string(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_is_valid_and_loopback_only() {
        let c = embedded_default();
        let names: Vec<_> = c.profiles.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["internal", "external"]);
        for p in &c.profiles {
            for l in &p.profile.listen {
                assert!(
                    l.address.ip().is_loopback(),
                    "{} listens on {}",
                    p.name,
                    l.address
                );
            }
        }
        let internal = &c.profiles[0].profile;
        assert!(internal.registrar);
        let users: Vec<_> = internal.users.iter().map(|u| u.username.as_str()).collect();
        assert_eq!(users, ["1001", "1002", "1003", "1004"]);
        assert_eq!(internal.listen[0].address.port(), 5060);
        assert_eq!(c.profiles[1].profile.listen[0].address.port(), 5080);
    }

    #[test]
    fn the_shipped_files_on_disk_load_too() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        load(&root.join("sip-profiles/switchback.toml")).unwrap();
    }

    fn load_text(text: &str) -> Result<Config, ConfigErrors> {
        let text = text.to_string();
        load_with(Path::new("main.toml"), move |_| Ok(text.clone()), false)
    }

    #[test]
    fn syntax_and_type_errors_name_line_and_key() {
        let e = load_text("[profiles.a]\nlisten = [{ transport = \"udp\", address = \"nope\" }]\n")
            .unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert_eq!(
            (e.0[0].line, e.0[0].key.as_str()),
            (2, "profiles.a.listen[0].address"),
            "{e}"
        );
        let e = load_text("[profiles.a]\nlisten = []\nrelam = \"x\"\n").unwrap_err();
        assert_eq!(e.0[0].line, 3, "{e}");
        assert!(e.0[0].message.contains("relam"), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let e = load_text(
            "[profiles.a]\nregistrar = true\nlisten = [\n { transport = \"udp\", address = \"127.0.0.1:5060\" },\n { transport = \"udp\", address = \"127.0.0.1:5060\" },\n { transport = \"tls\", address = \"127.0.0.1:5061\" },\n]\n[profiles.a.registration]\nmin_expires = 100\nmax_expires = 50\n[[profiles.a.users]]\nusername = \"1001\"\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert!(got.contains(&(5, "profiles.a.listen[1].address")), "{e}");
        assert!(got.contains(&(6, "profiles.a.listen[2].transport")), "{e}");
        assert!(
            got.contains(&(9, "profiles.a.registration.min_expires")),
            "{e}"
        );
        assert!(got.contains(&(12, "profiles.a.users[0].username")), "{e}");
    }

    #[test]
    fn dial_plan_rules_are_checked() {
        let e = load_text(
            "[profiles.a]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n[[profiles.a.peers]]\nname = \"gw\"\nacl = [\"10.0.0.0/8\"]\n[[dialplan]]\nmatch = \"(\"\nto = \"gateway\"\ngateway = \"nope\"\n[[dialplan]]\nmatch = \"1\"\nto = \"user\"\n[[dialplan]]\nmatch = \"2\"\nto = \"gateway\"\ngateway = \"gw\"\nfrom = [\"b\"]\n[profiles.a.media]\ncodecs = [\"G729\"]\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert!(got.contains(&(7, "dialplan[0].match")), "{e}");
        assert!(got.contains(&(9, "dialplan[0].gateway")), "{e}");
        assert!(got.contains(&(10, "dialplan[1].profile")), "{e}");
        assert!(
            got.contains(&(16, "dialplan[2].gateway")),
            "peer without address: {e}"
        );
        assert!(got.iter().any(|(_, k)| *k == "dialplan[2].from[0]"), "{e}");
        assert!(
            got.iter()
                .any(|(_, k)| k.starts_with("profiles.a.media.codecs")),
            "{e}"
        );
    }

    #[test]
    fn websocket_listeners_origins_and_peers_are_checked() {
        let e = load_text(
            "[profiles.a]\nlisten = [\n { transport = \"ws\", address = \"127.0.0.1:5066\" },\n { transport = \"tcp\", address = \"127.0.0.1:5066\" },\n { transport = \"wss\", address = \"127.0.0.1:0\" },\n]\n[profiles.a.websocket]\nallowed_origins = [\"https://desk.example.com\", \"null\", \"https://x.example/path\"]\n[[profiles.a.peers]]\nname = \"gw\"\naddress = \"127.0.0.1:5090\"\ntransport = \"ws\"\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        // ws and tcp are both streams: one port each.
        assert!(got.contains(&(4, "profiles.a.listen[1].address")), "{e}");
        assert!(got.contains(&(5, "profiles.a.listen[2].transport")), "{e}");
        assert!(
            got.contains(&(8, "profiles.a.websocket.allowed_origins[1]")),
            "{e}"
        );
        assert!(
            got.contains(&(8, "profiles.a.websocket.allowed_origins[2]")),
            "{e}"
        );
        assert!(got.contains(&(12, "profiles.a.peers[0].transport")), "{e}");
        assert_eq!(got.len(), 5, "{e}");
        let ok = load_text(
            "[profiles.a]\nlisten = [{ transport = \"ws\", address = \"127.0.0.1:0\" }]\n",
        )
        .unwrap();
        let p = &ok.profiles[0].profile;
        assert_eq!(p.listen[0].transport, crate::net::TransportKind::Ws);
        assert!(p.websocket.allowed_origins.is_empty());
    }

    #[test]
    fn connection_caps_and_tls_peers_are_checked_with_line_and_key() {
        let e = load_text(
            "[general]\nmax_message_size = 8000\ndns_servers = [\"127.0.0.1:5353\"]\n[profiles.a]\nlisten = [{ transport = \"tcp\", address = \"127.0.0.1:0\" }]\n[profiles.a.connections]\nmax_per_source = 0\nmax_total = 10\nmax_pending_bytes = 9000\n[[profiles.a.peers]]\nname = \"udp-gw\"\naddress = \"gw.example.com\"\nca_file = \"ca.pem\"\ntls_verify = false\n[[profiles.a.peers]]\nname = \"bad\"\naddress = \"gw_1.example.com:5060\"\n",
        )
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        assert!(
            got.contains(&(7, "profiles.a.connections.max_per_source")),
            "{e}"
        );
        assert!(
            got.contains(&(9, "profiles.a.connections.max_pending_bytes")),
            "{e}"
        );
        assert!(got.contains(&(13, "profiles.a.peers[0].ca_file")), "{e}");
        assert!(got.contains(&(14, "profiles.a.peers[0].tls_verify")), "{e}");
        assert!(got.contains(&(17, "profiles.a.peers[1].address")), "{e}");
        assert_eq!(got.len(), 5, "{e}");
        let e = load_text(
            "[profiles.a]\nlisten = [{ transport = \"tcp\", address = \"127.0.0.1:0\" }]\n[profiles.a.connections]\nmax_per_source = 100\nmax_total = 10\n",
        )
        .unwrap_err();
        assert_eq!(e.0[0].key, "profiles.a.connections.max_total", "{e}");
        // Names without a port (RFC 3263), TLS peers with their trust, the defaults.
        let ok = load_text(
            "[general]\ndns_servers = [\"127.0.0.1:5353\"]\n[profiles.a]\nlisten = [{ transport = \"tcp\", address = \"127.0.0.1:0\" }]\n[[profiles.a.peers]]\nname = \"gw\"\naddress = \"trunk.example.com\"\ntransport = \"tls\"\nca_file = \"ca.pem\"\n",
        )
        .unwrap();
        let c = &ok.profiles[0].profile.connections;
        assert_eq!(
            (c.max_per_source, c.max_total, c.max_pending_bytes),
            (1_000, 10_000, None)
        );
        assert!(ok.profiles[0].profile.peers[0].tls_verify);
        assert_eq!(ok.general.dns_servers, ["127.0.0.1:5353".parse().unwrap()]);
    }

    #[test]
    fn https_needs_both_files_and_a_listener() {
        let profile =
            "[profiles.a]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n";
        let e = load_text(&format!("[general]\nhttp_tls_cert = \"c.pem\"\n{profile}")).unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| e.key.as_str()).collect();
        assert!(got.contains(&"general.http_tls_key"), "{e}");
        assert!(got.contains(&"general.http_listen"), "{e}");
        let ok = load_text(&format!(
            "[general]\nhttp_listen = \"127.0.0.1:0\"\nhttp_tls_cert = \"c.pem\"\nhttp_tls_key = \"k.pem\"\n{profile}"
        ))
        .unwrap();
        assert_eq!(ok.general.http_tls_key.as_deref(), Some(Path::new("k.pem")));
    }

    #[test]
    fn trunk_peer_limits_pings_and_gateway_lists_are_checked() {
        let profile =
            "[profiles.a]\nlisten = [{ transport = \"udp\", address = \"127.0.0.1:0\" }]\n";
        // Every key read, the defaults bind nothing and do not ping.
        let ok = load_text(&format!(
            "{profile}[[profiles.a.peers]]\nname = \"gw1\"\naddress = \"127.0.0.1:5090\"\nmax_calls_in = 500\nmax_calls_out = 400\nmax_cps_in = 50\nmax_cps_out = 40\nping_interval_secs = 10\nping_failures_before_down = 3\nping_successes_before_up = 1\n[[profiles.a.peers]]\nname = \"gw2\"\naddress = \"127.0.0.1:5091\"\n[[dialplan]]\nmatch = \"1\"\nto = \"gateway\"\ngateways = [\"gw1\", \"gw2\"]\nstrategy = \"weighted\"\nweights = [3, 1]\n[[dialplan]]\nmatch = \"2\"\nto = \"gateway\"\ngateways = [\"gw2\", \"gw1\"]\n[[dialplan]]\nmatch = \"3\"\nto = \"gateway\"\ngateway = \"gw1\"\n"
        ))
        .unwrap();
        let p = &ok.profiles[0].profile.peers;
        assert_eq!(
            (
                p[0].max_calls_in,
                p[0].max_calls_out,
                p[0].max_cps_in,
                p[0].max_cps_out
            ),
            (500, 400, 50, 40)
        );
        assert_eq!(
            (
                p[0].ping_interval_secs,
                p[0].ping_failures_before_down,
                p[0].ping_successes_before_up
            ),
            (10, 3, 1)
        );
        assert_eq!(
            (
                p[1].max_calls_in,
                p[1].max_cps_out,
                p[1].ping_interval_secs,
                p[1].ping_failures_before_down,
                p[1].ping_successes_before_up
            ),
            (0, 0, 0, 2, 2)
        );
        assert_eq!(ok.dialplan[0].strategy, Some(GatewayStrategy::Weighted));
        assert_eq!(ok.dialplan[0].weights, [3, 1]);
        assert_eq!(ok.dialplan[1].strategy, None);

        let e = load_text(&format!(
            "{profile}[[profiles.a.peers]]\nname = \"in\"\nacl = [\"10.0.0.0/8\"]\nping_interval_secs = 5\nping_failures_before_down = 0\n[[profiles.a.peers]]\nname = \"gw\"\naddress = \"127.0.0.1:5090\"\nping_successes_before_up = 0\n[[dialplan]]\nmatch = \"1\"\nto = \"gateway\"\ngateway = \"gw\"\ngateways = [\"gw\"]\n[[dialplan]]\nmatch = \"2\"\nto = \"gateway\"\ngateways = [\"gw\", \"nope\", \"in\", \"gw\"]\nweights = [1, 1, 1, 1]\n[[dialplan]]\nmatch = \"3\"\nto = \"gateway\"\ngateways = [\"gw\"]\nstrategy = \"weighted\"\nweights = [0, 2]\n[[dialplan]]\nmatch = \"4\"\nto = \"user\"\nstrategy = \"ordered\"\n[[dialplan]]\nmatch = \"5\"\nto = \"gateway\"\nstrategy = \"random\"\n"
        ))
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        // "random" is no strategy: a type error, reported alone by the parser.
        assert_eq!(got, [(35, "dialplan[4].strategy")], "{e}");

        let e = load_text(&format!(
            "{profile}[[profiles.a.peers]]\nname = \"in\"\nacl = [\"10.0.0.0/8\"]\nping_interval_secs = 5\nping_failures_before_down = 0\n[[profiles.a.peers]]\nname = \"gw\"\naddress = \"127.0.0.1:5090\"\nping_successes_before_up = 0\n[[dialplan]]\nmatch = \"1\"\nto = \"gateway\"\ngateway = \"gw\"\ngateways = [\"gw\"]\n[[dialplan]]\nmatch = \"2\"\nto = \"gateway\"\ngateways = [\"gw\", \"nope\", \"in\", \"gw\"]\nweights = [1, 1, 1, 1]\n[[dialplan]]\nmatch = \"3\"\nto = \"gateway\"\ngateways = [\"gw\"]\nstrategy = \"weighted\"\nweights = [0, 2]\n[[dialplan]]\nmatch = \"4\"\nto = \"user\"\nstrategy = \"ordered\"\n[[dialplan]]\nmatch = \"5\"\nto = \"gateway\"\n"
        ))
        .unwrap_err();
        let got: Vec<_> = e.0.iter().map(|e| (e.line, e.key.as_str())).collect();
        let want = [
            (6, "profiles.a.peers[0].ping_interval_secs"),
            (7, "profiles.a.peers[0].ping_failures_before_down"),
            (11, "profiles.a.peers[1].ping_successes_before_up"),
            (16, "dialplan[0].gateways"),
            (20, "dialplan[1].gateways[1]"),
            (20, "dialplan[1].gateways[2]"),
            (20, "dialplan[1].gateways[3]"),
            (21, "dialplan[1].weights"),
            (27, "dialplan[2].weights"),
            (27, "dialplan[2].weights[0]"),
            (28, "dialplan[3].profile"),
            (31, "dialplan[3].strategy"),
            (32, "dialplan[4].gateway"),
        ];
        for w in want {
            assert!(got.contains(&w), "missing {w:?}: {e}");
        }
        assert_eq!(got.len(), want.len(), "{e}");
        let msg = |key: &str| {
            e.0.iter()
                .find(|x| x.key == key)
                .map(|x| x.message.clone())
                .unwrap_or_default()
        };
        assert!(msg("dialplan[1].gateways[1]").contains("no peer is called nope"));
        assert!(msg("dialplan[1].gateways[2]").contains("no address"));
        assert!(msg("dialplan[1].gateways[3]").contains("listed twice"));
        assert!(msg("dialplan[1].weights").contains("strategy = \"weighted\""));
        assert!(msg("dialplan[2].weights").contains("2 weights for 1 gateways"));
    }
}
