//! The configuration schema: what an operator writes in TOML.
//!
//! Every table denies unknown fields so that a typo is an error with a line
//! number, not a silently ignored setting. Defaults are the values a laptop
//! deployment wants; the README documents each key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

// The call layer's own settings types, which the TOML names directly.
pub use crate::call::settings::{HeaderRule, PrackMode, TemplateError, UserToUser};
use crate::net::TransportKind;

/// One configuration file as written. A file may hold `[general]`, a list of
/// profile files to `include`, and profiles of its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub general: Option<General>,
    #[serde(default)]
    pub include: Vec<PathBuf>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Number patterns to destinations, tried in order (main file only).
    #[serde(default)]
    pub dialplan: Vec<Route>,
    /// The web-callback layer (main file only); see `config::callback`.
    pub callback: Option<CallbackTable>,
    /// Workforce-management notifications (main file only); see `config::notify`.
    pub notify: Option<NotifyTable>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct General {
    /// Log every SIP message sent and received (like `sipp -trace_msg`).
    pub log_sip_messages: bool,
    /// Largest SIP message accepted, in bytes (datagram or stream frame).
    pub max_message_size: usize,
    /// Where the HTTP control API listens (`None`: no HTTP API).
    pub http_listen: Option<SocketAddr>,
    /// PEM certificate chain and key for HTTPS on `http_listen`, relative
    /// to the main file (both or neither; neither: plain HTTP).
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
    /// Folder call recordings are written to (relative to the working directory).
    pub recordings_dir: PathBuf,
    /// Keys the HTTP API accepts; with none, it answers only `/v1/health`.
    pub http_api_keys: Vec<String>,
    /// DNS servers for trunk peers given by name (RFC 3263: NAPTR, SRV,
    /// A/AAAA), as `ip:port`; empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
    /// SIP endpoint workers, each owning the transactions, dialogs and calls
    /// of the Call-IDs that hash to it; 0: one per core.
    pub sip_workers: usize,
}

impl Default for General {
    fn default() -> Self {
        Self {
            log_sip_messages: false,
            max_message_size: 65_535,
            http_listen: None,
            http_tls_cert: None,
            http_tls_key: None,
            recordings_dir: PathBuf::from("recordings"),
            http_api_keys: Vec::new(),
            dns_servers: Vec::new(),
            sip_workers: 0,
        }
    }
}

/// One dial-plan rule: a number pattern and where matching calls go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// A regular expression matched against the whole dialled user part.
    #[serde(rename = "match")]
    pub pattern: String,
    pub to: RouteTarget,
    /// `to = "gateway"`: the peer (of any profile) the call goes out through.
    pub gateway: Option<String>,
    /// `to = "gateway"`: several peers instead of `gateway`, tried in turn
    /// (a call failing on one with 503, 408 or a transport error goes on to
    /// the next; peers marked down by their pings are skipped).
    #[serde(default)]
    pub gateways: Vec<String>,
    /// The order `gateways` are tried in: as written (default) or drawn by
    /// `weights` for each call.
    pub strategy: Option<GatewayStrategy>,
    /// `strategy = "weighted"`: one weight (at least 1) per gateway; absent,
    /// every gateway weighs the same.
    #[serde(default)]
    pub weights: Vec<u32>,
    /// `to = "user"`: the registrar profile whose user is rung (default: the first registrar profile).
    pub profile: Option<String>,
    /// The number or user sent on, with `$1`-style captures (default `$0`, the whole match).
    pub number: Option<String>,
    /// Only calls entering on these profiles use this rule (default: every profile).
    #[serde(default)]
    pub from: Vec<String>,
}

/// How a route's `gateways` are ordered for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayStrategy {
    /// As written: the first gateway first, the others only on failure.
    #[default]
    Ordered,
    /// Drawn per call by weight (RFC 2782's selection): a gateway of weight
    /// 3 comes first three times as often as one of weight 1; the rest
    /// follow in weighted order too.
    Weighted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteTarget {
    /// The registered contacts of a user, rung in parallel.
    User,
    /// A trunk peer.
    Gateway,
}

/// A SIP profile: a set of listeners with one policy (FreeSWITCH's notion).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub listen: Vec<Listen>,
    #[serde(default = "default_realm")]
    pub realm: String,
    /// Whether this profile accepts REGISTER from the users below.
    #[serde(default)]
    pub registrar: bool,
    #[serde(default)]
    pub timers: Timers,
    /// Stream connections with no traffic for this long are closed.
    #[serde(default = "default_idle")]
    pub tcp_idle_timeout_secs: u64,
    /// Caps on the profile's inbound stream (TCP/TLS) connections.
    #[serde(default)]
    pub connections: Connections,
    #[serde(default)]
    pub registration: Registration,
    #[serde(default)]
    pub auth_guard: AuthGuard,
    #[serde(default)]
    pub users: Vec<User>,
    pub tls: Option<Tls>,
    /// The profile's `ws` and `wss` listeners (RFC 7118).
    #[serde(default)]
    pub websocket: WebSocket,
    #[serde(default)]
    pub peers: Vec<Peer>,
    #[serde(default)]
    pub media: Media,
    #[serde(default)]
    pub calls: Calls,
    /// Caller ID and header rules for calls this profile's gateways carry out.
    #[serde(default)]
    pub outbound: Outbound,
}

/// `[profiles.X.connections]`: what one source, and everyone together, may
/// hold open on the profile's TCP and TLS listeners, and how much one
/// connection may buffer for a message not yet complete. A connection past
/// a cap is closed at once and counted; the defaults bind no normal
/// deployment (an office of phones behind one NAT address included).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Connections {
    /// Inbound connections open at once from one IP address.
    pub max_per_source: usize,
    /// Inbound connections open at once on the profile (all sources).
    pub max_total: usize,
    /// Bytes one connection may hold for an incomplete message (an endless
    /// header block, a body announced but not sent); default, and at most,
    /// `[general] max_message_size`.
    pub max_pending_bytes: Option<usize>,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            max_per_source: 1_000,
            max_total: 10_000,
            max_pending_bytes: None,
        }
    }
}

/// `[profiles.X.websocket]`: who may open SIP over WebSocket (RFC 7118)
/// on the profile's `ws` and `wss` listeners. The connection caps, idle
/// timeout and size caps are the stream ones (`connections`,
/// `tcp_idle_timeout_secs`, `max_message_size`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocket {
    /// Web origins (`scheme://host[:port]`, as a browser sends `Origin`)
    /// whose pages may connect. Empty (the default): only pages served
    /// from a loopback address (127.0.0.0/8, `[::1]`, `localhost`). A
    /// handshake without an `Origin` header (a SIP phone, not a browser)
    /// is always let through: the check protects browsers from foreign
    /// pages, and digest authentication still guards the registrar.
    pub allowed_origins: Vec<String>,
}

/// The RTP relay's side of a profile: where legs on this profile get their media.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    /// The address the relay binds and writes in SDP.
    pub address: std::net::IpAddr,
    pub rtp_port_min: u16,
    pub rtp_port_max: u16,
    /// Codecs negotiated, in order of preference.
    pub codecs: Vec<String>,
    /// A call whose leg sends no RTP for this long is ended (0: never).
    pub rtp_timeout_secs: u64,
}

impl Default for Media {
    fn default() -> Self {
        Self {
            address: std::net::IpAddr::from([127, 0, 0, 1]),
            rtp_port_min: 16_384,
            rtp_port_max: 32_767,
            codecs: vec!["PCMU".into(), "PCMA".into(), "telephone-event".into()],
            rtp_timeout_secs: 60,
        }
    }
}

/// Call handling on a profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Calls {
    /// A leg ringing this long is cancelled and the caller gets 408.
    pub ring_timeout_secs: u64,
    /// RFC 4028 session interval asked for on legs of this profile (0: no session timers).
    pub session_expires_secs: u32,
    /// The smallest session interval accepted (Min-SE).
    pub min_se_secs: u32,
    /// `Call-Info` added when the switch asks a phone to answer by itself.
    pub auto_answer_call_info: String,
    /// `Alert-Info` added with it (some phones look only at this).
    pub auto_answer_alert_info: String,
    /// Headers the layer above may set on legs it originates (case data).
    pub case_data_headers: Vec<String>,
    /// Record every answered call entering on this profile.
    pub record: bool,
    /// RFC 3262 reliable provisional responses on this profile's legs (a
    /// peer's own `prack` overrides it for that peer).
    pub prack: PrackMode,
    /// RFC 7433 User-to-User on legs toward this profile's phones (the
    /// agent leg): `true` for the case reference hex-encoded, a template,
    /// or `false`/absent for none.
    pub user_to_user: Option<UserToUser>,
}

impl Default for Calls {
    fn default() -> Self {
        Self {
            ring_timeout_secs: 60,
            session_expires_secs: 1800,
            min_se_secs: 90,
            auto_answer_call_info: "answer-after=0".into(),
            auto_answer_alert_info: "<http://127.0.0.1/>;info=alert-autoanswer".into(),
            case_data_headers: vec!["X-Case-Id".into(), "X-Interaction-Id".into()],
            record: false,
            prack: PrackMode::Supported,
            user_to_user: None,
        }
    }
}

/// What calls leaving through this profile's gateways carry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outbound {
    /// Replaces the caller's number (From user) when set.
    pub caller_id_number: Option<String>,
    /// Replaces the caller's display name when set.
    pub caller_id_name: Option<String>,
    /// Headers added to every outbound INVITE.
    pub add_headers: Vec<HeaderRule>,
    /// Headers copied from the inbound leg's INVITE when present (default:
    /// [`DEFAULT_PASS_HEADERS`]; a list written replaces it).
    pub pass_headers: Vec<String>,
}

/// Passed on by default: call diversion (RFC 5806), History-Info (RFC 7044)
/// and User-to-User (RFC 7433).
pub const DEFAULT_PASS_HEADERS: [&str; 3] = ["Diversion", "History-Info", "User-to-User"];

impl Default for Outbound {
    fn default() -> Self {
        Self {
            caller_id_number: None,
            caller_id_name: None,
            add_headers: Vec::new(),
            pass_headers: DEFAULT_PASS_HEADERS.iter().map(|h| h.to_string()).collect(),
        }
    }
}

fn default_realm() -> String {
    "switchback.local".into()
}

fn default_idle() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub transport: TransportKind,
    pub address: SocketAddr,
}

/// RFC 3261 §17 timer bases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timers {
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Registration {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub nonce_lifetime_secs: u64,
    /// Digest algorithms offered, in order of preference (RFC 8760 §2.4).
    /// MD5 alone by default: some phones fail on a 401 with two challenges.
    pub algorithms: Vec<Algorithm>,
    /// Other lists for phones whose `User-Agent` matches, first match wins.
    pub user_agent_algorithms: Vec<UserAgentAlgorithms>,
}

impl Default for Registration {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            nonce_lifetime_secs: 300,
            algorithms: vec![Algorithm::Md5],
            user_agent_algorithms: Vec::new(),
        }
    }
}

/// Digest algorithms for the phones whose `User-Agent` matches a pattern.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAgentAlgorithms {
    /// A regular expression searched for in the `User-Agent` header.
    pub user_agent: String,
    pub algorithms: Vec<Algorithm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "SHA-256")]
    Sha256,
    #[serde(rename = "MD5")]
    Md5,
}

/// Brute-force protection, per source address.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthGuard {
    /// Failures of one user from one source address before that pair is blocked.
    pub max_failures: u32,
    /// Different users failing from one source before the whole source is blocked.
    pub max_users_per_source: u32,
    pub window_secs: u64,
    pub block_secs: u64,
    pub max_transactions_per_source: usize,
}

impl Default for AuthGuard {
    fn default() -> Self {
        Self {
            max_failures: 10,
            max_users_per_source: 4,
            window_secs: 60,
            block_secs: 300,
            max_transactions_per_source: 200,
        }
    }
}

/// A user who may register: a password, or HA1 hashes so that the password
/// itself need not sit in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub username: String,
    pub password: Option<String>,
    pub ha1_md5: Option<String>,
    pub ha1_sha256: Option<String>,
    /// This user's digest algorithms, whatever its phone (default: the
    /// profile's, or its phone's `user_agent_algorithms`).
    pub algorithms: Option<Vec<Algorithm>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A trunk peer: where it is, who may claim to be it, and how we authenticate to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: String,
    /// Where requests to this peer go: `ip:port`, `host:port` (A/AAAA),
    /// or `host` alone (RFC 3263: NAPTR, then SRV, then A/AAAA).
    pub address: Option<String>,
    #[serde(default = "default_peer_transport")]
    pub transport: TransportKind,
    /// `transport = "tls"`: extra trusted CA certificates (PEM), relative to
    /// the profile's file, beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// `transport = "tls"`: verify the peer's certificate against its host
    /// name (default true). `false` accepts any certificate: an explicit,
    /// logged choice for a lab, never for a trunk on a shared network.
    #[serde(default = "default_true")]
    pub tls_verify: bool,
    /// Source networks accepted as this peer without authentication.
    #[serde(default)]
    pub acl: Vec<ipnet::IpNet>,
    /// Outbound digest credentials.
    pub username: Option<String>,
    pub password: Option<String>,
    pub realm: Option<String>,
    /// RFC 3325 trust: P-Asserted-Identity from this peer is believed, and
    /// sent to it; from and to an untrusted peer it is removed.
    #[serde(default)]
    pub trusted: bool,
    /// RFC 3262 use toward and from this peer (default: the profile's).
    pub prack: Option<PrackMode>,
    /// RFC 7433 User-to-User toward this peer (default: the profile's):
    /// `true`, a template, or `false` (none sent, not even passed on).
    pub user_to_user: Option<UserToUser>,
    /// Calls from this peer in progress at once (0: no limit); past it, 503
    /// with Retry-After.
    #[serde(default)]
    pub max_calls_in: u32,
    /// Calls to this peer in progress at once (0: no limit); past it the
    /// route's next gateway, or 503 with Retry-After to the caller.
    #[serde(default)]
    pub max_calls_out: u32,
    /// New calls per second from this peer (0: no limit; a token bucket
    /// holding one second's worth).
    #[serde(default)]
    pub max_cps_in: u32,
    /// New calls per second to this peer (0: no limit).
    #[serde(default)]
    pub max_cps_out: u32,
    /// OPTIONS pings to the peer every this many seconds (0: no pings, and
    /// the peer is always taken as up).
    #[serde(default)]
    pub ping_interval_secs: u64,
    /// Pings failed in a row before the peer is marked down.
    #[serde(default = "default_ping_failures")]
    pub ping_failures_before_down: u32,
    /// Pings answered in a row before a peer marked down is up again.
    #[serde(default = "default_ping_successes")]
    pub ping_successes_before_up: u32,
}

fn default_ping_failures() -> u32 {
    2
}

fn default_ping_successes() -> u32 {
    2
}

fn default_true() -> bool {
    true
}

fn default_peer_transport() -> TransportKind {
    TransportKind::Udp
}

/// `[callback]`: the web-callback layer as written. `config::callback`
/// checks it and turns it into [`crate::callback::CallbackSettings`]; names
/// are kept as strings here so that each bad one is reported with its line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbackTable {
    /// The SQLite file, relative to the working directory.
    pub database: PathBuf,
    pub offer_timeout_secs: u64,
    /// The registrar profile agents register on (default: the first registrar profile).
    pub agent_profile: Option<String>,
    pub ready_after_done: bool,
    pub idempotency_window_hours: u64,
    /// How long an agent that rejected a callback (or let its offer time
    /// out) is skipped for it.
    pub exclusion_secs: u64,
    pub options: OptionsTable,
    pub login: LoginTable,
    pub queues: Vec<QueueTable>,
    pub agents: Vec<AgentTable>,
    /// `[callback.enrichment]`: the webhook every queue without its own consults.
    pub enrichment: Option<EnrichmentTable>,
}

impl Default for CallbackTable {
    fn default() -> Self {
        Self {
            database: PathBuf::from("data/switchback.db"),
            offer_timeout_secs: 30,
            agent_profile: None,
            ready_after_done: true,
            idempotency_window_hours: 24,
            exclusion_secs: 600,
            options: OptionsTable::default(),
            login: LoginTable::default(),
            queues: Vec::new(),
            agents: Vec::new(),
            enrichment: None,
        }
    }
}

/// `[callback.options]`: the `webcallback.*` defaults (docs/web-callbacks.md, Options).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptionsTable {
    pub auto_answer: bool,
    pub auto_answer_timer_secs: u64,
    pub auto_answer_enable_reject: bool,
    pub auto_dial: bool,
    pub callback_information_content: Vec<String>,
    pub complete_queue: String,
    pub park_queue: String,
    pub reschedule_queue: String,
    pub not_ready_on_offer_timeout: Option<String>,
}

impl Default for OptionsTable {
    fn default() -> Self {
        Self {
            auto_answer: false,
            auto_answer_timer_secs: 0,
            auto_answer_enable_reject: true,
            auto_dial: false,
            callback_information_content: [
                "callbackUserName",
                "callbackNumber",
                "callbackScheduledTime",
                "queueId",
            ]
            .map(String::from)
            .to_vec(),
            complete_queue: "webcallback-complete".into(),
            park_queue: "webcallback-park".into(),
            reschedule_queue: "webcallback-reschedule".into(),
            not_ready_on_offer_timeout: None,
        }
    }
}

/// `[callback.login]`: `login.webcallback.*` (docs/web-callbacks.md, Options).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginTable {
    pub is_auto_ready: bool,
    pub auto_not_ready_reason: Option<String>,
    pub can_unactivate_channel: bool,
}

impl Default for LoginTable {
    fn default() -> Self {
        Self {
            is_auto_ready: true,
            auto_not_ready_reason: None,
            can_unactivate_channel: true,
        }
    }
}

/// `[[callback.queues]]`: one routing queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueTable {
    pub id: String,
    #[serde(default)]
    pub skills: Vec<String>,
    /// IANA name; UTC when absent.
    pub time_zone: Option<String>,
    /// Empty: always open.
    #[serde(default)]
    pub business_hours: Vec<HoursTable>,
    /// Dates (YYYY-MM-DD, in the queue's zone) it stays closed all day:
    /// public holidays, closures.
    #[serde(default)]
    pub closed_dates: Vec<String>,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Absent: a callback never expires.
    pub expiry_hours: Option<u64>,
    #[serde(default)]
    pub retry: RetryTable,
    /// This queue's own enrichment webhook, replacing the global one
    /// (`enabled = false`: none for this queue).
    pub enrichment: Option<EnrichmentTable>,
}

/// `[callback.enrichment]` or a queue's `enrichment`: the webhook of
/// docs/enrichment.md. Every key is optional here so that a queue's table may be
/// just `enabled = false`; `config::callback` requires `url` otherwise and
/// fills in the defaults (see the README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichmentTable {
    /// Default true.
    pub enabled: Option<bool>,
    pub url: Option<String>,
    /// Default false: the URL must be HTTPS.
    pub allow_http: Option<bool>,
    /// Default `X-API-Key`.
    pub api_key_header: Option<String>,
    pub api_key: Option<String>,
    /// Default 3000, 1 to 60000.
    pub timeout_ms: Option<u64>,
    /// Default `accept`.
    pub on_failure: Option<crate::integrations::enrich::OnFailure>,
    /// `data` keys never overwritten (`visitorId` or `data.visitorId`);
    /// default `["visitorId", "te_channel"]`.
    pub protected_keys: Option<Vec<String>>,
    /// Extra CA certificates (PEM), relative to the main file.
    pub ca_file: Option<PathBuf>,
}

fn default_max_attempts() -> u32 {
    3
}

/// One business-hours window: `days` (mon..sun), `from` and `to` as HH:MM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursTable {
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryTable {
    pub busy: BackoffTable,
    pub no_answer: BackoffTable,
    pub failed: BackoffTable,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffTable {
    pub delay_secs: u64,
    pub multiplier: f64,
    pub max_delay_secs: u64,
}

impl Default for BackoffTable {
    fn default() -> Self {
        Self {
            delay_secs: 300,
            multiplier: 2.0,
            max_delay_secs: 3600,
        }
    }
}

/// `[[callback.agents]]`: a user of the agent profile who takes callbacks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentTable {
    pub user: String,
    pub name: Option<String>,
    pub team: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    /// Privileges withheld (`Privilege::as_str` names); all others are granted.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `[notify]`: workforce-management notifications as written (see
/// docs/notifications.md). `config::notify` checks it and turns it into
/// [`crate::integrations::notify::NotifySettings`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyTable {
    /// The base of recording links (default: the HTTP API's address).
    pub public_url: Option<String>,
    pub endpoints: Vec<NotifyEndpointTable>,
}

/// `[[notify.endpoints]]`: one receiver of events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyEndpointTable {
    pub name: String,
    pub url: String,
    /// `json` or `form` (URL-encoded, the default).
    #[serde(default = "default_notify_format")]
    pub format: String,
    /// `agent-states`, `agent-login`, `agent-logout`, `end-call`.
    #[serde(default)]
    pub events: Vec<String>,
    /// Sent with every request, e.g. `{ Authorization = "Basic ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub signing_secret: Option<String>,
    pub signature_header: Option<String>,
    #[serde(default = "default_notify_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_notify_max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "default_notify_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_notify_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Plain `http://` allowed (testing only).
    #[serde(default)]
    pub allow_http: bool,
    /// Extra trusted CA certificates (PEM), relative to the main file.
    pub ca_file: Option<PathBuf>,
}

fn default_notify_format() -> String {
    "form".into()
}

fn default_notify_timeout_ms() -> u64 {
    5_000
}

fn default_notify_max_attempts() -> u32 {
    10
}

fn default_notify_backoff_initial_ms() -> u64 {
    500
}

fn default_notify_backoff_max_ms() -> u64 {
    300_000
}
